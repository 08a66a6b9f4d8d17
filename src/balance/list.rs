//! A backend's server list: append-only, read without a lock, with stable indices.
//!
//! Servers can be added (`add server`) and deleted (`del server`) at run time while every worker
//! picks from the list. The list never moves an entry: it is a series of buckets of doubling
//! sizes, each allocated once and never freed while the backend lives, so a reader holds a plain
//! `&Arc<ServerState>` for as long as it holds the backend and an index names the same server
//! forever (the data plane, the idle pools and the algorithms' schedules keep indices). A deleted
//! server stays in its slot as a tombstone: in maintenance, flagged `deleted`, never picked, and
//! left out of [`ServerList::iter`] (every listing) and of name lookups.
//!
//! Reading index `i` costs a leading-zero count and two acquire loads (the bucket and the slot);
//! adding takes a mutex that only writers (the configuration, the stats socket) see.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use super::state::ServerState;

/// log2 of the size of the first bucket.
const FIRST_SHIFT: u32 = 4;
/// Buckets of 16, 32, 64... entries: 28 of them hold more servers than a process can connect to.
const BUCKETS: usize = 28;

type Slot = OnceLock<Arc<ServerState>>;

#[derive(Default)]
pub struct ServerList {
    /// Slots published so far (deleted ones included): every index below is set.
    len: AtomicUsize,
    buckets: [OnceLock<Box<[Slot]>>; BUCKETS],
    /// Serialises writers; readers never take it.
    push: Mutex<()>,
}

/// The bucket and the offset in it of index `i`.
fn locate(i: usize) -> (usize, usize) {
    let j = i + (1 << FIRST_SHIFT);
    let top = usize::BITS - 1 - j.leading_zeros();
    ((top - FIRST_SHIFT) as usize, j - (1 << top))
}

impl ServerList {
    pub fn new() -> ServerList {
        ServerList::default()
    }

    /// Slots in the list, deleted servers included: indices run from 0 to this.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// No live server (deleted ones do not count).
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// The server in slot `i`, deleted or not.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&Arc<ServerState>> {
        let (b, off) = locate(i);
        self.buckets.get(b)?.get()?.get(off)?.get()
    }

    /// Appends a server; returns its index. Readers see it once this returns.
    pub fn push(&self, s: Arc<ServerState>) -> usize {
        let _w = self.push.lock().unwrap_or_else(|e| e.into_inner());
        let i = self.len.load(Ordering::Relaxed);
        let (b, off) = locate(i);
        let bucket = self.buckets[b].get_or_init(|| (0..(1usize << (b as u32 + FIRST_SHIFT))).map(|_| OnceLock::new()).collect());
        let _ = bucket[off].set(s);
        self.len.store(i + 1, Ordering::Release);
        i
    }

    /// Every slot with its index, deleted servers included (for what keeps per-index state, such
    /// as the algorithms' schedules).
    pub fn slots(&self) -> impl Iterator<Item = &Arc<ServerState>> + '_ {
        let len = self.len();
        // Bucket by bucket: a slice walk, not a lookup per index.
        self.buckets
            .iter()
            .enumerate()
            .map_while(move |(b, bucket)| {
                let start = (1usize << (b as u32 + FIRST_SHIFT)) - (1 << FIRST_SHIFT);
                (start < len).then_some((bucket, start))
            })
            .flat_map(move |(bucket, start)| {
                bucket.get().into_iter().flat_map(move |slots| slots[..(len - start).min(slots.len())].iter().filter_map(OnceLock::get))
            })
    }

    /// The live servers, in order (deleted ones left out).
    pub fn iter(&self) -> impl Iterator<Item = &Arc<ServerState>> + '_ {
        self.slots().filter(|s| !s.is_deleted())
    }

    /// The live servers with their indices.
    pub fn indexed(&self) -> impl Iterator<Item = (usize, &Arc<ServerState>)> + '_ {
        self.slots().enumerate().filter(|(_, s)| !s.is_deleted())
    }

    /// The live server named `name`, with its index.
    pub fn find(&self, name: &str) -> Option<(usize, &Arc<ServerState>)> {
        self.indexed().find(|(_, s)| s.name == name)
    }
}

impl std::ops::Index<usize> for ServerList {
    type Output = Arc<ServerState>;
    #[inline]
    fn index(&self, i: usize) -> &Arc<ServerState> {
        self.get(i).expect("server index out of range")
    }
}

impl<'a> IntoIterator for &'a ServerList {
    type Item = &'a Arc<ServerState>;
    type IntoIter = Box<dyn Iterator<Item = &'a Arc<ServerState>> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl FromIterator<Arc<ServerState>> for ServerList {
    fn from_iter<I: IntoIterator<Item = Arc<ServerState>>>(it: I) -> ServerList {
        let l = ServerList::new();
        for s in it {
            l.push(s);
        }
        l
    }
}

impl From<Vec<Arc<ServerState>>> for ServerList {
    fn from(v: Vec<Arc<ServerState>>) -> ServerList {
        v.into_iter().collect()
    }
}

impl std::fmt::Debug for ServerList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.slots().map(|s| &s.name)).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::testing::server;

    #[test]
    fn indices_cross_buckets_in_order() {
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(15), (0, 15));
        assert_eq!(locate(16), (1, 0));
        assert_eq!(locate(47), (1, 31));
        assert_eq!(locate(48), (2, 0));
        let l: ServerList = (0..200).map(|i| Arc::new(server(i, 1, false))).collect();
        assert_eq!(l.len(), 200);
        assert!((0..200).all(|i| l[i].name == format!("s{i}")));
        assert!(l.get(200).is_none());
    }

    #[test]
    fn deleted_servers_keep_their_slot_but_leave_listings() {
        let l: ServerList = (0..3).map(|i| Arc::new(server(i, 1, false))).collect();
        l[1].mark_deleted();
        assert_eq!(l.len(), 3);
        assert_eq!(l.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["s0", "s2"]);
        assert_eq!(l.indexed().map(|(i, _)| i).collect::<Vec<_>>(), [0, 2]);
        assert!(l.find("s1").is_none());
        assert_eq!(l.find("s2").map(|(i, _)| i), Some(2));
        assert_eq!(l.push(Arc::new(server(1, 1, false))), 3);
        assert_eq!(l.find("s1").map(|(i, _)| i), Some(3));
    }

    #[test]
    fn readers_see_servers_pushed_by_another_thread() {
        let l = ServerList::new();
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..100 {
                    l.push(Arc::new(server(i, 1, false)));
                }
            });
            s.spawn(|| {
                for _ in 0..1000 {
                    let n = l.len();
                    assert!((0..n).all(|i| l.get(i).is_some()));
                }
            });
        });
        assert_eq!(l.len(), 100);
    }
}
