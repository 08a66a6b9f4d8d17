//! Evaluation of a log-format against a [`LogRecord`]: every `%`-variable of HAProxy's section
//! 8.2.6 that sluiced knows, `%[sample]` expressions, and the `+Q`, `+X`, `+E` flags.
//!
//! JSON: as in HAProxy 3.0, `%{+json}o` switches the whole line to an encoding. Literal text is
//! then dropped and the line is one JSON object whose keys are the variable names (`ci`, `ST`, ...)
//! or, for a sample, its expression text; numbers stay numbers, the rest are JSON strings, and an
//! absent value is `null`. (HAProxy names items with `%(name)`, which the parser does not read
//! yet.)

use std::fmt::Write;

use super::record::LogRecord;
use crate::config::logformat::{FlagKind, LogFormat, LogItem};
use crate::route::eval::{CompiledSample, Sample, StreamCtx};

#[derive(Debug)]
enum Part {
    Text(String),
    Var(&'static str),
    Sample(CompiledSample, String),
}

#[derive(Clone, Copy, Debug, Default)]
struct Flags {
    quote: bool,
    hex: bool,
    escape: bool,
}

/// A log-format compiled for logging.
#[derive(Debug)]
pub struct LogLf {
    parts: Vec<(Part, Flags)>,
    json: bool,
}

/// A value before encoding.
enum Val<'a> {
    None,
    /// Nothing at all, and the separator after it collapses (`%hr` without captures).
    Empty,
    Int(i64),
    Str(std::borrow::Cow<'a, str>),
}

impl LogLf {
    pub fn compile(lf: &LogFormat) -> Result<LogLf, String> {
        let mut global = Flags::default();
        let mut json = false;
        let mut parts = Vec::new();
        let apply = |mut f: Flags, flags: &[crate::config::logformat::Flag], json: &mut bool| {
            for fl in flags {
                match fl.kind {
                    FlagKind::Quote => f.quote = fl.on,
                    FlagKind::Hex => f.hex = fl.on,
                    FlagKind::Escape => f.escape = fl.on,
                    FlagKind::Json => *json = fl.on,
                    FlagKind::Cbor | FlagKind::Bin => {}
                }
            }
            f
        };
        for it in &lf.items {
            match it {
                LogItem::Text(t) => parts.push((Part::Text(t.clone()), global)),
                LogItem::Var { flags, name: "o" } => global = apply(global, flags, &mut json),
                LogItem::Var { flags, name } => {
                    let f = apply(global, flags, &mut json);
                    parts.push((Part::Var(name), f));
                }
                LogItem::Sample { flags, expr } => {
                    let f = apply(global, flags, &mut json);
                    parts.push((Part::Sample(CompiledSample::compile(expr)?, expr_text(&lf.text, expr)), f));
                }
            }
        }
        Ok(LogLf { parts, json })
    }

    /// Whether the format reads `%ID` (the unique id must then be computed).
    pub fn uses(&self, var: &str) -> bool {
        self.parts.iter().any(|(p, _)| matches!(p, Part::Var(v) if *v == var))
    }

    /// Appends the line for `rec` to `out`. Samples are evaluated against `ctx` when given.
    pub fn eval(&self, rec: &LogRecord, ctx: Option<&dyn StreamCtx>, out: &mut String) {
        if self.json {
            out.push('{');
        }
        let mut first = true;
        for (p, f) in &self.parts {
            let (key, val) = match p {
                Part::Text(t) => {
                    if !self.json {
                        // As in HAProxy, spaces are separators: an item that wrote nothing does
                        // not leave two of them in a row.
                        let t = if out.ends_with(' ') { t.trim_start_matches(' ') } else { t };
                        out.push_str(t);
                    }
                    continue;
                }
                Part::Var(v) => (*v, var(rec, v)),
                Part::Sample(s, text) => {
                    let v = match ctx.map(|c| s.eval(c)) {
                        Some(Ok(Some(v))) => match v {
                            Sample::Bool(b) => Val::Int(i64::from(b)),
                            Sample::Int(i) => Val::Int(i),
                            Sample::Ip(ip) => Val::Str(ip.to_string().into()),
                            Sample::Str(s) => Val::Str(s.into()),
                            Sample::Bin(b) => Val::Str(String::from_utf8_lossy(&b).into_owned().into()),
                        },
                        _ => Val::None,
                    };
                    (text.as_str(), v)
                }
            };
            if self.json {
                if !first {
                    out.push_str(", ");
                }
                first = false;
                json_str(out, key);
                out.push_str(": ");
                match val {
                    Val::None | Val::Empty => out.push_str("null"),
                    Val::Int(i) => {
                        let _ = write!(out, "{i}");
                    }
                    Val::Str(s) => json_str(out, &s),
                }
                continue;
            }
            match val {
                Val::Empty => {}
                Val::None => out.push_str(if f.quote { "\"\"" } else { "-" }),
                // HAProxy's `+X`: ports as two bytes (`%02X%02X`), `%Ts` and `%pid` as `%04X`.
                Val::Int(i) if f.hex => {
                    let _ = write!(out, "{:04X}", i);
                }
                Val::Int(i) => {
                    let _ = write!(out, "{i}");
                }
                Val::Str(s) if f.hex && s.parse::<std::net::IpAddr>().is_ok() => match s.parse::<std::net::IpAddr>() {
                    Ok(std::net::IpAddr::V4(ip)) => {
                        let _ = write!(out, "{:08X}", u32::from(ip));
                    }
                    Ok(std::net::IpAddr::V6(ip)) => {
                        let _ = write!(out, "{:032X}", u128::from(ip));
                    }
                    Err(_) => {}
                },
                Val::Str(s) => {
                    if f.quote {
                        out.push('"');
                    }
                    if f.escape {
                        for c in s.chars() {
                            if matches!(c, '"' | '\\' | ']') {
                                out.push('\\');
                            }
                            out.push(c);
                        }
                    } else {
                        out.push_str(&s);
                    }
                    if f.quote {
                        out.push('"');
                    }
                }
            }
        }
        if self.json {
            out.push('}');
        }
    }
}

/// The text of a sample expression as written, for its JSON key.
fn expr_text(_format: &str, expr: &crate::config::expr::SampleExpr) -> String {
    expr.fetch.name.clone()
}

fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The local date with milliseconds, as `%tr` prints it (`22/Nov/2026:16:10:00.123`).
pub(crate) fn date_ms(out: &mut String, t: std::time::SystemTime) {
    date(out, t, false, true);
}

fn date(out: &mut String, t: std::time::SystemTime, gmt: bool, ms: bool) {
    let tm = super::sink::Tm::from(t);
    let _ = write!(out, "{:02}/{}/{:04}:{:02}:{:02}:{:02}", tm.day, tm.month_name(), tm.year, tm.hour, tm.min, tm.sec);
    if ms {
        let _ = write!(out, ".{:03}", tm.micros / 1000);
    }
    if gmt {
        out.push_str(" +0000");
    }
}

fn captures(list: &[Option<String>], clf: bool) -> Val<'static> {
    if list.is_empty() {
        return Val::Empty;
    }
    let mut s = String::new();
    if clf {
        for (i, v) in list.iter().enumerate() {
            if i > 0 {
                s.push(' ');
            }
            let _ = write!(s, "\"{}\"", v.as_deref().unwrap_or("-"));
        }
    } else {
        s.push('{');
        for (i, v) in list.iter().enumerate() {
            if i > 0 {
                s.push('|');
            }
            s.push_str(v.as_deref().unwrap_or(""));
        }
        s.push('}');
    }
    Val::Str(s.into())
}

fn addr_ip(a: Option<std::net::SocketAddr>) -> Val<'static> {
    a.map_or(Val::None, |a| Val::Str(a.ip().to_string().into()))
}

fn addr_port(a: Option<std::net::SocketAddr>) -> Val<'static> {
    a.map_or(Val::None, |a| Val::Int(i64::from(a.port())))
}

/// The request line's parts: method, URI, version.
fn request_parts(rec: &LogRecord) -> Option<(&str, &str, &str)> {
    let line = rec.request_line.as_deref()?;
    let mut it = line.splitn(3, ' ');
    Some((it.next()?, it.next().unwrap_or(""), it.next().unwrap_or("")))
}

fn var<'a>(rec: &'a LogRecord, v: &str) -> Val<'a> {
    let s = |x: &'a str| Val::Str(x.into());
    let owned = |x: String| Val::Str(x.into());
    match v {
        "ci" => addr_ip(rec.client),
        "cp" => addr_port(rec.client),
        "fi" => addr_ip(rec.frontend_addr),
        "fp" => addr_port(rec.frontend_addr),
        "bi" => addr_ip(rec.backend_src),
        "bp" => addr_port(rec.backend_src),
        "si" => addr_ip(rec.server_addr),
        "sp" => addr_port(rec.server_addr),
        "f" => s(&rec.frontend),
        // HAProxy marks a TLS frontend's name with `~`.
        "ft" if rec.tls.is_some() => owned(format!("{}~", rec.frontend)),
        "ft" => s(&rec.frontend),
        "sslv" => rec.tls.map_or(Val::None, |t| s(t.0)),
        "sslc" => rec.tls.map_or(Val::None, |t| s(t.1)),
        "b" => rec.backend.as_deref().map_or(s("<NOSRV>"), s),
        "s" => rec.server.as_deref().map_or(s("<NOSRV>"), s),
        "t" | "tr" | "trl" | "T" | "Tl" | "trg" => {
            let (t, gmt) = match v {
                "t" => (rec.accept_date, false),
                "T" | "Tl" => (rec.accept_date, true),
                "trg" => (rec.req_start_date, true),
                _ => (rec.req_start_date, false),
            };
            let mut o = String::new();
            date(&mut o, t, gmt, matches!(v, "t" | "tr"));
            owned(o)
        }
        "Ts" => Val::Int(rec.accept_date.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)),
        "ms" => Val::Str(format!("{:03}", super::sink::Tm::from(rec.accept_date).micros / 1000).into()),
        "Th" => Val::Int(rec.th()),
        "Ti" => Val::Int(rec.ti()),
        "TR" => Val::Int(rec.t_request()),
        "Tq" => Val::Int(rec.tq()),
        "Tw" => Val::Int(rec.tw()),
        "Tc" => Val::Int(rec.tc()),
        "Tr" => Val::Int(rec.tr()),
        // `option logasap` logs before the end: the totals so far, marked `+` as HAProxy does.
        "Ta" if rec.early => owned(format!("+{}", rec.ta())),
        "Tt" if rec.early => owned(format!("+{}", rec.tt())),
        "B" if rec.early => owned(format!("+{}", rec.bytes_out)),
        "Ta" => Val::Int(rec.ta()),
        "Tt" => Val::Int(rec.tt()),
        "Tu" => Val::Int(rec.tu()),
        "Td" => Val::Int(rec.td()),
        "ST" => Val::Int(rec.status.map_or(-1, i64::from)),
        "B" => Val::Int(rec.bytes_out as i64),
        "U" => Val::Int(rec.bytes_in as i64),
        "ts" => owned(String::from_utf8_lossy(&rec.termination()).into_owned()),
        "tsc" => {
            let t = rec.termination();
            owned(format!("{}{}--", t[0] as char, t[1] as char))
        }
        "ac" => Val::Int(i64::from(rec.conns[0])),
        "fc" => Val::Int(i64::from(rec.conns[1])),
        "bc" => Val::Int(i64::from(rec.conns[2])),
        "sc" => Val::Int(i64::from(rec.conns[3])),
        "rc" if rec.redispatched => owned(format!("+{}", rec.retries)),
        "rc" => Val::Int(i64::from(rec.retries)),
        "sq" => Val::Int(i64::from(rec.queues[0])),
        "bq" => Val::Int(i64::from(rec.queues[1])),
        "hr" => captures(&rec.req_captures, false),
        "hs" => captures(&rec.res_captures, false),
        "hrl" => captures(&rec.req_captures, true),
        "hsl" => captures(&rec.res_captures, true),
        "r" => rec.request_line.as_deref().map_or(s("<BADREQ>"), s),
        "HM" => request_parts(rec).map_or(Val::None, |(m, _, _)| s(m)),
        "HU" => request_parts(rec).map_or(Val::None, |(_, u, _)| s(u)),
        "HP" => request_parts(rec).map_or(Val::None, |(_, u, _)| s(u.split('?').next().unwrap_or(u))),
        "HPO" => request_parts(rec).map_or(Val::None, |(_, u, _)| {
            let p = u.split('?').next().unwrap_or(u);
            let p = p.find("://").map_or(p, |i| p[i + 3..].find('/').map_or("/", |j| &p[i + 3 + j..]));
            s(p)
        }),
        "HQ" => request_parts(rec).map_or(Val::None, |(_, u, _)| u.find('?').map_or(s(""), |i| s(&u[i..]))),
        "HV" => request_parts(rec).map_or(Val::None, |(_, _, v)| s(v)),
        "ID" => rec.unique_id.as_deref().map_or(Val::None, s),
        "pid" => Val::Int(i64::from(std::process::id())),
        "H" => owned(super::host_name().to_owned()),
        "CC" => rec.req_cookie.as_deref().map_or(Val::None, s),
        "CS" => rec.res_cookie.as_deref().map_or(Val::None, s),
        "lc" | "rt" => Val::Int(0),
        _ => Val::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::logformat::parse_log_format;
    use crate::log::record::Cause;
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    fn rec() -> LogRecord {
        let t0 = Instant::now();
        let date = UNIX_EPOCH + Duration::from_millis(1_718_876_876_123);
        let mut r = LogRecord::new(date, t0, Some("10.0.0.1:40000".parse().unwrap()), Some("10.0.0.2:80".parse().unwrap()), "fe", true);
        r.req_done = Some(t0 + Duration::from_millis(2));
        r.connect_start = r.req_done;
        r.connect_done = Some(t0 + Duration::from_millis(3));
        r.resp_head = Some(t0 + Duration::from_millis(7));
        r.end = Some(t0 + Duration::from_millis(8));
        r.backend = Some("be".into());
        r.server = Some("s1".into());
        r.server_addr = Some("10.0.0.3:8080".parse().unwrap());
        r.status = Some(200);
        r.bytes_out = 379;
        r.bytes_in = 77;
        r.request_line = Some("GET /a/b?x=1 HTTP/1.1".into());
        r.conns = [1, 1, 0, 0, 0];
        r.req_captures = vec![Some("example.com".into()), None];
        r.res_captures = vec![Some("nginx".into())];
        r.unique_id = Some("abc".into());
        r
    }

    fn ev(fmt: &str, r: &LogRecord) -> String {
        let lf = LogLf::compile(&parse_log_format(fmt).unwrap()).unwrap();
        let mut s = String::new();
        lf.eval(r, None, &mut s);
        s
    }

    #[test]
    fn httplog() {
        let _ = SystemTime::now();
        assert_eq!(
            ev(crate::config::logformat::HTTP_LOG_FORMAT, &rec()),
            "10.0.0.1:40000 [20/Jun/2024:09:47:56.123] fe be/s1 2/0/1/4/8 200 379 - - ---- 1/1/0/0/0 0/0 {example.com|} {nginx} \"GET /a/b?x=1 HTTP/1.1\""
        );
    }

    #[test]
    fn tcplog_and_termination() {
        let mut r = rec();
        r.http = false;
        r.cause = Cause::ClientTimeout;
        assert_eq!(ev(crate::config::logformat::TCP_LOG_FORMAT, &r), "10.0.0.1:40000 [20/Jun/2024:09:47:56.123] fe be/s1 0/1/8 379 cD 1/1/0/0/0 0/0");
    }

    #[test]
    fn each_variable() {
        let r = rec();
        for (fmt, want) in [
            ("%fi:%fp %si:%sp", "10.0.0.2:80 10.0.0.3:8080"),
            ("%bi:%bp", "-:-"),
            ("%T", "20/Jun/2024:09:47:56 +0000"),
            ("%Ts %{+X}Ts %ms", "1718876876 6673FACC 123"),
            ("%{+X}o%ci:%cp_%si", "0A000001:9C40_0A000003"),
            ("%{+X}o%fp", "0050"),
            ("%Tq %TR %Th %Ti %Tu %Td", "2 2 0 0 7 1"),
            ("%U %B %ST", "77 379 200"),
            ("%Ta %Tt %B %U", "8 8 379 77"),
            ("%HM|%HU|%HP|%HQ|%HV", "GET|/a/b?x=1|/a/b|?x=1|HTTP/1.1"),
            ("%{+Q}HM %{+Q}ID %{+Q}CC", "\"GET\" \"abc\" \"\""),
            ("%hrl", "\"example.com\" \"-\""),
            ("%f %ft %b %s", "fe fe be s1"),
        ] {
            assert_eq!(ev(fmt, &r), want, "{fmt}");
        }
        let mut early = rec();
        early.early = true;
        assert_eq!(ev("%Ta %Tt %B %U %ST", &early), "+8 +8 +379 77 200", "option logasap: the totals so far");
        let mut none = LogRecord::new(UNIX_EPOCH, Instant::now(), None, None, "fe", true);
        none.end = Some(none.accept);
        assert_eq!(ev("%b/%s %r %ST %hr %hs %{+Q}r", &none), "<NOSRV>/<NOSRV> <BADREQ> -1 \"<BADREQ>\"");
    }

    #[test]
    fn json() {
        let mut r = rec();
        r.request_line = Some("GET /\"q\" HTTP/1.1".into());
        assert_eq!(
            ev("%{+json}o %ci %ST %r %b %bi", &r),
            "{\"ci\": \"10.0.0.1\", \"ST\": 200, \"r\": \"GET /\\\"q\\\" HTTP/1.1\", \"b\": \"be\", \"bi\": null}"
        );
    }
}
