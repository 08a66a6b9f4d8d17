//! Counters the statistics read that the balancer's own state does not keep: sessions, requests,
//! denials, errors, bytes and HTTP response classes of a frontend or a backend.
//!
//! The per-request counters are per worker: each worker adds to its own cache-line-aligned shard
//! (Relaxed atomics, no allocation, no line shared with another worker), and `show stat`, the
//! stats page and Prometheus sum the shards when they read. Only the current and maximum session
//! counts, which need a process-wide view at every change and move once per session, are shared.

use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

thread_local! {
    /// The shard this thread adds to: its worker's index; 0 for threads that are not workers.
    static SHARD: Cell<usize> = const { Cell::new(0) };
}

/// Called once by each worker thread when it starts, with its index. The shard index is
/// reduced here once, so that an update does no division.
pub fn set_worker(index: usize) {
    SHARD.with(|s| s.set(index % shard_count()));
}

/// How many shards a counter set has: one per CPU (the default worker count); workers beyond it
/// share shards, which stays correct since shards are atomics.
fn shard_count() -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 64))
}

/// A value per worker, each alone on its cache lines: workers add to [`Sharded::mine`], readers
/// sum every shard with [`Sharded::sum`].
#[derive(Debug)]
pub struct Sharded<T> {
    shards: Box<[Padded<T>]>,
}

#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

impl<T: Default> Default for Sharded<T> {
    fn default() -> Sharded<T> {
        Sharded { shards: (0..shard_count()).map(|_| Padded(T::default())).collect() }
    }
}

impl<T> Sharded<T> {
    /// This worker's shard.
    #[inline]
    pub fn mine(&self) -> &T {
        &self.shards[SHARD.with(Cell::get)].0
    }
    /// A counter summed over every worker.
    pub fn sum(&self, f: impl Fn(&T) -> &AtomicU64) -> u64 {
        self.shards.iter().map(|s| f(&s.0).load(Relaxed)).sum()
    }
    /// Every shard, to clear them.
    pub fn each(&self) -> impl Iterator<Item = &T> {
        self.shards.iter().map(|s| &s.0)
    }
}

/// One worker's part of a [`ProxyCounters`].
#[derive(Debug, Default)]
pub struct Shard {
    /// Sessions accepted (frontend) or sent to this backend.
    pub sessions: AtomicU64,
    /// HTTP requests received (frontend) or forwarded (backend).
    pub requests: AtomicU64,
    /// Requests denied by rules (`deny`, `reject`, `tarpit`, `auth`).
    pub denied_requests: AtomicU64,
    /// Invalid requests (frontend).
    pub request_errors: AtomicU64,
    /// Bytes received from clients (frontend) / sent to servers (backend).
    pub bytes_in: AtomicU64,
    /// Bytes sent to clients (frontend) / received from servers (backend).
    pub bytes_out: AtomicU64,
    /// HTTP responses by class: 1xx, 2xx, 3xx, 4xx, 5xx, other.
    pub responses: [AtomicU64; 6],
    /// Compression: body bytes fed to the compressor, the compressed bytes it gave, and the
    /// responses compressed (`comp_in`, `comp_out`, `comp_rsp`).
    pub comp_in: AtomicU64,
    pub comp_out: AtomicU64,
    pub comp_rsp: AtomicU64,
}

/// The counters of one frontend or one backend.
#[derive(Debug)]
pub struct ProxyCounters {
    /// Sessions open now (frontend) — the server side counts its own connections.
    pub cur_sessions: AtomicU64,
    /// Highest `cur_sessions` seen.
    pub max_sessions: AtomicU64,
    shards: Sharded<Shard>,
}

impl Default for ProxyCounters {
    fn default() -> ProxyCounters {
        ProxyCounters { cur_sessions: AtomicU64::new(0), max_sessions: AtomicU64::new(0), shards: Sharded::default() }
    }
}

impl ProxyCounters {
    /// This worker's shard.
    #[inline]
    pub fn mine(&self) -> &Shard {
        self.shards.mine()
    }
    /// A counter summed over every worker.
    pub fn sum(&self, f: impl Fn(&Shard) -> &AtomicU64) -> u64 {
        self.shards.sum(f)
    }
    pub fn sessions(&self) -> u64 {
        self.sum(|s| &s.sessions)
    }
    pub fn requests(&self) -> u64 {
        self.sum(|s| &s.requests)
    }
    pub fn denied_requests(&self) -> u64 {
        self.sum(|s| &s.denied_requests)
    }
    pub fn request_errors(&self) -> u64 {
        self.sum(|s| &s.request_errors)
    }
    pub fn bytes_in(&self) -> u64 {
        self.sum(|s| &s.bytes_in)
    }
    pub fn bytes_out(&self) -> u64 {
        self.sum(|s| &s.bytes_out)
    }
    pub fn comp_in(&self) -> u64 {
        self.sum(|s| &s.comp_in)
    }
    pub fn comp_out(&self) -> u64 {
        self.sum(|s| &s.comp_out)
    }
    pub fn comp_rsp(&self) -> u64 {
        self.sum(|s| &s.comp_rsp)
    }
    /// A response was compressed: `taken` body bytes in, `given` compressed bytes out.
    pub fn compressed(&self, taken: u64, given: u64) {
        let s = self.mine();
        s.comp_in.fetch_add(taken, Relaxed);
        s.comp_out.fetch_add(given, Relaxed);
        s.comp_rsp.fetch_add(1, Relaxed);
    }
    /// Responses per class (1xx..5xx, other), summed.
    pub fn responses(&self) -> [u64; 6] {
        std::array::from_fn(|i| self.sum(|s| &s.responses[i]))
    }
    /// `clear counters all`: every counter back to 0.
    pub fn clear(&self) {
        self.max_sessions.store(self.cur_sessions.load(Relaxed), Relaxed);
        for s in self.shards.each() {
            for c in [&s.sessions, &s.requests, &s.denied_requests, &s.request_errors, &s.bytes_in, &s.bytes_out, &s.comp_in, &s.comp_out, &s.comp_rsp]
                .into_iter()
                .chain(&s.responses)
            {
                c.store(0, Relaxed);
            }
        }
    }
    /// `clear counters`: the maxima back to the current values.
    pub fn clear_max(&self) {
        self.max_sessions.store(self.cur_sessions.load(Relaxed), Relaxed);
    }

    /// A session starts: counts it and tracks the maximum of the open ones.
    pub fn session_start(&self) {
        self.mine().sessions.fetch_add(1, Relaxed);
        let cur = self.cur_sessions.fetch_add(1, Relaxed) + 1;
        self.max_sessions.fetch_max(cur, Relaxed);
    }
    /// A session counted by [`Self::session_start`] ended.
    pub fn session_end(&self) {
        self.cur_sessions.fetch_sub(1, Relaxed);
    }
    /// A session sent to this backend (counted without the current/maximum pair, which the
    /// servers keep for a backend).
    pub fn session(&self) {
        self.mine().sessions.fetch_add(1, Relaxed);
    }
    pub fn request(&self) {
        self.mine().requests.fetch_add(1, Relaxed);
    }
    pub fn denied(&self) {
        self.mine().denied_requests.fetch_add(1, Relaxed);
    }
    pub fn request_error(&self) {
        self.mine().request_errors.fetch_add(1, Relaxed);
    }
    pub fn add_in(&self, n: u64) {
        self.mine().bytes_in.fetch_add(n, Relaxed);
    }
    pub fn add_out(&self, n: u64) {
        self.mine().bytes_out.fetch_add(n, Relaxed);
    }
    pub fn bytes(&self, bytes_in: u64, bytes_out: u64) {
        let s = self.mine();
        s.bytes_in.fetch_add(bytes_in, Relaxed);
        s.bytes_out.fetch_add(bytes_out, Relaxed);
    }
    /// A response with this status went to the client.
    pub fn response(&self, status: u16) {
        let class = match status {
            100..=599 => usize::from(status / 100 - 1),
            _ => 5,
        };
        self.mine().responses[class].fetch_add(1, Relaxed);
    }
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Relaxed)
    }
}

/// A response from a server went to the client: counted on its frontend and its backend.
pub fn count_response(fe: &ProxyCounters, be: &ProxyCounters, status: u16) {
    fe.response(status);
    be.response(status);
}

/// A response sluiced generated itself (an error, a deny, a redirect, the stats page...): counted
/// on the frontend, and on the backend when one was chosen.
pub fn count_generated(fe: &crate::route::Frontend, be: Option<&crate::route::Backend>, status: u16) {
    fe.counters.response(status);
    if let Some(be) = be {
        be.counters.response(status);
    }
}

/// The status of a serialized response (`HTTP/1.1 200 OK...`); 0 when it cannot be read.
pub fn status_of(resp: &[u8]) -> u16 {
    resp.get(9..12).and_then(|d| std::str::from_utf8(d).ok()).and_then(|d| d.parse().ok()).unwrap_or(0)
}

/// What the statistics show of a backend's configuration that its runtime state does not hold.
#[derive(Clone, Debug, Default)]
pub struct BackendStatsInfo {
    /// The `balance` algorithm as HAProxy names it (`roundrobin`, `leastconn`, ...).
    pub algo: &'static str,
    /// Per server (in the order of `BackendState::servers`): `Some((rise, fall))` when it is checked.
    pub checks: Vec<Option<(u32, u32)>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_classes() {
        let c = ProxyCounters::default();
        for s in [101, 200, 204, 302, 404, 503, 700] {
            c.response(s);
        }
        assert_eq!(c.responses(), [1, 2, 1, 1, 1, 1]);
        assert_eq!(status_of(b"HTTP/1.1 403 Forbidden\r\n"), 403);
        assert_eq!(status_of(b"HTTP/1.1"), 0);
        c.session_start();
        c.session_start();
        c.session_end();
        assert_eq!((ProxyCounters::get(&c.cur_sessions), ProxyCounters::get(&c.max_sessions)), (1, 2));
        assert_eq!(c.sessions(), 2);
    }

    #[test]
    fn workers_add_to_their_own_shards_and_reads_sum_them() {
        let c = std::sync::Arc::new(ProxyCounters::default());
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let c = c.clone();
                std::thread::spawn(move || {
                    set_worker(i);
                    for _ in 0..1000 {
                        c.request();
                    }
                    c.bytes(10, 20);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!((c.requests(), c.bytes_in(), c.bytes_out()), (4000, 40, 80));
        c.clear();
        assert_eq!(c.requests(), 0);
    }
}
