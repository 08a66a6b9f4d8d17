//! L7 (HTTP) proxying: configuration, HTTP/1 framing, rules, sessions, the server connection pool.

pub mod config;
pub mod h1;
pub mod pool;
pub mod rules;
pub mod session;
