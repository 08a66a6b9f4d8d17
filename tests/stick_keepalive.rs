//! Stick-table tracking on kept-alive connections. Every request of such a connection usually
//! tracks the same key, and the connection keeps the entry between its requests to take it again
//! without a lookup (`src/stick/track.rs`): the counts, the limits and `show table` must be those
//! of requests each on its own connection, and an entry cleared or expired between two requests
//! must be replaced by a new one, not go on counting out of the table.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::*;

struct Http {
    _d: Sluiced,
    _b: Backend,
    port: u16,
    sock: PathBuf,
}

/// A `mode http` frontend `fe_http` with `frontend` lines in front of a backend answering 200, one
/// worker and an admin stats socket.
fn http(frontend: &str) -> Http {
    let (b, _) = http_backend(|_| ok_response("ok"));
    let port = free_port();
    let sock = temp_dir("stick-ka").join("s.sock");
    let cfg = format!(
        "global\n  nbthread 1\n  stats socket {} level admin\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\nfrontend fe_http\n  bind 127.0.0.1:{port}\n{frontend}\n  default_backend b\nbackend b\n  server s1 {}\n",
        sock.display(),
        b.addr()
    );
    let d = Sluiced::start(&cfg, &[port]);
    Http { _d: d, _b: b, port, sock }
}

/// A `GET <path>` on a kept-alive connection: the status.
fn get(c: &mut TcpStream, path: &str) -> u16 {
    c.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes()).unwrap();
    read_response(c).0
}

fn connect(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port)).unwrap()
}

/// The one entry line of `show table fe_http` (with the header checked for `used:1`), once no
/// stream tracks it: the proxy releases it just after the client has the response.
fn entry(h: &Http) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = ask(&h.sock, "show table fe_http");
        assert!(out.starts_with("# table: fe_http, type: ip, size:1024, used:1\n"), "{out}");
        let line = out.lines().nth(1).unwrap_or_default().to_owned();
        if line.contains(" use=0 ") || Instant::now() > deadline {
            return line;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn requests_of_kept_alive_connections_count_in_one_entry_and_the_limit_holds() {
    let h = http(
        "  stick-table type ip size 1k expire 30s store http_req_cnt,http_req_rate(10s)\n  http-request track-sc0 src\n  http-request deny deny_status 429 if { sc_http_req_rate(0) gt 10 }",
    );
    let (mut a, mut b) = (connect(h.port), connect(h.port));
    for i in 1..=5 {
        assert_eq!(get(&mut a, "/"), 200, "request {i} of a");
        assert_eq!(get(&mut b, "/"), 200, "request {i} of b");
        // Between two requests no stream tracks the entry, though both connections are open.
        let line = entry(&h);
        assert!(line.contains(" use=0 ") && line.ends_with(&format!(" http_req_cnt={} http_req_rate(10000)={}", 2 * i, 2 * i)), "{line}");
    }
    assert_eq!(get(&mut a, "/"), 429, "request 11 is over the limit");
    assert!(entry(&h).ends_with(" http_req_cnt=11 http_req_rate(10000)=11"));
}

#[test]
fn an_entry_cleared_between_two_requests_of_a_connection_is_replaced() {
    let h = http(
        "  stick-table type ip size 1k expire 30s store gpc0,http_req_cnt\n  http-request track-sc0 src\n  http-request sc-inc-gpc0(0) if { path /bad }\n  http-request deny if { sc_get_gpc0(0) gt 0 }",
    );
    let mut c = connect(h.port);
    assert_eq!(get(&mut c, "/"), 200);
    assert_eq!(get(&mut c, "/"), 200);
    assert!(entry(&h).ends_with(" gpc0=0 http_req_cnt=2"));
    assert_eq!(ask(&h.sock, "clear table fe_http"), "\n");
    assert!(ask(&h.sock, "show table fe_http").starts_with("# table: fe_http, type: ip, size:1024, used:0\n"));
    // The connection's next request counts in a new entry, the one `show table` lists.
    assert_eq!(get(&mut c, "/"), 200);
    assert!(entry(&h).ends_with(" gpc0=0 http_req_cnt=1"));
    let mut c = connect(h.port);
    // Banned, then cleared: the next request of the same connection passes.
    assert_eq!(get(&mut c, "/bad"), 403);
    assert_eq!(get(&mut c, "/"), 403);
    assert!(entry(&h).ends_with(" gpc0=1 http_req_cnt=3"));
    assert_eq!(ask(&h.sock, "clear table fe_http key 127.0.0.1"), "\n");
    assert_eq!(get(&mut c, "/"), 200, "clearing the entry lifts the ban");
    assert!(entry(&h).ends_with(" gpc0=0 http_req_cnt=1"));
}

#[test]
fn an_entry_expired_between_two_requests_of_a_connection_is_replaced() {
    let h = http("  stick-table type ip size 1k expire 1s store http_req_cnt\n  http-request track-sc0 src");
    let mut c = connect(h.port);
    assert_eq!(get(&mut c, "/"), 200);
    assert_eq!(get(&mut c, "/"), 200);
    assert!(entry(&h).ends_with(" http_req_cnt=2"));
    // Expired but still in the table (nothing looked at it meanwhile): the next request of the
    // connection finds it expired and starts a new one.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(get(&mut c, "/"), 200);
    assert!(entry(&h).ends_with(" http_req_cnt=1"));
    // Expired and purged by `show table`.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(ask(&h.sock, "show table fe_http"), "# table: fe_http, type: ip, size:1024, used:0\n\n");
    assert_eq!(get(&mut c, "/"), 200);
    assert!(entry(&h).ends_with(" http_req_cnt=1"));
}
