//! Load balancing: the server state every worker shares, and the algorithms that pick a server.
//!
//! Server state lives in atomics in one place (style practice 6: what must be global is named and
//! small): health checks and the stats socket write it, workers read it and count connections in
//! it, so `leastconn`, `maxconn` and the algorithms hold for the whole process, not per worker.
//! Each algorithm lives in its own file and implements [`Algorithm`].

pub mod config;
pub mod state;

pub use state::{AdminState, Algorithm, BackendState, BalanceOpts, Pick, PickKey, ServerAddr, ServerState};
