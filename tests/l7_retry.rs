//! `retry-on`: a request whose answer (or its absence) is one the backend's `retry-on` names goes
//! again on a new connection, within `retries`, to another server when `option redispatch` says
//! so; `disable-l7-retry` and a body that did not go out whole keep a request from going twice;
//! `retry-on none` stops connection retries too. The servers are written here, each answering
//! the requests it receives by a script shared by all its connections.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::*;

/// What a scripted server does with one request.
#[derive(Clone, Copy, Debug)]
enum Act {
    /// Closes the connection without a byte.
    Close,
    /// Answers bytes that are not HTTP, then closes.
    Junk,
    /// Answers a head with two framings (Content-Length and chunked), then closes.
    TwoFramings,
    /// Says nothing for two seconds, then closes.
    Stall,
    /// Answers with this status (and a body naming it), keeping the connection.
    Status(u16),
}

/// A server that takes the requests it receives, across all its connections, in order through
/// `script`, and answers 200 "ok from <name>" once the script is spent. Returns it with the
/// requests it has read (raw).
fn scripted(name: &'static str, script: Vec<Act>) -> (Backend, Arc<Mutex<Vec<Vec<u8>>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let next = Arc::new(AtomicUsize::new(0));
    let s2 = seen.clone();
    let b = Backend::start(move |mut c| {
        let mut buf = Vec::new();
        while let Some(req) = read_request(&mut c, &mut buf) {
            s2.lock().unwrap().push(req);
            let act = script.get(next.fetch_add(1, Ordering::SeqCst)).copied();
            match act {
                Some(Act::Close) => return,
                Some(Act::Junk) => {
                    let _ = c.write_all(b"this is not HTTP\r\n\r\n");
                    return;
                }
                Some(Act::TwoFramings) => {
                    let _ = c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n");
                    return;
                }
                Some(Act::Stall) => {
                    std::thread::sleep(Duration::from_secs(2));
                    return;
                }
                Some(Act::Status(s)) => {
                    let body = format!("{s} from {name}");
                    let r = format!("HTTP/1.1 {s} Whatever\r\ncontent-length: {}\r\n\r\n{body}", body.len());
                    if c.write_all(r.as_bytes()).is_err() {
                        return;
                    }
                }
                None => {
                    if c.write_all(&ok_response(&format!("ok from {name}"))).is_err() {
                        return;
                    }
                }
            }
        }
    });
    (b, seen)
}

fn start(backend: &str) -> (Sluiced, u16) {
    let port = free_port();
    let s = Sluiced::start(&http_cfg(port, "", backend), &[port]);
    (s, port)
}

fn get(port: u16) -> (u16, String) {
    let (status, _, body) = http_request(port, b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n");
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn an_empty_response_is_retried_with_retry_on_empty_response_and_is_502_without() {
    let (be, seen) = scripted("s1", vec![Act::Close]);
    let (_s, port) = start(&format!("  retry-on empty-response\n  server s1 {}", be.addr()));
    assert_eq!(get(port), (200, "ok from s1".into()));
    assert_eq!(seen.lock().unwrap().len(), 2, "the request went twice");

    let (be, seen) = scripted("s1", vec![Act::Close]);
    let (_s, port) = start(&format!("  server s1 {}", be.addr()));
    assert_eq!(get(port).0, 502);
    assert_eq!(seen.lock().unwrap().len(), 1, "without retry-on, a request that reached the server never goes twice");
}

#[test]
fn a_junk_response_is_retried_with_retry_on_junk_response() {
    let (be, seen) = scripted("s1", vec![Act::Junk, Act::TwoFramings]);
    let (_s, port) = start(&format!("  retry-on junk-response\n  server s1 {}", be.addr()));
    assert_eq!(get(port), (200, "ok from s1".into()));
    assert_eq!(seen.lock().unwrap().len(), 3);
    // empty-response alone does not cover junk.
    let (be, seen) = scripted("s1", vec![Act::Junk]);
    let (_s, port) = start(&format!("  retry-on empty-response\n  server s1 {}", be.addr()));
    assert_eq!(get(port).0, 502);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[test]
fn a_server_timeout_before_the_response_is_retried_with_retry_on_response_timeout() {
    let (be, seen) = scripted("s1", vec![Act::Stall]);
    let (_s, port) = start(&format!("  timeout server 300ms\n  retry-on response-timeout\n  server s1 {}", be.addr()));
    assert_eq!(get(port), (200, "ok from s1".into()));
    assert_eq!(seen.lock().unwrap().len(), 2);

    let (be, _seen) = scripted("s1", vec![Act::Stall]);
    let (_s, port) = start(&format!("  timeout server 300ms\n  server s1 {}", be.addr()));
    assert_eq!(get(port).0, 504);
}

#[test]
fn a_listed_status_is_retried_and_the_answer_never_reaches_the_client() {
    let (be, seen) = scripted("s1", vec![Act::Status(503), Act::Status(500)]);
    let (_s, port) = start(&format!("  retry-on 503 500\n  server s1 {}", be.addr()));
    assert_eq!(get(port), (200, "ok from s1".into()));
    assert_eq!(seen.lock().unwrap().len(), 3);
    // A status not listed passes through as it is.
    let (be, seen) = scripted("s1", vec![Act::Status(404)]);
    let (_s, port) = start(&format!("  retry-on 503\n  server s1 {}", be.addr()));
    assert_eq!(get(port), (404, "404 from s1".into()));
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[test]
fn retries_bound_the_attempts_and_the_last_answer_is_passed_on() {
    let (be, seen) = scripted("s1", vec![Act::Status(503); 10]);
    let (_s, port) = start(&format!("  retries 2\n  retry-on all-retryable-errors\n  server s1 {}", be.addr()));
    assert_eq!(get(port), (503, "503 from s1".into()));
    assert_eq!(seen.lock().unwrap().len(), 3, "the first attempt and two retries");
}

#[test]
fn connection_retries_spend_the_same_retries_as_request_retries() {
    // s1 refuses connections and s2 always answers 503. With `retries 1`, the failed connect to
    // s1 spends the one retry (and redispatches to s2): s2's 503 is not retried.
    let (dead, _hold) = dead_port();
    let (s2, seen) = scripted("s2", vec![Act::Status(503); 10]);
    let backend = |retries: u32| {
        format!(
            "  balance first\n  option redispatch 1\n  timeout connect 500ms\n  retries {retries}\n  retry-on conn-failure 503\n  server s1 127.0.0.1:{dead}\n  server s2 {}",
            s2.addr()
        )
    };
    let (s, port) = start(&backend(1));
    assert_eq!(get(port), (503, "503 from s2".into()));
    assert_eq!(seen.lock().unwrap().len(), 1, "the connection retry used the budget up");
    drop(s);
    // With `retries 3`: connect to s1 fails (1), s2 answers 503 and the request is redispatched
    // to s1 (2), whose connect fails and is redispatched to s2 (3), whose 503 is final.
    seen.lock().unwrap().clear();
    let (_s, port) = start(&backend(3));
    assert_eq!(get(port), (503, "503 from s2".into()));
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[test]
fn option_redispatch_sends_the_retry_to_another_server() {
    let (bad, bad_seen) = scripted("s1", vec![Act::Status(503); 10]);
    let (good, good_seen) = scripted("s2", vec![]);
    // `balance first`: every request goes to s1 first; `option redispatch 1`: every retry moves.
    let (s, port) = start(&format!(
        "  balance first\n  option redispatch 1\n  retry-on 503\n  server s1 {} maxconn 100\n  server s2 {} maxconn 100",
        bad.addr(),
        good.addr()
    ));
    for _ in 0..3 {
        assert_eq!(get(port), (200, "ok from s2".into()));
    }
    assert_eq!(bad_seen.lock().unwrap().len(), 3);
    assert_eq!(good_seen.lock().unwrap().len(), 3);
    drop(s);
    // Without redispatch the retries stay on s1, and its last 503 is the answer.
    let (bad, bad_seen) = scripted("s1", vec![Act::Status(503); 10]);
    let (good, good_seen) = scripted("s2", vec![]);
    let (_s, port) = start(&format!("  balance first\n  retry-on 503\n  server s1 {} maxconn 100\n  server s2 {} maxconn 100", bad.addr(), good.addr()));
    assert_eq!(get(port), (503, "503 from s1".into()));
    assert_eq!(bad_seen.lock().unwrap().len(), 4);
    assert_eq!(good_seen.lock().unwrap().len(), 0);
}

#[test]
fn disable_l7_retry_keeps_a_request_from_going_twice() {
    let (be, seen) = scripted("s1", vec![Act::Status(503), Act::Status(503)]);
    let port = free_port();
    let cfg = http_cfg(port, "  http-request disable-l7-retry if METH_POST", &format!("  retry-on 503\n  server s1 {}", be.addr()));
    let _s = Sluiced::start(&cfg, &[port]);
    let (status, _, _) = http_request(port, b"POST /pay HTTP/1.1\r\nHost: h\r\ncontent-length: 3\r\n\r\nabc");
    assert_eq!(status, 503);
    assert_eq!(seen.lock().unwrap().len(), 1);
    // A GET on the same proxy is retried.
    assert_eq!(get(port).0, 200);
    assert_eq!(seen.lock().unwrap().len(), 3);
}

#[test]
fn a_body_that_did_not_go_out_whole_is_never_sent_twice() {
    let (be, seen) = scripted("s1", vec![Act::Status(503)]);
    let (_s, port) = start(&format!("  retry-on 503\n  server s1 {}", be.addr()));
    // The head first, the body a moment later: it streams, so it cannot be sent again.
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"POST /up HTTP/1.1\r\nHost: h\r\ncontent-length: 5\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    c.write_all(b"hello").unwrap();
    assert_eq!(read_response(&mut c).0, 503);
    assert_eq!(seen.lock().unwrap().len(), 1);
    // The same body in one piece with its head goes again.
    let (be, seen) = scripted("s1", vec![Act::Status(503)]);
    let (_s, port) = start(&format!("  retry-on 503\n  server s1 {}", be.addr()));
    let (status, _, _) = http_request(port, b"POST /up HTTP/1.1\r\nHost: h\r\ncontent-length: 5\r\n\r\nhello");
    assert_eq!(status, 200);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|r| r.ends_with(b"\r\n\r\nhello")), "both attempts carried the body");
}

#[test]
fn retry_on_none_does_not_retry_a_failed_connection() {
    let (dead, _hold) = dead_port();
    let (good, _seen) = scripted("s2", vec![]);
    // s1 refuses connections; the default (conn-failure) retries, and redispatch moves to s2.
    let backend = |extra: &str| {
        format!("  balance first\n  option redispatch 1\n  timeout connect 500ms\n{extra}  server s1 127.0.0.1:{dead}\n  server s2 {}", good.addr())
    };
    let (s, port) = start(&backend(""));
    assert_eq!(get(port), (200, "ok from s2".into()));
    drop(s);
    let (_s, port) = start(&backend("  retry-on none\n"));
    assert_eq!(get(port).0, 503);
}

#[test]
fn retries_show_in_the_servers_retry_counter() {
    let (be, _seen) = scripted("s1", vec![Act::Status(503), Act::Close]);
    let port = free_port();
    let dir = temp_dir("l7retry");
    let sock = dir.join("s.sock");
    let cfg =
        format!("global\n  stats socket {}\n{}", sock.display(), http_cfg(port, "", &format!("  retry-on 503 empty-response\n  server s1 {}", be.addr())));
    let _s = Sluiced::start(&cfg, &[port]);
    assert_eq!(get(port).0, 200);
    let stat = ask(&sock, "show stat");
    let header: Vec<&str> = stat.lines().next().unwrap().trim_start_matches("# ").split(',').collect();
    let col = header.iter().position(|c| *c == "wretr").unwrap();
    let row = stat.lines().find(|l| l.starts_with("b,s1,")).unwrap();
    assert_eq!(row.split(',').nth(col), Some("2"), "{stat}");
}

#[test]
fn a_redispatched_retry_names_and_sticks_to_the_server_that_answered() {
    let (bad, bad_seen) = scripted("s1", vec![Act::Status(503); 10]);
    let (good, good_seen) = scripted("s2", vec![]);
    let (_s, port) = start(&format!(
        "  balance first\n  option redispatch 1\n  retry-on 503\n  http-send-name-header X-Server\n  stick-table type ip size 1k\n  stick on src\n  server s1 {}\n  server s2 {}",
        bad.addr(),
        good.addr()
    ));
    assert_eq!(get(port), (200, "ok from s2".into()));
    let to_s1 = String::from_utf8_lossy(&bad_seen.lock().unwrap()[0]).into_owned();
    assert!(to_s1.contains("x-server: s1\r\n"), "{to_s1}");
    let to_s2 = String::from_utf8_lossy(&good_seen.lock().unwrap()[0]).into_owned();
    assert!(to_s2.contains("x-server: s2\r\n") && !to_s2.contains("s1"), "{to_s2}");
    // The client's address is stored with s2, the server that answered: the next request goes
    // there at once, without trying s1.
    assert_eq!(get(port), (200, "ok from s2".into()));
    assert_eq!(bad_seen.lock().unwrap().len(), 1);
    assert_eq!(good_seen.lock().unwrap().len(), 2);
}
