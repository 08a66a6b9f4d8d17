//! The routing table: the validated configuration compiled into what the data plane reads. Only this
//! module reads the configuration model; workers read only a [`RouteTable`], an immutable snapshot.
//!
//! Backend state ([`BackendState`]) is shared by every worker and outlives nothing but the table:
//! counters and server states live there.

pub mod acl;
mod auth;
pub mod capture;
pub mod convert;
pub mod eval;
#[cfg(test)]
mod eval_tests;
pub mod fetch;
mod http_fetch;
pub mod logformat;
pub(crate) mod map;
pub mod patref;
pub mod rdp;
pub mod sample;
pub mod use_server;
pub mod vars;

use std::sync::Arc;
use std::time::Duration;

use crate::balance::{self, BackendState, BalanceOpts, ServerAddr, ServerState};
use crate::config::addr::{AddrKind, Address, Host, PortSpec};
use crate::config::diag::Diags;
use crate::config::model::{Bind, Config, Mode, Proxy, ProxyKind};
use crate::l4::action::Rule;
use crate::l4::config::TcpAction;
use eval::CompiledCond;

/// What the data plane acts on, by table of `docs/configuration.md`: everything else in the
/// registry is parsed and checked only. This module is the one reader of the model, so it is the
/// one place that can say which keywords take effect; the generated reference reads this list.
pub const IMPLEMENTED: &[(&str, &[&str])] = &[
    (
        "global",
        &[
            "daemon",
            "maxconn",
            "maxconnrate",
            "maxsessrate",
            "pidfile",
            "nbthread",
            "cpu-map",
            "hard-stop-after",
            "tune.pipesize",
            "tune.rcvbuf.client",
            "tune.rcvbuf.server",
            "tune.sndbuf.client",
            "tune.sndbuf.server",
            "nosplice",
            "io-backend",
            "zero-warning",
            "quiet",
            "setenv",
            "presetenv",
            "unsetenv",
            "resetenv",
            "localpeer",
            "tune.bufsize",
            "tune.maxrewrite",
            "tune.http.maxhdr",
            "tune.comp.maxlevel",
            "spread-checks",
            "max-spread-checks",
            "log",
            "log-tag",
            "log-send-hostname",
            "stats socket",
            "stats timeout",
            "stats maxconn",
            "ssl-default-bind-options",
            "ssl-default-bind-ciphers",
            "ssl-default-bind-ciphersuites",
            "ssl-default-bind-curves",
            "ssl-default-server-options",
            "ssl-default-server-ciphers",
            "ssl-default-server-ciphersuites",
            "ssl-server-verify",
            "crt-base",
            "ca-base",
            "tune.ssl.cachesize",
            "tune.ssl.maxrecord",
        ],
    ),
    (
        "proxies",
        &[
            "mode",
            "bind",
            "server",
            "default-server",
            "server-template",
            "timeout client",
            "timeout client-fin",
            "timeout server",
            "timeout server-fin",
            "timeout connect",
            "timeout queue",
            "timeout tunnel",
            "maxconn",
            "fullconn",
            "backlog",
            "rate-limit sessions",
            "source",
            "retries",
            "acl",
            "use_backend",
            "default_backend",
            "disabled",
            "enabled",
            "id",
            "option redispatch",
            "option allbackups",
            "option tcpka",
            "option clitcpka",
            "option srvtcpka",
            "option nolinger",
            "option splice-auto",
            "option splice-request",
            "option splice-response",
            "balance",
            "hash-type",
            "tcp-request connection",
            "tcp-request session",
            "tcp-request content",
            "tcp-request inspect-delay",
            "timeout http-request",
            "timeout http-keep-alive",
            "http-request",
            "http-response",
            "http-after-response",
            "redirect",
            "errorfile",
            "errorfiles",
            "http-error",
            "option forwardfor",
            "option http-ignore-probes",
            "compression algo",
            "compression type",
            "compression offload",
            "compression algo-res",
            "compression type-res",
            "compression direction",
            "compression minsize-res",
            "option originalto",
            "http-send-name-header",
            "timeout tarpit",
            "option http-keep-alive",
            "option http-server-close",
            "option httpclose",
            "http-reuse",
            "option abortonclose",
            "option http-buffer-request",
            "option http-pretend-keepalive",
            "monitor-uri",
            "monitor fail",
            "stats enable",
            "stats uri",
            "stats realm",
            "stats auth",
            "stats refresh",
            "stats hide-version",
            "stats show-legends",
            "stats admin",
            "stats show-node",
            "stats show-desc",
            "stats scope",
            "capture request header",
            "capture response header",
            "capture cookie",
            "declare capture",
            "cookie",
            "option persist",
            "persist",
            "hash-balance-factor",
            "option httpchk",
            "option pgsql-check",
            "option mysql-check",
            "option redis-check",
            "option smtpchk",
            "option ldap-check",
            "option ssl-hello-chk",
            "http-check",
            "option tcp-check",
            "tcp-check",
            "timeout check",
            "option log-health-checks",
            "log",
            "log-tag",
            "log-format",
            "option httplog",
            "option httpslog",
            "option tcplog",
            "option dontlognull",
            "option logasap",
            "option dontlog-normal",
            "option log-separate-errors",
            "unique-id-format",
            "unique-id-header",
            "stick-table",
            "stick on",
            "stick match",
            "stick store-request",
            "stick store-response",
        ],
    ),
    (
        "bind options",
        &[
            "name",
            "backlog",
            "maxconn",
            "accept-proxy",
            "v4v6",
            "v6only",
            "defer-accept",
            "tfo",
            "transparent",
            "interface",
            "mss",
            "tcp-ut",
            "mode",
            "ssl",
            "crt",
            "crt-list",
            "alpn",
            "ssl-min-ver",
            "ssl-max-ver",
            "ciphers",
            "ciphersuites",
            "curves",
            "ecdhe",
            "ca-file",
            "crl-file",
            "verify",
            "no-sslv3",
            "no-tlsv10",
            "no-tlsv11",
            "no-tlsv12",
            "no-tlsv13",
            "force-tlsv12",
            "force-tlsv13",
            "strict-sni",
            "no-tls-tickets",
            "prefer-client-ciphers",
            "ca-ignore-err",
            "crt-ignore-err",
            "tls-ticket-keys",
        ],
    ),
    (
        "server options",
        &[
            "max-reuse",
            "source",
            "weight",
            "backup",
            "no-backup",
            "disabled",
            "enabled",
            "maxconn",
            "minconn",
            "send-proxy",
            "no-send-proxy",
            "send-proxy-v2",
            "no-send-proxy-v2",
            "init-addr",
            "agent-check",
            "agent-port",
            "agent-addr",
            "agent-inter",
            "agent-send",
            "on-marked-down",
            "on-marked-up",
            "pool-max-conn",
            "cookie",
            "check",
            "no-check",
            "inter",
            "fastinter",
            "downinter",
            "rise",
            "fall",
            "port",
            "addr",
            "check-send-proxy",
            "no-check-send-proxy",
            "init-state",
            "slowstart",
            "track",
            "observe",
            "error-limit",
            "on-error",
            "ssl",
            "no-ssl",
            "verify",
            "verifyhost",
            "ca-file",
            "crl-file",
            "crt",
            "sni",
            "alpn",
            "ssl-min-ver",
            "ssl-max-ver",
            "ciphers",
            "ciphersuites",
            "no-sslv3",
            "no-tlsv10",
            "no-tlsv11",
            "no-tlsv12",
            "no-tlsv13",
            "force-tlsv12",
            "force-tlsv13",
            "ssl-reuse",
            "no-ssl-reuse",
            "tls-tickets",
            "no-tls-tickets",
            "check-ssl",
            "no-check-ssl",
            "check-sni",
            "check-alpn",
        ],
    ),
    ("http-check rules", &["send", "expect", "comment", "disable-on-404"]),
    ("tcp-check rules", &["send", "send-binary", "expect", "comment"]),
    (
        "tcp-request connection actions",
        &[
            "silent-drop",
            "accept",
            "reject",
            "expect-proxy",
            "set-var",
            "set-var-fmt",
            "unset-var",
            "track-sc0",
            "track-sc1",
            "track-sc2",
            "sc-inc-gpc",
            "sc-inc-gpc0",
            "sc-inc-gpc1",
            "sc-add-gpc",
            "sc-set-gpt",
            "sc-set-gpt0",
            "sc-take-token",
        ],
    ),
    (
        "tcp-request session actions",
        &[
            "silent-drop",
            "accept",
            "reject",
            "set-var",
            "set-var-fmt",
            "unset-var",
            "track-sc0",
            "track-sc1",
            "track-sc2",
            "sc-inc-gpc",
            "sc-inc-gpc0",
            "sc-inc-gpc1",
            "sc-add-gpc",
            "sc-set-gpt",
            "sc-set-gpt0",
            "sc-take-token",
        ],
    ),
    (
        "tcp-request content actions",
        &[
            "set-log-level",
            "silent-drop",
            "accept",
            "reject",
            "set-var",
            "set-var-fmt",
            "unset-var",
            "track-sc0",
            "track-sc1",
            "track-sc2",
            "sc-inc-gpc",
            "sc-inc-gpc0",
            "sc-inc-gpc1",
            "sc-add-gpc",
            "sc-set-gpt",
            "sc-set-gpt0",
            "sc-take-token",
        ],
    ),
    (
        "http-request actions",
        &[
            "set-log-level",
            "normalize-uri",
            "silent-drop",
            "allow",
            "deny",
            "reject",
            "return",
            "redirect",
            "tarpit",
            "auth",
            "set-header",
            "add-header",
            "del-header",
            "replace-header",
            "replace-value",
            "set-path",
            "set-pathq",
            "set-query",
            "set-uri",
            "set-method",
            "replace-path",
            "replace-pathq",
            "replace-uri",
            "set-var",
            "set-var-fmt",
            "unset-var",
            "capture",
            "set-src",
            "set-dst",
            "set-src-port",
            "set-dst-port",
            "use-service",
            "track-sc0",
            "track-sc1",
            "track-sc2",
            "sc-inc-gpc",
            "sc-inc-gpc0",
            "sc-inc-gpc1",
            "sc-add-gpc",
            "sc-set-gpt",
            "sc-set-gpt0",
            "sc-take-token",
            "wait-for-body",
        ],
    ),
    (
        "http-response actions",
        &[
            "set-log-level",
            "silent-drop",
            "allow",
            "deny",
            "return",
            "redirect",
            "set-header",
            "add-header",
            "del-header",
            "replace-header",
            "replace-value",
            "set-status",
            "set-var",
            "set-var-fmt",
            "unset-var",
            "capture",
            "track-sc0",
            "track-sc1",
            "track-sc2",
            "sc-inc-gpc",
            "sc-inc-gpc0",
            "sc-inc-gpc1",
            "sc-add-gpc",
            "sc-set-gpt",
            "sc-set-gpt0",
        ],
    ),
    (
        "http-after-response actions",
        &["allow", "set-header", "add-header", "del-header", "replace-header", "replace-value", "set-status", "set-var", "set-var-fmt", "unset-var", "capture"],
    ),
];

/// What a `tcp-request` rule does, as far as the data plane implements it.
#[derive(Debug)]
pub enum L4Action {
    Accept,
    Reject,
    /// `silent-drop [rst-ttl <ttl>]`: rejects, telling the client nothing.
    SilentDrop(Option<u8>),
    ExpectProxy,
    /// `set-var`, `set-var-fmt`, `unset-var`: not final, the rules go on.
    Var(vars::VarAction),
    /// `track-sc*`, `sc-inc-gpc*`, `sc-set-gpt*`, `sc-take-token`: not final unless a token
    /// bucket is empty.
    Stick(crate::stick::track::StickAction),
    /// `set-log-level` (`tcp-request content`): the level of the stream's log line.
    SetLogLevel(crate::l4::action::LogLevel),
}

/// A compiled `tcp-request` rule.
#[derive(Debug)]
pub struct L4Rule {
    pub action: L4Action,
    pub cond: Option<CompiledCond>,
}

/// A `use_backend` rule with its backend resolved to an index, or a name built per request.
#[derive(Debug)]
pub struct BackendRule {
    pub backend: BackendChoice,
    pub cond: Option<CompiledCond>,
}

/// The backend a `use_backend` rule names.
#[derive(Debug)]
pub enum BackendChoice {
    Index(usize),
    /// `use_backend %[...]`: the log-format is evaluated per request and the result looked up by
    /// name; no backend of that name means the rule does not apply (HAProxy goes on to the next).
    Dynamic(logformat::CompiledLf),
}

/// Splicing policy for a proxy: `mode tcp` splices unless `no option splice-auto` (or the global
/// `nosplice`) says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Splice {
    pub request: bool,
    pub response: bool,
}

/// A frontend (or the frontend half of a listen) as the workers see it.
#[derive(Debug)]
pub struct Frontend {
    pub name: String,
    pub id: u32,
    pub mode: Mode,
    pub binds: Vec<Bind>,
    /// Per bind (same index): the TLS settings of an `ssl` bind, `None` for plain ones.
    pub tls: Vec<Option<Arc<crate::tls::Acceptor>>>,
    pub maxconn: Option<u32>,
    pub timeout_client: Option<Duration>,
    pub timeout_client_fin: Option<Duration>,
    pub connection_rules: Vec<L4Rule>,
    /// `tcp-request session`: after the PROXY header, before content inspection.
    pub session_rules: Vec<L4Rule>,
    pub content_rules: Vec<L4Rule>,
    pub inspect_delay: Option<Duration>,
    pub use_backends: Vec<BackendRule>,
    /// Index into [`RouteTable::backends`]: `default_backend`, or a listen's own backend.
    pub default_backend: Option<usize>,
    pub clitcpka: bool,
    pub nolinger: bool,
    /// `mode http`: `timeout http-request`, a deadline for a whole request head.
    pub timeout_http_request: Option<Duration>,
    /// `mode http`: the wait for the next request on a kept-alive connection.
    pub timeout_http_keep_alive: Option<Duration>,
    /// `mode http`: the client connection stays open between requests (not `option httpclose`).
    pub http_keep_alive: bool,
    /// `option http-ignore-probes`: a connection that closes or times out before its first
    /// request byte is not logged.
    pub ignore_probes: bool,
    /// `mode http`: server connections may stay open after a response (neither `option
    /// http-server-close` nor `option httpclose` here).
    pub http_server_keep_alive: bool,
    /// `mode http`: the rules and HTTP settings of this proxy.
    pub http: ProxyHttpRt,
    /// A listen's own backend: its rules are the frontend's and run once.
    pub own_backend: Option<usize>,
    /// `timeout tarpit` (`timeout connect` when unset): how long `tarpit` holds a request.
    pub timeout_tarpit: Option<Duration>,
    /// `option http-buffer-request` here or in a backend this frontend names: the request body
    /// (as much as fits in the buffer) is read before the rules run, for `req.body`.
    pub buffer_request: bool,
    /// Admission limit shared by every worker (`maxconn`, changed by `set maxconn frontend`);
    /// without a limit when none is set.
    pub limit: Arc<crate::runtime::limit::ConnLimit>,
    /// Per bind (same index): the bind line's own `maxconn`, shared by every worker and every
    /// address of the line; `None` without one.
    pub bind_limits: Vec<Option<Arc<crate::runtime::limit::ConnLimit>>>,
    /// `rate-limit sessions`: new sessions per second over every worker (none when unset).
    pub sess_rate: crate::runtime::limit::RateLimit,
    /// `mode http`: the capture slots of each transaction.
    pub captures: capture::CaptureConfig,
    /// Access logging; `None` when the frontend has no log target, so sessions record nothing.
    pub log: Option<Arc<crate::log::LogRt>>,
    /// HTTP transactions of this frontend, for the `sluiced_frontend_*_seconds` histogram.
    pub latency: crate::balance::latency::Latency,
    /// Sessions, requests and responses, for `show stat` and the stats page.
    pub counters: Arc<crate::control::counters::ProxyCounters>,
    /// `stats enable` and friends: the HTTP stats page this proxy answers, if any.
    pub stats_page: Option<Arc<crate::control::config::StatsPage>>,
    /// `stats admin if|unless <cond>`: the page's admin actions are allowed when one holds.
    pub stats_admin: Vec<CompiledCond>,
    /// `disable frontend` on the stats socket: the workers stop accepting until it is cleared.
    pub paused: std::sync::atomic::AtomicBool,
}

impl Frontend {
    /// The backend for a stream, as HAProxy's switching rules pick it: the first `use_backend`
    /// whose condition holds, else `default_backend`. A dynamic name that names no backend stops
    /// the search and falls back to `default_backend`.
    pub fn select_backend(&self, backends: &[Backend], ctx: &dyn eval::StreamCtx) -> Option<usize> {
        for r in &self.use_backends {
            if !r.cond.as_ref().is_none_or(|c| c.eval(ctx) == eval::Tri::Yes) {
                continue;
            }
            return match &r.backend {
                BackendChoice::Index(i) => Some(*i),
                BackendChoice::Dynamic(lf) => {
                    let found = match lf.single_sample() {
                        // The sample's text as `eval` writes it ('-' when absent), borrowed when
                        // it is a string (map routing): no string is built per request.
                        Some(expr) => match expr.eval_ref(ctx) {
                            Ok(Some(v)) => {
                                let text = v.as_bytes();
                                let name = String::from_utf8_lossy(&text);
                                backends.iter().position(|b| b.name == *name)
                            }
                            _ => backends.iter().position(|b| b.name == "-"),
                        },
                        None => {
                            let name = lf.eval(ctx);
                            backends.iter().position(|b| b.name == name)
                        }
                    };
                    found.or(self.default_backend)
                }
            };
        }
        self.default_backend
    }
}

/// A backend as the workers see it.
#[derive(Debug)]
pub struct Backend {
    pub name: String,
    pub id: u32,
    pub mode: Mode,
    /// `tcp-request content` rules, run once the stream is switched to this backend (a
    /// `listen` section's run as its frontend's for its own traffic), and their inspect delay.
    pub content_rules: Vec<L4Rule>,
    pub inspect_delay: Option<Duration>,
    pub state: Arc<BackendState>,
    pub timeout_connect: Option<Duration>,
    pub timeout_server: Option<Duration>,
    pub timeout_server_fin: Option<Duration>,
    pub timeout_tunnel: Option<Duration>,
    /// How long a stream may wait for a free server slot; HAProxy uses `timeout connect` when unset.
    pub timeout_queue: Option<Duration>,
    pub retries: u32,
    /// `retry-on`: what sends a request again (by default only a failed connection attempt).
    pub retry_on: crate::l7::config::RetryPolicy,
    /// `option redispatch [interval]`: `None` when off.
    pub redispatch: Option<i32>,
    pub splice: Splice,
    /// `balance hash <expr>`: the sample to hash into the pick key.
    pub hash_key: Option<HashKey>,
    pub srvtcpka: bool,
    pub nolinger: bool,
    /// `mode http`: the server connection stays open after a response (`option http-keep-alive`).
    pub http_keep_alive: bool,
    /// `option http-pretend-keepalive`: a request on a server connection that closes after the
    /// response does not say `Connection: close` to the server.
    pub pretend_keepalive: bool,
    /// `mode http`: idle server connections may be reused (`http-reuse` other than `never`).
    pub reuse_allowed: bool,
    /// `http-reuse aggressive|always`: a first request that cannot be retried may reuse too.
    pub reuse_first_unsafe: bool,
    /// `mode http`: the rules and HTTP settings of this proxy.
    pub http: ProxyHttpRt,
    /// Per server (same index as the state's servers): TLS towards an `ssl` server.
    pub tls: Vec<Option<Arc<crate::tls::client::Connector>>>,
    /// Per server (same index): the `source` address its connections are bound to; `None` lets
    /// the kernel choose (no `source`, or `0.0.0.0` / `::` without a port).
    pub sources: Vec<Option<std::net::SocketAddr>>,
    /// The `sni` expression of the backend's `ssl` servers (one for all of them), evaluated per
    /// stream before connecting.
    pub tls_sni: Option<eval::CompiledSample>,
    /// `balance uri|url_param|hdr` in `mode http`: the request part to hash into the pick key.
    pub http_key: Option<HttpKey>,
    /// `http-send-name-header`: the request header that carries the chosen server's name.
    pub send_name_header: Option<String>,
    /// `option abortonclose`: a client that closes while its request waits for the server's
    /// answer aborts the request (the server connection closes) instead of being answered.
    pub abortonclose: bool,
    /// `option http-buffer-request` in this backend.
    pub buffer_request: bool,
    /// `add server` may add servers: the algorithm is not map-based (HAProxy refuses `static-rr`
    /// and hashing without `hash-type consistent`).
    pub dynamic_servers: bool,
    /// `mode http`: `cookie` persistence with the servers' `cookie` values and `option persist`.
    pub cookie: Option<crate::l7::cookie::Persistence>,
    /// `stick on|match|store-request|store-response`.
    pub stick: Option<crate::stick::persist::Persistence>,
    /// `use-server` rules.
    pub use_server: Option<use_server::UseServers>,
    /// `persist rdp-cookie` (mode tcp).
    pub rdp_persist: Option<rdp::RdpPersist>,
    /// Where server state changes are logged (`backend_event`).
    pub log: Option<Arc<crate::log::LogRt>>,
    /// Sessions, requests and responses, for `show stat` and the stats page.
    pub counters: Arc<crate::control::counters::ProxyCounters>,
    /// Configuration the statistics show (algorithm, checks).
    pub stats_info: crate::control::counters::BackendStatsInfo,
    /// `stats enable` in a `backend` section: the page requests routed here are answered with.
    pub stats_page: Option<Arc<crate::control::config::StatsPage>>,
    /// `stats admin if|unless <cond>` of that page.
    pub stats_admin: Vec<CompiledCond>,
}

pub use crate::balance::PoolLimit;

/// The shared state of one server from its options: what a `server` line and `add server` build.
pub(crate) fn server_state(name: &str, id: u32, addr: ServerAddr, o: &crate::config::model::ServerOpts) -> ServerState {
    let mut st = ServerState::new(name, id, addr, o.weight.unwrap_or(1), o.backup);
    st.maxconn.store(o.maxconn.unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
    st.minconn.store(o.minconn.unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
    st.maxqueue = o.maxqueue.unwrap_or(0);
    st.on_down_kill = o.on_marked_down.as_deref() == Some("shutdown-sessions");
    st.on_up_kill_backups = o.on_marked_up.as_deref() == Some("shutdown-backup-sessions");
    st.send_proxy = if o.send_proxy_v2 { 2 } else { u8::from(o.send_proxy) };
    st.observe = match o.observe.as_deref() {
        Some("layer4") if o.check.enabled => balance::Observe::Layer4,
        Some("layer7") if o.check.enabled => balance::Observe::Layer7,
        _ => balance::Observe::None,
    };
    st.cookie = o.cookie.clone();
    st.pool.max = o.pool_max_conn.and_then(|n| usize::try_from(n).ok());
    st.pool.max_reuse = o.max_reuse.and_then(|n| u32::try_from(n).ok());
    st
}

/// The servers that some `track` names, as (backend, server): HAProxy refuses to delete such a
/// server at run time. Collected once, so that marking the servers stays linear in their number.
fn tracked_servers(cfg: &Config) -> std::collections::HashSet<(&str, &str)> {
    cfg.proxies
        .iter()
        .filter(|q| q.kind.has_backend())
        .flat_map(|q| q.servers.iter().map(move |s| (q, s)))
        .filter_map(|(q, s)| {
            let t = s.opts.track.as_deref()?;
            Some(match t.split_once('/') {
                Some((b, srv)) => (b, srv),
                None => (q.name.as_str(), t),
            })
        })
        .collect()
}

/// Some other part of the configuration names server `name` of `p` (a `track`, a `use-server`
/// rule): HAProxy refuses to delete such a server at run time.
fn referenced(tracked: &std::collections::HashSet<(&str, &str)>, p: &Proxy, name: &str) -> bool {
    tracked.contains(&(p.name.as_str(), name)) || p.use_servers.iter().any(|u| u.server == name)
}

/// HAProxy takes dynamic servers only in backends whose algorithm is not map-based: not
/// `static-rr`, and hashing only with `hash-type consistent`.
fn dynamic_servers_allowed(algo: Option<&balance::config::Balance>, hash_type: Option<&balance::config::HashType>) -> bool {
    use balance::config::Balance as B;
    match algo {
        None | Some(B::RoundRobin | B::LeastConn | B::First | B::Random { .. }) => true,
        Some(B::StaticRr) => false,
        Some(_) => hash_type.is_some_and(|h| h.method == balance::config::HashMethod::Consistent),
    }
}

/// The HTTP side of a proxy as the data plane runs it (empty outside `mode http`).
#[derive(Debug, Default)]
pub struct ProxyHttpRt {
    /// `http-request` rules, then the legacy `redirect` lines, which HAProxy runs after them.
    pub request_rules: Vec<crate::l7::rules::HttpRule>,
    pub redirects: Vec<crate::l7::rules::HttpRule>,
    pub response_rules: Vec<crate::l7::rules::HttpRule>,
    pub after_response_rules: Vec<crate::l7::rules::HttpRule>,
    /// `errorfile`, `errorfiles`, `http-error`: the pages for the errors sluiced generates.
    pub errors: crate::l7::reply::ErrorResponses,
    pub forwardfor: Option<crate::l7::config::ForwardFor>,
    pub originalto: Option<crate::l7::config::OriginalTo>,
    /// `monitor-uri`: requests for it are answered here, 200 or (when a `monitor fail` condition
    /// holds) 503, and never forwarded.
    pub monitor_uri: Option<Vec<u8>>,
    pub monitor_fail: Vec<CompiledCond>,
    /// `compression algo|type|offload`; `None` without an algorithm.
    pub compression: Option<crate::l7::compress::Policy>,
}

/// A request part `balance` hashes in `mode http`.
#[derive(Debug)]
pub enum HttpKeyPart {
    Uri(balance::config::UriHash),
    UrlParam(String),
    Hdr { name: String, use_domain_only: bool },
}

/// `balance uri|url_param|hdr` with the `hash-type` function.
#[derive(Debug)]
pub struct HttpKey {
    pub part: HttpKeyPart,
    pub function: balance::config::HashFunction,
    pub avalanche: bool,
}

/// The sample a hashing algorithm balances on, and how to hash it.
#[derive(Debug)]
pub struct HashKey {
    pub expr: eval::CompiledSample,
    pub function: balance::config::HashFunction,
    pub avalanche: bool,
}

/// Process-wide settings the runtime reads.
#[derive(Debug)]
pub struct Process {
    /// Worker threads; `None` is one per available CPU.
    pub nbthread: Option<u32>,
    /// CPU set of each worker (index = worker), when `cpu-map` says.
    pub cpu_map: Vec<Option<Vec<usize>>>,
    pub maxconn: Option<u32>,
    pub hard_stop_after: Option<Duration>,
    pub daemon: bool,
    pub pidfile: Option<String>,
    pub pipesize: Option<usize>,
    pub nosplice: bool,
    /// `tune.bufsize`: the size of a stream buffer.
    pub bufsize: usize,
    /// `tune.bufsize - tune.maxrewrite` and `tune.http.maxhdr`: what a message head may take.
    pub head_limits: crate::l7::h1::Limits,
}

/// The compiled, immutable routing table.
#[derive(Debug)]
pub struct RouteTable {
    pub frontends: Vec<Frontend>,
    pub backends: Vec<Backend>,
    pub process: Process,
    /// Some proxy serves the Prometheus exporter: HTTP transactions are timed into the latency
    /// histograms (otherwise nothing would read them).
    pub time_transactions: bool,
    /// Some proxy has `compression algo`: only then does an HTTP transaction look at
    /// `Accept-Encoding`.
    pub compresses: bool,
    /// `userlist` sections, for `http_auth` and `http-request auth`.
    pub userlists: Vec<crate::config::model::Userlist>,
    /// The `proc.` variables: shared by every worker, as long as this table serves.
    pub proc_vars: vars::ProcVars,
    /// Global `maxconn`, `maxconnrate`, `maxsessrate`, as the runtime API last set them.
    pub limits: Arc<crate::runtime::limit::ProcessLimits>,
    /// Map files, ACL pattern files and ACL lines' values, as `show map` and `show acl` list them.
    pub patterns: patref::PatRegistry,
    /// The stick tables, shared by every worker.
    pub tables: crate::stick::table::Tables,
    /// The peers sections this node replicates tables with.
    pub peers: Vec<crate::peers::config::SectionPlan>,
}

fn compile_log(p: &crate::config::model::Proxy, cfg: &Config, diags: &mut Diags) -> Result<Option<Arc<crate::log::LogRt>>, String> {
    let mut warnings = Vec::new();
    let log = crate::log::LogRt::compile(p, &cfg.global.log, &mut |w| warnings.push(w)).map_err(|e| format!("proxy '{}': {e}", p.name))?;
    for w in warnings {
        diags.warning(Some(&p.span), Some("log"), w);
    }
    Ok(log)
}

pub(crate) fn server_addr(a: &Address, resolved: Option<std::net::IpAddr>) -> Result<ServerAddr, String> {
    match &a.kind {
        AddrKind::Inet { host: Host::Ip(ip), port, .. } => Ok(match port {
            PortSpec::Fixed(p) => ServerAddr::Inet(std::net::SocketAddr::new(*ip, *p)),
            PortSpec::None => ServerAddr::InetSamePort(*ip),
            PortSpec::Offset(o) => ServerAddr::InetOffset(*ip, *o),
            PortSpec::Range(..) => return Err(format!("port range in server address '{}'", a.text)),
        }),
        AddrKind::Inet { host: Host::Name(n), port, .. } => {
            // Resolved when the configuration was loaded; `None` here means `init-addr none`.
            let ip = resolved.ok_or_else(|| format!("'{n}' has no address yet"))?;
            Ok(match port {
                PortSpec::Fixed(p) => ServerAddr::Inet(std::net::SocketAddr::new(ip, *p)),
                PortSpec::Offset(o) => ServerAddr::InetOffset(ip, *o),
                _ => ServerAddr::InetSamePort(ip),
            })
        }
        AddrKind::Inet { host: Host::Wildcard, .. } => Err(format!("server address '{}' names no host", a.text)),
        AddrKind::Unix(p) => Ok(ServerAddr::Unix(p.clone())),
        AddrKind::Abns(_) | AddrKind::Fd(_) | AddrKind::SockPair(_) => Err(format!("server address '{}' is not supported yet", a.text)),
    }
}

/// The address a `source` (its first word; usesrc and the rest are warned about at parse time)
/// binds server connections to; `None` when it leaves everything to the kernel.
pub(crate) fn compile_source(text: Option<&str>) -> Result<Option<std::net::SocketAddr>, String> {
    let Some(first) = text.and_then(|t| t.split_whitespace().next()) else { return Ok(None) };
    let (sa, _) = crate::config::addr::parse_source(first)?;
    Ok((!sa.ip().is_unspecified() || sa.port() != 0).then_some(sa))
}

fn compile_rules(p: &Proxy, rules: &[Rule<TcpAction>], stage: &str, tables: &crate::stick::table::Tables) -> Result<Vec<L4Rule>, String> {
    let mut out = Vec::new();
    for r in rules {
        let (var, stick) = match &r.action {
            TcpAction::Common(c) => (
                vars::VarAction::compile(c).map_err(|e| format!("{}: {stage}: {e}", r.span))?,
                crate::stick::track::compile(c, &p.name, tables).map_err(|e| format!("{}: {stage}: {e}", r.span))?,
            ),
            _ => (None, None),
        };
        let action = match (&r.action, var) {
            (TcpAction::Accept, _) => L4Action::Accept,
            (TcpAction::Reject, _) => L4Action::Reject,
            (TcpAction::Common(crate::l4::action::CommonAction::SilentDrop { rst_ttl }), _) => L4Action::SilentDrop(*rst_ttl),
            (TcpAction::ExpectProxy, _) => L4Action::ExpectProxy,
            (TcpAction::Common(crate::l4::action::CommonAction::SetLogLevel(l)), _) => L4Action::SetLogLevel(*l),
            (_, Some(v)) => L4Action::Var(v),
            (_, None) if stick.is_some() => L4Action::Stick(stick.expect("checked")),
            // Parsed only: the parser warned about the line, naming the action
            // (`config::registry::note_use`), in `-c` too.
            (_, None) => continue,
        };
        let cond = r.cond.as_ref().map(|c| CompiledCond::compile(c, &p.acls)).transpose()?;
        out.push(L4Rule { action, cond });
    }
    Ok(out)
}

fn compile_http_rule_set(
    p: &Proxy,
    rules: &[Rule<crate::l7::config::HttpAction>],
    stage: crate::l7::rules::Stage,
    env: &mut crate::l7::rules::CompileEnv<'_>,
) -> Result<Vec<crate::l7::rules::HttpRule>, String> {
    let mut out = Vec::new();
    let stage_name = match stage {
        crate::l7::rules::Stage::Request => "http-request",
        crate::l7::rules::Stage::Response => "http-response",
        crate::l7::rules::Stage::AfterResponse => "http-after-response",
    };
    for r in rules {
        // `None` is an action parsed only: the parser warned about its line, naming it.
        if let Some(action) = crate::l7::rules::compile_action(&r.action, stage, env).map_err(|e| format!("{}: {stage_name}: {e}", r.span))? {
            let cond = r.cond.as_ref().map(|c| CompiledCond::compile(c, &p.acls)).transpose()?;
            out.push(crate::l7::rules::HttpRule { action, cond });
        }
    }
    Ok(out)
}

/// Compiles the HTTP side of a proxy: its rule sets, error pages (every file is read now; a bad
/// one is an error naming it), `option forwardfor`/`originalto` and compression.
fn compile_http(p: &Proxy, cfg: &Config, loader: &mut crate::l7::reply::FileLoader, tables: &crate::stick::table::Tables) -> Result<ProxyHttpRt, String> {
    if p.mode != Mode::Http {
        return Ok(ProxyHttpRt::default());
    }
    let errors = crate::l7::reply::ErrorResponses::compile(&p.http, &cfg.http_errors, loader).map_err(|e| format!("proxy '{}': {}", p.name, e.join("; ")))?;
    let (captures, len_slots) = capture::CaptureConfig::compile(p);
    let mut env = crate::l7::rules::CompileEnv {
        sections: &cfg.http_errors,
        loader,
        captures: p.kind.has_frontend().then_some(&captures),
        capture_len_slots: len_slots.into_iter(),
        proxy: &p.name,
        tables,
    };
    use crate::l7::rules::Stage;
    let h = &p.http;
    let mut redirects = Vec::new();
    for r in &h.redirects {
        let cond = r.cond.as_ref().map(|c| CompiledCond::compile(c, &p.acls)).transpose()?;
        redirects.push(crate::l7::rules::HttpRule { action: crate::l7::rules::Action::Redirect(r.action.clone()), cond });
    }
    Ok(ProxyHttpRt {
        request_rules: compile_http_rule_set(p, &h.request_rules, Stage::Request, &mut env)?,
        redirects,
        response_rules: compile_http_rule_set(p, &h.response_rules, Stage::Response, &mut env)?,
        after_response_rules: compile_http_rule_set(p, &h.after_response_rules, Stage::AfterResponse, &mut env)?,
        errors,
        forwardfor: h.forwardfor.clone(),
        originalto: h.originalto.clone(),
        monitor_uri: h.monitor_uri.as_ref().map(|u| u.as_bytes().to_vec()),
        monitor_fail: h.monitor_fail.iter().filter_map(|r| r.cond.as_ref()).map(|c| CompiledCond::compile(c, &p.acls)).collect::<Result<_, _>>()?,
        compression: crate::l7::compress::Policy::compile(&h.compression, cfg.global.runtime.tune.comp_maxlevel.unwrap_or(1)),
    })
}

/// `fullconn` of the backends without one, as HAProxy sets it: a tenth (rounded up) of the sum of
/// the `maxconn` of the frontends that name the backend (`default_backend`, `use_backend`; a
/// frontend without `maxconn` counts the global one, else HAProxy's 2000), at least 1.
fn default_fullconn(frontends: &[Frontend], backends: &[Backend], global_maxconn: Option<u32>) {
    let mut sums = vec![0u64; backends.len()];
    for fe in frontends {
        let fe_max = u64::from(fe.maxconn.or(global_maxconn).unwrap_or(2000));
        let mut named: Vec<usize> = fe.default_backend.into_iter().collect();
        named.extend(fe.use_backends.iter().filter_map(|u| match u.backend {
            BackendChoice::Index(i) => Some(i),
            BackendChoice::Dynamic(_) => None,
        }));
        named.sort_unstable();
        named.dedup();
        for i in named {
            sums[i] += fe_max;
        }
    }
    // A configured `fullconn` was stored when the backend compiled (0 is unset, as in HAProxy).
    for (b, sum) in backends.iter().zip(sums) {
        if b.state.fullconn.load(std::sync::atomic::Ordering::Relaxed) == 0 {
            let v = u32::try_from(sum.div_ceil(10)).unwrap_or(u32::MAX).max(1);
            b.state.fullconn.store(v, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// `cookie` persistence of a backend, in `mode http` only (HAProxy ignores it elsewhere too).
fn compile_cookie(p: &Proxy, diags: &mut Diags) -> Option<crate::l7::cookie::Persistence> {
    let c = p.balance.cookie.as_ref()?;
    if p.mode != Mode::Http {
        diags.warning(Some(&p.span), Some("cookie"), format!("backend '{}': cookie persistence needs mode http: it is ignored", p.name));
        return None;
    }
    if c.dynamic {
        diags.warning(
            Some(&p.span),
            Some("cookie"),
            format!("backend '{}': dynamic cookies are parsed but not implemented yet: servers without a 'cookie' value get none", p.name),
        );
    }
    let values = p.servers.iter().map(|s| s.opts.cookie.clone()).collect();
    Some(crate::l7::cookie::Persistence::compile(c, p.options.persist.unwrap_or(false), values))
}

fn splice_of(p: &Proxy, nosplice: bool) -> Splice {
    if nosplice || p.mode != Mode::Tcp {
        return Splice { request: false, response: false };
    }
    let o = &p.options;
    // splice-auto is on by default in mode tcp; `no option splice-auto` turns it off unless a
    // direction is asked for explicitly.
    let auto = o.splice_auto.unwrap_or(true);
    Splice { request: o.splice_request.unwrap_or(auto), response: o.splice_response.unwrap_or(auto) }
}

impl RouteTable {
    /// Compiles a validated configuration. Warnings (parsed-only features that will have no
    /// effect) go to `diags`; an error is a configuration the data plane cannot run.
    pub fn compile_with(cfg: &Config, diags: &mut Diags) -> Result<RouteTable, String> {
        let collecting = patref::Collecting::start();
        let g = &cfg.global;
        let nosplice = g.runtime.nosplice;
        // HAProxy requires a reply to fit in a buffer (`tune.bufsize`, 16384 by default).
        let mut loader = crate::l7::reply::FileLoader::new(g.runtime.tune.bufsize() as usize);
        let mut tables = crate::stick::table::Tables::default();
        // The peers sections this node is in; their tables queue their changes for the peers.
        let peers = crate::peers::config::plan(cfg, diags);
        // As in HAProxy, a table that stick rules name stores `server_id` without being told.
        let sticky: std::collections::HashSet<&str> =
            cfg.proxies.iter().flat_map(|p| p.stick.rules.iter().map(move |r| r.table.as_deref().unwrap_or(&p.name))).collect();
        // The proxies' tables, then those of the peers sections (`<section>/<name>`).
        let declared = cfg
            .proxies
            .iter()
            .filter_map(|p| Some((p.name.as_str(), p.stick.table.as_ref()?)))
            .chain(cfg.peers.iter().flat_map(|s| s.tables.iter().map(|pt| (pt.full.as_str(), &pt.table))));
        for (name, t) in declared {
            let mut t = t.clone();
            if sticky.contains(name) && !t.store.contains(&crate::stick::config::StoreType::ServerId) {
                t.store.push(crate::stick::config::StoreType::ServerId);
            }
            let table = crate::stick::table::Table::new(name, &t);
            let replicated = peers.iter().any(|s| s.tables.iter().any(|(n, _)| n == name));
            tables.add(if replicated { table.with_sync() } else { table });
        }
        let mut backends = Vec::new();
        let mut index = std::collections::HashMap::new();
        let tracked = tracked_servers(cfg);
        for (pi, p) in cfg.proxies.iter().enumerate().filter(|(_, p)| p.kind.has_backend()) {
            let mut servers = Vec::new();
            let mut server_tls = Vec::new();
            let mut sources = Vec::new();
            let mut tls_sni: Option<&crate::config::expr::SampleExpr> = None;
            for (si, s) in p.servers.iter().enumerate() {
                let o = &s.opts;
                sources.push(compile_source(o.source.as_deref()).map_err(|e| format!("parsing [{}] : 'server' : source: {e}", s.span))?);
                server_tls.push(crate::tls::client::compile_server(&o.tls, &g.tls).map_err(|e| format!("parsing [{}] : 'server' : {e}", s.span))?);
                if o.check.ssl && !o.tls.ssl {
                    crate::check::engine::check_tls(&o.tls, &o.check, &g.tls).map_err(|e| format!("parsing [{}] : 'server' : check-ssl: {e}", s.span))?;
                }
                if o.tls.ssl
                    && let Some(e) = &o.tls.sni
                {
                    if tls_sni.is_some_and(|prev| prev != e) {
                        return Err(format!("parsing [{}] : 'server' : the servers of a backend must share one 'sni' expression for now", s.span));
                    }
                    tls_sni = Some(e);
                }
                let (addr, unresolved) = match server_addr(&s.addr, s.resolved) {
                    Ok(a) => (a, false),
                    Err(_) if matches!(s.addr.kind, AddrKind::Inet { host: Host::Name(_), .. }) => (ServerAddr::Unresolved, true),
                    Err(e) => return Err(format!("{}: server {}/{}: {e}", s.span, p.name, s.name)),
                };
                let mut st = server_state(&s.name, s.id.unwrap_or(si as u32 + 1), addr, o);
                st.referenced = referenced(&tracked, p, &s.name);
                if o.disabled {
                    st.set_admin(balance::AdminState::Maint);
                }
                if unresolved {
                    st.set_resolution_maint(true);
                }
                servers.push(st);
            }
            let stats_info = crate::control::counters::BackendStatsInfo {
                algo: crate::control::stats::algo_name(p.balance.algo.as_ref()),
                checks: p.servers.iter().map(|s| s.opts.check.enabled.then(|| (s.opts.check.rise.unwrap_or(2), s.opts.check.fall.unwrap_or(3)))).collect(),
            };
            let algo = balance::build_algorithm_bounded(p.balance.algo.as_ref(), p.balance.hash_type.as_ref(), p.balance.hash_balance_factor);
            // `balance hash <expr>` hashes a sample the evaluator computes, and so does
            // `rdp-cookie` in mode tcp (`req.rdp_cookie(<name>)`); `uri`, `url_param` and `hdr`
            // hash a request part in mode http.
            let mut hash_key = None;
            let mut http_key = None;
            if let balance::KeyNeeded::SampleHash { function, avalanche } = balance::key_hash_needed(p.balance.algo.as_ref(), p.balance.hash_type.as_ref()) {
                use balance::config::Balance as B;
                let part = |part| Some(HttpKey { part, function, avalanche });
                match &p.balance.algo {
                    Some(B::Hash(expr)) => hash_key = Some(HashKey { expr: eval::CompiledSample::compile(expr)?, function, avalanche }),
                    Some(B::RdpCookie { name }) if p.mode == Mode::Tcp => {
                        let expr = crate::config::expr::parse_sample(&format!("req.rdp_cookie({name})"))?;
                        hash_key = Some(HashKey { expr: eval::CompiledSample::compile(&expr)?, function, avalanche })
                    }
                    Some(B::Uri(u)) if p.mode == Mode::Http => http_key = part(HttpKeyPart::Uri(u.clone())),
                    Some(B::UrlParam { name, .. }) if p.mode == Mode::Http => http_key = part(HttpKeyPart::UrlParam(name.clone())),
                    Some(B::Hdr { name, use_domain_only }) if p.mode == Mode::Http => {
                        http_key = part(HttpKeyPart::Hdr { name: name.clone(), use_domain_only: *use_domain_only })
                    }
                    _ => diags.warning(
                        Some(&p.span),
                        Some("balance"),
                        format!(
                            "backend '{}': this balance key is only computed in mode http (rdp-cookie in mode tcp): this backend balances round robin",
                            p.name
                        ),
                    ),
                }
            }
            // A backup's sessions may be shut down when an active server with
            // `on-marked-up shutdown-backup-sessions` comes up.
            let backups_killable = servers.iter().any(|s: &ServerState| !s.backup && s.on_up_kill_backups);
            for s in &servers {
                s.killable.store(s.on_down_kill || (s.backup && backups_killable), std::sync::atomic::Ordering::Relaxed);
            }
            let opts = BalanceOpts { allbackups: p.options.allbackups.unwrap_or(false) };
            let state = Arc::new(BackendState::new(&p.name, servers, algo, opts));
            if let Some(f) = p.fullconn {
                state.fullconn.store(f, std::sync::atomic::Ordering::Relaxed);
            }
            index.insert(p.name.as_str(), backends.len());
            let t = &p.timeouts;
            backends.push(Backend {
                name: p.name.clone(),
                id: p.id.unwrap_or(pi as u32 + 1),
                mode: p.mode,
                content_rules: compile_rules(p, &p.l4.content_rules, "tcp-request content", &tables)?,
                inspect_delay: p.l4.request_inspect_delay,
                state,
                timeout_connect: t.connect,
                timeout_server: t.server,
                timeout_server_fin: t.server_fin,
                timeout_tunnel: t.tunnel,
                timeout_queue: t.queue.or(t.connect),
                retries: p.retries.unwrap_or(3),
                retry_on: crate::l7::config::RetryPolicy::compile(p.http.retry_on.as_deref()),
                redispatch: if p.options.redispatch.unwrap_or(false) { Some(p.options.redispatch_interval.unwrap_or(-1)) } else { None },
                splice: splice_of(p, nosplice),
                hash_key,
                srvtcpka: p.options.srvtcpka.or(p.options.tcpka).unwrap_or(false),
                nolinger: p.options.nolinger.unwrap_or(false),
                http_keep_alive: matches!(p.http.conn_mode, None | Some(crate::l7::config::HttpConnMode::KeepAlive)),
                pretend_keepalive: p.http.options.pretend_keepalive.unwrap_or(false),
                reuse_allowed: matches!(p.http.conn_mode, None | Some(crate::l7::config::HttpConnMode::KeepAlive))
                    && !matches!(p.http.reuse, Some(crate::l7::config::HttpReuse::Never)),
                reuse_first_unsafe: matches!(p.http.reuse, Some(crate::l7::config::HttpReuse::Aggressive | crate::l7::config::HttpReuse::Always)),
                http: compile_http(p, cfg, &mut loader, &tables)?,
                tls: server_tls,
                sources,
                tls_sni: tls_sni.map(eval::CompiledSample::compile).transpose()?,
                http_key,
                send_name_header: if p.mode == Mode::Http { p.http.send_name_header.clone() } else { None },
                dynamic_servers: dynamic_servers_allowed(p.balance.algo.as_ref(), p.balance.hash_type.as_ref()),
                abortonclose: p.options.abortonclose.unwrap_or(false),
                buffer_request: p.mode == Mode::Http && (p.http.options.buffer_request.unwrap_or(false) || !p.stats.admin.is_empty()),
                // A `backend` section's own stats page (a `listen` section's is its frontend's).
                stats_page: (p.stats.enabled && p.mode == Mode::Http && p.kind == ProxyKind::Backend).then(|| Arc::new(p.stats.clone())),
                stats_admin: p.stats.admin.iter().map(|a| CompiledCond::compile(&a.cond, &p.acls)).collect::<Result<_, _>>()?,
                cookie: compile_cookie(p, diags),
                stick: crate::stick::persist::Persistence::compile(p, &tables)?,
                use_server: use_server::UseServers::compile(p)?,
                rdp_persist: if p.mode == Mode::Tcp { rdp::RdpPersist::compile(p) } else { None },
                log: compile_log(p, cfg, diags)?,
                counters: Default::default(),
                stats_info,
            });
        }
        let mut frontends = Vec::new();
        let tls_cache = crate::tls::server::session_cache(&g.tls);
        for (pi, p) in cfg.proxies.iter().enumerate().filter(|(_, p)| p.kind.has_frontend() && !p.disabled) {
            let mut tls = Vec::new();
            for b in &p.binds {
                let mut warnings = Vec::new();
                let acceptor = crate::tls::server::compile_bind(&b.tls, &g.tls, &tls_cache, p.mode == Mode::Http, &mut |w| warnings.push(w))
                    .map_err(|e| format!("parsing [{}] : 'bind' : {e}", b.span))?;
                for w in warnings {
                    diags.warning(Some(&b.span), Some("bind"), w);
                }
                tls.push(acceptor);
            }
            let default_backend = match (&p.default_backend, p.kind) {
                (Some(n), _) => Some(*index.get(n.name.as_str()).ok_or_else(|| format!("backend '{}' vanished during compilation", n.name))?),
                (None, ProxyKind::Listen) => index.get(p.name.as_str()).copied(),
                (None, _) => None,
            };
            let mut use_backends = Vec::new();
            for u in &p.use_backends {
                match &u.target {
                    crate::config::model::BackendTarget::Named(n) => {
                        let backend = *index.get(n.as_str()).ok_or_else(|| format!("backend '{n}' vanished during compilation"))?;
                        let cond = u.cond.as_ref().map(|c| CompiledCond::compile(c, &p.acls)).transpose()?;
                        use_backends.push(BackendRule { backend: BackendChoice::Index(backend), cond });
                    }
                    crate::config::model::BackendTarget::Dynamic(lf) => {
                        let cond = u.cond.as_ref().map(|c| CompiledCond::compile(c, &p.acls)).transpose()?;
                        let lf = logformat::CompiledLf::compile(lf).map_err(|e| format!("{}: use_backend: {e}", u.span))?;
                        use_backends.push(BackendRule { backend: BackendChoice::Dynamic(lf), cond });
                    }
                }
            }
            let names_buffering = default_backend
                .into_iter()
                .chain(use_backends.iter().filter_map(|u| match u.backend {
                    BackendChoice::Index(i) => Some(i),
                    BackendChoice::Dynamic(_) => None,
                }))
                .any(|i| backends[i].buffer_request);
            // A stats page with admin actions reads their form from the POST body: the frontend
            // waits for bodies, as `option http-buffer-request` does.
            let stats_admin = p.stats.enabled && !p.stats.admin.is_empty();
            let buffer_request = p.mode == Mode::Http && (p.http.options.buffer_request.unwrap_or(false) || names_buffering || stats_admin);
            frontends.push(Frontend {
                name: p.name.clone(),
                id: p.id.unwrap_or(pi as u32 + 1),
                mode: p.mode,
                binds: p.binds.clone(),
                tls,
                maxconn: p.maxconn,
                timeout_client: p.timeouts.client,
                timeout_client_fin: p.timeouts.client_fin,
                connection_rules: compile_rules(p, &p.l4.connection_rules, "tcp-request connection", &tables)?,
                session_rules: compile_rules(p, &p.l4.session_rules, "tcp-request session", &tables)?,
                content_rules: compile_rules(p, &p.l4.content_rules, "tcp-request content", &tables)?,
                inspect_delay: p.l4.request_inspect_delay,
                use_backends,
                default_backend,
                clitcpka: p.options.clitcpka.or(p.options.tcpka).unwrap_or(false),
                nolinger: p.options.nolinger.unwrap_or(false),
                timeout_http_request: p.timeouts.http_request,
                timeout_http_keep_alive: p.timeouts.http_keep_alive,
                http_keep_alive: !matches!(p.http.conn_mode, Some(crate::l7::config::HttpConnMode::Close)),
                ignore_probes: p.http.options.ignore_probes.unwrap_or(false),
                http_server_keep_alive: matches!(p.http.conn_mode, None | Some(crate::l7::config::HttpConnMode::KeepAlive)),
                http: compile_http(p, cfg, &mut loader, &tables)?,
                own_backend: if p.kind == ProxyKind::Listen { index.get(p.name.as_str()).copied() } else { None },
                timeout_tarpit: p.timeouts.tarpit.or(p.timeouts.connect),
                buffer_request,
                limit: crate::runtime::limit::ConnLimit::new(p.maxconn),
                bind_limits: p.binds.iter().map(|b| b.maxconn.filter(|&m| m > 0).map(|m| crate::runtime::limit::ConnLimit::new(Some(m)))).collect(),
                sess_rate: crate::runtime::limit::RateLimit::new(p.rate_limit_sessions),
                captures: capture::CaptureConfig::compile(p).0,
                log: compile_log(p, cfg, diags)?,
                latency: Default::default(),
                counters: Default::default(),
                stats_page: (p.stats.enabled && p.mode == Mode::Http).then(|| Arc::new(p.stats.clone())),
                stats_admin: p.stats.admin.iter().map(|a| CompiledCond::compile(&a.cond, &p.acls)).collect::<Result<_, _>>()?,
                paused: std::sync::atomic::AtomicBool::new(false),
            });
        }
        let cpu_map = crate::runtime::config::worker_cpus(&g.runtime);
        let process = Process {
            nbthread: g.runtime.nbthread,
            cpu_map,
            maxconn: g.maxconn,
            hard_stop_after: g.hard_stop_after,
            daemon: g.daemon,
            pidfile: g.pidfile.clone(),
            pipesize: g.runtime.tune.pipesize.map(|v| v as usize),
            nosplice,
            bufsize: g.runtime.tune.bufsize() as usize,
            head_limits: crate::l7::h1::Limits {
                max_head: (g.runtime.tune.bufsize() - g.runtime.tune.maxrewrite().min(g.runtime.tune.bufsize() / 2)) as usize,
                max_headers: g.runtime.tune.http_maxhdr.unwrap_or(101) as usize,
            },
        };
        // The latency histograms are read only by the Prometheus exporter: without one the
        // sessions do not time transactions for them.
        let exported = |h: &ProxyHttpRt| h.request_rules.iter().any(|r| matches!(r.action, crate::l7::rules::Action::PrometheusExporter));
        let time_transactions = frontends.iter().any(|f| exported(&f.http)) || backends.iter().any(|b| exported(&b.http));
        let compresses = frontends.iter().any(|f| f.http.compression.is_some()) || backends.iter().any(|b| b.http.compression.is_some());
        let limits = Arc::new(crate::runtime::limit::ProcessLimits::new(g.maxconn, g.maxconnrate, g.maxsessrate));
        default_fullconn(&frontends, &backends, g.maxconn);
        let patterns = collecting.finish();
        Ok(RouteTable {
            frontends,
            backends,
            process,
            userlists: cfg.userlists.clone(),
            proc_vars: vars::ProcVars::default(),
            time_transactions,
            compresses,
            limits,
            patterns,
            tables,
            peers,
        })
    }

    /// Compiles, discarding warnings (for `-c` and tests that only need success or failure).
    pub fn compile(cfg: &Config) -> Result<RouteTable, String> {
        Self::compile_with(cfg, &mut Diags::default())
    }
}
