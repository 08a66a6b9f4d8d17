//! Maps, ACL files and admission limits changed through the stats socket of the real daemon:
//! requests routed by a map, denied by an ACL file, connections held by a `maxconn` and counted
//! under a rate, all after runtime API commands on a unix socket.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::*;

/// An HTTP backend answering its name.
fn named_http(name: &'static str) -> Backend {
    http_backend(move |_| ok_response(name)).0
}

fn get(port: u16, host: &str, path: &str) -> (u16, String) {
    let (status, _, body) = http_request(port, format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n").as_bytes());
    (status, String::from_utf8_lossy(&body).into_owned())
}

struct Routed {
    _d: Sluiced,
    _backends: Vec<Backend>,
    port: u16,
    sock: PathBuf,
    map: PathBuf,
    list: PathBuf,
}

/// `use_backend %[req.hdr(host),map(hosts.map)]` over backends `one`, `two`, `dflt` (the
/// default), a `deny` for sources in `blocked.lst` and for paths in an inline ACL line.
fn routed() -> Routed {
    let (one, two, dflt) = (named_http("one"), named_http("two"), named_http("dflt"));
    let dir = temp_dir("maps");
    let (sock, map, list) = (dir.join("admin.sock"), dir.join("hosts.map"), dir.join("blocked.lst"));
    std::fs::write(&map, "# host backend\na.example one\n").unwrap();
    std::fs::write(&list, "# nobody yet\n192.0.2.1\n").unwrap();
    let port = free_port();
    let cfg = format!(
        "global\n  stats socket {sock} level admin\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n\
frontend f\n  bind 127.0.0.1:{port}\n  acl blocked src -f {list}\n  acl secret path /secret /hidden\n  http-request deny if blocked || secret\n\
  use_backend %[req.hdr(host),map({map},dflt)]\n  default_backend dflt\n\
backend one\n  server s {}\nbackend two\n  server s {}\nbackend dflt\n  server s {}\n",
        one.addr(),
        two.addr(),
        dflt.addr(),
        sock = sock.display(),
        list = list.display(),
        map = map.display(),
    );
    let d = Sluiced::start(&cfg, &[port]);
    Routed { _d: d, _backends: vec![one, two, dflt], port, sock, map, list }
}

#[test]
fn add_map_routes_the_new_host_and_del_set_clear_change_routing() {
    let r = routed();
    let m = r.map.display().to_string();
    assert_eq!(get(r.port, "a.example", "/").1, "one");
    assert_eq!(get(r.port, "b.example", "/").1, "dflt");
    assert_eq!(ask(&r.sock, &format!("add map {m} b.example two")), "\n");
    assert_eq!(get(r.port, "b.example", "/").1, "two");
    assert_eq!(ask(&r.sock, &format!("set map {m} a.example two")), "\n");
    assert_eq!(get(r.port, "a.example", "/").1, "two");
    assert_eq!(ask(&r.sock, &format!("del map {m} b.example")), "\n");
    assert_eq!(get(r.port, "b.example", "/").1, "dflt");
    assert_eq!(ask(&r.sock, &format!("del map {m} b.example")), "Key not found.\n\n");
    assert_eq!(ask(&r.sock, &format!("clear map {m}")), "\n");
    assert_eq!(get(r.port, "a.example", "/").1, "dflt");
    // The file itself is untouched: changes are in memory only.
    assert_eq!(std::fs::read_to_string(&r.map).unwrap(), "# host backend\na.example one\n");
}

#[test]
fn show_map_lists_files_with_ids_and_entries_by_reference() {
    let r = routed();
    let m = r.map.display().to_string();
    let list = ask(&r.sock, "show map");
    let mut lines = list.lines();
    assert_eq!(lines.next(), Some("# id (file) description"));
    let row = lines.next().unwrap();
    let id = row.split(' ').next().unwrap().to_owned();
    assert_eq!(row, format!("{id} ({m}) pattern loaded from file '{m}' used by map. curr_ver=0 next_ver=0 entry_cnt=1"));
    assert_eq!(lines.next(), Some(""));
    ask(&r.sock, &format!("add map #{id} b.example two"));
    let dump = ask(&r.sock, &format!("show map {m}"));
    let entries: Vec<&str> = dump.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(entries.len(), 2, "{dump}");
    for (e, want) in entries.iter().zip(["a.example one", "b.example two"]) {
        let (reference, rest) = e.split_once(' ').unwrap();
        assert!(reference.starts_with("0x") && u64::from_str_radix(&reference[2..], 16).is_ok(), "{e}");
        assert_eq!(rest, want);
    }
    assert_eq!(ask(&r.sock, &format!("show map #{id}")), dump);
    // An entry by its reference: `set` and `del` take `#<ref>`.
    let b_ref = entries[1].split(' ').next().unwrap();
    assert_eq!(ask(&r.sock, &format!("set map {m} #{b_ref} one")), "\n");
    assert_eq!(get(r.port, "b.example", "/").1, "one");
    assert_eq!(
        ask(&r.sock, &format!("get map {m} b.example")),
        "type=str, case=sensitive, found=yes, idx=tree, key=\"b.example\", value=\"one\", type=\"str\"\n\n"
    );
    assert_eq!(ask(&r.sock, &format!("get map {m} c.example")), "type=str, case=sensitive, found=no\n\n");
    assert_eq!(ask(&r.sock, &format!("del map {m} #{b_ref}")), "\n");
    assert_eq!(get(r.port, "b.example", "/").1, "dflt");
    assert_eq!(ask(&r.sock, "show map /nope.map"), "Unknown map identifier. Please use #<id> or <file>.\n\n");
    assert_eq!(
        ask(&r.sock, &format!("add map {m} k")),
        "'add map' expects three parameters (map identifier, key and value) or one parameter (map identifier) and a payload\n\n"
    );
    assert_eq!(ask(&r.sock, &format!("set map {m} nope x")), "entry not found.\n\n");
    assert_eq!(ask(&r.sock, &format!("show map @0 {m}")), ask(&r.sock, &format!("show map {m}")));
}

#[test]
fn add_acl_on_a_pattern_file_flips_a_deny_rule() {
    let r = routed();
    let l = r.list.display().to_string();
    assert_eq!(get(r.port, "a.example", "/").0, 200);
    assert_eq!(ask(&r.sock, &format!("add acl {l} 127.0.0.0/8")), "\n");
    assert_eq!(get(r.port, "a.example", "/").0, 403);
    assert_eq!(ask(&r.sock, &format!("get acl {l} 127.0.0.1")), "type=ip, case=sensitive, match=yes, idx=tree, pattern=\"127.0.0.0/8\"\n\n");
    assert_eq!(ask(&r.sock, &format!("del acl {l} 127.0.0.0/8")), "\n");
    assert_eq!(get(r.port, "a.example", "/").0, 200);
    assert_eq!(ask(&r.sock, &format!("get acl {l} 127.0.0.1")), "type=ip, case=sensitive, match=no\n\n");
    // A pattern the ACL cannot read is refused and changes nothing.
    let refused = ask(&r.sock, &format!("add acl {l} not-an-address"));
    assert!(refused.ends_with(".\n\n") && refused.len() > 3, "{refused}");
    assert_eq!(get(r.port, "a.example", "/").0, 200);
    assert_eq!(ask(&r.sock, &format!("add acl {l} 127.0.0.1")), "\n");
    assert_eq!(get(r.port, "a.example", "/").0, 403);
    assert_eq!(ask(&r.sock, &format!("clear acl {l}")), "\n");
    assert_eq!(get(r.port, "a.example", "/").0, 200);
}

#[test]
fn show_acl_lists_files_and_acl_lines_and_their_values_change() {
    let r = routed();
    let l = r.list.display().to_string();
    let list = ask(&r.sock, "show acl");
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines[0], "# id (file) description");
    let file_row = lines.iter().find(|x| x.contains(&format!("({l})"))).unwrap_or_else(|| panic!("{list}"));
    assert!(file_row.contains(&format!("pattern loaded from file '{l}' used by acl at file '")), "{file_row}");
    assert!(file_row.ends_with("line 10. curr_ver=0 next_ver=0 entry_cnt=1"), "{file_row}");
    let line_row = lines.iter().find(|x| x.contains("() acl 'path' file '") && x.contains("line 11.")).unwrap_or_else(|| panic!("{list}"));
    assert!(line_row.ends_with(". curr_ver=0 next_ver=0 entry_cnt=2"), "{line_row}");
    // The map is not an ACL.
    assert!(!list.contains("hosts.map"), "{list}");
    let id = line_row.split(' ').next().unwrap();
    let dump = ask(&r.sock, &format!("show acl #{id}"));
    let keys: Vec<&str> = dump.lines().filter(|x| !x.is_empty()).map(|x| x.split_once(' ').unwrap().1).collect();
    assert_eq!(keys, ["/secret", "/hidden"]);
    assert_eq!(get(r.port, "a.example", "/admin").0, 200);
    assert_eq!(ask(&r.sock, &format!("add acl #{id} /admin")), "\n");
    assert_eq!(get(r.port, "a.example", "/admin").0, 403);
    assert_eq!(get(r.port, "a.example", "/secret").0, 403);
    assert_eq!(ask(&r.sock, &format!("del acl #{id} /secret")), "\n");
    assert_eq!(get(r.port, "a.example", "/secret").0, 200);
    assert_eq!(ask(&r.sock, "show acl #999"), "Unknown ACL identifier. Please use #<id> or <file>.\n\n");
    assert_eq!(ask(&r.sock, "add acl #999"), "'add acl' expects two parameters: ACL identifier and pattern.\n\n");
}

/// A TCP frontend `f` in front of a backend that holds each connection open until the client
/// closes, counting them; `global` lines added.
fn held(global: &str) -> (Sluiced, Backend, u16, PathBuf) {
    let b = Backend::start(|mut c| {
        let _ = c.write_all(b"hi\n");
        let mut buf = [0u8; 64];
        while matches!(c.read(&mut buf), Ok(n) if n > 0) {}
    });
    let port = free_port();
    let sock = temp_dir("limits").join("admin.sock");
    let cfg = format!(
        "global\n  nbthread 1\n  stats socket {} level admin\n{global}defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\nfrontend f\n  bind 127.0.0.1:{port}\n  default_backend be\nbackend be\n  server s {}\n",
        sock.display(),
        b.addr()
    );
    (Sluiced::start(&cfg, &[port]), b, port, sock)
}

/// Connects and waits up to `within` for the backend's greeting.
fn greeted(port: u16, within: Duration) -> (TcpStream, bool) {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 3];
    let ok = c.read_exact(&mut buf).is_ok() && &buf == b"hi\n";
    (c, ok)
}

#[test]
fn set_maxconn_frontend_one_makes_a_second_connection_wait() {
    let (_d, _b, port, sock) = held("");
    assert_eq!(ask(&sock, "set maxconn frontend f 1"), "\n");
    let stat = ask(&sock, "show stat");
    let header: Vec<&str> = stat.lines().next().unwrap().trim_start_matches("# ").split(',').collect();
    let slim = header.iter().position(|c| *c == "slim").unwrap();
    let row: Vec<&str> = stat.lines().find(|l| l.starts_with("f,FRONTEND,")).unwrap().split(',').collect();
    assert_eq!(row[slim], "1");
    let (first, ok) = greeted(port, Duration::from_secs(5));
    assert!(ok, "the first connection is served");
    let (mut second, ok) = greeted(port, Duration::from_millis(500));
    assert!(!ok, "the second connection waits while the first is open");
    drop(first);
    second.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 3];
    second.read_exact(&mut buf).expect("served once the first closed");
    // Raising the limit lets two in at once.
    assert_eq!(ask(&sock, "set maxconn frontend f 2"), "\n");
    let (_third, ok) = greeted(port, Duration::from_secs(5));
    assert!(ok, "a second slot after 'set maxconn frontend f 2'");
    assert_eq!(ask(&sock, "set maxconn frontend nope 2"), "No such frontend.\n\n");
}

#[test]
fn set_maxconn_global_is_bounded_by_the_configured_one_and_shown_in_show_info() {
    let (_d, _b, port, sock) = held("  maxconn 50\n");
    assert_eq!(ask(&sock, "set maxconn global 51"), "Value out of range.\n\n");
    assert_eq!(ask(&sock, "set maxconn global 1"), "\n");
    let info = ask(&sock, "show info");
    assert!(info.contains("\nMaxconn: 1\n") && info.contains("\nHard_maxconn: 50\n"), "{info}");
    let (first, ok) = greeted(port, Duration::from_secs(5));
    assert!(ok);
    let (_second, ok) = greeted(port, Duration::from_millis(500));
    assert!(!ok, "the global limit of 1 holds the second connection");
    drop(first);
    assert_eq!(ask(&sock, "set maxconn global 0"), "\n");
    assert!(ask(&sock, "show info").contains("\nMaxconn: 50\n"));
}

#[test]
fn set_rate_limit_connections_bounds_connections_accepted_per_second() {
    let (_d, b, port, sock) = held("");
    assert_eq!(ask(&sock, "set rate-limit connections global 5"), "\n");
    assert!(ask(&sock, "show info").contains("\nConnRateLimit: 5\n"));
    // 40 connections opened at once over about 1.5 s: at most 5 per second get through, so at
    // most 5 in each of the (at most 3) seconds the window touches; without the limit all 40 would.
    let start = Instant::now();
    let mut conns = Vec::new();
    for _ in 0..40 {
        conns.push(TcpStream::connect(("127.0.0.1", port)).unwrap());
    }
    std::thread::sleep(Duration::from_millis(1500).saturating_sub(start.elapsed()));
    let accepted = b.accepted.load(std::sync::atomic::Ordering::Relaxed);
    let secs = start.elapsed().as_secs() + 2;
    assert!(accepted >= 1, "some connections are served");
    assert!(accepted as u64 <= 5 * secs, "{accepted} accepted in {:?}", start.elapsed());
    // Lifting the limit lets the rest in.
    assert_eq!(ask(&sock, "set rate-limit connections global 0"), "\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.accepted.load(std::sync::atomic::Ordering::Relaxed) < 40 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(b.accepted.load(std::sync::atomic::Ordering::Relaxed), 40);
    assert!(ask(&sock, "set rate-limit sessions global 7; show info").contains("\nSessRateLimit: 7\n"));
    assert!(ask(&sock, "set rate-limit foo global 1").starts_with("'set rate-limit' only supports :\n"));
}

#[test]
fn maxconnrate_in_global_limits_from_the_start() {
    let (_d, b, port, sock) = held("  maxconnrate 3\n");
    assert!(ask(&sock, "show info").contains("\nConnRateLimit: 3\n"));
    let start = Instant::now();
    let _conns: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(1200).saturating_sub(start.elapsed()));
    let accepted = b.accepted.load(std::sync::atomic::Ordering::Relaxed) as u64;
    assert!(accepted >= 1 && accepted <= 3 * (start.elapsed().as_secs() + 2), "{accepted}");
}

#[test]
fn rate_limit_sessions_bounds_a_frontends_new_sessions_per_second_over_both_workers_and_shows_in_show_stat() {
    let b = Backend::start(|mut c| {
        let _ = c.write_all(b"hi\n");
        let mut buf = [0u8; 64];
        while matches!(c.read(&mut buf), Ok(n) if n > 0) {}
    });
    let (port, free) = (free_port(), free_port());
    let sock = temp_dir("ratelimit").join("admin.sock");
    let cfg = format!(
        "global\n  nbthread 2\n  stats socket {} level admin\ndefaults\n  mode tcp\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n\
         frontend f\n  bind 127.0.0.1:{port}\n  rate-limit sessions 4\n  default_backend be\nfrontend other\n  bind 127.0.0.1:{free}\n  default_backend be\n\
         backend be\n  server s {}\n",
        sock.display(),
        b.addr()
    );
    let _d = Sluiced::start(&cfg, &[port, free]);
    // Another frontend is not limited: 10 at once are all served at once.
    let start = Instant::now();
    let others: Vec<(TcpStream, bool)> = (0..10).map(|_| greeted(free, Duration::from_secs(2))).collect();
    assert!(others.iter().all(|(_, ok)| *ok) && start.elapsed() < Duration::from_secs(2));
    drop(others);
    // 30 at once on the limited one, over about 1.5 s: at most 4 in each second the window touches.
    let before = b.accepted.load(std::sync::atomic::Ordering::Relaxed) as u64;
    let start = Instant::now();
    let _conns: Vec<TcpStream> = (0..30).map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(1500).saturating_sub(start.elapsed()));
    let accepted = b.accepted.load(std::sync::atomic::Ordering::Relaxed) as u64 - before;
    assert!(accepted >= 1 && accepted <= 4 * (start.elapsed().as_secs() + 2), "{accepted} sessions in {:?}", start.elapsed());
    let stat = ask(&sock, "show stat");
    let header: Vec<&str> = stat.lines().next().unwrap().trim_start_matches("# ").split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("no column {name}"));
    let row: Vec<&str> = stat.lines().find(|l| l.starts_with("f,FRONTEND,")).unwrap().split(',').collect();
    assert_eq!(row[col("rate_lim")], "4", "{stat}");
    let max: u64 = row[col("rate_max")].parse().unwrap();
    assert!((1..=4).contains(&max), "rate_max {max}");
    let other: Vec<&str> = stat.lines().find(|l| l.starts_with("other,FRONTEND,")).unwrap().split(',').collect();
    assert_eq!(other[col("rate_lim")], "0");
    assert!(other[col("rate_max")].parse::<u64>().unwrap() >= 5, "the unlimited frontend took its 10 in about one second: {stat}");
}
