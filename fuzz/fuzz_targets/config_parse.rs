//! Feeds arbitrary bytes to the configuration loader: lexing, `.if` blocks, keyword parsing and
//! validation must never panic or hang, whatever the text.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let env = HashMap::<String, String>::new();
    let loaded = sluiced::config::load_str("fuzz.cfg", &text, &env);
    if !loaded.diags.has_alerts() {
        let cfg = loaded.config.expect("a load without alerts yields a configuration");
        let _ = sluiced::route::RouteTable::compile(&cfg);
    }
});
