//! See config.rs.
pub mod config;
pub mod stats;
pub mod counters;
pub mod page;
