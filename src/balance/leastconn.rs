//! `balance leastconn`: the server with the fewest connections for its weight. Servers that tie
//! share the load in turn, so an idle backend is still round-robined.
//!
//! A pick scans every server's connection count (one atomic load each): no tree to keep in
//! order as counts move, which suits the tens of servers a backend usually has.

use std::cmp::Ordering as CmpOrdering;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::list::ServerList;
use super::schedule::pickable;
use super::state::{Algorithm, PickKey, ServerState};

/// Compares the load servers `a` and `b` would carry after one more connection, relative to
/// their weights: `(conns + 1) / weight`, compared exactly by cross-multiplying. Counting the
/// new connection makes a heavier server win over a lighter one at equal counts, idle included.
pub(crate) fn cmp_load(a: &ServerState, b: &ServerState) -> CmpOrdering {
    let load = |s: &ServerState, other: &ServerState| (u64::from(s.cur_conns.load(Ordering::Relaxed)) + 1) * u64::from(other.weight().max(1));
    load(a, b).cmp(&load(b, a))
}

#[derive(Debug, Default)]
pub struct LeastConn {
    /// Where the next scan starts, so ties go round.
    next: AtomicUsize,
}

impl LeastConn {
    pub fn new() -> LeastConn {
        LeastConn::default()
    }
}

impl Algorithm for LeastConn {
    fn pick(&self, servers: &ServerList, eligible: &dyn Fn(usize, &ServerState) -> bool, _key: &PickKey) -> Option<usize> {
        let n = servers.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let mut best: Option<usize> = None;
        for i in (0..n).map(|off| (start + off) % n) {
            if !pickable(servers, eligible, i) {
                continue;
            }
            if best.is_none_or(|b| cmp_load(&servers[i], &servers[b]) == CmpOrdering::Less) {
                best = Some(i);
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::testing::{counts_of, servers, weighted};

    fn pick(a: &LeastConn, s: &ServerList) -> usize {
        a.pick(s, &|_, _| true, &PickKey::default()).unwrap()
    }

    #[test]
    fn picks_the_server_with_fewest_connections() {
        let s = servers(3);
        s[0].cur_conns.store(5, Ordering::Relaxed);
        s[1].cur_conns.store(2, Ordering::Relaxed);
        s[2].cur_conns.store(7, Ordering::Relaxed);
        assert_eq!(pick(&LeastConn::new(), &s), 1);
    }

    #[test]
    fn counts_are_relative_to_weight() {
        let s = weighted(&[1, 4]);
        s[0].cur_conns.store(2, Ordering::Relaxed);
        s[1].cur_conns.store(6, Ordering::Relaxed);
        // 3/1 against 7/4.
        assert_eq!(pick(&LeastConn::new(), &s), 1);
    }

    #[test]
    fn equal_servers_share_in_turn() {
        let s = servers(3);
        let a = LeastConn::new();
        let p: Vec<usize> = (0..30).map(|_| pick(&a, &s)).collect();
        assert_eq!(counts_of(&p, 3), vec![10, 10, 10]);
    }

    #[test]
    fn held_connections_fill_servers_by_weight() {
        let s = weighted(&[1, 3]);
        let a = LeastConn::new();
        for _ in 0..40 {
            let i = pick(&a, &s);
            s[i].cur_conns.fetch_add(1, Ordering::Relaxed);
        }
        assert_eq!((s[0].cur_conns.load(Ordering::Relaxed), s[1].cur_conns.load(Ordering::Relaxed)), (10, 30));
    }

    #[test]
    fn ineligible_least_loaded_server_is_passed_over() {
        let s = servers(2);
        s[1].cur_conns.store(9, Ordering::Relaxed);
        assert_eq!(LeastConn::new().pick(&s, &|i, _| i != 0, &PickKey::default()), Some(1));
    }

    #[test]
    fn empty_or_zero_weight_backends_pick_nothing() {
        assert_eq!(LeastConn::new().pick(&ServerList::new(), &|_, _| true, &PickKey::default()), None);
        assert_eq!(LeastConn::new().pick(&weighted(&[0, 0]), &|_, _| true, &PickKey::default()), None);
    }
}
