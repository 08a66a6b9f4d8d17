//! Cookie-based persistence: the backend's `cookie NAME [rewrite|insert|prefix] ...` with each
//! server's `cookie <value>`, and `option persist`, as HAProxy applies them.
//!
//! - **Request** ([`Persistence::on_request`]), once the request rules have run: the first cookie
//!   `NAME` of the `Cookie` headers whose value names a server (the part before `~` in prefix
//!   mode, before `|` otherwise) sends the request to that server, bypassing the algorithm, if the
//!   server is up and not in maintenance (draining or weight 0 still takes it; with `option
//!   persist`, down and maintenance do too). When several servers share the value, the first
//!   usable one in declaration order gets it. An empty value names no server. In prefix mode the
//!   `SRV~` part is removed before the request is forwarded; with `insert indirect` the cookie is
//!   removed (with its `$` attributes), and a `Cookie` header left with nothing is dropped.
//! - **Response** ([`Persistence::on_response`]), after the `http-response` rules and before
//!   `http-after-response`: a server `Set-Cookie: NAME=...` is left alone with `preserve`,
//!   removed in insert mode (and when the request came through its cookie with `indirect`),
//!   given the server's value in rewrite mode, prefixed with `VALUE~` in prefix mode. Insert mode
//!   then adds `Set-Cookie: NAME=VALUE; path=/` (with `domain`, `HttpOnly`, `Secure` and `attr`)
//!   unless the client came with a valid cookie for this very server, or the server set the cookie
//!   itself with `preserve`, or `postonly` and the request is not a POST. A server without a value
//!   gets `NAME=; Expires=Thu, 01-Jan-1970 00:00:01 GMT; path=/`, which clears a stale cookie
//!   (HAProxy does the same). With `nocache`, an inserted cookie on a response a shared cache may
//!   store gets `Cache-Control: private`.
//! - **Dates** (`maxidle`, `maxlife`): an inserted value carries `|LAST[|FIRST]`, each the date
//!   in 4-second units as 5 base64 characters (HAProxy's format, so cookies survive a switch
//!   either way). A cookie last seen longer than `maxidle` ago, first seen longer than `maxlife`
//!   ago, or dated more than a day in the future is ignored; a valid one is refreshed when its
//!   last-seen date has passed.
//!
//! `dynamic` cookies, `force-persist` and `ignore-persist` are not implemented.

use std::ops::Range;

use crate::balance::config::{CookieMode, CookiePersistence};
use crate::balance::{AdminState, ServerList, ServerState};
use crate::l7::edit::Edit;
use crate::route::eval::HttpMsg;

/// Separates the server's value from the application's in prefix mode (`SRV~VALUE`).
const PREFIX_DELIM: u8 = b'~';
/// Separates the dates `maxidle` and `maxlife` add to an inserted value (`SRV|LAST|FIRST`).
const DATE_DELIM: u8 = b'|';
/// A cookie dated further in the future than this is ignored: an administrator fixing a clock
/// does not keep users on a server forever, nor send all of them away.
const FUTURE_SLACK: i64 = 86400;
/// What a server without a cookie value sends instead of one: the client forgets its cookie.
const CLEAR: &str = "=; Expires=Thu, 01-Jan-1970 00:00:01 GMT; path=/";

/// A backend's cookie persistence, compiled with the routing table.
#[derive(Debug)]
pub struct Persistence {
    name: String,
    /// `None`: passive, the application sets the cookie and sluiced only reads it.
    mode: Option<CookieMode>,
    indirect: bool,
    nocache: bool,
    postonly: bool,
    preserve: bool,
    /// Seconds; 0 is off.
    maxidle: u32,
    maxlife: u32,
    /// `option persist`: a cookie naming a down server or one in maintenance still goes there.
    persist: bool,
    /// What follows `path=/` in an inserted cookie: `; domain=...`, `; HttpOnly`, `; Secure`,
    /// `; <attr>`, built once.
    attributes: String,
    /// Each server's `cookie` value, by server index.
    values: Vec<Option<String>>,
}

/// What the request's cookie said, kept for its response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Visit {
    /// The server the cookie names, usable now: the request goes there without balancing.
    pub server: Option<usize>,
    /// Dates carried by the cookie (seconds since the epoch, 0 when absent or expired).
    last_seen: u32,
    first_seen: u32,
    /// A POST (`postonly` inserts only then).
    post: bool,
    /// GET, HEAD, OPTIONS or TRACE: the methods whose responses a cache may store (`nocache`).
    cacheable_method: bool,
}

impl Persistence {
    /// `values` are the servers' `cookie` values in server order; `persist` is `option persist`.
    pub fn compile(c: &CookiePersistence, persist: bool, values: Vec<Option<String>>) -> Persistence {
        let mut attributes = String::new();
        for d in &c.domains {
            attributes.push_str("; domain=");
            attributes.push_str(d);
        }
        if c.httponly {
            attributes.push_str("; HttpOnly");
        }
        if c.secure {
            attributes.push_str("; Secure");
        }
        for a in &c.attrs {
            attributes.push_str("; ");
            attributes.push_str(a);
        }
        let secs = |d: Option<std::time::Duration>| d.map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
        Persistence {
            name: c.name.clone(),
            mode: c.mode,
            indirect: c.indirect,
            nocache: c.nocache,
            postonly: c.postonly,
            preserve: c.preserve,
            maxidle: secs(c.maxidle),
            maxlife: secs(c.maxlife),
            persist,
            attributes,
            values,
        }
    }

    fn insert_indirect(&self) -> bool {
        self.mode == Some(CookieMode::Insert) && self.indirect
    }

    /// Reads the request's cookies (`now`: seconds since the epoch). Returns what the response
    /// needs to know and the edit that removes or strips the persistence cookie in the request
    /// sent to the server, if any. Call when the request rules have run, with the request as they
    /// left it.
    pub fn on_request(&self, servers: &ServerList, req: &dyn HttpMsg, now: u32) -> (Visit, Option<Edit>) {
        let method = req.method();
        let mut visit = Visit { post: method == b"POST", cacheable_method: matches!(method, b"GET" | b"HEAD" | b"OPTIONS" | b"TRACE"), ..Visit::default() };
        let mut values: Vec<Option<Vec<u8>>> = Vec::new();
        let mut changed = false;
        for i in 0..req.header_count() {
            let (name, value) = req.header(i);
            if !name.eq_ignore_ascii_case(b"cookie") {
                continue;
            }
            let new = self.request_header(value, servers, now, &mut visit);
            changed |= new.is_some();
            values.push(match new {
                Some(v) => v,
                None => Some(value.to_vec()),
            });
        }
        let edit = changed.then(|| Edit::SetFields { name: "cookie".into(), values });
        (visit, edit)
    }

    /// One `Cookie` header: looks the persistence cookie up and returns the header's new value
    /// (`Some(None)`: remove the header) when it changes.
    fn request_header(&self, h: &[u8], servers: &ServerList, now: u32, visit: &mut Visit) -> Option<Option<Vec<u8>>> {
        let prefix = self.mode == Some(CookieMode::Prefix);
        // The pairs kept, with what to cut out of each, and whether a removed one went before.
        let mut kept: Vec<(Pair, Option<Range<usize>>, bool)> = Vec::new();
        let mut gap = false;
        let mut keeps_a_cookie = false;
        let mut changed = false;
        // The `$` attributes after a removed cookie belong to it and go with it.
        let mut dropping = false;
        for p in pairs(h, true) {
            if h.get(p.name.start) == Some(&b'$') {
                if !dropping {
                    kept.push((p, None, std::mem::take(&mut gap)));
                }
                continue;
            }
            dropping = false;
            let Some(val) = p.value.clone() else {
                keeps_a_cookie = true;
                kept.push((p, None, std::mem::take(&mut gap)));
                continue;
            };
            if h.get(p.name.clone()) != Some(self.name.as_bytes()) {
                keeps_a_cookie = true;
                kept.push((p, None, std::mem::take(&mut gap)));
                continue;
            }
            let v = &h[val.clone()];
            let tilde = if prefix { v.iter().position(|&b| b == PREFIX_DELIM) } else { None };
            let mut id_len = match tilde {
                Some(t) => t,
                None if prefix => v.len(),
                None => self.read_dates(v, visit),
            };
            if self.expired(visit, now) {
                id_len = 0;
                visit.last_seen = 0;
                visit.first_seen = 0;
            }
            if visit.server.is_none() {
                visit.server = self.find_server(servers, &v[..id_len]);
            }
            if let Some(t) = tilde {
                // The server sees the value it set.
                keeps_a_cookie = true;
                changed = true;
                kept.push((p, Some(val.start..val.start + t + 1), std::mem::take(&mut gap)));
            } else if self.insert_indirect() {
                changed = true;
                dropping = true;
                gap = true;
            } else {
                keeps_a_cookie = true;
                kept.push((p, None, std::mem::take(&mut gap)));
            }
        }
        if !changed {
            return None;
        }
        if !keeps_a_cookie {
            return Some(None);
        }
        let mut out = Vec::with_capacity(h.len());
        for (n, (p, cut, after_gap)) in kept.iter().enumerate() {
            if n > 0
                && let Some(d) = p.delim
            {
                // The delimiter before the pair and the blanks after it, as they were; where a
                // cookie was removed, the delimiter and one blank.
                if *after_gap {
                    out.extend_from_slice(&[h[d], b' ']);
                } else {
                    out.extend_from_slice(&h[d..p.name.start]);
                }
            }
            match cut {
                Some(c) => {
                    out.extend_from_slice(&h[p.name.start..c.start]);
                    out.extend_from_slice(&h[c.end..p.end]);
                }
                None => out.extend_from_slice(&h[p.name.start..p.end]),
            }
        }
        Some(Some(out))
    }

    /// Reads `|LAST[|FIRST]` after the server's value into `visit`; returns the value's length.
    fn read_dates(&self, v: &[u8], visit: &mut Visit) -> usize {
        let Some(bar) = v.iter().position(|&b| b == DATE_DELIM) else { return v.len() };
        let rest = &v[bar + 1..];
        if let Some(d) = rest.get(..5).and_then(decode_date) {
            visit.last_seen = d;
        }
        if let Some(second) = rest.iter().position(|&b| b == DATE_DELIM)
            && let Some(d) = rest.get(second + 1..second + 6).and_then(decode_date)
        {
            visit.first_seen = d;
        }
        bar
    }

    /// The cookie's dates say it is too old (`maxlife`), idle too long (`maxidle`), or from too
    /// far in the future.
    fn expired(&self, visit: &Visit, now: u32) -> bool {
        let out = |date: u32, max: u32| {
            let age = i64::from(now) - i64::from(date);
            date != 0 && max != 0 && (age > i64::from(max) || -age > FUTURE_SLACK)
        };
        out(visit.first_seen, self.maxlife) || out(visit.last_seen, self.maxidle)
    }

    /// The first server in declaration order with cookie value `id` that may take the request.
    fn find_server(&self, servers: &ServerList, id: &[u8]) -> Option<usize> {
        if id.is_empty() {
            return None;
        }
        (0..servers.len().max(self.values.len()))
            .filter(|&i| self.value_of(servers, i).map(str::as_bytes) == Some(id))
            .find(|&i| self.persist || servers.get(i).is_some_and(|s| !s.is_deleted() && reachable(s)))
    }

    /// The `cookie` value of server `i`: from the configuration, or given to `add server`.
    fn value_of<'a>(&'a self, servers: &'a ServerList, i: usize) -> Option<&'a str> {
        match self.values.get(i) {
            Some(v) => v.as_deref(),
            None => servers.get(i).and_then(|s| s.cookie.as_deref()),
        }
    }

    /// The edits the response from server `srv` needs, in order (`now`: seconds since the epoch).
    /// Call after the `http-response` rules, with the response as they left it.
    pub fn on_response(&self, visit: &Visit, servers: &ServerList, srv: usize, res: &dyn HttpMsg, now: u32) -> Vec<Edit> {
        let mut edits = Vec::new();
        if res.status() < 200 {
            return edits;
        }
        let direct = visit.server == Some(srv);
        let value = self.value_of(servers, srv);
        let insert = self.mode == Some(CookieMode::Insert);
        // The server's own Set-Cookie NAME=...
        let mut server_set_it = false;
        let mut values: Vec<Option<Vec<u8>>> = Vec::new();
        let mut changed = false;
        for i in 0..res.header_count() {
            let (name, v) = res.header(i);
            if !name.eq_ignore_ascii_case(b"set-cookie") {
                continue;
            }
            let mut new = Some(v.to_vec());
            if let Some(p) = pairs(v, false).next()
                && let Some(val) = p.value.clone()
                && v.get(p.name.clone()) == Some(self.name.as_bytes())
            {
                server_set_it = true;
                new = match (self.preserve, self.mode, value) {
                    // `preserve`: the application ends persistence this way (logout).
                    (true, _, _) => new,
                    // Insert mode sets its own; `indirect` tells a client that has it nothing.
                    _ if insert || (direct && self.indirect) => None,
                    (_, Some(CookieMode::Rewrite), Some(sv)) => Some([&v[..val.start], sv.as_bytes(), &v[val.end..]].concat()),
                    (_, Some(CookieMode::Prefix), Some(sv)) => Some([&v[..val.start], sv.as_bytes(), &[PREFIX_DELIM], &v[val.start..]].concat()),
                    _ => new,
                };
                changed |= new.as_deref() != Some(v);
            }
            values.push(new);
        }
        if changed {
            edits.push(Edit::SetFields { name: "set-cookie".into(), values });
        }
        let refresh = ((self.maxidle != 0 || visit.last_seen != 0) && (visit.last_seen == 0 || visit.last_seen < now))
            || (self.maxlife != 0 && visit.first_seen == 0)
            || (self.maxlife == 0 && visit.first_seen != 0);
        if !insert || (server_set_it && self.preserve) || (direct && !refresh) || (self.postonly && !visit.post) {
            return edits;
        }
        let mut c = self.name.clone();
        match value {
            Some(sv) => {
                c.push('=');
                c.push_str(sv);
                if self.maxidle != 0 || self.maxlife != 0 {
                    let unit = (now.saturating_add(3)) >> 2;
                    push_date(&mut c, unit);
                    if self.maxlife != 0 {
                        push_date(&mut c, if visit.first_seen != 0 { visit.first_seen >> 2 } else { unit });
                    }
                }
                c.push_str("; path=/");
            }
            None => c.push_str(CLEAR),
        }
        c.push_str(&self.attributes);
        edits.push(Edit::Add { name: "set-cookie".into(), value: c.into_bytes() });
        if self.nocache && may_be_cached(visit.cacheable_method, res) {
            edits.push(Edit::Add { name: "cache-control".into(), value: b"private".to_vec() });
        }
        edits
    }
}

/// A server a cookie may send a request to: up and not in maintenance (draining and weight 0 are
/// fine: persistent clients are what draining keeps).
fn reachable(s: &ServerState) -> bool {
    s.is_up() && s.admin() != AdminState::Maint
}

/// Seconds since the epoch, as the cookie dates count them.
pub fn now() -> u32 {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    u32::try_from(secs).unwrap_or(u32::MAX)
}

/// Whether a shared cache could store this response (HAProxy's `http_check_response_for_cacheability`):
/// a final response to a cacheable method (or marked `public`), not `private`, `no-cache`,
/// `no-store`, `s-maxage=0` or `max-age=0` without an `s-maxage`, nor `Pragma: no-cache`, and
/// with an expiration time (`max-age`, `s-maxage`, `Expires`) or a validator (`ETag`,
/// `Last-Modified`).
pub fn may_be_cached(cacheable_method: bool, res: &dyn HttpMsg) -> bool {
    if res.status() < 200 {
        return false;
    }
    let headers = || (0..res.header_count()).map(|i| res.header(i));
    let has = |n: &str| headers().any(|(name, _)| name.eq_ignore_ascii_case(n.as_bytes()));
    if let Some((_, v)) = headers().find(|(n, _)| n.eq_ignore_ascii_case(b"pragma"))
        && v.trim_ascii().eq_ignore_ascii_case(b"no-cache")
    {
        return false;
    }
    let mut cacheable = cacheable_method;
    let (mut fresh, mut null_max_age) = (false, false);
    let starts = |v: &[u8], p: &[u8]| v.len() >= p.len() && v[..p.len()].eq_ignore_ascii_case(p);
    for (_, v) in headers().filter(|(n, _)| n.eq_ignore_ascii_case(b"cache-control")) {
        for d in v.split(|&b| b == b',').map(<[u8]>::trim_ascii).filter(|d| !d.is_empty()) {
            if d.eq_ignore_ascii_case(b"public") {
                cacheable = true;
            } else if d.eq_ignore_ascii_case(b"max-age=0") {
                null_max_age = true;
            } else if [&b"private"[..], b"no-cache", b"no-store", b"s-maxage=0"].iter().any(|x| d.eq_ignore_ascii_case(x)) {
                cacheable = false;
            } else if starts(d, b"no-cache=\"set-cookie") {
                // Only the Set-Cookie must not be cached: the response may be.
            } else if starts(d, b"s-maxage") {
                fresh = true;
                null_max_age = false;
            } else if starts(d, b"max-age") {
                fresh = true;
            }
        }
    }
    if null_max_age {
        return false;
    }
    fresh = fresh || has("expires");
    cacheable && (fresh || has("etag") || has("last-modified"))
}

/// Appends `|` and a date in 4-second units.
fn push_date(c: &mut String, unit: u32) {
    c.push(char::from(DATE_DELIM));
    for b in encode_date(unit) {
        c.push(char::from(b));
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The low 30 bits of `v` as 5 base64 digits, most significant first, unpadded.
fn encode_date(v: u32) -> [u8; 5] {
    std::array::from_fn(|i| B64[((v >> (24 - 6 * i)) & 0x3f) as usize])
}

/// 5 base64 digits back into a date in seconds; `None` for anything else, or zero.
fn decode_date(s: &[u8]) -> Option<u32> {
    let mut v: u32 = 0;
    for &c in s.get(..5)? {
        let d = B64.iter().position(|&b| b == c)?;
        v = (v << 6) | d as u32;
    }
    (v > 0).then(|| v.wrapping_shl(2))
}

/// One `name=value` pair of a cookie header, or a bare word, as offsets into the header value.
#[derive(Clone, Debug)]
struct Pair {
    /// Where the delimiter before the pair is (`None` for the first).
    delim: Option<usize>,
    name: Range<usize>,
    /// After the `=` and its blanks; `None` without `=`.
    value: Option<Range<usize>>,
    /// The end of the pair's text (blanks before the next delimiter excluded).
    end: usize,
}

/// The pairs of a header value as HAProxy reads them: blanks around names and values are not
/// theirs, a value may be quoted. A `Cookie` header (`list`) separates pairs with `;` or `,`; a
/// `Set-Cookie` header sets one cookie, its first pair, the rest being attributes.
fn pairs(h: &[u8], list: bool) -> impl Iterator<Item = Pair> + '_ {
    // Where the next pair starts, and the delimiter before it; `None` once the header is read.
    let mut next_pair = (!h.is_empty()).then_some((0, None));
    std::iter::from_fn(move || {
        loop {
            let (mut start, delim) = next_pair?;
            while start < h.len() && is_spht(h[start]) {
                start += 1;
            }
            let (mut equal, mut name_end) = (start, start);
            while equal < h.len() {
                let c = h[equal];
                if c == b'=' || c == b';' || (list && c == b',') {
                    break;
                }
                equal += 1;
                if !is_spht(c) {
                    name_end = equal;
                }
            }
            let (value, end, next) = if h.get(equal) == Some(&b'=') {
                let mut vb = equal + 1;
                while vb < h.len() && is_spht(h[vb]) {
                    vb += 1;
                }
                let next = value_end(h, vb);
                let mut ve = next;
                while ve > vb && is_spht(h[ve - 1]) {
                    ve -= 1;
                }
                (Some(vb..ve), ve, next)
            } else {
                (None, name_end, equal)
            };
            next_pair = (list && next < h.len()).then_some((next + 1, Some(next)));
            // Nothing between two delimiters is no pair.
            if name_end > start || value.is_some() {
                return Some(Pair { delim, name: start..name_end, value, end });
            }
        }
    })
}

fn is_spht(b: u8) -> bool {
    matches!(b, b' ' | b'\t')
}

/// Where a cookie value starting at `from` ends: at a `,` or `;` outside a quoted string.
pub fn value_end(s: &[u8], from: usize) -> usize {
    let (mut quoted, mut escaped) = (false, false);
    for (i, &c) in s.iter().enumerate().skip(from) {
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
        } else if c == b',' || c == b';' {
            return i;
        }
    }
    s.len()
}

#[cfg(test)]
#[path = "cookie_tests.rs"]
mod tests;
