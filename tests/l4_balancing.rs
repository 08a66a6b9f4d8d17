//! Server selection in `mode tcp`: algorithms, weights, backups, maxconn queues, retries,
//! redispatch, and the same guarantees with two workers.

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::*;

fn counts(port: u16, n: usize) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for _ in 0..n {
        *m.entry(which_server(port)).or_insert(0) += 1;
    }
    m
}

fn backend_cfg(port: u16, global: &str, backend: &str) -> String {
    format!(
        "global\n{global}\ndefaults\n  mode tcp\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\nlisten l\n  bind 127.0.0.1:{port}\n{backend}\n"
    )
}

fn assert_share(c: &HashMap<String, usize>, name: &str, exact: usize) {
    let got = c.get(name).copied().unwrap_or(0);
    assert!(got.abs_diff(exact) <= 1, "{name}: {got} connections, expected {exact} +/- 1 ({c:?})");
}

#[test]
fn roundrobin_weights_1_2_3_give_exact_shares_over_600_connections() {
    let (a, b, c) = (Backend::named("a"), Backend::named("b"), Backend::named("c"));
    let port = free_port();
    let cfg = backend_cfg(
        port,
        "  nbthread 1",
        &format!("  balance roundrobin\n  server a {} weight 1\n  server b {} weight 2\n  server c {} weight 3", a.addr(), b.addr(), c.addr()),
    );
    let _s = Sluiced::start(&cfg, &[port]);
    let got = counts(port, 600);
    assert_share(&got, "a", 100);
    assert_share(&got, "b", 200);
    assert_share(&got, "c", 300);
}

#[test]
fn roundrobin_shares_hold_across_two_workers() {
    let (a, b, c) = (Backend::named("a"), Backend::named("b"), Backend::named("c"));
    let port = free_port();
    let cfg = backend_cfg(
        port,
        "  nbthread 2",
        &format!("  balance roundrobin\n  server a {} weight 1\n  server b {} weight 2\n  server c {} weight 3", a.addr(), b.addr(), c.addr()),
    );
    let _s = Sluiced::start(&cfg, &[port]);
    // Two clients at once, so connections land on both workers.
    let t1 = std::thread::spawn(move || counts(port, 300));
    let t2 = std::thread::spawn(move || counts(port, 300));
    let mut got = t1.join().unwrap();
    for (k, v) in t2.join().unwrap() {
        *got.entry(k).or_insert(0) += v;
    }
    assert_share(&got, "a", 100);
    assert_share(&got, "b", 200);
    assert_share(&got, "c", 300);
}

#[test]
fn static_rr_follows_weights() {
    let (a, b) = (Backend::named("a"), Backend::named("b"));
    let port = free_port();
    let cfg = backend_cfg(port, "  nbthread 1", &format!("  balance static-rr\n  server a {} weight 1\n  server b {} weight 3", a.addr(), b.addr()));
    let _s = Sluiced::start(&cfg, &[port]);
    let got = counts(port, 400);
    assert_share(&got, "a", 100);
    assert_share(&got, "b", 300);
}

#[test]
fn leastconn_sends_new_connections_to_the_least_busy_server() {
    let (a, b) = (Backend::named("a"), Backend::named("b"));
    let port = free_port();
    let cfg = backend_cfg(port, "  nbthread 2", &format!("  balance leastconn\n  server a {}\n  server b {}", a.addr(), b.addr()));
    let _s = Sluiced::start(&cfg, &[port]);
    // Hold three long-lived connections; whatever their spread, the next ones fill the gap.
    let mut held = Vec::new();
    let mut on = HashMap::new();
    for _ in 0..3 {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut line = [0u8; 2];
        c.read_exact(&mut line).unwrap();
        *on.entry(line[0]).or_insert(0) += 1;
        held.push(c);
    }
    // 3 connections over 2 servers: 2 on one, 1 on the other.
    let busy = if on.get(&b'a').copied().unwrap_or(0) > on.get(&b'b').copied().unwrap_or(0) { "a" } else { "b" };
    let idle = if busy == "a" { "b" } else { "a" };
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut line = [0u8; 2];
    c.read_exact(&mut line).unwrap();
    assert_eq!(&line[..1], idle.as_bytes(), "leastconn picked the busier server ({on:?})");
}

#[test]
fn first_fills_the_first_server_up_to_maxconn_before_the_next() {
    let (a, b) = (Backend::named("a"), Backend::named("b"));
    let port = free_port();
    let cfg = backend_cfg(port, "  nbthread 1", &format!("  balance first\n  server a {} maxconn 2\n  server b {} maxconn 2", a.addr(), b.addr()));
    let _s = Sluiced::start(&cfg, &[port]);
    let mut held = Vec::new();
    let mut order = Vec::new();
    for _ in 0..4 {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut line = [0u8; 2];
        c.read_exact(&mut line).unwrap();
        order.push(line[0]);
        held.push(c);
    }
    assert_eq!(order, b"aabb");
}

/// Which server each of `srcs` reaches, binding the client's source address.
fn by_source(port: u16, srcs: &[std::net::Ipv4Addr]) -> Vec<String> {
    srcs.iter()
        .map(|ip| {
            let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            s.bind(&std::net::SocketAddr::from((*ip, 0)).into()).unwrap();
            s.connect(&local(port).into()).unwrap();
            let mut c: TcpStream = s.into();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut line = [0u8; 2];
            c.read_exact(&mut line).unwrap();
            String::from_utf8_lossy(&line[..1]).into_owned()
        })
        .collect()
}

#[test]
fn source_hashing_is_stable_and_consistent_hashing_survives_adding_a_server() {
    let servers: Vec<Backend> = ["a", "b", "c", "d", "e", "f"].into_iter().map(Backend::named).collect();
    let srcs: Vec<std::net::Ipv4Addr> = (0..200u32).map(|i| std::net::Ipv4Addr::new(127, 1, (i / 250) as u8, (i % 250 + 1) as u8)).collect();
    let lines = |n: usize| {
        servers[..n].iter().enumerate().map(|(i, s)| format!("  server {} {}", ["a", "b", "c", "d", "e", "f"][i], s.addr())).collect::<Vec<_>>().join("\n")
    };
    let run = |n: usize| {
        let port = free_port();
        let _s = Sluiced::start(&backend_cfg(port, "  nbthread 2", &format!("  balance source\n  hash-type consistent\n{}", lines(n))), &[port]);
        let first = by_source(port, &srcs);
        let again = by_source(port, &srcs);
        assert_eq!(first, again, "the same source must reach the same server");
        first
    };
    let five = run(5);
    let six = run(6);
    let moved = five.iter().zip(&six).filter(|(x, y)| x != y).count();
    // Adding one server to five should move about a sixth of the keys, all of them to the new one.
    assert!(moved <= 200 * 30 / 100, "{moved} of 200 sources moved");
    assert!(five.iter().zip(&six).all(|(x, y)| x == y || y == "f"), "keys moved between old servers");
}

#[test]
fn backup_servers_take_traffic_only_when_every_active_server_is_down() {
    let (a, b, bk) = (Backend::named("a"), Backend::named("b"), Backend::named("backup"));
    let port = free_port();
    let cfg = backend_cfg(port, "  nbthread 1", &format!("  server a {}\n  server b {}\n  server bk {} backup", a.addr(), b.addr(), bk.addr()));
    let _s = Sluiced::start(&cfg, &[port]);
    let got = counts(port, 20);
    assert_eq!(got.get("backup"), None, "{got:?}");
    let port2 = free_port();
    let cfg =
        backend_cfg(port2, "  nbthread 1", &format!("  server a {} disabled\n  server b {} disabled\n  server bk {} backup", a.addr(), b.addr(), bk.addr()));
    let _s2 = Sluiced::start(&cfg, &[port2]);
    assert_eq!(counts(port2, 10).get("backup"), Some(&10));
}

#[test]
fn only_the_first_backup_is_used_unless_allbackups() {
    let (b1, b2) = (Backend::named("b1"), Backend::named("b2"));
    let port = free_port();
    let cfg =
        backend_cfg(port, "  nbthread 1", &format!("  server a 127.0.0.1:1 disabled\n  server b1 {} backup\n  server b2 {} backup", b1.addr(), b2.addr()));
    let _s = Sluiced::start(&cfg, &[port]);
    assert_eq!(counts(port, 10).get("b1"), Some(&10));
    let port2 = free_port();
    let cfg = backend_cfg(
        port2,
        "  nbthread 1",
        &format!("  option allbackups\n  server a 127.0.0.1:1 disabled\n  server b1 {} backup\n  server b2 {} backup", b1.addr(), b2.addr()),
    );
    let _s2 = Sluiced::start(&cfg, &[port2]);
    let got = counts(port2, 10);
    assert_eq!((got.get("b1"), got.get("b2")), (Some(&5), Some(&5)), "{got:?}");
}

#[test]
fn a_full_server_queues_the_connection_until_a_slot_frees() {
    let a = Backend::named("a");
    let port = free_port();
    let cfg = backend_cfg(port, "  nbthread 1", &format!("  timeout queue 5s\n  server a {} maxconn 1", a.addr()));
    let _s = Sluiced::start(&cfg, &[port]);
    let mut first = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut line = [0u8; 2];
    first.read_exact(&mut line).unwrap();
    // The second waits in the queue: nothing arrives while the first holds the only slot.
    let mut second = TcpStream::connect(("127.0.0.1", port)).unwrap();
    second.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    assert!(second.read(&mut line).is_err(), "the second connection reached the server past maxconn");
    assert_eq!(a.accepted.load(std::sync::atomic::Ordering::Relaxed), 1);
    drop(first);
    second.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    second.read_exact(&mut line).unwrap();
    assert_eq!(&line, b"a\n");
}

#[test]
fn timeout_queue_closes_a_connection_that_waited_too_long() {
    let a = Backend::named("a");
    let port = free_port();
    let cfg = backend_cfg(port, "  nbthread 1", &format!("  timeout queue 300ms\n  server a {} maxconn 1", a.addr()));
    let _s = Sluiced::start(&cfg, &[port]);
    let mut first = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut line = [0u8; 2];
    first.read_exact(&mut line).unwrap();
    let mut second = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let t0 = Instant::now();
    let got = read_to_end(&mut second, Duration::from_secs(5)).unwrap();
    assert!(got.is_empty());
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_millis(250) && waited < Duration::from_secs(3), "closed after {waited:?}");
    assert_eq!(a.accepted.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[test]
fn frontend_maxconn_stops_accepting_at_the_limit_and_resumes_below_it() {
    let a = Backend::named("a");
    let port = free_port();
    let cfg = format!(
        "defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\nfrontend f\n  bind 127.0.0.1:{port}\n  maxconn 2\n  default_backend b\nbackend b\n  server a {}\n",
        a.addr()
    );
    let _s = Sluiced::start(&cfg, &[port]);
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut line = [0u8; 2];
        c.read_exact(&mut line).unwrap();
        held.push(c);
    }
    // The third connection completes its handshake in the kernel backlog but is not served.
    let mut third = TcpStream::connect(("127.0.0.1", port)).unwrap();
    third.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut line = [0u8; 2];
    assert!(third.read(&mut line).is_err(), "served past frontend maxconn");
    held.pop();
    third.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    third.read_exact(&mut line).unwrap();
    assert_eq!(&line, b"a\n");
}

#[test]
fn bind_maxconn_limits_its_own_line_and_not_the_frontends_other_binds() {
    let a = Backend::named("a");
    let (limited, other) = (free_port(), free_port());
    // Two threads, so the limit must hold across workers: both listen on each port.
    let cfg = format!(
        "global
  nbthread 2
defaults
  mode tcp
  timeout connect 1s
  timeout client 10s
  timeout server 10s
         frontend f
  bind 127.0.0.1:{limited} maxconn 2
  bind 127.0.0.1:{other}
  default_backend b
backend b
  server a {}
",
        a.addr()
    );
    let _s = Sluiced::start(&cfg, &[limited, other]);
    let served = |port: u16, wait: Duration| -> Option<TcpStream> {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(wait)).unwrap();
        let mut line = [0u8; 2];
        c.read_exact(&mut line).ok().map(|()| c)
    };
    let mut held: Vec<TcpStream> = (0..2).map(|_| served(limited, Duration::from_secs(5)).expect("under the limit")).collect();
    // The third connection to the limited line waits in the backlog...
    let mut third = TcpStream::connect(("127.0.0.1", limited)).unwrap();
    third.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut line = [0u8; 2];
    assert!(third.read(&mut line).is_err(), "served past the bind line's maxconn");
    // ... while the frontend's other bind line still serves.
    let more: Vec<TcpStream> = (0..3).map(|_| served(other, Duration::from_secs(5)).expect("the other line has no limit")).collect();
    // One closed on the limited line: the waiting one is served.
    held.pop();
    third.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    third.read_exact(&mut line).unwrap();
    assert_eq!(&line, b"a\n");
    drop(more);
}

#[test]
fn a_refusing_server_is_retried_then_redispatched_and_the_client_never_notices() {
    let good = Backend::named("good");
    let (dead, _dead_guard) = dead_port();
    let port = free_port();
    let cfg = backend_cfg(
        port,
        "  nbthread 1",
        &format!(
            "  retries 2\n  option redispatch\n  timeout connect 200ms\n  balance roundrobin\n  server dead 127.0.0.1:{dead}\n  server good {}",
            good.addr()
        ),
    );
    let _s = Sluiced::start(&cfg, &[port]);
    for _ in 0..4 {
        assert_eq!(which_server(port), "good");
    }
}

#[test]
fn without_redispatch_a_refusing_server_fails_the_connection() {
    let (dead, _dead_guard) = dead_port();
    let port = free_port();
    let cfg = backend_cfg(port, "  nbthread 1", &format!("  retries 1\n  timeout connect 200ms\n  server dead 127.0.0.1:{dead}"));
    let _s = Sluiced::start(&cfg, &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert!(read_to_end(&mut c, Duration::from_secs(5)).unwrap().is_empty());
}

#[test]
fn use_backend_routes_by_destination_port_and_default_backend_catches_the_rest() {
    let (a, b) = (Backend::named("a"), Backend::named("b"));
    let (p1, p2) = (free_port(), free_port());
    let cfg = format!(
        "defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\nfrontend f\n  bind 127.0.0.1:{p1}\n  bind 127.0.0.1:{p2}\n  use_backend ba if {{ dst_port {p1} }}\n  default_backend bb\nbackend ba\n  server a {}\nbackend bb\n  server b {}\n",
        a.addr(),
        b.addr()
    );
    let _s = Sluiced::start(&cfg, &[p1, p2]);
    assert_eq!(which_server(p1), "a");
    assert_eq!(which_server(p2), "b");
}

#[test]
fn tcp_request_connection_reject_closes_matching_clients_before_any_server() {
    let a = Backend::named("a");
    let port = free_port();
    let cfg = format!(
        "defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\nlisten l\n  bind 127.0.0.1:{port}\n  tcp-request connection reject if {{ src 127.0.0.1 }}\n  server a {}\n",
        a.addr()
    );
    let _s = Sluiced::start(&cfg, &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert!(read_to_end(&mut c, Duration::from_secs(5)).map(|v| v.is_empty()).unwrap_or(true));
    assert_eq!(a.accepted.load(std::sync::atomic::Ordering::Relaxed), 0);
    // Another source address is let through.
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&std::net::SocketAddr::from(([127, 0, 0, 2], 0)).into()).unwrap();
    s.connect(&local(port).into()).unwrap();
    let mut c: TcpStream = s.into();
    let mut line = [0u8; 2];
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.read_exact(&mut line).unwrap();
    assert_eq!(&line, b"a\n");
}

#[test]
fn content_inspection_routes_tls_by_sni() {
    let (a, b) = (Backend::named("a"), Backend::named("b"));
    let port = free_port();
    let cfg = format!(
        "defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\nfrontend f\n  bind 127.0.0.1:{port}\n  tcp-request inspect-delay 2s\n  tcp-request content accept if {{ req.ssl_hello_type 1 }}\n  use_backend ba if {{ req.ssl_sni -i a.example.com }}\n  default_backend bb\nbackend ba\n  server a {}\nbackend bb\n  server b {}\n",
        a.addr(),
        b.addr()
    );
    let _s = Sluiced::start(&cfg, &[port]);
    let hello = |sni: &str| {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(&client_hello(sni)).unwrap();
        let mut line = [0u8; 2];
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.read_exact(&mut line).unwrap();
        line[0]
    };
    assert_eq!(hello("A.example.com"), b'a');
    assert_eq!(hello("other.example.com"), b'b');
}

/// A frontend on `port` whose `tcp-request` lines are `rules`, sending to `ba` when `var(sess.n)`
/// is 1 and to `bb` otherwise.
fn var_routing_cfg(port: u16, rules: &str, a: &Backend, b: &Backend) -> String {
    format!(
        "defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\nfrontend f\n  bind 127.0.0.1:{port}\n  tcp-request inspect-delay 2s\n{rules}\n  use_backend ba if {{ var(sess.n) -m int 1 }}\n  default_backend bb\nbackend ba\n  server a {}\nbackend bb\n  server b {}\n",
        a.addr(),
        b.addr()
    )
}

/// Sends `parts` with a pause between them; returns the first byte the backend answers.
fn server_after(port: u16, parts: &[&[u8]]) -> u8 {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    for p in parts {
        c.write_all(p).unwrap();
        std::thread::sleep(Duration::from_millis(150));
    }
    let mut line = [0u8; 2];
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.read_exact(&mut line).unwrap();
    line[0]
}

#[test]
fn a_content_rule_variable_chooses_the_backend() {
    let (a, b) = (Backend::named("a"), Backend::named("b"));
    let port = free_port();
    let rules = "  tcp-request content set-var(sess.n) int(1) if { req.payload(0,4) -m str PING }";
    let _s = Sluiced::start(&var_routing_cfg(port, rules, &a, &b), &[port]);
    assert_eq!(server_after(port, &[b"PI", b"NG"]), b'a');
    assert_eq!(server_after(port, &[b"PONG"]), b'b');
}

#[test]
fn content_rules_resume_at_the_waiting_rule_so_earlier_variable_actions_run_once() {
    let (a, b) = (Backend::named("a"), Backend::named("b"));
    let port = free_port();
    // Re-running the first rule on each piece of data would count past 1.
    let rules = "  tcp-request content set-var(sess.n) var(sess.n,0),add(1)\n  tcp-request content accept if { req.len ge 6 }";
    let _s = Sluiced::start(&var_routing_cfg(port, rules, &a, &b), &[port]);
    assert_eq!(server_after(port, &[b"ab", b"cd", b"ef"]), b'a');
}

#[test]
fn connection_and_session_rule_variables_reach_the_content_rules() {
    let (a, b) = (Backend::named("a"), Backend::named("b"));
    let port = free_port();
    let rules = "  tcp-request connection set-var(sess.c) int(1)\n  tcp-request session set-var(sess.n) var(sess.c)";
    let _s = Sluiced::start(&var_routing_cfg(port, rules, &a, &b), &[port]);
    assert_eq!(server_after(port, &[b"x"]), b'a');
}

/// In mode tcp, a backend's content rules inspect the stream once it is switched to that
/// backend, with the backend's own inspect delay: here they wait for a greeting and refuse the
/// wrong one; the other backend takes anything.
#[test]
fn a_backends_content_rules_inspect_the_streams_switched_to_it() {
    let (a, b) = (Backend::named("a"), Backend::named("b"));
    let port = free_port();
    let cfg = format!(
        "defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\nfrontend f\n  bind 127.0.0.1:{port}\n  \
         use_backend ba if {{ src 127.0.0.1 }}\n  default_backend bb\n\
         backend ba\n  tcp-request inspect-delay 2s\n  tcp-request content reject if {{ req.payload(0,4) -m str EVIL }}\n  \
         tcp-request content accept if {{ req.len ge 4 }}\n  server a {}\n\
         backend bb\n  server b {}\n",
        a.addr(),
        b.addr()
    );
    let _s = Sluiced::start(&cfg, &[port]);
    // The greeting comes in two pieces: the backend's rules wait for the whole of it.
    assert_eq!(server_after(port, &[b"HE", b"LO"]), b'a');
    // Refused by the backend's rule: closed before any server is reached.
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"EVIL").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{rest:?}");
    assert_eq!(a.accepted.load(std::sync::atomic::Ordering::Relaxed), 1);
    // From another source the frontend picks the other backend, which has no such rule.
    let s2 = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s2.bind(&std::net::SocketAddr::from(([127, 0, 0, 2], 0)).into()).unwrap();
    s2.connect(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into()).unwrap();
    let mut c: TcpStream = s2.into();
    c.write_all(b"EVIL").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut line = [0u8; 2];
    c.read_exact(&mut line).unwrap();
    assert_eq!(line[0], b'b');
}

/// A minimal TLS 1.2 ClientHello with one cipher suite and an SNI extension.
fn client_hello(sni: &str) -> Vec<u8> {
    let name = sni.as_bytes();
    let mut sni_ext = Vec::new();
    let list_len = 3 + name.len();
    sni_ext.extend_from_slice(&(list_len as u16).to_be_bytes());
    sni_ext.push(0);
    sni_ext.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sni_ext.extend_from_slice(name);
    let mut exts = Vec::new();
    exts.extend_from_slice(&[0, 0]);
    exts.extend_from_slice(&(sni_ext.len() as u16).to_be_bytes());
    exts.extend_from_slice(&sni_ext);
    let mut body = vec![3, 3];
    body.extend_from_slice(&[0x11; 32]);
    body.push(0);
    body.extend_from_slice(&[0, 2, 0x13, 0x01]);
    body.extend_from_slice(&[1, 0]);
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend_from_slice(&exts);
    let mut hs = vec![1];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 3, 1];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

#[test]
fn balance_hash_on_a_sample_keeps_one_key_on_one_server() {
    let servers: Vec<Backend> = ["a", "b", "c", "d"].into_iter().map(Backend::named).collect();
    let port = free_port();
    let lines: Vec<String> = servers.iter().enumerate().map(|(i, s)| format!("  server {} {}", ["a", "b", "c", "d"][i], s.addr())).collect();
    // The key is the first 8 bytes the client sends, read during content inspection.
    let cfg = backend_cfg(
        port,
        "  nbthread 2",
        &format!("  tcp-request inspect-delay 2s\n  tcp-request content accept if {{ req.len ge 8 }}\n  balance hash req.payload(0,8)\n{}", lines.join("\n")),
    );
    let _s = Sluiced::start(&cfg, &[port]);
    let reach = |key: &[u8; 8]| {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(key).unwrap();
        let mut line = [0u8; 2];
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.read_exact(&mut line).unwrap();
        line[0]
    };
    let mut seen = std::collections::HashSet::new();
    for k in 0..20u64 {
        let key = k.to_be_bytes();
        let first = reach(&key);
        for _ in 0..3 {
            assert_eq!(reach(&key), first, "key {k} moved between servers");
        }
        seen.insert(first);
    }
    assert!(seen.len() >= 3, "20 keys landed on {} servers only", seen.len());
}

/// `minconn 1 maxconn 4`: the server's limit grows with the backend's load. With `fullconn 8`
/// a second connection (load 1: `4 * 1 / 8` is below `minconn`) waits for the first to leave;
/// with `fullconn 2` the same load allows 2, and from a load of 2 on, `maxconn`.
#[test]
fn minconn_limit_grows_with_the_load_towards_fullconn() {
    let a = Backend::named("a");
    let (slow, fast) = (free_port(), free_port());
    let cfg = format!(
        "global\n  nbthread 1\ndefaults\n  mode tcp\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\n  timeout queue 5s\n\
         listen slow\n  bind 127.0.0.1:{slow}\n  fullconn 8\n  server a {a} minconn 1 maxconn 4\n\
         listen fast\n  bind 127.0.0.1:{fast}\n  fullconn 2\n  server a {a} minconn 1 maxconn 4\n",
        a = a.addr()
    );
    let _s = Sluiced::start(&cfg, &[slow, fast]);
    let greeted = |c: &mut TcpStream, wait: Duration| {
        c.set_read_timeout(Some(wait)).unwrap();
        let mut line = [0u8; 2];
        c.read_exact(&mut line).is_ok() && &line == b"a\n"
    };
    let mut first = TcpStream::connect(("127.0.0.1", slow)).unwrap();
    assert!(greeted(&mut first, Duration::from_secs(5)));
    let mut second = TcpStream::connect(("127.0.0.1", slow)).unwrap();
    assert!(!greeted(&mut second, Duration::from_millis(300)), "served past the limit of 1 at load 1 of 8");
    drop(first);
    assert!(greeted(&mut second, Duration::from_secs(5)), "served once the first left");
    drop(second);
    let held: Vec<TcpStream> = (0..3)
        .map(|i| {
            let mut c = TcpStream::connect(("127.0.0.1", fast)).unwrap();
            assert!(greeted(&mut c, Duration::from_secs(5)), "connection {i} at fullconn 2");
            c
        })
        .collect();
    assert_eq!(held.len(), 3);
}

/// An RDP connection request (TPKT, X.224 Connection Request) carrying `cookie` and an RDP
/// negotiation request, as mstsc sends it.
fn rdp_request(cookie: &str) -> Vec<u8> {
    let mut x224 = vec![0u8, 0xe0, 0, 0, 0, 0, 0];
    x224.extend_from_slice(format!("Cookie: {cookie}\r\n").as_bytes());
    x224.extend_from_slice(&[0x01, 0x00, 0x08, 0x00, 0x03, 0x00, 0x00, 0x00]);
    x224[0] = (x224.len() - 1) as u8;
    let mut out = vec![0x03, 0x00];
    out.extend_from_slice(&((x224.len() + 4) as u16).to_be_bytes());
    out.extend_from_slice(&x224);
    out
}

/// The server that answers an RDP client sending `request`, in `pieces` writes 200 ms apart.
fn rdp_server(port: u16, request: &[u8], pieces: usize) -> String {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for (i, chunk) in request.chunks(request.len().div_ceil(pieces)).enumerate() {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(200));
        }
        c.write_all(chunk).unwrap();
    }
    read_line(&mut c)
}

#[test]
fn rdp_cookie_balances_users_stably_and_a_routing_token_names_its_server() {
    let (a, b) = (Backend::named("a"), Backend::named("b"));
    let port = free_port();
    let cfg = backend_cfg(
        port,
        "  nbthread 2",
        &format!(
            "  tcp-request inspect-delay 2s\n  tcp-request content accept if RDP_COOKIE\n  balance rdp-cookie\n  persist rdp-cookie\n  server a {}\n  server b {}",
            a.addr(),
            b.addr()
        ),
    );
    let _s = Sluiced::start(&cfg, &[port]);
    // Each user lands on one server every time, also when the cookie comes in a second packet;
    // the users spread over both servers.
    let mut seen = HashMap::new();
    for i in 0..12 {
        let req = rdp_request(&format!("mstshash=user{i}"));
        let first = rdp_server(port, &req, 1);
        assert!(first == "a" || first == "b", "{first:?}");
        for pieces in [1, 2, 1] {
            assert_eq!(rdp_server(port, &req, pieces), first, "user{i} moved");
        }
        *seen.entry(first).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 2, "all twelve users on one server: {seen:?}");
    // A routing token (`msts=<ipv4 LE>.<port LE>.0000`) sends the client to the server it names.
    let token = |port: u16| format!("msts={}.{}.0000", u32::from_le_bytes([127, 0, 0, 1]), u16::from_le_bytes(port.to_be_bytes()));
    for _ in 0..4 {
        assert_eq!(rdp_server(port, &rdp_request(&token(b.port)), 1), "b");
        assert_eq!(rdp_server(port, &rdp_request(&token(a.port)), 1), "a");
    }
    // A token naming no server is balanced as usual, and so is a client with no cookie at all
    // once the inspect delay ends.
    let other = rdp_server(port, &rdp_request(&token(1)), 1);
    assert!(other == "a" || other == "b", "{other:?}");
    let start = Instant::now();
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"\x03\x00\x00\x0b\x06\xe0\x00\x00\x00\x00\x00").unwrap();
    let mut name = [0u8; 2];
    c.read_exact(&mut name).unwrap();
    assert!(start.elapsed() >= Duration::from_millis(1500), "no cookie: the content rule waits for the inspect delay");
}

#[test]
fn a_client_that_sent_part_of_what_a_content_rule_waits_for_goes_on_when_the_inspect_delay_ends() {
    let a = Backend::named("a");
    let port = free_port();
    let cfg = backend_cfg(
        port,
        "  nbthread 1",
        &format!(
            "  tcp-request inspect-delay 500ms\n  tcp-request content reject if {{ req.payload(0,4) -m str QUIT }}\n  tcp-request content accept if {{ req.len gt 100 }}\n  server a {}",
            a.addr()
        ),
    );
    let _s = Sluiced::start(&cfg, &[port]);
    // Three bytes, then silence: the rules wait for more until the delay ends, then the stream
    // goes on (no rule matched: accepted), instead of waiting for bytes that never come.
    let start = Instant::now();
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"QUI").unwrap();
    let mut name = [0u8; 2];
    c.read_exact(&mut name).expect("the server's greeting once the inspect delay ended");
    assert_eq!(&name, b"a\n");
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(450) && waited < Duration::from_secs(3), "waited {waited:?}");
}

/// Opens `n` connections at once and keeps them open; the server each landed on.
fn held(port: u16, n: usize) -> (Vec<TcpStream>, HashMap<String, usize>) {
    let mut conns = Vec::new();
    let mut m = HashMap::new();
    for _ in 0..n {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        *m.entry(read_line(&mut c)).or_insert(0) += 1;
        conns.push(c);
    }
    (conns, m)
}

#[test]
fn hash_balance_factor_bounds_a_hot_keys_load_on_the_consistent_ring() {
    let (a, b, c) = (Backend::named("a"), Backend::named("b"), Backend::named("c"));
    let servers = format!("  server a {}\n  server b {}\n  server c {}", a.addr(), b.addr(), c.addr());
    // Every connection comes from 127.0.0.1: one key.
    let port = free_port();
    let _plain = Sluiced::start(&backend_cfg(port, "  nbthread 1", &format!("  balance source\n  hash-type consistent\n{servers}")), &[port]);
    let (conns, all) = held(port, 9);
    assert_eq!(all.len(), 1, "without a factor one key stays on one server: {all:?}");
    drop(conns);
    let port = free_port();
    let _bounded =
        Sluiced::start(&backend_cfg(port, "  nbthread 1", &format!("  balance source\n  hash-type consistent\n  hash-balance-factor 150\n{servers}")), &[port]);
    let (_conns, spread) = held(port, 9);
    // With 8 streams in progress the 9th may go where fewer than ceil(9 x 1.5 / 3) = 5 are served.
    assert_eq!(spread.values().sum::<usize>(), 9);
    assert!(spread.len() >= 2 && spread.values().all(|&n| n <= 5), "{spread:?}");
}
