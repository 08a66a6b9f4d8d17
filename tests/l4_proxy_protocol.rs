//! PROXY protocol in (`accept-proxy`) and out (`send-proxy`, `send-proxy-v2`), checked byte for byte.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::Duration;

use support::*;

/// A backend that reports the first `n` bytes it receives.
fn recorder(n: usize) -> (Backend, mpsc::Receiver<Vec<u8>>) {
    let (tx, rx) = mpsc::channel();
    let b = Backend::start(move |mut c| {
        let mut buf = vec![0u8; n];
        if c.read_exact(&mut buf).is_ok() {
            let _ = tx.send(buf);
        }
    });
    (b, rx)
}

fn cfg(port: u16, bind_opts: &str, server: &str, server_opts: &str) -> String {
    format!(
        "defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\nlisten l\n  bind 127.0.0.1:{port} {bind_opts}\n  server s {server} {server_opts}\n"
    )
}

#[test]
fn send_proxy_v1_writes_the_client_addresses_before_the_data() {
    let port = free_port();
    let header_len = format!("PROXY TCP4 127.0.0.1 127.0.0.1 65535 {port}\r\n").len();
    let (be, rx) = recorder(header_len + 4);
    let _s = Sluiced::start(&cfg(port, "", &be.addr(), "send-proxy"), &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let cport = c.local_addr().unwrap().port();
    c.write_all(b"data").unwrap();
    let got = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let want = format!("PROXY TCP4 127.0.0.1 127.0.0.1 {cport} {port}\r\ndata");
    assert_eq!(String::from_utf8_lossy(&got[..want.len().min(got.len())]), want);
}

#[test]
fn send_proxy_v2_writes_the_binary_header() {
    let port = free_port();
    let (be, rx) = recorder(16 + 12 + 4);
    let _s = Sluiced::start(&cfg(port, "", &be.addr(), "send-proxy-v2"), &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let cport = c.local_addr().unwrap().port();
    c.write_all(b"data").unwrap();
    let got = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let mut want = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    want.extend_from_slice(&[0x21, 0x11, 0, 12]);
    want.extend_from_slice(&[127, 0, 0, 1, 127, 0, 0, 1]);
    want.extend_from_slice(&cport.to_be_bytes());
    want.extend_from_slice(&port.to_be_bytes());
    want.extend_from_slice(b"data");
    assert_eq!(got, want);
}

#[test]
fn accept_proxy_v1_replaces_the_addresses_passed_on() {
    // A PROXY v1 header in, send-proxy out: the server sees the addresses the header claimed.
    let port = free_port();
    let want = "PROXY TCP4 192.0.2.7 198.51.100.9 40000 443\r\nhello";
    let (be, rx) = recorder(want.len());
    let _s = Sluiced::start(&cfg(port, "accept-proxy", &be.addr(), "send-proxy"), &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"PROXY TCP4 192.0.2.7 198.51.100.9 40000 443\r\nhello").unwrap();
    let got = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(String::from_utf8_lossy(&got), want);
}

#[test]
fn accept_proxy_v2_replaces_the_addresses_passed_on() {
    let port = free_port();
    let mut hdr = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    hdr.extend_from_slice(&[0x21, 0x11, 0, 12, 203, 0, 113, 5, 198, 51, 100, 9]);
    hdr.extend_from_slice(&1234u16.to_be_bytes());
    hdr.extend_from_slice(&443u16.to_be_bytes());
    let want = "PROXY TCP4 203.0.113.5 198.51.100.9 1234 443\r\nv2";
    let (be, rx) = recorder(want.len());
    let _s = Sluiced::start(&cfg(port, "accept-proxy", &be.addr(), "send-proxy"), &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(&hdr).unwrap();
    c.write_all(b"v2").unwrap();
    let got = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(String::from_utf8_lossy(&got), want);
}

#[test]
fn accept_proxy_closes_a_connection_without_a_valid_header() {
    let a = Backend::named("a");
    let port = free_port();
    let _s = Sluiced::start(&cfg(port, "accept-proxy", &a.addr(), ""), &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(read_to_end(&mut c, Duration::from_secs(5)).map(|v| v.is_empty()).unwrap_or(true));
    assert_eq!(a.accepted.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[test]
fn a_src_acl_sees_the_address_from_the_proxy_header() {
    let a = Backend::named("a");
    let port = free_port();
    let cfg = format!(
        "defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\nlisten l\n  bind 127.0.0.1:{port} accept-proxy\n  tcp-request content reject if {{ src 192.0.2.0/24 }}\n  server a {}\n",
        a.addr()
    );
    let _s = Sluiced::start(&cfg, &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"PROXY TCP4 192.0.2.7 198.51.100.9 40000 443\r\n").unwrap();
    assert!(read_to_end(&mut c, Duration::from_secs(5)).map(|v| v.is_empty()).unwrap_or(true));
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"PROXY TCP4 203.0.113.7 198.51.100.9 40000 443\r\n").unwrap();
    let mut line = [0u8; 2];
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.read_exact(&mut line).unwrap();
    assert_eq!(&line, b"a\n");
}
