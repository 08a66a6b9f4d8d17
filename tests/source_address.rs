//! `source` on a backend and on a server: the address server connections leave from, seen by the
//! server as its peer. Every 127.0.0.0/8 address is local on Linux, so the test binds
//! 127.0.0.2 and friends without any set-up.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::*;

/// A server that answers each connection with its peer address, then closes.
fn peer_echo() -> (Backend, Arc<Mutex<Vec<SocketAddr>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let b = Backend::start(move |mut c| {
        let peer = c.peer_addr().unwrap();
        s2.lock().unwrap().push(peer);
        let _ = c.write_all(format!("{peer}\n").as_bytes());
    });
    (b, seen)
}

fn via(port: u16) -> String {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut s = String::new();
    c.read_to_string(&mut s).unwrap();
    s.trim().to_owned()
}

#[test]
fn backend_source_binds_server_connections_and_a_server_source_overrides_it() {
    let (a, _) = peer_echo();
    let (b, _) = peer_echo();
    let (pa, pb) = (free_port(), free_port());
    // A port for the fixed-port case: free now, bound by the daemon's connection later.
    let fixed = TcpListener::bind("127.0.0.4:0").unwrap().local_addr().unwrap().port();
    let (c, _) = peer_echo();
    let pc = free_port();
    let cfg = format!(
        "defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n\
         listen inherits\n  bind 127.0.0.1:{pa}\n  source 127.0.0.2\n  server s {}\n\
         listen overrides\n  bind 127.0.0.1:{pb}\n  source 127.0.0.2\n  server s {} source 127.0.0.3\n\
         listen fixed\n  bind 127.0.0.1:{pc}\n  server s {} source 127.0.0.4:{fixed}\n",
        a.addr(),
        b.addr(),
        c.addr()
    );
    let _d = Sluiced::start(&cfg, &[pa, pb, pc]);
    assert!(via(pa).starts_with("127.0.0.2:"), "the backend's source");
    assert!(via(pb).starts_with("127.0.0.3:"), "the server's own source wins");
    assert_eq!(via(pc), format!("127.0.0.4:{fixed}"), "a source port is kept");
}

#[test]
fn http_server_connections_leave_from_the_source_on_either_backend() {
    let (be, _) = http_backend(|_| ok_response("hi"));
    let port = free_port();
    let cfg = http_cfg(port, "", &format!("  source 127.0.0.5\n  server s {}", be.addr()));
    let _d = Sluiced::start(&cfg, &[port]);
    // A kept-alive exchange: the server connection stays open while `ss` looks at it.
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut c).0, 200);
    // The HTTP test server keeps no peer address: ask the kernel where the daemon's connection
    // to it comes from.
    let out = std::process::Command::new("ss").args(["-tnH", "state", "established", &format!("( dport = :{} )", be.port)]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("127.0.0.5:") && text.lines().count() == 1, "one connection, from 127.0.0.5, to the server:\n{text}");
}

#[test]
fn source_port_ranges_and_usesrc_are_accepted_with_a_warning_naming_what_is_not_applied() {
    let dir = temp_dir("source");
    let f = dir.join("s.cfg");
    std::fs::write(
        &f,
        "defaults\n  mode tcp\n  timeout client 5s\nlisten l\n  bind 127.0.0.1:0\n  source 0.0.0.0 usesrc clientip\n  \
         server s 127.0.0.1:80 source 127.0.0.2:1024-65535\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluiced")).args(["-c", "-f", f.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains(":6] : 'source' : 'usesrc' and what follows it are not applied yet"), "{err}");
    assert!(err.contains(":7] : 'server' : the source port range 1024-65535 is not applied yet"), "{err}");
    std::fs::write(&f, "defaults\n  mode tcp\nlisten l\n  bind 127.0.0.1:0\n  server s 127.0.0.1:80 source example.com\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluiced")).args(["-c", "-f", f.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("'example.com' is not a source address"));
}

#[test]
fn health_checks_leave_from_the_servers_source_address_too() {
    let (be, seen) = peer_echo();
    let port = free_port();
    let cfg = format!(
        "defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n\
         listen l\n  bind 127.0.0.1:{port}\n  source 127.0.0.6\n  server s {} check inter 100ms\n",
        be.addr()
    );
    let _d = Sluiced::start(&cfg, &[port]);
    let until = std::time::Instant::now() + Duration::from_secs(3);
    while seen.lock().unwrap().is_empty() && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    let peers = seen.lock().unwrap().clone();
    assert!(!peers.is_empty(), "no check reached the server");
    assert!(peers.iter().all(|p| p.ip().to_string() == "127.0.0.6"), "{peers:?}");
}
