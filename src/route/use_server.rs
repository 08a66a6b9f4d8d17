//! `use-server <server> [if|unless <cond>]`: a backend's rules that send a stream to a named
//! server without balancing, as HAProxy's server rules do.
//!
//! They are tried after cookie persistence (a cookie that named a usable server wins) and before
//! `stick match`, in configuration order. The first rule whose condition holds and whose server
//! is usable sends the stream there; a server that is down or in maintenance is usable only with
//! `option persist`, and otherwise the next rule is tried, then stickiness and balancing. The
//! server's `maxconn` and queue apply as for a cookie.

use crate::balance::ServerList;
use crate::config::model::Proxy;
use crate::route::eval::{CompiledCond, StreamCtx, Tri};

/// A backend's `use-server` rules, servers resolved to their slots.
#[derive(Debug)]
pub struct UseServers {
    rules: Vec<(String, Option<CompiledCond>)>,
    /// `option persist`: a down server or one in maintenance is still used.
    persist: bool,
}

impl UseServers {
    /// `None` when the proxy has no `use-server` rule. (The names were checked against the
    /// servers when the configuration was read.)
    pub fn compile(p: &Proxy) -> Result<Option<UseServers>, String> {
        if p.use_servers.is_empty() {
            return Ok(None);
        }
        let rules = p
            .use_servers
            .iter()
            .map(|u| Ok((u.server.clone(), u.cond.as_ref().map(|c| CompiledCond::compile(c, &p.acls)).transpose()?)))
            .collect::<Result<_, String>>()?;
        Ok(Some(UseServers { rules, persist: p.options.persist.unwrap_or(false) }))
    }

    /// The server slot the first applicable rule names, if usable.
    pub fn chosen(&self, ctx: &dyn StreamCtx, servers: &ServerList) -> Option<usize> {
        for (name, cond) in &self.rules {
            if cond.as_ref().is_some_and(|c| c.eval(ctx) != Tri::Yes) {
                continue;
            }
            // By name, so a server added or deleted at run time is found where it is now.
            if let Some((i, _)) = servers.indexed().find(|(_, s)| s.name == *name && s.takes_named(self.persist)) {
                return Some(i);
            }
        }
        None
    }
}
