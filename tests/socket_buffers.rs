//! `tune.rcvbuf.client`, `tune.sndbuf.client`, `tune.rcvbuf.server` and `tune.sndbuf.server`: the
//! kernel buffers of the daemon's own sockets, read back with `ss -m` (Linux doubles what
//! `SO_RCVBUF`/`SO_SNDBUF` is given). The sizes are odd on purpose: no kernel default or
//! autotuned size equals them.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use support::*;

const TUNE: &str = "global\n  tune.rcvbuf.client 9000\n  tune.sndbuf.client 11000\n  tune.rcvbuf.server 13000\n  tune.sndbuf.server 15000\n";

/// `(rb, tb)` of each established TCP socket `ss` selects with `filter` (`sport = :80`): its
/// receive and send buffer sizes, from `skmem:(r0,rb18000,t0,tb22000,...)`.
fn buffers(filter: &str) -> Vec<(u64, u64)> {
    let out = Command::new("ss").args(["-tmnH", "state", "established", &format!("( {filter} )")]).output().expect("ss (iproute2) runs");
    assert!(out.status.success(), "ss failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |mem: &str, key: &str| -> u64 {
        mem.split(',').find_map(|f| f.strip_prefix(key)).and_then(|v| v.trim_end_matches(')').parse().ok()).unwrap_or_else(|| panic!("no {key} in {mem}"))
    };
    text.split("skmem:(").skip(1).map(|mem| (field(mem, "rb"), field(mem, "tb"))).collect()
}

/// The daemon's client-side socket (local port `port`) and its server-side one (peer port
/// `server`), each expected once.
fn check(port: u16, server: u16) {
    assert_eq!(buffers(&format!("sport = :{port}")), vec![(18000, 22000)], "the client side: 2 x 9000 and 2 x 11000");
    assert_eq!(buffers(&format!("dport = :{server}")), vec![(26000, 30000)], "the server side: 2 x 13000 and 2 x 15000");
}

#[test]
fn tune_rcvbuf_and_sndbuf_size_the_client_and_server_sockets_of_http_traffic() {
    let (be, _) = http_backend(|_| ok_response("hi"));
    let port = free_port();
    let cfg = format!("{TUNE}{}", http_cfg(port, "", &format!("  server s {}", be.addr())));
    let _d = Sluiced::start(&cfg, &[port]);
    // A kept-alive exchange: both of the daemon's sockets stay open while `ss` looks.
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    let (status, _, body) = read_response(&mut c);
    assert_eq!((status, body.as_slice()), (200, &b"hi"[..]));
    check(port, be.port);
}

/// A `mode tcp` tunnel to an echo server under `global` (empty or [`TUNE`]), with one exchange
/// done and the client still connected: `(daemon, its port, the server's port, the client)`.
fn tunnel(global: &str) -> (Sluiced, u16, Backend, TcpStream) {
    let be = Backend::echo();
    let port = free_port();
    let cfg = format!(
        "{global}defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\nlisten l\n  bind 127.0.0.1:{port}\n  server s {}\n",
        be.addr()
    );
    let d = Sluiced::start(&cfg, &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"ping").unwrap();
    let mut got = [0u8; 4];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping");
    (d, port, be, c)
}

#[test]
fn tune_rcvbuf_and_sndbuf_size_the_client_and_server_sockets_of_tcp_tunnels() {
    let (_d, port, be, _c) = tunnel(TUNE);
    check(port, be.port);
}

#[test]
fn without_tune_buffers_the_kernel_sizes_the_sockets_itself() {
    let (_d, port, _be, _c) = tunnel("");
    let client = buffers(&format!("sport = :{port}"));
    assert_eq!(client.len(), 1);
    assert_ne!(client[0], (18000, 22000));
}
