//! The io_uring backend: one ring per worker, driven from the worker's tokio `current_thread`
//! runtime, and [`UringConn`], its implementation of the session I/O trait [`Conn`].
//!
//! How it is woken: the ring is made with `DEFER_TASKRUN` (Linux 6.1) and an eventfd registered
//! with it sits in tokio's reactor through [`AsyncFd`]. The kernel then does the completion work
//! of operations (the receive of a `RECV` whose poll fired, posting completions) only when this
//! thread asks, in `io_uring_enter(GETEVENTS)`, and signals the eventfd when such work first
//! comes. One driver task per worker submits what operations queued since it last ran (so the
//! operations of every task that ran in one scheduler tick go to the kernel in one
//! `io_uring_enter`), runs the kernel's deferred work when the eventfd fired, reaps the completion
//! queue and wakes the futures waiting on them. The worker stays one runtime; there is no second
//! event loop and no thread. On kernels without `DEFER_TASKRUN` the ring is made with
//! `COOP_TASKRUN` (or nothing) and its own descriptor is the reactor's source instead.

//! Choices made here:
//! - Reads go into the caller's own buffer (`IORING_OP_RECV` into the spare capacity of the
//!   `Vec` the session passes), except an HTTP session's waits for a later head on a keep-alive
//!   connection ([`UringConn::head_wait`] after a read found the socket empty): that wait starts
//!   a multishot `RECV` into the worker's provided buffer ring, which stays armed for the
//!   connection's later requests and responses. A head then costs one completion and a copy of
//!   its bytes into the session's buffer, where a `RECV` per wait armed and disarmed the socket's
//!   poll each time. Bytes received ahead wait in the connection's slot, in ring buffers, until a
//!   read takes them; at most `STREAM_CAP` completions per connection (then the receive is
//!   cancelled and the socket itself read, so one session that does not read cannot take every
//!   buffer, and TCP flow control holds its peer back). Out of buffers (`ENOBUFS`) the receive
//!   ends and reads fall back to `RECV` the same way. Readiness and `try_io` do not see bytes read
//!   ahead: a session that will splice (a tunnel after `101`) first calls
//!   [`UringConn::stop_read_ahead`], and peeks (a client leaving under `abortonclose`, an idle
//!   pooled server connection) look at [`UringConn::read_ahead`] first. Sessions keep one buffer
//!   per connection and parse heads in place in it, so the first read of a connection, body
//!   transfers and L4 keep reading into that buffer directly.
//! - Other waits for a head (a connection's first) are the `RECV` itself, bounded by the
//!   session's deadline (a read dropped at the deadline ends the connection, so what it would
//!   have read does not matter): one ring operation per wait, where a readiness poll and then a
//!   `recv` cost an operation and a system call. Copies in an HTTP session's tunnel wait the same
//!   way (their read is kept across idle-deadline extensions and dropped only when the tunnel
//!   ends). The `RECV` carries `IORING_RECVSEND_POLL_FIRST` (Linux 5.19; dropped for good after
//!   one `EINVAL`) when it is submitted after the socket was just found empty, so the kernel arms
//!   its poll at once instead of first trying a receive that fails.
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
//!   driver task for a completion the kernel makes inline. Writes mirror it: a new socket counts
//!   as writable, and a write to a socket known to have room is one direct `send`; a socket
//!   found full is polled through the ring, then sent to directly again (the ring's `SEND` only
//!   for a write that finds the socket marked full and not polled since). Splice stays
//!   `splice(2)` with `SPLICE_F_NONBLOCK` (io_uring's splice parks a kernel worker thread per
//!   pending operation).
//! - `DEFER_TASKRUN` (with `SINGLE_ISSUER`, which it needs) rather than `COOP_TASKRUN`: with
//!   the latter, every completion's work interrupts whichever system call the thread makes next
//!   (a `sendto`, `epoll_wait`) through the task-work signal path; deferred, the work of all the
//!   completions since the eventfd fired runs in one `io_uring_enter`. bench/RESULTS.md has the
//!   effect on CPU time per request.
//! - Sockets stay `O_NONBLOCK` (readiness users call `recv`/`splice` directly); an operation that
//!   completes with `EAGAIN` or `EINPROGRESS` waits for readiness through the ring and retries.
//! - Zero-copy sends (`IORING_OP_SEND_ZC`) only for HTTP body writes of at least
//!   `tune.uring.send-zc-min` bytes, and only when `tune.uring.send-zc` asks (off by default):
//!   the kernel copies at delivery to a local socket, so on loopback and veth a zero-copy send
//!   costs more CPU than a plain one (bench/RESULTS.md, "Zero-copy sends"), and this machine has
//!   no other device to show where it pays. [`ZcSend`] resolves once everything is sent and
//!   leaves the buffer in its slot until the kernel's notification; the sender goes on with a
//!   spare buffer. `auto` stops on a connection once a notification reports a copy
//!   (`IORING_SEND_ZC_REPORT_USAGE`).
//! - Closing is `IORING_OP_CLOSE`, queued with the other submissions of the tick.
//! - `mode tcp` frontends do not use the ring: their listeners, client connections and server
//!   connects are tokio's even on a uring worker (`runtime::worker`, `l4::session::connect_one`).
//!   Opening and closing a TCP connection whose sockets carry ring operations cost about a
//!   quarter more CPU (L4 churn, 102 against 85 µs per connection), and a tunnel that splices
//!   gains nothing from the ring. HTTP sessions, and the tunnels they turn into after `101` or
//!   `CONNECT`, stay on it.
//!
//! Unsafe code: only here. The invariant every `unsafe` block keeps is the one above: a pointer
//! handed to the kernel points into memory owned by the operation's slot, which is freed only after
//! the kernel's completion for that operation has been reaped (or never, when the ring is torn
//! down with operations in flight: their memory is leaked rather than freed under the kernel).
//! Multishot receives write into the buffer ring's buffers instead, which the driver owns until the
//! buffer group is unregistered (and leaks if that fails); a buffer is read only between the
//! completion that names it and its return to the ring.

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

use super::config::SendZc;
use super::io::Conn;

/// Entries of each worker's submission queue. Operations beyond it are submitted early.
const RING_ENTRIES: u32 = 1024;
/// The `user_data` of completions nobody waits for (cancellations, closes).
const IGNORED: u64 = u64::MAX;
/// `IORING_RECVSEND_POLL_FIRST` (Linux 5.19): the `RECV` arms its poll without trying the socket
/// first (the io-uring crate does not export the constant).
const RECVSEND_POLL_FIRST: u16 = 1;
/// `IORING_ENTER_GETEVENTS`: `io_uring_enter` also runs deferred completion work.
const ENTER_GETEVENTS: u32 = 1;
/// Provided buffers of each worker's buffer ring, for multishot receives (a power of two).
const PBUF_ENTRIES: u16 = 256;
/// Bytes of each provided buffer: a request or response head fits in one.
const PBUF_SIZE: usize = 4096;
/// The buffer group id of the ring.
const PBUF_GROUP: u16 = 0;
/// Completions a connection may hold unread before its multishot receive is cancelled (so one
/// connection whose session does not read cannot take every buffer, and TCP flow control holds
/// its peer back).
const STREAM_CAP: usize = 4;

/// `IORING_SEND_ZC_REPORT_USAGE` (Linux 6.2, and 6.1 stable): the notification says whether the
/// kernel copied the bytes after all.
const SEND_ZC_REPORT_USAGE: u16 = 1 << 3;
/// `IORING_NOTIF_USAGE_ZC_COPIED`, in a notification's result.
const NOTIF_USAGE_ZC_COPIED: u32 = 1 << 31;
/// Buffers let go by zero-copy sends kept for the next ones, per worker.
const SPARE_BUFS: usize = 64;
/// The largest buffer kept as a spare: a body buffer that grew past it is freed instead, so the
/// spares hold at most 16 MiB per worker.
const SPARE_MAX: usize = 256 * 1024;

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

/// The ring has `SEND_ZC` (Linux 6.0).
fn has_send_zc(ring: &IoUring) -> bool {
    let mut probe = io_uring::Probe::new();
    ring.submitter().register_probe(&mut probe).is_ok() && probe.is_supported(opcode::SendZc::CODE)
}

/// `tune.uring.send-zc` and `tune.uring.send-zc-min`, set once at start ([`set_send_zero_copy`]).
static SEND_ZC: std::sync::OnceLock<(SendZc, usize)> = std::sync::OnceLock::new();
/// `tune.uring.send-zc-min` when not set.
pub const DEFAULT_SEND_ZC_MIN: usize = 16 * 1024;

/// Sets how body writes use zero-copy sends (`tune.uring.send-zc`, `tune.uring.send-zc-min`),
/// once, before the workers start (a later call changes nothing). Returns a notice to log when the
/// setting cannot take effect.
pub fn set_send_zero_copy(mode: SendZc, min: usize) -> Option<String> {
    let _ = SEND_ZC.set((mode, min));
    if mode == SendZc::Off {
        return None;
    }
    if !selected() {
        return Some("tune.uring.send-zc: the workers run on epoll, so body writes are plain sends".into());
    }
    match IoUring::new(8) {
        Ok(r) if has_send_zc(&r) => None,
        _ => Some("tune.uring.send-zc: the kernel's io_uring lacks SEND_ZC (Linux 6.0), so body writes are plain sends".into()),
    }
}

/// Zero-copy sends the kernel notified about, and those of them it reported copied, since start.
static ZC_SENDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static ZC_COPIED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Zero-copy sends completed (the kernel's notification came) and those the kernel reported it
/// copied after all, over all workers since start.
pub fn zero_copy_counts() -> (u64, u64) {
    (ZC_SENDS.load(std::sync::atomic::Ordering::Relaxed), ZC_COPIED.load(std::sync::atomic::Ordering::Relaxed))
}

/// The zero-copy setting and its minimum write (off until set).
fn send_zc() -> (SendZc, usize) {
    SEND_ZC.get().copied().unwrap_or((SendZc::Off, DEFAULT_SEND_ZC_MIN))
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
    /// A multishot receive into the buffer ring, and what it received that was not read yet.
    Stream(Box<Stream>),
    /// A zero-copy send ([`ZcSend`]).
    ZeroCopy(Box<Zc>),
}

/// A zero-copy send in flight. It usually completes twice: first with the bytes sent (flagged
/// `IORING_CQE_F_MORE` when a notification follows), then with a notification once the kernel
/// no longer reads the buffer, which may be as late as the peer's acknowledgement.
struct Zc {
    /// The first completion's result, once it came.
    result: Option<i32>,
    /// The kernel may still read the buffer: until the first completion says no notification
    /// follows, or the notification came.
    held: bool,
    /// The sender waiting for it.
    waker: Option<Waker>,
    /// Nobody waits any more: when the kernel lets go, the buffer goes to the spares and the
    /// slot is freed.
    detached: bool,
    /// Set when a notification reports that the kernel copied the bytes after all
    /// (`IORING_NOTIF_USAGE_ZC_COPIED`); shared with the connection.
    copied: Rc<Cell<bool>>,
}

/// A connection's multishot receive ([`UringConn`] holds its slot index).
#[derive(Default)]
struct Stream {
    /// Completions not read yet: `(bytes, buffer id)`; 0 bytes is end of stream, a negative
    /// count an error (both stay at the front once reached).
    queue: std::collections::VecDeque<(i32, u16)>,
    /// Bytes of the front buffer already read.
    taken: usize,
    /// The kernel may still post completions for it.
    live: bool,
    /// A cancellation of it was queued.
    cancelling: bool,
    /// Its connection is gone: buffers go back to the ring as they come, and the slot is freed
    /// with the last completion.
    orphan: bool,
    /// The reader waiting for a completion.
    waker: Option<Waker>,
}

/// What a connection's multishot receive holds that its session has not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ahead {
    Nothing,
    /// Bytes.
    Data,
    /// End of stream or an error (after any bytes before it were read).
    End,
}

/// What a read of a [`Stream`] found.
enum StreamRead {
    Data(usize),
    Eof,
    Err(i32),
    /// The receive ended (cancelled, out of buffers, refused) with nothing unread: the socket
    /// itself is read next.
    Ended,
}

/// The worker's provided buffer ring: `PBUF_ENTRIES` buffers of `PBUF_SIZE` bytes the kernel
/// fills for multishot receives. A buffer is the kernel's from the moment its entry is published
/// at the tail until a completion names it; then it is ours until [`BufRing::recycle`].
struct BufRing {
    /// The ring of entries (page-aligned, as the kernel wants), `PBUF_ENTRIES` long.
    ring: *mut types::BufRingEntry,
    /// The buffers, `PBUF_ENTRIES * PBUF_SIZE` bytes.
    bufs: *mut u8,
    /// Our copy of the tail (the kernel reads the one in the ring).
    tail: Cell<u16>,
}

impl BufRing {
    fn ring_layout() -> std::alloc::Layout {
        std::alloc::Layout::from_size_align(PBUF_ENTRIES as usize * std::mem::size_of::<types::BufRingEntry>(), 4096).expect("constant layout")
    }
    fn bufs_layout() -> std::alloc::Layout {
        std::alloc::Layout::from_size_align(PBUF_ENTRIES as usize * PBUF_SIZE, 4096).expect("constant layout")
    }

    /// Allocates the ring and its buffers and registers them with `ring` as `PBUF_GROUP`; `None`
    /// when the kernel refuses (before 5.19): the worker then reads without multishot receives.
    fn register(ring: &IoUring) -> Option<BufRing> {
        // SAFETY: both layouts have a non-zero size.
        let (r, b) = unsafe { (std::alloc::alloc_zeroed(Self::ring_layout()), std::alloc::alloc(Self::bufs_layout())) };
        if r.is_null() || b.is_null() {
            // SAFETY: each pointer is freed only if it was allocated, with its own layout.
            unsafe {
                if !r.is_null() {
                    std::alloc::dealloc(r, Self::ring_layout());
                }
                if !b.is_null() {
                    std::alloc::dealloc(b, Self::bufs_layout());
                }
            }
            return None;
        }
        let br = BufRing { ring: r.cast(), bufs: b, tail: Cell::new(0) };
        for bid in 0..PBUF_ENTRIES {
            br.recycle(bid);
        }
        // SAFETY: the ring's memory stays allocated until it is unregistered (`Drop`), or is
        // leaked when unregistering fails.
        let ok = unsafe { ring.submitter().register_buf_ring_with_flags(br.ring as u64, PBUF_ENTRIES, PBUF_GROUP, 0) }.is_ok();
        if ok {
            Some(br)
        } else {
            // Never registered: the kernel never saw the memory.
            br.free();
            None
        }
    }

    /// Bytes `from..to` of buffer `bid`, which a completion handed back to us.
    fn bytes(&self, bid: u16, from: usize, to: usize) -> &[u8] {
        assert!(bid < PBUF_ENTRIES && from <= to && to <= PBUF_SIZE);
        // SAFETY: in bounds (checked), and the kernel does not write a buffer between the
        // completion that names it and its recycling.
        unsafe { std::slice::from_raw_parts(self.bufs.add(bid as usize * PBUF_SIZE + from), to - from) }
    }

    /// Gives buffer `bid` back to the kernel.
    fn recycle(&self, bid: u16) {
        let t = self.tail.get();
        // SAFETY: the entry at the tail is not the kernel's (it reads entries between its head and
        // the published tail only); the tail field shares the first entry's `resv`, which the
        // setters do not touch. The tail is published with a release store after the entry.
        unsafe {
            let e = &mut *self.ring.add((t & (PBUF_ENTRIES - 1)) as usize);
            e.set_addr(self.bufs.add(bid as usize * PBUF_SIZE) as u64);
            e.set_len(PBUF_SIZE as u32);
            e.set_bid(bid);
            let tail = types::BufRingEntry::tail(self.ring).cast_mut();
            std::sync::atomic::AtomicU16::from_ptr(tail).store(t.wrapping_add(1), std::sync::atomic::Ordering::Release);
        }
        self.tail.set(t.wrapping_add(1));
    }

    fn free(self) {
        // SAFETY: allocated in `register` with these layouts, and the kernel no longer uses them.
        unsafe {
            std::alloc::dealloc(self.ring.cast(), Self::ring_layout());
            std::alloc::dealloc(self.bufs, Self::bufs_layout());
        }
    }
}

struct Slot {
    state: State,
    hold: Hold,
}

/// One worker's ring and the operations in flight on it.
pub struct Driver {
    /// The eventfd (or, without `DEFER_TASKRUN`, the ring's descriptor) in tokio's reactor:
    /// readable when completion work waits. Declared before `ring` and `_events` so that it is
    /// deregistered before the descriptor closes.
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
    /// The provided buffers of multishot receives; `None` when the kernel has no buffer rings.
    bufs: Option<BufRing>,
    /// Multishot receives work; cleared for good when the kernel refuses one.
    multishot: Cell<bool>,
    /// Zero-copy sends work here (the kernel has `SEND_ZC`); cleared for good when it refuses one.
    zero_copy: Cell<bool>,
    /// Buffers zero-copy sends let go of, for the next senders ([`Driver::spare`]).
    spares: RefCell<Vec<Vec<u8>>>,
    /// The ring was made with `DEFER_TASKRUN`: completions come only from `GETEVENTS`.
    defer: bool,
    /// The eventfd registered with a `DEFER_TASKRUN` ring.
    _events: Option<OwnedFd>,
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
    // DEFER_TASKRUN (the module's header says why). Kernels before 6.1 refuse it: then
    // COOP_TASKRUN, where completions are posted when this thread next enters the kernel (it
    // makes system calls all the time, and a thread asleep in the reactor is woken) instead of by
    // an interrupt of the running thread per completion, with the ring's own descriptor waking
    // the driver. SINGLE_ISSUER: only this thread submits, which spares the kernel some locking.
    // Kernels before 6.0 refuse those flags too: then the ring is made with fewer.
    let (ring, events) = match deferred_ring() {
        Some(pair) => pair,
        None => (
            match IoUring::builder().setup_coop_taskrun().setup_single_issuer().build(RING_ENTRIES) {
                Ok(r) => r,
                Err(_) => match IoUring::builder().setup_coop_taskrun().build(RING_ENTRIES) {
                    Ok(r) => r,
                    Err(_) => IoUring::builder().build(RING_ENTRIES)?,
                },
            },
            None,
        ),
    };
    let wake_fd = events.as_ref().map_or(ring.as_raw_fd(), |e| e.as_raw_fd());
    // SAFETY: the ring's descriptor stays open as long as the `AsyncFd`: both live in the driver,
    // and the `AsyncFd` is dropped first.
    let cq_ready = unsafe { AsyncFd::register_with_interest(wake_fd, Interest::READABLE) }.map_err(|e| e.into_parts().1)?;
    let bufs = BufRing::register(&ring);
    let zero_copy = send_zc().0 != SendZc::Off && has_send_zc(&ring);
    let d = Rc::new(Driver {
        zero_copy: Cell::new(zero_copy),
        spares: RefCell::new(Vec::new()),
        multishot: Cell::new(bufs.is_some()),
        bufs,
        ring: RefCell::new(ring),
        slots: RefCell::new(Vec::new()),
        free: RefCell::new(Vec::new()),
        cq_ready,
        unsubmitted: Cell::new(false),
        task: RefCell::new(None),
        poll_first: Cell::new(true),
        defer: events.is_some(),
        _events: events,
    });
    DRIVER.with(|c| *c.borrow_mut() = Some(d.clone()));
    tokio::task::spawn_local(std::future::poll_fn(move |cx| d.drive(cx)));
    Ok(())
}

/// A `DEFER_TASKRUN` ring and the eventfd registered with it, if the kernel allows both.
fn deferred_ring() -> Option<(IoUring, Option<OwnedFd>)> {
    let ring = IoUring::builder().setup_single_issuer().setup_defer_taskrun().build(RING_ENTRIES).ok()?;
    // SAFETY: plain system call; the descriptor is owned at once.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    // SAFETY: just created, owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    ring.submitter().register_eventfd(fd.as_raw_fd()).ok()?;
    Some((ring, Some(fd)))
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
        // Once unregistered (from this thread, the only one that runs the ring's receives) the
        // kernel picks no more buffers from the ring; if that fails, the buffers are leaked.
        if let Some(b) = self.bufs.take() {
            // Without a `Drop` of its own, a `BufRing` not freed is leaked.
            if self.ring.get_mut().submitter().unregister_buf_ring(PBUF_GROUP).is_ok() {
                b.free();
            }
        }
    }
}

impl Driver {
    /// The driver task: submits, runs the kernel's deferred completion work when the eventfd
    /// fired, reaps, and waits for the eventfd (or the ring) to become readable. Never ends.
    fn drive(&self, cx: &mut Context<'_>) -> Poll<()> {
        keep_waker(&mut self.task.borrow_mut(), cx);
        // The readiness that woke this turn is taken before the kernel runs the completion work:
        // work that comes later fires the eventfd again, and work that came before is done by the
        // enter below. (Taken after it, as before, it was still set from this wake-up, so every
        // turn entered the kernel a second time, mostly to find nothing.)
        if let Poll::Ready(Ok(mut g)) = self.cq_ready.poll_read_ready(cx) {
            g.clear_ready();
        }
        let mut run = self.defer;
        loop {
            let submit = self.unsubmitted.replace(false);
            if run {
                // DEFER_TASKRUN: the kernel completes operations (receives the data of a `RECV`
                // whose poll fired, posts completions) only here, everything that came since the
                // eventfd fired in one go, instead of interrupting whatever system call this
                // thread makes next. (Looping while the kernel's `TASKRUN` flag is set, to catch
                // work a call left over, made the driver spin: the flag can stay set with no work
                // pending. See bench/RESULTS.md, third pass.)
                let ring = self.ring.borrow();
                // SAFETY: no other handle on the submission queue is alive while this one is.
                let n = unsafe { ring.submission_shared() }.len();
                // SAFETY: no argument is passed.
                if unsafe { ring.submitter().enter::<libc::sigset_t>(n as u32, 0, ENTER_GETEVENTS, None) }.is_err() {
                    self.unsubmitted.set(submit);
                }
                run = false;
            } else if submit {
                // EBUSY/EAGAIN (completion queue overflow): the reap below makes room, and the
                // entries stay queued for the next turn.
                if self.ring.borrow().submit().is_err() {
                    self.unsubmitted.set(true);
                }
            }
            let reaped = self.reap();
            match self.cq_ready.poll_read_ready(cx) {
                Poll::Ready(Ok(mut g)) => {
                    g.clear_ready();
                    run = self.defer;
                }
                Poll::Ready(Err(_)) => return Poll::Pending,
                Poll::Pending if reaped == 0 && !run && !self.unsubmitted.get() => return Poll::Pending,
                Poll::Pending => {}
            }
        }
    }

    fn reap(&self) -> usize {
        let mut n = 0;
        // Streams over their cap, cancelled once the ring is no longer borrowed.
        let mut cancel: Vec<usize> = Vec::new();
        {
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
                if let State::Stream(st) = &mut slot.state {
                    if self.stream_completion(st, cqe.result(), cqe.flags()) {
                        slots[idx] = None;
                        self.free.borrow_mut().push(idx);
                    } else if st.live && !st.cancelling && st.queue.len() >= STREAM_CAP {
                        st.cancelling = true;
                        cancel.push(idx);
                    }
                    continue;
                }
                if let State::ZeroCopy(zc) = &mut slot.state {
                    if Self::zero_copy_completion(zc, cqe.result(), cqe.flags()) {
                        self.retire_zero_copy(&mut slots, idx);
                    }
                    continue;
                }
                self.completion(&mut slots, idx, cqe.result());
            }
        }
        for idx in cancel {
            self.cancel(idx);
        }
        n
    }

    /// Files a multishot receive's completion; true when the slot is to be freed (an orphan's
    /// last completion).
    fn stream_completion(&self, st: &mut Stream, res: i32, flags: u32) -> bool {
        use io_uring::cqueue;
        if !cqueue::more(flags) {
            st.live = false;
        }
        if res > 0 {
            if let Some(bid) = cqueue::buffer_select(flags) {
                if st.orphan {
                    self.recycle(bid);
                } else {
                    st.queue.push_back((res, bid));
                }
            }
        } else if res == -libc::EINVAL && st.queue.is_empty() {
            // A kernel without multishot receives (before 6.0): never again.
            self.multishot.set(false);
        } else if res == 0 || (res != -libc::ENOBUFS && res != -libc::ECANCELED) {
            // End of stream or an error, read after the data before it. Out of buffers or
            // cancelled: nothing is lost, the socket itself is read next.
            if !st.orphan {
                st.queue.push_back((res, 0));
            }
        }
        if st.orphan {
            return !st.live;
        }
        if let Some(w) = st.waker.take() {
            w.wake();
        }
        false
    }

    fn recycle(&self, bid: u16) {
        if let Some(b) = &self.bufs {
            b.recycle(bid);
        }
    }

    /// Files one of a zero-copy send's completions; true when the slot is to be freed (nobody
    /// waits and the kernel let go of the buffer).
    fn zero_copy_completion(zc: &mut Zc, res: i32, flags: u32) -> bool {
        use io_uring::cqueue;
        if cqueue::notif(flags) {
            zc.held = false;
            ZC_SENDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if res as u32 & NOTIF_USAGE_ZC_COPIED != 0 {
                zc.copied.set(true);
                ZC_COPIED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        } else {
            zc.result = Some(res);
            if !cqueue::more(flags) {
                zc.held = false;
            }
        }
        if zc.detached {
            return zc.result.is_some() && !zc.held;
        }
        if let Some(w) = zc.waker.take() {
            w.wake();
        }
        false
    }

    /// Frees the slot of zero-copy send `idx`, whose buffer the kernel let go of, and returns
    /// the buffer.
    fn end_zero_copy(&self, slots: &mut [Option<Slot>], idx: usize) -> Vec<u8> {
        let Some(Slot { hold: Hold::Buf(b), .. }) = slots[idx].take() else { unreachable!("a zero-copy send holds its buffer") };
        self.free.borrow_mut().push(idx);
        b
    }

    /// Frees the slot of detached zero-copy send `idx`, whose buffer the kernel let go of, and
    /// keeps the buffer for a later send.
    fn retire_zero_copy(&self, slots: &mut [Option<Slot>], idx: usize) {
        let b = self.end_zero_copy(slots, idx);
        self.keep_spare(b);
    }

    /// Keeps a buffer a zero-copy send let go of for a later one (or drops it when enough are
    /// kept, or when it is large).
    fn keep_spare(&self, mut b: Vec<u8>) {
        let mut spares = self.spares.borrow_mut();
        if spares.len() < SPARE_BUFS && b.capacity() <= SPARE_MAX {
            b.clear();
            spares.push(b);
        }
    }

    /// An empty buffer, for a sender whose own buffer the kernel still reads.
    fn spare(&self, capacity: usize) -> Vec<u8> {
        self.spares.borrow_mut().pop().unwrap_or_else(|| Vec::with_capacity(capacity))
    }

    /// Queues a cancellation of operation `idx`.
    fn cancel(&self, idx: usize) {
        let e = opcode::AsyncCancel::new(idx as u64).build().user_data(IGNORED);
        // SAFETY: a cancellation points to no memory.
        unsafe { self.push(e) };
    }

    /// Files an ordinary operation's completion.
    fn completion(&self, slots: &mut [Option<Slot>], idx: usize, result: i32) {
        {
            let Some(slot) = slots.get_mut(idx).and_then(|s| s.as_mut()) else { return };
            match std::mem::replace(&mut slot.state, State::Done(result)) {
                State::Pending(w) => {
                    if let Some(w) = w {
                        w.wake();
                    }
                    return;
                }
                State::Orphan => {}
                State::Done(_) | State::Stream(_) | State::ZeroCopy(_) => return,
            }
        }
        // An orphan. An accept cancelled too late still made a connection: nobody owns it.
        if let Some(Slot { hold: Hold::Peer(_), .. }) = &slots[idx]
            && result >= 0
        {
            // SAFETY: the kernel just returned this descriptor to nobody else.
            drop(unsafe { OwnedFd::from_raw_fd(result) });
        }
        slots[idx] = None;
        self.free.borrow_mut().push(idx);
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

    /// Puts `slot` in a free place (or a new one) and returns its index.
    fn fill_slot(&self, slot: Slot) -> usize {
        let mut slots = self.slots.borrow_mut();
        let idx = match self.free.borrow_mut().pop() {
            Some(i) => i,
            None => {
                slots.push(None);
                slots.len() - 1
            }
        };
        slots[idx] = Some(slot);
        idx
    }

    /// Starts an operation built by `make` from the slot's held memory.
    fn start(self: &Rc<Self>, hold: Hold, make: impl FnOnce(&mut Hold) -> squeue::Entry) -> Op {
        let idx = self.fill_slot(Slot { state: State::Pending(None), hold });
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

    /// Starts a zero-copy send of `buf[from..]` on `fd`, reporting copies to `copied`.
    fn start_zero_copy(self: &Rc<Self>, fd: RawFd, buf: Vec<u8>, from: usize, copied: Rc<Cell<bool>>) -> ZcSend {
        let len = buf.len() - from;
        let zc = Zc { result: None, held: true, waker: None, detached: false, copied };
        let idx = self.fill_slot(Slot { state: State::ZeroCopy(Box::new(zc)), hold: Hold::Buf(buf) });
        let entry = {
            let slots = self.slots.borrow();
            let Some(Slot { hold: Hold::Buf(b), .. }) = &slots[idx] else { unreachable!("slot just filled") };
            let rest = &b[from..];
            // MSG_WAITALL: the kernel sends the whole buffer, waiting for room, or fails.
            opcode::SendZc::new(types::Fd(fd), rest.as_ptr(), rest.len().min(u32::MAX as usize) as u32)
                .flags(libc::MSG_NOSIGNAL | libc::MSG_WAITALL)
                .zc_flags(SEND_ZC_REPORT_USAGE)
                .build()
                .user_data(idx as u64)
        };
        // SAFETY: the entry points into the Vec held by `slots[idx]`, whose heap block does not
        // move and is freed only after the kernel's last completion for it (the notification).
        unsafe { self.push(entry) };
        ZcSend { d: self.clone(), idx, len, done: false }
    }

    /// Starts a multishot receive on `fd` into the buffer ring; its slot, or `None` when the
    /// worker has no buffer ring or the kernel refused one before.
    fn stream_start(&self, fd: RawFd) -> Option<usize> {
        if !self.multishot.get() {
            return None;
        }
        let idx = self.fill_slot(Slot { state: State::Stream(Box::new(Stream { live: true, ..Stream::default() })), hold: Hold::None });
        let e = opcode::RecvMulti::new(types::Fd(fd), PBUF_GROUP).build().user_data(idx as u64);
        // SAFETY: the receive writes only into the buffer ring's buffers, which outlive the ring
        // (or are leaked with it).
        unsafe { self.push(e) };
        Some(idx)
    }

    fn stream(slots: &mut [Option<Slot>], idx: usize) -> &mut Stream {
        match slots[idx].as_mut().map(|s| &mut s.state) {
            Some(State::Stream(st)) => st,
            _ => unreachable!("a connection's stream slot lives until the connection lets go of it"),
        }
    }

    /// Reads what stream `idx` received into the spare capacity of `buf`.
    fn stream_read(&self, idx: usize, buf: &mut Vec<u8>, cx: &mut Context<'_>) -> Poll<StreamRead> {
        let mut slots = self.slots.borrow_mut();
        let st = Self::stream(&mut slots, idx);
        let mut n = 0;
        while let Some(&(res, bid)) = st.queue.front() {
            if res <= 0 {
                if n > 0 {
                    break;
                }
                return Poll::Ready(if res == 0 { StreamRead::Eof } else { StreamRead::Err(res) });
            }
            let spare = buf.capacity() - buf.len();
            if spare == 0 {
                break;
            }
            let Some(b) = &self.bufs else { unreachable!("a stream has buffers") };
            let k = (res as usize - st.taken).min(spare);
            buf.extend_from_slice(b.bytes(bid, st.taken, st.taken + k));
            n += k;
            st.taken += k;
            if st.taken == res as usize {
                st.queue.pop_front();
                st.taken = 0;
                b.recycle(bid);
            }
        }
        if n > 0 {
            Poll::Ready(StreamRead::Data(n))
        } else if st.live {
            keep_waker(&mut st.waker, cx);
            Poll::Pending
        } else {
            Poll::Ready(StreamRead::Ended)
        }
    }

    /// Ready when stream `idx` holds something to read (true) or has ended with nothing (false).
    fn stream_ready(&self, idx: usize, cx: &mut Context<'_>) -> Poll<bool> {
        let mut slots = self.slots.borrow_mut();
        let st = Self::stream(&mut slots, idx);
        if !st.queue.is_empty() {
            Poll::Ready(true)
        } else if st.live {
            keep_waker(&mut st.waker, cx);
            Poll::Pending
        } else {
            Poll::Ready(false)
        }
    }

    /// Cancels stream `idx` and is ready once the kernel posts nothing more for it.
    fn stream_stop(&self, idx: usize, cx: &mut Context<'_>) -> Poll<()> {
        let mut slots = self.slots.borrow_mut();
        let st = Self::stream(&mut slots, idx);
        if !st.live {
            return Poll::Ready(());
        }
        st.waker = Some(cx.waker().clone());
        if !std::mem::replace(&mut st.cancelling, true) {
            drop(slots);
            self.cancel(idx);
        }
        Poll::Pending
    }

    /// Lets go of stream `idx`: its unread buffers go back to the ring, and a live receive is
    /// cancelled (its slot is freed with its last completion).
    fn stream_drop(&self, idx: usize) {
        let mut slots = self.slots.borrow_mut();
        let st = Self::stream(&mut slots, idx);
        for (res, bid) in st.queue.drain(..) {
            if res > 0 {
                self.recycle(bid);
            }
        }
        if st.live {
            st.orphan = true;
            st.waker = None;
            if !std::mem::replace(&mut st.cancelling, true) {
                drop(slots);
                self.cancel(idx);
            }
        } else {
            slots[idx] = None;
            drop(slots);
            self.free.borrow_mut().push(idx);
        }
    }

    /// What stream `idx` holds unread.
    fn stream_ahead(&self, idx: usize) -> Ahead {
        let mut slots = self.slots.borrow_mut();
        match Self::stream(&mut slots, idx).queue.front() {
            None => Ahead::Nothing,
            Some(&(res, _)) if res > 0 => Ahead::Data,
            Some(_) => Ahead::End,
        }
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

impl Op {
    /// Asks the kernel to cancel the operation; the future still resolves, with `-ECANCELED` or
    /// with the result the operation reached first.
    ///
    /// Only an operation whose completion is not filed yet is cancelled: a filed one may free its
    /// slot before the cancellation is submitted, and the cancellation would then hit the next
    /// operation given that slot. (A turn submits before it reaps, so one still pending keeps its
    /// slot until the cancellation is in the kernel.)
    fn cancel(&self) {
        let pending = !self.done && matches!(self.d.slots.borrow()[self.idx].as_ref().map(|s| &s.state), Some(State::Pending(_)));
        if pending {
            self.d.cancel(self.idx);
        }
    }
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
                keep_waker(w, cx);
                Poll::Pending
            }
            State::Orphan => unreachable!("an orphan has no future"),
            State::Stream(_) | State::ZeroCopy(_) => unreachable!("not an op's slot"),
        }
    }
}

/// A zero-copy send in flight. Resolves to the bytes sent (or the error) and, once the kernel no
/// longer reads it, the buffer; when everything was sent, it resolves without waiting for that
/// (`None`), and the driver keeps the buffer until the notification comes.
struct ZcSend {
    d: Rc<Driver>,
    idx: usize,
    /// Bytes asked for.
    len: usize,
    done: bool,
}

impl Future for ZcSend {
    type Output = (i32, Option<Vec<u8>>);
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let mut slots = this.d.slots.borrow_mut();
        let Some(Slot { state: State::ZeroCopy(zc), .. }) = slots[this.idx].as_mut() else { unreachable!("a zero-copy send's slot lives until it ends") };
        let Some(r) = zc.result else {
            keep_waker(&mut zc.waker, cx);
            return Poll::Pending;
        };
        if zc.held {
            if r >= 0 && r as usize == this.len {
                // All sent: the sender goes on; the buffer is let go when the kernel is done.
                zc.detached = true;
                zc.waker = None;
                this.done = true;
                return Poll::Ready((r, None));
            }
            // A short send or an error: the caller wants the buffer back to go on from it.
            keep_waker(&mut zc.waker, cx);
            return Poll::Pending;
        }
        let b = this.d.end_zero_copy(&mut slots, this.idx);
        this.done = true;
        Poll::Ready((r, Some(b)))
    }
}

impl Drop for ZcSend {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut slots = self.d.slots.borrow_mut();
        let Some(Slot { state: State::ZeroCopy(zc), .. }) = slots[self.idx].as_mut() else { return };
        zc.detached = true;
        zc.waker = None;
        if zc.result.is_some() {
            if !zc.held {
                self.d.retire_zero_copy(&mut slots, self.idx);
            }
            // Sent, the notification due: nothing to cancel.
            return;
        }
        drop(slots);
        self.d.cancel(self.idx);
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut slots = self.d.slots.borrow_mut();
        let Some(slot) = slots[self.idx].as_mut() else { return };
        if let State::Done(r) = slot.state {
            // Completed but never taken: nothing is in flight. An accept's connection is
            // nobody's: closed, not leaked.
            if let (Hold::Peer(_), true) = (&slot.hold, r >= 0) {
                // SAFETY: the kernel returned this descriptor for this operation, and nobody took it.
                drop(unsafe { OwnedFd::from_raw_fd(r) });
            }
            slots[self.idx] = None;
            drop(slots);
            self.d.free.borrow_mut().push(self.idx);
            return;
        }
        slot.state = State::Orphan;
        drop(slots);
        self.d.cancel(self.idx);
    }
}

/// Stores the waker of `cx` in `slot` unless the one there already wakes the same task.
fn keep_waker(slot: &mut Option<Waker>, cx: &Context<'_>) {
    if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
        *slot = Some(cx.waker().clone());
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
    /// A readiness poll reported the socket writable (or it is new) and no attempt through
    /// `try_io` found it full since.
    writable: Cell<bool>,
    /// A read just came back short ([`Conn::drained`]): the next `RECV` waits for data first.
    empty: Cell<bool>,
    /// The next read waits for a head ([`UringConn::head_wait`]): it may start a multishot
    /// receive.
    head_wait: Cell<bool>,
    /// The slot of the connection's multishot receive, while it has one.
    stream: Cell<Option<usize>>,
    /// Set by the kernel's report when a zero-copy send on this connection was copied after all
    /// (made at the first zero-copy send).
    zc_copied: std::cell::OnceCell<Rc<Cell<bool>>>,
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
        UringConn::new(d, fd, tcp)
    }

    fn new(d: Rc<Driver>, fd: OwnedFd, tcp: bool) -> UringConn {
        UringConn {
            fd: Some(fd),
            d,
            tcp,
            readable: Cell::new(false),
            // A new socket's send buffer is empty: the first write tries at once instead of
            // polling the ring first (a full buffer is still found through `EAGAIN`).
            writable: Cell::new(true),
            empty: Cell::new(false),
            head_wait: Cell::new(false),
            stream: Cell::new(None),
            zc_copied: std::cell::OnceCell::new(),
        }
    }

    /// The socket, out of the ring's hands (nothing is in flight on a connection no session has
    /// used yet), to be parked.
    pub fn into_fd(mut self) -> Option<OwnedFd> {
        debug_assert!(self.stream.get().is_none(), "a parked connection has no multishot receive");
        self.fd.take()
    }

    /// Says the next read waits for a request or response head. If the socket was just found
    /// empty (a keep-alive wait), that read starts a multishot receive into the worker's buffer
    /// ring, which then stays armed across the connection's later requests: each head costs a
    /// completion, not a `RECV` armed and disarmed. Only HTTP sessions call it: once a multishot
    /// receive runs, readiness and `try_io` no longer see the socket's bytes, so paths that
    /// splice or peek first call [`stop_read_ahead`](Self::stop_read_ahead) (tunnels) or look at
    /// [`read_ahead`](Self::read_ahead) (client-close and pool checks).
    pub fn head_wait(&self) {
        self.head_wait.set(true);
    }

    /// What the multishot receive took from the socket that no read has returned yet.
    pub fn read_ahead(&self) -> Ahead {
        match self.stream.get() {
            None => Ahead::Nothing,
            Some(idx) => self.d.stream_ahead(idx),
        }
    }

    /// Ends the multishot receive, if any, and appends the bytes it took and no read returned to
    /// `into`; from then on reads, readiness and `try_io` see the socket itself. An end of stream
    /// or error it met is left to be found again on the socket.
    pub async fn stop_read_ahead(&self, into: &mut Vec<u8>) {
        self.head_wait.set(false);
        let Some(idx) = self.stream.get() else { return };
        std::future::poll_fn(|cx| self.d.stream_stop(idx, cx)).await;
        loop {
            into.reserve(PBUF_SIZE);
            match std::future::poll_fn(|cx| self.d.stream_read(idx, into, cx)).await {
                StreamRead::Data(_) => {}
                StreamRead::Eof | StreamRead::Err(_) | StreamRead::Ended => break,
            }
        }
        self.stream.set(None);
        self.d.stream_drop(idx);
    }

    /// True for a TCP socket (false for a UNIX one).
    pub fn is_tcp(&self) -> bool {
        self.tcp
    }

    /// Whether a body write of `len` bytes should be a zero-copy send ([`send_zero_copy`]):
    /// `tune.uring.send-zc` is on and the kernel has `SEND_ZC` (the driver's flag says both), the
    /// write is at least `tune.uring.send-zc-min` bytes, the socket is TCP, and under `auto` the
    /// kernel has not reported that it copied this connection's bytes anyway (as it does for
    /// loopback and for devices without scatter-gather).
    ///
    /// [`send_zero_copy`]: Self::send_zero_copy
    pub fn zero_copy_wanted(&self, len: usize) -> bool {
        if !self.d.zero_copy.get() || !self.tcp {
            return false;
        }
        let (mode, min) = send_zc();
        len >= min && (mode == SendZc::Always || !self.zc_copied.get().is_some_and(|c| c.get()))
    }

    /// Sends all of `buf` with zero-copy sends (`IORING_OP_SEND_ZC`): the kernel takes the bytes
    /// from `buf`'s pages instead of copying them into the socket. It reads them until the peer
    /// acknowledges them, so when everything is sent this returns another, empty buffer and the
    /// driver keeps `buf` until the kernel's notification. Either way, the buffer returned holds
    /// nothing the caller wrote: only body writes, whose bytes are not needed again, use it.
    pub async fn send_zero_copy(&self, mut buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        let fd = self.raw();
        let cap = buf.capacity();
        let mut from = 0;
        while from < buf.len() {
            let copied = self.zc_copied.get_or_init(|| Rc::new(Cell::new(false))).clone();
            let len = buf.len() - from;
            let (r, back) = self.d.start_zero_copy(fd, buf, from, copied).await;
            let Some(b) = back else {
                return (Ok(()), self.d.spare(cap));
            };
            buf = b;
            if r > 0 {
                from += (r as usize).min(len);
                continue;
            }
            if r == -libc::EAGAIN {
                self.writable.set(false);
                if let Err(e) = poll_ready(&self.d, fd, Interest::WRITABLE).await {
                    return (Err(e), buf);
                }
                self.writable.set(true);
                continue;
            }
            if r == -libc::EINVAL || r == -libc::EOPNOTSUPP {
                // The kernel refuses zero-copy sends here (or the usage report, before 6.2):
                // this worker sends plainly from now on.
                self.d.zero_copy.set(false);
            }
            if r == -libc::EINVAL || r == -libc::EOPNOTSUPP || r == -libc::ENOMEM || r == -libc::ENOBUFS {
                // Nothing was sent (pages could not be pinned, or no zero-copy): send plainly.
                return super::io::write_all(self, buf, from).await;
            }
            return (Err(if r == 0 { io::ErrorKind::WriteZero.into() } else { os_err(r) }), buf);
        }
        (Ok(()), buf)
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

    /// Connects a new non-blocking socket to `addr` through the ring, from `source` if given.
    pub async fn connect(d: &Rc<Driver>, addr: &socket2::SockAddr, source: Option<SocketAddr>) -> io::Result<UringConn> {
        let tcp = addr.is_ipv4() || addr.is_ipv6();
        let sock = socket2::Socket::new(addr.domain(), socket2::Type::STREAM.nonblocking().cloexec(), None)?;
        if tcp && (source.is_some() || super::sockopt::server_buffers_set()) {
            super::sockopt::prepare_server_socket(sock.as_fd(), source)?;
        }
        let c = UringConn::new(d.clone(), sock.into(), tcp);
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
        if let Some(idx) = self.stream.take() {
            self.d.stream_drop(idx);
        }
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
        if self.head_wait.replace(false) && self.stream.get().is_none() && self.empty.get() {
            self.stream.set(self.d.stream_start(fd));
        }
        if let Some(idx) = self.stream.get() {
            match std::future::poll_fn(|cx| self.d.stream_read(idx, &mut buf, cx)).await {
                StreamRead::Data(n) => return (Ok(n), buf),
                StreamRead::Eof => return (Ok(0), buf),
                StreamRead::Err(r) => return (Err(os_err(r)), buf),
                StreamRead::Ended => {
                    // Cancelled at its cap or out of buffers: read the socket itself.
                    self.stream.set(None);
                    self.d.stream_drop(idx);
                }
            }
        }
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
            if self.writable.get() {
                // As for reads after a readiness report: a socket with room completes a send
                // inline, so one direct `send` costs less than a ring operation and a turn of the
                // driver task. `try_io` clears the flag when the socket is full.
                match self.try_write_now(&buf[from..]) {
                    Ok(n) => return (Ok(n), buf),
                    Err(e) if e.kind() != io::ErrorKind::WouldBlock => return (Err(e), buf),
                    Err(_) => {}
                }
            } else {
                // Found full before and not polled since: a `SEND` may find room by now.
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
                if r != -libc::EAGAIN {
                    return (if r < 0 { Err(os_err(r)) } else { Ok(r as usize) }, buf);
                }
            }
            // Full: wait through the ring, then send directly.
            if let Err(e) = poll_ready(&self.d, fd, Interest::WRITABLE).await {
                return (Err(e), buf);
            }
            self.writable.set(true);
        }
    }

    fn shutdown_write(&self) -> io::Result<()> {
        socket2::SockRef::from(self).shutdown(std::net::Shutdown::Write)
    }

    async fn ready(&self, interest: Interest) -> io::Result<()> {
        // Readiness is cached as tokio caches it on epoll: once reported, it holds until an
        // attempt through `try_io` meets `WouldBlock`. A splice loop moving a large transfer so
        // polls the ring only when a socket runs dry or full, not once per chunk.
        if let Some(idx) = self.stream.get() {
            // Only HTTP sessions have a multishot receive, and they wait for one direction at
            // a time.
            debug_assert!(!interest.is_writable(), "a read-ahead connection waits for one direction");
            if std::future::poll_fn(|cx| self.d.stream_ready(idx, cx)).await {
                return Ok(());
            }
            self.stream.set(None);
            self.d.stream_drop(idx);
        }
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
        debug_assert!(!interest.is_readable() || self.stream.get().is_none(), "a multishot receive takes the socket's bytes first");
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

impl std::os::fd::AsFd for UringListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl UringListener {
    pub fn new(d: Rc<Driver>, fd: OwnedFd, tcp: bool) -> UringListener {
        UringListener { fd, d, tcp }
    }

    /// Accepts one connection (non-blocking, close-on-exec) and its peer's address (TCP only).
    pub async fn accept(&self) -> io::Result<(UringConn, Option<SocketAddr>)> {
        match self.accept_or_stop(std::future::pending()).await {
            Ok(Some(c)) => Ok(c),
            Ok(None) => unreachable!("never stopped"),
            Err(e) => Err(e),
        }
    }

    /// As [`UringListener::accept`] until `stop` resolves; then the accept in flight is cancelled
    /// and waited for, so a connection the kernel gave it meanwhile is returned instead of being
    /// closed unseen. `Ok(None)`: stopped, nothing taken. A worker leaving a listener that another
    /// process goes on accepting from (a master's reload) loses no connection this way.
    pub async fn accept_or_stop(&self, stop: impl Future<Output = ()>) -> io::Result<Option<(UringConn, Option<SocketAddr>)>> {
        let fd = self.fd.as_raw_fd();
        let mut stop = std::pin::pin!(stop);
        let mut stopped = false;
        loop {
            // SAFETY (of zeroed): a sockaddr_storage of zeros is a valid value.
            let storage = Box::new((unsafe { std::mem::zeroed::<libc::sockaddr_storage>() }, std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t));
            let op = self.d.start(Hold::Peer(storage), |h| {
                let Hold::Peer(p) = h else { unreachable!() };
                opcode::Accept::new(types::Fd(fd), (&raw mut p.0).cast(), &raw mut p.1).flags(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC).build()
            });
            let mut op = std::pin::pin!(op);
            let (r, hold) = if stopped {
                op.cancel();
                op.await
            } else {
                tokio::select! {
                    out = &mut op => out,
                    _ = &mut stop => {
                        stopped = true;
                        op.cancel();
                        op.await
                    }
                }
            };
            if r == -libc::ECANCELED && stopped {
                return Ok(None);
            }
            if r == -libc::EAGAIN {
                if stopped {
                    return Ok(None);
                }
                tokio::select! {
                    r = poll_ready(&self.d, fd, Interest::READABLE) => { r?; }
                    _ = &mut stop => return Ok(None),
                }
                continue;
            }
            if r < 0 {
                return Err(os_err(r));
            }
            // SAFETY: the kernel returned a new descriptor that nothing else owns.
            let conn = UringConn::new(self.d.clone(), unsafe { OwnedFd::from_raw_fd(r) }, self.tcp);
            let Hold::Peer(p) = hold else { unreachable!() };
            let peer = if self.tcp { sockaddr_to_std(&p.0) } else { None };
            return Ok(Some((conn, peer)));
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    /// `IORING_CQE_F_MORE` and `IORING_CQE_F_NOTIF`, as the kernel sets them in a completion.
    const F_MORE: u32 = 1 << 1;
    const F_NOTIF: u32 = 1 << 3;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn zc(detached: bool) -> (Zc, Rc<Cell<bool>>) {
        let copied = Rc::new(Cell::new(false));
        (Zc { result: None, held: true, waker: None, detached, copied: copied.clone() }, copied)
    }

    #[test]
    fn zero_copy_slot_of_a_dropped_sender_is_freed_only_once_the_kernel_lets_go_of_the_buffer() {
        let (mut z, copied) = zc(true);
        // The bytes are sent, and a notification is to follow: the kernel still reads the buffer.
        assert!(!Driver::zero_copy_completion(&mut z, 4096, F_MORE));
        assert!(z.held);
        // The notification: now the slot (and the buffer) may go.
        assert!(Driver::zero_copy_completion(&mut z, 0, F_NOTIF));
        assert!(!copied.get(), "a notification without the usage bit is a true zero-copy send");
    }

    #[test]
    fn zero_copy_result_without_a_notification_to_follow_lets_go_of_the_buffer_at_once() {
        // A failed send (or one the kernel completed by copying) posts no notification.
        let (mut z, _) = zc(true);
        assert!(Driver::zero_copy_completion(&mut z, -libc::EPIPE, 0));
        assert_eq!(z.result, Some(-libc::EPIPE));
    }

    #[test]
    fn zero_copy_completions_wake_a_waiting_sender_and_never_free_its_slot() {
        let (mut z, copied) = zc(false);
        let count = Arc::new(Count(AtomicUsize::new(0)));
        z.waker = Some(Waker::from(count.clone()));
        assert!(!Driver::zero_copy_completion(&mut z, 100, F_MORE));
        assert_eq!(count.0.load(Ordering::Relaxed), 1);
        assert_eq!(z.result, Some(100));
        // The sender, woken, has not polled again (no new waker): the notification frees nothing
        // while someone still owns the send, and records the copy the kernel reported.
        assert!(!Driver::zero_copy_completion(&mut z, NOTIF_USAGE_ZC_COPIED as i32, F_NOTIF));
        assert!(!z.held);
        assert!(copied.get(), "the usage bit says the kernel copied the bytes after all");
    }

    /// Runs `f` on a worker-like thread with this thread's ring, as a worker has it.
    fn with_driver(f: impl FnOnce(&Rc<Driver>) + 'static) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async move {
            start().expect("an io_uring ring (io_uring is blocked here)");
            let d = current().expect("started");
            f(&d);
        });
        stop();
    }

    #[test]
    fn spare_buffers_are_kept_up_to_sixty_four_and_none_larger_than_256_kib() {
        with_driver(|d| {
            for _ in 0..SPARE_BUFS + 6 {
                d.keep_spare(vec![7u8; 16 * 1024]);
            }
            assert_eq!(d.spares.borrow().len(), SPARE_BUFS);
            d.spares.borrow_mut().clear();
            d.keep_spare(Vec::with_capacity(SPARE_MAX + 1));
            assert!(d.spares.borrow().is_empty(), "a buffer that grew past the cap is freed");
            d.keep_spare(Vec::with_capacity(SPARE_MAX));
            assert_eq!(d.spares.borrow().len(), 1);
        });
    }

    #[test]
    fn spare_buffer_handed_out_is_empty_and_one_is_made_when_none_is_kept() {
        with_driver(|d| {
            d.keep_spare(vec![7u8; 1000]);
            let b = d.spare(64);
            assert!(b.is_empty() && b.capacity() >= 1000, "the kept buffer, cleared");
            let fresh = d.spare(32 * 1024);
            assert!(fresh.is_empty() && fresh.capacity() >= 32 * 1024);
        });
    }
}
