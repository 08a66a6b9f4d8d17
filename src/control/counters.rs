//! Counters the statistics read that the balancer's own state does not keep: sessions, requests,
//! bytes and HTTP response classes of a frontend or a backend. One per proxy side, shared by every
//! worker; the data plane only adds to them (Relaxed atomics, no allocation), `show stat` and the
//! stats page read them.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The counters of one frontend or one backend.
#[derive(Debug, Default)]
pub struct ProxyCounters {
    /// Sessions open now (frontend) — the server side counts its own connections.
    pub cur_sessions: AtomicU64,
    /// Highest `cur_sessions` seen.
    pub max_sessions: AtomicU64,
    /// Sessions accepted (frontend) or sent to this backend.
    pub sessions: AtomicU64,
    /// HTTP requests received (frontend) or forwarded (backend).
    pub requests: AtomicU64,
    /// Requests denied by rules.
    pub denied_requests: AtomicU64,
    /// Invalid requests (frontend).
    pub request_errors: AtomicU64,
    /// HTTP responses by class: 1xx, 2xx, 3xx, 4xx, 5xx, other.
    pub responses: [AtomicU64; 6],
}

impl ProxyCounters {
    /// A session starts: counts it and tracks the maximum of the open ones.
    pub fn session_start(&self) {
        self.sessions.fetch_add(1, Relaxed);
        let cur = self.cur_sessions.fetch_add(1, Relaxed) + 1;
        self.max_sessions.fetch_max(cur, Relaxed);
    }
    /// A session counted by [`Self::session_start`] ended.
    pub fn session_end(&self) {
        self.cur_sessions.fetch_sub(1, Relaxed);
    }
    pub fn request(&self) {
        self.requests.fetch_add(1, Relaxed);
    }
    /// A response with this status went to the client.
    pub fn response(&self, status: u16) {
        let class = match status {
            100..=599 => usize::from(status / 100 - 1),
            _ => 5,
        };
        self.responses[class].fetch_add(1, Relaxed);
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
    /// `fullconn`/`maxconn` limit shown as `slim` of the backend.
    pub slim: Option<u32>,
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
        let v: Vec<u64> = c.responses.iter().map(ProxyCounters::get).collect();
        assert_eq!(v, [1, 2, 1, 1, 1, 1]);
        assert_eq!(status_of(b"HTTP/1.1 403 Forbidden\r\n"), 403);
        assert_eq!(status_of(b"HTTP/1.1"), 0);
        c.session_start();
        c.session_start();
        c.session_end();
        assert_eq!((ProxyCounters::get(&c.cur_sessions), ProxyCounters::get(&c.max_sessions)), (1, 2));
    }
}
