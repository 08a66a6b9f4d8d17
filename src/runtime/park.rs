//! Parking of idle new connections: an HTTP client that connected but has sent nothing yet is
//! held here, not in a task of its own, until its first bytes arrive or `timeout http-request`
//! runs out.
//!
//! An idle connection then costs one slot of this table (the socket, the client's address, the
//! accept time and the `maxconn` slots: about a hundred bytes) and an entry in a kernel epoll
//! set, instead of a tokio task (its future, header and timer), a tokio I/O registration and a
//! session entry: what a flood of idle connections, or many idle browsers, would otherwise hold
//! in memory. When the first bytes arrive, the worker starts the connection's session as if it
//! had just been accepted.
//!
//! Each worker has one table with its own epoll instance, registered with the worker's reactor
//! as one readable descriptor; sockets are added one-shot, so a woken socket is never reported
//! twice. Deadlines are a min-heap of `(deadline, slot, generation)`: a slot reused since is
//! told apart by its generation and its old deadline is skipped. Nothing is shared between
//! workers, so there is no lock. Written here because no crate keeps sockets outside the
//! reactor's own registrations; it is the hot path for connection floods. The one `unsafe` is
//! tokio's registration of the epoll descriptor, which this module owns for as long as it is
//! registered.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

/// A parked connection: what is needed to start its session later.
#[derive(Debug)]
pub struct Parked {
    pub stream: std::net::TcpStream,
    pub peer: Option<SocketAddr>,
    pub fe: u32,
    pub bind: u32,
    /// When it was accepted: `timeout http-request` runs from there.
    pub accepted: std::time::Instant,
    /// Its global, frontend and bind line `maxconn` slots.
    pub permits: super::limit::Permits,
}

struct Slot {
    generation: u32,
    parked: Option<Parked>,
}

/// The epoll instance, as tokio's `AsyncFd` wants it.
struct Ep(Epoll);

impl AsRawFd for Ep {
    fn as_raw_fd(&self) -> RawFd {
        self.0.0.as_raw_fd()
    }
}

/// One worker's parked connections.
pub struct Parking {
    ep: AsyncFd<Ep>,
    slots: RefCell<Vec<Slot>>,
    free: RefCell<Vec<u32>>,
    deadlines: RefCell<BinaryHeap<Reverse<(Instant, u32, u32)>>>,
    /// Woken when a deadline earlier than every other one is added.
    kick: tokio::sync::Notify,
    count: Cell<usize>,
}

impl Parking {
    /// A table for the calling worker; must be called inside its runtime.
    pub fn new() -> std::io::Result<Parking> {
        let ep = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        // SAFETY: `Ep` owns the epoll descriptor (an `OwnedFd`) for as long as the `AsyncFd`
        // lives and always returns that same descriptor; nothing else closes it.
        #[allow(unsafe_code)]
        let ep = unsafe { AsyncFd::register_with_interest(Ep(ep), tokio::io::Interest::READABLE) }.map_err(std::io::Error::from)?;
        Ok(Parking {
            ep,
            slots: RefCell::new(Vec::new()),
            free: RefCell::new(Vec::new()),
            deadlines: RefCell::new(BinaryHeap::new()),
            kick: tokio::sync::Notify::new(),
            count: Cell::new(0),
        })
    }

    /// Connections parked now.
    pub fn len(&self) -> usize {
        self.count.get()
    }

    pub fn is_empty(&self) -> bool {
        self.count.get() == 0
    }

    /// Parks `p` until it is readable (data, end of stream or error) or `timeout` after its
    /// accept; gives it back (boxed: the rare path pays for the allocation, not the common one)
    /// when the kernel refuses to watch it.
    pub fn park(&self, p: Parked, timeout: Duration) -> Result<(), Box<Parked>> {
        let deadline = Instant::from_std(p.accepted) + timeout;
        let mut slots = self.slots.borrow_mut();
        let idx = match self.free.borrow_mut().pop() {
            Some(i) => i,
            None => {
                slots.push(Slot { generation: 0, parked: None });
                (slots.len() - 1) as u32
            }
        };
        let slot = &mut slots[idx as usize];
        let data = (u64::from(idx) << 32) | u64::from(slot.generation);
        let ev = EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP | EpollFlags::EPOLLONESHOT, data);
        if self.ep.get_ref().0.add(&p.stream, ev).is_err() {
            self.free.borrow_mut().push(idx);
            return Err(Box::new(p));
        }
        slot.parked = Some(p);
        self.count.set(self.count.get() + 1);
        let mut dl = self.deadlines.borrow_mut();
        let earliest = dl.peek().is_none_or(|Reverse((t, _, _))| deadline < *t);
        dl.push(Reverse((deadline, idx, slot.generation)));
        if earliest {
            self.kick.notify_one();
        }
        Ok(())
    }

    fn take(&self, idx: u32, generation: u32) -> Option<Parked> {
        let mut slots = self.slots.borrow_mut();
        let slot = slots.get_mut(idx as usize)?;
        if slot.generation != generation {
            return None;
        }
        let p = slot.parked.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.borrow_mut().push(idx);
        self.count.set(self.count.get() - 1);
        Some(p)
    }

    /// Runs the table: `ready` gets each connection whose first bytes (or end) arrived,
    /// `expired` each one whose deadline passed. Returns only if the epoll instance fails.
    pub async fn run(&self, mut ready: impl FnMut(Parked), mut expired: impl FnMut(Parked)) {
        let mut events = vec![EpollEvent::empty(); 64];
        loop {
            let next = self.deadlines.borrow().peek().map(|Reverse((t, _, _))| *t);
            let sleep = async {
                match next {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                g = self.ep.readable() => {
                    let Ok(mut g) = g else { return };
                    match self.ep.get_ref().0.wait(&mut events, 0u8) {
                        Ok(0) | Err(_) => g.clear_ready(),
                        Ok(n) => {
                            for e in &events[..n] {
                                let d = e.data();
                                if let Some(p) = self.take((d >> 32) as u32, d as u32) {
                                    ready(p);
                                }
                            }
                        }
                    }
                }
                () = sleep => {
                    let now = Instant::now();
                    loop {
                        let top = self.deadlines.borrow().peek().copied();
                        match top {
                            Some(Reverse((t, idx, generation))) if t <= now => {
                                self.deadlines.borrow_mut().pop();
                                if let Some(p) = self.take(idx, generation) {
                                    expired(p);
                                }
                            }
                            _ => break,
                        }
                    }
                }
                () = self.kick.notified() => {}
            }
        }
    }
}
