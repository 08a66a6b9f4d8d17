//! The io_uring backend: one ring per worker, driven from the worker's tokio `current_thread`
//! runtime, and [`UringConn`], its implementation of the session I/O trait [`Conn`].
//!
//! How it is woken: the ring's own descriptor is registered with tokio's reactor through
//! [`AsyncFd`] (the kernel reports it readable while the completion queue holds entries). One
//! driver task per worker submits what operations queued since it last ran (so the operations of
//! every task that ran in one scheduler tick go to the kernel in one `io_uring_enter`), reaps the
//! completion queue and wakes the futures waiting on them. The worker stays one runtime; there is no
//! second event loop and no thread.
//!
//! Ownership: every operation lives in a slot of the driver until its completion arrives. The slot
//! holds whatever the kernel may touch (the read or write buffer, the socket address), so dropping
//! an operation's future mid-flight is always safe: the slot becomes an orphan, an `ASYNC_CANCEL`
//! is queued for it, and the buffer is freed only when the kernel's completion for it arrives.
//! What a dropped read would have read is lost with it, as with any cancelled `recv`: session code
//! drops a read only when it ends the connection (a head wait past its deadline, a killed
//! session, `abortonclose`).
//!
//! Choices made here:
//! - Reads go into the caller's own buffer (`IORING_OP_RECV` into the spare capacity of the
//!   `Vec` the session passes), not into a provided buffer ring. Session code keeps one buffer per
//!   connection and parses heads in place in it; a provided buffer would have to be copied into
//!   that buffer (a copy per read) or the sessions rewritten around borrowed kernel buffers. The
//!   memory a provided buffer ring would save is the buffer of an idle connection: idle
//!   connections that never sent a byte are parked outside the ring (`runtime::park`) without one.
//! - An HTTP session's waits for a head are the `RECV` itself, bounded by the session's deadline
//!   (`Transport::completes_reads`; a read dropped at the deadline ends the connection, so what
//!   it would have read does not matter): one ring operation per wait, where a readiness poll and
//!   then a `recv` cost an operation and a system call. The `RECV` carries
//!   `IORING_RECVSEND_POLL_FIRST` (Linux 5.19; dropped for good after one `EINVAL`): it is
//!   submitted when the socket was just found empty, so the kernel arms its poll at once instead
//!   of first trying a receive that fails.
//! - Accept is single-shot `IORING_OP_ACCEPT`, re-armed by the accept loop, not multishot: the
//!   accept loop stops accepting while `maxconn` or a rate limit is full so that new connections
//!   wait in the kernel's backlog (and another worker's listener can take them); a multishot
//!   accept would keep taking connections the worker then holds unserved.
//! - Timeouts stay tokio timers around the futures: a timed-out operation is dropped, which
//!   cancels it as above. Linked timeouts would only duplicate that.
//! - Readiness (`ready`, used by splice, by body transfers and by the first-bytes wait of idle
//!   HTTP connections) is a one-shot `IORING_OP_POLL_ADD`; `try_io` then runs the non-blocking
//!   system call directly. A read right after a poll reported the socket readable is one direct
//!   `recv(MSG_DONTWAIT)`: the data is there, and a `RECV` operation would cost a turn of the
//!   driver task for a completion the kernel makes inline. Splice stays `splice(2)` with
//!   `SPLICE_F_NONBLOCK` (io_uring's splice parks a kernel worker thread per pending operation).
//! - The ring is made with `COOP_TASKRUN` and `SINGLE_ISSUER` where the kernel has them: one
//!   thread submits and reaps, so completions need not interrupt it (bench/RESULTS.md has the
//!   effect on system time per request).
//! - Sockets stay `O_NONBLOCK` (readiness users call `recv`/`splice` directly); an operation that
//!   completes with `EAGAIN` or `EINPROGRESS` waits for readiness through the ring and retries.
//! - Closing is `IORING_OP_CLOSE`, queued with the other submissions of the tick.
//!
//! Unsafe code: only here. The invariant every `unsafe` block keeps is the one above: a pointer
//! handed to the kernel points into memory owned by the operation's slot, which is freed only after
//! the kernel's completion for that operation has been reaped (or never, when the ring is torn
//! down with operations in flight: their memory is leaked rather than freed under the kernel).

#![allow(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use io_uring::{IoUring, opcode, squeue, types};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::io::Conn;

/// Entries of each worker's submission queue. Operations beyond it are submitted early.
const RING_ENTRIES: u32 = 1024;
/// The `user_data` of completions nobody waits for (cancellations, closes).
const IGNORED: u64 = u64::MAX;
/// `IORING_RECVSEND_POLL_FIRST` (Linux 5.19): the `RECV` arms its poll without trying the socket
/// first (the io-uring crate does not export the constant).
const RECVSEND_POLL_FIRST: u16 = 1;

/// The opcodes a worker needs; `auto` falls back to epoll when the kernel lacks one.
const NEEDED: &[(u8, &str)] = &[
    (opcode::Recv::CODE, "RECV"),
    (opcode::Send::CODE, "SEND"),
    (opcode::Accept::CODE, "ACCEPT"),
    (opcode::Connect::CODE, "CONNECT"),
    (opcode::PollAdd::CODE, "POLL_ADD"),
    (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
    (opcode::Close::CODE, "CLOSE"),
];

/// Creates a ring and checks it has every operation the backend uses; `Err` says why not.
pub fn probe() -> Result<(), String> {
    let ring = IoUring::new(8).map_err(|e| format!("io_uring_setup failed: {e}"))?;
    let mut probe = io_uring::Probe::new();
    ring.submitter().register_probe(&mut probe).map_err(|e| format!("io_uring probe failed: {e}"))?;
    let missing: Vec<&str> = NEEDED.iter().filter(|(c, _)| !probe.is_supported(*c)).map(|(_, n)| *n).collect();
    if missing.is_empty() { Ok(()) } else { Err(format!("the kernel's io_uring lacks {}", missing.join(", "))) }
}

/// What an operation keeps alive for the kernel until its completion.
enum Hold {
    None,
    Buf(Vec<u8>),
    Addr(Box<socket2::SockAddr>),
    Peer(Box<(libc::sockaddr_storage, libc::socklen_t)>),
}

enum State {
    /// Submitted; the waker of the future waiting for it, once polled.
    Pending(Option<Waker>),
    /// Completed with this result, not yet taken by its future.
    Done(i32),
    /// Its future was dropped: the slot is freed when the completion arrives.
    Orphan,
}

struct Slot {
    state: State,
    hold: Hold,
}

/// One worker's ring and the operations in flight on it.
pub struct Driver {
    /// The ring's descriptor in tokio's reactor: readable while completions wait. Declared before
    /// `ring` so that it is deregistered before the ring's descriptor closes.
    cq_ready: AsyncFd<RawFd>,
    ring: RefCell<IoUring>,
    slots: RefCell<Vec<Option<Slot>>>,
    free: RefCell<Vec<usize>>,
    /// Entries were pushed since the last submit.
    unsubmitted: Cell<bool>,
    /// The driver task, woken to submit.
    task: RefCell<Option<Waker>>,
    /// `RECV` takes `IORING_RECVSEND_POLL_FIRST`; cleared for good when the kernel refuses it.
    poll_first: Cell<bool>,
}

thread_local! {
    static DRIVER: RefCell<Option<Rc<Driver>>> = const { RefCell::new(None) };
}

/// The ring of the current worker thread, when it runs the uring backend.
pub fn current() -> Option<Rc<Driver>> {
    DRIVER.with(|d| d.borrow().clone())
}

/// Creates this thread's ring and spawns its driver task on the current `LocalRuntime`/`LocalSet`.
pub fn start() -> io::Result<()> {
    // COOP_TASKRUN: completions are posted when this thread next enters the kernel (it makes
    // system calls all the time, and a thread asleep in the reactor is woken) instead of by an
    // interrupt of the running thread per completion, which only pays where other threads reap
    // the ring. SINGLE_ISSUER: only this thread submits, which spares the kernel some locking.
    // Kernels before 6.0 refuse a flag: then the ring is made with fewer.
    let ring = match IoUring::builder().setup_coop_taskrun().setup_single_issuer().build(RING_ENTRIES) {
        Ok(r) => r,
        Err(_) => match IoUring::builder().setup_coop_taskrun().build(RING_ENTRIES) {
            Ok(r) => r,
            Err(_) => IoUring::builder().build(RING_ENTRIES)?,
        },
    };
    // SAFETY: the ring's descriptor stays open as long as the `AsyncFd`: both live in the driver,
    // and the `AsyncFd` is dropped first.
    let cq_ready = unsafe { AsyncFd::register_with_interest(ring.as_raw_fd(), Interest::READABLE) }.map_err(|e| e.into_parts().1)?;
    let d = Rc::new(Driver {
        ring: RefCell::new(ring),
        slots: RefCell::new(Vec::new()),
        free: RefCell::new(Vec::new()),
        cq_ready,
        unsubmitted: Cell::new(false),
        task: RefCell::new(None),
        poll_first: Cell::new(true),
    });
    DRIVER.with(|c| *c.borrow_mut() = Some(d.clone()));
    tokio::task::spawn_local(std::future::poll_fn(move |cx| d.drive(cx)));
    Ok(())
}

/// Forgets this thread's ring (at worker exit, after its runtime is gone).
pub fn stop() {
    DRIVER.with(|c| c.borrow_mut().take());
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Operations still in flight may be written by the kernel until the ring is torn down:
        // their memory is leaked, never freed under it.
        std::mem::forget(std::mem::take(self.slots.get_mut()));
    }
}

impl Driver {
    /// The driver task: submits, reaps, and waits for the ring to become readable. Never ends.
    fn drive(&self, cx: &mut Context<'_>) -> Poll<()> {
        {
            let mut t = self.task.borrow_mut();
            if !t.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *t = Some(cx.waker().clone());
            }
        }
        loop {
            if self.unsubmitted.replace(false) {
                // EBUSY/EAGAIN (completion queue overflow): the reap below makes room, and the
                // entries stay queued for the next turn.
                if self.ring.borrow().submit().is_err() {
                    self.unsubmitted.set(true);
                }
            }
            let reaped = self.reap();
            match self.cq_ready.poll_read_ready(cx) {
                Poll::Ready(Ok(mut g)) => g.clear_ready(),
                Poll::Ready(Err(_)) => return Poll::Pending,
                Poll::Pending if reaped == 0 && !self.unsubmitted.get() => return Poll::Pending,
                Poll::Pending => {}
            }
        }
    }

    fn reap(&self) -> usize {
        let mut n = 0;
        let mut ring = self.ring.borrow_mut();
        let mut slots = self.slots.borrow_mut();
        for cqe in ring.completion() {
            n += 1;
            let ud = cqe.user_data();
            if ud == IGNORED {
                continue;
            }
            let idx = ud as usize;
            let Some(slot) = slots.get_mut(idx).and_then(|s| s.as_mut()) else { continue };
            match std::mem::replace(&mut slot.state, State::Done(cqe.result())) {
                State::Pending(w) => {
                    if let Some(w) = w {
                        w.wake();
                    }
                }
                State::Orphan => {
                    // An accept cancelled too late still made a connection: nobody owns it.
                    if let Some(Slot { hold: Hold::Peer(_), .. }) = &slots[idx]
                        && cqe.result() >= 0
                    {
                        // SAFETY: the kernel just returned this descriptor to nobody else.
                        drop(unsafe { OwnedFd::from_raw_fd(cqe.result()) });
                    }
                    slots[idx] = None;
                    self.free.borrow_mut().push(idx);
                }
                State::Done(_) => {}
            }
        }
        n
    }

    /// Queues `entry` for the next submit.
    ///
    /// # Safety
    /// Every pointer in `entry` stays valid until its completion is reaped: it points into the
    /// slot's `hold` or into memory that outlives the ring.
    unsafe fn push(&self, entry: squeue::Entry) {
        loop {
            // SAFETY: the caller keeps the entry's memory valid until completion.
            let full = unsafe { self.ring.borrow_mut().submission().push(&entry) }.is_err();
            if !full {
                break;
            }
            // A full submission queue: hand what is queued to the kernel now. `EBUSY` (the
            // completion queue overflowed) wants completions reaped first. Callers hold no borrow
            // of the slots here, and waking a task only schedules it.
            if self.ring.borrow().submit().is_err() {
                self.reap();
            }
        }
        if !self.unsubmitted.replace(true)
            && let Some(w) = self.task.borrow().as_ref()
        {
            w.wake_by_ref();
        }
    }

    /// Starts an operation built by `make` from the slot's held memory.
    fn start(self: &Rc<Self>, hold: Hold, make: impl FnOnce(&mut Hold) -> squeue::Entry) -> Op {
        let idx = {
            let mut slots = self.slots.borrow_mut();
            let idx = match self.free.borrow_mut().pop() {
                Some(i) => i,
                None => {
                    slots.push(None);
                    slots.len() - 1
                }
            };
            slots[idx] = Some(Slot { state: State::Pending(None), hold });
            idx
        };
        let entry = {
            let mut slots = self.slots.borrow_mut();
            let slot = slots[idx].as_mut().expect("slot just filled");
            // The held memory is boxed or a Vec's heap block: moving the slot does not move it.
            make(&mut slot.hold).user_data(idx as u64)
        };
        // SAFETY: the entry points into `slots[idx].hold`, freed only after its completion.
        unsafe { self.push(entry) };
        Op { d: self.clone(), idx, done: false }
    }

    /// Queues a close of `fd`, which this call owns.
    fn close(&self, fd: OwnedFd) {
        let e = opcode::Close::new(types::Fd(fd.into_raw_fd())).build().user_data(IGNORED);
        // SAFETY: a close points to no memory.
        unsafe { self.push(e) };
    }
}

/// One operation in flight; resolves to the kernel's result and the memory it held.
struct Op {
    d: Rc<Driver>,
    idx: usize,
    done: bool,
}

impl Future for Op {
    type Output = (i32, Hold);
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<(i32, Hold)> {
        let mut slots = self.d.slots.borrow_mut();
        let slot = slots[self.idx].as_mut().expect("an op's slot lives until the op ends");
        match &mut slot.state {
            State::Done(r) => {
                let r = *r;
                let slot = slots[self.idx].take().expect("checked");
                drop(slots);
                self.d.free.borrow_mut().push(self.idx);
                self.done = true;
                Poll::Ready((r, slot.hold))
            }
            State::Pending(w) => {
                if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *w = Some(cx.waker().clone());
                }
                Poll::Pending
            }
            State::Orphan => unreachable!("an orphan has no future"),
        }
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut slots = self.d.slots.borrow_mut();
        let Some(slot) = slots[self.idx].as_mut() else { return };
        if let State::Done(_) = slot.state {
            // Completed but never taken: nothing is in flight.
            slots[self.idx] = None;
            drop(slots);
            self.d.free.borrow_mut().push(self.idx);
            return;
        }
        slot.state = State::Orphan;
        drop(slots);
        let e = opcode::AsyncCancel::new(self.idx as u64).build().user_data(IGNORED);
        // SAFETY: a cancellation points to no memory.
        unsafe { self.d.push(e) };
    }
}

fn os_err(r: i32) -> io::Error {
    io::Error::from_raw_os_error(-r)
}

fn poll_mask(interest: Interest) -> u32 {
    let mut m = 0;
    if interest.is_readable() {
        m |= (libc::POLLIN | libc::POLLRDHUP) as u32;
    }
    if interest.is_writable() {
        m |= libc::POLLOUT as u32;
    }
    m
}

/// Waits through the ring until `fd` is ready for `interest` (or in error, or hung up); the poll
/// events that came.
async fn poll_ready(d: &Rc<Driver>, fd: RawFd, interest: Interest) -> io::Result<u32> {
    let mask = poll_mask(interest);
    let (r, _) = d.start(Hold::None, |_| opcode::PollAdd::new(types::Fd(fd), mask).build()).await;
    if r < 0 { Err(os_err(r)) } else { Ok(r as u32) }
}

/// A connected stream socket on the uring backend.
pub struct UringConn {
    fd: Option<OwnedFd>,
    d: Rc<Driver>,
    tcp: bool,
    /// A readiness poll reported the socket readable and no read has run since, nor an attempt
    /// through `try_io` found it empty.
    readable: Cell<bool>,
    /// A readiness poll reported the socket writable and no attempt through `try_io` found it
    /// full since.
    writable: Cell<bool>,
    /// A read just came back short ([`Conn::drained`]): the next `RECV` waits for data first.
    empty: Cell<bool>,
}

impl std::fmt::Debug for UringConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringConn").field("fd", &self.raw()).field("tcp", &self.tcp).finish()
    }
}

impl UringConn {
    fn raw(&self) -> RawFd {
        self.fd.as_ref().map_or(-1, |f| f.as_raw_fd())
    }

    /// A connection on `d` over an accepted socket that waited outside the ring
    /// (`runtime::park`).
    pub fn from_fd(d: Rc<Driver>, fd: OwnedFd, tcp: bool) -> UringConn {
        UringConn { fd: Some(fd), d, tcp, readable: Cell::new(false), writable: Cell::new(false), empty: Cell::new(false) }
    }

    /// The socket, out of the ring's hands (nothing is in flight on a connection no session has
    /// used yet), to be parked.
    pub fn into_fd(mut self) -> Option<OwnedFd> {
        self.fd.take()
    }

    /// True for a TCP socket (false for a UNIX one).
    pub fn is_tcp(&self) -> bool {
        self.tcp
    }

    /// One non-blocking send attempt, without the ring: `WouldBlock` when the socket buffer is full.
    pub fn try_write_now(&self, buf: &[u8]) -> io::Result<usize> {
        self.try_io(Interest::WRITABLE, || {
            nix::sys::socket::send(self.raw(), buf, nix::sys::socket::MsgFlags::MSG_DONTWAIT | nix::sys::socket::MsgFlags::MSG_NOSIGNAL)
                .map_err(io::Error::from)
        })
    }

    /// One non-blocking vectored send attempt, without the ring.
    pub fn try_write_vectored_now(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.try_io(Interest::WRITABLE, || socket2::SockRef::from(self).send_vectored_with_flags(bufs, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL))
    }

    /// One non-blocking read attempt, without the ring: `WouldBlock` when nothing is there.
    pub fn try_read_now(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.try_io(Interest::READABLE, || nix::sys::socket::recv(self.raw(), buf, nix::sys::socket::MsgFlags::MSG_DONTWAIT).map_err(io::Error::from))
    }

    /// Connects a new non-blocking socket to `addr` through the ring.
    pub async fn connect(d: &Rc<Driver>, addr: &socket2::SockAddr) -> io::Result<UringConn> {
        let tcp = addr.is_ipv4() || addr.is_ipv6();
        let sock = socket2::Socket::new(addr.domain(), socket2::Type::STREAM.nonblocking().cloexec(), None)?;
        let c = UringConn { fd: Some(sock.into()), d: d.clone(), tcp, readable: Cell::new(false), writable: Cell::new(false), empty: Cell::new(false) };
        let fd = c.raw();
        let (r, _) = d
            .start(Hold::Addr(Box::new(addr.clone())), |h| {
                let Hold::Addr(a) = h else { unreachable!() };
                opcode::Connect::new(types::Fd(fd), a.as_ptr().cast(), a.len()).build()
            })
            .await;
        if r == -libc::EINPROGRESS || r == -libc::EAGAIN || r == -libc::EALREADY {
            poll_ready(d, fd, Interest::WRITABLE).await?;
            if let Some(e) = socket2::SockRef::from(&c).take_error()? {
                return Err(e);
            }
        } else if r < 0 {
            return Err(os_err(r));
        }
        Ok(c)
    }
}

impl AsFd for UringConn {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_ref().expect("open until dropped").as_fd()
    }
}

impl Drop for UringConn {
    fn drop(&mut self) {
        if let Some(fd) = self.fd.take() {
            self.d.close(fd);
        }
    }
}

impl Conn for UringConn {
    async fn read(&self, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        if buf.capacity() == buf.len() {
            buf.reserve(16 * 1024);
        }
        let fd = self.raw();
        if self.readable.replace(false) {
            // Session code waits for readiness before it reads, so the data is there: one
            // `recv` now costs less than a ring round trip (an `io_uring_enter` and a turn of the
            // driver task) for an operation the kernel would complete inline anyway.
            let spare = buf.capacity() - buf.len();
            // SAFETY: `recv` writes at most `spare` bytes into the Vec's spare capacity.
            let n = unsafe { libc::recv(fd, buf.as_mut_ptr().add(buf.len()).cast(), spare, libc::MSG_DONTWAIT) };
            if n >= 0 {
                // SAFETY: the kernel initialised `n` bytes of the spare capacity.
                unsafe { buf.set_len(buf.len() + n as usize) };
                return (Ok(n as usize), buf);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::WouldBlock {
                return (Err(e), buf);
            }
        }
        loop {
            // Only where the socket was just found empty: a first read on a new connection
            // (its request is usually there already) receives at once.
            let poll_first = self.empty.replace(false) && self.d.poll_first.get();
            let (r, hold) = self
                .d
                .start(Hold::Buf(buf), |h| {
                    let Hold::Buf(b) = h else { unreachable!() };
                    let spare = (b.capacity() - b.len()).min(u32::MAX as usize) as u32;
                    // SAFETY (of the pointer): the spare capacity of a Vec the slot owns.
                    // The socket was just found empty: wait for data before receiving instead
                    // of a receive that fails and then a wait.
                    let flags = if poll_first { RECVSEND_POLL_FIRST } else { 0 };
                    opcode::Recv::new(types::Fd(fd), unsafe { b.as_mut_ptr().add(b.len()) }, spare).ioprio(flags).build()
                })
                .await;
            let Hold::Buf(b) = hold else { unreachable!() };
            buf = b;
            if r == -libc::EINVAL && poll_first {
                // A kernel before 5.19 refuses the flag: never use it again.
                self.d.poll_first.set(false);
                continue;
            }
            if r == -libc::EAGAIN {
                if let Err(e) = poll_ready(&self.d, fd, Interest::READABLE).await {
                    return (Err(e), buf);
                }
                continue;
            }
            if r < 0 {
                return (Err(os_err(r)), buf);
            }
            let n = r as usize;
            // SAFETY: the kernel initialised `n` bytes of the spare capacity.
            unsafe { buf.set_len(buf.len() + n) };
            return (Ok(n), buf);
        }
    }

    async fn write(&self, mut buf: Vec<u8>, from: usize) -> (io::Result<usize>, Vec<u8>) {
        let fd = self.raw();
        loop {
            let (r, hold) = self
                .d
                .start(Hold::Buf(buf), |h| {
                    let Hold::Buf(b) = h else { unreachable!() };
                    let rest = &b[from..];
                    opcode::Send::new(types::Fd(fd), rest.as_ptr(), rest.len().min(u32::MAX as usize) as u32).flags(libc::MSG_NOSIGNAL).build()
                })
                .await;
            let Hold::Buf(b) = hold else { unreachable!() };
            buf = b;
            if r == -libc::EAGAIN {
                self.writable.set(false);
                if let Err(e) = poll_ready(&self.d, fd, Interest::WRITABLE).await {
                    return (Err(e), buf);
                }
                continue;
            }
            return (if r < 0 { Err(os_err(r)) } else { Ok(r as usize) }, buf);
        }
    }

    fn shutdown_write(&self) -> io::Result<()> {
        socket2::SockRef::from(self).shutdown(std::net::Shutdown::Write)
    }

    async fn ready(&self, interest: Interest) -> io::Result<()> {
        // Readiness is cached as tokio caches it on epoll: once reported, it holds until an
        // attempt through `try_io` meets `WouldBlock`. A splice loop moving a large transfer so
        // polls the ring only when a socket runs dry or full, not once per chunk.
        if (!interest.is_readable() || self.readable.get()) && (!interest.is_writable() || self.writable.get()) {
            return Ok(());
        }
        let events = poll_ready(&self.d, self.raw(), interest).await?;
        let (err, rd) = ((libc::POLLERR | libc::POLLHUP) as u32, (libc::POLLIN | libc::POLLRDHUP) as u32);
        if interest.is_readable() && events & (rd | err) != 0 {
            self.readable.set(true);
        }
        if interest.is_writable() && events & (libc::POLLOUT as u32 | err) != 0 {
            self.writable.set(true);
        }
        Ok(())
    }

    fn try_io<R>(&self, interest: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        let r = f();
        if r.as_ref().is_err_and(|e| e.kind() == io::ErrorKind::WouldBlock) {
            if interest.is_readable() {
                self.readable.set(false);
            }
            if interest.is_writable() {
                self.writable.set(false);
            }
        }
        r
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.as_fd()
    }

    fn drained(&self) {
        self.readable.set(false);
        self.empty.set(true);
    }
}

/// A listening socket accepted from through the ring.
pub struct UringListener {
    fd: OwnedFd,
    d: Rc<Driver>,
    tcp: bool,
}

impl UringListener {
    pub fn new(d: Rc<Driver>, fd: OwnedFd, tcp: bool) -> UringListener {
        UringListener { fd, d, tcp }
    }

    /// Accepts one connection (non-blocking, close-on-exec) and its peer's address (TCP only).
    pub async fn accept(&self) -> io::Result<(UringConn, Option<SocketAddr>)> {
        let fd = self.fd.as_raw_fd();
        loop {
            // SAFETY (of zeroed): a sockaddr_storage of zeros is a valid value.
            let storage = Box::new((unsafe { std::mem::zeroed::<libc::sockaddr_storage>() }, std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t));
            let (r, hold) = self
                .d
                .start(Hold::Peer(storage), |h| {
                    let Hold::Peer(p) = h else { unreachable!() };
                    opcode::Accept::new(types::Fd(fd), (&raw mut p.0).cast(), &raw mut p.1).flags(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC).build()
                })
                .await;
            if r == -libc::EAGAIN {
                poll_ready(&self.d, fd, Interest::READABLE).await?;
                continue;
            }
            if r < 0 {
                return Err(os_err(r));
            }
            // SAFETY: the kernel returned a new descriptor that nothing else owns.
            let conn = UringConn {
                fd: Some(unsafe { OwnedFd::from_raw_fd(r) }),
                d: self.d.clone(),
                tcp: self.tcp,
                readable: Cell::new(false),
                writable: Cell::new(false),
                empty: Cell::new(false),
            };
            let Hold::Peer(p) = hold else { unreachable!() };
            let peer = if self.tcp { sockaddr_to_std(&p.0) } else { None };
            return Ok((conn, peer));
        }
    }
}

fn sockaddr_to_std(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match s.ss_family as i32 {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::from((u32::from_be(a.sin_addr.s_addr).to_be_bytes(), u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(a.sin6_addr.s6_addr.into(), u16::from_be(a.sin6_port), a.sin6_flowinfo, a.sin6_scope_id)))
        }
        _ => None,
    }
}

/// Which backend the workers of this process run: 0 not chosen yet, 1 epoll, 2 uring.
static ACTIVE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Chooses the backend for `wanted` (the command line's override, else the `io-backend` keyword):
/// `auto` probes the ring and falls back to epoll, returning the reason in `Ok(Some(_))` so the
/// caller logs it once; `uring` without a usable ring is an error.
pub fn select(wanted: super::config::IoBackend) -> Result<Option<String>, String> {
    use super::config::IoBackend;
    let (uring, why) = match wanted {
        IoBackend::Epoll => (false, None),
        IoBackend::Uring => match probe() {
            Ok(()) => (true, None),
            Err(e) => return Err(format!("io-backend uring: {e}")),
        },
        IoBackend::Auto => match probe() {
            Ok(()) => (true, None),
            Err(e) => (false, Some(format!("io-backend auto: io_uring is not usable ({e}); using epoll"))),
        },
    };
    ACTIVE.store(if uring { 2 } else { 1 }, std::sync::atomic::Ordering::Relaxed);
    Ok(why)
}

/// True when workers run the uring backend.
pub fn selected() -> bool {
    ACTIVE.load(std::sync::atomic::Ordering::Relaxed) == 2
}

/// The name of the backend the workers run (`show info`), `epoll` before [`select`] ran.
pub fn active_name() -> &'static str {
    if selected() { "uring" } else { "epoll" }
}
