//! Test support: the real `sluiced` binary started on an inline configuration, on ports picked by
//! binding port 0, and small real servers to put behind it.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// True when the tests run as root (CI does): what switches user or chowns needs it.
pub fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

/// A loopback port that was free a moment ago, and that no other test of this process was given:
/// the kernel may hand a just-released port out again, and two daemons of parallel tests bound
/// to one port would share it (`SO_REUSEPORT`) and answer each other's clients.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A port that refuses connections and that no other test can take while the returned socket
/// lives: a socket bound to it without listening, and without `SO_REUSEADDR`, so a later bind
/// of the same port fails instead of a test's backend answering in place of a "dead" server.
pub fn dead_port() -> (u16, socket2::Socket) {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
    let port = s.local_addr().unwrap().as_socket().unwrap().port();
    (port, s)
}

/// Sends one line to a stats socket on a fresh connection and reads the answer until the daemon
/// closes (non-interactive mode).
pub fn ask(sock: &std::path::Path, line: &str) -> String {
    let mut c = std::os::unix::net::UnixStream::connect(sock).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    out
}

/// A directory of its own for one test, empty. A directory of the same name can only be left
/// from an earlier test process that had the same pid (pids are reused), so it is emptied first:
/// a stale socket file in it would make a bind fail with `EADDRINUSE`.
/// Asks `line` until the answer satisfies `ok`, for at most `within`; returns the last answer.
pub fn ask_until(sock: &std::path::Path, line: &str, within: std::time::Duration, ok: impl Fn(&str) -> bool) -> String {
    let until = std::time::Instant::now() + within;
    loop {
        let a = ask(sock, line);
        if ok(&a) || std::time::Instant::now() > until {
            return a;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    static SWEEP: std::sync::Once = std::sync::Once::new();
    SWEEP.call_once(sweep_dead_temp_dirs);
    let d = std::env::temp_dir().join(format!("sluiced-test-{}-{tag}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Removes the `temp_dir`s of test processes that are gone (their pid has no `/proc` entry), once
/// per test process, so that runs do not pile directories up in the temporary directory. A pid
/// reused by a live process keeps its directories until that process is gone too.
fn sweep_dead_temp_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("sluiced-test-")).and_then(|r| r.split('-').next()).and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// `--io-backend <name>` when `SLUICED_IO_BACKEND` names one: CI runs the integration suite once
/// per backend this way. A test's own `extra` arguments come after it, so they win.
pub fn backend_override() -> Vec<String> {
    match std::env::var("SLUICED_IO_BACKEND") {
        Ok(b) if !b.is_empty() => vec!["--io-backend".to_owned(), b],
        _ => Vec::new(),
    }
}

/// A running daemon; stopped with SIGTERM when dropped.
pub struct Sluiced {
    pub child: Child,
    pub cfg: PathBuf,
}

impl Sluiced {
    /// Starts `sluiced -d -f <cfg>` and waits until every port in `wait_ports` accepts.
    pub fn start(cfg_text: &str, wait_ports: &[u16]) -> Sluiced {
        Self::start_args(cfg_text, wait_ports, &[])
    }

    pub fn start_args(cfg_text: &str, wait_ports: &[u16], extra: &[&str]) -> Sluiced {
        Self::start_with(cfg_text, wait_ports, extra, |_| {})
    }

    /// As [`Sluiced::start_args`], with `prepare` run on the command before it is spawned (to add
    /// a `pre_exec` hook, say).
    pub fn start_with(cfg_text: &str, wait_ports: &[u16], extra: &[&str], prepare: impl FnOnce(&mut Command)) -> Sluiced {
        let dir = temp_dir("cfg");
        let cfg = dir.join("sluiced.cfg");
        std::fs::write(&cfg, cfg_text).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluiced"));
        cmd.args(["-d", "-f", cfg.to_str().unwrap()]).args(backend_override()).args(extra).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        prepare(&mut cmd);
        let child = cmd.spawn().expect("start sluiced");
        let mut s = Sluiced { child, cfg };
        for &p in wait_ports {
            s.wait_port(p);
        }
        s
    }

    fn wait_port(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut err = String::new();
                self.child.stderr.take().unwrap().read_to_string(&mut err).ok();
                panic!("sluiced exited with {status} before listening on {port}:\n{err}");
            }
            if is_listening(port) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("sluiced did not listen on port {port} within 10 s");
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill").args([&format!("-{sig}"), &self.pid().to_string()]).status().unwrap();
        assert!(st.success());
    }

    /// Waits for the process to exit, at most `within`; returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    pub fn stderr(&mut self) -> String {
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            e.read_to_string(&mut err).ok();
        }
        err
    }
}

impl Drop for Sluiced {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        if self.wait_exit(Duration::from_secs(3)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// True when some socket listens on `port` (read from /proc, so no connection is made: a probe
/// connection would reach the backends and disturb what a test counts).
pub fn is_listening(port: u16) -> bool {
    let needle = format!(":{port:04X} ");
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|f| {
        std::fs::read_to_string(f).unwrap_or_default().lines().skip(1).any(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.len() > 3 && format!("{} ", cols[1]).ends_with(&needle) && cols[3] == "0A"
        })
    })
}

/// A backend server running `handler` on each connection in its own thread; stops when dropped.
pub struct Backend {
    pub port: u16,
    pub accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Backend {
    pub fn start(handler: impl Fn(TcpStream) + Send + Sync + 'static) -> Backend {
        Self::start_on(TcpListener::bind("127.0.0.1:0").unwrap(), handler)
    }

    pub fn start_on(l: TcpListener, handler: impl Fn(TcpStream) + Send + Sync + 'static) -> Backend {
        let port = l.local_addr().unwrap().port();
        l.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let handler = Arc::new(handler);
        let (st, acc) = (stop.clone(), accepted.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((c, _)) => {
                        acc.fetch_add(1, Ordering::Relaxed);
                        c.set_nonblocking(false).unwrap();
                        let h = handler.clone();
                        std::thread::spawn(move || h(c));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Backend { port, accepted, stop, thread: Some(thread) }
    }

    /// Echoes everything until end of stream, then half-closes.
    pub fn echo() -> Backend {
        Self::start(|mut c| {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if c.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = c.shutdown(Shutdown::Write);
        })
    }

    /// Writes `name` and a newline, then waits for the client to close.
    pub fn named(name: &'static str) -> Backend {
        Self::start(move |mut c| {
            let _ = c.write_all(format!("{name}\n").as_bytes());
            let mut buf = [0u8; 1024];
            while matches!(c.read(&mut buf), Ok(n) if n > 0) {}
        })
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Descriptors process `pid` holds open.
pub fn open_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

/// Connects to the proxy and reads the first line a named backend writes.
pub fn which_server(port: u16) -> String {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    read_line(&mut c)
}

/// One line (without its `\n`) read a byte at a time, so nothing after it is consumed: a
/// [`Backend::named`] server's greeting.
pub fn read_line(c: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while let Ok(1) = c.read(&mut b) {
        if b[0] == b'\n' {
            break;
        }
        line.push(b[0]);
    }
    String::from_utf8(line).unwrap()
}

/// Reads until end of stream (with a timeout), returning what came.
pub fn read_to_end(c: &mut TcpStream, timeout: Duration) -> std::io::Result<Vec<u8>> {
    c.set_read_timeout(Some(timeout))?;
    let mut v = Vec::new();
    c.read_to_end(&mut v)?;
    Ok(v)
}

pub fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Deterministic pseudo-random bytes (xorshift), so a failure reproduces.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// What an HTTP test backend saw: every request head and body, in order, per connection.
#[derive(Default, Debug, Clone)]
pub struct Seen {
    pub connections: usize,
    /// Raw bytes of each request (head and body) as received.
    pub requests: Vec<Vec<u8>>,
}

/// Reads one HTTP/1.1 request from `c` (the head, then a Content-Length or chunked body), using
/// and leaving in `buf` what was read past it; the request's raw bytes, or `None` at end of stream
/// or on an error first.
pub fn read_request(c: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let mut tmp = [0u8; 65536];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        match c.read(&mut tmp) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len = head.lines().find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0))).unwrap_or(0);
    let chunked = head.lines().any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked"));
    let total = if chunked {
        loop {
            if let Some(end) = chunked_end(&buf[head_end..]) {
                break head_end + end;
            }
            match c.read(&mut tmp) {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        }
    } else {
        while buf.len() < head_end + len {
            match c.read(&mut tmp) {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        }
        head_end + len
    };
    Some(buf.drain(..total).collect())
}

/// An HTTP/1.1 backend that reads requests (Content-Length or chunked bodies), records their raw
/// bytes, and answers each with `respond(request_bytes)`; keeps the connection alive unless the
/// request says `connection: close`.
pub fn http_backend(respond: impl Fn(&[u8]) -> Vec<u8> + Send + Sync + 'static) -> (Backend, Arc<std::sync::Mutex<Seen>>) {
    let seen = Arc::new(std::sync::Mutex::new(Seen::default()));
    let s2 = seen.clone();
    let respond = Arc::new(respond);
    let b = Backend::start(move |mut c| {
        s2.lock().unwrap().connections += 1;
        let mut buf = Vec::new();
        loop {
            let Some(req) = read_request(&mut c, &mut buf) else { return };
            let head = String::from_utf8_lossy(&req[..req.windows(4).position(|w| w == b"\r\n\r\n").map_or(req.len(), |p| p + 4)]).to_ascii_lowercase();
            s2.lock().unwrap().requests.push(req.clone());
            let resp = respond(&req);
            if c.write_all(&resp).is_err() {
                return;
            }
            if head.contains("connection: close") {
                return;
            }
        }
    });
    (b, seen)
}

/// Where a chunked body that starts `b` ends (after the last chunk and the trailers), if it is
/// all there. Deliberately simple and independent of the proxy's own parser.
pub fn chunked_end(b: &[u8]) -> Option<usize> {
    let mut pos = 0;
    loop {
        let line_end = pos + b[pos..].windows(2).position(|w| w == b"\r\n")?;
        let size_text = String::from_utf8_lossy(&b[pos..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16).ok()?;
        pos = line_end + 2;
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let e = pos + b[pos..].windows(2).position(|w| w == b"\r\n")?;
                if e == pos {
                    return Some(pos + 2);
                }
                pos = e + 2;
            }
        }
        pos += size + 2;
        if pos > b.len() {
            return None;
        }
    }
}

/// `HTTP/1.1 200 OK` with `body`.
pub fn ok_response(body: &str) -> Vec<u8> {
    format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncontent-type: text/plain\r\n\r\n{body}", body.len()).into_bytes()
}

/// Reads one HTTP response (Content-Length, chunked, or until close) from `c`.
pub fn read_response(c: &mut TcpStream) -> (u16, String, Vec<u8>) {
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = Vec::new();
    let mut tmp = [0u8; 65536];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        match c.read(&mut tmp) {
            Ok(0) => panic!("connection closed before a response head: {:?}", String::from_utf8_lossy(&buf)),
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
            Err(e) => panic!("reading a response: {e} after {:?}", String::from_utf8_lossy(&buf)),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let lower = head.to_ascii_lowercase();
    let len = lower.lines().find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap()));
    let mut body: Vec<u8> = buf[head_end..].to_vec();
    if let Some(len) = len {
        while body.len() < len {
            let n = c.read(&mut tmp).unwrap();
            assert!(n > 0, "closed in the body");
            body.extend_from_slice(&tmp[..n]);
        }
        body.truncate(len);
    } else if lower.contains("transfer-encoding: chunked") {
        while !body.windows(5).any(|w| w == b"0\r\n\r\n") {
            let n = c.read(&mut tmp).unwrap();
            assert!(n > 0, "closed in a chunked body");
            body.extend_from_slice(&tmp[..n]);
        }
    } else if !(status == 204 || status == 304 || (100..200).contains(&status)) {
        let _ = c.read_to_end(&mut body);
    }
    (status, head, body)
}

/// A `mode http` frontend `f` on `port` with `frontend` lines, its default backend `b` with
/// `backend` lines, and short timeouts.
pub fn http_cfg(port: u16, frontend: &str, backend: &str) -> String {
    format!(
        "defaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n  timeout http-request 2s\nfrontend f\n  bind 127.0.0.1:{port}\n{frontend}\n  default_backend b\nbackend b\n{backend}\n"
    )
}

/// Sends `raw` on a new connection and reads one response.
pub fn http_request(port: u16, raw: &[u8]) -> (u16, String, Vec<u8>) {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(raw).unwrap();
    read_response(&mut c)
}
