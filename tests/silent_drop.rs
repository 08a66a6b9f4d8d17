//! `silent-drop`: the daemon forgets the connection and tells the client nothing, where `reject`
//! closes it (a FIN the client reads as end of stream). Without `rst-ttl` the close sends no
//! packet when the process may use `TCP_REPAIR`, else a reset with a TTL of 1; over loopback
//! (where no hop counts down the TTL) the client then sees that reset. With `rst-ttl` it is
//! always the reset. Either way: no byte of an answer, no FIN, and the daemon holds nothing.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use support::*;

/// What the client sees after sending `req` (if any): `Ok(bytes)` read until end of stream, or the
/// error that ended the read (a reset, or a time-out when nothing came at all).
fn outcome(port: u16, req: &[u8]) -> Result<Vec<u8>, ErrorKind> {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
    if !req.is_empty() {
        c.write_all(req).unwrap();
    }
    let mut got = Vec::new();
    match c.read_to_end(&mut got) {
        Ok(_) => Ok(got),
        Err(e) => {
            assert!(got.is_empty(), "a silently dropped client got bytes: {:?}", String::from_utf8_lossy(&got));
            Err(e.kind())
        }
    }
}

fn dropped_silently(r: Result<Vec<u8>, ErrorKind>) {
    match r {
        Err(ErrorKind::ConnectionReset | ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("expected a reset or silence, got {other:?}"),
    }
}

fn curr_conns(sock: &Path) -> u64 {
    ask(sock, "show info").lines().find_map(|l| l.strip_prefix("CurrConns: ")?.trim().parse().ok()).expect("a CurrConns line")
}

/// Waits up to two seconds for the daemon to hold no connection.
fn holds_nothing(sock: &Path) {
    let until = Instant::now() + Duration::from_secs(2);
    while curr_conns(sock) != 0 {
        assert!(Instant::now() < until, "the daemon still holds {} connections", curr_conns(sock));
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn http_request_silent_drop_tells_the_client_nothing_where_reject_closes_and_the_daemon_forgets_both() {
    let port = free_port();
    let sock = temp_dir("silent-drop-http").join("stats.sock");
    let cfg = format!(
        "global\n  stats socket {} level admin\ndefaults\n  mode http\n  timeout client 10s\nfrontend f\n  bind 127.0.0.1:{port}\n  \
         http-request silent-drop if {{ path /drop }}\n  http-request silent-drop rst-ttl 3 if {{ path /ttl }}\n  \
         http-request reject if {{ path /reject }}\n  http-request return status 200 content-type text/plain string ok\n",
        sock.display()
    );
    let _d = Sluiced::start(&cfg, &[port]);
    assert_eq!(outcome(port, b"GET /reject HTTP/1.1\r\nhost: x\r\n\r\n"), Ok(Vec::new()), "reject: end of stream");
    dropped_silently(outcome(port, b"GET /drop HTTP/1.1\r\nhost: x\r\n\r\n"));
    holds_nothing(&sock);
    assert_eq!(outcome(port, b"GET /ttl HTTP/1.1\r\nhost: x\r\n\r\n"), Err(ErrorKind::ConnectionReset), "rst-ttl: a reset, never a FIN");
    holds_nothing(&sock);
    let (status, _, body) = http_request(port, b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    assert_eq!((status, body.as_slice()), (200, &b"ok"[..]), "other requests are served");
    let info = ask(&sock, "show stat");
    let dreq: u64 = info.lines().find(|l| l.starts_with("f,FRONTEND,")).and_then(|l| l.split(',').nth(10)?.parse().ok()).expect("the frontend's dreq");
    assert_eq!(dreq, 3, "reject and both silent drops count as denied requests:\n{info}");
}

#[test]
fn http_response_silent_drop_drops_the_client_instead_of_answering() {
    let (be, _) = http_backend(|_| ok_response("secret"));
    let port = free_port();
    let cfg = http_cfg(port, "", &format!("  http-response silent-drop rst-ttl 1 if {{ status 200 }}\n  server s {}", be.addr()));
    let _d = Sluiced::start(&cfg, &[port]);
    assert_eq!(outcome(port, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"), Err(ErrorKind::ConnectionReset));
}

#[test]
fn tcp_request_silent_drop_at_each_stage_drops_without_a_fin() {
    let be = Backend::echo();
    for rule in [
        "tcp-request connection silent-drop if { src 127.0.0.1 }",
        "tcp-request session silent-drop if { src 127.0.0.1 }",
        "tcp-request inspect-delay 2s\n  tcp-request content silent-drop if { req.payload(0,4) -m str DROP }",
    ] {
        let port = free_port();
        let cfg = format!(
            "defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\nlisten l\n  bind 127.0.0.1:{port}\n  {rule}\n  server s {}\n",
            be.addr()
        );
        let _d = Sluiced::start(&cfg, &[port]);
        let r = outcome(port, if rule.contains("content") { b"DROP" } else { b"" });
        match r {
            Err(ErrorKind::ConnectionReset | ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            other => panic!("'{rule}': expected a reset or silence, got {other:?}"),
        }
    }
}
