//! The life of an HTTP/1 client connection (`mode http`), one transaction after the other:
//!
//! 1. **Request head**: read into the connection buffer until complete, within `timeout
//!    http-request` measured from the first byte (a deadline for the whole head, so a slowloris
//!    client gets 408), or `timeout http-keep-alive` while waiting for the first byte of a later
//!    request. The head is parsed in place ([`h1::parse_request`]) and its framing checked
//!    ([`h1::request_framing`]); any violation is answered with its status and the connection
//!    closes: nothing of a refused request is ever forwarded.
//! 2. **Rules**: the frontend's `http-request` rules, then its `redirect` lines, run on the head
//!    ([`super::rules`]): they may answer (return, deny, redirect, auth, tarpit), close (reject),
//!    or record edits that later rules see.
//! 3. **Backend and server**: `use_backend`/`default_backend`, the backend's `http-request`
//!    rules, then `option forwardfor`/`originalto`; the server a persistence cookie names
//!    ([`super::cookie`]) is used as is, else the one of the first `use-server` rule that holds
//!    ([`crate::route::use_server`]), else the one `stick match` finds, else one is picked by the
//!    backend's algorithm (with the
//!    `balance uri|url_param|hdr|hash` key of the edited request); an idle pooled connection to
//!    it is reused when `http-reuse` allows, else a new one is opened with the backend's retries
//!    and redispatch. `http-send-name-header` names the server.
//! 4. **Request**: the head is written with the edits applied, then the body streams through,
//!    checked as it passes (content-length counted, chunked framing validated).
//! 5. **Response**: 1xx heads are passed on until the final one; its framing decides how the body
//!    is read (length, chunked, until close, or none for HEAD/204/304). A malformed response is
//!    answered with 502 and the server connection is not reused. `http-response` rules (the
//!    backend's, then the frontend's), cookie persistence and `http-after-response` rules edit
//!    the head as it is written; every response sluiced generates (errors from the proxies' error
//!    pages, replies, redirects) also passes through `http-after-response`.
//! 6. **Keep-alive**: both connections stay open when both sides agree and the response was
//!    complete; the server connection returns to the worker's pool, and bytes the client already
//!    sent (pipelining) start the next transaction.
//!
//! Before the first request the frontend's `tcp-request connection` and `session` rules run
//! (accept, reject, variables). Each transaction starts with empty `txn.`/`req.` variables and
//! capture slots; the header captures are taken from the heads before the rules run, and the
//! `req.` variables end when the response head arrives.

use std::io;
use std::os::fd::AsFd;
use std::rc::Rc;
use std::time::Duration;

use tokio::io::Interest;
use tokio::time::Instant;

use super::config::CompressionAlgo;
use super::cookie;
use super::edit::{self, ConnHeader, Edit, EditedView, Edits};
use super::h1::{self, Framing, Head, Version};
use super::reply::Response;
use super::rules::{self, Flow, HttpRule};
use crate::balance::PickKey;
use crate::l4::session::{Dst, End, Worker};
use crate::log::record::{Cause, LogRecord};
use crate::route::eval::{HttpMsg, Sample, StreamCtx};
use crate::route::{Backend, Frontend, HttpKeyPart, ProxyHttpRt, RouteTable};
use crate::runtime::io::{AnyConn, Conn, Transport, write_all};

/// How much room a body read makes in a full buffer.
const READ_CHUNK: usize = 16384;
/// Default `timeout http-request` when neither it nor `timeout client` is set.
const DEFAULT_HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// A message as the rules see it: the parsed head with the edits recorded so far.
pub struct Msg<'a> {
    /// The buffer the head was parsed from (`req.payload` and friends read it).
    pub buf: &'a [u8],
    pub view: EditedView<'a>,
    /// The first request of the connection (`http_first_req`).
    pub first: bool,
    /// The body read before the rules ran (`option http-buffer-request`), de-chunked.
    pub body: Option<&'a [u8]>,
}

impl<'a> Msg<'a> {
    pub fn new(buf: &'a [u8], head: &'a Head, first: bool) -> Msg<'a> {
        Msg { buf, view: EditedView::new(buf, head, &Edits::new()), first, body: None }
    }

    /// The message with `edits` applied: the rules going on after a `wait-for-body` see the
    /// rewrites of the rules before it.
    pub fn edited(buf: &'a [u8], head: &'a Head, first: bool, edits: &Edits) -> Msg<'a> {
        Msg { buf, view: EditedView::new(buf, head, edits), first, body: None }
    }
}

impl HttpMsg for Msg<'_> {
    fn method(&self) -> &[u8] {
        self.view.method()
    }
    fn uri(&self) -> &[u8] {
        self.view.uri()
    }
    fn version(&self) -> &[u8] {
        self.view.version()
    }
    fn status(&self) -> u16 {
        self.view.status()
    }
    fn header_count(&self) -> usize {
        self.view.header_count()
    }
    fn header(&self, i: usize) -> (&[u8], &[u8]) {
        self.view.header(i)
    }
    fn first_request(&self) -> bool {
        self.first
    }
    fn body(&self) -> Option<&[u8]> {
        self.body
    }
}

/// The stream as the rule evaluator sees it during an HTTP transaction.
#[derive(Clone, Copy)]
pub(crate) struct HttpCtx<'a> {
    pub rt: &'a RouteTable,
    pub fe: &'a Frontend,
    /// The client's address: the connection's, until `set-src` changes it.
    pub src: &'a std::cell::Cell<Option<std::net::SocketAddr>>,
    pub dst: &'a Dst<'a>,
    pub backend: Option<usize>,
    /// The request body has not been read yet: a redirect then closes the connection.
    pub body_pending: bool,
    pub req_buf: &'a [u8],
    pub req: Option<&'a dyn HttpMsg>,
    pub res: Option<&'a dyn HttpMsg>,
    /// The connection's variables (`sess.`, and `txn.`/`req.`/`res.` of the current transaction).
    pub vars: &'a std::cell::RefCell<crate::route::vars::Vars>,
    /// The capture slots of the current transaction.
    pub captures: &'a std::cell::RefCell<crate::route::capture::Captured>,
    /// The connection's stick counters (`track-sc*`).
    pub stick: &'a crate::stick::track::StickCtrs,
    /// What the rules set for the current transaction alone.
    pub txn: &'a TxnSettings,
    /// The transaction's log record while the request rules run: the `unique-id` fetch makes
    /// the id from it.
    pub rec: Option<&'a LogRecord>,
}

/// Where the request rules go on after a `wait-for-body` rule read the body.
#[derive(Clone, Copy)]
enum RulesAt {
    /// From the start: the frontend's content rules, monitor and stats page, then its rules.
    Start,
    /// The frontend's `http-request` rules, from this one.
    Frontend(usize),
    /// This backend's `http-request` rules, from this one.
    Backend(usize, usize),
}

/// A `wait-for-body` rule that stopped its rule set: how long to wait, for how many bytes, and
/// the rule after it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WaitForBody {
    pub time: Duration,
    pub at_least: Option<u64>,
    pub next: usize,
}

/// What `http-request`/`http-response` actions set for one transaction, besides edits and
/// variables; reset when the next request starts.
#[derive(Default)]
pub(crate) struct TxnSettings {
    /// `disable-l7-retry` ran.
    pub no_l7_retry: std::cell::Cell<bool>,
    /// `set-log-level`.
    pub log_level: std::cell::Cell<Option<crate::l4::action::LogLevel>>,
    /// The `wait-for-body` rule that stopped the request rules, until the body is read.
    pub wait_for_body: std::cell::Cell<Option<WaitForBody>>,
    /// `set-timeout client|server|tunnel`: this transaction's, in place of the proxies'.
    pub timeouts: std::cell::Cell<StreamTimeouts>,
    /// The unique id (`unique-id-format`), once a `unique-id` fetch or the server's
    /// connection made it: made once per transaction, as in HAProxy.
    pub unique_id: std::cell::RefCell<Option<String>>,
    /// The id is being made: a format that reads `%[unique-id]` itself gets nothing.
    making_unique_id: std::cell::Cell<bool>,
}

/// The timeouts `set-timeout` changed for one transaction (`None`: the proxy's).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct StreamTimeouts {
    pub client: Option<Duration>,
    pub server: Option<Duration>,
    pub tunnel: Option<Duration>,
}

impl TxnSettings {
    /// The transaction's unique id: the one already made, or one made now from `fmt` (and kept).
    pub fn make_unique_id(&self, fmt: &crate::log::format::LogLf, rec: &LogRecord, ctx: &dyn StreamCtx) -> Option<String> {
        if let Some(id) = self.unique_id.borrow().as_ref() {
            return Some(id.clone());
        }
        if self.making_unique_id.replace(true) {
            return None;
        }
        let mut id = String::new();
        fmt.eval(rec, Some(ctx), &mut id);
        self.making_unique_id.set(false);
        *self.unique_id.borrow_mut() = Some(id.clone());
        Some(id)
    }

    pub fn set_timeout(&self, which: crate::l7::config::StreamTimeout, d: Duration) {
        use crate::l7::config::StreamTimeout;
        let mut t = self.timeouts.get();
        match which {
            StreamTimeout::Client => t.client = Some(d),
            StreamTimeout::Server => t.server = Some(d),
            StreamTimeout::Tunnel => t.tunnel = Some(d),
        }
        self.timeouts.set(t);
    }
}

impl StreamCtx for HttpCtx<'_> {
    fn src(&self) -> Option<std::net::SocketAddr> {
        self.src.get()
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
        self.req_buf
    }
    fn req_final(&self) -> bool {
        true
    }
    fn http_request(&self) -> Option<&dyn HttpMsg> {
        self.req
    }
    fn http_response(&self) -> Option<&dyn HttpMsg> {
        self.res
    }
    fn userlist(&self, name: &str) -> Option<&crate::config::model::Userlist> {
        self.rt.userlists.iter().find(|u| u.name == name)
    }
    fn vars(&self) -> Option<crate::route::vars::VarStore<'_>> {
        Some(crate::route::vars::VarStore { stream: self.vars, proc: &self.rt.proc_vars })
    }
    fn captures(&self) -> Option<&std::cell::RefCell<crate::route::capture::Captured>> {
        Some(self.captures)
    }
    fn tls(&self) -> Option<&crate::tls::TlsInfo> {
        self.dst.client.tls()
    }
    fn client_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        Some(self.dst.client.socket().as_fd())
    }
    fn stick(&self) -> Option<crate::stick::track::StickView<'_>> {
        Some(crate::stick::track::StickView { tables: &self.rt.tables, ctrs: self.stick, default_table: &self.fe.name })
    }
    fn stick_ctrs(&self) -> Option<&crate::stick::track::StickCtrs> {
        Some(self.stick)
    }
    fn unique_id(&self) -> Option<String> {
        let fmt = self.fe.log.as_ref()?.unique_id.as_ref()?;
        match self.rec {
            Some(rec) => self.txn.make_unique_id(fmt, rec, self),
            // Past the request rules (response rules), only the id made already.
            None => self.txn.unique_id.borrow().clone(),
        }
    }
}

/// What reading a head produced.
enum HeadRead {
    /// The head is complete and parsed.
    Ok,
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

/// The head parsers' shape: fill a reused [`Head`] (no allocation once its field list has grown).
type ParseInto = fn(&[u8], &h1::Limits, &mut Head) -> Result<bool, h1::H1Error>;

/// Reads until `parse` finds a complete head in `buf`, parsed into `head`. `first_byte` bounds
/// the wait for the first byte; `whole` bounds the head from its first byte. `started_at`, when
/// the transaction is logged, receives the time of the first byte.
#[allow(clippy::too_many_arguments)]
async fn read_head(
    c: &Transport,
    buf: &mut Vec<u8>,
    head: &mut Head,
    limits: &h1::Limits,
    first_byte: Option<Duration>,
    whole: Option<Duration>,
    parse: ParseInto,
    started_at: Option<&std::cell::Cell<Option<std::time::Instant>>>,
    timer: &mut crate::runtime::deadline::Deadline,
) -> HeadRead {
    let now = crate::runtime::deadline::coarse_now;
    let mut deadline = if buf.is_empty() { first_byte.map(|d| now() + d) } else { whole.map(|d| now() + d) };
    let mut started = !buf.is_empty();
    if let Some(at) = started_at {
        at.set(started.then(std::time::Instant::now));
    }
    loop {
        if !buf.is_empty() {
            match parse(buf, limits, head) {
                Ok(true) => return HeadRead::Ok,
                Ok(false) => {}
                Err(e) => return HeadRead::Invalid(e),
            }
        }
        if buf.len() == buf.capacity() {
            buf.reserve(limits.max_head.saturating_sub(buf.capacity()).max(1024));
        }
        let (r, b) = if let Transport::Plain(AnyConn::Uring(u)) = c {
            // io_uring: the read itself is the wait (a completion of the connection's
            // multishot receive, or a `RECV` in the ring), bounded by the deadline; no readiness
            // poll first. A `RECV` dropped at the deadline keeps the buffer until the kernel lets
            // go of it, and what it would have read is lost with it: every caller ends the
            // connection on `Timeout` and `Idle`.
            u.head_wait();
            let read = u.read(std::mem::take(buf));
            match deadline {
                Some(d) => match timer.run(d, read).await {
                    Some(done) => done,
                    None => return if started { HeadRead::Timeout } else { HeadRead::Idle },
                },
                None => read.await,
            }
        } else {
            let waited = match (deadline, c) {
                // Plain epoll: tokio's readiness poll itself, not three layers of `ready` futures.
                (Some(d), Transport::Plain(AnyConn::Epoll(e))) => timer.run(d, std::future::poll_fn(|cx| e.poll_read_ready(cx))).await,
                (Some(d), _) => timer.run(d, c.ready(Interest::READABLE)).await,
                (None, _) => Some(c.ready(Interest::READABLE).await),
            };
            match waited {
                None => return if started { HeadRead::Timeout } else { HeadRead::Idle },
                Some(Err(_)) => return if started { HeadRead::Aborted } else { HeadRead::Closed },
                Some(Ok(())) => {}
            }
            c.read(std::mem::take(buf)).await
        };
        *buf = b;
        match r {
            Ok(0) => return if started { HeadRead::Aborted } else { HeadRead::Closed },
            Ok(n) => {
                if n < buf.capacity() - (buf.len() - n) {
                    c.drained();
                }
                if !started {
                    started = true;
                    deadline = whole.map(|d| now() + d);
                    if let Some(at) = started_at {
                        at.set(Some(std::time::Instant::now()));
                    }
                }
            }
            Err(_) => return if started { HeadRead::Aborted } else { HeadRead::Closed },
        }
    }
}

/// Writes `data`, failing with `TimedOut` after `idle` without progress.
async fn send(c: &Transport, data: Vec<u8>, idle: Option<Duration>) -> (io::Result<()>, Vec<u8>) {
    match idle {
        None => write_all(c, data, 0).await,
        Some(t) => {
            let mut from = 0;
            let mut data = data;
            // Most writes go through at once: try before arming a timer.
            while from < data.len() {
                match c.try_write_now(&data[from..]) {
                    Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), data),
                    Ok(n) => from += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return (Err(e), data),
                }
            }
            while from < data.len() {
                match tokio::time::timeout(t, c.ready(Interest::WRITABLE)).await {
                    Err(_) => return (Err(io::ErrorKind::TimedOut.into()), data),
                    Ok(Err(e)) => return (Err(e), data),
                    Ok(Ok(())) => {}
                }
                // A TLS write waits for its records to leave: bounded by the same idle time (a
                // plain write after readiness does not wait).
                let (r, b) = match c {
                    Transport::Plain(_) => c.write(data, from).await,
                    Transport::Tls(_) => match tokio::time::timeout(t, c.write(data, from)).await {
                        Ok(done) => done,
                        Err(_) => return (Err(io::ErrorKind::TimedOut.into()), Vec::new()),
                    },
                };
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

/// Sends a chunk of a body as [`send`] does, or, on io_uring under `tune.uring.send-zc`, with
/// zero-copy sends when it is large. The buffer given back is then possibly another one, and
/// holds nothing of the chunk: only callers that do not need the bytes again use this.
async fn send_body(c: &Transport, data: Vec<u8>, idle: Option<Duration>) -> (io::Result<()>, Vec<u8>) {
    if let Transport::Plain(crate::runtime::io::AnyConn::Uring(u)) = c
        && u.zero_copy_wanted(data.len())
    {
        return match idle {
            None => u.send_zero_copy(data).await,
            Some(t) => tokio::time::timeout(t, u.send_zero_copy(data)).await.unwrap_or_else(|_| (Err(io::ErrorKind::TimedOut.into()), Vec::new())),
        };
    }
    send(c, data, idle).await
}

/// Reads more into `buf` with an idle timeout; `Ok(0)` is end of stream.
async fn recv(c: &Transport, buf: &mut Vec<u8>, idle: Option<Duration>) -> io::Result<usize> {
    if buf.len() == buf.capacity() {
        buf.reserve(READ_CHUNK);
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
    /// Bad chunked framing, at this offset of the source's unforwarded bytes.
    Invalid(h1::H1Error, usize),
}

/// How many of the bytes that pass belong to a body, by its framing: a Content-Length counted
/// down, chunked framing checked as it goes ([`h1::Chunked`]), or everything until close.
struct BodyMeter {
    remaining: u64,
    chunked: Option<h1::Chunked>,
}

impl BodyMeter {
    fn new(framing: Framing) -> BodyMeter {
        let remaining = match framing {
            Framing::None => 0,
            Framing::Length(n) => n,
            Framing::Chunked | Framing::Close => u64::MAX,
        };
        BodyMeter { remaining, chunked: matches!(framing, Framing::Chunked).then(h1::Chunked::new) }
    }

    /// How many of the first bytes of `data` belong to the body; they count as passed.
    #[inline]
    fn take(&mut self, data: &[u8]) -> Result<usize, h1::H1Error> {
        self.take_with(data, |_| {})
    }

    /// [`Self::take`], handing `on_data` the body's data as it passes (without chunk framing).
    /// Always inlined: [`Self::take`] is then the closure-free code it was before compression
    /// needed the data, and stays small enough to inline into the keep-alive path.
    #[inline(always)]
    fn take_with(&mut self, data: &[u8], mut on_data: impl FnMut(&[u8])) -> Result<usize, h1::H1Error> {
        match &mut self.chunked {
            Some(ch) => {
                let p = ch.feed_with(data, on_data)?;
                if p.done {
                    self.remaining = 0;
                }
                Ok(p.consumed)
            }
            None => {
                let t = data.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                if self.remaining != u64::MAX {
                    self.remaining -= t as u64;
                }
                on_data(&data[..t]);
                Ok(t)
            }
        }
    }

    /// The whole body has passed (never for a body delimited by the close).
    fn done(&self) -> bool {
        self.remaining == 0
    }

    /// After [`Self::take`] failed: the offset of the byte the framing broke on in its input.
    fn failed_at(&self) -> usize {
        self.chunked.as_ref().map_or(0, h1::Chunked::failed_at)
    }
}

/// Streams a body from `src` to `dst`. `pending` holds bytes already read from `src` after the
/// head; on return it holds what follows the body (the next pipelined message).
async fn forward_body(
    src: &Transport,
    pending: &mut Vec<u8>,
    dst: &Transport,
    framing: Framing,
    src_idle: Option<Duration>,
    dst_idle: Option<Duration>,
    moved: &std::cell::Cell<u64>,
) -> BodyEnd {
    let mut meter = BodyMeter::new(framing);
    loop {
        if !pending.is_empty() {
            let take = match meter.take(pending) {
                Ok(t) => t,
                Err(e) => return BodyEnd::Invalid(e, meter.failed_at()),
            };
            if take > 0 {
                let r = if take == pending.len() {
                    // The whole buffer is body: send it and keep the buffer.
                    let (r, b) = send_body(dst, std::mem::take(pending), dst_idle).await;
                    *pending = b;
                    pending.clear();
                    r
                } else {
                    // The next message follows the body in the buffer (pipelining).
                    let rest = pending.split_off(take);
                    let chunk = std::mem::replace(pending, rest);
                    send_body(dst, chunk, dst_idle).await.0
                };
                if let Err(e) = r {
                    return if e.kind() == io::ErrorKind::TimedOut { BodyEnd::DstTimeout } else { BodyEnd::DstError };
                }
                moved.set(moved.get() + take as u64);
            }
        }
        if meter.done() {
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

/// Streams a response body from `src` to `dst` compressed by `enc`, as chunks: what
/// [`forward_body`] does for a body passed as it is. `moved` counts the bytes sent.
#[allow(clippy::too_many_arguments)]
async fn compress_body(
    src: &Transport,
    pending: &mut Vec<u8>,
    dst: &Transport,
    framing: Framing,
    enc: &mut super::compress::Encoder,
    src_idle: Option<Duration>,
    dst_idle: Option<Duration>,
    moved: &std::cell::Cell<u64>,
) -> BodyEnd {
    let mut meter = BodyMeter::new(framing);
    let mut out = Vec::new();
    loop {
        if !pending.is_empty() {
            let take = match meter.take_with(pending, |d| enc.write(d)) {
                Ok(t) => t,
                Err(e) => return BodyEnd::Invalid(e, meter.failed_at()),
            };
            pending.drain(..take);
            if take > 0 {
                if meter.done() {
                    enc.finish_into(&mut out);
                } else {
                    enc.flush_into(&mut out);
                }
            }
            if !out.is_empty() {
                let n = out.len() as u64;
                let (r, b) = send_body(dst, std::mem::take(&mut out), dst_idle).await;
                out = b;
                out.clear();
                if let Err(e) = r {
                    return if e.kind() == io::ErrorKind::TimedOut { BodyEnd::DstTimeout } else { BodyEnd::DstError };
                }
                moved.set(moved.get() + n);
            }
        }
        if meter.done() {
            return BodyEnd::Done;
        }
        match recv(src, pending, src_idle).await {
            Ok(0) => return BodyEnd::SrcError,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::TimedOut => return BodyEnd::SrcTimeout,
            Err(_) => return BodyEnd::SrcError,
        }
    }
}

/// The compression settings that apply: the backend's, else the frontend's (as HAProxy).
fn compression<'r>(fe: &'r Frontend, be: Option<&'r Backend>) -> Option<&'r super::compress::Policy> {
    be.and_then(|b| b.http.compression.as_ref()).or(fe.http.compression.as_ref())
}

/// The algorithm to compress the response to `msg` with, if any; with `compression offload`, the
/// request then loses its `Accept-Encoding`. Out of line and cold: most transactions never get
/// here, and the keep-alive path stays as small as it was.
#[cold]
#[inline(never)]
fn compression_for_request(fe: &Frontend, be: Option<&Backend>, msg: &mut Msg<'_>, edits: &mut Edits) -> Option<CompressionAlgo> {
    let p = compression(fe, be)?;
    let algo = p.choose(msg)?;
    if p.offload {
        let e = super::compress::offload_edit();
        msg.view.apply(&e);
        edits.push(e);
    }
    Some(algo)
}

/// When the response is one to compress: its head rewritten (see
/// [`super::compress::response_edits`]) and the encoder for its body.
#[cold]
#[inline(never)]
fn compression_for_response(
    algo: CompressionAlgo,
    fe: &Frontend,
    be: &Backend,
    framing: Framing,
    msg: &mut Msg<'_>,
    edits: &mut Edits,
) -> Option<Box<super::compress::Encoder>> {
    let p = compression(fe, Some(be))?;
    let len = match framing {
        Framing::Length(n) => Some(n),
        Framing::Chunked => None,
        Framing::None | Framing::Close => return None,
    };
    if !p.applies(msg, len) {
        return None;
    }
    for e in super::compress::response_edits(algo, msg) {
        msg.view.apply(&e);
        edits.push(e);
    }
    super::compress::Encoder::new(algo, p.level).map(Box::new)
}

/// Reads the body of the request whose head takes `head_len` bytes of `buf` into `buf`, until it
/// is complete (`Ok(true)`), `buf` holds `bufsize` bytes or `at_least` bytes of body (`Ok(false)`), checking chunked
/// framing. `Err` carries the status to answer: 408 when `within` ends first, 400 for bad
/// framing, 0 when the client went away.
async fn buffer_body(
    c: &Transport,
    buf: &mut Vec<u8>,
    head_len: usize,
    framing: Framing,
    bufsize: usize,
    within: Option<Duration>,
    at_least: Option<u64>,
) -> Result<bool, u16> {
    let deadline = within.map(|d| Instant::now() + d);
    let mut meter = BodyMeter::new(framing);
    let mut checked = head_len;
    loop {
        checked += meter.take(&buf[checked..]).map_err(|e| e.status)?;
        if meter.done() {
            return Ok(true);
        }
        if buf.len() >= bufsize || at_least.is_some_and(|n| n > 0 && (buf.len() - head_len) as u64 >= n) {
            return Ok(false);
        }
        let idle = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if idle == Some(Duration::ZERO) {
            return Err(408);
        }
        match recv(c, buf, idle).await {
            Ok(0) => return Err(0),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::TimedOut => return Err(408),
            Err(_) => return Err(0),
        }
    }
}

/// What one run of the request rules reads: the transaction, where to start (`resume`), and the
/// body read so far.
#[derive(Clone, Copy)]
struct RulesRun<'r, 'c> {
    conn_ctx: &'r HttpCtx<'c>,
    client: &'r Transport,
    head: &'r Head,
    first: bool,
    framing: Framing,
    cbuf: &'r [u8],
    resume: RulesAt,
    body_pending: bool,
    buffered: bool,
    chunked_body: Option<&'r [u8]>,
    rec: Option<&'r LogRecord>,
}

/// What the request rules decided: the verdict, the backend, the balancing hash, the SNI for the
/// server and the compression to apply.
type RulesDone = (Verdict, Option<usize>, Option<u64>, Option<String>, Option<CompressionAlgo>);

/// The request rules from `resume` on, then the backend and what follows from them; and where a
/// `wait-for-body` rule stopped them (`Some(the backend whose rules it is in, or None for the
/// frontend's)`). Always inlined: the usual request runs it once, in line, as straight code, and
/// only a `wait-for-body` runs it again.
#[inline(always)]
fn request_rules(run: &RulesRun<'_, '_>, edits: &mut Edits) -> (RulesDone, Option<Option<usize>>) {
    let RulesRun { conn_ctx, client, head, first, framing, cbuf, resume, body_pending, buffered, chunked_body, rec } = *run;
    let (rt, fe, src, dst, captures, txn) = (conn_ctx.rt, conn_ctx.fe, conn_ctx.src, conn_ctx.dst, conn_ctx.captures, conn_ctx.txn);
    // Set when a `wait-for-body` rule stopped the rules.
    let mut waiting: Option<Option<usize>> = None;
    let body: Option<&[u8]> = match (chunked_body, framing) {
        (Some(b), _) => Some(b),
        (None, Framing::Length(n)) if buffered => Some(&cbuf[head.len..cbuf.len().min(head.len.saturating_add(n as usize))]),
        _ => None,
    };
    let mut base = HttpCtx { body_pending, rec, ..*conn_ctx };
    let mut msg = if let RulesAt::Start = resume { Msg::new(cbuf, head, first) } else { Msg::edited(cbuf, head, first, edits) };
    msg.body = body;
    let be_resume = if let RulesAt::Backend(b, next) = resume { Some((b, next)) } else { None };
    let mut flow = match resume {
        RulesAt::Start => {
            captures.borrow_mut().headers(&fe.captures, crate::log::config::CaptureDir::Request, &msg);
            // `tcp-request content` rules come first, as in HAProxy (its content
            // inspection runs before the HTTP analysers).
            let content_ok = fe.content_rules.is_empty()
                || crate::l4::session::http_content_rules_pass(
                    &fe.content_rules,
                    &HttpCtx { req: Some(&msg), req_buf: cbuf, ..base },
                    client.socket().as_fd(),
                    &txn.log_level,
                );
            if !content_ok {
                Flow::Reject
            } else {
                match monitor_status(fe, &base, &msg, &cbuf[head.target.clone()]) {
                    // `monitor-uri` is answered before any rule runs, as in HAProxy.
                    Some(status) => Flow::Reply(super::reply::error_response(status, &rules::error_tables(&base), &|f| rules::eval_format(f, &base))),
                    // The stats page (`stats uri`) is answered there too, before the rules.
                    None => {
                        match crate::control::page::serve(rt, fe.stats_page.as_deref(), &fe.stats_admin, &msg, &|c| rules::stats_admin_allowed(c, &base, &msg))
                        {
                            Some(page) => Flow::Reply(page),
                            None => rules::run(&fe.http.request_rules, &base, &mut msg, None, true, edits),
                        }
                    }
                }
            }
        }
        RulesAt::Frontend(next) => rules::run_from(&fe.http.request_rules, next, &base, &mut msg, None, true, edits),
        RulesAt::Backend(..) => Flow::Continue,
    };
    if matches!(flow, Flow::Continue) && be_resume.is_none() {
        flow = rules::run(&fe.http.redirects, &base, &mut msg, None, true, edits);
    }
    let mut hash = None;
    let mut sni = None;
    let mut comp = None;
    // The backend whose rules a `wait-for-body` stopped (`None`: the frontend's).
    let mut waiting_in = None;
    if matches!(flow, Flow::Continue) {
        base.backend = match be_resume {
            Some((b, _)) => Some(b),
            None => fe.select_backend(&rt.backends, &HttpCtx { req: Some(&msg), req_buf: cbuf, ..base }),
        };
        if let Some(b) = base.backend.filter(|b| Some(*b) != fe.own_backend) {
            let be = &rt.backends[b];
            // The backend's `tcp-request content` rules, then its `http-request` ones.
            let content_ok = be_resume.is_some()
                || be.content_rules.is_empty()
                || crate::l4::session::http_content_rules_pass(
                    &be.content_rules,
                    &HttpCtx { req: Some(&msg), req_buf: cbuf, ..base },
                    client.socket().as_fd(),
                    &txn.log_level,
                );
            waiting_in = Some(b);
            let from = be_resume.map_or(0, |(_, next)| next);
            flow = if content_ok { rules::run_from(&be.http.request_rules, from, &base, &mut msg, None, true, edits) } else { Flow::Reject };
            // A `backend` section with `stats enable` answers its page after its rules.
            if matches!(flow, Flow::Continue)
                && let Some(page) =
                    crate::control::page::serve(rt, be.stats_page.as_deref(), &be.stats_admin, &msg, &|c| rules::stats_admin_allowed(c, &base, &msg))
            {
                flow = Flow::Reply(page);
            }
        }
    }
    if matches!(flow, Flow::Continue) {
        let be = base.backend.and_then(|b| rt.backends.get(b));
        let ff = be.and_then(|b| b.http.forwardfor.as_ref()).or(fe.http.forwardfor.as_ref());
        if let Some(e) = ff.and_then(|ff| edit::forwardfor(ff, src.get().map(|p| p.ip()), &msg)) {
            msg.view.apply(&e);
            edits.push(e);
        }
        let ot = be.and_then(|b| b.http.originalto.as_ref()).or(fe.http.originalto.as_ref());
        if let Some(e) = ot.and_then(|ot| edit::originalto(ot, dst.get().map(|a| a.ip()))) {
            msg.view.apply(&e);
            edits.push(e);
        }
        if rt.compresses {
            comp = compression_for_request(fe, be, &mut msg, edits);
        }
        if let Some(be) = be {
            hash = pick_hash(be, &HttpCtx { req: Some(&msg), req_buf: cbuf, ..base }, &msg);
            sni = be.tls_sni.as_ref().and_then(|e| crate::l4::session::sample_text(e, &HttpCtx { req: Some(&msg), req_buf: cbuf, ..base }));
        }
    }
    let verdict = match flow {
        Flow::Continue => Verdict::Forward,
        Flow::Reject => Verdict::Reject,
        Flow::Reply(r) => {
            let (bytes, close) = after_response(&base, Some(&msg), r);
            Verdict::Reply { bytes, close }
        }
        Flow::Tarpit(r) => Verdict::Tarpit { bytes: after_response(&base, Some(&msg), r).0 },
        Flow::WaitForBody => {
            waiting = Some(waiting_in);
            Verdict::Reject
        }
    };
    ((verdict, base.backend, hash, sni, comp), waiting)
}

/// [`request_rules`] after a `wait-for-body`: out of line, so that the request path holds one
/// copy of the rules' code.
#[inline(never)]
fn request_rules_again(run: &RulesRun<'_, '_>, edits: &mut Edits) -> (RulesDone, Option<Option<usize>>) {
    request_rules(run, edits)
}

/// Reads the request body into `buf` for the rules (`option http-buffer-request`, or a
/// `wait-for-body` rule): until the whole body is in, `limit.1` bytes of it are, or the buffer is
/// full, within `limit.0`. A client waiting for `100 Continue` gets it first. `Ok(true)`: the
/// whole body is in. Running out of time is answered with 408, bad chunking with 400, and either
/// ends the session.
#[allow(clippy::too_many_arguments)]
async fn read_body_for_rules(
    c: &Transport,
    buf: &mut Vec<u8>,
    head: &Head,
    framing: Framing,
    bufsize: usize,
    limit: (Option<Duration>, Option<u64>),
    ctx: &HttpCtx<'_>,
    fe_idx: usize,
    rec: &mut Option<Box<LogRecord>>,
) -> Result<bool, End> {
    let fe = ctx.fe;
    if buf.len() == head.len
        && head.version == Version::Http11
        && header_has_token(buf, head, b"expect", b"100-continue")
        && send(c, b"HTTP/1.1 100 Continue\r\n\r\n".to_vec(), fe.timeout_client).await.0.is_err()
    {
        return Err(End::ClientError);
    }
    match buffer_body(c, buf, head.len, framing, bufsize, limit.0, limit.1).await {
        Ok(whole) => Ok(whole),
        Err(status) => {
            if status == 400 {
                crate::control::errors::buffered_body_error(ctx.rt, fe_idx, ctx.src.get(), buf, head.len);
            }
            if status != 0 {
                send_error(c, error_out(ctx, status), fe.timeout_client, rec).await;
            }
            Err(if status == 408 { End::ClientTimeout } else { End::ClientError })
        }
    }
}

/// Returns when the client closed its side (end of stream or error); never when it sends data
/// (a pipelined request is not a close).
async fn client_gone(c: &Transport) {
    use crate::runtime::uring::Ahead;
    if let Transport::Tls(t) = c {
        return t.peer_gone().await;
    }
    loop {
        if c.ready(Interest::READABLE).await.is_err() {
            return;
        }
        match c.peek() {
            Ok(Ahead::Data) => std::future::pending::<()>().await,
            Ok(Ahead::End) | Err(_) => return,
            Ok(Ahead::Nothing) => {}
        }
    }
}

/// The most body bytes read and discarded after a request answered without forwarding it (deny,
/// return, redirect) to keep the connection: a larger body closes it.
const DRAIN_MAX: u64 = 1 << 20;
/// How long a closing connection keeps reading what the client still sends, so that its unread
/// data does not make the kernel reset the connection before the answer was read.
const LINGER: Duration = Duration::from_millis(500);

/// Reads and discards the body of an answered request, checking its framing; `pending` holds
/// what was read after the head and, on success, what follows the body (the next request).
/// Gives up (false) past [`DRAIN_MAX`] bytes, on bad framing, on error, or when `within` ends.
async fn drain_body(src: &Transport, pending: &mut Vec<u8>, framing: Framing, within: Option<Duration>) -> bool {
    if matches!(framing, Framing::Close) {
        return false;
    }
    let deadline = within.map(|d| Instant::now() + d);
    let mut meter = BodyMeter::new(framing);
    let mut total = 0u64;
    loop {
        let Ok(take) = meter.take(pending) else { return false };
        pending.drain(..take);
        total += take as u64;
        if meter.done() {
            return true;
        }
        if total > DRAIN_MAX {
            return false;
        }
        let idle = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if idle == Some(Duration::ZERO) {
            return false;
        }
        match recv(src, pending, idle).await {
            Ok(0) | Err(_) => return false,
            Ok(_) => {}
        }
    }
}

/// Closes the sending side, then reads and discards what the client still sends for at most
/// [`LINGER`], so the answer already sent is not lost to a reset.
async fn linger_close(c: &Transport, buf: &mut Vec<u8>) {
    let _ = c.shutdown_write();
    let deadline = Instant::now() + LINGER;
    loop {
        buf.clear();
        let idle = deadline.saturating_duration_since(Instant::now());
        if idle.is_zero() {
            return;
        }
        match recv(c, buf, Some(idle)).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Moves what `pending` holds of the body to the end of `out` (after the head), so head and
/// body leave in one write; returns the framing still to stream (`None` when all of it moved).
/// With `partial` (responses), a body with a length moves as far as it is there and the rest is
/// counted down from what moved: a response larger than one read then leaves in two writes, not
/// three, and as fewer segments. Otherwise, and for chunked bodies (framing checked), the body
/// moves only when complete; one only partly there stays, to be streamed and checked by
/// [`forward_body`]. Requests do not move partly: with `tune.uring.send-zc auto`, a server
/// connection whose body began with a plain send went on with zero-copy sends far longer (36 to
/// 68 instead of at most 8 for 8 MB in `tests/send_zero_copy.rs`), which was not looked into.
fn absorb_body(out: &mut Vec<u8>, pending: &mut Vec<u8>, framing: Framing, partial: bool) -> Framing {
    if let (Framing::Length(len), true) = (framing, partial) {
        let n = usize::try_from(len).unwrap_or(usize::MAX).min(pending.len());
        out.extend_from_slice(&pending[..n]);
        pending.drain(..n);
        return if n as u64 == len { Framing::None } else { Framing::Length(len - n as u64) };
    }
    let mut meter = BodyMeter::new(framing);
    match meter.take(pending) {
        Ok(n) if meter.done() => {
            out.extend_from_slice(&pending[..n]);
            pending.drain(..n);
            Framing::None
        }
        _ => framing,
    }
}

fn header_has_token<const N: usize, const T: usize>(buf: &[u8], head: &Head, name: &[u8; N], token: &[u8; T]) -> bool {
    head.fields
        .iter()
        .any(|f| h1::is_lowercase(&buf[f.name.clone()], name) && buf[f.value.clone()].split(|&b| b == b',').any(|t| h1::is_lowercase(t.trim_ascii(), token)))
}

/// Removes the `h2c` upgrade offer (RFC 9113 3.1 dropped it; sluiced speaks HTTP/1.1 to servers
/// and cannot follow a switch to h2c), as HAProxy does: the `h2c` token of `Upgrade` (the field
/// when it is the only one) and `HTTP2-Settings`. The `Connection` tokens naming them go when
/// the head is written. Returns whether another upgrade is still offered.
fn strip_h2c(buf: &[u8], head: &Head, edits: &mut Edits) -> bool {
    let mut others: Vec<&[u8]> = Vec::new();
    for f in head.fields.iter().filter(|f| buf[f.name.clone()].eq_ignore_ascii_case(b"upgrade")) {
        others.extend(buf[f.value.clone()].split(|&b| b == b',').map(<[u8]>::trim_ascii).filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case(b"h2c")));
    }
    edits.push(if others.is_empty() {
        Edit::Del { name: "upgrade".into(), matching: edit::NameMatch::Str }
    } else {
        Edit::Set { name: "upgrade".into(), value: others.join(&b", "[..]) }
    });
    edits.push(Edit::Del { name: "http2-settings".into(), matching: edit::NameMatch::Str });
    !others.is_empty()
}

/// True when the message asks to keep its connection open after it.
fn wants_keep_alive(buf: &[u8], head: &Head) -> bool {
    match head.version {
        Version::Http11 => !header_has_token(buf, head, b"connection", b"close"),
        Version::Http10 => header_has_token(buf, head, b"connection", b"keep-alive"),
    }
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
    /// Hold the request for `timeout tarpit`, then answer with these bytes and close.
    Tarpit { bytes: Vec<u8> },
    /// Close without an answer.
    Reject,
}

/// The rule sets of a transaction's proxies, in HAProxy's order: the frontend's then the
/// backend's for a request, the backend's then the frontend's for a response. A listen's own
/// backend shares the frontend's rules, which run once.
fn rule_sets<'r>(base: &HttpCtx<'r>, response: bool, set: impl Fn(&'r ProxyHttpRt) -> &'r [HttpRule]) -> [&'r [HttpRule]; 2] {
    let fe = set(&base.fe.http);
    let be: &'r [HttpRule] = match base.backend.filter(|b| Some(*b) != base.fe.own_backend).and_then(|b| base.rt.backends.get(b)) {
        Some(be) => set(&be.http),
        None => &[],
    };
    if response { [be, fe] } else { [fe, be] }
}

/// Runs the `http-after-response` rules on a response sluiced generated (an error, a `return`, a
/// redirect), as HAProxy does for every response. Returns the bytes to send and whether the
/// connection must close afterwards.
fn after_response(base: &HttpCtx<'_>, req: Option<&Msg<'_>>, resp: Response) -> (Vec<u8>, bool) {
    let sets = rule_sets(base, true, |h| &h.after_response_rules);
    if sets.iter().all(|s| s.is_empty()) {
        return (resp.bytes, resp.close);
    }
    let Ok(Some(head)) = h1::parse_response(&resp.bytes, &h1::Limits::default()) else {
        return (resp.bytes, resp.close);
    };
    let mut out = Vec::with_capacity(resp.bytes.len() + 64);
    {
        let mut msg = Msg::new(&resp.bytes, &head, true);
        let mut edits = Edits::new();
        for set in sets {
            // The parser allows only rewrites and `allow` in this stage: nothing else can happen.
            let _ = rules::run(set, base, &mut msg, req, false, &mut edits);
        }
        if edits.is_empty() {
            return (resp.bytes, resp.close);
        }
        msg.view.write(false, ConnHeader::Preserve, &mut out);
    }
    out.extend_from_slice(resp.bytes.get(head.len..).unwrap_or(b""));
    (out, resp.close)
}

/// `monitor-uri`: 200 for a request whose target (or, for a URI starting with `/`, the path of an
/// absolute target) is the monitor URI, 503 when a `monitor fail` condition holds; `None` for any
/// other request.
fn monitor_status(fe: &Frontend, base: &HttpCtx<'_>, msg: &Msg<'_>, target: &[u8]) -> Option<u16> {
    let uri = fe.http.monitor_uri.as_deref()?;
    if target != uri && !(uri.first() == Some(&b'/') && path_of(target) == uri) {
        return None;
    }
    let ctx = HttpCtx { req: Some(msg), req_buf: msg.buf, ..*base };
    Some(if fe.http.monitor_fail.iter().any(|c| c.eval(&ctx) == crate::route::eval::Tri::Yes) { 503 } else { 200 })
}

/// An error sluiced answers itself (400, 408, 502, 503, 504...): the backend's page for the
/// status, then the frontend's, then the built-in one, through `http-after-response`; the
/// connection closes afterwards.
fn error_out(base: &HttpCtx<'_>, status: u16) -> Vec<u8> {
    crate::control::counters::count_generated(base.fe, base.backend.and_then(|b| base.rt.backends.get(b)), status);
    if !base.rt.tables.is_empty() {
        base.stick.http_status(status);
    }
    let resp = if super::reply::BUILTIN_ERROR_CODES.contains(&status) {
        super::reply::error_response(status, &rules::error_tables(base), &|f| rules::eval_format(f, base))
    } else {
        // 414, 431, 505: HAProxy has no page to configure for them; sluiced's own page says what
        // went wrong rather than a 500.
        Response { bytes: error_response(status, true), close: true }
    };
    with_close(after_response(base, None, resp).0)
}

/// Adds `connection: close` to a generated response that does not say it yet.
fn with_close(mut out: Vec<u8>) -> Vec<u8> {
    let head_end = out.windows(4).position(|w| w == b"\r\n\r\n");
    if let Some(pos) = head_end
        && !out[..pos + 2].windows(19).any(|w| w.eq_ignore_ascii_case(b"connection: close\r\n"))
    {
        out.splice(pos + 2..pos + 2, b"connection: close\r\n".iter().copied());
    }
    out
}

/// The hash of the request part or sample `balance` names, for the pick key; `None` when the
/// backend does not hash one or the request lacks it (the pick then falls back to round robin).
fn pick_hash(be: &Backend, ctx: &HttpCtx<'_>, req: &dyn HttpMsg) -> Option<u64> {
    if let Some(hk) = &be.hash_key {
        let bytes = match hk.expr.eval(ctx).ok().flatten()? {
            Sample::Str(s) => s.into_bytes(),
            Sample::Bin(b) => b,
            Sample::Int(i) => i.to_string().into_bytes(),
            Sample::Bool(b) => vec![u8::from(b)],
            Sample::Ip(ip) => ip.to_string().into_bytes(),
        };
        return Some(crate::balance::hash_bytes(hk.function, hk.avalanche, &bytes));
    }
    let k = be.http_key.as_ref()?;
    let sample = balance_sample(&k.part, req)?;
    Some(crate::balance::hash_bytes(k.function, k.avalanche, sample))
}

/// The bytes `balance uri|url_param|hdr` hashes, as HAProxy's `get_server_uh/ph/hh` take them.
pub fn balance_sample<'m>(part: &HttpKeyPart, req: &'m dyn HttpMsg) -> Option<&'m [u8]> {
    match part {
        HttpKeyPart::Uri(o) => Some(uri_key(req.uri(), o)),
        HttpKeyPart::UrlParam(name) => url_param(req.uri(), name.as_bytes()),
        HttpKeyPart::Hdr { name, use_domain_only } => {
            let v = (0..req.header_count()).map(|i| req.header(i)).find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))?.1;
            Some(if *use_domain_only { main_domain(v) } else { v })
        }
    }
}

/// `balance uri`: from the path when `path-only` (skipping an absolute URI's scheme and
/// authority), at most `len` characters, stopping before the `?` unless `whole`, and before the
/// slash that opens directory `depth + 1`.
pub fn uri_key<'u>(uri: &'u [u8], o: &crate::balance::config::UriHash) -> &'u [u8] {
    let uri = if o.path_only { path_of(uri) } else { uri };
    let limit = match o.len {
        Some(n) if n > 0 && (n as usize) < uri.len() => n as usize,
        _ => uri.len(),
    };
    // HAProxy stores depth + 1: the position of the slash that ends the last directory kept.
    let stop = o.depth.map(|d| u64::from(d) + 1);
    let mut slashes = 0u64;
    let mut end = 0;
    while let Some(&c) = uri.get(end).filter(|_| end < limit) {
        if c == b'/' {
            slashes += 1;
            if Some(slashes) == stop {
                break;
            }
        } else if c == b'?' && !o.whole {
            break;
        }
        end += 1;
    }
    uri.get(..end).unwrap_or(b"")
}

/// The path (with query) of a request target: from the first `/` after an absolute URI's
/// authority; empty for `*` and authority forms.
fn path_of(t: &[u8]) -> &[u8] {
    if t.first() == Some(&b'/') {
        return t;
    }
    let Some(auth) = t.windows(3).position(|w| w == b"://").map(|p| p + 3) else { return b"" };
    match t.get(auth..).and_then(|r| r.iter().position(|&b| b == b'/')) {
        Some(p) => t.get(auth + p..).unwrap_or(b""),
        None => b"",
    }
}

/// `balance url_param NAME`: the value of the first `NAME=` parameter of the query string.
pub fn url_param<'u>(uri: &'u [u8], name: &[u8]) -> Option<&'u [u8]> {
    let q = uri.iter().position(|&b| b == b'?')?;
    uri.get(q + 1..)?.split(|&b| b == b'&').find_map(|kv| {
        let eq = kv.iter().position(|&b| b == b'=')?;
        (kv.get(..eq)? == name).then(|| kv.get(eq + 1..).unwrap_or(b""))
    })
}

/// `hdr(NAME) use_domain_only`: the label before the last dot (`haproxy` of
/// `www.haproxy.org:8080`), or the whole value when it has no dot.
pub fn main_domain(v: &[u8]) -> &[u8] {
    let Some(end) = v.iter().rposition(|&b| b == b'.') else { return v };
    let start = v.get(..end).and_then(|h| h.iter().rposition(|&b| b == b'.')).map_or(0, |p| p + 1);
    v.get(start..end).unwrap_or(b"")
}

fn conn_header(close: bool, version: Version) -> ConnHeader {
    if close {
        ConnHeader::Close
    } else if version == Version::Http10 {
        ConnHeader::KeepAlive
    } else {
        ConnHeader::Strip
    }
}

/// How long a new connection may take to send its first request head: `timeout http-request`,
/// else `timeout client`, else sluiced's default. The worker parks an idle new connection that
/// long at most (`runtime::park`).
pub fn first_head_timeout(fe: &Frontend) -> Duration {
    fe.timeout_http_request.or(fe.timeout_client).unwrap_or(DEFAULT_HEAD_TIMEOUT)
}

/// Runs one client connection, accepted at `accepted`, to its end, or until `shutdown session` kills it: both of its
/// connections close then, and the transaction in progress is logged with termination state `K`
/// (without the sample fetches of the log format, whose stream is gone).
pub async fn run(
    w: Rc<Worker>,
    fe_idx: usize,
    client: Transport,
    peer: Option<std::net::SocketAddr>,
    accepted: std::time::Instant,
    sess: &crate::control::sessions::Session,
) -> End {
    // The log line of the transaction in progress, when the frontend logs: kept here so that it
    // outlives a killed session.
    let mut rec = None;
    let done = tokio::select! {
        biased;
        end = serve(w.clone(), fe_idx, client, peer, accepted, sess, &mut rec) => Some(end),
        () = sess.killed() => None,
    };
    if let Some(end) = done {
        return end;
    }
    if let (Some(r), Some(log)) = (rec.as_deref_mut(), &w.rt.frontends[fe_idx].log)
        && r.request_line.is_some()
    {
        r.end = Some(std::time::Instant::now());
        r.cause = Cause::Killed;
        log.emit(r, None);
    }
    End::Killed
}

async fn serve(
    w: Rc<Worker>,
    fe_idx: usize,
    client: Transport,
    peer: Option<std::net::SocketAddr>,
    accepted: std::time::Instant,
    sess: &crate::control::sessions::Session,
    rec: &mut Option<Box<LogRecord>>,
) -> End {
    let rt = &*w.rt;
    let fe = &rt.frontends[fe_idx];
    if let Some(s) = client.socket().tcp() {
        let _ = s.set_tcp_nodelay(true);
    }
    let dst = Dst::new(&client);
    let src = std::cell::Cell::new(peer);
    let vars = std::cell::RefCell::new(crate::route::vars::Vars::default());
    let captures = std::cell::RefCell::new(crate::route::capture::Captured::new(&fe.captures));
    // Three empty slots unless a rule tracks; without any stick table the per-request hooks are
    // skipped altogether.
    let stick = crate::stick::track::StickCtrs::default();
    let txn = TxnSettings::default();
    // The one timer of the session's waits for heads.
    let mut timer = crate::runtime::deadline::Deadline::new();
    let tracks = !rt.tables.is_empty();
    let conn_ctx = HttpCtx {
        rt,
        fe,
        src: &src,
        dst: &dst,
        backend: None,
        body_pending: false,
        req_buf: &[],
        req: None,
        res: None,
        vars: &vars,
        captures: &captures,
        stick: &stick,
        txn: &txn,
        rec: None,
    };
    // `tcp-request connection` and `tcp-request session` rules: accept, reject, variables.
    if !crate::l4::session::connection_rules_pass(fe, &conn_ctx, client.socket().as_fd()) {
        return End::Rejected;
    }
    let limits = rt.process.head_limits;
    let bufsize = rt.process.bufsize;
    let head_timeout = fe.timeout_http_request.or(fe.timeout_client).or(Some(DEFAULT_HEAD_TIMEOUT));
    let keepalive_timeout = fe.timeout_http_keep_alive.or(fe.timeout_http_request).or(fe.timeout_client);
    let mut cbuf: Vec<u8> = w.buffers.get(bufsize);
    // Reused across transactions so that a kept-alive request allocates nothing for them.
    let mut req_head = Head::default();
    let mut res_head = Head::default();
    let mut out_buf: Vec<u8> = Vec::new();
    let mut first = true;
    // The log line of the current transaction, when the frontend logs. (The `Connect from`
    // line of the default format is written by the worker at accept, before any parking.)
    *rec = fe.log.as_ref().map(|_| {
        let mut r = Box::new(LogRecord::new(std::time::SystemTime::now(), std::time::Instant::now(), peer, dst.get(), &fe.name, true));
        r.tls = client.tls().map(|t| (t.protocol, t.cipher));
        r
    });
    let end = 'txn: loop {
        if let (Some(r), Some(log)) = (rec.as_deref_mut(), &fe.log) {
            // The previous transaction completed: log it, then start the next record.
            // (Already logged with `option logasap`: nothing more.)
            if r.request_line.is_some() && !r.logged {
                r.end = Some(std::time::Instant::now());
                r.close_transaction(src.get(), &captures.borrow(), &fe.captures, txn.log_level.get());
                log.emit(r, Some(&HttpCtx { backend: r.backend_idx, ..conn_ctx }));
            }
            if !first {
                r.next_transaction();
            }
        }
        // 1. Request head.
        sess.idle();
        if tracks {
            stick.end_transaction();
        }
        vars.borrow_mut().new_transaction();
        captures.borrow_mut().new_transaction();
        txn.no_l7_retry.set(false);
        txn.log_level.set(None);
        txn.timeouts.set(StreamTimeouts::default());
        txn.unique_id.replace(None);
        // The first head may take `timeout http-request` from the accept, part of which may have
        // gone waiting for the first bytes.
        let first_wait = if first { head_timeout.map(|t| t.saturating_sub(accepted.elapsed())) } else { keepalive_timeout };
        let started_at = std::cell::Cell::new(None);
        let timed = rec.is_some().then_some(&started_at);
        match read_head(&client, &mut cbuf, &mut req_head, &limits, first_wait, head_timeout, h1::parse_request_into, timed, &mut timer).await {
            HeadRead::Ok => {
                sess.new_transaction();
                if let Some(r) = rec.as_deref_mut() {
                    r.request_head(&cbuf, req_head.len, started_at.get());
                }
            }
            HeadRead::Closed | HeadRead::Idle => break End::Done,
            HeadRead::Aborted => break End::ClientError,
            HeadRead::Timeout => {
                send_error(&client, error_out(&conn_ctx, 408), fe.timeout_client, rec).await;
                break End::ClientTimeout;
            }
            HeadRead::Invalid(e) => {
                fe.counters.request_error();
                crate::control::errors::request_error(rt, fe_idx, src.get(), &cbuf, None, &e);
                send_error(&client, error_out(&conn_ctx, e.status), fe.timeout_client, rec).await;
                break End::Rejected;
            }
        }
        // Latency histograms, when a Prometheus exporter will read them.
        let timed = rt.time_transactions;
        let t_req = timed.then(std::time::Instant::now);
        let head = &req_head;
        let framing = match h1::request_framing(&cbuf, head) {
            Ok(f) => f,
            Err(e) => {
                fe.counters.request_error();
                crate::control::errors::request_error(rt, fe_idx, src.get(), &cbuf, Some(head), &e);
                send_error(&client, error_out(&conn_ctx, e.status), fe.timeout_client, rec).await;
                break End::Rejected;
            }
        };
        let client_keep = wants_keep_alive(&cbuf, head) && fe.http_keep_alive;
        let is_head_method = &cbuf[head.method.clone()] == b"HEAD";
        let mut body_pending = !matches!(framing, Framing::None | Framing::Length(0));

        // `option http-buffer-request`: the body (as much as the buffer holds) is read before
        // the rules run, within `timeout http-request`. A `wait-for-body` rule reads it when it
        // runs, and the rules after it see it.
        let mut chunked_body: Option<Vec<u8>> = None;
        let mut buffered = false;
        if fe.buffer_request && body_pending {
            match read_body_for_rules(&client, &mut cbuf, head, framing, bufsize, (head_timeout, None), &conn_ctx, fe_idx, rec).await {
                Ok(whole) => body_pending = !whole,
                Err(end) => break end,
            }
            buffered = true;
            if matches!(framing, Framing::Chunked) {
                chunked_body = Some(h1::dechunk(&cbuf[head.len..]));
            }
        }

        // 2. Rules, 3. the backend, its rules, then `option forwardfor`/`originalto`, which
        //    HAProxy applies after the rules.
        fe.counters.request();
        if tracks {
            stick.http_request();
        }
        let mut edits = Edits::new();
        let start = RulesRun {
            conn_ctx: &conn_ctx,
            client: &client,
            head,
            first,
            framing,
            cbuf: &cbuf,
            resume: RulesAt::Start,
            body_pending,
            buffered,
            chunked_body: chunked_body.as_deref(),
            rec: rec.as_deref(),
        };
        let ((mut verdict, mut be_idx, mut hash, mut sni, mut comp), mut waiting) = request_rules(&start, &mut edits);
        // A `wait-for-body` rule stopped the rules: the body is read, then the rules after it run.
        while let Some(waiting_in) = waiting {
            let Some(w) = txn.wait_for_body.take() else { break 'txn End::Rejected };
            let ctx = HttpCtx { backend: waiting_in, ..conn_ctx };
            match read_body_for_rules(&client, &mut cbuf, head, framing, bufsize, (Some(w.time), w.at_least), &ctx, fe_idx, rec).await {
                Ok(whole) => body_pending = !whole,
                Err(end) => break 'txn end,
            }
            buffered = true;
            if matches!(framing, Framing::Chunked) {
                chunked_body = Some(h1::dechunk(&cbuf[head.len..]));
            }
            let resume = match waiting_in {
                Some(b) => RulesAt::Backend(b, w.next),
                None => RulesAt::Frontend(w.next),
            };
            let again = RulesRun {
                conn_ctx: &conn_ctx,
                client: &client,
                head,
                first,
                framing,
                cbuf: &cbuf,
                resume,
                body_pending,
                buffered,
                chunked_body: chunked_body.as_deref(),
                rec: rec.as_deref(),
            };
            ((verdict, be_idx, hash, sni, comp), waiting) = request_rules_again(&again, &mut edits);
        }
        if tracks {
            stick.request_rules_done();
        }
        let base = HttpCtx { body_pending, backend: be_idx, ..conn_ctx };
        // A rule's `unique-id` made the id: the log line has it even when no server is reached.
        if let Some(r) = rec.as_deref_mut()
            && let Some(id) = txn.unique_id.borrow().as_ref()
        {
            r.unique_id = Some(id.clone());
        }
        match verdict {
            Verdict::Forward => {}
            Verdict::Reject => break End::Rejected,
            Verdict::Tarpit { bytes } => {
                if let Some(t) = fe.timeout_tarpit {
                    tokio::time::sleep(t).await;
                }
                let bytes = with_close(bytes);
                if let Some(r) = rec.as_deref_mut() {
                    r.response(&bytes);
                    r.phase = Some(b'T');
                }
                let _ = send(&client, bytes, fe.timeout_client).await;
                break End::Rejected;
            }
            Verdict::Reply { mut bytes, close } => {
                // An answer to HEAD has the head of the answer to GET and no body (RFC 9110
                // 9.3.2): the generated answers (return, deny, stats page, exporter) are built
                // with their body and lose it here.
                if is_head_method && let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
                    bytes.truncate(end + 4);
                }
                // The request body, if any, must not be read as the next request: it is drained
                // (its framing checked, at most `DRAIN_MAX` bytes) before the next request is
                // read, or the connection closes. A client waiting for `100 Continue` never
                // sends it: that connection closes.
                let awaits_continue = body_pending && cbuf.len() == head.len && header_has_token(&cbuf, head, b"expect", b"100-continue");
                let drainable = match framing {
                    Framing::Length(n) => n <= DRAIN_MAX,
                    Framing::Chunked => true,
                    Framing::None => true,
                    Framing::Close => false,
                };
                let close = close || !client_keep || awaits_continue || !drainable;
                let out = if close { with_close(bytes) } else { bytes };
                let status = crate::control::counters::status_of(&out);
                crate::control::counters::count_generated(fe, base.backend.and_then(|b| rt.backends.get(b)), status);
                if tracks {
                    stick.http_status(status);
                }
                if let Some(r) = rec.as_deref_mut() {
                    r.response(&out);
                }
                let (r, _) = send(&client, out, fe.timeout_client).await;
                cbuf.drain(..head.len);
                if r.is_err() {
                    break End::ClientError;
                }
                if close {
                    linger_close(&client, &mut cbuf).await;
                    break End::Done;
                }
                if body_pending && !drain_body(&client, &mut cbuf, framing, head_timeout).await {
                    break End::Done;
                }
                first = false;
                continue;
            }
        }
        let Some(be_idx) = be_idx else {
            send_error(&client, error_out(&base, 503), fe.timeout_client, rec).await;
            break End::NoBackend;
        };
        let be = &rt.backends[be_idx];
        be.counters.request();
        sess.set_backend(Some(be_idx));
        if let Some(r) = rec.as_deref_mut() {
            r.backend = Some(be.name.clone());
            r.backend_idx = Some(be_idx);
            r.connect_start = Some(std::time::Instant::now());
        }
        // Cookie persistence: the server the request's cookie names, and the cookie as the server
        // is to see it.
        let visit = be.cookie.as_ref().map(|ck| {
            let (visit, edit) = ck.on_request(&be.state.servers, &EditedView::new(&cbuf, head, &edits), cookie::now());
            if let Some(e) = edit {
                edits.push(e);
            }
            visit
        });

        // 3. Server connection.
        let key = PickKey { src: src.get().map(|s| s.ip()), hash };
        // A bodiless idempotent request can be sent again on a new connection when a reused one
        // turns out closed (HAProxy does the same); only the others need an idle connection
        // checked before use.
        let retryable = matches!(framing, Framing::None) && matches!(&cbuf[head.method.clone()], b"GET" | b"HEAD" | b"OPTIONS" | b"TRACE" | b"PUT" | b"DELETE");
        // `http-reuse safe` (the default): the first request of a client connection only takes
        // an idle connection when it can be retried on a new one should the idle one turn out
        // closed (HAProxy never reuses for a first request; sluiced's own retry makes that
        // safe); `aggressive`/`always` reuse for any request, after a liveness check.
        let pool_use = if retryable {
            PoolUse::Trusted
        } else if first && !be.reuse_first_unsafe {
            PoolUse::Skip
        } else {
            PoolUse::Checked
        };
        // `use-server`, then `stick on|match` (the server stored for the request's key), when no
        // cookie chose a server.
        let server_msg =
            (be.stick.is_some() || be.use_server.is_some()).then(|| Msg { buf: &cbuf, view: EditedView::new(&cbuf, head, &edits), first, body: None });
        let server_ctx = server_msg.as_ref().map(|m| HttpCtx { req: Some(m), req_buf: &cbuf, ..base });
        let direct = visit
            .and_then(|v| v.server)
            .or_else(|| be.use_server.as_ref().zip(server_ctx.as_ref()).and_then(|(u, c)| u.chosen(c, &be.state.servers)))
            .or_else(|| be.stick.as_ref().zip(server_ctx.as_ref()).and_then(|(p, c)| p.matched(c, &be.state.servers)));
        // The retries this request has spent, of connections and (`retry-on`) of the request.
        let mut retries_used = crate::l4::session::Spent::default();
        let Some((mut srv_idx, mut server, mut reused, mut epoch, reuses)) =
            server_conn(&w, be_idx, be, &key, &dst, pool_use, direct, sni.as_deref(), &mut retries_used).await
        else {
            if let Some(r) = rec.as_deref_mut() {
                r.spent(retries_used);
            }
            send_error(&client, error_out(&base, 503), fe.timeout_client, rec).await;
            break End::NoServer;
        };
        let mut srv = &be.state.servers[srv_idx];
        let mut slot = crate::l4::session::SlotGuard { be: &be.state, idx: srv_idx };
        sess.set_server(Some(srv_idx));
        // `stick on|store-request`: the server is stored under the request's keys now; when a
        // `retry-on` retry may go to another server, the keys are kept to store that one instead.
        let mut stick_keys = None;
        if let (Some(p), Some(c)) = (&be.stick, &server_ctx) {
            if be.retry_on.layer7() && be.redispatch.is_some() {
                let k = stick_keys.insert(p.keys(c, false));
                p.store_keys(k, srv.id);
            } else {
                p.store(c, srv.id, false);
            }
        }
        if let (Some(r), Some(log)) = (rec.as_deref_mut(), &fe.log) {
            r.connected(be, srv_idx, server.socket());
            r.spent(retries_used);
            // `unique-id-format`: computed once the server is known, sent as `unique-id-header`.
            // A rule's `unique-id` fetch may have made it already.
            if let Some(id) = log.unique_id.as_ref().and_then(|uid| txn.make_unique_id(uid, r, &base)) {
                if let Some(h) = &log.unique_id_header {
                    edits.push(Edit::Set { name: h.clone(), value: id.clone().into_bytes() });
                }
                r.unique_id = Some(id);
            }
        }
        if let Some(name) = &be.send_name_header {
            edits.push(Edit::Set { name: name.clone(), value: srv.name.as_bytes().to_vec() });
        }

        // 4. Request head and body.
        // `set-timeout` may have changed the server and client timeouts for this transaction.
        let tmo = txn.timeouts.get();
        let (t_server, t_client) = (tmo.server.or(be.timeout_server), tmo.client.or(fe.timeout_client));
        // The server connection outlives a client that closes (`Connection: close`, HTTP/1.0):
        // it goes back to the pool for the next client, as HAProxy's keep-alive mode does. Only
        // `option http-server-close` or `httpclose` (frontend or backend) close it.
        let server_keep = be.http_keep_alive && fe.http_server_keep_alive;
        let mut out = std::mem::take(&mut out_buf);
        out.clear();
        // `Expect: 100-continue` with the body not yet sent: the client waits for a 100 before
        // sending it, so answer it here (as nginx does) and forward the request without the
        // expectation; the body then streams as usual.
        let body_start = head.len;
        let expects_continue = !matches!(framing, Framing::None)
            && cbuf.len() == body_start
            && head.version == Version::Http11
            && header_has_token(&cbuf, head, b"expect", b"100-continue");
        if expects_continue {
            edits.push(Edit::Del { name: "expect".into(), matching: edit::NameMatch::Str });
        }
        let mut offers_upgrade = head.fields.iter().any(|f| cbuf[f.name.clone()].eq_ignore_ascii_case(b"upgrade"));
        if offers_upgrade && header_has_token(&cbuf, head, b"upgrade", b"h2c") {
            offers_upgrade = strip_h2c(&cbuf, head, &mut edits);
        }
        let is_connect = &cbuf[head.method.clone()] == b"CONNECT";
        // `option http-pretend-keepalive`: the server is not told the connection closes after
        // its response (some servers then stop chunking or compressing); it closes all the same.
        edit::write_head(&cbuf, head, &edits, true, conn_header(!server_keep && !be.pretend_keepalive, head.version), &mut out);
        cbuf.drain(..body_start);
        if expects_continue && send(&client, b"HTTP/1.1 100 Continue\r\n\r\n".to_vec(), t_client).await.0.is_err() {
            break End::ClientError;
        }
        // A body already complete in the buffer goes out with the head, in one write.
        let framing = absorb_body(&mut out, &mut cbuf, framing, false);
        let head_bytes = out.len() as u64;
        if tracks {
            stick.bytes(head_bytes, 0);
        }
        let (r, b) = send(&server, out, t_server).await;
        out_buf = b;
        if r.is_err() {
            // A reused connection the server closed meanwhile: a safe request goes again on a
            // new connection; anything else gets 502.
            let fresh = if reused && retryable { resend(srv, srv_idx, &dst, be, sni.as_deref(), &mut out_buf).await } else { None };
            match fresh {
                Some((c, e)) => {
                    server = c;
                    epoch = e;
                    reused = false;
                }
                None => {
                    send_error(&client, error_out(&base, 502), t_client, rec).await;
                    break End::ServerError;
                }
            }
        }
        let moved = std::cell::Cell::new(0u64);
        // No body (most requests): nothing to forward, and no body future to build.
        let sent_body =
            if matches!(framing, Framing::None) { BodyEnd::Done } else { forward_body(&client, &mut cbuf, &server, framing, t_client, t_server, &moved).await };
        let req_bytes = head_bytes + moved.get();
        srv.counts.mine().bytes_in.fetch_add(req_bytes, std::sync::atomic::Ordering::Relaxed);
        fe.counters.add_in(req_bytes);
        be.counters.add_in(req_bytes);
        if tracks {
            stick.bytes(moved.get(), 0);
        }
        if let Some(r) = rec.as_deref_mut() {
            r.bytes_in += moved.get();
        }
        let t_sent = timed.then(std::time::Instant::now);
        match sent_body {
            BodyEnd::Done => {}
            BodyEnd::Invalid(e, at) => {
                crate::control::errors::body_error(rt, crate::control::errors::Dir::Request, fe_idx, be_idx, srv_idx, src.get(), &cbuf, at, &e);
                send_error(&client, error_out(&base, e.status), t_client, rec).await;
                break End::Rejected;
            }
            BodyEnd::SrcTimeout => {
                send_error(&client, error_out(&base, 408), t_client, rec).await;
                break End::ClientTimeout;
            }
            BodyEnd::SrcError => break End::ClientError,
            BodyEnd::DstTimeout | BodyEnd::DstError => {
                send_error(&client, error_out(&base, 502), t_client, rec).await;
                break End::ServerError;
            }
        }
        // What the client sent after the body stays in `cbuf`: it is the next request.

        // 5. Response.
        let mut sbuf: Vec<u8> = w.buffers.get(bufsize);
        // `retry-on` past the connection: only a request that went out whole in one buffer (kept
        // in `out_buf`) can be sent again, and only while nothing of an answer reached the client.
        let mut l7_retry = be.retry_on.layer7() && matches!(framing, Framing::None) && !txn.no_l7_retry.get();
        // Set where an answer (or its absence) is one `retry-on` names and the request may go
        // again: the top of the loop sends it again.
        let mut retry_pending = false;
        let rframing = loop {
            if std::mem::take(&mut retry_pending) {
                // The answer being retried is dropped with its connection.
                sbuf.clear();
                match retry_request(be, &key, &dst, srv_idx, sni.as_deref(), &mut out_buf, &mut retries_used).await {
                    Some((i, c, e)) => {
                        // The request went to another server: it is the one stored.
                        if let (Some(p), Some(k)) = (&be.stick, &stick_keys)
                            && i != srv_idx
                        {
                            p.store_keys(k, be.state.servers[i].id);
                        }
                        slot.moved_to(i);
                        (srv_idx, srv, server, epoch, reused) = (i, &be.state.servers[i], c, e, false);
                        sess.set_server(Some(i));
                        if let Some(r) = rec.as_deref_mut() {
                            r.connected(be, i, server.socket());
                            r.spent(retries_used);
                        }
                    }
                    None => {
                        slot.released();
                        if let Some(r) = rec.as_deref_mut() {
                            r.spent(retries_used);
                        }
                        send_error(&client, error_out(&base, 503), t_client, rec).await;
                        w.buffers.put(sbuf);
                        break 'txn End::NoServer;
                    }
                }
            }
            let may_retry = l7_retry && retries_used.retries < be.retries;
            let waited = read_head(&server, &mut sbuf, &mut res_head, &limits, t_server, t_server, h1::parse_response_into, None, &mut timer);
            let got = if be.abortonclose {
                tokio::select! {
                    r = waited => Some(r),
                    () = client_gone(&client) => None,
                }
            } else {
                Some(waited.await)
            };
            let Some(got) = got else {
                // `option abortonclose`: the client left while its request waited for the answer;
                // the server connection closes with the request.
                w.buffers.put(sbuf);
                break 'txn End::ClientError;
            };
            let rp = &be.retry_on;
            match got {
                HeadRead::Ok => {}
                HeadRead::Timeout | HeadRead::Idle if may_retry && rp.response_timeout => retry_pending = true,
                HeadRead::Timeout | HeadRead::Idle => {
                    send_error(&client, error_out(&base, 504), t_client, rec).await;
                    w.buffers.put(sbuf);
                    break 'txn End::ServerTimeout;
                }
                // The server closed a reused connection without answering: it was stale. A safe
                // request is sent again on a new connection (not counted as a retry).
                HeadRead::Closed if reused && retryable && sbuf.is_empty() => match resend(srv, srv_idx, &dst, be, sni.as_deref(), &mut out_buf).await {
                    Some((c, e)) => {
                        server = c;
                        epoch = e;
                        reused = false;
                        continue;
                    }
                    None => {
                        send_error(&client, error_out(&base, 502), t_client, rec).await;
                        w.buffers.put(sbuf);
                        break 'txn End::ServerError;
                    }
                },
                HeadRead::Closed | HeadRead::Aborted | HeadRead::Invalid(_) => {
                    if let HeadRead::Invalid(e) = &got {
                        crate::control::errors::response_error(rt, fe_idx, be_idx, srv_idx, src.get(), &sbuf, None, e);
                    }
                    srv.observe_response(None);
                    let empty = sbuf.is_empty() && !matches!(got, HeadRead::Invalid(_));
                    if may_retry && (if empty { rp.empty_response } else { rp.junk_response }) {
                        retry_pending = true;
                    } else {
                        send_error(&client, error_out(&base, 502), t_client, rec).await;
                        w.buffers.put(sbuf);
                        break 'txn End::ServerError;
                    }
                }
            }
            if retry_pending {
                continue;
            }
            let rhead = &res_head;
            srv.observe_response(Some(rhead.status));
            if (100..200).contains(&rhead.status) && rhead.status != 101 {
                // Interim responses pass through as they are; nothing is retried after one.
                let interim = sbuf[..rhead.len].to_vec();
                sbuf.drain(..rhead.len);
                if send(&client, interim, t_client).await.0.is_err() {
                    break 'txn End::ClientError;
                }
                l7_retry = false;
                continue;
            }
            if may_retry && rp.on_status(rhead.status) {
                retry_pending = true;
                continue;
            }
            if rhead.status == 101 && !offers_upgrade {
                // Switching protocols nobody asked to switch to: the server is confused.
                if may_retry && rp.junk_response {
                    retry_pending = true;
                    continue;
                }
                send_error(&client, error_out(&base, 502), t_client, rec).await;
                w.buffers.put(sbuf);
                break 'txn End::ServerError;
            }
            let method: &[u8] = if is_head_method {
                b"HEAD"
            } else if is_connect {
                b"CONNECT"
            } else {
                b"GET"
            };
            match h1::response_framing_for(&sbuf, rhead, method) {
                Ok(f) => break f,
                Err(e) => {
                    crate::control::errors::response_error(rt, fe_idx, be_idx, srv_idx, src.get(), &sbuf, Some(rhead), &e);
                    if may_retry && rp.junk_response {
                        retry_pending = true;
                        continue;
                    }
                    send_error(&client, error_out(&base, 502), t_client, rec).await;
                    w.buffers.put(sbuf);
                    break 'txn End::ServerError;
                }
            }
        };
        let (rhead, t_res) = (&res_head, timed.then(std::time::Instant::now));
        crate::control::counters::count_response(&fe.counters, &be.counters, rhead.status);
        if tracks {
            stick.http_status(rhead.status);
        }
        if let Some(r) = rec.as_deref_mut() {
            r.resp_head = Some(std::time::Instant::now());
            r.status = Some(rhead.status);
        }
        // A real 101 to an upgrade offer, or a 2xx to CONNECT: the connection becomes a tunnel.
        let upgrade = rhead.status == 101 || (is_connect && (200..300).contains(&rhead.status));
        let server_keeps = wants_keep_alive(&sbuf, rhead) && !matches!(rframing, Framing::Close) && !upgrade;
        let keep = client_keep && !matches!(rframing, Framing::Close) && !upgrade;
        let mut out = std::mem::take(&mut out_buf);
        out.clear();
        // `http-response` rules (the backend's, then the frontend's), then `http-after-response`.
        // A 101 passes as received: the connection becomes a tunnel.
        let mut flow = Flow::Continue;
        // Boxed: a response not compressed (nearly all) drops a null pointer, not an encoder.
        let mut encoder: Option<Box<super::compress::Encoder>> = None;
        if upgrade {
            out.extend_from_slice(&sbuf[..rhead.len]);
        } else {
            let mut msg = Msg::new(&sbuf, rhead, true);
            vars.borrow_mut().start_response();
            captures.borrow_mut().headers(&fe.captures, crate::log::config::CaptureDir::Response, &msg);
            if let Some(p) = be.stick.as_ref().filter(|p| p.stores_on_response()) {
                p.store(&HttpCtx { res: Some(&msg), ..base }, srv.id, true);
            }
            let mut redits = Edits::new();
            // A response to compress says so in its head before the `http-response` rules run
            // (they see it as the client will), as HAProxy's compression filter does.
            if let Some(algo) = comp {
                encoder = compression_for_response(algo, fe, be, rframing, &mut msg, &mut redits);
            }
            for set in rule_sets(&base, true, |h| &h.response_rules) {
                flow = rules::run(set, &base, &mut msg, None, false, &mut redits);
                if !matches!(flow, Flow::Continue) {
                    break;
                }
            }
            if matches!(flow, Flow::Continue) {
                if let (Some(ck), Some(visit)) = (&be.cookie, &visit) {
                    for e in ck.on_response(visit, &be.state.servers, srv_idx, &msg.view, cookie::now()) {
                        msg.view.apply(&e);
                    }
                }
                for set in rule_sets(&base, true, |h| &h.after_response_rules) {
                    let _ = rules::run(set, &base, &mut msg, None, false, &mut redits);
                }
                msg.view.write(false, conn_header(!keep, rhead.version), &mut out);
            }
        }
        match flow {
            // (`wait-for-body` is compiled in request rules only.)
            Flow::Continue | Flow::WaitForBody => {}
            Flow::Reject => {
                w.buffers.put(sbuf);
                break End::Rejected;
            }

            Flow::Reply(r) | Flow::Tarpit(r) => {
                // The server's response is dropped, and its connection with it.
                w.buffers.put(sbuf);
                let (bytes, close) = after_response(&base, None, r);
                let close = close || !keep;
                let out = if close { with_close(bytes) } else { bytes };
                if let Some(r) = rec.as_deref_mut() {
                    r.response(&out);
                }
                if send(&client, out, t_client).await.0.is_err() || close {
                    break End::Done;
                }
                first = false;
                continue;
            }
        }
        sbuf.drain(..rhead.len);
        let mut rest = sbuf;
        let rframing = if upgrade || encoder.is_some() { rframing } else { absorb_body(&mut out, &mut rest, rframing, true) };
        let res_head_bytes = out.len() as u64;
        if tracks {
            stick.bytes(0, res_head_bytes);
        }
        if let Some(r) = rec.as_deref_mut() {
            r.bytes_out += res_head_bytes;
            // `option logasap`: the line goes out with the response head.
            if let Some(log) = fe.log.as_ref().filter(|l| l.logasap) {
                r.close_transaction(src.get(), &captures.borrow(), &fe.captures, txn.log_level.get());
                log.emit_early(r, Some(&HttpCtx { res: None, ..base }));
            }
        }
        let (r, b) = send(&client, out, t_client).await;
        out_buf = b;
        if r.is_err() {
            w.buffers.put(rest);
            break End::ClientError;
        }
        if upgrade {
            // A real 101: from here on the connection is a tunnel (WebSocket), with `timeout tunnel`.
            // The tunnel splices and waits on readiness: what io_uring's multishot receives read
            // ahead is forwarded first.
            server.stop_read_ahead(&mut rest).await;
            client.stop_read_ahead(&mut cbuf).await;
            if !rest.is_empty() && send(&client, std::mem::take(&mut rest), t_client).await.0.is_err() {
                break End::ClientError;
            }
            if !cbuf.is_empty() && send(&server, std::mem::take(&mut cbuf), t_server).await.0.is_err() {
                break End::ServerError;
            }
            let io = crate::log::record::Transfer::default();
            srv.counts.mine().bytes_out.fetch_add(res_head_bytes, std::sync::atomic::Ordering::Relaxed);
            let end = crate::l4::session::tunnel_pub(&w, fe, be, &client, &server, srv, &io, txn.timeouts.get()).await;
            fe.counters.bytes(io.up.get(), io.down.get() + res_head_bytes);
            be.counters.bytes(io.up.get(), io.down.get() + res_head_bytes);
            if let Some(r) = rec.as_deref_mut() {
                r.bytes_in += io.up.get();
                r.bytes_out += io.down.get();
            }
            break end;
        }
        let moved = std::cell::Cell::new(0u64);
        let sent_body = if let Some(enc) = encoder.as_mut() {
            let end = compress_body(&server, &mut rest, &client, rframing, enc, t_server, t_client, &moved).await;
            fe.counters.compressed(enc.taken, enc.given);
            be.counters.compressed(enc.taken, enc.given);
            end
        } else if matches!(rframing, Framing::None) {
            BodyEnd::Done
        } else {
            forward_body(&server, &mut rest, &client, rframing, t_server, t_client, &moved).await
        };
        let res_bytes = res_head_bytes + moved.get();
        srv.counts.mine().bytes_out.fetch_add(res_bytes, std::sync::atomic::Ordering::Relaxed);
        fe.counters.add_out(res_bytes);
        be.counters.add_out(res_bytes);
        if tracks {
            stick.bytes(0, moved.get());
        }
        if let Some(r) = rec.as_deref_mut() {
            r.bytes_out += moved.get();
        }
        match sent_body {
            BodyEnd::Done => {}
            BodyEnd::Invalid(e, at) => {
                crate::control::errors::body_error(rt, crate::control::errors::Dir::Response, fe_idx, be_idx, srv_idx, src.get(), &rest, at, &e);
                break End::ServerError;
            }
            BodyEnd::SrcError | BodyEnd::SrcTimeout => break End::ServerError,
            BodyEnd::DstTimeout => break End::ClientTimeout,
            BodyEnd::DstError => break End::ClientError,
        }
        if let (Some(t_req), Some(t_sent), Some(t_res)) = (t_req, t_sent, t_res) {
            crate::balance::latency::record(&fe.latency, &be.state, srv_idx, t_req, t_sent, t_res);
        }
        // 6. Keep-alive.
        let clean = rest.is_empty();
        w.buffers.put(rest);
        // A TLS connection opened with a per-request SNI is not shared with other requests.
        let sni_bound = be.tls_sni.is_some() && server.tls().is_some();
        if server_keeps && server_keep && clean && be.reuse_allowed && !sni_bound {
            // A connection opened since (a retry, a resend) has not been reused.
            w.http_pool.put(be_idx, &be.state, srv_idx, server, epoch, if reused { reuses } else { 0 });
        }
        if !keep {
            break End::Done;
        }
        first = false;
    };
    w.buffers.put(cbuf);
    if let (Some(r), Some(log)) = (rec.as_deref_mut(), &fe.log) {
        // A kept-alive connection closing between requests has nothing to log, nor, under
        // `option http-ignore-probes`, one that closed or timed out before its first byte (a
        // browser's pre-connect).
        let probe = first && end == End::Done && fe.ignore_probes && r.is_null();
        if (r.request_line.is_some() || first || end != End::Done) && !probe {
            r.end = Some(std::time::Instant::now());
            r.client = src.get();
            r.cause = Cause::of(end);
            if r.request_line.is_none() && end == End::Done {
                // Closed before sending a whole request: HAProxy's `CR`.
                r.cause = Cause::ClientAbort;
            }
            r.take_captures(&captures.borrow(), &fe.captures);
            r.level = txn.log_level.get();
            log.emit(r, Some(&HttpCtx { backend: r.backend_idx, ..conn_ctx }));
        }
    }
    end
}

/// Sends a proxy-made error answer to the client, noting its status and size for the log.
async fn send_error(c: &Transport, bytes: Vec<u8>, idle: Option<Duration>, rec: &mut Option<Box<LogRecord>>) {
    if let Some(r) = rec.as_deref_mut() {
        r.response(&bytes);
    }
    let _ = send(c, bytes, idle).await;
}

/// Sends `out` (a whole request) again, to the same server on a new connection; returns it with
/// the server's connection epoch read before its address.
async fn resend(
    srv: &crate::balance::ServerState,
    srv_idx: usize,
    dst: &Dst<'_>,
    be: &Backend,
    sni: Option<&str>,
    out: &mut Vec<u8>,
) -> Option<(Transport, u32)> {
    let epoch = srv.conn_epoch();
    let addr = srv.addr().resolve(dst.get())?;
    let c = crate::l4::session::open(be, srv_idx, &addr, sni, true).await.ok()?;
    let (r, b) = send(&c, std::mem::take(out), be.timeout_server).await;
    *out = b;
    r.ok().map(|()| (c, epoch))
}

/// `retry-on`: sends `out` (a whole request) again on a new connection, after the answer to it
/// (or its absence) was one `retry-on` names. The new connection goes to server `srv_idx` again,
/// or to another one when `option redispatch` says so for this retry. The retry, and those of
/// the connection, are counted in `used` against the backend's `retries`; a header naming the
/// server (`http-send-name-header`) is changed to name the new one. On success the server's
/// slot is held (the caller's slot of `srv_idx` was given up if the server changed); `None` has
/// released every slot, the caller's too.
async fn retry_request(
    be: &Backend,
    key: &PickKey,
    dst: &Dst<'_>,
    srv_idx: usize,
    sni: Option<&str>,
    out: &mut Vec<u8>,
    used: &mut crate::l4::session::Spent,
) -> Option<(usize, Transport, u32)> {
    used.retries += 1;
    be.state.servers[srv_idx].counts.mine().retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let idx = if crate::l4::session::redispatch_now(be, used.retries) {
        // Another server when there is one; else the same one again.
        let i = crate::l4::session::redispatch(be, key, srv_idx, &mut Vec::new()).await?;
        used.redispatched |= i != srv_idx;
        i
    } else {
        srv_idx
    };
    let (i, c, epoch) = crate::l4::session::connect_spending(be, key, dst, idx, sni, true, used).await?;
    // `http-send-name-header` names the server the request now goes to.
    if let Some(name) = &be.send_name_header
        && i != srv_idx
    {
        edit::replace_sent_header(out, name, be.state.servers[i].name.as_bytes());
    }
    let (r, b) = send(&c, std::mem::take(out), be.timeout_server).await;
    *out = b;
    if r.is_err() {
        be.state.release(i);
        return None;
    }
    Some((i, c, epoch))
}

/// Whether a request may take an idle pooled connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PoolUse {
    /// No: a new connection.
    Skip,
    /// Yes, after checking it is still open (the request cannot be sent again).
    Checked,
    /// Yes, as it is: a closed one is detected on use and the request sent again.
    Trusted,
}

/// A connection to a server of `be`: an idle pooled one when `http-reuse` allows, else a new one.
/// `direct` is the server cookie persistence chose: it gets the request without balancing, after
/// waiting for a free slot on it (up to `timeout queue`), unless a retry redispatches.
#[allow(clippy::too_many_arguments)]
async fn server_conn(
    w: &Worker,
    be_idx: usize,
    be: &Backend,
    key: &PickKey,
    dst: &Dst<'_>,
    pool_use: PoolUse,
    direct: Option<usize>,
    sni: Option<&str>,
    used: &mut crate::l4::session::Spent,
) -> Option<(usize, Transport, bool, u32, u32)> {
    let check_idle = pool_use == PoolUse::Checked;
    let reuse = be.reuse_allowed && pool_use != PoolUse::Skip;
    let pinned = match direct {
        Some(i) => match crate::l4::session::take_queued(be, i).await {
            crate::l4::session::Queued::Taken => Some(i),
            // `maxqueue` streams already wait for it: balanced instead (persistence is lost, as
            // in HAProxy).
            crate::l4::session::Queued::QueueFull => None,
            crate::l4::session::Queued::TimedOut => return None,
        },
        None => None,
    };
    let i = match pinned {
        Some(i) => i,
        // With reuse, pick first, so balancing and maxconn hold, then look for an idle connection
        // to the server picked (picking again would advance the algorithm twice). A full backend
        // waits in the queue.
        None => match reuse.then(|| be.state.pick(key, &[])) {
            Some(crate::balance::Pick::Server(i)) => i,
            _ => crate::l4::session::pick_queued(be, key, &[]).await?,
        },
    };
    if reuse && let Some((c, epoch, reuses)) = w.http_pool.take(be_idx, i, check_idle, &be.state.servers[i]) {
        return Some((i, c, true, epoch, reuses));
    }
    // A new connection carries the epoch its server had before its address was read: if the
    // server moved meanwhile, the epoch is already stale and the connection is not pooled.
    crate::l4::session::connect_spending(be, key, dst, i, sni, true, used).await.map(|(j, c, e)| (j, c, false, e, 0))
}
