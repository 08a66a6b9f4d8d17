//! See config.rs.
pub mod config;
