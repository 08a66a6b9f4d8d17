//! Configuration of TLS: `ssl` bind and server options and the `ssl-default-*` globals.

use crate::config::registry::{BindOption, DocTable, GlobalKeyword, ServerOption};

#[derive(Clone, Debug, Default)]
pub struct BindTls {}

#[derive(Clone, Debug, Default)]
pub struct ServerTls {}

#[derive(Clone, Debug, Default)]
pub struct GlobalTls {}

pub fn global_keywords() -> Vec<GlobalKeyword> {
    Vec::new()
}

pub fn bind_options() -> Vec<BindOption> {
    Vec::new()
}

pub fn server_options() -> Vec<ServerOption> {
    Vec::new()
}

pub fn doc_tables() -> Vec<DocTable> {
    Vec::new()
}
