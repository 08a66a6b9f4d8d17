//! Clients and servers that vanish at any point of an exchange: a reset in the middle of a head,
//! of an upload, of a download (a zero-copy send in flight, on the ring), with requests pipelined
//! behind a keep-alive connection's armed multishot receive, or a server that resets before or
//! during its answer. Hundreds of such endings run at once on both I/O backends. Afterwards the
//! daemon must still be up and answering, hold no connection (`show info`), hold no more
//! descriptors than before, and have logged no panic; and while it ran, every exchange that did
//! complete must have been answered correctly, byte for byte.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::*;

const BIG: usize = 1 << 20;

/// Resets `c`: a close with a zero linger time sends RST instead of FIN.
fn reset(c: TcpStream) {
    let _ = socket2::SockRef::from(&c).set_linger(Some(Duration::ZERO));
    drop(c);
}

/// An HTTP/1.1 server that keeps connections alive and answers by path: `/small` with `small`,
/// `/big` with 1 MiB, `/cut` with a head promising 1 MiB and then 64 KiB of it before a reset,
/// `/refuse` with a reset and nothing else. Request bodies are read and dropped.
fn server() -> Backend {
    let big = random_bytes(BIG, 5);
    Backend::start(move |mut c| {
        let mut buf = Vec::new();
        loop {
            let Some(req) = read_request(&mut c, &mut buf) else { return };
            let path = String::from_utf8_lossy(&req).split(' ').nth(1).unwrap_or("").to_owned();
            let sent = match path.as_str() {
                "/small" => c.write_all(&ok_response("small")),
                "/big" => c.write_all(format!("HTTP/1.1 200 OK\r\ncontent-length: {BIG}\r\n\r\n").as_bytes()).and_then(|_| c.write_all(&big)),
                "/cut" => {
                    let _ = c.write_all(format!("HTTP/1.1 200 OK\r\ncontent-length: {BIG}\r\n\r\n").as_bytes()).and_then(|_| c.write_all(&big[..64 * 1024]));
                    return reset(c);
                }
                _ => return reset(c),
            };
            if sent.is_err() {
                return;
            }
        }
    })
}

/// A small random number generator (xorshift), seeded per connection so a failure replays.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Reads and drops up to `n` bytes, stopping early at end of stream or an error.
fn read_some(c: &mut TcpStream, n: usize) {
    let mut tmp = vec![0u8; 16 * 1024];
    let mut got = 0;
    while got < n {
        match c.read(&mut tmp[..(n - got).min(16 * 1024)]) {
            Ok(0) | Err(_) => return,
            Ok(k) => got += k,
        }
    }
}

/// One connection's ending, chosen by `kind`. Panics (failing the test) when an exchange that
/// completed got a wrong answer.
fn one_connection(port: u16, kind: u64, rng: &mut Rng, big: &[u8]) {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    match kind {
        // Half a head, then gone.
        0 => {
            let head = b"GET /small HTTP/1.1\r\nhost: x\r\nuser-agent: abrupt\r\n\r\n";
            let _ = c.write_all(&head[..1 + rng.below(head.len() as u64 - 2) as usize]);
            std::thread::sleep(Duration::from_millis(rng.below(20)));
            reset(c);
        }
        // A large download abandoned part way (on the ring under `send-zc always`, a zero-copy
        // send may be in flight).
        1 => {
            c.write_all(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
            read_some(&mut c, rng.below(BIG as u64 / 2) as usize);
            reset(c);
        }
        // An upload abandoned part way.
        2 => {
            let body = random_bytes(512 * 1024, 9);
            let _ = c.write_all(b"POST /small HTTP/1.1\r\nhost: x\r\ncontent-length: 524288\r\n\r\n");
            let _ = c.write_all(&body[..rng.below(body.len() as u64) as usize]);
            reset(c);
        }
        // Keep-alive: two answered requests (the wait for the third arms the multishot receive on
        // the ring), then two pipelined ones and a reset before or while they are answered.
        3 => {
            for _ in 0..2 {
                c.write_all(b"GET /small HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
                let (status, _, body) = read_response(&mut c);
                assert_eq!((status, body.as_slice()), (200, &b"small"[..]));
            }
            std::thread::sleep(Duration::from_millis(rng.below(5)));
            let _ = c.write_all(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\nGET /small HTTP/1.1\r\nhost: x\r\n\r\n");
            read_some(&mut c, rng.below(BIG as u64) as usize);
            reset(c);
        }
        // The server resets part way through its answer: the client gets fewer bytes than the
        // head promised, then the connection ends; never more, never a second answer.
        4 => {
            c.write_all(b"GET /cut HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
            let mut got = Vec::new();
            let _ = c.read_to_end(&mut got);
            let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").expect("the head came before the reset") + 4;
            assert!(got.starts_with(b"HTTP/1.1 200"), "{:?}", String::from_utf8_lossy(&got[..head_end]));
            assert!(got.len() - head_end < BIG, "{} body bytes of a cut answer", got.len() - head_end);
        }
        // The server resets before answering: 502, as HAProxy gives.
        5 => {
            c.write_all(b"GET /refuse HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
            assert_eq!(read_response(&mut c).0, 502);
        }
        // A complete large download, checked byte for byte.
        6 => {
            c.write_all(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
            let (status, _, body) = read_response(&mut c);
            assert_eq!(status, 200);
            assert!(body == big, "a 1 MiB answer came back different ({} bytes)", body.len());
        }
        // A complete upload, then the answer.
        _ => {
            let body = random_bytes(256 * 1024, 10);
            c.write_all(b"POST /small HTTP/1.1\r\nhost: x\r\ncontent-length: 262144\r\n\r\n").unwrap();
            c.write_all(&body).unwrap();
            let (status, _, got) = read_response(&mut c);
            assert_eq!((status, got.as_slice()), (200, &b"small"[..]));
        }
    }
}

fn curr_conns(sock: &std::path::Path) -> u64 {
    ask(sock, "show info").lines().find_map(|l| l.strip_prefix("CurrConns: ")?.trim().parse().ok()).expect("a CurrConns line")
}

/// Zero-copy sends the daemon made, from its Prometheus exporter on `port`.
fn zero_copy_sends(port: u16) -> u64 {
    let (_, _, body) = http_request(port, b"GET /metrics HTTP/1.1\r\nhost: m\r\nconnection: close\r\n\r\n");
    let text = String::from_utf8(body).unwrap();
    text.lines().find_map(|l| l.strip_prefix("sluiced_process_zero_copy_sends_total ")?.parse().ok()).expect("the zero-copy counter in the scrape")
}

fn storm(backend: &str, global_extra: &str) {
    let web = server();
    let (port, metrics) = (free_port(), free_port());
    let sock = temp_dir("abrupt").join("stats.sock");
    // `http-reuse never`: a server connection ends with its client's, so that the descriptor count
    // after the storm says whether anything was kept.
    let cfg = format!(
        "global\n  nbthread 1\n  stats socket {} level admin\n{global_extra}\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  \
         timeout server 10s\n  timeout http-request 5s\nfrontend f\n  bind 127.0.0.1:{port}\n  default_backend b\nbackend b\n  http-reuse never\n  \
         server w {}\nfrontend m\n  bind 127.0.0.1:{metrics}\n  http-request use-service prometheus-exporter\n",
        sock.display(),
        web.addr()
    );
    let mut d = Sluiced::start_args(&cfg, &[port, metrics], &["--io-backend", backend]);
    let (status, _, body) = http_request(port, b"GET /small HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    assert_eq!((status, body.as_slice()), (200, &b"small"[..]));
    std::thread::sleep(Duration::from_millis(200));
    let before = open_fds(d.pid());

    // 8 clients at once, 40 connections each, every kind of ending mixed.
    let big = std::sync::Arc::new(random_bytes(BIG, 5));
    let clients: Vec<_> = (0..8u64)
        .map(|t| {
            let big = big.clone();
            std::thread::spawn(move || {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((t + 1) * 0x1000_0001));
                for _ in 0..40 {
                    let kind = rng.below(8);
                    one_connection(port, kind, &mut rng, &big);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("a client saw a wrong answer (its panic message is above)");
    }

    let (status, _, body) = http_request(port, b"GET /big HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    assert!(status == 200 && body == *big, "after the storm: status {status}, {} bytes", body.len());
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut conns, mut fds) = (curr_conns(&sock), open_fds(d.pid()));
    while (conns > 0 || fds > before) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        (conns, fds) = (curr_conns(&sock), open_fds(d.pid()));
    }
    assert_eq!(conns, 0, "connections still open after the storm");
    assert!(fds <= before, "descriptors: {before} before the storm, {fds} after");
    if global_extra.contains("send-zc always") {
        // The downloads went out as zero-copy sends, so the abandoned ones had sends in flight.
        assert!(zero_copy_sends(metrics) > 100, "{} zero-copy sends", zero_copy_sends(metrics));
    }
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(10)), Some(0));
    let err = d.stderr();
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn abrupt_endings_on_the_ring_with_zero_copy_sends_leave_nothing_held_and_the_daemon_serving() {
    storm("uring", "  tune.uring.send-zc always");
}

#[test]
fn abrupt_endings_on_the_ring_leave_nothing_held_and_the_daemon_serving() {
    storm("uring", "");
}

#[test]
fn abrupt_endings_on_epoll_leave_nothing_held_and_the_daemon_serving() {
    storm("epoll", "");
}
