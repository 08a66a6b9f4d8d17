//! Admission limits that the runtime API changes while the process runs: a `maxconn` (global or a
//! frontend's) whose number of slots grows and shrinks, and a per-second rate (`maxconnrate`,
//! `maxsessrate`, `set rate-limit`). Both are shared by every worker and read without a lock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Slots of a limit that is off: more than any process can hold open.
const UNLIMITED: usize = 1 << 40;

/// A `maxconn`: a semaphore whose size the runtime API changes. Growing adds permits at once;
/// shrinking forgets free permits at once and the others as their connections end (the `debt`),
/// so open connections are never cut.
#[derive(Debug)]
pub struct ConnLimit {
    sem: Arc<Semaphore>,
    /// The current limit; 0 is none.
    max: AtomicUsize,
    /// Permits still to forget when they come back.
    debt: AtomicUsize,
    /// Serializes changes (control plane only; admission never takes it).
    change: std::sync::Mutex<()>,
}

/// The slots an accepted connection holds until its session ends: the global `maxconn`'s, its
/// frontend's, and its bind line's when that has a `maxconn`.
pub type Permits = (ConnSlot, ConnSlot, Option<ConnSlot>);

/// A slot taken from a [`ConnLimit`]; given back (or forgotten, if the limit shrank) on drop.
#[derive(Debug)]
pub struct ConnSlot {
    permit: Option<OwnedSemaphorePermit>,
    limit: Arc<ConnLimit>,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        if let Some(p) = self.permit.take() {
            let paid = self.limit.debt.fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| d.checked_sub(1)).is_ok();
            if paid {
                p.forget();
            }
        }
    }
}

impl ConnLimit {
    /// A limit of `max` slots; `None` or 0 is no limit.
    pub fn new(max: Option<u32>) -> Arc<ConnLimit> {
        let max = max.map_or(0, |m| m as usize);
        Arc::new(ConnLimit {
            sem: Arc::new(Semaphore::new(if max == 0 { UNLIMITED } else { max })),
            max: AtomicUsize::new(max),
            debt: AtomicUsize::new(0),
            change: std::sync::Mutex::new(()),
        })
    }

    /// The current limit, `None` when there is none.
    pub fn max(&self) -> Option<u32> {
        match self.max.load(Ordering::Relaxed) {
            0 => None,
            m => Some(u32::try_from(m).unwrap_or(u32::MAX)),
        }
    }

    /// Slots free now (0 while the limit is above its new size until enough connections end).
    pub fn available_permits(&self) -> usize {
        self.sem.available_permits().saturating_sub(self.debt.load(Ordering::Relaxed))
    }

    /// Waits until a slot is free, without taking it; `false` if the limit is closed.
    pub async fn room(&self) -> bool {
        self.sem.acquire().await.map(drop).is_ok()
    }

    /// Takes a slot, waiting for one.
    pub async fn acquire(self: &Arc<Self>) -> Option<ConnSlot> {
        let permit = self.sem.clone().acquire_owned().await.ok()?;
        Some(ConnSlot { permit: Some(permit), limit: self.clone() })
    }

    /// Sets the limit to `max` slots (`0`: none).
    pub fn set(&self, max: u32) {
        let _guard = self.change.lock().unwrap_or_else(|e| e.into_inner());
        let size = |m: usize| if m == 0 { UNLIMITED } else { m };
        let old = size(self.max.load(Ordering::Relaxed));
        let new = size(max as usize);
        if new > old {
            let mut grow = new - old;
            // First cancel permits not yet forgotten, then add the rest.
            let cancelled = self.debt.fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| Some(d - d.min(grow))).unwrap_or(0);
            grow -= cancelled.min(grow);
            self.sem.add_permits(grow);
        } else if new < old {
            let shrink = old - new;
            let forgotten = self.sem.forget_permits(shrink);
            self.debt.fetch_add(shrink - forgotten, Ordering::AcqRel);
        }
        self.max.store(max as usize, Ordering::Relaxed);
    }
}

/// A process-wide rate in events per second (`0`: none): the second and the count of events
/// admitted in it, packed in one word so that one compare-and-swap admits an event.
#[derive(Debug)]
pub struct RateLimit {
    limit: AtomicU32,
    window: AtomicU64,
    /// The largest count of a second so far (`MaxConnRate`, `MaxSessRate`).
    max_seen: AtomicU32,
}

/// The clock every rate counts seconds on: one for all, so that the accept path reads the time
/// once for all the rates it counts a connection in ([`now_second`]).
fn epoch() -> std::time::Instant {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

/// The current second of the rates' clock (from 1).
pub fn now_second() -> u64 {
    epoch().elapsed().as_secs() + 1
}

impl RateLimit {
    pub fn new(limit: Option<u32>) -> RateLimit {
        RateLimit { limit: AtomicU32::new(limit.unwrap_or(0)), window: AtomicU64::new(0), max_seen: AtomicU32::new(0) }
    }

    pub fn limit(&self) -> u32 {
        self.limit.load(Ordering::Relaxed)
    }

    pub fn set(&self, limit: u32) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    /// Events of the current second.
    pub fn current(&self) -> u32 {
        let w = self.window.load(Ordering::Relaxed);
        if w >> 32 == now_second() { w as u32 } else { 0 }
    }

    pub fn max_seen(&self) -> u32 {
        self.max_seen.load(Ordering::Relaxed)
    }

    /// Counts one event if the rate allows it now; else the time until the next second.
    pub fn try_admit(&self) -> Result<(), std::time::Duration> {
        self.try_admit_in(now_second())
    }

    /// [`RateLimit::try_admit`] in second `now`, as [`now_second`] read it.
    pub fn try_admit_in(&self, now: u64) -> Result<(), std::time::Duration> {
        let limit = self.limit();
        let mut cur = self.window.load(Ordering::Relaxed);
        loop {
            let (sec, count) = (cur >> 32, cur as u32);
            let count = if sec == now { count } else { 0 };
            if limit != 0 && count >= limit {
                let next = std::time::Duration::from_secs(now);
                return Err(next.saturating_sub(epoch().elapsed()).max(std::time::Duration::from_millis(1)));
            }
            let new = (now << 32) | u64::from(count + 1);
            match self.window.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => {
                    // A new record is rare: read before writing.
                    if count + 1 > self.max_seen.load(Ordering::Relaxed) {
                        self.max_seen.fetch_max(count + 1, Ordering::Relaxed);
                    }
                    return Ok(());
                }
                Err(v) => cur = v,
            }
        }
    }

    /// Waits until the rate has room now, without counting an event.
    pub async fn room(&self) {
        loop {
            let limit = self.limit();
            if limit == 0 || self.current() < limit {
                return;
            }
            let next = std::time::Duration::from_secs(now_second());
            tokio::time::sleep(next.saturating_sub(epoch().elapsed()).max(std::time::Duration::from_millis(1))).await;
        }
    }

    /// Counts one event, waiting for the next second while this one is full.
    pub async fn admit(&self) {
        while let Err(wait) = self.try_admit() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// The process-wide limits: `maxconn`, `maxconnrate`, `maxsessrate`.
#[derive(Debug)]
pub struct ProcessLimits {
    pub maxconn: Arc<ConnLimit>,
    /// `maxconn` as configured: `set maxconn global` may not go above it (`Hard_maxconn`).
    pub hard_maxconn: Option<u32>,
    pub conn_rate: RateLimit,
    pub sess_rate: RateLimit,
}

impl ProcessLimits {
    pub fn new(maxconn: Option<u32>, conn_rate: Option<u32>, sess_rate: Option<u32>) -> ProcessLimits {
        ProcessLimits { maxconn: ConnLimit::new(maxconn), hard_maxconn: maxconn, conn_rate: RateLimit::new(conn_rate), sess_rate: RateLimit::new(sess_rate) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_shrunk_limit_forgets_slots_as_they_come_back() {
        let l = ConnLimit::new(Some(2));
        let a = l.acquire().await.unwrap();
        let b = l.acquire().await.unwrap();
        l.set(1);
        assert_eq!(l.available_permits(), 0);
        drop(a);
        assert_eq!(l.available_permits(), 0, "the first slot back is forgotten");
        drop(b);
        assert_eq!(l.available_permits(), 1);
        l.set(3);
        assert_eq!(l.available_permits(), 3);
        assert_eq!(l.max(), Some(3));
        l.set(0);
        assert_eq!(l.max(), None);
        assert!(l.available_permits() > 1_000_000);
    }

    #[test]
    fn growing_a_limit_cancels_pending_forgets_first() {
        let l = ConnLimit::new(Some(1));
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let a = rt.block_on(l.acquire()).unwrap();
        l.set(0);
        l.set(1);
        drop(a);
        assert_eq!(l.available_permits(), 1);
    }

    #[test]
    fn a_rate_admits_its_count_per_second() {
        let r = RateLimit::new(Some(3));
        let admitted = (0..10).filter(|_| r.try_admit().is_ok()).count();
        // A second boundary may fall between two tries: at most twice the rate.
        assert!((3..=6).contains(&admitted), "{admitted}");
        r.set(0);
        assert!((0..100).all(|_| r.try_admit().is_ok()));
    }
}
