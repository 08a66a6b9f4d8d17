//! Variables (`set-var`, `var()`, the converters that use them) and captures (`capture request
//! header`, `http-request capture`, `capture.req.hdr`): config in, bytes out, with the real daemon,
//! raw-socket clients and a real backend.

mod support;

use std::io::Write;
use std::net::TcpStream;

use support::*;

/// Starts sluiced with `frontend` lines before a backend answering 200; returns the client's
/// answer to `req` and what the backend received.
fn through(frontend: &str, req: &[u8]) -> ((u16, String, Vec<u8>), String) {
    let (be, seen) = http_backend(|_| ok_response("from-backend"));
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, frontend, &format!("  server s {}", be.addr())), &[port]);
    let answer = http_request(port, req);
    let got = seen.lock().unwrap().requests.first().map(|r| String::from_utf8_lossy(r).into_owned()).unwrap_or_default();
    (answer, got)
}

/// The body of a `return` whose lf-string is `fmt`, after the `frontend` rules before it.
fn returned(frontend: &str, fmt: &str, req: &[u8]) -> String {
    let fe = format!("{frontend}\n  http-request return status 200 content-type text/plain lf-string \"{fmt}\"");
    let ((status, head, body), _) = through(&fe, req);
    assert_eq!(status, 200, "{head}");
    String::from_utf8(body).unwrap()
}

/// Sends each request on one keep-alive connection; returns the response bodies.
fn keep_alive(port: u16, reqs: &[&[u8]]) -> Vec<String> {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    reqs.iter()
        .map(|r| {
            c.write_all(r).unwrap();
            let (status, head, body) = read_response(&mut c);
            assert_eq!(status, 200, "{head}");
            String::from_utf8(body).unwrap()
        })
        .collect()
}

fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().find_map(|l| l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim()))
}

const GET: &[u8] = b"GET /p?q=1 HTTP/1.1\r\nHost: example.com\r\nX-In: hello\r\n\r\n";

#[test]
fn set_var_from_a_header_is_seen_by_an_lf_string() {
    assert_eq!(returned("  http-request set-var(txn.x) req.hdr(x-in)", "got=%[var(txn.x)]", GET), "got=hello");
}

#[test]
fn var_with_a_default_answers_the_default_when_unset() {
    assert_eq!(returned("", "%[var(txn.none,fallback)]", GET), "fallback");
}

#[test]
fn set_var_fmt_stores_a_formatted_string() {
    assert_eq!(returned("  http-request set-var-fmt(txn.f) \"%[req.hdr(x-in)]-%[path]\"", "%[var(txn.f)]", GET), "hello-/p");
}

#[test]
fn unset_var_removes_a_variable() {
    let fe = "  http-request set-var(txn.x) str(a)\n  http-request unset-var(txn.x)";
    assert_eq!(returned(fe, "[%[var(txn.x)]]", GET), "[-]");
}

#[test]
fn a_variable_in_an_acl_chooses_the_backend() {
    let (one, _) = http_backend(|_| ok_response("one"));
    let (two, _) = http_backend(|_| ok_response("two"));
    let port = free_port();
    let cfg = format!(
        "defaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\nfrontend f\n  bind 127.0.0.1:{port}\n  http-request set-var(txn.env) req.hdr(x-env),lower\n  use_backend b2 if {{ var(txn.env) -m str beta }}\n  default_backend b1\nbackend b1\n  server s {}\nbackend b2\n  server s {}\n",
        one.addr(),
        two.addr()
    );
    let _s = Sluiced::start(&cfg, &[port]);
    let body = |env: &str| String::from_utf8(http_request(port, format!("GET / HTTP/1.1\r\nHost: h\r\nX-Env: {env}\r\n\r\n").as_bytes()).2).unwrap();
    assert_eq!(body("BETA"), "two");
    assert_eq!(body("prod"), "one");
}

#[test]
fn http_response_rules_see_a_variable_set_by_the_request() {
    let ((status, head, _), _) = through("  http-request set-var(txn.x) req.hdr(x-in)\n  http-response set-header X-Seen %[var(txn.x)]", GET);
    assert_eq!(status, 200);
    assert_eq!(header(&head, "x-seen"), Some("hello"), "{head}");
}

#[test]
fn a_request_header_rewrite_can_use_a_variable() {
    let (_, got) = through("  http-request set-var(txn.x) req.hdr(x-in),upper\n  http-request set-header X-Copy %[var(txn.x)]", GET);
    assert!(got.contains("x-copy: HELLO\r\n"), "{got}");
}

#[test]
fn req_variables_end_with_the_request_and_res_variables_live_in_the_response() {
    let fe = "  http-request set-var(req.r) str(a)\n  http-request set-header X-Req-Seen %[var(req.r)]\n  http-response set-var(res.s) str(b)\n  http-response set-header X-R %[var(req.r)]\n  http-response set-header X-S %[var(res.s)]";
    let ((_, head, _), got) = through(fe, GET);
    assert!(got.contains("x-req-seen: a\r\n"), "{got}");
    assert_eq!(header(&head, "x-r"), Some("-"), "{head}");
    assert_eq!(header(&head, "x-s"), Some("b"), "{head}");
}

#[test]
fn a_sess_variable_outlives_the_request_and_a_txn_variable_does_not() {
    let (be, _) = http_backend(|_| ok_response("x"));
    let port = free_port();
    let fe = "  http-request set-var(sess.s) req.hdr(x-in)\n  http-request set-var(txn.t) req.hdr(x-in)\n  http-request return status 200 content-type text/plain lf-string \"s=%[var(sess.s)] t=%[var(txn.t)]\"";
    let _s = Sluiced::start(&http_cfg(port, fe, &format!("  server s {}", be.addr())), &[port]);
    let bodies = keep_alive(port, &[GET, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"]);
    assert_eq!(bodies, ["s=hello t=hello", "s=hello t=-"]);
    // A new connection is a new session.
    assert_eq!(String::from_utf8(http_request(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").2).unwrap(), "s=- t=-");
}

#[test]
fn a_proc_variable_is_shared_by_every_connection_and_worker() {
    let (be, _) = http_backend(|_| ok_response("x"));
    let port = free_port();
    let cfg = format!(
        "global\n  nbthread 4\n{}",
        http_cfg(
            port,
            "  http-request set-var(proc.last) req.hdr(x-set) if { req.hdr(x-set) -m found }\n  http-request return status 200 content-type text/plain lf-string \"%[var(proc.last)]\"",
            &format!("  server s {}", be.addr())
        )
    );
    let _s = Sluiced::start(&cfg, &[port]);
    assert_eq!(http_request(port, b"GET / HTTP/1.1\r\nHost: h\r\nX-Set: v1\r\n\r\n").2, b"v1");
    // Connections land on several workers: every one sees the value.
    for _ in 0..16 {
        assert_eq!(http_request(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").2, b"v1");
    }
}

#[test]
fn ifnotexists_keeps_the_first_value() {
    let (be, _) = http_backend(|_| ok_response("x"));
    let port = free_port();
    let fe = "  http-request set-var(sess.first,ifnotexists) req.hdr(x-in)\n  http-request return status 200 content-type text/plain lf-string \"%[var(sess.first)]\"";
    let _s = Sluiced::start(&http_cfg(port, fe, &format!("  server s {}", be.addr())), &[port]);
    let bodies = keep_alive(port, &[b"GET / HTTP/1.1\r\nHost: h\r\nX-In: a\r\n\r\n", b"GET / HTTP/1.1\r\nHost: h\r\nX-In: b\r\n\r\n"]);
    assert_eq!(bodies, ["a", "a"]);
}

#[test]
fn ifgt_sets_only_below_the_current_value() {
    let fe = "  http-request set-var(txn.min) int(10)\n  http-request set-var(txn.min,ifgt) int(20)\n  http-request set-var(txn.min,ifgt) int(3)";
    assert_eq!(returned(fe, "%[var(txn.min)]", GET), "3");
}

#[test]
fn concat_appends_a_variable() {
    let fe = "  http-request set-var(txn.host) req.hdr(host)";
    assert_eq!(returned(fe, "%[str(pre),concat(<,txn.host,>)]", GET), "pre<example.com>");
}

#[test]
fn add_takes_a_variable_operand() {
    let fe = "  http-request set-var(txn.n) int(40)\n  http-request set-var(txn.sum) int(2),add(txn.n)";
    assert_eq!(returned(fe, "%[var(txn.sum)]", GET), "42");
}

#[test]
fn set_var_converter_stores_the_value_it_passes_on() {
    let fe = "  http-request set-header X-H %[req.hdr(x-in),set-var(txn.h),upper]";
    let ((_, _, _), got) = through(&format!("{fe}\n  http-request set-header X-Again %[var(txn.h)]"), GET);
    assert!(got.contains("x-h: HELLO\r\n"), "{got}");
    assert!(got.contains("x-again: hello\r\n"), "{got}");
}

#[test]
fn tcp_request_connection_sets_a_sess_variable_the_http_rules_see() {
    let fe = "  tcp-request connection set-var(sess.client) src";
    assert_eq!(returned(fe, "%[var(sess.client)]", GET), "127.0.0.1");
}

#[test]
fn tcp_request_connection_reject_closes_an_http_connection() {
    let (be, seen) = http_backend(|_| ok_response("x"));
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, "  tcp-request connection reject if { src 127.0.0.1 }", &format!("  server s {}", be.addr())), &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let _ = c.write_all(GET);
    let got = read_to_end(&mut c, std::time::Duration::from_secs(5)).unwrap_or_default();
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    assert!(seen.lock().unwrap().requests.is_empty());
}

// Captures.

#[test]
fn a_captured_request_header_is_seen_by_http_response_rules() {
    let fe = "  capture request header Host len 4\n  http-response set-header X-Cap %[capture.req.hdr(0)]";
    let ((_, head, _), _) = through(fe, GET);
    assert_eq!(header(&head, "x-cap"), Some("exam"), "{head}");
}

#[test]
fn http_request_capture_takes_the_next_slot() {
    let fe = "  capture request header Host len 64\n  http-request capture req.hdr(x-in) len 3\n  http-response set-header X-Cap %[capture.req.hdr(0)]/%[capture.req.hdr(1)]";
    let ((_, head, _), _) = through(fe, GET);
    assert_eq!(header(&head, "x-cap"), Some("example.com/hel"), "{head}");
}

#[test]
fn capture_id_fills_a_declared_slot_from_the_backend() {
    let (be, _) = http_backend(|_| ok_response("x"));
    let port = free_port();
    let cfg = http_cfg(
        port,
        "  declare capture request len 5\n  http-response set-header X-Cap %[capture.req.hdr(0)]",
        &format!("  http-request capture path id 0\n  server s {}", be.addr()),
    );
    let _s = Sluiced::start(&cfg, &[port]);
    let (_, head, _) = http_request(port, b"GET /abcdefgh HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(header(&head, "x-cap"), Some("/abcd"), "{head}");
}

#[test]
fn a_captured_response_header_is_seen_by_http_after_response_rules() {
    let (be, _) = http_backend(|_| b"HTTP/1.1 200 OK\r\nserver: origin-7\r\ncontent-length: 0\r\n\r\n".to_vec());
    let port = free_port();
    let fe = "  capture response header Server len 6\n  http-after-response set-header X-Srv %[capture.res.hdr(0)]";
    let _s = Sluiced::start(&http_cfg(port, fe, &format!("  server s {}", be.addr())), &[port]);
    let (_, head, _) = http_request(port, GET);
    assert_eq!(header(&head, "x-srv"), Some("origin"), "{head}");
}

#[test]
fn captures_are_reset_for_each_request_of_a_connection() {
    let (be, _) = http_backend(|_| ok_response("x"));
    let port = free_port();
    let fe = "  http-request capture req.hdr(x-in) len 10\n  http-request return status 200 content-type text/plain lf-string \"[%[capture.req.hdr(0)]]\"";
    let _s = Sluiced::start(&http_cfg(port, fe, &format!("  server s {}", be.addr())), &[port]);
    let bodies = keep_alive(port, &[GET, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"]);
    assert_eq!(bodies, ["[hello]", "[-]"]);
}
