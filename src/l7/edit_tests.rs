//! Head rewrites: every edit, in order, untouched fields byte for byte, and the view later rules see.

use super::*;
use crate::l4::action::compile_regex;
use crate::l7::h1::Field;

/// A minimal head splitter for tests (the real parser lives in `h1`): offsets of the start line's
/// parts and of each field's name and trimmed value.
fn parse(buf: &[u8]) -> Head {
    let mut pos = 0;
    let mut lines = Vec::new();
    while let Some(n) = buf[pos..].windows(2).position(|w| w == b"\r\n") {
        if n == 0 {
            pos += 2;
            break;
        }
        lines.push(pos..pos + n);
        pos += n + 2;
    }
    let first = lines[0].clone();
    let line = &buf[first.clone()];
    let sp1 = line.iter().position(|&b| b == b' ').unwrap();
    let sp2 = sp1 + 1 + line[sp1 + 1..].iter().position(|&b| b == b' ').unwrap_or(line.len() - sp1 - 1);
    let s = first.start;
    let mut head = Head { method: 0..0, target: 0..0, version: Version::Http11, status: 0, reason: 0..0, fields: Vec::new(), len: pos };
    if line.starts_with(b"HTTP/") {
        head.version = if &line[..sp1] == b"HTTP/1.0" { Version::Http10 } else { Version::Http11 };
        head.status = std::str::from_utf8(&line[sp1 + 1..sp2]).unwrap().parse().unwrap();
        head.reason = (s + sp2 + 1).min(first.end)..first.end;
    } else {
        head.method = s..s + sp1;
        head.target = s + sp1 + 1..s + sp2;
        head.version = if &line[sp2 + 1..] == b"HTTP/1.0" { Version::Http10 } else { Version::Http11 };
    }
    for l in &lines[1..] {
        let text = &buf[l.clone()];
        let colon = text.iter().position(|&b| b == b':').unwrap();
        let mut vs = l.start + colon + 1;
        let mut ve = l.end;
        while vs < ve && (buf[vs] == b' ' || buf[vs] == b'\t') {
            vs += 1;
        }
        while ve > vs && (buf[ve - 1] == b' ' || buf[ve - 1] == b'\t') {
            ve -= 1;
        }
        head.fields.push(Field { name: l.start..l.start + colon, value: vs..ve });
    }
    head
}

const REQ: &[u8] = b"GET /a/b?x=1 HTTP/1.1\r\nHost: example.com\r\nX-Forwarded-For: 10.0.0.1\r\nAccept:text/html  \r\nCookie: a=1\r\nX-Internal-Id: 7\r\nx-internal-trace: on\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n";
const RES: &[u8] = b"HTTP/1.1 200 OK\r\nServer: app\r\nContent-Length: 0\r\n\r\n";

fn out(buf: &[u8], edits: &Edits, is_request: bool, conn: ConnHeader) -> String {
    let head = parse(buf);
    let mut o = Vec::new();
    write_head(buf, &head, edits, is_request, conn, &mut o);
    String::from_utf8(o).unwrap()
}

fn edits(list: Vec<Edit>) -> Edits {
    let mut e = Edits::new();
    for x in list {
        e.push(x);
    }
    e
}

fn re(s: &str) -> Regex {
    byte_regex(&compile_regex(s).unwrap()).unwrap()
}

fn req_with(list: Vec<Edit>) -> String {
    out(REQ, &edits(list), true, ConnHeader::Preserve)
}

fn set(n: &str, v: &str) -> Edit {
    Edit::Set { name: n.into(), value: v.into() }
}

fn add(n: &str, v: &str) -> Edit {
    Edit::Add { name: n.into(), value: v.into() }
}

/// The request as received, normalised: `Accept:text/html  ` becomes `Accept: text/html`.
const REQ_OUT: &str = "GET /a/b?x=1 HTTP/1.1\r\nHost: example.com\r\nX-Forwarded-For: 10.0.0.1\r\nAccept: text/html\r\nCookie: a=1\r\nX-Internal-Id: 7\r\nx-internal-trace: on\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n";

#[test]
fn without_edits_fields_are_copied_as_received() {
    assert_eq!(req_with(vec![]), REQ_OUT);
    assert_eq!(out(RES, &Edits::new(), false, ConnHeader::Preserve), std::str::from_utf8(RES).unwrap());
}

#[test]
fn set_header_replaces_every_occurrence_and_appends() {
    let want = REQ_OUT.replace("X-Forwarded-For: 10.0.0.1\r\n", "").replace("\r\n\r\n", "\r\nx-forwarded-for: 192.0.2.1\r\n\r\n");
    assert_eq!(req_with(vec![set("x-forwarded-FOR", "192.0.2.1")]), want);
}

#[test]
fn add_header_appends_and_keeps_existing() {
    let want = REQ_OUT.replace("\r\n\r\n", "\r\nx-via: sluiced\r\n\r\n");
    assert_eq!(req_with(vec![add("X-Via", "sluiced")]), want);
}

#[test]
fn del_header_by_each_method() {
    let del = |name: &str, matching| req_with(vec![Edit::Del { name: name.into(), matching }]);
    assert_eq!(del("cookie", NameMatch::Str), REQ_OUT.replace("Cookie: a=1\r\n", ""));
    assert_eq!(del("X-INTERNAL-", NameMatch::Beg), REQ_OUT.replace("X-Internal-Id: 7\r\nx-internal-trace: on\r\n", ""));
    assert_eq!(del("-ID", NameMatch::End), REQ_OUT.replace("X-Internal-Id: 7\r\n", ""));
    assert_eq!(del("forwarded", NameMatch::Sub), REQ_OUT.replace("X-Forwarded-For: 10.0.0.1\r\n", ""));
    assert_eq!(del("^x-internal-.*$", NameMatch::Reg(re("^x-internal-.*$"))), REQ_OUT.replace("X-Internal-Id: 7\r\nx-internal-trace: on\r\n", ""));
    assert_eq!(del("X-Internal", NameMatch::Str), REQ_OUT, "str matches whole names only");
}

#[test]
fn name_match_comes_from_the_configuration() {
    assert!(matches!(NameMatch::from_config(&HeaderMatch::Sub), Ok(NameMatch::Sub)));
    assert!(matches!(NameMatch::from_config(&HeaderMatch::Reg(compile_regex("^x").unwrap())), Ok(NameMatch::Reg(_))));
}

#[test]
fn replace_header_replaces_the_whole_value() {
    let r = |regex: &str, repl: &str| req_with(vec![Edit::Replace { name: "Cookie".into(), regex: re(regex), replacement: repl.into() }]);
    assert_eq!(r("a=(\\d)", "b=\\1;c=\\x41"), REQ_OUT.replace("Cookie: a=1", "Cookie: b=1;c=A"));
    assert_eq!(r("=", "whole"), REQ_OUT.replace("Cookie: a=1", "Cookie: whole"), "the match need not cover the value: all of it is replaced");
    assert_eq!(r("zzz", "x"), REQ_OUT, "no match, no change");
}

#[test]
fn replace_value_replaces_each_matching_element() {
    let buf = b"GET / HTTP/1.1\r\nX-Forwarded-For: 192.168.1.1,  10.0.0.1 ,192.168.7.7\r\nX-Other: 192.168.1.1\r\n\r\n";
    let e = edits(vec![Edit::ReplaceValue { name: "x-forwarded-for".into(), regex: re("^192\\.168\\.(.*)$"), replacement: b"172.16.\\1".to_vec() }]);
    assert_eq!(
        out(buf, &e, true, ConnHeader::Preserve),
        "GET / HTTP/1.1\r\nX-Forwarded-For: 172.16.1.1,  10.0.0.1 ,172.16.7.7\r\nX-Other: 192.168.1.1\r\n\r\n"
    );
    let quoted = b"GET / HTTP/1.1\r\nX-A: \"a,b\", c\r\n\r\n";
    let e = edits(vec![Edit::ReplaceValue { name: "x-a".into(), regex: re("^\"a,b\"$"), replacement: b"q".to_vec() }]);
    assert_eq!(out(quoted, &e, true, ConnHeader::Preserve), "GET / HTTP/1.1\r\nX-A: q, c\r\n\r\n");
}

#[test]
fn request_line_edits() {
    let first = |list: Vec<Edit>| req_with(list).split("\r\n").next().unwrap().to_owned();
    assert_eq!(first(vec![Edit::SetMethod(b"POST".to_vec())]), "POST /a/b?x=1 HTTP/1.1");
    assert_eq!(first(vec![Edit::SetPath(b"/z".to_vec())]), "GET /z?x=1 HTTP/1.1");
    assert_eq!(first(vec![Edit::SetPathQ(b"/z?k".to_vec())]), "GET /z?k HTTP/1.1");
    assert_eq!(first(vec![Edit::SetQuery(b"y=2".to_vec())]), "GET /a/b?y=2 HTTP/1.1");
    assert_eq!(first(vec![Edit::SetQuery(Vec::new())]), "GET /a/b? HTTP/1.1");
    assert_eq!(first(vec![Edit::SetUri(b"http://h/x".to_vec())]), "GET http://h/x HTTP/1.1");
    let repl = |part, regex: &str, r: &str| first(vec![Edit::ReplaceTarget { part, regex: re(regex), replacement: r.into() }]);
    assert_eq!(repl(TargetPart::Path, "^/a/(.*)", "/v2/\\1"), "GET /v2/b?x=1 HTTP/1.1");
    assert_eq!(repl(TargetPart::PathQ, "x=1$", "/all"), "GET /all HTTP/1.1");
    assert_eq!(repl(TargetPart::Uri, "^/(.)", "http://h/\\1"), "GET http://h/a HTTP/1.1");
    assert_eq!(repl(TargetPart::Path, "nomatch", "/x"), "GET /a/b?x=1 HTTP/1.1");
}

#[test]
fn path_edits_keep_the_authority_of_an_absolute_uri() {
    let buf = b"GET http://h:81/p?q HTTP/1.1\r\n\r\n";
    let first = |e: Edit| out(buf, &edits(vec![e]), true, ConnHeader::Preserve).split("\r\n").next().unwrap().to_owned();
    assert_eq!(first(Edit::SetPath(b"/n".to_vec())), "GET http://h:81/n?q HTTP/1.1");
    assert_eq!(first(Edit::SetQuery(b"z".to_vec())), "GET http://h:81/p?z HTTP/1.1");
    let bare = b"GET http://h HTTP/1.1\r\n\r\n";
    assert!(out(bare, &edits(vec![Edit::SetPath(b"/n".to_vec())]), true, ConnHeader::Preserve).starts_with("GET http://h/n HTTP/1.1"));
    let noq = b"GET /p HTTP/1.1\r\n\r\n";
    assert!(out(noq, &edits(vec![Edit::SetQuery(Vec::new())]), true, ConnHeader::Preserve).starts_with("GET /p HTTP/1.1"));
    assert!(out(noq, &edits(vec![Edit::SetQuery(b"a".to_vec())]), true, ConnHeader::Preserve).starts_with("GET /p?a HTTP/1.1"));
}

#[test]
fn set_status_with_and_without_reason() {
    let s = |reason: Option<&str>| {
        out(RES, &edits(vec![Edit::SetStatus { status: 503, reason: reason.map(|r| r.as_bytes().to_vec()) }]), false, ConnHeader::Preserve)
    };
    assert_eq!(s(None), "HTTP/1.1 503 Service Unavailable\r\nServer: app\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(s(Some("Try later")), "HTTP/1.1 503 Try later\r\nServer: app\r\nContent-Length: 0\r\n\r\n");
}

#[test]
fn a_later_edit_sees_an_earlier_one() {
    let chain = vec![
        set("X-Stage", "one"),
        Edit::Replace { name: "x-stage".into(), regex: re("^one$"), replacement: b"two".to_vec() },
        Edit::SetPath(b"/v2/b".to_vec()),
        Edit::ReplaceTarget { part: TargetPart::Path, regex: re("^/v2/(.*)$"), replacement: b"/v3/\\1".to_vec() },
        add("X-Stage", "three"),
        Edit::Del { name: "host".into(), matching: NameMatch::Str },
    ];
    let got = req_with(chain);
    assert!(got.starts_with("GET /v3/b?x=1 HTTP/1.1\r\nX-Forwarded-For"), "{got}");
    assert!(got.ends_with("Upgrade: websocket\r\nx-stage: two\r\nx-stage: three\r\n\r\n"), "{got}");
    assert!(!got.contains("Host:"));
}

#[test]
fn untouched_fields_keep_their_bytes_around_edits() {
    let got = req_with(vec![Edit::Del { name: "cookie".into(), matching: NameMatch::Str }, add("X-New", "1")]);
    assert_eq!(got, REQ_OUT.replace("Cookie: a=1\r\n", "").replace("\r\n\r\n", "\r\nx-new: 1\r\n\r\n"));
    assert!(got.contains("x-internal-trace: on\r\n") && got.contains("X-Internal-Id: 7\r\n"), "names keep their case");
}

#[test]
fn connection_header_modes() {
    let e = Edits::new();
    let plain = REQ_OUT.replace("Connection: keep-alive, Upgrade\r\n", "Connection: Upgrade\r\n");
    assert_eq!(out(REQ, &e, true, ConnHeader::Strip), plain);
    assert_eq!(out(REQ, &e, true, ConnHeader::Close), plain.replace("\r\n\r\n", "\r\nconnection: close\r\n\r\n"));
    assert_eq!(out(REQ, &e, true, ConnHeader::KeepAlive), plain.replace("\r\n\r\n", "\r\nconnection: keep-alive\r\n\r\n"));
    let only_close = b"HTTP/1.0 200 OK\r\nConnection: close\r\n\r\n";
    assert_eq!(out(only_close, &e, false, ConnHeader::Strip), "HTTP/1.0 200 OK\r\n\r\n");
}

#[test]
fn edited_values_never_carry_line_breaks() {
    assert!(req_with(vec![add("X-A", "1\r\nX-Injected: 1")]).contains("x-a: 1X-Injected: 1\r\n"));
}

#[test]
fn view_without_edits_reads_the_head() {
    let head = parse(REQ);
    let v = EditedView::new(REQ, &head, &Edits::new());
    assert_eq!((v.method(), v.uri(), v.version(), v.status()), (&b"GET"[..], &b"/a/b?x=1"[..], &b"HTTP/1.1"[..], 0));
    assert_eq!(v.header_count(), 8);
    assert_eq!(v.header(2), (&b"Accept"[..], &b"text/html"[..]));
    assert_eq!(v.header(99), (&b""[..], &b""[..]));
    assert!(v.edited.is_none(), "no copy without edits");
}

#[test]
fn view_shows_the_edits_so_far() {
    let head = parse(REQ);
    let mut e = Edits::new();
    e.push(Edit::SetMethod(b"PUT".to_vec()));
    e.push(set("host", "other.example"));
    let mut v = EditedView::new(REQ, &head, &e);
    assert_eq!(v.method(), b"PUT");
    assert_eq!(v.header_count(), 8);
    assert_eq!(v.header(7), (&b"host"[..], &b"other.example"[..]));
    v.apply(&Edit::SetQuery(b"z".to_vec()));
    assert_eq!(v.uri(), b"/a/b?z");
    let res = parse(RES);
    let mut v = EditedView::new(RES, &res, &Edits::new());
    v.apply(&Edit::SetStatus { status: 404, reason: None });
    assert_eq!((v.status(), v.reason(), v.version()), (404, &b"Not Found"[..], &b"HTTP/1.1"[..]));
}

fn ff(except: Option<&str>, if_none: bool) -> ForwardFor {
    ForwardFor { except: except.map(|n| IpNet::parse(n).unwrap()), header: "X-Forwarded-For".into(), if_none }
}

#[test]
fn forwardfor_adds_the_client_address() {
    let head = parse(REQ);
    let v = EditedView::new(REQ, &head, &Edits::new());
    let ip: IpAddr = "192.0.2.9".parse().unwrap();
    let Some(Edit::Add { name, value }) = forwardfor(&ff(None, false), Some(ip), &v) else { panic!("expected an add") };
    assert_eq!((name.as_str(), value.as_slice()), ("X-Forwarded-For", &b"192.0.2.9"[..]));
    let v6: IpAddr = "2001:db8::1".parse().unwrap();
    assert!(matches!(forwardfor(&ff(None, false), Some(v6), &v), Some(Edit::Add { value, .. }) if value == b"2001:db8::1"));
    assert!(forwardfor(&ff(None, false), None, &v).is_none(), "UNIX socket clients get no header");
}

#[test]
fn forwardfor_except_and_if_none() {
    let head = parse(REQ);
    let v = EditedView::new(REQ, &head, &Edits::new());
    let ip: IpAddr = "127.0.0.5".parse().unwrap();
    assert!(forwardfor(&ff(Some("127.0.0.0/8"), false), Some(ip), &v).is_none());
    assert!(forwardfor(&ff(Some("10.0.0.0/8"), false), Some(ip), &v).is_some());
    assert!(forwardfor(&ff(Some("::1/128"), false), Some(ip), &v).is_some(), "families differ");
    assert!(forwardfor(&ff(Some("0.0.0.0/0"), false), Some(ip), &v).is_none());
    assert!(forwardfor(&ff(Some("2001:db8::/32"), false), Some("2001:db8::7".parse().unwrap()), &v).is_none());
    assert!(forwardfor(&ff(None, true), Some(ip), &v).is_none(), "the request has one");
    let mut e = Edits::new();
    e.push(Edit::Del { name: "x-forwarded-for".into(), matching: NameMatch::Str });
    let v = EditedView::new(REQ, &head, &e);
    assert!(forwardfor(&ff(None, true), Some(ip), &v).is_some(), "an earlier del-header counts");
}

#[test]
fn originalto_adds_the_destination() {
    let ot = OriginalTo { except: Some(IpNet::parse("192.0.2.0/24").unwrap()), header: "X-Original-To".into() };
    assert!(originalto(&ot, Some("192.0.2.1".parse().unwrap())).is_none());
    assert!(
        matches!(originalto(&ot, Some("198.51.100.1".parse().unwrap())), Some(Edit::Add { name, value }) if name == "X-Original-To" && value == b"198.51.100.1")
    );
    assert!(originalto(&ot, None).is_none());
}

#[test]
fn expand_handles_odd_replacements() {
    let r = re("(a)(b)?");
    let c = r.captures(b"a").unwrap();
    assert_eq!(expand(b"[\\1][\\2][\\9]\\\\\\x4\\q\\", &c), b"[a][][]\\x4q\\");
}

#[test]
fn odd_heads_do_not_panic() {
    let (three, two, one, five) = (3, 2, 1, 5);
    let head = Head {
        method: 50..60,
        target: three..one,
        version: Version::Http11,
        status: 0,
        reason: 0..0,
        fields: vec![Field { name: 99..100, value: five..two }],
        len: 0,
    };
    let all = edits(vec![
        Edit::SetPath(b"/x".to_vec()),
        Edit::SetQuery(b"q".to_vec()),
        Edit::ReplaceValue { name: "".into(), regex: re(".*"), replacement: b"\\".to_vec() },
        Edit::Replace { name: "".into(), regex: re(""), replacement: b"\\x".to_vec() },
        Edit::Del { name: "".into(), matching: NameMatch::End },
        Edit::ReplaceTarget { part: TargetPart::PathQ, regex: re(".*"), replacement: b"".to_vec() },
    ]);
    let mut o = Vec::new();
    write_head(b"short", &head, &all, true, ConnHeader::Close, &mut o);
    write_head(b"short", &head, &Edits::new(), false, ConnHeader::Strip, &mut o);
}

#[test]
fn heads_copied_as_they_stand_match_the_written_form() {
    let e = Edits::new();
    // A usual response: the start line and its fields in one copy, `Connection: keep-alive` out.
    let res = b"HTTP/1.1 200 OK\r\nServer: app\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n";
    assert_eq!(out(res, &e, false, ConnHeader::Strip), "HTTP/1.1 200 OK\r\nServer: app\r\nContent-Length: 2\r\n\r\n");
    // No reason phrase: the written form has the space before the empty reason.
    let bare = b"HTTP/1.1 204\r\nServer: app\r\n\r\n";
    assert_eq!(out(bare, &e, false, ConnHeader::Preserve), "HTTP/1.1 204 \r\nServer: app\r\n\r\n");
    // Fields not written as `name: value` are normalised, those around them copied.
    let odd = b"GET / HTTP/1.0\r\nA: 1\r\nB:2\r\nC: 3\r\n\r\n";
    assert_eq!(out(odd, &e, true, ConnHeader::Preserve), "GET / HTTP/1.0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n");
}

#[test]
fn a_sent_header_value_is_replaced_in_place_and_the_body_is_left_alone() {
    let mut o = b"POST / HTTP/1.1\r\nHost: a\r\nX-Server: s1\r\nContent-Length: 10\r\n\r\nX-Server: 1".to_vec();
    replace_sent_header(&mut o, "x-server", b"second");
    assert_eq!(o, b"POST / HTTP/1.1\r\nHost: a\r\nX-Server: second\r\nContent-Length: 10\r\n\r\nX-Server: 1");
    // The last field of the head.
    let mut o = b"GET / HTTP/1.1\r\nX-Server: s1\r\n\r\n".to_vec();
    replace_sent_header(&mut o, "X-Server", b"s2");
    assert_eq!(o, b"GET / HTTP/1.1\r\nX-Server: s2\r\n\r\n");
    // No such header, or no fields at all: unchanged.
    let mut o = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nX-Server: s1".to_vec();
    replace_sent_header(&mut o, "x-server", b"s2");
    assert_eq!(o, b"GET / HTTP/1.1\r\nHost: a\r\n\r\nX-Server: s1");
    let mut o = b"GET / HTTP/1.1\r\n\r\n".to_vec();
    replace_sent_header(&mut o, "x-server", b"s2");
    assert_eq!(o, b"GET / HTTP/1.1\r\n\r\n");
}
