//! `show sess`, `shutdown session`, `shutdown sessions server` and `show errors` on the stats
//! socket: the real daemon with a TCP and an HTTP frontend, real clients and servers, and the
//! commands sent through a real unix socket.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::*;

struct Setup {
    _d: Sluiced,
    _servers: Vec<Backend>,
    /// The `mode tcp` frontend `ft` (backend `bt`, server `e`, an echo server).
    tcp: u16,
    /// The `mode http` frontend `fh` (backend `bh`, server `h`; `/slow` is answered after 3 s).
    http: u16,
    /// The `mode http` frontend `fx` (backend `bx`, server `x`, whose responses are invalid: a
    /// space in a header name, or bad chunked framing for `/chunked`).
    bad: u16,
    /// The `mode http` frontend `fs` (backend `bh`) with the stats page and its admin form on
    /// `/st`: its request bodies are read before the rules run.
    page: u16,
    admin: PathBuf,
    user: PathBuf,
}

fn setup() -> Setup {
    let echo = Backend::echo();
    let (h, _) = http_backend(|req| {
        if req.starts_with(b"GET /slow") {
            std::thread::sleep(Duration::from_secs(3));
        }
        ok_response("hi")
    });
    let (x, _) = http_backend(|req| {
        if req.starts_with(b"GET /chunked") {
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\nabcd\r\nzz\r\n".to_vec()
        } else {
            b"HTTP/1.1 200 OK\r\nBad Header: x\r\ncontent-length: 0\r\n\r\n".to_vec()
        }
    });
    let (tcp, http, bad, page) = (free_port(), free_port(), free_port(), free_port());
    let dir = temp_dir("sessions");
    let (admin, user) = (dir.join("admin.sock"), dir.join("user.sock"));
    let cfg = format!(
        "global\n  nbthread 2\n  stats socket {} level admin\n  stats socket {} level user\n\
         defaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n  timeout http-request 5s\n\
         frontend ft\n  mode tcp\n  bind 127.0.0.1:{tcp}\n  default_backend bt\n\
         backend bt\n  mode tcp\n  server e {}\n\
         frontend fh\n  bind 127.0.0.1:{http}\n  default_backend bh\n\
         backend bh\n  server h {}\n\
         frontend fx\n  bind 127.0.0.1:{bad}\n  default_backend bx\n\
         backend bx\n  server x {}\n\
         frontend fs\n  bind 127.0.0.1:{page}\n  stats uri /st\n  stats admin if {{ src 127.0.0.1 }}\n  default_backend bh\n",
        admin.display(),
        user.display(),
        echo.addr(),
        h.addr(),
        x.addr()
    );
    let d = Sluiced::start(&cfg, &[tcp, http, bad, page]);
    Setup { _d: d, _servers: vec![echo, h, x], tcp, http, bad, page, admin, user }
}

/// A TCP client through `ft` whose round trip to the echo server completed.
fn tcp_client(port: u16) -> TcpStream {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"ping").unwrap();
    let mut b = [0u8; 4];
    c.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"ping");
    c
}

/// The `show sess` line of the session whose client is `c`, waiting up to 5 s for one that
/// contains `want`.
fn sess_line(admin: &Path, c: &TcpStream, want: &str) -> String {
    let src = format!(" src={} ", c.local_addr().unwrap());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = ask(admin, "show sess");
        if let Some(l) = out.lines().find(|l| l.contains(&src) && l.contains(want)) {
            return l.to_owned();
        }
        assert!(Instant::now() < deadline, "no session line with {src} and {want} in:\n{out}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn id_of(line: &str) -> &str {
    line.split(':').next().unwrap()
}

/// True when `c` reads end of stream (or a reset) within 3 s.
fn closed(c: &mut TcpStream) -> bool {
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut b = [0u8; 64];
    match c.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => matches!(e.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe),
    }
}

#[test]
fn show_sess_lists_open_tcp_and_http_sessions_with_frontend_backend_server_and_source() {
    let s = setup();
    let t = tcp_client(s.tcp);
    let mut h = TcpStream::connect(("127.0.0.1", s.http)).unwrap();
    h.write_all(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();

    let tl = sess_line(&s.admin, &t, "fe=ft");
    assert!(tl.starts_with("0x"), "{tl}");
    assert!(tl.contains(&format!(": proto=tcpv4 src={} fe=ft be=bt srv=e ts=00 epoch=0x", t.local_addr().unwrap())), "{tl}");
    assert!(tl.contains(" calls=1"), "{tl}");
    // The HTTP request waits for its answer: its transaction is on `bh`/`h`.
    let hl = sess_line(&s.admin, &h, "srv=h");
    assert!(hl.contains(&format!(": proto=tcpv4 src={} fe=fh be=bh srv=h ts=00 ", h.local_addr().unwrap())), "{hl}");

    // One session in HAProxy's long form.
    let one = ask(&s.admin, &format!("show sess {}", id_of(&tl)));
    assert!(one.starts_with(&format!("{}: [", id_of(&tl))), "{one}");
    assert!(one.contains("] id=") && one.contains(&format!(" proto=tcpv4 source={}\n", t.local_addr().unwrap())), "{one}");
    assert!(one.contains(&format!("  frontend=ft (id=1 mode=tcp), listener=? (id=1) addr=127.0.0.1:{}\n", s.tcp)), "{one}");
    assert!(one.contains("  backend=bt (id=2 mode=tcp)\n"), "{one}");
    assert!(one.contains(&format!("  server=e (id=1) addr={}\n", s._servers[0].addr())), "{one}");
    assert_eq!(ask(&s.admin, "show sess 0x1"), "Session not found.\n\n");

    // `show sess` needs the operator level, as in HAProxy.
    assert_eq!(ask(&s.user, "show sess"), "Permission denied\n\n");

    // A closed session leaves the list.
    drop(t);
    let deadline = Instant::now() + Duration::from_secs(5);
    while ask(&s.admin, "show sess").contains("fe=ft") {
        assert!(Instant::now() < deadline, "the closed TCP session is still listed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn shutdown_session_closes_that_clients_connection_and_another_stays_open() {
    let s = setup();
    let mut a = tcp_client(s.tcp);
    let mut b = tcp_client(s.tcp);
    let la = sess_line(&s.admin, &a, "fe=ft");
    sess_line(&s.admin, &b, "fe=ft");

    assert_eq!(ask(&s.user, &format!("shutdown session {}", id_of(&la))), "Permission denied\n\n");
    assert_eq!(ask(&s.admin, "shutdown session"), "Session pointer expected (use 'show sess').\n\n");
    assert_eq!(ask(&s.admin, "shutdown session 0x1"), "No such session (use 'show sess').\n\n");
    assert_eq!(ask(&s.admin, &format!("shutdown session {}", id_of(&la))), "\n");

    assert!(closed(&mut a), "the killed session's client reads end of stream");
    b.write_all(b"pong").unwrap();
    let mut buf = [0u8; 4];
    b.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"pong", "the other session still forwards");
    let deadline = Instant::now() + Duration::from_secs(5);
    while ask(&s.admin, "show sess").contains(id_of(&la)) {
        assert!(Instant::now() < deadline, "the killed session is still listed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn shutdown_session_closes_an_idle_keep_alive_http_client() {
    let s = setup();
    let mut h = TcpStream::connect(("127.0.0.1", s.http)).unwrap();
    h.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    let (status, _, body) = read_response(&mut h);
    assert_eq!((status, &body[..]), (200, &b"hi"[..]));
    // Between transactions the session has no backend nor server.
    let line = sess_line(&s.admin, &h, "be=<NONE> srv=<none>");
    assert!(line.contains(" calls=1"), "{line}");
    assert_eq!(ask(&s.admin, &format!("shutdown session {}", id_of(&line))), "\n");
    assert!(closed(&mut h), "the killed HTTP client reads end of stream");
}

#[test]
fn shutdown_sessions_server_closes_the_sessions_on_that_server_only() {
    let s = setup();
    let mut t = tcp_client(s.tcp);
    let mut h = TcpStream::connect(("127.0.0.1", s.http)).unwrap();
    h.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut h).0, 200);
    sess_line(&s.admin, &t, "srv=e");

    assert_eq!(ask(&s.admin, "shutdown sessions server bt/nope"), "No such server.\n\n");
    assert_eq!(ask(&s.admin, "shutdown sessions server bt/e"), "\n");
    assert!(closed(&mut t), "the session on bt/e is closed");
    h.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut h).0, 200, "the HTTP session on bh/h goes on");
}

#[test]
fn show_errors_reports_a_request_with_a_space_in_a_header_name() {
    let s = setup();
    assert!(ask(&s.admin, "show errors").ends_with("] : 0\n\n"));
    let mut c = TcpStream::connect(("127.0.0.1", s.http)).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut c).0, 400);

    let out = ask(&s.admin, "show errors");
    assert!(out.starts_with("Total events captured on ["), "{out}");
    assert!(out.contains("] : 1\n \n["), "{out}");
    assert!(
        out.contains(&format!("] frontend fh (#3): invalid request\n  backend <NONE> (#-1), server <NONE> (#-1), event #0, src {}\n", c.local_addr().unwrap())),
        "{out}"
    );
    assert!(out.contains("  len 42, wraps at 16384, error at position 28\n"), "{out}");
    assert!(out.contains("  reason: space before colon\n"), "{out}");
    assert!(out.contains("  00000  GET / HTTP/1.1\\r\\n\n  00016  Host: a\\r\\n\n  00025  Bad Header: x\\r\\n\n  00040  \\r\\n\n"), "{out}");
    // Filters: by proxy name, by id, and by direction.
    assert!(ask(&s.admin, "show errors fh").contains("invalid request"));
    assert!(ask(&s.admin, "show errors 3 request").contains("invalid request"));
    assert!(!ask(&s.admin, "show errors -1 response").contains("invalid request"));
    assert!(!ask(&s.admin, "show errors ft").contains("invalid request"));
    assert_eq!(ask(&s.admin, "show errors nope"), "No such proxy.\n\n");
    assert_eq!(ask(&s.user, "show errors"), "Permission denied\n\n");
}

#[test]
fn show_errors_reports_a_bad_content_length_at_its_value() {
    let s = setup();
    let mut c = TcpStream::connect(("127.0.0.1", s.http)).unwrap();
    c.write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12x\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut c).0, 400);
    let out = ask(&s.admin, "show errors fh");
    assert!(out.contains("error at position 42\n  reason: invalid Content-Length\n"), "{out}");
    assert!(out.contains("  00026  Content-Length: 12x\\r\\n\n"), "{out}");
}

#[test]
fn show_errors_reports_an_invalid_response_from_a_server() {
    let s = setup();
    let mut c = TcpStream::connect(("127.0.0.1", s.bad)).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut c).0, 502);

    let out = ask(&s.admin, "show errors");
    assert!(
        out.contains(&format!("] backend bx (#6): invalid response\n  frontend fx (#5), server x (#1), event #0, src {}\n", c.local_addr().unwrap())),
        "{out}"
    );
    assert!(out.contains("error at position 20\n  reason: space before colon\n"), "{out}");
    assert!(out.contains("  00000  HTTP/1.1 200 OK\\r\\n\n  00017  Bad Header: x\\r\\n\n"), "{out}");
    assert!(!ask(&s.admin, "show errors -1 request").contains("invalid response"));
    assert!(ask(&s.admin, "show errors fx response").contains("invalid response"), "the frontend's id finds the response it received");
}

#[test]
fn show_errors_reports_bad_chunked_framing_in_a_request_body() {
    let s = setup();
    let mut c = TcpStream::connect(("127.0.0.1", s.http)).unwrap();
    c.write_all(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\nzz\r\n").unwrap();
    assert_eq!(read_response(&mut c).0, 400);
    let out = ask(&s.admin, "show errors fh request");
    assert!(out.contains("] frontend fh (#3): invalid request\n  backend bh (#4), server h (#1), event #0, "), "{out}");
    assert!(out.contains("error at position 9\n  reason: invalid chunk size\n"), "{out}");
    assert!(out.contains("  00000  4\\r\\n\n  00003  abcd\\r\\n\n  00009  zz\\r\\n\n"), "{out}");

    // A frontend that reads the body before its rules (here for the stats admin form) refuses it
    // before choosing a backend: the dump has the head too.
    let mut c = TcpStream::connect(("127.0.0.1", s.page)).unwrap();
    c.write_all(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\nzz\r\n").unwrap();
    assert_eq!(read_response(&mut c).0, 400);
    let out = ask(&s.admin, "show errors fs");
    assert!(out.contains("] frontend fs (#7): invalid request\n  backend <NONE> (#-1), server <NONE> (#-1), event #1, "), "{out}");
    assert!(out.contains("  len 69, wraps at 16384, error at position 65\n  reason: invalid chunk size\n"), "{out}");
    assert!(out.contains("  00056  4\\r\\n\n  00059  abcd\\r\\n\n  00065  zz\\r\\n\n"), "{out}");
}

#[test]
fn show_errors_reports_bad_chunked_framing_in_a_response_body() {
    let s = setup();
    let mut c = TcpStream::connect(("127.0.0.1", s.bad)).unwrap();
    c.write_all(b"GET /chunked HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    // The head went out before the body broke: the connection just closes.
    let got = read_to_end(&mut c, Duration::from_secs(5)).unwrap();
    assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"), "{:?}", String::from_utf8_lossy(&got));
    let out = ask(&s.admin, "show errors bx response");
    assert!(out.contains("] backend bx (#6): invalid response\n  frontend fx (#5), server x (#1), event #0, "), "{out}");
    assert!(out.contains("error at position 9\n  reason: invalid chunk size\n"), "{out}");
}

#[test]
fn the_stats_pages_kill_sessions_action_closes_the_servers_sessions() {
    let s = setup();
    let mut t = tcp_client(s.tcp);
    sess_line(&s.admin, &t, "srv=e");
    let form = "s=e&action=shutdown&b=bt";
    let req = format!("POST /st HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}", form.len());
    let (status, head, _) = http_request(s.page, req.as_bytes());
    assert_eq!(status, 303, "{head}");
    assert!(head.to_ascii_lowercase().contains("st=done"), "{head}");
    assert!(closed(&mut t), "the session on bt/e is closed");
}

#[test]
fn a_killed_session_is_logged_with_termination_state_k() {
    let log = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    log.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let echo = Backend::echo();
    let (h, _) = http_backend(|_| {
        std::thread::sleep(Duration::from_secs(3));
        ok_response("late")
    });
    let (tcp, http) = (free_port(), free_port());
    let admin = temp_dir("sessions-log").join("admin.sock");
    let cfg = format!(
        "global\n  stats socket {} level admin\n  log 127.0.0.1:{} local0\n\
         defaults\n  log global\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n\
         frontend ft\n  mode tcp\n  option tcplog\n  bind 127.0.0.1:{tcp}\n  default_backend bt\n\
         backend bt\n  mode tcp\n  server e {}\n\
         frontend fh\n  mode http\n  option httplog\n  bind 127.0.0.1:{http}\n  default_backend bh\n\
         backend bh\n  mode http\n  server h {}\n",
        admin.display(),
        log.local_addr().unwrap().port(),
        echo.addr(),
        h.addr()
    );
    let _d = Sluiced::start(&cfg, &[tcp, http]);
    // `KD` in tcplog, four characters in httplog.
    let state = regex::Regex::new(r" K[A-Z-](?:[A-Z-]{2})? ").unwrap();
    let next_line = || {
        let mut buf = [0u8; 65536];
        let n = log.recv(&mut buf).expect("a log line within 5 s");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };

    let mut t = tcp_client(tcp);
    let line = sess_line(&admin, &t, "fe=ft");
    assert_eq!(ask(&admin, &format!("shutdown session {}", id_of(&line))), "\n");
    assert!(closed(&mut t));
    let l = next_line();
    assert!(l.contains(" ft bt/e ") && state.is_match(&l), "{l}");

    let mut c = TcpStream::connect(("127.0.0.1", http)).unwrap();
    c.write_all(b"GET /late HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    let line = sess_line(&admin, &c, "srv=h");
    assert_eq!(ask(&admin, &format!("shutdown session {}", id_of(&line))), "\n");
    assert!(closed(&mut c), "the client does not wait for the server's answer");
    let l = next_line();
    assert!(l.contains(" fh bh/h ") && l.contains("\"GET /late HTTP/1.1\"") && state.is_match(&l), "{l}");
}
