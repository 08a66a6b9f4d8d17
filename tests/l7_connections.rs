//! `mode http`: what happens to connections and messages around the rules: `monitor-uri`, dynamic
//! `use_backend`, `tune.bufsize`, `pool-max-conn`, draining a denied request's body, `Upgrade:
//! h2c`, `CONNECT` tunnels, `option http-buffer-request`, `wait-for-body` and `option abortonclose`. Raw-socket
//! clients against the real binary and backends written here.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::*;

fn lower(s: &[u8]) -> String {
    String::from_utf8_lossy(s).to_ascii_lowercase()
}

#[test]
fn monitor_uri_answers_200_without_reaching_the_server() {
    let (be, seen) = http_backend(|_| ok_response("app"));
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, "  monitor-uri /healthz\n  http-request deny", &format!("  server s {}", be.addr())), &[port]);
    // Answered before the rules: the deny-everything rule does not see it.
    let (status, _, body) = http_request(port, b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("200 OK"), "{:?}", String::from_utf8_lossy(&body));
    // An absolute target with that path matches too; another path does not.
    assert_eq!(http_request(port, b"GET http://h/healthz HTTP/1.1\r\nHost: h\r\n\r\n").0, 200);
    assert_eq!(http_request(port, b"GET /healthz2 HTTP/1.1\r\nHost: h\r\n\r\n").0, 403);
    assert!(seen.lock().unwrap().requests.is_empty());
}

#[test]
fn monitor_fail_makes_monitor_uri_answer_503() {
    let (be, _) = http_backend(|_| ok_response("app"));
    let port = free_port();
    let fe = "  monitor-uri /healthz\n  acl site_dead nbsrv(b) lt 1\n  monitor fail if site_dead";
    let _s = Sluiced::start(&http_cfg(port, fe, &format!("  server s {} disabled", be.addr())), &[port]);
    let (status, _, _) = http_request(port, b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(status, 503);
}

#[test]
fn dynamic_use_backend_routes_by_the_evaluated_name_and_falls_back_to_default() {
    let (a, a_seen) = http_backend(|_| ok_response("pool-a"));
    let (b, _) = http_backend(|_| ok_response("default"));
    let port = free_port();
    let cfg = format!(
        "defaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\nfrontend f\n  bind 127.0.0.1:{port}\n  use_backend be_%[req.hdr(x-pool),lower]\n  default_backend b\nbackend be_a\n  server s {}\nbackend b\n  server s {}\n",
        a.addr(),
        b.addr()
    );
    let _s = Sluiced::start(&cfg, &[port]);
    let (_, _, body) = http_request(port, b"GET / HTTP/1.1\r\nHost: h\r\nX-Pool: A\r\n\r\n");
    assert_eq!(body, b"pool-a");
    let (_, _, body) = http_request(port, b"GET / HTTP/1.1\r\nHost: h\r\nX-Pool: nosuch\r\n\r\n");
    assert_eq!(body, b"default");
    let (_, _, body) = http_request(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(body, b"default");
    assert_eq!(a_seen.lock().unwrap().requests.len(), 1);
}

#[test]
fn tune_bufsize_bounds_the_request_head() {
    let (be, seen) = http_backend(|_| ok_response("ok"));
    let port = free_port();
    let cfg = format!("global\n  tune.bufsize 4096\n  tune.maxrewrite 1024\n{}", http_cfg(port, "", &format!("  server s {}", be.addr())));
    let _s = Sluiced::start(&cfg, &[port]);
    // 3000 bytes of head fit in 4096 - 1024; 3500 do not.
    let fits = format!("GET / HTTP/1.1\r\nHost: h\r\nX-Pad: {}\r\n\r\n", "a".repeat(2950));
    assert_eq!(http_request(port, fits.as_bytes()).0, 200);
    let too_big = format!("GET / HTTP/1.1\r\nHost: h\r\nX-Pad: {}\r\n\r\n", "a".repeat(3500));
    assert_eq!(http_request(port, too_big.as_bytes()).0, 431);
    assert_eq!(seen.lock().unwrap().requests.len(), 1);
}

#[test]
fn pool_max_conn_zero_keeps_no_idle_server_connection() {
    let (be, seen) = http_backend(|_| ok_response("k"));
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, "", &format!("  server s {} pool-max-conn 0", be.addr())), &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    for _ in 0..5 {
        c.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut c).0, 200);
    }
    assert_eq!(seen.lock().unwrap().connections, 5, "no connection may be kept for reuse");
}

/// `max-reuse 2`: a server connection carries at most three requests (the first and two
/// reuses), so nine requests in a row need three connections; `max-reuse 0` needs one per request.
#[test]
fn max_reuse_bounds_the_requests_one_server_connection_carries() {
    for (max_reuse, connections) in [(2, 3), (0, 9)] {
        let (be, seen) = http_backend(|_| ok_response("k"));
        let port = free_port();
        let _s = Sluiced::start(&http_cfg(port, "", &format!("  server s {} max-reuse {max_reuse}", be.addr())), &[port]);
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        for _ in 0..9 {
            c.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
            assert_eq!(read_response(&mut c).0, 200);
        }
        let seen = seen.lock().unwrap();
        assert_eq!((seen.requests.len(), seen.connections), (9, connections), "max-reuse {max_reuse}");
    }
}

#[test]
fn a_denied_request_body_is_drained_and_the_next_request_is_served() {
    let (be, seen) = http_backend(|req| ok_response(&format!("{}", req.len())));
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, "  http-request deny if { path /deny }", &format!("  server s {}", be.addr())), &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // The body looks like a request: it must never be taken for one.
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n";
    c.write_all(format!("POST /deny HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n", smuggled.len()).as_bytes()).unwrap();
    let (status, head, _) = read_response(&mut c);
    assert_eq!(status, 403);
    assert!(!lower(head.as_bytes()).contains("connection: close"), "{head}");
    c.write_all(smuggled.as_bytes()).unwrap();
    c.write_all(b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut c).0, 200);
    let s = seen.lock().unwrap();
    assert_eq!(s.requests.len(), 1);
    assert!(s.requests[0].starts_with(b"GET /next "), "{:?}", String::from_utf8_lossy(&s.requests[0]));
}

#[test]
fn a_denied_chunked_body_is_drained_with_its_framing_checked() {
    let (be, seen) = http_backend(|_| ok_response("next"));
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, "  http-request deny if { path /deny }", &format!("  server s {}", be.addr())), &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"POST /deny HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut c).0, 403);
    // The next request only after the answer: `read_response` drops bytes read past a response,
    // so two answers arriving in one read would lose the second.
    c.write_all(b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    let (status, _, body) = read_response(&mut c);
    assert_eq!((status, body.as_slice()), (200, b"next".as_slice()));
    assert_eq!(seen.lock().unwrap().requests.len(), 1);
}

#[test]
fn a_denied_request_with_a_body_too_large_to_drain_closes_the_connection() {
    let (be, seen) = http_backend(|_| ok_response("x"));
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, "  http-request deny", &format!("  server s {}", be.addr())), &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100000000\r\n\r\nsome").unwrap();
    let got = read_to_end(&mut c, Duration::from_secs(5)).unwrap_or_default();
    let text = lower(&got);
    assert!(text.starts_with("http/1.1 403") && text.contains("connection: close"), "{text}");
    assert!(seen.lock().unwrap().requests.is_empty());
}

#[test]
fn upgrade_h2c_is_removed_before_the_request_reaches_the_server() {
    let (be, seen) = http_backend(|_| ok_response("h1"));
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, "", &format!("  server s {}", be.addr())), &[port]);
    let (status, _, body) = http_request(
        port,
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    );
    assert_eq!((status, body.as_slice()), (200, b"h1".as_slice()));
    let req = lower(&seen.lock().unwrap().requests[0]);
    assert!(!req.contains("h2c") && !req.contains("http2-settings") && !req.contains("upgrade"), "{req}");
}

#[test]
fn a_101_without_an_upgrade_offer_gets_502() {
    let be = Backend::start(|mut c| {
        let mut b = [0u8; 4096];
        let _ = c.read(&mut b);
        let _ = c.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
        std::thread::sleep(Duration::from_millis(300));
    });
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, "", &format!("  server s {}", be.addr())), &[port]);
    assert_eq!(http_request(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").0, 502);
}

#[test]
fn connect_becomes_a_tunnel_after_a_2xx() {
    let be = Backend::start(|mut c| {
        let mut b = [0u8; 4096];
        let n = c.read(&mut b).unwrap_or(0);
        assert!(b[..n].starts_with(b"CONNECT db.internal:5432 HTTP/1.1\r\n"), "{:?}", String::from_utf8_lossy(&b[..n]));
        let _ = c.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
        loop {
            match c.read(&mut b) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let mut out = b"echo:".to_vec();
                    out.extend_from_slice(&b[..n]);
                    if c.write_all(&out).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, "", &format!("  timeout tunnel 5s\n  server s {}", be.addr())), &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"CONNECT db.internal:5432 HTTP/1.1\r\nHost: db.internal:5432\r\n\r\n").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = vec![0u8; 4096];
    let n = c.read(&mut b).unwrap();
    assert!(b[..n].starts_with(b"HTTP/1.1 200"), "{:?}", String::from_utf8_lossy(&b[..n]));
    // Bytes that are not HTTP go through both ways.
    c.write_all(b"\x00\x01raw").unwrap();
    let mut echo = [0u8; 10];
    c.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"echo:\x00\x01raw");
}

#[test]
fn http_buffer_request_lets_rules_match_the_body() {
    let (be, seen) = http_backend(|_| ok_response("stored"));
    let port = free_port();
    let fe = "  option http-buffer-request\n  http-request deny if { req.body -m sub secret }";
    let _s = Sluiced::start(&http_cfg(port, fe, &format!("  server s {}", be.addr())), &[port]);
    // The body arrives after the head, in two pieces: the rule still sees all of it.
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    c.write_all(b"my se").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    c.write_all(b"cret!!!").unwrap();
    assert_eq!(read_response(&mut c).0, 403);
    // A chunked body is matched de-chunked, and an innocent one reaches the server intact.
    let (status, _, _) = http_request(port, b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nsec\r\n3\r\nret\r\n0\r\n\r\n");
    assert_eq!(status, 403);
    let (status, _, _) = http_request(port, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(status, 200);
    let s = seen.lock().unwrap();
    assert_eq!(s.requests.len(), 1);
    assert!(s.requests[0].ends_with(b"\r\n\r\nhello"));
}

#[test]
fn wait_for_body_lets_the_rules_after_it_match_the_body() {
    let (be, seen) = http_backend(|_| ok_response("stored"));
    let port = free_port();
    // The rule before the wait rewrites a header; the rules after it see that edit and the body.
    let fe = "  http-request set-header x-before 1\n  http-request wait-for-body time 2s if METH_POST\n  \
              http-request deny if { req.body -m sub secret } { req.hdr(x-before) 1 }\n  \
              http-request set-header x-body-len %[req.body_len]";
    let _s = Sluiced::start(&http_cfg(port, fe, &format!("  server s {}", be.addr())), &[port]);
    // The body arrives after the head, in two pieces.
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    c.write_all(b"my se").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    c.write_all(b"cret!!!").unwrap();
    assert_eq!(read_response(&mut c).0, 403);
    // Chunked: matched de-chunked.
    let (status, _, _) = http_request(port, b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nsec\r\n3\r\nret\r\n0\r\n\r\n");
    assert_eq!(status, 403);
    // An innocent body reaches the server intact, with both headers.
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    c.write_all(b"hello").unwrap();
    assert_eq!(read_response(&mut c).0, 200);
    // A POST without a body has nothing to wait for either (the rule's 2 s would show).
    let start = Instant::now();
    c.write_all(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut c).0, 200);
    assert!(start.elapsed() < Duration::from_secs(1), "a bodiless request waited {:?}", start.elapsed());
    let s = seen.lock().unwrap();
    assert_eq!(s.requests.len(), 2);
    let post = lower(&s.requests[0]);
    assert!(post.contains("x-before: 1\r\n") && post.contains("x-body-len: 5\r\n") && post.ends_with("\r\n\r\nhello"), "{post:?}");
}

#[test]
fn wait_for_body_at_least_goes_on_with_part_of_the_body_and_forwards_the_rest() {
    // The server records the bytes as they come, and answers once the whole body is in.
    let got = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let g2 = got.clone();
    let be = Backend::start(move |mut c| {
        let mut b = [0u8; 4096];
        loop {
            let n = c.read(&mut b).unwrap_or(0);
            if n == 0 {
                return;
            }
            let mut all = g2.lock().unwrap();
            all.extend_from_slice(&b[..n]);
            if all.ends_with(b"abcdefghij") {
                break;
            }
        }
        let _ = c.write_all(&ok_response("stored"));
    });
    let port = free_port();
    let fe = "  http-request wait-for-body time 3s at-least 4\n  http-request set-header x-seen %[req.body]";
    let _s = Sluiced::start(&http_cfg(port, fe, &format!("  server s 127.0.0.1:{}", be.port)), &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    c.write_all(b"ab").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    c.write_all(b"cde").unwrap();
    // 5 bytes are at least 4: the request goes to the server before the rest is sent.
    let start = Instant::now();
    while !lower(&got.lock().unwrap()).contains("x-seen: abcde\r\n") {
        assert!(start.elapsed() < Duration::from_secs(2), "the rules waited for more than 4 bytes: {:?}", lower(&got.lock().unwrap()));
        std::thread::sleep(Duration::from_millis(20));
    }
    c.write_all(b"fghij").unwrap();
    assert_eq!(read_response(&mut c).0, 200);
    assert!(lower(&got.lock().unwrap()).ends_with("\r\n\r\nabcdefghij"), "{:?}", lower(&got.lock().unwrap()));
}

#[test]
fn wait_for_body_answers_408_when_the_body_is_late_and_runs_in_a_backend_too() {
    let (be, seen) = http_backend(|_| ok_response("stored"));
    let port = free_port();
    let backend = format!(
        "  http-request wait-for-body time 300ms\n  http-request return status 200 content-type text/plain lf-string \"got %[req.body]\" if {{ req.body -m found }}\n  server s {}",
        be.addr()
    );
    let _s = Sluiced::start(&http_cfg(port, "", &backend), &[port]);
    // The backend's rules wait too, and see the body.
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    c.write_all(b"abc").unwrap();
    let (status, _, body) = read_response(&mut c);
    assert_eq!((status, body.as_slice()), (200, b"got abc".as_slice()));
    // A body that does not come within the rule's time: 408, and the connection closes.
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nab").unwrap();
    let start = Instant::now();
    let (status, head, _) = read_response(&mut c);
    assert_eq!(status, 408, "{head}");
    assert!(start.elapsed() < Duration::from_millis(1500), "waited {:?}: the rule's time, not timeout http-request", start.elapsed());
    assert!(seen.lock().unwrap().requests.is_empty());
}

#[test]
fn abortonclose_closes_the_server_connection_when_the_client_leaves() {
    // The server answers after 1.5 s; it records whether the proxy closed the connection first.
    let aborted = Arc::new(AtomicBool::new(false));
    let a2 = aborted.clone();
    let be = Backend::start(move |mut c| {
        let mut b = [0u8; 4096];
        let _ = c.read(&mut b);
        c.set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
        if let Ok(0) = c.read(&mut b) {
            a2.store(true, Ordering::SeqCst);
        }
        let _ = c.write_all(&ok_response("late"));
    });
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, "", &format!("  option abortonclose\n  server s {}", be.addr())), &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let start = Instant::now();
    while !aborted.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(aborted.load(Ordering::SeqCst), "the server connection stayed open after the client left");
}

#[test]
fn without_abortonclose_a_half_closed_client_still_gets_its_answer() {
    let be = Backend::start(|mut c| {
        let mut b = [0u8; 4096];
        let _ = c.read(&mut b);
        std::thread::sleep(Duration::from_millis(300));
        let _ = c.write_all(&ok_response("late"));
    });
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, "", &format!("  server s {}", be.addr())), &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let (status, _, body) = read_response(&mut c);
    assert_eq!((status, body.as_slice()), (200, b"late".as_slice()));
}

#[test]
fn set_src_changes_the_address_acls_and_forwardfor_see() {
    let (be, seen) = http_backend(|_| ok_response("ok"));
    let port = free_port();
    let fe = "  option forwardfor\n  http-request set-src hdr(x-real-ip) if { hdr(x-real-ip) -m found }\n  http-request deny if { src 10.0.0.0/8 }";
    let _s = Sluiced::start(&http_cfg(port, fe, &format!("  server s {}", be.addr())), &[port]);
    assert_eq!(http_request(port, b"GET / HTTP/1.1\r\nHost: h\r\nX-Real-IP: 10.9.9.9\r\n\r\n").0, 403);
    assert_eq!(http_request(port, b"GET / HTTP/1.1\r\nHost: h\r\nX-Real-IP: 192.0.2.7\r\n\r\n").0, 200);
    assert_eq!(http_request(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").0, 200);
    let s = seen.lock().unwrap();
    assert!(lower(&s.requests[0]).contains("x-forwarded-for: 192.0.2.7\r\n"), "{:?}", String::from_utf8_lossy(&s.requests[0]));
    assert!(lower(&s.requests[1]).contains("x-forwarded-for: 127.0.0.1\r\n"), "{:?}", String::from_utf8_lossy(&s.requests[1]));
}

#[test]
fn set_dst_and_set_dst_port_change_what_dst_fetches_return() {
    let (be, seen) = http_backend(|_| ok_response("ok"));
    let port = free_port();
    let fe = "  http-request set-dst ipv4(192.0.2.1)\n  http-request set-dst-port int(8443)\n  http-request set-header X-Dst %[dst]:%[dst_port]";
    let _s = Sluiced::start(&http_cfg(port, fe, &format!("  server s {}", be.addr())), &[port]);
    assert_eq!(http_request(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").0, 200);
    assert!(lower(&seen.lock().unwrap().requests[0]).contains("x-dst: 192.0.2.1:8443\r\n"));
}

#[test]
fn a_closing_client_leaves_its_server_connection_in_the_pool() {
    let (be, seen) = http_backend(|_| ok_response("k"));
    let port = free_port();
    // One worker: idle server connections are pooled per worker.
    let _s = Sluiced::start(&format!("global\n  nbthread 1\n{}", http_cfg(port, "", &format!("  server s {}", be.addr()))), &[port]);
    for _ in 0..5 {
        let (status, head, _) = http_request(port, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
        assert_eq!(status, 200);
        assert!(lower(head.as_bytes()).contains("connection: close"), "{head}");
    }
    let s = seen.lock().unwrap();
    assert_eq!(s.requests.len(), 5);
    assert_eq!(s.connections, 1, "five closing clients should share one pooled server connection");
    assert!(!lower(&s.requests[0]).contains("connection: close"), "{:?}", String::from_utf8_lossy(&s.requests[0]));
}

#[test]
fn http_server_close_in_the_frontend_closes_server_connections() {
    let (be, seen) = http_backend(|_| ok_response("k"));
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, "  option http-server-close", &format!("  server s {}", be.addr())), &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    for _ in 0..3 {
        c.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut c).0, 200);
    }
    assert_eq!(seen.lock().unwrap().connections, 3);
}

#[test]
fn http_pretend_keepalive_hides_the_close_from_the_server_but_still_closes() {
    let (be, seen) = http_backend(|_| ok_response("k"));
    let port = free_port();
    let backend = format!("  option http-server-close\n  option http-pretend-keepalive\n  server s {}", be.addr());
    let _s = Sluiced::start(&http_cfg(port, "", &backend), &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    for _ in 0..3 {
        c.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut c).0, 200);
    }
    let s = seen.lock().unwrap();
    assert_eq!(s.connections, 3, "one server connection per request, as with http-server-close alone");
    for r in &s.requests {
        assert!(!lower(r).contains("connection: close"), "{:?}", lower(r));
    }
}

#[test]
fn http_reuse_safe_gives_a_first_post_a_new_server_connection() {
    let (be, seen) = http_backend(|_| ok_response("k"));
    let port = free_port();
    let _s = Sluiced::start(&format!("global\n  nbthread 1\n{}", http_cfg(port, "", &format!("  server s {}", be.addr()))), &[port]);
    let get = b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    assert_eq!(http_request(port, get).0, 200);
    // A POST cannot be sent again if the idle connection turns out closed: not reused.
    assert_eq!(http_request(port, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi").0, 200);
    assert_eq!(seen.lock().unwrap().connections, 2);
    // A GET can: it takes an idle connection.
    assert_eq!(http_request(port, get).0, 200);
    assert_eq!(seen.lock().unwrap().connections, 2);
}

/// Idle new connections are parked by their worker (no session yet) until their first bytes:
/// many of them cost little, each is served when it speaks, and one that never speaks is closed
/// once `timeout http-request` runs out, with nothing sent back.
#[test]
fn idle_new_connections_are_served_when_they_speak_and_closed_when_they_never_do() {
    let (be, seen) = http_backend(|_| ok_response("app"));
    let port = free_port();
    let cfg = format!(
        "global\n  nbthread 2\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n  timeout http-request 1s\n\
         frontend f\n  bind 127.0.0.1:{port}\n  default_backend b\nbackend b\n  server s {}\n",
        be.addr()
    );
    let s = Sluiced::start(&cfg, &[port]);
    let idle: Vec<TcpStream> = (0..200).map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    // A new client is served meanwhile, and so is each parked one once it sends its request
    // (within the 1 s from its accept).
    assert_eq!(http_request(port, b"GET /new HTTP/1.1\r\nHost: h\r\n\r\n").0, 200);
    let mut spoke: Vec<TcpStream> = idle.into_iter().take(20).collect();
    for c in &mut spoke {
        c.write_all(b"GET /late HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    }
    for c in &mut spoke {
        assert_eq!(read_response(c).0, 200);
    }
    assert_eq!(seen.lock().unwrap().requests.len(), 21);
    // The parked-and-served clients are kept alive: a second request on one still works.
    spoke[0].write_all(b"GET /again HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut spoke[0]).0, 200);
    // A parked client that never speaks is closed after `timeout http-request`, silently.
    let mut quiet = TcpStream::connect(("127.0.0.1", port)).unwrap();
    quiet.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let t0 = Instant::now();
    let mut buf = Vec::new();
    let n = quiet.read_to_end(&mut buf);
    assert!(matches!(n, Ok(0)) || n.is_err(), "{n:?}");
    assert!(buf.is_empty(), "sent {:?}", String::from_utf8_lossy(&buf));
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_millis(800) && waited < Duration::from_secs(4), "closed after {waited:?}");
    drop(s);
}

/// A reload (`-sf`) hands the port over without a reset: once the old process is gone, every new
/// connection reaches the new one. (On the uring backend the old process's listeners used to
/// linger in the kernel for a few milliseconds after it exited, held by the accepts its ring had
/// in flight, and the connections the port gave them were reset.)
#[test]
fn a_reload_with_sf_resets_no_connection_made_once_the_old_process_is_gone() {
    let port = free_port();
    let cfg = |word: &str| {
        format!(
            "defaults\n  mode http\n  timeout client 5s\nfrontend f\n  bind 127.0.0.1:{port}\n  http-request return status 200 content-type text/plain string {word}\n"
        )
    };
    let mut current = Sluiced::start(&cfg("round0"), &[port]);
    for round in 1..=5 {
        let word = format!("round{round}");
        let next = Sluiced::start_args(&cfg(&word), &[port], &["-sf", &current.pid().to_string()]);
        assert_eq!(current.wait_exit(Duration::from_secs(3)), Some(0), "round {round}: the old process did not finish");
        for i in 0..10 {
            let (status, _, body) = http_request(port, b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
            assert_eq!((status, String::from_utf8_lossy(&body).as_ref()), (200, word.as_str()), "round {round}, request {i}");
        }
        current = next;
    }
}

/// The listening sockets' inodes on `port`, from /proc/net/tcp.
fn listener_inodes(port: u16) -> Vec<String> {
    let needle = format!(":{port:04X}");
    let mut v: Vec<String> = std::fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            (c[1].ends_with(&needle) && c[3] == "0A").then(|| c[9].to_string())
        })
        .collect();
    v.sort();
    v
}

/// `-x <stats socket>` with `expose-fd listeners` on the old process's socket: the new process
/// takes the old one's listening sockets instead of binding its own, so no accept queue is
/// closed by the reload, and the old process, told to finish, leaves them open.
#[test]
fn a_reload_with_x_takes_over_the_old_process_sockets() {
    let port = free_port();
    let dir = temp_dir("x-reload");
    let sock = dir.join("admin.sock");
    let cfg = |word: &str| {
        format!(
            "global\n  stats socket {} level admin expose-fd listeners\ndefaults\n  mode http\n  timeout client 5s\nfrontend f\n  bind 127.0.0.1:{port}\n  http-request return status 200 content-type text/plain string {word}\n",
            sock.display()
        )
    };
    let mut old = Sluiced::start(&cfg("old"), &[port]);
    let before = listener_inodes(port);
    assert!(!before.is_empty());
    let mut new = Sluiced::start_args(&cfg("new"), &[port], &["-x", sock.to_str().unwrap(), "-sf", &old.pid().to_string()]);
    assert_eq!(old.wait_exit(Duration::from_secs(3)), Some(0));
    assert_eq!(listener_inodes(port), before, "the same sockets listen after the reload");
    let (status, _, body) = http_request(port, b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    assert_eq!((status, String::from_utf8_lossy(&body).as_ref()), (200, "new"));
    // A socket without `expose-fd listeners`, or none at all: a warning, and the reload binds anew.
    let mut third = Sluiced::start_args(&cfg("third"), &[port], &["-x", dir.join("nothing.sock").to_str().unwrap(), "-sf", &new.pid().to_string()]);
    assert_eq!(new.wait_exit(Duration::from_secs(3)), Some(0));
    assert_ne!(listener_inodes(port), before);
    let (status, _, body) = http_request(port, b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    assert_eq!((status, String::from_utf8_lossy(&body).as_ref()), (200, "third"));
    third.signal("TERM");
    third.wait_exit(Duration::from_secs(3));
    assert!(third.stderr().contains("Failed to get the sockets from the old process: cannot connect to"));
}

/// A connection accepted before a soft stop whose request has not arrived yet is served when it
/// does, as any open connection: a client that connected just before a reload gets its answer.
#[test]
fn a_connection_silent_when_the_soft_stop_comes_is_still_served() {
    let port = free_port();
    let cfg = format!(
        "defaults\n  mode http\n  timeout client 5s\n  timeout http-request 5s\nfrontend f\n  bind 127.0.0.1:{port}\n  http-request return status 200 content-type text/plain string served\n"
    );
    let mut d = Sluiced::start(&cfg, &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // Accepted and waiting for its first bytes when the stop comes.
    std::thread::sleep(Duration::from_millis(200));
    d.signal("USR1");
    std::thread::sleep(Duration::from_millis(200));
    c.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").unwrap();
    let (status, _, body) = read_response(&mut c);
    assert_eq!((status, body.as_slice()), (200, b"served".as_slice()));
    drop(c);
    assert_eq!(d.wait_exit(Duration::from_secs(3)), Some(0), "the process ends once that connection has");
}

/// `-x` is refused by a stats socket below `level admin`: the new process warns and binds anew.
#[test]
fn x_against_a_socket_below_level_admin_gets_no_sockets() {
    let port = free_port();
    let dir = temp_dir("x-level");
    let sock = dir.join("op.sock");
    let cfg = format!(
        "global\n  stats socket {} level operator expose-fd listeners\ndefaults\n  mode http\n  timeout client 5s\nfrontend f\n  bind 127.0.0.1:{port}\n  http-request return status 200 content-type text/plain string x\n",
        sock.display()
    );
    let mut old = Sluiced::start(&cfg, &[port]);
    let before = listener_inodes(port);
    let mut new = Sluiced::start_args(&cfg, &[port], &["-x", sock.to_str().unwrap(), "-sf", &old.pid().to_string()]);
    assert_eq!(old.wait_exit(Duration::from_secs(3)), Some(0));
    assert_ne!(listener_inodes(port), before);
    new.signal("TERM");
    new.wait_exit(Duration::from_secs(3));
    let err = new.stderr();
    assert!(err.contains("Failed to get the sockets from the old process"), "{err}");
}

/// `http-request set-timeout server`: a request that matches waits for its answer only as long
/// as the rule says (504 at once), by a time or by an expression in milliseconds; the others keep
/// the backend's `timeout server`.
#[test]
fn set_timeout_server_shortens_the_wait_for_one_request() {
    let be = Backend::start(|mut c| {
        let mut buf = Vec::new();
        while read_request(&mut c, &mut buf).is_some() {
            std::thread::sleep(Duration::from_millis(800));
            if c.write_all(&ok_response("late")).is_err() {
                return;
            }
        }
    });
    let port = free_port();
    let fe = "  http-request set-timeout server 200ms if { path /short }\n  http-request set-var(txn.ms) int(150)\n  \
              http-request set-timeout server var(txn.ms) if { path /expr }\n  http-request set-timeout server var(txn.none) if { path /absent }";
    let _s = Sluiced::start(&http_cfg(port, fe, &format!("  timeout server 5s\n  server s {}", be.addr())), &[port]);
    let timed = |path: &str| {
        let t = Instant::now();
        let status = http_request(port, format!("GET {path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").as_bytes()).0;
        (status, t.elapsed())
    };
    let (status, took) = timed("/short");
    assert_eq!(status, 504);
    assert!(took < Duration::from_millis(700), "{took:?}");
    assert_eq!(timed("/long").0, 200);
    let (status, took) = timed("/expr");
    assert_eq!(status, 504);
    assert!(took < Duration::from_millis(700), "{took:?}");
    // An expression without a value changes nothing.
    assert_eq!(timed("/absent").0, 200);
}

/// `set-timeout tunnel`: an idle WebSocket tunnel closes after the rule's time rather than the
/// backend's `timeout tunnel`.
#[test]
fn set_timeout_tunnel_closes_an_idle_tunnel_sooner() {
    let be = Backend::start(|mut c| {
        let mut b = [0u8; 4096];
        let _ = c.read(&mut b);
        let _ = c.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
        // Idle until sluiced closes.
        let _ = c.read(&mut b);
    });
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, "  http-request set-timeout tunnel 300ms", &format!("  timeout tunnel 20s\n  server s {}", be.addr())), &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n").unwrap();
    let t = Instant::now();
    let got = read_to_end(&mut c, Duration::from_secs(10)).expect("sluiced closes the idle tunnel");
    assert!(got.starts_with(b"HTTP/1.1 101"), "{:?}", String::from_utf8_lossy(&got));
    assert!(t.elapsed() < Duration::from_secs(5), "closed after {:?}", t.elapsed());
}
