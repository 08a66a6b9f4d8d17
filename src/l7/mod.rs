//! L7 (HTTP) proxying: configuration, HTTP/1 framing, rules, head rewrites, cookie persistence,
//! response compression, the responses sluiced builds itself, sessions, and the server connection
//! pool.

pub mod compress;
pub mod config;
pub mod cookie;
pub mod deflate;
pub mod edit;
pub mod fasthead;
pub mod h1;
pub mod normalize;
pub mod pool;
pub mod reply;
pub mod rules;
pub mod session;
