//! Health checks: servers marked DOWN and UP by connect, HTTP and tcp-check probes, the log lines
//! that say so, backups taking over, `track` and `slowstart`. Intervals are 100ms so each test
//! takes about a second; every wait is bounded.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::*;

fn cfg(port: u16, backend: &str) -> String {
    format!(
        "global\n  nbthread 1\ndefaults\n  mode tcp\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\nlisten l\n  bind 127.0.0.1:{port}\n{backend}\n"
    )
}

/// Waits (at most 5 s) until 8 connections in a row land on `want`.
fn settles_on(port: u16, want: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if (0..8).all(|_| which_server(port) == want) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Waits (at most 5 s) until some connection lands on `want`.
fn reaches(port: u16, want: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if (0..4).any(|_| which_server(port) == want) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Servers `a` and `b` of `listen l` on `port`, each checked every 100ms on its own check port,
/// after the `check` lines (`option httpchk`...).
fn start_pair(port: u16, check: &str, a: (&Backend, u16), b: (&Backend, u16)) -> Sluiced {
    let servers = format!("  server a {} check inter 100ms port {}\n  server b {} check inter 100ms port {}", a.0.addr(), a.1, b.0.addr(), b.1);
    Sluiced::start(&cfg(port, &format!("{check}\n{servers}")), &[port])
}

fn stop(mut s: Sluiced) -> String {
    s.signal("TERM");
    s.wait_exit(Duration::from_secs(5));
    s.stderr()
}

/// A server for checks only: answers each connection's first read with `respond(request)`.
fn responder(respond: impl Fn(&[u8]) -> Vec<u8> + Send + Sync + 'static) -> (Backend, Arc<Mutex<Vec<Vec<u8>>>>) {
    responder_on(TcpListener::bind("127.0.0.1:0").unwrap(), respond)
}

fn responder_on(l: TcpListener, respond: impl Fn(&[u8]) -> Vec<u8> + Send + Sync + 'static) -> (Backend, Arc<Mutex<Vec<Vec<u8>>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let b = Backend::start_on(l, move |mut c: TcpStream| {
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = vec![0u8; 4096];
        let mut got = Vec::new();
        while !got.windows(2).any(|w| w == b"\r\n") {
            match c.read(&mut buf) {
                Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                _ => return,
            }
        }
        s2.lock().unwrap().push(got.clone());
        let _ = c.write_all(&respond(&got));
    });
    (b, seen)
}

#[test]
fn server_on_a_closed_port_goes_down_and_traffic_goes_to_the_other() {
    let a = Backend::named("a");
    let (dead, _dead_guard) = dead_port();
    let port = free_port();
    let s = Sluiced::start(
        &cfg(port, &format!("  balance roundrobin\n  server a {} check inter 100ms\n  server dead 127.0.0.1:{dead} check inter 100ms", a.addr())),
        &[port],
    );
    assert!(settles_on(port, "a"));
    let err = stop(s);
    assert!(err.contains("Server l/dead is DOWN, reason: Layer4 connection problem, info: \"Connection refused\", check duration: "), "{err}");
    // A client connection may be retrying towards `dead` when it goes down: it counts as active.
    assert!(err.contains("1 active and 0 backup servers left. "), "{err}");
    assert!(err.contains(" sessions active, 0 requeued, 0 remaining in queue."), "{err}");
    assert!(!err.contains("Server l/a is DOWN"), "{err}");
}

#[test]
fn server_that_comes_back_goes_up_after_rise_checks() {
    let a = Backend::named("a");
    let pb = free_port();
    let port = free_port();
    let s = Sluiced::start(
        &cfg(port, &format!("  balance roundrobin\n  server a {} check inter 100ms\n  server b 127.0.0.1:{pb} check inter 100ms rise 3", a.addr())),
        &[port],
    );
    assert!(settles_on(port, "a"));
    let b = Backend::start_on(TcpListener::bind(("127.0.0.1", pb)).unwrap(), |mut c| {
        let _ = c.write_all(b"b\n");
        let mut buf = [0u8; 64];
        while matches!(c.read(&mut buf), Ok(n) if n > 0) {}
    });
    assert!(reaches(port, "b"));
    drop(b);
    let err = stop(s);
    assert!(err.contains("Server l/b is UP, reason: Layer4 check passed, check duration: "), "{err}");
    assert!(err.contains("2 active and 0 backup servers online. 0 sessions requeued, 0 total in queue."), "{err}");
}

#[test]
fn httpchk_503_marks_down_with_the_reason_line() {
    let (a, b) = (Backend::named("a"), Backend::named("b"));
    let (ok, seen) = responder(|_| b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n".to_vec());
    let (sick, _) = responder(|_| b"HTTP/1.0 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n".to_vec());
    let port = free_port();
    let s = start_pair(port, "  option httpchk GET /health", (&a, ok.port), (&b, sick.port));
    assert!(settles_on(port, "a"));
    let err = stop(s);
    assert!(err.contains("Server l/b is DOWN, reason: Layer7 wrong status, code: 503, info: \"Service Unavailable\", check duration: "), "{err}");
    assert!(err.contains("[ALERT]"), "{err}");
    let first = String::from_utf8_lossy(&seen.lock().unwrap()[0]).into_owned();
    assert!(first.starts_with("GET /health HTTP/1.0\r\n"), "{first}");
}

#[test]
fn http_check_send_and_expect_string() {
    let (a, b) = (Backend::named("a"), Backend::named("b"));
    let (ready, seen) = responder(|_| b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nready".to_vec());
    let (starting, _) = responder(|_| b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nstarting".to_vec());
    let port = free_port();
    let s = start_pair(
        port,
        "  option httpchk\n  http-check send meth GET uri /ready ver HTTP/1.1 hdr Host svc.local\n  http-check expect string ready",
        (&a, ready.port),
        (&b, starting.port),
    );
    assert!(settles_on(port, "a"));
    let err = stop(s);
    assert!(err.contains("Server l/b is DOWN, reason: Layer7 invalid response, code: 200"), "{err}");
    let first = String::from_utf8_lossy(&seen.lock().unwrap()[0]).into_owned();
    assert!(first.starts_with("GET /ready HTTP/1.1\r\nHost: svc.local\r\n"), "{first}");
}

#[test]
fn tcp_check_send_and_expect() {
    let (a, b) = (Backend::named("a"), Backend::named("b"));
    let (pong, seen) = responder(|_| b"+PONG\r\n".to_vec());
    let (err_srv, _) = responder(|_| b"-ERR loading\r\n".to_vec());
    let port = free_port();
    let s = start_pair(port, "  option tcp-check\n  tcp-check send PING\\r\\n\n  tcp-check expect string +PONG", (&a, pong.port), (&b, err_srv.port));
    assert!(settles_on(port, "a"));
    let err = stop(s);
    assert!(err.contains("Server l/b is DOWN, reason: Layer7 invalid response"), "{err}");
    assert_eq!(seen.lock().unwrap()[0], b"PING\r\n");
}

#[test]
fn backup_takes_over_when_every_active_is_down_and_gives_back() {
    let (a, bk) = (Backend::named("a"), Backend::named("bk"));
    let health_port = free_port();
    let up = || responder_on(TcpListener::bind(("127.0.0.1", health_port)).unwrap(), |_| Vec::new()).0;
    let health = up();
    let port = free_port();
    let s = Sluiced::start(
        &cfg(port, &format!("  server a {} check inter 100ms port {health_port} rise 1\n  server bk {} backup check inter 100ms", a.addr(), bk.addr())),
        &[port],
    );
    assert!(settles_on(port, "a"));
    drop(health);
    assert!(settles_on(port, "bk"), "the backup takes over");
    let _health = up();
    assert!(settles_on(port, "a"), "the active server takes its traffic back");
    let err = stop(s);
    assert!(err.contains("Server l/a is DOWN"), "{err}");
    assert!(err.contains("0 active and 1 backup servers left."), "{err}");
    assert!(err.contains("Server l/a is UP"), "{err}");
}

#[test]
fn all_servers_down_logs_no_server_available() {
    let port = free_port();
    let (d1, d2) = (free_port(), free_port());
    let s = Sluiced::start(&cfg(port, &format!("  server x 127.0.0.1:{d1} check inter 100ms\n  server y 127.0.0.1:{d2} check inter 100ms")), &[port]);
    std::thread::sleep(Duration::from_millis(1000));
    let err = stop(s);
    assert!(err.contains("backend l has no server available!"), "{err}");
}

#[test]
fn tracking_server_follows_the_tracked_one() {
    let (a, b, c) = (Backend::named("a"), Backend::named("b"), Backend::named("c"));
    let (dead, _dead_guard) = dead_port();
    let port = free_port();
    let s = Sluiced::start(
        &cfg(
            port,
            &format!("  server a {} check inter 100ms port {dead}\n  server b {} track a\n  server c {} check inter 100ms", a.addr(), b.addr(), c.addr()),
        ),
        &[port],
    );
    assert!(settles_on(port, "c"));
    let err = stop(s);
    assert!(err.contains("Server l/b is DOWN via l/a."), "{err}");
}

#[test]
fn slowstart_ramps_a_returning_server_in() {
    let a = Backend::named("a");
    let pb = free_port();
    let port = free_port();
    let s = Sluiced::start(
        &cfg(
            port,
            &format!(
                "  balance roundrobin\n  server a {} weight 20 check inter 100ms\n  server b 127.0.0.1:{pb} weight 20 check inter 100ms rise 1 slowstart 6s",
                a.addr()
            ),
        ),
        &[port],
    );
    assert!(settles_on(port, "a"));
    let b = Backend::start_on(TcpListener::bind(("127.0.0.1", pb)).unwrap(), |mut c| {
        let _ = c.write_all(b"b\n");
        let mut buf = [0u8; 64];
        while matches!(c.read(&mut buf), Ok(n) if n > 0) {}
    });
    // The first check that reaches b brings it UP (rise 1).
    let deadline = Instant::now() + Duration::from_secs(5);
    while b.accepted.load(std::sync::atomic::Ordering::Relaxed) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(150));
    // Right after coming UP, b's weight is a small part of a's: it gets far less than half.
    let early = (0..40).filter(|_| which_server(port) == "b").count();
    assert!(early < 14, "b got {early} of 40 right after coming up");
    // Once the period is over, both share evenly.
    std::thread::sleep(Duration::from_millis(6200));
    let late = (0..40).filter(|_| which_server(port) == "b").count();
    assert!((16..=24).contains(&late), "b got {late} of 40 after slowstart");
    drop(b);
    drop(s);
}

#[test]
fn observed_connection_errors_mark_down_with_on_error_mark_down() {
    let a = Backend::named("a");
    let (healthy, _) = responder(|_| Vec::new());
    let (dead, _dead_guard) = dead_port();
    let port = free_port();
    // b's checks pass (they go to `healthy`), but its traffic port is closed: only `observe`
    // can take it out.
    let s = Sluiced::start(
        &cfg(
            port,
            &format!(
                "  balance roundrobin\n  retries 0\n  server a {} check inter 10s\n  server b 127.0.0.1:{dead} check inter 10s port {} observe layer4 error-limit 2 on-error mark-down",
                a.addr(),
                healthy.port
            ),
        ),
        &[port],
    );
    assert!(settles_on(port, "a"));
    let err = stop(s);
    assert!(err.contains("Server l/b is DOWN, reason: Health analyze, info: \"Detected 2 consecutive errors\""), "{err}");
}

#[test]
fn disable_on_404_stops_new_traffic_but_keeps_the_server_up() {
    let (a, b) = (Backend::named("a"), Backend::named("b"));
    let (ok, _) = responder(|_| b"HTTP/1.0 200 OK\r\n\r\n".to_vec());
    let (gone, _) = responder(|_| b"HTTP/1.0 404 Not Found\r\n\r\n".to_vec());
    let port = free_port();
    let s = start_pair(port, "  option httpchk\n  http-check disable-on-404", (&a, ok.port), (&b, gone.port));
    assert!(settles_on(port, "a"));
    let err = stop(s);
    assert!(err.contains("Server l/b is stopping, reason: Layer7 check conditionally passed, code: 404, info: \"Not Found\""), "{err}");
    assert!(!err.contains("is DOWN"), "{err}");
}

#[test]
fn tcp_check_connect_port_sends_checks_elsewhere() {
    let a = Backend::named("a");
    let (pong, seen) = responder(|_| b"+PONG\r\n".to_vec());
    let port = free_port();
    let s = Sluiced::start(
        &cfg(
            port,
            &format!(
                "  option tcp-check\n  tcp-check connect port {}\n  tcp-check send PING\\r\\n\n  tcp-check expect string +PONG\n  server a {} check inter 100ms",
                pong.port,
                a.addr()
            ),
        ),
        &[port],
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.lock().unwrap().len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(which_server(port), "a");
    let err = stop(s);
    assert!(seen.lock().unwrap().len() >= 3, "{err}");
    assert!(!err.contains("is DOWN"), "{err}");
}

/// An agent on a free port answering every connection with the current `line`.
fn agent(line: Arc<Mutex<String>>) -> Backend {
    Backend::start(move |mut c: TcpStream| {
        let reply = line.lock().unwrap().clone();
        let _ = c.write_all(reply.as_bytes());
    })
}

#[test]
fn agent_replies_mark_down_drain_and_bring_back_a_server() {
    let a = Backend::named("a");
    let b = Backend::named("b");
    let line = Arc::new(Mutex::new("up 100%\n".to_owned()));
    let ag = agent(line.clone());
    let port = free_port();
    let backend = format!("  balance roundrobin\n  server a {} agent-check agent-port {} agent-inter 100ms\n  server b {}\n", a.addr(), ag.port, b.addr());
    let s = Sluiced::start(&cfg(port, &backend), &[port]);
    assert!(reaches(port, "a"), "the agent said up: a takes traffic");
    *line.lock().unwrap() = "down # disk full\n".to_owned();
    assert!(settles_on(port, "b"), "the agent said down: only b takes traffic");
    *line.lock().unwrap() = "up drain\n".to_owned();
    std::thread::sleep(Duration::from_millis(500));
    assert!(settles_on(port, "b"), "draining: a takes no new traffic");
    *line.lock().unwrap() = "up ready 100%\n".to_owned();
    assert!(reaches(port, "a"), "ready again: a is back");
    let err = stop(s);
    assert!(err.contains("Server l/a is DOWN, reason: Layer7 wrong status, info: \"via agent : down (disk full)\""), "{err}");
    assert!(err.contains("Server l/a is UP, reason: Layer7 check passed, info: \"via agent : up\""), "{err}");
}

#[test]
fn agent_weight_percentage_shifts_the_balance() {
    let a = Backend::named("a");
    let b = Backend::named("b");
    let line = Arc::new(Mutex::new("10%\n".to_owned()));
    let ag = agent(line);
    let port = free_port();
    let backend = format!(
        "  balance roundrobin\n  server a {} weight 100 agent-check agent-port {} agent-inter 100ms\n  server b {} weight 100\n",
        a.addr(),
        ag.port,
        b.addr()
    );
    let _s = Sluiced::start(&cfg(port, &backend), &[port]);
    std::thread::sleep(Duration::from_millis(500));
    let hits_a = (0..44).filter(|_| which_server(port) == "a").count();
    // Weights 10 and 100: a gets about 1 in 11.
    assert!(hits_a <= 8, "a got {hits_a} of 44 with 10% of its weight");
}

#[test]
fn on_marked_down_shutdown_sessions_closes_the_servers_open_sessions() {
    // The server keeps its connection open (echo) while checks go to a port that can be closed.
    let echo = Backend::echo();
    let check_port = TcpListener::bind("127.0.0.1:0").unwrap();
    let cp = check_port.local_addr().unwrap().port();
    let checks = Backend::start_on(check_port, |_c: TcpStream| {});
    let port = free_port();
    let backend = format!("  server e {} check port {cp} inter 100ms on-marked-down shutdown-sessions\n", echo.addr());
    let _s = Sluiced::start(&cfg(port, &backend), &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"ping").unwrap();
    let mut b = [0u8; 4];
    c.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"ping");
    // The check port goes away: the server is marked DOWN and its session is closed.
    drop(checks);
    let started = Instant::now();
    let mut rest = Vec::new();
    let r = c.read_to_end(&mut rest);
    assert!(r.is_ok() && rest.is_empty(), "the session should end with a clean close: {r:?}");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[test]
fn without_shutdown_sessions_a_down_server_keeps_its_open_session() {
    let echo = Backend::echo();
    let check_port = TcpListener::bind("127.0.0.1:0").unwrap();
    let cp = check_port.local_addr().unwrap().port();
    let checks = Backend::start_on(check_port, |_c: TcpStream| {});
    let port = free_port();
    let backend = format!("  server e {} check port {cp} inter 100ms\n", echo.addr());
    let _s = Sluiced::start(&cfg(port, &backend), &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    drop(checks);
    std::thread::sleep(Duration::from_millis(600));
    c.write_all(b"still").unwrap();
    let mut b = [0u8; 5];
    c.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"still");
}
