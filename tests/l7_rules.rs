//! HTTP rules, error pages, `option forwardfor`/`originalto` and L7 balancing: config in, bytes
//! out, with raw-socket clients and a backend that records the bytes it receives.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::*;

/// Starts sluiced with `frontend` rules before a recording backend; returns what the backend
/// received for one GET with `headers`, and the client's answer.
fn through(frontend: &str, backend: &str, req: &[u8]) -> (String, (u16, String, Vec<u8>)) {
    let (be, seen) = http_backend(|_| ok_response("x"));
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, frontend, &format!("{backend}\n  server s {}", be.addr())), &[port]);
    let answer = http_request(port, req);
    let got = seen.lock().unwrap().requests.first().map(|r| String::from_utf8_lossy(r).into_owned()).unwrap_or_default();
    (got, answer)
}

const GET: &[u8] = b"GET /a/b?x=1 HTTP/1.1\r\nHost: example.com\r\nX-Keep: k\r\n\r\n";

#[test]
fn a_later_rule_sees_an_earlier_set_header() {
    let fe = "  http-request set-header X-Step one\n  http-request set-header X-Seen yes if { req.hdr(x-step) one }";
    let (got, _) = through(fe, "", GET);
    assert!(got.contains("x-seen: yes\r\n"), "{got}");
}

#[test]
fn set_path_and_set_query_rewrite_the_request_line() {
    let (got, _) = through("  http-request set-path /new\n  http-request set-query y=2", "", GET);
    assert!(got.starts_with("GET /new?y=2 HTTP/1.1\r\n"), "{got}");
}

#[test]
fn set_uri_and_set_method_rewrite_the_request_line() {
    let (got, _) = through("  http-request set-uri /u?q\n  http-request set-method POST", "", GET);
    assert!(got.starts_with("POST /u?q HTTP/1.1\r\n"), "{got}");
}

// `\\1` in the file is `\1` after the configuration's escapes. (HAProxy also keeps a lone
// `\1` as is; sluiced's line splitter currently drops that backslash.)
#[test]
fn replace_path_uses_regex_groups() {
    let (got, _) = through("  http-request replace-path /a/(.*) /z/\\1", "", GET);
    assert!(got.starts_with("GET /z/b?x=1 HTTP/1.1\r\n"), "{got}");
}

#[test]
fn replace_header_and_replace_value_rewrite_values() {
    let fe = "  http-request replace-header Host (.*)\\.com \\1.org\n  http-request replace-value X-List ^b$ B";
    let (got, _) = through(fe, "", b"GET / HTTP/1.1\r\nHost: example.com\r\nX-List: a, b, c\r\n\r\n");
    assert!(got.contains("Host: example.org\r\n"), "{got}");
    assert!(got.contains("X-List: a, B, c\r\n"), "{got}");
}

#[test]
fn del_header_with_a_regex_name_match() {
    let (got, _) = through("  http-request del-header ^x-k -m reg", "", GET);
    assert!(!got.to_ascii_lowercase().contains("x-keep"), "{got}");
    assert!(got.contains("Host: example.com"), "{got}");
}

#[test]
fn deny_status_sets_the_error_status() {
    let (got, (status, _, _)) = through("  http-request deny deny_status 429", "", GET);
    assert_eq!(status, 429);
    assert!(got.is_empty(), "a denied request reached the server: {got}");
}

#[test]
fn return_with_an_lf_string_evaluates_src() {
    let (_, (status, head, body)) = through("  http-request return status 201 content-type text/plain lf-string \"ip=%[src]\"", "", GET);
    assert_eq!(status, 201, "{head}");
    assert_eq!(body, b"ip=127.0.0.1");
}

#[test]
fn reject_closes_without_an_answer() {
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, "  http-request reject", "  server s 127.0.0.1:1"), &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(GET).unwrap();
    assert!(read_to_end(&mut c, Duration::from_secs(5)).unwrap_or_default().is_empty());
}

#[test]
fn redirect_prefix_keeps_the_path() {
    let (_, (status, head, _)) = through("  http-request redirect prefix https://other.example code 301", "", GET);
    assert_eq!(status, 301);
    assert!(head.contains("location: https://other.example/a/b?x=1\r\n"), "{head}");
}

#[test]
fn auth_asks_for_basic_credentials() {
    let (_, (status, head, _)) = through("  http-request auth realm private", "", GET);
    assert_eq!(status, 401);
    assert!(head.contains("www-authenticate: Basic realm=\"private\"\r\n"), "{head}");
}

#[test]
fn tarpit_holds_the_request_then_answers_500() {
    let start = Instant::now();
    let (got, (status, _, _)) = through("  timeout tarpit 500ms\n  http-request tarpit", "", GET);
    assert_eq!(status, 500);
    assert!(start.elapsed() >= Duration::from_millis(500));
    assert!(got.is_empty());
}

#[test]
fn errorfile_is_served_for_503_when_no_server_is_up() {
    let dir = temp_dir("errfile");
    let file = dir.join("503.http");
    std::fs::write(&file, "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n\r\nsorry, later\n").unwrap();
    let port = free_port();
    let be = format!("  errorfile 503 {}\n  server s 127.0.0.1:1 disabled", file.display());
    let _s = Sluiced::start(&http_cfg(port, "", &be), &[port]);
    let (status, _, body) = http_request(port, GET);
    assert_eq!(status, 503);
    assert_eq!(body, b"sorry, later\n");
}

#[test]
fn http_errors_section_pages_answer_deny() {
    let dir = temp_dir("errsec");
    let file = dir.join("403.http");
    std::fs::write(&file, "HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\n\r\ngo away\n").unwrap();
    let port = free_port();
    let text = format!(
        "{}\nhttp-errors site\n  errorfile 403 {}\n",
        http_cfg(port, "  errorfiles site\n  http-request deny", "  server s 127.0.0.1:1"),
        file.display()
    );
    let _s = Sluiced::start(&text, &[port]);
    let (status, _, body) = http_request(port, GET);
    assert_eq!(status, 403);
    assert_eq!(body, b"go away\n");
}

#[test]
fn a_missing_errorfile_is_a_configuration_error_naming_it() {
    let port = free_port();
    let dir = temp_dir("cfgerr");
    let file = dir.join("bad.http");
    std::fs::write(&file, "not an http response\n").unwrap();
    let text = http_cfg(port, &format!("  errorfile 503 {}", file.display()), "  server s 127.0.0.1:1");
    let cfg_path = dir.join("c.cfg");
    std::fs::write(&cfg_path, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluiced")).args(["-c", "-f", cfg_path.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("bad.http"), "{err}");
}

#[test]
fn forwardfor_adds_the_client_address() {
    let (got, _) = through("  option forwardfor", "", GET);
    assert!(got.contains("x-forwarded-for: 127.0.0.1\r\n"), "{got}");
}

#[test]
fn forwardfor_except_skips_the_network() {
    let (got, _) = through("  option forwardfor except 127.0.0.0/8", "", GET);
    assert!(!got.to_ascii_lowercase().contains("x-forwarded-for"), "{got}");
}

#[test]
fn forwardfor_if_none_keeps_an_existing_header() {
    let (got, _) = through("  option forwardfor if-none", "", b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.1.1.1\r\n\r\n");
    assert_eq!(got.to_ascii_lowercase().matches("x-forwarded-for").count(), 1, "{got}");
    assert!(got.contains("X-Forwarded-For: 10.1.1.1\r\n"), "{got}");
}

#[test]
fn originalto_adds_the_destination_address() {
    let (got, _) = through("  option originalto", "", GET);
    assert!(got.contains("x-original-to: 127.0.0.1\r\n"), "{got}");
}

#[test]
fn send_name_header_names_the_server() {
    let (got, _) = through("", "  http-send-name-header X-Server", GET);
    assert!(got.contains("x-server: s\r\n"), "{got}");
}

#[test]
fn http_response_set_status_and_del_header() {
    let (be, _) = http_backend(|_| b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\nx-internal: secret\r\n\r\nx".to_vec());
    let port = free_port();
    let fe = "  http-response set-status 299 reason Fine\n  http-response del-header x-internal";
    let _s = Sluiced::start(&http_cfg(port, fe, &format!("  server s {}", be.addr())), &[port]);
    let (status, head, body) = http_request(port, GET);
    assert_eq!(status, 299, "{head}");
    assert!(head.starts_with("HTTP/1.1 299 Fine\r\n"), "{head}");
    assert!(!head.contains("x-internal"), "{head}");
    assert_eq!(body, b"x");
}

#[test]
fn http_response_deny_answers_502() {
    let (be, _) = http_backend(|_| ok_response("leak"));
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, "  http-response deny", &format!("  server s {}", be.addr())), &[port]);
    let (status, _, body) = http_request(port, GET);
    assert_eq!(status, 502);
    assert!(!String::from_utf8_lossy(&body).contains("leak"));
}

#[test]
fn http_after_response_applies_to_a_generated_503() {
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, "  http-after-response set-header X-After yes", "  server s 127.0.0.1:1 disabled"), &[port]);
    let (status, head, _) = http_request(port, GET);
    assert_eq!(status, 503);
    assert!(head.contains("x-after: yes\r\n"), "{head}");
}

/// Three recording backends; returns which one answered each request of `reqs`.
fn picks(balance: &str, reqs: &[Vec<u8>]) -> Vec<String> {
    let names = ["one", "two", "three"];
    let mut bes = Vec::new();
    let mut servers = String::new();
    for n in names {
        let (be, _) = http_backend(move |_| ok_response(n));
        servers.push_str(&format!("  server {n} {}\n", be.addr()));
        bes.push(be);
    }
    let port = free_port();
    let _s = Sluiced::start(&http_cfg(port, "", &format!("  balance {balance}\n{servers}")), &[port]);
    reqs.iter().map(|r| String::from_utf8(http_request(port, r).2).unwrap()).collect()
}

#[test]
fn balance_uri_keeps_one_uri_on_one_server() {
    let mut reqs = Vec::new();
    for i in 0..12 {
        reqs.push(format!("GET /same/path?n={i} HTTP/1.1\r\nHost: h\r\n\r\n").into_bytes());
    }
    let got = picks("uri", &reqs);
    assert!(got.iter().all(|g| g == &got[0]), "{got:?}");
    // Different URIs spread.
    let spread: Vec<Vec<u8>> = (0..30).map(|i| format!("GET /p{i} HTTP/1.1\r\nHost: h\r\n\r\n").into_bytes()).collect();
    let got = picks("uri", &spread);
    assert!(got.iter().any(|g| g != &got[0]), "{got:?}");
}

#[test]
fn balance_hdr_keeps_one_header_value_on_one_server() {
    let reqs: Vec<Vec<u8>> = (0..12).map(|i| format!("GET /{i} HTTP/1.1\r\nHost: h\r\nX-User: alice\r\n\r\n").into_bytes()).collect();
    let got = picks("hdr(x-user)", &reqs);
    assert!(got.iter().all(|g| g == &got[0]), "{got:?}");
}

/// `hostname`, `date`, `rand`, `uuid` and `stopping`, and the `http_date`, `ltrim`, `rtrim` and
/// `hex2i` converters, as a return's log-format body shows them. The HTTP date is checked against
/// coreutils' `date -u`.
#[test]
fn clock_random_and_host_fetches_and_their_converters_fill_a_returned_body() {
    let port = free_port();
    let cfg = format!(
        "defaults\n  mode http\n  timeout client 10s\nfrontend f\n  bind 127.0.0.1:{port}\n  \
         http-request return status 200 content-type text/plain lf-string \
         \"%[hostname]|%[date]|%[date(3600),http_date]|%[date(0,ms)]|%[uuid]|%[uuid(7)]|%[rand(10)]|%[str(..x..),ltrim(.),rtrim(.)]|%[str(-1f),hex2i]|%[stopping]\"\n"
    );
    let mut d = Sluiced::start(&cfg, &[port]);
    let get = || {
        let (status, _, body) = http_request(port, b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        assert_eq!(status, 200);
        String::from_utf8(body).unwrap()
    };
    let body = get();
    let f: Vec<&str> = body.split('|').collect();
    assert_eq!(f.len(), 10, "{body}");
    assert_eq!(f[0], std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let date: i64 = f[1].parse().unwrap();
    assert!((date - now).abs() <= 5, "{body}");
    let want = std::process::Command::new("date").args(["-u", "-d", &format!("@{}", date + 3600), "+%a, %d %b %Y %H:%M:%S GMT"]).output().unwrap();
    let want = String::from_utf8(want.stdout).unwrap();
    // The second may have turned between the two fetches.
    let next = std::process::Command::new("date").args(["-u", "-d", &format!("@{}", date + 3601), "+%a, %d %b %Y %H:%M:%S GMT"]).output().unwrap();
    assert!(f[2] == want.trim() || f[2] == String::from_utf8(next.stdout).unwrap().trim(), "{} against {want}", f[2]);
    let ms: i64 = f[3].parse().unwrap();
    assert!((ms / 1000 - date).abs() <= 1, "{body}");
    for (u, v) in [(f[4], '4'), (f[5], '7')] {
        assert_eq!(u.len(), 36, "{u}");
        assert_eq!(u.chars().nth(14), Some(v), "{u}");
        assert!(u.chars().all(|c| c == '-' || c.is_ascii_hexdigit()), "{u}");
    }
    assert_eq!((f[7], f[8], f[9]), ("x", "-31", "0"), "{body}");
    // rand(10) stays below 10 and moves; uuids do not repeat.
    let mut seen = std::collections::HashSet::new();
    let mut uuids = std::collections::HashSet::new();
    for _ in 0..40 {
        let b = get();
        let f: Vec<&str> = b.split('|').collect();
        let r: u64 = f[6].parse().unwrap();
        assert!(r < 10, "{b}");
        seen.insert(r);
        assert!(uuids.insert(f[4].to_owned()), "{b}");
    }
    assert!(seen.len() >= 3, "rand(10) gave {seen:?}");
    // During a soft stop, a request already under way sees `stopping`.
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    d.signal("USR1");
    std::thread::sleep(Duration::from_millis(100));
    c.write_all(b"connection: close\r\n\r\n").unwrap();
    let (status, _, body) = read_response(&mut c);
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).ends_with("|1"), "{}", String::from_utf8_lossy(&body));
    assert_eq!(d.wait_exit(Duration::from_secs(3)), Some(0));
}

/// `srv_is_up` and `srv_conn` read the live server state: `disable server` on the stats socket
/// sends traffic to the other backend; `req.hdr_names`, `url_port` and `req.body_size` fill a
/// returned body.
#[test]
fn server_state_and_request_shape_fetches_steer_and_fill_answers() {
    let (main, _) = http_backend(|_| ok_response("main"));
    let (spare, _) = http_backend(|_| ok_response("spare"));
    let port = free_port();
    let dir = temp_dir("srvfetch");
    let sock = dir.join("s.sock");
    let cfg = format!(
        "global\n  stats socket {} level admin\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n\
         frontend f\n  bind 127.0.0.1:{port}\n  \
         http-request return status 200 content-type text/plain lf-string \"%[req.hdr_names]|%[url_port]|%[req.body_size]|%[srv_conn(app/s1)]\" if {{ path /shape }}\n  \
         use_backend spare unless {{ srv_is_up(app/s1) }}\n  default_backend app\n\
         backend app\n  server s1 {}\nbackend spare\n  server s1 {}\n",
        sock.display(),
        main.addr(),
        spare.addr()
    );
    let _s = Sluiced::start(&cfg, &[port]);
    let body = |raw: &[u8]| String::from_utf8(http_request(port, raw).2).unwrap();
    assert_eq!(body(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"), "main");
    assert_eq!(
        body(b"POST http://h:8080/shape HTTP/1.1\r\nHost: h:8080\r\nX-A: 1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"),
        "host,x-a,content-length,connection|8080|3|0"
    );
    ask(&sock, "disable server app/s1");
    assert_eq!(body(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"), "spare");
    ask(&sock, "enable server app/s1");
    assert_eq!(body(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"), "main");
}

/// `utime`, `xxh32` and `json_query` (over a buffered body) fill a returned body.
#[test]
fn time_hash_and_json_converters_fill_a_returned_body() {
    let port = free_port();
    let cfg = format!(
        "defaults\n  mode http\n  timeout client 10s\nfrontend f\n  bind 127.0.0.1:{port}\n  option http-buffer-request\n  \
         http-request return status 200 content-type text/plain lf-string \
         \"%[int(1000000000),utime(%Y-%m-%dT%H:%M:%S)]|%[int(0),utime(%F,86400)]|%[str(abc),xxh32]|%[req.body,json_query('$.user.roles[1]')]|%[req.body,json_query('$.n','int')]\"\n"
    );
    let _s = Sluiced::start(&cfg, &[port]);
    let json = br#"{"user":{"name":"ann","roles":["dev","admin"]},"n":42.9}"#;
    let mut req = format!("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", json.len()).into_bytes();
    req.extend_from_slice(json);
    let (status, _, body) = http_request(port, &req);
    assert_eq!(status, 200);
    // xxh32 of "abc" with seed 0 is 0x32D153FF.
    assert_eq!(String::from_utf8(body).unwrap(), "2001-09-09T01:46:40|1970-01-02|852579327|admin|42");
}

/// `req.body_param` over a buffered url-encoded body, `fc_rtt` from the kernel's view of the
/// client connection, and `src_is_local`/`dst_is_local` on loopback fill a returned body.
#[test]
fn body_param_rtt_and_locality_fetches_fill_a_returned_body() {
    let port = free_port();
    let cfg = format!(
        "defaults\n  mode http\n  timeout client 10s\nfrontend f\n  bind 127.0.0.1:{port}\n  option http-buffer-request\n  \
         http-request return status 200 content-type text/plain lf-string \
         \"%[req.body_param(role)]|%[req.body_param(USER,i)]|%[src_is_local]|%[dst_is_local]|%[fc_rtt(us)]|%[fc_rttvar]\"\n"
    );
    let _s = Sluiced::start(&cfg, &[port]);
    let form = b"user=ann&role=dev&role=admin";
    let mut req =
        format!("POST / HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", form.len())
            .into_bytes();
    req.extend_from_slice(form);
    let (status, _, body) = http_request(port, &req);
    assert_eq!(status, 200);
    let body = String::from_utf8(body).unwrap();
    let f: Vec<&str> = body.split('|').collect();
    assert_eq!(&f[..4], ["dev", "ann", "1", "1"], "{body}");
    let (rtt_us, rttvar_ms) = (f[4].parse::<u64>(), f[5].parse::<u64>());
    assert!(rtt_us.is_ok() && rttvar_ms.is_ok(), "the kernel's RTT in us and its variance in ms: {body}");
    // Loopback: well under a second.
    assert!(rtt_us.unwrap() < 1_000_000, "{body}");
}

/// `tcp-request content` rules in mode http run once per request, before the `http-request`
/// rules: a reject closes the connection with no answer, even on a kept-alive one; a variable
/// they set is seen by the HTTP rules; a counter they track counts each request.
#[test]
fn tcp_request_content_rules_run_for_each_http_request_before_the_http_rules() {
    let port = free_port();
    let cfg = format!(
        "defaults\n  mode http\n  timeout client 10s\nfrontend f\n  bind 127.0.0.1:{port}\n  \
         stick-table type ip size 10 expire 1m store http_req_cnt\n  \
         tcp-request content reject if {{ req.hdr(x-bad) -m found }}\n  \
         tcp-request content set-var(txn.seen) str(content)\n  \
         tcp-request content track-sc0 src\n  \
         http-request deny deny_status 429 if {{ sc_http_req_cnt(0) gt 3 }}\n  \
         http-request return status 200 content-type text/plain lf-string \"%[var(txn.seen)] %[sc_http_req_cnt(0)]\"\n"
    );
    let _s = Sluiced::start(&cfg, &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    for n in 1..=3 {
        c.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        let (status, _, body) = read_response(&mut c);
        assert_eq!((status, String::from_utf8(body).unwrap()), (200, format!("content {n}")));
    }
    c.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut c).0, 429, "the fourth request counted by the content rule's tracking");
    // A rejected request on the kept-alive connection: closed, nothing answered.
    c.write_all(b"GET / HTTP/1.1\r\nHost: h\r\nX-Bad: 1\r\n\r\n").unwrap();
    assert_eq!(read_to_end(&mut c, Duration::from_secs(5)).unwrap(), b"");
}

/// A backend's `tcp-request content` rules run when a request is switched to it, after the
/// frontend's and before the backend's `http-request` rules; they track in the backend's own
/// table. A frontend switching to another backend does not run them.
#[test]
fn a_backends_tcp_request_content_rules_run_for_the_requests_switched_to_it() {
    let (be, seen) = http_backend(|_| ok_response("x"));
    let port = free_port();
    let cfg = format!(
        "defaults\n  mode http\n  timeout client 10s\n  timeout server 10s\n  timeout connect 1s\nfrontend f\n  bind 127.0.0.1:{port}\n  \
         tcp-request content set-var(txn.order) str(fe)\n  \
         use_backend guarded if {{ path_beg /guarded }}\n  default_backend open\n\
         backend guarded\n  stick-table type ip size 10 expire 1m store http_req_cnt\n  \
         tcp-request content reject if {{ req.hdr(x-bad) -m found }}\n  \
         tcp-request content set-var(txn.order) str(fe+be) if {{ var(txn.order) -m str fe }}\n  \
         tcp-request content track-sc1 src\n  \
         http-request return status 200 content-type text/plain lf-string \"%[var(txn.order)] %[sc_http_req_cnt(1)]\"\n\
         backend open\n  server s {}\n",
        be.addr()
    );
    let _s = Sluiced::start(&cfg, &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    for n in 1..=2 {
        c.write_all(b"GET /guarded HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        let (status, _, body) = read_response(&mut c);
        assert_eq!((status, String::from_utf8(body).unwrap()), (200, format!("fe+be {n}")));
    }
    // The other backend: its requests pass with the header the guarded one refuses.
    assert_eq!(http_request(port, b"GET /open HTTP/1.1\r\nHost: h\r\nX-Bad: 1\r\nConnection: close\r\n\r\n").0, 200);
    assert_eq!(seen.lock().unwrap().requests.len(), 1);
    // The guarded backend rejects it: the connection closes with no answer.
    c.write_all(b"GET /guarded HTTP/1.1\r\nHost: h\r\nX-Bad: 1\r\n\r\n").unwrap();
    assert_eq!(read_to_end(&mut c, Duration::from_secs(5)).unwrap(), b"");
}

/// `normalize-uri` runs before the ACLs that follow it: `//admin`, `/x/../admin` and `/%61dmin`
/// all meet the `path_beg /admin` deny; the server gets the normalized target. (A bad `%`
/// sequence, which `strict` answers with 400, never gets this far: the head parser refuses it.)
#[test]
fn normalize_uri_closes_the_spellings_that_dodge_a_path_acl() {
    let (be, seen) = http_backend(|_| ok_response("x"));
    let port = free_port();
    let fe = "  http-request normalize-uri path-merge-slashes\n  http-request normalize-uri path-strip-dotdot\n  \
              http-request normalize-uri percent-decode-unreserved strict\n  http-request normalize-uri percent-to-uppercase\n  \
              http-request normalize-uri query-sort-by-name\n  \
              http-request deny if { path_beg /admin }";
    let _s = Sluiced::start(&http_cfg(port, fe, &format!("  server s {}", be.addr())), &[port]);
    let get = |target: &str| http_request(port, format!("GET {target} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").as_bytes()).0;
    for dodge in ["//admin", "/x/../admin", "/%61dmin", "/x/..//%61dmin/"] {
        assert_eq!(get(dodge), 403, "{dodge}");
    }
    assert_eq!(get("/a//b/./c/../d%2f?z=1&a=2"), 200);
    let req = String::from_utf8_lossy(&seen.lock().unwrap().requests[0]).into_owned();
    assert!(req.starts_with("GET /a/b/./d%2F?a=2&z=1 HTTP/1.1\r\n"), "{req}");
}
