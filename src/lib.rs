//! sluiced: an HAProxy-compatible L4/L7 load balancer. See `docs/architecture.md`.

// `unsafe` is allowed only in modules that say why (style practice 8): `runtime::sys` and `runtime::sockopt`.
#![deny(unsafe_code)]

pub mod balance;
pub mod build;
pub mod check;
pub mod cli;
pub mod config;
pub mod control;
pub mod dns;
pub mod l4;
pub mod l7;
pub mod log;
pub mod peers;
pub mod route;
pub mod runtime;
pub mod stick;
pub mod tls;
