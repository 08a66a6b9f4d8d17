//! Configuration of stick tables and stickiness.

use crate::config::registry::ProxyKeyword;

#[derive(Clone, Debug, Default)]
pub struct ProxyStick {}

pub fn proxy_keywords() -> Vec<ProxyKeyword> {
    Vec::new()
}

impl ProxyStick {
    /// True when the proxy declares a `stick-table` others can name.
    pub fn has_table(&self) -> bool {
        false
    }
}
