//! `balance static-rr`: weighted round robin over the configured weights. The stats socket may
//! only set a server's weight to 0 (out) or back (in); the schedule keeps the configured shares.

use super::list::ServerList;
use super::roundrobin::RoundRobin;
use super::schedule::WeightSource;
use super::state::{Algorithm, PickKey, ServerState};

#[derive(Debug)]
pub struct StaticRr {
    rr: RoundRobin,
}

impl StaticRr {
    pub fn new() -> StaticRr {
        StaticRr { rr: RoundRobin::with_weights(WeightSource::Initial) }
    }
}

impl Default for StaticRr {
    fn default() -> StaticRr {
        StaticRr::new()
    }
}

impl Algorithm for StaticRr {
    fn pick(&self, servers: &ServerList, eligible: &dyn Fn(usize, &ServerState) -> bool, key: &PickKey) -> Option<usize> {
        self.rr.pick(servers, eligible, key)
    }

    fn rebuild(&self, servers: &ServerList) {
        self.rr.rebuild(servers);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::testing::{counts_of, weighted};
    use std::sync::atomic::Ordering;

    fn picks(a: &StaticRr, s: &ServerList, n: usize) -> Vec<usize> {
        (0..n).map(|_| a.pick(s, &|_, _| true, &PickKey::default()).unwrap()).collect()
    }

    #[test]
    fn shares_are_exact_over_whole_cycles() {
        let s = weighted(&[1, 2, 3]);
        let a = StaticRr::new();
        a.rebuild(&s);
        assert_eq!(counts_of(&picks(&a, &s, 600), 3), vec![100, 200, 300]);
    }

    #[test]
    fn run_time_weight_changes_keep_configured_shares() {
        let s = weighted(&[1, 3]);
        let a = StaticRr::new();
        a.rebuild(&s);
        s[0].weight.store(100, Ordering::Relaxed);
        a.rebuild(&s);
        assert_eq!(counts_of(&picks(&a, &s, 400), 2), vec![100, 300]);
    }

    #[test]
    fn weight_zero_takes_a_server_out() {
        let s = weighted(&[1, 3]);
        let a = StaticRr::new();
        a.rebuild(&s);
        s[1].weight.store(0, Ordering::Relaxed);
        assert_eq!(counts_of(&picks(&a, &s, 40), 2), vec![40, 0]);
    }
}
