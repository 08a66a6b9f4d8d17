//! Keep-alive connections after their first request. On io_uring a connection's later heads come
//! through a multishot receive that reads ahead into the worker's buffer ring; these tests pin
//! what must hold whichever way the bytes come: pipelined bursts and large bodies arrive whole
//! and in order, bytes a client sends before a `101` reach the tunnel first, a pooled server
//! connection that spoke out of turn is not reused (the pool looks at what was read ahead before it
//! peeks), `abortonclose` sees a keep-alive client leave, and a burst of heads that came while
//! the worker was stopped is all read (on io_uring, more completions than one `io_uring_enter`
//! runs). `scripts/test.sh` runs them on both backends.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::*;

/// Reads responses one after another from one connection, keeping what belongs to the next.
struct Responses {
    c: TcpStream,
    buf: Vec<u8>,
}

impl Responses {
    fn new(c: TcpStream) -> Responses {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Responses { c, buf: Vec::new() }
    }

    fn fill(&mut self) {
        let mut tmp = [0u8; 65536];
        let n = self.c.read(&mut tmp).expect("reading a response");
        assert!(n > 0, "closed before a whole response: {:?}", String::from_utf8_lossy(&self.buf));
        self.buf.extend_from_slice(&tmp[..n]);
    }

    /// The next response's status and body (Content-Length framing only).
    fn next(&mut self) -> (u16, Vec<u8>) {
        let head_end = loop {
            if let Some(p) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            self.fill();
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_ascii_lowercase();
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let len: usize = head.lines().find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap())).unwrap_or(0);
        while self.buf.len() < head_end + len {
            self.fill();
        }
        let body = self.buf[head_end..head_end + len].to_vec();
        self.buf.drain(..head_end + len);
        (status, body)
    }
}

/// A backend's read of one request head (no body); false when the connection ended first.
fn read_head(c: &mut TcpStream) -> bool {
    let (mut got, mut b) = (Vec::new(), [0u8; 4096]);
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match c.read(&mut b) {
            Ok(0) | Err(_) => return false,
            Ok(n) => got.extend_from_slice(&b[..n]),
        }
    }
    true
}

/// The request line's target and the body's length, as the backend answers them.
fn target_and_len(req: &[u8]) -> String {
    let line_end = req.windows(2).position(|w| w == b"\r\n").unwrap();
    let target = String::from_utf8_lossy(&req[..line_end]).split(' ').nth(1).unwrap().to_string();
    let head_end = req.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    format!("{target} {}", req.len() - head_end)
}

#[test]
fn a_keep_alive_client_gets_every_answer_in_order_through_bursts_and_large_bodies() {
    let (be, seen) = http_backend(|req| ok_response(&target_and_len(req)));
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, "", &format!("  server s {}", be.addr())), &[port]);
    let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut w = c.try_clone().unwrap();
    let mut r = Responses::new(c);
    w.write_all(b"GET /first HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    assert_eq!(r.next(), (200, b"/first 0".to_vec()));
    // Now waiting for its next head. A burst of pipelined requests, more than one 4 KiB buffer
    // of the ring in one write, each padded so heads straddle buffer boundaries.
    let mut burst = Vec::new();
    for i in 0..60 {
        burst.extend_from_slice(format!("GET /burst/{i} HTTP/1.1\r\nHost: h\r\nX-Pad: {}\r\n\r\n", "p".repeat(100 + 3 * i)).as_bytes());
    }
    assert!(burst.len() > 3 * 4096);
    w.write_all(&burst).unwrap();
    for i in 0..60 {
        assert_eq!(r.next(), (200, format!("/burst/{i} 0").into_bytes()), "answer {i} of the burst");
    }
    // A body much larger than what one connection may hold read ahead, sent in pieces.
    let body = random_bytes(300 * 1024, 7);
    w.write_all(format!("POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes()).unwrap();
    for piece in body.chunks(50 * 1024) {
        w.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(r.next(), (200, format!("/big {}", body.len()).into_bytes()));
    w.write_all(b"GET /last HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    assert_eq!(r.next(), (200, b"/last 0".to_vec()));
    let s = seen.lock().unwrap();
    assert_eq!(s.requests.len(), 63);
    let big = &s.requests[61];
    assert!(big.ends_with(&body), "the server got the large body intact");
}

#[test]
fn bytes_a_keep_alive_client_sends_before_the_101_reach_the_tunnel_first() {
    let be = Backend::start(|mut c| {
        let mut b = [0u8; 4096];
        // The first request, answered and kept alive; then the upgrade, answered late.
        if !read_head(&mut c) {
            return;
        }
        let _ = c.write_all(&ok_response("one"));
        if !read_head(&mut c) {
            return;
        }
        std::thread::sleep(Duration::from_millis(400));
        let _ = c.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
        loop {
            match c.read(&mut b) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if c.write_all(&b[..n]).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, "", &format!("  timeout tunnel 5s\n  server s {}", be.addr())), &[port]);
    let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut w = c.try_clone().unwrap();
    let mut r = Responses::new(c);
    w.write_all(b"GET /one HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    assert_eq!(r.next(), (200, b"one".to_vec()));
    w.write_all(b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: x\r\nSec-WebSocket-Version: 13\r\n\r\n")
        .unwrap();
    // Sent while the server has not answered yet: the proxy holds these bytes until the tunnel.
    std::thread::sleep(Duration::from_millis(100));
    w.write_all(b"early;").unwrap();
    let head_end = loop {
        if let Some(p) = r.buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        r.fill();
    };
    assert!(r.buf.starts_with(b"HTTP/1.1 101"), "{:?}", String::from_utf8_lossy(&r.buf));
    r.buf.drain(..head_end);
    w.write_all(b"late").unwrap();
    while r.buf.len() < 10 {
        r.fill();
    }
    assert_eq!(r.buf, b"early;late");
}

/// Two requests on one client connection, reusing one server connection, which then, idle, sends
/// bytes nobody asked for; the third request (`third`) must go to a new server connection.
fn out_of_turn_bytes_are_not_taken_for_an_answer(third: &[u8]) {
    let be = Backend::start(|mut c| {
        let mut b = [0u8; 4096];
        for i in 0..2 {
            if !read_head(&mut c) {
                return;
            }
            let _ = c.write_all(&ok_response(&format!("answer {i}")));
        }
        std::thread::sleep(Duration::from_millis(100));
        let _ = c.write_all(b"HTTP/1.1 500 Out Of Turn\r\ncontent-length: 4\r\n\r\njunk");
        let _ = c.read(&mut b);
    });
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, "", &format!("  server s {}", be.addr())), &[port]);
    let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut w = c.try_clone().unwrap();
    let mut r = Responses::new(c);
    for i in 0..2 {
        w.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        assert_eq!(r.next(), (200, format!("answer {i}").into_bytes()));
    }
    std::thread::sleep(Duration::from_millis(400));
    w.write_all(third).unwrap();
    assert_eq!(r.next(), (200, b"answer 0".to_vec()));
    assert_eq!(be.accepted.load(Ordering::Relaxed), 2);
}

#[test]
fn a_pooled_server_connection_that_spoke_out_of_turn_is_not_reused_for_a_post() {
    // Not retryable: the pool checks the connection before use.
    out_of_turn_bytes_are_not_taken_for_an_answer(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi");
}

#[test]
fn a_pooled_server_connection_that_spoke_out_of_turn_is_not_reused_for_a_get() {
    // Retryable, so taken without a system call: what the backend already knows is enough.
    out_of_turn_bytes_are_not_taken_for_an_answer(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
}

#[test]
fn abortonclose_sees_a_keep_alive_client_leave_during_its_second_request() {
    let aborted = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicUsize::new(0));
    let (a2, r2) = (aborted.clone(), requests.clone());
    let be = Backend::start(move |mut c| {
        let mut b = [0u8; 4096];
        if matches!(c.read(&mut b), Ok(0) | Err(_)) {
            return;
        }
        r2.fetch_add(1, Ordering::SeqCst);
        let _ = c.write_all(&ok_response("fast"));
        if matches!(c.read(&mut b), Ok(0) | Err(_)) {
            return;
        }
        r2.fetch_add(1, Ordering::SeqCst);
        // The second answer is late: record whether the proxy closed first.
        c.set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
        if let Ok(0) = c.read(&mut b) {
            a2.store(true, Ordering::SeqCst);
        }
        let _ = c.write_all(&ok_response("late"));
    });
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, "", &format!("  option abortonclose\n  server s {}", be.addr())), &[port]);
    let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut w = c.try_clone().unwrap();
    let mut r = Responses::new(c);
    w.write_all(b"GET /fast HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    assert_eq!(r.next(), (200, b"fast".to_vec()));
    w.write_all(b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    w.shutdown(std::net::Shutdown::Write).unwrap();
    let start = Instant::now();
    while !aborted.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(requests.load(Ordering::SeqCst), 2);
    assert!(aborted.load(Ordering::SeqCst), "the server connection stayed open after the client left");
}

#[test]
fn abortonclose_keeps_serving_a_keep_alive_client_that_pipelines_behind_a_slow_request() {
    let (be, seen) = http_backend(|req| {
        if req.starts_with(b"GET /slow ") {
            std::thread::sleep(Duration::from_millis(400));
        }
        ok_response(&target_and_len(req))
    });
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, "", &format!("  option abortonclose\n  server s {}", be.addr())), &[port]);
    let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut w = c.try_clone().unwrap();
    let mut r = Responses::new(c);
    w.write_all(b"GET /fast HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    assert_eq!(r.next(), (200, b"/fast 0".to_vec()));
    w.write_all(b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    // The next request comes while the slow one waits for its answer: it is not a close.
    std::thread::sleep(Duration::from_millis(100));
    w.write_all(b"GET /after HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    assert_eq!(r.next(), (200, b"/slow 0".to_vec()));
    assert_eq!(r.next(), (200, b"/after 0".to_vec()));
    assert_eq!(seen.lock().unwrap().requests.len(), 3);
}

#[test]
fn a_burst_of_heads_that_arrived_while_the_worker_was_stopped_is_all_answered() {
    // Answered by the proxy itself, so answering makes no new I/O event that would wake the
    // worker again: every head that came while it was stopped must be read in the turns after
    // SIGCONT (on io_uring, more completions than one io_uring_enter runs).
    let port = free_port();
    let cfg = format!(
        "defaults\n  mode http\n  timeout client 10s\n  timeout http-request 5s\n  timeout http-keep-alive 10s\nfrontend f\n  bind 127.0.0.1:{port}\n  http-request return status 200 content-type text/plain string ok\n"
    );
    let s = Sluiced::start(&cfg, &[port]);
    let mut conns: Vec<(TcpStream, Responses)> = (0..200)
        .map(|_| {
            let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
            (c.try_clone().unwrap(), Responses::new(c))
        })
        .collect();
    for (w, r) in conns.iter_mut() {
        w.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        assert_eq!(r.next(), (200, b"ok".to_vec()));
    }
    for round in 0..3 {
        s.signal("STOP");
        for (w, _) in conns.iter_mut() {
            w.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        }
        std::thread::sleep(Duration::from_millis(100));
        s.signal("CONT");
        for (i, (_, r)) in conns.iter_mut().enumerate() {
            r.c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            assert_eq!(r.next(), (200, b"ok".to_vec()), "round {round}, connection {i}");
        }
    }
}
