//! Configuration of tcp-request, tcp-response and L4 proxying options.

use crate::config::registry::ProxyKeyword;

#[derive(Clone, Debug, Default)]
pub struct ProxyTcp {}

pub fn proxy_keywords() -> Vec<ProxyKeyword> {
    Vec::new()
}

pub fn doc_tables() -> Vec<crate::config::registry::DocTable> {
    Vec::new()
}
