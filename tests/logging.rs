//! Logging: the real daemon sends syslog lines to a UDP socket the test owns (or to its standard
//! output), and each line is compared field by field with HAProxy's formats. Timers are matched
//! as numbers, never as exact values.

mod support;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

use regex::Regex;
use support::*;

/// A syslog receiver on an ephemeral port.
fn syslog() -> (UdpSocket, u16) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let port = s.local_addr().unwrap().port();
    (s, port)
}

/// The next datagram, as text.
fn line(s: &UdpSocket) -> String {
    let mut buf = [0u8; 65536];
    let n = s.recv(&mut buf).expect("a log line within 5 s");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// No datagram within `wait`.
fn no_line(s: &UdpSocket, wait: Duration) {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 65536];
    if let Ok(n) = s.recv(&mut buf) {
        panic!("unexpected log line: {}", String::from_utf8_lossy(&buf[..n]));
    }
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
}

/// The RFC3164 header HAProxy writes with `log-tag haproxy`, facility local0, level info; the
/// message follows.
const HEADER: &str = r"^<134>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d haproxy\[\d+\]: ";
const DATE: &str = r"\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d\.\d{3}\]";

fn matches(line: &str, re: &str) -> regex::Captures<'static> {
    let re = Regex::new(re).unwrap();
    let line: &'static str = Box::leak(line.to_owned().into_boxed_str());
    re.captures(line).unwrap_or_else(|| panic!("log line {line:?} does not match {re}"))
}

fn num(c: &regex::Captures<'_>, i: usize) -> i64 {
    c[i].parse().unwrap()
}

/// An HTTP configuration logging to `log_port`, with `fe` and `be` lines.
fn http_logged(port: u16, log_port: u16, fe: &str, be: &str) -> String {
    format!(
        "global\n  log 127.0.0.1:{log_port} local0\n  log-tag haproxy\ndefaults\n  mode http\n  log global\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n  timeout http-request 2s\nfrontend f\n  bind 127.0.0.1:{port}\n{fe}\n  default_backend b\nbackend b\n{be}\n"
    )
}

fn tcp_logged(port: u16, log_port: u16, fe: &str, be: &str) -> String {
    format!(
        "global\n  log 127.0.0.1:{log_port} local0\n  log-tag haproxy\ndefaults\n  mode tcp\n  log global\n  option tcplog\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\nfrontend f\n  bind 127.0.0.1:{port}\n{fe}\n  default_backend b\nbackend b\n{be}\n"
    )
}

#[test]
fn httplog_request() {
    let (sys, lp) = syslog();
    let (be, _) = http_backend(|_| ok_response("hello"));
    let port = free_port();
    let cfg = http_logged(
        port,
        lp,
        "  option httplog\n  capture request header Host len 20\n  capture response header Server len 10",
        &format!("  server s {}", be.addr()),
    );
    let _s = Sluiced::start(&cfg, &[port]);
    let (status, _, _) = http_request(port, b"GET /x?y=1 HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 200);
    let l = line(&sys);
    let c = matches(
        &l,
        &format!(
            r#"{HEADER}127\.0\.0\.1:(\d+) {DATE} f b/s (\d+)/(\d+)/(\d+)/(\d+)/(\d+) 200 (\d+) - - ---- (\d+)/(\d+)/(\d+)/(\d+)/0 0/0 \{{example\.com\}} \{{\}} "GET /x\?y=1 HTTP/1\.1"\n$"#
        ),
    );
    assert!(num(&c, 1) > 0);
    let (tr, tw, tc, tr2, ta) = (num(&c, 2), num(&c, 3), num(&c, 4), num(&c, 5), num(&c, 6));
    assert!(tr >= 0 && tw >= 0 && tc >= 0 && tr2 >= 0 && ta >= tr + tw + tc + tr2 - 1, "{l}");
    assert!(num(&c, 7) > 0, "bytes sent to the client: {l}");
}

#[test]
fn capture_cookie_fills_httplogs_request_and_response_cookie_fields() {
    let (sys, lp) = syslog();
    let (be, _) = http_backend(|req| {
        let set = if String::from_utf8_lossy(req).contains("GET /login ") { "Set-Cookie: SESSIONID=new42; Path=/; HttpOnly\r\n" } else { "" };
        format!("HTTP/1.1 200 OK\r\n{set}Set-Cookie: theme=dark\r\nContent-Length: 2\r\n\r\nok").into_bytes()
    });
    let port = free_port();
    let cfg = http_logged(port, lp, "  option httplog\n  capture cookie SESSIONID len 14", &format!("  server s {}", be.addr()));
    let _s = Sluiced::start(&cfg, &[port]);
    // Both cookies are cut to 14 bytes; the response's is logged without its attributes.
    let (status, _, _) = http_request(port, b"GET /login HTTP/1.1\r\nHost: h\r\nCookie: lang=en; SESSIONID=old1234567\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 200);
    let l = line(&sys);
    matches(&l, &format!(r#"{HEADER}127\.0\.0\.1:\d+ {DATE} f b/s [\d/]+ 200 \d+ SESSIONID=old1 SESSIONID=new4 ---- .* "GET /login HTTP/1\.1"\n$"#));
    // Neither side has one: '-' in both fields.
    let (status, _, _) = http_request(port, b"GET /other HTTP/1.1\r\nHost: h\r\nCookie: lang=en\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 200);
    let l = line(&sys);
    matches(&l, &format!(r#"{HEADER}127\.0\.0\.1:\d+ {DATE} f b/s [\d/]+ 200 \d+ - - ---- .* "GET /other HTTP/1\.1"\n$"#));
}

#[test]
fn tcplog_session() {
    let (sys, lp) = syslog();
    let be = Backend::echo();
    let port = free_port();
    let _s = Sluiced::start(&tcp_logged(port, lp, "", &format!("  server s {}", be.addr())), &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"hello world").unwrap();
    let mut got = [0u8; 11];
    c.read_exact(&mut got).unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let _ = read_to_end(&mut c, Duration::from_secs(5));
    drop(c);
    let l = line(&sys);
    let c = matches(&l, &format!(r"{HEADER}127\.0\.0\.1:\d+ {DATE} f b/s (\d+)/(\d+)/(\d+) 11 -- \d+/\d+/\d+/\d+/0 0/0\n$"));
    let (tw, tc, tt) = (num(&c, 1), num(&c, 2), num(&c, 3));
    assert!(tw >= 0 && tc >= 0 && tt >= tw + tc, "{l}");
}

/// `option logasap` in mode tcp: the line goes out once the server is connected, while the
/// session still runs, with `+` before the total time and bytes; nothing more at its end.
#[test]
fn logasap_logs_a_tcp_session_once_the_server_is_connected() {
    let (sys, lp) = syslog();
    let be = Backend::echo();
    let port = free_port();
    let _s = Sluiced::start(&tcp_logged(port, lp, "  option logasap", &format!("  server s {}", be.addr())), &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"hello").unwrap();
    let mut got = [0u8; 5];
    c.read_exact(&mut got).unwrap();
    // The session is still open.
    let l = line(&sys);
    matches(&l, &format!(r"{HEADER}127\.0\.0\.1:\d+ {DATE} f b/s \d+/\d+/\+\d+ \+\d+ -- \d+/\d+/\d+/\d+/0 0/0\n$"));
    c.write_all(b" world").unwrap();
    let mut got = [0u8; 6];
    c.read_exact(&mut got).unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let _ = read_to_end(&mut c, Duration::from_secs(5));
    drop(c);
    no_line(&sys, Duration::from_millis(500));
}

/// `option logasap` in mode http: each transaction's line goes out with its response head,
/// before the body has come from the server; `%Ta`, `%Tt` and `%B` are marked `+`.
#[test]
fn logasap_logs_each_http_transaction_with_its_response_head() {
    let (sys, lp) = syslog();
    let body_may_go = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gate = body_may_go.clone();
    let be = Backend::start(move |mut c| {
        let mut buf = Vec::new();
        while read_request(&mut c, &mut buf).is_some() {
            if c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n").is_err() {
                return;
            }
            // The body waits for the test to have seen the log line (bounded: 5 s).
            let t = std::time::Instant::now();
            while !gate.swap(false, std::sync::atomic::Ordering::SeqCst) && t.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(5));
            }
            if c.write_all(b"hello").is_err() {
                return;
            }
        }
    });
    let port = free_port();
    let cfg = http_logged(port, lp, "  option logasap\n  log-format \"%ST %Ta %Tt %B %{+Q}r\"", &format!("  server s {}", be.addr()));
    let _s = Sluiced::start(&cfg, &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    for path in ["/one", "/two"] {
        c.write_all(format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes()).unwrap();
        let l = line(&sys);
        let m = matches(&l, &format!(r#"{HEADER}200 \+(\d+) \+(\d+) \+(\d+) "GET {path} HTTP/1\.1"\n$"#));
        assert!(num(&m, 3) > 0, "the head's bytes so far: {l}");
        body_may_go.store(true, std::sync::atomic::Ordering::SeqCst);
        let (status, _, body) = read_response(&mut c);
        assert_eq!((status, body.as_slice()), (200, &b"hello"[..]));
    }
    drop(c);
    no_line(&sys, Duration::from_millis(500));
}

/// `%ID` in mode tcp: the id `unique-id-format` makes once the server is connected.
#[test]
fn a_tcp_session_logs_its_unique_id() {
    let (sys, lp) = syslog();
    let be = Backend::echo();
    let port = free_port();
    let fe = "  unique-id-format \"%{+X}o%ci:%cp_%b\"\n  log-format \"id=%ID\"";
    let _s = Sluiced::start(&tcp_logged(port, lp, fe, &format!("  server s {}", be.addr())), &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let client_port = c.local_addr().unwrap().port();
    c.write_all(b"x").unwrap();
    let mut got = [0u8; 1];
    c.read_exact(&mut got).unwrap();
    drop(c);
    assert_eq!(matches(&line(&sys), &format!(r"{HEADER}id=(\S+)\n$"))[1], format!("7F000001:{client_port:04X}_b"));
}

#[test]
fn custom_log_format_and_rfc5424() {
    let (sys, lp) = syslog();
    let (be, _) = http_backend(|_| ok_response("hello"));
    let port = free_port();
    let cfg = format!(
        "global\n  log 127.0.0.1:{lp} format rfc5424 local1 info\n  log-tag lb\ndefaults\n  mode http\n  log global\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\nfrontend f\n  bind 127.0.0.1:{port}\n  log-format \"%ci %HM %HP %HQ %HV %ST %b/%s %{{+Q}}r %[src] %U\"\n  default_backend b\nbackend b\n  server s {}\n",
        be.addr()
    );
    let _s = Sluiced::start(&cfg, &[port]);
    let (status, _, _) = http_request(port, b"POST /p?q=2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc");
    assert_eq!(status, 200);
    let l = line(&sys);
    let c = matches(
        &l,
        r#"^<142>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00 - lb \d+ - - 127\.0\.0\.1 POST /p \?q=2 HTTP/1\.1 200 b/s "POST /p\?q=2 HTTP/1\.1" 127\.0\.0\.1 (\d+)\n$"#,
    );
    assert!(num(&c, 1) > 60, "bytes uploaded, head and body: {l}");
}

#[test]
fn json_log_format() {
    let (sys, lp) = syslog();
    let (be, _) = http_backend(|_| ok_response("hello"));
    let port = free_port();
    let cfg = http_logged(
        port,
        lp,
        "  capture request header User-Agent len 30\n  log-format \"%{+json}o %ci %ST %HU %b %Tc %hr\"",
        &format!("  server s {}", be.addr()),
    );
    let _s = Sluiced::start(&cfg, &[port]);
    http_request(port, b"GET /j?a=1 HTTP/1.1\r\nHost: a\r\nUser-Agent: say \"hi\"\r\nConnection: close\r\n\r\n");
    let l = line(&sys);
    matches(&l, &format!(r#"{HEADER}\{{"ci": "127\.0\.0\.1", "ST": 200, "HU": "/j\?a=1", "b": "b", "Tc": \d+, "hr": "\{{say \\"hi\\"\}}"\}}\n$"#));
}

#[test]
fn client_timeout_is_cd() {
    let (sys, lp) = syslog();
    // A server that accepts and says nothing.
    let be = Backend::start(|mut s| {
        let _ = read_to_end(&mut s, Duration::from_secs(5));
    });
    let port = free_port();
    let cfg = tcp_logged(port, lp, "  timeout client 300ms", &format!("  timeout server 5s\n  server s {}", be.addr())).replace("  timeout client 10s\n", "");
    let _s = Sluiced::start(&cfg, &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"x").unwrap();
    let l = line(&sys);
    matches(&l, &format!(r"{HEADER}127\.0\.0\.1:\d+ {DATE} f b/s \d+/\d+/\d+ 0 cD "));
}

#[test]
fn server_timeout_is_sh() {
    let (sys, lp) = syslog();
    let be = Backend::start(|mut s| {
        let _ = read_to_end(&mut s, Duration::from_secs(5));
    });
    let port = free_port();
    let cfg = http_logged(port, lp, "  option httplog", &format!("  timeout server 300ms\n  server s {}", be.addr())).replace("  timeout server 10s\n", "");
    let _s = Sluiced::start(&cfg, &[port]);
    let (status, _, _) = http_request(port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(status, 504);
    let l = line(&sys);
    matches(&l, &format!(r#"{HEADER}127\.0\.0\.1:\d+ {DATE} f b/s \d+/\d+/\d+/-1/\d+ 504 \d+ - - sH-- "#));
}

#[test]
fn refused_connection_is_sc() {
    let (sys, lp) = syslog();
    let closed = free_port();
    let port = free_port();
    let _s = Sluiced::start(&tcp_logged(port, lp, "", &format!("  server s 127.0.0.1:{closed}")), &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let _ = read_to_end(&mut c, Duration::from_secs(5));
    let l = line(&sys);
    matches(&l, &format!(r"{HEADER}127\.0\.0\.1:\d+ {DATE} f b/<NOSRV> \d+/-1/\d+ 0 SC "));
}

#[test]
fn client_abort_is_c() {
    let (sys, lp) = syslog();
    let (be, _) = http_backend(|_| ok_response("hello"));
    let port = free_port();
    let cfg = http_logged(port, lp, "  option httplog", &format!("  server s {}", be.addr()));
    let _s = Sluiced::start(&cfg, &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // A body announced and never sent: the client leaves in the middle of it.
    c.write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    drop(c);
    let l = line(&sys);
    matches(&l, &format!(r#"{HEADER}127\.0\.0\.1:\d+ {DATE} f b/s \S+ -?\d+ \d+ - - C[DH]-- "#));
}

#[test]
fn dontlognull_skips_empty_connections() {
    let (sys, lp) = syslog();
    let (be, _) = http_backend(|_| ok_response("hello"));
    let port = free_port();
    let cfg = http_logged(port, lp, "  option httplog\n  option dontlognull", &format!("  server s {}", be.addr()));
    let _s = Sluiced::start(&cfg, &[port]);
    drop(TcpStream::connect(("127.0.0.1", port)).unwrap());
    no_line(&sys, Duration::from_millis(300));
    http_request(port, b"GET /real HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    assert!(line(&sys).contains("\"GET /real HTTP/1.1\""));
}

#[test]
fn http_ignore_probes_skips_connections_closed_or_timed_out_before_a_byte_but_logs_a_partial_request() {
    let (sys, lp) = syslog();
    let (be, _) = http_backend(|_| ok_response("hello"));
    let port = free_port();
    let cfg = http_logged(port, lp, "  option httplog\n  option http-ignore-probes\n  timeout http-request 300ms", &format!("  server s {}", be.addr()));
    let _s = Sluiced::start(&cfg, &[port]);
    // A pre-connect that is closed, and one that times out: no answer, no line.
    drop(TcpStream::connect(("127.0.0.1", port)).unwrap());
    let mut idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert_eq!(read_to_end(&mut idle, Duration::from_secs(3)).unwrap(), b"", "nothing is sent to a probe");
    no_line(&sys, Duration::from_millis(300));
    // A request begun and abandoned is no probe: it is logged as without the option.
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"GET / HT").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    drop(c);
    let l = line(&sys);
    matches(&l, &format!(r#"{HEADER}127\.0\.0\.1:\d+ {DATE} f <NOSRV>/<NOSRV> .*"<BADREQ>"\n$"#));
    http_request(port, b"GET /real HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    assert!(line(&sys).contains("\"GET /real HTTP/1.1\""));
}

#[test]
fn empty_connection_is_logged_without_dontlognull() {
    let (sys, lp) = syslog();
    let (be, _) = http_backend(|_| ok_response("hello"));
    let port = free_port();
    let _s = Sluiced::start(&http_logged(port, lp, "  option httplog", &format!("  server s {}", be.addr())), &[port]);
    drop(TcpStream::connect(("127.0.0.1", port)).unwrap());
    let l = line(&sys);
    matches(&l, &format!(r#"{HEADER}127\.0\.0\.1:\d+ {DATE} f <NOSRV>/<NOSRV> -?\d+/-1/-1/-1/\d+ -1 0 - - CR-- .*"<BADREQ>"\n$"#));
}

#[test]
fn unique_id_reaches_the_backend_and_the_log() {
    let (sys, lp) = syslog();
    let (be, seen) = http_backend(|_| ok_response("hello"));
    let port = free_port();
    let cfg = http_logged(
        port,
        lp,
        "  unique-id-format \"%{+X}o%ci:%cp_%Ts\"\n  unique-id-header X-Unique-ID\n  log-format \"id=%ID\"",
        &format!("  server s {}", be.addr()),
    );
    let _s = Sluiced::start(&cfg, &[port]);
    http_request(port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    let l = line(&sys);
    let c = matches(&l, &format!(r"{HEADER}id=(7F000001:[0-9A-F]+_[0-9A-F]+)\n$"));
    let req = String::from_utf8_lossy(&seen.lock().unwrap().requests[0]).into_owned();
    assert!(req.to_ascii_lowercase().contains(&format!("x-unique-id: {}", &c[1]).to_ascii_lowercase()), "{req}");
}

/// A rule's `%[unique-id]` makes the id once: the header rule, `unique-id-header`, the
/// response rule and the log line all have the same one.
#[test]
fn the_unique_id_a_rule_fetches_is_the_one_sent_returned_and_logged() {
    let (sys, lp) = syslog();
    let (be, seen) = http_backend(|_| ok_response("hello"));
    let port = free_port();
    let cfg = http_logged(
        port,
        lp,
        "  unique-id-format \"%{+X}o%ci:%cp_%[rand]\"\n  unique-id-header X-Unique-ID\n  log-format \"id=%ID\"\n  \
         http-request set-header X-Rule-Id %[unique-id]\n  http-response set-header X-Id %[unique-id]",
        &format!("  server s {}", be.addr()),
    );
    let _s = Sluiced::start(&cfg, &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut ids = Vec::new();
    for i in 0..2 {
        let close = if i == 1 { "Connection: close\r\n" } else { "" };
        c.write_all(format!("GET / HTTP/1.1\r\nHost: a\r\n{close}\r\n").as_bytes()).unwrap();
        let (status, head, _) = read_response(&mut c);
        assert_eq!(status, 200);
        let l = line(&sys);
        let id = matches(&l, &format!(r"{HEADER}id=(7F000001:[0-9A-F]+_[0-9A-F]+)\n$"))[1].to_owned();
        assert!(head.to_ascii_lowercase().contains(&format!("x-id: {}\r\n", id.to_ascii_lowercase())), "{head}");
        let req = String::from_utf8_lossy(&seen.lock().unwrap().requests[i]).to_ascii_lowercase();
        let id = id.to_ascii_lowercase();
        assert!(req.contains(&format!("x-rule-id: {id}\r\n")) && req.contains(&format!("x-unique-id: {id}\r\n")), "{req}");
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1], "one id per transaction");
}

/// A request a rule answers has no server; the id the rule made is still in its log line.
#[test]
fn a_request_answered_by_a_rule_logs_the_unique_id_it_returned() {
    let (sys, lp) = syslog();
    let port = free_port();
    let cfg = http_logged(
        port,
        lp,
        "  unique-id-format \"%{+X}o%ci_%[rand]\"\n  log-format \"id=%ID\"\n  http-request return status 200 content-type text/plain lf-string %[unique-id]",
        "  server s 127.0.0.1:1",
    );
    let _s = Sluiced::start(&cfg, &[port]);
    let (status, _, body) = http_request(port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 200);
    let body = String::from_utf8(body).unwrap();
    assert!(body.starts_with("7F000001_"), "{body}");
    assert_eq!(&matches(&line(&sys), &format!(r"{HEADER}id=(\S+)\n$"))[1], body);
}

#[test]
fn unique_id_header_without_log_target() {
    let (be, seen) = http_backend(|_| ok_response("hello"));
    let port = free_port();
    let fe = "  unique-id-format \"%{+X}o%ci_%pid\"\n  unique-id-header X-Unique-ID";
    let _s = Sluiced::start(&http_cfg(port, fe, &format!("  server s {}", be.addr())), &[port]);
    http_request(port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    let req = String::from_utf8_lossy(&seen.lock().unwrap().requests[0]).to_ascii_lowercase();
    assert!(req.contains("x-unique-id: 7f000001_"), "{req}");
}

#[test]
fn tcplog_in_a_tcp_mode_listen_section_with_httplog() {
    let (sys, lp) = syslog();
    let be = Backend::echo();
    let port = free_port();
    let _s = Sluiced::start(&tcp_logged(port, lp, "  option httplog", &format!("  server s {}", be.addr())), &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"ping").unwrap();
    let mut got = [0u8; 4];
    c.read_exact(&mut got).unwrap();
    drop(c);
    let l = line(&sys);
    matches(&l, &format!(r"{HEADER}127\.0\.0\.1:\d+ {DATE} f b/s \d+/\d+/\d+ 4 (--|CD) "));
}

#[test]
fn separate_errors_log_at_err() {
    let (sys, lp) = syslog();
    let closed = free_port();
    let port = free_port();
    let cfg = http_logged(port, lp, "  option httplog\n  option log-separate-errors", &format!("  server s 127.0.0.1:{closed}"));
    let _s = Sluiced::start(&cfg, &[port]);
    let (status, _, _) = http_request(port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(status, 503);
    // local0.err = 16 * 8 + 3
    assert!(line(&sys).starts_with("<131>"));
}

#[test]
fn set_log_level_silences_or_changes_the_level_of_one_transaction() {
    let (sys, lp) = syslog();
    let (be, _) =
        http_backend(
            |req| {
                if req.starts_with(b"GET /missing ") { b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_vec() } else { ok_response("hello") }
            },
        );
    let port = free_port();
    let cfg = http_logged(
        port,
        lp,
        "  option httplog\n  http-request set-log-level silent if { path /health }\n  http-response set-log-level warning if { status 404 }",
        &format!("  server s {}\n  http-request set-log-level notice if {{ path /notice }}", be.addr()),
    );
    let _s = Sluiced::start(&cfg, &[port]);
    // Keep-alive: the silent request, then a normal one on the same connection; only the second
    // is logged, at info (local0.info = 16 * 8 + 6).
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    for path in ["/health", "/page"] {
        c.write_all(format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes()).unwrap();
        assert_eq!(read_response(&mut c).0, 200);
    }
    drop(c);
    let l = line(&sys);
    assert!(l.starts_with("<134>") && l.contains("\"GET /page HTTP/1.1\""), "{l}");
    no_line(&sys, Duration::from_millis(300));
    // A backend rule: notice (<133>).
    http_request(port, b"GET /notice HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    let l = line(&sys);
    assert!(l.starts_with("<133>") && l.contains("/notice"), "{l}");
    // A response rule: warning (<132>).
    assert_eq!(http_request(port, b"GET /missing HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").0, 404);
    let l = line(&sys);
    assert!(l.starts_with("<132>") && l.contains("/missing"), "{l}");
}

/// `tcp-request content set-log-level`: in mode tcp for the session (from what the client
/// sent), in mode http for the one request whose head matched.
#[test]
fn tcp_request_content_set_log_level_in_mode_tcp_and_mode_http() {
    let (sys, lp) = syslog();
    let be = Backend::echo();
    let port = free_port();
    let fe = "  tcp-request inspect-delay 2s\n  tcp-request content set-log-level silent if { req.payload(0,5) -m str quiet }\n  \
              tcp-request content set-log-level notice if { req.payload(0,5) -m str loud! }\n  tcp-request content accept if { req.len ge 5 }";
    let _s = Sluiced::start(&tcp_logged(port, lp, fe, &format!("  server s {}", be.addr())), &[port]);
    for what in [&b"quiet"[..], b"loud!"] {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(what).unwrap();
        let mut got = [0u8; 5];
        c.read_exact(&mut got).unwrap();
    }
    // Only the second session is logged, at notice (local0.notice = 16 * 8 + 5).
    let l = line(&sys);
    assert!(l.starts_with("<133>") && l.contains(" f b/s "), "{l}");
    no_line(&sys, Duration::from_millis(300));

    let (hsys, hlp) = syslog();
    let (hbe, _) = http_backend(|_| ok_response("hello"));
    let hport = free_port();
    let cfg =
        http_logged(hport, hlp, "  option httplog\n  tcp-request content set-log-level silent if { path /healthz }", &format!("  server s {}", hbe.addr()));
    let _h = Sluiced::start(&cfg, &[hport]);
    let mut c = TcpStream::connect(("127.0.0.1", hport)).unwrap();
    for path in ["/healthz", "/page"] {
        c.write_all(format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes()).unwrap();
        assert_eq!(read_response(&mut c).0, 200);
    }
    drop(c);
    let l = line(&hsys);
    assert!(l.starts_with("<134>") && l.contains("\"GET /page HTTP/1.1\""), "{l}");
    no_line(&hsys, Duration::from_millis(300));
}

#[test]
fn stdout_target() {
    let (be, _) = http_backend(|_| ok_response("hello"));
    let port = free_port();
    let cfg = format!(
        "defaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\nfrontend f\n  bind 127.0.0.1:{port}\n  log stdout format raw local0\n  log-format \"stdout %HM %HU %ST\"\n  default_backend b\nbackend b\n  server s {}\n",
        be.addr()
    );
    let mut s = Sluiced::start(&cfg, &[port]);
    http_request(port, b"GET /out HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    let mut out = s.child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        let mut got = Vec::new();
        while !got.ends_with(b"\n") {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        let _ = tx.send(got);
    });
    let got = rx.recv_timeout(Duration::from_secs(5)).expect("a line on stdout");
    assert_eq!(String::from_utf8_lossy(&got), "stdout GET /out 200\n");
}

#[test]
fn keep_alive_requests_log_one_line_each_with_idle_time() {
    let (sys, lp) = syslog();
    let (be, _) = http_backend(|_| ok_response("hello"));
    let port = free_port();
    let cfg = http_logged(port, lp, "  log-format \"%Ti %TR %Ta %{+Q}r\"", &format!("  server s {}", be.addr()));
    let _s = Sluiced::start(&cfg, &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut c).0, 200);
    let first = matches(&line(&sys), &format!(r#"{HEADER}(\d+) (\d+) (\d+) "GET /one HTTP/1\.1"\n$"#));
    assert!(num(&first, 1) >= 0);
    std::thread::sleep(Duration::from_millis(300));
    c.write_all(b"GET /two HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut c).0, 200);
    let second = matches(&line(&sys), &format!(r#"{HEADER}(\d+) (\d+) (\d+) "GET /two HTTP/1\.1"\n$"#));
    // The pause is idle time, not request time.
    assert!(num(&second, 1) >= 250, "Ti {}", &second[1]);
    assert!(num(&second, 2) < 250, "TR {}", &second[2]);
    drop(c);
    no_line(&sys, Duration::from_millis(300));
}

#[test]
fn tcp_log_format_with_samples() {
    let (sys, lp) = syslog();
    let be = Backend::echo();
    let port = free_port();
    let fe = "  tcp-request connection set-var(sess.tag) str(tagged)\n  log-format \"%ci %[src] %[dst_port] %[var(sess.tag)] %[be_name] %U/%B\"";
    let _s = Sluiced::start(&tcp_logged(port, lp, fe, &format!("  server s {}", be.addr())), &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"abc").unwrap();
    let mut got = [0u8; 3];
    c.read_exact(&mut got).unwrap();
    drop(c);
    let l = line(&sys);
    matches(&l, &format!(r"{HEADER}127\.0\.0\.1 127\.0\.0\.1 {port} tagged b 3/3\n$"));
}

#[test]
fn default_format_logs_the_connection_at_accept() {
    let (sys, lp) = syslog();
    let (be, _) = http_backend(|_| ok_response("hello"));
    let port = free_port();
    let _s = Sluiced::start(&http_logged(port, lp, "", &format!("  server s {}", be.addr())), &[port]);
    let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let l = line(&sys);
    matches(&l, &format!(r"{HEADER}Connect from 127\.0\.0\.1:\d+ to 127\.0\.0\.1:{port} \(f/HTTP\)\n$"));
    drop(c);
    no_line(&sys, Duration::from_millis(300));
}

#[test]
fn connection_retries_show_in_rc_with_a_plus_once_redispatched() {
    let (sys, lp) = syslog();
    let (dead, _hold) = dead_port();
    let (be, _) = http_backend(|_| ok_response("hello"));
    // HTTP: the connect to s1 fails and `option redispatch 1` moves the retry to s2.
    let port = free_port();
    let cfg = http_logged(
        port,
        lp,
        "  option httplog",
        &format!("  balance first\n  option redispatch 1\n  timeout connect 500ms\n  server s1 127.0.0.1:{dead}\n  server s2 {}", be.addr()),
    );
    let s = Sluiced::start(&cfg, &[port]);
    let (status, _, _) = http_request(port, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 200);
    matches(&line(&sys), r" f b/s2 [-\d/]+ 200 \d+ - - ---- \d+/\d+/\d+/\d+/\+1 0/0 ");
    drop(s);
    // TCP, no redispatch: three retries on the dead server, then no server; `%rc` is 3.
    let port = free_port();
    let cfg = tcp_logged(port, lp, "", &format!("  retries 3\n  timeout connect 500ms\n  server s1 127.0.0.1:{dead}"));
    let _s = Sluiced::start(&cfg, &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let _ = read_to_end(&mut c, Duration::from_secs(10));
    matches(&line(&sys), r" f b/<NOSRV> [-\d/]+ 0 SC \d+/\d+/\d+/\d+/3 0/0\n$");
}
