//! Responses sluiced builds itself: HAProxy's built-in error pages, error files (`errorfile`,
//! `errorfiles`, `http-errors` sections), the replies of `return`, `deny`, `tarpit` and `http-error`,
//! and redirects.
//!
//! Everything that reads a file happens once, when the routing table is compiled ([`FileLoader`],
//! [`ErrorResponses::compile`], [`CompiledReply::compile`]); the data plane only renders. Rendering
//! takes a log-format evaluator as a callback, so this module knows nothing of streams.
//!
//! Bytes on the wire follow what HAProxy's HTTP/1 multiplexer writes: header names in lower case,
//! `name: value`, CRLF line ends. Header values produced at run time never carry CR, LF or NUL:
//! those bytes are dropped so a log-format result can not inject a header.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use crate::config::logformat::{LogFormat, parse_log_format};
use crate::config::model::HttpErrors;
use crate::l7::config::{ErrorPages, ProxyHttp, Redirect, RedirectCookie, RedirectKind, RedirectTarget, Reply, ReplyBody};

/// A complete response ready to be written to the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Status line, headers and body.
    pub bytes: Vec<u8>,
    /// The connection must be closed once the response is sent.
    pub close: bool,
}

/// The reason phrase HAProxy writes for a status it generates (`http_get_reason()`); codes it does
/// not name get the phrase of their class.
pub fn reason(status: u16) -> &'static str {
    let known = match status {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        210 => "Content Different",
        226 => "IM Used",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        310 => "Too many Redirects",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Time-out",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Requested range unsatisfiable",
        417 => "Expectation failed",
        418 => "I'm a teapot",
        421 => "Misdirected Request",
        422 => "Unprocessable entity",
        423 => "Locked",
        424 => "Method failure",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        449 => "Retry With",
        450 => "Blocked by Windows Parental Controls",
        451 => "Unavailable For Legal Reasons",
        456 => "Unrecoverable Error",
        499 => "client has closed connection",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway or Proxy Error",
        503 => "Service Unavailable",
        504 => "Gateway Time-out",
        505 => "HTTP Version not supported",
        506 => "Variant also negotiate",
        507 => "Insufficient storage",
        508 => "Loop detected",
        509 => "Bandwidth Limit Exceeded",
        510 => "Not extended",
        511 => "Network authentication required",
        520 => "Web server is returning an unknown error",
        _ => "",
    };
    if !known.is_empty() {
        return known;
    }
    match status {
        100..=199 => "Informational",
        200..=299 => "Success",
        300..=399 => "Redirection",
        400..=499 => "Client Error",
        500..=599 => "Server Error",
        _ => "Other",
    }
}

// ---------------------------------------------------------------------------------------------
// Error pages

/// A complete raw response: a built-in page or a loaded error file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorPage {
    /// The status its status line carries (0 for an empty file).
    status: u16,
    bytes: Cow<'static, [u8]>,
    /// The page asks for `connection: close` (or is empty: nothing is sent, the connection closes).
    close: bool,
}

impl ErrorPage {
    pub fn status(&self) -> u16 {
        self.status
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn close(&self) -> bool {
        self.close
    }

    pub fn to_response(&self) -> Response {
        Response { bytes: self.bytes.to_vec(), close: self.close }
    }

    /// Parses and normalises the content of an error file: a status line (`HTTP/1.0` or
    /// `HTTP/1.1`, a status from 200 to 599, an optional reason), header lines, an empty line, then
    /// the body. Lines may end with CRLF or LF. Header names are written in lower case as HAProxy
    /// sends them; a missing `content-length` is added, a wrong one is an error, and
    /// `transfer-encoding` is refused (the body is sent as is, never chunked). An empty file is
    /// accepted, as HAProxy does: nothing is sent and the connection is closed.
    pub fn parse(data: &[u8]) -> Result<ErrorPage, String> {
        if data.is_empty() {
            return Ok(ErrorPage { status: 0, bytes: Cow::Borrowed(b""), close: true });
        }
        let mut lines = Lines { data, pos: 0 };
        let Some(first) = lines.next() else {
            return Err("the status line is not terminated".into());
        };
        let (version, status, why) = parse_status_line(first)?;
        let mut out = Vec::with_capacity(data.len() + 32);
        out.extend_from_slice(version);
        out.extend_from_slice(format!(" {status} ").as_bytes());
        out.extend_from_slice(why);
        out.extend_from_slice(b"\r\n");
        let mut content_length: Option<u64> = None;
        let mut close = false;
        let mut terminated = false;
        let mut line_no = 1;
        while let Some(line) = lines.next() {
            line_no += 1;
            if line.is_empty() {
                terminated = true;
                break;
            }
            if line[0] == b' ' || line[0] == b'\t' {
                return Err(format!("line {line_no}: folded header lines are not allowed"));
            }
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                return Err(format!("line {line_no}: header line without ':'"));
            };
            let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
            if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
                return Err(format!("line {line_no}: invalid header name '{}'", String::from_utf8_lossy(name)));
            }
            if value.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n') {
                return Err(format!("line {line_no}: invalid character in the value of '{}'", String::from_utf8_lossy(name)));
            }
            if name.eq_ignore_ascii_case(b"transfer-encoding") {
                return Err(format!("line {line_no}: transfer-encoding is not supported in error files"));
            }
            if name.eq_ignore_ascii_case(b"content-length") {
                let n = std::str::from_utf8(value).ok().filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())).and_then(|v| v.parse::<u64>().ok());
                let Some(n) = n else {
                    return Err(format!("line {line_no}: invalid content-length '{}'", String::from_utf8_lossy(value)));
                };
                if content_length.is_some_and(|c| c != n) {
                    return Err(format!("line {line_no}: conflicting content-length values"));
                }
                if content_length.is_some() {
                    continue;
                }
                content_length = Some(n);
            }
            if name.eq_ignore_ascii_case(b"connection") && has_token(value, b"close") {
                close = true;
            }
            out.extend(name.iter().map(u8::to_ascii_lowercase));
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        if !terminated {
            return Err("the headers are not terminated by an empty line".into());
        }
        let body = lines.rest();
        match content_length {
            Some(n) if n != body.len() as u64 => {
                return Err(format!("content-length is {n} but the body has {} bytes", body.len()));
            }
            Some(_) => {}
            None => out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes()),
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
        Ok(ErrorPage { status, bytes: Cow::Owned(out), close })
    }
}

/// Splits on LF, removing a CR before it.
struct Lines<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Lines<'a> {
    /// The next complete line; `None` when no LF is left.
    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.data.get(self.pos..)?;
        let lf = rest.iter().position(|&b| b == b'\n')?;
        self.pos += lf + 1;
        let line = &rest[..lf];
        Some(line.strip_suffix(b"\r").unwrap_or(line))
    }

    fn rest(&self) -> &'a [u8] {
        self.data.get(self.pos..).unwrap_or(b"")
    }
}

fn parse_status_line(line: &[u8]) -> Result<(&[u8], u16, &[u8]), String> {
    let bad = || format!("invalid status line '{}' (expected 'HTTP/1.x <status> <reason>')", String::from_utf8_lossy(line));
    let version = line.get(..8).ok_or_else(bad)?;
    if version != b"HTTP/1.0" && version != b"HTTP/1.1" {
        return Err(bad());
    }
    let rest = line.get(8..).ok_or_else(bad)?;
    let rest = rest.strip_prefix(b" ").ok_or_else(bad)?;
    let code = rest.get(..3).ok_or_else(bad)?;
    if !code.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let status = code.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    let why = match rest.get(3..) {
        None | Some(b"") => &b""[..],
        Some(r) => r.strip_prefix(b" ").ok_or_else(bad)?,
    };
    if !(200..=599).contains(&status) {
        return Err(format!("status {status} in '{}' can not be sent as an error (expected 200 to 599)", String::from_utf8_lossy(line)));
    }
    if why.iter().any(|&b| b < 0x20 && b != b'\t') {
        return Err(bad());
    }
    Ok((version, status, why))
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|&b| b != b' ' && b != b'\t').unwrap_or(v.len());
    let end = v.iter().rposition(|&b| b != b' ' && b != b'\t').map_or(start, |e| e + 1);
    v.get(start..end).unwrap_or(b"")
}

/// RFC 9110 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether a comma-separated header value holds `token` (case-insensitive).
pub(crate) fn has_token(value: &[u8], token: &[u8]) -> bool {
    value.split(|&b| b == b',').any(|t| trim(t).eq_ignore_ascii_case(token))
}

macro_rules! builtin {
    ($status:literal, $reason:literal, $len:literal, $close:literal, $text:literal) => {
        ErrorPage {
            status: $status,
            bytes: Cow::Borrowed(
                concat!(
                    "HTTP/1.1 ",
                    $status,
                    " ",
                    $reason,
                    "\r\ncontent-length: ",
                    $len,
                    "\r\ncache-control: no-cache\r\n",
                    $close,
                    "content-type: text/html\r\n\r\n<html><body><h1>",
                    $status,
                    " ",
                    $reason,
                    "</h1>\n",
                    $text,
                    "\n</body></html>\n"
                )
                .as_bytes(),
            ),
            close: !$close.is_empty(),
        }
    };
}

/// HAProxy's built-in error responses, in the order of [`BUILTIN_ERROR_CODES`]. The texts,
/// reasons and lengths are HAProxy's (`http_err_msgs[]`), typos included: clients and monitoring
/// match on them.
static BUILTIN: [ErrorPage; 18] = [
    builtin!(200, "OK", "58", "", "Service ready."),
    builtin!(400, "Bad request", "90", "connection: close\r\n", "Your browser sent an invalid request."),
    builtin!(401, "Unauthorized", "112", "", "You need a valid user and password to access this content."),
    builtin!(403, "Forbidden", "93", "", "Request forbidden by administrative rules."),
    builtin!(404, "Not Found", "83", "", "The resource could not be found."),
    builtin!(405, "Method Not Allowed", "146", "", "A request was made of a resource using a request method not supported by that resource"),
    builtin!(407, "Unauthorized", "112", "", "You need a valid user and password to access this content."),
    builtin!(408, "Request Time-out", "110", "connection: close\r\n", "Your browser didn't send a complete request in time."),
    builtin!(410, "Gone", "114", "", "The resource is no longer available and will not be available again."),
    builtin!(413, "Payload Too Large", "106", "", "The request entity exceeds the maximum allowed."),
    builtin!(421, "Misdirected Request", "104", "", "Request sent to a non-authoritative server."),
    builtin!(425, "Too Early", "80", "", "Your browser sent early data."),
    builtin!(429, "Too Many Requests", "117", "", "You have sent too many requests in a given amount of time."),
    builtin!(500, "Internal Server Error", "97", "", "An internal server error occurred."),
    builtin!(501, "Not Implemented", "136", "", ".The server does not support the functionality required to fulfill the request."),
    builtin!(502, "Bad Gateway", "107", "", "The server returned an invalid or incomplete response."),
    builtin!(503, "Service Unavailable", "107", "", "No server is available to handle this request."),
    builtin!(504, "Gateway Time-out", "92", "", "The server didn't respond in time."),
];

/// The statuses HAProxy has a built-in page for.
pub const BUILTIN_ERROR_CODES: [u16; 18] = [200, 400, 401, 403, 404, 405, 407, 408, 410, 413, 421, 425, 429, 500, 501, 502, 503, 504];

/// The status whose error page answers for `status`: itself when it has a page, otherwise 500,
/// as HAProxy (`http_get_status_idx()`) does for `deny_status 418` without a payload.
pub fn error_code(status: u16) -> u16 {
    if BUILTIN_ERROR_CODES.contains(&status) { status } else { 500 }
}

/// HAProxy's built-in page for `status` (the 500 page for a status without one).
pub fn builtin_error(status: u16) -> &'static ErrorPage {
    let code = error_code(status);
    let i = BUILTIN_ERROR_CODES.iter().position(|&c| c == code).unwrap_or(13);
    &BUILTIN[i.min(BUILTIN.len() - 1)]
}

/// Reads the files a configuration names, each once, while a routing table is compiled.
#[derive(Debug)]
pub struct FileLoader {
    /// Files larger than this are refused: HAProxy requires a reply to fit in a buffer.
    max_size: usize,
    errorfiles: HashMap<String, Arc<ErrorPage>>,
    files: HashMap<String, Arc<[u8]>>,
}

impl FileLoader {
    /// `max_size`: `tune.bufsize` (HAProxy's default 16384).
    pub fn new(max_size: usize) -> FileLoader {
        FileLoader { max_size, errorfiles: HashMap::new(), files: HashMap::new() }
    }

    /// A file's content, read once; errors name the file.
    pub fn file(&mut self, path: &str) -> Result<Arc<[u8]>, String> {
        if let Some(f) = self.files.get(path) {
            return Ok(f.clone());
        }
        let data = std::fs::read(path).map_err(|e| format!("cannot read file '{path}': {e}"))?;
        if data.len() > self.max_size {
            return Err(format!("file '{path}' is {} bytes, more than the {} bytes a reply may take", data.len(), self.max_size));
        }
        let data: Arc<[u8]> = data.into();
        self.files.insert(path.to_owned(), data.clone());
        Ok(data)
    }

    /// An error file, read and validated once; errors name the file.
    pub fn errorfile(&mut self, path: &str) -> Result<Arc<ErrorPage>, String> {
        if let Some(p) = self.errorfiles.get(path) {
            return Ok(p.clone());
        }
        let data = self.file(path)?;
        let page = Arc::new(ErrorPage::parse(&data).map_err(|e| format!("error file '{path}' is not a valid HTTP response: {e}"))?);
        self.errorfiles.insert(path.to_owned(), page.clone());
        Ok(page)
    }
}

/// The error responses of one proxy, compiled from its `errorfile`, `errorfiles` and `http-error`
/// lines. Statuses it does not configure fall back to the next proxy given to [`error_response`],
/// then to the built-in page.
#[derive(Clone, Debug, Default)]
pub struct ErrorResponses {
    /// `errorfile`, or the files of `http-errors` sections through `errorfiles`; keyed by
    /// [`error_code`], one per code.
    pages: Vec<(u16, Arc<ErrorPage>)>,
    /// `http-error status <code> ...`: answers before the page of its code, which its
    /// `default-errorfiles` still reaches.
    replies: Vec<(u16, CompiledReply)>,
}

impl ErrorResponses {
    /// Loads every page the proxy names. `errorfile` and `errorfiles` lines apply in order, a later
    /// line replacing an earlier one for the codes it covers; `http-error` lines come on top of
    /// them, a later one winning. Every problem is reported, each naming its file or section.
    pub fn compile(http: &ProxyHttp, sections: &[HttpErrors], loader: &mut FileLoader) -> Result<ErrorResponses, Vec<String>> {
        let mut table = ErrorResponses::default();
        let mut errors = Vec::new();
        for pages in &http.error_pages {
            match pages {
                ErrorPages::File { status, path } => match loader.errorfile(path) {
                    Ok(p) => set(&mut table.pages, *status, p),
                    Err(e) => errors.push(format!("errorfile {status}: {e}")),
                },
                ErrorPages::Section { name, codes } => {
                    let Some(section) = sections.iter().find(|s| &s.name == name) else {
                        errors.push(format!("errorfiles: no http-errors section named '{name}'"));
                        continue;
                    };
                    for (status, path, span) in &section.files {
                        if !codes.is_empty() && !codes.contains(status) {
                            continue;
                        }
                        match loader.errorfile(path) {
                            Ok(p) => set(&mut table.pages, *status, p),
                            Err(e) => errors.push(format!("{span}: http-errors '{name}': errorfile {status}: {e}")),
                        }
                    }
                }
            }
        }
        for reply in &http.http_errors {
            match CompiledReply::compile(reply, ReplyKind::Error, sections, loader) {
                Ok(r) => set(&mut table.replies, reply.status, r),
                Err(e) => errors.push(format!("http-error status {}: {e}", reply.status)),
            }
        }
        if errors.is_empty() { Ok(table) } else { Err(errors) }
    }

    pub fn is_empty(&self) -> bool {
        self.pages.is_empty() && self.replies.is_empty()
    }

    fn page(&self, status: u16) -> Option<&ErrorPage> {
        get(&self.pages, status).map(|p| &**p)
    }
}

fn set<T>(list: &mut Vec<(u16, T)>, status: u16, value: T) {
    let code = error_code(status);
    match list.iter_mut().find(|(c, _)| *c == code) {
        Some(slot) => slot.1 = value,
        None => list.push((code, value)),
    }
}

fn get<T>(list: &[(u16, T)], status: u16) -> Option<&T> {
    let code = error_code(status);
    list.iter().find(|(c, _)| *c == code).map(|(_, v)| v)
}

/// The error response for `status`, looked up as HAProxy does: in each table in order (the
/// backend's, then the frontend's), then the built-in page.
pub fn error_response(status: u16, tables: &[&ErrorResponses], lf: &dyn Fn(&LogFormat) -> String) -> Response {
    for t in tables {
        if let Some(r) = get(&t.replies, status) {
            return r.render_with(tables, lf, false);
        }
        if let Some(p) = t.page(status) {
            return p.to_response();
        }
    }
    builtin_error(status).to_response()
}

/// An error page without `http-error` replies: what `default-errorfiles` inside an `http-error`
/// answers with, so a reply never refers to itself.
fn error_page(status: u16, tables: &[&ErrorResponses]) -> Response {
    tables.iter().find_map(|t| t.page(status)).unwrap_or_else(|| builtin_error(status)).to_response()
}

// ---------------------------------------------------------------------------------------------
// Replies

/// Which action a reply belongs to: without a payload, `return` answers with an empty body while
/// `deny`, `tarpit` and `http-error` answer with the error page of their status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyKind {
    Return,
    Error,
}

#[derive(Clone, Debug)]
enum Body {
    /// Status line, `hdr` lines and `content-length: 0`.
    Empty,
    /// `string` or `file`.
    Raw(Arc<[u8]>),
    /// `lf-string` or `lf-file`.
    Lf(LogFormat),
    /// `errorfile <file>`, or the section's page for `errorfiles <name>`: sent as is.
    Page(Arc<ErrorPage>),
    /// `default-errorfiles`: the proxies' page for the status, looked up when sent.
    Default,
}

/// A [`Reply`] with its files loaded and log-format files parsed.
#[derive(Clone, Debug)]
pub struct CompiledReply {
    status: u16,
    content_type: Option<String>,
    body: Body,
    /// Names in lower case, as written on the wire.
    headers: Vec<(String, LogFormat)>,
}

impl CompiledReply {
    /// Loads what the reply names. `errorfiles <name>` resolves to the section's page for the
    /// reply's status; a section without one leaves the reply without a payload, as in HAProxy.
    pub fn compile(reply: &Reply, kind: ReplyKind, sections: &[HttpErrors], loader: &mut FileLoader) -> Result<CompiledReply, String> {
        let body = match &reply.body {
            ReplyBody::Empty => match kind {
                ReplyKind::Return => Body::Empty,
                ReplyKind::Error => Body::Default,
            },
            ReplyBody::DefaultErrorfiles => Body::Default,
            ReplyBody::Errorfile(path) => Body::Page(loader.errorfile(path)?),
            ReplyBody::Errorfiles(name) => {
                let section = sections.iter().find(|s| &s.name == name).ok_or_else(|| format!("no http-errors section named '{name}'"))?;
                let code = error_code(reply.status);
                match section.files.iter().rev().find(|(s, _, _)| error_code(*s) == code) {
                    Some((_, path, span)) => Body::Page(loader.errorfile(path).map_err(|e| format!("{span}: {e}"))?),
                    None => Body::Empty,
                }
            }
            ReplyBody::File(path) => Body::Raw(loader.file(path)?),
            ReplyBody::LfFile(path) => {
                let data = loader.file(path)?;
                let text = std::str::from_utf8(&data).map_err(|_| format!("file '{path}' is not UTF-8 text, as a log-format file must be"))?;
                Body::Lf(parse_log_format(text).map_err(|e| format!("file '{path}': {e}"))?)
            }
            ReplyBody::String(s) => Body::Raw(Arc::from(s.as_bytes())),
            ReplyBody::LfString(f) => Body::Lf(f.clone()),
        };
        let headers = reply.headers.iter().map(|(n, v)| (n.to_ascii_lowercase(), v.clone())).collect();
        Ok(CompiledReply { status: reply.status, content_type: reply.content_type.clone(), body, headers })
    }

    /// The status the transaction reports (an error file may carry another one on the wire).
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The response, evaluating log-format parts with `lf`. `tables` are the proxies' error
    /// responses in lookup order, for replies that answer with an error page.
    pub fn render(&self, tables: &[&ErrorResponses], lf: &dyn Fn(&LogFormat) -> String) -> Response {
        self.render_with(tables, lf, true)
    }

    fn render_with(&self, tables: &[&ErrorResponses], lf: &dyn Fn(&LogFormat) -> String, replies: bool) -> Response {
        let body: Cow<'_, [u8]> = match &self.body {
            Body::Page(p) => return p.to_response(),
            Body::Default if replies => return error_response(self.status, tables, lf),
            Body::Default => return error_page(self.status, tables),
            Body::Empty => Cow::Borrowed(b""),
            Body::Raw(b) => Cow::Borrowed(&b[..]),
            Body::Lf(f) => Cow::Owned(lf(f).into_bytes()),
        };
        let mut out = Vec::with_capacity(128 + body.len());
        status_line(&mut out, self.status, reason(self.status));
        for (name, fmt) in &self.headers {
            let value = lf(fmt);
            if !value.is_empty() {
                header(&mut out, name.as_bytes(), value.as_bytes());
            }
        }
        header(&mut out, b"content-length", body.len().to_string().as_bytes());
        if let Some(ct) = self.content_type.as_deref().filter(|_| !body.is_empty()) {
            header(&mut out, b"content-type", ct.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&body);
        Response { bytes: out, close: false }
    }
}

fn status_line(out: &mut Vec<u8>, status: u16, why: &str) {
    out.extend_from_slice(format!("HTTP/1.1 {status} {why}\r\n").as_bytes());
}

/// Appends `name: value\r\n`, dropping CR, LF and NUL from the value.
pub(crate) fn header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend(value.iter().copied().filter(|&b| b != b'\r' && b != b'\n' && b != 0));
    out.extend_from_slice(b"\r\n");
}

// ---------------------------------------------------------------------------------------------
// Redirects

/// What a redirect needs from the request.
#[derive(Clone, Copy, Debug)]
pub struct RedirectRequest<'a> {
    /// The request target as received (origin form `/path?query`, or absolute form).
    pub target: &'a [u8],
    /// The first `Host` header's value, if any.
    pub host: Option<&'a [u8]>,
    /// The request body has not been fully received: HAProxy closes the connection rather than
    /// drain it.
    pub body_pending: bool,
}

/// The path of a request target with its query (`http_parse_path()`): from the first `/` after
/// the authority of an absolute URI; `/` when there is none (`*`, authority form).
fn target_path(target: &[u8]) -> &[u8] {
    let slash: &[u8] = b"/";
    let Some(&first) = target.first() else { return slash };
    if first == b'*' {
        return slash;
    }
    let mut rest = target;
    if first.is_ascii_alphabetic() {
        let scheme_end = target.iter().position(|&b| !(b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.')).unwrap_or(target.len());
        match target.get(scheme_end..).and_then(|r| r.strip_prefix(b"://")) {
            Some(r) => rest = r,
            None => return slash,
        }
    }
    match rest.iter().position(|&b| b == b'/') {
        Some(p) => rest.get(p..).unwrap_or(slash),
        None => slash,
    }
}

/// The `Location` a redirect sends, built as HAProxy does (`http_apply_redirect_rule()`):
/// - `location`: the target as given (`None` when a log-format target is empty and `ignore-empty`
///   is set: the rule is skipped);
/// - `prefix`: the target then the request's path and query (a literal prefix of exactly `/` adds
///   nothing, so `redirect prefix / set-cookie X` redirects to the same URL);
/// - `scheme`: the target, `://`, the Host header's value, the path and query.
///
/// `drop-query` cuts the path at its `?`; `append-slash` adds a `/` when the location does not
/// end with one.
pub fn location(redirect: &Redirect, req: &RedirectRequest<'_>, lf: &dyn Fn(&LogFormat) -> String) -> Option<Vec<u8>> {
    let text = |t: &RedirectTarget| -> String {
        match t {
            RedirectTarget::Literal(s) => s.clone(),
            RedirectTarget::Format(f) => lf(f),
        }
    };
    let path = || {
        let p = target_path(req.target);
        if redirect.drop_query { p.split(|&b| b == b'?').next().unwrap_or(p) } else { p }
    };
    let mut out = Vec::new();
    match redirect.kind {
        RedirectKind::Location => {
            let t = text(&redirect.target);
            if t.is_empty() && redirect.ignore_empty && matches!(redirect.target, RedirectTarget::Format(_)) {
                return None;
            }
            return Some(t.into_bytes());
        }
        RedirectKind::Prefix => {
            let skip = matches!(&redirect.target, RedirectTarget::Literal(s) if s == "/");
            if !skip {
                out.extend_from_slice(text(&redirect.target).as_bytes());
            }
            out.extend_from_slice(path());
        }
        RedirectKind::Scheme => {
            out.extend_from_slice(text(&redirect.target).as_bytes());
            out.extend_from_slice(b"://");
            out.extend_from_slice(req.host.unwrap_or(b""));
            out.extend_from_slice(path());
        }
    }
    if redirect.append_slash && out.last().is_some_and(|&b| b != b'/') {
        out.push(b'/');
    }
    Some(out)
}

/// The redirect response: `connection: close` when the request body is still coming,
/// `content-length: 0`, `location`, `cache-control: no-cache` for the temporary codes (302, 303,
/// 307) and the cookie (`set-cookie NAME[=VALUE]` sends `NAME[=VALUE]; path=/;`, `clear-cookie
/// NAME` sends `NAME=; path=/; Max-Age=0;`). `None` when the rule is skipped (`ignore-empty`).
pub fn redirect_response(redirect: &Redirect, req: &RedirectRequest<'_>, lf: &dyn Fn(&LogFormat) -> String) -> Option<Response> {
    let loc = location(redirect, req, lf)?;
    let (code, why) = match redirect.code {
        301 => (301, "Moved Permanently"),
        303 => (303, "See Other"),
        307 => (307, "Temporary Redirect"),
        308 => (308, "Permanent Redirect"),
        _ => (302, "Found"),
    };
    let mut out = Vec::with_capacity(128 + loc.len());
    status_line(&mut out, code, why);
    if req.body_pending {
        header(&mut out, b"connection", b"close");
    }
    header(&mut out, b"content-length", b"0");
    header(&mut out, b"location", &loc);
    if matches!(code, 302 | 303 | 307) {
        header(&mut out, b"cache-control", b"no-cache");
    }
    match &redirect.cookie {
        Some(RedirectCookie::Set { name, value }) => {
            let v = match value {
                Some(v) => format!("{name}={v}; path=/;"),
                None => format!("{name}; path=/;"),
            };
            header(&mut out, b"set-cookie", v.as_bytes());
        }
        Some(RedirectCookie::Clear { name }) => header(&mut out, b"set-cookie", format!("{name}=; path=/; Max-Age=0;").as_bytes()),
        None => {}
    }
    out.extend_from_slice(b"\r\n");
    Some(Response { bytes: out, close: req.body_pending })
}

#[cfg(test)]
#[path = "reply_tests.rs"]
mod tests;
