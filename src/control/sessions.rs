//! The session registry behind `show sess`, `shutdown session` and `shutdown sessions server`.
//!
//! Every client connection registers once, when its worker starts it, and unregisters when it
//! ends (the [`Registered`] guard). Each worker writes only its own [`Shard`] (a mutex no other
//! worker takes; the stats socket takes it for the time of a copy), so workers never contend. What
//! changes during a session (backend, server, transactions) lives in the shared [`Session`] as
//! relaxed atomics written by its worker alone: an HTTP request costs a few stores, no lock and no
//! allocation. A session is killed through its own flag and [`tokio::sync::Notify`], from whichever
//! thread runs the command.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use crate::route::RouteTable;

/// "No backend or server yet" in the atomics of a [`Session`].
const NONE: u32 = u32::MAX;
/// Session ids are `(worker + 1) << ID_SHIFT | sequence`: unique for the life of the process,
/// printed in hex like HAProxy's stream pointers.
const ID_SHIFT: u32 = 40;

/// How the client reached the listener, HAProxy's `proto=` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    TcpV4,
    TcpV6,
    Unix,
}

impl Proto {
    pub fn of(peer: Option<SocketAddr>) -> Proto {
        match peer {
            Some(SocketAddr::V4(_)) => Proto::TcpV4,
            Some(SocketAddr::V6(_)) => Proto::TcpV6,
            None => Proto::Unix,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Proto::TcpV4 => "tcpv4",
            Proto::TcpV6 => "tcpv6",
            Proto::Unix => "unix_stream",
        }
    }
}

/// What a worker knows of a connection when it starts it.
#[derive(Clone, Copy, Debug)]
pub struct NewSession {
    /// Index into [`RouteTable::frontends`].
    pub frontend: usize,
    /// Index into the frontend's `binds`.
    pub bind: usize,
    pub src: Option<SocketAddr>,
}

/// The future of [`Session::killed`]. The session task polls it at every wake-up (it is one
/// branch of a `select!`), so after the first poll, which stores the task's waker, a poll is one
/// atomic load: no lock, no waiter list.
pub struct Killed<'a> {
    session: &'a Session,
    registered: bool,
}

impl Future for Killed<'_> {
    type Output = ();
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.session.killed.load(Ordering::Acquire) {
            return std::task::Poll::Ready(());
        }
        if !self.registered {
            // A session's task is polled by its one worker with the same waker for its whole
            // life, so storing it once is enough.
            *self.session.waker.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
            self.registered = true;
            if self.session.killed.load(Ordering::SeqCst) {
                return std::task::Poll::Ready(());
            }
        }
        std::task::Poll::Pending
    }
}

/// One client connection as the stats socket sees it.
#[derive(Debug)]
pub struct Session {
    /// What `show sess` prints (`0x...`) and `shutdown session` takes.
    pub id: u64,
    /// The worker running it (HAProxy's `tid`), from 1.
    worker: u32,
    frontend: u32,
    bind: u32,
    proto: Proto,
    /// The client's address: the connection's, or the one a PROXY header gave. Written at most
    /// once after the start, by the worker.
    src: Mutex<Option<SocketAddr>>,
    accepted: SystemTime,
    /// The registry's epoch when the session started (`epoch=`).
    epoch: u32,
    /// Index into [`RouteTable::backends`] of the current transaction, or [`NONE`].
    backend: AtomicU32,
    /// Index of the server in that backend, or [`NONE`].
    server: AtomicU32,
    /// Transactions started: HTTP requests, 1 for a TCP session (`calls=`).
    calls: AtomicU32,
    killed: AtomicBool,
    /// The session task's waker, stored by [`Killed`] on its first poll, woken by [`Session::kill`].
    waker: Mutex<Option<std::task::Waker>>,
}

impl Session {
    /// The backend of the current transaction (`None` between HTTP transactions).
    pub fn set_backend(&self, b: Option<usize>) {
        self.backend.store(b.map_or(NONE, |b| b as u32), Ordering::Relaxed);
    }
    /// The server of the current transaction in its backend.
    pub fn set_server(&self, s: Option<usize>) {
        self.server.store(s.map_or(NONE, |s| s as u32), Ordering::Relaxed);
    }
    /// A transaction starts (an HTTP request was read; a TCP session starts): counts it.
    pub fn new_transaction(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }
    /// Between HTTP transactions: the previous one's backend and server are forgotten, so that
    /// `shutdown sessions server` leaves an idle kept-alive client alone.
    pub fn idle(&self) {
        self.backend.store(NONE, Ordering::Relaxed);
        self.server.store(NONE, Ordering::Relaxed);
    }
    /// The client's address changed (PROXY protocol).
    pub fn set_src(&self, src: Option<SocketAddr>) {
        *self.src.lock().unwrap_or_else(|e| e.into_inner()) = src;
    }
    fn src(&self) -> Option<SocketAddr> {
        *self.src.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn index(a: &AtomicU32) -> Option<usize> {
        match a.load(Ordering::Relaxed) {
            NONE => None,
            i => Some(i as usize),
        }
    }
    /// `shutdown session`: the session's task ends at its next wake-up, which this causes.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        if let Some(w) = self.waker.lock().unwrap_or_else(|e| e.into_inner()).take() {
            w.wake();
        }
    }
    /// Resolves once [`Self::kill`] ran. The session's task selects on it; dropping the session
    /// future closes both of its connections.
    pub fn killed(&self) -> Killed<'_> {
        Killed { session: self, registered: false }
    }
}

#[derive(Default)]
struct Slots {
    live: Vec<Option<Arc<Session>>>,
    /// Free indexes of `live`: a worker reuses them, so a shard does not grow past its peak.
    free: Vec<usize>,
    seq: u64,
}

/// One worker's sessions. Aligned so that two workers' shards never share a cache line.
#[repr(align(64))]
pub struct Shard {
    worker: u32,
    slots: Mutex<Slots>,
}

impl Shard {
    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        // A panic while holding the lock left the slots consistent (every step is one store).
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a connection; it is listed until the guard drops.
    pub fn register(&self, n: NewSession, epoch: u32) -> Registered<'_> {
        let accepted = SystemTime::now();
        let mut slots = self.lock();
        slots.seq += 1;
        let session = Arc::new(Session {
            id: (u64::from(self.worker) << ID_SHIFT) | (slots.seq & ((1 << ID_SHIFT) - 1)),
            worker: self.worker,
            frontend: n.frontend as u32,
            bind: n.bind as u32,
            proto: Proto::of(n.src),
            src: Mutex::new(n.src),
            accepted,
            epoch,
            backend: AtomicU32::new(NONE),
            server: AtomicU32::new(NONE),
            calls: AtomicU32::new(0),
            killed: AtomicBool::new(false),
            waker: Mutex::new(None),
        });
        let slot = match slots.free.pop() {
            Some(i) => {
                slots.live[i] = Some(session.clone());
                i
            }
            None => {
                slots.live.push(Some(session.clone()));
                slots.live.len() - 1
            }
        };
        Registered { shard: self, slot, session }
    }

    fn snapshot(&self, out: &mut Vec<Arc<Session>>) {
        out.extend(self.lock().live.iter().flatten().cloned());
    }
}

/// A registered session: unregistered when dropped.
pub struct Registered<'a> {
    shard: &'a Shard,
    slot: usize,
    session: Arc<Session>,
}

impl std::ops::Deref for Registered<'_> {
    type Target = Session;
    fn deref(&self) -> &Session {
        &self.session
    }
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        let mut slots = self.shard.lock();
        slots.live[self.slot] = None;
        slots.free.push(self.slot);
    }
}

/// Every worker's shard.
#[derive(Default)]
pub struct Registry {
    shards: Mutex<Vec<Arc<Shard>>>,
    /// Bumped by each `show sess`: a session's `epoch=` tells which dumps it was born after.
    epoch: AtomicU32,
}

/// The process's registry.
pub fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(Registry::default)
}

impl Registry {
    /// The shard of worker `worker` (from 0), made on first use: a worker asks once, at start.
    pub fn shard(&self, worker: usize) -> Arc<Shard> {
        let mut shards = self.shards.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = shards.iter().find(|s| s.worker == worker as u32 + 1) {
            return s.clone();
        }
        let s = Arc::new(Shard { worker: worker as u32 + 1, slots: Mutex::new(Slots::default()) });
        shards.push(s.clone());
        s
    }

    /// The epoch new sessions are stamped with.
    pub fn epoch(&self) -> u32 {
        self.epoch.load(Ordering::Relaxed)
    }

    /// Every live session, oldest worker first, by id.
    fn sessions(&self) -> Vec<Arc<Session>> {
        let shards: Vec<Arc<Shard>> = self.shards.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut out = Vec::new();
        for s in &shards {
            s.snapshot(&mut out);
        }
        out.sort_by_key(|s| s.id);
        out
    }

    fn find(&self, id: u64) -> Option<Arc<Session>> {
        self.sessions().into_iter().find(|s| s.id == id)
    }
}

/// An id as `show sess` prints it (`0x...`) or as a decimal number, as HAProxy's `strtoul(.., 0)`.
fn parse_id(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// HAProxy's `human_time`: at most two units among days, hours, minutes and seconds (`59m55s`,
/// `1d2h`, `0s`).
pub fn human_time(t: u64) -> String {
    let (d, h, m, s) = (t / 86400, t % 86400 / 3600, t % 3600 / 60, t % 60);
    let mut out = String::new();
    let mut left = 2;
    if d > 0 {
        let _ = write!(out, "{d}d");
        left -= 1;
    }
    if left > 0 && h > 0 {
        let _ = write!(out, "{h}h");
        left -= 1;
    }
    if left > 0 && m > 0 {
        let _ = write!(out, "{m}m");
        left -= 1;
    }
    if (left > 0 && s > 0) || t == 0 {
        let _ = write!(out, "{s}s");
    }
    out
}

fn age(s: &Session, now: SystemTime) -> String {
    human_time(now.duration_since(s.accepted).unwrap_or_default().as_secs())
}

fn src_text(s: &Session) -> String {
    match s.src() {
        Some(a) => format!("{}:{}", a.ip(), a.port()),
        None => format!("unix:{}", s.bind + 1),
    }
}

/// `show sess` line of one session.
fn line(rt: &RouteTable, s: &Session, now: SystemTime, out: &mut String) {
    let fe = rt.frontends.get(s.frontend as usize).map_or("?", |f| f.name.as_str());
    let be = Session::index(&s.backend).and_then(|b| rt.backends.get(b));
    let srv = be.zip(Session::index(&s.server)).and_then(|(b, i)| b.state.servers.get(i));
    let _ = writeln!(
        out,
        "{:#x}: proto={} src={} fe={fe} be={} srv={} ts=00 epoch={:#x} age={} calls={}",
        s.id,
        s.proto.name(),
        src_text(s),
        be.map_or("<NONE>", |b| b.name.as_str()),
        srv.map_or("<none>", |s| s.name.as_str()),
        s.epoch,
        age(s, now),
        s.calls.load(Ordering::Relaxed),
    );
}

fn mode_name(m: crate::config::model::Mode) -> &'static str {
    if m == crate::config::model::Mode::Http { "http" } else { "tcp" }
}

/// `show sess <id>`: HAProxy's multi-line form, with the fields sluiced has.
fn detail(rt: &RouteTable, s: &Session, now: SystemTime, out: &mut String) {
    let tm = crate::log::sink::Tm::from(s.accepted);
    let _ = writeln!(
        out,
        "{:#x}: [{:02}/{}/{:04}:{:02}:{:02}:{:02}.{:06}] id={} proto={} source={}",
        s.id,
        tm.day,
        tm.month_name(),
        tm.year,
        tm.hour,
        tm.min,
        tm.sec,
        tm.micros,
        s.id & ((1 << ID_SHIFT) - 1),
        s.proto.name(),
        src_text(s)
    );
    let _ = writeln!(out, "  flags=0x0, conn_retries=0, epoch={:#x}", s.epoch);
    match rt.frontends.get(s.frontend as usize) {
        Some(fe) => {
            let bind = fe.binds.get(s.bind as usize);
            let _ = writeln!(
                out,
                "  frontend={} (id={} mode={}), listener={} (id={}) addr={}",
                fe.name,
                fe.id,
                mode_name(fe.mode),
                bind.and_then(|b| b.name.as_deref()).unwrap_or("?"),
                bind.and_then(|b| b.id).unwrap_or(s.bind + 1),
                bind.and_then(|b| b.addrs.first()).map_or("?", |a| a.text.as_str())
            );
        }
        None => out.push_str("  frontend=? (id=-1 mode=-)\n"),
    }
    let be_idx = Session::index(&s.backend);
    match be_idx.and_then(|b| rt.backends.get(b)) {
        Some(be) => {
            let _ = writeln!(out, "  backend={} (id={} mode={})", be.name, be.id, mode_name(be.mode));
            match Session::index(&s.server).and_then(|i| be.state.servers.get(i)) {
                Some(srv) => {
                    let addr = match &**srv.addr() {
                        crate::balance::ServerAddr::Inet(a) => a.to_string(),
                        crate::balance::ServerAddr::InetSamePort(ip) | crate::balance::ServerAddr::InetOffset(ip, _) => ip.to_string(),
                        crate::balance::ServerAddr::Unix(p) => format!("unix:{}", p.display()),
                        crate::balance::ServerAddr::Unresolved => "-".into(),
                    };
                    let _ = writeln!(out, "  server={} (id={}) addr={addr}", srv.name, srv.id);
                }
                None => out.push_str("  server=<none> (id=0)\n"),
            }
        }
        None => out.push_str("  backend=<NONE> (id=-1 mode=-)\n  server=<NONE> (id=-1)\n"),
    }
    let _ = writeln!(out, "  task={:#x} (state=0x00 nice=0 calls={} tid={} age={})", s.id, s.calls.load(Ordering::Relaxed), s.worker, age(s, now));
}

const SHOW_SESS_HELP: &str = "Usage: show sess [<id> | all | help]\n\
Dumps active sessions (HAProxy's streams). Available selectors:\n\
\x20  (none)    one line per session\n\
\x20  <id>      the session with this id (0x...), in the long format\n\
\x20  all       every session in the long format\n\
\x20  help      this message\n";

/// `show sess [<id> | all | help]`.
pub fn show_sess(reg: &Registry, rt: &RouteTable, args: &[&str]) -> Result<String, String> {
    let now = SystemTime::now();
    reg.epoch.fetch_add(1, Ordering::Relaxed);
    let mut out = String::new();
    match args.first().copied() {
        None => {
            for s in reg.sessions() {
                line(rt, &s, now, &mut out);
            }
        }
        Some("help") => out.push_str(SHOW_SESS_HELP),
        Some("all") => {
            for s in reg.sessions() {
                detail(rt, &s, now, &mut out);
            }
        }
        Some(id) => match parse_id(id).and_then(|id| reg.find(id)) {
            Some(s) => detail(rt, &s, now, &mut out),
            None => return Err("Session not found.\n".into()),
        },
    }
    Ok(out)
}

/// `shutdown session <id>`: the session closes both its connections now, on whichever worker.
pub fn shutdown_session(reg: &Registry, id: Option<&str>) -> Result<String, String> {
    let Some(id) = id else {
        return Err("Session pointer expected (use 'show sess').\n".into());
    };
    match parse_id(id).and_then(|id| reg.find(id)) {
        Some(s) => {
            s.kill();
            Ok(String::new())
        }
        None => Err("No such session (use 'show sess').\n".into()),
    }
}

/// `shutdown sessions server <b>/<s>`: every session whose current transaction uses server
/// `server` of backend `backend` closes now.
pub fn shutdown_server_sessions(reg: &Registry, backend: usize, server: usize) -> String {
    for s in reg.sessions() {
        if Session::index(&s.backend) == Some(backend) && Session::index(&s.server) == Some(server) {
            s.kill();
        }
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> RouteTable {
        let text = "defaults\n    mode tcp\nfrontend f\n    bind 127.0.0.1:8080\n    default_backend be\nbackend be\n    server s1 127.0.0.1:1\n";
        RouteTable::compile(&crate::config::testing::ok(text)).unwrap()
    }

    #[test]
    fn human_time_keeps_two_units() {
        assert_eq!(human_time(0), "0s");
        assert_eq!(human_time(16), "16s");
        assert_eq!(human_time(3595), "59m55s");
        assert_eq!(human_time(3600), "1h");
        assert_eq!(human_time(93784), "1d2h");
    }

    #[test]
    fn sessions_are_listed_while_registered() {
        let reg = Registry::default();
        let rt = rt();
        let shard = reg.shard(0);
        let src = Some("127.0.0.1:40000".parse().unwrap());
        let a = shard.register(NewSession { frontend: 0, bind: 0, src }, reg.epoch());
        a.new_transaction();
        a.set_backend(Some(0));
        a.set_server(Some(0));
        let b = shard.register(NewSession { frontend: 0, bind: 0, src: None }, reg.epoch());
        let out = show_sess(&reg, &rt, &[]).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert!(lines[0].starts_with(&format!("{:#x}: proto=tcpv4 src=127.0.0.1:40000 fe=f be=be srv=s1 ts=00 epoch=0x0 age=", a.id)), "{out}");
        assert!(lines[1].contains("proto=unix_stream src=unix:1 fe=f be=<NONE> srv=<none>"), "{out}");
        let one = show_sess(&reg, &rt, &[&format!("{:#x}", a.id)]).unwrap();
        assert!(one.contains("  frontend=f (id=1 mode=tcp), listener=? (id=1) addr=127.0.0.1:8080\n"), "{one}");
        assert!(one.contains("  server=s1 (id=1) addr=127.0.0.1:1\n"), "{one}");
        drop(b);
        assert_eq!(show_sess(&reg, &rt, &[]).unwrap().lines().count(), 1);
        // A freed slot is reused, with a new id.
        let c = shard.register(NewSession { frontend: 0, bind: 0, src }, reg.epoch());
        assert!(c.id > a.id);
        assert_eq!(c.epoch, 3, "three dumps ran before it started");
    }

    #[test]
    fn shutdown_session_kills_only_that_session() {
        let reg = Registry::default();
        let shard = reg.shard(1);
        let a = shard.register(NewSession { frontend: 0, bind: 0, src: None }, 0);
        let b = shard.register(NewSession { frontend: 0, bind: 0, src: None }, 0);
        assert_eq!(shutdown_session(&reg, None), Err("Session pointer expected (use 'show sess').\n".into()));
        assert_eq!(shutdown_session(&reg, Some("0x1")), Err("No such session (use 'show sess').\n".into()));
        assert_eq!(shutdown_session(&reg, Some(&format!("{:#x}", a.id))), Ok(String::new()));
        assert!(a.killed.load(Ordering::SeqCst) && !b.killed.load(Ordering::SeqCst));
        assert_eq!(shutdown_session(&reg, Some(&b.id.to_string())), Ok(String::new()), "decimal ids too");
        assert!(b.killed.load(Ordering::SeqCst));
    }

    #[test]
    fn shutdown_server_sessions_kills_the_servers_sessions() {
        let reg = Registry::default();
        let shard = reg.shard(0);
        let a = shard.register(NewSession { frontend: 0, bind: 0, src: None }, 0);
        let b = shard.register(NewSession { frontend: 0, bind: 0, src: None }, 0);
        a.set_backend(Some(0));
        a.set_server(Some(1));
        b.set_backend(Some(0));
        b.set_server(Some(0));
        shutdown_server_sessions(&reg, 0, 1);
        assert!(a.killed.load(Ordering::SeqCst) && !b.killed.load(Ordering::SeqCst));
    }
}
