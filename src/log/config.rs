//! Configuration of logging: `log`, `log-format`, `option httplog`/`tcplog`, captures, unique ids.
//!
//! JSON or CBOR output is not a keyword: as in HAProxy 3.0+, it is the `%{+json}o` / `%{+cbor}o`
//! global flag written inside a log-format string, which the log-format parser reads.

use std::path::PathBuf;

use crate::config::addr::{AddrKind, AddrRules, Address, PortSpec, Transport, parse_address};
use crate::config::diag::Span;
use crate::config::logformat::{LogFormat, parse_log_format};
use crate::config::model::{Global, Proxy};
use crate::config::registry::{Doc, GlobalKeyword, GlobalParse, KwArgs, ProxyKeyword, ProxyParse, Sections};
use crate::doc;

/// The syslog port used when a log target address gives none.
pub const DEFAULT_SYSLOG_PORT: u16 = 514;
/// The default maximum length of a log line (`len`).
pub const DEFAULT_LOG_LEN: u32 = 1024;

/// Where log lines go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogTarget {
    /// Syslog over UDP: a bare address or `udp@`; the port defaults to 514.
    Udp(Address),
    /// Syslog over a TCP stream: `tcp@`; the port defaults to 514.
    Tcp(Address),
    /// A unix datagram socket: `unix@path` or a path starting with `/` (`/dev/log`).
    Unix(PathBuf),
    /// The process's standard output (`stdout`, same as `fd@1`).
    Stdout,
    /// The process's standard error (`stderr`, same as `fd@2`).
    Stderr,
    /// An inherited file descriptor: `fd@N`.
    Fd(i32),
    /// A `ring` section: `ring@NAME`.
    Ring(String),
}

/// How a log line is framed (`format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogLineFormat {
    /// RFC3164 syslog header (the default).
    #[default]
    Rfc3164,
    /// RFC5424 syslog header, with structured data from `log-format-sd`.
    Rfc5424,
    /// The message only, no header at all.
    Raw,
    /// `<LEVEL>` (severity only) then the message: for systemd/journald.
    Short,
    /// `<PRI>`, an RFC3339 timestamp, then the message.
    Iso,
    /// `<PRI>`, a local-time timestamp, then the message.
    Timed,
    /// `<PRI>`, RFC3164 header without the host name (`local`).
    Local,
    /// `<PRI>` (facility and severity) then the message.
    Priority,
}

impl LogLineFormat {
    pub fn parse(s: &str) -> Result<LogLineFormat, String> {
        Ok(match s {
            "rfc3164" => LogLineFormat::Rfc3164,
            "rfc5424" => LogLineFormat::Rfc5424,
            "raw" => LogLineFormat::Raw,
            "short" => LogLineFormat::Short,
            "iso" => LogLineFormat::Iso,
            "timed" => LogLineFormat::Timed,
            "local" => LogLineFormat::Local,
            "priority" => LogLineFormat::Priority,
            _ => return Err(format!("unknown log format '{s}' (expected rfc3164, rfc5424, raw, short, iso, timed, local or priority)")),
        })
    }
}

/// Syslog facilities, numbered as on the wire (RFC5424 section 6.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Facility {
    Kern = 0,
    User,
    Mail,
    Daemon,
    Auth,
    Syslog,
    Lpr,
    News,
    Uucp,
    Cron,
    Auth2,
    Ftp,
    Ntp,
    Audit,
    Alert,
    Cron2,
    Local0,
    Local1,
    Local2,
    Local3,
    Local4,
    Local5,
    Local6,
    Local7,
}

const FACILITY_NAMES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "auth2", "ftp", "ntp", "audit", "alert", "cron2", "local0", "local1",
    "local2", "local3", "local4", "local5", "local6", "local7",
];

const FACILITIES: [Facility; 24] = [
    Facility::Kern,
    Facility::User,
    Facility::Mail,
    Facility::Daemon,
    Facility::Auth,
    Facility::Syslog,
    Facility::Lpr,
    Facility::News,
    Facility::Uucp,
    Facility::Cron,
    Facility::Auth2,
    Facility::Ftp,
    Facility::Ntp,
    Facility::Audit,
    Facility::Alert,
    Facility::Cron2,
    Facility::Local0,
    Facility::Local1,
    Facility::Local2,
    Facility::Local3,
    Facility::Local4,
    Facility::Local5,
    Facility::Local6,
    Facility::Local7,
];

impl Facility {
    pub fn parse(s: &str) -> Option<Facility> {
        FACILITY_NAMES.iter().position(|n| *n == s).map(|i| FACILITIES[i])
    }
    pub fn name(self) -> &'static str {
        FACILITY_NAMES[self as usize]
    }
}

/// Syslog severities, most severe first, numbered as on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Emerg = 0,
    Alert,
    Crit,
    Err,
    Warning,
    Notice,
    Info,
    Debug,
}

const LEVEL_NAMES: [&str; 8] = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"];
const LEVELS: [Level; 8] = [Level::Emerg, Level::Alert, Level::Crit, Level::Err, Level::Warning, Level::Notice, Level::Info, Level::Debug];

impl Level {
    pub fn parse(s: &str) -> Option<Level> {
        LEVEL_NAMES.iter().position(|n| *n == s).map(|i| LEVELS[i])
    }
    pub fn name(self) -> &'static str {
        LEVEL_NAMES[self as usize]
    }
}

/// `sample <ranges>:<size>`: of every `size` consecutive log lines, only those whose position
/// (1-based) falls in `ranges` go to this target, to spread load over several servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogSampling {
    /// Inclusive, 1-based, each within `1..=size`.
    pub ranges: Vec<(u32, u32)>,
    pub size: u32,
}

/// One `log <target> ...` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logger {
    pub target: LogTarget,
    /// Maximum line length (`len`); longer lines are truncated.
    pub len: u32,
    pub format: LogLineFormat,
    pub sample: Option<LogSampling>,
    pub facility: Facility,
    /// Messages less severe than this are dropped (`level`); `None` sends all.
    pub max_level: Option<Level>,
    /// Messages more severe than this are sent with this level instead (`minlevel`).
    pub min_level: Option<Level>,
    pub span: Span,
}

/// One entry of a proxy's log list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogEntry {
    /// `log global`: the loggers of the `global` section, in place.
    Global(Span),
    Logger(Logger),
}

/// What a proxy logs per stream: set by `option tcplog`, `option httplog`, `option httpslog` or
/// `log-format`; the last one written wins, as in HAProxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogStyle {
    /// `option tcplog`.
    Tcp,
    /// `option httplog`.
    Http,
    /// `option httplog clf`: the Common Log Format.
    HttpClf,
    /// `option httpslog`: httplog plus TLS details.
    Https,
    /// `log-format <fmt>`.
    Custom(LogFormat),
}

/// `capture request header`, `capture response header` and `capture cookie`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderCapture {
    pub name: String,
    /// Bytes kept of the value.
    pub len: u32,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureDir {
    Request,
    Response,
}

/// `declare capture request|response len <n>`: a slot filled by `http-request capture ... id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeclaredCapture {
    pub dir: CaptureDir,
    pub len: u32,
    pub span: Span,
}

/// A proxy's logging configuration. Boolean options are `None` when not set here, so inheritance
/// from `defaults` can tell unset from off.
#[derive(Clone, Debug, Default)]
pub struct ProxyLog {
    /// `log` lines, in order; `no log` empties the list.
    pub loggers: Vec<LogEntry>,
    /// `log-tag`: overrides the global tag for this proxy.
    pub tag: Option<String>,
    pub style: Option<LogStyle>,
    /// `log-format-sd`: RFC5424 structured data.
    pub format_sd: Option<LogFormat>,
    /// `error-log-format`: used for connection errors (TLS handshake failures, ...).
    pub error_format: Option<LogFormat>,
    pub dontlognull: Option<bool>,
    pub dontlog_normal: Option<bool>,
    pub log_separate_errors: Option<bool>,
    pub log_health_checks: Option<bool>,
    /// `option logasap`: log when the response headers are sent, not at the end.
    pub logasap: Option<bool>,
    pub request_headers: Vec<HeaderCapture>,
    pub response_headers: Vec<HeaderCapture>,
    /// `capture cookie <name> len <n>`.
    pub cookie: Option<HeaderCapture>,
    pub declared: Vec<DeclaredCapture>,
    pub unique_id_format: Option<LogFormat>,
    pub unique_id_header: Option<String>,
}

/// The `global` section's logging.
#[derive(Clone, Debug, Default)]
pub struct GlobalLog {
    pub loggers: Vec<Logger>,
    /// `log-tag`; the default is the program name.
    pub tag: Option<String>,
    /// `log-send-hostname`: put a host name in the syslog header.
    pub send_hostname: bool,
    /// The name given to `log-send-hostname`; `None` uses the system's host name.
    pub hostname: Option<String>,
}

/// Parses the words after `log` (not `global`): `<target> [len N] [format F] [sample R:S] <facility> [level [minlevel]]`.
pub fn parse_logger(args: &[crate::config::lex::Word], span: &Span) -> Result<Logger, String> {
    let target_text = args.first().map(|w| w.text.as_str()).ok_or("missing log target")?;
    let target = parse_target(target_text)?;
    let mut len = DEFAULT_LOG_LEN;
    let mut format = LogLineFormat::default();
    let mut sample = None;
    let mut i = 1;
    loop {
        let Some(word) = args.get(i).map(|w| w.text.as_str()) else {
            return Err("missing facility".into());
        };
        let value = || args.get(i + 1).map(|w| w.text.as_str()).ok_or_else(|| format!("'{word}' expects an argument"));
        match word {
            "len" => {
                let v = value()?;
                len = match v.parse::<u32>() {
                    Ok(n) if (80..=65535).contains(&n) => n,
                    _ => return Err(format!("'len' expects a length between 80 and 65535, got '{v}'")),
                };
            }
            "format" => format = LogLineFormat::parse(value()?)?,
            "sample" => sample = Some(parse_sampling(value()?)?),
            _ => break,
        }
        i += 2;
    }
    let fac_text = args[i].text.as_str();
    let facility = Facility::parse(fac_text).ok_or_else(|| format!("unknown log facility '{fac_text}'"))?;
    let level_at = |j: usize| -> Result<Option<Level>, String> {
        match args.get(j) {
            None => Ok(None),
            Some(w) => Level::parse(&w.text).map(Some).ok_or_else(|| format!("unknown log level '{}'", w.text)),
        }
    };
    let max_level = level_at(i + 1)?;
    let min_level = level_at(i + 2)?;
    if let Some(extra) = args.get(i + 3) {
        return Err(format!("unexpected argument '{}'", extra.text));
    }
    Ok(Logger { target, len, format, sample, facility, max_level, min_level, span: span.clone() })
}

fn parse_target(text: &str) -> Result<LogTarget, String> {
    match text {
        "stdout" => return Ok(LogTarget::Stdout),
        "stderr" => return Ok(LogTarget::Stderr),
        _ => {}
    }
    if let Some(name) = text.strip_prefix("ring@") {
        if name.is_empty() {
            return Err(format!("missing ring name in '{text}'"));
        }
        return Ok(LogTarget::Ring(name.to_owned()));
    }
    let addr = parse_address(text, AddrRules { listener: false, server: false })?;
    let with_port = |mut a: Address| {
        if let AddrKind::Inet { port: port @ PortSpec::None, .. } = &mut a.kind {
            *port = PortSpec::Fixed(DEFAULT_SYSLOG_PORT);
        }
        a
    };
    match (&addr.kind, addr.transport) {
        (AddrKind::Unix(p), _) => Ok(LogTarget::Unix(p.clone())),
        (AddrKind::Fd(n), _) => Ok(LogTarget::Fd(*n)),
        (AddrKind::Inet { port: PortSpec::Fixed(0), .. }, _) => Err(format!("port 0 is not a valid log port in '{text}'")),
        (AddrKind::Inet { .. }, Transport::Stream) if text.starts_with("tcp") => Ok(LogTarget::Tcp(with_port(addr))),
        (AddrKind::Inet { .. }, Transport::Stream | Transport::Dgram) => Ok(LogTarget::Udp(with_port(addr))),
        _ => Err(format!("'{text}' is not a supported log target (expected an address, udp@, tcp@, unix@, a path, stdout, stderr, fd@ or ring@)")),
    }
}

fn parse_sampling(text: &str) -> Result<LogSampling, String> {
    let bad = || format!("'sample' expects <ranges>:<size>, got '{text}'");
    let (ranges_s, size_s) = text.rsplit_once(':').ok_or_else(bad)?;
    let size: u32 = size_s.parse().ok().filter(|&n| n > 0).ok_or_else(bad)?;
    let mut ranges = Vec::new();
    for part in ranges_s.split(',') {
        let (lo, hi) = match part.split_once('-') {
            Some((l, h)) => (l.parse::<u32>().map_err(|_| bad())?, h.parse::<u32>().map_err(|_| bad())?),
            None => {
                let n = part.parse::<u32>().map_err(|_| bad())?;
                (n, n)
            }
        };
        if lo == 0 || lo > hi || hi > size {
            return Err(format!("sample range '{part}' must lie within 1-{size}"));
        }
        ranges.push((lo, hi));
    }
    Ok(LogSampling { ranges, size })
}

fn kw(name: &'static str, sections: Sections, parse: ProxyParse, doc: Doc) -> ProxyKeyword {
    ProxyKeyword { name, sections, negatable: false, parse, doc }
}

fn opt(name: &'static str, sections: Sections, parse: ProxyParse, doc: Doc) -> ProxyKeyword {
    ProxyKeyword { name, sections, negatable: true, parse, doc }
}

fn one<'a>(a: &KwArgs<'a>, what: &str) -> Result<&'a str, String> {
    let v = a.need(0, what)?;
    a.at_most(1)?;
    Ok(v)
}

/// A log-format argument: one word, as HAProxy requires (quote it when it has spaces).
fn format_arg(a: &KwArgs<'_>) -> Result<LogFormat, String> {
    let text = a.need(0, "log-format string")?;
    if let Some(w) = a.args().get(1) {
        return Err(format!("unexpected argument '{}'; a format with spaces must be quoted", w.text));
    }
    parse_log_format(text)
}

fn check_tag(tag: &str) -> Result<(), String> {
    if tag.is_empty() {
        return Err("the log tag must not be empty".into());
    }
    Ok(())
}

/// `<len>` of `len <n>` in captures: a positive length.
fn capture_len(a: &KwArgs<'_>, at: usize) -> Result<u32, String> {
    if a.arg(at) != Some("len") {
        return Err("expects 'len <length>'".into());
    }
    let v = a.need(at + 1, "capture length")?;
    a.at_most(at + 2)?;
    match v.parse::<u32>() {
        Ok(n) if n > 0 && n <= i32::MAX as u32 => Ok(n),
        _ => Err(format!("capture length must be a positive integer, got '{v}'")),
    }
}

fn header_capture(a: &KwArgs<'_>) -> Result<HeaderCapture, String> {
    let name = a.need(0, "header name")?;
    let len = capture_len(a, 1)?;
    Ok(HeaderCapture { name: name.to_owned(), len, span: a.span.clone() })
}

/// A minimum level less severe than the level caps nothing; HAProxy accepts it silently.
fn warn_levels(a: &mut KwArgs<'_>, l: &Logger) {
    if let (Some(max), Some(min)) = (l.max_level, l.min_level)
        && min > max
    {
        a.warn(format!("minimum level '{}' is less severe than the level '{}' and has no effect", min.name(), max.name()));
    }
}

fn parse_proxy_log(a: &mut KwArgs<'_>, p: &mut Proxy) -> Result<(), String> {
    if a.negated {
        a.at_most(0)?;
        p.log.loggers.clear();
        return Ok(());
    }
    if a.defaulted {
        return Err("'default log' is not supported; use 'log global' or 'no log'".into());
    }
    if a.arg(0) == Some("global") {
        a.at_most(1)?;
        p.log.loggers.push(LogEntry::Global(a.span.clone()));
        return Ok(());
    }
    let logger = parse_logger(a.args(), a.span)?;
    warn_levels(a, &logger);
    p.log.loggers.push(LogEntry::Logger(logger));
    Ok(())
}

fn parse_global_log(a: &mut KwArgs<'_>, g: &mut Global) -> Result<(), String> {
    if a.negated {
        a.at_most(0)?;
        g.log.loggers.clear();
        return Ok(());
    }
    if a.defaulted {
        return Err("'default log' is not supported".into());
    }
    if a.arg(0) == Some("global") {
        return Err("'log global' is only valid in proxies".into());
    }
    let logger = parse_logger(a.args(), a.span)?;
    warn_levels(a, &logger);
    g.log.loggers.push(logger);
    Ok(())
}

pub fn proxy_keywords() -> Vec<ProxyKeyword> {
    use Sections as S;
    vec![
        opt(
            "log",
            S::ALL,
            parse_proxy_log,
            doc!(
                Parsed,
                "log global | log <target> [len <n>] [format <fmt>] [sample <ranges>:<size>] <facility> [<level> [<minlevel>]] | no log",
                "Sends the proxy's logs to a syslog server, a unix socket, stdout/stderr or a ring; 'log global' uses the global loggers, 'no log' clears the list.",
                "log 127.0.0.1:514 local0 info"
            ),
        ),
        kw(
            "log-tag",
            S::ALL,
            |a, p| {
                let t = one(a, "tag")?;
                check_tag(t)?;
                p.log.tag = Some(t.to_owned());
                Ok(())
            },
            doc!(Parsed, "log-tag <tag>", "Syslog tag of this proxy's logs instead of the global one.", "log-tag web-fe"),
        ),
        kw(
            "log-format",
            S::FE,
            |a, p| {
                p.log.style = Some(LogStyle::Custom(format_arg(a)?));
                Ok(())
            },
            doc!(
                Parsed,
                "log-format <fmt>",
                "Per-stream log line built from %-variables and %[samples]; '%{+json}o' at the start encodes every field as JSON.",
                "log-format \"%ci:%cp [%tr] %ft %b/%s %ST %B\""
            ),
        ),
        kw(
            "log-format-sd",
            S::FE,
            |a, p| {
                p.log.format_sd = Some(format_arg(a)?);
                Ok(())
            },
            doc!(
                Parsed,
                "log-format-sd <fmt>",
                "RFC5424 structured-data element added to each log line (with 'format rfc5424' targets).",
                "log-format-sd \"[exampleSDID@1234 bytes=\\\"%B\\\"]\""
            ),
        ),
        kw(
            "error-log-format",
            S::FE,
            |a, p| {
                p.log.error_format = Some(format_arg(a)?);
                Ok(())
            },
            doc!(
                Parsed,
                "error-log-format <fmt>",
                "Log line for connection-level errors such as failed TLS handshakes.",
                "error-log-format \"%ci:%cp [%tr] %ft %ac/%fc %[fc_err_str]\""
            ),
        ),
        kw(
            "option httplog",
            S::FE,
            |a, p| {
                let style = match a.arg(0) {
                    None => LogStyle::Http,
                    Some("clf") => LogStyle::HttpClf,
                    Some(other) => return Err(format!("unexpected argument '{other}' (expected 'clf')")),
                };
                a.at_most(1)?;
                p.log.style = Some(style);
                Ok(())
            },
            doc!(Parsed, "option httplog [clf]", "Logs each HTTP request in HAProxy's HTTP format, or the Common Log Format with 'clf'.", "option httplog"),
        ),
        kw(
            "option httpslog",
            S::FE,
            |a, p| {
                a.at_most(0)?;
                p.log.style = Some(LogStyle::Https);
                Ok(())
            },
            doc!(Parsed, "option httpslog", "Logs each HTTP request in the HTTP format extended with TLS details.", "option httpslog"),
        ),
        kw(
            "option tcplog",
            S::FE,
            |a, p| {
                a.at_most(0)?;
                p.log.style = Some(LogStyle::Tcp);
                Ok(())
            },
            doc!(Parsed, "option tcplog", "Logs each connection in HAProxy's TCP format.", "option tcplog"),
        ),
        crate::bool_option!("dontlognull", S::FE, log.dontlognull, "Does not log connections that carried no data."),
        crate::bool_option!("dontlog-normal", S::FE, log.dontlog_normal, "Logs only streams that ended with an error or an unusual status."),
        crate::bool_option!("log-separate-errors", S::FE, log.log_separate_errors, "Raises the level of logs of failed streams from info to err."),
        crate::bool_option!("log-health-checks", S::BE, log.log_health_checks, "Logs every health check result change, not only server state changes."),
        crate::bool_option!(
            "logasap",
            S::FE,
            log.logasap,
            "Logs a stream as soon as the response headers are sent (mode http) or the server is connected (mode tcp) instead of at its end; %Ta, %Tt and %B are then the totals so far, shown with a leading '+'."
        ),
        kw(
            "capture request header",
            S::FE_ONLY,
            |a, p| {
                let c = header_capture(a)?;
                p.log.request_headers.push(c);
                Ok(())
            },
            doc!(
                Parsed,
                "capture request header <name> len <n>",
                "Keeps up to <n> bytes of a request header for the log (%hr).",
                "capture request header Host len 64"
            ),
        ),
        kw(
            "capture response header",
            S::FE_ONLY,
            |a, p| {
                let c = header_capture(a)?;
                p.log.response_headers.push(c);
                Ok(())
            },
            doc!(
                Parsed,
                "capture response header <name> len <n>",
                "Keeps up to <n> bytes of a response header for the log (%hs).",
                "capture response header Content-Type len 32"
            ),
        ),
        kw(
            "capture cookie",
            S::FE_ONLY,
            |a, p| {
                let c = header_capture(a)?;
                p.log.cookie = Some(c);
                Ok(())
            },
            doc!(
                Parsed,
                "capture cookie <name> len <n>",
                "Logs the first request cookie (Cookie headers) and the first response cookie (Set-Cookie) whose name starts with <name>, as name=value cut to <n> bytes (at most 63, HAProxy's tune.http.cookielen): %CC and %CS, in option httplog's format too; '-' when there is none. A <name> ending in '=' asks for that exact name. One per frontend.",
                "capture cookie SESSIONID len 32"
            ),
        ),
        kw(
            "declare capture",
            S::FE_ONLY,
            |a, p| {
                let dir = match a.need(0, "'request' or 'response'")? {
                    "request" => CaptureDir::Request,
                    "response" => CaptureDir::Response,
                    other => return Err(format!("expects 'request' or 'response', got '{other}'")),
                };
                let len = capture_len(a, 1)?;
                p.log.declared.push(DeclaredCapture { dir, len, span: a.span.clone() });
                Ok(())
            },
            doc!(
                Parsed,
                "declare capture request|response len <n>",
                "Declares a capture slot that 'http-request capture ... id <n>' rules fill.",
                "declare capture request len 64"
            ),
        ),
        kw(
            "unique-id-format",
            S::ALL,
            |a, p| {
                p.log.unique_id_format = Some(format_arg(a)?);
                Ok(())
            },
            doc!(
                Parsed,
                "unique-id-format <fmt>",
                "Builds a unique identifier per request (%ID, unique-id sample).",
                "unique-id-format %{+X}o\\ %ci:%cp_%fi:%fp_%Ts_%rt:%pid"
            ),
        ),
        kw(
            "unique-id-header",
            S::FE,
            |a, p| {
                p.log.unique_id_header = Some(one(a, "header name")?.to_owned());
                Ok(())
            },
            doc!(Parsed, "unique-id-header <name>", "Adds the unique id to requests sent to servers in this header.", "unique-id-header X-Unique-ID"),
        ),
    ]
}

fn gkw(name: &'static str, negatable: bool, parse: GlobalParse, doc: Doc) -> GlobalKeyword {
    GlobalKeyword { name, negatable, parse, doc }
}

pub fn global_keywords() -> Vec<GlobalKeyword> {
    vec![
        gkw(
            "log",
            true,
            parse_global_log,
            doc!(
                Parsed,
                "log <target> [len <n>] [format <fmt>] [sample <ranges>:<size>] <facility> [<level> [<minlevel>]]",
                "Declares a global logger: process messages go there, and proxies use it with 'log global'.",
                "log /dev/log local0 notice"
            ),
        ),
        gkw(
            "log-tag",
            false,
            |a, g| {
                let t = one(a, "tag")?;
                check_tag(t)?;
                g.log.tag = Some(t.to_owned());
                Ok(())
            },
            doc!(Parsed, "log-tag <tag>", "Syslog tag of every log line (default: the program name).", "log-tag haproxy"),
        ),
        gkw(
            "log-send-hostname",
            false,
            |a, g| {
                a.at_most(1)?;
                g.log.send_hostname = true;
                g.log.hostname = a.arg(0).map(str::to_owned);
                Ok(())
            },
            doc!(
                Parsed,
                "log-send-hostname [<name>]",
                "Puts a host name in the syslog header: <name>, or the system's host name.",
                "log-send-hostname lb1.example.com"
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::addr::Host;
    use crate::config::testing::{load, ok, one_alert};

    fn global_logger(text: &str) -> Logger {
        ok(&format!("global\n    {text}\n")).global.log.loggers.into_iter().next().unwrap()
    }

    #[test]
    fn bare_ipv4_target_is_udp_on_port_514() {
        let l = global_logger("log 127.0.0.1 local0");
        let LogTarget::Udp(a) = &l.target else { panic!("{:?}", l.target) };
        assert_eq!(
            a.kind,
            AddrKind::Inet { family: crate::config::addr::Family::Any, host: Host::Ip("127.0.0.1".parse().unwrap()), port: PortSpec::Fixed(514) }
        );
        assert_eq!(l.facility, Facility::Local0);
        assert_eq!((l.max_level, l.min_level), (None, None));
        assert_eq!((l.len, l.format), (1024, LogLineFormat::Rfc3164));
    }

    #[test]
    fn tcp_target_keeps_its_port() {
        let l = global_logger("log tcp@10.0.0.1:6514 daemon");
        let LogTarget::Tcp(a) = &l.target else { panic!("{:?}", l.target) };
        assert!(matches!(a.kind, AddrKind::Inet { port: PortSpec::Fixed(6514), .. }));
    }

    #[test]
    fn ipv6_and_udp_prefix_targets_are_udp() {
        assert!(matches!(global_logger("log [::1]:1514 local1").target, LogTarget::Udp(_)));
        assert!(matches!(global_logger("log udp@192.0.2.1 local1").target, LogTarget::Udp(_)));
    }

    #[test]
    fn path_and_special_targets() {
        assert_eq!(global_logger("log /dev/log local0").target, LogTarget::Unix("/dev/log".into()));
        assert_eq!(global_logger("log unix@/run/log.sock local0").target, LogTarget::Unix("/run/log.sock".into()));
        assert_eq!(global_logger("log stdout format raw local0").target, LogTarget::Stdout);
        assert_eq!(global_logger("log stderr local0").target, LogTarget::Stderr);
        assert_eq!(global_logger("log fd@3 local0").target, LogTarget::Fd(3));
        assert_eq!(global_logger("log ring@buf1 local0").target, LogTarget::Ring("buf1".into()));
    }

    #[test]
    fn len_format_sample_level_and_minlevel_are_read() {
        let l = global_logger("log 127.0.0.1 len 4096 format rfc5424 sample 1-2,4:4 local7 info notice");
        assert_eq!(l.len, 4096);
        assert_eq!(l.format, LogLineFormat::Rfc5424);
        assert_eq!(l.sample, Some(LogSampling { ranges: vec![(1, 2), (4, 4)], size: 4 }));
        assert_eq!(l.facility, Facility::Local7);
        assert_eq!(l.max_level, Some(Level::Info));
        assert_eq!(l.min_level, Some(Level::Notice));
    }

    #[test]
    fn unknown_facility_is_an_error_on_its_line() {
        let (line, kw, msg) = one_alert("global\n    log 127.0.0.1 local9\n");
        assert_eq!((line, kw.as_str()), (2, "log"));
        assert!(msg.contains("unknown log facility 'local9'"), "{msg}");
    }

    #[test]
    fn missing_facility_is_an_error() {
        let (_, _, msg) = one_alert("global\n    log 127.0.0.1 len 2000\n");
        assert!(msg.contains("missing facility"), "{msg}");
    }

    #[test]
    fn len_out_of_range_is_an_error() {
        let (_, _, msg) = one_alert("global\n    log 127.0.0.1 len 10 local0\n");
        assert!(msg.contains("between 80 and 65535"), "{msg}");
    }

    #[test]
    fn sample_range_beyond_size_is_an_error() {
        let (_, _, msg) = one_alert("global\n    log 127.0.0.1 sample 3-5:4 local0\n");
        assert!(msg.contains("within 1-4"), "{msg}");
    }

    #[test]
    fn unknown_level_and_extra_words_are_errors() {
        assert!(one_alert("global\n    log 127.0.0.1 local0 loud\n").2.contains("unknown log level 'loud'"));
        assert!(one_alert("global\n    log 127.0.0.1 local0 info err extra\n").2.contains("unexpected argument 'extra'"));
    }

    #[test]
    fn minlevel_less_severe_than_level_is_a_warning() {
        assert_eq!(global_logger("log 127.0.0.1 local0 info err").min_level, Some(Level::Err));
        let l = load("global\n    log 127.0.0.1 local0 err info\n");
        assert!(l.config.is_some());
        assert!(l.diags.warnings().any(|d| d.msg.contains("less severe")));
    }

    #[test]
    fn log_global_in_global_section_is_an_error() {
        let (line, _, msg) = one_alert("global\n    log global\n");
        assert_eq!(line, 2);
        assert!(msg.contains("only valid in proxies"), "{msg}");
    }

    #[test]
    fn proxy_log_global_and_no_log() {
        let cfg = ok("defaults\n    log global\nfrontend fe\n    bind :80\n    log 10.0.0.1 local1\nbackend be\n    no log\n");
        let fe = cfg.proxy("fe").unwrap();
        assert_eq!(fe.log.loggers.len(), 2, "inherits 'log global' and adds its own");
        assert!(matches!(fe.log.loggers[0], LogEntry::Global(_)));
        assert!(cfg.proxy("be").unwrap().log.loggers.is_empty());
    }

    #[test]
    fn log_tag_and_send_hostname_in_global() {
        let g = ok("global\n    log-tag haproxy\n    log-send-hostname lb1\n").global.log;
        assert_eq!(g.tag.as_deref(), Some("haproxy"));
        assert!(g.send_hostname);
        assert_eq!(g.hostname.as_deref(), Some("lb1"));
        let g = ok("global\n    log-send-hostname\n").global.log;
        assert!(g.send_hostname && g.hostname.is_none());
    }

    #[test]
    fn last_log_style_wins() {
        let cfg = ok("frontend fe\n    bind :80\n    option tcplog\n    option httplog clf\n");
        assert_eq!(cfg.proxy("fe").unwrap().log.style, Some(LogStyle::HttpClf));
        let cfg = ok("frontend fe\n    bind :80\n    option httplog\n    log-format \"%ci %ST\"\n");
        assert!(matches!(cfg.proxy("fe").unwrap().log.style, Some(LogStyle::Custom(_))));
        let cfg = ok("frontend fe\n    bind :80\n    option httpslog\n");
        assert_eq!(cfg.proxy("fe").unwrap().log.style, Some(LogStyle::Https));
    }

    #[test]
    fn httplog_rejects_unknown_argument() {
        let (line, kw, msg) = one_alert("frontend fe\n    bind :80\n    option httplog json\n");
        assert_eq!((line, kw.as_str()), (3, "option httplog"));
        assert!(msg.contains("'json'"), "{msg}");
    }

    #[test]
    fn unquoted_log_format_with_spaces_is_an_error() {
        let (_, kw, msg) = one_alert("frontend fe\n    bind :80\n    log-format %ci %ST\n");
        assert_eq!(kw, "log-format");
        assert!(msg.contains("must be quoted"), "{msg}");
    }

    #[test]
    fn boolean_log_options_can_be_negated() {
        let cfg = ok(
            "defaults\n    option dontlognull\n    option log-separate-errors\nfrontend fe\n    bind :80\n    no option dontlognull\n    option dontlog-normal\n",
        );
        let l = &cfg.proxy("fe").unwrap().log;
        assert_eq!((l.dontlognull, l.log_separate_errors, l.dontlog_normal), (Some(false), Some(true), Some(true)));
    }

    #[test]
    fn log_health_checks_is_not_allowed_in_a_frontend() {
        let (line, kw, _) = one_alert("frontend fe\n    bind :80\n    option log-health-checks\n");
        assert_eq!((line, kw.as_str()), (3, "option log-health-checks"));
    }

    #[test]
    fn captures_are_recorded() {
        let cfg = ok(
            "frontend fe\n    bind :80\n    capture request header Host len 64\n    capture response header Server len 20\n    capture cookie SID len 32\n    declare capture response len 10\n",
        );
        let l = &cfg.proxy("fe").unwrap().log;
        assert_eq!((l.request_headers[0].name.as_str(), l.request_headers[0].len), ("Host", 64));
        assert_eq!(l.response_headers[0].len, 20);
        assert_eq!(l.cookie.as_ref().map(|c| c.len), Some(32));
        assert_eq!((l.declared[0].dir, l.declared[0].len), (CaptureDir::Response, 10));
    }

    #[test]
    fn capture_needs_len() {
        let (_, kw, msg) = one_alert("frontend fe\n    bind :80\n    capture request header Host 64\n");
        assert_eq!(kw, "capture request header");
        assert!(msg.contains("len"), "{msg}");
        assert!(one_alert("frontend fe\n    bind :80\n    capture request header Host len 0\n").2.contains("positive"));
    }

    #[test]
    fn capture_is_not_allowed_in_defaults() {
        let (_, kw, msg) = one_alert("defaults\n    capture request header Host len 64\n");
        assert_eq!(kw, "capture request header");
        assert!(msg.contains("not allowed"), "{msg}");
    }

    #[test]
    fn unique_id_format_and_header() {
        let cfg = ok("frontend fe\n    bind :80\n    unique-id-format %{+X}o%ci\n    unique-id-header X-Req-ID\n");
        let l = &cfg.proxy("fe").unwrap().log;
        assert!(l.unique_id_format.is_some());
        assert_eq!(l.unique_id_header.as_deref(), Some("X-Req-ID"));
    }

    #[test]
    fn global_keyword_examples_parse() {
        for k in global_keywords() {
            let l = load(&format!("global\n    {}\n", k.doc.example));
            assert!(l.config.is_some(), "example of '{}' rejected: {:?}", k.name, l.diags.items);
        }
    }
}
