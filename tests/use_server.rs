//! `use-server <server> [if|unless <cond>]`: a rule whose condition holds sends the stream to its
//! server without balancing, in HTTP and TCP mode, unless that server is down (then balancing
//! decides), or `option persist` says to use it anyway.

mod support;

use std::time::{Duration, Instant};

use support::*;

fn get(port: u16, pin: Option<&str>) -> (u16, String) {
    let pin = pin.map(|p| format!("x-pin: {p}\r\n")).unwrap_or_default();
    let (status, _, body) = http_request(port, format!("GET / HTTP/1.1\r\nhost: x\r\n{pin}connection: close\r\n\r\n").as_bytes());
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// An HTTP frontend on `port` in front of backend `be`, whose lines follow.
fn http(port: u16, backend: &str) -> String {
    format!(
        "defaults\n  mode http\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\n\
         frontend f\n  bind 127.0.0.1:{port}\n  default_backend be\nbackend be\n{backend}"
    )
}

#[test]
fn http_requests_matching_a_use_server_rule_skip_balancing_and_a_down_server_falls_back_to_it() {
    let (a, _) = http_backend(|_| ok_response("a"));
    let (b, _) = http_backend(|_| ok_response("b"));
    let (dead, _hold) = dead_port();
    let port = free_port();
    let cfg = http(
        port,
        &format!(
            "  balance roundrobin\n\
         \x20 use-server down if {{ req.hdr(x-pin) down }}\n\
         \x20 use-server b if {{ req.hdr(x-pin) b }} || {{ req.hdr(x-pin) down }}\n\
         \x20 server a {}\n  server b {}\n  server down 127.0.0.1:{dead} check inter 100ms fall 1\n",
            a.addr(),
            b.addr()
        ),
    );
    let _d = Sluiced::start(&cfg, &[port]);
    for _ in 0..4 {
        assert_eq!(get(port, Some("b")), (200, "b".to_string()));
    }
    // Without the header, round robin over a and b (the dead server is down once checked).
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 2 && Instant::now() < deadline {
        let (status, body) = get(port, None);
        if status == 200 {
            seen.insert(body);
        }
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["a", "b"]);
    // The rule naming the down server is passed over; the next rule that holds decides. (Its
    // first check, 100 ms after start, found it down.)
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..4 {
        assert_eq!(get(port, Some("down")), (200, "b".to_string()));
    }
}

#[test]
fn with_option_persist_a_use_server_rule_sends_to_its_server_even_when_down() {
    let (a, _) = http_backend(|_| ok_response("a"));
    let (dead, _hold) = dead_port();
    let port = free_port();
    let cfg = http(
        port,
        &format!(
            "  option persist\n  retries 0\n  use-server down if {{ req.hdr(x-pin) down }}\n\
             \x20 server a {}\n  server down 127.0.0.1:{dead} check inter 100ms fall 1\n",
            a.addr()
        ),
    );
    let _d = Sluiced::start(&cfg, &[port]);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(get(port, None), (200, "a".to_string()));
    assert_eq!(get(port, Some("down")).0, 503, "sent to the down server, which refuses");
}

#[test]
fn tcp_streams_matching_a_use_server_rule_go_to_its_server() {
    let a = Backend::named("a");
    let b = Backend::named("b");
    let (pin, free) = (free_port(), free_port());
    let cfg = format!(
        "defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\n\
         frontend pinned\n  bind 127.0.0.1:{pin}\n  default_backend be\n\
         frontend balanced\n  bind 127.0.0.1:{free}\n  default_backend be\n\
         backend be\n  balance roundrobin\n  use-server b if {{ dst_port {pin} }}\n  server a {}\n  server b {}\n",
        a.addr(),
        b.addr()
    );
    let _d = Sluiced::start(&cfg, &[pin, free]);
    for _ in 0..4 {
        assert_eq!(which_server(pin), "b");
    }
    let seen: std::collections::BTreeSet<String> = (0..4).map(|_| which_server(free)).collect();
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["a", "b"]);
}

#[test]
fn a_pinned_server_with_maxqueue_streams_waiting_sends_the_next_one_elsewhere() {
    // s1 takes one request at a time and holds each for 600 ms; s2 answers at once.
    let (slow, _) = http_backend(|_| {
        std::thread::sleep(Duration::from_millis(600));
        ok_response("s1")
    });
    let (fast, _) = http_backend(|_| ok_response("s2"));
    let port = free_port();
    let cfg = http(
        port,
        &format!(
            "  timeout queue 5s\n  balance first\n  use-server s1 if {{ req.hdr(x-pin) s1 }}\n  server s1 {} maxconn 1 maxqueue 1\n  server s2 {}\n",
            slow.addr(),
            fast.addr()
        ),
    );
    let _d = Sluiced::start(&cfg, &[port]);
    // The first pinned request takes s1's slot, the second waits in its queue (maxqueue 1).
    let first = std::thread::spawn(move || get(port, Some("s1")));
    std::thread::sleep(Duration::from_millis(150));
    let second = std::thread::spawn(move || get(port, Some("s1")));
    std::thread::sleep(Duration::from_millis(150));
    // The third finds the queue full: balanced, and `balance first` with s1 full gives s2.
    assert_eq!(get(port, Some("s1")), (200, "s2".to_string()));
    assert_eq!(first.join().unwrap(), (200, "s1".to_string()));
    assert_eq!(second.join().unwrap(), (200, "s1".to_string()), "the queued request kept its server");
}
