//! Test helpers: servers built the way the configuration would build them.

use std::sync::Arc;

use super::list::ServerList;
use super::state::{ServerAddr, ServerState};

/// Active servers `s0..`, ids from 1, with these weights.
pub(crate) fn weighted(weights: &[u32]) -> ServerList {
    weights.iter().enumerate().map(|(i, &w)| Arc::new(server(i, w, false))).collect()
}

/// `n` active servers of weight 1.
pub(crate) fn servers(n: usize) -> ServerList {
    weighted(&vec![1; n])
}

/// Server `s{i}` with id `i + 1`, listening on 10.0.0.{i}:80.
pub(crate) fn server(i: usize, weight: u32, backup: bool) -> ServerState {
    let addr = ServerAddr::Inet(format!("10.0.{}.{}:80", i / 250, i % 250).parse().unwrap());
    ServerState::new(&format!("s{i}"), i as u32 + 1, addr, weight, backup)
}

/// How many times each of `n` servers appears in `picks`.
pub(crate) fn counts_of(picks: &[usize], n: usize) -> Vec<usize> {
    let mut c = vec![0; n];
    for &i in picks {
        c[i] += 1;
    }
    c
}
