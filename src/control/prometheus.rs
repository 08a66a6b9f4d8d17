//! `http-request use-service prometheus-exporter`: the metrics of HAProxy's built-in exporter
//! (PROMEX), under its names, types and labels (`proxy`, `server`, `state`), so HAProxy's
//! dashboards and alerts read sluiced unchanged; plus latency histograms and the
//! zero-copy send counters under `sluiced_*` names.
//!
//! What is emitted: only the metrics sluiced measures. A metric HAProxy has and sluiced does not
//! count yet (SSL, cache, backend and server rates, check history) is left out rather than exported as a constant 0: a 0 would make a
//! dashboard say "no errors" when the truth is "not counted", and HAProxy's exporter itself leaves
//! out what does not apply to a proxy, so consumers already handle a missing series.
//!
//! The text format is written here directly. The `metrics-exporter-prometheus` crate renders
//! what was pushed into its global recorder; sluiced's counters already live in the shared
//! server and backend atomics and are read when a scrape arrives, so going through the crate
//! would mean copying every series into a recorder on each scrape (and keeping stale label sets
//! alive after a reload) to get the same text out.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use crate::balance::latency::{BOUNDS_US, Histogram};
use crate::balance::{AdminState, BackendState, ServerState};
use crate::control::counters::ProxyCounters;
use crate::l7::reply::Response;
use crate::route::RouteTable;

/// Which metric families a scrape asks for (`scope=` and `no-maint` in the query string).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Query {
    pub global: bool,
    pub frontend: bool,
    pub backend: bool,
    pub server: bool,
    /// `no-maint`: servers in maintenance are left out.
    pub no_maint: bool,
}

impl Default for Query {
    fn default() -> Query {
        Query { global: true, frontend: true, backend: true, server: true, no_maint: false }
    }
}

impl Query {
    /// Reads the query string of `uri` as HAProxy's exporter does: everything by default; the
    /// first `scope` parameter starts from nothing, each one adds its scope (`*` all of them) and
    /// an empty one clears what the earlier ones added. Unknown scopes (listener, sticktable,
    /// resolver: not exported by sluiced) and parameters are ignored.
    pub fn parse(uri: &[u8]) -> Query {
        let mut q = Query::default();
        let Some(pos) = uri.iter().position(|&b| b == b'?') else { return q };
        let mut scoped = false;
        for param in uri[pos + 1..].split(|&b| b == b'&') {
            let (name, value) = match param.iter().position(|&b| b == b'=') {
                Some(i) => (&param[..i], &param[i + 1..]),
                None => (param, &b""[..]),
            };
            match name {
                b"scope" => {
                    if !scoped || value.is_empty() {
                        scoped = true;
                        (q.global, q.frontend, q.backend, q.server) = (false, false, false, false);
                    }
                    match value {
                        b"*" => (q.global, q.frontend, q.backend, q.server) = (true, true, true, true),
                        b"global" => q.global = true,
                        b"frontend" => q.frontend = true,
                        b"backend" => q.backend = true,
                        b"server" => q.server = true,
                        _ => {}
                    }
                }
                b"no-maint" => q.no_maint = true,
                _ => {}
            }
        }
        q
    }
}

/// When the process started, for `uptime_seconds` and `start_time_seconds`: set by
/// [`mark_start`] at startup, or at the first scrape.
static START: std::sync::OnceLock<(std::time::Instant, std::time::SystemTime)> = std::sync::OnceLock::new();

/// Records the process start time; called once when the daemon starts.
pub fn mark_start() {
    START.get_or_init(|| (std::time::Instant::now(), std::time::SystemTime::now()));
}

/// The answer to a scrape of `uri`: a complete HTTP/1.1 200 response with the exposition.
pub fn response(rt: &RouteTable, uri: &[u8]) -> Response {
    let body = render(rt, Query::parse(uri));
    let mut bytes = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4; charset=utf-8\r\ncache-control: no-cache\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    Response { bytes, close: false }
}

/// A metric family being written: `# HELP`/`# TYPE` once, then its series.
struct Out {
    text: String,
}

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = write!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
    }
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"");
                escape_label(&mut self.text, v);
                self.text.push('"');
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }
    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) {
        let s = h.snapshot();
        let bucket = format!("{name}_bucket");
        for (i, c) in s.cumulative.iter().enumerate() {
            let le = BOUNDS_US.get(i).map_or_else(|| "+Inf".to_string(), |us| format_seconds(*us));
            let mut with_le: Vec<(&str, &str)> = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&bucket, &with_le, c);
        }
        self.sample(&format!("{name}_sum"), labels, s.sum_seconds);
        self.sample(&format!("{name}_count"), labels, s.count());
    }
}

/// A bucket bound in seconds, as short as it is exact (`0.0001`, `2.5`, `10`).
fn format_seconds(us: u64) -> String {
    let s = format!("{}.{:06}", us / 1_000_000, us % 1_000_000);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Label values escape `\`, `"` and newlines (the text format's rule).
fn escape_label(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// HAProxy's server states as the `state` label of `haproxy_server_status` lists them.
const SERVER_STATES: [&str; 5] = ["DOWN", "UP", "MAINT", "DRAIN", "NOLB"];
/// HAProxy's frontend and backend states for `haproxy_{frontend,backend}_status`.
const PROXY_STATES: [&str; 2] = ["DOWN", "UP"];

/// The `state` label value of a server now, in HAProxy's precedence: maintenance, then the
/// operational state (down, NOLB), then drain.
fn server_state(s: &ServerState) -> &'static str {
    match s.admin() {
        AdminState::Maint => "MAINT",
        _ if !s.is_up() => "DOWN",
        _ if s.is_nolb() => "NOLB",
        AdminState::Drain => "DRAIN",
        AdminState::Ready => "UP",
    }
}

/// The backend's total effective weight: its active servers', or its backups' when no active
/// server takes traffic (HAProxy's `tot_weight`).
fn backend_weight(be: &BackendState) -> u64 {
    let active: u64 = be.servers.iter().filter(|s| !s.backup).map(|s| effective_weight(s)).sum();
    if active > 0 { active } else { be.servers.iter().filter(|s| s.backup).map(|s| effective_weight(s)).sum() }
}

/// The effective weight a server contributes to its backend now (0 when it takes no traffic).
fn effective_weight(s: &ServerState) -> u64 {
    if s.usable() { u64::from(s.weight.load(Ordering::Relaxed)) } else { 0 }
}

/// Sums a per-server counter over a backend.
fn sum(be: &BackendState, f: impl Fn(&ServerState) -> u64) -> u64 {
    be.servers.iter().map(|s| f(s)).sum()
}

type ServerMetric = (&'static str, &'static str, &'static str, fn(&ServerState) -> u64);
/// The per-server metrics sluiced counts; the backend gets each one summed over its servers.
const SERVER_COUNTERS: &[ServerMetric] = &[
    ("current_queue", "gauge", "Number of current queued connections", |s| u64::from(s.queued.load(Ordering::Relaxed))),
    ("current_sessions", "gauge", "Number of current sessions on the frontend, backend or server", |s| u64::from(s.cur_conns.load(Ordering::Relaxed))),
    ("sessions_total", "counter", "Total number of sessions since process started", |s| s.total_conns()),
    ("bytes_in_total", "counter", "Total number of request bytes since process started", |s| s.bytes_in()),
    ("bytes_out_total", "counter", "Total number of response bytes since process started", |s| s.bytes_out()),
    ("connection_errors_total", "counter", "Total number of failed connections to server since the worker process started", |s| s.conn_errors()),
    ("retry_warnings_total", "counter", "Total number of server connection retries since the worker process started", |s| s.retries()),
    ("redispatch_warnings_total", "counter", "Total number of server redispatches due to connection failures since the worker process started", |s| {
        s.redispatches()
    }),
];

/// The exposition text for `q`.
pub fn render(rt: &RouteTable, q: Query) -> String {
    let mut o = Out { text: String::with_capacity(4096) };
    if q.global {
        render_process(&mut o, rt);
    }
    if q.frontend {
        render_frontends(&mut o, rt);
    }
    if q.backend {
        render_backends(&mut o, rt);
    }
    if q.server {
        render_servers(&mut o, rt, q.no_maint);
    }
    if q.global && q.frontend && q.backend && q.server {
        o.text.push_str(&super::table_metrics::render(rt));
    }
    o.text
}

fn render_process(o: &mut Out, rt: &RouteTable) {
    mark_start();
    let (started, started_wall) = *START.get().expect("set by mark_start");
    let nbthread = rt.process.nbthread.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32));
    let gauges: [(&str, &str, u64); 4] = [
        ("haproxy_process_nbthread", "Number of started threads (global.nbthread)", u64::from(nbthread)),
        ("haproxy_process_nbproc", "Number of started worker processes (historical, always 1)", 1),
        ("haproxy_process_relative_process_id", "Relative worker process number (1)", 1),
        ("haproxy_process_uptime_seconds", "How long ago this worker process was started (seconds)", started.elapsed().as_secs()),
    ];
    for (name, help, v) in gauges {
        o.family(name, "gauge", help);
        o.sample(name, &[], v);
    }
    if let Some(m) = rt.process.maxconn {
        let name = "haproxy_process_max_connections";
        o.family(name, "gauge", "Hard limit on the number of per-process connections (configured or imposed by Ulimit-n)");
        o.sample(name, &[], m);
    }
    let name = "haproxy_process_stopping";
    o.family(name, "gauge", "Non-zero means stopping in progress");
    o.sample(name, &[], 0);
    let name = "haproxy_process_build_info";
    o.family(name, "gauge", "Build info");
    o.sample(name, &[("version", crate::build::VERSION)], 1);
    let name = "haproxy_process_start_time_seconds";
    o.family(name, "gauge", "Start time in seconds");
    o.sample(name, &[], started_wall.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()));
    let (zc_sent, zc_copied) = crate::runtime::uring::zero_copy_counts();
    let name = "sluiced_process_zero_copy_sends_total";
    o.family(name, "counter", "Zero-copy sends of body bytes (tune.uring.send-zc) the kernel has let go of");
    o.sample(name, &[], zc_sent);
    let name = "sluiced_process_zero_copy_copied_total";
    o.family(name, "counter", "Zero-copy sends the kernel reported it copied after all (no saving; loopback, veth, devices without scatter-gather)");
    o.sample(name, &[], zc_copied);
}

fn render_frontends(o: &mut Out, rt: &RouteTable) {
    let name = "haproxy_frontend_status";
    o.family(name, "gauge", "Current status of the service, per state label value.");
    for fe in &rt.frontends {
        // A frontend in the routing table is listening: disabled ones are not compiled in.
        for st in PROXY_STATES {
            o.sample(name, &[("proxy", &fe.name), ("state", st)], u8::from(st == "UP"));
        }
    }
    let name = "haproxy_frontend_limit_sessions";
    o.family(name, "gauge", "Frontend/listener/server's maxconn, backend's fullconn");
    for fe in rt.frontends.iter().filter(|f| f.maxconn.is_some()) {
        o.sample(name, &[("proxy", &fe.name)], fe.maxconn.unwrap_or(0));
    }
    type RateMetric = (&'static str, &'static str, fn(&crate::runtime::limit::RateLimit) -> u32);
    let rates: [RateMetric; 3] = [
        ("haproxy_frontend_current_session_rate", "Current number of sessions per second over last elapsed second", |r| r.current()),
        ("haproxy_frontend_limit_session_rate", "Configured limit on new sessions per second", |r| r.limit()),
        ("haproxy_frontend_max_session_rate", "Maximum observed number of sessions per second", |r| r.max_seen()),
    ];
    for (name, help, f) in rates {
        o.family(name, "gauge", help);
        for fe in &rt.frontends {
            o.sample(name, &[("proxy", &fe.name)], f(&fe.sess_rate));
        }
    }
    let counters: [FeMetric; 11] = [
        ("current_sessions", "gauge", "Number of current sessions on the frontend, backend or server", |c| ProxyCounters::get(&c.cur_sessions)),
        ("max_sessions", "gauge", "Maximum observed number of sessions on the frontend, backend or server", |c| ProxyCounters::get(&c.max_sessions)),
        ("sessions_total", "counter", "Total number of sessions since process started", ProxyCounters::sessions),
        ("bytes_in_total", "counter", "Total number of request bytes since process started", ProxyCounters::bytes_in),
        ("bytes_out_total", "counter", "Total number of response bytes since process started", ProxyCounters::bytes_out),
        ("requests_denied_total", "counter", "Total number of denied requests since process started", ProxyCounters::denied_requests),
        ("request_errors_total", "counter", "Total number of invalid requests since process started", ProxyCounters::request_errors),
        ("http_requests_total", "counter", "Total number of HTTP requests processed by this object since the worker process started", ProxyCounters::requests),
        COMP_COUNTERS[0],
        COMP_COUNTERS[1],
        COMP_COUNTERS[2],
    ];
    for (metric, kind, help, f) in counters {
        let name = format!("haproxy_frontend_{metric}");
        o.family(&name, kind, help);
        for fe in rt.frontends.iter().filter(|fe| !metric.starts_with("http_") || fe.mode == crate::config::model::Mode::Http) {
            o.sample(&name, &[("proxy", &fe.name)], f(&fe.counters));
        }
    }
    http_responses(
        o,
        "haproxy_frontend_http_responses_total",
        rt.frontends.iter().filter(|f| f.mode == crate::config::model::Mode::Http).map(|f| (&*f.name, &*f.counters)),
    );
    let name = "sluiced_frontend_total_time_seconds";
    o.family(name, "histogram", "Time from a complete request head to the end of the response, per HTTP transaction forwarded to a server");
    for fe in rt.frontends.iter().filter(|f| f.mode == crate::config::model::Mode::Http) {
        o.histogram(name, &[("proxy", &fe.name)], &fe.latency.total);
    }
}

/// A proxy counter: its name after `haproxy_<frontend|backend>_`, type, help, and reader.
type FeMetric = (&'static str, &'static str, &'static str, fn(&ProxyCounters) -> u64);

/// Compression counters of frontends and backends in `mode http` (`http_comp_bytes_bypassed_total`
/// is left out: sluiced has no compression limit to bypass the compressor).
const COMP_COUNTERS: [FeMetric; 3] = [
    ("http_comp_bytes_in_total", "counter", "Total number of HTTP response bytes fed to the compressor", ProxyCounters::comp_in),
    ("http_comp_bytes_out_total", "counter", "Total number of HTTP response bytes emitted by the compressor", ProxyCounters::comp_out),
    ("http_comp_responses_total", "counter", "Total number of HTTP responses that were compressed", ProxyCounters::comp_rsp),
];

/// `<name>{proxy="...",code="1xx"}` ... `code="other"`: HTTP responses per status class.
fn http_responses<'a>(o: &mut Out, name: &str, proxies: impl Iterator<Item = (&'a str, &'a ProxyCounters)>) {
    o.family(name, "counter", "Total number of HTTP responses, per status class (code label), since the worker process started");
    for (proxy, c) in proxies {
        for (code, v) in ["1xx", "2xx", "3xx", "4xx", "5xx", "other"].into_iter().zip(c.responses()) {
            o.sample(name, &[("proxy", proxy), ("code", code)], v);
        }
    }
}

fn render_backends(o: &mut Out, rt: &RouteTable) {
    for (metric, kind, help, f) in SERVER_COUNTERS {
        let name = format!("haproxy_backend_{metric}");
        o.family(&name, kind, help);
        for be in &rt.backends {
            let mut v = sum(&be.state, f);
            if *metric == "current_queue" {
                v += u64::from(be.state.queued.load(Ordering::Relaxed));
            }
            if *metric == "sessions_total" {
                // The backend counts its own sessions, including those that found no server.
                v = be.state.total_conns();
            }
            o.sample(&name, &[("proxy", &be.name)], v);
        }
    }
    let http_backends = || rt.backends.iter().filter(|b| b.mode == crate::config::model::Mode::Http);
    let name = "haproxy_backend_requests_denied_total";
    o.family(name, "counter", "Total number of denied requests since process started");
    for be in &rt.backends {
        o.sample(name, &[("proxy", &be.name)], be.counters.denied_requests());
    }
    let name = "haproxy_backend_http_requests_total";
    o.family(name, "counter", "Total number of HTTP requests processed by this object since the worker process started");
    for be in http_backends() {
        o.sample(name, &[("proxy", &be.name)], be.counters.requests());
    }
    http_responses(o, "haproxy_backend_http_responses_total", http_backends().map(|b| (&*b.name, &*b.counters)));
    for (metric, kind, help, f) in COMP_COUNTERS {
        let name = format!("haproxy_backend_{metric}");
        o.family(&name, kind, help);
        for be in http_backends() {
            o.sample(&name, &[("proxy", &be.name)], f(&be.counters));
        }
    }
    let name = "haproxy_backend_status";
    o.family(name, "gauge", "Current status of the service, per state label value.");
    for be in &rt.backends {
        // UP while some server takes traffic, or when there is no server at all (as HAProxy).
        let up = backend_weight(&be.state) > 0 || be.state.servers.is_empty();
        for st in PROXY_STATES {
            o.sample(name, &[("proxy", &be.name), ("state", st)], u8::from((st == "UP") == up));
        }
    }
    let name = "haproxy_backend_weight";
    o.family(name, "gauge", "Server's effective weight, or sum of active servers' effective weights for a backend");
    for be in &rt.backends {
        o.sample(name, &[("proxy", &be.name)], backend_weight(&be.state));
    }
    let name = "haproxy_backend_uweight";
    o.family(name, "gauge", "Server's user weight, or sum of active servers' user weights for a backend");
    for be in &rt.backends {
        let w: u64 = be.state.servers.iter().filter(|s| !s.backup && s.usable()).map(|s| u64::from(s.weight.load(Ordering::Relaxed))).sum();
        o.sample(name, &[("proxy", &be.name)], w);
    }
    for (metric, help, backup) in [("active_servers", "Current number of active servers", false), ("backup_servers", "Current number of backup servers", true)]
    {
        let name = format!("haproxy_backend_{metric}");
        o.family(&name, "gauge", help);
        for be in &rt.backends {
            let n = be.state.servers.iter().filter(|s| s.backup == backup && s.usable()).count();
            o.sample(&name, &[("proxy", &be.name)], n);
        }
    }
    for (name, help, which) in [
        ("sluiced_backend_total_time_seconds", "Time from a complete request head to the end of the response, per HTTP transaction", true),
        ("sluiced_backend_response_time_seconds", "Time from the request forwarded to the response head received (HAProxy's Tr), per HTTP transaction", false),
    ] {
        o.family(name, "histogram", help);
        for be in rt.backends.iter().filter(|b| b.mode == crate::config::model::Mode::Http) {
            let l = &be.state.latency;
            o.histogram(name, &[("proxy", &be.name)], if which { &l.total } else { &l.response });
        }
    }
}

fn render_servers(o: &mut Out, rt: &RouteTable, no_maint: bool) {
    let servers = || {
        rt.backends.iter().flat_map(|be| be.state.servers.iter().map(move |s| (be, &**s))).filter(move |(_, s)| !(no_maint && s.admin() == AdminState::Maint))
    };
    for (metric, kind, help, f) in SERVER_COUNTERS {
        let name = format!("haproxy_server_{metric}");
        o.family(&name, kind, help);
        for (be, s) in servers() {
            o.sample(&name, &[("proxy", &be.name), ("server", &s.name)], f(s));
        }
    }
    let name = "haproxy_server_limit_sessions";
    o.family(name, "gauge", "Frontend/listener/server's maxconn, backend's fullconn");
    for (be, s) in servers() {
        let m = s.maxconn.load(Ordering::Relaxed);
        if m > 0 {
            o.sample(name, &[("proxy", &be.name), ("server", &s.name)], m);
        }
    }
    let name = "haproxy_server_queue_limit";
    o.family(name, "gauge", "Limit on the number of connections in queue, for servers only (maxqueue argument)");
    for (be, s) in servers().filter(|(_, s)| s.maxqueue > 0) {
        o.sample(name, &[("proxy", &be.name), ("server", &s.name)], s.maxqueue);
    }
    let name = "haproxy_server_status";
    o.family(name, "gauge", "Current status of the service, per state label value.");
    for (be, s) in servers() {
        let now = server_state(s);
        for st in SERVER_STATES {
            o.sample(name, &[("proxy", &be.name), ("server", &s.name), ("state", st)], u8::from(st == now));
        }
    }
    type Gauge = (&'static str, &'static str, fn(&ServerState) -> u64);
    let gauges: [Gauge; 4] = [
        ("weight", "Server's effective weight, or sum of active servers' effective weights for a backend", effective_weight),
        ("uweight", "Server's user weight, or sum of active servers' user weights for a backend", |s| u64::from(s.weight.load(Ordering::Relaxed))),
        ("active", "Total number of active UP servers with a non-zero weight", |s| u64::from(!s.backup)),
        ("backup", "Total number of backup UP servers with a non-zero weight", |s| u64::from(s.backup)),
    ];
    for (metric, help, f) in gauges {
        let name = format!("haproxy_server_{metric}");
        o.family(&name, "gauge", help);
        for (be, s) in servers() {
            o.sample(&name, &[("proxy", &be.name), ("server", &s.name)], f(s));
        }
    }
    for (name, help, which) in [
        ("sluiced_server_total_time_seconds", "Time from a complete request head to the end of the response, per HTTP transaction", true),
        ("sluiced_server_response_time_seconds", "Time from the request forwarded to the response head received (HAProxy's Tr), per HTTP transaction", false),
    ] {
        o.family(name, "histogram", help);
        for (be, s) in servers().filter(|(be, _)| be.mode == crate::config::model::Mode::Http) {
            let l = &s.latency;
            o.histogram(name, &[("proxy", &be.name), ("server", &s.name)], if which { &l.total } else { &l.response });
        }
    }
}

#[cfg(test)]
#[path = "prometheus_tests.rs"]
mod tests;
