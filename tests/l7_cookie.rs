//! Cookie-based persistence in `mode http` (`cookie` in a backend, `cookie <value>` on its
//! servers): config in, bytes out, with real backends that answer their name and record what they
//! receive.

mod support;

use std::io::Write;
use std::net::TcpStream;

use support::*;

type SeenLog = std::sync::Arc<std::sync::Mutex<Seen>>;

/// An HTTP backend answering `body`, with `extra` header lines (each ending in CRLF).
fn backend(body: &'static str, extra: &'static str) -> (Backend, SeenLog) {
    http_backend(move |_| format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n{extra}\r\n{body}", body.len()).into_bytes())
}

/// Two backends answering `s1` and `s2`.
fn two_servers() -> ((Backend, SeenLog), (Backend, SeenLog)) {
    (backend("s1", ""), backend("s2", ""))
}

/// A proxy on a free port with backend lines `lines`, where `{s1}` and `{s2}` stand for the
/// addresses of `a` and `b`.
fn proxy(lines: &str, a: &Backend, b: &Backend) -> (Sluiced, u16) {
    let port = free_port();
    let lines = lines.replace("{s1}", &a.addr()).replace("{s2}", &b.addr());
    (Sluiced::start(&http_cfg(port, "", &lines), &[port]), port)
}

/// The head and body of the response to a GET carrying `cookie` (none when empty), sent on a new
/// connection.
fn get(port: u16, cookie: &str) -> (String, String) {
    let cookie = if cookie.is_empty() { String::new() } else { format!("Cookie: {cookie}\r\n") };
    let (status, head, body) = http_request(port, format!("GET / HTTP/1.1\r\nHost: h\r\n{cookie}\r\n").as_bytes());
    assert_eq!(status, 200, "{head}");
    (head, String::from_utf8(body).unwrap())
}

/// The values of the response's Set-Cookie headers.
fn set_cookies(head: &str) -> Vec<String> {
    head.lines().filter_map(|l| l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie")).map(|(_, v)| v.trim().to_owned())).collect()
}

/// The Cookie header lines of the last request a backend received.
fn cookie_lines(seen: &SeenLog) -> Vec<String> {
    let s = seen.lock().unwrap();
    let req = String::from_utf8_lossy(s.requests.last().expect("a request")).into_owned();
    req.lines().filter(|l| l.to_ascii_lowercase().starts_with("cookie:")).map(str::to_owned).collect()
}

const INSERT: &str = "  cookie SRV insert\n  server s1 {s1} cookie s1\n  server s2 {s2} cookie s2";

#[test]
fn without_a_cookie_requests_are_balanced_round_robin() {
    let ((a, _), (b, _)) = two_servers();
    let (_s, port) = proxy("  server s1 {s1}\n  server s2 {s2}", &a, &b);
    let got: Vec<String> = (0..6).map(|_| get(port, "").1).collect();
    assert_eq!(got.iter().filter(|s| *s == "s1").count(), 3, "{got:?}");
    assert_eq!(got.iter().filter(|s| *s == "s2").count(), 3, "{got:?}");
}

#[test]
fn insert_mode_sets_the_cookie_of_the_server_that_answered() {
    let ((a, _), (b, _)) = two_servers();
    let (_s, port) = proxy(INSERT, &a, &b);
    for _ in 0..4 {
        let (head, server) = get(port, "");
        assert_eq!(set_cookies(&head), [format!("SRV={server}; path=/")], "{head}");
    }
}

#[test]
fn a_request_carrying_the_cookie_always_goes_to_its_server() {
    let ((a, _), (b, _)) = two_servers();
    let (_s, port) = proxy(INSERT, &a, &b);
    for _ in 0..10 {
        let (head, server) = get(port, "SRV=s2");
        assert_eq!(server, "s2");
        assert!(set_cookies(&head).is_empty(), "a client with a valid cookie gets no new one: {head}");
    }
    for _ in 0..4 {
        assert_eq!(get(port, "theme=dark; SRV=s1, lang=fr").1, "s1", "among other cookies");
    }
}

#[test]
fn keep_alive_requests_carrying_the_cookie_stay_on_its_server() {
    let ((a, _), (b, _)) = two_servers();
    let (_s, port) = proxy(INSERT, &a, &b);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    for _ in 0..6 {
        c.write_all(b"GET / HTTP/1.1\r\nHost: h\r\nCookie: SRV=s1\r\n\r\n").unwrap();
        let (status, _, body) = read_response(&mut c);
        assert_eq!((status, body.as_slice()), (200, b"s1".as_slice()));
    }
}

#[test]
fn indirect_removes_the_cookie_from_what_the_server_receives() {
    let ((a, seen), (b, _)) = two_servers();
    let (_s, port) = proxy(&INSERT.replace("insert", "insert indirect"), &a, &b);
    assert_eq!(get(port, "a=1; SRV=s1; b=2").1, "s1");
    assert_eq!(cookie_lines(&seen), ["Cookie: a=1; b=2"]);
    assert_eq!(get(port, "SRV=s1").1, "s1");
    assert!(cookie_lines(&seen).is_empty(), "a Cookie header left empty is dropped");
}

#[test]
fn without_indirect_the_server_receives_the_cookie() {
    let ((a, seen), (b, _)) = two_servers();
    let (_s, port) = proxy(INSERT, &a, &b);
    assert_eq!(get(port, "a=1; SRV=s1").1, "s1");
    assert_eq!(cookie_lines(&seen), ["Cookie: a=1; SRV=s1"]);
}

#[test]
fn an_unknown_cookie_value_is_balanced_and_replaced() {
    let ((a, _), (b, _)) = two_servers();
    let (_s, port) = proxy(INSERT, &a, &b);
    let mut servers = Vec::new();
    for _ in 0..4 {
        let (head, server) = get(port, "SRV=gone");
        assert_eq!(set_cookies(&head), [format!("SRV={server}; path=/")], "{head}");
        servers.push(server);
    }
    assert!(servers.contains(&"s1".to_owned()) && servers.contains(&"s2".to_owned()), "balanced: {servers:?}");
}

#[test]
fn a_cookie_naming_a_disabled_server_is_balanced_to_another() {
    let ((a, _), (b, seen_b)) = two_servers();
    let (_s, port) = proxy(&INSERT.replace("cookie s2", "cookie s2 disabled"), &a, &b);
    for _ in 0..3 {
        let (head, server) = get(port, "SRV=s2");
        assert_eq!(server, "s1");
        assert_eq!(set_cookies(&head), ["SRV=s1; path=/"], "{head}");
    }
    assert!(seen_b.lock().unwrap().requests.is_empty());
}

#[test]
fn option_persist_sends_a_cookie_to_its_disabled_server() {
    let ((a, _), (b, _)) = two_servers();
    let (_s, port) = proxy(&format!("  option persist\n{}", INSERT.replace("cookie s2", "cookie s2 disabled")), &a, &b);
    for _ in 0..3 {
        assert_eq!(get(port, "SRV=s2").1, "s2");
        assert_eq!(get(port, "").1, "s1", "balancing still skips it");
    }
}

#[test]
fn a_server_with_weight_zero_keeps_its_persistent_clients() {
    let ((a, _), (b, _)) = two_servers();
    let (_s, port) = proxy(&INSERT.replace("cookie s2", "cookie s2 weight 0"), &a, &b);
    for _ in 0..3 {
        assert_eq!(get(port, "").1, "s1");
        assert_eq!(get(port, "SRV=s2").1, "s2");
    }
}

#[test]
fn a_cookie_naming_an_unreachable_server_is_redispatched_with_option_redispatch() {
    let (a, _) = backend("s1", "");
    let (dead, _dead_guard) = dead_port();
    let port = free_port();
    let lines = format!("  retries 1\n  option redispatch\n  cookie SRV insert\n  server s1 {} cookie s1\n  server s2 127.0.0.1:{dead} cookie s2", a.addr());
    let _s = Sluiced::start(&http_cfg(port, "", &lines), &[port]);
    let (head, server) = get(port, "SRV=s2");
    assert_eq!(server, "s1");
    assert_eq!(set_cookies(&head), ["SRV=s1; path=/"], "the client learns its new server: {head}");
}

#[test]
fn rewrite_mode_puts_the_server_value_in_the_application_cookie() {
    let (a, _) = backend("s1", "Set-Cookie: SRV=chosen-by-app; Path=/app; HttpOnly\r\nSet-Cookie: other=1\r\n");
    let (b, _) = backend("s2", "");
    let (_s, port) = proxy("  cookie SRV rewrite\n  server s1 {s1} cookie s1\n  server s2 {s2} cookie s2", &a, &b);
    let (head, _) = get(port, "SRV=s1");
    assert_eq!(set_cookies(&head), ["SRV=s1; Path=/app; HttpOnly", "other=1"], "{head}");
    let (head, _) = get(port, "SRV=s2");
    assert!(set_cookies(&head).is_empty(), "nothing is added when the application sets nothing: {head}");
}

#[test]
fn prefix_mode_prefixes_the_application_cookie_and_strips_the_prefix_from_requests() {
    let (a, seen_a) = backend("s1", "Set-Cookie: JSESSIONID=abc123; path=/\r\n");
    let (b, _) = backend("s2", "");
    let (_s, port) = proxy("  cookie JSESSIONID prefix\n  server s1 {s1} cookie s1\n  server s2 {s2} cookie s2", &a, &b);
    for _ in 0..4 {
        let (head, server) = get(port, "JSESSIONID=s1~abc123; lang=fr");
        assert_eq!(server, "s1");
        assert_eq!(set_cookies(&head), ["JSESSIONID=s1~abc123; path=/"], "{head}");
        assert_eq!(cookie_lines(&seen_a), ["Cookie: JSESSIONID=abc123; lang=fr"]);
    }
}

#[test]
fn nocache_marks_a_cacheable_response_with_an_inserted_cookie_private() {
    let (a, _) = backend("s1", "Cache-Control: max-age=60\r\n");
    let (b, _) = backend("s2", "Cache-Control: max-age=60\r\n");
    let (_s, port) = proxy(&INSERT.replace("insert", "insert nocache"), &a, &b);
    let (head, server) = get(port, "");
    assert_eq!(set_cookies(&head), [format!("SRV={server}; path=/")], "{head}");
    assert!(head.to_ascii_lowercase().contains("\r\ncache-control: private\r\n"), "{head}");
    let (head, _) = get(port, "SRV=s1");
    assert!(!head.to_ascii_lowercase().contains("private"), "no cookie inserted, nothing to hide: {head}");
}

#[test]
fn a_server_without_a_cookie_value_clears_the_cookie_instead_of_setting_one() {
    let ((a, _), (b, _)) = two_servers();
    let (_s, port) = proxy("  cookie SRV insert\n  server s1 {s1} cookie s1\n  server s2 {s2}", &a, &b);
    for _ in 0..4 {
        let (head, server) = get(port, "");
        let expected = if server == "s1" { "SRV=s1; path=/" } else { "SRV=; Expires=Thu, 01-Jan-1970 00:00:01 GMT; path=/" };
        assert_eq!(set_cookies(&head), [expected], "{head}");
    }
}

#[test]
fn postonly_inserts_the_cookie_only_in_answers_to_post() {
    let ((a, _), (b, _)) = two_servers();
    let (_s, port) = proxy(&INSERT.replace("insert", "insert postonly"), &a, &b);
    let (head, _) = get(port, "");
    assert!(set_cookies(&head).is_empty(), "{head}");
    let (status, head, body) = http_request(port, b"POST /login HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nok");
    assert_eq!(status, 200);
    assert_eq!(set_cookies(&head), [format!("SRV={}; path=/", String::from_utf8(body).unwrap())], "{head}");
}

#[test]
fn inserted_cookies_carry_domain_httponly_secure_and_attr() {
    let ((a, _), (b, _)) = two_servers();
    let (_s, port) = proxy(&INSERT.replace("insert", "insert httponly secure domain .example.com domain .example.org attr SameSite=Lax"), &a, &b);
    let (head, server) = get(port, "");
    assert_eq!(set_cookies(&head), [format!("SRV={server}; path=/; domain=.example.com; domain=.example.org; HttpOnly; Secure; SameSite=Lax")], "{head}");
}

#[test]
fn maxidle_dates_the_inserted_cookie_and_the_dated_cookie_persists() {
    let ((a, _), (b, _)) = two_servers();
    let (_s, port) = proxy(&INSERT.replace("insert", "insert maxidle 30m maxlife 8h"), &a, &b);
    let (head, server) = get(port, "");
    let cookies = set_cookies(&head);
    let value = cookies[0].strip_prefix("SRV=").and_then(|v| v.split(';').next()).unwrap().to_owned();
    let parts: Vec<&str> = value.split('|').collect();
    assert_eq!((parts[0], parts.len(), parts[1].len(), parts[2].len()), (server.as_str(), 3, 5, 5), "SRV|last|first: {value}");
    for _ in 0..4 {
        assert_eq!(get(port, &format!("SRV={value}")).1, server);
    }
}

#[test]
fn a_pooled_connection_to_the_persistent_server_is_reused() {
    let ((a, _), (b, seen_b)) = two_servers();
    let port = free_port();
    let cfg = format!("global\n  nbthread 1\n{}", http_cfg(port, "", &INSERT.replace("{s1}", &a.addr()).replace("{s2}", &b.addr())));
    let _s = Sluiced::start(&cfg, &[port]);
    for _ in 0..5 {
        assert_eq!(get(port, "SRV=s2").1, "s2");
    }
    let s = seen_b.lock().unwrap();
    assert_eq!((s.requests.len(), s.connections), (5, 1), "five clients, one server connection");
}
