//! Per-worker pool of idle server connections, for `http-reuse`. A connection goes back to the
//! pool only after a complete response on a connection both sides keep alive; it is taken out
//! for one request at a time. Idle connections hold no server slot (`maxconn` counts streams).
//! `pool-max-conn` bounds the idle connections of a server across all workers: a shared counter
//! goes up when one is kept and down when one is taken out.
//!
//! Servers come and go at run time (`add server`, `del server`) and move (`set server addr`):
//! the lists grow when a server index is first seen, and each connection carries the server's
//! connection epoch from when it was opened. A connection from another epoch goes to an address
//! the server no longer has (or to a deleted server): it is closed, never reused. When the
//! backend's epoch count moved since this worker last looked (one relaxed load per put), the
//! backend's lists are swept, so such connections are closed soon, not only when taken.

use std::cell::RefCell;
use std::sync::atomic::Ordering;

use crate::balance::{BackendState, ServerState};
use crate::runtime::io::Transport;

#[derive(Debug, Default)]
struct BackendIdle {
    /// `BackendState::conn_changes` when this worker last swept the backend.
    seen_changes: u64,
    /// Indexed by server: (connection epoch, times reused so far, connection).
    servers: Vec<Vec<(u32, u32, Transport)>>,
}

#[derive(Debug, Default)]
pub struct ServerPool {
    /// Indexed by backend, then server: grown on first use, so a take or a put is two indexings
    /// (a hash map cost a SipHash per request).
    idle: RefCell<Vec<BackendIdle>>,
}

impl ServerPool {
    /// An idle connection to server `srv` of backend `be`, with its epoch. With `check`, one the
    /// server closed meanwhile is skipped (a `MSG_PEEK` per take); without, the caller retries on
    /// a new connection when the reused one turns out closed. Either way one the backend already
    /// knows received something while idle (bytes no request asked for, or an end; see
    /// [`Transport::may_have_spoken`], no system call) is peeked at and skipped, so a reused
    /// connection never hands a client what a server sent out of turn. Connections from another
    /// epoch than the server's are closed. The last number is the times the connection has been
    /// reused, this use included (for `max-reuse`, given back to [`put`](Self::put)).
    pub fn take(&self, be: usize, srv: usize, check: bool, server: &ServerState) -> Option<(Transport, u32, u32)> {
        let mut idle = self.idle.borrow_mut();
        let list = idle.get_mut(be)?.servers.get_mut(srv)?;
        let now = server.conn_epoch();
        while let Some((epoch, reuses, c)) = list.pop() {
            server.pool.idle.fetch_sub(1, Ordering::Relaxed);
            if epoch == now && (!(check || c.may_have_spoken()) || still_open(&c)) {
                return Some((c, epoch, reuses + 1));
            }
        }
        None
    }

    /// Keeps `c` (opened under `epoch`, reused `reuses` times) for reuse unless the server moved
    /// or was deleted since, has `pool-max-conn` idle connections already, or `c` was reused
    /// `max-reuse` times (then `c` is closed).
    pub fn put(&self, be: usize, state: &BackendState, srv: usize, c: Transport, epoch: u32, reuses: u32) {
        let server = &state.servers[srv];
        if server.pool.max_reuse.is_some_and(|m| reuses >= m) {
            return;
        }
        let mut idle = self.idle.borrow_mut();
        if idle.len() <= be {
            idle.resize_with(be + 1, BackendIdle::default);
        }
        let b = &mut idle[be];
        let changes = state.conn_changes.load(Ordering::Relaxed);
        if changes != b.seen_changes {
            b.seen_changes = changes;
            sweep(b, state);
        }
        if epoch != server.conn_epoch() {
            return;
        }
        let kept = server.pool.idle.fetch_add(1, Ordering::Relaxed);
        if server.pool.max.is_some_and(|m| kept >= m) {
            server.pool.idle.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        if b.servers.len() <= srv {
            b.servers.resize_with(srv + 1, Vec::new);
        }
        b.servers[srv].push((epoch, reuses, c));
    }

    pub fn idle_count(&self) -> usize {
        self.idle.borrow().iter().flat_map(|b| &b.servers).map(Vec::len).sum()
    }
}

/// Closes the backend's idle connections whose server moved or was deleted.
fn sweep(b: &mut BackendIdle, state: &BackendState) {
    for (i, list) in b.servers.iter_mut().enumerate() {
        let Some(s) = state.servers.get(i) else { continue };
        let now = s.conn_epoch();
        let before = list.len();
        list.retain(|(epoch, _, _)| *epoch == now);
        s.pool.idle.fetch_sub(before - list.len(), Ordering::Relaxed);
    }
}

/// False when the server closed (or sent unexpected bytes on) an idle connection: a
/// non-blocking peek that finds end of stream or data means it cannot carry a new request.
fn still_open(c: &Transport) -> bool {
    use nix::sys::socket::{MsgFlags, recv};
    use std::os::fd::{AsFd, AsRawFd};
    // On io_uring a multishot receive may have taken those bytes (or the end) already.
    if c.read_ahead() != crate::runtime::uring::Ahead::Nothing {
        return false;
    }
    let mut b = [0u8; 1];
    let fd = c.socket().as_fd().as_raw_fd();
    matches!(recv(fd, &mut b, MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT), Err(nix::errno::Errno::EAGAIN))
}
