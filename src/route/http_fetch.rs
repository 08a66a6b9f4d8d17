//! Layer 7 sample fetches: the request and response heads, read through [`HttpMsg`] as HAProxy's
//! configuration manual (7.3.6) describes them.
//!
//! Fetches that can yield several values (`req.hdr`, `req.fhdr`, `req.cook`, `url_param`, ...)
//! return one of them as a sample (the last occurrence, or the first for `url_param`) and every
//! one of them to an ACL, which matches when any does: [`HttpFetch::each`]. Values borrow from the
//! message; only `base` with a Host header and `req.hdrs` build a new string.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr};

use super::auth;
use super::eval::{HttpMsg, SampleRef, StreamCtx};

/// Which message a header or cookie fetch reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dir {
    Req,
    Res,
}

/// How a header value is turned into the sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HdrAs {
    Str,
    /// `hdr_ip`: a leading dotted quad (a port may follow) or a whole IPv6 address; other values
    /// are skipped.
    Ip,
    /// `hdr_val`: the leading decimal integer, 0 when there is none.
    Int,
}

/// A compiled layer 7 fetch.
#[derive(Debug)]
pub(crate) enum HttpFetch {
    Method,
    Path,
    PathQ,
    Query,
    Url,
    Base,
    Base32,
    UrlParam {
        name: Box<[u8]>,
        delim: u8,
        icase: bool,
        as_int: bool,
    },
    /// `req.hdr`, `res.hdr`, `req.fhdr` (`full`), `hdr_ip`, `hdr_val`; `occ` 0 is "not given".
    Hdr {
        dir: Dir,
        name: Option<Box<[u8]>>,
        occ: i64,
        full: bool,
        as_: HdrAs,
    },
    HdrCnt {
        dir: Dir,
        name: Option<Box<[u8]>>,
        full: bool,
    },
    Hdrs,
    Cook {
        dir: Dir,
        name: Option<Box<[u8]>>,
        as_int: bool,
    },
    CookCnt {
        dir: Dir,
        name: Option<Box<[u8]>>,
    },
    /// `req.hdr_names([<delim>])`: the header names in order, lower-cased as HAProxy stores
    /// them, joined by `delim` (`,` by default).
    HdrNames {
        delim: Box<[u8]>,
    },
    Body,
    /// `req.body_param([<name>[,i]])`: a parameter of a url-encoded body (buffered with
    /// `option http-buffer-request`), first occurrence; without a name, any parameter.
    BodyParam {
        name: Box<[u8]>,
        icase: bool,
    },
    BodyLen,
    /// `req.body_size`: the Content-Length announced, or, without one, the size of the buffered
    /// (chunked) body.
    BodySize,
    /// `url_ip`: the IP literal host of an absolute request URI.
    UrlIp,
    /// `url_port`: the port of an absolute request URI, or its scheme's (80, 443) when none.
    UrlPort,
    Ver(Dir),
    FirstReq,
    Status,
    Auth(String),
    AuthGroup(String),
    AuthUser,
    AuthType,
}

impl HttpFetch {
    /// The fetch for `name`, if it is a layer 7 one. Arguments were checked against the registry.
    pub fn compile(name: &str, args: &[String]) -> Result<Option<HttpFetch>, String> {
        let arg = |i: usize| args.get(i).map(String::as_str).filter(|a| !a.is_empty());
        let name_arg = |i: usize| arg(i).map(|a| a.as_bytes().into());
        let occ = || -> Result<i64, String> { arg(1).map_or(Ok(0), |a| a.parse().map_err(|_| format!("{name}: occurrence '{a}' is not an integer"))) };
        let hdr = |dir, full, as_| -> Result<HttpFetch, String> { Ok(HttpFetch::Hdr { dir, name: name_arg(0), occ: occ()?, full, as_ }) };
        Ok(Some(match name {
            "method" | "capture.req.method" => HttpFetch::Method,
            "path" => HttpFetch::Path,
            "pathq" => HttpFetch::PathQ,
            "query" => HttpFetch::Query,
            "url" | "req.uri" | "capture.req.uri" => HttpFetch::Url,
            "base" => HttpFetch::Base,
            "base32" => HttpFetch::Base32,
            "url_param" | "urlp" | "urlp_val" => HttpFetch::UrlParam {
                name: name_arg(0).unwrap_or_default(),
                delim: arg(1).map_or(b'?', |d| d.as_bytes()[0]),
                icase: arg(2) == Some("i"),
                as_int: name == "urlp_val",
            },
            "req.hdr" | "hdr" => hdr(Dir::Req, false, HdrAs::Str)?,
            "res.hdr" | "shdr" => hdr(Dir::Res, false, HdrAs::Str)?,
            "req.fhdr" => hdr(Dir::Req, true, HdrAs::Str)?,
            "res.fhdr" => hdr(Dir::Res, true, HdrAs::Str)?,
            "req.hdr_ip" | "hdr_ip" => hdr(Dir::Req, false, HdrAs::Ip)?,
            "res.hdr_ip" => hdr(Dir::Res, false, HdrAs::Ip)?,
            "req.hdr_val" | "hdr_val" => hdr(Dir::Req, false, HdrAs::Int)?,
            "res.hdr_val" => hdr(Dir::Res, false, HdrAs::Int)?,
            "req.hdr_cnt" | "hdr_cnt" => HttpFetch::HdrCnt { dir: Dir::Req, name: name_arg(0), full: false },
            "req.fhdr_cnt" => HttpFetch::HdrCnt { dir: Dir::Req, name: name_arg(0), full: true },
            "res.hdr_cnt" => HttpFetch::HdrCnt { dir: Dir::Res, name: name_arg(0), full: false },
            "req.hdrs" => HttpFetch::Hdrs,
            "req.cook" | "cook" => HttpFetch::Cook { dir: Dir::Req, name: name_arg(0), as_int: false },
            "req.cook_val" | "cook_val" => HttpFetch::Cook { dir: Dir::Req, name: name_arg(0), as_int: true },
            "res.cook" | "scook" => HttpFetch::Cook { dir: Dir::Res, name: name_arg(0), as_int: false },
            "req.cook_cnt" | "cook_cnt" => HttpFetch::CookCnt { dir: Dir::Req, name: name_arg(0) },
            "req.hdr_names" => HttpFetch::HdrNames { delim: arg(0).map_or(b",".as_slice(), str::as_bytes).into() },
            "req.body" => HttpFetch::Body,
            "req.body_param" => HttpFetch::BodyParam { name: name_arg(0).unwrap_or_default(), icase: arg(1) == Some("i") },
            "req.body_size" => HttpFetch::BodySize,
            "url_ip" => HttpFetch::UrlIp,
            "url_port" => HttpFetch::UrlPort,
            "req.body_len" => HttpFetch::BodyLen,
            "req.ver" | "req_ver" => HttpFetch::Ver(Dir::Req),
            "res.ver" | "resp_ver" => HttpFetch::Ver(Dir::Res),
            "http_first_req" => HttpFetch::FirstReq,
            "status" => HttpFetch::Status,
            "http_auth" => HttpFetch::Auth(arg(0).unwrap_or_default().to_owned()),
            "http_auth_group" => HttpFetch::AuthGroup(arg(0).unwrap_or_default().to_owned()),
            "http_auth_user" => HttpFetch::AuthUser,
            "http_auth_type" => HttpFetch::AuthType,
            _ => return Ok(None),
        }))
    }

    /// The sample: one value, as HAProxy returns it outside ACLs.
    pub fn eval<'a>(&'a self, ctx: &'a dyn StreamCtx) -> Option<SampleRef<'a>> {
        let req = || ctx.http_request();
        match self {
            HttpFetch::Method => Some(str_ref(req()?.method())),
            HttpFetch::Path => path(req()?.uri()).map(|p| str_ref(until_query(p))),
            HttpFetch::PathQ => path(req()?.uri()).map(str_ref),
            HttpFetch::Query => query(req()?.uri()).map(str_ref),
            HttpFetch::Url => Some(str_ref(req()?.uri())),
            HttpFetch::Base => base(req()?),
            HttpFetch::Base32 => Some(SampleRef::Int(base32(req()?).into())),
            HttpFetch::UrlParam { name, delim, icase, as_int } => {
                let mut pos = 0;
                let qs = param_list(req()?.uri(), *delim)?;
                let v = next_param(qs, &mut pos, name, *delim, *icase)?;
                Some(if *as_int { SampleRef::Int(leading_int(v)) } else { str_ref(v) })
            }
            HttpFetch::Hdr { dir, name, occ, full, as_ } => {
                let msg = msg(ctx, *dir)?;
                // Without an occurrence, a sample is the last value.
                let occ = if *occ == 0 { -1 } else { *occ };
                hdr_as(occurrence(|| Values::new(msg, name.as_deref(), *full), occ)?, *as_)
            }
            HttpFetch::HdrCnt { dir, name, full } => {
                let n = Values::new(msg(ctx, *dir)?, name.as_deref(), *full).count();
                Some(SampleRef::Int(i64::try_from(n).unwrap_or(i64::MAX)))
            }
            HttpFetch::Hdrs => Some(SampleRef::Str(Cow::Owned(hdrs(req()?)))),
            HttpFetch::Cook { dir, name, as_int } => {
                let msg = msg(ctx, *dir)?;
                // Named: the last occurrence; unnamed: the first cookie.
                let mut cookies = Cookies::new(msg, *dir, name.as_deref());
                let v = if name.is_some() { cookies.last()? } else { cookies.next()? };
                Some(if *as_int { SampleRef::Int(leading_int(v)) } else { str_ref(v) })
            }
            HttpFetch::CookCnt { dir, name } => {
                let n = Cookies::new(msg(ctx, *dir)?, *dir, name.as_deref()).count();
                Some(SampleRef::Int(i64::try_from(n).unwrap_or(i64::MAX)))
            }
            HttpFetch::HdrNames { delim } => {
                let msg = req()?;
                let mut out = Vec::new();
                for i in 0..msg.header_count() {
                    if i > 0 {
                        out.extend_from_slice(delim);
                    }
                    out.extend(msg.header(i).0.iter().map(u8::to_ascii_lowercase));
                }
                Some(SampleRef::Str(Cow::Owned(out)))
            }
            HttpFetch::Body => req()?.body().map(|b| SampleRef::Bin(Cow::Borrowed(b))),
            HttpFetch::BodyParam { name, icase } => next_param(req()?.body()?, &mut 0, name, b'&', *icase).map(str_ref),
            HttpFetch::BodySize => {
                let req = req()?;
                match Values::new(req, Some(b"content-length"), false).next() {
                    Some(v) => std::str::from_utf8(v).ok()?.parse::<u64>().ok().map(|n| SampleRef::Int(i64::try_from(n).unwrap_or(i64::MAX))),
                    None => req.body().map(|b| SampleRef::Int(i64::try_from(b.len()).unwrap_or(i64::MAX))),
                }
            }
            HttpFetch::UrlIp => url_host_port(req()?.uri()).and_then(|(h, _)| host_ip(h)).map(SampleRef::Ip),
            HttpFetch::UrlPort => url_host_port(req()?.uri()).map(|(_, p)| SampleRef::Int(p.into())),
            HttpFetch::BodyLen => req()?.body().map(|b| SampleRef::Int(i64::try_from(b.len()).unwrap_or(i64::MAX))),
            HttpFetch::Ver(dir) => version(msg(ctx, *dir)?.version()).map(str_ref),
            HttpFetch::FirstReq => Some(SampleRef::Bool(req()?.first_request())),
            HttpFetch::Status => Some(SampleRef::Int(ctx.http_response()?.status().into())),
            HttpFetch::Auth(ul) => {
                let ul = ctx.userlist(ul)?;
                let ok = auth::basic_credentials(req()?).is_some_and(|cred| auth::check_user(ul, &cred).is_some());
                Some(SampleRef::Bool(ok))
            }
            HttpFetch::AuthGroup(ul) => {
                let ul = ctx.userlist(ul)?;
                let u = auth::check_user(ul, &auth::basic_credentials(req()?)?)?;
                Some(str_ref(u.name.as_bytes()))
            }
            HttpFetch::AuthUser => Some(SampleRef::Str(Cow::Owned(auth::basic_credentials(req()?)?.into_user()))),
            HttpFetch::AuthType => auth::scheme(req()?).map(|s| str_ref(s.as_bytes())),
        }
    }

    /// Every value, as an ACL sees them: `f` is called on each until it returns true; the result
    /// says whether one did. Fetches with a single value call `f` at most once.
    pub fn each<'a>(&'a self, ctx: &'a dyn StreamCtx, f: &mut dyn FnMut(SampleRef<'a>) -> bool) -> bool {
        match self {
            HttpFetch::Hdr { dir, name, occ: 0, full, as_ } => {
                let Some(msg) = msg(ctx, *dir) else { return false };
                Values::new(msg, name.as_deref(), *full).filter_map(|v| hdr_as(v, *as_)).any(f)
            }
            HttpFetch::Cook { dir, name, as_int } => {
                let Some(msg) = msg(ctx, *dir) else { return false };
                Cookies::new(msg, *dir, name.as_deref()).any(|v| f(if *as_int { SampleRef::Int(leading_int(v)) } else { str_ref(v) }))
            }
            HttpFetch::UrlParam { name, delim, icase, as_int } => {
                let Some(qs) = ctx.http_request().and_then(|m| param_list(m.uri(), *delim)) else { return false };
                any_param(qs, name, *delim, *icase, &mut |v| f(if *as_int { SampleRef::Int(leading_int(v)) } else { str_ref(v) }))
            }
            HttpFetch::BodyParam { name, icase } => {
                let Some(body) = ctx.http_request().and_then(|m| m.body()) else { return false };
                any_param(body, name, b'&', *icase, &mut |v| f(str_ref(v)))
            }
            _ => self.eval(ctx).is_some_and(f),
        }
    }
}

fn str_ref(s: &[u8]) -> SampleRef<'_> {
    SampleRef::Str(Cow::Borrowed(s))
}

fn msg(ctx: &dyn StreamCtx, dir: Dir) -> Option<&dyn HttpMsg> {
    match dir {
        Dir::Req => ctx.http_request(),
        Dir::Res => ctx.http_response(),
    }
}

fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_spht(b: u8) -> bool {
    matches!(b, b' ' | b'\t')
}

fn trim_lws(mut v: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = v
        && is_lws(*first)
    {
        v = rest;
    }
    while let [rest @ .., last] = v
        && is_lws(*last)
    {
        v = rest;
    }
    v
}

/// The path of a request target as HAProxy's `http_get_path` finds it: from the first slash after
/// the authority of an absolute target (or from the start of an origin-form one) to the end, query
/// included. `*` and targets without a slash have none.
pub(crate) fn path(uri: &[u8]) -> Option<&[u8]> {
    let mut i = 0;
    match uri.first()? {
        b'*' => return None,
        c if c.is_ascii_alphabetic() => {
            i = 1;
            while uri.get(i).is_some_and(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.')) {
                i += 1;
            }
            if uri.get(i..i + 3) != Some(b"://") {
                return None;
            }
            i += 3;
        }
        _ => {}
    }
    let slash = uri.get(i..)?.iter().position(|&c| c == b'/')?;
    uri.get(i + slash..)
}

/// The host (brackets kept for IPv6) and port of an absolute `http://` or `https://` request
/// URI; the port is the scheme's when the URI has none, and a port that is not a number makes it
/// none. Origin-form targets have none.
pub(crate) fn url_host_port(uri: &[u8]) -> Option<(&[u8], u16)> {
    let sep = uri.windows(3).position(|w| w == b"://")?;
    let default = match &uri[..sep] {
        s if s.eq_ignore_ascii_case(b"http") => 80,
        s if s.eq_ignore_ascii_case(b"https") => 443,
        _ => return None,
    };
    let rest = &uri[sep + 3..];
    let authority = &rest[..rest.iter().position(|&c| matches!(c, b'/' | b'?' | b'#')).unwrap_or(rest.len())];
    let hostport = authority.iter().rposition(|&c| c == b'@').map_or(authority, |at| &authority[at + 1..]);
    // The port follows the last colon after any IPv6 literal's closing bracket.
    let host_end = hostport.iter().rposition(|&c| c == b']').map_or(0, |b| b + 1);
    let (host, port) = match hostport[host_end..].iter().position(|&c| c == b':') {
        Some(c) => {
            let (h, p) = hostport.split_at(host_end + c);
            let p = &p[1..];
            (h, if p.is_empty() { default } else { std::str::from_utf8(p).ok()?.parse().ok()? })
        }
        None => (hostport, default),
    };
    (!host.is_empty()).then_some((host, port))
}

/// An IP literal host: dotted quad, or IPv6 in brackets.
fn host_ip(host: &[u8]) -> Option<IpAddr> {
    let h = std::str::from_utf8(host).ok()?;
    match h.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6),
        None => h.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
    }
}

fn until_query(p: &[u8]) -> &[u8] {
    p.iter().position(|&c| c == b'?').map_or(p, |q| &p[..q])
}

/// After the first `?`, possibly empty; none without a `?`.
pub(crate) fn query(uri: &[u8]) -> Option<&[u8]> {
    uri.iter().position(|&c| c == b'?').map(|q| &uri[q + 1..])
}

/// `base`: the first Host value followed by the path (without the query); the path alone without
/// a Host header.
fn base(msg: &dyn HttpMsg) -> Option<SampleRef<'_>> {
    let path = path(msg.uri()).map(until_query);
    let Some(host) = Values::new(msg, Some(b"host"), false).next() else { return path.map(str_ref) };
    let path = path.filter(|p| p.first() == Some(&b'/')).unwrap_or_default();
    let mut out = Vec::with_capacity(host.len() + path.len());
    out.extend_from_slice(host);
    out.extend_from_slice(path);
    Some(SampleRef::Str(Cow::Owned(out)))
}

/// `base32`: HAProxy's SDBM over the Host value then the path, avalanched. The bytes are summed as
/// C `char`s, signed on the platforms HAProxy runs on, so that the values agree with HAProxy's.
fn base32(msg: &dyn HttpMsg) -> u32 {
    let step = |h: u32, &b: &u8| (i32::from(b as i8) as u32).wrapping_add(h << 6).wrapping_add(h << 16).wrapping_sub(h);
    let mut h = Values::new(msg, Some(b"host"), false).next().map_or(0, |host| host.iter().fold(0, step));
    if let Some(p) = path(msg.uri()).map(until_query).filter(|p| p.first() == Some(&b'/')) {
        h = p.iter().fold(h, step);
    }
    super::convert::full_hash(h)
}

/// The request or response version after `HTTP/`.
fn version(v: &[u8]) -> Option<&[u8]> {
    let slash = v.iter().position(|&c| c == b'/')?;
    v.get(slash + 1..).filter(|r| !r.is_empty())
}

/// `req.hdrs`: the header block as `name: value` lines, with the empty line that ends it.
fn hdrs(msg: &dyn HttpMsg) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..msg.header_count() {
        let (n, v) = msg.header(i);
        out.extend_from_slice(n);
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// HAProxy's `strl2ic` on a header or cookie value: an optional minus sign and the digits that
/// follow; 0 when there are none.
fn leading_int(v: &[u8]) -> i64 {
    let (neg, digits) = match v.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, v),
    };
    let n = digits.iter().take_while(|c| c.is_ascii_digit()).fold(0i64, |n, &c| n.saturating_mul(10).saturating_add(i64::from(c - b'0')));
    if neg { -n } else { n }
}

fn hdr_as(v: &[u8], as_: HdrAs) -> Option<SampleRef<'_>> {
    match as_ {
        HdrAs::Str => Some(str_ref(v)),
        HdrAs::Int => Some(SampleRef::Int(leading_int(v))),
        HdrAs::Ip => header_ip(v).map(SampleRef::Ip),
    }
}

/// `hdr_ip`: a dotted quad at the start of the value (`10.0.0.1:8080` gives `10.0.0.1`), or else
/// the whole value as an IPv6 address.
fn header_ip(v: &[u8]) -> Option<IpAddr> {
    let end = v.iter().position(|c| !c.is_ascii_digit() && *c != b'.').unwrap_or(v.len());
    if end > 0
        && let Ok(a) = std::str::from_utf8(&v[..end]).unwrap_or_default().parse::<Ipv4Addr>()
    {
        return Some(IpAddr::V4(a));
    }
    std::str::from_utf8(v).ok()?.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)
}

/// The `occ`th value: from the first when positive, from the last when negative.
fn occurrence<'a, I: Iterator<Item = &'a [u8]>>(values: impl Fn() -> I, occ: i64) -> Option<&'a [u8]> {
    let back = usize::try_from(occ.unsigned_abs()).ok()?;
    if occ > 0 {
        return values().nth(back - 1);
    }
    let n = values().count();
    values().nth(n.checked_sub(back)?)
}

/// Where a comma-delimited header value ends: at the first comma outside a quoted string.
fn value_end(s: &[u8]) -> usize {
    let (mut quoted, mut escaped) = (false, false);
    for (i, &c) in s.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if quoted {
            match c {
                b'\\' => escaped = true,
                b'"' => quoted = false,
                _ => {}
            }
        } else if c == b'"' {
            quoted = true;
        } else if c == b',' {
            return i;
        }
    }
    s.len()
}

/// The values of the headers named `name` (every header without a name), in order: each
/// comma-delimited value, or the whole line with `full`, without surrounding blanks.
pub(crate) struct Values<'a> {
    msg: &'a dyn HttpMsg,
    name: Option<&'a [u8]>,
    full: bool,
    next_header: usize,
    /// What is left of the current header's value after the values returned so far.
    rest: Option<&'a [u8]>,
}

impl<'a> Values<'a> {
    pub fn new(msg: &'a dyn HttpMsg, name: Option<&'a [u8]>, full: bool) -> Values<'a> {
        Values { msg, name, full, next_header: 0, rest: None }
    }
}

impl<'a> Iterator for Values<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            if let Some(rest) = self.rest.take() {
                let end = if self.full { rest.len() } else { value_end(rest) };
                // A trailing comma leaves an empty value, as in HAProxy.
                self.rest = rest.get(end + 1..);
                return Some(trim_lws(&rest[..end]));
            }
            if self.next_header >= self.msg.header_count() {
                return None;
            }
            let (n, v) = self.msg.header(self.next_header);
            self.next_header += 1;
            if self.name.is_none_or(|want| n.eq_ignore_ascii_case(want)) {
                self.rest = Some(v);
            }
        }
    }
}

/// The values of the cookies named `name` (every cookie without a name) in the Cookie headers of a
/// request or the Set-Cookie headers of a response, in order.
struct Cookies<'a> {
    headers: Values<'a>,
    name: Option<&'a [u8]>,
    /// Request Cookie headers list cookies; a Set-Cookie header sets one, followed by attributes.
    list: bool,
    current: &'a [u8],
    pos: usize,
}

impl<'a> Cookies<'a> {
    fn new(msg: &'a dyn HttpMsg, dir: Dir, name: Option<&'a [u8]>) -> Cookies<'a> {
        let header: &'static [u8] = if dir == Dir::Req { b"cookie" } else { b"set-cookie" };
        Cookies { headers: Values::new(msg, Some(header), true), name, list: dir == Dir::Req, current: b"", pos: 0 }
    }
}

impl<'a> Iterator for Cookies<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            if let Some(v) = find_cookie(self.current, &mut self.pos, self.name, self.list) {
                return Some(v);
            }
            self.current = self.headers.next()?;
            self.pos = 0;
        }
    }
}

/// HAProxy's `http_extract_cookie_value`, from `*pos` in one header value: the value of the next
/// `name=value` pair whose name is `name` (any name when `None`). Attributes starting with `$` and
/// pairs without `=` are skipped; in a Set-Cookie header (`!list`) only the first pair is a cookie.
fn find_cookie<'a>(hdr: &'a [u8], pos: &mut usize, name: Option<&[u8]>, list: bool) -> Option<&'a [u8]> {
    let end = hdr.len();
    let name_len = name.map_or(0, <[u8]>::len);
    let mut att_beg = *pos;
    // HAProxy stops when what is left cannot hold the name and an `=`.
    while att_beg + name_len + 1 < end {
        while att_beg < end && is_spht(hdr[att_beg]) {
            att_beg += 1;
        }
        let (mut equal, mut att_end) = (att_beg, att_beg);
        while equal < end {
            let c = hdr[equal];
            if c == b'=' || c == b';' || (list && c == b',') {
                break;
            }
            equal += 1;
            if !is_spht(c) {
                att_end = equal;
            }
        }
        let (val_beg, val_end, next) = if equal < end && hdr[equal] == b'=' {
            let mut vb = equal + 1;
            while vb < end && is_spht(hdr[vb]) {
                vb += 1;
            }
            let next = crate::l7::cookie::value_end(hdr, vb);
            let mut ve = next;
            while ve > vb && is_spht(hdr[ve - 1]) {
                ve -= 1;
            }
            (vb, ve, next)
        } else {
            (equal, equal, equal)
        };
        let skip = hdr.get(att_beg) == Some(&b'$') || equal == next;
        if !skip && name.is_none_or(|n| hdr.get(att_beg..att_end) == Some(n)) {
            *pos = next + 1;
            return hdr.get(val_beg..val_end);
        }
        if !skip && !list {
            break;
        }
        att_beg = next + 1;
    }
    *pos = end;
    None
}

/// Where `url_param` looks: after the first `?` or `delim` of the target.
fn param_list(uri: &[u8], delim: u8) -> Option<&[u8]> {
    let q = uri.iter().position(|&c| c == b'?' || c == delim)?;
    uri.get(q + 1..)
}

fn is_param_delim(c: u8, delim: u8) -> bool {
    c == b'&' || c == b';' || c == delim
}

/// Calls `f` on each value of `name` in the parameter list `qs` until it returns true; says
/// whether it did.
fn any_param<'a>(qs: &'a [u8], name: &[u8], delim: u8, icase: bool, f: &mut dyn FnMut(&'a [u8]) -> bool) -> bool {
    let mut pos = 0;
    while let Some(v) = next_param(qs, &mut pos, name, delim, icase) {
        if f(v) {
            return true;
        }
    }
    false
}

/// HAProxy's `http_find_next_url_param`, from `*pos`: the value of the next `name=value`
/// parameter (a parameter without `=` never matches a name), or without a name the value after
/// the next `=`. Values end before `&`, `;` or `delim`; nothing is decoded.
fn next_param<'a>(qs: &'a [u8], pos: &mut usize, name: &[u8], delim: u8, icase: bool) -> Option<&'a [u8]> {
    let mut p = *pos;
    let value_start = if name.is_empty() {
        p + qs.get(p..)?.iter().position(|&c| c == b'=')? + 1
    } else {
        loop {
            if p >= qs.len() {
                *pos = qs.len();
                return None;
            }
            let eq = p + name.len();
            let candidate = qs.get(p..eq);
            if qs.get(eq) == Some(&b'=') && candidate.is_some_and(|c| if icase { c.eq_ignore_ascii_case(name) } else { c == name }) {
                break eq + 1;
            }
            while p < qs.len() && !is_param_delim(qs[p], delim) {
                p += 1;
            }
            p += 1;
        }
    };
    let rest = qs.get(value_start..).unwrap_or_default();
    let len = rest.iter().position(|&c| is_param_delim(c, delim)).unwrap_or(rest.len());
    *pos = value_start + len;
    Some(&rest[..len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_of_each_target_form() {
        assert_eq!(path(b"/a/b?c"), Some(&b"/a/b?c"[..]));
        assert_eq!(path(b"http://h:80/x?y"), Some(&b"/x?y"[..]));
        assert_eq!(path(b"http://h"), None);
        assert_eq!(path(b"*"), None);
        assert_eq!(path(b"h:443"), None);
        assert_eq!(path(b""), None);
    }

    #[test]
    fn cookie_scan_follows_haproxy() {
        let mut pos = 0;
        let h = b"a=1; $Path=/; b = 2 ; c; d=\"x;y\", e=5";
        let all: Vec<&[u8]> = std::iter::from_fn(|| find_cookie(h, &mut pos, None, true)).collect();
        assert_eq!(all, vec![&b"1"[..], b"2", b"\"x;y\"", b"5"]);
        let mut pos = 0;
        assert_eq!(find_cookie(b"sid=abc; Path=/; sid=x", &mut pos, Some(b"sid"), false), Some(&b"abc"[..]));
        assert_eq!(find_cookie(b"sid=abc; Path=/; sid=x", &mut pos, Some(b"sid"), false), None);
        let mut pos = 0;
        assert_eq!(find_cookie(b"Path=/; sid=x", &mut pos, Some(b"sid"), false), None, "Set-Cookie: only the first pair");
    }

    #[test]
    fn params_follow_haproxy() {
        let qs = b"a=1&b&c=&a=2;d=4";
        let all = |name: &[u8]| {
            let mut pos = 0;
            std::iter::from_fn(|| next_param(qs, &mut pos, name, b'?', false)).collect::<Vec<_>>()
        };
        assert_eq!(all(b"a"), vec![&b"1"[..], b"2"]);
        assert_eq!(all(b"b"), Vec::<&[u8]>::new());
        assert_eq!(all(b"c"), vec![&b""[..]]);
        assert_eq!(all(b"d"), vec![&b"4"[..]]);
        assert_eq!(all(b""), vec![&b"1"[..], b"", b"2", b"4"]);
    }
}
