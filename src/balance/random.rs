//! `balance random[(draws)]`: draws `draws` servers at random, each in proportion to its
//! weight, and keeps the least loaded of them ("power of two choices" with the default 2).

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use super::leastconn::cmp_load;
use super::list::ServerList;
use super::schedule::{GroupTables, Snapshot, WeightSource, scan_from};
use super::state::{Algorithm, PickKey, ServerState};

/// Draws beyond this many add cost and no spread: with 64 draws the least loaded server is
/// found almost surely in any backend of usual size.
const MAX_DRAWS: u32 = 64;

#[derive(Debug)]
pub struct Random {
    draws: u32,
    /// Drawing a uniform slot of a weighted table draws a server in proportion to its weight.
    table: Snapshot<GroupTables>,
}

impl Random {
    pub fn new(draws: u32) -> Random {
        Random { draws: draws.clamp(1, MAX_DRAWS), table: Snapshot::new(WeightSource::Current, GroupTables::build) }
    }
}

impl Algorithm for Random {
    fn pick(&self, servers: &ServerList, eligible: &dyn Fn(usize, &ServerState) -> bool, _key: &PickKey) -> Option<usize> {
        let built = self.table.load(servers);
        for table in built.value.groups() {
            if table.is_empty() {
                continue;
            }
            let mut best: Option<usize> = None;
            for _ in 0..self.draws {
                // Nothing pickable from one slot means nothing pickable in this group.
                let Some(i) = table.walk(next_random() as usize, servers, eligible) else { break };
                if best.is_none_or(|b| cmp_load(&servers[i], &servers[b]).is_lt()) {
                    best = Some(i);
                }
            }
            if let Some(i) = best {
                self.table.confirm(&built, servers, i);
                return Some(i);
            }
        }
        scan_from(next_random() as usize, servers, eligible)
    }

    fn rebuild(&self, servers: &ServerList) {
        self.table.rebuild(servers);
    }
}

thread_local! {
    /// Per-thread state, so workers never contend on it; seeded from the standard library's
    /// per-process random keys. Never 0, which xorshift cannot leave.
    static STATE: Cell<u64> = Cell::new(RandomState::new().hash_one(std::thread::current().id()) | 1);
}

/// Marsaglia's xorshift64 step with the `*` output multiplier (xorshift64*): fast and plenty
/// for spreading load, not for anything secret.
pub(crate) fn next_random() -> u64 {
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::testing::{counts_of, servers, weighted};
    use std::sync::atomic::Ordering;

    #[test]
    fn single_draw_follows_weights() {
        let s = weighted(&[1, 3]);
        let r = Random::new(1);
        r.rebuild(&s);
        let p: Vec<usize> = (0..4000).map(|_| r.pick(&s, &|_, _| true, &PickKey::default()).unwrap()).collect();
        let c = counts_of(&p, 2);
        assert!((800..1200).contains(&c[0]), "{c:?}");
    }

    #[test]
    fn two_draws_prefer_the_less_loaded() {
        let s = servers(2);
        s[0].cur_conns.store(50, Ordering::Relaxed);
        let r = Random::new(2);
        r.rebuild(&s);
        let p: Vec<usize> = (0..1000).map(|_| r.pick(&s, &|_, _| true, &PickKey::default()).unwrap()).collect();
        // Server 0 wins only when both draws land on it: about a quarter of the time.
        let c = counts_of(&p, 2);
        assert!((150..350).contains(&c[0]), "{c:?}");
    }

    #[test]
    fn ineligible_servers_are_never_drawn() {
        let s = servers(4);
        let r = Random::new(2);
        r.rebuild(&s);
        assert!((0..200).all(|_| r.pick(&s, &|i, _| i == 2, &PickKey::default()) == Some(2)));
    }

    #[test]
    fn nothing_eligible_picks_nothing() {
        let s = servers(3);
        let r = Random::new(3);
        r.rebuild(&s);
        assert_eq!(r.pick(&s, &|_, _| false, &PickKey::default()), None);
        assert_eq!(Random::new(0).pick(&ServerList::new(), &|_, _| true, &PickKey::default()), None);
    }

    #[test]
    fn generator_does_not_repeat_quickly() {
        let v: std::collections::HashSet<u64> = (0..1000).map(|_| next_random()).collect();
        assert_eq!(v.len(), 1000);
    }
}
