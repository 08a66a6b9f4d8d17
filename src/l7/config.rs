//! Configuration of HTTP proxying: `http-request`/`http-response`/`http-after-response` rules,
//! redirects, error files, forwarding headers and HTTP connection options. The actions shared with
//! TCP rules (stick counters, variables, captures) live in [`crate::l4::action`].

use std::time::Duration;

use crate::config::expr::SampleExpr;
use crate::config::logformat::{LogFormat, parse_log_format};
use crate::config::model::{Proxy, RefKind};
use crate::config::registry::{Doc, DocTable, KwArgs, ProxyKeyword, ProxyParse, Sections};
use crate::config::units::{parse_size, parse_time};
use crate::config::validate::ERRORFILE_CODES;
use crate::doc;
use crate::l4::action::{
    self as act, ActionArgs, ActionDef, CommonAction, IpNet, Pattern, Rule, Service, docs, no_args, parse_args, parse_conditional, parse_rule,
};

/// The HTTP configuration of a proxy.
#[derive(Clone, Debug, Default)]
pub struct ProxyHttp {
    /// `http-request` rules, run on the request head in order.
    pub request_rules: Vec<Rule<HttpAction>>,
    /// `http-response` rules, run on the server's response head.
    pub response_rules: Vec<Rule<HttpAction>>,
    /// `http-after-response` rules, run on every response, including the ones sluiced generates.
    pub after_response_rules: Vec<Rule<HttpAction>>,
    /// Legacy `redirect` lines, run after the `http-request` rules as HAProxy does.
    pub redirects: Vec<Rule<Redirect>>,
    /// `errorfile` and `errorfiles` lines in order: a later line wins for the codes it covers.
    pub error_pages: Vec<ErrorPages>,
    /// `http-error` lines: the responses sent for errors sluiced generates itself.
    pub http_errors: Vec<Reply>,
    pub forwardfor: Option<ForwardFor>,
    pub originalto: Option<OriginalTo>,
    /// `option http-keep-alive|http-server-close|httpclose`: one mode, the last one set wins.
    pub conn_mode: Option<HttpConnMode>,
    pub options: HttpOptions,
    pub restrict_req_hdr_names: Option<HdrNamePolicy>,
    pub reuse: Option<HttpReuse>,
    /// `monitor-uri`: requests for this URI get a 200 (or 503 when `monitor fail` matches).
    pub monitor_uri: Option<String>,
    pub monitor_fail: Vec<Rule<()>>,
    /// `retry-on`: `None` keeps HAProxy's default (`conn-failure`).
    pub retry_on: Option<Vec<RetryOn>>,
    /// `http-send-name-header`: the header that carries the chosen server's name.
    pub send_name_header: Option<String>,
    pub compression: Compression,
}

/// An action of an `http-request`, `http-response` or `http-after-response` rule. Each keyword's
/// table lists which of these it accepts; the parser never builds one a stage does not allow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpAction {
    /// Stops evaluating the rules of this stage and lets the message through.
    Allow,
    /// Answers with an error (403 for requests, 502 for responses) or the configured reply.
    Deny(Reply),
    /// Holds the request for `timeout tarpit`, then answers with the reply (500 by default).
    Tarpit(Reply),
    /// Closes the connection without an answer.
    Reject,
    Redirect(Redirect),
    /// Answers with the reply (200 by default) without contacting a server.
    Return(Reply),
    SetHeader {
        name: String,
        value: LogFormat,
    },
    AddHeader {
        name: String,
        value: LogFormat,
    },
    DelHeader {
        name: String,
        matching: HeaderMatch,
    },
    /// Replaces the whole header line value where the regex matches.
    ReplaceHeader {
        name: String,
        regex: Pattern,
        replace: LogFormat,
    },
    /// Replaces each comma-separated value where the regex matches.
    ReplaceValue {
        name: String,
        regex: Pattern,
        replace: LogFormat,
    },
    /// `set-path`, `set-pathq`, `set-query`, `set-uri`, `set-method`.
    SetRequestPart {
        part: RequestPart,
        value: LogFormat,
    },
    /// `replace-path`, `replace-pathq`, `replace-uri`.
    ReplaceRequestPart {
        part: RequestPart,
        regex: Pattern,
        replace: LogFormat,
    },
    /// Answers 401 (407 in proxy mode) asking for credentials.
    Auth {
        realm: Option<String>,
    },
    SetTimeout {
        timeout: StreamTimeout,
        value: TimeOrExpr,
    },
    /// Sends a 103 Early Hints response carrying this header.
    EarlyHint {
        name: String,
        value: LogFormat,
    },
    NormalizeUri(UriNormalizer),
    UseService(Service),
    DisableL7Retry,
    WaitForBody {
        time: Duration,
        at_least: Option<u64>,
    },
    WaitForHandshake,
    SetStatus {
        status: u16,
        reason: Option<String>,
    },
    /// `set-bandwidth-limit <filter> [limit <size|expr>] [period <time|expr>]`.
    SetBandwidthLimit {
        filter: String,
        limit: Option<SizeOrExpr>,
        period: Option<TimeOrExpr>,
    },
    Common(CommonAction),
}

impl From<CommonAction> for HttpAction {
    fn from(c: CommonAction) -> HttpAction {
        HttpAction::Common(c)
    }
}

/// An HTTP response sluiced builds itself: `deny`, `tarpit`, `return`, `http-error`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: ReplyBody,
    /// `hdr <name> <fmt>` lines, added in order.
    pub headers: Vec<(String, LogFormat)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplyBody {
    /// No payload; for errors, the proxy's error page for the status.
    Empty,
    /// `default-errorfiles`: the proxy's error page for the status.
    DefaultErrorfiles,
    /// `errorfile <file>`: a raw HTTP response read from a file.
    Errorfile(String),
    /// `errorfiles <name>`: the page for the status from an `http-errors` section.
    Errorfiles(String),
    /// `file <file>`: a payload read from a file.
    File(String),
    /// `lf-file <file>`: a log-format payload read from a file.
    LfFile(String),
    String(String),
    LfString(LogFormat),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirect {
    pub kind: RedirectKind,
    pub target: RedirectTarget,
    /// 301, 302 (the default), 303, 307 or 308.
    pub code: u16,
    pub drop_query: bool,
    pub append_slash: bool,
    /// `ignore-empty`: skip the redirect when the target evaluates empty.
    pub ignore_empty: bool,
    pub cookie: Option<RedirectCookie>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedirectKind {
    /// The target is the whole `Location`.
    Location,
    /// The target is prepended to the request's path and query.
    Prefix,
    /// The target replaces the scheme.
    Scheme,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedirectTarget {
    /// The legacy `redirect` keyword takes the target as written.
    Literal(String),
    /// `http-request redirect` targets are log-format strings.
    Format(LogFormat),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedirectCookie {
    /// `set-cookie NAME[=VALUE]`.
    Set { name: String, value: Option<String> },
    /// `clear-cookie NAME[=]`: sets the cookie with `Max-Age=0`.
    Clear { name: String },
}

/// How `del-header -m` matches header names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderMatch {
    Str,
    Beg,
    End,
    Sub,
    Reg(Pattern),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestPart {
    Method,
    Path,
    /// Path and query string.
    PathQ,
    Query,
    Uri,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamTimeout {
    Client,
    Server,
    Tunnel,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimeOrExpr {
    Time(Duration),
    Expr(SampleExpr),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SizeOrExpr {
    Size(u64),
    Expr(SampleExpr),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UriNormalizer {
    FragmentEncode,
    FragmentStrip,
    PathMergeSlashes,
    PathStripDot,
    /// `full` also removes `..` segments that would climb above the root.
    PathStripDotdot {
        full: bool,
    },
    PercentDecodeUnreserved {
        strict: bool,
    },
    PercentToUppercase {
        strict: bool,
    },
    QuerySortByName,
}

/// `errorfile` and `errorfiles` lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorPages {
    /// `errorfile <code> <file>`.
    File { status: u16, path: String },
    /// `errorfiles <http-errors> [<code>...]`: every code of the section when `codes` is empty.
    Section { name: String, codes: Vec<u16> },
}

/// `option forwardfor [except <net>] [header <name>] [if-none]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardFor {
    pub except: Option<IpNet>,
    pub header: String,
    /// Only add the header when the request has none.
    pub if_none: bool,
}

/// `option originalto [except <net>] [header <name>]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginalTo {
    pub except: Option<IpNet>,
    pub header: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpConnMode {
    /// Both sides stay open between transactions (the default).
    KeepAlive,
    /// The server side closes after each response; the client side is kept alive.
    ServerClose,
    /// Both sides close after each response.
    Close,
}

/// Boolean HTTP options; `None` is "not set here".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpOptions {
    pub buffer_request: Option<bool>,
    pub pretend_keepalive: Option<bool>,
    pub no_delay: Option<bool>,
    pub ignore_probes: Option<bool>,
    pub use_proxy_header: Option<bool>,
    /// Parsed for compatibility only: sluiced keeps rejecting invalid requests.
    pub accept_invalid_request: Option<bool>,
    /// Parsed for compatibility only: sluiced keeps rejecting invalid responses.
    pub accept_invalid_response: Option<bool>,
    pub h1_case_adjust_bogus_client: Option<bool>,
    pub h1_case_adjust_bogus_server: Option<bool>,
}

/// `option http-restrict-req-hdr-names`: what to do with header names holding other characters
/// than letters, digits and `-`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HdrNamePolicy {
    Preserve,
    Delete,
    Reject,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpReuse {
    Never,
    Safe,
    Aggressive,
    Always,
}

/// A `retry-on` keyword.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryOn {
    None,
    ConnFailure,
    EmptyResponse,
    JunkResponse,
    ResponseTimeout,
    ZeroRttRejected,
    /// Retry when the server answers with this status.
    Status(u16),
    AllRetryableErrors,
    All,
}

/// The statuses `retry-on` accepts.
pub const RETRY_STATUSES: &[u16] = &[401, 403, 404, 408, 425, 500, 501, 502, 503, 504];

/// A backend's `retry-on` keywords, compiled: what sends a request again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// A failed connection attempt is retried (HAProxy's default, `conn-failure`).
    pub conn_failure: bool,
    /// The server closed (or reset) the connection without a byte of response.
    pub empty_response: bool,
    /// The server's response was incomplete or not HTTP.
    pub junk_response: bool,
    /// `timeout server` struck before the response head.
    pub response_timeout: bool,
    /// Bit `i` set: a response with status `RETRY_STATUSES[i]` is retried.
    statuses: u16,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { conn_failure: true, empty_response: false, junk_response: false, response_timeout: false, statuses: 0 }
    }
}

impl RetryPolicy {
    /// The policy of `retry-on <keywords>`; `None` (no `retry-on` line) is `conn-failure`.
    pub fn compile(keywords: Option<&[RetryOn]>) -> RetryPolicy {
        let Some(keywords) = keywords else { return RetryPolicy::default() };
        let mut p = RetryPolicy { conn_failure: false, ..RetryPolicy::default() };
        let status_bit = |s: u16| RETRY_STATUSES.iter().position(|&x| x == s).map_or(0, |i| 1u16 << i);
        for k in keywords {
            match k {
                RetryOn::None => {}
                RetryOn::ConnFailure => p.conn_failure = true,
                RetryOn::EmptyResponse => p.empty_response = true,
                RetryOn::JunkResponse => p.junk_response = true,
                RetryOn::ResponseTimeout => p.response_timeout = true,
                // sluiced accepts no TLS early data, so nothing is ever rejected to retry.
                RetryOn::ZeroRttRejected => {}
                RetryOn::Status(s) => p.statuses |= status_bit(*s),
                RetryOn::AllRetryableErrors => {
                    p.conn_failure = true;
                    p.empty_response = true;
                    p.junk_response = true;
                    p.response_timeout = true;
                    for s in [500, 502, 503, 504] {
                        p.statuses |= status_bit(s);
                    }
                }
                RetryOn::All => {
                    p = RetryPolicy {
                        conn_failure: true,
                        empty_response: true,
                        junk_response: true,
                        response_timeout: true,
                        statuses: (1 << RETRY_STATUSES.len()) - 1,
                    }
                }
            }
        }
        p
    }

    /// Whether a response with this status is sent again.
    pub fn on_status(&self, status: u16) -> bool {
        self.statuses != 0 && RETRY_STATUSES.iter().position(|&x| x == status).is_some_and(|i| self.statuses & (1 << i) != 0)
    }

    /// Whether anything past the connection (a response, or its absence) is retried: the request
    /// must then be kept until its response head arrives.
    pub fn layer7(&self) -> bool {
        self.empty_response || self.junk_response || self.response_timeout || self.statuses != 0
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Compression {
    pub algos: Vec<CompressionAlgo>,
    /// MIME types to compress; empty compresses every type.
    pub types: Vec<String>,
    /// `compression offload`: remove `Accept-Encoding` so the server never compresses.
    pub offload: bool,
    /// `compression direction`; `None` is HAProxy's default, responses.
    pub direction: Option<CompressionDirection>,
    /// `compression minsize-res`: a response with a smaller `Content-Length` passes as it is.
    pub minsize_res: Option<u64>,
    /// `compression algo-req`, `type-req`, `minsize-req`: request compression, parsed only.
    pub algos_req: Vec<CompressionAlgo>,
    pub types_req: Vec<String>,
    pub minsize_req: Option<u64>,
}

/// What `compression direction` compresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompressionDirection {
    Response,
    Request,
    Both,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompressionAlgo {
    Identity,
    Gzip,
    Deflate,
    RawDeflate,
}

// ---------------------------------------------------------------------------------------------
// Action parsers

fn header_name<'a>(a: &mut ActionArgs<'a>) -> Result<&'a str, String> {
    let n = a.need("a header name")?;
    if n.is_empty() {
        return Err(format!("'{}' expects a non-empty header name", a.name));
    }
    Ok(n)
}

fn set_header(a: &mut ActionArgs<'_>, add: bool) -> Result<HttpAction, String> {
    a.no_paren()?;
    let name = header_name(a)?.to_owned();
    let value = a.format("a value (log-format string)")?;
    Ok(if add { HttpAction::AddHeader { name, value } } else { HttpAction::SetHeader { name, value } })
}

fn del_header(a: &mut ActionArgs<'_>) -> Result<HttpAction, String> {
    a.no_paren()?;
    let name = header_name(a)?.to_owned();
    let matching = match a.peek() {
        Some("-m") => {
            a.take();
            match a.need("a matching method after '-m' (str, beg, end, sub or reg)")? {
                "str" => HeaderMatch::Str,
                "beg" => HeaderMatch::Beg,
                "end" => HeaderMatch::End,
                "sub" => HeaderMatch::Sub,
                "reg" => HeaderMatch::Reg(act::compile_regex(&name)?),
                other => return Err(format!("'{}' : unknown matching method '{other}' (expected str, beg, end, sub or reg)", a.name)),
            }
        }
        _ => HeaderMatch::Str,
    };
    Ok(HttpAction::DelHeader { name, matching })
}

fn replace_header(a: &mut ActionArgs<'_>, value: bool) -> Result<HttpAction, String> {
    a.no_paren()?;
    let name = header_name(a)?.to_owned();
    let regex = a.regex("a regex")?;
    let replace = a.format("a replacement (log-format string)")?;
    Ok(if value { HttpAction::ReplaceValue { name, regex, replace } } else { HttpAction::ReplaceHeader { name, regex, replace } })
}

fn set_part(a: &mut ActionArgs<'_>, part: RequestPart) -> Result<HttpAction, String> {
    a.no_paren()?;
    Ok(HttpAction::SetRequestPart { part, value: a.format("a log-format string")? })
}

fn replace_part(a: &mut ActionArgs<'_>, part: RequestPart) -> Result<HttpAction, String> {
    a.no_paren()?;
    let regex = a.regex("a regex")?;
    Ok(HttpAction::ReplaceRequestPart { part, regex, replace: a.format("a replacement (log-format string)")? })
}

fn status_code(a: &ActionArgs<'_>, text: &str, range: std::ops::RangeInclusive<u16>) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(s) if range.contains(&s) => Ok(s),
        _ => Err(format!("'{}' : invalid status code '{text}' (expected {} to {})", a.name, range.start(), range.end())),
    }
}

fn check_file(path: &str) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Err(format!("'{path}' is a directory, not a file")),
        Ok(_) => Ok(()),
        Err(_) => Err(format!("cannot open file '{path}'")),
    }
}

/// Parses the reply options shared by `deny`, `tarpit`, `return` and `http-error`. `status_words`
/// are the words that introduce the status; `default_status` is used when none is given.
fn parse_reply(a: &mut ActionArgs<'_>, status_words: &[&str], default_status: Option<u16>) -> Result<Reply, String> {
    let mut status = None;
    let mut content_type = None;
    let mut body = ReplyBody::Empty;
    let mut headers = Vec::new();
    while let Some(w) = a.take() {
        if status_words.contains(&w) {
            let v = a.need("a status code")?;
            status = Some(status_code(a, v, 200..=599)?);
            continue;
        }
        let payload = match w {
            "content-type" => {
                content_type = Some(a.need("a content type")?.to_owned());
                continue;
            }
            "hdr" => {
                let name = a.need("a header name after 'hdr'")?.to_owned();
                headers.push((name, a.format("a header value after the name")?));
                continue;
            }
            "default-errorfiles" => ReplyBody::DefaultErrorfiles,
            "errorfile" | "file" | "lf-file" => {
                let path = a.need("a file name")?;
                check_file(path)?;
                match w {
                    "errorfile" => ReplyBody::Errorfile(path.to_owned()),
                    "file" => ReplyBody::File(path.to_owned()),
                    _ => ReplyBody::LfFile(path.to_owned()),
                }
            }
            "errorfiles" => {
                let name = a.need("an http-errors section name")?;
                a.add_ref(RefKind::HttpErrors, name);
                ReplyBody::Errorfiles(name.to_owned())
            }
            "string" => ReplyBody::String(a.need("a string")?.to_owned()),
            "lf-string" => ReplyBody::LfString(a.format("a log-format string")?),
            other => return Err(format!("'{}' : unexpected argument '{other}'", a.name)),
        };
        if body != ReplyBody::Empty {
            return Err(format!("'{}' : only one payload may be given, '{w}' is a second one", a.name));
        }
        body = payload;
    }
    let Some(status) = status.or(default_status) else {
        return Err(format!("'{}' expects 'status <code>'", a.name));
    };
    match &body {
        ReplyBody::Empty => {
            if content_type.is_some() {
                a.warn("content-type is ignored without a payload");
                content_type = None;
            }
        }
        ReplyBody::DefaultErrorfiles | ReplyBody::Errorfile(_) | ReplyBody::Errorfiles(_) => {
            if content_type.is_some() || !headers.is_empty() {
                a.warn("content-type and hdr are ignored with error files, which carry their own headers");
                content_type = None;
                headers.clear();
            }
        }
        ReplyBody::File(_) | ReplyBody::LfFile(_) | ReplyBody::String(_) | ReplyBody::LfString(_) => {
            if content_type.is_none() {
                return Err(format!("'{}' : a content-type must be given with a payload", a.name));
            }
        }
    }
    Ok(Reply { status, content_type, body, headers })
}

fn deny(a: &mut ActionArgs<'_>, default_status: u16) -> Result<HttpAction, String> {
    a.no_paren()?;
    Ok(HttpAction::Deny(parse_reply(a, &["deny_status", "status"], Some(default_status))?))
}

fn tarpit(a: &mut ActionArgs<'_>) -> Result<HttpAction, String> {
    a.no_paren()?;
    Ok(HttpAction::Tarpit(parse_reply(a, &["deny_status", "status"], Some(500))?))
}

fn return_action(a: &mut ActionArgs<'_>) -> Result<HttpAction, String> {
    a.no_paren()?;
    Ok(HttpAction::Return(parse_reply(a, &["status"], Some(200))?))
}

pub const REDIRECT_CODES: &[u16] = &[301, 302, 303, 307, 308];

/// Parses `location|prefix|scheme <target> [code <code>] [options...]` in any order, as HAProxy.
fn parse_redirect(a: &mut ActionArgs<'_>, literal: bool) -> Result<Redirect, String> {
    let mut kind_target = None;
    let mut code = 302;
    let (mut drop_query, mut append_slash, mut ignore_empty) = (false, false, false);
    let mut cookie = None;
    while let Some(w) = a.take() {
        match w {
            "location" | "prefix" | "scheme" => {
                if kind_target.is_some() {
                    return Err(format!("'{}' : only one of 'location', 'prefix' or 'scheme' may be given", a.name));
                }
                let kind = match w {
                    "location" => RedirectKind::Location,
                    "prefix" => RedirectKind::Prefix,
                    _ => RedirectKind::Scheme,
                };
                let text = a.need("a target after the redirect type")?;
                let target = if literal { RedirectTarget::Literal(text.to_owned()) } else { RedirectTarget::Format(parse_log_format(text)?) };
                kind_target = Some((kind, target));
            }
            "code" => {
                let v = a.need("a status code after 'code'")?;
                code = match v.parse::<u16>() {
                    Ok(c) if REDIRECT_CODES.contains(&c) => c,
                    _ => return Err(format!("'{}' : invalid redirect code '{v}' (expected 301, 302, 303, 307 or 308)", a.name)),
                };
            }
            "drop-query" => drop_query = true,
            "append-slash" => append_slash = true,
            "ignore-empty" => ignore_empty = true,
            "set-cookie" | "clear-cookie" => {
                if cookie.is_some() {
                    return Err(format!("'{}' : only one of 'set-cookie' or 'clear-cookie' may be given", a.name));
                }
                let c = a.need("a cookie name")?;
                let (name, value) = match c.split_once('=') {
                    Some((n, v)) => (n, Some(v)),
                    None => (c, None),
                };
                if name.is_empty() {
                    return Err(format!("'{}' : missing cookie name in '{c}'", a.name));
                }
                cookie = Some(if w == "set-cookie" {
                    RedirectCookie::Set { name: name.to_owned(), value: value.map(str::to_owned) }
                } else {
                    RedirectCookie::Clear { name: name.to_owned() }
                });
            }
            other => {
                return Err(format!(
                    "'{}' : unexpected argument '{other}' (expected location, prefix, scheme, code, drop-query, append-slash, ignore-empty, set-cookie or clear-cookie)",
                    a.name
                ));
            }
        }
    }
    let Some((kind, target)) = kind_target else {
        return Err(format!("'{}' expects 'location', 'prefix' or 'scheme' followed by a target", a.name));
    };
    Ok(Redirect { kind, target, code, drop_query, append_slash, ignore_empty, cookie })
}

fn redirect_action(a: &mut ActionArgs<'_>) -> Result<HttpAction, String> {
    a.no_paren()?;
    Ok(HttpAction::Redirect(parse_redirect(a, false)?))
}

fn auth(a: &mut ActionArgs<'_>) -> Result<HttpAction, String> {
    a.no_paren()?;
    let realm = match a.take() {
        None => None,
        Some("realm") => Some(a.need("a realm after 'realm'")?.to_owned()),
        Some(other) => return Err(format!("'auth' : unexpected argument '{other}' (expected 'realm <realm>')")),
    };
    Ok(HttpAction::Auth { realm })
}

fn set_timeout(a: &mut ActionArgs<'_>) -> Result<HttpAction, String> {
    a.no_paren()?;
    let timeout = match a.need("'client', 'server' or 'tunnel'")? {
        "client" => StreamTimeout::Client,
        "server" => StreamTimeout::Server,
        "tunnel" => StreamTimeout::Tunnel,
        other => return Err(format!("'set-timeout' : unknown timeout '{other}' (expected client, server or tunnel)")),
    };
    let v = a.need("a time or a sample expression")?;
    let value = if starts_with_digit(v) { TimeOrExpr::Time(parse_time(v)?) } else { TimeOrExpr::Expr(a.sample_of(v)?) };
    Ok(HttpAction::SetTimeout { timeout, value })
}

fn early_hint(a: &mut ActionArgs<'_>) -> Result<HttpAction, String> {
    a.no_paren()?;
    let name = header_name(a)?.to_owned();
    Ok(HttpAction::EarlyHint { name, value: a.format("a value (log-format string)")? })
}

fn normalize_uri(a: &mut ActionArgs<'_>) -> Result<HttpAction, String> {
    a.no_paren()?;
    let name = a.need("a normalizer")?;
    let mut flag = |f: &str| -> bool {
        if a.peek() == Some(f) {
            a.take();
            true
        } else {
            false
        }
    };
    let n = match name {
        "fragment-encode" => UriNormalizer::FragmentEncode,
        "fragment-strip" => UriNormalizer::FragmentStrip,
        "path-merge-slashes" => UriNormalizer::PathMergeSlashes,
        "path-strip-dot" => UriNormalizer::PathStripDot,
        "path-strip-dotdot" => UriNormalizer::PathStripDotdot { full: flag("full") },
        "percent-decode-unreserved" => UriNormalizer::PercentDecodeUnreserved { strict: flag("strict") },
        "percent-to-uppercase" => UriNormalizer::PercentToUppercase { strict: flag("strict") },
        "query-sort-by-name" => UriNormalizer::QuerySortByName,
        other => {
            return Err(format!(
                "'normalize-uri' : unknown normalizer '{other}' (expected fragment-encode, fragment-strip, path-merge-slashes, path-strip-dot, path-strip-dotdot, percent-decode-unreserved, percent-to-uppercase or query-sort-by-name)"
            ));
        }
    };
    Ok(HttpAction::NormalizeUri(n))
}

fn wait_for_body(a: &mut ActionArgs<'_>) -> Result<HttpAction, String> {
    a.no_paren()?;
    let mut time = None;
    let mut at_least = None;
    while let Some(w) = a.take() {
        match w {
            "time" => time = Some(parse_time(a.need("a time after 'time'")?)?),
            "at-least" => at_least = Some(parse_size(a.need("a size after 'at-least'")?)?),
            other => return Err(format!("'wait-for-body' : unexpected argument '{other}' (expected 'time <time>' or 'at-least <size>')")),
        }
    }
    let time = time.ok_or("'wait-for-body' expects 'time <time>'")?;
    Ok(HttpAction::WaitForBody { time, at_least })
}

fn set_status(a: &mut ActionArgs<'_>) -> Result<HttpAction, String> {
    a.no_paren()?;
    let v = a.need("a status code")?;
    let status = status_code(a, v, 100..=999)?;
    let reason = match a.take() {
        None => None,
        Some("reason") => Some(a.need("a reason after 'reason'")?.to_owned()),
        Some(other) => return Err(format!("'set-status' : unexpected argument '{other}' (expected 'reason <text>')")),
    };
    Ok(HttpAction::SetStatus { status, reason })
}

/// Constants start with a digit; anything else is a sample expression.
fn starts_with_digit(v: &str) -> bool {
    v.bytes().next().is_some_and(|b| b.is_ascii_digit())
}

fn set_bandwidth_limit(a: &mut ActionArgs<'_>) -> Result<HttpAction, String> {
    a.no_paren()?;
    let filter = a.need("a bwlim filter name")?.to_owned();
    let (mut limit, mut period) = (None, None);
    while let Some(w) = a.take() {
        let v = a.need("a value")?;
        match w {
            "limit" => limit = Some(if starts_with_digit(v) { SizeOrExpr::Size(parse_size(v)?) } else { SizeOrExpr::Expr(a.sample_of(v)?) }),
            "period" => period = Some(if starts_with_digit(v) { TimeOrExpr::Time(parse_time(v)?) } else { TimeOrExpr::Expr(a.sample_of(v)?) }),
            other => return Err(format!("'set-bandwidth-limit' : unexpected argument '{other}' (expected 'limit' or 'period')")),
        }
    }
    Ok(HttpAction::SetBandwidthLimit { filter, limit, period })
}

// ---------------------------------------------------------------------------------------------
// Action tables

const fn def(name: &'static str, parse: fn(&mut ActionArgs<'_>) -> Result<HttpAction, String>, doc: Doc) -> ActionDef<HttpAction> {
    ActionDef { name, parse, doc }
}

/// A table entry whose parser is a shared action's.
macro_rules! common {
    ($name:literal, $f:path, $doc:expr) => {
        def($name, |a| $f(a).map(HttpAction::Common), $doc)
    };
}

const ALLOW: ActionDef<HttpAction> = def(
    "allow",
    |a| no_args(a, HttpAction::Allow),
    doc!(Parsed, "allow", "Stops evaluating this stage's rules and lets the message through.", "allow if trusted"),
);
const SET_HEADER: ActionDef<HttpAction> = def(
    "set-header",
    |a| set_header(a, false),
    doc!(Parsed, "set-header <name> <fmt>", "Replaces every occurrence of a header with one value.", "set-header X-Client-IP %[src]"),
);
const ADD_HEADER: ActionDef<HttpAction> =
    def("add-header", |a| set_header(a, true), doc!(Parsed, "add-header <name> <fmt>", "Appends a header, keeping existing ones.", "add-header X-Via sluiced"));
const DEL_HEADER: ActionDef<HttpAction> = def(
    "del-header",
    del_header,
    doc!(Parsed, "del-header <name> [-m str|beg|end|sub|reg]", "Removes the headers whose name matches (exactly by default).", "del-header X-Internal- -m beg"),
);
const REPLACE_HEADER: ActionDef<HttpAction> = def(
    "replace-header",
    |a| replace_header(a, false),
    doc!(
        Parsed,
        "replace-header <name> <regex> <replace>",
        "Rewrites whole header values that match the regex; \\1 refers to groups.",
        "replace-header Set-Cookie (.*);\\ Secure \\1"
    ),
);
const REPLACE_VALUE: ActionDef<HttpAction> = def(
    "replace-value",
    |a| replace_header(a, true),
    doc!(
        Parsed,
        "replace-value <name> <regex> <replace>",
        "Rewrites each comma-separated value of a header that matches the regex.",
        "replace-value X-Forwarded-For ^192\\.168\\.(.*)$ 172.16.\\1"
    ),
);
const SET_STATUS: ActionDef<HttpAction> = def(
    "set-status",
    set_status,
    doc!(
        Parsed,
        "set-status <code> [reason <text>]",
        "Replaces the response status (100 to 999) and optionally its reason.",
        "set-status 503 reason \"Try later\""
    ),
);
const SET_VAR: ActionDef<HttpAction> = common!("set-var", act::set_var, docs::SET_VAR);
const SET_VAR_FMT: ActionDef<HttpAction> = common!("set-var-fmt", act::set_var_fmt, docs::SET_VAR_FMT);
const UNSET_VAR: ActionDef<HttpAction> = common!("unset-var", act::unset_var, docs::UNSET_VAR);
const RETURN: ActionDef<HttpAction> = def(
    "return",
    return_action,
    doc!(
        Parsed,
        "return [status <code>] [content-type <type>] [string <s>|lf-string <fmt>|file <f>|lf-file <f>|errorfile <f>|errorfiles <name>|default-errorfiles] [hdr <name> <fmt>]...",
        "Answers without contacting a server (200 by default).",
        "return status 200 content-type text/plain string ok"
    ),
);
const REDIRECT: ActionDef<HttpAction> = def(
    "redirect",
    redirect_action,
    doc!(
        Parsed,
        "redirect location|prefix|scheme <fmt> [code 301|302|303|307|308] [drop-query] [append-slash] [ignore-empty] [set-cookie <name>[=<value>]] [clear-cookie <name>]",
        "Answers with a redirect (302 by default); the target is a log-format string.",
        "redirect scheme https code 301 unless { ssl_fc }"
    ),
);
const TRACK_SC0: ActionDef<HttpAction> = common!("track-sc0", act::track_sc0, docs::TRACK_SC0);
const TRACK_SC1: ActionDef<HttpAction> = common!("track-sc1", act::track_sc1, docs::TRACK_SC1);
const TRACK_SC2: ActionDef<HttpAction> = common!("track-sc2", act::track_sc2, docs::TRACK_SC2);
const SC_INC_GPC: ActionDef<HttpAction> = common!("sc-inc-gpc", act::sc_inc_gpc, docs::SC_INC_GPC);
const SC_INC_GPC0: ActionDef<HttpAction> = common!("sc-inc-gpc0", act::sc_inc_gpc0, docs::SC_INC_GPC0);
const SC_INC_GPC1: ActionDef<HttpAction> = common!("sc-inc-gpc1", act::sc_inc_gpc1, docs::SC_INC_GPC1);
const SC_ADD_GPC: ActionDef<HttpAction> = common!("sc-add-gpc", act::sc_add_gpc, docs::SC_ADD_GPC);
const SC_SET_GPT: ActionDef<HttpAction> = common!("sc-set-gpt", act::sc_set_gpt, docs::SC_SET_GPT);
const SC_TAKE_TOKEN: ActionDef<HttpAction> = common!("sc-take-token", act::sc_take_token, docs::SC_TAKE_TOKEN);
const SC_SET_GPT0: ActionDef<HttpAction> = common!("sc-set-gpt0", act::sc_set_gpt0, docs::SC_SET_GPT0);
const SET_LOG_LEVEL: ActionDef<HttpAction> = common!("set-log-level", act::set_log_level, docs::SET_LOG_LEVEL);
const SILENT_DROP: ActionDef<HttpAction> = common!("silent-drop", act::silent_drop, docs::SILENT_DROP);
const WAIT_FOR_BODY: ActionDef<HttpAction> = def(
    "wait-for-body",
    wait_for_body,
    doc!(
        Parsed,
        "wait-for-body time <time> [at-least <size>]",
        "Requests: while the body is not all read, waits up to <time> for the whole body, at least <size> bytes of it or a full buffer; the rules after it then see it (req.body), and a body still short when <time> ends is answered 408. A client expecting 100-continue gets it. Responses: parsed only (sluiced has no res.body).",
        "wait-for-body time 1s at-least 1k"
    ),
);
/// `http-request` actions.
pub static HTTP_REQUEST_ACTIONS: &[ActionDef<HttpAction>] = &[
    ALLOW,
    def(
        "deny",
        |a| deny(a, 403),
        doc!(
            Parsed,
            "deny [deny_status <code>] [content-type ...] [<payload>] [hdr <name> <fmt>]...",
            "Answers with an error, 403 by default; the reply options are those of 'return'.",
            "deny deny_status 429 if too_fast"
        ),
    ),
    def(
        "tarpit",
        tarpit,
        doc!(
            Parsed,
            "tarpit [deny_status <code>] [content-type ...] [<payload>] [hdr <name> <fmt>]...",
            "Holds the request for 'timeout tarpit', then answers with an error, 500 by default.",
            "tarpit deny_status 403 if abuser"
        ),
    ),
    def("reject", |a| no_args(a, HttpAction::Reject), doc!(Parsed, "reject", "Closes the connection without answering.", "reject if bad_bot")),
    REDIRECT,
    RETURN,
    SET_HEADER,
    ADD_HEADER,
    DEL_HEADER,
    REPLACE_HEADER,
    REPLACE_VALUE,
    def(
        "set-path",
        |a| set_part(a, RequestPart::Path),
        doc!(Parsed, "set-path <fmt>", "Replaces the request path, keeping the query string.", "set-path /api%[path]"),
    ),
    def(
        "set-pathq",
        |a| set_part(a, RequestPart::PathQ),
        doc!(Parsed, "set-pathq <fmt>", "Replaces the request path and query string.", "set-pathq /index.html?x=1"),
    ),
    def(
        "set-query",
        |a| set_part(a, RequestPart::Query),
        doc!(Parsed, "set-query <fmt>", "Replaces the query string (without '?').", "set-query %[query]&lang=en"),
    ),
    def("set-uri", |a| set_part(a, RequestPart::Uri), doc!(Parsed, "set-uri <fmt>", "Replaces the whole request URI.", "set-uri /maintenance")),
    def("set-method", |a| set_part(a, RequestPart::Method), doc!(Parsed, "set-method <fmt>", "Replaces the request method.", "set-method GET")),
    def(
        "replace-path",
        |a| replace_part(a, RequestPart::Path),
        doc!(Parsed, "replace-path <regex> <fmt>", "Rewrites the request path where the regex matches.", "replace-path /old/(.*) /new/\\1"),
    ),
    def(
        "replace-pathq",
        |a| replace_part(a, RequestPart::PathQ),
        doc!(Parsed, "replace-pathq <regex> <fmt>", "Rewrites the request path and query string where the regex matches.", "replace-pathq ^/v1/(.*) /\\1"),
    ),
    def(
        "replace-uri",
        |a| replace_part(a, RequestPart::Uri),
        doc!(Parsed, "replace-uri <regex> <fmt>", "Rewrites the whole request URI where the regex matches.", "replace-uri ^http://(.*) https://\\1"),
    ),
    SET_VAR,
    SET_VAR_FMT,
    UNSET_VAR,
    common!("set-src", act::set_src, docs::SET_SRC),
    common!("set-dst", act::set_dst, docs::SET_DST),
    common!("set-src-port", act::set_src_port, docs::SET_SRC_PORT),
    common!("set-dst-port", act::set_dst_port, docs::SET_DST_PORT),
    common!("capture", act::capture_len_or_id, docs::CAPTURE_LEN_OR_ID),
    def("auth", auth, doc!(Parsed, "auth [realm <realm>]", "Answers 401 asking the client for credentials.", "auth realm Admin unless is_admin")),
    SET_LOG_LEVEL,
    common!("set-nice", act::set_nice, docs::SET_NICE),
    common!("set-mark", act::set_mark, docs::SET_MARK),
    common!("set-tos", act::set_tos, docs::SET_TOS),
    common!("set-priority-class", act::set_priority_class, docs::SET_PRIORITY_CLASS),
    common!("set-priority-offset", act::set_priority_offset, docs::SET_PRIORITY_OFFSET),
    def(
        "set-timeout",
        set_timeout,
        doc!(
            Implemented,
            "set-timeout client|server|tunnel <time|expr>",
            "Changes a timeout for this transaction only (an expression gives milliseconds; absent or 0 changes nothing). The server timeout covers the wait for the response and both bodies, the client one the client's side of them; tunnel replaces 'timeout tunnel' once the connection becomes a tunnel.",
            "set-timeout server 5m if is_upload"
        ),
    ),
    def(
        "early-hint",
        early_hint,
        doc!(Parsed, "early-hint <name> <fmt>", "Sends a 103 Early Hints response carrying this header.", "early-hint Link \"</style.css>; rel=preload\""),
    ),
    def(
        "normalize-uri",
        normalize_uri,
        doc!(
            Parsed,
            "normalize-uri <normalizer> [full|strict]",
            "Normalizes the URI: fragment-encode, fragment-strip, path-merge-slashes, path-strip-dot, path-strip-dotdot [full], percent-decode-unreserved [strict], percent-to-uppercase [strict], query-sort-by-name.",
            "normalize-uri path-merge-slashes"
        ),
    ),
    def("use-service", |a| act::parse_service(a).map(HttpAction::UseService), docs::USE_SERVICE),
    TRACK_SC0,
    TRACK_SC1,
    TRACK_SC2,
    SC_INC_GPC,
    SC_INC_GPC0,
    SC_INC_GPC1,
    SC_ADD_GPC,
    SC_SET_GPT,
    SC_SET_GPT0,
    SC_TAKE_TOKEN,
    def(
        "disable-l7-retry",
        |a| no_args(a, HttpAction::DisableL7Retry),
        doc!(
            Implemented,
            "disable-l7-retry",
            "Disables for this request the retries 'retry-on' would do once it has been sent (connection failures are still retried).",
            "disable-l7-retry if METH_POST"
        ),
    ),
    WAIT_FOR_BODY,
    def(
        "wait-for-handshake",
        |a| no_args(a, HttpAction::WaitForHandshake),
        doc!(Parsed, "wait-for-handshake", "Waits for the TLS handshake to complete before processing TLS early data.", "wait-for-handshake if METH_POST"),
    ),
    common!("do-resolve", act::do_resolve, docs::DO_RESOLVE),
    def(
        "set-bandwidth-limit",
        set_bandwidth_limit,
        doc!(
            Parsed,
            "set-bandwidth-limit <filter> [limit <size|expr>] [period <time|expr>]",
            "Enables a bwlim filter for the stream, optionally overriding its limit and period.",
            "set-bandwidth-limit limit-by-src limit 1m period 1s"
        ),
    ),
    SILENT_DROP,
];

/// `http-response` actions.
pub static HTTP_RESPONSE_ACTIONS: &[ActionDef<HttpAction>] = &[
    ALLOW,
    def(
        "deny",
        |a| deny(a, 502),
        doc!(
            Parsed,
            "deny [deny_status <code>] [content-type ...] [<payload>] [hdr <name> <fmt>]...",
            "Replaces the response with an error, 502 by default; the reply options are those of 'return'.",
            "deny if leaks_stack_trace"
        ),
    ),
    SET_HEADER,
    ADD_HEADER,
    DEL_HEADER,
    REPLACE_HEADER,
    REPLACE_VALUE,
    SET_STATUS,
    RETURN,
    SET_VAR,
    SET_VAR_FMT,
    UNSET_VAR,
    REDIRECT,
    common!("capture", act::capture_id, docs::CAPTURE_ID),
    TRACK_SC0,
    TRACK_SC1,
    TRACK_SC2,
    SC_INC_GPC,
    SC_INC_GPC0,
    SC_INC_GPC1,
    SC_ADD_GPC,
    SC_SET_GPT,
    SC_SET_GPT0,
    SET_LOG_LEVEL,
    SILENT_DROP,
    WAIT_FOR_BODY,
];

/// `http-after-response` actions.
pub static HTTP_AFTER_RESPONSE_ACTIONS: &[ActionDef<HttpAction>] = &[
    ALLOW,
    SET_HEADER,
    ADD_HEADER,
    DEL_HEADER,
    REPLACE_HEADER,
    REPLACE_VALUE,
    SET_STATUS,
    SET_VAR,
    SET_VAR_FMT,
    UNSET_VAR,
    common!("capture", act::capture_id, docs::CAPTURE_ID),
];

// ---------------------------------------------------------------------------------------------
// Proxy keywords

fn kw(name: &'static str, sections: Sections, parse: ProxyParse, doc: Doc) -> ProxyKeyword {
    ProxyKeyword { name, sections, negatable: false, parse, doc }
}

fn opt(name: &'static str, sections: Sections, parse: ProxyParse, doc: Doc) -> ProxyKeyword {
    ProxyKeyword { name, sections, negatable: true, parse, doc }
}

macro_rules! conn_mode_opt {
    ($name:literal, $mode:expr, $desc:literal) => {
        opt(
            concat!("option ", $name),
            Sections::ALL,
            |a, p| {
                a.at_most(0)?;
                set_conn_mode(p, $mode, a.negated);
                Ok(())
            },
            doc!(Parsed, concat!("[no] option ", $name), $desc, concat!("option ", $name)),
        )
    };
}

/// The three connection modes are one setting: the last option wins, and `no option X` falls back
/// to keep-alive only when X is the current mode, as in HAProxy.
fn set_conn_mode(p: &mut Proxy, mode: HttpConnMode, negated: bool) {
    if !negated {
        p.http.conn_mode = Some(mode);
    } else if p.http.conn_mode == Some(mode) {
        p.http.conn_mode = Some(HttpConnMode::KeepAlive);
    }
}

pub fn proxy_keywords() -> Vec<ProxyKeyword> {
    use Sections as S;
    vec![
        kw(
            "http-request",
            S::ALL,
            |a, p| {
                let r = parse_rule("http-request", HTTP_REQUEST_ACTIONS, a, p)?;
                p.http.request_rules.push(r);
                Ok(())
            },
            doc!(
                Parsed,
                "http-request <action> [options...] [if|unless <cond>]",
                "Acts on the request head; actions are listed under 'http-request actions'.",
                "http-request set-header X-Forwarded-Proto https if { ssl_fc }"
            ),
        ),
        kw(
            "http-response",
            S::ALL,
            |a, p| {
                let r = parse_rule("http-response", HTTP_RESPONSE_ACTIONS, a, p)?;
                p.http.response_rules.push(r);
                Ok(())
            },
            doc!(
                Parsed,
                "http-response <action> [options...] [if|unless <cond>]",
                "Acts on the server's response head; actions are listed under 'http-response actions'.",
                "http-response del-header Server"
            ),
        ),
        kw(
            "http-after-response",
            S::ALL,
            |a, p| {
                let r = parse_rule("http-after-response", HTTP_AFTER_RESPONSE_ACTIONS, a, p)?;
                p.http.after_response_rules.push(r);
                Ok(())
            },
            doc!(
                Parsed,
                "http-after-response <action> [options...] [if|unless <cond>]",
                "Acts on every response, including generated ones; actions are listed under 'http-after-response actions'.",
                "http-after-response set-header Strict-Transport-Security max-age=31536000"
            ),
        ),
        kw(
            "redirect",
            S::PROXIES,
            |a, p| {
                let r = parse_conditional(a, p, |args| parse_redirect(args, true))?;
                p.http.redirects.push(r);
                Ok(())
            },
            doc!(
                Parsed,
                "redirect location|prefix|scheme <target> [code <code>] [options...] [if|unless <cond>]",
                "Legacy form of 'http-request redirect', with a literal target; run after the http-request rules.",
                "redirect prefix https://www.example.com code 301 if old_host"
            ),
        ),
        kw(
            "errorfile",
            S::ALL,
            parse_errorfile,
            doc!(
                Parsed,
                "errorfile <code> <file>",
                "Raw HTTP response sent instead of the built-in one for this status.",
                "errorfile 503 /etc/sluiced/errors/503.http"
            ),
        ),
        kw(
            "errorfiles",
            S::ALL,
            parse_errorfiles,
            doc!(
                Parsed,
                "errorfiles <http-errors> [<code>...]",
                "Uses the error pages of an http-errors section, all of them or only the listed codes.",
                "errorfiles site-errors 503 504"
            ),
        ),
        kw(
            "http-error",
            S::ALL,
            |a, p| {
                let reply = parse_args(a, p, |args| {
                    let r = parse_reply(args, &["status"], None)?;
                    match ERRORFILE_CODES.contains(&r.status) {
                        true => Ok(r),
                        false => Err(format!("status code '{}' cannot be customized", r.status)),
                    }
                })?;
                p.http.http_errors.push(reply);
                Ok(())
            },
            doc!(
                Parsed,
                "http-error status <code> [content-type <type>] [string <s>|lf-string <fmt>|file <f>|lf-file <f>|errorfile <f>|errorfiles <name>|default-errorfiles] [hdr <name> <fmt>]...",
                "Defines the response sent for an error status sluiced generates.",
                "http-error status 503 content-type text/html file /etc/sluiced/errors/503.html"
            ),
        ),
        kw(
            "option forwardfor",
            S::ALL,
            parse_forwardfor,
            doc!(
                Parsed,
                "option forwardfor [except <network>] [header <name>] [if-none]",
                "Adds the client address in X-Forwarded-For (or <name>) to requests sent to servers.",
                "option forwardfor except 127.0.0.0/8"
            ),
        ),
        kw(
            "option originalto",
            S::ALL,
            parse_originalto,
            doc!(
                Parsed,
                "option originalto [except <network>] [header <name>]",
                "Adds the original destination address in X-Original-To (or <name>) to requests sent to servers.",
                "option originalto header X-Dest"
            ),
        ),
        conn_mode_opt!("http-keep-alive", HttpConnMode::KeepAlive, "Keeps both connections open between transactions (the default)."),
        conn_mode_opt!("http-server-close", HttpConnMode::ServerClose, "Closes the server connection after each response, keeping the client one alive."),
        conn_mode_opt!("httpclose", HttpConnMode::Close, "Closes both connections after each response."),
        crate::bool_option!(
            "http-buffer-request",
            S::ALL,
            http.options.buffer_request,
            "Waits for the whole request body (or a full buffer) before processing the request."
        ),
        crate::bool_option!(
            "http-pretend-keepalive",
            S::BE,
            http.options.pretend_keepalive,
            "With http-server-close or httpclose: requests to the server do not carry 'Connection: close' (a server may otherwise stop chunking or compressing); the server connection still closes after the response."
        ),
        crate::bool_option!("http-no-delay", S::ALL, http.options.no_delay, "Sends HTTP data as soon as possible, without merging segments."),
        crate::bool_option!(
            "http-ignore-probes",
            S::FE,
            http.options.ignore_probes,
            "Does not log connections closed or timed out before any request byte (sluiced never answers them 408 anyway)."
        ),
        crate::bool_option!("http-use-proxy-header", S::FE, http.options.use_proxy_header, "Treats a Proxy-Connection header like Connection."),
        opt(
            "option accept-invalid-http-request",
            S::FE,
            |a, p| accept_invalid(a, p, true),
            doc!(
                Parsed,
                "[no] option accept-invalid-http-request",
                "Accepted for compatibility; sluiced still rejects invalid requests.",
                "option accept-invalid-http-request"
            ),
        ),
        opt(
            "option accept-invalid-http-response",
            S::BE,
            |a, p| accept_invalid(a, p, false),
            doc!(
                Parsed,
                "[no] option accept-invalid-http-response",
                "Accepted for compatibility; sluiced still rejects invalid responses.",
                "option accept-invalid-http-response"
            ),
        ),
        crate::bool_option!(
            "h1-case-adjust-bogus-client",
            S::FE,
            http.options.h1_case_adjust_bogus_client,
            "Rewrites response header names' case for HTTP/1 clients that need it."
        ),
        crate::bool_option!(
            "h1-case-adjust-bogus-server",
            S::BE,
            http.options.h1_case_adjust_bogus_server,
            "Rewrites request header names' case for HTTP/1 servers that need it."
        ),
        kw(
            "option http-restrict-req-hdr-names",
            S::ALL,
            |a, p| {
                let v = a.need(0, "policy (preserve, delete or reject)")?;
                a.at_most(1)?;
                p.http.restrict_req_hdr_names = Some(match v {
                    "preserve" => HdrNamePolicy::Preserve,
                    "delete" => HdrNamePolicy::Delete,
                    "reject" => HdrNamePolicy::Reject,
                    other => return Err(format!("unknown policy '{other}' (expected preserve, delete or reject)")),
                });
                Ok(())
            },
            doc!(
                Parsed,
                "option http-restrict-req-hdr-names preserve|delete|reject",
                "What to do with request headers whose name has characters other than letters, digits and '-'.",
                "option http-restrict-req-hdr-names delete"
            ),
        ),
        kw(
            "http-reuse",
            S::BE,
            |a, p| {
                let v = a.need(0, "reuse mode (never, safe, aggressive or always)")?;
                a.at_most(1)?;
                p.http.reuse = Some(match v {
                    "never" => HttpReuse::Never,
                    "safe" => HttpReuse::Safe,
                    "aggressive" => HttpReuse::Aggressive,
                    "always" => HttpReuse::Always,
                    other => return Err(format!("unknown reuse mode '{other}' (expected never, safe, aggressive or always)")),
                });
                Ok(())
            },
            doc!(Parsed, "http-reuse never|safe|aggressive|always", "How idle server connections are shared between client connections.", "http-reuse safe"),
        ),
        kw(
            "monitor-uri",
            S::FE,
            |a, p| {
                let v = a.need(0, "URI")?;
                a.at_most(1)?;
                if v.is_empty() {
                    return Err("expects a non-empty URI".into());
                }
                p.http.monitor_uri = Some(v.to_owned());
                Ok(())
            },
            doc!(Parsed, "monitor-uri <uri>", "Answers 200 to requests for this URI, for external monitors.", "monitor-uri /health"),
        ),
        kw(
            "monitor fail",
            S::FE_ONLY,
            |a, p| {
                let r = parse_conditional(a, p, |_| Ok(()))?;
                if r.cond.is_none() {
                    return Err("expects 'if' or 'unless' followed by a condition".into());
                }
                p.http.monitor_fail.push(r);
                Ok(())
            },
            doc!(Parsed, "monitor fail if|unless <cond>", "Makes 'monitor-uri' answer 503 when the condition holds.", "monitor fail if site_dead"),
        ),
        kw(
            "retry-on",
            S::BE,
            parse_retry_on,
            doc!(
                Implemented,
                "retry-on <keyword>...",
                "Conditions that retry a request on another connection: none, conn-failure, empty-response, junk-response, response-timeout, 0rtt-rejected, 401, 403, 404, 408, 425, 500-504, all-retryable-errors, all.",
                "retry-on conn-failure empty-response 503"
            ),
        ),
        kw(
            "http-send-name-header",
            S::BE,
            |a, p| {
                let v = a.need(0, "header name")?;
                a.at_most(1)?;
                p.http.send_name_header = Some(v.to_owned());
                Ok(())
            },
            doc!(Parsed, "http-send-name-header <header>", "Sends the chosen server's name to it in this header.", "http-send-name-header X-Server"),
        ),
        kw(
            "compression algo",
            S::ALL,
            |a, p| compression_algos(a, &mut p.http.compression.algos),
            doc!(
                Parsed,
                "compression algo <algo>...",
                "Compresses responses for clients that accept one of these (gzip, deflate, raw-deflate; identity compresses nothing); equal q-values go to the first listed. A backend's list wins over its frontend's.",
                "compression algo gzip deflate"
            ),
        ),
        kw(
            "compression algo-res",
            S::ALL,
            |a, p| compression_algos(a, &mut p.http.compression.algos),
            doc!(
                Parsed,
                "compression algo-res <algo>...",
                "The same as 'compression algo' (HAProxy 2.8's name for the response side).",
                "compression algo-res gzip"
            ),
        ),
        kw(
            "compression algo-req",
            S::ALL,
            |a, p| compression_algos(a, &mut p.http.compression.algos_req),
            doc!(
                Parsed,
                "compression algo-req <algo>",
                "The algorithm to compress request bodies with (compression direction request or both).",
                "compression algo-req gzip"
            ),
        ),
        kw(
            "compression type",
            S::ALL,
            |a, p| compression_types(a, &mut p.http.compression.types),
            doc!(
                Parsed,
                "compression type <mime type>...",
                "Response types to compress, matched as case-insensitive prefixes of Content-Type; every type when unset.",
                "compression type text/html text/plain application/json"
            ),
        ),
        kw(
            "compression type-res",
            S::ALL,
            |a, p| compression_types(a, &mut p.http.compression.types),
            doc!(Parsed, "compression type-res <mime type>...", "The same as 'compression type'.", "compression type-res text/html"),
        ),
        kw(
            "compression type-req",
            S::ALL,
            |a, p| compression_types(a, &mut p.http.compression.types_req),
            doc!(Parsed, "compression type-req <mime type>...", "Request body types to compress.", "compression type-req application/json"),
        ),
        kw(
            "compression direction",
            S::ALL,
            |a, p| {
                let d = match a.need(0, "direction")? {
                    "response" => CompressionDirection::Response,
                    "request" => CompressionDirection::Request,
                    "both" => CompressionDirection::Both,
                    other => return Err(format!("unknown direction '{other}' (expected request, response or both)")),
                };
                a.at_most(1)?;
                if d != CompressionDirection::Response {
                    a.warn("compressing requests is not applied yet: request bodies pass as they are".to_string());
                }
                p.http.compression.direction = Some(d);
                Ok(())
            },
            doc!(
                Parsed,
                "compression direction request|response|both",
                "What to compress: responses (the default), requests, or both; request compression is not applied yet (warned).",
                "compression direction response"
            ),
        ),
        kw(
            "compression minsize-res",
            S::ALL,
            |a, p| {
                p.http.compression.minsize_res = Some(crate::config::units::parse_size(a.need(0, "size")?)?);
                a.at_most(1)
            },
            doc!(
                Parsed,
                "compression minsize-res <size>",
                "Responses whose Content-Length is smaller pass uncompressed (chunked ones are compressed whatever their size).",
                "compression minsize-res 1k"
            ),
        ),
        kw(
            "compression minsize-req",
            S::ALL,
            |a, p| {
                p.http.compression.minsize_req = Some(crate::config::units::parse_size(a.need(0, "size")?)?);
                a.at_most(1)
            },
            doc!(Parsed, "compression minsize-req <size>", "Request bodies smaller than this are not compressed.", "compression minsize-req 1k"),
        ),
        kw(
            "compression offload",
            S::ALL,
            |a, p| {
                a.at_most(0)?;
                p.http.compression.offload = true;
                Ok(())
            },
            doc!(
                Parsed,
                "compression offload",
                "Removes Accept-Encoding from requests whose response sluiced will compress, so that the server sends it whole.",
                "compression offload"
            ),
        ),
    ]
}

fn compression_algos(a: &mut KwArgs<'_>, to: &mut Vec<CompressionAlgo>) -> Result<(), String> {
    if a.args().is_empty() {
        return Err("expects at least one algorithm (identity, gzip, deflate, raw-deflate)".into());
    }
    for w in a.args() {
        to.push(match w.text.as_str() {
            "identity" => CompressionAlgo::Identity,
            "gzip" => CompressionAlgo::Gzip,
            "deflate" => CompressionAlgo::Deflate,
            "raw-deflate" => CompressionAlgo::RawDeflate,
            other => return Err(format!("unknown compression algorithm '{other}' (expected identity, gzip, deflate or raw-deflate)")),
        });
    }
    Ok(())
}

fn compression_types(a: &mut KwArgs<'_>, to: &mut Vec<String>) -> Result<(), String> {
    if a.args().is_empty() {
        return Err("expects at least one MIME type".into());
    }
    to.extend(a.args().iter().map(|w| w.text.clone()));
    Ok(())
}

fn accept_invalid(a: &mut KwArgs<'_>, p: &mut Proxy, request: bool) -> Result<(), String> {
    a.at_most(0)?;
    let field = if request { &mut p.http.options.accept_invalid_request } else { &mut p.http.options.accept_invalid_response };
    *field = Some(!a.negated);
    if !a.negated {
        let what = if request { "requests" } else { "responses" };
        a.warn(format!("sluiced stays strict: invalid HTTP {what} are still rejected"));
    }
    Ok(())
}

fn errorfile_code(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(c) if ERRORFILE_CODES.contains(&c) => Ok(c),
        _ => Err(format!("status code '{text}' cannot be customized")),
    }
}

fn parse_errorfile(a: &mut KwArgs<'_>, p: &mut Proxy) -> Result<(), String> {
    let status = errorfile_code(a.need(0, "status code")?)?;
    let path = a.need(1, "file name")?;
    a.at_most(2)?;
    check_file(path)?;
    p.http.error_pages.push(ErrorPages::File { status, path: path.to_owned() });
    Ok(())
}

fn parse_errorfiles(a: &mut KwArgs<'_>, p: &mut Proxy) -> Result<(), String> {
    let name = a.need(0, "http-errors section name")?;
    let codes = a.args()[1..].iter().map(|w| errorfile_code(&w.text)).collect::<Result<Vec<_>, _>>()?;
    p.add_ref(RefKind::HttpErrors, name, a.span, a.keyword);
    p.http.error_pages.push(ErrorPages::Section { name: name.to_owned(), codes });
    Ok(())
}

/// The `except`/`header`/`if-none` arguments of `option forwardfor` and `option originalto`.
fn forward_args(a: &KwArgs<'_>, default_header: &str, if_none_ok: bool) -> Result<(Option<IpNet>, String, bool), String> {
    let (mut except, mut header, mut if_none) = (None, default_header.to_owned(), false);
    let mut words = a.args().iter().map(|w| w.text.as_str());
    while let Some(w) = words.next() {
        match w {
            "except" => except = Some(IpNet::parse(words.next().ok_or("'except' expects a network")?)?),
            "header" => match words.next() {
                Some(h) if !h.is_empty() => header = h.to_owned(),
                _ => return Err("'header' expects a header name".into()),
            },
            "if-none" if if_none_ok => if_none = true,
            other => return Err(format!("unexpected argument '{other}'")),
        }
    }
    Ok((except, header, if_none))
}

fn parse_forwardfor(a: &mut KwArgs<'_>, p: &mut Proxy) -> Result<(), String> {
    let (except, header, if_none) = forward_args(a, "X-Forwarded-For", true)?;
    p.http.forwardfor = Some(ForwardFor { except, header, if_none });
    Ok(())
}

fn parse_originalto(a: &mut KwArgs<'_>, p: &mut Proxy) -> Result<(), String> {
    let (except, header, _) = forward_args(a, "X-Original-To", false)?;
    p.http.originalto = Some(OriginalTo { except, header });
    Ok(())
}

fn parse_retry_on(a: &mut KwArgs<'_>, p: &mut Proxy) -> Result<(), String> {
    let mut out = Vec::new();
    for w in a.args() {
        let t = w.text.as_str();
        out.push(match t {
            "none" => RetryOn::None,
            "conn-failure" => RetryOn::ConnFailure,
            "empty-response" => RetryOn::EmptyResponse,
            "junk-response" => RetryOn::JunkResponse,
            "response-timeout" => RetryOn::ResponseTimeout,
            "0rtt-rejected" => RetryOn::ZeroRttRejected,
            "all-retryable-errors" => RetryOn::AllRetryableErrors,
            "all" => RetryOn::All,
            _ => match t.parse::<u16>() {
                Ok(s) if RETRY_STATUSES.contains(&s) => RetryOn::Status(s),
                _ => return Err(format!("unknown retry-on keyword '{t}'")),
            },
        });
    }
    if out.is_empty() {
        return Err("expects at least one keyword".into());
    }
    if out.len() > 1 && out.contains(&RetryOn::None) {
        return Err("'none' cannot be combined with other keywords".into());
    }
    p.http.retry_on = Some(out);
    Ok(())
}

pub fn doc_tables() -> Vec<DocTable> {
    vec![
        act::doc_table("http-request actions", HTTP_REQUEST_ACTIONS),
        act::doc_table("http-response actions", HTTP_RESPONSE_ACTIONS),
        act::doc_table("http-after-response actions", HTTP_AFTER_RESPONSE_ACTIONS),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::expr::Polarity;
    use crate::config::testing::{alerts, load, ok};
    use crate::l4::action::{CaptureSlot, VarScope};

    /// The HTTP configuration of the first proxy; fails on any alert.
    fn http(text: &str) -> ProxyHttp {
        ok(text).proxies.remove(0).http
    }

    fn has(errs: &[String], parts: &[&str]) -> bool {
        errs.iter().any(|e| parts.iter().all(|p| e.contains(p)))
    }

    /// A frontend with an ACL named `bad`; the line after this text is line 5.
    const FE: &str = "frontend fe\n  mode http\n  bind :8080\n  acl bad path_beg /x\n";
    const BE: &str = "backend be\n  mode http\n  server s 127.0.0.1:80\n  acl bad path_beg /x\n";

    fn existing_file() -> String {
        concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml").to_string()
    }

    fn req(line: &str) -> HttpAction {
        http(&format!("{FE}  http-request {line}\n")).request_rules.remove(0).action
    }

    fn req_err(line: &str) -> Vec<String> {
        alerts(&format!("{FE}  http-request {line}\n"))
    }

    #[test]
    fn request_rule_keeps_action_condition_and_line() {
        let h = http(&format!("{FE}  http-request deny if bad\n  http-request allow\n"));
        assert_eq!(h.request_rules.len(), 2);
        assert!(matches!(h.request_rules[0].action, HttpAction::Deny(_)));
        assert_eq!(h.request_rules[0].cond.as_ref().map(|c| c.polarity), Some(Polarity::If));
        assert_eq!(h.request_rules[0].span.line, 5);
        assert_eq!(h.request_rules[1].action, HttpAction::Allow);
    }

    #[test]
    fn deny_defaults_to_403() {
        let HttpAction::Deny(r) = req("deny") else { panic!() };
        assert_eq!(r.status, 403);
        assert_eq!(r.body, ReplyBody::Empty);
    }

    #[test]
    fn deny_takes_deny_status() {
        let HttpAction::Deny(r) = req("deny deny_status 429 if bad") else { panic!() };
        assert_eq!(r.status, 429);
    }

    #[test]
    fn deny_status_out_of_range_is_an_error() {
        assert!(has(&req_err("deny deny_status 700"), &["t.cfg:5", "'http-request'", "invalid status code '700'"]));
    }

    #[test]
    fn tarpit_defaults_to_500() {
        let HttpAction::Tarpit(r) = req("tarpit") else { panic!() };
        assert_eq!(r.status, 500);
    }

    #[test]
    fn response_deny_defaults_to_502() {
        let h = http(&format!("{BE}  http-response deny if bad\n"));
        let HttpAction::Deny(r) = &h.response_rules[0].action else { panic!() };
        assert_eq!(r.status, 502);
    }

    #[test]
    fn return_keeps_status_type_payload_and_headers() {
        let HttpAction::Return(r) = req("return status 404 content-type text/plain string nope hdr X-A %[src] hdr X-B b") else { panic!() };
        assert_eq!(r.status, 404);
        assert_eq!(r.content_type.as_deref(), Some("text/plain"));
        assert_eq!(r.body, ReplyBody::String("nope".into()));
        assert_eq!(r.headers.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["X-A", "X-B"]);
    }

    #[test]
    fn return_defaults_to_200() {
        let HttpAction::Return(r) = req("return") else { panic!() };
        assert_eq!(r.status, 200);
    }

    #[test]
    fn payload_without_content_type_is_an_error() {
        assert!(has(&req_err("return status 200 string ok"), &["t.cfg:5", "content-type must be given"]));
    }

    #[test]
    fn two_payloads_are_an_error() {
        assert!(has(&req_err("return content-type text/plain string a lf-string b"), &["only one payload"]));
    }

    #[test]
    fn reply_file_must_exist() {
        assert!(has(&req_err("return content-type text/html file /nonexistent/x.html"), &["t.cfg:5", "cannot open file '/nonexistent/x.html'"]));
        let HttpAction::Return(r) = req(&format!("return content-type text/plain file {}", existing_file())) else { panic!() };
        assert_eq!(r.body, ReplyBody::File(existing_file()));
        // A directory is no reply file: it would pass here and fail when the table reads it.
        assert!(has(&req_err("return content-type text/html file /tmp"), &["t.cfg:5", "'/tmp' is a directory"]));
    }

    #[test]
    fn reply_errorfiles_must_name_an_http_errors_section() {
        assert!(has(&req_err("deny errorfiles nosuch"), &["t.cfg:5", "http-errors section 'nosuch'"]));
    }

    #[test]
    fn content_type_with_error_files_is_ignored_with_a_warning() {
        let loaded = load(&format!("{FE}  http-request deny content-type text/plain default-errorfiles\n"));
        assert!(loaded.diags.warnings().any(|w| w.msg.contains("ignored with error files")));
        let h = loaded.config.expect("config").proxies.remove(0).http;
        let HttpAction::Deny(r) = &h.request_rules[0].action else { panic!() };
        assert_eq!(r.content_type, None);
    }

    #[test]
    fn redirect_options_parse_in_any_order() {
        let HttpAction::Redirect(r) = req("redirect code 301 location https://%[hdr(host)]%[path] drop-query set-cookie SEEN=1") else { panic!() };
        assert_eq!(r.kind, RedirectKind::Location);
        assert!(matches!(r.target, RedirectTarget::Format(_)));
        assert_eq!(r.code, 301);
        assert!(r.drop_query && !r.append_slash);
        assert_eq!(r.cookie, Some(RedirectCookie::Set { name: "SEEN".into(), value: Some("1".into()) }));
    }

    #[test]
    fn redirect_defaults_to_302() {
        let HttpAction::Redirect(r) = req("redirect scheme https") else { panic!() };
        assert_eq!((r.kind, r.code), (RedirectKind::Scheme, 302));
    }

    #[test]
    fn redirect_code_must_be_a_redirect_status() {
        assert!(has(&req_err("redirect location / code 200"), &["t.cfg:5", "invalid redirect code '200'"]));
    }

    #[test]
    fn redirect_without_a_type_is_an_error() {
        assert!(has(&req_err("redirect code 301"), &["'location', 'prefix' or 'scheme'"]));
    }

    #[test]
    fn legacy_redirect_keeps_a_literal_target() {
        let h = http(&format!("{FE}  redirect prefix https://example.com append-slash clear-cookie OLD if bad\n"));
        let r = &h.redirects[0];
        assert_eq!(r.action.target, RedirectTarget::Literal("https://example.com".into()));
        assert!(r.action.append_slash);
        assert_eq!(r.action.cookie, Some(RedirectCookie::Clear { name: "OLD".into() }));
        assert!(r.cond.is_some());
    }

    #[test]
    fn legacy_redirect_is_not_allowed_in_defaults() {
        assert!(has(&alerts("defaults\n  redirect location /\n"), &["t.cfg:2", "not allowed in 'defaults' sections"]));
    }

    #[test]
    fn set_and_add_header_keep_name_and_format() {
        assert!(matches!(req("set-header X-Client %[src]"), HttpAction::SetHeader { name, .. } if name == "X-Client"));
        assert!(matches!(req("add-header X-Via sluiced"), HttpAction::AddHeader { name, .. } if name == "X-Via"));
        assert!(has(&req_err("set-header X-Only"), &["'set-header' expects a value"]));
    }

    #[test]
    fn del_header_takes_a_matching_method() {
        assert_eq!(req("del-header X-Internal- -m beg"), HttpAction::DelHeader { name: "X-Internal-".into(), matching: HeaderMatch::Beg });
        assert_eq!(req("del-header Server"), HttpAction::DelHeader { name: "Server".into(), matching: HeaderMatch::Str });
        assert!(matches!(req("del-header ^x-.*$ -m reg"), HttpAction::DelHeader { matching: HeaderMatch::Reg(_), .. }));
        assert!(has(&req_err("del-header X -m fuzzy"), &["unknown matching method 'fuzzy'"]));
    }

    #[test]
    fn invalid_regex_is_an_error() {
        assert!(has(&req_err("replace-header Host ( x"), &["t.cfg:5", "invalid regex '('"]));
    }

    #[test]
    fn replace_value_compiles_its_regex() {
        let HttpAction::ReplaceValue { name, regex, .. } = req("replace-value X-Forwarded-For ^192\\.168\\.(.*)$ 172.16.\\1") else { panic!() };
        assert_eq!(name, "X-Forwarded-For");
        assert!(regex.0.is_match("192.168.1.1"));
    }

    #[test]
    fn uri_rewrites_name_their_part() {
        assert!(matches!(req("set-path /api%[path]"), HttpAction::SetRequestPart { part: RequestPart::Path, .. }));
        assert!(matches!(req("set-method GET"), HttpAction::SetRequestPart { part: RequestPart::Method, .. }));
        assert!(matches!(req("replace-uri ^/old/(.*) /new/\\1"), HttpAction::ReplaceRequestPart { part: RequestPart::Uri, .. }));
    }

    #[test]
    fn set_var_requires_a_scope() {
        assert!(has(&req_err("set-var(user) req.hdr(x-user)"), &["t.cfg:5", "'http-request'", "must start with a scope"]));
    }

    #[test]
    fn set_var_keeps_scope_and_name() {
        let HttpAction::Common(CommonAction::SetVar { var, conds, .. }) = req("set-var(txn.host) req.hdr(host)") else { panic!() };
        assert_eq!((var.scope, var.name.as_str()), (VarScope::Txn, "host"));
        assert!(conds.is_empty());
        assert!(matches!(req("set-var-fmt(req.a,ifempty) %[src]"), HttpAction::Common(CommonAction::SetVarFmt { .. })));
        assert!(matches!(req("unset-var(res.a)"), HttpAction::Common(CommonAction::UnsetVar { .. })));
    }

    #[test]
    fn request_capture_takes_len_or_id() {
        assert!(matches!(req("capture req.hdr(host) len 32"), HttpAction::Common(CommonAction::Capture { slot: CaptureSlot::Len(32), .. })));
        assert!(matches!(req("capture req.hdr(host) id 1"), HttpAction::Common(CommonAction::Capture { slot: CaptureSlot::Id(1), .. })));
    }

    #[test]
    fn response_capture_needs_an_id() {
        assert!(has(&alerts(&format!("{BE}  http-response capture res.hdr(server) len 10\n")), &["t.cfg:5", "'id <id>'"]));
    }

    #[test]
    fn track_sc_table_is_a_reference() {
        assert!(has(&req_err("track-sc0 src table nosuch"), &["t.cfg:5", "stick-table 'nosuch'"]));
    }

    #[test]
    fn auth_takes_an_optional_realm() {
        assert_eq!(req("auth realm Admin"), HttpAction::Auth { realm: Some("Admin".into()) });
        assert_eq!(req("auth"), HttpAction::Auth { realm: None });
    }

    #[test]
    fn set_timeout_takes_a_time_or_an_expression() {
        assert_eq!(req("set-timeout server 5m"), HttpAction::SetTimeout { timeout: StreamTimeout::Server, value: TimeOrExpr::Time(Duration::from_secs(300)) });
        assert!(matches!(req("set-timeout tunnel var(txn.t)"), HttpAction::SetTimeout { value: TimeOrExpr::Expr(_), .. }));
        assert!(has(&req_err("set-timeout queue 5s"), &["unknown timeout 'queue'"]));
        assert!(has(&req_err("set-timeout client 5x"), &["unexpected unit"]));
    }

    #[test]
    fn normalize_uri_takes_flags() {
        assert_eq!(req("normalize-uri path-strip-dotdot full"), HttpAction::NormalizeUri(UriNormalizer::PathStripDotdot { full: true }));
        assert_eq!(req("normalize-uri percent-to-uppercase"), HttpAction::NormalizeUri(UriNormalizer::PercentToUppercase { strict: false }));
        assert!(has(&req_err("normalize-uri tidy"), &["unknown normalizer 'tidy'"]));
    }

    #[test]
    fn use_service_knows_prometheus_exporter() {
        assert_eq!(req("use-service prometheus-exporter if bad"), HttpAction::UseService(Service::PrometheusExporter));
        assert!(has(&req_err("use-service lua.hello"), &["not supported"]));
    }

    #[test]
    fn wait_for_body_needs_a_time() {
        assert_eq!(req("wait-for-body time 1s at-least 1k"), HttpAction::WaitForBody { time: Duration::from_secs(1), at_least: Some(1024) });
        assert!(has(&req_err("wait-for-body at-least 1k"), &["expects 'time <time>'"]));
    }

    #[test]
    fn set_status_takes_an_optional_reason() {
        let h = http(&format!("{BE}  http-response set-status 503 reason \"Try later\"\n"));
        assert_eq!(h.response_rules[0].action, HttpAction::SetStatus { status: 503, reason: Some("Try later".into()) });
        assert!(has(&alerts(&format!("{BE}  http-after-response set-status 42\n")), &["t.cfg:5", "invalid status code '42'"]));
    }

    #[test]
    fn unknown_action_suggests_a_close_one() {
        assert!(has(&req_err("set-heade X y"), &["t.cfg:5", "unknown http-request action 'set-heade'; did you mean 'set-header'"]));
    }

    #[test]
    fn action_of_another_family_is_unknown_there() {
        assert!(has(&alerts(&format!("{BE}  http-after-response deny\n")), &["unknown http-after-response action 'deny'"]));
    }

    #[test]
    fn silent_drop_and_set_bandwidth_limit_parse() {
        assert!(matches!(req("silent-drop"), HttpAction::Common(CommonAction::SilentDrop { rst_ttl: None })));
        assert!(matches!(req("set-bandwidth-limit lim limit 1m period 1s"), HttpAction::SetBandwidthLimit { limit: Some(SizeOrExpr::Size(1048576)), .. }));
    }

    #[test]
    fn do_resolve_records_the_resolvers() {
        assert!(has(&req_err("do-resolve(txn.ip,dns) req.hdr(host)"), &["resolvers section 'dns'"]));
    }

    #[test]
    fn errorfile_code_must_be_customizable() {
        assert!(has(&alerts(&format!("{FE}  errorfile 418 {}\n", existing_file())), &["t.cfg:5", "'errorfile'", "status code '418' cannot be customized"]));
    }

    #[test]
    fn errorfile_must_exist() {
        assert!(has(&alerts(&format!("{FE}  errorfile 503 /nonexistent/503.http\n")), &["t.cfg:5", "cannot open file '/nonexistent/503.http'"]));
    }

    #[test]
    fn errorfile_is_recorded() {
        let h = http(&format!("{FE}  errorfile 503 {}\n", existing_file()));
        assert_eq!(h.error_pages, [ErrorPages::File { status: 503, path: existing_file() }]);
    }

    #[test]
    fn errorfiles_names_a_section_and_codes() {
        let h = http(&format!("http-errors site\n  errorfile 503 {}\n{FE}  errorfiles site 503 504\n", existing_file()));
        assert_eq!(h.error_pages, [ErrorPages::Section { name: "site".into(), codes: vec![503, 504] }]);
        assert!(has(&alerts(&format!("{FE}  errorfiles nosuch\n")), &["t.cfg:5", "http-errors section 'nosuch'"]));
    }

    #[test]
    fn http_error_defines_a_reply() {
        let h = http(&format!("{FE}  http-error status 503 content-type text/plain string busy\n"));
        assert_eq!(h.http_errors[0].status, 503);
        assert!(has(&alerts(&format!("{FE}  http-error status 418\n")), &["status code '418' cannot be customized"]));
        assert!(has(&alerts(&format!("{FE}  http-error content-type text/plain string x\n")), &["expects 'status <code>'"]));
    }

    #[test]
    fn forwardfor_takes_except_header_and_if_none() {
        let h = http(&format!("{FE}  option forwardfor except 127.0.0.0/8 header X-Client if-none\n"));
        let f = h.forwardfor.expect("forwardfor");
        assert_eq!(f.except.map(|n| n.prefix), Some(8));
        assert_eq!(f.header, "X-Client");
        assert!(f.if_none);
        assert!(has(&alerts(&format!("{FE}  option forwardfor except nonsense\n")), &["t.cfg:5", "invalid network"]));
    }

    #[test]
    fn forwardfor_defaults_to_x_forwarded_for() {
        assert_eq!(http(&format!("{FE}  option forwardfor\n")).forwardfor.map(|f| f.header), Some("X-Forwarded-For".into()));
    }

    #[test]
    fn originalto_rejects_if_none() {
        assert_eq!(http(&format!("{FE}  option originalto\n")).originalto.map(|f| f.header), Some("X-Original-To".into()));
        assert!(has(&alerts(&format!("{FE}  option originalto if-none\n")), &["unexpected argument 'if-none'"]));
    }

    #[test]
    fn last_connection_mode_wins() {
        let h = http(&format!("{FE}  option httpclose\n  option http-server-close\n"));
        assert_eq!(h.conn_mode, Some(HttpConnMode::ServerClose));
        let h = http(&format!("{FE}  option httpclose\n  no option httpclose\n"));
        assert_eq!(h.conn_mode, Some(HttpConnMode::KeepAlive));
    }

    #[test]
    fn accept_invalid_options_warn_that_sluiced_stays_strict() {
        let loaded = load(&format!("{FE}  option accept-invalid-http-request\n"));
        assert!(loaded.diags.warnings().any(|w| w.msg.contains("sluiced stays strict") && w.span.as_ref().is_some_and(|s| s.line == 5)));
        assert_eq!(loaded.config.expect("config").proxies[0].http.options.accept_invalid_request, Some(true));
    }

    #[test]
    fn backend_only_options_are_refused_in_frontends() {
        assert!(has(&alerts(&format!("{FE}  option http-pretend-keepalive\n")), &["t.cfg:5", "not allowed in 'frontend' sections"]));
        assert!(has(&alerts(&format!("{FE}  http-reuse safe\n")), &["not allowed in 'frontend' sections"]));
    }

    #[test]
    fn boolean_options_record_negation() {
        let h = http(&format!("{BE}  option http-buffer-request\n  no option http-pretend-keepalive\n"));
        assert_eq!(h.options.buffer_request, Some(true));
        assert_eq!(h.options.pretend_keepalive, Some(false));
    }

    #[test]
    fn restrict_req_hdr_names_takes_a_policy() {
        assert_eq!(http(&format!("{FE}  option http-restrict-req-hdr-names reject\n")).restrict_req_hdr_names, Some(HdrNamePolicy::Reject));
        assert!(has(&alerts(&format!("{FE}  option http-restrict-req-hdr-names drop\n")), &["unknown policy 'drop'"]));
    }

    #[test]
    fn http_reuse_takes_a_mode() {
        assert_eq!(http(&format!("{BE}  http-reuse aggressive\n")).reuse, Some(HttpReuse::Aggressive));
        assert!(has(&alerts(&format!("{BE}  http-reuse sometimes\n")), &["unknown reuse mode 'sometimes'"]));
    }

    #[test]
    fn monitor_fail_needs_a_condition() {
        let h = http(&format!("{FE}  monitor-uri /health\n  monitor fail if bad\n"));
        assert_eq!(h.monitor_uri.as_deref(), Some("/health"));
        assert_eq!(h.monitor_fail.len(), 1);
        assert!(has(&alerts(&format!("{FE}  monitor fail\n")), &["t.cfg:5", "expects 'if' or 'unless'"]));
    }

    #[test]
    fn retry_on_parses_keywords_and_statuses() {
        let h = http(&format!("{BE}  retry-on conn-failure empty-response 503 0rtt-rejected\n"));
        assert_eq!(h.retry_on, Some(vec![RetryOn::ConnFailure, RetryOn::EmptyResponse, RetryOn::Status(503), RetryOn::ZeroRttRejected]));
    }

    #[test]
    fn retry_policy_expands_the_keyword_groups() {
        let p = |k: &[RetryOn]| RetryPolicy::compile(Some(k));
        let default = RetryPolicy::compile(None);
        assert!(default.conn_failure && !default.layer7());
        let none = p(&[RetryOn::None]);
        assert!(!none.conn_failure && !none.layer7());
        let some = p(&[RetryOn::EmptyResponse, RetryOn::Status(503)]);
        assert!(!some.conn_failure && some.empty_response && !some.junk_response);
        assert!(some.on_status(503) && !some.on_status(502) && !some.on_status(200));
        let are = p(&[RetryOn::AllRetryableErrors]);
        assert!(are.conn_failure && are.empty_response && are.junk_response && are.response_timeout);
        assert!([500, 502, 503, 504].iter().all(|&s| are.on_status(s)));
        assert!([401, 403, 404, 408, 425, 501].iter().all(|&s| !are.on_status(s)));
        let all = p(&[RetryOn::All]);
        assert!(RETRY_STATUSES.iter().all(|&s| all.on_status(s)) && all.conn_failure);
    }

    #[test]
    fn retry_on_refuses_unknown_keywords_and_none_with_others() {
        assert!(has(&alerts(&format!("{BE}  retry-on 200\n")), &["t.cfg:5", "unknown retry-on keyword '200'"]));
        assert!(has(&alerts(&format!("{BE}  retry-on none 503\n")), &["'none' cannot be combined"]));
    }

    #[test]
    fn send_name_header_needs_a_name() {
        assert_eq!(http(&format!("{BE}  http-send-name-header X-Server\n")).send_name_header.as_deref(), Some("X-Server"));
        assert!(has(&alerts(&format!("{BE}  http-send-name-header\n")), &["missing header name"]));
    }

    #[test]
    fn compression_keywords_parse() {
        let h = http(&format!("{FE}  compression algo gzip deflate\n  compression type text/html text/plain\n  compression offload\n"));
        assert_eq!(h.compression.algos, [CompressionAlgo::Gzip, CompressionAlgo::Deflate]);
        assert_eq!(h.compression.types, ["text/html", "text/plain"]);
        assert!(h.compression.offload);
        assert!(has(&alerts(&format!("{FE}  compression algo brotli\n")), &["unknown compression algorithm 'brotli'"]));
    }

    #[test]
    fn haproxy_2_8_compression_keywords_parse_and_request_compression_is_warned_about() {
        let h = http(&format!(
            "{FE}  compression algo-res gzip\n  compression type-res text/html\n  compression minsize-res 2k\n  compression direction response\n\
               compression algo-req deflate\n  compression type-req application/json\n  compression minsize-req 100\n"
        ));
        assert_eq!(h.compression.algos, [CompressionAlgo::Gzip]);
        assert_eq!(h.compression.types, ["text/html"]);
        assert_eq!(h.compression.minsize_res, Some(2048));
        assert_eq!(h.compression.direction, Some(CompressionDirection::Response));
        assert_eq!((h.compression.algos_req.as_slice(), h.compression.minsize_req), (&[CompressionAlgo::Deflate][..], Some(100)));
        let loaded = load(&format!("{FE}  compression direction both\n"));
        assert!(loaded.diags.warnings().any(|w| w.msg.contains("compressing requests is not applied yet")));
        assert!(has(&alerts(&format!("{FE}  compression direction sideways\n")), &["unknown direction 'sideways'"]));
    }

    #[test]
    fn every_action_table_entry_is_documented_once() {
        for t in doc_tables() {
            let mut names: Vec<&str> = t.entries.iter().map(|(n, _, _)| n.as_str()).collect();
            let n = names.len();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), n, "duplicate action in {}", t.title);
            for (name, _, d) in &t.entries {
                assert!(!d.syntax.is_empty() && !d.desc.is_empty() && !d.example.is_empty(), "{name}");
            }
        }
    }

    #[test]
    fn odd_inputs_do_not_panic() {
        for line in [
            "",
            "deny(",
            "set-var() x",
            "set-var(txn.) x",
            "sc-inc-gpc(,)",
            "sc-inc-gpc(1)",
            "sc-set-gpt0(0)",
            "capture",
            "capture x",
            "capture x len",
            "redirect",
            "redirect location",
            "redirect location / set-cookie =x",
            "return status",
            "return hdr",
            "return hdr X",
            "set-bandwidth-limit x limit \"\"",
            "set-timeout client \"\"",
            "do-resolve(txn.a) x",
            "do-resolve(txn.a,,) x",
            "wait-for-body time",
            "\"\"",
        ] {
            let _ = alerts(&format!("{FE}  http-request {line}\n"));
        }
    }
}
