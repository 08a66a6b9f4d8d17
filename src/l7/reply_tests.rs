//! Built-in pages byte for byte, error files, replies of every body kind and redirects.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::config::diag::Span;
use crate::config::logformat::LogItem;

/// A stand-in for the stream's log-format evaluator: text as is, `%ci` as a client address,
/// anything else as its name in angle brackets.
fn lf(f: &LogFormat) -> String {
    f.items
        .iter()
        .map(|i| match i {
            LogItem::Text(t) => t.clone(),
            LogItem::Var { name: "ci", .. } => "192.0.2.7".to_owned(),
            LogItem::Var { name, .. } => format!("<{name}>"),
            LogItem::Sample { .. } => "<sample>".to_owned(),
        })
        .collect()
}

fn fmt(s: &str) -> LogFormat {
    parse_log_format(s).expect("log-format")
}

fn tmp(content: &[u8]) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("sluiced-reply-{}-{n}", std::process::id()));
    std::fs::write(&path, content).expect("write temp file");
    path.to_string_lossy().into_owned()
}

fn text(r: &Response) -> String {
    String::from_utf8_lossy(&r.bytes).into_owned()
}

fn span() -> Span {
    Span::new(Arc::from("t.cfg"), 7)
}

fn section(name: &str, files: &[(u16, &str)]) -> HttpErrors {
    HttpErrors { name: name.into(), span: span(), files: files.iter().map(|(s, p)| (*s, (*p).to_owned(), span())).collect() }
}

const PAGE_503: &[u8] = b"HTTP/1.1 503 Busy\r\nContent-Type: text/plain\r\nCache-Control: no-cache\r\nContent-Length: 5\r\n\r\nbusy\n";
const PAGE_503_WIRE: &str = "HTTP/1.1 503 Busy\r\ncontent-type: text/plain\r\ncache-control: no-cache\r\ncontent-length: 5\r\n\r\nbusy\n";

// ---------------------------------------------------------------------------------------------
// Built-in pages

/// HAProxy's `http_err_msgs[]`: status, reason, declared content-length, whether the page closes,
/// and the sentence between the title and the end of the page.
const HAPROXY_PAGES: &[(u16, &str, usize, bool, &str)] = &[
    (200, "OK", 58, false, "Service ready."),
    (400, "Bad request", 90, true, "Your browser sent an invalid request."),
    (401, "Unauthorized", 112, false, "You need a valid user and password to access this content."),
    (403, "Forbidden", 93, false, "Request forbidden by administrative rules."),
    (404, "Not Found", 83, false, "The resource could not be found."),
    (405, "Method Not Allowed", 146, false, "A request was made of a resource using a request method not supported by that resource"),
    (407, "Unauthorized", 112, false, "You need a valid user and password to access this content."),
    (408, "Request Time-out", 110, true, "Your browser didn't send a complete request in time."),
    (410, "Gone", 114, false, "The resource is no longer available and will not be available again."),
    (413, "Payload Too Large", 106, false, "The request entity exceeds the maximum allowed."),
    (421, "Misdirected Request", 104, false, "Request sent to a non-authoritative server."),
    (425, "Too Early", 80, false, "Your browser sent early data."),
    (429, "Too Many Requests", 117, false, "You have sent too many requests in a given amount of time."),
    (500, "Internal Server Error", 97, false, "An internal server error occurred."),
    (501, "Not Implemented", 136, false, ".The server does not support the functionality required to fulfill the request."),
    (502, "Bad Gateway", 107, false, "The server returned an invalid or incomplete response."),
    (503, "Service Unavailable", 107, false, "No server is available to handle this request."),
    (504, "Gateway Time-out", 92, false, "The server didn't respond in time."),
];

#[test]
fn every_builtin_page_is_haproxys_byte_for_byte() {
    assert_eq!(HAPROXY_PAGES.len(), BUILTIN_ERROR_CODES.len());
    for &(status, why, len, close, sentence) in HAPROXY_PAGES {
        let body = format!("<html><body><h1>{status} {why}</h1>\n{sentence}\n</body></html>\n");
        assert_eq!(body.len(), len, "{status}: HAProxy's declared length");
        let conn = if close { "connection: close\r\n" } else { "" };
        let expected = format!("HTTP/1.1 {status} {why}\r\ncontent-length: {len}\r\ncache-control: no-cache\r\n{conn}content-type: text/html\r\n\r\n{body}");
        let page = builtin_error(status);
        assert_eq!(String::from_utf8_lossy(page.bytes()), expected, "{status}");
        assert_eq!((page.status(), page.close()), (status, close), "{status}");
    }
}

#[test]
fn builtin_503_is_what_haproxy_sends() {
    let want = "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 107\r\ncache-control: no-cache\r\ncontent-type: text/html\r\n\r\n\
                <html><body><h1>503 Service Unavailable</h1>\nNo server is available to handle this request.\n</body></html>\n";
    assert_eq!(builtin_error(503).bytes(), want.as_bytes());
}

#[test]
fn a_status_without_a_page_gets_the_500_page() {
    assert_eq!(builtin_error(418).status(), 500);
    assert_eq!(builtin_error(0).status(), 500);
    assert_eq!(error_code(418), 500);
    assert_eq!(error_code(429), 429);
}

#[test]
fn reasons_are_haproxys() {
    assert_eq!(reason(200), "OK");
    assert_eq!(reason(302), "Moved Temporarily");
    assert_eq!(reason(502), "Bad Gateway or Proxy Error");
    assert_eq!(reason(299), "Success");
    assert_eq!(reason(999), "Other");
}

// ---------------------------------------------------------------------------------------------
// Error files

#[test]
fn errorfile_is_normalised_with_lower_case_names() {
    let p = ErrorPage::parse(PAGE_503).unwrap();
    assert_eq!(String::from_utf8_lossy(p.bytes()), PAGE_503_WIRE);
    assert_eq!((p.status(), p.close()), (503, false));
}

#[test]
fn errorfile_with_bare_lf_and_no_length_gets_one() {
    let p = ErrorPage::parse(b"HTTP/1.0 403 Forbidden\nConnection: close\n\nno\n").unwrap();
    assert_eq!(p.bytes(), b"HTTP/1.0 403 Forbidden\r\nconnection: close\r\ncontent-length: 3\r\n\r\nno\n");
    assert!(p.close());
}

#[test]
fn errorfile_without_reason_keeps_an_empty_one() {
    assert_eq!(ErrorPage::parse(b"HTTP/1.1 500\r\n\r\n").unwrap().bytes(), b"HTTP/1.1 500 \r\ncontent-length: 0\r\n\r\n");
}

#[test]
fn empty_errorfile_closes_without_sending() {
    let p = ErrorPage::parse(b"").unwrap();
    assert!(p.bytes().is_empty() && p.close());
}

#[test]
fn invalid_errorfiles_are_refused_with_a_reason() {
    for (data, msg) in [
        (&b"<html>oops</html>\n"[..], "invalid status line '<html>oops</html>'"),
        (b"HTTP/2 200 OK\r\n\r\n", "invalid status line"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "invalid status line"),
        (b"HTTP/1.1 101 Switching\r\n\r\n", "status 101"),
        (b"HTTP/1.1 200 OK", "status line is not terminated"),
        (b"HTTP/1.1 200 OK\r\nServer: x\r\n", "not terminated by an empty line"),
        (b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "line 2: header line without ':'"),
        (b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", "invalid header name 'Bad Name'"),
        (b"HTTP/1.1 200 OK\r\nA: b\r\n  folded\r\n\r\n", "folded"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "transfer-encoding is not supported"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "content-length is 10 but the body has 5 bytes"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", "invalid content-length '1x'"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx", "conflicting content-length"),
    ] {
        let e = ErrorPage::parse(data).expect_err(msg);
        assert!(e.contains(msg), "{e:?} should say {msg:?}");
    }
}

#[test]
fn loader_names_the_file_and_reads_it_once() {
    let bad = tmp(b"hello\n");
    let mut l = FileLoader::new(16384);
    let e = l.errorfile(&bad).unwrap_err();
    assert!(e.contains(&format!("error file '{bad}' is not a valid HTTP response")), "{e}");
    assert!(l.errorfile("/nonexistent/x.http").unwrap_err().contains("cannot read file '/nonexistent/x.http'"));
    let good = tmp(PAGE_503);
    let a = l.errorfile(&good).unwrap();
    std::fs::write(&good, b"garbage").unwrap();
    assert!(Arc::ptr_eq(&a, &l.errorfile(&good).unwrap()), "a second use reads no file");
}

#[test]
fn loader_refuses_files_larger_than_a_buffer() {
    let big = tmp(&[b'x'; 100]);
    assert!(FileLoader::new(64).file(&big).unwrap_err().contains("100 bytes, more than the 64"));
}

fn http_with(pages: Vec<ErrorPages>, errors: Vec<Reply>) -> ProxyHttp {
    ProxyHttp { error_pages: pages, http_errors: errors, ..ProxyHttp::default() }
}

#[test]
fn later_errorfile_lines_win_and_unset_codes_fall_back() {
    let a = tmp(b"HTTP/1.1 503 A\r\n\r\n");
    let b = tmp(b"HTTP/1.1 503 B\r\n\r\n");
    let c = tmp(b"HTTP/1.1 504 C\r\n\r\n");
    let s = section("site", &[(503, &b), (504, &c)]);
    let http = http_with(vec![ErrorPages::Section { name: "site".into(), codes: vec![] }, ErrorPages::File { status: 503, path: a.clone() }], vec![]);
    let t = ErrorResponses::compile(&http, &[s], &mut FileLoader::new(16384)).unwrap();
    assert!(text(&error_response(503, &[&t], &lf)).starts_with("HTTP/1.1 503 A\r\n"));
    assert!(text(&error_response(504, &[&t], &lf)).starts_with("HTTP/1.1 504 C\r\n"));
    assert_eq!(error_response(502, &[&t], &lf).bytes, builtin_error(502).bytes());
}

#[test]
fn errorfiles_with_codes_takes_only_those() {
    let b = tmp(b"HTTP/1.1 503 B\r\n\r\n");
    let c = tmp(b"HTTP/1.1 504 C\r\n\r\n");
    let s = section("site", &[(503, &b), (504, &c)]);
    let http = http_with(vec![ErrorPages::Section { name: "site".into(), codes: vec![504] }], vec![]);
    let t = ErrorResponses::compile(&http, &[s], &mut FileLoader::new(16384)).unwrap();
    assert_eq!(error_response(503, &[&t], &lf).bytes, builtin_error(503).bytes());
    assert!(text(&error_response(504, &[&t], &lf)).starts_with("HTTP/1.1 504 C\r\n"));
}

#[test]
fn backend_pages_come_before_frontend_pages() {
    let be_page = tmp(b"HTTP/1.1 503 BE\r\n\r\n");
    let fe_page = tmp(b"HTTP/1.1 503 FE\r\n\r\n");
    let fe_404 = tmp(b"HTTP/1.1 404 FE\r\n\r\n");
    let mut l = FileLoader::new(16384);
    let be = ErrorResponses::compile(&http_with(vec![ErrorPages::File { status: 503, path: be_page }], vec![]), &[], &mut l).unwrap();
    let fe = ErrorResponses::compile(
        &http_with(vec![ErrorPages::File { status: 503, path: fe_page }, ErrorPages::File { status: 404, path: fe_404 }], vec![]),
        &[],
        &mut l,
    )
    .unwrap();
    assert!(text(&error_response(503, &[&be, &fe], &lf)).starts_with("HTTP/1.1 503 BE"));
    assert!(text(&error_response(404, &[&be, &fe], &lf)).starts_with("HTTP/1.1 404 FE"));
    assert!(ErrorResponses::default().is_empty());
}

#[test]
fn http_error_replaces_the_page_of_its_status() {
    let a = tmp(b"HTTP/1.1 503 A\r\n\r\n");
    let reply = Reply { status: 503, content_type: Some("text/plain".into()), body: ReplyBody::LfString(fmt("busy %ci")), headers: vec![] };
    let t = ErrorResponses::compile(&http_with(vec![ErrorPages::File { status: 503, path: a }], vec![reply]), &[], &mut FileLoader::new(16384)).unwrap();
    assert_eq!(
        text(&error_response(503, &[&t], &lf)),
        "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 14\r\ncontent-type: text/plain\r\n\r\nbusy 192.0.2.7"
    );
}

#[test]
fn http_error_with_default_errorfiles_uses_the_page_not_itself() {
    let a = tmp(b"HTTP/1.1 503 A\r\n\r\n");
    let reply = Reply { status: 503, content_type: None, body: ReplyBody::DefaultErrorfiles, headers: vec![] };
    let t = ErrorResponses::compile(&http_with(vec![ErrorPages::File { status: 503, path: a }], vec![reply]), &[], &mut FileLoader::new(16384)).unwrap();
    assert!(text(&error_response(503, &[&t], &lf)).starts_with("HTTP/1.1 503 A\r\n"));
}

#[test]
fn every_bad_file_is_reported() {
    let bad1 = tmp(b"nope\n");
    let bad2 = tmp(b"HTTP/1.1 200 OK\r\n");
    let http = http_with(
        vec![
            ErrorPages::File { status: 503, path: bad1.clone() },
            ErrorPages::Section { name: "site".into(), codes: vec![] },
            ErrorPages::Section { name: "nosuch".into(), codes: vec![] },
        ],
        vec![Reply { status: 500, content_type: Some("text/plain".into()), body: ReplyBody::File("/nonexistent/f".into()), headers: vec![] }],
    );
    let errs = ErrorResponses::compile(&http, &[section("site", &[(502, &bad2)])], &mut FileLoader::new(16384)).unwrap_err();
    assert_eq!(errs.len(), 4, "{errs:?}");
    assert!(errs[0].starts_with("errorfile 503: error file '") && errs[0].contains(&bad1));
    assert!(errs[1].starts_with("t.cfg:7: http-errors 'site': errorfile 502:") && errs[1].contains(&bad2));
    assert!(errs[2].contains("no http-errors section named 'nosuch'"));
    assert!(errs[3].contains("http-error status 500: cannot read file '/nonexistent/f'"));
}

// ---------------------------------------------------------------------------------------------
// Replies

fn render(reply: Reply, kind: ReplyKind) -> Response {
    render_in(reply, kind, &[], &[])
}

fn render_in(reply: Reply, kind: ReplyKind, sections: &[HttpErrors], tables: &[&ErrorResponses]) -> Response {
    CompiledReply::compile(&reply, kind, sections, &mut FileLoader::new(16384)).expect("compile").render(tables, &lf)
}

fn reply(status: u16, ct: Option<&str>, body: ReplyBody) -> Reply {
    Reply { status, content_type: ct.map(str::to_owned), body, headers: vec![] }
}

#[test]
fn return_without_payload_is_an_empty_response() {
    let r = render(reply(200, None, ReplyBody::Empty), ReplyKind::Return);
    assert_eq!(text(&r), "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
    assert!(!r.close);
}

#[test]
fn deny_without_payload_is_the_error_page() {
    assert_eq!(render(reply(403, None, ReplyBody::Empty), ReplyKind::Error).bytes, builtin_error(403).bytes());
    let page = tmp(b"HTTP/1.1 403 Custom\r\n\r\n");
    let t = ErrorResponses::compile(&http_with(vec![ErrorPages::File { status: 403, path: page }], vec![]), &[], &mut FileLoader::new(16384)).unwrap();
    assert!(text(&render_in(reply(403, None, ReplyBody::Empty), ReplyKind::Error, &[], &[&t])).starts_with("HTTP/1.1 403 Custom"));
    assert!(render(reply(408, None, ReplyBody::Empty), ReplyKind::Error).close, "the 408 page closes");
}

#[test]
fn default_errorfiles_answers_with_the_page() {
    assert_eq!(render(reply(404, None, ReplyBody::DefaultErrorfiles), ReplyKind::Return).bytes, builtin_error(404).bytes());
}

#[test]
fn string_payload_with_type_and_headers() {
    let mut r = reply(200, Some("text/plain"), ReplyBody::String("ok\n".into()));
    r.headers = vec![("X-Client".into(), fmt("%ci")), ("X-Empty".into(), fmt("")), ("X-Bad".into(), fmt("a\r\nInjected: 1"))];
    assert_eq!(
        text(&render(r, ReplyKind::Return)),
        "HTTP/1.1 200 OK\r\nx-client: 192.0.2.7\r\nx-bad: aInjected: 1\r\ncontent-length: 3\r\ncontent-type: text/plain\r\n\r\nok\n"
    );
}

#[test]
fn empty_payload_has_no_content_type() {
    assert_eq!(
        text(&render(reply(503, Some("text/plain"), ReplyBody::String(String::new())), ReplyKind::Return)),
        "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n"
    );
}

#[test]
fn lf_string_payload_is_evaluated() {
    assert_eq!(
        text(&render(reply(429, Some("text/plain"), ReplyBody::LfString(fmt("slow down %ci %[src]"))), ReplyKind::Error)),
        "HTTP/1.1 429 Too Many Requests\r\ncontent-length: 28\r\ncontent-type: text/plain\r\n\r\nslow down 192.0.2.7 <sample>"
    );
}

#[test]
fn file_payload_is_read_at_compile_time() {
    let f = tmp(b"{\"ok\":true}");
    let compiled =
        CompiledReply::compile(&reply(200, Some("application/json"), ReplyBody::File(f.clone())), ReplyKind::Return, &[], &mut FileLoader::new(16384)).unwrap();
    std::fs::remove_file(&f).unwrap();
    assert_eq!(text(&compiled.render(&[], &lf)), "HTTP/1.1 200 OK\r\ncontent-length: 11\r\ncontent-type: application/json\r\n\r\n{\"ok\":true}");
    assert_eq!(compiled.status(), 200);
}

#[test]
fn lf_file_payload_is_parsed_then_evaluated() {
    let f = tmp(b"client=%ci\n");
    assert_eq!(
        text(&render(reply(200, Some("text/plain"), ReplyBody::LfFile(f)), ReplyKind::Return)),
        "HTTP/1.1 200 OK\r\ncontent-length: 17\r\ncontent-type: text/plain\r\n\r\nclient=192.0.2.7\n"
    );
    let bad = tmp(b"%[");
    assert!(
        CompiledReply::compile(&reply(200, Some("text/plain"), ReplyBody::LfFile(bad.clone())), ReplyKind::Return, &[], &mut FileLoader::new(16384))
            .unwrap_err()
            .contains(&bad)
    );
}

#[test]
fn errorfile_payload_is_sent_as_loaded() {
    let f = tmp(PAGE_503);
    assert_eq!(text(&render(reply(503, None, ReplyBody::Errorfile(f)), ReplyKind::Return)), PAGE_503_WIRE);
}

#[test]
fn errorfiles_payload_takes_the_sections_page_for_the_status() {
    let f = tmp(PAGE_503);
    let s = [section("site", &[(503, &f)])];
    assert_eq!(text(&render_in(reply(503, None, ReplyBody::Errorfiles("site".into())), ReplyKind::Error, &s, &[])), PAGE_503_WIRE);
    assert_eq!(
        text(&render_in(reply(404, None, ReplyBody::Errorfiles("site".into())), ReplyKind::Error, &s, &[])),
        "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"
    );
    assert!(CompiledReply::compile(&reply(503, None, ReplyBody::Errorfiles("nosuch".into())), ReplyKind::Error, &s, &mut FileLoader::new(16384)).is_err());
}

// ---------------------------------------------------------------------------------------------
// Redirects

fn redirect(kind: RedirectKind, target: &str) -> Redirect {
    Redirect { kind, target: RedirectTarget::Literal(target.into()), code: 302, drop_query: false, append_slash: false, ignore_empty: false, cookie: None }
}

fn req(target: &str) -> RedirectRequest<'_> {
    RedirectRequest { target: target.as_bytes(), host: Some(b"example.com"), body_pending: false }
}

fn loc(r: &Redirect, target: &str) -> String {
    String::from_utf8(location(r, &req(target), &lf).expect("location")).unwrap()
}

#[test]
fn location_is_the_target() {
    assert_eq!(loc(&redirect(RedirectKind::Location, "https://a.example/x"), "/p?q"), "https://a.example/x");
    let mut r = redirect(RedirectKind::Location, "");
    r.target = RedirectTarget::Format(fmt("https://%[req.hdr(host)]/x"));
    assert_eq!(loc(&r, "/"), "https://<sample>/x");
}

#[test]
fn ignore_empty_skips_an_empty_location() {
    let mut r = redirect(RedirectKind::Location, "");
    r.target = RedirectTarget::Format(fmt(""));
    r.ignore_empty = true;
    assert_eq!(location(&r, &req("/"), &lf), None);
    assert_eq!(redirect_response(&r, &req("/"), &lf), None);
    r.ignore_empty = false;
    assert_eq!(loc(&r, "/"), "");
}

#[test]
fn prefix_keeps_path_and_query() {
    assert_eq!(loc(&redirect(RedirectKind::Prefix, "https://new.example"), "/a/b?x=1"), "https://new.example/a/b?x=1");
    let mut r = redirect(RedirectKind::Prefix, "");
    r.target = RedirectTarget::Format(fmt("/v2"));
    assert_eq!(loc(&r, "/a"), "/v2/a");
}

#[test]
fn prefix_drop_query_and_append_slash() {
    let mut r = redirect(RedirectKind::Prefix, "https://new.example");
    r.drop_query = true;
    assert_eq!(loc(&r, "/a/b?x=1"), "https://new.example/a/b");
    r.append_slash = true;
    assert_eq!(loc(&r, "/a/b?x=1"), "https://new.example/a/b/");
    assert_eq!(loc(&r, "/a/"), "https://new.example/a/");
    r.drop_query = false;
    assert_eq!(loc(&r, "/a?x"), "https://new.example/a?x/", "as HAProxy: the slash goes after the query");
}

#[test]
fn literal_prefix_slash_redirects_to_the_same_url() {
    assert_eq!(loc(&redirect(RedirectKind::Prefix, "/"), "/a?b"), "/a?b");
}

#[test]
fn prefix_takes_the_path_of_an_absolute_uri() {
    let r = redirect(RedirectKind::Prefix, "https://new.example");
    assert_eq!(loc(&r, "http://old.example:8080/p?q"), "https://new.example/p?q");
    assert_eq!(loc(&r, "http://old.example"), "https://new.example/");
    assert_eq!(loc(&r, "*"), "https://new.example/");
    assert_eq!(loc(&r, ""), "https://new.example/");
    assert_eq!(loc(&r, "old.example:443"), "https://new.example/");
}

#[test]
fn scheme_uses_the_host_header() {
    let r = redirect(RedirectKind::Scheme, "https");
    assert_eq!(loc(&r, "/a?b=1"), "https://example.com/a?b=1");
    let no_host = RedirectRequest { target: b"/a", host: None, body_pending: false };
    assert_eq!(location(&r, &no_host, &lf).unwrap(), b"https:///a");
    let mut r = r;
    r.drop_query = true;
    r.append_slash = true;
    assert_eq!(loc(&r, "/a?b=1"), "https://example.com/a/");
}

#[test]
fn redirect_response_by_code() {
    for (code, why, cache) in [
        (301, "Moved Permanently", false),
        (302, "Found", true),
        (303, "See Other", true),
        (307, "Temporary Redirect", true),
        (308, "Permanent Redirect", false),
    ] {
        let mut r = redirect(RedirectKind::Location, "/new");
        r.code = code;
        let resp = redirect_response(&r, &req("/"), &lf).unwrap();
        let cc = if cache { "cache-control: no-cache\r\n" } else { "" };
        assert_eq!(text(&resp), format!("HTTP/1.1 {code} {why}\r\ncontent-length: 0\r\nlocation: /new\r\n{cc}\r\n"));
        assert!(!resp.close);
    }
}

#[test]
fn redirect_cookies() {
    let mut r = redirect(RedirectKind::Location, "/");
    r.cookie = Some(RedirectCookie::Set { name: "SEEN".into(), value: Some("1".into()) });
    assert!(text(&redirect_response(&r, &req("/"), &lf).unwrap()).ends_with("cache-control: no-cache\r\nset-cookie: SEEN=1; path=/;\r\n\r\n"));
    r.cookie = Some(RedirectCookie::Set { name: "SEEN".into(), value: None });
    assert!(text(&redirect_response(&r, &req("/"), &lf).unwrap()).contains("set-cookie: SEEN; path=/;\r\n"));
    r.cookie = Some(RedirectCookie::Clear { name: "OLD".into() });
    assert!(text(&redirect_response(&r, &req("/"), &lf).unwrap()).contains("set-cookie: OLD=; path=/; Max-Age=0;\r\n"));
}

#[test]
fn redirect_closes_when_the_body_is_still_coming() {
    let r = redirect(RedirectKind::Location, "/x");
    let pending = RedirectRequest { target: b"/", host: None, body_pending: true };
    let resp = redirect_response(&r, &pending, &lf).unwrap();
    assert_eq!(text(&resp), "HTTP/1.1 302 Found\r\nconnection: close\r\ncontent-length: 0\r\nlocation: /x\r\ncache-control: no-cache\r\n\r\n");
    assert!(resp.close);
}

#[test]
fn location_never_carries_a_line_break() {
    let mut r = redirect(RedirectKind::Location, "");
    r.target = RedirectTarget::Format(fmt("/a\r\nSet-Cookie: x=1"));
    assert!(text(&redirect_response(&r, &req("/"), &lf).unwrap()).contains("location: /aSet-Cookie: x=1\r\n"));
}

#[test]
fn odd_inputs_do_not_panic() {
    for data in
        [&b"\n"[..], b"\r\n", b"HTTP/1.1", b"HTTP/1.1 ", b"HTTP/1.1 20", b"HTTP/1.1 200x", b"HTTP/1.1 200 OK\n:\n\n", b"HTTP/1.1 200 OK\r\n\r", b"\xff\xfe"]
    {
        let _ = ErrorPage::parse(data);
    }
    for t in ["", "*", "h", "h:", "h:/", "h://", "/?", "?", "http://h?x"] {
        for kind in [RedirectKind::Prefix, RedirectKind::Scheme] {
            let mut r = redirect(kind, "x");
            r.drop_query = true;
            r.append_slash = true;
            let _ = redirect_response(&r, &req(t), &lf);
        }
    }
}
