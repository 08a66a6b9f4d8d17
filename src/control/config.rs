//! Configuration of the stats socket (`stats socket` in `global`) and the HTTP stats page.

use crate::config::registry::{GlobalKeyword, ProxyKeyword};

#[derive(Clone, Debug, Default)]
pub struct StatsPage {}

#[derive(Clone, Debug, Default)]
pub struct GlobalStats {}

pub fn proxy_keywords() -> Vec<ProxyKeyword> {
    Vec::new()
}

pub fn global_keywords() -> Vec<GlobalKeyword> {
    Vec::new()
}
