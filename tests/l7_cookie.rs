//! Cookie-based persistence in `mode http` (`cookie` in a backend, `cookie <value>` on its
//! servers): config in, bytes out, with real backends that say who they are.

mod support;

use support::*;

/// Two backends answering their own name, and what each received.
fn two_servers() -> ((Backend, SeenLog), (Backend, SeenLog)) {
    let a = http_backend(|_| ok_response("s1"));
    let b = http_backend(|_| ok_response("s2"));
    (a, b)
}

type SeenLog = std::sync::Arc<std::sync::Mutex<Seen>>;

/// The body of the response to `raw` sent on a new connection.
fn served_by(port: u16, raw: &[u8]) -> String {
    let (status, head, body) = http_request(port, raw);
    assert_eq!(status, 200, "{head}");
    String::from_utf8(body).unwrap()
}

#[test]
fn without_a_cookie_requests_are_balanced_round_robin() {
    let ((a, _), (b, _)) = two_servers();
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, "", &format!("  server s1 {}\n  server s2 {}", a.addr(), b.addr())), &[port]);
    let got: Vec<String> = (0..6).map(|_| served_by(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")).collect();
    assert_eq!(got.iter().filter(|s| *s == "s1").count(), 3, "{got:?}");
    assert_eq!(got.iter().filter(|s| *s == "s2").count(), 3, "{got:?}");
}
