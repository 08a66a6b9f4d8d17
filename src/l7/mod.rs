//! L7 (HTTP) proxying: configuration, HTTP/1 framing, head rewrites and the responses sluiced
//! builds itself.

pub mod config;
pub mod edit;
pub mod h1;
pub mod reply;
