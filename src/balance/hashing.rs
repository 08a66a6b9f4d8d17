//! Hash-based selection (`balance hash`, `uri`, `url_param`, `hdr`, `rdp-cookie`, and `source`
//! through [`Source`](super::source::Source)): the caller hashes the sample into
//! [`PickKey::hash`] with [`hash_bytes`](super::hash::hash_bytes), and the `hash-type` method
//! maps that hash to a server.
//!
//! - `map-based`: slot `hash mod len` of the evenly spread weighted table of the servers that
//!   were usable at the last rebuild. The best spread, but when the set of servers changes the
//!   table length changes and most keys move to another server.
//! - `consistent`: each server owns `weight x POINTS_PER_WEIGHT` points on a 32-bit ring, placed
//!   by hashing its id and the point number (so they do not depend on the other servers), and a
//!   key goes to the owner of the first point at or after its hash. Adding or removing a server
//!   only moves the keys that fall on or leave its points.
//!
//! When the server a key maps to may not take the pick (full, excluded, down before a rebuild),
//! the key walks on to the next slot or point whose server may: the same key always walks the
//! same way, and the other servers' keys do not move. Without a hash (the sample is absent), the
//! pick is round robin.
//!
//! `hash-balance-factor <f>` bounds the load on a consistent ring, as HAProxy does: with `n`
//! streams in progress on the backend's usable servers, a server of weight `w` (of `W` in all)
//! takes a new one only while it serves fewer than `ceil((n + 1) x f / 100 x w / W)` (at least
//! 1); otherwise the key walks on along the ring. A popular key then spills over to the next
//! servers of its walk instead of overloading one.

use super::config::HashMethod;
use super::hash::fold32;
use super::list::ServerList;
use super::roundrobin::RoundRobin;
use super::schedule::{GroupTables, Snapshot, WeightSource, first_pickable};
use super::state::{Algorithm, PickKey, ServerState};

/// Ring points per unit of weight: enough that each server's share of the ring stays within a
/// few percent of its weight's share.
pub const POINTS_PER_WEIGHT: u32 = 40;

/// Ring size beyond which points per weight are scaled down (about 8 MiB per ring).
const MAX_RING_POINTS: u64 = 1 << 20;

#[derive(Debug)]
enum HashTables {
    Map(GroupTables),
    /// Active and backup rings.
    Ring([Ring; 2]),
}

#[derive(Debug, Default)]
struct Ring {
    /// (point, server index), sorted.
    points: Vec<(u32, u32)>,
    /// Distinct servers on the ring.
    members: usize,
}

impl Ring {
    fn build(servers: &ServerList, weights: &[u32], backup: bool) -> Ring {
        let owners: Vec<(usize, u32)> =
            servers.slots().zip(weights).enumerate().filter(|(_, (s, w))| s.backup == backup && **w > 0).map(|(i, (_, &w))| (i, w)).collect();
        let total_weight: u64 = owners.iter().map(|&(_, w)| u64::from(w)).sum();
        let per_weight = u64::from(POINTS_PER_WEIGHT).min(MAX_RING_POINTS / total_weight.max(1)).max(1);
        let mut points = Vec::new();
        for &(i, w) in &owners {
            let id = servers[i].id;
            let Ok(index) = u32::try_from(i) else { continue };
            points.extend((0..u64::from(w) * per_weight).map(|k| (ring_point(id, k), index)));
        }
        points.sort_unstable();
        Ring { points, members: owners.len() }
    }

    fn lookup(&self, h: u32, servers: &ServerList, eligible: &dyn Fn(usize, &ServerState) -> bool) -> Option<usize> {
        let len = self.points.len();
        let start = self.points.partition_point(|&(p, _)| p < h);
        first_pickable((0..len).map(|off| self.points[(start + off) % len].1 as usize), self.members, servers, eligible)
    }
}

/// Where point `k` of the server with id `id` sits: a 64-bit finalizer (the splitmix64 output
/// mix) of the pair, high half kept. Depends only on the server's own id, never on its index or
/// the other servers.
fn ring_point(id: u32, k: u64) -> u32 {
    let mut z = (u64::from(id) << 32) ^ k;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 32) as u32
}

fn build_map(servers: &ServerList, weights: &[u32]) -> HashTables {
    HashTables::Map(GroupTables::build(servers, weights))
}

fn build_ring(servers: &ServerList, weights: &[u32]) -> HashTables {
    HashTables::Ring([Ring::build(servers, weights, false), Ring::build(servers, weights, true)])
}

#[derive(Debug)]
pub struct HashBalancer {
    tables: Snapshot<HashTables>,
    /// For picks without a hash, and a last resort when the tables are stale.
    fallback: RoundRobin,
    /// `hash-balance-factor` on a consistent ring (0: no bound).
    balance_factor: u32,
}

impl HashBalancer {
    pub fn new(method: HashMethod) -> HashBalancer {
        let build = match method {
            HashMethod::MapBased => build_map,
            HashMethod::Consistent => build_ring,
        };
        HashBalancer { tables: Snapshot::new(WeightSource::Current, build), fallback: RoundRobin::new(), balance_factor: 0 }
    }

    /// `hash-balance-factor`: bounded loads on a consistent ring (0 is off; a map-based table
    /// ignores it, as HAProxy does).
    pub fn with_balance_factor(mut self, factor: u32) -> HashBalancer {
        self.balance_factor = factor;
        self
    }

    /// The `hash-balance-factor` bound of each server, given the backend's load now.
    fn bounded<'e>(&self, servers: &ServerList, eligible: &'e dyn Fn(usize, &ServerState) -> bool) -> impl Fn(usize, &ServerState) -> bool + 'e {
        use std::sync::atomic::Ordering::Relaxed;
        let (served, total_weight) =
            servers.slots().filter(|s| s.usable()).fold((0u64, 0u64), |(n, w), s| (n + u64::from(s.cur_conns.load(Relaxed)), w + u64::from(s.weight())));
        let slots = ((served + 1) * u64::from(self.balance_factor)).div_ceil(100);
        move |i, s| {
            let mine = (slots * u64::from(s.weight())).div_ceil(total_weight.max(1)).max(1);
            eligible(i, s) && u64::from(s.cur_conns.load(Relaxed)) < mine
        }
    }

    /// The server for hash `h`, walking on past servers that may not take the pick.
    pub(crate) fn pick_hash(&self, servers: &ServerList, eligible: &dyn Fn(usize, &ServerState) -> bool, h: u64) -> Option<usize> {
        let h = fold32(h);
        let built = self.tables.load(servers);
        let found = match &built.value {
            HashTables::Map(groups) => {
                groups.groups().into_iter().filter(|t| !t.is_empty()).find_map(|t| t.walk(h as usize % t.slots.len(), servers, eligible))
            }
            HashTables::Ring(rings) if self.balance_factor > 0 => {
                let bounded = self.bounded(servers, eligible);
                rings.iter().filter(|r| !r.points.is_empty()).find_map(|r| r.lookup(h, servers, &bounded))
            }
            HashTables::Ring(rings) => rings.iter().filter(|r| !r.points.is_empty()).find_map(|r| r.lookup(h, servers, eligible)),
        };
        match found {
            Some(i) => {
                self.tables.confirm(&built, servers, i);
                Some(i)
            }
            None => self.fallback.pick(servers, eligible, &PickKey::default()),
        }
    }
}

impl Algorithm for HashBalancer {
    fn pick(&self, servers: &ServerList, eligible: &dyn Fn(usize, &ServerState) -> bool, key: &PickKey) -> Option<usize> {
        match key.hash {
            Some(h) => self.pick_hash(servers, eligible, h),
            None => self.fallback.pick(servers, eligible, key),
        }
    }

    fn rebuild(&self, servers: &ServerList) {
        self.tables.rebuild(servers);
        self.fallback.rebuild(servers);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::hash::avalanche;
    use crate::balance::testing::{counts_of, server, servers, weighted};

    fn key(h: u32) -> PickKey {
        PickKey { src: None, hash: Some(u64::from(avalanche(h))) }
    }

    fn assignments(b: &HashBalancer, s: &ServerList, keys: u32) -> Vec<usize> {
        (0..keys).map(|k| b.pick(s, &|i, _| s[i].usable(), &key(k)).unwrap()).collect()
    }

    #[test]
    fn hash_balance_factor_spills_a_loaded_key_to_the_next_server_of_its_walk() {
        let s = servers(4);
        let b = HashBalancer::new(HashMethod::Consistent).with_balance_factor(125);
        b.rebuild(&s);
        let home = b.pick(&s, &|i, _| s[i].usable(), &key(7)).unwrap();
        // Idle backend: every key goes home.
        assert_eq!(b.pick(&s, &|i, _| s[i].usable(), &key(7)), Some(home));
        // Its home serves 3 of the 3 streams in progress: ceil(4 x 1.25 / 4) = 2 slots, full.
        s[home].cur_conns.store(3, std::sync::atomic::Ordering::Relaxed);
        let spill = b.pick(&s, &|i, _| s[i].usable(), &key(7)).unwrap();
        assert_ne!(spill, home);
        // Always the same next server, and without the factor the key stays home.
        assert_eq!(b.pick(&s, &|i, _| s[i].usable(), &key(7)), Some(spill));
        let plain = HashBalancer::new(HashMethod::Consistent);
        plain.rebuild(&s);
        assert_eq!(plain.pick(&s, &|i, _| s[i].usable(), &key(7)), Some(home));
    }

    #[test]
    fn same_hash_same_server() {
        for method in [HashMethod::MapBased, HashMethod::Consistent] {
            let s = servers(5);
            let b = HashBalancer::new(method);
            b.rebuild(&s);
            assert_eq!(assignments(&b, &s, 500), assignments(&b, &s, 500));
        }
    }

    #[test]
    fn map_based_spreads_by_weight() {
        let s = weighted(&[1, 3]);
        let b = HashBalancer::new(HashMethod::MapBased);
        b.rebuild(&s);
        let c = counts_of(&assignments(&b, &s, 4000), 2);
        assert!((900..1100).contains(&c[0]), "{c:?}");
    }

    #[test]
    fn consistent_spreads_by_weight() {
        let s = weighted(&[1, 3]);
        let b = HashBalancer::new(HashMethod::Consistent);
        b.rebuild(&s);
        let c = counts_of(&assignments(&b, &s, 10_000), 2);
        assert!((1_800..3_200).contains(&c[0]), "{c:?}");
    }

    #[test]
    fn consistent_ring_has_points_per_weight() {
        let s = weighted(&[1, 2]);
        let HashTables::Ring(rings) = build_ring(&s, &[1, 2]) else { unreachable!() };
        assert_eq!(rings[0].points.len() as u32, 3 * POINTS_PER_WEIGHT);
        assert!(rings[1].points.is_empty());
    }

    #[test]
    fn consistent_down_server_moves_only_its_keys() {
        let s = servers(5);
        let b = HashBalancer::new(HashMethod::Consistent);
        b.rebuild(&s);
        let before = assignments(&b, &s, 10_000);
        s[2].set_up(false);
        b.rebuild(&s);
        let after = assignments(&b, &s, 10_000);
        for (x, y) in before.iter().zip(&after) {
            assert!(x == y || *x == 2, "a key of server {x} moved to {y}");
        }
        assert!(!after.contains(&2));
    }

    #[test]
    fn consistent_down_server_moves_only_its_keys_before_rebuild() {
        let s = servers(5);
        let b = HashBalancer::new(HashMethod::Consistent);
        b.rebuild(&s);
        let before = assignments(&b, &s, 2_000);
        s[2].set_up(false);
        let after = assignments(&b, &s, 2_000);
        assert!(before.iter().zip(&after).all(|(x, y)| x == y || *x == 2));
    }

    #[test]
    fn full_server_keys_walk_to_the_same_neighbour() {
        for method in [HashMethod::MapBased, HashMethod::Consistent] {
            let s = servers(4);
            let b = HashBalancer::new(method);
            b.rebuild(&s);
            let not_one = |i: usize, _: &ServerState| i != 1;
            let first: Vec<_> = (0..300).map(|k| b.pick(&s, &not_one, &key(k))).collect();
            let again: Vec<_> = (0..300).map(|k| b.pick(&s, &not_one, &key(k))).collect();
            assert_eq!(first, again);
            assert!(first.iter().all(|p| p.is_some() && *p != Some(1)));
        }
    }

    #[test]
    fn backups_take_keys_when_actives_are_refused() {
        let s: ServerList = [server(0, 1, false), server(1, 1, true)].into_iter().map(std::sync::Arc::new).collect();
        for method in [HashMethod::MapBased, HashMethod::Consistent] {
            let b = HashBalancer::new(method);
            b.rebuild(&s);
            assert_eq!(b.pick(&s, &|i, _| i == 1, &key(7)), Some(1));
        }
    }

    #[test]
    fn missing_hash_falls_back_to_round_robin() {
        let s = servers(3);
        let b = HashBalancer::new(HashMethod::Consistent);
        b.rebuild(&s);
        let p: Vec<usize> = (0..30).map(|_| b.pick(&s, &|_, _| true, &PickKey::default()).unwrap()).collect();
        assert_eq!(counts_of(&p, 3), vec![10, 10, 10]);
    }

    #[test]
    fn empty_backend_picks_nothing() {
        for method in [HashMethod::MapBased, HashMethod::Consistent] {
            let b = HashBalancer::new(method);
            b.rebuild(&ServerList::new());
            assert_eq!(b.pick(&ServerList::new(), &|_, _| true, &key(1)), None);
            let s = weighted(&[0, 0]);
            b.rebuild(&s);
            assert_eq!(b.pick(&s, &|_, _| true, &key(1)), None);
        }
    }

    #[test]
    fn wide_hashes_are_folded_not_truncated() {
        let s = servers(8);
        let b = HashBalancer::new(HashMethod::MapBased);
        b.rebuild(&s);
        let picks: std::collections::HashSet<usize> =
            (0..64u32).map(|k| b.pick(&s, &|_, _| true, &PickKey { src: None, hash: Some(u64::from(avalanche(k)) << 32) }).unwrap()).collect();
        assert!(picks.len() > 1);
    }
}
