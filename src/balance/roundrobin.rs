//! `balance roundrobin`: smooth weighted round robin with weights that may change at run time.
//!
//! Every worker shares one schedule per group (active, backup), an evenly spread table of
//! sum(weights) slots, and one counter per group: pick `n` takes slot `n mod len`, so over any
//! `len` consecutive picks, whichever thread makes them, each server gets exactly its share. When
//! the scheduled server may not take this pick (full, excluded, down, weight 0) the pick takes
//! the next turns, then walks the schedule to the next server that may.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::list::ServerList;
use super::schedule::{GroupTables, Snapshot, WeightSource, pickable_server, scan_from};
use super::state::{Algorithm, PickKey, ServerState};

/// Turns taken when the scheduled server may not take the pick, before walking the schedule.
/// Taking a fresh turn hands the skipped turn to the whole schedule in proportion to weight,
/// where always walking to the next slot would hand it to whichever server follows.
const FRESH_TURNS: usize = 3;

#[derive(Debug)]
pub struct RoundRobin {
    schedule: Snapshot<GroupTables>,
    /// Picks made from the active and from the backup schedule.
    counters: [AtomicUsize; 2],
}

impl RoundRobin {
    pub fn new() -> RoundRobin {
        RoundRobin::with_weights(WeightSource::Current)
    }

    pub(crate) fn with_weights(source: WeightSource) -> RoundRobin {
        RoundRobin { schedule: Snapshot::new(source, GroupTables::build), counters: [AtomicUsize::new(0), AtomicUsize::new(0)] }
    }
}

impl Default for RoundRobin {
    fn default() -> RoundRobin {
        RoundRobin::new()
    }
}

impl Algorithm for RoundRobin {
    fn pick(&self, servers: &ServerList, eligible: &dyn Fn(usize, &ServerState) -> bool, _key: &PickKey) -> Option<usize> {
        let built = self.schedule.load(servers);
        for (group, table) in built.value.groups().into_iter().enumerate() {
            if table.is_empty() {
                continue;
            }
            let mut n = 0;
            for _ in 0..FRESH_TURNS {
                n = self.counters[group].fetch_add(1, Ordering::Relaxed);
                let i = table.slots[n % table.slots.len()];
                if let Some(s) = pickable_server(servers, eligible, i) {
                    self.schedule.confirm_server(&built, servers, i, s);
                    return Some(i);
                }
            }
            if let Some(i) = table.walk(n, servers, eligible) {
                self.schedule.confirm(&built, servers, i);
                return Some(i);
            }
        }
        // Only a server the schedule does not know yet may take it (a change not rebuilt yet).
        scan_from(self.counters[0].fetch_add(1, Ordering::Relaxed), servers, eligible)
    }

    fn rebuild(&self, servers: &ServerList) {
        self.schedule.rebuild(servers);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::testing::{counts_of, servers, weighted};

    fn picks(rr: &RoundRobin, servers: &ServerList, n: usize) -> Vec<usize> {
        (0..n).map(|_| rr.pick(servers, &|_, _| true, &PickKey::default()).unwrap()).collect()
    }

    #[test]
    fn shares_are_exact_over_whole_cycles() {
        let s = weighted(&[1, 2, 3]);
        let rr = RoundRobin::new();
        rr.rebuild(&s);
        assert_eq!(counts_of(&picks(&rr, &s, 600), 3), vec![100, 200, 300]);
    }

    #[test]
    fn shares_are_exact_with_two_threads_picking() {
        let s = weighted(&[1, 2, 3]);
        let rr = RoundRobin::new();
        rr.rebuild(&s);
        let all: Vec<usize> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..2).map(|_| scope.spawn(|| picks(&rr, &s, 300))).collect();
            handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        let c = counts_of(&all, 3);
        for (got, want) in c.iter().zip([100, 200, 300]) {
            assert!(got.abs_diff(want) <= 1, "{c:?}");
        }
    }

    #[test]
    fn picks_are_spread_not_bursty() {
        let s = weighted(&[1, 1, 4]);
        let rr = RoundRobin::new();
        rr.rebuild(&s);
        let p = picks(&rr, &s, 60);
        assert!(!p.windows(3).any(|w| w.iter().all(|&i| i == 2)), "{p:?}");
    }

    #[test]
    fn weight_change_applies_without_rebuild() {
        let s = weighted(&[1, 1]);
        let rr = RoundRobin::new();
        rr.rebuild(&s);
        s[1].weight.store(3, Ordering::Relaxed);
        // Within one staleness check the new schedule is in use; then shares follow 1:3.
        picks(&rr, &s, crate::balance::schedule::CHECK_EVERY);
        assert_eq!(counts_of(&picks(&rr, &s, 400), 2), vec![100, 300]);
    }

    #[test]
    fn zero_weight_server_is_skipped_at_once() {
        let s = weighted(&[1, 1, 1]);
        let rr = RoundRobin::new();
        rr.rebuild(&s);
        s[0].weight.store(0, Ordering::Relaxed);
        assert!(!picks(&rr, &s, 30).contains(&0));
    }

    #[test]
    fn server_raised_from_zero_weight_gets_traffic_without_rebuild() {
        let s = weighted(&[0, 1]);
        let rr = RoundRobin::new();
        rr.rebuild(&s);
        s[0].weight.store(1, Ordering::Relaxed);
        assert!(picks(&rr, &s, 2 * crate::balance::schedule::CHECK_EVERY).contains(&0));
    }

    #[test]
    fn ineligible_server_passes_its_turn() {
        let s = weighted(&[1, 1, 1]);
        let rr = RoundRobin::new();
        rr.rebuild(&s);
        let p: Vec<usize> = (0..30).map(|_| rr.pick(&s, &|i, _| i != 1, &PickKey::default()).unwrap()).collect();
        assert_eq!(counts_of(&p, 3), vec![15, 0, 15]);
    }

    #[test]
    fn nothing_eligible_picks_nothing() {
        let s = weighted(&[1, 2]);
        let rr = RoundRobin::new();
        rr.rebuild(&s);
        assert_eq!(rr.pick(&s, &|_, _| false, &PickKey::default()), None);
    }

    #[test]
    fn empty_and_all_zero_backends_pick_nothing() {
        let rr = RoundRobin::new();
        rr.rebuild(&ServerList::new());
        assert_eq!(rr.pick(&ServerList::new(), &|_, _| true, &PickKey::default()), None);
        let s = weighted(&[0, 0]);
        rr.rebuild(&s);
        assert_eq!(rr.pick(&s, &|_, _| true, &PickKey::default()), None);
    }

    #[test]
    fn works_before_the_first_rebuild() {
        let s = servers(3);
        let rr = RoundRobin::new();
        let p = picks(&rr, &s, 9);
        assert_eq!(counts_of(&p, 3), vec![3, 3, 3]);
    }
}
