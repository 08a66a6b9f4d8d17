//! Dynamic servers through a real unix stats socket: `add server`, `del server` and `set server
//! ... addr` on the running daemon, with real clients and named backends to see where
//! connections land.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::*;

/// The `status` column of server `srv` in `show stat`, if listed.
fn stat_status(sock: &Path, srv: &str) -> Option<String> {
    let csv = ask(sock, "show stat");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next()?.trim_start_matches("# ").split(',').collect();
    let col = header.iter().position(|h| *h == "status")?;
    lines.map(|l| l.split(',').collect::<Vec<_>>()).find(|f| f.get(1) == Some(&srv)).map(|f| f[col].to_owned())
}

/// The server names `show servers state` lists, with their ids.
fn state_servers(sock: &Path) -> Vec<(String, String)> {
    ask(sock, "show servers state")
        .lines()
        .skip(2)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.len() > 4).then(|| (f[3].to_owned(), f[2].to_owned()))
        })
        .collect()
}

fn stats_socket() -> PathBuf {
    temp_dir("dynsrv").join("admin.sock")
}

/// A `mode tcp` listener `l` on `port` with `servers` lines and an admin socket.
fn tcp_proxy(sock: &Path, port: u16, servers: &str, extra_backends: &str) -> Sluiced {
    let cfg = format!(
        "global\n  nbthread 1\n  stats socket {} level admin\ndefaults\n  mode tcp\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\nlisten l\n  bind 127.0.0.1:{port}\n{servers}{extra_backends}",
        sock.display()
    );
    Sluiced::start(&cfg, &[port])
}

/// True when 8 connections in a row land on `want`.
fn all_on(port: u16, want: &str) -> bool {
    (0..8).all(|_| which_server(port) == want)
}

#[test]
fn tcp_server_added_at_run_time_takes_traffic_after_enable_server() {
    let (a, b) = (Backend::named("a"), Backend::named("b"));
    let (sock, port) = (stats_socket(), free_port());
    let _d = tcp_proxy(&sock, port, &format!("  server a {}\n", a.addr()), "");
    assert_eq!(ask(&sock, &format!("add server l/b {} weight 1 maxconn 10", b.addr())), "New server registered.\n\n");
    // It starts in maintenance: listed, but no traffic.
    assert_eq!(stat_status(&sock, "b").as_deref(), Some("MAINT"));
    assert!(all_on(port, "a"));
    assert_eq!(state_servers(&sock), vec![("a".to_owned(), "1".to_owned()), ("b".to_owned(), "2".to_owned())]);
    assert_eq!(ask(&sock, "enable server l/b; disable server l/a"), "\n\n");
    assert_eq!(stat_status(&sock, "b").as_deref(), Some("no check"));
    assert!(all_on(port, "b"), "the added server takes the traffic");
    assert_eq!(ask(&sock, "get weight l/b"), "1 (initial 1)\n\n");
}

#[test]
fn http_server_added_at_run_time_takes_traffic_after_enable_server() {
    let (one, _) = http_backend(|_| ok_response("one"));
    let (two, _) = http_backend(|_| ok_response("two"));
    let (sock, port) = (stats_socket(), free_port());
    let cfg = format!("global\n  nbthread 1\n  stats socket {} level admin\n{}", sock.display(), http_cfg(port, "", &format!("  server s1 {}", one.addr())));
    let _d = Sluiced::start(&cfg, &[port]);
    let get = || http_request(port, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").2;
    assert_eq!(get(), b"one");
    assert_eq!(ask(&sock, &format!("add server b/s2 {} cookie c2", two.addr())), "New server registered.\n\n");
    assert_eq!(get(), b"one", "in maintenance until enabled");
    assert_eq!(ask(&sock, "set server b/s2 state ready; set server b/s1 state maint"), "\n\n");
    for _ in 0..4 {
        assert_eq!(get(), b"two");
    }
}

#[test]
fn add_server_errors_use_haproxy_texts() {
    let a = Backend::named("a");
    let (sock, port) = (stats_socket(), free_port());
    let extra = "backend srr\n  balance static-rr\nbackend src\n  balance source\nbackend srcc\n  balance source\n  hash-type consistent\n";
    let _d = tcp_proxy(&sock, port, &format!("  server a {}\n", a.addr()), extra);
    assert_eq!(ask(&sock, "add server"), "Require 'backend/server'.\n\n");
    assert_eq!(ask(&sock, "add server l"), "Require 'backend/server'.\n\n");
    assert_eq!(ask(&sock, "add server nope/x 127.0.0.1:1"), "No such backend.\n\n");
    assert_eq!(ask(&sock, "add server l/x"), "'server' expects <name> and <addr>[:<port>] as arguments.\n\n");
    assert_eq!(ask(&sock, "add server l/a 127.0.0.1:1"), "Already exists a server with the same name in backend.\n\n");
    assert_eq!(ask(&sock, "add server l/x 127.0.0.1:1 no-such-keyword-here"), "unknown keyword 'no-such-keyword-here'.\n\n");
    assert_eq!(ask(&sock, "add server l/x 127.0.0.1:1 enabled"), "'enabled' option is not accepted for dynamic server\n\n");
    assert_eq!(ask(&sock, "add server l/x 127.0.0.1:1 weight"), "'weight' expects an argument.\n\n");
    assert_ne!(ask(&sock, "add server l/x 300.1.1.1:80"), "New server registered.\n\n");
    assert_ne!(ask(&sock, "add server l/x localhost:80"), "New server registered.\n\n");
    assert_eq!(
        ask(&sock, "add server srr/x 127.0.0.1:1"),
        "Backend does not support dynamic servers : backend 'srr' uses a non dynamic load balancing method.\n\n"
    );
    assert_eq!(
        ask(&sock, "add server src/x 127.0.0.1:1"),
        "Backend does not support dynamic servers : backend 'src' uses a non dynamic load balancing method.\n\n"
    );
    assert_eq!(ask(&sock, "add server srcc/x 127.0.0.1:1"), "New server registered.\n\n", "consistent hashing takes dynamic servers");
    // None of the refused ones was added.
    assert_eq!(state_servers(&sock).iter().filter(|(n, _)| n == "x").count(), 1);
    assert!(ask(&sock, "add server help").starts_with("List of keywords supported for dynamic server:\n"));
}

#[test]
fn del_server_is_refused_while_a_connection_is_open_then_accepted() {
    let (a, b) = (Backend::named("a"), Backend::named("b"));
    let (sock, port) = (stats_socket(), free_port());
    let _d = tcp_proxy(&sock, port, &format!("  server a {}\n", a.addr()), "");
    assert_eq!(ask(&sock, &format!("add server l/b {}", b.addr())), "New server registered.\n\n");
    assert_eq!(ask(&sock, "enable server l/b; disable server l/a"), "\n\n");
    // Hold a connection through b.
    let mut held = TcpStream::connect(("127.0.0.1", port)).unwrap();
    held.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut line = [0u8; 2];
    held.read_exact(&mut line).unwrap();
    assert_eq!(&line, b"b\n");
    assert_eq!(ask(&sock, "del server l/b"), "Only servers in maintenance mode can be deleted.\n\n");
    assert_eq!(ask(&sock, "enable server l/a; disable server l/b"), "\n\n");
    assert_eq!(ask(&sock, "del server l/b"), "Server still has connections attached to it, cannot remove it.\n\n");
    drop(held);
    let out = ask_until(&sock, "del server l/b", Duration::from_secs(5), |a| a == "Server deleted.\n\n");
    assert_eq!(out, "Server deleted.\n\n");
    // Gone from every listing and from name lookups; the traffic stays on a.
    assert_eq!(stat_status(&sock, "b"), None);
    assert!(state_servers(&sock).iter().all(|(n, _)| n != "b"));
    assert!(!ask(&sock, "show servers conn").contains("l/b "));
    assert_eq!(ask(&sock, "get weight l/b"), "No such server.\n\n");
    assert_eq!(ask(&sock, "enable server l/b"), "No such server.\n\n");
    assert_eq!(ask(&sock, "del server l/b"), "No such server.\n\n");
    assert!(all_on(port, "a"));
    // The name is free again; the new server gets a fresh id.
    assert_eq!(ask(&sock, &format!("add server l/b {}", b.addr())), "New server registered.\n\n");
    assert_eq!(state_servers(&sock), vec![("a".to_owned(), "1".to_owned()), ("b".to_owned(), "3".to_owned())]);
}

#[test]
fn deleted_server_gets_no_traffic_even_when_it_was_the_last_one() {
    let (a, b) = (Backend::named("a"), Backend::named("b"));
    let (sock, port) = (stats_socket(), free_port());
    let _d = tcp_proxy(&sock, port, &format!("  server a {}\n", a.addr()), "");
    assert_eq!(ask(&sock, &format!("add server l/b {}", b.addr())), "New server registered.\n\n");
    assert_eq!(ask(&sock, "enable server l/b; disable server l/a"), "\n\n");
    assert!(all_on(port, "b"));
    assert_eq!(ask(&sock, "disable server l/b"), "\n");
    // The connections of `all_on` end as their clients close.
    assert_eq!(ask_until(&sock, "del server l/b", Duration::from_secs(5), |a| a == "Server deleted.\n\n"), "Server deleted.\n\n");
    let before = b.accepted.load(std::sync::atomic::Ordering::Relaxed);
    // No usable server: the connection is closed without reaching b.
    assert_eq!(which_server(port), "");
    assert_eq!(b.accepted.load(std::sync::atomic::Ordering::Relaxed), before);
    assert_eq!(ask(&sock, "enable server l/a"), "\n");
    assert!(all_on(port, "a"));
}

#[test]
fn del_server_refuses_a_server_others_track() {
    let a = Backend::named("a");
    let (sock, port) = (stats_socket(), free_port());
    let _d = tcp_proxy(&sock, port, &format!("  server a {}\n  server t {} track a\n", a.addr(), a.addr()), "");
    assert_eq!(
        ask(&sock, "disable server l/a; del server l/a"),
        "\nThis server cannot be removed at runtime due to other configuration elements pointing to it.\n\n"
    );
}

#[test]
fn set_server_addr_moves_new_connections_to_another_backend() {
    let (a, b) = (Backend::named("a"), Backend::named("b"));
    let c = Backend::start_on(TcpListener::bind("127.0.0.2:0").unwrap(), |mut c| {
        let _ = c.write_all(b"c\n");
        let mut buf = [0u8; 64];
        while matches!(c.read(&mut buf), Ok(n) if n > 0) {}
    });
    let (sock, port) = (stats_socket(), free_port());
    let _d = tcp_proxy(&sock, port, &format!("  server s {}\n", a.addr()), "");
    assert!(all_on(port, "a"));
    assert_eq!(
        ask(&sock, &format!("set server l/s addr 127.0.0.1 port {}", b.port)),
        format!("no need to change the addr, port changed from '{}' to '{}' by 'stats socket command'\n\n", a.port, b.port)
    );
    assert!(all_on(port, "b"));
    assert_eq!(
        ask(&sock, &format!("set server l/s addr 127.0.0.2 port {}", c.port)),
        format!("IP changed from '127.0.0.1' to '127.0.0.2', port changed from '{}' to '{}' by 'stats socket command'\n\n", b.port, c.port)
    );
    assert!(all_on(port, "c"));
    assert_eq!(ask(&sock, "set server l/s addr 127.0.0.2"), "no need to change the addr by 'stats socket command'\n\n");
    assert!(ask(&sock, "show servers state").contains(" s 127.0.0.2 "));
    assert_eq!(ask(&sock, "set server l/s addr"), "set server <b>/<s> addr requires an address and optionally a port.\n\n");
    assert_eq!(ask(&sock, "set server l/s addr nowhere"), "Invalid addr 'nowhere'\n\n");
    assert_eq!(ask(&sock, "set server l/s addr 127.0.0.1 port x"), "problem converting port 'x' to an int\n\n");
    assert!(all_on(port, "c"), "a refused change changes nothing");
}

#[test]
fn set_server_addr_does_not_reuse_idle_connections_to_the_old_address() {
    let (one, seen_one) = http_backend(|_| ok_response("one"));
    let (two, _) = http_backend(|_| ok_response("two"));
    let (sock, port) = (stats_socket(), free_port());
    let cfg = format!(
        "global\n  nbthread 1\n  stats socket {} level admin\n{}",
        sock.display(),
        http_cfg(port, "", &format!("  http-reuse always\n  server s1 {}", one.addr()))
    );
    let _d = Sluiced::start(&cfg, &[port]);
    let get = || http_request(port, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").2;
    // Two requests on two client connections share one pooled server connection.
    assert_eq!(get(), b"one");
    assert_eq!(get(), b"one");
    assert_eq!(seen_one.lock().unwrap().connections, 1);
    assert!(ask(&sock, &format!("set server b/s1 addr 127.0.0.1 port {}", two.port)).starts_with("no need to change the addr, port changed"));
    for _ in 0..3 {
        assert_eq!(get(), b"two", "the idle connection to the old address is not reused");
    }
}

#[test]
fn added_server_with_check_goes_down_when_nothing_listens() {
    let a = Backend::named("a");
    let (sock, port) = (stats_socket(), free_port());
    let _d = tcp_proxy(&sock, port, &format!("  server a {}\n", a.addr()), "");
    let (dead, _dead_guard) = dead_port();
    assert_eq!(ask(&sock, &format!("add server l/c 127.0.0.1:{dead} check inter 100ms rise 1 fall 1")), "New server registered.\n\n");
    // Checks stay off until `enable health`; the server counts as up meanwhile.
    assert_eq!(ask(&sock, "enable server l/c"), "\n");
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(stat_status(&sock, "c").as_deref(), Some("UP"));
    assert_eq!(ask(&sock, "enable health l/c"), "\n");
    let until = Instant::now() + Duration::from_secs(5);
    while stat_status(&sock, "c").as_deref() != Some("DOWN") && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(stat_status(&sock, "c").as_deref(), Some("DOWN"));
    assert!(all_on(port, "a"), "a server down takes no traffic");
    // Deleting it stops its checks and removes it.
    assert_eq!(ask(&sock, "disable server l/c; del server l/c"), "\nServer deleted.\n\n");
    assert_eq!(stat_status(&sock, "c"), None);
}

#[test]
fn added_server_appears_in_prometheus_and_the_stats_page_until_deleted() {
    let a = Backend::named("a");
    let (sock, port, web) = (stats_socket(), free_port(), free_port());
    let extra =
        format!("frontend web\n  mode http\n  bind 127.0.0.1:{web}\n  stats uri /st\n  http-request use-service prometheus-exporter if {{ path /metrics }}\n");
    let _d = tcp_proxy(&sock, port, &format!("  server a {}\n", a.addr()), &extra);
    let get = |path: &str| String::from_utf8(http_request(web, format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes()).2).unwrap();
    let metric = "haproxy_server_status{proxy=\"l\",server=\"dyn\",state=\"MAINT\"} 1";
    assert!(!get("/metrics").contains(metric));
    assert_eq!(ask(&sock, "add server l/dyn 127.0.0.1:1"), "New server registered.\n\n");
    assert!(get("/metrics").contains(metric), "the new server is exported");
    assert!(get("/st;csv").lines().any(|l| l.starts_with("l,dyn,")), "and on the stats page");
    assert_eq!(ask(&sock, "del server l/dyn"), "Server deleted.\n\n");
    assert!(!get("/metrics").contains("server=\"dyn\""));
    assert!(!get("/st;csv").lines().any(|l| l.starts_with("l,dyn,")));
}
