//! Stick tables: configuration (`config`), the shared tables (`table`), HAProxy's frequency
//! counters and the token bucket (`freq`), and the stick counters a stream tracks (`track`).
pub mod config;
pub mod fetch;
pub mod freq;
pub mod persist;
pub mod table;
pub mod track;
