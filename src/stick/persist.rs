//! Stickiness: `stick on|match|store-request|store-response` with the `server_id` data type.
//!
//! Before balancing, the `stick on` and `stick match` rules whose condition holds are tried in
//! order: the first key found with a stored server that is usable (up, not in maintenance) sends
//! the stream there, as cookie persistence does. Once the server is known, `stick on` and `stick
//! store-request` store its id under their key; `stick store-response` stores it under a key
//! taken from the response. A backend without stick rules costs one branch.

use std::sync::Arc;

use super::config::StickKind;
use super::table::{Dt, Table, Tables};
use crate::balance::AdminState;
use crate::config::model::Proxy;
use crate::route::eval::{CompiledCond, CompiledSample, StreamCtx, Tri};

#[derive(Debug)]
struct Rule {
    kind: StickKind,
    expr: CompiledSample,
    table: Arc<Table>,
    cond: Option<CompiledCond>,
}

impl Rule {
    fn applies(&self, ctx: &dyn StreamCtx) -> bool {
        self.cond.as_ref().is_none_or(|c| c.eval(ctx) == Tri::Yes)
    }

    fn key(&self, ctx: &dyn StreamCtx) -> Option<super::table::Key> {
        self.expr.eval_ref(ctx).ok().flatten().and_then(|s| self.table.key_of(&s))
    }
}

/// The table keys of a stream's store rules (rule index, key), from `Persistence::keys`.
#[derive(Debug, Default)]
pub struct StoreKeys(Vec<(usize, super::table::Key)>);

/// A backend's stick rules, in configuration order.
#[derive(Debug)]
pub struct Persistence {
    rules: Vec<Rule>,
}

impl Persistence {
    /// `None` when the proxy has no stick rule.
    pub fn compile(p: &Proxy, tables: &Tables) -> Result<Option<Persistence>, String> {
        if p.stick.rules.is_empty() {
            return Ok(None);
        }
        let mut rules = Vec::new();
        for r in &p.stick.rules {
            let name = r.table.as_deref().unwrap_or(&p.name);
            let table = tables.get(name).ok_or_else(|| format!("{}: no stick-table named '{name}'", r.span))?.clone();
            let cond = r.cond.as_ref().map(|c| CompiledCond::compile(c, &p.acls)).transpose()?;
            rules.push(Rule { kind: r.kind, expr: CompiledSample::compile(&r.expr)?, table, cond });
        }
        Ok(Some(Persistence { rules }))
    }

    /// The server (index into `servers`) a `stick on|match` rule finds for the request.
    pub fn matched(&self, ctx: &dyn StreamCtx, servers: &crate::balance::ServerList) -> Option<usize> {
        for r in self.rules.iter().filter(|r| matches!(r.kind, StickKind::On | StickKind::Match)) {
            if !r.applies(ctx) {
                continue;
            }
            let Some(e) = r.key(ctx).and_then(|k| r.table.lookup(&k)) else { continue };
            let Some(id) = r.table.server_id(&e) else { continue };
            // Slot indices, not positions among the live servers: a deleted server leaves its slot.
            if let Some((i, _)) = servers.indexed().find(|(_, s)| u64::from(s.id) == id && s.is_up() && s.admin() != AdminState::Maint) {
                return Some(i);
            }
        }
        None
    }

    /// Stores the server of the request under the keys of `stick on` and `stick store-request`
    /// (`response` false) or of `stick store-response` (`response` true).
    pub fn store(&self, ctx: &dyn StreamCtx, server_id: u32, response: bool) {
        for (i, k) in self.store_rules(ctx, response) {
            Self::store_one(&self.rules[i], k, server_id);
        }
    }

    /// The keys `store` would store a server under, taken while the request (or response) is
    /// at hand, so that the server finally used (after a retry went elsewhere) can be stored
    /// under them later with `store_keys`.
    pub fn keys(&self, ctx: &dyn StreamCtx, response: bool) -> StoreKeys {
        StoreKeys(self.store_rules(ctx, response).collect())
    }

    /// Stores `server_id` under keys taken by `keys`; a later call overwrites an earlier one.
    pub fn store_keys(&self, keys: &StoreKeys, server_id: u32) {
        for (i, k) in &keys.0 {
            Self::store_one(&self.rules[*i], k.clone(), server_id);
        }
    }

    /// The store rules of the request (`response` false) or response whose condition holds, by
    /// index, with their key when the expression gives one.
    fn store_rules<'a>(&'a self, ctx: &'a dyn StreamCtx, response: bool) -> impl Iterator<Item = (usize, super::table::Key)> + 'a {
        self.rules
            .iter()
            .enumerate()
            .filter(move |(_, r)| if response { r.kind == StickKind::StoreResponse } else { matches!(r.kind, StickKind::On | StickKind::StoreRequest) })
            .filter(move |(_, r)| r.applies(ctx))
            .filter_map(move |(i, r)| r.key(ctx).map(|k| (i, k)))
    }

    fn store_one(r: &Rule, k: super::table::Key, server_id: u32) {
        if let Some(e) = r.table.get_or_create(k) {
            r.table.set(&e, Dt::ServerId, 0, u64::from(server_id));
        }
    }

    pub fn stores_on_response(&self) -> bool {
        self.rules.iter().any(|r| r.kind == StickKind::StoreResponse)
    }
}
