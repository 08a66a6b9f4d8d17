//! Health checks: the typed configuration (config.rs), the rise/fall counter (health.rs), the
//! conversations the engine owns (conv.rs), protocol conversations (proto/), and the engine that
//! runs them on a thread of its own and applies their results to server state (engine.rs).
pub mod config;
pub mod conv;
pub mod engine;
pub mod health;
pub mod proto;
