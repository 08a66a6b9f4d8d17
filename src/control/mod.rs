//! See config.rs.
pub mod cli;
pub mod config;
pub mod socket;
pub mod stats;
