//! The HTTP stats page and the statistics renderers, against HAProxy's reference formats
//! (`tests/data/haproxy/`, copied from HAProxy 3.4's output): config in, bytes out.

mod support;

use std::io::Write;
use std::net::TcpStream;

use support::*;

fn reference(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/data/haproxy/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn get(port: u16, target: &str, extra: &str) -> (u16, String, String) {
    let (s, h, b) = http_request(port, format!("GET {target} HTTP/1.1\r\nHost: x\r\n{extra}\r\n").as_bytes());
    (s, h, String::from_utf8(b).unwrap())
}

/// Tags open and close in order (void elements aside): enough to catch broken markup.
fn tags_balance(html: &str) -> Result<(), String> {
    const VOID: &[&str] = &["meta", "br", "hr", "img", "input", "link"];
    let mut stack: Vec<String> = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        let end = rest[start..].find('>').ok_or("unclosed <")? + start;
        let tag = &rest[start + 1..end];
        rest = &rest[end + 1..];
        if tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            match stack.pop() {
                Some(open) if open == name => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
        } else {
            let name = tag.split([' ', '/']).next().unwrap_or("").to_ascii_lowercase();
            if !VOID.contains(&name.as_str()) {
                stack.push(name);
            }
        }
    }
    if stack.is_empty() { Ok(()) } else { Err(format!("left open: {stack:?}")) }
}

fn cfg(port: u16, stats: &str, server: &str) -> String {
    http_cfg(port, stats, &format!("  balance roundrobin\n  server s1 {server}"))
}

#[test]
fn the_page_is_well_formed_html() {
    let (be, _) = http_backend(|_| ok_response("x"));
    let port = free_port();
    let _s = Sluiced::start(&cfg(port, "  stats enable\n  stats refresh 5s\n  stats show-legends", &be.addr()), &[port]);
    let (status, head, body) = get(port, "/haproxy?stats", "");
    assert_eq!(status, 200, "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("content-type: text/html"), "{head}");
    assert!(lower.contains("refresh: 5\r\n"), "{head}");
    assert!(body.starts_with("<!DOCTYPE html>"), "{body}");
    tags_balance(&body).unwrap();
    assert!(body.contains("<td>no check</td>"), "{body}");
    assert!(body.contains("<td>s1</td>") && body.contains("<td>BACKEND</td>") && body.contains("<td>FRONTEND</td>"), "{body}");
    // Any other request still goes to the backend.
    assert_eq!(get(port, "/other", "").2, "x");
}

#[test]
fn csv_has_the_reference_header_and_counters_move() {
    let (be, _) = http_backend(|_| ok_response("x"));
    let port = free_port();
    let _s = Sluiced::start(&cfg(port, "  stats uri /st", &be.addr()), &[port]);
    let col = |csv: &str, sv: &str, name: &str| -> u64 {
        let header: Vec<&str> = csv.lines().next().unwrap().trim_start_matches("# ").split(',').collect();
        let i = header.iter().position(|c| *c == name).unwrap();
        let row = csv.lines().find(|l| l.split(',').nth(1) == Some(sv)).unwrap();
        row.split(',').nth(i).unwrap().parse().unwrap()
    };
    let stot = |csv: &str, sv: &str| col(csv, sv, "stot");
    let (status, head, csv) = get(port, "/st;csv", "");
    assert_eq!(status, 200);
    assert!(head.to_ascii_lowercase().contains("content-type: text/plain"), "{head}");
    let reference_header = reference("sample_show_stat.csv").lines().next().unwrap().to_owned();
    assert_eq!(csv.lines().next().unwrap(), reference_header);
    let n = reference_header.matches(',').count();
    for line in csv.lines().skip(1).filter(|l| !l.is_empty()) {
        assert_eq!(line.matches(',').count(), n, "{line}");
    }
    let before = stot(&csv, "s1");
    for _ in 0..3 {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut c).0, 200);
    }
    // A session's counters are added as it ends, which may be just after its client has read the
    // answer (and on another worker than the one serving the page): wait for the third.
    let settled = |csv: &str| stot(csv, "s1") >= before + 3 && col(csv, "s1", "bout") >= 3 * ok_response("x").len() as u64;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut csv = get(port, "/st;csv", "").2;
    while !settled(&csv) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
        csv = get(port, "/st;csv", "").2;
    }
    assert_eq!(stot(&csv, "s1"), before + 3, "{csv}");
    assert!(stot(&csv, "FRONTEND") >= 4, "{csv}");
    let hrsp_2xx = |csv: &str| -> u64 {
        let row = csv.lines().find(|l| l.split(',').nth(1) == Some("BACKEND")).unwrap();
        row.split(',').nth(40).unwrap().parse().unwrap()
    };
    assert_eq!(hrsp_2xx(&csv), 3, "{csv}");
    // HTTP traffic counts in the server's byte counters: three requests in, three answers out.
    assert!(col(&csv, "s1", "bin") >= 3 * "GET / HTTP/1.1\r\n\r\n".len() as u64, "{csv}");
    assert!(col(&csv, "s1", "bout") >= 3 * ok_response("x").len() as u64, "{csv}");
}

#[test]
fn auth_answers_401_until_the_credentials_match() {
    let (be, _) = http_backend(|_| ok_response("x"));
    let port = free_port();
    let _s = Sluiced::start(&cfg(port, "  stats uri /st\n  stats realm Ops\\ area\n  stats auth admin:s3cret", &be.addr()), &[port]);
    let (status, head, _) = get(port, "/st", "");
    assert_eq!(status, 401);
    assert!(head.to_ascii_lowercase().contains("www-authenticate: basic realm=\"ops area\""), "{head}");
    // admin:wrong, then admin:s3cret.
    assert_eq!(get(port, "/st", "Authorization: Basic YWRtaW46d3Jvbmc=\r\n").0, 401);
    let (status, _, body) = get(port, "/st", "Authorization: Basic YWRtaW46czNjcmV0\r\n");
    assert_eq!(status, 200);
    tags_balance(&body).unwrap();
}

#[test]
fn generated_errors_count_in_the_response_classes() {
    let port = free_port();
    let (dead, _dead_guard) = dead_port();
    let _s = Sluiced::start(&cfg(port, "  stats uri /st", &format!("127.0.0.1:{dead}")), &[port]);
    assert_eq!(get(port, "/", "").0, 503);
    let csv = get(port, "/st;csv", "").2;
    let field = |sv: &str, i: usize| csv.lines().find(|l| l.split(',').nth(1) == Some(sv)).unwrap().split(',').nth(i).unwrap().to_owned();
    // hrsp_5xx is column 43, econ 13.
    assert_eq!(field("FRONTEND", 43), "1", "{csv}");
    assert_eq!(field("BACKEND", 43), "1", "{csv}");
    assert_ne!(field("s1", 13), "0", "{csv}");
}

/// A POST of the page's admin form, as a browser sends it.
fn post(port: u16, uri: &str, form: &str) -> (u16, String) {
    let req = format!("POST {uri} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}", form.len());
    let (s, h, _) = http_request(port, req.as_bytes());
    (s, h)
}

fn location(head: &str) -> String {
    head.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("location: ").map(str::to_string)).unwrap_or_default()
}

#[test]
fn stats_admin_form_changes_server_states_when_the_condition_holds() {
    let (b1, _) = http_backend(|_| ok_response("one"));
    let (b2, _) = http_backend(|_| ok_response("two"));
    let port = free_port();
    let backend = format!("  balance roundrobin\n  server s1 {}\n  server s2 {}", b1.addr(), b2.addr());
    let stats = "  stats uri /st\n  stats admin if { src 127.0.0.1 } { req.hdr(x-admin) yes }";
    let _s = Sluiced::start(&http_cfg(port, stats, &backend), &[port]);

    // The page, read by a real HTML parser: a form with a checkbox per server and the actions.
    let page = |extra: &str| scraper::Html::parse_document(&get(port, "/st", extra).2);
    let sel = |s: &str| scraper::Selector::parse(s).unwrap();
    let admin_page = page("X-Admin: yes\r\n");
    assert!(admin_page.errors.is_empty(), "{:?}", admin_page.errors);
    let boxes: Vec<String> = admin_page.select(&sel("form input[type=checkbox][name=s]")).map(|e| e.value().attr("value").unwrap().to_string()).collect();
    assert_eq!(boxes, ["s1", "s2"]);
    let actions: Vec<&str> = admin_page.select(&sel("form select[name=action] option")).map(|e| e.value().attr("value").unwrap()).collect();
    assert!(actions.contains(&"maint") && actions.contains(&"drain") && actions.contains(&"ready"), "{actions:?}");
    let b = admin_page.select(&sel("form input[name=b]")).next().unwrap().value().attr("value").unwrap().to_string();
    // Without the condition, no form.
    assert_eq!(page("").select(&sel("form")).count(), 0);

    // The condition does not hold: denied, nothing changes.
    let (status, head) = post(port, "/st", &format!("s=s1&action=maint&b={}", b.replace('#', "%23")));
    assert_eq!((status, location(&head)), (303, "/st;st=deny".to_string()), "{head}");
    let servers = |n: usize| (0..n).map(|_| get(port, "/", "").2).collect::<Vec<_>>();
    assert!(servers(4).contains(&"one".to_string()));

    // It holds: s1 goes to maintenance and takes no more traffic.
    let form = format!("s=s1&action=maint&b={}", b.replace('#', "%23"));
    let req = format!("POST /st HTTP/1.1\r\nHost: x\r\nX-Admin: yes\r\nContent-Length: {}\r\n\r\n{form}", form.len());
    let (status, head, _) = http_request(port, req.as_bytes());
    assert_eq!((status, location(&head)), (303, "/st;st=done".to_string()), "{head}");
    assert!(servers(6).iter().all(|s| s == "two"));
    let csv = get(port, "/st;csv", "").2;
    assert!(csv.lines().any(|l| l.starts_with("b,s1,") && l.contains(",MAINT,")), "{csv}");
    // The page then says so.
    assert!(get(port, "/st;st=DONE", "X-Admin: yes\r\n").2.contains("Action processed successfully."));

    // A bad form: ERRP; back to ready by backend name.
    let send = |form: &str| {
        let req = format!("POST /st HTTP/1.1\r\nHost: x\r\nX-Admin: yes\r\nContent-Length: {}\r\n\r\n{form}", form.len());
        location(&http_request(port, req.as_bytes()).1)
    };
    assert_eq!(send("s=s1&action=frob&b=b"), "/st;st=errp");
    assert_eq!(send("s=s1&s=nosuch&action=ready&b=b"), "/st;st=part");
    assert!(servers(6).contains(&"one".to_string()));
}

#[test]
fn a_backend_section_serves_its_stats_page_to_requests_routed_to_it() {
    let (app, _) = http_backend(|_| ok_response("app"));
    let port = free_port();
    let cfg = format!(
        "defaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n\
         frontend f\n  bind 127.0.0.1:{port}\n  use_backend be_stats if {{ path_beg /admin }}\n  default_backend app\n\
         backend be_stats\n  stats enable\n  stats uri /admin/stats\n\
         backend app\n  server s1 {}\n",
        app.addr()
    );
    let _s = Sluiced::start(&cfg, &[port]);
    let (status, head, body) = get(port, "/admin/stats", "");
    assert_eq!(status, 200, "{head}");
    let doc = scraper::Html::parse_document(&body);
    let rows: Vec<String> = doc.select(&scraper::Selector::parse("tr td:first-child").unwrap()).map(|e| e.text().collect()).collect();
    assert!(rows.contains(&"s1".to_string()) && rows.contains(&"FRONTEND".to_string()), "{rows:?}");
    // Its CSV form too; other requests go to the default backend.
    assert_eq!(get(port, "/admin/stats;csv", "").0, 200);
    assert_eq!(get(port, "/other", "").2, "app");
    // A request routed to the stats backend outside its URI gets HAProxy's 503 (no server).
    assert_eq!(get(port, "/admin/else", "").0, 503);
}
