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
