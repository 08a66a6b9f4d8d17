//! See config.rs.
pub mod config;
pub mod counters;
pub mod page;
pub mod prometheus;
pub mod stats;
