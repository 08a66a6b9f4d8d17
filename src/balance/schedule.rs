//! What several algorithms share: the test for a server that may take this pick, the evenly
//! spread weighted table (round robin's schedule, map-based hashing's map, random's draw
//! table), and the snapshot that rebuilds such a table when weights or states change.
//!
//! Active and backup servers get separate tables: the backend's eligibility check hands traffic
//! to one group at a time, and a shared table would skew the shares of the active servers each
//! time a backup slot is skipped.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arc_swap::{ArcSwap, Guard};

use super::list::ServerList;
use super::state::ServerState;

/// Server `i` may take this pick: it exists, the backend's check accepts it, and its current
/// weight is not 0 (a weight set to 0 by the stats socket counts before any rebuild).
pub(crate) fn pickable(servers: &ServerList, eligible: &dyn Fn(usize, &ServerState) -> bool, i: usize) -> bool {
    pickable_server(servers, eligible, i).is_some()
}

/// [`pickable`], returning the server (for the caller to use without looking it up again).
#[inline]
pub(crate) fn pickable_server<'a>(servers: &'a ServerList, eligible: &dyn Fn(usize, &ServerState) -> bool, i: usize) -> Option<&'a ServerState> {
    servers.get(i).map(|s| &**s).filter(|s| s.weight() > 0 && eligible(i, s))
}

/// The first pickable server of `candidates`, a walk over a table or a ring in which each of
/// `members` distinct servers may appear many times. Stops once every member was found not
/// pickable, so a walk over a large table of full servers costs one check per server, not per
/// slot; the bookkeeping is only allocated when the first candidate is refused.
pub(crate) fn first_pickable(
    candidates: impl Iterator<Item = usize>,
    members: usize,
    servers: &ServerList,
    eligible: &dyn Fn(usize, &ServerState) -> bool,
) -> Option<usize> {
    let mut refused: Vec<bool> = Vec::new();
    let mut refused_count = 0;
    for i in candidates {
        if refused.get(i).copied().unwrap_or(false) {
            continue;
        }
        if pickable(servers, eligible, i) {
            return Some(i);
        }
        if refused.is_empty() {
            refused = vec![false; servers.len().max(i + 1)];
        }
        if let Some(slot) = refused.get_mut(i) {
            *slot = true;
        }
        refused_count += 1;
        if refused_count >= members {
            return None;
        }
    }
    None
}

/// The first pickable server scanning every server once, from `start`: the last resort of every
/// algorithm, so that a pick succeeds whenever some server may take it, even with a stale table.
pub(crate) fn scan_from(start: usize, servers: &ServerList, eligible: &dyn Fn(usize, &ServerState) -> bool) -> Option<usize> {
    let n = servers.len();
    (0..n).map(|off| (start + off) % n).find(|&i| pickable(servers, eligible, i))
}

/// Which weight a table is built from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WeightSource {
    /// The current weight, which the stats socket may change (`roundrobin`, hashing, `random`).
    Current,
    /// The configured weight (`static-rr`); a server set to weight 0 still stops taking traffic.
    Initial,
}

impl WeightSource {
    /// The weight server `s` has in a table built now: 0 when it may not take traffic.
    pub(crate) fn effective(self, s: &ServerState) -> u32 {
        if !s.usable() {
            return 0;
        }
        match self {
            WeightSource::Current => s.weight(),
            WeightSource::Initial => s.initial_weight,
        }
    }
}

/// Server indices, each appearing in proportion to its weight and spread evenly: over any run
/// of `len()` consecutive slots each server appears exactly its weight's share.
#[derive(Debug, Default)]
pub(crate) struct WeightTable {
    pub(crate) slots: Vec<usize>,
    /// Distinct servers in `slots`.
    pub(crate) members: usize,
}

impl WeightTable {
    /// Builds the table of `(server index, weight)`. Weights are first divided by their greatest
    /// common divisor (weights 10/20/30 make the same 6-slot table as 1/2/3). Server `i`'s `k`-th
    /// slot sits in the cycle at `(k + phase_i) / w_i`, and sorting every slot by position
    /// interleaves the servers (stride scheduling). The `m` servers of one weight take the
    /// phases `(j + 1/2) / m`, so equal servers alternate and the light ones fill different
    /// gaps of the heavy ones instead of all landing in the same one.
    pub(crate) fn build(weights: &[(usize, u32)]) -> WeightTable {
        let weights: Vec<(usize, u32)> = weights.iter().copied().filter(|&(_, w)| w > 0).collect();
        let g = weights.iter().fold(0, |g, &(_, w)| gcd(g, w)).max(1);
        let mut same_weight: HashMap<u32, (u64, u64)> = HashMap::new();
        for &(_, w) in &weights {
            same_weight.entry(w / g).or_default().1 += 1;
        }
        // (numerator, denominator, server) of each slot's position.
        let mut slots: Vec<(u128, u128, usize)> = Vec::new();
        for &(i, w) in &weights {
            let w = w / g;
            let (j, m) = {
                let e = same_weight.entry(w).or_default();
                e.0 += 1;
                (e.0 - 1, e.1)
            };
            let (w, j, m) = (u128::from(w), u128::from(j), u128::from(m));
            // (k + (2j+1)/2m) / w = (2mk + 2j + 1) / 2mw
            slots.extend((0..w).map(|k| (2 * m * k + 2 * j + 1, 2 * m * w, i)));
        }
        // Ordered by cross-multiplication: exact, no floating point.
        slots.sort_by(|a, b| (a.0 * b.1).cmp(&(b.0 * a.1)).then(a.2.cmp(&b.2)));
        WeightTable { slots: slots.into_iter().map(|(_, _, i)| i).collect(), members: weights.len() }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The first pickable server from slot `start` on, walking the table at most once around.
    pub(crate) fn walk(&self, start: usize, servers: &ServerList, eligible: &dyn Fn(usize, &ServerState) -> bool) -> Option<usize> {
        let len = self.slots.len();
        if len == 0 {
            return None;
        }
        let start = start % len;
        first_pickable((0..len).map(|off| self.slots[(start + off) % len]), self.members, servers, eligible)
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The active and backup tables of a backend.
#[derive(Debug, Default)]
pub(crate) struct GroupTables {
    pub(crate) active: WeightTable,
    pub(crate) backup: WeightTable,
}

impl GroupTables {
    pub(crate) fn build(servers: &ServerList, weights: &[u32]) -> GroupTables {
        let group = |backup: bool| -> Vec<(usize, u32)> {
            servers.slots().zip(weights).enumerate().filter(|(_, (s, _))| s.backup == backup).map(|(i, (_, &w))| (i, w)).collect()
        };
        GroupTables { active: WeightTable::build(&group(false)), backup: WeightTable::build(&group(true)) }
    }

    /// The active table first, then the backup one: the backend's check decides which group
    /// may take traffic, and an all-refused active walk falls through to the backups.
    pub(crate) fn groups(&self) -> [&WeightTable; 2] {
        [&self.active, &self.backup]
    }
}

/// Something built from the servers' effective weights, with those weights kept to notice when
/// it went stale.
#[derive(Debug)]
pub(crate) struct Built<T> {
    pub(crate) weights: Vec<u32>,
    pub(crate) value: T,
}

/// A table or ring every worker reads without locking and `rebuild` replaces whole. It also
/// rebuilds itself when it notices a change nobody announced (a weight written by the stats
/// socket without a rebuild): at once when the server a pick landed on changed, and otherwise
/// at most [`CHECK_EVERY`] picks later.
#[derive(Debug)]
pub(crate) struct Snapshot<T> {
    current: ArcSwap<Built<T>>,
    source: WeightSource,
    build: fn(&ServerList, &[u32]) -> T,
    ticks: AtomicUsize,
}

/// Picks between two full staleness checks (each costs one load per server).
pub(crate) const CHECK_EVERY: usize = 64;

impl<T> Snapshot<T> {
    pub(crate) fn new(source: WeightSource, build: fn(&ServerList, &[u32]) -> T) -> Snapshot<T> {
        Snapshot {
            current: ArcSwap::from_pointee(Built { weights: Vec::new(), value: build(&ServerList::new(), &[]) }),
            source,
            build,
            ticks: AtomicUsize::new(0),
        }
    }

    pub(crate) fn rebuild(&self, servers: &ServerList) {
        let weights: Vec<u32> = servers.slots().map(|s| self.source.effective(s)).collect();
        let value = (self.build)(servers, &weights);
        self.current.store(Arc::new(Built { weights, value }));
    }

    /// The current table, rebuilt first when the periodic check finds it stale.
    pub(crate) fn load(&self, servers: &ServerList) -> Guard<Arc<Built<T>>> {
        let built = self.current.load();
        if self.ticks.fetch_add(1, Ordering::Relaxed).is_multiple_of(CHECK_EVERY) && self.is_stale(&built, servers) {
            self.rebuild(servers);
            return self.current.load();
        }
        built
    }

    /// Rebuilds when server `i`, just picked from `built`, no longer has the weight it was built
    /// with; the pick stands, the next ones see the new table.
    pub(crate) fn confirm(&self, built: &Built<T>, servers: &ServerList, i: usize) {
        match servers.get(i) {
            Some(s) => self.confirm_server(built, servers, i, s),
            None if built.weights.get(i).is_some() => self.rebuild(servers),
            None => {}
        }
    }

    /// [`Self::confirm`] for server `s`, slot `i`, already looked up.
    #[inline]
    pub(crate) fn confirm_server(&self, built: &Built<T>, servers: &ServerList, i: usize, s: &ServerState) {
        if built.weights.get(i).copied() != Some(self.source.effective(s)) {
            self.rebuild(servers);
        }
    }

    fn is_stale(&self, built: &Built<T>, servers: &ServerList) -> bool {
        built.weights.len() != servers.len() || servers.slots().zip(&built.weights).any(|(s, &w)| self.source.effective(s) != w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(t: &WeightTable, n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for &i in &t.slots {
            c[i] += 1;
        }
        c
    }

    #[test]
    fn table_gives_each_server_its_weight() {
        let t = WeightTable::build(&[(0, 1), (1, 2), (2, 3)]);
        assert_eq!(counts(&t, 3), vec![1, 2, 3]);
        assert_eq!(t.members, 3);
    }

    #[test]
    fn table_is_reduced_by_common_divisor() {
        let t = WeightTable::build(&[(0, 10), (1, 20), (2, 30)]);
        assert_eq!(counts(&t, 3), vec![1, 2, 3]);
    }

    #[test]
    fn table_spreads_a_heavy_server_evenly() {
        // Weight 3 against two of weight 1: never three heavy slots in a row, even across the wrap.
        let t = WeightTable::build(&[(0, 3), (1, 1), (2, 1)]);
        let doubled: Vec<usize> = t.slots.iter().chain(&t.slots).copied().collect();
        assert!(!doubled.windows(3).any(|w| w.iter().all(|&i| i == 0)), "{:?}", t.slots);
    }

    #[test]
    fn equal_light_servers_fill_different_gaps() {
        // 1/1/4: the heavy server never runs three in a row, even across the wrap.
        let t = WeightTable::build(&[(0, 1), (1, 1), (2, 4)]);
        let doubled: Vec<usize> = t.slots.iter().chain(&t.slots).copied().collect();
        assert!(!doubled.windows(3).any(|w| w.iter().all(|&i| i == 2)), "{:?}", t.slots);
    }

    #[test]
    fn equal_weights_alternate() {
        let t = WeightTable::build(&[(0, 2), (1, 2), (2, 2)]);
        assert_eq!(t.slots, vec![0, 1, 2]);
    }

    #[test]
    fn table_skips_zero_weights() {
        let t = WeightTable::build(&[(0, 0), (1, 5)]);
        assert_eq!(t.slots, vec![1]);
        assert_eq!(t.members, 1);
    }

    #[test]
    fn empty_table_walks_to_nothing() {
        let t = WeightTable::build(&[]);
        assert!(t.is_empty());
        assert_eq!(t.walk(7, &ServerList::new(), &|_, _| true), None);
    }
}
