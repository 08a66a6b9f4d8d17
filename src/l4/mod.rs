//! L4 (TCP) proxying: configuration, rule actions, the PROXY protocol.

pub mod action;
pub mod clienthello;
pub mod config;
pub mod proxy_protocol;
pub mod session;
