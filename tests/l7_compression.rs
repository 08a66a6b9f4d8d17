//! `compression algo|type|offload`: responses the real daemon compresses for clients that accept
//! it, decoded here with flate2 back to what the test's server sent; responses it must leave alone;
//! what the server sees with `offload`; streaming of a slow body; and the counters.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::Duration;

use support::*;

/// A text body that compresses well, `n` bytes long.
fn text(n: usize) -> Vec<u8> {
    (0..).flat_map(|i: u32| format!("<p>paragraph {} of a page that repeats itself</p>\n", i % 97).into_bytes()).take(n).collect()
}

/// The response head (lower-cased) and the body bytes as framed on the wire: the chunked body is
/// de-chunked here, by hand, so the proxy's own framing is what gets checked.
fn read_one(c: &mut TcpStream) -> (u16, String, Vec<u8>) {
    let mut carry = Vec::new();
    let r = read_next(c, &mut carry);
    assert!(carry.is_empty(), "{} bytes past the body", carry.len());
    r
}

/// [`read_one`] for pipelined responses: `carry` holds what was read past the previous
/// response (the next one may come in the same read) and receives what is read past this one.
fn read_next(c: &mut TcpStream, carry: &mut Vec<u8>) -> (u16, String, Vec<u8>) {
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = std::mem::take(carry);
    let mut tmp = [0u8; 65536];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = c.read(&mut tmp).expect("a response head");
        assert!(n > 0, "closed before a response head");
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status = head[9..12].parse().unwrap();
    let mut rest = buf[head_end..].to_vec();
    if let Some(len) = head.lines().find_map(|l| l.strip_prefix("content-length: ")) {
        let len: usize = len.trim().parse().unwrap();
        while rest.len() < len {
            let n = c.read(&mut tmp).unwrap();
            assert!(n > 0, "closed in the body");
            rest.extend_from_slice(&tmp[..n]);
        }
        *carry = rest.split_off(len);
        return (status, head, rest);
    }
    assert!(head.contains("transfer-encoding: chunked\r\n"), "neither length nor chunked: {head}");
    let end = loop {
        if let Some(e) = chunked_end(&rest) {
            break e;
        }
        let n = c.read(&mut tmp).unwrap();
        assert!(n > 0, "closed in a chunked body");
        rest.extend_from_slice(&tmp[..n]);
    };
    *carry = rest.split_off(end);
    (status, head, dechunk(&rest))
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap(), 16).unwrap();
        b = &b[eol + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data).read_to_end(&mut out).expect("a gzip stream");
    out
}

/// A server answering by path: `/page` a text/html page with a length, `/chunked` the same page
/// chunked, `/png` an image, `/encoded` a page already compressed, `/notransform` one marked
/// no-transform, `/missing` a 404 page; and the page size for each.
fn site(page_len: usize) -> (Backend, std::sync::Arc<std::sync::Mutex<Seen>>) {
    http_backend(move |req| {
        let line = String::from_utf8_lossy(&req[..req.iter().position(|&b| b == b'\r').unwrap()]).into_owned();
        let path = line.split(' ').nth(1).unwrap_or("/").to_owned();
        let body = text(page_len);
        let with_len = |status: &str, extra: &str, body: &[u8]| {
            [format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\n{extra}\r\n", body.len()).as_bytes(), if line.starts_with("HEAD") { b"" } else { body }]
                .concat()
        };
        match path.as_str() {
            "/page" => with_len("200 OK", "content-type: text/html; charset=utf-8\r\netag: \"v1\"\r\n", &body),
            "/chunked" => {
                let mut out = b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
                for part in body.chunks(3000) {
                    out.extend_from_slice(format!("{:x};ext=1\r\n", part.len()).as_bytes());
                    out.extend_from_slice(part);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\nx-trailer: t\r\n\r\n");
                out
            }
            "/png" => with_len("200 OK", "content-type: image/png\r\n", &body),
            "/encoded" => with_len("200 OK", "content-type: text/html\r\ncontent-encoding: br\r\n", &body),
            "/notransform" => with_len("200 OK", "content-type: text/html\r\ncache-control: no-transform\r\n", &body),
            "/missing" => with_len("404 Not Found", "content-type: text/html\r\n", &body),
            _ => with_len("200 OK", "content-type: text/plain\r\n", b"empty"),
        }
    })
}

fn get(path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nhost: t\r\n{extra}\r\n").into_bytes()
}

#[test]
fn gzip_compresses_listed_types_on_a_kept_alive_connection_and_each_body_decodes_to_the_servers() {
    let (srv, _) = site(100_000);
    let port = free_port();
    let d = Sluiced::start(&http_cfg(port, "  compression algo gzip\n  compression type text/html text/plain", &format!("  server s {}", srv.addr())), &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let page = text(100_000);

    c.write_all(&get("/page", "accept-encoding: br, gzip\r\n")).unwrap();
    let (status, head, body) = read_one(&mut c);
    assert_eq!(status, 200);
    assert!(head.contains("content-encoding: gzip\r\n") && head.contains("vary: accept-encoding\r\n"), "{head}");
    assert!(!head.contains("content-length"), "{head}");
    assert!(head.contains("etag: w/\"v1\"\r\n"), "a strong ETag is weakened: {head}");
    assert!(body.len() * 10 < page.len(), "{} compressed bytes for {}", body.len(), page.len());
    assert!(gunzip(&body) == page, "the decoded body differs from the server's");

    // A type not listed passes as it is, with its length, on the same connection.
    c.write_all(&get("/png", "accept-encoding: gzip\r\n")).unwrap();
    let (status, head, body) = read_one(&mut c);
    assert_eq!(status, 200);
    assert!(!head.contains("content-encoding") && head.contains("content-length: 100000"), "{head}");
    assert!(body == page);

    // A chunked page (extensions, a trailer) is compressed too.
    c.write_all(&get("/chunked", "accept-encoding: gzip;q=0.9\r\n")).unwrap();
    let (_, head, body) = read_one(&mut c);
    assert!(head.contains("content-encoding: gzip\r\n"), "{head}");
    assert!(gunzip(&body) == page);

    // Two requests pipelined in one write: both answered, in order, both compressed. The second
    // answer may come in the same read as the first.
    c.write_all(&[get("/page", "accept-encoding: gzip\r\n"), get("/chunked", "accept-encoding: gzip\r\n")].concat()).unwrap();
    let mut carry = Vec::new();
    for _ in 0..2 {
        let (status, head, body) = read_next(&mut c, &mut carry);
        assert!(status == 200 && head.contains("content-encoding: gzip"), "{head}");
        assert!(gunzip(&body) == page);
    }
    assert!(carry.is_empty(), "{} bytes past the second body", carry.len());
    drop(d);
}

#[test]
fn responses_are_left_alone_without_a_matching_accept_encoding_for_http_1_0_head_and_already_encoded_or_not_200() {
    let (srv, _) = site(20_000);
    let port = free_port();
    let _d = Sluiced::start(&http_cfg(port, "  compression algo gzip", &format!("  server s {}", srv.addr())), &[port]);
    let page = text(20_000);
    let untouched = |req: Vec<u8>, what: &str| {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(&req).unwrap();
        let (_, head, body) = read_one(&mut c);
        assert!(!head.contains("content-encoding: gzip") && !head.contains("vary"), "{what}: {head}");
        (head, body)
    };
    assert!(untouched(get("/page", ""), "no accept-encoding").1 == page);
    assert!(untouched(get("/page", "accept-encoding: br, deflate\r\n"), "no gzip offered").1 == page);
    assert!(untouched(get("/page", "accept-encoding: gzip;q=0\r\n"), "gzip refused").1 == page);
    assert!(untouched(b"GET /page HTTP/1.0\r\naccept-encoding: gzip\r\n\r\n".to_vec(), "HTTP/1.0").1 == page);
    // HEAD: the head as for GET, uncompressed, and no body.
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"HEAD /page HTTP/1.1\r\nhost: t\r\naccept-encoding: gzip\r\nconnection: close\r\n\r\n").unwrap();
    let head = String::from_utf8(read_to_end(&mut c, Duration::from_secs(5)).unwrap()).unwrap().to_ascii_lowercase();
    assert!(head.ends_with("\r\n\r\n") && head.contains("content-length: 20000") && !head.contains("content-encoding"), "{head}");
    assert!(untouched(get("/encoded", "accept-encoding: gzip\r\n"), "already encoded").0.contains("content-encoding: br"));
    assert!(untouched(get("/notransform", "accept-encoding: gzip\r\n"), "no-transform").1 == page);
    assert!(untouched(get("/missing", "accept-encoding: gzip\r\n"), "a 404").1 == page);
    assert!(untouched(get("/page", "user-agent: Mozilla/4.0 (compatible; MSIE 6.0)\r\naccept-encoding: gzip\r\n"), "an old browser").1 == page);
}

#[test]
fn offload_hides_accept_encoding_from_the_server_and_the_backend_settings_win_over_the_frontends() {
    let (srv, seen) = site(10_000);
    let port = free_port();
    let cfg = http_cfg(port, "  compression algo gzip", &format!("  compression algo deflate\n  compression offload\n  server s {}", srv.addr()));
    let _d = Sluiced::start(&cfg, &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(&get("/page", "accept-encoding: gzip, deflate\r\n")).unwrap();
    let (_, head, body) = read_one(&mut c);
    assert!(head.contains("content-encoding: deflate\r\n"), "the backend's algorithm: {head}");
    let mut back = Vec::new();
    flate2::read::ZlibDecoder::new(&body[..]).read_to_end(&mut back).unwrap();
    assert!(back == text(10_000));
    // Only gzip offered: the backend's list has none, so no compression, and the server is
    // asked as the client asked.
    c.write_all(&get("/page", "accept-encoding: gzip\r\n")).unwrap();
    let (_, head, _) = read_one(&mut c);
    assert!(!head.contains("content-encoding"), "{head}");
    let seen = seen.lock().unwrap();
    let heads: Vec<String> = seen.requests.iter().map(|r| String::from_utf8_lossy(r).to_ascii_lowercase()).collect();
    assert!(!heads[0].contains("accept-encoding"), "offload removes it: {}", heads[0]);
    assert!(heads[1].contains("accept-encoding: gzip"), "kept when nothing is compressed: {}", heads[1]);
}

#[test]
fn a_slow_chunked_body_reaches_the_client_compressed_part_by_part_as_the_server_sends_it() {
    let (go_on, wait) = mpsc::channel::<()>();
    let wait = std::sync::Mutex::new(wait);
    let srv = Backend::start(move |mut c| {
        let mut buf = Vec::new();
        if read_request(&mut c, &mut buf).is_none() {
            return;
        }
        c.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n6\r\nfirst\n\r\n").unwrap();
        // The rest only once the client has decoded the first part.
        let _ = wait.lock().unwrap().recv_timeout(Duration::from_secs(10));
        c.write_all(b"7\r\nsecond\n\r\n0\r\n\r\n").unwrap();
    });
    let port = free_port();
    let _d = Sluiced::start(&http_cfg(port, "  compression algo gzip", &format!("  server s {}", srv.addr())), &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(&get("/events", "accept-encoding: gzip\r\n")).unwrap();
    let mut got = Vec::new();
    let mut tmp = [0u8; 4096];
    // Read as it comes, decoding the whole chunks so far, until the first part shows.
    let decoded_so_far = |got: &[u8]| -> Option<Vec<u8>> {
        let mut b = &got[got.windows(4).position(|w| w == b"\r\n\r\n")? + 4..];
        let mut dec = flate2::write::GzDecoder::new(Vec::new());
        while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap(), 16).unwrap();
            if size == 0 || b.len() < eol + 2 + size + 2 {
                break;
            }
            dec.write_all(&b[eol + 2..eol + 2 + size]).unwrap();
            b = &b[eol + 2 + size + 2..];
        }
        dec.flush().unwrap();
        Some(dec.get_ref().clone())
    };
    while decoded_so_far(&got).as_deref() != Some(b"first\n") {
        let n = c.read(&mut tmp).expect("the first part before the server sends the rest");
        assert!(n > 0, "closed early");
        got.extend_from_slice(&tmp[..n]);
    }
    go_on.send(()).unwrap();
    let body_at = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    while chunked_end(&got[body_at..]).is_none() {
        let n = c.read(&mut tmp).unwrap();
        assert!(n > 0, "closed in the body");
        got.extend_from_slice(&tmp[..n]);
    }
    let rest = got[body_at..].to_vec();
    assert_eq!(gunzip(&dechunk(&rest)), b"first\nsecond\n");
}

#[test]
fn show_stat_and_prometheus_count_the_compressed_responses_and_bytes_in_and_out() {
    let (srv, _) = site(50_000);
    let (port, metrics) = (free_port(), free_port());
    let sock = temp_dir("compression-stats").join("stats.sock");
    let cfg = format!(
        "global\n  stats socket {}\n{}frontend m\n  bind 127.0.0.1:{metrics}\n  http-request use-service prometheus-exporter\n",
        sock.display(),
        http_cfg(port, "  compression algo gzip", &format!("  server s {}", srv.addr()))
    );
    let _d = Sluiced::start(&cfg, &[port, metrics]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut sent = 0;
    for _ in 0..3 {
        c.write_all(&get("/page", "accept-encoding: gzip\r\n")).unwrap();
        let (_, head, body) = read_one(&mut c);
        assert!(head.contains("content-encoding: gzip"));
        sent += body.len();
    }
    c.write_all(&get("/page", "")).unwrap();
    read_one(&mut c);
    let stat = ask(&sock, "show stat");
    let cols: Vec<&str> = stat.lines().next().unwrap().trim_start_matches("# ").split(',').collect();
    let col = |row: &str, name: &str| -> u64 {
        let i = cols.iter().position(|c| *c == name).unwrap();
        stat.lines().find(|l| l.starts_with(row)).unwrap().split(',').nth(i).unwrap().parse().unwrap()
    };
    for row in ["f,FRONTEND,", "b,BACKEND,"] {
        assert_eq!(col(row, "comp_rsp"), 3, "{row}");
        assert_eq!(col(row, "comp_in"), 150_000, "{row}");
        assert!(col(row, "comp_out") > 0 && col(row, "comp_out") <= sent as u64, "{row}: {} of {sent}", col(row, "comp_out"));
        assert_eq!(col(row, "comp_byp"), 0, "{row}");
    }
    let (_, _, page) = http_request(metrics, b"GET /metrics HTTP/1.1\r\nhost: m\r\nconnection: close\r\n\r\n");
    let page = String::from_utf8_lossy(&page);
    assert!(page.contains("haproxy_frontend_http_comp_responses_total{proxy=\"f\"} 3\n"), "{page}");
    assert!(page.contains("haproxy_backend_http_comp_bytes_in_total{proxy=\"b\"} 150000\n"), "{page}");
}

#[test]
fn tune_comp_maxlevel_above_1_compresses_more_with_flate2_and_still_decodes() {
    let (srv, _) = site(100_000);
    let size_at = |level: &str| {
        let port = free_port();
        let cfg = format!("global\n{level}{}", http_cfg(port, "  compression algo gzip", &format!("  server s {}", srv.addr())));
        let _d = Sluiced::start(&cfg, &[port]);
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(&get("/page", "accept-encoding: gzip\r\n")).unwrap();
        let (_, head, body) = read_one(&mut c);
        assert!(head.contains("content-encoding: gzip"), "{head}");
        assert!(gunzip(&body) == text(100_000));
        body.len()
    };
    let (fast, best) = (size_at(""), size_at("  tune.comp.maxlevel 9\n"));
    assert!(best < fast, "level 9: {best} bytes, level 1: {fast}");
}

#[test]
fn a_server_breaking_chunked_framing_mid_body_ends_the_compressed_answer_without_its_last_chunk() {
    let srv = Backend::start(|mut c| {
        let mut buf = Vec::new();
        if read_request(&mut c, &mut buf).is_none() {
            return;
        }
        let _ = c.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ntransfer-encoding: chunked\r\n\r\n6\r\nfirst\n\r\nzz\r\nbroken");
        std::thread::sleep(Duration::from_millis(500));
    });
    let port = free_port();
    let _d = Sluiced::start(&http_cfg(port, "  compression algo gzip", &format!("  server s {}", srv.addr())), &[port]);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(&get("/", "accept-encoding: gzip\r\n")).unwrap();
    let got = read_to_end(&mut c, Duration::from_secs(5)).expect("the connection closes");
    let at = got.windows(4).position(|w| w == b"\r\n\r\n").expect("a head") + 4;
    let head = String::from_utf8_lossy(&got[..at]).to_ascii_lowercase();
    assert!(head.contains("content-encoding: gzip"), "{head}");
    assert!(chunked_end(&got[at..]).is_none(), "the answer must not look complete: {:?}", String::from_utf8_lossy(&got[at..]));
    // What complete chunks came decodes to a part of what the server sent before the break.
    let mut b = &got[at..];
    let mut dec = flate2::write::GzDecoder::new(Vec::new());
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap(), 16).expect("chunk sizes from sluiced");
        if b.len() < eol + 2 + size + 2 {
            break;
        }
        dec.write_all(&b[eol + 2..eol + 2 + size]).unwrap();
        b = &b[eol + 2 + size + 2..];
    }
    let _ = dec.flush();
    assert!(b"first\n".starts_with(dec.get_ref()), "decoded {:?}", String::from_utf8_lossy(dec.get_ref()));
}

#[test]
fn minsize_res_leaves_smaller_responses_uncompressed_and_direction_request_compresses_no_response() {
    let (srv, _) = site(20_000);
    let answer = |lines: &str| {
        let port = free_port();
        let _d = Sluiced::start(&http_cfg(port, &format!("  compression algo gzip\n{lines}"), &format!("  server s {}", srv.addr())), &[port]);
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(&get("/page", "accept-encoding: gzip\r\n")).unwrap();
        read_one(&mut c).1
    };
    assert!(!answer("  compression minsize-res 30k").contains("content-encoding"), "20,000 bytes is under 30k");
    assert!(answer("  compression minsize-res 10k").contains("content-encoding: gzip"));
    assert!(!answer("  compression direction request").contains("content-encoding"));
    assert!(answer("  compression direction both").contains("content-encoding: gzip"));
}
