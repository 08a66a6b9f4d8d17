//! `tune.uring.send-zc`: on the io_uring backend, large HTTP body writes go out as zero-copy sends
//! (`IORING_OP_SEND_ZC`). On loopback the kernel copies the bytes anyway and says so in each
//! notification, so here `always` makes every large write a zero-copy send, and `auto` stops
//! after the first reports on each connection. The counters come from the Prometheus exporter.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::*;

/// A backend that answers every request with its own body.
fn echo_body_backend() -> Backend {
    let (b, _) = http_backend(|req| {
        let head_end = req.windows(4).position(|w| w == b"\r\n\r\n").map_or(req.len(), |p| p + 4);
        let body = &req[head_end..];
        let mut resp = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len()).into_bytes();
        resp.extend_from_slice(body);
        resp
    });
    b
}

struct Zc {
    http: u16,
    metrics: u16,
    d: Sluiced,
    _web: Backend,
}

fn start(global: &str, backend: &str) -> Zc {
    let web = echo_body_backend();
    let (http, metrics) = (free_port(), free_port());
    let cfg = format!(
        "global\n  nbthread 1\n{global}\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 2s\n  timeout server 10s\n\
         frontend f\n  bind 127.0.0.1:{http}\n  default_backend b\nbackend b\n  server w {}\n\
         frontend m\n  bind 127.0.0.1:{metrics}\n  http-request use-service prometheus-exporter\n",
        web.addr()
    );
    let d = Sluiced::start_args(&cfg, &[http, metrics], &["--io-backend", backend]);
    Zc { http, metrics, d, _web: web }
}

/// `(sends, copied)` from the exporter.
fn counts(port: u16) -> (u64, u64) {
    let (status, _, body) = http_request(port, b"GET /metrics HTTP/1.1\r\nhost: m\r\nconnection: close\r\n\r\n");
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    let value = |name: &str| -> u64 {
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok()).unwrap_or_else(|| panic!("no {name} in the scrape"))
    };
    (value("sluiced_process_zero_copy_sends_total"), value("sluiced_process_zero_copy_copied_total"))
}

/// POSTs `body` twice on one keep-alive connection and checks that each response echoes it.
fn round_trips(port: u16, body: &[u8]) {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    for _ in 0..2 {
        let mut req = format!("POST /up HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n", body.len()).into_bytes();
        req.extend_from_slice(body);
        let writer = {
            let mut w = c.try_clone().unwrap();
            std::thread::spawn(move || w.write_all(&req).unwrap())
        };
        let (status, _, got) = read_response(&mut c);
        writer.join().unwrap();
        assert_eq!(status, 200);
        assert!(got == body, "echoed {} bytes of {}, first difference at {:?}", got.len(), body.len(), got.iter().zip(body).position(|(a, b)| a != b));
    }
}

const BODY: usize = 4 << 20;

#[test]
fn send_zc_always_carries_large_bodies_both_ways_byte_for_byte() {
    let z = start("  tune.uring.send-zc always", "uring");
    round_trips(z.http, &random_bytes(BODY, 11));
    let (sends, copied) = counts(z.metrics);
    // 16 MB went through in writes of 16 KB or more: hundreds of them were zero-copy sends, and
    // loopback copied each one.
    assert!(sends >= 100, "{sends} zero-copy sends");
    assert_eq!(copied, sends, "loopback delivery copies every zero-copy send");
}

#[test]
fn send_zc_auto_stops_on_a_connection_once_the_kernel_reports_a_copy() {
    let z = start("  tune.uring.send-zc auto", "uring");
    round_trips(z.http, &random_bytes(BODY, 12));
    let (sends, copied) = counts(z.metrics);
    // Two connections (client and server side), each stopping after the first report; sends
    // started before that report came are counted too.
    assert!((1..=8).contains(&sends), "{sends} zero-copy sends under auto");
    assert_eq!(copied, sends);
}

#[test]
fn send_zc_min_keeps_smaller_body_writes_plain() {
    let z = start("  tune.uring.send-zc always\n  tune.uring.send-zc-min 8m", "uring");
    round_trips(z.http, &random_bytes(BODY, 13));
    assert_eq!(counts(z.metrics), (0, 0));
}

#[test]
fn send_zc_off_by_default_sends_plainly() {
    let z = start("", "uring");
    round_trips(z.http, &random_bytes(BODY, 14));
    assert_eq!(counts(z.metrics), (0, 0));
}

#[test]
fn send_zc_on_the_epoll_backend_says_so_once_and_sends_plainly() {
    let mut z = start("  tune.uring.send-zc always", "epoll");
    round_trips(z.http, &random_bytes(BODY, 15));
    assert_eq!(counts(z.metrics), (0, 0));
    z.d.signal("TERM");
    z.d.wait_exit(Duration::from_secs(10));
    let err = z.d.stderr();
    assert_eq!(err.matches("tune.uring.send-zc: the workers run on epoll").count(), 1, "{err}");
}

/// A client that stops reading a large response: the zero-copy send in flight waits for room
/// until `timeout client` drops it. The daemon lets go of the connection, keeps the buffer until
/// the kernel's notification, and goes on serving.
#[test]
fn send_zc_abandoned_by_a_client_that_stops_reading_leaves_the_daemon_serving() {
    let z = start("  tune.uring.send-zc always", "uring");
    let body = random_bytes(16 << 20, 16);
    let stuck = TcpStream::connect(("127.0.0.1", z.http)).unwrap();
    let mut req = format!("POST /up HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n", body.len()).into_bytes();
    req.extend_from_slice(&body);
    // Written from a thread: the proxy stops reading the request once the response, which it
    // cannot deliver, fills the sockets.
    let writer = {
        let mut w = stuck.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = w.write_all(&req);
        })
    };
    // Never read: the response stalls, and `timeout client` (2 s) ends the session.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        assert!(Instant::now() < deadline, "the stalled session was never closed");
        std::thread::sleep(Duration::from_millis(200));
        let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap();
        let port = format!(":{:04X} ", z.http);
        // Connections to the frontend still established (state 01), other than the listener.
        let open = tcp
            .lines()
            .filter(|l| {
                l.split_whitespace().nth(1).is_some_and(|local| (local.to_string() + " ").ends_with(&port)) && l.split_whitespace().nth(3) == Some("01")
            })
            .count();
        if open == 0 {
            break;
        }
    }
    drop(stuck);
    let _ = writer.join();
    round_trips(z.http, &random_bytes(1 << 20, 17));
    let (sends, _) = counts(z.metrics);
    assert!(sends > 0);
    assert!(is_listening(z.http));
}
