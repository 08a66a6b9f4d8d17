//! Load balancing: the server state every worker shares, and the algorithms that pick a server.
//!
//! Server state lives in atomics in one place (style practice 6: what must be global is named and
//! small): health checks and the stats socket write it, workers read it and count connections in
//! it, so `leastconn`, `maxconn` and the algorithms hold for the whole process, not per worker.
//! Each algorithm lives in its own file and implements [`Algorithm`]; [`build_algorithm`] picks
//! one from the configuration, and [`key_hash_needed`] tells the data plane what to hash for it.

pub mod algorithms;
#[cfg(test)]
mod backend_tests;
pub mod config;
pub mod first;
pub mod hash;
pub mod hashing;
pub mod latency;
pub mod leastconn;
pub mod list;
pub mod queue;
pub mod random;
pub mod roundrobin;
mod schedule;
pub mod source;
pub mod state;
pub mod static_rr;
#[cfg(test)]
mod testing;

pub use algorithms::{KeyNeeded, build_algorithm, build_algorithm_bounded, key_hash_needed};
pub use first::First;
pub use hash::hash_bytes;
pub use hashing::HashBalancer;
pub use leastconn::LeastConn;
pub use list::ServerList;
pub use random::Random;
pub use roundrobin::RoundRobin;
pub use source::Source;
pub use state::{AdminState, Algorithm, BackendState, BalanceOpts, CheckReport, Observe, Pick, PickKey, PoolLimit, ServerAddr, ServerState};
pub use static_rr::StaticRr;
