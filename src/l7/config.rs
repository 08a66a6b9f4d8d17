//! Configuration of HTTP proxying: `http-request`/`http-response`/`http-after-response` rules,
//! redirects, error files, forwarding headers and HTTP connection options.

use crate::config::registry::{DocTable, ProxyKeyword};

#[derive(Clone, Debug, Default)]
pub struct ProxyHttp {}

pub fn proxy_keywords() -> Vec<ProxyKeyword> {
    Vec::new()
}

pub fn doc_tables() -> Vec<DocTable> {
    Vec::new()
}
