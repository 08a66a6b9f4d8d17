//! L7 (HTTP) proxying: configuration, HTTP/1 framing.

pub mod config;
pub mod h1;
