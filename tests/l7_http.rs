//! `mode http`: config in, bytes out. Raw-socket clients and a raw HTTP backend that records the
//! exact bytes it receives.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::*;

#[test]
fn quickstart_answers_with_http_request_return() {
    let cfg = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/conf/quickstart.cfg")).unwrap();
    let port = free_port();
    let cfg = cfg.replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"));
    let _s = Sluiced::start(&cfg, &[port]);
    let (status, head, body) = http_request(port, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(status, 200, "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: text/plain"), "{head}");
    assert_eq!(body, b"hello from sluiced\n");
}

#[test]
fn a_get_is_forwarded_and_the_response_returned() {
    let (be, seen) = http_backend(|_| ok_response("from the server"));
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, "", &format!("  server s {}", be.addr())), &[port]);
    let (status, _, body) = http_request(port, b"GET /hello?x=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\n");
    assert_eq!(status, 200);
    assert_eq!(body, b"from the server");
    let req = String::from_utf8(seen.lock().unwrap().requests[0].clone()).unwrap();
    assert!(req.starts_with("GET /hello?x=1 HTTP/1.1\r\n"), "{req}");
    assert!(req.contains("Host: example.com\r\n") && req.contains("User-Agent: t\r\n"), "{req}");
}

#[test]
fn keep_alive_reuses_one_server_connection_for_many_requests() {
    let (be, seen) = http_backend(|_| ok_response("k"));
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, "", &format!("  server s {}", be.addr())), &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    for i in 0..20 {
        c.write_all(format!("GET /{i} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes()).unwrap();
        let (status, _, body) = read_response(&mut c);
        assert_eq!((status, body.as_slice()), (200, b"k".as_slice()));
    }
    let s = seen.lock().unwrap();
    assert_eq!(s.requests.len(), 20);
    assert_eq!(s.connections, 1, "the backend saw {} connections for 20 keep-alive requests", s.connections);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let (be, _seen) = http_backend(|req| {
        let line = String::from_utf8_lossy(req).lines().next().unwrap_or("").to_owned();
        ok_response(&line)
    });
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, "", &format!("  server s {}", be.addr())), &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\nGET /c HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    // Responses may arrive together in one read: split them by their Content-Length.
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = Vec::new();
    let mut bodies = Vec::new();
    let mut tmp = [0u8; 4096];
    while bodies.len() < 3 {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head.lines().find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap())).unwrap();
            if buf.len() >= end + 4 + len {
                bodies.push(String::from_utf8(buf[end + 4..end + 4 + len].to_vec()).unwrap());
                buf.drain(..end + 4 + len);
                continue;
            }
        }
        let n = c.read(&mut tmp).unwrap();
        assert!(n > 0, "closed after {} responses", bodies.len());
        buf.extend_from_slice(&tmp[..n]);
    }
    assert_eq!(bodies, ["GET /a HTTP/1.1", "GET /b HTTP/1.1", "GET /c HTTP/1.1"]);
}

#[test]
fn a_request_body_with_content_length_arrives_intact() {
    let (be, seen) = http_backend(|_| ok_response("got it"));
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, "", &format!("  server s {}", be.addr())), &[port]);
    let body = random_bytes(300_000, 9);
    let mut raw = format!("POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    raw.extend_from_slice(&body);
    let (status, _, _) = http_request(port, &raw);
    assert_eq!(status, 200);
    let req = seen.lock().unwrap().requests[0].clone();
    assert!(req.ends_with(&body), "the body reached the server altered");
}

#[test]
fn a_chunked_request_body_is_forwarded_as_sent() {
    let (be, seen) = http_backend(|_| ok_response("ok"));
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, "", &format!("  server s {}", be.addr())), &[port]);
    let chunks = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n";
    let mut raw = b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    raw.extend_from_slice(chunks);
    let (status, _, _) = http_request(port, &raw);
    assert_eq!(status, 200);
    let req = seen.lock().unwrap().requests[0].clone();
    assert!(req.ends_with(chunks), "{:?}", String::from_utf8_lossy(&req));
}

#[test]
fn a_chunked_response_is_passed_through() {
    let (be, _) = http_backend(|_| b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n".to_vec());
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, "", &format!("  server s {}", be.addr())), &[port]);
    let (status, _, body) = http_request(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(status, 200);
    assert_eq!(body, b"3\r\nabc\r\n0\r\n\r\n");
}

#[test]
fn a_head_request_gets_no_body() {
    let (be, _) = http_backend(|_| b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n".to_vec());
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, "", &format!("  server s {}", be.addr())), &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    let mut buf = vec![0u8; 4096];
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let n = c.read(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 200") && text.ends_with("\r\n\r\n"), "{text}");
    // The connection is still usable: no body bytes were expected or sent.
    c.write_all(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    let n = c.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}

/// The request must be refused with `status`, and the backend must receive nothing.
fn refused(raw: &[u8], status: u16) {
    let (be, seen) = http_backend(|_| ok_response("should not happen"));
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, "", &format!("  server s {}", be.addr())), &[port]);
    let (got, head, _) = http_request(port, raw);
    assert_eq!(got, status, "{:?} -> {head}", String::from_utf8_lossy(raw));
    std::thread::sleep(Duration::from_millis(50));
    assert!(seen.lock().unwrap().requests.is_empty(), "a refused request reached the server: {:?}", String::from_utf8_lossy(raw));
}

#[test]
fn content_length_with_transfer_encoding_is_refused() {
    refused(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400);
}

#[test]
fn differing_content_lengths_are_refused() {
    refused(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400);
}

#[test]
fn malformed_content_lengths_are_refused() {
    for cl in ["+5", "0x5", "5 5", "-1", "", "99999999999999999999999"] {
        refused(format!("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: {cl}\r\n\r\nhello").as_bytes(), 400);
    }
}

#[test]
fn transfer_encoding_other_than_final_chunked_is_refused() {
    refused(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 400);
    refused(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400);
}

#[test]
fn space_before_the_colon_is_refused() {
    refused(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400);
}

#[test]
fn obs_fold_is_refused() {
    refused(b"GET / HTTP/1.1\r\nHost: h\r\nX-Long: a\r\n b\r\n\r\n", 400);
}

#[test]
fn a_missing_or_duplicated_host_is_refused() {
    refused(b"GET / HTTP/1.1\r\n\r\n", 400);
    refused(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
}

#[test]
fn an_absolute_target_must_match_host() {
    refused(b"GET http://a.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n", 400);
}

#[test]
fn bad_chunk_framing_is_refused_before_reaching_the_server_body() {
    // The head reaches the server (the body streams), but the bad framing stops the stream: the
    // server must never see a complete request.
    let (be, seen) = http_backend(|_| ok_response("x"));
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, "", &format!("  server s {}", be.addr())), &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n").unwrap();
    let got = read_to_end(&mut c, Duration::from_secs(5)).unwrap_or_default();
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 400"), "{:?}", String::from_utf8_lossy(&got));
    assert!(seen.lock().unwrap().requests.is_empty());
}

#[test]
fn too_many_or_too_large_headers_get_431() {
    let mut raw = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
    for i in 0..120 {
        raw.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    raw.extend_from_slice(b"\r\n");
    refused(&raw, 431);
    let big = format!("GET / HTTP/1.1\r\nHost: h\r\nX-Big: {}\r\n\r\n", "a".repeat(20000));
    refused(big.as_bytes(), 431);
}

#[test]
fn a_uri_longer_than_the_buffer_gets_414() {
    refused(format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(20000)).as_bytes(), 414);
}

#[test]
fn slowloris_gets_408_within_timeout_http_request() {
    let (be, _) = http_backend(|_| ok_response("x"));
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, "", &format!("  server s {}", be.addr())), &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let t0 = Instant::now();
    // A reader records what comes back and when, while the writer drips one header line every
    // 300 ms: that keeps every idle timer busy but never finishes the head.
    let mut r = c.try_clone().unwrap();
    let reader = std::thread::spawn(move || {
        let got = read_to_end(&mut r, Duration::from_secs(6)).unwrap_or_default();
        (got, t0.elapsed())
    });
    c.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n").unwrap();
    for i in 0..20 {
        std::thread::sleep(Duration::from_millis(300));
        if reader.is_finished() || c.write_all(format!("X-{i}: v\r\n").as_bytes()).is_err() {
            break;
        }
    }
    let (got, when) = reader.join().unwrap();
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    // `timeout http-request 2s` is a deadline for the whole head, not an idle timer.
    assert!(when >= Duration::from_millis(1900) && when < Duration::from_millis(3000), "the 408 came after {when:?}");
}

#[test]
fn a_malformed_response_gets_502() {
    let (be, _) = http_backend(|_| b"HTTP/1.1 2000 Nope\r\nContent-Length: 0\r\n\r\n".to_vec());
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, "", &format!("  server s {}", be.addr())), &[port]);
    let (status, _, _) = http_request(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(status, 502);
}

#[test]
fn a_response_with_both_framings_gets_502() {
    let (be, _) = http_backend(|_| b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec());
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, "", &format!("  server s {}", be.addr())), &[port]);
    let (status, _, _) = http_request(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(status, 502);
}

#[test]
fn no_server_gives_503() {
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, "", "  server s 127.0.0.1:1 disabled"), &[port]);
    let (status, head, body) = http_request(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(status, 503, "{head}");
    assert!(String::from_utf8_lossy(&body).contains("503 Service Unavailable"));
}

#[test]
fn deny_answers_403_and_use_backend_routes_by_path() {
    let (api, api_seen) = http_backend(|_| ok_response("api"));
    let (web, _) = http_backend(|_| ok_response("web"));
    let port = free_port();
    let cfg = format!(
        "defaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\nfrontend f\n  bind 127.0.0.1:{port}\n  acl is_api path_beg /api/\n  acl is_admin path_beg /admin\n  http-request deny if is_admin\n  use_backend api if is_api\n  default_backend web\nbackend api\n  server a {}\nbackend web\n  server w {}\n",
        api.addr(),
        web.addr()
    );
    let _s = Sluiced::start(&cfg, &[port]);
    assert_eq!(http_request(port, b"GET /api/users HTTP/1.1\r\nHost: h\r\n\r\n").2, b"api");
    assert_eq!(http_request(port, b"GET /index.html HTTP/1.1\r\nHost: h\r\n\r\n").2, b"web");
    assert_eq!(http_request(port, b"GET /admin/x HTTP/1.1\r\nHost: h\r\n\r\n").0, 403);
    assert_eq!(api_seen.lock().unwrap().requests.len(), 1);
}

#[test]
fn set_header_add_header_and_del_header_reach_the_server() {
    let (be, seen) = http_backend(|_| ok_response("x"));
    let port = free_port();
    let fe = "  http-request set-header X-Set one\n  http-request add-header X-Add %[src]\n  http-request del-header X-Drop";
    let _s = Sluiced::start(&http_cfg(port, fe, &format!("  server s {}", be.addr())), &[port]);
    http_request(port, b"GET / HTTP/1.1\r\nHost: h\r\nX-Set: old\r\nX-Drop: secret\r\n\r\n");
    // Fields a rule writes get a lower-case name, as HAProxy's HTTP/1 multiplexer sends them.
    let req = String::from_utf8(seen.lock().unwrap().requests[0].clone()).unwrap();
    assert!(req.contains("x-set: one\r\n") && !req.to_ascii_lowercase().contains("x-set: old"), "{req}");
    assert!(req.contains("x-add: 127.0.0.1\r\n"), "{req}");
    assert!(!req.to_ascii_lowercase().contains("x-drop"), "{req}");
}

#[test]
fn redirect_scheme_https_builds_the_location_from_host_and_path() {
    let port = free_port();
    let cfg = format!("defaults\n  mode http\n  timeout client 5s\nfrontend f\n  bind 127.0.0.1:{port}\n  http-request redirect scheme https code 301\n");
    let _s = Sluiced::start(&cfg, &[port]);
    let (status, head, _) = http_request(port, b"GET /a/b?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert_eq!(status, 301);
    assert!(head.to_ascii_lowercase().contains("location: https://example.com/a/b?q=1\r\n"), "{head}");
}

#[test]
fn a_server_dying_mid_response_aborts_the_client_connection() {
    let be = Backend::start(|mut c| {
        let mut b = [0u8; 4096];
        let _ = c.read(&mut b);
        let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\npartial");
        // Dies: the connection closes 99,993 bytes short.
    });
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, "", &format!("  server s {}", be.addr())), &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    let got = read_to_end(&mut c, Duration::from_secs(5)).unwrap_or_default();
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200") && text.ends_with("partial"), "no garbage after the partial body: {text:?}");
}

#[test]
fn websocket_upgrade_becomes_a_tunnel_after_a_real_101() {
    let be = Backend::start(|mut c| {
        let mut b = [0u8; 4096];
        let _ = c.read(&mut b);
        let _ = c.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
        // Echo whatever comes on the upgraded connection.
        loop {
            match c.read(&mut b) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if c.write_all(&b[..n]).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, "", &format!("  timeout tunnel 5s\n  server s {}", be.addr())), &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: x\r\nSec-WebSocket-Version: 13\r\n\r\n")
        .unwrap();
    let mut b = vec![0u8; 4096];
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let n = c.read(&mut b).unwrap();
    assert!(String::from_utf8_lossy(&b[..n]).starts_with("HTTP/1.1 101"));
    c.write_all(b"\x81\x05hello").unwrap();
    let mut echo = [0u8; 7];
    c.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"\x81\x05hello");
}

#[test]
fn http_request_auth_asks_for_credentials_and_lets_a_valid_user_through() {
    let (be, seen) = http_backend(|_| ok_response("secret"));
    let port = free_port();
    let cfg = format!(
        "userlist admins\n  user alice insecure-password wonderland\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\nfrontend f\n  bind 127.0.0.1:{port}\n  acl authed http_auth(admins)\n  http-request auth realm Admin unless authed\n  default_backend b\nbackend b\n  server s {}\n",
        be.addr()
    );
    let _s = Sluiced::start(&cfg, &[port]);
    let (status, head, _) = http_request(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(status, 401);
    assert!(head.to_ascii_lowercase().contains("www-authenticate: basic realm=\"admin\""), "{head}");
    // alice:wonderland
    let (status, _, body) = http_request(port, b"GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Basic YWxpY2U6d29uZGVybGFuZA==\r\n\r\n");
    assert_eq!((status, body.as_slice()), (200, b"secret".as_slice()));
    let (status, _, _) = http_request(port, b"GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Basic YWxpY2U6d3Jvbmc=\r\n\r\n");
    assert_eq!(status, 401);
    assert_eq!(seen.lock().unwrap().requests.len(), 1);
}

#[test]
fn a_safe_request_on_a_pooled_connection_the_server_closed_is_retried_on_a_new_one() {
    // The server answers one request per connection as keep-alive, then closes the connection
    // while it sits idle in sluiced's pool.
    let be = Backend::start(|mut c| {
        let mut b = [0u8; 4096];
        if c.read(&mut b).unwrap_or(0) == 0 {
            return;
        }
        let _ = c.write_all(&ok_response("fresh"));
        std::thread::sleep(Duration::from_millis(50));
    });
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, "", &format!("  server s {}", be.addr())), &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    for _ in 0..3 {
        c.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        let (status, _, body) = read_response(&mut c);
        assert_eq!((status, body.as_slice()), (200, b"fresh".as_slice()));
        // Let the server close the idle pooled connection.
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(be.accepted.load(std::sync::atomic::Ordering::Relaxed), 3);
}

#[test]
fn expect_100_continue_gets_a_100_before_the_body_and_the_body_reaches_the_server() {
    let (be, seen) = http_backend(|_| ok_response("stored"));
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, "", &format!("  server s {}", be.addr())), &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"PUT /f HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n").unwrap();
    // The client waits for the interim answer before sending the body.
    let mut b = [0u8; 64];
    c.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let n = c.read(&mut b).expect("a 100 Continue within 500 ms");
    assert_eq!(&b[..n], b"HTTP/1.1 100 Continue\r\n\r\n");
    c.write_all(b"hello").unwrap();
    let (status, _, body) = read_response(&mut c);
    assert_eq!((status, body.as_slice()), (200, b"stored".as_slice()));
    let req = String::from_utf8(seen.lock().unwrap().requests[0].clone()).unwrap();
    assert!(req.ends_with("\r\n\r\nhello") && !req.to_ascii_lowercase().contains("expect:"), "{req}");
}

#[test]
fn a_response_body_larger_than_one_read_arrives_intact_and_the_next_response_on_the_connection_too() {
    // The first read of the response holds the head and part of the body: that part leaves with
    // the head and the rest is counted down from it, so the next response starts where it should.
    let big = random_bytes(300_000, 21);
    let b2 = big.clone();
    let (be, _) = http_backend(move |req| {
        if req.starts_with(b"GET /big") {
            [format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", b2.len()).as_bytes(), &b2[..]].concat()
        } else {
            ok_response("small")
        }
    });
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, "", &format!("  server s {}", be.addr())), &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    for _ in 0..2 {
        c.write_all(b"GET /big HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        let (status, _, body) = read_response(&mut c);
        assert_eq!(status, 200);
        assert!(body == big, "the body came altered ({} bytes)", body.len());
        c.write_all(b"GET /small HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        let (status, _, body) = read_response(&mut c);
        assert_eq!((status, body.as_slice()), (200, &b"small"[..]));
    }
}
