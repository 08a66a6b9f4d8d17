//! Worker threads: each pinned to its CPUs, each running a tokio `current_thread` runtime with a
//! `LocalSet`, each accepting on its own listeners. Sessions never leave the worker that accepted
//! them; the only state workers share is the routing table (read-only), the backend state
//! (atomics) and the admission semaphores.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use tokio::sync::watch;

use super::io::{AnyConn, EpollConn};
use super::limit::ConnSlot;
use super::listener::{BoundListener, StdListener};
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
        for l in listeners {
            let accept = AcceptLoop { w: w.clone(), stop: stop.clone(), active: active.clone(), drained: drained.clone() };
            if uring && let Some(d) = super::uring::current() {
                let (fd, tcp): (std::os::fd::OwnedFd, bool) = match l.listener {
                    StdListener::Tcp(t) => (t.into(), true),
                    StdListener::Unix(u) => (u.into(), false),
                };
                tokio::task::spawn_local(accept.run(Listener::Uring(super::uring::UringListener::new(d, fd, tcp)), l.frontend, l.bind));
                continue;
            }
            match l.listener {
                StdListener::Tcp(t) => match tokio::net::TcpListener::from_std(t) {
                    Ok(t) => {
                        tokio::task::spawn_local(accept.run(Listener::Tcp(t), l.frontend, l.bind));
                    }
                    Err(e) => eprintln!("sluiced: cannot register a listener: {e}"),
                },
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
                Stop::Soft if active.get() == 0 => return,
                Stop::Soft => {
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
    w: Rc<Worker>,
    stop: watch::Receiver<Stop>,
    active: Rc<Cell<usize>>,
    drained: Rc<tokio::sync::Notify>,
}

impl AcceptLoop {
    /// Waits until the global and the frontend `maxconn` both have room and the global rates
    /// (`maxconnrate`, `maxsessrate`) allow one more connection this second, without holding a
    /// slot: while any is full the listener is not accepted from, so new connections wait in the
    /// kernel's backlog. Holding a slot while waiting in `accept` would strand it on a worker whose
    /// listener gets no connection while another worker's queue fills.
    async fn room(&self, fe: usize) -> bool {
        let limits = &self.w.rt.limits;
        limits.conn_rate.room().await;
        limits.sess_rate.room().await;
        for l in [&limits.maxconn, &self.w.rt.frontends[fe].limit] {
            if !l.room().await {
                return false;
            }
        }
        true
    }

    /// Counts an accepted connection in the rates and takes its slots (waiting if another worker
    /// took the last one in between: the connection is held, not served, until there is room).
    async fn admit(&self, fe: usize) -> Option<(ConnSlot, ConnSlot)> {
        let limits = &self.w.rt.limits;
        limits.conn_rate.admit().await;
        limits.sess_rate.admit().await;
        let g = limits.maxconn.acquire().await?;
        let f = self.w.rt.frontends[fe].limit.acquire().await?;
        Some((g, f))
    }

    #[allow(clippy::too_many_arguments)]
    fn start(
        &self,
        fe: usize,
        bind: usize,
        conn: AnyConn,
        peer: Option<std::net::SocketAddr>,
        local: Option<std::net::SocketAddr>,
        accept_proxy: bool,
        permits: impl Sized + 'static,
    ) {
        let (w, active, drained) = (self.w.clone(), self.active.clone(), self.drained.clone());
        active.set(active.get() + 1);
        let fut = async move {
            let counters = w.rt.frontends[fe].counters.clone();
            counters.session_start();
            let accepted = std::time::Instant::now();
            // Listed by `show sess` until the session ends.
            let sess = w.sessions.register(NewSession { frontend: fe, bind, src: peer }, crate::control::sessions::registry().epoch());
            // The session futures are boxed, and an HTTP connection without connection or
            // session rules first waits for its first bytes in this small task: an idle client
            // connection costs the task and its socket, not a whole session's state.
            let _end = if w.rt.frontends[fe].mode == crate::config::model::Mode::Http {
                crate::l7::session::wait_first_bytes(&w.rt.frontends[fe], &conn).await;
                Box::pin(crate::l7::session::run(w.clone(), fe, conn, peer, accepted, &sess)).await
            } else {
                Box::pin(session::run(w.clone(), fe, conn, peer, local, accept_proxy, &sess)).await
            };
            drop(sess);
            counters.session_end();
            drop(permits);
            active.set(active.get() - 1);
            if active.get() == 0 {
                drained.notify_one();
            }
        };
        tokio::task::spawn_local(fut);
    }

    async fn until_stop(stop: &mut watch::Receiver<Stop>) {
        loop {
            if *stop.borrow_and_update() != Stop::Run || stop.changed().await.is_err() {
                return;
            }
        }
    }

    /// Accepts on `l` until the worker stops.
    async fn run(self, l: Listener, fe: usize, bind: usize) {
        let accept_proxy = self.w.rt.frontends[fe].binds[bind].accept_proxy;
        let mut stop = self.stop.clone();
        loop {
            tokio::select! {
                ok = self.room(fe) => if !ok { return },
                _ = Self::until_stop(&mut stop) => return,
            }
            let accepted = tokio::select! {
                r = l.accept() => r,
                _ = Self::until_stop(&mut stop) => return,
            };
            // `disable frontend`: a connection accepted meanwhile waits until `enable frontend`.
            while self.w.rt.frontends[fe].paused.load(std::sync::atomic::Ordering::Relaxed) {
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_millis(20)) => {}
                    _ = Self::until_stop(&mut stop) => return,
                }
            }
            let permits = tokio::select! {
                p = self.admit(fe) => match p { Some(p) => p, None => return },
                _ = Self::until_stop(&mut stop) => return,
            };
            match accepted {
                // The local address is looked up by the session only if something needs it.
                Ok((conn, peer)) => self.start(fe, bind, conn, peer, None, accept_proxy, permits),
                // Out of descriptors or memory: back off instead of spinning on the listener.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
    }
}

/// A listener registered with the worker's reactor.
enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
    Uring(super::uring::UringListener),
}

impl Listener {
    async fn accept(&self) -> std::io::Result<(AnyConn, Option<std::net::SocketAddr>)> {
        match self {
            Listener::Tcp(l) => l.accept().await.map(|(s, peer)| (AnyConn::Epoll(EpollConn::Tcp(s)), Some(peer))),
            Listener::Unix(l) => l.accept().await.map(|(s, _)| (AnyConn::Epoll(EpollConn::Unix(s)), None)),
            Listener::Uring(l) => l.accept().await.map(|(c, peer)| (AnyConn::Uring(c), peer)),
        }
    }
}
