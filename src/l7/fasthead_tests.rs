use super::*;
use crate::l7::h1::{Limits, parse_request_into, parse_response_into};
use proptest::prelude::*;
use std::mem::MaybeUninit;

fn offsets(buf: &[u8], part: &[u8]) -> std::ops::Range<usize> {
    let start = part.as_ptr() as usize - buf.as_ptr() as usize;
    start..start + part.len()
}

/// What `httparse` makes of a request head, as a [`Head`]; `None` unless complete and valid.
fn httparse_request(w: &[u8], max: usize) -> Option<Head> {
    let mut slots = vec![MaybeUninit::uninit(); max];
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(w, &mut slots) {
        Ok(httparse::Status::Complete(len)) => Some(Head {
            method: offsets(w, req.method?.as_bytes()),
            target: offsets(w, req.path?.as_bytes()),
            version: if req.version? == 0 { Version::Http10 } else { Version::Http11 },
            status: 0,
            reason: 0..0,
            fields: req.headers.iter().map(|h| Field { name: offsets(w, h.name.as_bytes()), value: offsets(w, h.value) }).collect(),
            len,
        }),
        _ => None,
    }
}

/// The same for a response head (the reason as this module reports it: to the first CR).
fn httparse_response(w: &[u8], max: usize) -> Option<Head> {
    let mut slots = vec![MaybeUninit::uninit(); max];
    let mut resp = httparse::Response::new(&mut []);
    match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut resp, w, &mut slots) {
        Ok(httparse::Status::Complete(len)) => Some(Head {
            method: 0..0,
            target: 0..0,
            version: if resp.version? == 0 { Version::Http10 } else { Version::Http11 },
            status: resp.code?,
            reason: 13..memchr::memchr(b'\r', w)?,
            fields: resp.headers.iter().map(|h| Field { name: offsets(w, h.name.as_bytes()), value: offsets(w, h.value) }).collect(),
            len,
        }),
        _ => None,
    }
}

/// Bytes a generated piece is made of: mostly plain ones, and every kind of byte the fast
/// path must hand over (controls, CR, LF, NUL, DEL, obs-text, separators).
fn byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        8 => prop::sample::select(b"abcXYZ019-_.~!".to_vec()),
        2 => prop::sample::select(b" \t:/?=,;\"()".to_vec()),
        1 => prop::sample::select(vec![b'\r', b'\n', 0, 0x7f, 0x80, 0xff, 0x0b]),
    ]
}

fn piece(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(byte(), 0..max)
}

/// A piece that is mostly of the plain form, sometimes not.
fn mostly(plain: &'static [u8], max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![6 => prop::collection::vec(prop::sample::select(plain.to_vec()), 1..max), 1 => piece(max)]
}

fn pick(plain: &'static [u8], odd: Vec<&'static [u8]>) -> impl Strategy<Value = Vec<u8>> + Clone {
    prop_oneof![8 => Just(plain.to_vec()), 1 => prop::sample::select(odd).prop_map(|o| o.to_vec())]
}

/// A field line: a name, a separator, a value, a line end; any of them possibly odd.
fn field_line() -> impl Strategy<Value = Vec<u8>> {
    let sep = pick(b": ", vec![b":", b":\t", b" : ", b":  ", b"", b"::"]);
    let end = pick(b"\r\n", vec![b"\n", b"\r", b" \r\n", b"\t\r\n", b"\r\n "]);
    (mostly(b"abcXYZ019-_.~!", 12), sep, mostly(b"abcXYZ019-_.~!/=,; \t", 24), end).prop_map(|(n, s, v, e)| [n, s, v, e].concat())
}

fn head_tail() -> impl Strategy<Value = Vec<u8>> {
    (prop::collection::vec(field_line(), 0..6), pick(b"\r\n", vec![b"\n", b"", b" \r\n"])).prop_map(|(f, e)| [f.concat(), e].concat())
}

/// Keeps the whole head most of the time, else cuts it short (an incomplete head).
fn maybe_cut(h: Vec<u8>, cut: Option<usize>) -> Vec<u8> {
    match cut {
        Some(at) => h[..at % (h.len() + 1)].to_vec(),
        None => h,
    }
}

fn cut() -> impl Strategy<Value = Option<usize>> {
    prop_oneof![6 => Just(None), 1 => (0usize..1000).prop_map(Some)]
}

fn request_head() -> impl Strategy<Value = Vec<u8>> {
    let method = prop_oneof![prop::sample::select(vec![b"GET".to_vec(), b"POST".to_vec(), b"\r\nGET".to_vec()]), piece(6)];
    let target = prop_oneof![prop::sample::select(vec![b"/".to_vec(), b"/a?b=c".to_vec(), b"*".to_vec()]), piece(10)];
    let version = pick(b"HTTP/1.1", vec![b"HTTP/1.0", b"HTTP/1.2", b"HTTP/2.0", b"http/1.1", b"HTTP/1.1x"]);
    let sp = pick(b" ", vec![b"  ", b"\t", b""]);
    let eol = pick(b"\r\n", vec![b"\n", b" \r\n", b"\r"]);
    (method, sp.clone(), target, sp, version, eol, head_tail(), cut())
        .prop_map(|(m, s1, t, s2, v, e, tail, c)| maybe_cut([m, s1, t, s2, v, e, tail].concat(), c))
}

fn response_head() -> impl Strategy<Value = Vec<u8>> {
    let version = pick(b"HTTP/1.1", vec![b"HTTP/1.0", b"HTTP/1.2", b"HTTP/1.1x", b"HTTP/2"]);
    let code = prop_oneof![prop::sample::select(vec![b"200".to_vec(), b"404".to_vec(), b"099".to_vec(), b"600".to_vec()]), piece(4)];
    let sp = pick(b" ", vec![b"  ", b"\t", b""]);
    let reason = prop_oneof![prop::sample::select(vec![b"OK".to_vec(), b"".to_vec(), b"Not Found".to_vec()]), piece(10)];
    let eol = pick(b"\r\n", vec![b"\n", b"\r", b" \r\n"]);
    (version, sp.clone(), code, sp, reason, eol, head_tail(), cut()).prop_map(|(v, s1, c, s2, r, e, tail, k)| maybe_cut([v, s1, c, s2, r, e, tail].concat(), k))
}

/// Heads of the plain form and others, to show that the generators reach both sides.
#[test]
fn the_plain_form_is_taken_and_the_rest_handed_over() {
    let mut head = Head::default();
    let plain = b"GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nAccept:  */*\r\n\r\nnext";
    assert!(request(plain, 101, &mut head));
    assert_eq!((head.method.clone(), head.target.clone(), head.version, head.len), (0..3, 4..10, Version::Http11, plain.len() - 4));
    assert_eq!(head.fields, vec![Field { name: 21..25, value: 27..38 }, Field { name: 40..46, value: 49..52 }]);
    for odd in [
        &b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        b"GET / HTTP/1.1\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a \r\n\r\n",
        b"GET / HTTP/1.1\r\nHost:\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: \x80\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n",
        b"GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n",
    ] {
        assert!(!request(odd, 101, &mut head), "{:?}", String::from_utf8_lossy(odd));
    }
    assert!(!request(b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n", 1, &mut head), "more fields than allowed");
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
    assert!(response(resp, 101, &mut head));
    assert_eq!((head.status, head.reason.clone(), head.len), (200, 13..15, resp.len() - 2));
    assert!(!response(b"HTTP/1.1 200\r\n\r\n", 101, &mut head), "no reason: handed over");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

    /// What the fast path takes, httparse takes with the same offsets; and the whole parse
    /// (fast path, then httparse and the checks) answers as httparse and the checks alone do.
    #[test]
    fn fast_path_agrees_with_httparse(req in request_head(), resp in response_head()) {
        let mut head = Head::default();
        if request(&req, 101, &mut head) {
            prop_assert_eq!(Some(head.clone()), httparse_request(&req, 101), "{:?}", String::from_utf8_lossy(&req));
        }
        if response(&resp, 101, &mut head) {
            prop_assert_eq!(Some(head.clone()), httparse_response(&resp, 101), "{:?}", String::from_utf8_lossy(&resp));
        }
        let limits = Limits::default();
        let (mut a, mut b) = (Head::default(), Head::default());
        let whole = parse_request_into(&req, &limits, &mut a).map(|done| done.then(|| a.clone()));
        let general = crate::l7::h1::parse_request_general(&req, &limits, &mut b).map(|done| done.then(|| b.clone()));
        prop_assert_eq!(whole, general);
        let whole = parse_response_into(&resp, &limits, &mut a).map(|done| done.then(|| a.clone()));
        let general = crate::l7::h1::parse_response_general(&resp, &limits, &mut b).map(|done| done.then(|| b.clone()));
        prop_assert_eq!(whole, general);
    }
}

/// The differential test above means something only if its heads reach both sides: many
/// taken by the fast path, many handed over.
#[test]
fn generated_heads_reach_both_paths() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut req_fast, mut resp_fast, n) = (0, 0, 4000);
    let mut head = Head::default();
    for _ in 0..n {
        let req = request_head().new_tree(&mut runner).unwrap().current();
        let resp = response_head().new_tree(&mut runner).unwrap().current();
        req_fast += usize::from(request(&req, 101, &mut head));
        resp_fast += usize::from(response(&resp, 101, &mut head));
    }
    for (what, fast) in [("requests", req_fast), ("responses", resp_fast)] {
        assert!(fast > n / 20 && fast < n - n / 20, "{what}: {fast} of {n} taken by the fast path");
    }
    eprintln!("fast path took {req_fast} requests and {resp_fast} responses of {n}");
}

proptest! {
    /// The word-at-a-time walk stops where the byte-wise one does, whatever the bytes.
    #[test]
    fn text_end_stops_where_the_bytewise_walk_does(w in prop::collection::vec(prop_oneof![6 => 0x20u8..0x7f, 1 => any::<u8>()], 0..64), at in 0usize..70) {
        prop_assert_eq!(text_end(&w, at), run(&w, at, &TEXT));
    }
}
