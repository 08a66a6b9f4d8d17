//! See config.rs.
pub mod cli;
pub mod config;
pub mod counters;
pub mod page;
pub mod prometheus;
pub mod socket;
pub mod stats;
