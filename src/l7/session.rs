//! The life of an HTTP/1 client connection (`mode http`), one transaction after the other:
//!
//! 1. **Request head**: read into the connection buffer until complete, within `timeout
//!    http-request` measured from the first byte (a deadline for the whole head, so a slowloris
//!    client gets 408), or `timeout http-keep-alive` while waiting for the first byte of a later
//!    request. The head is parsed in place ([`h1::parse_request`]) and its framing checked
//!    ([`h1::request_framing`]); any violation is answered with its status and the connection
//!    closes: nothing of a refused request is ever forwarded.
//! 2. **Rules**: `http-request` rules run on the head ([`super::rules`]): they may answer
//!    (return, deny, redirect, auth), close (reject), or record header edits.
//! 3. **Backend and server**: `use_backend`/`default_backend`, then a server picked by the
//!    backend's algorithm; an idle pooled connection to it is reused when `http-reuse` allows,
//!    else a new one is opened with the backend's retries and redispatch.
//! 4. **Request**: the head is written with the edits applied, then the body streams through,
//!    checked as it passes (content-length counted, chunked framing validated).
//! 5. **Response**: 1xx heads are passed on until the final one; its framing decides how the body
//!    is read (length, chunked, until close, or none for HEAD/204/304). A malformed response is
//!    answered with 502 and the server connection is not reused.
//! 6. **Keep-alive**: both connections stay open when both sides agree and the response was
//!    complete; the server connection returns to the worker's pool, and bytes the client already
//!    sent (pipelining) start the next transaction.

use std::io;
use std::rc::Rc;
use std::time::Duration;

use tokio::io::Interest;
use tokio::time::Instant;

use super::h1::{self, Framing, Head, Version};
use crate::balance::PickKey;
use crate::l4::session::{Dst, End, Worker};
use crate::route::eval::{HttpMsg, StreamCtx, Tri};
use crate::route::{Backend, Frontend, RouteTable};
use crate::runtime::io::{Conn, EpollConn, write_all};

/// HAProxy's `tune.bufsize` default.
const BUFSIZE: usize = 16384;
/// Default `timeout http-request` when neither it nor `timeout client` is set.
const DEFAULT_HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// A parsed message over its buffer, as fetches see it.
pub struct MsgView<'a> {
    pub buf: &'a [u8],
    pub head: &'a Head,
    pub first: bool,
}

impl HttpMsg for MsgView<'_> {
    fn method(&self) -> &[u8] {
        &self.buf[self.head.method.clone()]
    }
    fn uri(&self) -> &[u8] {
        &self.buf[self.head.target.clone()]
    }
    fn version(&self) -> &[u8] {
        match self.head.version {
            Version::Http10 => b"HTTP/1.0",
            Version::Http11 => b"HTTP/1.1",
        }
    }
    fn status(&self) -> u16 {
        self.head.status
    }
    fn header_count(&self) -> usize {
        self.head.fields.len()
    }
    fn header(&self, i: usize) -> (&[u8], &[u8]) {
        let f = &self.head.fields[i];
        (&self.buf[f.name.clone()], &self.buf[f.value.clone()])
    }
    fn first_request(&self) -> bool {
        self.first
    }
}

/// The stream as the rule evaluator sees it during an HTTP transaction.
pub(crate) struct HttpCtx<'a> {
    pub rt: &'a RouteTable,
    pub fe: &'a Frontend,
    pub src: Option<std::net::SocketAddr>,
    pub dst: &'a Dst<'a>,
    pub backend: Option<usize>,
    pub req: Option<MsgView<'a>>,
    pub res: Option<MsgView<'a>>,
}

impl StreamCtx for HttpCtx<'_> {
    fn src(&self) -> Option<std::net::SocketAddr> {
        self.src
    }
    fn dst(&self) -> Option<std::net::SocketAddr> {
        self.dst.get()
    }
    fn frontend_name(&self) -> &str {
        &self.fe.name
    }
    fn frontend_id(&self) -> u32 {
        self.fe.id
    }
    fn backend(&self, name: &str) -> Option<&crate::balance::BackendState> {
        self.rt.backends.iter().find(|b| b.name == name).map(|b| &*b.state)
    }
    fn current_backend(&self) -> Option<&crate::balance::BackendState> {
        self.backend.map(|i| &*self.rt.backends[i].state)
    }
    fn req_buffer(&self) -> &[u8] {
        self.req.as_ref().map_or(&[], |r| r.buf)
    }
    fn req_final(&self) -> bool {
        true
    }
    fn http_request(&self) -> Option<&dyn HttpMsg> {
        self.req.as_ref().map(|r| r as &dyn HttpMsg)
    }
    fn http_response(&self) -> Option<&dyn HttpMsg> {
        self.res.as_ref().map(|r| r as &dyn HttpMsg)
    }
    fn userlist(&self, name: &str) -> Option<&crate::config::model::Userlist> {
        self.rt.userlists.iter().find(|u| u.name == name)
    }
}

/// What reading a head produced.
enum HeadRead {
    Ok(Head),
    /// The peer closed before sending anything (a clean end between transactions).
    Closed,
    /// Nothing arrived within the idle timeout between transactions.
    Idle,
    /// The head did not complete in time (408 for requests, 504 for responses).
    Timeout,
    /// The peer closed or failed in the middle of a head.
    Aborted,
    Invalid(h1::H1Error),
}

/// Reads until `parse` finds a complete head in `buf`. `first_byte` bounds the wait for the
/// first byte; `whole` bounds the head from its first byte.
async fn read_head(
    c: &EpollConn,
    buf: &mut Vec<u8>,
    first_byte: Option<Duration>,
    whole: Option<Duration>,
    parse: impl Fn(&[u8]) -> Result<Option<Head>, h1::H1Error>,
) -> HeadRead {
    let mut deadline = if buf.is_empty() { first_byte.map(|d| Instant::now() + d) } else { whole.map(|d| Instant::now() + d) };
    let mut started = !buf.is_empty();
    loop {
        if !buf.is_empty() {
            match parse(buf) {
                Ok(Some(h)) => return HeadRead::Ok(h),
                Ok(None) => {}
                Err(e) => return HeadRead::Invalid(e),
            }
        }
        if buf.len() == buf.capacity() {
            buf.reserve(BUFSIZE.saturating_sub(buf.capacity()).max(1024));
        }
        let waited = match deadline {
            Some(d) => tokio::time::timeout_at(d, c.ready(Interest::READABLE)).await.ok(),
            None => Some(c.ready(Interest::READABLE).await),
        };
        match waited {
            None => return if started { HeadRead::Timeout } else { HeadRead::Idle },
            Some(Err(_)) => return if started { HeadRead::Aborted } else { HeadRead::Closed },
            Some(Ok(())) => {}
        }
        let (r, b) = c.read(std::mem::take(buf)).await;
        *buf = b;
        match r {
            Ok(0) => return if started { HeadRead::Aborted } else { HeadRead::Closed },
            Ok(n) => {
                if n < buf.capacity() - (buf.len() - n) {
                    c.drained();
                }
                if !started {
                    started = true;
                    deadline = whole.map(|d| Instant::now() + d);
                }
            }
            Err(_) => return if started { HeadRead::Aborted } else { HeadRead::Closed },
        }
    }
}

/// Writes `data`, failing with `TimedOut` after `idle` without progress.
async fn send(c: &EpollConn, data: Vec<u8>, idle: Option<Duration>) -> (io::Result<()>, Vec<u8>) {
    match idle {
        None => write_all(c, data, 0).await,
        Some(t) => {
            let mut from = 0;
            let mut data = data;
            while from < data.len() {
                match tokio::time::timeout(t, c.ready(Interest::WRITABLE)).await {
                    Err(_) => return (Err(io::ErrorKind::TimedOut.into()), data),
                    Ok(Err(e)) => return (Err(e), data),
                    Ok(Ok(())) => {}
                }
                let (r, b) = c.write(data, from).await;
                data = b;
                match r {
                    Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), data),
                    Ok(n) => from += n,
                    Err(e) => return (Err(e), data),
                }
            }
            (Ok(()), data)
        }
    }
}

/// Reads more into `buf` with an idle timeout; `Ok(0)` is end of stream.
async fn recv(c: &EpollConn, buf: &mut Vec<u8>, idle: Option<Duration>) -> io::Result<usize> {
    if buf.len() == buf.capacity() {
        buf.reserve(BUFSIZE);
    }
    if let Some(t) = idle {
        match tokio::time::timeout(t, c.ready(Interest::READABLE)).await {
            Err(_) => return Err(io::ErrorKind::TimedOut.into()),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(())) => {}
        }
    }
    let (r, b) = c.read(std::mem::take(buf)).await;
    *buf = b;
    r
}

/// How a body transfer ended.
enum BodyEnd {
    Done,
    SrcTimeout,
    DstTimeout,
    SrcError,
    DstError,
    Invalid(h1::H1Error),
}

/// Streams a body from `src` to `dst`. `pending` holds bytes already read from `src` after the
/// head; on return it holds what follows the body (the next pipelined message).
async fn forward_body(
    src: &EpollConn,
    pending: &mut Vec<u8>,
    dst: &EpollConn,
    framing: Framing,
    src_idle: Option<Duration>,
    dst_idle: Option<Duration>,
) -> BodyEnd {
    let mut remaining: u64 = match framing {
        Framing::None => return BodyEnd::Done,
        Framing::Length(n) => n,
        Framing::Chunked | Framing::Close => u64::MAX,
    };
    let mut chunked = matches!(framing, Framing::Chunked).then(h1::Chunked::new);
    loop {
        if !pending.is_empty() {
            let take = match &mut chunked {
                Some(ch) => match ch.feed(pending) {
                    Ok(p) => {
                        if p.done {
                            remaining = 0;
                        }
                        p.consumed
                    }
                    Err(e) => return BodyEnd::Invalid(e),
                },
                None => pending.len().min(usize::try_from(remaining).unwrap_or(usize::MAX)),
            };
            if take > 0 {
                let rest = pending.split_off(take);
                let chunk = std::mem::replace(pending, rest);
                let (r, _) = send(dst, chunk, dst_idle).await;
                if let Err(e) = r {
                    return if e.kind() == io::ErrorKind::TimedOut { BodyEnd::DstTimeout } else { BodyEnd::DstError };
                }
                if chunked.is_none() && remaining != u64::MAX {
                    remaining -= take as u64;
                }
            }
        }
        if remaining == 0 {
            return BodyEnd::Done;
        }
        match recv(src, pending, src_idle).await {
            Ok(0) => {
                return if matches!(framing, Framing::Close) { BodyEnd::Done } else { BodyEnd::SrcError };
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::TimedOut => return BodyEnd::SrcTimeout,
            Err(_) => return BodyEnd::SrcError,
        }
    }
}

fn header_has_token(buf: &[u8], head: &Head, name: &str, token: &str) -> bool {
    head.fields.iter().any(|f| {
        buf[f.name.clone()].eq_ignore_ascii_case(name.as_bytes())
            && buf[f.value.clone()].split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// True when the message asks to keep its connection open after it.
fn wants_keep_alive(buf: &[u8], head: &Head) -> bool {
    match head.version {
        Version::Http11 => !header_has_token(buf, head, "connection", "close"),
        Version::Http10 => header_has_token(buf, head, "connection", "keep-alive"),
    }
}

/// Writes a head as received, except the `Connection` header, which says what this hop does.
fn write_head_as_is(buf: &[u8], head: &Head, close: bool, out: &mut Vec<u8>) {
    let line_end = buf[..head.len].windows(2).position(|w| w == b"\r\n").unwrap_or(0);
    out.extend_from_slice(&buf[..line_end + 2]);
    for f in &head.fields {
        let name = &buf[f.name.clone()];
        if name.eq_ignore_ascii_case(b"connection") {
            continue;
        }
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(&buf[f.value.clone()]);
        out.extend_from_slice(b"\r\n");
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    } else if head.version == Version::Http10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// HAProxy's reason phrases for the statuses sluiced answers itself.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Time-out",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        421 => "Misdirected Request",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Time-out",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// A built-in error answer: HAProxy's own page for the statuses it has one for (byte for byte,
/// from [`super::reply`]), and a page of the same shape for the others (414, 431, 505).
pub fn error_response(status: u16, close: bool) -> Vec<u8> {
    if super::reply::BUILTIN_ERROR_CODES.contains(&status) {
        let page = super::reply::builtin_error(status);
        let mut out = page.bytes().to_vec();
        if close
            && !page.close()
            && let Some(pos) = out.windows(4).position(|w| w == b"\r\n\r\n")
        {
            out.splice(pos + 2..pos + 2, b"connection: close\r\n".iter().copied());
        }
        return out;
    }
    own_error_page(status, close)
}

fn own_error_page(status: u16, close: bool) -> Vec<u8> {
    let text = reason(status);
    let body = format!("<html><body><h1>{status} {text}</h1>\n{}\n</body></html>\n", error_detail(status));
    let mut out = format!("HTTP/1.1 {status} {text}\r\ncontent-length: {}\r\ncache-control: no-cache\r\ncontent-type: text/html\r\n", body.len()).into_bytes();
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
    out
}

fn error_detail(status: u16) -> &'static str {
    match status {
        400 => "Your browser sent an invalid request.",
        403 => "Request forbidden by administrative rules.",
        408 => "Your browser didn't send a complete request in time.",
        414 => "The request URI is too long.",
        431 => "The request header fields are too large.",
        500 => "An internal server error occurred.",
        501 => "The server does not support the functionality required to fulfill the request.",
        502 => "The server returned an invalid or incomplete response.",
        503 => "No server is available to handle this request.",
        504 => "The server didn't respond in time.",
        _ => "",
    }
}

/// What the request rules decided.
pub enum Verdict {
    /// Forward the request.
    Forward,
    /// Answer with these bytes; close the connection afterwards when `close`.
    Reply { bytes: Vec<u8>, close: bool },
    /// Close without an answer.
    Reject,
}

/// Runs one client connection to its end.
pub async fn run(w: Rc<Worker>, fe_idx: usize, client: EpollConn, peer: Option<std::net::SocketAddr>) -> End {
    let rt = w.rt.clone();
    let fe = &rt.frontends[fe_idx];
    if let EpollConn::Tcp(s) = &client {
        let _ = s.set_nodelay(true);
    }
    let dst = Dst { cell: std::cell::OnceCell::new(), client: &client };
    let limits = h1::Limits::default();
    let head_timeout = fe.timeout_http_request.or(fe.timeout_client).or(Some(DEFAULT_HEAD_TIMEOUT));
    let keepalive_timeout = fe.timeout_http_keep_alive.or(fe.timeout_http_request).or(fe.timeout_client);
    let mut cbuf: Vec<u8> = w.buffers.get(BUFSIZE);
    let mut first = true;
    let end = loop {
        // 1. Request head.
        let first_wait = if first { head_timeout } else { keepalive_timeout };
        let head = match read_head(&client, &mut cbuf, first_wait, head_timeout, |b| h1::parse_request(b, &limits)).await {
            HeadRead::Ok(h) => h,
            HeadRead::Closed | HeadRead::Idle => break End::Done,
            HeadRead::Aborted => break End::ClientError,
            HeadRead::Timeout => {
                let _ = send(&client, error_response(408, true), fe.timeout_client).await;
                break End::ClientTimeout;
            }
            HeadRead::Invalid(e) => {
                let _ = send(&client, error_response(e.status, true), fe.timeout_client).await;
                break End::Rejected;
            }
        };
        let framing = match h1::request_framing(&cbuf, &head) {
            Ok(f) => f,
            Err(e) => {
                let _ = send(&client, error_response(e.status, true), fe.timeout_client).await;
                break End::Rejected;
            }
        };
        let client_keep = wants_keep_alive(&cbuf, &head) && fe.http_keep_alive;
        let is_head_method = &cbuf[head.method.clone()] == b"HEAD";

        // 2. Rules, and 3. the backend.
        let (verdict, edits, be_idx) = {
            let ctx = HttpCtx { rt: &rt, fe, src: peer, dst: &dst, backend: None, req: Some(MsgView { buf: &cbuf, head: &head, first }), res: None };
            let (verdict, edits) = super::rules::request(fe, &ctx);
            let be_idx = fe.use_backends.iter().find(|r| r.cond.as_ref().is_none_or(|c| c.eval(&ctx) == Tri::Yes)).map(|r| r.backend).or(fe.default_backend);
            (verdict, edits, be_idx)
        };
        match verdict {
            Verdict::Forward => {}
            Verdict::Reject => break End::Rejected,
            Verdict::Reply { bytes, close } => {
                // The request body, if any, must not be read as the next request: drain it
                // (bounded by its framing) or close.
                let close = close || !client_keep || !matches!(framing, Framing::None | Framing::Length(0));
                let mut out = bytes;
                if close
                    && !out.windows(19).any(|w| w.eq_ignore_ascii_case(b"connection: close\r\n"))
                    && let Some(pos) = out.windows(4).position(|w| w == b"\r\n\r\n")
                {
                    out.splice(pos + 2..pos + 2, b"connection: close\r\n".iter().copied());
                }
                let (r, _) = send(&client, out, fe.timeout_client).await;
                cbuf.drain(..head.len);
                if r.is_err() || close {
                    break End::Done;
                }
                first = false;
                continue;
            }
        }
        let Some(be_idx) = be_idx else {
            let _ = send(&client, error_response(503, true), fe.timeout_client).await;
            break End::NoBackend;
        };
        let be = &rt.backends[be_idx];

        // 3. Server connection.
        let key = PickKey { src: peer.map(|s| s.ip()), hash: None };
        let Some((srv_idx, server, reused)) = server_conn(&w, be_idx, be, &key, &dst).await else {
            let _ = send(&client, error_response(503, true), fe.timeout_client).await;
            break End::NoServer;
        };
        let srv = be.state.servers[srv_idx].clone();
        let _slot = crate::l4::session::SlotGuard { be: &be.state, idx: srv_idx };

        // 4. Request head and body.
        let server_keep = be.http_keep_alive && client_keep;
        let mut out = Vec::with_capacity(head.len + 64);
        super::rules::write_request_head(&cbuf, &head, &edits, !server_keep, &mut out);
        let body_start = head.len;
        let mut pending = cbuf.split_off(body_start);
        cbuf.clear();
        let (r, _) = send(&server, out, be.timeout_server).await;
        if r.is_err() {
            // A reused connection the server closed meanwhile: HAProxy retries such a request
            // on a new connection when it is safe; here the client gets 502 and can retry.
            let _ = send(&client, error_response(502, true), fe.timeout_client).await;
            let _ = reused;
            break End::ServerError;
        }
        match forward_body(&client, &mut pending, &server, framing, fe.timeout_client, be.timeout_server).await {
            BodyEnd::Done => {}
            BodyEnd::Invalid(e) => {
                let _ = send(&client, error_response(e.status, true), fe.timeout_client).await;
                break End::Rejected;
            }
            BodyEnd::SrcTimeout => {
                let _ = send(&client, error_response(408, true), fe.timeout_client).await;
                break End::ClientTimeout;
            }
            BodyEnd::SrcError => break End::ClientError,
            BodyEnd::DstTimeout | BodyEnd::DstError => {
                let _ = send(&client, error_response(502, true), fe.timeout_client).await;
                break End::ServerError;
            }
        }
        // What the client sent after the body is the next request.
        cbuf = pending;

        // 5. Response.
        let mut sbuf: Vec<u8> = w.buffers.get(BUFSIZE);
        let (rhead, rframing) = loop {
            let rhead = match read_head(&server, &mut sbuf, be.timeout_server, be.timeout_server, |b| h1::parse_response(b, &limits)).await {
                HeadRead::Ok(h) => h,
                HeadRead::Timeout | HeadRead::Idle => {
                    let _ = send(&client, error_response(504, true), fe.timeout_client).await;
                    w.buffers.put(sbuf);
                    w.buffers.put(cbuf);
                    return End::ServerTimeout;
                }
                HeadRead::Closed | HeadRead::Aborted | HeadRead::Invalid(_) => {
                    let _ = send(&client, error_response(502, true), fe.timeout_client).await;
                    w.buffers.put(sbuf);
                    w.buffers.put(cbuf);
                    return End::ServerError;
                }
            };
            if (100..200).contains(&rhead.status) && rhead.status != 101 {
                // Interim responses pass through as they are.
                let interim = sbuf[..rhead.len].to_vec();
                sbuf.drain(..rhead.len);
                if send(&client, interim, fe.timeout_client).await.0.is_err() {
                    return End::ClientError;
                }
                continue;
            }
            match h1::response_framing(&sbuf, &rhead, is_head_method) {
                Ok(f) => break (rhead, f),
                Err(_) => {
                    let _ = send(&client, error_response(502, true), fe.timeout_client).await;
                    w.buffers.put(sbuf);
                    return End::ServerError;
                }
            }
        };
        let upgrade = rhead.status == 101;
        let server_keeps = wants_keep_alive(&sbuf, &rhead) && !matches!(rframing, Framing::Close) && !upgrade;
        let keep = client_keep && !matches!(rframing, Framing::Close) && !upgrade;
        let mut out = Vec::with_capacity(rhead.len + 64);
        if upgrade {
            out.extend_from_slice(&sbuf[..rhead.len]);
        } else {
            write_head_as_is(&sbuf, &rhead, !keep, &mut out);
        }
        let mut rest = sbuf.split_off(rhead.len);
        w.buffers.put(sbuf);
        if send(&client, out, fe.timeout_client).await.0.is_err() {
            break End::ClientError;
        }
        if upgrade {
            // A real 101: from here on the connection is a tunnel (WebSocket), with `timeout tunnel`.
            if !rest.is_empty() && send(&client, std::mem::take(&mut rest), fe.timeout_client).await.0.is_err() {
                break End::ClientError;
            }
            if !cbuf.is_empty() && send(&server, std::mem::take(&mut cbuf), be.timeout_server).await.0.is_err() {
                break End::ServerError;
            }
            break crate::l4::session::tunnel_pub(&w, fe, be, &client, &server, &srv).await;
        }
        match forward_body(&server, &mut rest, &client, rframing, be.timeout_server, fe.timeout_client).await {
            BodyEnd::Done => {}
            BodyEnd::Invalid(_) | BodyEnd::SrcError | BodyEnd::SrcTimeout => break End::ServerError,
            BodyEnd::DstTimeout => break End::ClientTimeout,
            BodyEnd::DstError => break End::ClientError,
        }
        // 6. Keep-alive.
        if server_keeps && server_keep && rest.is_empty() && be.reuse_allowed {
            w.http_pool.put(be_idx, srv_idx, server, None);
        }
        if !keep {
            break End::Done;
        }
        first = false;
    };
    w.buffers.put(cbuf);
    end
}

/// A connection to a server of `be`: an idle pooled one when `http-reuse` allows, else a new one.
async fn server_conn(w: &Worker, be_idx: usize, be: &Backend, key: &PickKey, dst: &Dst<'_>) -> Option<(usize, EpollConn, bool)> {
    if be.reuse_allowed {
        // Pick first, so balancing and maxconn hold, then look for an idle connection to it.
        if let crate::balance::Pick::Server(i) = be.state.pick(key, &[]) {
            if let Some(c) = w.http_pool.take(be_idx, i) {
                return Some((i, c, true));
            }
            be.state.release(i);
        }
    }
    crate::l4::session::connect(be, key, dst).await.map(|(i, c)| (i, c, false))
}
