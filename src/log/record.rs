//! What a session records for its log line: dates, addresses, names, timers, bytes and how it
//! ended. Filled only when the frontend logs: a proxy without `log` never builds one.

use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

/// Why a stream ended, as HAProxy's first termination-state character.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Cause {
    /// Normal end (`-`).
    #[default]
    Normal,
    /// The client aborted (`C`).
    ClientAbort,
    /// The server aborted or refused (`S`).
    ServerAbort,
    /// The proxy blocked it: a rule, a bad request (`P`).
    Proxy,
    /// A resource was missing: no backend, no server (`R`).
    Resource,
    /// An internal error (`I`).
    Internal,
    /// The proxy is stopping (`K`).
    Killed,
    /// The client timeout struck (`c`).
    ClientTimeout,
    /// The server timeout struck (`s`).
    ServerTimeout,
}

impl Cause {
    pub fn code(self) -> u8 {
        match self {
            Cause::Normal => b'-',
            Cause::ClientAbort => b'C',
            Cause::ServerAbort => b'S',
            Cause::Proxy => b'P',
            Cause::Resource => b'R',
            Cause::Internal => b'I',
            Cause::Killed => b'K',
            Cause::ClientTimeout => b'c',
            Cause::ServerTimeout => b's',
        }
    }

    /// From the end of an L4 session or HTTP transaction.
    pub fn of(end: crate::l4::session::End) -> Cause {
        use crate::l4::session::End;
        match end {
            End::Done => Cause::Normal,
            End::Rejected | End::BadProxyHeader => Cause::Proxy,
            End::NoBackend => Cause::Resource,
            End::NoServer | End::ServerError => Cause::ServerAbort,
            End::ClientTimeout => Cause::ClientTimeout,
            End::ServerTimeout => Cause::ServerTimeout,
            End::ClientError => Cause::ClientAbort,
            End::Stopped | End::Killed => Cause::Killed,
        }
    }
}

/// One log line's facts.
#[derive(Debug)]
pub struct LogRecord {
    pub accept_date: SystemTime,
    pub accept: Instant,
    /// When this transaction began waiting for its request: the accept, or the end of the
    /// previous transaction on a kept-alive connection.
    pub txn_start: Instant,
    pub txn_start_date: SystemTime,
    /// When the request's first byte arrived (the accept for TCP).
    pub req_start: Instant,
    pub req_start_date: SystemTime,
    pub req_done: Option<Instant>,
    pub connect_start: Option<Instant>,
    pub connect_done: Option<Instant>,
    pub resp_head: Option<Instant>,
    pub end: Option<Instant>,
    pub client: Option<SocketAddr>,
    pub frontend_addr: Option<SocketAddr>,
    pub frontend: String,
    pub backend: Option<String>,
    /// The backend's index in the routing table, for samples evaluated at log time.
    pub backend_idx: Option<usize>,
    pub server: Option<String>,
    pub server_addr: Option<SocketAddr>,
    pub backend_src: Option<SocketAddr>,
    /// Bytes sent to the client (`%B`).
    pub bytes_out: u64,
    /// Bytes received from the client (`%U`).
    pub bytes_in: u64,
    /// The status sent to the client, if any.
    pub status: Option<u16>,
    /// `METHOD URI VERSION`, for HTTP.
    pub request_line: Option<String>,
    pub http: bool,
    pub cause: Cause,
    /// Overrides the phase derived from the timestamps (`T` for a tarpit).
    pub phase: Option<u8>,
    pub retries: u32,
    /// A retry moved the stream to another server: `%rc` is written `+<retries>`.
    pub redispatched: bool,
    /// `set-log-level`: the level of this line, or `silent` for none.
    pub level: Option<crate::l4::action::LogLevel>,
    pub conns: [u32; 5],
    pub queues: [u32; 2],
    /// `%hr` and `%hs`: captured header values, in slot order.
    pub req_captures: Vec<Option<String>>,
    pub res_captures: Vec<Option<String>>,
    /// `capture cookie`: the request's and the response's cookie (`%CC`, `%CS`).
    pub req_cookie: Option<String>,
    pub res_cookie: Option<String>,
    pub unique_id: Option<String>,
    /// The front connection's TLS version and cipher (`%sslv`, `%sslc`; `%ft` ends with `~`).
    pub tls: Option<(&'static str, &'static str)>,
    /// Logged ahead of its end (`option logasap`): the totals so far, shown with `+`.
    pub early: bool,
    /// Its line went out already (`option logasap`).
    pub logged: bool,
}

fn ms(a: Instant, b: Option<Instant>) -> i64 {
    b.map_or(-1, |b| b.saturating_duration_since(a).as_millis() as i64)
}

impl LogRecord {
    pub fn new(
        accept_date: SystemTime,
        accept: Instant,
        client: Option<SocketAddr>,
        frontend_addr: Option<SocketAddr>,
        frontend: &str,
        http: bool,
    ) -> LogRecord {
        LogRecord {
            accept_date,
            accept,
            txn_start: accept,
            txn_start_date: accept_date,
            req_start: accept,
            req_start_date: accept_date,
            req_done: None,
            connect_start: None,
            connect_done: None,
            resp_head: None,
            end: None,
            client,
            frontend_addr,
            frontend: frontend.to_owned(),
            backend: None,
            backend_idx: None,
            server: None,
            server_addr: None,
            backend_src: None,
            bytes_out: 0,
            bytes_in: 0,
            status: None,
            request_line: None,
            http,
            cause: Cause::Normal,
            phase: None,
            retries: 0,
            redispatched: false,
            level: None,
            conns: [0; 5],
            queues: [0; 2],
            req_captures: Vec::new(),
            res_captures: Vec::new(),
            req_cookie: None,
            res_cookie: None,
            unique_id: None,
            tls: None,
            early: false,
            logged: false,
        }
    }

    /// The next transaction on the same connection.
    pub fn next_transaction(&mut self) {
        let now = Instant::now();
        let date = SystemTime::now();
        *self = LogRecord {
            req_start: now,
            req_start_date: date,
            tls: self.tls,
            ..LogRecord::new(self.accept_date, self.accept, self.client, self.frontend_addr, "", self.http)
        }
        .with_frontend(std::mem::take(&mut self.frontend));
    }

    fn with_frontend(mut self, f: String) -> LogRecord {
        self.frontend = f;
        self
    }

    /// Where the stream was when it ended, HAProxy's second termination-state character.
    pub fn phase(&self) -> u8 {
        if let Some(p) = self.phase {
            return p;
        }
        if self.cause == Cause::Normal {
            return b'-';
        }
        if self.http && self.req_done.is_none() {
            b'R'
        } else if self.connect_done.is_none() {
            if self.connect_start.is_none() && self.http { b'R' } else { b'C' }
        } else if self.http && self.resp_head.is_none() {
            b'H'
        } else {
            b'D'
        }
    }

    /// `%ts`.
    pub fn termination(&self) -> [u8; 2] {
        [self.cause.code(), self.phase()]
    }

    /// `%Th`: no TLS or PROXY handshake is timed yet.
    pub fn th(&self) -> i64 {
        0
    }
    /// `%Ti`: idle time before the request's first byte.
    pub fn ti(&self) -> i64 {
        if !self.http {
            return -1;
        }
        self.req_start.saturating_duration_since(self.txn_start).as_millis() as i64
    }
    /// `%TR`
    pub fn t_request(&self) -> i64 {
        if !self.http {
            return -1;
        }
        ms(self.req_start, self.req_done)
    }
    /// `%Tw`
    pub fn tw(&self) -> i64 {
        match (self.req_done.or(if self.http { None } else { Some(self.accept) }), self.connect_start) {
            (Some(a), Some(b)) => b.saturating_duration_since(a).as_millis() as i64,
            _ => -1,
        }
    }
    /// `%Tc`
    pub fn tc(&self) -> i64 {
        match self.connect_start {
            Some(a) => ms(a, self.connect_done),
            None => -1,
        }
    }
    /// `%Tr`
    pub fn tr(&self) -> i64 {
        match self.connect_done {
            Some(a) => ms(a, self.resp_head),
            None => -1,
        }
    }
    /// `%Ta`
    pub fn ta(&self) -> i64 {
        ms(self.req_start, Some(self.end.unwrap_or_else(Instant::now)))
    }
    /// `%Tt`
    pub fn tt(&self) -> i64 {
        ms(self.accept, Some(self.end.unwrap_or_else(Instant::now)))
    }
    /// `%Tq`
    pub fn tq(&self) -> i64 {
        let r = self.t_request();
        if r < 0 { -1 } else { self.th() + self.ti() + r }
    }
    /// `%Tu`
    pub fn tu(&self) -> i64 {
        let parts = [self.tq(), self.tw(), self.tc(), self.tr()];
        if parts.iter().any(|p| *p < 0) { -1 } else { parts.iter().sum() }
    }
    /// `%Td`
    pub fn td(&self) -> i64 {
        let u = self.tu();
        if u < 0 { -1 } else { (self.tt() - u).max(0) }
    }

    /// Nothing was received from the client (`option dontlognull`).
    pub fn is_null(&self) -> bool {
        self.bytes_in == 0 && self.request_line.is_none()
    }
    /// The stream ended in error (`option log-separate-errors`: logged at `err`).
    pub fn is_error(&self) -> bool {
        self.cause != Cause::Normal || self.status.is_some_and(|s| s >= 500)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rec(http: bool) -> LogRecord {
        LogRecord::new(SystemTime::now(), Instant::now(), None, None, "fe", http)
    }

    #[test]
    fn termination_codes() {
        let mut r = rec(false);
        assert_eq!(&r.termination(), b"--");
        // A refused connection: the server side, while connecting.
        r.cause = Cause::ServerAbort;
        r.connect_start = Some(r.accept);
        assert_eq!(&r.termination(), b"SC");
        // Client idle in the data phase.
        r.connect_done = Some(r.accept + Duration::from_millis(1));
        r.cause = Cause::ClientTimeout;
        assert_eq!(&r.termination(), b"cD");
        let mut h = rec(true);
        h.cause = Cause::ClientTimeout;
        assert_eq!(&h.termination(), b"cR");
        h.req_done = Some(h.accept);
        h.connect_start = Some(h.accept);
        h.connect_done = Some(h.accept);
        h.cause = Cause::ServerTimeout;
        assert_eq!(&h.termination(), b"sH");
        h.cause = Cause::ClientAbort;
        assert_eq!(&h.termination(), b"CH");
        h.resp_head = Some(h.accept);
        assert_eq!(&h.termination(), b"CD");
    }

    #[test]
    fn timers() {
        let mut r = rec(true);
        let t0 = r.accept;
        r.req_done = Some(t0 + Duration::from_millis(5));
        r.connect_start = Some(t0 + Duration::from_millis(6));
        r.connect_done = Some(t0 + Duration::from_millis(9));
        r.resp_head = Some(t0 + Duration::from_millis(19));
        r.end = Some(t0 + Duration::from_millis(30));
        assert_eq!((r.t_request(), r.tw(), r.tc(), r.tr(), r.ta(), r.tt()), (5, 1, 3, 10, 30, 30));
        assert_eq!((r.tq(), r.tu(), r.td()), (5, 19, 11));
        // A kept-alive request: idle time, then the head from its first byte.
        let mut k = rec(true);
        let t1 = k.txn_start;
        k.request_head(b"GET / HTTP/1.1\r\n\r\n", 18, Some(t1 + Duration::from_millis(40)));
        k.req_done = Some(t1 + Duration::from_millis(45));
        assert_eq!((k.ti(), k.t_request(), k.tq()), (40, 5, 45));
        assert_eq!(k.request_line.as_deref(), Some("GET / HTTP/1.1"));
        let fresh = rec(true);
        assert_eq!((fresh.tw(), fresh.tc(), fresh.tr()), (-1, -1, -1));
    }
}

/// Bytes a tunnel moved for one stream, per direction.
#[derive(Debug, Default)]
pub struct Transfer {
    /// Client to server.
    pub up: std::cell::Cell<u64>,
    /// Server to client.
    pub down: std::cell::Cell<u64>,
}

impl LogRecord {
    /// The server connection is up: the server, the addresses, and the connection counts.
    /// The retries the stream spent, and whether one moved it to another server.
    pub(crate) fn spent(&mut self, s: crate::l4::session::Spent) {
        self.retries = s.retries;
        self.redispatched = s.redispatched;
    }

    pub fn connected(&mut self, be: &crate::route::Backend, server: usize, conn: &crate::runtime::io::AnyConn) {
        use std::sync::atomic::Ordering::Relaxed;
        self.connect_done = Some(Instant::now());
        let srv = &be.state.servers[server];
        self.server = Some(srv.name.clone());
        if conn.tcp().is_some() {
            self.server_addr = conn.peer_addr();
            self.backend_src = conn.local_addr();
        }
        let bc: u32 = be.state.servers.iter().map(|s| s.cur_conns.load(Relaxed)).sum();
        // Process-wide and frontend counts are not kept yet: the backend's stands in.
        self.conns = [bc, bc, bc, srv.cur_conns.load(Relaxed), 0];
        self.queues = [srv.queued.load(Relaxed), be.state.queued.load(Relaxed)];
    }
}

impl LogRecord {
    /// What a transaction's line takes from it once it is to be logged (at its end, or early
    /// with `option logasap`): the client address (`set-src` may have changed it), the captured
    /// headers and the level its rules set.
    pub fn close_transaction(
        &mut self,
        client: Option<std::net::SocketAddr>,
        c: &crate::route::capture::Captured,
        cfg: &crate::route::capture::CaptureConfig,
        level: Option<crate::l4::action::LogLevel>,
    ) {
        self.client = client;
        self.take_captures(c, cfg);
        self.level = level;
    }

    /// Copies the transaction's captured headers for `%hr`/`%hs`, and its cookies for `%CC`/`%CS`.
    pub fn take_captures(&mut self, c: &crate::route::capture::Captured, cfg: &crate::route::capture::CaptureConfig) {
        use crate::log::config::CaptureDir;
        let get = |dir, n: usize| (0..n).map(|i| c.get(dir, i).map(|v| String::from_utf8_lossy(v).into_owned())).collect();
        self.req_captures = get(CaptureDir::Request, cfg.req_lens.len());
        self.res_captures = get(CaptureDir::Response, cfg.res_lens.len());
        if cfg.cookie.is_some() {
            let text = |dir| c.cookie(dir).map(|v| String::from_utf8_lossy(v).into_owned());
            self.req_cookie = text(CaptureDir::Request);
            self.res_cookie = text(CaptureDir::Response);
        }
    }

    /// The request head is in: its first line, for `%r`; `first_byte` is when it began.
    pub fn request_head(&mut self, buf: &[u8], head_len: usize, first_byte: Option<Instant>) {
        self.req_done = Some(Instant::now());
        if let Some(t) = first_byte {
            self.req_start = t;
            self.req_start_date = self.txn_start_date + t.saturating_duration_since(self.txn_start);
        }
        self.bytes_in += head_len as u64;
        let line = &buf[..memchr::memchr(b'\n', buf).unwrap_or(buf.len()).min(head_len)];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        self.request_line = Some(String::from_utf8_lossy(line).into_owned());
    }

    /// A response was sent to the client: its status and size.
    pub fn response(&mut self, bytes: &[u8]) {
        if bytes.len() >= 12 && bytes.starts_with(b"HTTP/") {
            self.status = std::str::from_utf8(&bytes[9..12]).ok().and_then(|s| s.parse().ok());
        }
        self.bytes_out += bytes.len() as u64;
    }
}
