//! TLS: the only module that uses rustls. `config` parses the keywords, `server` compiles a
//! `bind ... ssl` line into a rustls configuration with its certificate resolver, `conn` runs TLS
//! over a plain connection through the session I/O trait, `der` reads the certificate fields the
//! fetches show.
pub mod client;
pub mod config;
pub mod conn;
pub mod der;
pub mod server;
pub mod tickets;

pub use conn::{TlsConn, TlsInfo};
pub use server::Acceptor;
