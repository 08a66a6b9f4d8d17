//! The life of a TCP (`mode tcp`) session, in the order it happens:
//!
//! 1. **Accepted**: the worker's accept loop has a client socket and its admission permits.
//! 2. **Connection rules**: `tcp-request connection` rules run on the addresses alone
//!    (`accept`, `reject`, `expect-proxy layer4`, variables).
//! 3. **PROXY header**: with `accept-proxy` (or `expect-proxy`), the header is read and the original
//!    addresses replace the socket's for every later step. Then the `tcp-request session` rules.
//! 4. **Content inspection**: `tcp-request content` rules run on the request bytes received so far,
//!    waiting up to `tcp-request inspect-delay` for the data a rule needs; a rule waiting for data
//!    resumes where it stopped, so the variable actions before it run once.
//!
//! A `mode http` connection runs its connection and session rules through
//! `connection_rules_pass` before its first request; the variables they set (`sess.`) are the
//! HTTP session's.
//! 5. **Backend**: the first matching `use_backend`, else `default_backend` (a listen's own).
//! 6. **Connect**: a server is picked (queueing up to `timeout queue` when all are full), connected
//!    within `timeout connect`, retried `retries` times and redispatched with `option redispatch`.
//! 7. **Tunnel**: what inspection read is sent first (after a PROXY header with `send-proxy`), then
//!    both directions are forwarded with `splice(2)` (or buffered copies), each end-of-stream
//!    propagated as a half-close, until both directions have ended or a timeout fires.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::rc::Rc;
use std::time::Duration;

use nix::fcntl::{SpliceFFlags, splice};
use tokio::io::Interest;
use tokio::time::Instant;

use crate::balance::state::ConnectAddr;
use crate::balance::{BackendState, Pick, PickKey};
use crate::l4::action::LogLevel;
use crate::log::record::{Cause, LogRecord};
use crate::route::eval::{StreamCtx, Tri};
use crate::route::vars::{VarStore, Vars};
use crate::route::{Backend, Frontend, L4Action, L4Rule, RouteTable};
use crate::runtime::io::{AnyConn, Conn, EpollConn, Transport, write_all};
use crate::runtime::pipe::PipePool;
use crate::stick::track::{Level, StickCtrs, StickView};

/// How much one splice call moves at most.
const SPLICE_CHUNK: usize = 256 * 1024;
/// Buffered-copy chunk when splicing is off or refused.
const COPY_CHUNK: usize = 16 * 1024;
/// Request bytes content inspection may hold.
const INSPECT_MAX: usize = 16 * 1024;

/// Why a session ended, for logs and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Both directions finished.
    Done,
    Rejected,
    BadProxyHeader,
    NoBackend,
    /// No server usable, queue timeout, or every connection attempt failed.
    NoServer,
    ClientTimeout,
    ServerTimeout,
    ClientError,
    ServerError,
    /// The worker is stopping.
    Stopped,
    /// A server state change shut the session down (`on-marked-down shutdown-sessions`).
    Killed,
}

/// The address the client connected to, looked up on first use: most sessions never need it, and
/// `getsockname(2)` on every accept is a system call per connection for nothing.
pub(crate) struct Dst<'a> {
    /// The address once known: looked up on first use, or set (PROXY protocol, `set-dst`).
    pub(crate) cell: std::cell::Cell<Option<Option<SocketAddr>>>,
    pub(crate) client: &'a Transport,
}

impl<'a> Dst<'a> {
    pub(crate) fn new(client: &'a Transport) -> Dst<'a> {
        Dst { cell: std::cell::Cell::new(None), client }
    }
    pub(crate) fn get(&self) -> Option<SocketAddr> {
        if let Some(v) = self.cell.get() {
            return v;
        }
        let v = self.client.socket().local_addr();
        self.cell.set(Some(v));
        v
    }
    pub(crate) fn set(&self, v: Option<SocketAddr>) {
        self.cell.set(Some(v));
    }
}

/// The stream as the rule evaluator sees it.
struct Ctx<'a> {
    rt: &'a RouteTable,
    fe: &'a Frontend,
    src: Option<SocketAddr>,
    dst: &'a Dst<'a>,
    backend: Option<usize>,
    buf: &'a [u8],
    final_data: bool,
    vars: &'a RefCell<Vars>,
    stick: &'a StickCtrs,
}

impl StreamCtx for Ctx<'_> {
    fn src(&self) -> Option<SocketAddr> {
        self.src
    }
    fn dst(&self) -> Option<SocketAddr> {
        self.dst.get()
    }
    fn frontend_name(&self) -> &str {
        &self.fe.name
    }
    fn frontend_id(&self) -> u32 {
        self.fe.id
    }
    fn backend(&self, name: &str) -> Option<&BackendState> {
        self.rt.backends.iter().find(|b| b.name == name).map(|b| &*b.state)
    }
    fn current_backend(&self) -> Option<&BackendState> {
        self.backend.map(|i| &*self.rt.backends[i].state)
    }
    fn req_buffer(&self) -> &[u8] {
        self.buf
    }
    fn req_final(&self) -> bool {
        self.final_data
    }
    fn vars(&self) -> Option<VarStore<'_>> {
        Some(VarStore { stream: self.vars, proc: &self.rt.proc_vars })
    }
    fn tls(&self) -> Option<&crate::tls::TlsInfo> {
        self.dst.client.tls()
    }
    fn client_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        Some(self.dst.client.socket().as_fd())
    }
    fn stick(&self) -> Option<StickView<'_>> {
        Some(StickView { tables: &self.rt.tables, ctrs: self.stick, default_table: &self.fe.name })
    }
    fn stick_ctrs(&self) -> Option<&StickCtrs> {
        Some(self.stick)
    }
}

/// What a session needs from its worker.
pub struct Worker {
    pub rt: std::sync::Arc<RouteTable>,
    pub pipes: PipePool,
    /// Idle HTTP server connections.
    pub http_pool: crate::l7::pool::ServerPool,
    pub buffers: crate::runtime::pipe::BufferPool,
    /// Splicing allowed at all (`nosplice` off, and the kernel accepted it so far).
    pub splice_ok: Cell<bool>,
    /// This worker's sessions, for `show sess` and `shutdown session`.
    pub sessions: std::sync::Arc<crate::control::sessions::Shard>,
}

fn eval(rule_cond: &Option<crate::route::eval::CompiledCond>, ctx: &dyn StreamCtx) -> Tri {
    match rule_cond {
        None => Tri::Yes,
        Some(c) => c.eval(ctx),
    }
}

/// Runs one client connection to its end, or until `shutdown session` kills it, then logs it when
/// the frontend logs.
pub async fn run(
    w: Rc<Worker>,
    fe_idx: usize,
    client: Transport,
    peer: Option<SocketAddr>,
    local: Option<SocketAddr>,
    accept_proxy: bool,
    sess: &crate::control::sessions::Session,
) -> End {
    sess.new_transaction();
    let dst = Dst::new(&client);
    if local.is_some() {
        dst.set(local);
    }
    // Empty unless a rule sets a variable: a connection without variables allocates nothing.
    let vars = RefCell::new(Vars::default());
    // Three empty slots unless a rule tracks; released (conn_cur, references) when the session ends.
    let stick = StickCtrs::default();
    let Some(log) = w.rt.frontends[fe_idx].log.clone() else {
        let mut no_log = None;
        return tokio::select! {
            biased;
            end = session(w, fe_idx, &client, &dst, &vars, &stick, peer, accept_proxy, sess, &mut no_log) => end,
            () = sess.killed() => End::Killed,
        };
    };
    let fe_name = &w.rt.frontends[fe_idx].name;
    log.log_connect(fe_name, peer, dst.get());
    let mut rec = Some(Box::new(LogRecord::new(std::time::SystemTime::now(), std::time::Instant::now(), peer, local, fe_name, false)));
    if let Some(r) = rec.as_deref_mut() {
        r.tls = client.tls().map(|t| (t.protocol, t.cipher));
    }
    let end = tokio::select! {
        biased;
        end = session(w.clone(), fe_idx, &client, &dst, &vars, &stick, peer, accept_proxy, sess, &mut rec) => end,
        () = sess.killed() => End::Killed,
    };
    if let Some(mut r) = rec {
        r.end = Some(std::time::Instant::now());
        r.cause = Cause::of(end);
        let (rt, fe) = (&*w.rt, &w.rt.frontends[fe_idx]);
        let ctx = Ctx { rt, fe, src: r.client, dst: &dst, backend: r.backend_idx, buf: &[], final_data: true, vars: &vars, stick: &stick };
        log.emit(&r, Some(&ctx));
    }
    end
}

/// The session itself; `rec`, when the frontend logs, collects what its log line says.
#[allow(clippy::too_many_arguments)]
async fn session(
    w: Rc<Worker>,
    fe_idx: usize,
    client: &Transport,
    dst: &Dst<'_>,
    vars: &RefCell<Vars>,
    stick: &StickCtrs,
    peer: Option<SocketAddr>,
    accept_proxy: bool,
    sess: &crate::control::sessions::Session,
    rec: &mut Option<Box<LogRecord>>,
) -> End {
    let rt = &*w.rt;
    let fe = &rt.frontends[fe_idx];
    if let Some(s) = client.socket().tcp() {
        let _ = s.set_tcp_nodelay(true);
        if fe.clitcpka {
            let _ = s.set_keepalive(true);
        }
        if fe.nolinger {
            let _ = s.set_linger(Some(Duration::ZERO));
        }
    }
    let mut src = peer;
    let mut expect_proxy = accept_proxy;

    // 2. Connection rules.
    {
        let ctx = Ctx { rt, fe, src, dst, backend: None, buf: &[], final_data: true, vars, stick };
        if run_rules(&fe.connection_rules, &ctx, client.socket().as_fd()) {
            return End::Rejected;
        }
        // `expect-proxy` may come after an `accept` of another rule: HAProxy runs rules until a
        // final one, and `expect-proxy` is not final.
        if fe.connection_rules.iter().any(|r| matches!(r.action, L4Action::ExpectProxy) && eval(&r.cond, &ctx) == Tri::Yes) {
            expect_proxy = true;
        }
    }

    // Filled only by a PROXY header or content inspection; most sessions never allocate it.
    let mut buf: Vec<u8> = Vec::new();
    let client_deadline = |d: Option<Duration>| d.map(|d| Instant::now() + d);

    // 3. PROXY header.
    if expect_proxy {
        let deadline = client_deadline(fe.timeout_client.or(Some(Duration::from_secs(10))));
        loop {
            match crate::l4::proxy_protocol::parse(&buf) {
                Ok(Some((h, n))) => {
                    if h.src.is_some() {
                        src = h.src;
                        dst.set(h.dst);
                        sess.set_src(src);
                        if let Some(r) = rec.as_deref_mut() {
                            r.client = src;
                        }
                    }
                    buf.drain(..n);
                    break;
                }
                Ok(None) if buf.len() < 536 => {}
                _ => return End::BadProxyHeader,
            }
            match read_until(client, buf, deadline).await {
                (Ok(0), _) => return End::BadProxyHeader,
                (Ok(_), b) => buf = b,
                (Err(e), _) => return if e.kind() == io::ErrorKind::TimedOut { End::ClientTimeout } else { End::ClientError },
            }
        }
    }

    // Session rules, with the addresses the PROXY header gave.
    if run_rules(&fe.session_rules, &Ctx { rt, fe, src, dst, backend: None, buf: &[], final_data: true, vars, stick }, client.socket().as_fd()) {
        return End::Rejected;
    }

    // 4. Content inspection.
    if !fe.content_rules.is_empty() {
        let pass = Inspect { rules: &fe.content_rules, delay: fe.inspect_delay, rt, fe, src, dst, backend: None, vars, stick };
        buf = match pass.run(client, buf, rec).await {
            Ok(b) => b,
            Err(end) => return end,
        };
    }

    // 5. Backend.
    let be_idx = {
        let ctx = Ctx { rt, fe, src, dst, backend: None, buf: &buf, final_data: true, vars, stick };
        fe.select_backend(&rt.backends, &ctx)
    };
    let Some(be_idx) = be_idx else { return End::NoBackend };
    let be = &rt.backends[be_idx];
    sess.set_backend(Some(be_idx));
    // The backend's content rules (not again for a `listen` section's own ones), with its own
    // inspect delay, as HAProxy's backend analyser runs them.
    if !be.content_rules.is_empty() && fe.own_backend != Some(be_idx) {
        let pass = Inspect { rules: &be.content_rules, delay: be.inspect_delay, rt, fe, src, dst, backend: Some(be_idx), vars, stick };
        buf = match pass.run(client, buf, rec).await {
            Ok(b) => b,
            Err(end) => return end,
        };
    }
    if let Some(r) = rec.as_deref_mut() {
        r.frontend_addr = dst.get();
        r.backend = Some(be.name.clone());
        r.backend_idx = Some(be_idx);
    }

    // 6. Connect.
    let mut key = PickKey { src: src.map(|s| s.ip()), hash: None };
    if let Some(hk) = &be.hash_key {
        let ctx = Ctx { rt, fe, src, dst, backend: Some(be_idx), buf: &buf, final_data: true, vars, stick };
        if let Ok(Some(sample)) = hk.expr.eval(&ctx) {
            let bytes: Vec<u8> = match sample {
                crate::route::eval::Sample::Str(s) => s.into_bytes(),
                crate::route::eval::Sample::Bin(b) => b,
                crate::route::eval::Sample::Int(i) => i.to_string().into_bytes(),
                crate::route::eval::Sample::Bool(b) => vec![u8::from(b)],
                crate::route::eval::Sample::Ip(ip) => ip.to_string().into_bytes(),
            };
            key.hash = Some(crate::balance::hash_bytes(hk.function, hk.avalanche, &bytes));
        }
    }
    if let Some(r) = rec.as_deref_mut() {
        r.connect_start = Some(std::time::Instant::now());
    }
    let sni = be.tls_sni.as_ref().and_then(|e| {
        let ctx = Ctx { rt, fe, src, dst, backend: Some(be_idx), buf: &buf, final_data: true, vars, stick };
        sample_text(e, &ctx)
    });
    // `use-server`, `persist rdp-cookie` (the server an RDP routing token names), then `stick
    // on|match` (the server stored for the stream's key): a usable server named so gets the
    // stream without balancing.
    let server_ctx = Ctx { rt, fe, src, dst, backend: Some(be_idx), buf: &buf, final_data: true, vars, stick };
    let direct = be
        .use_server
        .as_ref()
        .and_then(|u| u.chosen(&server_ctx, &be.state.servers))
        .or_else(|| be.rdp_persist.as_ref().and_then(|p| p.chosen(&buf, &be.state.servers)))
        .or_else(|| be.stick.as_ref().and_then(|p| p.matched(&server_ctx, &be.state.servers)));
    let first = match direct {
        Some(i) => match take_queued(be, i).await {
            Queued::Taken => Some(i),
            // `maxqueue` reached: balanced instead, as HAProxy redispatches it.
            Queued::QueueFull => pick_queued(be, &key, &[]).await,
            Queued::TimedOut => None,
        },
        None => pick_queued(be, &key, &[]).await,
    };
    let mut spent = Spent::default();
    let conn = match first {
        Some(i) => connect_spending(be, &key, dst, i, sni.as_deref(), false, &mut spent).await,
        None => None,
    };
    let Some((server_idx, server, _)) = conn else {
        if let Some(r) = rec.as_deref_mut() {
            r.spent(spent);
        }
        return End::NoServer;
    };
    if let Some(p) = &be.stick {
        p.store(&server_ctx, be.state.servers[server_idx].id, false);
    }
    let srv = &be.state.servers[server_idx];
    let _slot = SlotGuard { be: &be.state, idx: server_idx };
    sess.set_server(Some(server_idx));
    if let Some(r) = rec.as_deref_mut() {
        r.connected(be, server_idx, server.socket());
        r.spent(spent);
        if let Some(log) = &fe.log {
            // `unique-id-format`, for `%ID`.
            if let Some(uid) = &log.unique_id {
                let mut id = String::new();
                uid.eval(r, Some(&server_ctx), &mut id);
                r.unique_id = Some(id);
            }
            // `option logasap`: the line goes out now that the server is connected.
            if log.logasap {
                log.emit_early(r, Some(&server_ctx));
            }
        }
    }
    if let Some(s) = server.socket().tcp() {
        let _ = s.set_tcp_nodelay(true);
        if be.srvtcpka {
            let _ = s.set_keepalive(true);
        }
    }

    // 7. Tunnel.
    let mut first = Vec::new();
    match srv.send_proxy {
        1 => first.extend_from_slice(&crate::l4::proxy_protocol::encode_v1(src, dst.get())),
        2 => first.extend_from_slice(&crate::l4::proxy_protocol::encode_v2(src, dst.get(), &[])),
        _ => {}
    }
    first.extend_from_slice(&buf);
    if !first.is_empty() {
        let n = first.len() as u64;
        if write_all(&server, first, 0).await.0.is_err() {
            return End::ServerError;
        }
        srv.counts.mine().bytes_in.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
    let io = crate::log::record::Transfer::default();
    io.up.set(buf.len() as u64);
    let end = tunnel_pub(&w, fe, be, client, &server, srv, &io, Default::default()).await;
    fe.counters.bytes(io.up.get(), io.down.get());
    be.counters.bytes(io.up.get(), io.down.get());
    // Tracked entries count the session's bytes when it ends.
    stick.bytes(io.up.get(), io.down.get());
    if let Some(r) = rec.as_deref_mut() {
        r.bytes_in = io.up.get();
        r.bytes_out = io.down.get();
    }
    if (fe.nolinger || be.nolinger)
        && let Some(s) = server.socket().tcp()
    {
        let _ = s.set_linger(Some(Duration::ZERO));
    }
    end
}

/// A sample as text (the SNI sent to a server), `None` when absent or empty.
pub(crate) fn sample_text(e: &crate::route::eval::CompiledSample, ctx: &dyn StreamCtx) -> Option<String> {
    use crate::route::eval::Sample;
    let s = match e.eval(ctx).ok()?? {
        Sample::Str(s) => s,
        Sample::Bin(b) => String::from_utf8(b).ok()?,
        Sample::Int(i) => i.to_string(),
        Sample::Ip(ip) => ip.to_string(),
        Sample::Bool(_) => return None,
    };
    (!s.is_empty()).then_some(s)
}

/// Runs `rules` in order until a final one (`accept`, `reject`, `silent-drop`) matches, running
/// the variable actions on the way; true when a rejecting one matched. Connection and session
/// rules see no data, so a miss is a no-match there. Most frontends have none: no call for them.
#[inline]
fn run_rules(rules: &[L4Rule], ctx: &dyn StreamCtx, client: BorrowedFd<'_>) -> bool {
    !rules.is_empty() && run_rule_list(rules, ctx, client)
}

fn run_rule_list(rules: &[L4Rule], ctx: &dyn StreamCtx, client: BorrowedFd<'_>) -> bool {
    for r in rules {
        if eval(&r.cond, ctx) == Tri::Yes {
            match &r.action {
                L4Action::Accept => return false,
                L4Action::Reject => return true,
                L4Action::SilentDrop(ttl) => {
                    crate::runtime::sockopt::silent_drop(client, *ttl);
                    return true;
                }
                // Content rules only.
                L4Action::ExpectProxy | L4Action::SetLogLevel(_) => {}
                L4Action::Var(v) => v.run(ctx),
                L4Action::Stick(a) => {
                    if a.run(ctx, Level::Tcp).is_err() {
                        return true;
                    }
                }
            }
        }
    }
    false
}

/// Runs the `tcp-request connection` and `tcp-request session` rules of a `mode http` frontend
/// (whose connections do not pass through [`run`]); false when one rejects the connection.
/// `expect-proxy` is not acted on in `mode http`.
pub(crate) fn connection_rules_pass(fe: &Frontend, ctx: &dyn StreamCtx, client: BorrowedFd<'_>) -> bool {
    !run_rules(&fe.connection_rules, ctx, client) && !run_rules(&fe.session_rules, ctx, client)
}

enum Decision {
    Accept,
    Reject,
    /// A rule needs more data.
    Wait,
}

/// HAProxy's content-rule evaluation: rules run in order from `next`; a rule whose condition
/// misses waits for more data (until the inspect delay ends) and is where the next evaluation
/// resumes, so the rules before it (variable actions) do not run twice; the first matching
/// `accept` or `reject` decides; no match at all accepts.
fn content_decision(
    rules: &[L4Rule],
    ctx: &dyn StreamCtx,
    next: &mut usize,
    client: BorrowedFd<'_>,
    level: Level,
    log_level: &Cell<Option<LogLevel>>,
) -> Decision {
    while let Some(r) = rules.get(*next) {
        match eval(&r.cond, ctx) {
            Tri::Miss => return Decision::Wait,
            Tri::No => {}
            Tri::Yes => match &r.action {
                L4Action::Accept => return Decision::Accept,
                L4Action::Reject => return Decision::Reject,
                L4Action::SilentDrop(ttl) => {
                    crate::runtime::sockopt::silent_drop(client, *ttl);
                    return Decision::Reject;
                }
                L4Action::ExpectProxy => {}
                L4Action::SetLogLevel(l) => log_level.set(Some(*l)),
                L4Action::Var(v) => v.run(ctx),
                L4Action::Stick(a) => {
                    if a.run(ctx, level).is_err() {
                        return Decision::Reject;
                    }
                }
            },
        }
        *next += 1;
    }
    Decision::Accept
}

/// `tcp-request content` rules in mode http: run once per request, on its complete head (and
/// body, when buffered), before the `http-request` rules, as HAProxy runs them once per stream.
/// The data is final, so a rule that would wait does not match. Counters tracked here hold for
/// the transaction, as `http-request track-sc*` ones do. False when a rule rejects.
pub(crate) fn http_content_rules_pass(rules: &[L4Rule], ctx: &dyn StreamCtx, client: BorrowedFd<'_>, log_level: &Cell<Option<LogLevel>>) -> bool {
    !matches!(content_decision(rules, ctx, &mut 0, client, Level::Http, log_level), Decision::Reject)
}

/// One pass of `tcp-request content` rules (a frontend's, then a backend's): the rules are run
/// over the client's first bytes, reading more while a rule waits for them, until one decides
/// or the inspect delay ends.
struct Inspect<'a> {
    rules: &'a [L4Rule],
    delay: Option<Duration>,
    rt: &'a RouteTable,
    fe: &'a Frontend,
    src: Option<SocketAddr>,
    dst: &'a Dst<'a>,
    backend: Option<usize>,
    vars: &'a RefCell<Vars>,
    stick: &'a StickCtrs,
}

impl Inspect<'_> {
    /// The bytes read so far when the stream goes on; the end of the session otherwise.
    async fn run(&self, client: &Transport, mut buf: Vec<u8>, rec: &mut Option<Box<LogRecord>>) -> Result<Vec<u8>, End> {
        let deadline = self.delay.map(|d| Instant::now() + d);
        let mut client_eof = false;
        let mut next_rule = 0;
        let log_level = Cell::new(None);
        loop {
            let final_data = client_eof || buf.len() >= INSPECT_MAX || deadline.is_none_or(|d| Instant::now() >= d);
            let ctx = Ctx {
                rt: self.rt,
                fe: self.fe,
                src: self.src,
                dst: self.dst,
                backend: self.backend,
                buf: &buf,
                final_data,
                vars: self.vars,
                stick: self.stick,
            };
            let d = content_decision(self.rules, &ctx, &mut next_rule, client.socket().as_fd(), Level::Tcp, &log_level);
            // `set-log-level`: for the line at the end, however the session ends.
            if let (Some(r), Some(l)) = (rec.as_deref_mut(), log_level.get()) {
                r.level = Some(l);
            }
            match d {
                Decision::Reject => return Err(End::Rejected),
                Decision::Accept => return Ok(buf),
                Decision::Wait if !final_data => {}
                Decision::Wait => return Ok(buf),
            }
            match read_until(client, buf, deadline).await {
                (Ok(0), b) => {
                    buf = b;
                    client_eof = true;
                }
                (Ok(_), b) => buf = b,
                (Err(e), b) if e.kind() == io::ErrorKind::TimedOut => buf = b,
                (Err(_), _) => return Err(End::ClientError),
            }
        }
    }
}

/// Reads more into `buf`, failing with `TimedOut` at `deadline`. The deadline bounds the wait for
/// readiness only, so a timeout never drops the buffer inside a pending read. Readiness left over
/// from the read that took the last bytes is checked with a peek first: without it, a client
/// that sent part of what a rule waits for and then nothing more would hold the stream past the
/// inspect delay, in a read with no deadline.
async fn read_until(c: &Transport, buf: Vec<u8>, deadline: Option<Instant>) -> (io::Result<usize>, Vec<u8>) {
    if let Some(d) = deadline {
        loop {
            match tokio::time::timeout_at(d, c.ready(Interest::READABLE)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return (Err(e), buf),
                Err(_) => return (Err(io::ErrorKind::TimedOut.into()), buf),
            }
            match c.peek() {
                Ok(crate::runtime::uring::Ahead::Nothing) => {}
                Ok(_) => break,
                Err(e) => return (Err(e), buf),
            }
        }
    }
    c.read(buf).await
}

/// Releases the server slot taken by a pick when the session ends, however it ends.
pub(crate) struct SlotGuard<'a> {
    pub(crate) be: &'a BackendState,
    pub(crate) idx: usize,
}

impl SlotGuard<'_> {
    /// The stream's slot is now on server `idx` (the previous one was released, or is this one).
    pub(crate) fn moved_to(&mut self, idx: usize) {
        self.idx = idx;
    }

    /// The slot was released already: nothing is left to release.
    pub(crate) fn released(self) {
        std::mem::forget(self);
    }
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        self.be.release(self.idx);
    }
}

/// What a stream has spent of its backend's `retries`, and whether a retry moved it to another
/// server (the log's `%rc`, written `+<n>` then, as HAProxy does).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Spent {
    pub retries: u32,
    pub redispatched: bool,
}

/// Connects to server `idx`, whose slot the caller already holds (a pick, or persistence), with
/// the backend's retries and redispatch policy: a redispatch picks another server with `key`.
/// `used` is what the stream has already spent of the backend's `retries` (an HTTP request that
/// `retry-on` sends again: as in HAProxy, its connection retries and its request retries share
/// one budget); it grows with each retry. Returns the server finally connected to (its slot
/// held), the connection and that server's connection epoch read before its address; `None` has
/// released every slot.
pub(crate) async fn connect_spending(
    be: &Backend,
    key: &PickKey,
    dst: &Dst<'_>,
    mut idx: usize,
    sni: Option<&str>,
    ring: bool,
    used: &mut Spent,
) -> Option<(usize, Transport, u32)> {
    let state = &be.state;
    let mut tried: Vec<usize> = Vec::new();
    loop {
        let srv = &state.servers[idx];
        // The address is read per attempt (`set server addr` may move the server) and the guard
        // dropped before the connect waits; the epoch before it, so that a move in between makes
        // the connection's epoch stale (never pooled) rather than wrong.
        let epoch = srv.conn_epoch();
        let target = {
            let addr = srv.addr();
            let needs_dst = matches!(**addr, crate::balance::ServerAddr::InetSamePort(_) | crate::balance::ServerAddr::InetOffset(..));
            addr.resolve(if needs_dst { dst.get() } else { None })
        };
        let result = match target {
            Some(addr) => open(be, idx, &addr, sni, ring).await,
            None => Err(io::Error::new(io::ErrorKind::InvalidInput, "no port to connect to")),
        };
        srv.observe_connect(result.is_ok());
        match result {
            Ok(c) => return Some((idx, c, epoch)),
            Err(_) => {
                srv.counts.mine().conn_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        if used.retries >= be.retries || !be.retry_on.conn_failure {
            state.release(idx);
            return None;
        }
        used.retries += 1;
        srv.counts.mine().retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if redispatch_now(be, used.retries) {
            let from = idx;
            idx = redispatch(be, key, idx, &mut tried).await?;
            used.redispatched |= idx != from;
        } else {
            // HAProxy waits min(timeout connect, 1s) before retrying the same server.
            let pause = be.timeout_connect.unwrap_or(Duration::from_secs(1)).min(Duration::from_secs(1));
            tokio::time::sleep(pause).await;
        }
    }
}

/// Whether retry number `attempt` (1 for the first) goes to another server than the last one
/// tried: `option redispatch [<interval>]`.
pub(crate) fn redispatch_now(be: &Backend, attempt: u32) -> bool {
    let retries_left = be.retries.saturating_sub(attempt);
    match be.redispatch {
        None => false,
        // A negative interval redispatches on the Nth retry before the last (-1: the last).
        Some(i) if i < 0 => retries_left as i64 == (-i64::from(i)) - 1,
        Some(0) => false,
        Some(i) => attempt.is_multiple_of(i as u32),
    }
}

/// Moves a stream away from server `from`, whose slot it holds: gives that slot up, counts the
/// redispatch, and picks a server not in `tried` (to which `from` is added), or, when every other
/// one failed too, any server again. `None` when there is none: no slot is held then.
pub(crate) async fn redispatch(be: &Backend, key: &PickKey, from: usize, tried: &mut Vec<usize>) -> Option<usize> {
    tried.push(from);
    be.state.release(from);
    be.state.servers[from].counts.mine().redispatches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    match pick_queued(be, key, tried).await {
        Some(i) => Some(i),
        None => {
            tried.clear();
            pick_queued(be, key, tried).await
        }
    }
}

/// How a stream fared in a server's queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Queued {
    /// It has a slot on the server.
    Taken,
    /// The server's queue already holds `maxqueue` streams: it goes to another server instead.
    QueueFull,
    /// No slot freed within `timeout queue`.
    TimedOut,
}

/// Reserves a slot on server `i` for a stream that must go there (cookie persistence,
/// `use-server`, `stick match`), waiting up to `timeout queue` while it is at `maxconn`, unless
/// `maxqueue` streams already wait for it.
pub(crate) async fn take_queued(be: &Backend, i: usize) -> Queued {
    use std::sync::atomic::Ordering::Relaxed;
    let state = &be.state;
    let deadline = be.timeout_queue.map(|d| Instant::now() + d);
    loop {
        let notified = state.slot_freed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if state.take(i) {
            return Queued::Taken;
        }
        let srv = &state.servers[i];
        if srv.maxqueue != 0 && srv.queued.load(Relaxed) >= srv.maxqueue {
            return Queued::QueueFull;
        }
        srv.queued.fetch_add(1, Relaxed);
        let woke = match deadline {
            Some(d) => tokio::time::timeout_at(d, notified).await.is_ok(),
            None => {
                notified.await;
                true
            }
        };
        srv.queued.fetch_sub(1, Relaxed);
        if !woke {
            return Queued::TimedOut;
        }
    }
}

/// Picks a server, waiting up to `timeout queue` for a slot when all are full.
pub(crate) async fn pick_queued(be: &Backend, key: &PickKey, exclude: &[usize]) -> Option<usize> {
    let state = &be.state;
    let deadline = be.timeout_queue.map(|d| Instant::now() + d);
    loop {
        // Register interest before picking so a release between the pick and the wait is not lost.
        let notified = state.slot_freed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match state.pick(key, exclude) {
            Pick::Server(i) => return Some(i),
            Pick::NoServer => {
                state.counts.mine().no_server.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return None;
            }
            Pick::Full => {}
        }
        state.queued.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let woke = match deadline {
            Some(d) => tokio::time::timeout_at(d, notified).await.is_ok(),
            None => {
                notified.await;
                true
            }
        };
        state.queued.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        if !woke {
            return None;
        }
    }
}

/// Opens a connection to server `idx` of `be` at `addr` within `timeout connect`, and runs the
/// TLS handshake (sending `sni`) for an `ssl` server, within `timeout connect` too.
pub(crate) async fn open(be: &Backend, idx: usize, addr: &ConnectAddr, sni: Option<&str>, ring: bool) -> io::Result<Transport> {
    let source = be.sources.get(idx).copied().flatten();
    let c = connect_one(addr, source, be.timeout_connect, ring).await?;
    let Some(tls) = be.tls.get(idx).and_then(Option::as_ref) else { return Ok(Transport::Plain(c)) };
    if let Some(s) = c.tcp() {
        let _ = s.set_tcp_nodelay(true);
    }
    let ip = match addr {
        ConnectAddr::Inet(a) => Some(a.ip()),
        ConnectAddr::Unix(_) => None,
    };
    let hs = tls.connect(c, sni, ip);
    match tokio::time::timeout(be.timeout_connect.unwrap_or(Duration::from_secs(10)), hs).await {
        Ok(Ok(t)) => Ok(Transport::Tls(Box::new(t))),
        Ok(Err(e)) => Err(io::Error::new(io::ErrorKind::ConnectionAborted, e.to_string())),
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}

/// Connects through tokio a server socket readied first (`source`, `tune.*buf.server`); health
/// checks connect with it too.
pub(crate) async fn connect_prepared(a: SocketAddr, source: Option<SocketAddr>) -> io::Result<tokio::net::TcpStream> {
    let s = if a.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    crate::runtime::sockopt::prepare_server_socket(s.as_fd(), source)?;
    s.connect(a).await
}

/// Connects to `addr` within `timeout`, from `source` when given (`source`: bound first).
pub(crate) async fn connect_one(addr: &ConnectAddr, source: Option<SocketAddr>, timeout: Option<Duration>, ring: bool) -> io::Result<AnyConn> {
    let source = source.filter(|_| matches!(addr, ConnectAddr::Inet(_)));
    let fut = async {
        // With `ring`, a worker on the uring backend connects through its ring; other threads,
        // epoll workers and `mode tcp` sessions (see `runtime::worker`) through tokio.
        if let Some(d) = ring.then(crate::runtime::uring::current).flatten() {
            let a = match addr {
                ConnectAddr::Inet(a) => socket2::SockAddr::from(*a),
                ConnectAddr::Unix(p) => socket2::SockAddr::unix(p)?,
            };
            return crate::runtime::uring::UringConn::connect(&d, &a, source).await.map(AnyConn::Uring);
        }
        match addr {
            // Boxed: its state would otherwise make every session's future larger.
            ConnectAddr::Inet(a) if source.is_some() || crate::runtime::sockopt::server_buffers_set() => {
                Box::pin(connect_prepared(*a, source)).await.map(|s| AnyConn::Epoll(EpollConn::Tcp(s)))
            }
            ConnectAddr::Inet(a) => tokio::net::TcpStream::connect(a).await.map(|s| AnyConn::Epoll(EpollConn::Tcp(s))),
            ConnectAddr::Unix(p) => tokio::net::UnixStream::connect(p).await.map(|s| AnyConn::Epoll(EpollConn::Unix(s))),
        }
    };
    match timeout {
        Some(t) => tokio::time::timeout(t, fut).await.unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into())),
        None => fut.await,
    }
}

/// Idle-time bookkeeping of one side of the tunnel: any read from or write to that side counts as
/// activity, so a download the client never answers does not trip `timeout client`.
struct Side {
    last: Cell<Instant>,
    idle: Cell<Option<Duration>>,
}

impl Side {
    fn new(idle: Option<Duration>) -> Side {
        Side { last: Cell::new(Instant::now()), idle: Cell::new(idle) }
    }
    /// Called once per chunk moved: the coarse clock (no `rdtsc`, a few ns) is plenty for idle
    /// timeouts counted in seconds, and it is never before the precise clock, so a side never
    /// times out early.
    fn touch(&self) {
        self.last.set(crate::runtime::deadline::coarse_now());
    }
    fn deadline(&self) -> Option<Instant> {
        self.idle.get().map(|d| self.last.get() + d)
    }
}

/// Why a direction stopped before end of stream.
#[derive(Debug)]
enum DirEnd {
    /// The named side timed out.
    Timeout(bool),
    /// The named side failed (`true`: the source side).
    Error(bool),
}

/// Runs `fut` to completion, or fails when either side of the tunnel has been idle too long.
///
/// The future stays pinned while a deadline that the other side pushed back is awaited again, so
/// a wait that owns an operation (an io_uring `RECV`) is dropped only when the tunnel times out,
/// and what it would have read no longer matters then. It is polled once before any timer is
/// made: a splice loop finds readiness cached and a read finds data there most of the time, and
/// neither should build and cancel a tokio timer entry per chunk.
async fn or_idle<F: Future>(mut fut: std::pin::Pin<&mut F>, a: &Side, b: &Side) -> Result<F::Output, DirEnd> {
    if let std::task::Poll::Ready(v) = std::future::poll_fn(|cx| std::task::Poll::Ready(fut.as_mut().poll(cx))).await {
        return Ok(v);
    }
    loop {
        let deadline = match (a.deadline(), b.deadline()) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        };
        let Some(d) = deadline else {
            return Ok(fut.await);
        };
        match tokio::time::timeout_at(d, fut.as_mut()).await {
            Ok(v) => return Ok(v),
            Err(_) => {
                let now = Instant::now();
                if a.deadline().is_some_and(|x| x <= now) {
                    return Err(DirEnd::Timeout(true));
                }
                if b.deadline().is_some_and(|x| x <= now) {
                    return Err(DirEnd::Timeout(false));
                }
            }
        }
    }
}

/// Waits for readiness on `c`, or fails when either side of the tunnel has been idle too long.
async fn ready_or_idle(c: &Transport, interest: Interest, a: &Side, b: &Side) -> Result<(), DirEnd> {
    or_idle(std::pin::pin!(c.ready(interest)), a, b).await?.map_err(|_| DirEnd::Error(true))
}

/// Reads from `c` into `buf`, or fails when either side of the tunnel has been idle too long.
/// The read waits itself (on io_uring one `RECV` that polls first, where a readiness poll and
/// then a `recv` cost an operation and a system call).
async fn read_or_idle(c: &Transport, buf: &mut Vec<u8>, a: &Side, b: &Side) -> Result<usize, DirEnd> {
    let (r, back) = or_idle(std::pin::pin!(c.read(std::mem::take(buf))), a, b).await?;
    *buf = back;
    r.map_err(|_| DirEnd::Error(true))
}

/// Moves one direction with splice until end of stream.
async fn splice_dir(pool: &PipePool, src: &Transport, dst: &Transport, s_side: &Side, d_side: &Side, counter: &Counter<'_>) -> Result<(), DirEnd> {
    let mut pipe = pool.get().map_err(|_| DirEnd::Error(true))?;
    let result = async {
        loop {
            ready_or_idle(src, Interest::READABLE, s_side, d_side).await?;
            let n = match src.try_io(Interest::READABLE, || {
                splice(src.fd(), None, &pipe.write, None, SPLICE_CHUNK, SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE).map_err(io::Error::from)
            }) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(_) => return Err(DirEnd::Error(true)),
            };
            s_side.touch();
            pipe.pending += n;
            pipe.filled(pipe.pending);
            while pipe.pending > 0 {
                ready_or_idle(dst, Interest::WRITABLE, d_side, s_side).await.map_err(|e| match e {
                    DirEnd::Timeout(t) => DirEnd::Timeout(!t),
                    DirEnd::Error(_) => DirEnd::Error(false),
                })?;
                match dst.try_io(Interest::WRITABLE, || {
                    splice(&pipe.read, None, dst.fd(), None, pipe.pending, SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE)
                        .map_err(io::Error::from)
                }) {
                    Ok(m) => {
                        pipe.pending -= m;
                        d_side.touch();
                        counter.add(m as u64);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(_) => return Err(DirEnd::Error(false)),
                }
            }
        }
    }
    .await;
    pool.put(pipe);
    result
}

/// Moves one direction with buffered reads and writes until end of stream, or, when `splice` is
/// allowed, until a read fills the whole buffer: a transfer that large is worth splicing, and the
/// rest of the direction is handed to [`splice_dir`] (HAProxy's `splice-auto` does the same).
/// Small exchanges stay on `recv`/`send`, where a short read tells the socket is drained.
async fn copy_dir(w: &Worker, splice_ok: bool, src: &Transport, dst: &Transport, s_side: &Side, d_side: &Side, counter: &Counter<'_>) -> Result<(), DirEnd> {
    let mut buf = w.buffers.get(COPY_CHUNK);
    let r = copy_loop(w, splice_ok, &mut buf, src, dst, s_side, d_side, counter).await;
    w.buffers.put(buf);
    r
}

#[allow(clippy::too_many_arguments)]
async fn copy_loop(
    w: &Worker,
    splice_ok: bool,
    buf: &mut Vec<u8>,
    src: &Transport,
    dst: &Transport,
    s_side: &Side,
    d_side: &Side,
    counter: &Counter<'_>,
) -> Result<(), DirEnd> {
    loop {
        buf.clear();
        let n = match read_or_idle(src, buf, s_side, d_side).await? {
            0 => return Ok(()),
            n => n,
        };
        s_side.touch();
        let full = n == buf.capacity();
        if !full {
            src.drained();
        }
        let mut from = 0;
        while from < buf.len() {
            ready_or_idle(dst, Interest::WRITABLE, d_side, s_side).await.map_err(|e| match e {
                DirEnd::Timeout(t) => DirEnd::Timeout(!t),
                _ => DirEnd::Error(false),
            })?;
            let (r, b) = dst.write(std::mem::take(buf), from).await;
            *buf = b;
            match r {
                Ok(m) => {
                    from += m;
                    d_side.touch();
                    counter.add(m as u64);
                }
                Err(_) => return Err(DirEnd::Error(false)),
            }
        }
        if full && splice_ok {
            return splice_dir(&w.pipes, src, dst, s_side, d_side, counter).await;
        }
    }
}

/// One direction: buffered copies, switching to splice for large transfers when allowed.
async fn forward(w: &Worker, splice_on: bool, src: &Transport, dst: &Transport, s_side: &Side, d_side: &Side, counter: &Counter<'_>) -> Result<(), DirEnd> {
    copy_dir(w, splice_on && w.splice_ok.get(), src, dst, s_side, d_side, counter).await
}

/// A byte counter of one direction: the server's, and the stream's for its log line.
pub(crate) struct Counter<'a> {
    srv: &'a std::sync::atomic::AtomicU64,
    stream: &'a std::cell::Cell<u64>,
}

impl Counter<'_> {
    fn add(&self, n: u64) {
        self.srv.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        self.stream.set(self.stream.get() + n);
    }
}

/// The bidirectional forwarding of step 7, also used by HTTP once a `101` switched protocols.
/// `io` counts the bytes moved each way; `set` holds the timeouts `set-timeout` changed.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn tunnel_pub(
    w: &Worker,
    fe: &Frontend,
    be: &Backend,
    client: &Transport,
    server: &Transport,
    srv: &crate::balance::ServerState,
    io: &crate::log::record::Transfer,
    set: crate::l7::session::StreamTimeouts,
) -> End {
    // Once connected, `timeout tunnel` replaces the client and server timeouts when set;
    // `set-timeout` (`set`) replaces each for this stream.
    let tunnel = set.tunnel.or(be.timeout_tunnel);
    let c_side = Side::new(tunnel.or(set.client).or(fe.timeout_client));
    let s_side = Side::new(tunnel.or(set.server).or(be.timeout_server));
    let mine = srv.counts.mine();
    let (up, down) = (Counter { srv: &mine.bytes_in, stream: &io.up }, Counter { srv: &mine.bytes_out, stream: &io.down });
    // TLS records cannot be spliced: a TLS side copies through user space.
    let plain = client.spliceable() && server.spliceable();
    let c2s = forward(w, plain && be.splice.request, client, server, &c_side, &s_side, &up);
    let s2c = forward(w, plain && be.splice.response, server, client, &s_side, &c_side, &down);
    tokio::pin!(c2s, s2c);
    let (mut c_done, mut s_done) = (false, false);
    let killable = srv.killable.load(std::sync::atomic::Ordering::Relaxed);
    let epoch = srv.kill_epoch.load(std::sync::atomic::Ordering::SeqCst);
    let killed = srv.killed_since(epoch);
    tokio::pin!(killed);
    let fail = |e: DirEnd, client_is_src: bool| -> End {
        match e {
            DirEnd::Timeout(src_side) => {
                if src_side == client_is_src {
                    End::ClientTimeout
                } else {
                    End::ServerTimeout
                }
            }
            DirEnd::Error(src_side) => {
                if src_side == client_is_src {
                    End::ClientError
                } else {
                    End::ServerError
                }
            }
        }
    };
    loop {
        tokio::select! {
            r = &mut c2s, if !c_done => match r {
                Ok(()) => {
                    c_done = true;
                    // Once both directions are done both sockets are closed: no shutdown needed.
                    if !s_done { let _ = server.shutdown_write(); }
                    // The client is half-closed: `timeout client-fin` now bounds its side.
                    if let Some(t) = fe.timeout_client_fin { c_side.idle.set(Some(t)); }
                }
                Err(e) => return fail(e, true),
            },
            r = &mut s2c, if !s_done => match r {
                Ok(()) => {
                    s_done = true;
                    if !c_done { let _ = client.shutdown_write(); }
                    if let Some(t) = be.timeout_server_fin { s_side.idle.set(Some(t)); }
                }
                Err(e) => return fail(e, false),
            },
            () = &mut killed, if killable => return End::Killed,
        }
        if c_done && s_done {
            return End::Done;
        }
    }
}
