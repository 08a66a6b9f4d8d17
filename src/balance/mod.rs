//! Load balancing: the server state every worker shares, and the algorithms that pick a server.
//!
//! Server state lives in atomics in one place (style practice 6: what must be global is named and
//! small): health checks and the stats socket write it, workers read it and count connections in
//! it, so `leastconn`, `maxconn` and the algorithms hold for the whole process, not per worker.
//! Each algorithm lives in its own file and implements [`Algorithm`].

pub mod config;
pub mod state;

pub use state::{AdminState, Algorithm, BackendState, BalanceOpts, Pick, PickKey, ServerAddr, ServerState};

/// Placeholder until the algorithm files land: plain round robin over eligible servers.
#[derive(Debug, Default)]
struct PlainRoundRobin(std::sync::atomic::AtomicUsize);

impl Algorithm for PlainRoundRobin {
    fn pick(&self, servers: &[std::sync::Arc<ServerState>], eligible: &dyn Fn(usize) -> bool, _key: &PickKey) -> Option<usize> {
        let n = servers.len();
        let start = self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        (0..n).map(|k| (start + k) % n).find(|&i| eligible(i))
    }
}

/// The algorithm for a backend's `balance` and `hash-type`.
pub fn build_algorithm(balance: Option<&config::Balance>, hash_type: Option<&config::HashType>) -> Box<dyn Algorithm> {
    let _ = (balance, hash_type);
    Box::new(PlainRoundRobin::default())
}
