//! Worker threads: each pinned to its CPUs, each running a tokio `current_thread` runtime with a
//! `LocalSet`, each accepting on its own listeners. Sessions never leave the worker that accepted
//! them; the only state workers share is the routing table (read-only), the backend state
//! (atomics) and the admission semaphores.

use std::cell::Cell;
use std::os::fd::{AsFd, AsRawFd};
use std::rc::Rc;
use std::sync::Arc;

use tokio::sync::watch;

use super::io::{AnyConn, EpollConn, Transport};
use super::limit::Permits;
use super::listener::{BoundListener, StdListener};
use super::park::{Parked, Parking};
use super::pipe::PipePool;
use crate::control::sessions::NewSession;
use crate::l4::session::{self, Worker};
use crate::route::RouteTable;

/// What the main thread asks of the workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    Run,
    /// Stop accepting; finish open sessions, then exit.
    Soft,
    /// Exit now, closing every session.
    Hard,
}

/// Idle pipes a worker keeps for reuse.
const PIPES_KEPT: usize = 256;
/// Idle copy buffers a worker keeps for reuse.
const BUFFERS_KEPT: usize = 1024;

fn pin(cpus: &[usize]) {
    let mut set = nix::sched::CpuSet::new();
    for &c in cpus {
        let _ = set.set(c);
    }
    // Pinning can be refused (a container's cpuset): the worker runs unpinned then.
    let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
}

/// Starts one thread per entry of `listeners`. Each thread returns when told to stop and, on a
/// soft stop, once its sessions have ended.
pub fn spawn(rt: Arc<RouteTable>, listeners: Vec<Vec<BoundListener>>, stop: watch::Receiver<Stop>) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    let mut handles = Vec::new();
    for (i, ls) in listeners.into_iter().enumerate() {
        let rt = rt.clone();
        let stop = stop.clone();
        let cpus = rt.process.cpu_map.get(i).cloned().flatten();
        handles.push(std::thread::Builder::new().name(format!("sluiced-w{}", i + 1)).spawn(move || {
            if let Some(c) = cpus {
                pin(&c);
            }
            crate::control::counters::set_worker(i);
            worker_main(i, rt, ls, stop);
        })?);
    }
    Ok(handles)
}

fn worker_main(index: usize, rt: Arc<RouteTable>, listeners: Vec<BoundListener>, mut stop: watch::Receiver<Stop>) {
    // A `LocalRuntime` runs `!Send` tasks in its own scheduler. A `LocalSet` driven by
    // `block_on` would do the same, but every `spawn_local` then wakes the root future through the
    // driver: an eventfd write per accepted connection, for nothing.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build_local(tokio::runtime::LocalOptions::default()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sluiced: cannot start a worker runtime: {e}");
            return;
        }
    };
    let w = Rc::new(Worker {
        pipes: PipePool::new(rt.process.pipesize, PIPES_KEPT),
        buffers: super::pipe::BufferPool::new(BUFFERS_KEPT),
        http_pool: crate::l7::pool::ServerPool::default(),
        splice_ok: Cell::new(!rt.process.nosplice),
        sessions: crate::control::sessions::registry().shard(index),
        rt,
    });
    let active = Rc::new(Cell::new(0usize));
    let drained = Rc::new(tokio::sync::Notify::new());
    runtime.block_on(async move {
        // The uring backend: this worker's ring. A worker that cannot have one (the process
        // probed a ring at start, but a ring per worker may still hit a memory limit) runs epoll.
        let uring = super::uring::selected()
            && match super::uring::start() {
                Ok(()) => true,
                Err(e) => {
                    eprintln!("sluiced: worker {}: cannot create an io_uring ring ({e}); this worker uses epoll", index + 1);
                    false
                }
            };
        let parking = match Parking::new() {
            Ok(p) => p,
            Err(e) => {
                eprintln!("sluiced: cannot start a worker: {e}");
                return;
            }
        };
        let sp = Rc::new(Spawner { w: w.clone(), active: active.clone(), drained: drained.clone(), parking });
        let accepting = Rc::new(Cell::new(0usize));
        let parked = sp.clone();
        tokio::task::spawn_local(async move {
            let (a, b) = (parked.clone(), parked.clone());
            parked.parking.run(move |p| a.spawn_parked(p), move |p| b.expire(p)).await;
        });
        for l in listeners {
            // A TCP listener of this process's own binding is drained and taken off its port by
            // its accept loop at a soft stop (see `AcceptLoop::left`).
            let left = l.owned && matches!(l.listener, StdListener::Tcp(_));
            let accept = AcceptLoop { sp: sp.clone(), stop: stop.clone(), left, accepting: accepting.clone() };
            // `mode tcp` frontends accept (and their sessions connect) through tokio even on the
            // uring backend: a TCP connection whose sockets carry ring operations cost about a
            // quarter more CPU to open and close (L4 churn: 102 against 85 µs per connection,
            // bench/RESULTS.md), and a spliced tunnel gains nothing from the ring.
            let http = w.rt.frontends.get(l.frontend).is_some_and(|f| f.mode == crate::config::model::Mode::Http);
            if uring
                && http
                && let Some(d) = super::uring::current()
            {
                let (fd, tcp): (std::os::fd::OwnedFd, bool) = match l.listener {
                    StdListener::Tcp(t) => (t.into(), true),
                    StdListener::Unix(u) => (u.into(), false),
                };
                tokio::task::spawn_local(accept.run(Listener::Uring(super::uring::UringListener::new(d, fd, tcp)), l.frontend, l.bind));
                continue;
            }
            match l.listener {
                StdListener::Tcp(t) => {
                    // The main thread holds a copy of this socket (to leave the port at stop), so
                    // dropping it would not take it off the port: a listener that cannot be
                    // registered is shut down, or the port would keep sending it connections.
                    let spare = t.try_clone();
                    match tokio::net::TcpListener::from_std(t) {
                        Ok(t) => {
                            tokio::task::spawn_local(accept.run(Listener::Tcp(t), l.frontend, l.bind));
                        }
                        Err(e) => {
                            eprintln!("sluiced: cannot register a listener: {e}");
                            if let Ok(s) = spare {
                                let _ = socket2::SockRef::from(&s).shutdown(std::net::Shutdown::Read);
                            }
                        }
                    }
                }
                StdListener::Unix(u) => match tokio::net::UnixListener::from_std(u) {
                    Ok(u) => {
                        tokio::task::spawn_local(accept.run(Listener::Unix(u), l.frontend, l.bind));
                    }
                    Err(e) => eprintln!("sluiced: cannot register a listener: {e}"),
                },
            }
        }
        loop {
            let state = *stop.borrow_and_update();
            match state {
                Stop::Hard => return,
                Stop::Soft if active.get() == 0 && accepting.get() == 0 && sp.parking.is_empty() => return,
                Stop::Soft => {
                    // Parked connections were accepted before the stop and are served as any
                    // other open connection: their first bytes start a session, and one that
                    // stays silent closes at its `timeout http-request`. (Closing them now
                    // would answer a client whose request was on its way with nothing: one
                    // connected just before a reload, say.)
                    tokio::select! {
                        _ = drained.notified() => {}
                        r = stop.changed() => if r.is_err() { return },
                    }
                }
                Stop::Run => {
                    if stop.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    // Dropping the runtime closes every session still open.
    drop(runtime);
    super::uring::stop();
}

struct AcceptLoop {
    sp: Rc<Spawner>,
    stop: watch::Receiver<Stop>,
    /// This process takes the listener off its port at stop (a TCP socket of its own binding,
    /// not shared with a master's next worker). On a soft stop the loop drains its queue and
    /// shuts it down itself (the main thread does too, later, in case a worker is stuck): a
    /// connection the kernel queued, or an accept the ring had in flight took, before that moment
    /// gets its session instead of a reset.
    left: bool,
    /// Accept loops still running; a soft stop waits for them as for sessions.
    accepting: Rc<Cell<usize>>,
}

/// Starts sessions on a worker, and holds its parked connections.
struct Spawner {
    w: Rc<Worker>,
    /// Sessions running now; a soft stop waits for them.
    active: Rc<Cell<usize>>,
    drained: Rc<tokio::sync::Notify>,
    parking: Parking,
}

/// True when the client has sent nothing yet: a one-byte peek, straight to the kernel (tokio's
/// cached readiness of a new socket says nothing about data).
fn nothing_received(s: &AnyConn) -> bool {
    let r = nix::sys::socket::recv(s.as_fd().as_raw_fd(), &mut [0u8; 1], nix::sys::socket::MsgFlags::MSG_PEEK | nix::sys::socket::MsgFlags::MSG_DONTWAIT);
    r == Err(nix::errno::Errno::EAGAIN)
}

impl Spawner {
    /// Runs the session of a connection accepted at `accepted` (and counted in its frontend's
    /// sessions) in a task of its own.
    #[allow(clippy::too_many_arguments)]
    fn spawn(
        &self,
        fe: usize,
        bind: usize,
        conn: AnyConn,
        peer: Option<std::net::SocketAddr>,
        local: Option<std::net::SocketAddr>,
        accept_proxy: bool,
        permits: Permits,
        accepted: std::time::Instant,
    ) {
        let (w, active, drained) = (self.w.clone(), self.active.clone(), self.drained.clone());
        active.set(active.get() + 1);
        tokio::task::spawn_local(async move {
            let (mut peer, mut local, mut accept_proxy) = (peer, local, accept_proxy);
            let client = match w.rt.frontends[fe].tls.get(bind).and_then(Option::as_ref) {
                None => Some(Transport::Plain(conn)),
                Some(acceptor) => {
                    // The PROXY header comes before the TLS handshake: read it off the socket
                    // first; the session then takes its addresses as the connection's.
                    let header = if accept_proxy { proxy_header(&conn, w.rt.frontends[fe].timeout_client).await } else { Some((None, None)) };
                    match header {
                        Some((src, dst)) => {
                            peer = src.or(peer);
                            local = dst.or(local);
                            accept_proxy = false;
                            let accepted = std::time::SystemTime::now();
                            let t = Box::pin(tls_handshake(conn, acceptor, w.rt.frontends[fe].timeout_client)).await;
                            if t.is_none()
                                && let Some(log) = &w.rt.frontends[fe].log
                            {
                                let f = &w.rt.frontends[fe];
                                let bind_name = f.binds[bind].name.clone().unwrap_or_else(|| (bind + 1).to_string());
                                log.log_embryonic(peer, accepted, &f.name, &bind_name, "SSL handshake failure");
                            }
                            t
                        }
                        None => None,
                    }
                }
            };
            if let Some(client) = client {
                // Listed by `show sess` until the session ends.
                let sess = w.sessions.register(NewSession { frontend: fe, bind, src: peer }, crate::control::sessions::registry().epoch());
                // Boxed: the task stays small until its session runs.
                let _end = if w.rt.frontends[fe].mode == crate::config::model::Mode::Http {
                    Box::pin(crate::l7::session::run(w.clone(), fe, client, peer, accepted, &sess)).await
                } else {
                    Box::pin(session::run(w.clone(), fe, client, peer, local, accept_proxy, &sess)).await
                };
                drop(sess);
            }
            w.rt.frontends[fe].counters.session_end();
            drop(permits);
            active.set(active.get() - 1);
            if active.get() == 0 {
                drained.notify_one();
            }
        });
    }

    /// A parked connection's first bytes arrived: its session starts, on the worker's backend.
    fn spawn_parked(&self, p: Parked) {
        let (fe, bind) = (p.fe as usize, p.bind as usize);
        let conn = match super::uring::current() {
            Some(d) => Some(AnyConn::Uring(super::uring::UringConn::from_fd(d, std::os::fd::OwnedFd::from(p.stream), true))),
            None => tokio::net::TcpStream::from_std(p.stream).ok().map(|s| AnyConn::Epoll(EpollConn::Tcp(s))),
        };
        match conn {
            Some(c) => {
                let accept_proxy = self.w.rt.frontends[fe].binds[bind].accept_proxy;
                self.spawn(fe, bind, c, p.peer, None, accept_proxy, p.permits, p.accepted)
            }
            None => {
                self.w.rt.frontends[fe].counters.session_end();
                if self.parking.is_empty() {
                    self.drained.notify_one();
                }
            }
        }
    }

    /// A parked connection sent nothing within `timeout http-request`: it closes, as HAProxy
    /// closes a connection that sent no request. (A hard stop drops the whole table.)
    fn expire(&self, p: Parked) {
        self.w.rt.frontends[p.fe as usize].counters.session_end();
        drop(p);
        // A soft stop waits for the table to empty too.
        if self.parking.is_empty() {
            self.drained.notify_one();
        }
    }
}

impl AcceptLoop {
    /// Waits until the global and the frontend `maxconn` both have room and the global rates
    /// (`maxconnrate`, `maxsessrate`) and the frontend's (`rate-limit sessions`) allow one more
    /// connection this second, without holding a slot: while any is full the listener is not
    /// accepted from, so new connections wait in the kernel's backlog. Holding a slot while
    /// waiting in `accept` would strand it on a worker whose listener gets no connection while
    /// another worker's queue fills.
    async fn room(&self, fe: usize, bind: usize) -> bool {
        let limits = &self.sp.w.rt.limits;
        let fe_rate = &self.sp.w.rt.frontends[fe].sess_rate;
        // Checked before awaiting: most rates have no limit, and then no future is polled.
        if limits.conn_rate.limit() != 0 {
            limits.conn_rate.room().await;
        }
        if limits.sess_rate.limit() != 0 {
            limits.sess_rate.room().await;
        }
        if fe_rate.limit() != 0 {
            fe_rate.room().await;
        }
        let front = &self.sp.w.rt.frontends[fe];
        for l in [&limits.maxconn, &front.limit] {
            if !l.room().await {
                return false;
            }
        }
        match &front.bind_limits[bind] {
            Some(l) => l.room().await,
            None => true,
        }
    }

    /// Counts an accepted connection in the rates and takes its slots (waiting if another worker
    /// took the last one in between: the connection is held, not served, until there is room).
    async fn admit(&self, fe: usize, bind: usize) -> Option<Permits> {
        let limits = &self.sp.w.rt.limits;
        // The time is read once for the three rates; a full one waits for its next second.
        let now = super::limit::now_second();
        let fe_rate = &self.sp.w.rt.frontends[fe].sess_rate;
        if limits.conn_rate.try_admit_in(now).is_err() {
            limits.conn_rate.admit().await;
        }
        if limits.sess_rate.try_admit_in(now).is_err() {
            limits.sess_rate.admit().await;
        }
        if fe_rate.try_admit_in(now).is_err() {
            fe_rate.admit().await;
        }
        let g = limits.maxconn.acquire().await?;
        let front = &self.sp.w.rt.frontends[fe];
        let f = front.limit.acquire().await?;
        let b = match &front.bind_limits[bind] {
            Some(l) => Some(l.acquire().await?),
            None => None,
        };
        Some((g, f, b))
    }

    /// Starts the session of an accepted connection, or parks it (`runtime::park`) when it is
    /// an HTTP connection that has sent nothing yet and no `tcp-request connection|session` rule
    /// must run on accept.
    #[allow(clippy::too_many_arguments)]
    fn start(
        &self,
        fe: usize,
        bind: usize,
        conn: AnyConn,
        peer: Option<std::net::SocketAddr>,
        local: Option<std::net::SocketAddr>,
        accept_proxy: bool,
        permits: Permits,
    ) {
        let sp = &self.sp;
        let front = &sp.w.rt.frontends[fe];
        front.counters.session_start();
        let accepted = std::time::Instant::now();
        let http = front.mode == crate::config::model::Mode::Http;
        // The default log format's `Connect from` line is written at accept.
        if http && let Some(log) = front.log.as_ref().filter(|l| l.logs_connect()) {
            let local = conn.local_addr();
            log.log_connect(&front.name, peer, local);
        }
        let parkable = http && front.connection_rules.is_empty() && front.session_rules.is_empty();
        let conn = match conn {
            c if parkable && c.tcp().is_some() && nothing_received(&c) => {
                let stream: Option<std::net::TcpStream> = match c {
                    AnyConn::Epoll(EpollConn::Tcp(s)) => s.into_std().ok(),
                    AnyConn::Uring(u) => u.into_fd().map(std::net::TcpStream::from),
                    AnyConn::Epoll(EpollConn::Unix(_)) => None,
                };
                let Some(stream) = stream else {
                    front.counters.session_end();
                    return;
                };
                let p = Parked { stream, peer, fe: fe as u32, bind: bind as u32, accepted, permits };
                match sp.parking.park(p, crate::l7::session::first_head_timeout(front)) {
                    Ok(()) => return,
                    Err(p) => return sp.spawn_parked(*p),
                }
            }
            c => c,
        };
        sp.spawn(fe, bind, conn, peer, local, accept_proxy, permits, accepted);
    }

    async fn until_stop(stop: &mut watch::Receiver<Stop>) {
        loop {
            if *stop.borrow_and_update() != Stop::Run || stop.changed().await.is_err() {
                return;
            }
        }
    }

    /// False once the main thread's end of the channel is gone.
    fn alive(stop: &watch::Receiver<Stop>) -> bool {
        stop.has_changed().is_ok()
    }

    async fn until_hard(stop: &mut watch::Receiver<Stop>) {
        while *stop.borrow_and_update() != Stop::Hard {
            if stop.changed().await.is_err() {
                return;
            }
        }
    }

    /// Accepts on `l` until the worker stops.
    async fn run(self, l: Listener, fe: usize, bind: usize) {
        self.accepting.set(self.accepting.get() + 1);
        self.accept(l, fe, bind).await;
        self.accepting.set(self.accepting.get() - 1);
        self.sp.drained.notify_one();
    }

    async fn accept(&self, l: Listener, fe: usize, bind: usize) {
        let accept_proxy = self.sp.w.rt.frontends[fe].binds[bind].accept_proxy;
        let mut stop = self.stop.clone();
        let mut pauses = PauseReport::default();
        loop {
            let state = *stop.borrow();
            let accepted = match state {
                Stop::Hard => return,
                // Told to finish, a listener this process leaves is drained, then taken off the
                // port, by this thread without yielding in between: only a connection arriving in
                // that instant can still meet a closed queue. One shared with a master's next
                // worker, or inherited (`fd@`), is just no longer accepted from.
                Stop::Soft if self.left && !super::handover::given() => match drain_one(&l) {
                    Some(c) => Ok(c),
                    None => {
                        let _ = nix::sys::socket::shutdown(l.raw_fd(), nix::sys::socket::Shutdown::Read);
                        return;
                    }
                },
                Stop::Soft => return,
                Stop::Run => {
                    // Told to stop, the loop goes round to the stop's arm (and ends if the main
                    // thread is gone, which only happens once it has said to stop).
                    tokio::select! {
                        ok = self.room(fe, bind) => if !ok { return },
                        _ = Self::until_stop(&mut stop) => if Self::alive(&stop) { continue } else { return },
                    }
                    match &l {
                        // The ring's accept in flight is cancelled and waited for, not dropped: a
                        // connection it took meanwhile still gets its session.
                        Listener::Uring(u) => match u.accept_or_stop(Self::until_stop(&mut stop)).await {
                            Ok(Some((c, peer))) => Ok((AnyConn::Uring(c), peer)),
                            Ok(None) if Self::alive(&stop) => continue,
                            Ok(None) => return,
                            Err(e) => Err(e),
                        },
                        _ => tokio::select! {
                            r = l.accept() => r,
                            _ = Self::until_stop(&mut stop) => if Self::alive(&stop) { continue } else { return },
                        },
                    }
                }
            };
            // A connection in hand is served on a soft stop (only a hard stop drops it).
            // `disable frontend`: a connection accepted meanwhile waits until `enable frontend`.
            while *stop.borrow() == Stop::Run && self.sp.w.rt.frontends[fe].paused.load(std::sync::atomic::Ordering::Relaxed) {
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_millis(20)) => {}
                    _ = Self::until_stop(&mut stop) => if !Self::alive(&stop) { return },
                }
            }
            let permits = tokio::select! {
                p = self.admit(fe, bind) => match p { Some(p) => p, None => return },
                _ = Self::until_hard(&mut stop) => return,
            };
            match accepted {
                // The local address is looked up by the session only if something needs it.
                Ok((conn, peer)) => self.start(fe, bind, conn, peer, None, accept_proxy, permits),
                // The main thread took the listener off its port (see `process::control`).
                Err(_) if *stop.borrow() != Stop::Run => return,
                Err(e) => match accept_failure(&e) {
                    // That connection is lost, not the listener: on to the next one.
                    AcceptFailure::Connection => {}
                    // Out of descriptors or memory, or a listener the kernel refuses: back off
                    // instead of spinning on the listener, and say so.
                    AcceptFailure::Pause(why) => {
                        if let Some(more) = pauses.due(std::time::Instant::now()) {
                            let rt = &self.sp.w.rt;
                            let since = if more > 0 { format!(" ({more} more pauses since the last report)") } else { String::new() };
                            let msg = format!("Proxy {} {why}: accepting paused for 100 ms{since}.", rt.frontends[fe].name);
                            crate::log::frontend_event(rt, fe, crate::log::config::Level::Emerg, &msg);
                        }
                        tokio::time::sleep(ACCEPT_PAUSE).await
                    }
                },
            }
        }
    }
}

/// One connection waiting in `l`'s queue, accepted without waiting; `None` when the queue is
/// empty (or the listener failed).
fn drain_one(l: &Listener) -> Option<(AnyConn, Option<std::net::SocketAddr>)> {
    let (sock, peer) = socket2::SockRef::from(&l.fd()).accept().ok()?;
    sock.set_nonblocking(true).ok()?;
    let peer = peer.as_socket();
    let conn = match (l, super::uring::current()) {
        (Listener::Uring(_), Some(d)) => AnyConn::Uring(super::uring::UringConn::from_fd(d, std::os::fd::OwnedFd::from(sock), true)),
        _ => AnyConn::Epoll(EpollConn::Tcp(tokio::net::TcpStream::from_std(std::net::TcpStream::from(sock)).ok()?)),
    };
    Some((conn, peer))
}

/// How long a listener rests after an `accept` that failed for want of descriptors or memory, as
/// HAProxy's does: closing connections free them meanwhile.
const ACCEPT_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// At most one report per listener in this long; the pauses in between are counted in the next.
const PAUSE_REPORT_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// What a failed `accept` means for the listener.
#[derive(Debug, PartialEq)]
enum AcceptFailure {
    /// The connection being accepted failed (reset before it was taken, a network error Linux
    /// passes on from it, a firewall's veto): the next one is accepted at once.
    Connection,
    /// The process or the system is out of something: the listener pauses, with the reason.
    Pause(String),
}

/// Sorts an `accept` error. The descriptor and memory cases name the limit as HAProxy's "reached
/// process FD limit" alerts do, so that what watches for them keeps working.
fn accept_failure(e: &std::io::Error) -> AcceptFailure {
    let limit =
        || nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).map_or_else(|_| "unknown".to_owned(), |(soft, _)| soft.to_string());
    match e.raw_os_error() {
        Some(
            libc::ECONNABORTED
            | libc::EINTR
            | libc::EPERM
            | libc::EPROTO
            | libc::ENOPROTOOPT
            | libc::ENETDOWN
            | libc::ENETUNREACH
            | libc::EHOSTDOWN
            | libc::EHOSTUNREACH
            | libc::ENONET
            | libc::EOPNOTSUPP
            | libc::ETIMEDOUT,
        ) => AcceptFailure::Connection,
        Some(libc::EMFILE) => AcceptFailure::Pause(format!("reached process FD limit (ulimit-n {}); raise 'ulimit-n' or lower 'maxconn'", limit())),
        Some(libc::ENFILE) => AcceptFailure::Pause("reached system FD limit (fs.file-max)".to_owned()),
        Some(libc::ENOBUFS | libc::ENOMEM) => AcceptFailure::Pause("reached system memory limit".to_owned()),
        _ => AcceptFailure::Pause(format!("failed to accept: {e}")),
    }
}

/// When a listener's pauses are reported: the first at once, then at most one per
/// [`PAUSE_REPORT_EVERY`], carrying the count of those not reported.
#[derive(Default)]
struct PauseReport {
    last: Option<std::time::Instant>,
    unreported: u64,
}

impl PauseReport {
    /// `Some(pauses not reported since the last report)` when this pause is to be reported.
    fn due(&mut self, now: std::time::Instant) -> Option<u64> {
        match self.last {
            Some(t) if now.duration_since(t) < PAUSE_REPORT_EVERY => {
                self.unreported += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.unreported))
            }
        }
    }
}

/// How long a TLS handshake may take when `timeout client` is not set.
const DEFAULT_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Terminates TLS on an accepted connection, within `timeout client`; `None` when the
/// handshake fails or times out (the connection is closed).
async fn tls_handshake(conn: AnyConn, acceptor: &crate::tls::Acceptor, timeout: Option<std::time::Duration>) -> Option<Transport> {
    let hs = crate::tls::TlsConn::accept(conn, acceptor);
    match tokio::time::timeout(timeout.unwrap_or(DEFAULT_HANDSHAKE_TIMEOUT), hs).await {
        Ok(Ok(t)) => Some(Transport::Tls(Box::new(t))),
        _ => None,
    }
}

/// Reads a PROXY protocol header off `conn` without reading past it (the TLS handshake follows):
/// peeks, and consumes only bytes known to be the header's: all it saw while the header is
/// incomplete, exactly its length once it is whole. `None` when it is invalid, incomplete in
/// time, or the peer left; else the addresses it carries (none for LOCAL).
async fn proxy_header(conn: &AnyConn, timeout: Option<std::time::Duration>) -> Option<(Option<std::net::SocketAddr>, Option<std::net::SocketAddr>)> {
    use crate::runtime::io::Conn;
    use std::os::fd::AsRawFd;
    let read = async {
        // The header so far: the bytes taken off the socket, then what the last peek saw.
        let mut head = [0u8; 536];
        let mut have = 0;
        loop {
            conn.ready(tokio::io::Interest::READABLE).await.ok()?;
            let n = conn
                .try_io(tokio::io::Interest::READABLE, || {
                    nix::sys::socket::recv(conn.fd().as_raw_fd(), &mut head[have..], nix::sys::socket::MsgFlags::MSG_PEEK).map_err(std::io::Error::from)
                })
                .ok();
            let Some(n) = n else { continue };
            if n == 0 {
                return None;
            }
            let (take, found) = match crate::l4::proxy_protocol::parse(&head[..have + n]) {
                Ok(Some((h, len))) => (len - have, Some((h.src, h.dst))),
                // Incomplete: every byte seen is the header's. Taking them off the socket makes
                // the wait for the rest sleep until new bytes come; bytes left there would be
                // reported again at once by a level-triggered poll (io_uring's), a busy loop.
                Ok(None) if have + n < head.len() => (n, None),
                _ => return None,
            };
            let mut got = 0;
            while got < take {
                got += conn.try_read_now(&mut head[have + got..have + take]).ok().filter(|&k| k > 0)?;
            }
            have += take;
            if found.is_some() {
                return found;
            }
        }
    };
    tokio::time::timeout(timeout.unwrap_or(DEFAULT_HANDSHAKE_TIMEOUT), read).await.ok().flatten()
}

/// A listener registered with the worker's reactor.
enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
    Uring(super::uring::UringListener),
}

impl Listener {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        match self {
            Listener::Tcp(l) => l.as_fd(),
            Listener::Unix(l) => l.as_fd(),
            Listener::Uring(l) => l.as_fd(),
        }
    }

    fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.fd().as_raw_fd()
    }

    async fn accept(&self) -> std::io::Result<(AnyConn, Option<std::net::SocketAddr>)> {
        match self {
            Listener::Tcp(l) => l.accept().await.map(|(s, peer)| (AnyConn::Epoll(EpollConn::Tcp(s)), Some(peer))),
            Listener::Unix(l) => l.accept().await.map(|(s, _)| (AnyConn::Epoll(EpollConn::Unix(s)), None)),
            Listener::Uring(l) => l.accept().await.map(|(c, peer)| (AnyConn::Uring(c), peer)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Error;
    use std::time::{Duration, Instant};

    #[test]
    fn accept_errors_of_one_connection_go_on_to_the_next_and_exhaustion_pauses_naming_the_limit() {
        for errno in [libc::ECONNABORTED, libc::EPERM, libc::EPROTO, libc::ENETUNREACH, libc::EINTR] {
            assert_eq!(accept_failure(&Error::from_raw_os_error(errno)), AcceptFailure::Connection, "errno {errno}");
        }
        let AcceptFailure::Pause(why) = accept_failure(&Error::from_raw_os_error(libc::EMFILE)) else { panic!("EMFILE must pause") };
        assert!(why.starts_with("reached process FD limit (ulimit-n "), "{why}");
        let AcceptFailure::Pause(why) = accept_failure(&Error::from_raw_os_error(libc::ENFILE)) else { panic!("ENFILE must pause") };
        assert!(why.starts_with("reached system FD limit"), "{why}");
        assert_eq!(accept_failure(&Error::from_raw_os_error(libc::ENOBUFS)), AcceptFailure::Pause("reached system memory limit".into()));
        assert!(matches!(accept_failure(&Error::from_raw_os_error(libc::EBADF)), AcceptFailure::Pause(w) if w.starts_with("failed to accept: ")));
    }

    #[test]
    fn pauses_are_reported_at_once_then_once_per_ten_seconds_with_the_count_in_between() {
        let t0 = Instant::now();
        let mut r = PauseReport::default();
        assert_eq!(r.due(t0), Some(0));
        assert_eq!(r.due(t0 + Duration::from_millis(100)), None);
        assert_eq!(r.due(t0 + Duration::from_millis(200)), None);
        assert_eq!(r.due(t0 + Duration::from_secs(10)), Some(2));
        assert_eq!(r.due(t0 + Duration::from_secs(11)), None);
        assert_eq!(r.due(t0 + Duration::from_secs(30)), Some(1));
    }
}
