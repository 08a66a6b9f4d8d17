//! The routing table: the validated configuration compiled into what the data plane reads. Only this
//! module reads the configuration model; workers read only a [`RouteTable`], an immutable snapshot
//! swapped whole on reload.

pub mod acl;
pub mod convert;
pub mod eval;
#[cfg(test)]
mod eval_tests;
pub mod fetch;
pub mod sample;

use crate::config::model::{Config, Mode, ProxyKind};

/// A frontend as the workers see it.
#[derive(Debug)]
pub struct Frontend {
    pub name: String,
    pub mode: Mode,
    /// Index into [`RouteTable::backends`] of the default backend.
    pub default_backend: Option<usize>,
}

/// A backend as the workers see it.
#[derive(Debug)]
pub struct Backend {
    pub name: String,
    pub mode: Mode,
    pub servers: Vec<String>,
}

/// The compiled, immutable routing table.
#[derive(Debug, Default)]
pub struct RouteTable {
    pub frontends: Vec<Frontend>,
    pub backends: Vec<Backend>,
}

impl RouteTable {
    /// Compiles a validated configuration. Validation has already checked every reference, so a
    /// missing name here is a bug, reported as an error rather than a panic.
    pub fn compile(cfg: &Config) -> Result<RouteTable, String> {
        let mut backends = Vec::new();
        let mut index = std::collections::HashMap::new();
        for p in cfg.proxies.iter().filter(|p| p.kind.has_backend()) {
            index.insert(p.name.as_str(), backends.len());
            backends.push(Backend { name: p.name.clone(), mode: p.mode, servers: p.servers.iter().map(|s| s.name.clone()).collect() });
        }
        let mut frontends = Vec::new();
        for p in cfg.proxies.iter().filter(|p| p.kind.has_frontend()) {
            let default_backend = match (&p.default_backend, p.kind) {
                (_, ProxyKind::Listen) => index.get(p.name.as_str()).copied(),
                (Some(n), _) => Some(*index.get(n.name.as_str()).ok_or_else(|| format!("backend '{}' vanished during compilation", n.name))?),
                (None, _) => None,
            };
            frontends.push(Frontend { name: p.name.clone(), mode: p.mode, default_backend });
        }
        Ok(RouteTable { frontends, backends })
    }
}
