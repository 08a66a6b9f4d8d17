//! Per-worker pool of idle server connections, for `http-reuse`. A connection goes back to the
//! pool only after a complete response on a connection both sides keep alive; it is taken out
//! for one request at a time. Idle connections hold no server slot (`maxconn` counts streams).
//! `pool-max-conn` bounds the idle connections of a server across all workers: a shared counter
//! goes up when one is kept and down when one is taken out.

use std::cell::RefCell;
use std::sync::atomic::Ordering;

use crate::route::PoolLimit;
use crate::runtime::io::{EpollConn, Transport};

#[derive(Debug, Default)]
pub struct ServerPool {
    /// Indexed by backend, then server: grown on first use, so a take or a put is two indexings
    /// (a hash map cost a SipHash per request).
    idle: RefCell<Vec<Vec<Vec<Transport>>>>,
}

impl ServerPool {
    /// An idle connection to server `srv` of backend `be`. With `check`, one the server closed
    /// meanwhile is skipped (a `MSG_PEEK` per take); without, the caller retries on a new
    /// connection when the reused one turns out closed.
    pub fn take(&self, be: usize, srv: usize, check: bool, limit: &PoolLimit) -> Option<Transport> {
        let mut idle = self.idle.borrow_mut();
        let list = idle.get_mut(be)?.get_mut(srv)?;
        while let Some(c) = list.pop() {
            limit.idle.fetch_sub(1, Ordering::Relaxed);
            if !check || still_open(&c) {
                return Some(c);
            }
        }
        None
    }

    /// Keeps `c` for reuse unless the server has `pool-max-conn` idle connections already (then
    /// `c` is closed).
    pub fn put(&self, be: usize, srv: usize, c: Transport, limit: &PoolLimit) {
        let kept = limit.idle.fetch_add(1, Ordering::Relaxed);
        if limit.max.is_some_and(|m| kept >= m) {
            limit.idle.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        let mut idle = self.idle.borrow_mut();
        if idle.len() <= be {
            idle.resize_with(be + 1, Vec::new);
        }
        let servers = &mut idle[be];
        if servers.len() <= srv {
            servers.resize_with(srv + 1, Vec::new);
        }
        servers[srv].push(c);
    }

    pub fn idle_count(&self) -> usize {
        self.idle.borrow().iter().flatten().map(Vec::len).sum()
    }
}

/// False when the server closed (or sent unexpected bytes on) an idle connection: a
/// non-blocking peek that finds end of stream or data means it cannot carry a new request.
fn still_open(c: &Transport) -> bool {
    use nix::sys::socket::{MsgFlags, recv};
    use std::os::fd::AsRawFd;
    let mut b = [0u8; 1];
    let fd = match c.socket() {
        EpollConn::Tcp(s) => s.as_raw_fd(),
        EpollConn::Unix(s) => s.as_raw_fd(),
    };
    matches!(recv(fd, &mut b, MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT), Err(nix::errno::Errno::EAGAIN))
}
