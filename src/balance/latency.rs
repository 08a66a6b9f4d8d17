//! Latency histograms of HTTP transactions, exported as `sluiced_*_seconds` Prometheus histograms.
//!
//! Fixed log-scale buckets (1, 2.5, 5 per decade from 100 µs to 10 s) held as atomic counters in
//! the shared frontend, backend and server state. Recording is a bucket search over 16 bounds and
//! two relaxed `fetch_add`s: no allocation, no lock. A per-worker `hdrhistogram` (the design's
//! suggestion) would avoid the shared cache lines but needs a merge across workers at scrape time,
//! and the server and backend counters next to these are shared atomics already; fixed buckets
//! are also what a Prometheus histogram exports anyway, so nothing is lost by not keeping more.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the finite buckets, in microseconds; a last bucket takes everything above.
pub const BOUNDS_US: [u64; 16] =
    [100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000];

/// One histogram: per-bucket (not cumulative) counts and the sum of the observations.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BOUNDS_US.len() + 1],
    sum_us: AtomicU64,
}

/// What a scrape reads from a [`Histogram`]: cumulative counts per bound (the last is `+Inf`,
/// which is also the count) and the sum in seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub cumulative: [u64; BOUNDS_US.len() + 1],
    pub sum_seconds: f64,
}

impl Snapshot {
    pub fn count(&self) -> u64 {
        self.cumulative[BOUNDS_US.len()]
    }
}

/// The index of the bucket `us` falls in (`le` is inclusive, as in Prometheus).
pub fn bucket_of(us: u64) -> usize {
    BOUNDS_US.iter().position(|&b| us <= b).unwrap_or(BOUNDS_US.len())
}

impl Histogram {
    /// Records one observation. Called on the hot path: allocation-free.
    pub fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(us)].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Reads the counts. Buckets are read one by one, so a scrape racing a record may see the
    /// sum without the bucket or the reverse; the count is derived from the buckets so that
    /// `_count` always equals the `+Inf` bucket.
    pub fn snapshot(&self) -> Snapshot {
        let mut cumulative = [0; BOUNDS_US.len() + 1];
        let mut acc = 0u64;
        for (c, b) in cumulative.iter_mut().zip(&self.buckets) {
            acc += b.load(Ordering::Relaxed);
            *c = acc;
        }
        Snapshot { cumulative, sum_seconds: self.sum_us.load(Ordering::Relaxed) as f64 / 1e6 }
    }
}

/// The two latencies recorded per HTTP transaction, for one frontend, backend or server.
#[derive(Debug, Default)]
pub struct Latency {
    /// From the complete request head to the end of the response body (HAProxy's `Ta` without
    /// the head's own reading time).
    pub total: Histogram,
    /// From the request forwarded (head and body) to the response head received (`Tr`).
    pub response: Histogram,
}

/// Records a transaction that the server `srv` of `be`, reached through `fe`, answered: `t_req`
/// when its request head was complete, `t_sent` when the request was forwarded, `t_res` when the
/// response head arrived; the response is done now.
pub fn record(fe: &Latency, be: &super::BackendState, srv: usize, t_req: std::time::Instant, t_sent: std::time::Instant, t_res: std::time::Instant) {
    let total = t_req.elapsed();
    let response = t_res.saturating_duration_since(t_sent);
    fe.total.record(total);
    for l in [&be.latency, &be.servers[srv].latency] {
        l.total.record(total);
        l.response.record(response);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive_and_the_last_bucket_takes_the_rest() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(100), 0);
        assert_eq!(bucket_of(101), 1);
        assert_eq!(bucket_of(10_000_000), BOUNDS_US.len() - 1);
        assert_eq!(bucket_of(10_000_001), BOUNDS_US.len());
        assert!(BOUNDS_US.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn snapshot_is_cumulative_and_counts_every_observation() {
        let h = Histogram::default();
        for us in [50, 100, 3_000, 3_000, 20_000_000] {
            h.record(Duration::from_micros(us));
        }
        let s = h.snapshot();
        assert_eq!(s.cumulative[0], 2);
        assert_eq!(s.cumulative[bucket_of(3_000)], 4);
        assert_eq!(s.cumulative[BOUNDS_US.len() - 1], 4);
        assert_eq!(s.count(), 5);
        assert!(s.cumulative.windows(2).all(|w| w[0] <= w[1]));
        assert!((s.sum_seconds - 20.00615).abs() < 1e-9);
    }
}
