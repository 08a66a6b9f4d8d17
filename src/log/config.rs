//! Configuration of logging: `log`, `log-format`, `option httplog`/`tcplog`, captures, unique ids.

use crate::config::registry::{GlobalKeyword, ProxyKeyword};

#[derive(Clone, Debug, Default)]
pub struct ProxyLog {}

#[derive(Clone, Debug, Default)]
pub struct GlobalLog {}

pub fn proxy_keywords() -> Vec<ProxyKeyword> {
    Vec::new()
}

pub fn global_keywords() -> Vec<GlobalKeyword> {
    Vec::new()
}
