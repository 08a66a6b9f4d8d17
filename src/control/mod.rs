//! See config.rs.
pub mod config;
pub mod prometheus;
pub mod stats;
