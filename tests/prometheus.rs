//! `http-request use-service prometheus-exporter`: traffic through one frontend, a scrape of
//! another, and the counters and histograms the scrape shows. `promtool check metrics` (Debian
//! package `prometheus`, installed by `.ci/run`) checks the exposition format.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Stdio};

use support::*;

const REQUESTS: u64 = 5;

fn cfg(web: u16, metrics: u16, server: &str) -> String {
    format!(
        "defaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n\
         frontend web\n  bind 127.0.0.1:{web}\n  http-request deny if {{ path /deny }}\n  default_backend app\n\
         frontend stats\n  bind 127.0.0.1:{metrics}\n  http-request use-service prometheus-exporter if {{ path /metrics }}\n  http-request return status 404\n\
         backend app\n  server s1 {server}\n  server s2 127.0.0.1:1 disabled\n"
    )
}

fn scrape(port: u16, target: &str) -> String {
    let (status, head, body) = http_request(port, format!("GET {target} HTTP/1.1\r\nHost: m\r\n\r\n").as_bytes());
    assert_eq!(status, 200, "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), "{head}");
    String::from_utf8(body).unwrap()
}

/// The value of the series `series` (name and labels exactly as printed).
fn value(text: &str, series: &str) -> f64 {
    let line = text.lines().find(|l| l.rsplit_once(' ').is_some_and(|(s, _)| s == series)).unwrap_or_else(|| panic!("no {series} in\n{text}"));
    line.rsplit_once(' ').unwrap().1.parse().unwrap()
}

fn start() -> (Sluiced, u16, u16, Backend) {
    let (be, _seen) = http_backend(|_| ok_response("hello"));
    let (web, metrics) = (free_port(), free_port());
    let s = Sluiced::start(&cfg(web, metrics, &be.addr()), &[web, metrics]);
    (s, web, metrics, be)
}

#[test]
fn a_scrape_shows_the_traffic_of_another_frontend() {
    let (_s, web, metrics, _be) = start();
    let before = scrape(metrics, "/metrics");
    assert_eq!(value(&before, "haproxy_server_sessions_total{proxy=\"app\",server=\"s1\"}"), 0.0);
    let mut c = TcpStream::connect(("127.0.0.1", web)).unwrap();
    for i in 0..REQUESTS {
        c.write_all(format!("GET /{i} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes()).unwrap();
        assert_eq!(read_response(&mut c).0, 200);
    }
    // A request's total time is observed once its response is written, so just after the client
    // reads the last response; wait (bounded) for the last observation before checking.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let text = loop {
        let text = scrape(metrics, "/metrics");
        let seen = |n: &str| value(&text, n) == REQUESTS as f64;
        if (seen("sluiced_frontend_total_time_seconds_count{proxy=\"web\"}") && seen("sluiced_server_total_time_seconds_count{proxy=\"app\",server=\"s1\"}"))
            || std::time::Instant::now() > deadline
        {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(value(&text, "haproxy_server_sessions_total{proxy=\"app\",server=\"s1\"}") >= 1.0, "{text}");
    assert!(value(&text, "haproxy_backend_sessions_total{proxy=\"app\"}") >= 1.0);
    assert_eq!(value(&text, "haproxy_server_status{proxy=\"app\",server=\"s1\",state=\"UP\"}"), 1.0);
    assert_eq!(value(&text, "haproxy_server_status{proxy=\"app\",server=\"s2\",state=\"MAINT\"}"), 1.0);
    assert_eq!(value(&text, "haproxy_backend_status{proxy=\"app\",state=\"UP\"}"), 1.0);

    // Every histogram: cumulative buckets, `+Inf` equal to `_count`, one observation per request
    // (the scrapes themselves are answered by the exporter, not forwarded: they are not counted).
    for (name, labels) in [
        ("sluiced_frontend_total_time_seconds", "proxy=\"web\""),
        ("sluiced_backend_total_time_seconds", "proxy=\"app\""),
        ("sluiced_backend_response_time_seconds", "proxy=\"app\""),
        ("sluiced_server_total_time_seconds", "proxy=\"app\",server=\"s1\""),
        ("sluiced_server_response_time_seconds", "proxy=\"app\",server=\"s1\""),
    ] {
        let prefix = format!("{name}_bucket{{{labels},le=\"");
        let buckets: Vec<f64> = text.lines().filter(|l| l.starts_with(&prefix)).map(|l| l.rsplit_once(' ').unwrap().1.parse().unwrap()).collect();
        assert!(buckets.len() > 10, "{name}: {} buckets", buckets.len());
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{name} is not cumulative: {buckets:?}");
        let count = value(&text, &format!("{name}_count{{{labels}}}"));
        assert_eq!(count, REQUESTS as f64, "{name}");
        assert_eq!(value(&text, &format!("{name}_bucket{{{labels},le=\"+Inf\"}}")), count);
        assert!(value(&text, &format!("{name}_sum{{{labels}}}")) > 0.0);
    }
    assert_eq!(value(&text, "sluiced_frontend_total_time_seconds_count{proxy=\"stats\"}"), 0.0);

    promtool_check(&text);
}

#[test]
fn scope_and_no_maint_filter_the_scrape() {
    let (_s, _web, metrics, _be) = start();
    let servers = scrape(metrics, "/metrics?scope=server");
    let samples: Vec<&str> = servers.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(!samples.is_empty());
    assert!(samples.iter().all(|l| l.starts_with("haproxy_server_") || l.starts_with("sluiced_server_")), "{servers}");
    assert!(servers.contains("server=\"s2\""));
    let no_maint = scrape(metrics, "/metrics?scope=server&no-maint");
    assert!(!no_maint.contains("server=\"s2\"") && no_maint.contains("server=\"s1\""), "{no_maint}");
    let two = scrape(metrics, "/metrics?scope=global&scope=backend");
    assert!(two.contains("haproxy_process_nbthread ") && two.contains("haproxy_backend_status{"));
    assert!(!two.contains("haproxy_server_") && !two.contains("haproxy_frontend_"));
    assert_eq!(scrape(metrics, "/metrics?scope=*&scope="), "");
    // Other paths of the scrape frontend are not the exporter's.
    assert_eq!(http_request(metrics, b"GET /other HTTP/1.1\r\nHost: m\r\n\r\n").0, 404);
    promtool_check(&scrape(metrics, "/metrics"));
}

#[test]
fn frontend_and_backend_traffic_counters_are_exported() {
    let (_s, web, metrics, _be) = start();
    let mut c = TcpStream::connect(("127.0.0.1", web)).unwrap();
    for i in 0..REQUESTS {
        c.write_all(format!("GET /{i} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes()).unwrap();
        assert_eq!(read_response(&mut c).0, 200);
    }
    c.write_all(b"GET /deny HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut c).0, 403);
    drop(c);
    // A request with a space in a header name: 400, counted as a request error.
    assert_eq!(http_request(web, b"GET / HTTP/1.1\r\nHost: h\r\nBad Header: x\r\n\r\n").0, 400);
    let text = scrape(metrics, "/metrics");
    let fe = |m: &str| value(&text, &format!("haproxy_frontend_{m}{{proxy=\"web\"}}"));
    assert_eq!(fe("http_requests_total"), (REQUESTS + 1) as f64, "the bad request never became a request");
    assert_eq!(fe("requests_denied_total"), 1.0);
    assert_eq!(fe("request_errors_total"), 1.0);
    assert_eq!(fe("sessions_total"), 2.0);
    assert!(fe("bytes_in_total") > 0.0 && fe("bytes_out_total") > 0.0);
    assert_eq!(value(&text, "haproxy_frontend_http_responses_total{proxy=\"web\",code=\"2xx\"}"), REQUESTS as f64);
    assert_eq!(value(&text, "haproxy_frontend_http_responses_total{proxy=\"web\",code=\"4xx\"}"), 2.0);
    assert_eq!(value(&text, "haproxy_backend_http_requests_total{proxy=\"app\"}"), REQUESTS as f64);
    assert_eq!(value(&text, "haproxy_backend_http_responses_total{proxy=\"app\",code=\"2xx\"}"), REQUESTS as f64);
    // The scrape frontend counts itself: this scrape's session is open.
    assert!(value(&text, "haproxy_frontend_current_sessions{proxy=\"stats\"}") >= 1.0);
    promtool_check(&text);
}

#[test]
fn a_head_scrape_has_the_headers_and_no_body() {
    let (_s, _web, metrics, _be) = start();
    let mut c = TcpStream::connect(("127.0.0.1", metrics)).unwrap();
    c.write_all(b"HEAD /metrics HTTP/1.1\r\nHost: m\r\n\r\nGET /other HTTP/1.1\r\nHost: m\r\n\r\n").unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    // The HEAD answer (headers only) then the 404 of the next request, and nothing in between.
    while !String::from_utf8_lossy(&got).contains("404") {
        let n = std::io::Read::read(&mut c, &mut buf).unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    let (first, rest) = text.split_once("\r\n\r\n").unwrap();
    assert!(first.starts_with("HTTP/1.1 200") && first.to_ascii_lowercase().contains("content-length: "), "{first}");
    assert!(rest.starts_with("HTTP/1.1 404"), "a body followed the HEAD answer: {rest:.200}");
}

/// `promtool check metrics` on the exposition: it must be there (CI installs it) and accept it.
fn promtool_check(text: &str) {
    let child = Command::new("promtool").args(["check", "metrics"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
    let mut child = child.expect("promtool is needed by this test: install the Debian package 'prometheus' (.ci/run does)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "promtool check metrics failed:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}
