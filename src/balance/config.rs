//! Configuration of load balancing: `balance`, `hash-type`, `hash-balance-factor`, `cookie`.

use crate::config::registry::ProxyKeyword;

#[derive(Clone, Debug, Default)]
pub struct ProxyBalance {}

pub fn proxy_keywords() -> Vec<ProxyKeyword> {
    Vec::new()
}
