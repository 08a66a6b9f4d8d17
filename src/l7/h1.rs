//! HTTP/1.x message heads and framing, strictly.
//!
//! Heads are parsed in place in the connection buffer: a [`Head`] holds offsets into it, never
//! copies of names or values. A head in the plain form most senders use is split by
//! [`fasthead`](super::fasthead); any other goes to `httparse`, and the checks around it
//! refuse what it lets through and RFC 9112/9110 forbid (bare LF line ends, characters outside
//! RFC 3986 in the request target, a target form that does not fit the method, ...). The framing
//! functions then decide how the body is delimited and refuse every ambiguity a request
//! smuggling attack feeds on. When something is refused, the reason is re-derived by a slow
//! walk of the bytes: that walk only runs on the error path.
//!
//! Choices where the RFCs leave room (all on the strict side):
//! - Identical repeated Content-Length values (`5, 5` or two fields `5`) are accepted (RFC 9110
//!   8.6 allows it); differing ones are refused. The message is forwarded as received.
//! - Empty list elements in Transfer-Encoding or Content-Length are refused (RFC 9110 5.6.1 says to
//!   ignore them, but a backend that does not is a desync).
//! - Chunk extensions accept BWS around `;` and `=` as RFC 9112 7.1.1 requires, but whitespace
//!   before the CRLF of a chunk-size line (`5 \r\n`) is refused.
//! - Leading empty lines before a request line are skipped only as CRLF pairs (RFC 9112 2.2); a
//!   response must start with its status line.
//! - `#` (a fragment) and percent signs not followed by two hex digits are refused in a target.

use std::mem::MaybeUninit;
use std::ops::Range;

/// Size limits for a head.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `tune.bufsize - tune.maxrewrite`: a head larger than this is refused (431 for requests).
    pub max_head: usize,
    /// `tune.http.maxhdr` (HAProxy's default: 101).
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_head: 16384 - 1024, max_headers: 101 }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// One header field: offsets of the name and of the value (blanks around the value excluded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: Range<usize>,
    pub value: Range<usize>,
}

/// A parsed request or response head, as offsets into the buffer it was parsed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// Request method; empty range for responses.
    pub method: Range<usize>,
    /// Request target; empty range for responses.
    pub target: Range<usize>,
    pub version: Version,
    /// Response status; 0 for requests.
    pub status: u16,
    /// Response reason phrase; empty for requests.
    pub reason: Range<usize>,
    pub fields: Vec<Field>,
    /// Bytes the head takes, final CRLF included.
    pub len: usize,
}

impl Default for Head {
    /// An empty head, to be filled by [`parse_request_into`] or [`parse_response_into`].
    fn default() -> Head {
        Head { method: 0..0, target: 0..0, version: Version::Http11, status: 0, reason: 0..0, fields: Vec::new(), len: 0 }
    }
}

impl Head {
    /// The value of the first field named `name` (ASCII case-insensitive), if any.
    pub fn field<'a>(&self, buf: &'a [u8], name: &str) -> Option<&'a [u8]> {
        self.fields.iter().find(|f| slice(buf, &f.name).eq_ignore_ascii_case(name.as_bytes())).map(|f| slice(buf, &f.value))
    }
}

/// How a message body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body (GET without length, HEAD response, 1xx, 204, 304).
    None,
    Length(u64),
    Chunked,
    /// Responses only: the body runs until the server closes.
    Close,
}

/// Why a message is refused: the status to answer with and a reason for logs and `show errors`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct H1Error {
    pub status: u16,
    pub reason: &'static str,
}

const fn bad_request(reason: &'static str) -> H1Error {
    H1Error { status: 400, reason }
}

const fn bad_gateway(reason: &'static str) -> H1Error {
    H1Error { status: 502, reason }
}

/// `range` of `buf`, or nothing when a caller hands a head that does not belong to `buf`.
fn slice<'a>(buf: &'a [u8], range: &Range<usize>) -> &'a [u8] {
    buf.get(range.clone()).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Byte classes

macro_rules! byte_table {
    ($class:pat) => {{
        let mut t = [false; 256];
        let mut i = 0;
        while i < 256 {
            t[i] = matches!(i as u8, $class);
            i += 1;
        }
        t
    }};
}

/// RFC 9110 5.6.2 tchar.
const TCHAR: [bool; 256] = byte_table!(
    b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
);

/// RFC 3986 unreserved, reserved without `#`, and `%` (checked for two hex digits separately).
const TARGET: [bool; 256] = byte_table!(
    b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'-' | b'.' | b'_' | b'~' // unreserved
        | b':' | b'/' | b'?' | b'[' | b']' | b'@' // gen-delims but '#'
        | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' // sub-delims
        | b'%'
);

/// RFC 3986 reg-name bytes but `%` (a pct-encoded triplet, which [`authority`] checks apart):
/// unreserved and sub-delims.
const REG_NAME_NO_PERCENT: [bool; 256] = byte_table!(
    b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'-' | b'.' | b'_' | b'~'
        | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
);

fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| TCHAR[b as usize])
}

/// Field-value bytes (RFC 9110 5.5): HTAB, SP, VCHAR, obs-text; not NUL, CR, LF, other CTLs, DEL.
fn is_value_byte(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80
}

/// `s` is `lower` (lowercase) but for the case of its letters: ASCII case-insensitive equality
/// in two to three word compares once inlined with a constant `lower`. A byte of `s` is folded
/// with `| 0x20` only where `lower` has a letter, so nothing else passes for one (`\r | 0x20` is
/// `-`).
#[inline(always)]
pub(crate) fn is_lowercase<const N: usize>(s: &[u8], lower: &[u8; N]) -> bool {
    let Ok(s) = <&[u8; N]>::try_from(s) else { return false };
    // The `W` bytes at `at`, folded, equal `lower`'s.
    fn word_eq<const N: usize, const W: usize>(s: &[u8; N], lower: &[u8; N], at: usize) -> bool {
        let (mut got, mut fold, mut want) = ([0u8; 8], [0u8; 8], [0u8; 8]);
        got[..W].copy_from_slice(&s[at..at + W]);
        want[..W].copy_from_slice(&lower[at..at + W]);
        for (f, l) in fold.iter_mut().zip(&want) {
            *f = if l.is_ascii_lowercase() { 0x20 } else { 0 };
        }
        u64::from_le_bytes(got) | u64::from_le_bytes(fold) == u64::from_le_bytes(want)
    }
    match N {
        // Whole words, then one that ends at the end (overlapping the one before).
        8.. => (0..N / 8).all(|k| word_eq::<N, 8>(s, lower, 8 * k)) && word_eq::<N, 8>(s, lower, N - 8),
        4.. => word_eq::<N, 4>(s, lower, 0) && word_eq::<N, 4>(s, lower, N - 4),
        _ => s.eq_ignore_ascii_case(lower),
    }
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Every `%` is followed by two hex digits.
fn percent_encoding_ok(s: &[u8]) -> bool {
    memchr::memchr_iter(b'%', s).all(|i| matches!(s.get(i + 1..i + 3), Some([a, b]) if a.is_ascii_hexdigit() && b.is_ascii_hexdigit()))
}

/// Every LF ends a CRLF (RFC 9112 2.2: a bare LF as line terminator is refused here, although the
/// RFC lets recipients accept it: a backend that splits lines differently is a smuggling vector).
fn line_ends_ok(s: &[u8]) -> bool {
    memchr::memchr_iter(b'\n', s).all(|i| i > 0 && s[i - 1] == b'\r')
}

/// [`line_ends_ok`] for a head httparse parsed whole (`w[..len]`, its start line at `start`),
/// looking only where lines end: before each field's name, before the empty line, at the end,
/// and in the empty lines skipped before a request line. httparse lets a line end in a bare LF
/// but no LF anywhere else (not in a target, name, value or reason), so these are all the LFs
/// of the head; checking them costs a few loads per line instead of a search per line.
fn parsed_line_ends_ok(w: &[u8], len: usize, start: usize, fields: &[Field]) -> bool {
    let crlf_before = |at: usize| at >= 2 && w.get(at - 2..at) == Some(b"\r\n");
    leading_crlfs(w) == start && len >= 2 && crlf_before(len) && crlf_before(len - 2) && fields.iter().all(|f| crlf_before(f.name.start))
}

/// Bytes taken by CRLF pairs before a request line (RFC 9112 2.2 robustness).
fn leading_crlfs(s: &[u8]) -> usize {
    let mut p = 0;
    while s[p..].starts_with(b"\r\n") {
        p += 2;
    }
    p
}

// ---------------------------------------------------------------------------------------------
// Heads

/// Heads with at most this many fields are parsed without a heap allocation.
const STACK_FIELDS: usize = 128;

/// Runs `httparse` on `window` with room for exactly `max` fields (so that "more than `max`" is
/// its `TooManyHeaders`).
fn with_field_slots<'b, R>(max: usize, run: impl FnOnce(&mut [MaybeUninit<httparse::Header<'b>>]) -> R) -> R {
    if max <= STACK_FIELDS {
        let mut stack = [const { MaybeUninit::uninit() }; STACK_FIELDS];
        run(&mut stack[..max])
    } else {
        // A configuration with tune.http.maxhdr above STACK_FIELDS pays one allocation per head.
        let mut heap = Vec::new();
        heap.resize_with(max, MaybeUninit::uninit);
        run(&mut heap)
    }
}

/// Offsets of `part` (a sub-slice of `buf` handed back by httparse) in `buf`.
fn offsets(buf: &[u8], part: &[u8]) -> Range<usize> {
    let start = (part.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize).min(buf.len());
    start..(start + part.len()).min(buf.len())
}

fn fill_fields(buf: &[u8], headers: &[httparse::Header<'_>], fields: &mut Vec<Field>) {
    fields.clear();
    fields.extend(headers.iter().map(|h| Field { name: offsets(buf, h.name.as_bytes()), value: offsets(buf, h.value) }));
}

/// Parses a request head at the start of `buf`. `Ok(None)`: incomplete (read more, unless the
/// buffer is already at `limits.max_head`, which the parser reports as 414 or 431 itself).
pub fn parse_request(buf: &[u8], limits: &Limits) -> Result<Option<Head>, H1Error> {
    let mut head = Head::default();
    Ok(parse_request_into(buf, limits, &mut head)?.then_some(head))
}

/// [`parse_request`] into a caller's `Head`, reusing its `fields` vector (the hot path: no
/// allocation once the vector has grown). `Ok(false)`: incomplete, `head` is unspecified.
pub fn parse_request_into(buf: &[u8], limits: &Limits, head: &mut Head) -> Result<bool, H1Error> {
    let window = &buf[..buf.len().min(limits.max_head)];
    if super::fasthead::request(window, limits.max_headers, head) {
        check_target(slice(buf, &head.method), slice(buf, &head.target))?;
        return Ok(true);
    }
    parse_request_general(buf, limits, head)
}

/// [`parse_request_into`] without the fast path: `httparse` and the checks around it.
pub(crate) fn parse_request_general(buf: &[u8], limits: &Limits, head: &mut Head) -> Result<bool, H1Error> {
    let window = &buf[..buf.len().min(limits.max_head)];
    with_field_slots(limits.max_headers, |slots| {
        let mut req = httparse::Request::new(&mut []);
        match req.parse_with_uninit_headers(window, slots) {
            Ok(httparse::Status::Complete(len)) => {
                let method = offsets(buf, req.method.unwrap_or_default().as_bytes());
                fill_fields(buf, req.headers, &mut head.fields);
                if !parsed_line_ends_ok(window, len, method.start, &head.fields) {
                    return Err(bad_request("bare LF in head"));
                }
                let target = offsets(buf, req.path.unwrap_or_default().as_bytes());
                check_target(slice(buf, &method), slice(buf, &target))?;
                head.method = method;
                head.target = target;
                head.version = if req.version == Some(0) { Version::Http10 } else { Version::Http11 };
                head.status = 0;
                head.reason = 0..0;
                head.len = len;
                Ok(true)
            }
            Ok(httparse::Status::Partial) => {
                if !line_ends_ok(window) {
                    return Err(bad_request("bare LF in head"));
                }
                if window.len() < limits.max_head {
                    return Ok(false);
                }
                let start = leading_crlfs(window);
                if memchr::memmem::find(&window[start..], b"\r\n").is_none() {
                    Err(H1Error { status: 414, reason: "request line too long" })
                } else {
                    Err(H1Error { status: 431, reason: "request head too large" })
                }
            }
            Err(httparse::Error::TooManyHeaders) => Err(H1Error { status: 431, reason: "too many headers" }),
            Err(_) => Err(diagnose_request(window)),
        }
    })
}

/// Parses a response head at the start of `buf`. Errors are reported as 502.
pub fn parse_response(buf: &[u8], limits: &Limits) -> Result<Option<Head>, H1Error> {
    let mut head = Head::default();
    Ok(parse_response_into(buf, limits, &mut head)?.then_some(head))
}

/// [`parse_response`] into a caller's `Head`, reusing its `fields` vector.
pub fn parse_response_into(buf: &[u8], limits: &Limits, head: &mut Head) -> Result<bool, H1Error> {
    let window = &buf[..buf.len().min(limits.max_head)];
    if super::fasthead::response(window, limits.max_headers, head) {
        if !(100..=599).contains(&head.status) {
            return Err(bad_gateway("invalid status code"));
        }
        return Ok(true);
    }
    parse_response_general(buf, limits, head)
}

/// [`parse_response_into`] without the fast path: `httparse` and the checks around it.
pub(crate) fn parse_response_general(buf: &[u8], limits: &Limits, head: &mut Head) -> Result<bool, H1Error> {
    let window = &buf[..buf.len().min(limits.max_head)];
    // httparse skips empty lines before a status line: bytes there mean the previous response
    // was longer than announced.
    if window.first().is_some_and(|&b| b != b'H') {
        return Err(bad_gateway("invalid status line"));
    }
    with_field_slots(limits.max_headers, |slots| {
        let mut resp = httparse::Response::new(&mut []);
        match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut resp, window, slots) {
            Ok(httparse::Status::Complete(len)) => {
                fill_fields(buf, resp.headers, &mut head.fields);
                if !parsed_line_ends_ok(window, len, 0, &head.fields) {
                    return Err(bad_gateway("bare LF in head"));
                }
                let status = resp.code.unwrap_or_default();
                if !(100..=599).contains(&status) {
                    return Err(bad_gateway("invalid status code"));
                }
                // "HTTP/1.x NNN" then CRLF, or SP and a reason up to the CR (httparse checked its bytes).
                let line_end = memchr::memchr(b'\r', window).unwrap_or(12).max(12);
                head.method = 0..0;
                head.target = 0..0;
                head.version = if resp.version == Some(0) { Version::Http10 } else { Version::Http11 };
                head.status = status;
                head.reason = 13.min(line_end)..line_end;
                head.len = len;
                Ok(true)
            }
            Ok(httparse::Status::Partial) => {
                if !line_ends_ok(window) {
                    return Err(bad_gateway("bare LF in head"));
                }
                if window.len() < limits.max_head { Ok(false) } else { Err(bad_gateway("response head too large")) }
            }
            Err(httparse::Error::TooManyHeaders) => Err(bad_gateway("too many headers")),
            Err(_) => Err(diagnose_response(window)),
        }
    })
}

/// The request target is made of RFC 3986 characters and has the form its method calls for
/// (RFC 9112 3.2): asterisk-form for OPTIONS only, authority-form for CONNECT only.
fn check_target(method: &[u8], target: &[u8]) -> Result<(), H1Error> {
    if !target.iter().all(|&b| TARGET[b as usize]) || !percent_encoding_ok(target) {
        return Err(bad_request("invalid character in request target"));
    }
    if method == b"CONNECT" {
        return match authority(target) {
            Some(Authority { port: Some(_), .. }) => Ok(()),
            _ => Err(bad_request("CONNECT target not in authority-form")),
        };
    }
    if target == b"*" {
        return if method == b"OPTIONS" { Ok(()) } else { Err(bad_request("asterisk-form target without OPTIONS")) };
    }
    if target.starts_with(b"/") || absolute_form(target).is_some() {
        return Ok(());
    }
    Err(bad_request("invalid request target"))
}

/// The error-path walk: names what made httparse refuse a request head.
fn diagnose_request(w: &[u8]) -> H1Error {
    let start = leading_crlfs(w);
    let rest = &w[start..];
    let (line, complete) = match memchr::memchr(b'\n', rest) {
        Some(i) if i > 0 && rest[i - 1] == b'\r' => (&rest[..i - 1], true),
        Some(_) => return bad_request("bare LF in head"),
        None => (rest, false),
    };
    let mut parts = line.splitn(3, |&b| b == b' ');
    let method = parts.next().unwrap_or_default();
    if !is_token(method) && (complete || line.contains(&b' ')) {
        return bad_request("invalid method");
    }
    let target = parts.next().unwrap_or_default();
    if !target.iter().all(|&b| TARGET[b as usize]) {
        return bad_request("invalid character in request target");
    }
    match parts.next() {
        Some(version) => {
            if target.is_empty() {
                return bad_request("invalid request line");
            }
            if let Some(e) = version_error(version, complete) {
                return e;
            }
        }
        None if complete => return bad_request("invalid request line"),
        None => {}
    }
    if complete { diagnose_fields(w, start + line.len() + 2, 400) } else { bad_request("invalid request line") }
}

/// A version that is not HTTP/1.0 or HTTP/1.1: 505 if it has the syntax of one (RFC 9112 2.3),
/// 400 otherwise. `complete`: the line ended after `v`.
fn version_error(v: &[u8], complete: bool) -> Option<H1Error> {
    if v == b"HTTP/1.0" || v == b"HTTP/1.1" {
        return None;
    }
    let pattern = b"HTTP/d.d";
    let shaped = v.len() <= pattern.len()
        && v.iter().zip(pattern).all(|(&b, &p)| if p == b'd' { b.is_ascii_digit() } else { b == p })
        && (v.len() == pattern.len() || !complete);
    Some(if shaped { H1Error { status: 505, reason: "unsupported HTTP version" } } else { bad_request("malformed HTTP version") })
}

/// The error-path walk of a response's status line.
fn diagnose_response(w: &[u8]) -> H1Error {
    let line = match memchr::memchr(b'\n', w) {
        Some(i) if i > 0 && w[i - 1] == b'\r' => &w[..i - 1],
        Some(_) => return bad_gateway("bare LF in head"),
        None => w,
    };
    let complete = line.len() < w.len();
    let version = &line[..line.len().min(8)];
    if version != b"HTTP/1.0" && version != b"HTTP/1.1" {
        return bad_gateway("invalid HTTP version in status line");
    }
    let status = line.get(8..12).unwrap_or_default();
    let status_ok = status.len() == 4 && status[0] == b' ' && status[1..].iter().all(u8::is_ascii_digit);
    if !status_ok || !matches!(line.get(12), None | Some(b' ')) {
        return bad_gateway("invalid status code");
    }
    if line.iter().skip(12).any(|&b| !is_value_byte(b)) {
        return bad_gateway("invalid reason phrase");
    }
    if complete { diagnose_fields(w, line.len() + 2, 502) } else { bad_gateway("invalid status line") }
}

/// The error-path walk of the field lines from `p`: the first thing RFC 9112 5 forbids.
fn diagnose_fields(w: &[u8], mut p: usize, status: u16) -> H1Error {
    let first = p;
    let error = |reason| H1Error { status, reason };
    while let Some(rest) = w.get(p..).filter(|r| !r.is_empty()) {
        let (line, next) = match memchr::memchr(b'\n', rest) {
            Some(i) if i > 0 && rest[i - 1] == b'\r' => (&rest[..i - 1], Some(p + i + 1)),
            Some(_) => return error("bare LF in head"),
            None => (rest, None),
        };
        if line.is_empty() && next.is_some() {
            break;
        }
        if let [b' ' | b'\t', ..] = line {
            return error(if p == first { "whitespace before first header" } else { "obs-fold in header" });
        }
        let name_len = line.iter().position(|&b| !TCHAR[b as usize]).unwrap_or(line.len());
        match line.get(name_len) {
            Some(b':') if name_len == 0 => return error("empty header name"),
            Some(b':') => {}
            Some(b' ' | b'\t') => return error("space before colon"),
            Some(b'\0') => return error("NUL in header name"),
            Some(b'\r') => return error("CR in header name"),
            Some(_) => return error("invalid character in header name"),
            None if next.is_some() => return error("header without colon"),
            None => break,
        }
        for &b in &line[name_len + 1..] {
            match b {
                b'\0' => return error("NUL in header value"),
                b'\r' => return error("CR in header value"),
                _ if !is_value_byte(b) => return error("control character in header value"),
                _ => {}
            }
        }
        match next {
            Some(n) => p = n,
            None => break,
        }
    }
    error("malformed header")
}

// ---------------------------------------------------------------------------------------------
// Error positions (`show errors`)

/// Where in `buf` the head refused with `e` went wrong, for `show errors`: the first byte a
/// malformed line breaks on, the start of the field a framing rule refused (`head` is the parsed
/// head then), or the end of what was read for a head too large or cut short. Called on the
/// error path only: the head is walked again.
pub fn error_position(buf: &[u8], head: Option<&Head>, e: &H1Error, limits: &Limits, request: bool) -> usize {
    match head {
        Some(h) => framing_error_position(buf, h, e.reason),
        None => parse_error_position(&buf[..buf.len().min(limits.max_head)], e.reason, limits.max_headers, request),
    }
}

fn parse_error_position(w: &[u8], reason: &str, max_headers: usize, request: bool) -> usize {
    let start = if request { leading_crlfs(w) } else { 0 };
    let line_end = |from: usize| memchr::memchr(b'\n', &w[from.min(w.len())..]).map(|i| from + i);
    let first_end = line_end(start).unwrap_or(w.len());
    let line = &w[start..first_end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if reason.contains("target") {
        // The target is the second word of the request line: its first bad byte, or its start.
        let t0 = line.iter().position(|&b| b == b' ').map_or(0, |i| i + 1);
        let t = &line[t0.min(line.len())..];
        let t = &t[..t.iter().position(|&b| b == b' ').unwrap_or(t.len())];
        let bad =
            t.iter().position(|&b| !TARGET[b as usize]).or_else(|| memchr::memchr_iter(b'%', t).find(|&i| !percent_encoding_ok(&t[i..(i + 3).min(t.len())])));
        return start + t0 + bad.unwrap_or(0);
    }
    if reason == "too many headers" {
        // The first field line past the limit.
        let mut p = first_end + 1;
        for _ in 0..max_headers {
            match line_end(p) {
                Some(e) => p = e + 1,
                None => return w.len(),
            }
        }
        return p.min(w.len());
    }
    walk_head(w, start, request).err().unwrap_or(w.len())
}

/// The first byte of `w`, from `p`, that breaks RFC 9112's head grammar; `Ok` when none does (the
/// head is incomplete, or only a rule beyond the grammar refused it).
fn walk_head(w: &[u8], mut p: usize, request: bool) -> Result<(), usize> {
    // The byte at `$p`; the walk ends without finding anything where the input ends.
    macro_rules! at {
        ($p:expr) => {
            match w.get($p) {
                Some(&b) => b,
                None => return Ok(()),
            }
        };
    }
    macro_rules! version {
        () => {
            for want in b"HTTP/1." {
                if at!(p) != *want {
                    return Err(p);
                }
                p += 1;
            }
            if !matches!(at!(p), b'0' | b'1') {
                return Err(p);
            }
            p += 1;
        };
    }
    macro_rules! line_end {
        () => {
            if at!(p) != b'\r' {
                return Err(p);
            }
            if at!(p + 1) != b'\n' {
                return Err(p + 1);
            }
            p += 2;
        };
    }
    if request {
        let method = p;
        while TCHAR[at!(p) as usize] {
            p += 1;
        }
        if at!(p) != b' ' || p == method {
            return Err(p);
        }
        p += 1;
        while TARGET[at!(p) as usize] {
            p += 1;
        }
        if at!(p) != b' ' {
            return Err(p);
        }
        p += 1;
        version!();
    } else {
        version!();
        if at!(p) != b' ' {
            return Err(p);
        }
        p += 1;
        for _ in 0..3 {
            if !at!(p).is_ascii_digit() {
                return Err(p);
            }
            p += 1;
        }
        if !matches!(at!(p), b' ' | b'\r') {
            return Err(p);
        }
        while !matches!(at!(p), b'\r' | b'\n') {
            if !is_value_byte(w[p]) {
                return Err(p);
            }
            p += 1;
        }
    }
    line_end!();
    loop {
        match at!(p) {
            b'\r' => return if at!(p + 1) == b'\n' { Ok(()) } else { Err(p + 1) },
            b' ' | b'\t' | b'\n' => return Err(p),
            _ => {}
        }
        let name = p;
        while TCHAR[at!(p) as usize] {
            p += 1;
        }
        if at!(p) != b':' || p == name {
            return Err(p);
        }
        p += 1;
        while !matches!(at!(p), b'\r' | b'\n') {
            if !is_value_byte(w[p]) {
                return Err(p);
            }
            p += 1;
        }
        line_end!();
    }
}

/// The field a framing rule refused: the value of the Content-Length, Transfer-Encoding or Host
/// at fault, the name of a duplicate or look-alike field, the end of the head for a missing Host.
fn framing_error_position(buf: &[u8], head: &Head, reason: &str) -> usize {
    let named = |name: &'static [u8]| head.fields.iter().filter(move |f| slice(buf, &f.name).eq_ignore_ascii_case(name));
    let first = |name: &'static [u8]| named(name).next();
    let found = match reason {
        "underscore in framing header name" => first(b"content_length").into_iter().chain(first(b"transfer_encoding")).map(|f| f.name.start).min(),
        "invalid Content-Length" | "differing Content-Length values" => {
            // The first field whose value does not parse, or differs from the first value.
            let mut seen: Option<&[u8]> = None;
            named(b"content-length")
                .find(|f| {
                    slice(buf, &f.value).split(|&b| b == b',').map(trim_ows).any(|v| {
                        let bad = v.is_empty() || !v.iter().all(u8::is_ascii_digit) || seen.is_some_and(|s| s != v);
                        seen = seen.or(Some(v));
                        bad
                    })
                })
                .map(|f| f.value.start)
        }
        "Content-Length with Transfer-Encoding" | "body in CONNECT request" | "body framing in 1xx or 204 response" => {
            let (cl, te) = (first(b"content-length"), first(b"transfer-encoding"));
            match (cl, te) {
                (Some(c), Some(t)) => Some(c.name.start.max(t.name.start)),
                (c, t) => c.or(t).map(|f| f.name.start),
            }
        }
        "missing Host" => Some(head.len.saturating_sub(2)),
        "duplicate Host" => named(b"host").nth(1).map(|f| f.name.start),
        "invalid Host" | "Host differs from target authority" => first(b"host").map(|f| f.value.start),
        _ => named(b"transfer-encoding").next_back().map(|f| f.value.start),
    };
    found.unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Authorities (Host, CONNECT and absolute-form targets)

/// An authority without userinfo: `host[:port]`, host a reg-name or an IP-literal.
#[derive(Clone, Copy, Debug)]
struct Authority<'a> {
    host: &'a [u8],
    port: Option<u32>,
}

/// Parses `a` in one pass (it runs on the Host of every request): the host up to the first byte
/// that cannot be part of it, then nothing or `:` and one to five digits.
fn authority(a: &[u8]) -> Option<Authority<'_>> {
    let host_len = if let [b'[', inner @ ..] = a {
        // IP-literal: hex digits, `:` and `.`, closed by the first `]`.
        let n = inner.iter().position(|&b| !(b.is_ascii_hexdigit() || b == b':' || b == b'.')).unwrap_or(inner.len());
        if n == 0 || inner.get(n) != Some(&b']') {
            return None;
        }
        n + 2
    } else {
        // reg-name (which has no `:`): unreserved and sub-delims, `%` only before two hex digits.
        let mut n = 0;
        loop {
            n += a[n..].iter().position(|&b| !REG_NAME_NO_PERCENT[b as usize]).unwrap_or(a.len() - n);
            match a.get(n..n + 3) {
                Some([b'%', x, y]) if x.is_ascii_hexdigit() && y.is_ascii_hexdigit() => n += 3,
                _ if a.get(n) == Some(&b'%') => return None,
                _ => break,
            }
        }
        if n == 0 {
            return None;
        }
        n
    };
    let (host, rest) = a.split_at(host_len);
    let port = match rest {
        [] => None,
        [b':', digits @ ..] if (1..=5).contains(&digits.len()) => {
            let mut port = 0u32;
            for &d in digits {
                let d = d.wrapping_sub(b'0');
                if d > 9 {
                    return None;
                }
                port = port * 10 + u32::from(d);
            }
            Some(port)
        }
        _ => return None,
    };
    Some(Authority { host, port })
}

/// The authority of an absolute-form `http://` or `https://` target, and the scheme's port.
fn absolute_form(target: &[u8]) -> Option<(Authority<'_>, u32)> {
    let (rest, default_port) = if target.get(..7).is_some_and(|p| is_lowercase(p, b"http://")) {
        (&target[7..], 80)
    } else if target.get(..8).is_some_and(|p| is_lowercase(p, b"https://")) {
        (&target[8..], 443)
    } else {
        return None;
    };
    let end = rest.iter().position(|&b| b == b'/' || b == b'?').unwrap_or(rest.len());
    Some((authority(&rest[..end])?, default_port))
}

/// Same host (case-insensitively) and same port once missing ports take `default_port`.
fn same_authority(a: Authority<'_>, b: Authority<'_>, default_port: Option<u32>) -> bool {
    a.host.eq_ignore_ascii_case(b.host) && a.port.or(default_port) == b.port.or(default_port)
}

// ---------------------------------------------------------------------------------------------
// Framing

/// Content-Length fields, all of them (RFC 9110 8.6).
#[derive(Default)]
struct ContentLength {
    value: Option<u64>,
    error: Option<&'static str>,
}

impl ContentLength {
    fn add(&mut self, field: &[u8]) {
        // The common case, one number of at most 19 digits (which cannot overflow), in one pass.
        if (1..=19).contains(&field.len()) {
            let mut n = 0u64;
            for &b in field {
                let d = b.wrapping_sub(b'0');
                if d > 9 {
                    return self.add_list(field);
                }
                n = n * 10 + u64::from(d);
            }
            return self.add_element(Some(n));
        }
        self.add_list(field)
    }

    fn add_list(&mut self, field: &[u8]) {
        for element in field.split(|&b| b == b',') {
            let element = trim_ows(element);
            let parsed = if element.is_empty() || !element.iter().all(u8::is_ascii_digit) {
                None
            } else {
                element.iter().try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
            };
            self.add_element(parsed);
        }
    }

    /// One element of the list: `None` when it is not a number that fits a u64.
    fn add_element(&mut self, parsed: Option<u64>) {
        match (parsed, self.value) {
            (None, _) => self.error = self.error.or(Some("invalid Content-Length")),
            (Some(n), Some(v)) if n != v => self.error = self.error.or(Some("differing Content-Length values")),
            (Some(n), _) => self.value = Some(n),
        }
    }

    fn present(&self) -> bool {
        self.value.is_some() || self.error.is_some()
    }
}

/// Transfer-Encoding fields, all of them, as one list of codings (RFC 9112 6.1).
#[derive(Default)]
struct TransferEncoding {
    present: bool,
    /// `chunked` was the last coding so far.
    chunked_last: bool,
    /// A coding came after `chunked`.
    chunked_not_last: bool,
    /// A coding we do not know (501 on requests).
    unknown: bool,
    /// An empty element or one that is not a bare token.
    invalid: bool,
}

impl TransferEncoding {
    fn add(&mut self, field: &[u8]) {
        self.present = true;
        if is_lowercase(field, b"chunked") {
            // The common case: what the loop below makes of a lone `chunked`.
            self.chunked_not_last |= self.chunked_last;
            self.chunked_last = true;
            return;
        }
        for element in field.split(|&b| b == b',') {
            let coding = trim_ows(element);
            if !is_token(coding) {
                self.invalid = true;
            }
            if self.chunked_last {
                self.chunked_not_last = true;
            }
            self.chunked_last = coding.eq_ignore_ascii_case(b"chunked");
            let known = ["gzip", "x-gzip", "deflate", "compress", "x-compress"].iter().any(|k| coding.eq_ignore_ascii_case(k.as_bytes()));
            if !self.chunked_last && !known {
                self.unknown = true;
            }
        }
    }

    /// The checks common to requests and responses: whatever fails here is refused either way.
    fn check(&self, cl: &ContentLength, version: Version) -> Result<(), &'static str> {
        if self.present && cl.present() {
            return Err("Content-Length with Transfer-Encoding");
        }
        if let Some(e) = cl.error {
            return Err(e);
        }
        if !self.present {
            return Ok(());
        }
        if version == Version::Http10 {
            return Err("Transfer-Encoding in HTTP/1.0");
        }
        if self.invalid {
            return Err("invalid Transfer-Encoding");
        }
        if self.chunked_not_last {
            return Err("chunked not last in Transfer-Encoding");
        }
        Ok(())
    }
}

/// The Host fields of a request: how many, and the value of the first.
#[derive(Default)]
struct Hosts<'a> {
    count: usize,
    first: &'a [u8],
}

/// The framing fields of a head, all of them.
struct FramingFields<'a> {
    cl: ContentLength,
    te: TransferEncoding,
    hosts: Hosts<'a>,
    /// `Content_Length` or `Transfer_Encoding`: some servers (CGI, WSGI) fold `_` into `-`.
    lookalike: bool,
}

// Inlined: returned, the struct would be copied out field by field.
#[inline(always)]
fn framing_fields<'a>(buf: &'a [u8], head: &Head) -> FramingFields<'a> {
    let mut f = FramingFields { cl: ContentLength::default(), te: TransferEncoding::default(), hosts: Hosts::default(), lookalike: false };
    for field in &head.fields {
        // The length and the first letter first: most fields are none of these, and are passed
        // over at a compare or two; the few left are compared whole.
        let name = match field.name.len() {
            4 | 14 | 17 => slice(buf, &field.name),
            _ => continue,
        };
        let value = || slice(buf, &field.value);
        match name.first().map(|&b| b | 0x20) {
            Some(b'c') if is_lowercase(name, b"content-length") => f.cl.add(value()),
            Some(b't') if is_lowercase(name, b"transfer-encoding") => f.te.add(value()),
            Some(b'h') if is_lowercase(name, b"host") => {
                if f.hosts.count == 0 {
                    f.hosts.first = value();
                }
                f.hosts.count += 1;
            }
            Some(b'c') if is_lowercase(name, b"content_length") => f.lookalike = true,
            Some(b't') if is_lowercase(name, b"transfer_encoding") => f.lookalike = true,
            _ => {}
        }
    }
    f
}

/// The framing of a request, after checking every rule about it (Content-Length and
/// Transfer-Encoding together, duplicated or malformed lengths, Host, ...).
pub fn request_framing(buf: &[u8], head: &Head) -> Result<Framing, H1Error> {
    let FramingFields { cl, te, hosts, lookalike } = framing_fields(buf, head);
    if lookalike {
        return Err(bad_request("underscore in framing header name"));
    }
    te.check(&cl, head.version).map_err(bad_request)?;
    if te.present && te.unknown {
        return Err(H1Error { status: 501, reason: "unsupported transfer coding" });
    }
    if te.present && !te.chunked_last {
        return Err(bad_request("chunked not final in Transfer-Encoding"));
    }
    check_host(slice(buf, &head.method), slice(buf, &head.target), head.version, hosts)?;
    if slice(buf, &head.method) == b"CONNECT" {
        // RFC 9110 9.3.6: CONNECT has no content; whatever follows the head is the tunnel.
        if te.present || cl.value.is_some_and(|n| n > 0) {
            return Err(bad_request("body in CONNECT request"));
        }
        return Ok(Framing::None);
    }
    Ok(match cl.value {
        _ if te.present => Framing::Chunked,
        Some(n) => Framing::Length(n),
        None => Framing::None,
    })
}

/// Host: exactly one in HTTP/1.1 (RFC 9112 3.2), at most one in HTTP/1.0, a valid authority, and
/// the same as the target's authority when the target has one (absolute-form, CONNECT).
fn check_host(method: &[u8], target: &[u8], version: Version, hosts: Hosts<'_>) -> Result<(), H1Error> {
    let host = match hosts.count {
        0 if version == Version::Http11 => return Err(bad_request("missing Host")),
        0 => return Ok(()),
        1 => hosts.first,
        _ => return Err(bad_request("duplicate Host")),
    };
    let parsed = if host.is_empty() { None } else { Some(authority(host).ok_or(bad_request("invalid Host"))?) };
    let from_target = if method == b"CONNECT" {
        authority(target).map(|a| (a, a.port))
    } else if target.first() == Some(&b'/') {
        // origin-form, the common case: no authority.
        None
    } else {
        absolute_form(target).map(|(a, port)| (a, Some(port)))
    };
    match (from_target, parsed) {
        (None, _) => Ok(()),
        (Some((t, default_port)), Some(h)) if same_authority(t, h, default_port) => Ok(()),
        (Some(_), _) => Err(bad_request("Host differs from target authority")),
    }
}

/// The framing of a response to a request whose method was HEAD when `head_request`.
pub fn response_framing(buf: &[u8], head: &Head, head_request: bool) -> Result<Framing, H1Error> {
    response_framing_for(buf, head, if head_request { b"HEAD" } else { b"GET" })
}

/// The framing of a response to a request with method `method` (RFC 9112 6.3): no body after
/// HEAD, 1xx, 204, 304 or a 2xx to CONNECT (a tunnel follows), chunked when chunked is the final
/// coding, else the Content-Length, else until the server closes. Errors are 502.
pub fn response_framing_for(buf: &[u8], head: &Head, method: &[u8]) -> Result<Framing, H1Error> {
    let FramingFields { cl, te, lookalike, .. } = framing_fields(buf, head);
    if lookalike {
        return Err(bad_gateway("underscore in framing header name"));
    }
    te.check(&cl, head.version).map_err(bad_gateway)?;
    let status = head.status;
    if (100..200).contains(&status) || status == 204 {
        // RFC 9110 8.6 and 6.1: a server MUST NOT send these; if the body follows anyway, it
        // would be read as the next response.
        if te.present || cl.value.is_some_and(|n| n > 0) {
            return Err(bad_gateway("body framing in 1xx or 204 response"));
        }
        return Ok(Framing::None);
    }
    if method == b"HEAD" || status == 304 || (method == b"CONNECT" && (200..300).contains(&status)) {
        return Ok(Framing::None);
    }
    Ok(match cl.value {
        _ if te.present && te.chunked_last => Framing::Chunked,
        _ if te.present => Framing::Close,
        Some(n) => Framing::Length(n),
        None => Framing::Close,
    })
}

// ---------------------------------------------------------------------------------------------
// Chunked bodies

/// Progress of a streamed chunked body through [`Chunked::feed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of the input that belong to the body (framing included) and may be forwarded.
    pub consumed: usize,
    /// The last chunk and the trailers ended.
    pub done: bool,
}

/// Where the validator is in RFC 9112 7.1's grammar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkState {
    /// chunk-size digits (`line` counts them).
    Size,
    /// BWS after the size or an extension value: `;` must follow.
    Bws,
    /// BWS after an extension name: `;` or `=` must follow.
    NameBws,
    /// BWS before an extension name.
    PreName,
    Name,
    /// BWS before an extension value.
    PreValue,
    Value,
    Quoted,
    QuotedPair,
    /// After the closing quote of an extension value.
    AfterQuoted,
    /// CR of the chunk-size line seen.
    SizeLf,
    /// Chunk data: `size` bytes left.
    Data,
    DataCr,
    DataLf,
    /// Start of a trailer line or of the final CRLF.
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    FinalLf,
    Done,
    Failed(&'static str),
}

/// Longest chunk-size line (extensions included), and longest trailer section.
const MAX_FRAMING_LINE: usize = 16384;

/// The data of the complete chunks at the start of `raw`, a chunked body whose framing
/// [`Chunked`] already accepted (`req.body` of a buffered chunked request): sizes, extensions,
/// CRLFs and trailers dropped. Stops at the last chunk or at the first incomplete one.
pub fn dechunk(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(eol) = raw.get(i..).and_then(|r| r.windows(2).position(|w| w == b"\r\n")) {
        let line = &raw[i..i + eol];
        let hex = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        let Some(size) = std::str::from_utf8(&line[..hex]).ok().and_then(|h| usize::from_str_radix(h, 16).ok()) else { break };
        let start = i + eol + 2;
        if size == 0 {
            break;
        }
        match raw.get(start..start.saturating_add(size)) {
            Some(data) => out.extend_from_slice(data),
            None => {
                // An incomplete last chunk: what arrived of it is part of the body so far.
                out.extend_from_slice(raw.get(start..).unwrap_or_default());
                break;
            }
        }
        i = start + size + 2;
    }
    out
}

/// A streaming validator of chunked framing: bytes are checked as they pass, never rewritten.
#[derive(Clone, Debug)]
pub struct Chunked {
    state: ChunkState,
    /// The chunk size being read, then the data bytes left in the chunk.
    size: u64,
    /// Bytes of the current chunk-size line, or of the trailer section.
    line: usize,
    /// Status of errors: 400 for request bodies, 502 for response bodies.
    status: u16,
    /// Where in the input of the failing [`Chunked::feed`] call the framing broke.
    failed_at: usize,
}

impl Default for Chunked {
    fn default() -> Chunked {
        Chunked::new()
    }
}

impl Chunked {
    /// A validator for a request body: errors are 400.
    pub fn new() -> Chunked {
        Chunked { state: ChunkState::Size, size: 0, line: 0, status: 400, failed_at: 0 }
    }

    /// A validator for a response body: errors are 502.
    pub fn response() -> Chunked {
        Chunked { status: 502, ..Chunked::new() }
    }

    /// The final CRLF has been consumed.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// After [`Chunked::feed`] failed: the offset in its input of the byte the framing broke on
    /// (`show errors`).
    pub fn failed_at(&self) -> usize {
        self.failed_at
    }

    /// Checks the next bytes of the body. Stops after the final CRLF (what follows belongs to the
    /// next message). After an error, every call returns that error.
    pub fn feed(&mut self, data: &[u8]) -> Result<Progress, H1Error> {
        self.feed_with(data, |_| {})
    }

    /// [`Chunked::feed`], handing `on_data` each run of chunk data (framing left out) as it passes:
    /// what compression reads of a chunked body.
    #[inline]
    pub fn feed_with(&mut self, data: &[u8], mut on_data: impl FnMut(&[u8])) -> Result<Progress, H1Error> {
        use ChunkState::*;
        let mut i = 0;
        while i < data.len() {
            match self.state {
                Done => break,
                Failed(reason) => {
                    // `i > 0`: it failed in this call, on the byte before `i`.
                    self.failed_at = if i > 0 { i - 1 } else { self.failed_at };
                    return Err(H1Error { status: self.status, reason });
                }
                Data => {
                    // The chunk's bytes are skipped in one step, whatever they are.
                    let take = self.size.min((data.len() - i) as u64) as usize;
                    on_data(&data[i..i + take]);
                    i += take;
                    self.size -= take as u64;
                    if self.size == 0 {
                        self.state = DataCr;
                    }
                    continue;
                }
                _ => {}
            }
            let b = data[i];
            i += 1;
            self.line += 1;
            self.state = self.step(b);
        }
        match self.state {
            Failed(reason) => {
                self.failed_at = if i > 0 { i - 1 } else { self.failed_at };
                Err(H1Error { status: self.status, reason })
            }
            state => Ok(Progress { consumed: i, done: state == Done }),
        }
    }

    fn step(&mut self, b: u8) -> ChunkState {
        use ChunkState::*;
        let tchar = TCHAR[b as usize];
        let ws = b == b' ' || b == b'\t';
        if self.line > MAX_FRAMING_LINE {
            return Failed(if matches!(self.state, TrailerStart | TrailerName | TrailerValue | TrailerLf | FinalLf) {
                "trailer section too long"
            } else {
                "chunk-size line too long"
            });
        }
        if b == b'\n' && !matches!(self.state, SizeLf | DataLf | TrailerLf | FinalLf) {
            return Failed("bare LF in chunked framing");
        }
        match self.state {
            Size => match b {
                _ if b.is_ascii_hexdigit() => {
                    if self.size > u64::MAX >> 4 {
                        return Failed("chunk size overflow");
                    }
                    let digit = (b as char).to_digit(16).unwrap_or_default();
                    self.size = (self.size << 4) | u64::from(digit);
                    Size
                }
                _ if self.line == 1 => Failed("invalid chunk size"),
                b';' => PreName,
                b'\r' => SizeLf,
                _ if ws => Bws,
                _ => Failed("invalid chunk size"),
            },
            Bws => match b {
                b';' => PreName,
                _ if ws => Bws,
                b'\r' => Failed("whitespace at end of chunk-size line"),
                _ => Failed("invalid chunk extension"),
            },
            NameBws => match b {
                b';' => PreName,
                b'=' => PreValue,
                _ if ws => NameBws,
                b'\r' => Failed("whitespace at end of chunk-size line"),
                _ => Failed("invalid chunk extension"),
            },
            PreName => match b {
                _ if tchar => Name,
                _ if ws => PreName,
                _ => Failed("invalid chunk extension"),
            },
            Name => match b {
                _ if tchar => Name,
                b';' => PreName,
                b'=' => PreValue,
                b'\r' => SizeLf,
                _ if ws => NameBws,
                _ => Failed("invalid chunk extension"),
            },
            PreValue => match b {
                _ if tchar => Value,
                b'"' => Quoted,
                _ if ws => PreValue,
                _ => Failed("invalid chunk extension"),
            },
            Value => match b {
                _ if tchar => Value,
                b';' => PreName,
                b'\r' => SizeLf,
                _ if ws => Bws,
                _ => Failed("invalid chunk extension"),
            },
            // qdtext: HTAB, SP, %x21, %x23-5B, %x5D-7E, obs-text (RFC 9110 5.6.4).
            Quoted => match b {
                b'"' => AfterQuoted,
                b'\\' => QuotedPair,
                b'\t' | b' '..=b'~' | 0x80.. => Quoted,
                _ => Failed("invalid chunk extension"),
            },
            QuotedPair => match b {
                b'\t' | b' '..=b'~' | 0x80.. => Quoted,
                _ => Failed("invalid chunk extension"),
            },
            AfterQuoted => match b {
                b';' => PreName,
                b'\r' => SizeLf,
                _ if ws => Bws,
                _ => Failed("invalid chunk extension"),
            },
            SizeLf => match b {
                b'\n' => {
                    self.line = 0;
                    if self.size == 0 { TrailerStart } else { Data }
                }
                _ => Failed("CR without LF in chunked framing"),
            },
            Data => Data,
            DataCr => match b {
                b'\r' => DataLf,
                _ => Failed("missing CRLF after chunk data"),
            },
            DataLf => match b {
                b'\n' => {
                    self.line = 0;
                    Size
                }
                _ => Failed("CR without LF in chunked framing"),
            },
            TrailerStart => match b {
                b'\r' => FinalLf,
                _ if tchar => TrailerName,
                _ if ws => Failed("obs-fold in trailer"),
                _ => Failed("invalid trailer field"),
            },
            TrailerName => match b {
                _ if tchar => TrailerName,
                b':' => TrailerValue,
                _ if ws => Failed("space before colon in trailer"),
                _ => Failed("invalid trailer field"),
            },
            TrailerValue => match b {
                b'\r' => TrailerLf,
                b'\0' => Failed("NUL in trailer value"),
                _ if is_value_byte(b) => TrailerValue,
                _ => Failed("control character in trailer value"),
            },
            TrailerLf => match b {
                b'\n' => TrailerStart,
                _ => Failed("CR without LF in chunked framing"),
            },
            FinalLf => match b {
                b'\n' => Done,
                _ => Failed("CR without LF in chunked framing"),
            },
            Done | Failed(_) => self.state,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limits() -> Limits {
        Limits::default()
    }

    #[test]
    fn every_bare_lf_position_is_refused_in_complete_heads() {
        // Each CRLF of these heads in turn made a bare LF, and every CRLF prefix too: a complete
        // head with any LF not after a CR is refused, whichever line it ends.
        let req = b"\r\nGET /a HTTP/1.1\r\nHost: x\r\nA: 1\r\nB:2 \r\n\r\n".to_vec();
        let res = b"HTTP/1.1 200 OK\r\nA: 1\r\nContent-Length: 0\r\n\r\n".to_vec();
        for (base, is_req) in [(req, true), (res, false)] {
            let crs: Vec<usize> = base.windows(2).enumerate().filter(|(_, w)| w == b"\r\n").map(|(i, _)| i).collect();
            for &i in &crs {
                let mut b = base.clone();
                b.remove(i);
                let mut head = Head::default();
                let got = if is_req { parse_request_into(&b, &limits(), &mut head) } else { parse_response_into(&b, &limits(), &mut head) };
                match got {
                    Err(e) => assert_eq!(e.reason, "bare LF in head", "{:?}", String::from_utf8_lossy(&b)),
                    Ok(done) => assert!(!done, "accepted {:?}", String::from_utf8_lossy(&b)),
                }
            }
            let mut head = Head::default();
            let got = if is_req { parse_request_into(&base, &limits(), &mut head) } else { parse_response_into(&base, &limits(), &mut head) };
            assert_eq!(got, Ok(true));
        }
    }

    /// Parses a complete request head and its framing, as the session does.
    fn request(raw: &[u8]) -> Result<(Head, Framing), H1Error> {
        let head = parse_request(raw, &limits())?.expect("complete head");
        let framing = request_framing(raw, &head)?;
        Ok((head, framing))
    }

    fn refused(raw: &[u8]) -> (u16, &'static str) {
        let e = request(raw).expect_err("refused");
        (e.status, e.reason)
    }

    fn status(raw: &[u8]) -> u16 {
        refused(raw).0
    }

    fn framing(raw: &[u8]) -> Framing {
        request(raw).expect("accepted").1
    }

    fn response(raw: &[u8], method: &[u8]) -> Result<Framing, H1Error> {
        let head = parse_response(raw, &limits())?.expect("complete head");
        response_framing_for(raw, &head, method)
    }

    fn chunked(body: &[u8]) -> Result<Progress, H1Error> {
        Chunked::new().feed(body)
    }

    /// The authority and framing code as it was before its fast paths (a783aa0), kept as the
    /// oracle the equivalence properties below compare the fast paths with.
    #[allow(dead_code)]
    mod reference {
        use super::super::{Framing, H1Error, Head, Version, bad_gateway, bad_request, is_token, percent_encoding_ok, slice, trim_ows};

        /// RFC 3986 reg-name: unreserved, sub-delims and `%`.
        const REG_NAME: [bool; 256] = byte_table!(
            b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'-' | b'.' | b'_' | b'~'
                | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' | b'%'
        );

        /// An authority without userinfo: `host[:port]`, host a reg-name or an IP-literal.
        #[derive(Clone, Copy, Debug)]
        pub(super) struct Authority<'a> {
            pub(super) host: &'a [u8],
            pub(super) port: Option<u32>,
        }

        pub(super) fn authority(a: &[u8]) -> Option<Authority<'_>> {
            let (host, port) = if a.first() == Some(&b'[') {
                let close = memchr::memchr(b']', a)?;
                let inner = &a[1..close];
                if inner.is_empty() || !inner.iter().all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.') {
                    return None;
                }
                match &a[close + 1..] {
                    [] => (&a[..=close], None),
                    [b':', port @ ..] => (&a[..=close], Some(port)),
                    _ => return None,
                }
            } else {
                match memchr::memchr(b':', a) {
                    Some(i) => (&a[..i], Some(&a[i + 1..])),
                    None => (a, None),
                }
            };
            if host.is_empty() || (host[0] != b'[' && (!host.iter().all(|&b| REG_NAME[b as usize]) || !percent_encoding_ok(host))) {
                return None;
            }
            let port = match port {
                None => None,
                Some(p) if !p.is_empty() && p.len() <= 5 && p.iter().all(u8::is_ascii_digit) => Some(p.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'))),
                Some(_) => return None,
            };
            Some(Authority { host, port })
        }

        /// The authority of an absolute-form `http://` or `https://` target, and the scheme's port.
        pub(super) fn absolute_form(target: &[u8]) -> Option<(Authority<'_>, u32)> {
            let colon = memchr::memchr(b':', target)?;
            let scheme = &target[..colon];
            let default_port = if scheme.eq_ignore_ascii_case(b"http") {
                80
            } else if scheme.eq_ignore_ascii_case(b"https") {
                443
            } else {
                return None;
            };
            let rest = target[colon + 1..].strip_prefix(b"//")?;
            let end = rest.iter().position(|&b| b == b'/' || b == b'?').unwrap_or(rest.len());
            Some((authority(&rest[..end])?, default_port))
        }

        /// Same host (case-insensitively) and same port once missing ports take `default_port`.
        fn same_authority(a: Authority<'_>, b: Authority<'_>, default_port: Option<u32>) -> bool {
            a.host.eq_ignore_ascii_case(b.host) && a.port.or(default_port) == b.port.or(default_port)
        }

        /// Content-Length fields, all of them (RFC 9110 8.6).
        #[derive(Default)]
        struct ContentLength {
            value: Option<u64>,
            error: Option<&'static str>,
        }

        impl ContentLength {
            fn add(&mut self, field: &[u8]) {
                for element in field.split(|&b| b == b',') {
                    let element = trim_ows(element);
                    let parsed = if element.is_empty() || !element.iter().all(u8::is_ascii_digit) {
                        None
                    } else {
                        element.iter().try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
                    };
                    match (parsed, self.value) {
                        (None, _) => self.error = self.error.or(Some("invalid Content-Length")),
                        (Some(n), Some(v)) if n != v => self.error = self.error.or(Some("differing Content-Length values")),
                        (Some(n), _) => self.value = Some(n),
                    }
                }
            }

            fn present(&self) -> bool {
                self.value.is_some() || self.error.is_some()
            }
        }

        /// Transfer-Encoding fields, all of them, as one list of codings (RFC 9112 6.1).
        #[derive(Default)]
        struct TransferEncoding {
            present: bool,
            /// `chunked` was the last coding so far.
            chunked_last: bool,
            /// A coding came after `chunked`.
            chunked_not_last: bool,
            /// A coding we do not know (501 on requests).
            unknown: bool,
            /// An empty element or one that is not a bare token.
            invalid: bool,
        }

        impl TransferEncoding {
            fn add(&mut self, field: &[u8]) {
                self.present = true;
                for element in field.split(|&b| b == b',') {
                    let coding = trim_ows(element);
                    if !is_token(coding) {
                        self.invalid = true;
                    }
                    if self.chunked_last {
                        self.chunked_not_last = true;
                    }
                    self.chunked_last = coding.eq_ignore_ascii_case(b"chunked");
                    let known = ["gzip", "x-gzip", "deflate", "compress", "x-compress"].iter().any(|k| coding.eq_ignore_ascii_case(k.as_bytes()));
                    if !self.chunked_last && !known {
                        self.unknown = true;
                    }
                }
            }

            /// The checks common to requests and responses: whatever fails here is refused either way.
            fn check(&self, cl: &ContentLength, version: Version) -> Result<(), &'static str> {
                if self.present && cl.present() {
                    return Err("Content-Length with Transfer-Encoding");
                }
                if let Some(e) = cl.error {
                    return Err(e);
                }
                if !self.present {
                    return Ok(());
                }
                if version == Version::Http10 {
                    return Err("Transfer-Encoding in HTTP/1.0");
                }
                if self.invalid {
                    return Err("invalid Transfer-Encoding");
                }
                if self.chunked_not_last {
                    return Err("chunked not last in Transfer-Encoding");
                }
                Ok(())
            }
        }

        /// The Host fields of a request: how many, and the value of the first.
        #[derive(Default)]
        struct Hosts<'a> {
            count: usize,
            first: &'a [u8],
        }

        /// The framing fields of a head, all of them.
        struct FramingFields<'a> {
            cl: ContentLength,
            te: TransferEncoding,
            hosts: Hosts<'a>,
            /// `Content_Length` or `Transfer_Encoding`: some servers (CGI, WSGI) fold `_` into `-`.
            lookalike: bool,
        }

        // Inlined: returned, the struct would be copied out field by field.
        #[inline(always)]
        fn framing_fields<'a>(buf: &'a [u8], head: &Head) -> FramingFields<'a> {
            let mut f = FramingFields { cl: ContentLength::default(), te: TransferEncoding::default(), hosts: Hosts::default(), lookalike: false };
            for field in &head.fields {
                // The length first: most fields are none of these, and are passed over at one compare.
                let name = match field.name.len() {
                    4 | 14 | 17 => slice(buf, &field.name),
                    _ => continue,
                };
                let value = || slice(buf, &field.value);
                if name.eq_ignore_ascii_case(b"content-length") {
                    f.cl.add(value());
                } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                    f.te.add(value());
                } else if name.eq_ignore_ascii_case(b"host") {
                    if f.hosts.count == 0 {
                        f.hosts.first = value();
                    }
                    f.hosts.count += 1;
                } else if name.eq_ignore_ascii_case(b"content_length") || name.eq_ignore_ascii_case(b"transfer_encoding") {
                    f.lookalike = true;
                }
            }
            f
        }

        /// The framing of a request, after checking every rule about it (Content-Length and
        /// Transfer-Encoding together, duplicated or malformed lengths, Host, ...).
        pub fn request_framing(buf: &[u8], head: &Head) -> Result<Framing, H1Error> {
            let FramingFields { cl, te, hosts, lookalike } = framing_fields(buf, head);
            if lookalike {
                return Err(bad_request("underscore in framing header name"));
            }
            te.check(&cl, head.version).map_err(bad_request)?;
            if te.present && te.unknown {
                return Err(H1Error { status: 501, reason: "unsupported transfer coding" });
            }
            if te.present && !te.chunked_last {
                return Err(bad_request("chunked not final in Transfer-Encoding"));
            }
            check_host(slice(buf, &head.method), slice(buf, &head.target), head.version, hosts)?;
            if slice(buf, &head.method) == b"CONNECT" {
                // RFC 9110 9.3.6: CONNECT has no content; whatever follows the head is the tunnel.
                if te.present || cl.value.is_some_and(|n| n > 0) {
                    return Err(bad_request("body in CONNECT request"));
                }
                return Ok(Framing::None);
            }
            Ok(match cl.value {
                _ if te.present => Framing::Chunked,
                Some(n) => Framing::Length(n),
                None => Framing::None,
            })
        }

        /// Host: exactly one in HTTP/1.1 (RFC 9112 3.2), at most one in HTTP/1.0, a valid authority, and
        /// the same as the target's authority when the target has one (absolute-form, CONNECT).
        fn check_host(method: &[u8], target: &[u8], version: Version, hosts: Hosts<'_>) -> Result<(), H1Error> {
            let host = match hosts.count {
                0 if version == Version::Http11 => return Err(bad_request("missing Host")),
                0 => return Ok(()),
                1 => hosts.first,
                _ => return Err(bad_request("duplicate Host")),
            };
            let parsed = if host.is_empty() { None } else { Some(authority(host).ok_or(bad_request("invalid Host"))?) };
            let from_target =
                if method == b"CONNECT" { authority(target).map(|a| (a, a.port)) } else { absolute_form(target).map(|(a, port)| (a, Some(port))) };
            match (from_target, parsed) {
                (None, _) => Ok(()),
                (Some((t, default_port)), Some(h)) if same_authority(t, h, default_port) => Ok(()),
                (Some(_), _) => Err(bad_request("Host differs from target authority")),
            }
        }

        /// The framing of a response to a request whose method was HEAD when `head_request`.
        pub fn response_framing(buf: &[u8], head: &Head, head_request: bool) -> Result<Framing, H1Error> {
            response_framing_for(buf, head, if head_request { b"HEAD" } else { b"GET" })
        }

        /// The framing of a response to a request with method `method` (RFC 9112 6.3): no body after
        /// HEAD, 1xx, 204, 304 or a 2xx to CONNECT (a tunnel follows), chunked when chunked is the final
        /// coding, else the Content-Length, else until the server closes. Errors are 502.
        pub fn response_framing_for(buf: &[u8], head: &Head, method: &[u8]) -> Result<Framing, H1Error> {
            let FramingFields { cl, te, lookalike, .. } = framing_fields(buf, head);
            if lookalike {
                return Err(bad_gateway("underscore in framing header name"));
            }
            te.check(&cl, head.version).map_err(bad_gateway)?;
            let status = head.status;
            if (100..200).contains(&status) || status == 204 {
                // RFC 9110 8.6 and 6.1: a server MUST NOT send these; if the body follows anyway, it
                // would be read as the next response.
                if te.present || cl.value.is_some_and(|n| n > 0) {
                    return Err(bad_gateway("body framing in 1xx or 204 response"));
                }
                return Ok(Framing::None);
            }
            if method == b"HEAD" || status == 304 || (method == b"CONNECT" && (200..300).contains(&status)) {
                return Ok(Framing::None);
            }
            Ok(match cl.value {
                _ if te.present && te.chunked_last => Framing::Chunked,
                _ if te.present => Framing::Close,
                Some(n) => Framing::Length(n),
                None => Framing::Close,
            })
        }
    }

    // --- valid requests -----------------------------------------------------------------

    #[test]
    fn origin_form_get() {
        let raw = b"GET /a/b?c=d HTTP/1.1\r\nHost: example.com\r\nAccept:  */* \r\n\r\n";
        let (head, framing) = request(raw).unwrap();
        assert_eq!(slice(raw, &head.method), b"GET");
        assert_eq!(slice(raw, &head.target), b"/a/b?c=d");
        assert_eq!(head.version, Version::Http11);
        assert_eq!(head.len, raw.len());
        assert_eq!(head.fields.len(), 2);
        assert_eq!(slice(raw, &head.fields[1].name), b"Accept");
        assert_eq!(slice(raw, &head.fields[1].value), b"*/*");
        assert_eq!(framing, Framing::None);
    }

    #[test]
    fn content_length_gives_length() {
        assert_eq!(framing(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"), Framing::Length(5));
    }

    #[test]
    fn chunked_gives_chunked() {
        assert_eq!(framing(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"), Framing::Chunked);
    }

    #[test]
    fn transfer_encoding_tab_ows_is_valid() {
        assert_eq!(framing(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked\r\n\r\n"), Framing::Chunked);
    }

    #[test]
    fn gzip_then_chunked_is_chunked() {
        assert_eq!(framing(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), Framing::Chunked);
    }

    #[test]
    fn transfer_encoding_over_two_fields_is_one_list() {
        assert_eq!(framing(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"), Framing::Chunked);
    }

    #[test]
    fn identical_content_lengths_in_one_field_are_accepted() {
        assert_eq!(framing(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n"), Framing::Length(5));
    }

    #[test]
    fn identical_content_length_fields_are_accepted() {
        assert_eq!(framing(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"), Framing::Length(5));
    }

    #[test]
    fn absolute_form_with_matching_host() {
        let raw = b"GET http://Example.com/x HTTP/1.1\r\nHost: example.com\r\n\r\n";
        assert_eq!(framing(raw), Framing::None);
    }

    #[test]
    fn absolute_form_default_port_matches_host_without_port() {
        assert_eq!(framing(b"GET https://example.com:443/ HTTP/1.1\r\nHost: example.com\r\n\r\n"), Framing::None);
    }

    #[test]
    fn absolute_form_ipv6_literal() {
        assert_eq!(framing(b"GET http://[::1]:8080/ HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"), Framing::None);
    }

    #[test]
    fn connect_authority_form() {
        let raw = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n";
        let (head, framing) = request(raw).unwrap();
        assert_eq!(slice(raw, &head.target), b"example.com:443");
        assert_eq!(framing, Framing::None);
    }

    #[test]
    fn options_asterisk_form() {
        assert_eq!(framing(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), Framing::None);
    }

    #[test]
    fn http10_without_host() {
        let raw = b"GET / HTTP/1.0\r\n\r\n";
        let (head, framing) = request(raw).unwrap();
        assert_eq!(head.version, Version::Http10);
        assert_eq!(framing, Framing::None);
    }

    #[test]
    fn unknown_method_is_forwarded() {
        assert_eq!(framing(b"PURGE-ALL /x HTTP/1.1\r\nHost: a\r\n\r\n"), Framing::None);
    }

    #[test]
    fn empty_host_with_origin_form() {
        assert_eq!(framing(b"GET / HTTP/1.1\r\nHost:\r\n\r\n"), Framing::None);
    }

    #[test]
    fn pipelined_requests_first_head_len() {
        let first = b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n";
        let mut raw = first.to_vec();
        raw.extend_from_slice(b"GET /2 HTTP/1.1\r\nHost: a\r\n\r\n");
        let head = parse_request(&raw, &limits()).unwrap().unwrap();
        assert_eq!(head.len, first.len());
        let second = parse_request(&raw[head.len..], &limits()).unwrap().unwrap();
        assert_eq!(slice(&raw[head.len..], &second.target), b"/2");
    }

    #[test]
    fn leading_crlf_is_skipped() {
        let raw = b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let (head, _) = request(raw).unwrap();
        assert_eq!(slice(raw, &head.method), b"GET");
        assert_eq!(head.len, raw.len());
    }

    #[test]
    fn obs_text_in_value_is_accepted() {
        assert_eq!(framing(b"GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n"), Framing::None);
    }

    #[test]
    fn percent_encoded_target_is_accepted() {
        assert_eq!(framing(b"GET /a%20b HTTP/1.1\r\nHost: a\r\n\r\n"), Framing::None);
    }

    #[test]
    fn incomplete_head_is_none() {
        assert_eq!(parse_request(b"GET / HTTP/1.1\r\nHost: a\r\n", &limits()), Ok(None));
        assert_eq!(parse_request(b"GET / HT", &limits()), Ok(None));
        assert_eq!(parse_request(b"", &limits()), Ok(None));
    }

    #[test]
    fn parse_request_into_reuses_fields() {
        let mut head = Head::default();
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
        assert_eq!(parse_request_into(raw, &limits(), &mut head), Ok(true));
        let capacity = head.fields.capacity();
        assert_eq!(parse_request_into(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", &limits(), &mut head), Ok(true));
        assert_eq!(head.fields.len(), 1);
        assert_eq!(head.fields.capacity(), capacity);
    }

    #[test]
    fn many_fields_beyond_stack_slots() {
        let mut raw = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for i in 0..200 {
            raw.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        let head = parse_request(&raw, &Limits { max_head: 1 << 16, max_headers: 300 }).unwrap().unwrap();
        assert_eq!(head.fields.len(), 201);
    }

    // --- request line -----------------------------------------------------------------

    #[test]
    fn http2_version_is_505() {
        assert_eq!(status(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
    }

    #[test]
    fn http12_version_is_505() {
        assert_eq!(status(b"GET / HTTP/1.2\r\nHost: a\r\n\r\n"), 505);
    }

    #[test]
    fn lowercase_version_is_400() {
        assert_eq!(refused(b"GET / http/1.1\r\nHost: a\r\n\r\n"), (400, "malformed HTTP version"));
    }

    #[test]
    fn long_version_is_400() {
        assert_eq!(status(b"GET / HTTP/1.10\r\nHost: a\r\n\r\n"), 400);
    }

    #[test]
    fn missing_version_is_400() {
        assert_eq!(refused(b"GET /\r\nHost: a\r\n\r\n"), (400, "invalid request line"));
    }

    #[test]
    fn trailing_space_after_version_is_400() {
        assert_eq!(status(b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), 400);
    }

    #[test]
    fn double_space_in_request_line_is_400() {
        assert_eq!(status(b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    }

    #[test]
    fn tab_in_request_line_is_400() {
        assert_eq!(status(b"GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    }

    #[test]
    fn non_token_method_is_400() {
        assert_eq!(refused(b"G(ET / HTTP/1.1\r\nHost: a\r\n\r\n"), (400, "invalid method"));
    }

    #[test]
    fn fragment_in_target_is_400() {
        assert_eq!(refused(b"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n"), (400, "invalid character in request target"));
    }

    #[test]
    fn brace_in_target_is_400() {
        assert_eq!(refused(b"GET /{x} HTTP/1.1\r\nHost: a\r\n\r\n"), (400, "invalid character in request target"));
    }

    #[test]
    fn non_ascii_in_target_is_400() {
        assert_eq!(refused(b"GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"), (400, "invalid character in request target"));
    }

    #[test]
    fn bad_percent_encoding_is_400() {
        assert_eq!(refused(b"GET /a%2x HTTP/1.1\r\nHost: a\r\n\r\n"), (400, "invalid character in request target"));
    }

    #[test]
    fn asterisk_without_options_is_400() {
        assert_eq!(refused(b"GET * HTTP/1.1\r\nHost: a\r\n\r\n"), (400, "asterisk-form target without OPTIONS"));
    }

    #[test]
    fn connect_with_origin_form_is_400() {
        assert_eq!(refused(b"CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n"), (400, "CONNECT target not in authority-form"));
    }

    #[test]
    fn connect_without_port_is_400() {
        assert_eq!(status(b"CONNECT example.com HTTP/1.1\r\nHost: example.com\r\n\r\n"), 400);
    }

    #[test]
    fn authority_form_without_connect_is_400() {
        assert_eq!(refused(b"GET example.com:80 HTTP/1.1\r\nHost: example.com\r\n\r\n"), (400, "invalid request target"));
    }

    #[test]
    fn absolute_form_with_userinfo_is_400() {
        assert_eq!(status(b"GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    }

    #[test]
    fn bare_lf_after_request_line_is_400() {
        assert_eq!(refused(b"GET / HTTP/1.1\nHost: a\r\n\r\n"), (400, "bare LF in head"));
    }

    #[test]
    fn bare_lf_at_end_of_head_is_400() {
        assert_eq!(refused(b"GET / HTTP/1.1\r\nHost: a\r\n\n"), (400, "bare LF in head"));
    }

    #[test]
    fn bare_lf_in_incomplete_head_is_400() {
        assert_eq!(parse_request(b"GET / HTTP/1.1\nHost: a", &limits()), Err(bad_request("bare LF in head")));
    }

    #[test]
    fn leading_bare_lf_is_400() {
        assert_eq!(status(b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    }

    // --- limits -------------------------------------------------------------------------

    #[test]
    fn request_line_beyond_limit_is_414() {
        let l = Limits { max_head: 64, max_headers: 10 };
        let mut raw = b"GET /".to_vec();
        raw.resize(100, b'a');
        assert_eq!(parse_request(&raw, &l).unwrap_err().status, 414);
    }

    #[test]
    fn head_beyond_limit_is_431() {
        let l = Limits { max_head: 64, max_headers: 10 };
        let mut raw = b"GET / HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
        raw.resize(100, b'a');
        assert_eq!(parse_request(&raw, &l).unwrap_err(), H1Error { status: 431, reason: "request head too large" });
    }

    #[test]
    fn complete_head_longer_than_limit_is_431() {
        let l = Limits { max_head: 30, max_headers: 10 };
        assert_eq!(parse_request(b"GET / HTTP/1.1\r\nHost: aaaaaaaaaaaaaaaa\r\n\r\n", &l).unwrap_err().status, 431);
    }

    #[test]
    fn head_at_limit_is_accepted() {
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let l = Limits { max_head: raw.len(), max_headers: 10 };
        assert!(parse_request(raw, &l).unwrap().is_some());
    }

    #[test]
    fn too_many_headers_is_431() {
        let l = Limits { max_head: 4096, max_headers: 2 };
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
        assert_eq!(parse_request(raw, &l), Err(H1Error { status: 431, reason: "too many headers" }));
    }

    #[test]
    fn max_headers_exactly_is_accepted() {
        let l = Limits { max_head: 4096, max_headers: 2 };
        assert!(parse_request(b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\n\r\n", &l).unwrap().is_some());
    }

    // --- header fields ------------------------------------------------------------------

    #[test]
    fn obs_fold_is_400() {
        assert_eq!(refused(b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n"), (400, "obs-fold in header"));
    }

    #[test]
    fn whitespace_before_first_header_is_400() {
        assert_eq!(refused(b"GET / HTTP/1.1\r\n Host: a\r\n\r\n"), (400, "whitespace before first header"));
    }

    #[test]
    fn space_before_colon_is_400() {
        assert_eq!(refused(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n"), (400, "space before colon"));
    }

    #[test]
    fn transfer_encoding_space_before_colon_is_400() {
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding : chunked\r\n\r\n";
        assert_eq!(refused(raw), (400, "space before colon"));
    }

    #[test]
    fn nul_in_value_is_400() {
        assert_eq!(refused(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n"), (400, "NUL in header value"));
    }

    #[test]
    fn cr_in_value_is_400() {
        assert_eq!(refused(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n"), (400, "CR in header value"));
    }

    #[test]
    fn bare_lf_in_value_is_400() {
        assert_eq!(refused(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\nb: c\r\n\r\n"), (400, "bare LF in head"));
    }

    #[test]
    fn control_character_in_value_is_400() {
        assert_eq!(refused(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n"), (400, "control character in header value"));
    }

    #[test]
    fn del_in_value_is_400() {
        assert_eq!(refused(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n"), (400, "control character in header value"));
    }

    #[test]
    fn vertical_tab_in_value_is_400() {
        assert_eq!(refused(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x0bb\r\n\r\n"), (400, "control character in header value"));
    }

    #[test]
    fn vertical_tab_before_colon_is_400() {
        assert_eq!(refused(b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding\x0b: chunked\r\n\r\n"), (400, "invalid character in header name"));
    }

    #[test]
    fn underscore_framing_header_is_400() {
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\nContent_Length: 5\r\n\r\n";
        assert_eq!(refused(raw), (400, "underscore in framing header name"));
    }

    #[test]
    fn transfer_encoding_case_insensitive() {
        assert_eq!(framing(b"POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: CHUNKED\r\n\r\n"), Framing::Chunked);
    }

    #[test]
    fn bare_cr_in_head_is_400() {
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\r\n\rX"), 400);
    }

    #[test]
    fn nul_in_name_is_400() {
        assert_eq!(refused(b"GET / HTTP/1.1\r\nHost: a\r\nX\0Y: 1\r\n\r\n"), (400, "NUL in header name"));
    }

    #[test]
    fn cr_in_name_is_400() {
        assert_eq!(refused(b"GET / HTTP/1.1\r\nHost: a\r\nX\rY: 1\r\n\r\n"), (400, "CR in header name"));
    }

    #[test]
    fn empty_header_name_is_400() {
        assert_eq!(refused(b"GET / HTTP/1.1\r\nHost: a\r\n: 1\r\n\r\n"), (400, "empty header name"));
    }

    #[test]
    fn header_without_colon_is_400() {
        assert_eq!(refused(b"GET / HTTP/1.1\r\nHost: a\r\nX\r\n\r\n"), (400, "header without colon"));
    }

    // --- Host ---------------------------------------------------------------------------

    #[test]
    fn missing_host_in_http11_is_400() {
        assert_eq!(refused(b"GET / HTTP/1.1\r\n\r\n"), (400, "missing Host"));
    }

    #[test]
    fn duplicate_host_is_400() {
        assert_eq!(refused(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), (400, "duplicate Host"));
    }

    #[test]
    fn duplicate_host_in_http10_is_400() {
        assert_eq!(refused(b"GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n"), (400, "duplicate Host"));
    }

    #[test]
    fn invalid_host_is_400() {
        assert_eq!(refused(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), (400, "invalid Host"));
        assert_eq!(refused(b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"), (400, "invalid Host"));
        assert_eq!(refused(b"GET / HTTP/1.1\r\nHost: a:\r\n\r\n"), (400, "invalid Host"));
    }

    #[test]
    fn absolute_form_with_other_host_is_400() {
        assert_eq!(refused(b"GET http://a/ HTTP/1.1\r\nHost: b\r\n\r\n"), (400, "Host differs from target authority"));
    }

    #[test]
    fn absolute_form_with_other_port_is_400() {
        assert_eq!(status(b"GET http://a:8080/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    }

    #[test]
    fn connect_with_other_host_is_400() {
        assert_eq!(refused(b"CONNECT a:443 HTTP/1.1\r\nHost: b:443\r\n\r\n"), (400, "Host differs from target authority"));
    }

    #[test]
    fn connect_with_body_is_400() {
        assert_eq!(refused(b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nContent-Length: 3\r\n\r\n"), (400, "body in CONNECT request"));
    }

    // --- Content-Length and Transfer-Encoding (smuggling) ---------------------------------

    #[test]
    fn chunked_with_content_length_is_400() {
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(refused(raw), (400, "Content-Length with Transfer-Encoding"));
    }

    #[test]
    fn xchunked_is_501() {
        assert_eq!(refused(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n"), (501, "unsupported transfer coding"));
    }

    #[test]
    fn chunked_then_identity_is_400() {
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n";
        assert_eq!(refused(raw), (400, "chunked not last in Transfer-Encoding"));
    }

    #[test]
    fn chunked_twice_is_400() {
        assert_eq!(status(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
    }

    #[test]
    fn gzip_alone_is_400() {
        assert_eq!(refused(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"), (400, "chunked not final in Transfer-Encoding"));
    }

    #[test]
    fn transfer_encoding_in_http10_is_400() {
        assert_eq!(refused(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), (400, "Transfer-Encoding in HTTP/1.0"));
    }

    #[test]
    fn empty_transfer_encoding_element_is_400() {
        assert_eq!(refused(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , chunked\r\n\r\n"), (400, "invalid Transfer-Encoding"));
    }

    #[test]
    fn transfer_encoding_with_parameter_is_400() {
        assert_eq!(refused(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n"), (400, "invalid Transfer-Encoding"));
    }

    #[test]
    fn content_length_plus_sign_is_400() {
        assert_eq!(refused(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n"), (400, "invalid Content-Length"));
    }

    #[test]
    fn content_length_minus_sign_is_400() {
        assert_eq!(refused(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n"), (400, "invalid Content-Length"));
    }

    #[test]
    fn content_length_hex_is_400() {
        assert_eq!(refused(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n"), (400, "invalid Content-Length"));
    }

    #[test]
    fn content_length_inner_space_is_400() {
        assert_eq!(refused(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\n"), (400, "invalid Content-Length"));
    }

    #[test]
    fn content_length_empty_is_400() {
        assert_eq!(refused(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n"), (400, "invalid Content-Length"));
    }

    #[test]
    fn content_length_empty_element_is_400() {
        assert_eq!(refused(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,\r\n\r\n"), (400, "invalid Content-Length"));
    }

    #[test]
    fn content_length_overflow_is_400() {
        assert_eq!(refused(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n"), (400, "invalid Content-Length"));
    }

    #[test]
    fn content_length_max_u64_is_accepted() {
        assert_eq!(framing(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n"), Framing::Length(u64::MAX));
    }

    #[test]
    fn differing_content_lengths_in_one_field_is_400() {
        assert_eq!(refused(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,6\r\n\r\n"), (400, "differing Content-Length values"));
    }

    #[test]
    fn differing_content_length_fields_is_400() {
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n";
        assert_eq!(refused(raw), (400, "differing Content-Length values"));
    }

    // --- responses ----------------------------------------------------------------------

    #[test]
    fn response_with_content_length() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
        let head = parse_response(raw, &limits()).unwrap().unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(slice(raw, &head.reason), b"OK");
        assert_eq!(head.len, raw.len() - 3);
        assert_eq!(response_framing(raw, &head, false), Ok(Framing::Length(3)));
    }

    #[test]
    fn response_chunked() {
        assert_eq!(response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"GET"), Ok(Framing::Chunked));
    }

    #[test]
    fn response_close_delimited_http11() {
        assert_eq!(response(b"HTTP/1.1 200 OK\r\n\r\n", b"GET"), Ok(Framing::Close));
    }

    #[test]
    fn response_close_delimited_http10() {
        assert_eq!(response(b"HTTP/1.0 200 OK\r\n\r\n", b"GET"), Ok(Framing::Close));
    }

    #[test]
    fn response_gzip_without_chunked_is_close_delimited() {
        assert_eq!(response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", b"GET"), Ok(Framing::Close));
    }

    #[test]
    fn response_to_head_has_no_body() {
        assert_eq!(response(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", b"HEAD"), Ok(Framing::None));
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
        let head = parse_response(raw, &limits()).unwrap().unwrap();
        assert_eq!(response_framing(raw, &head, true), Ok(Framing::None));
    }

    #[test]
    fn response_1xx_has_no_body() {
        assert_eq!(response(b"HTTP/1.1 100 Continue\r\n\r\n", b"POST"), Ok(Framing::None));
    }

    #[test]
    fn response_204_has_no_body() {
        assert_eq!(response(b"HTTP/1.1 204 No Content\r\n\r\n", b"GET"), Ok(Framing::None));
    }

    #[test]
    fn response_304_has_no_body() {
        assert_eq!(response(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", b"GET"), Ok(Framing::None));
    }

    #[test]
    fn dechunk_keeps_only_the_data() {
        assert_eq!(dechunk(b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n"), b"hello world");
        assert_eq!(dechunk(b"5\r\nhel"), b"hel");
        assert_eq!(dechunk(b""), b"");
    }

    #[test]
    fn response_2xx_to_connect_has_no_body() {
        assert_eq!(response(b"HTTP/1.1 200 Connection established\r\n\r\n", b"CONNECT"), Ok(Framing::None));
    }

    #[test]
    fn response_without_reason() {
        let raw = b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n";
        let head = parse_response(raw, &limits()).unwrap().unwrap();
        assert_eq!(slice(raw, &head.reason), b"");
    }

    #[test]
    fn response_with_both_framings_is_502() {
        let e = response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", b"GET").unwrap_err();
        assert_eq!(e, bad_gateway("Content-Length with Transfer-Encoding"));
    }

    #[test]
    fn response_differing_lengths_is_502() {
        assert_eq!(response(b"HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\n", b"GET").unwrap_err().status, 502);
    }

    #[test]
    fn response_chunked_not_last_is_502() {
        assert_eq!(response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", b"GET").unwrap_err().status, 502);
    }

    #[test]
    fn response_204_with_length_is_502() {
        assert_eq!(response(b"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n", b"GET").unwrap_err().status, 502);
    }

    #[test]
    fn response_two_digit_status_is_502() {
        assert_eq!(parse_response(b"HTTP/1.1 20 OK\r\n\r\n", &limits()).unwrap_err(), bad_gateway("invalid status code"));
    }

    #[test]
    fn response_four_digit_status_is_502() {
        assert_eq!(parse_response(b"HTTP/1.1 2000 OK\r\n\r\n", &limits()).unwrap_err().status, 502);
    }

    #[test]
    fn response_status_below_100_is_502() {
        assert_eq!(parse_response(b"HTTP/1.1 099 OK\r\n\r\n", &limits()).unwrap_err(), bad_gateway("invalid status code"));
    }

    #[test]
    fn response_obs_fold_is_502() {
        assert_eq!(parse_response(b"HTTP/1.1 200 OK\r\nX: 1\r\n 2\r\n\r\n", &limits()).unwrap_err(), bad_gateway("obs-fold in header"));
    }

    #[test]
    fn response_space_before_colon_is_502() {
        assert_eq!(parse_response(b"HTTP/1.1 200 OK\r\nX : 1\r\n\r\n", &limits()).unwrap_err(), bad_gateway("space before colon"));
    }

    #[test]
    fn response_bare_lf_is_502() {
        assert_eq!(parse_response(b"HTTP/1.1 200 OK\nX: 1\r\n\r\n", &limits()).unwrap_err(), bad_gateway("bare LF in head"));
    }

    #[test]
    fn response_leading_empty_line_is_502() {
        assert_eq!(parse_response(b"\r\nHTTP/1.1 200 OK\r\n\r\n", &limits()).unwrap_err().status, 502);
    }

    #[test]
    fn response_http2_version_is_502() {
        assert_eq!(parse_response(b"HTTP/2.0 200 OK\r\n\r\n", &limits()).unwrap_err().status, 502);
    }

    #[test]
    fn response_too_large_is_502() {
        let l = Limits { max_head: 32, max_headers: 10 };
        let mut raw = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        raw.resize(64, b'a');
        assert_eq!(parse_response(&raw, &l).unwrap_err().status, 502);
    }

    #[test]
    fn response_transfer_encoding_in_http10_is_502() {
        assert_eq!(response(b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"GET").unwrap_err().status, 502);
    }

    // --- chunked bodies -----------------------------------------------------------------

    const BODY: &[u8] = b"5\r\nhello\r\n1A;name=value;q=\"a \\\"b\\\"\" ; flag\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Sum: 1\r\nY:\r\n\r\n";

    #[test]
    fn chunked_body_in_one_piece() {
        assert_eq!(chunked(BODY), Ok(Progress { consumed: BODY.len(), done: true }));
    }

    #[test]
    fn chunked_body_byte_by_byte() {
        let mut c = Chunked::new();
        for (i, b) in BODY.iter().enumerate() {
            let p = c.feed(std::slice::from_ref(b)).unwrap();
            assert_eq!(p.consumed, 1);
            assert_eq!(p.done, i == BODY.len() - 1);
        }
    }

    #[test]
    fn chunked_body_every_split_point() {
        for at in 0..=BODY.len() {
            let mut c = Chunked::new();
            let first = c.feed(&BODY[..at]).unwrap();
            let second = c.feed(&BODY[at..]).unwrap();
            assert_eq!(first.consumed + second.consumed, BODY.len(), "split at {at}");
            assert!(second.done || (at == BODY.len() && first.done));
        }
    }

    #[test]
    fn chunked_stops_at_end_of_message() {
        let mut raw = b"0\r\n\r\n".to_vec();
        raw.extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert_eq!(chunked(&raw), Ok(Progress { consumed: 5, done: true }));
    }

    #[test]
    fn chunked_after_done_consumes_nothing() {
        let mut c = Chunked::new();
        c.feed(b"0\r\n\r\n").unwrap();
        assert_eq!(c.feed(b"more"), Ok(Progress { consumed: 0, done: true }));
        assert!(c.is_done());
    }

    #[test]
    fn chunked_incomplete_is_not_done() {
        assert_eq!(chunked(b"5\r\nhel"), Ok(Progress { consumed: 6, done: false }));
    }

    #[test]
    fn chunk_size_with_leading_zeros() {
        assert!(chunked(b"0005\r\nhello\r\n0\r\n\r\n").unwrap().done);
    }

    #[test]
    fn chunk_size_with_0x_is_400() {
        assert_eq!(chunked(b"0x5\r\nhello\r\n0\r\n\r\n"), Err(bad_request("invalid chunk size")));
    }

    #[test]
    fn chunk_size_trailing_space_is_400() {
        assert_eq!(chunked(b"5 \r\nhello\r\n0\r\n\r\n"), Err(bad_request("whitespace at end of chunk-size line")));
    }

    #[test]
    fn chunk_size_leading_space_is_400() {
        assert_eq!(chunked(b" 5\r\nhello\r\n0\r\n\r\n"), Err(bad_request("invalid chunk size")));
    }

    #[test]
    fn chunk_size_negative_is_400() {
        assert_eq!(chunked(b"-5\r\nhello\r\n0\r\n\r\n"), Err(bad_request("invalid chunk size")));
    }

    #[test]
    fn chunk_size_plus_is_400() {
        assert_eq!(chunked(b"+5\r\nhello\r\n0\r\n\r\n"), Err(bad_request("invalid chunk size")));
    }

    #[test]
    fn chunk_size_empty_is_400() {
        assert_eq!(chunked(b"\r\nhello\r\n0\r\n\r\n"), Err(bad_request("invalid chunk size")));
    }

    #[test]
    fn chunk_size_overflow_is_400() {
        assert_eq!(chunked(b"ffffffffffffffffffff\r\n"), Err(bad_request("chunk size overflow")));
    }

    #[test]
    fn chunk_size_max_u64_is_accepted() {
        assert_eq!(chunked(b"ffffffffffffffff\r\nab"), Ok(Progress { consumed: 20, done: false }));
    }

    #[test]
    fn chunk_size_bare_lf_is_400() {
        assert_eq!(chunked(b"5\nhello\r\n0\r\n\r\n"), Err(bad_request("bare LF in chunked framing")));
    }

    #[test]
    fn chunk_data_bare_lf_is_400() {
        assert_eq!(chunked(b"5\r\nhello\n0\r\n\r\n"), Err(bad_request("bare LF in chunked framing")));
    }

    #[test]
    fn chunk_data_longer_than_size_is_400() {
        assert_eq!(chunked(b"5\r\nhello!\r\n0\r\n\r\n"), Err(bad_request("missing CRLF after chunk data")));
    }

    #[test]
    fn last_chunk_bare_lf_is_400() {
        assert_eq!(chunked(b"0\r\n\n"), Err(bad_request("bare LF in chunked framing")));
    }

    #[test]
    fn cr_without_lf_is_400() {
        assert_eq!(chunked(b"5\rxhello\r\n"), Err(bad_request("CR without LF in chunked framing")));
    }

    #[test]
    fn chunk_extension_without_name_is_400() {
        assert_eq!(chunked(b"5;\r\nhello\r\n0\r\n\r\n"), Err(bad_request("invalid chunk extension")));
    }

    #[test]
    fn chunk_extension_empty_value_is_400() {
        assert_eq!(chunked(b"5;a=\r\nhello\r\n0\r\n\r\n"), Err(bad_request("invalid chunk extension")));
    }

    #[test]
    fn chunk_extension_bad_character_is_400() {
        assert_eq!(chunked(b"5;a=b@c\r\nhello\r\n0\r\n\r\n"), Err(bad_request("invalid chunk extension")));
    }

    #[test]
    fn chunk_extension_unterminated_quote_is_400() {
        assert_eq!(chunked(b"5;a=\"b\r\nhello\r\n0\r\n\r\n"), Err(bad_request("invalid chunk extension")));
    }

    #[test]
    fn chunk_extension_with_bws_is_accepted() {
        assert!(chunked(b"5 ; a = b\r\nhello\r\n0\r\n\r\n").unwrap().done);
    }

    #[test]
    fn chunk_extension_on_last_chunk() {
        assert!(chunked(b"0;end\r\n\r\n").unwrap().done);
    }

    #[test]
    fn trailer_obs_fold_is_400() {
        assert_eq!(chunked(b"0\r\nX: 1\r\n 2\r\n\r\n"), Err(bad_request("obs-fold in trailer")));
    }

    #[test]
    fn trailer_space_before_colon_is_400() {
        assert_eq!(chunked(b"0\r\nX : 1\r\n\r\n"), Err(bad_request("space before colon in trailer")));
    }

    #[test]
    fn trailer_nul_is_400() {
        assert_eq!(chunked(b"0\r\nX: a\0\r\n\r\n"), Err(bad_request("NUL in trailer value")));
    }

    #[test]
    fn trailer_without_colon_is_400() {
        assert_eq!(chunked(b"0\r\nX\r\n\r\n"), Err(bad_request("invalid trailer field")));
    }

    #[test]
    fn trailer_bare_lf_is_400() {
        assert_eq!(chunked(b"0\r\nX: 1\n\r\n"), Err(bad_request("bare LF in chunked framing")));
    }

    #[test]
    fn chunk_size_line_too_long_is_400() {
        let mut raw = b"5;a=".to_vec();
        raw.resize(MAX_FRAMING_LINE + 10, b'b');
        assert_eq!(chunked(&raw), Err(bad_request("chunk-size line too long")));
    }

    #[test]
    fn chunked_error_is_sticky() {
        let mut c = Chunked::new();
        assert!(c.feed(b"x").is_err());
        assert_eq!(c.feed(b"0\r\n\r\n"), Err(bad_request("invalid chunk size")));
    }

    #[test]
    fn response_chunked_errors_are_502() {
        assert_eq!(Chunked::response().feed(b"x\r\n").unwrap_err().status, 502);
    }

    // --- properties ---------------------------------------------------------------------

    proptest! {
        #[test]
        fn parsing_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..512), max_head in 0usize..600, max_headers in 0usize..200) {
            let l = Limits { max_head, max_headers };
            if let Ok(Some(head)) = parse_request(&raw, &l) {
                prop_assert!(head.len <= raw.len());
                let _ = request_framing(&raw, &head);
            }
            if let Ok(Some(head)) = parse_response(&raw, &l) {
                let _ = response_framing(&raw, &head, false);
                let _ = response_framing_for(&raw, &head, b"CONNECT");
            }
            let _ = Chunked::new().feed(&raw);
        }

        #[test]
        fn head_like_bytes_never_panic(raw in "(GET|POST|CONNECT|OPTIONS|HTTP/1\\.1) [ -~]{0,20}( HTTP/1\\.[01])?(\r\n|\n)(([A-Za-z-]{1,8}|Host|Content-Length|Transfer-Encoding) ?:[ \t0-9a-z,;]{0,10}(\r\n|\n)){0,4}\r\n") {
            let raw = raw.as_bytes();
            if let Ok(Some(head)) = parse_request(raw, &limits()) {
                let _ = request_framing(raw, &head);
            }
            if let Ok(Some(head)) = parse_response(raw, &limits()) {
                let _ = response_framing(raw, &head, false);
            }
        }

        #[test]
        fn chunked_split_anywhere_same_result(cuts in proptest::collection::vec(0usize..=BODY.len(), 0..8)) {
            let mut cuts = cuts;
            cuts.push(0);
            cuts.push(BODY.len());
            cuts.sort_unstable();
            let mut c = Chunked::new();
            let mut consumed = 0;
            let mut done = false;
            for w in cuts.windows(2) {
                let p = c.feed(&BODY[w[0]..w[1]]).unwrap();
                consumed += p.consumed;
                done = p.done;
            }
            prop_assert_eq!(consumed, BODY.len());
            prop_assert!(done);
        }

        #[test]
        fn chunked_errors_do_not_depend_on_splits(raw in proptest::collection::vec(prop_oneof![Just(b'0'), Just(b'5'), Just(b'\r'), Just(b'\n'), Just(b';'), Just(b'a'), Just(b' '), Just(b':')], 0..40), at in 0usize..40) {
            let whole = Chunked::new().feed(&raw);
            let at = at.min(raw.len());
            let mut c = Chunked::new();
            let split = c.feed(&raw[..at]).and_then(|first| {
                if first.done { return Ok(first) }
                c.feed(&raw[at..]).map(|second| Progress { consumed: first.consumed + second.consumed, done: second.done })
            });
            prop_assert_eq!(whole, split);
        }
    }

    // --- fast paths against the reference --------------------------------------------------

    fn authority_parts(a: Option<Authority<'_>>) -> Option<(&[u8], Option<u32>)> {
        a.map(|a| (a.host, a.port))
    }

    fn reference_parts(a: Option<reference::Authority<'_>>) -> Option<(&[u8], Option<u32>)> {
        a.map(|a| (a.host, a.port))
    }

    #[test]
    fn authority_cases_match_reference() {
        let cases: &[&[u8]] = &[
            b"127.0.0.1:8080",
            b"127.0.0.1",
            b"EXAMPLE.com",
            b"example.com:",
            b"example.com:0",
            b"example.com:65535",
            b"example.com:99999",
            b"example.com:123456",
            b"example.com:+80",
            b"example.com:8a",
            b"example.com:80:80",
            b":80",
            b"",
            b"a",
            b"[::1]",
            b"[::1]:443",
            b"[::FFFF:127.0.0.1]:80",
            b"[]",
            b"[]:80",
            b"[::1",
            b"[::1]x",
            b"[::1]:",
            b"[::g]",
            b"[::1]]",
            b"[v1.a]",
            b"a%41b",
            b"a%4",
            b"a%",
            b"a%4:80",
            b"a%zz",
            b"%41",
            b"a b",
            b"a@b",
            b"user@a:80",
            b"a/b",
            b"a?b",
            b"a#b",
            b"\xff",
            b"a\0",
            b"a_b-c~d!$&'()*+,;=",
        ];
        for &a in cases {
            assert_eq!(authority_parts(authority(a)), reference_parts(reference::authority(a)), "{:?}", String::from_utf8_lossy(a));
        }
        assert_eq!(authority_parts(authority(b"[::1]:8080")), Some((&b"[::1]"[..], Some(8080))));
        assert_eq!(authority_parts(authority(b"Example.COM")), Some((&b"Example.COM"[..], None)));
    }

    #[test]
    fn absolute_form_cases_match_reference() {
        let cases: &[&[u8]] = &[
            b"/",
            b"/a:b",
            b"*",
            b"http://a",
            b"HTTP://A:80/x",
            b"https://a",
            b"HtTpS://[::1]:8443?q",
            b"http:/a",
            b"http:a",
            b"https//a",
            b"http",
            b"h",
            b"ftp://a",
            b"httpx://a",
            b"http://",
            b"http:///",
            b"http://a@b/",
            b"http://a:99999/",
            b"hTTp://a%41/",
            b"example.com:80",
        ];
        for &t in cases {
            let new = absolute_form(t).map(|(a, p)| (authority_parts(Some(a)), p));
            let old = reference::absolute_form(t).map(|(a, p)| (reference_parts(Some(a)), p));
            assert_eq!(new, old, "{:?}", String::from_utf8_lossy(t));
        }
    }

    #[test]
    fn is_lowercase_is_eq_ignore_ascii_case() {
        // Every byte in every position of each name the framing looks for.
        for name in [
            &b"host"[..],
            b"content-length",
            b"content_length",
            b"transfer-encoding",
            b"transfer_encoding",
            b"chunked",
            b"http://",
            b"https://",
            // The session's and the head writer's names and tokens.
            b"connection",
            b"close",
            b"keep-alive",
            b"expect",
            b"100-continue",
            b"upgrade",
            b"h2c",
        ] {
            for i in 0..name.len() {
                for b in 0..=255u8 {
                    let mut s = name.to_vec();
                    s[i] = b;
                    let want = s.eq_ignore_ascii_case(name);
                    let got = match name.len() {
                        3 => is_lowercase(&s, <&[u8; 3]>::try_from(name).unwrap()),
                        5 => is_lowercase(&s, <&[u8; 5]>::try_from(name).unwrap()),
                        6 => is_lowercase(&s, <&[u8; 6]>::try_from(name).unwrap()),
                        10 => is_lowercase(&s, <&[u8; 10]>::try_from(name).unwrap()),
                        12 => is_lowercase(&s, <&[u8; 12]>::try_from(name).unwrap()),
                        4 => is_lowercase(&s, <&[u8; 4]>::try_from(name).unwrap()),
                        7 => is_lowercase(&s, <&[u8; 7]>::try_from(name).unwrap()),
                        8 => is_lowercase(&s, <&[u8; 8]>::try_from(name).unwrap()),
                        14 => is_lowercase(&s, <&[u8; 14]>::try_from(name).unwrap()),
                        17 => is_lowercase(&s, <&[u8; 17]>::try_from(name).unwrap()),
                        _ => unreachable!(),
                    };
                    assert_eq!(got, want, "{:?}", String::from_utf8_lossy(&s));
                }
            }
        }
        assert!(is_lowercase(b"CONTENT-LENGTH", b"content-length"));
        assert!(!is_lowercase(b"content-lengt", b"content-length"));
        assert!(!is_lowercase(b"content-length ", b"content-length"));
    }

    #[test]
    fn host_fast_path_cases() {
        let req = |host: &str, target: &str, method: &str| {
            let raw = format!("{method} {target} HTTP/1.1\r\nHost:{host}\r\n\r\n");
            let head = parse_request(raw.as_bytes(), &limits()).unwrap().unwrap();
            let got = request_framing(raw.as_bytes(), &head);
            assert_eq!(got, reference::request_framing(raw.as_bytes(), &head), "{raw:?}");
            got.map_err(|e| e.reason)
        };
        assert_eq!(req(" 127.0.0.1:8080", "/", "GET"), Ok(Framing::None));
        assert_eq!(req(" [::1]:8080", "/", "GET"), Ok(Framing::None));
        assert_eq!(req(" EXAMPLE.COM", "/", "GET"), Ok(Framing::None));
        assert_eq!(req("", "/", "GET"), Ok(Framing::None));
        assert_eq!(req(" a:", "/", "GET"), Err("invalid Host"));
        assert_eq!(req(" [::1", "/", "GET"), Err("invalid Host"));
        assert_eq!(req(" a%4", "/", "GET"), Err("invalid Host"));
        assert_eq!(req(" Example.com", "http://example.COM:80/x", "GET"), Ok(Framing::None));
        assert_eq!(req(" example.com:443", "HTTPS://example.com/", "GET"), Ok(Framing::None));
        assert_eq!(req(" example.com:80", "https://example.com/", "GET"), Err("Host differs from target authority"));
        assert_eq!(req("", "http://example.com/", "GET"), Err("Host differs from target authority"));
        assert_eq!(req(" [::1]:443", "https://[::1]", "GET"), Ok(Framing::None));
        assert_eq!(req(" A:443", "a:443", "CONNECT"), Ok(Framing::None));
        assert_eq!(req(" a", "a:443", "CONNECT"), Ok(Framing::None), "a missing port is the target's");
        assert_eq!(req(" a:80", "a:443", "CONNECT"), Err("Host differs from target authority"));
    }

    /// Field names and values that exercise every framing rule, for the properties below.
    fn framing_field() -> impl Strategy<Value = (&'static str, &'static str)> {
        let names = prop::sample::select(vec![
            "Host",
            "HOST",
            "host",
            "hosT",
            "Hosts",
            "Hos",
            "Content-Length",
            "content-length",
            "CONTENT-LENGTH",
            "Content_Length",
            "content-lengtH",
            "Content-Lengths",
            "Content-Type",
            "Transfer-Encoding",
            "transfer-encoding",
            "TRANSFER_ENCODING",
            "Transfer-Encodinx",
            "X-A",
            "Cache-Control",
        ]);
        let values = prop::sample::select(vec![
            "",
            "0",
            "5",
            "05",
            "18446744073709551615",
            "18446744073709551616",
            "1234567890123456789",
            "99999999999999999999",
            "5, 5",
            "5,5",
            "5, 6",
            "5,",
            ",5",
            "+5",
            "0x5",
            "5 5",
            "chunked",
            "Chunked",
            "CHUNKED",
            "chunkedx",
            "gzip, chunked",
            "chunked, gzip",
            "gzip",
            "chunked, chunked",
            "x-gzip,chunked",
            "br",
            "chunked;q=1",
            "127.0.0.1:8080",
            "127.0.0.1",
            "[::1]:80",
            "[::1]",
            "Example.com:80",
            "example.com",
            "a:",
            "a%41",
            "a%4",
            "[::1",
            "a b",
        ]);
        (names, values)
    }

    proptest! {
        #[test]
        fn request_framing_matches_reference(
            method in prop::sample::select(vec!["GET", "POST", "CONNECT", "OPTIONS", "HEAD"]),
            target in prop::sample::select(vec!["/", "/a:b?c", "*", "http://example.com/x", "HTTP://Example.com:80", "https://example.com:443/", "http://[::1]:80/", "example.com:80", "[::1]:443", "127.0.0.1:8080"]),
            version in prop::sample::select(vec!["HTTP/1.1", "HTTP/1.0"]),
            fields in proptest::collection::vec(framing_field(), 0..5),
        ) {
            let mut raw = format!("{method} {target} {version}\r\n");
            for (name, value) in &fields {
                raw.push_str(&format!("{name}: {value}\r\n"));
            }
            raw.push_str("\r\n");
            if let Ok(Some(head)) = parse_request(raw.as_bytes(), &limits()) {
                prop_assert_eq!(request_framing(raw.as_bytes(), &head), reference::request_framing(raw.as_bytes(), &head), "{:?}", raw);
            }
        }

        #[test]
        fn response_framing_matches_reference(
            status in prop::sample::select(vec![100u16, 101, 200, 204, 206, 304, 404]),
            method in prop::sample::select(vec!["GET", "HEAD", "CONNECT", "POST"]),
            version in prop::sample::select(vec!["HTTP/1.1", "HTTP/1.0"]),
            fields in proptest::collection::vec(framing_field(), 0..5),
        ) {
            let mut raw = format!("{version} {status} X\r\n");
            for (name, value) in &fields {
                raw.push_str(&format!("{name}: {value}\r\n"));
            }
            raw.push_str("\r\n");
            let head = parse_response(raw.as_bytes(), &limits()).unwrap().unwrap();
            let method = method.as_bytes();
            prop_assert_eq!(response_framing_for(raw.as_bytes(), &head, method), reference::response_framing_for(raw.as_bytes(), &head, method), "{:?}", raw);
        }

        #[test]
        fn authority_matches_reference(a in proptest::collection::vec(prop::sample::select(b"[]:.%09afAFgz-_~!@/?# \0\xff".to_vec()), 0..12)) {
            prop_assert_eq!(authority_parts(authority(&a)), reference_parts(reference::authority(&a)));
            let mut t = b"http://".to_vec();
            t.extend_from_slice(&a);
            let new = absolute_form(&t).map(|(a, p)| (authority_parts(Some(a)), p));
            let old = reference::absolute_form(&t).map(|(a, p)| (reference_parts(Some(a)), p));
            prop_assert_eq!(new, old);
        }

        #[test]
        fn host_and_port_match_reference(
            host in prop_oneof!["[a-zA-Z0-9.-]{1,10}", "\\[[0-9a-fA-F:.]{1,8}\\]", "[a-fA-F0-9g.%:_\\[\\]]{0,10}"],
            port in proptest::option::of(prop_oneof!["[0-9]{0,7}", "[0-9a+ ]{0,7}"]),
        ) {
            let a = match port {
                Some(p) => format!("{host}:{p}"),
                None => host,
            };
            prop_assert_eq!(authority_parts(authority(a.as_bytes())), reference_parts(reference::authority(a.as_bytes())), "{:?}", a);
        }

        #[test]
        fn head_like_framing_matches_reference(raw in "(GET|POST|CONNECT|OPTIONS|HTTP/1\\.[01]) [ -~]{0,20}( HTTP/1\\.[01]| [0-9]{3} x)?\r\n(([A-Za-z_-]{1,8}|Host|Content-Length|Transfer-Encoding|Content_Length) ?:[ \t0-9a-z,;:\\[\\]%.]{0,12}\r\n){0,4}\r\n") {
            let raw = raw.as_bytes();
            if let Ok(Some(head)) = parse_request(raw, &limits()) {
                prop_assert_eq!(request_framing(raw, &head), reference::request_framing(raw, &head));
            }
            if let Ok(Some(head)) = parse_response(raw, &limits()) {
                for method in [&b"GET"[..], b"HEAD", b"CONNECT"] {
                    prop_assert_eq!(response_framing_for(raw, &head, method), reference::response_framing_for(raw, &head, method));
                }
            }
        }
    }

    // --- error positions (`show errors`) -----------------------------------------------------

    fn position(raw: &[u8]) -> usize {
        match parse_request(raw, &limits()) {
            Err(e) => error_position(raw, None, &e, &limits(), true),
            Ok(Some(head)) => {
                let e = request_framing(raw, &head).expect_err("refused");
                error_position(raw, Some(&head), &e, &limits(), true)
            }
            Ok(None) => panic!("incomplete"),
        }
    }

    #[test]
    fn error_position_is_the_space_before_the_colon() {
        assert_eq!(position(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n"), 20);
    }

    #[test]
    fn error_position_is_the_colon_of_an_empty_name() {
        assert_eq!(position(b"GET / HTTP/1.1\r\nHost: localhost\r\n:empty header\r\n\r\n"), 33);
    }

    #[test]
    fn error_position_is_the_bad_content_length_value() {
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n";
        assert_eq!(position(raw), 42);
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(position(raw), 61);
    }

    #[test]
    fn error_position_in_request_line() {
        assert_eq!(position(b"GET /a{b HTTP/1.1\r\nHost: a\r\n\r\n"), 6);
        assert_eq!(position(b"GET / HTTP/1.1\nHost: a\r\n\r\n"), 14);
        assert_eq!(position(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 11);
        assert_eq!(position(b"GET * HTTP/1.1\r\nHost: a\r\n\r\n"), 4);
    }

    #[test]
    fn error_position_of_a_head_too_large_is_the_limit() {
        let l = Limits { max_head: 64, max_headers: 10 };
        let mut raw = b"GET / HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
        raw.resize(100, b'a');
        let e = parse_request(&raw, &l).unwrap_err();
        assert_eq!((e.status, error_position(&raw, None, &e, &l, true)), (431, 64));
        let l = Limits { max_head: 4096, max_headers: 1 };
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\n\r\n";
        let e = parse_request(raw, &l).unwrap_err();
        assert_eq!((e.reason, error_position(raw, None, &e, &l, true)), ("too many headers", 25), "the first field past the limit");
    }

    #[test]
    fn error_position_of_a_missing_host_is_the_end_of_the_head() {
        assert_eq!(position(b"GET / HTTP/1.1\r\nX: a\r\n\r\n"), 22);
    }

    #[test]
    fn error_position_in_a_response() {
        let raw = b"HTTP/1.1 2x0 OK\r\n\r\n";
        let e = parse_response(raw, &limits()).unwrap_err();
        assert_eq!(error_position(raw, None, &e, &limits(), false), 10);
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        let head = parse_response(raw, &limits()).unwrap().unwrap();
        let e = response_framing_for(raw, &head, b"GET").unwrap_err();
        assert_eq!(error_position(raw, Some(&head), &e, &limits(), false), 36);
    }

    #[test]
    fn chunked_failure_offset_is_the_byte_it_broke_on() {
        let mut c = Chunked::new();
        assert!(c.feed(b"3\r\nabc\r\nzz\r\n").is_err());
        assert_eq!(c.failed_at(), 8);
        let mut c = Chunked::new();
        assert!(c.feed(b"5\r\nab").is_ok());
        assert!(c.feed(b"cdeXY").is_err(), "no CRLF after the chunk's data");
        assert_eq!(c.failed_at(), 3, "an offset in the failing call's input");
        assert!(c.feed(b"\r\n").is_err());
        assert_eq!(c.failed_at(), 3, "a later call keeps the offset");
    }
}
