//! Helpers for the unit tests of every module that registers keywords.

use super::{Loaded, load_str};

/// Loads one in-memory file named `t.cfg` with an empty environment.
pub fn load(text: &str) -> Loaded {
    load_str("t.cfg", text, &std::collections::HashMap::<String, String>::new())
}

/// The alerts of a load, rendered (`config : parsing [t.cfg:N] : 'kw' : message`).
pub fn alerts(text: &str) -> Vec<String> {
    load(text).diags.alerts().map(|d| d.to_string()).collect()
}

/// The configuration of a load that must succeed; fails the test with the alerts otherwise.
pub fn ok(text: &str) -> super::model::Config {
    let l = load(text);
    let alerts: Vec<String> = l.diags.alerts().map(|d| d.to_string()).collect();
    l.config.unwrap_or_else(|| panic!("config rejected: {alerts:?}"))
}

/// The one alert of a load that must fail with exactly one: (line, keyword, message).
pub fn one_alert(text: &str) -> (u32, String, String) {
    let l = load(text);
    let a: Vec<_> = l.diags.alerts().collect();
    assert_eq!(a.len(), 1, "expected one alert, got {a:?}");
    (a[0].span.as_ref().map_or(0, |s| s.line), a[0].keyword.clone().unwrap_or_default(), a[0].msg.clone())
}
