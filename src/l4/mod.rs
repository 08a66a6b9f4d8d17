//! Layer 4: `tcp-request`/`tcp-response` rules and the actions every rule family shares.
pub mod action;
pub mod config;
