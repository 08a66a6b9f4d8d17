//! Stick tables and rate limiting: the real daemon with `stick-table`, `track-sc*`, limits on the
//! stick fetches, the token bucket and the table commands of the stats socket, driven by real
//! clients and backends.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::*;

struct Http {
    _d: Sluiced,
    _b: Backend,
    port: u16,
    sock: PathBuf,
}

/// A `mode http` frontend `fe_http` with `frontend` lines in front of a backend answering 200,
/// `nbthread` workers and an admin stats socket.
fn http(nbthread: u32, frontend: &str) -> Http {
    let (b, _) = http_backend(|_| ok_response("ok"));
    let port = free_port();
    let sock = temp_dir("stick").join("s.sock");
    let cfg = format!(
        "global\n  nbthread {nbthread}\n  stats socket {} level admin\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\nfrontend fe_http\n  bind 127.0.0.1:{port}\n{frontend}\n  default_backend b\nbackend b\n  server s1 {}\n",
        sock.display(),
        b.addr()
    );
    let d = Sluiced::start(&cfg, &[port]);
    Http { _d: d, _b: b, port, sock }
}

/// One `GET <path>` on a new connection that closes after the answer.
fn get(port: u16, path: &str) -> (u16, String) {
    let (status, head, _) = http_request(port, format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes());
    (status, head)
}

/// Waits until `show table <name>` says no stream tracks any entry (a closed connection releases
/// its counters just after the client sees the close).
fn settled(sock: &Path, table: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = ask(sock, &format!("show table {table}"));
        if !out.contains(" use=") || out.lines().skip(1).all(|l| l.is_empty() || l.contains(" use=0 ")) || Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn request_rate_limit_denies_request_n_plus_one_across_two_workers() {
    let h = http(
        2,
        "  stick-table type ip size 1k expire 30s store http_req_rate(10s)\n  http-request track-sc0 src\n  http-request deny deny_status 429 if { sc_http_req_rate(0) gt 10 }",
    );
    // Every request on its own connection: SO_REUSEPORT spreads them over both workers, which
    // share the one table.
    for i in 1..=10 {
        assert_eq!(get(h.port, "/").0, 200, "request {i} is within the limit");
    }
    assert_eq!(get(h.port, "/").0, 429, "request 11 is over the limit");
    assert_eq!(get(h.port, "/").0, 429);
    let out = settled(&h.sock, "fe_http");
    assert!(out.contains(" http_req_rate(10000)=12\n"), "{out}");
}

#[test]
fn the_rate_window_slides_as_haproxy_weights_the_previous_period() {
    let h = http(
        1,
        "  stick-table type ip size 1k expire 30s store http_req_rate(2s)\n  http-request track-sc0 src\n  http-request deny deny_status 429 if { sc_http_req_rate(0) gt 10 }",
    );
    let t0 = Instant::now();
    for _ in 0..10 {
        assert_eq!(get(h.port, "/").0, 200);
    }
    assert_eq!(get(h.port, "/").0, 429);
    assert!(t0.elapsed() < Duration::from_millis(900), "the first burst must fit early in the first period");
    // 3 s after the first request the window still holds half of the previous period: 11 * 1/2
    // = 5 events, so 5 more requests pass (6 if the clock crossed one more millisecond share).
    std::thread::sleep(Duration::from_secs(3).saturating_sub(t0.elapsed()));
    let mut passed = 0;
    while get(h.port, "/").0 == 200 {
        passed += 1;
        assert!(passed < 11, "the previous period is not counted");
    }
    assert!((5..=6).contains(&passed), "{passed} requests passed");
}

#[test]
fn conn_cur_limits_concurrent_tcp_connections() {
    let b = Backend::echo();
    let port = free_port();
    let cfg = format!(
        "global\n  nbthread 2\ndefaults\n  mode tcp\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\nlisten l\n  bind 127.0.0.1:{port}\n  stick-table type ip size 1k store conn_cur,conn_cnt\n  tcp-request connection track-sc0 src\n  tcp-request connection reject if {{ sc_conn_cur(0) gt 2 }}\n  server s1 {}\n",
        b.addr()
    );
    let _d = Sluiced::start(&cfg, &[port]);
    let open = || {
        let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        c
    };
    let echoes = |c: &mut TcpStream| {
        if c.write_all(b"ping").is_err() {
            return false;
        }
        let mut buf = [0u8; 4];
        matches!(c.read_exact(&mut buf), Ok(())) && &buf == b"ping"
    };
    let mut a = open();
    let mut b2 = open();
    assert!(echoes(&mut a) && echoes(&mut b2), "two concurrent connections pass");
    let mut third = open();
    assert!(!echoes(&mut third), "the third concurrent connection is rejected");
    drop(a);
    // Once the first one has ended, there is room again.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = open();
        if echoes(&mut c) {
            break;
        }
        assert!(Instant::now() < deadline, "a closed connection must free its conn_cur");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(echoes(&mut b2));
}

#[test]
fn gpc0_ban_list_denies_a_client_after_three_bad_requests_until_cleared() {
    let h = http(
        2,
        "  stick-table type ip size 1k expire 30s store gpc0\n  http-request track-sc0 src\n  http-request deny if { sc_get_gpc0(0) gt 2 }\n  http-request sc-inc-gpc0(0) if { path_beg /bad }",
    );
    assert_eq!(get(h.port, "/good").0, 200);
    for _ in 0..3 {
        assert_eq!(get(h.port, "/bad").0, 200);
    }
    assert_eq!(get(h.port, "/good").0, 403, "banned after three bad requests");
    let out = settled(&h.sock, "fe_http");
    assert!(out.contains(" gpc0=3\n"), "{out}");
    assert_eq!(ask(&h.sock, "clear table fe_http key 127.0.0.1"), "\n");
    assert_eq!(get(h.port, "/good").0, 200, "clearing the entry lifts the ban");
}

#[test]
fn http_response_track_sc_keys_on_the_response_and_counts_its_status_not_the_request() {
    // The server names the user in a response header; the status depends on the path.
    let (b, _) = http_backend(|req| {
        let req = String::from_utf8_lossy(req);
        let user = if req.contains("/u/bob") { "bob" } else { "alice" };
        let status = if req.contains("/missing") {
            "404 Not Found"
        } else if req.contains("/boom") {
            "503 Service Unavailable"
        } else {
            "200 OK"
        };
        format!("HTTP/1.1 {status}\r\nx-user: {user}\r\ncontent-length: 2\r\n\r\nok").into_bytes()
    });
    let port = free_port();
    let sock = temp_dir("stick-res").join("s.sock");
    let cfg = format!(
        "global\n  stats socket {} level admin\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\nfrontend fe_http\n  bind 127.0.0.1:{port}\n  \
         stick-table type string len 16 size 1k store conn_cnt,http_req_cnt,http_err_cnt,http_fail_cnt,gpc0\n  \
         http-response track-sc1 res.hdr(x-user)\n  http-response sc-inc-gpc0(1)\n  \
         http-response set-header x-errors %[sc_http_err_cnt(1)]\n  default_backend b\nbackend b\n  server s1 {}\n",
        sock.display(),
        b.addr()
    );
    let _d = Sluiced::start(&cfg, &[port]);
    assert_eq!(get(port, "/u/alice/ok").0, 200);
    assert_eq!(get(port, "/u/alice/missing").0, 404);
    let (status, head) = get(port, "/u/alice/missing");
    assert_eq!(status, 404);
    assert!(head.to_ascii_lowercase().contains("x-errors: 2\r\n"), "the response's own status is counted before the later rules: {head}");
    assert_eq!(get(port, "/u/bob/boom").0, 503);
    let out = settled(&sock, "fe_http");
    let row = |key: &str| out.lines().find(|l| l.contains(&format!(" key={key} "))).unwrap_or_else(|| panic!("no {key} in {out}")).to_string();
    let has = |key: &str, fields: &[&str]| {
        let r = row(key) + " ";
        for f in fields {
            assert!(r.contains(&format!(" {f} ")), "{key}: {f} in {out}");
        }
    };
    has("alice", &["conn_cnt=3", "http_req_cnt=0", "http_err_cnt=2", "http_fail_cnt=0", "gpc0=3"]);
    has("bob", &["conn_cnt=1", "http_req_cnt=0", "http_err_cnt=0", "http_fail_cnt=1", "gpc0=1"]);
}

#[test]
fn table_expire_and_table_idle_read_an_entrys_timers() {
    let h = http(
        1,
        "  stick-table type ip size 1k expire 10s store http_req_cnt\n  http-request track-sc0 src\n  \
         http-request return status 200 content-type text/plain lf-string \"%[src,table_expire(fe_http)] %[src,table_idle(fe_http)] %[str(10.9.9.9),table_expire(fe_http,-1)] %[str(10.9.9.9),table_idle(fe_http)]\"",
    );
    let (status, _, body) = http_request(h.port, b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    assert_eq!(status, 200);
    let body = String::from_utf8(body).unwrap();
    let f: Vec<&str> = body.split(' ').collect();
    let expire: i64 = f[0].parse().unwrap_or_else(|_| panic!("{body}"));
    let idle: i64 = f[1].parse().unwrap_or_else(|_| panic!("{body}"));
    assert!((9_000..=10_000).contains(&expire), "the entry was just touched: {body}");
    assert!((0..1_000).contains(&idle), "{body}");
    assert_eq!(f[2], "-1", "a key not in the table gives the default: {body}");
    assert_eq!(f[3], "-", "and no sample without a default: {body}");
}

#[test]
fn set_table_bans_a_key_from_the_stats_socket() {
    let h = http(1, "  stick-table type ip size 1k store gpc0\n  http-request track-sc0 src\n  http-request deny if { sc_get_gpc0(0) gt 0 }");
    assert_eq!(get(h.port, "/").0, 200);
    assert_eq!(ask(&h.sock, "set table fe_http key 127.0.0.1 data.gpc0 1"), "\n");
    assert_eq!(get(h.port, "/").0, 403);
    assert_eq!(ask(&h.sock, "set table fe_http key 127.0.0.1 data.gpc0 0"), "\n");
    assert_eq!(get(h.port, "/").0, 200);
    assert_eq!(ask(&h.sock, "set table nope key 1.2.3.4"), "No such table\n\n");
}

#[test]
fn entries_expire_after_the_table_expire_time() {
    let h = http(1, "  stick-table type ip size 1k expire 1s store http_req_cnt\n  http-request track-sc0 src");
    assert_eq!(get(h.port, "/").0, 200);
    let out = settled(&h.sock, "fe_http");
    assert!(out.starts_with("# table: fe_http, type: ip, size:1024, used:1\n"), "{out}");
    assert!(out.contains(" http_req_cnt=1\n"), "{out}");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(ask(&h.sock, "show table fe_http"), "# table: fe_http, type: ip, size:1024, used:0\n\n");
}

#[test]
fn show_table_output_matches_haproxy_byte_for_byte() {
    let h = http(1, "  stick-table type ip size 100k expire 30s store gpc0,conn_cur,http_req_rate(10s)\n  http-request track-sc0 src");
    for _ in 0..4 {
        assert_eq!(get(h.port, "/").0, 200);
    }
    let listing = ask(&h.sock, "show table");
    let dump = settled(&h.sock, "fe_http");
    // The entry's address and its remaining time differ from run to run: check their form, then
    // put the sample's values in their place.
    let line = dump.lines().nth(1).unwrap_or_default().to_owned();
    let (ptr, rest) = line.split_once(": key=").unwrap_or_else(|| panic!("{dump}"));
    assert!(ptr.starts_with("0x") && ptr.len() > 2 && ptr[2..].chars().all(|c| c.is_ascii_hexdigit()), "{ptr}");
    let exp: u64 = rest.split(" exp=").nth(1).and_then(|r| r.split(' ').next()).and_then(|e| e.parse().ok()).unwrap();
    assert!((25_000..=30_000).contains(&exp), "{exp}");
    let normalized = dump.replacen(ptr, "0x560c1e4ddf38", 1).replacen(&format!(" exp={exp} "), " exp=29980 ", 1);
    let sample = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/reference/haproxy/sample_show_table.txt"))
        .or_else(|_| std::fs::read_to_string("/work/shared/reference/haproxy/sample_show_table.txt"))
        .expect("the HAProxy sample");
    assert_eq!(format!("{listing}{normalized}"), sample);
}

#[test]
fn show_table_filters_on_data_and_key() {
    let h = http(1, "  stick-table type string len 16 size 1k store http_req_cnt\n  http-request track-sc0 req.hdr(x-user)");
    for (user, n) in [("alice", 3), ("bob", 1)] {
        for _ in 0..n {
            let (status, _, _) = http_request(h.port, format!("GET / HTTP/1.1\r\nhost: x\r\nx-user: {user}\r\nconnection: close\r\n\r\n").as_bytes());
            assert_eq!(status, 200);
        }
    }
    settled(&h.sock, "fe_http");
    let busy = ask(&h.sock, "show table fe_http data.http_req_cnt gt 2");
    assert!(busy.contains(" key=alice ") && !busy.contains("key=bob"), "{busy}");
    let bob = ask(&h.sock, "show table fe_http key bob");
    assert!(bob.contains(" key=bob ") && bob.contains(" http_req_cnt=1\n") && !bob.contains("alice"), "{bob}");
    assert_eq!(ask(&h.sock, "show table fe_http data.nope gt 1"), "Unknown data type\n\n");
    assert_eq!(ask(&h.sock, "clear table fe_http data.http_req_cnt lt 2"), "\n");
    assert!(ask(&h.sock, "show table fe_http").starts_with("# table: fe_http, type: string, size:1024, used:1\n"));
}

#[test]
fn token_bucket_allows_the_burst_then_the_steady_rate_and_answers_429_with_retry_after() {
    let h = http(2, "  stick-table type ip size 1k store token_bucket(5/1s,3)\n  http-request track-sc0 src\n  http-request sc-take-token(0)");
    for i in 0..3 {
        assert_eq!(get(h.port, "/").0, 200, "burst request {i}");
    }
    let (status, head) = get(h.port, "/");
    assert_eq!(status, 429);
    assert!(head.to_ascii_lowercase().contains("\r\nretry-after: 1\r\n"), "{head}");
    // Steady: one request every 250 ms is under 5 a second and always passes.
    std::thread::sleep(Duration::from_millis(1000));
    for i in 0..8 {
        let t = Instant::now();
        assert_eq!(get(h.port, "/").0, 200, "steady request {i}");
        std::thread::sleep(Duration::from_millis(250).saturating_sub(t.elapsed()));
    }
}

#[test]
fn token_bucket_rejects_tcp_connections_over_the_rate() {
    let b = Backend::echo();
    let port = free_port();
    let cfg = format!(
        "defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\nlisten l\n  bind 127.0.0.1:{port}\n  stick-table type ip size 1k store token_bucket(1/10s,2)\n  tcp-request connection track-sc0 src\n  tcp-request connection sc-take-token(0)\n  server s1 {}\n",
        b.addr()
    );
    let _d = Sluiced::start(&cfg, &[port]);
    let echoes = || {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut buf = [0u8; 2];
        c.write_all(b"hi").is_ok() && c.read_exact(&mut buf).is_ok()
    };
    assert!(echoes() && echoes(), "the burst of two passes");
    assert!(!echoes(), "the third connection is rejected");
}

#[test]
fn a_flood_of_one_shot_keys_never_frees_a_limited_client_and_memory_stays_bounded() {
    let h = http(
        2,
        "  stick-table type string len 32 size 100 expire 60s store http_req_cnt\n  http-request track-sc0 req.hdr(x-key)\n  http-request deny deny_status 429 if { sc_http_req_cnt(0) gt 5 }",
    );
    let mut victim = TcpStream::connect(("127.0.0.1", h.port)).unwrap();
    let ask_as = |c: &mut TcpStream, key: &str| {
        c.write_all(format!("GET / HTTP/1.1\r\nhost: x\r\nx-key: {key}\r\n\r\n").as_bytes()).unwrap();
        read_response(c).0
    };
    for _ in 0..5 {
        assert_eq!(ask_as(&mut victim, "victim"), 200);
    }
    assert_eq!(ask_as(&mut victim, "victim"), 429);
    // Ten times the table's size in fresh keys, on two connections (one per worker at least
    // sometimes), while the limited client keeps asking.
    let mut flooders = [TcpStream::connect(("127.0.0.1", h.port)).unwrap(), TcpStream::connect(("127.0.0.1", h.port)).unwrap()];
    for i in 0..1000 {
        let c = &mut flooders[i % 2];
        assert_eq!(ask_as(c, &format!("flood-{i}")), 200);
        if i % 50 == 49 {
            assert_eq!(ask_as(&mut victim, "victim"), 429, "the limited client got free after {i} one-shot keys");
        }
    }
    let out = ask(&h.sock, "show table fe_http");
    let used: usize = out.lines().next().and_then(|l| l.rsplit("used:").next()).and_then(|n| n.parse().ok()).unwrap();
    assert!(used <= 100, "{used} entries in a table of 100");
    assert_eq!(out.lines().count(), used + 2, "{out}");
    assert!(out.contains(" key=victim "), "{out}");
}

#[test]
fn src_fetches_and_table_converters_read_the_table() {
    let h = http(
        1,
        "  stick-table type ip size 1k store http_req_cnt,conn_cnt\n  http-request track-sc1 src\n  http-request return status 200 content-type text/plain lf-string \"%[src_http_req_cnt] %[src,table_http_req_cnt(fe_http)] %[src,in_table(fe_http)] %[sc1_tracked] %[sc0_tracked] %[table_cnt] %[sc1_trackers]\"",
    );
    let (status, _, body) = http_request(h.port, b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    assert_eq!(status, 200);
    assert_eq!(String::from_utf8_lossy(&body), "1 1 1 1 0 1 1");
}

#[test]
fn stick_on_src_sends_a_client_back_to_the_server_it_first_got() {
    let (a, b) = (Backend::named("a"), Backend::named("b"));
    let port = free_port();
    let sock = temp_dir("stick").join("s.sock");
    let cfg = format!(
        "global\n  nbthread 2\n  stats socket {} level admin\ndefaults\n  mode tcp\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\nlisten l\n  bind 127.0.0.1:{port}\n  balance roundrobin\n  stick-table type ip size 1k expire 30s\n  stick on src\n  server a {}\n  server b {}\n",
        sock.display(),
        a.addr(),
        b.addr()
    );
    let _d = Sluiced::start(&cfg, &[port]);
    let first = which_server(port);
    for _ in 0..6 {
        assert_eq!(which_server(port), first, "round robin would alternate; stick on src keeps the server");
    }
    let out = ask(&sock, "show table l");
    let id = if first == "a" { 1 } else { 2 };
    assert!(out.contains(" key=127.0.0.1 use=0 exp=") && out.ends_with(&format!(" server_id={id}\n\n")), "{out}");
    // The stored server can be changed from the stats socket.
    let other = 3 - id;
    assert_eq!(ask(&sock, &format!("set table l key 127.0.0.1 data.server_id {other}")), "\n");
    let expected = if other == 1 { "a" } else { "b" };
    for _ in 0..3 {
        assert_eq!(which_server(port), expected);
    }
}

#[test]
fn stick_store_response_and_match_route_a_session_to_the_server_that_issued_it() {
    let (a, _) = http_backend(|_| b"HTTP/1.1 200 OK\r\nx-sid: A\r\ncontent-length: 1\r\n\r\na".to_vec());
    let (b, _) = http_backend(|_| b"HTTP/1.1 200 OK\r\nx-sid: B\r\ncontent-length: 1\r\n\r\nb".to_vec());
    let port = free_port();
    let cfg = format!(
        "defaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\nfrontend f\n  bind 127.0.0.1:{port}\n  default_backend be\nbackend be\n  balance roundrobin\n  stick-table type string len 8 size 1k expire 30s\n  stick match req.hdr(x-sid)\n  stick store-response res.hdr(x-sid)\n  server a {}\n  server b {}\n",
        a.addr(),
        b.addr()
    );
    let _d = Sluiced::start(&cfg, &[port]);
    let body = |sid: Option<&str>| {
        let hdr = sid.map(|s| format!("x-sid: {s}\r\n")).unwrap_or_default();
        String::from_utf8(http_request(port, format!("GET / HTTP/1.1\r\nhost: x\r\n{hdr}connection: close\r\n\r\n").as_bytes()).2).unwrap()
    };
    // Round robin hands out both sessions.
    let mut seen = vec![body(None), body(None)];
    seen.sort();
    assert_eq!(seen, ["a", "b"]);
    for _ in 0..4 {
        assert_eq!(body(Some("B")), "b");
        assert_eq!(body(Some("A")), "a");
    }
}

#[test]
fn tcp_sessions_count_connections_and_bytes_in_the_tracked_entry() {
    let b = Backend::echo();
    let port = free_port();
    let sock = temp_dir("stick").join("s.sock");
    let cfg = format!(
        "global\n  stats socket {} level admin\ndefaults\n  mode tcp\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\nlisten l\n  bind 127.0.0.1:{port}\n  stick-table type ip size 1k store conn_cnt,conn_cur,sess_cnt,bytes_in_cnt,bytes_out_cnt\n  tcp-request content track-sc2 src\n  server s1 {}\n",
        sock.display(),
        b.addr()
    );
    let _d = Sluiced::start(&cfg, &[port]);
    for _ in 0..2 {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        c.write_all(b"hello").unwrap();
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = ask(&sock, "show table l");
        if out.contains(" conn_cnt=2 conn_cur=0 sess_cnt=2 bytes_in_cnt=10 bytes_out_cnt=10\n") {
            break;
        }
        assert!(Instant::now() < deadline, "{out}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn prometheus_exports_table_size_and_use() {
    let h = http(
        1,
        "  stick-table type ip size 1k store http_req_cnt\n  http-request track-sc0 src\n  http-request use-service prometheus-exporter if { path /metrics }",
    );
    let (status, _, body) = http_request(h.port, b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("# TYPE haproxy_sticktable_size gauge\nhaproxy_sticktable_size{name=\"fe_http\",type=\"ip\"} 1024\n"), "{text}");
    assert!(text.contains("haproxy_sticktable_used{name=\"fe_http\",type=\"ip\"} 1\n"), "{text}");
}
