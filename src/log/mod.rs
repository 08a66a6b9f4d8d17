//! Logging: syslog and stdout sinks ([`sink`]), the per-stream record sessions fill
//! ([`record::LogRecord`]), log-format evaluation against it ([`format`]), and the backend events
//! health checks report ([`backend_event`]).
//!
//! Nothing here blocks a worker: a line is formatted on the worker and sent with a non-blocking
//! datagram `send`; a full socket buffer drops the line and counts it in [`DROPPED`]. Standard
//! output and error go through a bounded channel to one writer thread, with the same rule.
pub mod config;
pub mod format;
pub mod record;
pub mod sink;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use config::{Facility, Level, LogEntry, LogLineFormat, LogStyle, Logger};

/// Log lines dropped because a sink could not take them at once (full socket buffer, full
/// stdout queue, unreachable target). Read by the stats output.
pub static DROPPED: AtomicU64 = AtomicU64::new(0);
/// `-q` or `-D` on the command line: backend events are not echoed to stderr.
pub static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// Log lines handed to a sink.
pub static SENT: AtomicU64 = AtomicU64::new(0);

/// One log target, ready to send.
#[derive(Debug)]
pub struct CompiledLogger {
    pub sink: Arc<sink::Sink>,
    pub len: usize,
    pub format: LogLineFormat,
    pub facility: Facility,
    pub max_level: Option<Level>,
    pub min_level: Option<Level>,
}

/// Where and how a proxy logs, compiled. A proxy without `log` lines has none: its sessions fill
/// no record.
#[derive(Debug)]
pub struct LogRt {
    pub loggers: Vec<CompiledLogger>,
    /// `log-tag`, or the global one, or the program name.
    pub tag: String,
    /// `log-send-hostname`: the host name put in the header.
    pub hostname: Option<String>,
    /// The access-log format (`option httplog`, `option tcplog`, `log-format`, or the default).
    pub format: format::LogLf,
    pub dontlognull: bool,
    pub separate_errors: bool,
    pub dontlog_normal: bool,
    /// `unique-id-format`.
    pub unique_id: Option<format::LogLf>,
    /// `unique-id-header`.
    pub unique_id_header: Option<String>,
    /// No `option httplog`/`tcplog`/`log-format`: HAProxy's old default format, one `Connect
    /// from` line at accept time instead of a line at the end; the mode (`HTTP`, `TCP`) it names.
    pub connect_mode: Option<&'static str>,
    /// `option logasap`: the line goes out once the server is connected (TCP) or its response
    /// head is sent on (HTTP), with `+` before the totals not final yet.
    pub logasap: bool,
}

/// The format `%`-variables see for a proxy without `option httplog`/`tcplog`/`log-format`
/// (whose line is [`LogRt::log_connect`]'s).
pub const DEFAULT_LOG_FORMAT: &str = "%ci:%cp [%t] %ft %b/%s";

/// The program name, HAProxy's default tag.
fn program_name() -> String {
    std::env::args().next().and_then(|a| std::path::Path::new(&a).file_name().map(|f| f.to_string_lossy().into_owned())).unwrap_or_else(|| "sluiced".into())
}

/// The machine's host name, read once: a chroot (see [`crate::runtime::identity`]) hides
/// `/proc`, and HAProxy too reads it once at start.
pub(crate) fn host_name() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_owned()).unwrap_or_else(|_| "localhost".into()))
}

impl LogRt {
    /// Compiles the logging of proxy `p`; `None` when it has no log target. Warnings (targets not
    /// supported yet) go to `warn`.
    pub fn compile(p: &crate::config::model::Proxy, g: &config::GlobalLog, warn: &mut dyn FnMut(String)) -> Result<Option<Arc<LogRt>>, String> {
        let mut loggers = Vec::new();
        for e in &p.log.loggers {
            match e {
                LogEntry::Global(_) => {
                    for l in &g.loggers {
                        loggers.push(compile_logger(l, warn));
                    }
                }
                LogEntry::Logger(l) => loggers.push(compile_logger(l, warn)),
            }
        }
        let loggers: Vec<CompiledLogger> = loggers.into_iter().flatten().collect();
        // A unique id is computed (for `unique-id-header`) even when nothing is logged.
        if loggers.is_empty() && p.log.unique_id_format.is_none() {
            return Ok(None);
        }
        let http = p.mode == crate::config::model::Mode::Http;
        let style = match &p.log.style {
            // HAProxy turns `option httplog` in a TCP proxy into `option tcplog`, with a warning.
            Some(LogStyle::Http | LogStyle::HttpClf | LogStyle::Https) if !http => {
                if p.kind.has_frontend() {
                    warn(format!("proxy '{}': 'option httplog' in mode tcp: logging in the tcplog format", p.name));
                }
                Some(&LogStyle::Tcp)
            }
            s => s.as_ref(),
        };
        let text = match style {
            Some(LogStyle::Tcp) => crate::config::logformat::TCP_LOG_FORMAT,
            Some(LogStyle::Http) => crate::config::logformat::HTTP_LOG_FORMAT,
            Some(LogStyle::HttpClf) => crate::config::logformat::CLF_HTTP_LOG_FORMAT,
            Some(LogStyle::Https) => crate::config::logformat::HTTPS_LOG_FORMAT,
            Some(LogStyle::Custom(_)) => "",
            None => DEFAULT_LOG_FORMAT,
        };
        let lf = match style {
            Some(LogStyle::Custom(lf)) => lf.clone(),
            _ => crate::config::logformat::parse_log_format(text)?,
        };
        let hostname = g.send_hostname.then(|| g.hostname.clone().unwrap_or_else(|| host_name().to_owned()));
        Ok(Some(Arc::new(LogRt {
            loggers,
            tag: p.log.tag.clone().or_else(|| g.tag.clone()).unwrap_or_else(program_name),
            hostname,
            format: format::LogLf::compile(&lf)?,
            dontlognull: p.log.dontlognull.unwrap_or(false),
            separate_errors: p.log.log_separate_errors.unwrap_or(false),
            dontlog_normal: p.log.dontlog_normal.unwrap_or(false),
            unique_id: p.log.unique_id_format.as_ref().map(format::LogLf::compile).transpose()?,
            unique_id_header: p.log.unique_id_header.clone(),
            connect_mode: style.is_none().then_some(if http { "HTTP" } else { "TCP" }),
            logasap: p.log.logasap.unwrap_or(false),
        })))
    }

    /// Sends `msg` at `level` to every logger of this proxy that takes it.
    pub fn send(&self, level: Level, msg: &str) {
        let mut buf = Vec::with_capacity(msg.len() + 64);
        let now = std::time::SystemTime::now();
        for l in &self.loggers {
            if l.max_level.is_some_and(|max| level > max) {
                continue;
            }
            let level = match l.min_level {
                Some(min) if level < min => min,
                _ => level,
            };
            buf.clear();
            sink::frame(&mut buf, l.format, l.facility, level, now, self.hostname.as_deref(), &self.tag, std::process::id(), msg, l.len);
            l.sink.send(&buf);
        }
    }
}

fn compile_logger(l: &Logger, warn: &mut dyn FnMut(String)) -> Option<CompiledLogger> {
    let sink = match sink::Sink::open(&l.target) {
        Ok(s) => s,
        Err(e) => {
            warn(format!("{}: log target not used: {e}", l.span));
            return None;
        }
    };
    Some(CompiledLogger { sink, len: l.len as usize, format: l.format, facility: l.facility, max_level: l.max_level, min_level: l.min_level })
}

impl LogRt {
    /// Whether [`Self::log_connect`] writes anything (the default format with a logger).
    pub fn logs_connect(&self) -> bool {
        self.connect_mode.is_some() && !self.loggers.is_empty()
    }

    /// HAProxy's line for a connection that ended before it became a session (a failed TLS
    /// handshake): `<ip>:<port> [<accept date>] <frontend>/<bind>: <message>`. Not logged with
    /// `option dontlognull`.
    pub fn log_embryonic(&self, client: Option<std::net::SocketAddr>, accepted: std::time::SystemTime, frontend: &str, bind: &str, msg: &str) {
        if self.loggers.is_empty() || self.dontlognull {
            return;
        }
        let mut date = String::new();
        format::date_ms(&mut date, accepted);
        let addr = client.map_or("-:-".to_owned(), |a| format!("{}:{}", a.ip(), a.port()));
        let level = if self.separate_errors { Level::Err } else { Level::Info };
        self.send(level, &format!("{addr} [{date}] {frontend}/{bind}: {msg}"));
    }

    /// HAProxy's default format, logged at accept when no other is set:
    /// `Connect from 10.0.1.2:33312 to 10.0.3.31:8012 (www/HTTP)`.
    pub fn log_connect(&self, frontend: &str, client: Option<std::net::SocketAddr>, local: Option<std::net::SocketAddr>) {
        let Some(mode) = self.connect_mode else { return };
        if self.loggers.is_empty() {
            return;
        }
        let addr = |a: Option<std::net::SocketAddr>| a.map_or("-:-".to_owned(), |a| format!("{}:{}", a.ip(), a.port()));
        self.send(Level::Info, &format!("Connect from {} to {} ({frontend}/{mode})", addr(client), addr(local)));
    }
}

/// Reports an event of backend `backend` (a server going up or down, `backend X has no server
/// available!`) at `level`: to the backend's log targets and, as HAProxy does when not in daemon
/// mode (`daemon`, `-D`) nor quiet (`-q`), to stderr as a `[WARNING]`/`[ALERT]` line.
pub fn backend_event(rt: &crate::route::RouteTable, backend: usize, level: config::Level, msg: &str) {
    proxy_event(rt, rt.backends.get(backend).and_then(|b| b.log.as_deref()), level, msg);
}

/// Reports an event of frontend `frontend` (a listener out of descriptors) as
/// [`backend_event`] does for backends.
pub fn frontend_event(rt: &crate::route::RouteTable, frontend: usize, level: config::Level, msg: &str) {
    proxy_event(rt, rt.frontends.get(frontend).and_then(|f| f.log.as_deref()), level, msg);
}

fn proxy_event(rt: &crate::route::RouteTable, log: Option<&LogRt>, level: config::Level, msg: &str) {
    if let Some(log) = log {
        log.send(level, msg);
    }
    if !rt.process.daemon && !QUIET.load(Ordering::Relaxed) {
        let tag = if matches!(level, config::Level::Emerg | config::Level::Alert | config::Level::Crit) { "ALERT" } else { "WARNING" };
        eprintln!("[{tag}]    ({}) : {msg}", std::process::id());
    }
}

/// Counts a line a sink could not take.
pub(crate) fn dropped() {
    DROPPED.fetch_add(1, Ordering::Relaxed);
}

impl LogRt {
    /// Logs the end of a stream or HTTP transaction: skips what `option dontlognull` and
    /// `option dontlog-normal` leave out, and logs errors at `err` with `option
    /// log-separate-errors` (`info` otherwise).
    pub fn emit(&self, rec: &record::LogRecord, ctx: Option<&dyn crate::route::eval::StreamCtx>) {
        if rec.logged || self.loggers.is_empty() || self.connect_mode.is_some() || (self.dontlognull && rec.is_null()) {
            return;
        }
        let err = rec.is_error();
        if self.dontlog_normal && !err {
            return;
        }
        let level = match rec.level.map(crate::l4::action::LogLevel::syslog) {
            None if err && self.separate_errors => Level::Err,
            None => Level::Info,
            // `set-log-level silent`.
            Some(None) => return,
            Some(Some(l)) => l,
        };
        let mut line = String::with_capacity(256);
        self.format.eval(rec, ctx, &mut line);
        self.send(level, &line);
    }

    /// `option logasap`: logs `rec` now, its total time (`%Ta`, `%Tt`) and bytes (`%B`) marked
    /// with `+` as not final; the line at the end is then not sent.
    pub fn emit_early(&self, rec: &mut record::LogRecord, ctx: Option<&dyn crate::route::eval::StreamCtx>) {
        rec.early = true;
        self.emit(rec, ctx);
        rec.early = false;
        rec.logged = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    fn table(text: &str) -> crate::route::RouteTable {
        crate::route::RouteTable::compile(&crate::config::testing::ok(text)).unwrap()
    }

    fn recv(s: &UdpSocket) -> Option<String> {
        let mut buf = [0u8; 2048];
        s.recv(&mut buf).ok().map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    #[test]
    fn backend_events_reach_the_backends_loggers_with_level_filters() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_millis(500))).unwrap();
        let port = rx.local_addr().unwrap().port();
        let rt = table(&format!(
            "global\n  log 127.0.0.1:{port} local0 notice\n  log-tag haproxy\n  daemon\ndefaults\n  mode tcp\n  log global\nbackend be1\n  server srv1 127.0.0.1:1\nbackend quiet\n  no log\n  server s 127.0.0.1:1\n"
        ));
        backend_event(&rt, 0, Level::Alert, "backend be1 has no server available!");
        let l = recv(&rx).unwrap();
        assert!(l.starts_with("<129>"), "{l}");
        assert!(l.ends_with(&format!(" haproxy[{}]: backend be1 has no server available!\n", std::process::id())), "{l}");
        // `info` is less severe than the target's `notice`: filtered out.
        backend_event(&rt, 0, Level::Info, "dropped");
        // A backend with `no log` sends nothing.
        backend_event(&rt, 1, Level::Alert, "nothing");
        assert_eq!(recv(&rx), None);
    }

    #[test]
    fn minlevel_clamps_and_len_cuts() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_millis(500))).unwrap();
        let port = rx.local_addr().unwrap().port();
        let rt = table(&format!(
            "global\n  daemon\nbackend be1\n  mode tcp\n  log 127.0.0.1:{port} len 80 format raw local0 debug warning\n  server srv1 127.0.0.1:1\n"
        ));
        let log = rt.backends[0].log.as_ref().unwrap();
        log.send(Level::Emerg, &"y".repeat(100));
        assert_eq!(recv(&rx).unwrap().len(), 80);
    }
}
