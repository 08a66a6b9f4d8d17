//! Cookie persistence over header bytes: which server a request's cookie names, what the server
//! sees of it, and what the response gains or loses.

use super::*;
use crate::balance::ServerAddr;
use crate::l7::edit::{ConnHeader, EditedView, Edits};
use crate::l7::h1;

/// A fixed "now" (seconds since the epoch) for the date tests.
const NOW: u32 = 1_700_000_000;

fn servers(n: usize) -> crate::balance::ServerList {
    (0..n)
        .map(|i| std::sync::Arc::new(ServerState::new(&format!("s{}", i + 1), i as u32 + 1, ServerAddr::Inet(([127, 0, 0, 1], 1).into()), 1, false)))
        .collect()
}

fn persistence(mode: Option<CookieMode>, f: impl FnOnce(&mut CookiePersistence)) -> Persistence {
    let mut c = CookiePersistence { name: "SRV".into(), mode, ..Default::default() };
    f(&mut c);
    Persistence::compile(&c, false, vec![Some("s1".into()), Some("s2".into()), None])
}

fn insert() -> Persistence {
    persistence(Some(CookieMode::Insert), |_| {})
}

/// Runs `f` on the parsed message `raw` (a request or a response head).
fn with_msg<R>(raw: &str, f: impl FnOnce(&EditedView<'_>) -> R) -> R {
    let buf = raw.as_bytes();
    let head = if raw.starts_with("HTTP/") { h1::parse_response(buf, &h1::Limits::default()) } else { h1::parse_request(buf, &h1::Limits::default()) };
    let head = head.unwrap().expect("a complete head");
    f(&EditedView::new(buf, &head, &Edits::new()))
}

/// `raw` written with `edits` applied.
fn edited(raw: &str, edits: impl IntoIterator<Item = Edit>) -> String {
    with_msg(raw, |view| {
        let mut view = view.clone();
        for e in edits {
            view.apply(&e);
        }
        let mut out = Vec::new();
        view.write(!raw.starts_with("HTTP/"), ConnHeader::Preserve, &mut out);
        String::from_utf8(out).unwrap()
    })
}

/// The request `GET /` with `cookie` lines.
fn req(cookies: &[&str]) -> String {
    let mut r = String::from("GET / HTTP/1.1\r\nHost: h\r\n");
    for c in cookies {
        r.push_str(&format!("Cookie: {c}\r\n"));
    }
    r + "\r\n"
}

/// What `p` makes of `raw` with `servers`: the visit, and the request the server receives.
fn request(p: &Persistence, servers: &crate::balance::ServerList, raw: &str) -> (Visit, String) {
    let (visit, edit) = with_msg(raw, |v| p.on_request(servers, v, NOW));
    (visit, edited(raw, edit))
}

fn server_of(p: &Persistence, cookies: &[&str]) -> Option<usize> {
    request(p, &servers(3), &req(cookies)).0.server
}

/// The cookie part of what the server receives for `cookies`.
fn forwarded(p: &Persistence, cookies: &[&str]) -> Vec<String> {
    let out = request(p, &servers(3), &req(cookies)).1;
    out.lines().filter_map(|l| l.strip_prefix("Cookie: ")).map(str::to_owned).collect()
}

#[test]
fn pairs_follow_haproxy_on_blanks_quotes_and_delimiters() {
    let h = b"a=1;  b = two words ;c=\"x;y\", $Path=\"/\";flag; ;d=";
    let got: Vec<(String, Option<String>)> =
        pairs(h, true).map(|p| (String::from_utf8_lossy(&h[p.name]).into_owned(), p.value.map(|v| String::from_utf8_lossy(&h[v]).into_owned()))).collect();
    let want = [("a", Some("1")), ("b", Some("two words")), ("c", Some("\"x;y\"")), ("$Path", Some("\"/\"")), ("flag", None), ("d", Some(""))];
    assert_eq!(got, want.map(|(n, v)| (n.to_owned(), v.map(str::to_owned))));
    let set: Vec<_> = pairs(b"SRV=a, b; Expires=Thu, 01 Jan", false).collect();
    assert_eq!(set.len(), 1, "a Set-Cookie header sets one cookie");
    assert_eq!(pairs(b"", true).count(), 0);
}

#[test]
fn the_cookie_names_its_server_among_other_cookies() {
    let p = insert();
    assert_eq!(server_of(&p, &["SRV=s2"]), Some(1));
    assert_eq!(server_of(&p, &["a=1; SRV=s1; b=2"]), Some(0));
    assert_eq!(server_of(&p, &["a=1, SRV = s2 ,b=2"]), Some(1), "commas separate too, blanks around '=' are not the value's");
    assert_eq!(server_of(&p, &["a=1", "b=2; SRV=s2"]), Some(1), "in a later Cookie header");
    assert_eq!(server_of(&p, &["srv=s1"]), None, "names are case-sensitive");
    assert_eq!(server_of(&p, &["SRV=S1"]), None, "values too");
    assert_eq!(server_of(&p, &["SRV="]), None, "an empty value names nobody, not even a server without a value");
    assert_eq!(server_of(&p, &["SRV=nobody; SRV=s2"]), Some(1), "an unknown value does not stop the search");
    assert_eq!(server_of(&p, &["SRV=s1; SRV=s2"]), Some(0), "the first that names a server wins");
    assert_eq!(server_of(&p, &[]), None);
}

#[test]
fn down_and_maintenance_servers_are_skipped_unless_option_persist() {
    let p = insert();
    let s = servers(3);
    let get = |p: &Persistence| request(p, &s, &req(&["SRV=s1"])).0.server;
    s[0].set_up(false);
    assert_eq!(get(&p), None);
    s[0].set_up(true);
    s[0].set_admin(AdminState::Maint);
    assert_eq!(get(&p), None);
    s[0].set_admin(AdminState::Drain);
    assert_eq!(get(&p), Some(0), "draining keeps persistent clients");
    s[0].set_admin(AdminState::Ready);
    s[0].weight.store(0, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(get(&p), Some(0), "so does weight 0");
    s[0].set_up(false);
    let persist = Persistence { persist: true, ..insert() };
    assert_eq!(get(&persist), Some(0), "option persist");
}

#[test]
fn servers_sharing_a_value_take_it_in_declaration_order() {
    let c = CookiePersistence { name: "SRV".into(), mode: Some(CookieMode::Insert), ..Default::default() };
    let p = Persistence::compile(&c, false, vec![None, Some("app".into()), Some("app".into())]);
    let s = servers(3);
    assert_eq!(request(&p, &s, &req(&["SRV=app"])).0.server, Some(1));
    s[1].set_up(false);
    assert_eq!(request(&p, &s, &req(&["SRV=app"])).0.server, Some(2), "the next usable one");
}

#[test]
fn insert_indirect_removes_the_cookie_from_the_request() {
    let p = persistence(Some(CookieMode::Insert), |c| c.indirect = true);
    assert_eq!(forwarded(&p, &["a=1; SRV=s1; b=2"]), ["a=1; b=2"]);
    assert_eq!(forwarded(&p, &["SRV=s1; a=1"]), ["a=1"]);
    assert_eq!(forwarded(&p, &["a=1;SRV=s1"]), ["a=1"]);
    assert_eq!(forwarded(&p, &["a=1;SRV=s1;b=2;c=3"]), ["a=1; b=2;c=3"], "one blank where a cookie went, as HAProxy");
    assert_eq!(forwarded(&p, &["a=1, SRV=s1 ,b=2"]), ["a=1, b=2"], "with the delimiter of the pair after it");
    assert_eq!(forwarded(&p, &["SRV=s1; $Path=\"/\"; a=\"x;y\"; $Path=\"/a\""]), ["a=\"x;y\"; $Path=\"/a\""], "with its own attributes");
    assert_eq!(forwarded(&p, &["SRV=unknown; a=1"]), ["a=1"], "whatever its value");
    assert_eq!(forwarded(&p, &["SRV=s1"]), Vec::<String>::new(), "a header left without cookies goes");
    assert_eq!(forwarded(&p, &["$Version=1; SRV=s1"]), Vec::<String>::new());
    assert_eq!(forwarded(&p, &["a=1", "SRV=s2", "b=2"]), ["a=1", "b=2"]);
    assert_eq!(forwarded(&p, &["a=1;  b=2 "]), ["a=1;  b=2"], "untouched without the cookie");
    let (_, edit) = with_msg(&req(&["a=1"]), |v| p.on_request(&servers(3), v, NOW));
    assert!(edit.is_none(), "no edit at all");
}

#[test]
fn other_modes_leave_the_cookie_to_the_server() {
    for p in [insert(), persistence(Some(CookieMode::Rewrite), |_| {}), persistence(None, |c| c.indirect = true)] {
        assert_eq!(forwarded(&p, &["a=1; SRV=s1"]), ["a=1; SRV=s1"], "{:?}", p.mode);
    }
}

#[test]
fn prefix_mode_reads_and_strips_the_server_part() {
    let p = persistence(Some(CookieMode::Prefix), |c| c.name = "JSESSIONID".into());
    assert_eq!(server_of(&p, &["JSESSIONID=s2~abc"]), Some(1));
    assert_eq!(forwarded(&p, &["lang=fr; JSESSIONID=s2~abc~def; x=1"]), ["lang=fr; JSESSIONID=abc~def; x=1"]);
    assert_eq!(forwarded(&p, &["JSESSIONID=zz~abc"]), ["JSESSIONID=abc"], "stripped even when naming no server");
    assert_eq!(server_of(&p, &["JSESSIONID=zz~abc"]), None);
    assert_eq!(forwarded(&p, &["JSESSIONID=abc"]), ["JSESSIONID=abc"], "no prefix, nothing to strip");
    assert_eq!(server_of(&p, &["JSESSIONID=s1"]), Some(0), "a value without '~' is all server part");
}

#[test]
fn dates_encode_as_haproxy_does() {
    assert_eq!(&encode_date(0), b"AAAAA");
    assert_eq!(&encode_date(1), b"AAAAB");
    assert_eq!(&encode_date((1 << 30) - 1), b"/////");
    let unit = (NOW + 3) >> 2;
    assert_eq!(decode_date(&encode_date(unit)), Some(unit << 2));
    assert_eq!(decode_date(b"AAAAA"), None, "zero is no date");
    assert_eq!(decode_date(b"AA=AA"), None);
    assert_eq!(decode_date(b"AAAA"), None);
}

/// `SRV=s1|LAST[|FIRST]` with dates `ago` seconds before NOW (negative: in the future).
fn dated(last_ago: i64, first_ago: Option<i64>) -> String {
    let enc = |ago: i64| String::from_utf8(encode_date(((i64::from(NOW) - ago) >> 2) as u32).to_vec()).unwrap();
    match first_ago {
        Some(f) => format!("SRV=s1|{}|{}", enc(last_ago), enc(f)),
        None => format!("SRV=s1|{}", enc(last_ago)),
    }
}

#[test]
fn maxidle_and_maxlife_ignore_old_and_future_cookies() {
    let p = persistence(Some(CookieMode::Insert), |c| {
        c.maxidle = Some(std::time::Duration::from_secs(600));
        c.maxlife = Some(std::time::Duration::from_secs(3600));
    });
    assert_eq!(server_of(&p, &[&dated(60, Some(1200))]), Some(0));
    assert_eq!(server_of(&p, &[&dated(700, Some(1200))]), None, "idle too long");
    assert_eq!(server_of(&p, &[&dated(60, Some(4000))]), None, "too old");
    assert_eq!(server_of(&p, &[&dated(-2 * 86400, None)]), None, "from the future");
    assert_eq!(server_of(&p, &["SRV=s1"]), Some(0), "an undated cookie is accepted (and dated in the response)");
    assert_eq!(server_of(&p, &["SRV=s1|-.-.-"]), Some(0), "an unreadable date is no date");
    let lax = insert();
    assert_eq!(server_of(&lax, &[&dated(100_000, Some(1_000_000))]), Some(0), "without maxidle/maxlife dates are not checked");
}

/// The response `raw` to a request with `cookies` served by server `srv`, as the client gets it.
fn respond(p: &Persistence, cookies: &[&str], method: &str, srv: usize, raw: &str) -> String {
    let r = req(cookies).replacen("GET", method, 1);
    let list = servers(3);
    let (visit, _) = with_msg(&r, |v| p.on_request(&list, v, NOW));
    let edits = with_msg(raw, |v| p.on_response(&visit, &list, srv, v, NOW));
    edited(raw, edits)
}

fn set_cookies(res: &str) -> Vec<&str> {
    res.lines().filter_map(|l| l.strip_prefix("set-cookie: ").or_else(|| l.strip_prefix("Set-Cookie: "))).collect()
}

const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

#[test]
fn insert_mode_sets_the_cookie_unless_the_client_has_the_right_one() {
    let p = insert();
    assert_eq!(set_cookies(&respond(&p, &[], "GET", 1, OK)), ["SRV=s2; path=/"]);
    assert_eq!(set_cookies(&respond(&p, &["SRV=s2"], "GET", 1, OK)), Vec::<&str>::new());
    assert_eq!(set_cookies(&respond(&p, &["SRV=s1"], "GET", 1, OK)), ["SRV=s2; path=/"], "redispatched: the client learns its new server");
    assert_eq!(set_cookies(&respond(&p, &[], "GET", 2, OK)), ["SRV=; Expires=Thu, 01-Jan-1970 00:00:01 GMT; path=/"], "no value: cleared");
    let interim = "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n";
    assert_eq!(set_cookies(&respond(&p, &[], "GET", 1, interim)), Vec::<&str>::new());
}

#[test]
fn insert_mode_replaces_the_servers_own_cookie_unless_preserve() {
    let res = "HTTP/1.1 200 OK\r\nSet-Cookie: SRV=app; path=/x\r\nSet-Cookie: other=1\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(set_cookies(&respond(&insert(), &[], "GET", 0, res)), ["other=1", "SRV=s1; path=/"]);
    let preserve = persistence(Some(CookieMode::Insert), |c| c.preserve = true);
    assert_eq!(set_cookies(&respond(&preserve, &[], "GET", 0, res)), ["SRV=app; path=/x", "other=1"], "the server's word stands (logout)");
    assert_eq!(set_cookies(&respond(&preserve, &[], "GET", 0, OK)), ["SRV=s1; path=/"]);
}

#[test]
fn inserted_cookies_carry_their_attributes() {
    let p = persistence(Some(CookieMode::Insert), |c| {
        c.domains = vec![".a.example".into(), ".b.example".into()];
        c.httponly = true;
        c.secure = true;
        c.attrs = vec!["SameSite=Strict".into(), "Partitioned".into()];
    });
    assert_eq!(
        set_cookies(&respond(&p, &[], "GET", 0, OK)),
        ["SRV=s1; path=/; domain=.a.example; domain=.b.example; HttpOnly; Secure; SameSite=Strict; Partitioned"]
    );
}

#[test]
fn postonly_inserts_in_answers_to_post_only() {
    let p = persistence(Some(CookieMode::Insert), |c| c.postonly = true);
    assert_eq!(set_cookies(&respond(&p, &[], "GET", 0, OK)), Vec::<&str>::new());
    assert_eq!(set_cookies(&respond(&p, &[], "POST", 0, OK)), ["SRV=s1; path=/"]);
}

#[test]
fn inserted_cookies_are_dated_and_refreshed_with_maxidle_and_maxlife() {
    let p = persistence(Some(CookieMode::Insert), |c| {
        c.maxidle = Some(std::time::Duration::from_secs(600));
        c.maxlife = Some(std::time::Duration::from_secs(3600));
    });
    let now = String::from_utf8(encode_date((NOW + 3) >> 2).to_vec()).unwrap();
    assert_eq!(set_cookies(&respond(&p, &[], "GET", 0, OK)), [format!("SRV=s1|{now}|{now}; path=/")]);
    // A valid cookie seen a minute ago: the last-seen date moves, the first stays.
    let cookie = dated(60, Some(1200));
    let first = cookie.rsplit('|').next().unwrap().to_owned();
    assert_eq!(set_cookies(&respond(&p, &[&cookie], "GET", 0, OK)), [format!("SRV=s1|{now}|{first}; path=/")]);
    // Seen in this very 4-second slot: nothing to refresh.
    let fresh = format!("SRV=s1|{now}|{first}");
    assert_eq!(set_cookies(&respond(&p, &[&fresh], "GET", 0, OK)), Vec::<&str>::new());
    // Dates dropped when the configuration no longer asks for them.
    assert_eq!(set_cookies(&respond(&insert(), &[&cookie], "GET", 0, OK)), ["SRV=s1; path=/"]);
}

#[test]
fn rewrite_mode_replaces_the_value_the_server_set() {
    let p = persistence(Some(CookieMode::Rewrite), |_| {});
    let res = "HTTP/1.1 200 OK\r\nSet-Cookie: SRV = app ; Path=/; Expires=Thu, 01 Jan 2099 00:00:00 GMT\r\nSet-Cookie: SRVX=1\r\n\r\n";
    assert_eq!(set_cookies(&respond(&p, &[], "GET", 1, res)), ["SRV = s2 ; Path=/; Expires=Thu, 01 Jan 2099 00:00:00 GMT", "SRVX=1"]);
    assert_eq!(
        set_cookies(&respond(&p, &[], "GET", 2, res)),
        ["SRV = app ; Path=/; Expires=Thu, 01 Jan 2099 00:00:00 GMT", "SRVX=1"],
        "a server without a value leaves it"
    );
    assert_eq!(set_cookies(&respond(&p, &[], "GET", 1, OK)), Vec::<&str>::new(), "nothing set, nothing added");
}

#[test]
fn prefix_mode_prefixes_the_value_the_server_set() {
    let p = persistence(Some(CookieMode::Prefix), |c| c.name = "JSESSIONID".into());
    let res = "HTTP/1.1 200 OK\r\nSet-Cookie: JSESSIONID=abc; path=/\r\n\r\n";
    assert_eq!(set_cookies(&respond(&p, &[], "GET", 0, res)), ["JSESSIONID=s1~abc; path=/"]);
    assert_eq!(set_cookies(&respond(&p, &["JSESSIONID=s1~abc"], "GET", 0, res)), ["JSESSIONID=s1~abc; path=/"], "updates always reach the client");
}

#[test]
fn indirect_hides_the_servers_cookie_from_a_client_that_came_with_it() {
    let p = persistence(None, |c| c.indirect = true);
    let res = "HTTP/1.1 200 OK\r\nSet-Cookie: SRV=s1\r\n\r\n";
    assert_eq!(set_cookies(&respond(&p, &["SRV=s1"], "GET", 0, res)), Vec::<&str>::new());
    assert_eq!(set_cookies(&respond(&p, &[], "GET", 0, res)), ["SRV=s1"], "a new client gets it");
}

#[test]
fn nocache_adds_cache_control_private_to_cacheable_responses_only() {
    let p = persistence(Some(CookieMode::Insert), |c| c.nocache = true);
    let private = |method: &str, res: &str| respond(&p, &[], method, 0, res).contains("\r\ncache-control: private\r\n");
    let with = |h: &str| format!("HTTP/1.1 200 OK\r\n{h}\r\nContent-Length: 0\r\n\r\n");
    assert!(private("GET", &with("Cache-Control: max-age=60")));
    assert!(private("HEAD", &with("Expires: Thu, 01 Jan 2099 00:00:00 GMT")));
    assert!(private("GET", &with("ETag: \"x\"")));
    assert!(private("GET", &with("Last-Modified: Thu, 01 Jan 2015 00:00:00 GMT")));
    assert!(private("POST", &with("Cache-Control: public, max-age=60")), "public makes any response cacheable");
    assert!(private("GET", &with("Cache-Control: max-age=0, s-maxage=60")), "s-maxage overrides max-age=0");
    assert!(!private("GET", OK), "neither expiration nor validator: no cache stores it");
    assert!(!private("POST", &with("Cache-Control: max-age=60")));
    assert!(!private("GET", &with("Cache-Control: private, max-age=60")));
    assert!(!private("GET", &with("Cache-Control: max-age=0")));
    assert!(!private("GET", &with("Cache-Control: no-store\r\nETag: \"x\"")));
    assert!(!private("GET", &with("Pragma: no-cache\r\nETag: \"x\"")));
    assert!(!respond(&p, &["SRV=s1"], "GET", 0, &with("Cache-Control: max-age=60")).contains("private"), "no cookie inserted");
}

#[test]
fn set_fields_rewrites_and_removes_fields_in_order() {
    let raw = "GET / HTTP/1.1\r\nCookie: a\r\nHost: h\r\ncookie: b\r\nCookie: c\r\n\r\n";
    let e = Edit::SetFields { name: "cookie".into(), values: vec![Some(b"A".to_vec()), None] };
    assert_eq!(edited(raw, [e]), "GET / HTTP/1.1\r\nCookie: A\r\nHost: h\r\nCookie: c\r\n\r\n");
}

/// The routing table of `cfg` and the warnings compiling it gave.
fn compiled(cfg: &str) -> (crate::route::RouteTable, Vec<String>) {
    let mut diags = crate::config::diag::Diags::default();
    let rt = crate::route::RouteTable::compile_with(&crate::config::testing::ok(cfg), &mut diags).unwrap();
    (rt, diags.warnings().map(|d| d.msg.clone()).collect())
}

#[test]
fn the_routing_table_carries_cookie_persistence_in_mode_http_only() {
    let be = |mode: &str, cookie: &str| format!("backend b\n  mode {mode}\n  cookie {cookie}\n  server s1 127.0.0.1:1 cookie a\n  server s2 127.0.0.1:2\n");
    let (rt, warnings) = compiled(&be("http", "SRV insert"));
    let p = rt.backends[0].cookie.as_ref().expect("compiled");
    assert_eq!(p.values, [Some("a".to_owned()), None]);
    assert!(warnings.is_empty(), "{warnings:?}");
    let (rt, warnings) = compiled(&be("tcp", "SRV insert"));
    assert!(rt.backends[0].cookie.is_none());
    assert!(warnings.iter().any(|w| w.contains("needs mode http")), "{warnings:?}");
    let (_, warnings) = compiled(&be("http", "SRV insert dynamic"));
    assert!(warnings.iter().any(|w| w.contains("dynamic cookies are parsed but not implemented")), "{warnings:?}");
    let (rt, _) = compiled(&format!("{}  option persist\n", be("http", "SRV")));
    assert!(rt.backends[0].cookie.as_ref().unwrap().persist);
}
