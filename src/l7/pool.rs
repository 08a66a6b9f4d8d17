//! Per-worker pool of idle server connections, for `http-reuse`. A connection goes back to the
//! pool only after a complete response on a connection both sides keep alive; it is taken out
//! for one request at a time. Idle connections hold no server slot (`maxconn` counts streams).

use std::cell::RefCell;
use std::collections::HashMap;

use crate::runtime::io::EpollConn;

/// Idle connections per server kept at most when `pool-max-conn` is not set.
const DEFAULT_KEEP: usize = 64;

#[derive(Debug, Default)]
pub struct ServerPool {
    idle: RefCell<HashMap<(usize, usize), Vec<EpollConn>>>,
}

impl ServerPool {
    /// An idle connection to server `srv` of backend `be`. With `check`, one the server closed
    /// meanwhile is skipped (a `MSG_PEEK` per take); without, the caller retries on a new
    /// connection when the reused one turns out closed.
    pub fn take(&self, be: usize, srv: usize, check: bool) -> Option<EpollConn> {
        let mut idle = self.idle.borrow_mut();
        let list = idle.get_mut(&(be, srv))?;
        while let Some(c) = list.pop() {
            if !check || still_open(&c) {
                return Some(c);
            }
        }
        None
    }

    /// Keeps `c` for reuse, up to `max` idle connections for that server (`None`: the default).
    pub fn put(&self, be: usize, srv: usize, c: EpollConn, max: Option<usize>) {
        let mut idle = self.idle.borrow_mut();
        let list = idle.entry((be, srv)).or_default();
        if list.len() < max.unwrap_or(DEFAULT_KEEP) {
            list.push(c);
        }
    }

    pub fn idle_count(&self) -> usize {
        self.idle.borrow().values().map(Vec::len).sum()
    }
}

/// False when the server closed (or sent unexpected bytes on) an idle connection: a
/// non-blocking peek that finds end of stream or data means it cannot carry a new request.
fn still_open(c: &EpollConn) -> bool {
    use nix::sys::socket::{MsgFlags, recv};
    use std::os::fd::AsRawFd;
    let mut b = [0u8; 1];
    let fd = match c {
        EpollConn::Tcp(s) => s.as_raw_fd(),
        EpollConn::Unix(s) => s.as_raw_fd(),
    };
    matches!(recv(fd, &mut b, MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT), Err(nix::errno::Errno::EAGAIN))
}
