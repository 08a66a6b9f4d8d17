//! See config.rs.
pub mod config;
pub mod stats;
