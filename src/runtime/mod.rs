//! Worker threads, I/O backends, listeners and pipe pools.

pub mod config;
pub mod deadline;
pub mod handover;
pub mod identity;
pub mod io;
pub mod limit;
pub mod listener;
pub mod master;
pub mod park;
pub mod pipe;
pub mod process;
pub mod sockopt;
pub mod sys;
pub mod uring;
pub mod worker;
