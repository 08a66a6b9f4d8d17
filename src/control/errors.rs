//! Error capture behind `show errors`: for each proxy, the last request it refused (on the
//! frontend) and the last invalid response a server sent it (on the backend), with the offending
//! bytes and where in them the parser stopped.
//!
//! Only the error path pays: a capture copies at most `tune.bufsize` bytes into the proxy's slot
//! for that direction (reusing the slot's buffer), under one process-wide lock that nothing else
//! takes. Memory is bounded by two captures per proxy.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

use crate::route::RouteTable;

/// Which message was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// A client's request, kept on the frontend.
    Request,
    /// A server's response, kept on the backend.
    Response,
}

/// One refused message, as the session code reports it.
#[derive(Clone, Copy, Debug)]
pub struct Event<'a> {
    pub dir: Dir,
    /// Index into [`RouteTable::frontends`].
    pub frontend: usize,
    /// Index into [`RouteTable::backends`], when one was chosen.
    pub backend: Option<usize>,
    /// Index of the server in that backend.
    pub server: Option<usize>,
    pub src: Option<SocketAddr>,
    /// The buffer the message was read into, from its first byte.
    pub buf: &'a [u8],
    /// Offset in `buf` where the message went wrong.
    pub pos: usize,
    /// What was wrong, in sluiced's words.
    pub reason: &'static str,
}

#[derive(Debug)]
struct Capture {
    when: SystemTime,
    event: u32,
    frontend: usize,
    backend: Option<usize>,
    server: Option<usize>,
    src: Option<SocketAddr>,
    buf: Vec<u8>,
    pos: usize,
    reason: &'static str,
}

/// Every proxy's captures.
#[derive(Default)]
pub struct Store {
    inner: Mutex<Slots>,
}

#[derive(Default)]
struct Slots {
    /// Events captured so far (HAProxy's `error_snapshot_id`): the next event's number.
    events: u32,
    /// By frontend index.
    requests: Vec<Option<Capture>>,
    /// By backend index.
    responses: Vec<Option<Capture>>,
}

/// The process's captures.
pub fn store() -> &'static Store {
    static S: OnceLock<Store> = OnceLock::new();
    S.get_or_init(Store::default)
}

impl Store {
    /// Keeps `e` as its proxy's last error of its direction, with at most `bufsize` bytes.
    pub fn capture(&self, e: &Event<'_>, bufsize: usize) {
        let (slot, idx) = match e.dir {
            Dir::Request => (0, e.frontend),
            Dir::Response => match e.backend {
                Some(b) => (1, b),
                None => return,
            },
        };
        let mut slots = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let event = slots.events;
        slots.events = slots.events.wrapping_add(1);
        let list = if slot == 0 { &mut slots.requests } else { &mut slots.responses };
        if list.len() <= idx {
            list.resize_with(idx + 1, || None);
        }
        let mut buf = list[idx].take().map(|c| c.buf).unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(&e.buf[..e.buf.len().min(bufsize)]);
        list[idx] = Some(Capture {
            when: SystemTime::now(),
            event,
            frontend: e.frontend,
            backend: e.backend,
            server: e.server,
            src: e.src,
            buf,
            pos: e.pos,
            reason: e.reason,
        });
    }

    /// `show errors [<iid>|<proxy>] [request|response]`.
    pub fn show(&self, rt: &RouteTable, args: &[&str]) -> Result<String, String> {
        // HAProxy: a proxy name, else a number (-1: all); 0 or garbage names no proxy.
        let iid: i64 = match args.first() {
            None => -1,
            Some(a) => {
                match rt.frontends.iter().map(|f| (f.name.as_str(), f.id)).chain(rt.backends.iter().map(|b| (b.name.as_str(), b.id))).find(|(n, _)| n == a) {
                    Some((_, id)) => i64::from(id),
                    None => match a.parse::<i64>() {
                        Ok(0) | Err(_) => return Err("No such proxy.\n".into()),
                        Ok(n) => n,
                    },
                }
            }
        };
        let (want_req, want_res) = match args.get(1).copied() {
            Some("request") => (true, false),
            Some("response") => (false, true),
            _ => (true, true),
        };
        let slots = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = format!("Total events captured on [{}] : {}\n", date(SystemTime::now()), slots.events);
        let mut ids: Vec<(u32, &str)> =
            rt.frontends.iter().map(|f| (f.id, f.name.as_str())).chain(rt.backends.iter().map(|b| (b.id, b.name.as_str()))).collect();
        ids.sort_unstable();
        ids.dedup();
        for (id, name) in ids {
            let fe = rt.frontends.iter().position(|f| f.id == id && f.name == name);
            let be = rt.backends.iter().position(|b| b.id == id && b.name == name);
            let req = fe.and_then(|i| slots.requests.get(i)).and_then(Option::as_ref).filter(|_| want_req);
            let res = be.and_then(|i| slots.responses.get(i)).and_then(Option::as_ref).filter(|_| want_res);
            for (dir, c) in [(Dir::Request, req), (Dir::Response, res)] {
                let Some(c) = c else { continue };
                let other = match dir {
                    Dir::Request => c.backend.and_then(|b| rt.backends.get(b)).map(|b| b.id),
                    Dir::Response => rt.frontends.get(c.frontend).map(|f| f.id),
                };
                if iid >= 0 && i64::from(id) != iid && other.is_none_or(|o| i64::from(o) != iid) {
                    continue;
                }
                dump(rt, dir, c, &mut out);
            }
        }
        Ok(out)
    }
}

/// A date as HAProxy prints it in `show errors`: `22/Nov/2026:14:35:47.123`.
fn date(t: SystemTime) -> String {
    let tm = crate::log::sink::Tm::from(t);
    format!("{:02}/{}/{:04}:{:02}:{:02}:{:02}.{:03}", tm.day, tm.month_name(), tm.year, tm.hour, tm.min, tm.sec, tm.micros / 1000)
}

fn dump(rt: &RouteTable, dir: Dir, c: &Capture, out: &mut String) {
    let be = c.backend.and_then(|b| rt.backends.get(b));
    let fe = rt.frontends.get(c.frontend);
    let _ = write!(out, " \n[{}]", date(c.when));
    let (fe_name, fe_id) = fe.map_or(("<NONE>", -1), |f| (f.name.as_str(), i64::from(f.id)));
    let (be_name, be_id) = be.map_or(("<NONE>", -1), |b| (b.name.as_str(), i64::from(b.id)));
    match dir {
        Dir::Request => {
            let _ = write!(out, " frontend {fe_name} (#{fe_id}): invalid request\n  backend {be_name} (#{be_id})");
        }
        Dir::Response => {
            let _ = write!(out, " backend {be_name} (#{be_id}): invalid response\n  frontend {fe_name} (#{fe_id})");
        }
    }
    let srv = be.zip(c.server).and_then(|(b, i)| b.state.servers.get(i));
    let (srv_name, srv_id) = srv.map_or(("<NONE>", -1), |s| (s.name.as_str(), i64::from(s.id)));
    let src = match c.src {
        Some(a) => format!("{}:{}", a.ip(), a.port()),
        None => "unix:0".into(),
    };
    let bufsize = rt.process.bufsize;
    let _ = write!(
        out,
        ", server {srv_name} (#{srv_id}), event #{}, src {src}\n  buffer starts at 0 (including 0 out), {} free,\n  len {}, wraps at {bufsize}, error at position {}\n  reason: {}\n  \n",
        c.event,
        bufsize.saturating_sub(c.buf.len()),
        c.buf.len(),
        c.pos,
        c.reason
    );
    dump_text(&c.buf, out);
}

/// HAProxy's text dump of a buffer: one output line per input line, each prefixed by two spaces,
/// its offset on five digits and a space (`+` instead when it continues a line cut at 79
/// columns), then the bytes with `\t`, `\n`, `\r`, `\e`, `\\` escaped and other non-printable
/// bytes as `\xHH`.
pub fn dump_text(buf: &[u8], out: &mut String) {
    const WIDTH: usize = 79;
    let mut p = 0;
    let mut line_start = 0;
    while p < buf.len() {
        let start = out.len();
        let _ = write!(out, "  {p:05}{} ", if p == line_start { ' ' } else { '+' });
        while p < buf.len() {
            let c = buf[p];
            let piece: &str = match c {
                b'\t' => "\\t",
                b'\n' => "\\n",
                b'\r' => "\\r",
                0x1b => "\\e",
                b'\\' => "\\\\",
                _ => "",
            };
            let len = if !piece.is_empty() {
                piece.len()
            } else if (0x20..0x7f).contains(&c) {
                1
            } else {
                4
            };
            if out.len() - start + len > WIDTH {
                break;
            }
            if !piece.is_empty() {
                out.push_str(piece);
            } else if len == 1 {
                out.push(c as char);
            } else {
                let _ = write!(out, "\\x{c:02X}");
            }
            p += 1;
            if c == b'\n' {
                line_start = p;
                break;
            }
        }
        out.push('\n');
    }
}

/// Captures a request the HTTP parser refused (`head`: the parsed head, when only its framing
/// was wrong), on the frontend; `backend` when one was chosen already.
pub fn request_error(rt: &RouteTable, frontend: usize, src: Option<SocketAddr>, buf: &[u8], head: Option<&crate::l7::h1::Head>, e: &crate::l7::h1::H1Error) {
    let pos = crate::l7::h1::error_position(buf, head, e, &rt.process.head_limits, true);
    let ev = Event { dir: Dir::Request, frontend, backend: None, server: None, src, buf, pos, reason: e.reason };
    store().capture(&ev, rt.process.bufsize);
}

/// Captures a response the HTTP parser refused, on the backend.
#[allow(clippy::too_many_arguments)]
pub fn response_error(
    rt: &RouteTable,
    frontend: usize,
    backend: usize,
    server: usize,
    src: Option<SocketAddr>,
    buf: &[u8],
    head: Option<&crate::l7::h1::Head>,
    e: &crate::l7::h1::H1Error,
) {
    let pos = crate::l7::h1::error_position(buf, head, e, &rt.process.head_limits, false);
    let ev = Event { dir: Dir::Response, frontend, backend: Some(backend), server: Some(server), src, buf, pos, reason: e.reason };
    store().capture(&ev, rt.process.bufsize);
}

/// Captures a body whose chunked framing broke at offset `pos` of `buf` (the bytes not forwarded
/// yet), on the frontend for a request and on the backend for a response.
#[allow(clippy::too_many_arguments)]
pub fn body_error(
    rt: &RouteTable,
    dir: Dir,
    frontend: usize,
    backend: usize,
    server: usize,
    src: Option<SocketAddr>,
    buf: &[u8],
    pos: usize,
    e: &crate::l7::h1::H1Error,
) {
    let ev = Event { dir, frontend, backend: Some(backend), server: Some(server), src, buf, pos, reason: e.reason };
    store().capture(&ev, rt.process.bufsize);
}

/// Captures a request whose chunked body, read into `buf` after its head (`option
/// http-buffer-request`), has bad framing: the body is checked again to find where.
pub fn buffered_body_error(rt: &RouteTable, frontend: usize, src: Option<SocketAddr>, buf: &[u8], head_len: usize) {
    let mut chunked = crate::l7::h1::Chunked::new();
    let Err(e) = chunked.feed(buf.get(head_len..).unwrap_or_default()) else { return };
    let ev = Event { dir: Dir::Request, frontend, backend: None, server: None, src, buf, pos: head_len + chunked.failed_at(), reason: e.reason };
    store().capture(&ev, rt.process.bufsize);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> RouteTable {
        let text = "defaults\n    mode http\nfrontend f\n    bind 127.0.0.1:8080\n    default_backend be\nbackend be\n    server s1 127.0.0.1:1\n";
        RouteTable::compile(&crate::config::testing::ok(text)).unwrap()
    }

    #[test]
    fn text_dump_escapes_and_cuts_long_lines() {
        let mut out = String::new();
        dump_text(b"GET / HTTP/1.1\r\nHost: a\\b\tc\x01\r\n\r\n", &mut out);
        assert_eq!(out, "  00000  GET / HTTP/1.1\\r\\n\n  00016  Host: a\\\\b\\tc\\x01\\r\\n\n  00030  \\r\\n\n");
        let mut out = String::new();
        let long = [b'a'; 100];
        dump_text(&long, &mut out);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].len(), 79);
        assert!(lines[1].starts_with("  00070+ aaa"), "{out}");
    }

    #[test]
    fn nothing_captured_is_zero_events() {
        let s = Store::default();
        let out = s.show(&rt(), &[]).unwrap();
        assert!(out.starts_with("Total events captured on ["), "{out}");
        assert!(out.ends_with("] : 0\n"), "{out}");
    }

    #[test]
    fn one_capture_per_proxy_and_direction() {
        let s = Store::default();
        let rt = rt();
        let src = Some("127.0.0.1:5000".parse().unwrap());
        let first = Event { dir: Dir::Request, frontend: 0, backend: None, server: None, src, buf: b"GET / HTTP/1.1\r\n", pos: 3, reason: "first" };
        s.capture(&first, 16384);
        s.capture(&Event { buf: b"BAD\r\n", pos: 0, reason: "second", ..first }, 16384);
        s.capture(&Event { dir: Dir::Response, backend: Some(0), server: Some(0), buf: b"HTTP/1.1 2000 OK\r\n", pos: 9, reason: "status", ..first }, 4);
        let out = s.show(&rt, &[]).unwrap();
        assert!(out.contains("] : 3\n"), "{out}");
        assert!(!out.contains("first"), "the second request error replaced the first: {out}");
        assert!(out.contains(" frontend f (#1): invalid request\n  backend <NONE> (#-1), server <NONE> (#-1), event #1, src 127.0.0.1:5000\n"), "{out}");
        assert!(out.contains("  len 5, wraps at 16384, error at position 0\n  reason: second\n  \n  00000  BAD\\r\\n\n"), "{out}");
        assert!(out.contains(" backend be (#2): invalid response\n  frontend f (#1), server s1 (#1), event #2, src 127.0.0.1:5000\n"), "{out}");
        assert!(out.contains("  00000  HTTP\n"), "at most bufsize bytes are kept: {out}");
        let only_res = s.show(&rt, &["-1", "response"]).unwrap();
        assert!(!only_res.contains("invalid request") && only_res.contains("invalid response"), "{only_res}");
        let by_name = s.show(&rt, &["be"]).unwrap();
        assert!(by_name.contains("invalid response") && !by_name.contains("invalid request"), "{by_name}");
        assert_eq!(s.show(&rt, &["nope"]), Err("No such proxy.\n".into()));
    }
}
