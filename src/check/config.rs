//! Configuration of health checks: `check` server options, `option httpchk`, `http-check`,
//! `tcp-check`, protocol checks, agent checks.

use crate::config::registry::{DocTable, GlobalKeyword, ProxyKeyword, ServerOption};

#[derive(Clone, Debug, Default)]
pub struct ProxyCheck {}

#[derive(Clone, Debug, Default)]
pub struct ServerCheck {}

#[derive(Clone, Debug, Default)]
pub struct GlobalCheck {}

pub fn proxy_keywords() -> Vec<ProxyKeyword> {
    Vec::new()
}

pub fn global_keywords() -> Vec<GlobalKeyword> {
    Vec::new()
}

pub fn server_options() -> Vec<ServerOption> {
    Vec::new()
}

pub fn doc_tables() -> Vec<DocTable> {
    Vec::new()
}
