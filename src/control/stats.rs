//! The statistics HAProxy's tooling reads, rendered from the shared server and backend state:
//! `show stat` (CSV, typed, JSON), `show info`, `show servers state`. The stats socket and the
//! stats page both call these; counters are read (summed) at call time.
//!
//! Values sluiced does not measure (rates, timings, compression, SSL/H2 module counters) print as
//! `0` where HAProxy prints a number for that row type, so that the column layout of every row
//! matches HAProxy's; fields HAProxy leaves empty for a row type stay empty.

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

use crate::balance::{AdminState, ServerAddr, ServerState};
use crate::config::model::Mode;
use crate::control::counters::ProxyCounters;
use crate::route::{Backend, Frontend, RouteTable};

/// How `show stat` / `show info` are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Typed,
    Json,
}

/// `show stat [<iid> <type> <sid>]`: which proxies and object types to print (`None`: all).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatFilter {
    /// Proxy id, `-1`/`None` for all.
    pub iid: Option<i64>,
    /// Bit field as HAProxy's: 1 frontends, 2 backends, 4 servers; `None` for all.
    pub types: Option<u32>,
    /// Server id, `-1`/`None` for all.
    pub sid: Option<i64>,
}

/// Process-wide facts `show info` needs that the routing table does not hold.
#[derive(Clone, Debug, Default)]
pub struct ProcessInfo {
    pub pid: u32,
    pub nbthread: u32,
    pub start_unix_secs: u64,
    pub uptime_secs: u64,
    /// Connections open now across frontends (`CurrConns`); `None` sums the frontends' sessions.
    pub curr_conns: Option<u64>,
    /// `Ulimit-n`, 0 when unknown.
    pub ulimit_n: u64,
}

impl ProcessInfo {
    /// This process's facts: its pid, `nbthread` workers, started at `start`, and its open-files limit.
    pub fn for_this_process(nbthread: u32, start: std::time::SystemTime) -> ProcessInfo {
        let now = std::time::SystemTime::now();
        let ulimit_n = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).map_or(0, |(soft, _)| soft);
        ProcessInfo {
            pid: std::process::id(),
            nbthread,
            start_unix_secs: start.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            uptime_secs: now.duration_since(start).map_or(0, |d| d.as_secs()),
            curr_conns: None,
            ulimit_n,
        }
    }
}

/// The standard `show stat` columns (HAProxy's `stat_cols_px`), in order.
pub const STAT_COLUMNS: &[&str] = &[
    "pxname",
    "svname",
    "qcur",
    "qmax",
    "scur",
    "smax",
    "slim",
    "stot",
    "bin",
    "bout",
    "dreq",
    "dresp",
    "ereq",
    "econ",
    "eresp",
    "wretr",
    "wredis",
    "status",
    "weight",
    "act",
    "bck",
    "chkfail",
    "chkdown",
    "lastchg",
    "downtime",
    "qlimit",
    "pid",
    "iid",
    "sid",
    "throttle",
    "lbtot",
    "tracked",
    "type",
    "rate",
    "rate_lim",
    "rate_max",
    "check_status",
    "check_code",
    "check_duration",
    "hrsp_1xx",
    "hrsp_2xx",
    "hrsp_3xx",
    "hrsp_4xx",
    "hrsp_5xx",
    "hrsp_other",
    "hanafail",
    "req_rate",
    "req_rate_max",
    "req_tot",
    "cli_abrt",
    "srv_abrt",
    "comp_in",
    "comp_out",
    "comp_byp",
    "comp_rsp",
    "lastsess",
    "last_chk",
    "last_agt",
    "qtime",
    "ctime",
    "rtime",
    "ttime",
    "agent_status",
    "agent_code",
    "agent_duration",
    "check_desc",
    "agent_desc",
    "check_rise",
    "check_fall",
    "check_health",
    "agent_rise",
    "agent_fall",
    "agent_health",
    "addr",
    "cookie",
    "mode",
    "algo",
    "conn_rate",
    "conn_rate_max",
    "conn_tot",
    "intercepted",
    "dcon",
    "dses",
    "wrew",
    "connect",
    "reuse",
    "cache_lookups",
    "cache_hits",
    "srv_icur",
    "src_ilim",
    "qtime_max",
    "ctime_max",
    "rtime_max",
    "ttime_max",
    "eint",
    "idle_conn_cur",
    "safe_conn_cur",
    "used_conn_cur",
    "need_conn_est",
    "uweight",
    "agg_server_status",
    "agg_server_check_status",
    "agg_check_status",
    "srid",
    "sess_other",
    "h1sess",
    "h2sess",
    "h3sess",
    "req_other",
    "h1req",
    "h2req",
    "h3req",
    "proto",
    "priv_idle_cur",
    "reqbin",
    "reqbout",
    "resbin",
    "resbout",
];

/// The columns of the statistics modules HAProxy 3.4 appends to the CSV after a `-` separator
/// (SSL, H2, H1). sluiced prints them so its header is HAProxy's byte for byte.
pub const MODULE_COLUMNS: &[&str] = &[
    "-",
    "ssl_sess",
    "ssl_reused_sess",
    "ssl_failed_handshake",
    "ssl_ocsp_staple",
    "ssl_failed_ocsp_staple",
    "h2_headers_rcvd",
    "h2_data_rcvd",
    "h2_settings_rcvd",
    "h2_rst_stream_rcvd",
    "h2_goaway_rcvd",
    "h2_detected_conn_protocol_errors",
    "h2_detected_strm_protocol_errors",
    "h2_rst_stream_resp",
    "h2_goaway_resp",
    "h2_open_connections",
    "h2_backend_open_streams",
    "h2_total_connections",
    "h2_backend_total_streams",
    "h1_open_connections",
    "h1_open_streams",
    "h1_total_connections",
    "h1_total_streams",
    "h1_bytes_in",
    "h1_bytes_out",
    "h1_spliced_bytes_in",
    "h1_spliced_bytes_out",
];

/// `show info` field names, in order.
pub const INFO_FIELDS: &[&str] = &[
    "Name",
    "Version",
    "Release_date",
    "Nbthread",
    "Nbproc",
    "Process_num",
    "Pid",
    "Uptime",
    "Uptime_sec",
    "Memmax_MB",
    "PoolAlloc_MB",
    "PoolUsed_MB",
    "PoolFailed",
    "Ulimit-n",
    "Maxsock",
    "Maxconn",
    "Hard_maxconn",
    "CurrConns",
    "CumConns",
    "CumReq",
    "MaxSslConns",
    "CurrSslConns",
    "CumSslConns",
    "Maxpipes",
    "PipesUsed",
    "PipesFree",
    "ConnRate",
    "ConnRateLimit",
    "MaxConnRate",
    "SessRate",
    "SessRateLimit",
    "MaxSessRate",
    "SslRate",
    "SslRateLimit",
    "MaxSslRate",
    "SslFrontendKeyRate",
    "SslFrontendMaxKeyRate",
    "SslFrontendSessionReuse_pct",
    "SslBackendKeyRate",
    "SslBackendMaxKeyRate",
    "SslCacheLookups",
    "SslCacheMisses",
    "CompressBpsIn",
    "CompressBpsOut",
    "CompressBpsRateLim",
    "ZlibMemUsage",
    "MaxZlibMemUsage",
    "Tasks",
    "Run_queue",
    "Idle_pct",
    "node",
    "description",
    "Stopping",
    "Jobs",
    "Unstoppable Jobs",
    "Listeners",
    "ActivePeers",
    "ConnectedPeers",
    "DroppedLogs",
    "BusyPolling",
    "FailedResolutions",
    "TotalBytesOut",
    "TotalSplicedBytesOut",
    "BytesOutRate",
    "DebugCommandsIssued",
    "CumRecvLogs",
    "Build info",
    "Memmax_bytes",
    "PoolAlloc_bytes",
    "PoolUsed_bytes",
    "Start_time_sec",
    "Tainted",
    "TotalWarnings",
    "MaxconnReached",
    "BootTime_ms",
    "Niced_tasks",
    "CurrStreams",
    "CumStreams",
    "BlockedTrafficWarnings",
    "PatternsAdded",
    "PatternsFreed",
    "NbThreadGroups",
];

/// The `Version` of `show info`: HAProxy's form, naming the HAProxy release whose behaviour
/// sluiced implements, as `-vv` prints it.
pub fn version_string() -> String {
    format!("{}.0-sluiced-{}", crate::build::HAPROXY_COMPAT_VERSION, crate::build::VERSION)
}

/// `Release_date` of `show info` (HAProxy's `YYYY/MM/DD`): when this sluiced version was cut.
pub const RELEASE_DATE: &str = "2026/11/22";

/// The `balance` algorithm's name as the `algo` column shows it.
pub fn algo_name(b: Option<&crate::balance::config::Balance>) -> &'static str {
    use crate::balance::config::Balance as B;
    match b {
        None | Some(B::RoundRobin) => "roundrobin",
        Some(B::StaticRr) => "static-rr",
        Some(B::LeastConn) => "leastconn",
        Some(B::First) => "first",
        Some(B::Source) => "source",
        Some(B::Random { .. }) => "random",
        Some(B::Uri(_)) => "uri",
        Some(B::UrlParam { .. }) => "url_param",
        Some(B::Hdr { .. }) => "hdr",
        Some(B::RdpCookie { .. }) => "rdp-cookie",
        Some(B::Hash(_)) => "hash",
    }
}

/// One value of a statistics field, with the type the typed and JSON forms print.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    U32(u64),
    U64(u64),
    S32(i64),
}

impl Value {
    fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "str",
            Value::U32(_) => "u32",
            Value::U64(_) => "u64",
            Value::S32(_) => "s32",
        }
    }
    fn write_csv(&self, out: &mut String) {
        match self {
            Value::Str(s) => out.push_str(&csv_escape(s)),
            Value::U32(n) | Value::U64(n) => {
                let _ = write!(out, "{n}");
            }
            Value::S32(n) => {
                let _ = write!(out, "{n}");
            }
        }
    }
    fn write_plain(&self, out: &mut String) {
        match self {
            Value::Str(s) => out.push_str(s),
            _ => self.write_csv(out),
        }
    }
    fn write_json(&self, out: &mut String) {
        match self {
            Value::Str(s) => json_str(out, s),
            _ => self.write_csv(out),
        }
    }
}

/// HAProxy quotes a CSV field holding a comma or a quote, doubling the quotes.
fn csv_escape(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")).into() } else { s.into() }
}

fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// What kind of object a row describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjType {
    Frontend,
    Backend,
    Server,
}

impl ObjType {
    fn letter(self) -> char {
        match self {
            ObjType::Frontend => 'F',
            ObjType::Backend => 'B',
            ObjType::Server => 'S',
        }
    }
    fn json_name(self) -> &'static str {
        match self {
            ObjType::Frontend => "Frontend",
            ObjType::Backend => "Backend",
            ObjType::Server => "Server",
        }
    }
}

/// One `show stat` row: the standard columns then the module columns; `None` is an empty field.
#[derive(Clone, Debug)]
pub struct StatRow {
    pub objtype: ObjType,
    pub iid: u32,
    pub sid: u32,
    pub fields: Vec<Option<Value>>,
}

impl StatRow {
    fn new(objtype: ObjType, iid: u32, sid: u32) -> StatRow {
        StatRow { objtype, iid, sid, fields: vec![None; STAT_COLUMNS.len() + MODULE_COLUMNS.len()] }
    }
    fn idx(name: &str) -> usize {
        STAT_COLUMNS.iter().chain(MODULE_COLUMNS).position(|c| *c == name).unwrap_or_else(|| panic!("unknown stat column {name}"))
    }
    fn set(&mut self, name: &str, v: Value) {
        self.fields[Self::idx(name)] = Some(v);
    }
    fn s(&mut self, name: &str, v: impl Into<String>) {
        self.set(name, Value::Str(v.into()));
    }
    fn u32(&mut self, name: &str, v: u64) {
        self.set(name, Value::U32(v));
    }
    fn u64(&mut self, name: &str, v: u64) {
        self.set(name, Value::U64(v));
    }
    fn zeros(&mut self, names: &[&str]) {
        for n in names {
            self.u64(n, 0);
        }
    }
    /// The value of a column, for the stats page and tests.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields[Self::idx(name)].as_ref()
    }
    /// The value of a column as the CSV prints it.
    pub fn text(&self, name: &str) -> String {
        let mut s = String::new();
        if let Some(v) = self.get(name) {
            v.write_plain(&mut s);
        }
        s
    }
}

fn load(c: &std::sync::atomic::AtomicU64) -> u64 {
    c.load(Relaxed)
}

fn mode_name(m: Mode) -> &'static str {
    if m == Mode::Http { "http" } else { "tcp" }
}

/// A server's `status` column.
pub fn server_status(s: &ServerState, checked: bool) -> &'static str {
    match s.admin() {
        AdminState::Maint if s.in_resolution_maint() && s.admin_set() != AdminState::Maint => "MAINT (resolution)",
        AdminState::Maint => "MAINT",
        _ if s.is_agent_down() => "DOWN (agent)",
        _ if !s.is_up() => "DOWN",
        _ if s.is_nolb() => "NOLB",
        AdminState::Drain => "DRAIN",
        AdminState::Ready if !checked => "no check",
        AdminState::Ready => "UP",
    }
}

/// A server's `addr` column: `ip:port`, or the path of a unix socket.
fn addr_text(a: &ServerAddr) -> Option<String> {
    match a {
        ServerAddr::Inet(sa) => Some(sa.to_string()),
        ServerAddr::InetSamePort(ip) => Some(std::net::SocketAddr::new(*ip, 0).to_string()),
        ServerAddr::InetOffset(ip, _) => Some(std::net::SocketAddr::new(*ip, 0).to_string()),
        ServerAddr::Unix(p) => Some(format!("unix@{}", p.display())),
        ServerAddr::Unresolved => None,
    }
}

fn http_counters(r: &mut StatRow, c: &ProxyCounters) {
    for (name, v) in ["hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx", "hrsp_other"].iter().zip(c.responses()) {
        r.u64(name, v);
    }
}

/// `comp_in`, `comp_out`, `comp_rsp` of a frontend or a backend (`comp_byp` stays 0: sluiced
/// has no compression rate limit to bypass the compressor).
fn comp_counters(r: &mut StatRow, c: &ProxyCounters) {
    r.u64("comp_in", c.comp_in());
    r.u64("comp_out", c.comp_out());
    r.u64("comp_rsp", c.comp_rsp());
}

/// The FRONTEND row of a frontend.
pub fn frontend_row(rt: &RouteTable, fe: &Frontend) -> StatRow {
    let c = &fe.counters;
    let http = fe.mode == Mode::Http;
    let mut r = StatRow::new(ObjType::Frontend, fe.id, 0);
    r.s("pxname", fe.name.clone());
    r.s("svname", "FRONTEND");
    r.u32("scur", load(&c.cur_sessions));
    r.u32("smax", load(&c.max_sessions));
    // The limits as `set maxconn frontend|global` left them.
    if let Some(m) = fe.limit.max().or_else(|| rt.limits.maxconn.max()) {
        r.u32("slim", u64::from(m));
    }
    r.u64("stot", c.sessions());
    r.u64("bin", c.bytes_in());
    r.u64("bout", c.bytes_out());
    r.zeros(&["dresp", "comp_byp", "dcon", "dses", "wrew", "eint"]);
    comp_counters(&mut r, c);
    r.u64("dreq", c.denied_requests());
    r.u64("ereq", c.request_errors());
    r.s("status", "OPEN");
    r.u32("pid", 1);
    r.u32("iid", u64::from(fe.id));
    r.u32("sid", 0);
    r.u32("type", 0);
    // New sessions this second, `rate-limit sessions`, and the most in one second so far.
    r.u32("rate", u64::from(fe.sess_rate.current()));
    r.u32("rate_lim", u64::from(fe.sess_rate.limit()));
    r.u32("rate_max", u64::from(fe.sess_rate.max_seen()));
    r.u32("req_rate", 0);
    r.u32("req_rate_max", 0);
    r.u64("req_tot", if http { c.requests() } else { 0 });
    r.s("mode", mode_name(fe.mode));
    r.u32("conn_rate", 0);
    r.u32("conn_rate_max", 0);
    r.u64("conn_tot", c.sessions());
    if http {
        http_counters(&mut r, c);
        r.zeros(&["intercepted", "cache_lookups", "cache_hits"]);
    }
    r.zeros(&["sess_other", "h2sess", "h3sess", "req_other", "h2req", "h3req"]);
    r.u64("h1sess", if http { c.sessions() } else { 0 });
    r.u64("h1req", if http { c.requests() } else { 0 });
    r.zeros(&["reqbin", "reqbout", "resbin", "resbout"]);
    r.s("-", "-");
    for m in &MODULE_COLUMNS[1..] {
        r.u64(m, 0);
    }
    if http {
        r.u64("h1_total_connections", c.sessions());
        r.u64("h1_total_streams", c.requests());
    }
    r
}

/// The row of one server of a backend.
pub fn server_row(be: &Backend, i: usize) -> StatRow {
    let s = &be.state.servers[i];
    let check = be.stats_info.checks.get(i).copied().flatten().or(s.dynamic_check);
    let http = be.mode == Mode::Http;
    let mut r = StatRow::new(ObjType::Server, be.id, s.id);
    r.s("pxname", be.name.clone());
    r.s("svname", s.name.clone());
    r.u32("qcur", u64::from(s.queued.load(Relaxed)));
    r.u32("qmax", 0);
    r.u32("scur", u64::from(s.cur_conns.load(Relaxed)));
    r.u32("smax", 0);
    let maxconn = s.maxconn.load(Relaxed);
    if maxconn > 0 {
        r.u32("slim", u64::from(maxconn));
    }
    r.u64("stot", s.total_conns());
    r.u64("bin", s.bytes_in());
    r.u64("bout", s.bytes_out());
    r.u64("dresp", 0);
    r.u64("econ", s.conn_errors());
    r.u64("eresp", 0);
    r.u64("wretr", s.retries());
    r.u64("wredis", s.redispatches());
    r.s("status", server_status(s, check.is_some()));
    r.u32("weight", u64::from(s.weight()));
    r.u32("act", u64::from(!s.backup));
    r.u32("bck", u64::from(s.backup));
    if s.maxqueue > 0 {
        r.u32("qlimit", u64::from(s.maxqueue));
    }
    r.u32("pid", 1);
    r.u32("iid", u64::from(be.id));
    r.u32("sid", u64::from(s.id));
    r.u64("lbtot", s.total_conns());
    r.u32("type", 2);
    r.u32("rate", 0);
    r.u32("rate_max", 0);
    if let Some((rise, fall)) = check {
        r.u64("chkfail", load(&s.check_fails));
        if let Some(c) = s.last_check.lock().ok().and_then(|l| l.clone()) {
            r.s("check_status", c.status.to_owned());
            if let Some(code) = c.code {
                r.u32("check_code", u64::from(code));
            }
            r.u64("check_duration", c.duration_ms);
            r.s("last_chk", c.desc);
            r.s("check_desc", c.reason.to_owned());
        }
        r.u32("check_rise", u64::from(rise));
        r.u32("check_fall", u64::from(fall));
        r.u32("check_health", if s.is_up() { u64::from(rise + fall - 1) } else { 0 });
    }
    if http {
        r.zeros(&["hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx", "hrsp_other", "req_tot"]);
    }
    r.zeros(&["cli_abrt", "srv_abrt", "qtime", "ctime", "rtime", "ttime", "wrew", "reuse", "srv_icur"]);
    r.set("lastsess", Value::S32(-1));
    if let Some(a) = addr_text(&s.addr()) {
        r.s("addr", a);
    }
    r.s("mode", mode_name(be.mode));
    r.u64("connect", s.total_conns());
    r.zeros(&["qtime_max", "ctime_max", "rtime_max", "ttime_max", "eint", "idle_conn_cur", "safe_conn_cur", "need_conn_est", "priv_idle_cur"]);
    r.u32("used_conn_cur", u64::from(s.cur_conns.load(Relaxed)));
    r.u32("uweight", u64::from(s.weight()));
    r.u32("srid", 0);
    r.u64("reqbin", s.bytes_in());
    r.u64("reqbout", 0);
    r.u64("resbin", 0);
    r.u64("resbout", s.bytes_out());
    r.s("-", "-");
    for m in &MODULE_COLUMNS[1..6] {
        r.u64(m, 0);
    }
    r
}

/// The BACKEND row of a backend.
pub fn backend_row(be: &Backend) -> StatRow {
    let st = &be.state;
    let c = &be.counters;
    let http = be.mode == Mode::Http;
    let servers = &st.servers;
    let sum = |f: &dyn Fn(&ServerState) -> u64| servers.iter().map(|s| f(s)).sum::<u64>();
    let (act, bck) = servers.iter().filter(|s| s.usable()).fold((0u64, 0u64), |(a, b), s| if s.backup { (a, b + 1) } else { (a + 1, b) });
    let weight = sum(&|s| if s.usable() && !s.backup { u64::from(s.weight()) } else { 0 });
    let mut r = StatRow::new(ObjType::Backend, be.id, 0);
    r.s("pxname", be.name.clone());
    r.s("svname", "BACKEND");
    r.u32("qcur", u64::from(st.queued.load(Relaxed)) + sum(&|s| u64::from(s.queued.load(Relaxed))));
    r.u32("qmax", 0);
    r.u32("scur", sum(&|s| u64::from(s.cur_conns.load(Relaxed))));
    r.u32("smax", 0);
    // HAProxy shows a backend's `fullconn` as its limit (set, or its default from the frontends).
    match st.fullconn.load(Relaxed) {
        0 => {}
        f => r.u32("slim", u64::from(f)),
    }
    r.u64("stot", st.total_conns());
    r.u64("bin", sum(&|s| s.bytes_in()));
    r.u64("bout", sum(&|s| s.bytes_out()));
    r.u64("dreq", c.denied_requests());
    r.u64("dresp", 0);
    r.u64("econ", sum(&|s| s.conn_errors()));
    r.u64("eresp", 0);
    r.u64("wretr", sum(&|s| s.retries()));
    r.u64("wredis", sum(&|s| s.redispatches()));
    r.s("status", if act + bck > 0 { "UP" } else { "DOWN" });
    r.u32("weight", weight);
    r.u32("act", act);
    r.u32("bck", bck);
    r.u32("pid", 1);
    r.u32("iid", u64::from(be.id));
    r.u32("sid", 0);
    r.u64("lbtot", st.total_conns());
    r.u32("type", 1);
    r.u32("rate", 0);
    r.u32("rate_max", 0);
    if http {
        http_counters(&mut r, c);
        r.u64("req_tot", c.requests());
        r.zeros(&["cache_lookups", "cache_hits"]);
    }
    r.zeros(&["cli_abrt", "srv_abrt", "comp_byp", "qtime", "ctime", "rtime", "ttime", "wrew", "reuse"]);
    comp_counters(&mut r, c);
    r.set("lastsess", Value::S32(-1));
    r.s("mode", mode_name(be.mode));
    r.s("algo", be.stats_info.algo);
    r.u64("connect", st.total_conns());
    r.zeros(&["qtime_max", "ctime_max", "rtime_max", "ttime_max", "eint"]);
    r.u32("uweight", weight);
    r.zeros(&["agg_server_status", "agg_server_check_status", "agg_check_status"]);
    r.u64("reqbin", sum(&|s| s.bytes_in()));
    r.u64("reqbout", 0);
    r.u64("resbin", 0);
    r.u64("resbout", sum(&|s| s.bytes_out()));
    r.s("-", "-");
    for m in &MODULE_COLUMNS[1..] {
        r.u64(m, 0);
    }
    if http {
        r.u64("h1_total_connections", st.total_conns());
        r.u64("h1_total_streams", c.requests());
    }
    r
}

/// Every row `show stat` prints under `filter`, in HAProxy's order: by proxy id, a proxy's
/// FRONTEND row, then its servers, then its BACKEND row.
pub fn stat_rows(rt: &RouteTable, filter: StatFilter) -> Vec<StatRow> {
    let mut ids: Vec<(u32, &str)> = rt.frontends.iter().map(|f| (f.id, f.name.as_str())).chain(rt.backends.iter().map(|b| (b.id, b.name.as_str()))).collect();
    ids.sort_unstable();
    ids.dedup();
    let types = filter.types.unwrap_or(7);
    let mut rows = Vec::new();
    for (id, name) in ids {
        if filter.iid.is_some_and(|i| i != -1 && i != i64::from(id)) {
            continue;
        }
        if types & 1 != 0
            && let Some(fe) = rt.frontends.iter().find(|f| f.id == id && f.name == name)
        {
            rows.push(frontend_row(rt, fe));
        }
        if let Some(be) = rt.backends.iter().find(|b| b.id == id && b.name == name) {
            if types & 4 != 0 {
                for (i, s) in be.state.servers.indexed() {
                    if filter.sid.is_none_or(|sid| sid == -1 || sid == i64::from(s.id)) {
                        rows.push(server_row(be, i));
                    }
                }
            }
            if types & 2 != 0 {
                rows.push(backend_row(be));
            }
        }
    }
    rows
}

/// The CSV header line, `# pxname,svname,...,` with its newline.
pub fn csv_header() -> String {
    let mut out = String::from("# ");
    for c in STAT_COLUMNS.iter().chain(MODULE_COLUMNS) {
        out.push_str(c);
        out.push(',');
    }
    out.push('\n');
    out
}

fn csv_row(out: &mut String, r: &StatRow) {
    for f in &r.fields {
        if let Some(v) = f {
            v.write_csv(out);
        }
        out.push(',');
    }
    out.push('\n');
}

/// The typed-form tags of a standard column: origin, nature, scope, and the persistence letter.
fn tags(name: &str) -> &'static str {
    match name {
        "pxname" | "svname" => "KNSV",
        "pid" => "KGPV",
        "iid" | "sid" | "srid" => "KGSV",
        "type" => "CGSV",
        "slim" | "rate_lim" | "qlimit" | "check_rise" | "check_fall" | "agent_rise" | "agent_fall" | "src_ilim" => "CLPV",
        "weight" | "uweight" => "MAVP",
        "mode" | "algo" | "addr" | "cookie" | "proto" => "CGSV",
        "status" | "check_status" | "last_chk" | "agent_status" | "last_agt" | "check_desc" | "agent_desc" | "tracked" => "SGPV",
        "lastsess" | "lastchg" => "MAPV",
        n if n.ends_with("_max") || n == "smax" || n == "qmax" => "MMPV",
        n if n.starts_with("q") || n.ends_with("cur") || n == "scur" || n == "act" || n == "bck" || n.ends_with("health") => "MGPV",
        n if n.ends_with("rate") || n == "rate" || n == "throttle" => "MRPP",
        n if n.ends_with("time") || n.ends_with("duration") || n == "downtime" => "MAVP",
        _ => "MCPP",
    }
}

fn tag_words(t: &str) -> (&'static str, &'static str, &'static str) {
    let b = t.as_bytes();
    let origin = match b[0] {
        b'K' => "Key",
        b'C' => "Config",
        b'S' => "Status",
        b'P' => "Product",
        _ => "Metric",
    };
    let nature = match b[1] {
        b'N' => "Name",
        b'L' => "Limit",
        b'M' => "Max",
        b'C' => "Counter",
        b'R' => "Rate",
        b'A' => "Age",
        b'O' => "Output",
        b'D' => "Duration",
        _ => "Gauge",
    };
    let scope = if b[2] == b'S' { "Service" } else { "Process" };
    (origin, nature, scope)
}

/// The non-empty fields of a row with their position and name as the typed and JSON forms number
/// them: the module fields follow the standard ones, `-` being a CSV separator only.
fn typed_fields(r: &StatRow) -> impl Iterator<Item = (usize, &'static str, &Value)> {
    let names = STAT_COLUMNS.iter().chain(MODULE_COLUMNS).copied().filter(|n| *n != "-");
    let values = r.fields.iter().enumerate().filter(|(i, _)| *i != STAT_COLUMNS.len()).map(|(_, v)| v);
    names.zip(values).enumerate().filter_map(|(i, (n, v))| v.as_ref().map(|v| (i, n, v)))
}

/// `show stat`: the CSV header (`# pxname,svname,...`) and one row per frontend, server and
/// backend, or the typed/JSON forms. Ends with an empty line.
pub fn show_stat(rt: &RouteTable, format: Format, filter: StatFilter) -> String {
    let rows = stat_rows(rt, filter);
    let mut out = String::new();
    match format {
        Format::Csv => {
            out.push_str(&csv_header());
            for r in &rows {
                csv_row(&mut out, r);
            }
            out.push('\n');
        }
        Format::Typed => {
            for r in &rows {
                for (i, name, v) in typed_fields(r) {
                    let _ = write!(out, "{}.{}.{}.{i}.{name}.1:{}:{}:", r.objtype.letter(), r.iid, r.sid, tags(name), v.type_name());
                    v.write_plain(&mut out);
                    out.push('\n');
                }
            }
            out.push('\n');
        }
        Format::Json => {
            out.push('[');
            for (ri, r) in rows.iter().enumerate() {
                if ri > 0 {
                    out.push(',');
                }
                out.push('[');
                let mut first = true;
                for (i, name, v) in typed_fields(r) {
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    let (o, n, s) = tag_words(tags(name));
                    let _ = write!(
                        out,
                        "{{\"objType\":\"{}\",\"proxyId\":{},\"id\":{},\"field\":{{\"pos\":{i},\"name\":\"{name}\"}},\"processNum\":1,\"tags\":{{\"origin\":\"{o}\",\"nature\":\"{n}\",\"scope\":\"{s}\"}},\"value\":{{\"type\":\"{}\",\"value\":",
                        r.objtype.json_name(),
                        r.iid,
                        r.sid,
                        v.type_name()
                    );
                    v.write_json(&mut out);
                    out.push_str("}}");
                }
                out.push(']');
            }
            out.push_str("]\n");
        }
    }
    out
}

/// `Uptime` as HAProxy prints it: `0d 0h00m04s`.
pub fn uptime_text(secs: u64) -> String {
    format!("{}d {}h{:02}m{:02}s", secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60)
}

/// The `show info` fields with their values, in order. `Name` is `HAProxy`: HAProxy's tools
/// identify the product by it, and `Version`/`Build info` say that this is sluiced.
pub fn info_values(rt: &RouteTable, info: &ProcessInfo) -> Vec<(&'static str, Value)> {
    let sum_fe = |f: &dyn Fn(&ProxyCounters) -> u64| rt.frontends.iter().map(|fe| f(&fe.counters)).sum::<u64>();
    let cum_conns = sum_fe(&|c| c.sessions());
    let cum_req = sum_fe(&|c| c.requests());
    let curr = info.curr_conns.unwrap_or_else(|| sum_fe(&|c| load(&c.cur_sessions)));
    let limits = &rt.limits;
    let maxconn = u64::from(limits.maxconn.max().unwrap_or(0));
    let hard_maxconn = u64::from(limits.hard_maxconn.unwrap_or(0));
    let listeners = rt.frontends.iter().map(|f| f.binds.len() as u64).sum::<u64>();
    let bytes_out = rt.backends.iter().flat_map(|b| b.state.servers.iter()).map(|s| s.bytes_in()).sum::<u64>();
    let version = version_string();
    INFO_FIELDS
        .iter()
        .map(|&name| {
            let v = match name {
                "Name" => Value::Str("HAProxy".into()),
                "Version" => Value::Str(version.clone()),
                // A free-text field: it also names the I/O backend the workers run, which
                // HAProxy's field list has no place for.
                "Build info" => Value::Str(format!("{version} io-backend={}", crate::runtime::uring::active_name())),
                "Release_date" => Value::Str(RELEASE_DATE.into()),
                "Nbthread" => Value::U32(u64::from(info.nbthread)),
                "Nbproc" | "Process_num" | "NbThreadGroups" => Value::U32(1),
                "Pid" => Value::U32(u64::from(info.pid)),
                "Uptime" => Value::Str(uptime_text(info.uptime_secs)),
                "Uptime_sec" => Value::U32(info.uptime_secs),
                "Ulimit-n" | "Maxsock" => Value::U32(info.ulimit_n),
                "Maxconn" => Value::U32(maxconn),
                "Hard_maxconn" => Value::U32(hard_maxconn),
                "ConnRate" => Value::U32(u64::from(limits.conn_rate.current())),
                "ConnRateLimit" => Value::U32(u64::from(limits.conn_rate.limit())),
                "MaxConnRate" => Value::U32(u64::from(limits.conn_rate.max_seen())),
                "SessRate" => Value::U32(u64::from(limits.sess_rate.current())),
                "SessRateLimit" => Value::U32(u64::from(limits.sess_rate.limit())),
                "MaxSessRate" => Value::U32(u64::from(limits.sess_rate.max_seen())),
                "CurrConns" => Value::U32(curr),
                "CumConns" => Value::U32(cum_conns),
                "CumReq" => Value::U32(cum_req),
                "CumStreams" => Value::U32(cum_req),
                "CurrStreams" => Value::U32(curr),
                "Idle_pct" => Value::U32(100),
                "node" => Value::Str(hostname()),
                "description" => Value::Str(String::new()),
                "Jobs" => Value::U32(curr + listeners),
                "Listeners" => Value::U32(listeners),
                "TotalBytesOut" => Value::U64(bytes_out),
                "Start_time_sec" => Value::U32(info.start_unix_secs),
                _ => Value::U32(0),
            };
            (name, v)
        })
        .collect()
}

pub(crate) fn hostname() -> String {
    crate::log::host_name().to_owned()
}

/// `show info`: `Name: value` lines (typed/JSON forms too). `description` is printed only when
/// set, as HAProxy does.
pub fn show_info(rt: &RouteTable, info: &ProcessInfo, format: Format) -> String {
    let values = info_values(rt, info);
    let mut out = String::new();
    match format {
        Format::Csv => {
            for (name, v) in &values {
                if *name == "description" && *v == Value::Str(String::new()) {
                    continue;
                }
                out.push_str(name);
                out.push_str(": ");
                v.write_plain(&mut out);
                out.push('\n');
            }
        }
        Format::Typed => {
            for (i, (name, v)) in values.iter().enumerate() {
                let tag = if matches!(v, Value::Str(_)) { "POS" } else { "MGP" };
                let _ = write!(out, "{i}.{name}.1:{tag}:{}:", v.type_name());
                v.write_plain(&mut out);
                out.push('\n');
            }
        }
        Format::Json => {
            out.push('[');
            for (i, (name, v)) in values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let (o, n) = if matches!(v, Value::Str(_)) { ("Product", "Output") } else { ("Metric", "Gauge") };
                let _ = write!(
                    out,
                    "{{\"field\":{{\"pos\":{i},\"name\":\"{name}\"}},\"processNum\":1,\"tags\":{{\"origin\":\"{o}\",\"nature\":\"{n}\",\"scope\":\"Process\"}},\"value\":{{\"type\":\"{}\",\"value\":",
                    v.type_name()
                );
                v.write_json(&mut out);
                out.push_str("}}");
            }
            out.push_str("]\n");
        }
    }
    out.push('\n');
    out
}

/// The `#` header line of `show servers state`.
pub const SERVERS_STATE_HEADER: &str = "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port";

/// `show servers state [<backend>]`: the version line `1`, the `#` header, one line per server.
/// `srv_op_state` is 0 (stopped) or 2 (running); `srv_admin_state` 0, or 1 for maintenance and
/// 8 for drain (HAProxy's `SRV_ADMF_FMAINT`/`SRV_ADMF_FDRAIN`). Check status and result are
/// HAProxy's "none"/"unknown" (0/0) for unchecked servers; sluiced keeps no last check result.
pub fn show_servers_state(rt: &RouteTable, backend: Option<&str>) -> String {
    let mut out = String::from("1\n");
    out.push_str(SERVERS_STATE_HEADER);
    out.push('\n');
    let mut bes: Vec<&Backend> = rt.backends.iter().filter(|b| backend.is_none_or(|n| n == b.name || n.parse::<u32>().ok() == Some(b.id))).collect();
    bes.sort_by_key(|b| b.id);
    for be in bes {
        for (i, s) in be.state.servers.indexed() {
            let check = be.stats_info.checks.get(i).copied().flatten().or(s.dynamic_check);
            let (ip, port) = match &**s.addr() {
                ServerAddr::Inet(sa) => (sa.ip().to_string(), sa.port()),
                ServerAddr::InetSamePort(ip) | ServerAddr::InetOffset(ip, _) => (ip.to_string(), 0),
                ServerAddr::Unix(p) => (p.display().to_string(), 0),
                ServerAddr::Unresolved => ("-".to_owned(), 0),
            };
            let op = if s.is_up() { 2 } else { 0 };
            // HAProxy's SRV_ADMF_* bits: FMAINT 0x01, FDRAIN 0x08, RMAINT 0x20.
            let admin = match s.admin_set() {
                AdminState::Ready => 0,
                AdminState::Maint => 1,
                AdminState::Drain => 8,
            } | if s.in_resolution_maint() { 0x20 } else { 0 };
            let (chk_status, chk_result, chk_health, chk_state) = match check {
                Some((rise, fall)) => (if s.is_up() { 15 } else { 8 }, if s.is_up() { 3 } else { 2 }, if s.is_up() { rise + fall - 1 } else { 0 }, 6),
                None => (0, 0, 0, 0),
            };
            let _ = writeln!(
                out,
                "{} {} {} {} {ip} {op} {admin} {} {} 0 {chk_status} {chk_result} {chk_health} {chk_state} 0 0 0 - {port} - 0 0 - - 0",
                be.id,
                be.name,
                s.id,
                s.name,
                s.weight(),
                s.initial_weight,
            );
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLUMNS_TSV: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/haproxy/show_stat_columns.tsv"));
    const INFO_TSV: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/haproxy/show_info_fields.tsv"));
    const SAMPLE_CSV: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/haproxy/sample_show_stat.csv"));
    const SAMPLE_STATE: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/haproxy/sample_show_servers_state.txt"));
    const SAMPLE_INFO: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/haproxy/sample_show_info.txt"));
    const SAMPLE_TYPED: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/haproxy/sample_show_stat_typed_head.txt"));

    fn tsv_names(t: &str) -> Vec<&str> {
        t.lines().filter(|l| !l.is_empty()).map(|l| l.split('\t').nth(1).unwrap()).collect()
    }

    fn table() -> RouteTable {
        RouteTable::compile(&crate::config::testing::ok(
            "global\n  maxconn 9984\ndefaults\n  timeout client 1s\n  timeout server 1s\n  timeout connect 1s\n\
             frontend fe_http\n  mode http\n  bind 127.0.0.1:8080\n  default_backend be_app\n\
             backend be_app\n  mode http\n  server s1 127.0.0.1:28091 check\n  server s2 127.0.0.1:28092 weight 50 check\n\
             listen db_tcp\n  mode tcp\n  bind 127.0.0.1:8081\n  balance leastconn\n  server db1 127.0.0.1:28093 check\n",
        ))
        .unwrap()
    }

    #[test]
    fn csv_header_is_haproxys() {
        let header = csv_header();
        assert_eq!(header.trim_end(), SAMPLE_CSV.lines().next().unwrap());
        let names: Vec<&str> = header.trim_start_matches("# ").trim_end().trim_end_matches(',').split(',').collect();
        assert_eq!(names[..STAT_COLUMNS.len()], tsv_names(COLUMNS_TSV)[..]);
    }

    #[test]
    fn every_row_has_the_header_field_count_and_haproxys_empty_fields() {
        let rt = table();
        let csv = show_stat(&rt, Format::Csv, StatFilter::default());
        assert!(csv.ends_with(",\n\n"));
        let lines: Vec<&str> = csv.lines().filter(|l| !l.is_empty()).collect();
        let n = lines[0].matches(',').count();
        let kinds: Vec<(&str, &str)> = lines[1..].iter().map(|l| (l.split(',').next().unwrap(), l.split(',').nth(1).unwrap())).collect();
        assert_eq!(
            kinds,
            [
                ("fe_http", "FRONTEND"),
                ("be_app", "s1"),
                ("be_app", "s2"),
                ("be_app", "BACKEND"),
                ("db_tcp", "FRONTEND"),
                ("db_tcp", "db1"),
                ("db_tcp", "BACKEND")
            ]
        );
        let sample: Vec<&str> = SAMPLE_CSV.lines().skip(1).filter(|l| !l.is_empty()).collect();
        for (ours, theirs) in lines[1..].iter().zip(&sample) {
            assert_eq!(ours.matches(',').count(), n, "{ours}");
            // The same fields are empty as in HAProxy's row of the same kind, except those HAProxy
            // fills from checks and change times sluiced does not record.
            let unknown = ["chkdown", "lastchg", "downtime", "check_status", "check_duration", "last_chk", "check_desc", "slim", "qlimit"];
            for ((name, a), b) in STAT_COLUMNS.iter().chain(MODULE_COLUMNS).zip(ours.split(',')).zip(theirs.split(',')) {
                if !unknown.contains(name) {
                    assert_eq!(a.is_empty(), b.is_empty(), "{name} in {ours}");
                }
            }
        }
    }

    #[test]
    fn filter_selects_proxy_type_and_server() {
        let rt = table();
        let rows = stat_rows(&rt, StatFilter { iid: Some(i64::from(rt.backends[0].id)), types: Some(4), sid: Some(2) });
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].text("svname"), "s2");
        assert_eq!(stat_rows(&rt, StatFilter { types: Some(1), ..Default::default() }).len(), 2);
    }

    #[test]
    fn statuses_and_typed_form() {
        let rt = table();
        let rows = stat_rows(&rt, StatFilter::default());
        assert_eq!(rows[1].text("status"), "UP");
        assert_eq!(rows[5].text("status"), "UP");
        let s2 = &rt.backends[0].state.servers[1];
        s2.set_admin(AdminState::Drain);
        assert_eq!(stat_rows(&rt, StatFilter::default())[2].text("status"), "DRAIN");
        s2.set_up(false);
        assert_eq!(stat_rows(&rt, StatFilter::default())[2].text("status"), "DOWN");
        rt.backends[0].state.servers[0].set_admin(AdminState::Maint);
        assert_eq!(stat_rows(&rt, StatFilter::default())[1].text("status"), "MAINT");
        let typed = show_stat(&rt, Format::Typed, StatFilter::default());
        assert!(!typed.trim_end().contains("\n\n") && typed.ends_with("\n\n"), "{typed}");
        assert!(typed.contains(".118.ssl_sess.1:"), "{typed}");
        let first = typed.lines().next().unwrap();
        assert!(first.starts_with("F.") && first.ends_with(".0.pxname.1:KNSV:str:fe_http"), "{first}");
        // The tags and types of the sample's fields are HAProxy's.
        for line in SAMPLE_TYPED.lines() {
            let (key, rest) = line.split_once(':').unwrap();
            let name = key.split('.').nth(4).unwrap();
            let tag_type: String = rest.splitn(3, ':').take(2).collect::<Vec<_>>().join(":");
            let ours = typed.lines().find(|l| l.split(':').next().unwrap().split('.').nth(4) == Some(name)).unwrap();
            assert!(ours.contains(&format!(":{tag_type}:")), "{name}: {ours} vs {line}");
        }
        let json = show_stat(&rt, Format::Json, StatFilter::default());
        assert!(json.starts_with("[[{\"objType\":\"Frontend\"") && json.ends_with("]]\n"), "{json}");
    }

    #[test]
    fn show_info_has_haproxys_fields_in_order() {
        let rt = table();
        let info = ProcessInfo { pid: 42, nbthread: 2, start_unix_secs: 1_795_338_729, uptime_secs: 4, ..Default::default() };
        let text = show_info(&rt, &info, Format::Csv);
        let ours: Vec<&str> = text.lines().filter(|l| !l.is_empty()).map(|l| l.split_once(": ").unwrap().0).collect();
        let expected: Vec<&str> = tsv_names(INFO_TSV).into_iter().filter(|n| *n != "description").collect();
        assert_eq!(ours, expected);
        let sample: Vec<&str> = SAMPLE_INFO.lines().filter(|l| !l.is_empty()).map(|l| l.split_once(':').unwrap().0).collect();
        assert_eq!(ours, sample);
        assert!(text.contains("\nUptime: 0d 0h00m04s\n") && text.contains("\nPid: 42\n") && text.contains("\nMaxconn: 9984\n"), "{text}");
        assert!(text.ends_with("\n\n"));
        assert_eq!(show_info(&rt, &info, Format::Typed).lines().next(), Some("0.Name.1:POS:str:HAProxy"));
        let me = ProcessInfo::for_this_process(1, std::time::SystemTime::now() - std::time::Duration::from_secs(3));
        assert_eq!((me.pid, me.uptime_secs), (std::process::id(), 3));
        assert!(me.ulimit_n > 0);
    }

    #[test]
    fn servers_state_has_haproxys_header_and_fields() {
        let rt = table();
        let out = show_servers_state(&rt, None);
        let mut ours = out.lines();
        let mut theirs = SAMPLE_STATE.lines();
        assert_eq!(ours.next(), theirs.next());
        let header = theirs.next().unwrap();
        assert_eq!(ours.next(), Some(header));
        let n = header.split(' ').count() - 1;
        let lines: Vec<&str> = ours.filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), 3);
        for l in &lines {
            assert_eq!(l.split(' ').count(), n, "{l}");
        }
        assert!(lines[1].contains(" be_app 2 s2 127.0.0.1 2 0 50 50 "), "{}", lines[1]);
        assert!(lines[2].ends_with(" 28093 - 0 0 - - 0"), "{}", lines[2]);
        assert_eq!(show_servers_state(&rt, Some("db_tcp")).lines().filter(|l| !l.is_empty()).count(), 3);
    }
}
