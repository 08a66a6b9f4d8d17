//! The check engine: one thread of its own (`sluiced-checks`, a current-thread tokio runtime) runs
//! one task per checked server, off the data path. A task connects, runs the backend's
//! [`Conversation`], feeds the result to the server's rise/fall counter ([`Health`]) and, on a
//! transition, flips the shared [`ServerState`] that balancing reads, logs HAProxy's lines through
//! [`crate::log::backend_event`], and carries the change to the servers that `track` this one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::config::{CheckKind, CheckStatus, ProxyCheck};
use super::conv::{HttpCheck, PlainConnect, TcpCheck};
use super::health::{Health, Transition};
use super::proto::{self, Conversation, Outcome, Step, reason};
use crate::balance::{BackendState, ServerAddr, ServerState};
use crate::config::model::{Config, Proxy};
use crate::log::config::Level;
use crate::route::RouteTable;

/// HAProxy's defaults: `inter 2s`, `rise 2`, `fall 3`.
const DEFAULT_INTER: Duration = Duration::from_secs(2);
const DEFAULT_RISE: u32 = 2;
const DEFAULT_FALL: u32 = 3;

/// Builds the conversation of one check; a backend without a check `option` checks with a plain
/// connect.
pub fn conversation(check: &ProxyCheck) -> Box<dyn Conversation> {
    let http_rules: Vec<_> = check.http_rules.iter().map(|r| r.rule.clone()).collect();
    match &check.kind {
        None => Box::new(PlainConnect),
        Some(CheckKind::Http(chk)) => Box::new(HttpCheck::new(chk, &http_rules).disable_on_404(check.disable_on_404)),
        Some(CheckKind::Tcp) => Box::new(TcpCheck::new(&check.tcp_rules.iter().map(|r| r.rule.clone()).collect::<Vec<_>>())),
        Some(CheckKind::PgSql { user }) => proto::pgsql::pgsql(user),
        Some(CheckKind::MySql { user, post_41 }) => proto::mysql::mysql(user.as_deref(), *post_41),
        Some(CheckKind::Redis) => proto::redis::redis(),
        Some(CheckKind::Smtp { ehlo, domain }) => proto::smtp::smtp(*ehlo, domain),
        Some(CheckKind::Ldap) => proto::ldap::ldap(),
        Some(CheckKind::SslHello) => proto::ssl_hello::ssl_hello(),
    }
}

/// What one server's check task needs, resolved from the configuration once.
struct Plan {
    rt: Arc<RouteTable>,
    backend: usize,
    server: Arc<ServerState>,
    check: ProxyCheck,
    /// `addr`/`port` (or a leading `connect` rule's): where checks go instead of the server's
    /// own address, which is read at each check (`set server addr` moves the checks too).
    check_ip: Option<std::net::IpAddr>,
    check_port: Option<u16>,
    inter: Duration,
    fastinter: Duration,
    downinter: Duration,
    rise: u32,
    fall: u32,
    init: Option<super::config::InitState>,
    timeout_connect: Option<Duration>,
    timeout_check: Option<Duration>,
    /// Checks over TLS (`check-ssl`, or an `ssl` server checked on its own address and port),
    /// with the SNI `check-sni` gives.
    tls: Option<(Arc<crate::tls::client::Connector>, Option<String>)>,
    send_proxy: bool,
    /// The server's `source` address (its port left to the kernel): checks leave from where
    /// traffic does, so a firewall that lets the traffic in lets the checks in too.
    source: Option<SocketAddr>,
    slowstart: Option<Duration>,
    log_health_checks: bool,
    spread: u32,
    /// How long to wait before the first check: the checks of all servers are spread evenly
    /// over one interval (capped by `max-spread-checks`), as HAProxy does at start-up.
    first_delay: Duration,
    /// `observe` is on: watch `ServerState::observed_errors`.
    observe: bool,
    error_limit: u32,
    on_error: OnError,
    /// Servers that `track` this one: (backend index, server).
    trackers: Vec<(usize, Arc<ServerState>)>,
}

/// `on-error`: what `error-limit` consecutive errors seen on live traffic do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OnError {
    FastInter,
    FailCheck,
    SuddenDeath,
    MarkDown,
}

/// An agent check of one server (`agent-check`): a side channel, run by its own task beside the
/// health check.
struct AgentPlan {
    rt: Arc<RouteTable>,
    backend: usize,
    server: Arc<ServerState>,
    agent_ip: Option<std::net::IpAddr>,
    agent_port: u16,
    inter: Duration,
    timeout: Duration,
    send: Option<String>,
    /// As [`Plan::source`].
    source: Option<SocketAddr>,
}

impl Plan {
    /// Where the next check goes; `None` when the server has no address to check.
    fn target(&self) -> Option<SocketAddr> {
        check_target(&self.server.addr(), self.check_ip, self.check_port)
    }
}

fn agent_plans(cfg: &Config, rt: &Arc<RouteTable>) -> Vec<AgentPlan> {
    let mut out = Vec::new();
    for p in cfg.proxies.iter().filter(|p| p.kind.has_backend()) {
        for s in p.servers.iter().filter(|s| s.opts.check.agent.enabled && !s.opts.disabled) {
            let Some((bi, server)) = find_server(rt, &p.name, &s.name) else { continue };
            out.extend(agent_plan(rt, bi, server, &s.opts, p.timeouts.check));
        }
    }
    out
}

fn agent_plan(
    rt: &Arc<RouteTable>,
    backend: usize,
    server: Arc<ServerState>,
    o: &crate::config::model::ServerOpts,
    timeout: Option<Duration>,
) -> Option<AgentPlan> {
    let a = &o.check.agent;
    let agent_ip = match &a.addr {
        Some(crate::config::addr::Host::Ip(ip)) => Some(*ip),
        _ => None,
    };
    // HAProxy needs `agent-port`: without it there is nothing to connect to.
    let agent_port = a.port?;
    let inter = a.inter.or(o.check.inter).unwrap_or(DEFAULT_INTER);
    Some(AgentPlan {
        rt: rt.clone(),
        backend,
        server,
        agent_ip,
        agent_port,
        inter,
        timeout: timeout.unwrap_or(inter),
        send: a.send.clone(),
        source: check_source(o),
    })
}

/// The address checks of a server with `source` leave from: its IP, any port.
fn check_source(o: &crate::config::model::ServerOpts) -> Option<SocketAddr> {
    let ip = crate::route::compile_source(o.source.as_deref()).ok().flatten()?.ip();
    (!ip.is_unspecified()).then(|| SocketAddr::new(ip, 0))
}

/// Connects a check to `target`, from `source` when the server has one.
async fn connect_from(target: SocketAddr, source: Option<SocketAddr>) -> std::io::Result<TcpStream> {
    match source {
        None => TcpStream::connect(target).await,
        Some(_) => crate::l4::session::connect_prepared(target, source).await,
    }
}

/// Asks the agent every `agent-inter` and applies its reply as HAProxy does (see
/// `proto::agent`): weight, maxconn, drain/maint/ready, and down/up. A failed connection to the
/// agent changes nothing.
async fn run_agent(plan: AgentPlan) {
    use super::proto::agent::{AgentAdmin, agent, parse_agent_reply};
    let be = &plan.rt.backends[plan.backend];
    loop {
        if plan.server.is_deleted() {
            return;
        }
        let target = check_target(&plan.server.addr(), plan.agent_ip, Some(plan.agent_port));
        let Some(target) = target.filter(|_| !plan.server.agent_disabled.load(Ordering::Relaxed)) else {
            tokio::time::sleep(plan.inter).await;
            continue;
        };
        let started = Instant::now();
        // An agent that cannot be reached or does not answer in time changes nothing.
        let deadline = tokio::time::Instant::now() + plan.timeout;
        let outcome = match tokio::time::timeout_at(deadline, connect_from(target, plan.source)).await {
            Ok(Ok(mut stream)) => {
                let o = converse(&mut stream, agent(plan.send.as_deref()), deadline).await;
                (!matches!(o.status, CheckStatus::L7Tout)).then_some(o)
            }
            _ => None,
        };
        if let Some(o) = outcome {
            let reply = parse_agent_reply(&o.info);
            // The log line quotes the agent's verdict as the check's info, as HAProxy does.
            let what = detail(&Outcome { info: reply.reason(), ..o.clone() }, started.elapsed());
            let s = &plan.server;
            let mut changed = false;
            if let Some(w) = reply.weight_for(s.initial_weight)
                && w != s.weight()
            {
                s.weight.store(w, Ordering::Relaxed);
                changed = true;
            }
            if let Some(m) = reply.maxconn {
                s.maxconn.store(m, Ordering::Relaxed);
            }
            match reply.admin {
                Some(AgentAdmin::Drain) if s.admin() != crate::balance::AdminState::Drain => {
                    s.set_admin(crate::balance::AdminState::Drain);
                    changed = true;
                }
                Some(AgentAdmin::Maint) if s.admin() != crate::balance::AdminState::Maint => {
                    s.set_admin(crate::balance::AdminState::Maint);
                    changed = true;
                }
                Some(AgentAdmin::Ready) if s.admin() != crate::balance::AdminState::Ready => {
                    s.set_admin(crate::balance::AdminState::Ready);
                    changed = true;
                }
                _ => {}
            }
            if reply.marks_down() && !s.is_agent_down() {
                let was_up = s.is_up();
                s.set_agent_down(true);
                be.state.state_changed();
                if was_up {
                    let (active, backup) = counts(&be.state);
                    let msg = format!(
                        "Server {}/{} is DOWN, {what}. {active} active and {backup} backup servers left. {} sessions active, 0 requeued, 0 remaining in queue.",
                        be.name,
                        s.name,
                        s.cur_conns.load(Ordering::Relaxed)
                    );
                    crate::log::backend_event(&plan.rt, plan.backend, Level::Alert, &msg);
                    if active + backup == 0 {
                        crate::log::backend_event(&plan.rt, plan.backend, Level::Emerg, &format!("backend {} has no server available!", be.name));
                    }
                }
                changed = false;
            } else if reply.health == Some(super::proto::agent::AgentHealth::Up) && s.is_agent_down() {
                s.set_agent_down(false);
                be.state.state_changed();
                if s.is_up() {
                    let (active, backup) = counts(&be.state);
                    let msg = format!(
                        "Server {}/{} is UP, {what}. {active} active and {backup} backup servers online. 0 sessions requeued, 0 total in queue.",
                        be.name, s.name
                    );
                    crate::log::backend_event(&plan.rt, plan.backend, Level::Notice, &msg);
                }
                changed = false;
            }
            if changed {
                be.state.state_changed();
            }
        }
        tokio::time::sleep(plan.inter).await;
    }
}

/// A task for the check thread.
enum Job {
    Health(Box<Plan>),
    Agent(AgentPlan),
}

/// What a backend's checks share, kept for servers added at run time (`add server ... check`).
#[derive(Clone)]
struct BackendChecks {
    check: ProxyCheck,
    timeout_connect: Option<Duration>,
    timeout_check: Option<Duration>,
    log_health_checks: bool,
}

/// The check thread, started with the first checked server (at start-up, or by `add server`),
/// and the backends' check settings by backend name.
struct Engine {
    jobs: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedSender<Job>>>,
    backends: std::collections::HashMap<String, BackendChecks>,
    spread: u32,
}

static ENGINE: std::sync::OnceLock<Engine> = std::sync::OnceLock::new();

impl Engine {
    /// Hands a task to the check thread, starting the thread if it is not running yet.
    fn send(&self, job: Job) -> std::io::Result<()> {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if jobs.is_none() {
            *jobs = Some(start_thread()?);
        }
        if let Some(tx) = jobs.as_ref() {
            let _ = tx.send(job);
        }
        Ok(())
    }
}

/// The `sluiced-checks` thread: runs every task it is handed. It lives as long as the process.
fn start_thread() -> std::io::Result<tokio::sync::mpsc::UnboundedSender<Job>> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Job>();
    std::thread::Builder::new().name("sluiced-checks".into()).spawn(move || {
        // A local runtime: TLS checks hold a connection whose state is not `Sync`.
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build_local(tokio::runtime::LocalOptions::default()) else {
            eprintln!("[ALERT]    ({}) : cannot start the health check runtime", std::process::id());
            return;
        };
        runtime.block_on(async move {
            while let Some(job) = rx.recv().await {
                match job {
                    Job::Health(p) => tokio::task::spawn_local(run(*p)),
                    Job::Agent(a) => tokio::task::spawn_local(run_agent(a)),
                };
            }
        });
    })?;
    Ok(tx)
}

/// Starts the checks of the configured servers (the check thread starts when any server is
/// checked), and keeps each backend's check settings for servers added at run time.
pub fn spawn(cfg: &Config, rt: &Arc<RouteTable>) -> std::io::Result<()> {
    let backends = cfg
        .proxies
        .iter()
        .filter(|p| p.kind.has_backend())
        .map(|p| {
            let b = BackendChecks {
                check: p.check.clone(),
                timeout_connect: p.timeouts.connect,
                timeout_check: p.timeouts.check,
                log_health_checks: p.log.log_health_checks.unwrap_or(false),
            };
            (p.name.clone(), b)
        })
        .collect();
    let spread = cfg.global.check.spread_checks.unwrap_or(0).min(50);
    let engine = ENGINE.get_or_init(|| Engine { jobs: std::sync::Mutex::new(None), backends, spread });
    for p in plans(cfg, rt) {
        engine.send(Job::Health(Box::new(p)))?;
    }
    for a in agent_plans(cfg, rt) {
        engine.send(Job::Agent(a))?;
    }
    Ok(())
}

/// Starts the health check (and agent check) of a server added at run time with `check` (or
/// `agent-check`). Its checks stay off until `enable health` (`enable agent`), as HAProxy's do
/// for dynamic servers, and stop when the server is deleted.
pub fn add_server(rt: &Arc<RouteTable>, backend: usize, server: &Arc<ServerState>, o: &crate::config::model::ServerOpts) -> Result<(), String> {
    let Some(engine) = ENGINE.get() else { return Err("health checks are not running in this process".into()) };
    let be = &rt.backends[backend];
    let Some(b) = engine.backends.get(&be.name) else { return Err(format!("no check settings for backend '{}'", be.name)) };
    if o.check.enabled {
        let inter = o.check.inter.unwrap_or(DEFAULT_INTER);
        let plan = Plan {
            rt: rt.clone(),
            backend,
            server: server.clone(),
            check: b.check.clone(),
            check_ip: o.check.addr,
            check_port: o.check.port,
            inter,
            fastinter: o.check.fastinter.unwrap_or(inter),
            downinter: o.check.downinter.unwrap_or(inter),
            rise: o.check.rise.unwrap_or(DEFAULT_RISE),
            fall: o.check.fall.unwrap_or(DEFAULT_FALL),
            init: o.check.init_state,
            timeout_connect: b.timeout_connect,
            timeout_check: b.timeout_check,
            send_proxy: o.check.send_proxy,
            source: check_source(o),
            slowstart: o.slowstart,
            log_health_checks: b.log_health_checks,
            spread: engine.spread,
            first_delay: Duration::ZERO,
            observe: server.observe != crate::balance::Observe::None,
            error_limit: o.error_limit.unwrap_or(10).max(1),
            on_error: on_error(o.on_error.as_deref()),
            trackers: Vec::new(),
            // `ssl` is not taken by `add server`: its checks are plain.
            tls: None,
        };
        engine.send(Job::Health(Box::new(plan))).map_err(|e| e.to_string())?;
    }
    if o.check.agent.enabled
        && let Some(a) = agent_plan(rt, backend, server.clone(), o, b.timeout_check)
    {
        engine.send(Job::Agent(a)).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn on_error(s: Option<&str>) -> OnError {
    match s {
        Some("fastinter") => OnError::FastInter,
        Some("sudden-death") => OnError::SuddenDeath,
        Some("mark-down") => OnError::MarkDown,
        _ => OnError::FailCheck,
    }
}

fn find_server(rt: &RouteTable, backend: &str, server: &str) -> Option<(usize, Arc<ServerState>)> {
    let bi = rt.backends.iter().position(|b| b.name == backend)?;
    let s = rt.backends[bi].state.servers.iter().find(|s| s.name == server)?;
    Some((bi, s.clone()))
}

fn plans(cfg: &Config, rt: &Arc<RouteTable>) -> Vec<Plan> {
    let spread = cfg.global.check.spread_checks.unwrap_or(0).min(50);
    let mut out = Vec::new();
    for p in cfg.proxies.iter().filter(|p| p.kind.has_backend()) {
        for s in &p.servers {
            let o = &s.opts;
            if !o.check.enabled || o.disabled || o.track.is_some() {
                continue;
            }
            let Some((bi, server)) = find_server(rt, &p.name, &s.name) else { continue };
            let connect = first_connect(&p.check);
            let port = connect.and_then(|c| match c.port {
                Some(super::config::CheckPort::Number(n)) => Some(n),
                _ => None,
            });
            let addr = connect.and_then(|c| match c.addr.as_ref().map(|a| &a.kind) {
                Some(crate::config::addr::AddrKind::Inet { host: crate::config::addr::Host::Ip(ip), .. }) => Some(*ip),
                _ => None,
            });
            let (check_ip, check_port) = (addr.or(o.check.addr), port.or(o.check.port));
            if check_target(&server.addr(), check_ip, check_port).is_none() {
                continue;
            }
            let inter = o.check.inter.unwrap_or(DEFAULT_INTER);
            let observe = server.observe != crate::balance::Observe::None;
            // Checks of an `ssl` server use TLS unless they go to another port or address.
            let overridden = port.or(o.check.port).is_some() || addr.or(o.check.addr).is_some();
            let tls = (o.check.ssl || (o.tls.ssl && !overridden))
                .then(|| check_tls(&o.tls, &o.check, &cfg.global.tls).ok())
                .flatten()
                .map(|c| (c, o.check.sni.clone()));
            out.push(Plan {
                rt: rt.clone(),
                backend: bi,
                server,
                check: p.check.clone(),
                check_ip,
                check_port,
                inter,
                fastinter: o.check.fastinter.unwrap_or(inter),
                downinter: o.check.downinter.unwrap_or(inter),
                rise: o.check.rise.unwrap_or(DEFAULT_RISE),
                fall: o.check.fall.unwrap_or(DEFAULT_FALL),
                init: o.check.init_state,
                timeout_connect: p.timeouts.connect,
                timeout_check: p.timeouts.check,
                tls,
                send_proxy: o.check.send_proxy || connect.is_some_and(|c| c.send_proxy),
                source: check_source(o),
                slowstart: o.slowstart,
                log_health_checks: p.log.log_health_checks.unwrap_or(false),
                spread,
                first_delay: Duration::ZERO,
                observe,
                error_limit: o.error_limit.unwrap_or(10).max(1),
                on_error: on_error(o.on_error.as_deref()),
                trackers: trackers(cfg, rt, p, &s.name),
            });
        }
    }
    let n = out.len() as u32;
    for (i, p) in out.iter_mut().enumerate() {
        let d = p.inter * i as u32 / n.max(1);
        p.first_delay = cfg.global.check.max_spread_checks.map_or(d, |m| d.min(m));
    }
    out
}

/// The TLS settings of a server's checks: the server's, with `check-alpn` when given. The route
/// compiler has already refused settings that do not compile.
pub fn check_tls(
    t: &crate::tls::config::ServerTls,
    c: &super::config::ServerCheck,
    g: &crate::tls::config::GlobalTls,
) -> Result<Arc<crate::tls::client::Connector>, String> {
    let mut t = t.clone();
    t.ssl = true;
    if let Some(a) = &c.alpn {
        t.alpn = Some(a.clone());
    }
    crate::tls::client::compile_server(&t, g).map(|c| c.expect("ssl is set"))
}

/// The `connect` rule the check opens with, if any (`tcp-check connect port 6379`): its port,
/// address and `send-proxy` apply to the check connection. Later `connect` rules are not run.
fn first_connect(check: &ProxyCheck) -> Option<&super::config::CheckConnect> {
    use super::config::{HttpCheckRule, TcpCheckRule};
    match check.kind {
        Some(CheckKind::Tcp) => check.tcp_rules.iter().map(|r| &r.rule).find(|r| !matches!(r, TcpCheckRule::Comment(_))).and_then(|r| match r {
            TcpCheckRule::Connect(c) => Some(c),
            _ => None,
        }),
        Some(CheckKind::Http(_)) => check.http_rules.iter().map(|r| &r.rule).find(|r| !matches!(r, HttpCheckRule::Comment(_))).and_then(|r| match r {
            HttpCheckRule::Connect(c) => Some(c),
            _ => None,
        }),
        _ => None,
    }
}

/// Every server whose `track` names `backend/server` (or `server` in the same backend).
fn trackers(cfg: &Config, rt: &RouteTable, tracked_in: &Proxy, tracked: &str) -> Vec<(usize, Arc<ServerState>)> {
    let mut out = Vec::new();
    for p in cfg.proxies.iter().filter(|p| p.kind.has_backend()) {
        for s in &p.servers {
            let Some(t) = &s.opts.track else { continue };
            let (be, srv) = t.split_once('/').unwrap_or((p.name.as_str(), t.as_str()));
            if be == tracked_in.name
                && srv == tracked
                && let Some(found) = find_server(rt, &p.name, &s.name)
            {
                out.push(found);
            }
        }
    }
    out
}

/// Where checks go: `addr` and `port` override the server's own address.
fn check_target(addr: &ServerAddr, ip: Option<std::net::IpAddr>, port: Option<u16>) -> Option<SocketAddr> {
    let base = match addr {
        ServerAddr::Inet(a) => Some(*a),
        ServerAddr::InetSamePort(i) | ServerAddr::InetOffset(i, _) => port.map(|p| SocketAddr::new(*i, p)),
        ServerAddr::Unix(_) | ServerAddr::Unresolved => None,
    }?;
    Some(SocketAddr::new(ip.unwrap_or(base.ip()), port.unwrap_or(base.port())))
}

/// A cheap pseudo-random source for `spread-checks`; no need for a cryptographic one.
fn jitter(d: Duration, percent: u32, seed: &AtomicU64) -> Duration {
    if percent == 0 {
        return d;
    }
    let mut x = seed.load(Ordering::Relaxed) ^ 0x9E37_79B9_7F4A_7C15;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    seed.store(x, Ordering::Relaxed);
    let span = d.as_millis() as u64 * u64::from(percent) / 100;
    let ms = d.as_millis() as u64 - span + if span == 0 { 0 } else { x % (2 * span + 1) };
    Duration::from_millis(ms)
}

async fn run(plan: Plan) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos() as u64;
    let seed = AtomicU64::new(now ^ (u64::from(plan.server.id) << 32) ^ plan.backend as u64);
    let mut health = Health::new(plan.rise, plan.fall, plan.init);
    plan.server.set_up(health.is_up());
    for (_, t) in &plan.trackers {
        t.set_up(health.is_up());
    }
    let mut ramp: Option<tokio::task::JoinHandle<()>> = None;
    // The first check waits its turn (checks are spread over `inter`), but live errors seen
    // meanwhile are acted on at once.
    nap_until(&plan, &mut health, &mut ramp, tokio::time::Instant::now() + jitter(plan.first_delay, plan.spread, &seed)).await;
    loop {
        if plan.server.is_deleted() {
            if let Some(r) = ramp.take() {
                r.abort();
            }
            return;
        }
        let started = Instant::now();
        // The stats socket may have forced the verdict (`set server health`, `disable health`):
        // checks go on from the forced state.
        if plan.server.health_up() != health.is_up() {
            let forced = if plan.server.health_up() { super::config::InitState::Up } else { super::config::InitState::Down };
            health = Health::new(plan.rise, plan.fall, Some(forced));
        }
        if plan.server.check_disabled.load(Ordering::Relaxed) {
            // Not checked: the server counts as up until `enable health`.
        } else if plan.server.admin() != crate::balance::AdminState::Maint {
            let outcome = check_once(&plan).await;
            let took = started.elapsed();
            if !outcome.passed() {
                plan.server.check_fails.fetch_add(1, Ordering::Relaxed);
            }
            if let Ok(mut last) = plan.server.last_check.lock() {
                *last = Some(crate::balance::CheckReport {
                    status: proto::short_name(outcome.status),
                    reason: reason(outcome.status),
                    code: outcome.code,
                    duration_ms: took.as_millis() as u64,
                    desc: outcome.info.clone(),
                });
            }
            let was_up = health.is_up();
            let change = if outcome.passed() { health.success() } else { health.failure() };
            if plan.log_health_checks && change.is_none() && (outcome.passed() != was_up || health.transitioning()) {
                log_check(&plan, &outcome, took, &health);
            }
            if let Some(t) = change {
                transition(&plan, &mut ramp, t, &outcome, took);
            }
            let nolb = outcome.status == CheckStatus::L7OkC && health.is_up();
            if !health.is_up() {
                plan.server.set_nolb(false);
            } else if nolb != plan.server.is_nolb() {
                set_nolb(&plan, nolb, &outcome, took);
            }
        }
        let next = if health.fully_down() {
            plan.downinter
        } else if health.transitioning() {
            plan.fastinter
        } else {
            plan.inter
        };
        let wake = tokio::time::Instant::now() + jitter(next, plan.spread, &seed).saturating_sub(started.elapsed().min(next / 2));
        nap_until(&plan, &mut health, &mut ramp, wake).await;
    }
}

/// Sleeps until `wake`, the next check; under `observe`, wakes every 50ms to act on the errors
/// live traffic reported (`on-error`), which may bring the next check closer.
async fn nap_until(plan: &Plan, health: &mut Health, ramp: &mut Option<tokio::task::JoinHandle<()>>, mut wake: tokio::time::Instant) {
    loop {
        if plan.observe && plan.server.observed_errors.load(Ordering::Relaxed) >= plan.error_limit {
            plan.server.observed_errors.store(0, Ordering::Relaxed);
            let outcome = Outcome::new(CheckStatus::Hana, format!("Detected {} consecutive errors", plan.error_limit));
            let change = match plan.on_error {
                OnError::FastInter => None,
                OnError::FailCheck => health.failure(),
                OnError::SuddenDeath => {
                    health.sudden_death();
                    None
                }
                OnError::MarkDown => health.mark_down(),
            };
            if let Some(t) = change {
                transition(plan, ramp, t, &outcome, Duration::ZERO);
            }
            // Every `on-error` mode checks again after `fastinter`.
            wake = tokio::time::Instant::now() + plan.fastinter;
        }
        let now = tokio::time::Instant::now();
        if now >= wake {
            break;
        }
        let nap = if plan.observe { (wake - now).min(Duration::from_millis(50)) } else { wake - now };
        tokio::time::sleep(nap).await;
    }
}

fn transition(plan: &Plan, ramp: &mut Option<tokio::task::JoinHandle<()>>, t: Transition, outcome: &Outcome, took: Duration) {
    if let Some(r) = ramp.take() {
        r.abort();
    }
    apply(plan, t, outcome, took);
    if t == Transition::Up
        && let Some(ss) = plan.slowstart
    {
        *ramp = Some(tokio::spawn(slowstart(plan.server.clone(), plan.rt.backends[plan.backend].state.clone(), ss)));
    }
}

/// One check: connect (bounded by `timeout connect`, and by `inter` too when `timeout check` is
/// set, as HAProxy does), then the conversation, bounded by `timeout check`, or `inter` without it.
async fn check_once(plan: &Plan) -> Outcome {
    let connect_limit = plan.timeout_connect.map_or(plan.inter, |c| c.min(plan.inter));
    let Some(target) = plan.target() else { return Outcome::new(CheckStatus::L4Con, "No address to check") };
    let mut stream = match tokio::time::timeout(connect_limit, connect_from(target, plan.source)).await {
        Err(_) => return Outcome::new(CheckStatus::L4Tout, ""),
        Ok(Err(e)) => return Outcome::new(CheckStatus::L4Con, os_error_text(&e)),
        Ok(Ok(s)) => s,
    };
    let _ = stream.set_nodelay(true);
    if plan.send_proxy {
        let hdr = crate::l4::proxy_protocol::encode_v1(stream.local_addr().ok(), Some(target));
        if stream.write_all(&hdr).await.is_err() {
            return Outcome::new(CheckStatus::L4Con, "Connection reset by peer");
        }
    }
    let deadline = tokio::time::Instant::now() + plan.timeout_check.unwrap_or(plan.inter);
    let Some((connector, sni)) = &plan.tls else {
        return converse(&mut stream, conversation(&plan.check), deadline).await;
    };
    let hs = connector.connect(crate::runtime::io::AnyConn::Epoll(crate::runtime::io::EpollConn::Tcp(stream)), sni.as_deref(), Some(target.ip()));
    let tls = match tokio::time::timeout(connect_limit, hs).await {
        Err(_) => return Outcome::new(CheckStatus::L6Tout, ""),
        Ok(Err(e)) => return Outcome::new(CheckStatus::L6Rsp, e.to_string()),
        Ok(Ok(t)) => t,
    };
    let o = converse_tls(&tls, conversation(&plan.check), deadline).await;
    // A bare connect check that completed its handshake is a layer 6 success.
    if o.status == CheckStatus::L4Ok { Outcome::new(CheckStatus::L6Ok, "") } else { o }
}

/// [`converse`] over a TLS connection.
async fn converse_tls(c: &crate::tls::TlsConn, mut conv: Box<dyn Conversation>, deadline: tokio::time::Instant) -> Outcome {
    use crate::runtime::io::Conn;
    let mut data = Vec::new();
    let mut step = conv.start();
    let mut buf = Vec::with_capacity(16384);
    loop {
        match step {
            Step::Done(o) => return o,
            Step::Send(bytes) => {
                if !bytes.is_empty() && !matches!(tokio::time::timeout_at(deadline, crate::runtime::io::write_all(c, bytes, 0)).await, Ok((Ok(()), _))) {
                    return conv.closed(&data);
                }
            }
            Step::NeedMore => {}
        }
        buf.clear();
        match tokio::time::timeout_at(deadline, c.read(std::mem::take(&mut buf))).await {
            Err(_) => return conv.timed_out(),
            Ok((Ok(0) | Err(_), _)) => return conv.closed(&data),
            Ok((Ok(n), b)) => {
                data.extend_from_slice(&b[..n]);
                buf = b;
                step = conv.received(&data);
            }
        }
    }
}

/// Runs a conversation over a connected stream until it decides, the peer closes, or `deadline`.
async fn converse(stream: &mut TcpStream, mut conv: Box<dyn Conversation>, deadline: tokio::time::Instant) -> Outcome {
    let mut data = Vec::new();
    let mut step = conv.start();
    let mut buf = vec![0u8; 16384];
    loop {
        match step {
            Step::Done(o) => return o,
            Step::Send(bytes) => {
                if !bytes.is_empty() && stream.write_all(&bytes).await.is_err() {
                    return conv.closed(&data);
                }
            }
            Step::NeedMore => {}
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return conv.timed_out(),
            Ok(Ok(0)) | Ok(Err(_)) => return conv.closed(&data),
            Ok(Ok(n)) => {
                data.extend_from_slice(&buf[..n]);
                step = conv.received(&data);
            }
        }
    }
}

/// The error text HAProxy quotes: the C library's message, without Rust's `(os error N)`.
fn os_error_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

fn counts(b: &BackendState) -> (usize, usize) {
    let active = b.servers.iter().filter(|s| !s.backup && s.usable()).count();
    let backup = b.servers.iter().filter(|s| s.backup && s.usable()).count();
    (active, backup)
}

fn detail(o: &Outcome, took: Duration) -> String {
    let mut s = format!("reason: {}", reason(o.status));
    if let Some(c) = o.code {
        s.push_str(&format!(", code: {c}"));
    }
    if !o.info.is_empty() {
        s.push_str(&format!(", info: \"{}\"", o.info));
    }
    s.push_str(&format!(", check duration: {}ms", took.as_millis()));
    s
}

/// Applies a transition to the server and its trackers, and logs it as HAProxy does.
fn apply(plan: &Plan, t: Transition, o: &Outcome, took: Duration) {
    let be = &plan.rt.backends[plan.backend];
    let what = detail(o, took);
    set_state(&plan.rt, plan.backend, &plan.server, t, &what);
    for (bi, s) in plan.trackers.iter().filter(|(_, s)| !s.is_deleted()) {
        let via = format!("via {}/{}", be.name, plan.server.name);
        set_state(&plan.rt, *bi, s, t, &via);
    }
}

fn set_state(rt: &RouteTable, bi: usize, s: &ServerState, t: Transition, why: &str) {
    let be = &rt.backends[bi];
    let st = &be.state;
    let up = t == Transition::Up;
    s.set_up(up);
    st.state_changed();
    if !up && s.on_down_kill {
        s.shutdown_sessions();
    }
    if up && s.on_up_kill_backups && !s.backup {
        st.servers.iter().filter(|b| b.backup).for_each(|b| b.shutdown_sessions());
    }
    let (active, backup) = counts(st);
    let name = format!("{}/{}", be.name, s.name);
    let sessions = s.cur_conns.load(Ordering::Relaxed);
    let queued = st.queued.load(Ordering::Relaxed);
    let sep = if why.starts_with("via") { " " } else { ", " };
    if up {
        let msg = format!("Server {name} is UP{sep}{why}. {active} active and {backup} backup servers online. 0 sessions requeued, {queued} total in queue.");
        crate::log::backend_event(rt, bi, Level::Notice, &msg);
    } else {
        let msg = format!(
            "Server {name} is DOWN{sep}{why}. {active} active and {backup} backup servers left. {sessions} sessions active, 0 requeued, 0 remaining in queue."
        );
        crate::log::backend_event(rt, bi, Level::Alert, &msg);
        if active + backup == 0 {
            crate::log::backend_event(rt, bi, Level::Emerg, &format!("backend {} has no server available!", be.name));
        }
    }
}

/// `http-check disable-on-404`: an UP server answering 404 stops taking new traffic
/// ("stopping", HAProxy's NOLB) and takes it again once it answers with a success.
fn set_nolb(plan: &Plan, nolb: bool, o: &Outcome, took: Duration) {
    let be = &plan.rt.backends[plan.backend];
    let st = &be.state;
    plan.server.set_nolb(nolb);
    st.state_changed();
    let (active, backup) = counts(st);
    let state = if nolb { "stopping" } else { "UP" };
    let msg = format!(
        "Server {}/{} is {state}, {}. {active} active and {backup} backup servers online. 0 sessions requeued, {} total in queue.",
        be.name,
        plan.server.name,
        detail(o, took),
        st.queued.load(Ordering::Relaxed)
    );
    crate::log::backend_event(&plan.rt, plan.backend, Level::Notice, &msg);
}

/// `option log-health-checks`: a check result that moved the health counter without a state change.
fn log_check(plan: &Plan, o: &Outcome, took: Duration, h: &Health) {
    let be = &plan.rt.backends[plan.backend];
    let verdict = if o.passed() { "succeeded" } else { "failed" };
    let msg = format!("Health check for server {}/{} {verdict}, {}, status: {}.", be.name, plan.server.name, detail(o, took), h.status_text());
    crate::log::backend_event(&plan.rt, plan.backend, Level::Notice, &msg);
}

/// `slowstart`: after coming UP, the server's weight grows from about 1/20th to its configured
/// value over the period, in 1/20th steps (at most one per 100ms), rebuilding the algorithm's
/// schedule at each step as a runtime weight change does.
async fn slowstart(s: Arc<ServerState>, st: Arc<BackendState>, period: Duration) {
    const STEPS: u32 = 20;
    let full = s.initial_weight;
    if full == 0 || period.is_zero() {
        return;
    }
    let step = (period / STEPS).max(Duration::from_millis(100));
    let started = Instant::now();
    loop {
        let frac = started.elapsed().as_secs_f64() / period.as_secs_f64();
        if frac >= 1.0 {
            s.weight.store(full, Ordering::Relaxed);
            st.state_changed();
            return;
        }
        let w = ((f64::from(full) * frac).ceil() as u32).clamp(1, full);
        s.weight.store(w, Ordering::Relaxed);
        st.state_changed();
        tokio::time::sleep(step).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_takes_addr_and_port_overrides() {
        let a = ServerAddr::Inet("127.0.0.1:80".parse().unwrap());
        assert_eq!(check_target(&a, None, Some(81)), Some("127.0.0.1:81".parse().unwrap()));
        assert_eq!(check_target(&a, Some("127.0.0.2".parse().unwrap()), None), Some("127.0.0.2:80".parse().unwrap()));
        assert_eq!(check_target(&ServerAddr::InetSamePort("127.0.0.1".parse().unwrap()), None, None), None);
    }

    #[test]
    fn jitter_stays_within_spread() {
        let seed = AtomicU64::new(7);
        for _ in 0..100 {
            let d = jitter(Duration::from_millis(1000), 10, &seed);
            assert!((900..=1100).contains(&(d.as_millis() as u64)), "{d:?}");
        }
    }

    #[test]
    fn error_text_drops_the_os_error_suffix() {
        let e = std::io::Error::from_raw_os_error(111);
        assert_eq!(os_error_text(&e), "Connection refused");
    }
}
