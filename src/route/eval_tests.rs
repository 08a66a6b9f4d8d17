//! Conditions, ACLs, fetches and converters evaluated against a test stream: configuration text in,
//! `Tri` or sample out.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;

use super::capture::Captured;
use super::eval::{CompiledCond, CompiledSample, HttpMsg, Sample, StreamCtx, Tri, implemented_converters, implemented_fetches};
use super::vars::{ProcVars, VarConds, VarStore, Vars};
use crate::balance::{AdminState, Algorithm, BackendState, BalanceOpts, PickKey, ServerAddr, ServerState};
use crate::config::diag::Span;
use crate::config::expr::{parse_acl, parse_condition, parse_sample};
use crate::config::lex::split_words;
use crate::config::model::{AclDecl, User, UserGroup, UserPassword, Userlist};
use crate::l4::clienthello::tests::{build_hello, openssl_hello, sni_ext};

#[derive(Debug)]
struct FirstUsable;

impl Algorithm for FirstUsable {
    fn pick(&self, servers: &crate::balance::ServerList, eligible: &dyn Fn(usize, &ServerState) -> bool, _key: &PickKey) -> Option<usize> {
        (0..servers.len()).find(|&i| eligible(i, &servers[i]))
    }
}

struct Ctx {
    src: Option<SocketAddr>,
    dst: Option<SocketAddr>,
    buf: Vec<u8>,
    fin: bool,
    backends: Vec<BackendState>,
    current: Option<usize>,
    req: Option<Msg>,
    res: Option<Msg>,
    userlists: Vec<Userlist>,
    vars: Option<(std::cell::RefCell<Vars>, ProcVars)>,
    captures: Option<std::cell::RefCell<Captured>>,
}

/// An HTTP message parsed from its HTTP/1 text: the start line, headers, a blank line, the body.
#[derive(Default)]
struct Msg {
    method: Vec<u8>,
    uri: Vec<u8>,
    version: Vec<u8>,
    status: u16,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    body: Option<Vec<u8>>,
    first: bool,
}

impl Msg {
    fn parse(raw: &[u8]) -> Msg {
        let (head, body) = match raw.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(i) => (&raw[..i], Some(raw[i + 4..].to_vec())),
            None => (raw, None),
        };
        let mut lines = head.split(|&c| c == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
        let start: Vec<&[u8]> = lines.next().unwrap().splitn(3, |&c| c == b' ').collect();
        let mut m = Msg { body, first: true, ..Msg::default() };
        if start[0].starts_with(b"HTTP/") {
            m.version = start[0].to_vec();
            m.status = std::str::from_utf8(start[1]).unwrap().parse().unwrap();
        } else {
            (m.method, m.uri, m.version) = (start[0].to_vec(), start[1].to_vec(), start[2].to_vec());
        }
        for l in lines.filter(|l| !l.is_empty()) {
            let colon = l.iter().position(|&c| c == b':').unwrap();
            let v = &l[colon + 1..];
            let start = v.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(v.len());
            let end = v.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(start, |e| e + 1);
            m.headers.push((l[..colon].to_vec(), v[start..end].to_vec()));
        }
        m
    }
}

impl HttpMsg for Msg {
    fn method(&self) -> &[u8] {
        &self.method
    }
    fn uri(&self) -> &[u8] {
        &self.uri
    }
    fn version(&self) -> &[u8] {
        &self.version
    }
    fn status(&self) -> u16 {
        self.status
    }
    fn header_count(&self) -> usize {
        self.headers.len()
    }
    fn header(&self, i: usize) -> (&[u8], &[u8]) {
        self.headers.get(i).map_or((&[][..], &[][..]), |(n, v)| (n.as_slice(), v.as_slice()))
    }
    fn body(&self) -> Option<&[u8]> {
        self.body.as_deref()
    }
    fn first_request(&self) -> bool {
        self.first
    }
}

impl Ctx {
    fn new() -> Ctx {
        Ctx {
            src: Some("10.1.2.3:40000".parse().unwrap()),
            dst: Some("192.0.2.1:443".parse().unwrap()),
            buf: Vec::new(),
            fin: false,
            backends: vec![backend("be_app", 3), backend("be_empty", 0)],
            current: Some(0),
            req: None,
            res: None,
            userlists: Vec::new(),
            vars: None,
            captures: None,
        }
    }
    /// A stream with variables, `vars` set in it first (`txn.n=int:3`, `txn.s=str:ab`).
    fn with_vars(vars: &[(&str, Sample)]) -> Ctx {
        let c = Ctx { vars: Some((Default::default(), ProcVars::default())), ..Ctx::new() };
        for (name, v) in vars {
            assert!(c.vars().unwrap().set(&crate::l4::action::parse_var_name(name).unwrap(), v.clone(), VarConds::default()));
        }
        c
    }
    /// A stream with the request in `raw`.
    fn http(raw: &str) -> Ctx {
        Ctx { req: Some(Msg::parse(raw.as_bytes())), ..Ctx::new() }
    }
    fn with_response(mut self, raw: &str) -> Ctx {
        self.res = Some(Msg::parse(raw.as_bytes()));
        self
    }
    fn with_buf(buf: &[u8]) -> Ctx {
        Ctx { buf: buf.to_vec(), ..Ctx::new() }
    }
    fn finalized(mut self) -> Ctx {
        self.fin = true;
        self
    }
}

fn backend(name: &str, n: u32) -> BackendState {
    let servers =
        (0..n).map(|i| ServerState::new(&format!("s{i}"), i + 1, ServerAddr::Inet(format!("127.0.0.1:{}", 8000 + i).parse().unwrap()), 1, false)).collect();
    BackendState::new(name, servers, Box::new(FirstUsable), BalanceOpts::default())
}

impl StreamCtx for Ctx {
    fn src(&self) -> Option<SocketAddr> {
        self.src
    }
    fn dst(&self) -> Option<SocketAddr> {
        self.dst
    }
    fn frontend_name(&self) -> &str {
        "fe_main"
    }
    fn frontend_id(&self) -> u32 {
        7
    }
    fn backend(&self, name: &str) -> Option<&BackendState> {
        self.backends.iter().find(|b| b.name == name)
    }
    fn current_backend(&self) -> Option<&BackendState> {
        self.backends.get(self.current?)
    }
    fn current_backend_id(&self) -> Option<u32> {
        self.current.map(|i| i as u32 + 3)
    }
    fn req_buffer(&self) -> &[u8] {
        &self.buf
    }
    fn req_final(&self) -> bool {
        self.fin
    }
    fn http_request(&self) -> Option<&dyn HttpMsg> {
        self.req.as_ref().map(|m| m as &dyn HttpMsg)
    }
    fn http_response(&self) -> Option<&dyn HttpMsg> {
        self.res.as_ref().map(|m| m as &dyn HttpMsg)
    }
    fn userlist(&self, name: &str) -> Option<&Userlist> {
        self.userlists.iter().find(|u| u.name == name)
    }
    fn vars(&self) -> Option<VarStore<'_>> {
        self.vars.as_ref().map(|(stream, proc)| VarStore { stream, proc })
    }
    fn captures(&self) -> Option<&std::cell::RefCell<Captured>> {
        self.captures.as_ref()
    }
}

fn cond_with(text: &str, acls: &[AclDecl]) -> CompiledCond {
    let words = split_words(text, &HashMap::new()).unwrap();
    let c = parse_condition(&words).unwrap_or_else(|e| panic!("{text}: {e}"));
    CompiledCond::compile(&c, acls).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn eval(text: &str, ctx: &Ctx) -> Tri {
    cond_with(text, &[]).eval(ctx)
}

fn decl(name: &str, body: &str) -> AclDecl {
    let words = split_words(body, &HashMap::new()).unwrap();
    AclDecl { name: name.into(), body: parse_acl(&words).unwrap_or_else(|e| panic!("{body}: {e}")), span: Span::new("test".into(), 1) }
}

fn sample(text: &str, ctx: &Ctx) -> Result<Option<Sample>, ()> {
    CompiledSample::compile(&parse_sample(text).unwrap_or_else(|e| panic!("{text}: {e}"))).unwrap_or_else(|e| panic!("{text}: {e}")).eval(ctx)
}

fn str_of(text: &str) -> String {
    match sample(text, &Ctx::new()) {
        Ok(Some(Sample::Str(s))) => s,
        other => panic!("{text}: {other:?}"),
    }
}

fn int_of(text: &str) -> i64 {
    match sample(text, &Ctx::new()) {
        Ok(Some(Sample::Int(n))) => n,
        other => panic!("{text}: {other:?}"),
    }
}

use Tri::{Miss, No, Yes};

// Match methods.

#[test]
fn found_and_bool() {
    let c = Ctx::new();
    assert_eq!(eval("if { src -m found }", &c), Yes);
    assert_eq!(eval("if { env(SLUICED_SURELY_UNSET_VAR) -m found }", &c), No);
    assert_eq!(eval("if { always_true }", &c), Yes);
    assert_eq!(eval("if { int(0) -m bool }", &c), No);
    assert_eq!(eval("if { int(-2) -m bool }", &c), Yes);
}

#[test]
fn int_operators_and_ranges() {
    let c = Ctx::new();
    for (acl, want) in [
        ("dst_port 443", Yes),
        ("dst_port eq 80", No),
        ("dst_port gt 442", Yes),
        ("dst_port gt 443", No),
        ("dst_port ge 443", Yes),
        ("dst_port lt 443", No),
        ("dst_port le 443", Yes),
        ("dst_port 1:100 400:500", Yes),
        ("dst_port 1:100 444:", No),
        ("dst_port :443", Yes),
        ("src_port 80 40000", Yes),
    ] {
        assert_eq!(eval(&format!("if {{ {acl} }}"), &c), want, "{acl}");
    }
}

#[test]
fn string_methods() {
    let c = Ctx::new();
    for (acl, want) in [
        ("str(/api/v1/Users) /api/v1/Users", Yes),
        ("str(/api/v1/Users) /api/v1/users", No),
        ("str(/api/v1/Users) -i /API/V1/users", Yes),
        ("str(/api/v1/Users) -m beg /api/", Yes),
        ("str(/api/v1/Users) -m beg /v1", No),
        ("str(/api/v1/Users) -m end Users", Yes),
        ("str(/api/v1/Users) -m end -i -m end users", Yes),
        ("str(/api/v1/Users) -m sub v1/U", Yes),
        ("str(/api/v1/Users) -m sub -i V1/u", Yes),
        ("str(/api/v1/Users) -m sub v2", No),
        ("str(/api/v1/Users) -m reg ^/api/v[0-9]+/", Yes),
        ("str(/api/v1/Users) -m reg users$", No),
        ("str(/api/v1/Users) -i -m reg users$", Yes),
        ("str(/api/v1/Users) -m len 13", Yes),
        ("str(/api/v1/Users) -m len gt 13", No),
        ("str(/img/logo.png?x=1) -m dir img", Yes),
        ("str(/img/logo.png?x=1) -m dir /img/", Yes),
        ("str(/img/logo.png?x=1) -m dir im", No),
        ("str(/img/logo.png?x=1) -m dir logo.png", Yes),
        ("str(www.Example.com:8080) -m dom example.com", No),
        ("str(www.Example.com:8080) -i -m dom example.com", Yes),
        ("str(www.Example.com:8080) -i -m dom .example.", Yes),
        ("str(www.Example.com:8080) -i -m dom ample.com", No),
        ("str(www.example.com) -m dom www", Yes),
        ("str(abc) x y abc", Yes),
        ("str(abc) -m found", Yes),
    ] {
        assert_eq!(eval(&format!("if {{ {acl} }}"), &c), want, "{acl}");
    }
}

#[test]
fn many_exact_strings_use_the_set() {
    let c = Ctx::new();
    let many: String = (0..50).map(|i| format!("host{i}.example.com ")).collect();
    assert_eq!(eval(&format!("if {{ str(host42.example.com) {many} }}"), &c), Yes);
    assert_eq!(eval(&format!("if {{ str(HOST42.example.COM) -i {many} }}"), &c), Yes);
    assert_eq!(eval(&format!("if {{ str(HOST42.example.COM) {many} }}"), &c), No);
    assert_eq!(eval(&format!("if {{ str(host50.example.com) -i {many} }}"), &c), No);
    let long = "a".repeat(300);
    assert_eq!(eval(&format!("if {{ str({}) -i {many} {long} }}", long.to_uppercase()), &c), Yes);
}

#[test]
fn binary_matches() {
    let c = Ctx::with_buf(b"\x16\x03\x01\x02\x00");
    assert_eq!(eval("if { req.payload(0,3) -m bin 160301 }", &c), Yes);
    assert_eq!(eval("if { req.payload(0,3) -m bin 160303 160301 }", &c), Yes);
    assert_eq!(eval("if { req.payload(0,2) -m bin 1603 }", &c), Yes);
    assert_eq!(eval("if { req.payload(0,2) -m bin 1703 }", &c), No);
}

#[test]
fn ip_masks_and_families() {
    let mut c = Ctx::new();
    assert_eq!(eval("if { src 10.0.0.0/8 }", &c), Yes);
    assert_eq!(eval("if { src 10.1.2.0/255.255.255.0 }", &c), Yes);
    assert_eq!(eval("if { src 10.1.3.0/24 192.168.0.0/16 }", &c), No);
    assert_eq!(eval("if { src 10.1.2.3 }", &c), Yes);
    assert_eq!(eval("if { src 0.0.0.0/0 }", &c), Yes);
    assert_eq!(eval("if { src ::ffff:10.1.2.0/120 }", &c), Yes, "an IPv4 sample matches its mapped form");
    c.src = Some("[::ffff:10.1.2.3]:1".parse().unwrap());
    assert_eq!(eval("if { src 10.0.0.0/8 }", &c), Yes, "an IPv4-mapped sample matches IPv4 patterns");
    c.src = Some("[2001:db8::5]:1".parse().unwrap());
    assert_eq!(eval("if { src 2001:db8::/32 }", &c), Yes);
    assert_eq!(eval("if { src 2001:db9::/32 10.0.0.0/8 }", &c), No);
    assert_eq!(eval("if { src 2001:db8::5 }", &c), Yes);
    let many: String = (0..40).map(|i| format!("2001:db8::{i:x} ")).collect();
    assert_eq!(eval(&format!("if {{ src {many} }}"), &c), Yes);
    assert_eq!(eval("if { str(10.1.2.3) -m ip 10.0.0.0/8 }", &c), Yes, "strings are cast to addresses");
}

#[test]
fn host_name_patterns_are_resolved_at_compile_time() {
    let mut c = Ctx::new();
    c.src = Some("127.0.0.1:5".parse().unwrap());
    assert_eq!(eval("if { src localhost }", &c), Yes);
}

// Condition logic.

#[test]
fn and_or_not_unless() {
    let c = Ctx::new();
    for (text, want) in [
        ("if TRUE", Yes),
        ("if FALSE", No),
        ("if TRUE FALSE", No),
        ("if TRUE TRUE", Yes),
        ("if FALSE || TRUE", Yes),
        ("if FALSE or FALSE", No),
        ("if !FALSE", Yes),
        ("if ! TRUE || FALSE", No),
        ("if TRUE !FALSE || FALSE", Yes),
        ("unless TRUE", No),
        ("unless FALSE", Yes),
        ("unless FALSE || TRUE", No),
        ("if !{ src 10.0.0.0/8 }", No),
        ("if { src 10.0.0.0/8 } { dst_port 443 }", Yes),
    ] {
        assert_eq!(eval(text, &c), want, "{text}");
    }
}

#[test]
fn three_valued_logic() {
    assert_eq!(Miss.and(No), No);
    assert_eq!(Miss.and(Yes), Miss);
    assert_eq!(Miss.or(Yes), Yes);
    assert_eq!(Miss.or(No), Miss);
    assert_eq!(Miss.not(), Miss);
    let c = Ctx::with_buf(b"\x16\x03");
    let wait = "{ req.payload(0,4) -m bin 16030100 }";
    assert_eq!(eval(&format!("if {wait}"), &c), Miss);
    assert_eq!(eval(&format!("if !{wait}"), &c), Miss, "negating a miss is a miss");
    assert_eq!(eval(&format!("unless {wait}"), &c), Miss);
    assert_eq!(eval(&format!("if {wait} FALSE"), &c), No, "miss AND no");
    assert_eq!(eval(&format!("if {wait} TRUE"), &c), Miss, "miss AND yes");
    assert_eq!(eval(&format!("if {wait} || TRUE"), &c), Yes, "miss OR yes");
    assert_eq!(eval(&format!("if {wait} || FALSE"), &c), Miss, "miss OR no");
}

#[test]
fn payload_misses_until_enough_bytes_then_matches() {
    let acl = "if { req.payload(0,4) -m bin 16030100 }";
    let cond = cond_with(acl, &[]);
    let full = b"\x16\x03\x01\x00\x10";
    for n in 0..4 {
        assert_eq!(cond.eval(&Ctx::with_buf(&full[..n])), Miss, "{n} bytes");
        assert_eq!(cond.eval(&Ctx::with_buf(&full[..n]).finalized()), No, "{n} bytes, final");
    }
    assert_eq!(cond.eval(&Ctx::with_buf(&full[..4])), Yes);
    assert_eq!(cond.eval(&Ctx::with_buf(b"GET ")), No, "enough bytes that do not match: no more waiting");
}

#[test]
fn may_change_samples_miss_until_final() {
    // req.len may grow: a no-match now is a miss, but a match is final.
    let c = Ctx::with_buf(b"abc");
    assert_eq!(eval("if { req.len gt 5 }", &c), Miss);
    assert_eq!(eval("if { req.len gt 2 }", &c), Yes);
    assert_eq!(eval("if { req.len gt 5 }", &Ctx::with_buf(b"abc").finalized()), No);
    assert_eq!(eval("if REQ_CONTENT", &Ctx::new()), Miss);
    assert_eq!(eval("if REQ_CONTENT", &Ctx::new().finalized()), No);
    assert_eq!(eval("if REQ_CONTENT", &c), Yes);
    assert_eq!(eval("if WAIT_END", &c), Miss);
    assert_eq!(eval("if WAIT_END", &Ctx::new().finalized()), Yes);
}

// Named and predefined ACLs.

#[test]
fn named_acls_with_one_name_are_ored() {
    let acls = [decl("internal", "src 192.168.0.0/16"), decl("other", "always_true"), decl("internal", "src 10.0.0.0/8")];
    let c = Ctx::new();
    assert_eq!(cond_with("if internal", &acls).eval(&c), Yes);
    assert_eq!(cond_with("if !internal", &acls).eval(&c), No);
    assert_eq!(cond_with("if internal internal other", &acls).eval(&c), Yes);
    let acls = [decl("internal", "src 192.168.0.0/16"), decl("internal", "src 172.16.0.0/12")];
    assert_eq!(cond_with("if internal", &acls).eval(&c), No);
}

#[test]
fn declared_acls_shadow_predefined_ones() {
    let acls = [decl("TRUE", "always_false")];
    assert_eq!(cond_with("if TRUE", &acls).eval(&Ctx::new()), No);
}

#[test]
fn unknown_acl_is_a_compile_error() {
    let words = split_words("if nope", &HashMap::new()).unwrap();
    assert!(CompiledCond::compile(&parse_condition(&words).unwrap(), &[]).unwrap_err().contains("unknown ACL 'nope'"));
}

#[test]
fn every_predefined_acl_compiles() {
    for name in super::acl::predefined_names() {
        assert!(super::acl::predefined(name).unwrap().is_ok(), "{name}");
    }
    for name in crate::config::validate::PREDEFINED_ACLS {
        assert!(super::acl::predefined(name).is_some(), "{name} is not compiled");
    }
}

#[test]
fn predefined_acls() {
    let mut c = Ctx::new();
    assert_eq!(eval("if LOCALHOST", &c), No);
    c.src = Some("127.0.0.9:1".parse().unwrap());
    assert_eq!(eval("if LOCALHOST", &c), Yes);
    c.src = Some("[::1]:1".parse().unwrap());
    assert_eq!(eval("if LOCALHOST", &c), Yes);
    // HTTP-layer ACLs are absent at layer 4: no match, and no waiting.
    assert_eq!(eval("if METH_GET", &c), No);
    assert_eq!(eval("if HTTP_1.1", &c), No);
    assert_eq!(eval("if HTTP", &Ctx::with_buf(b"GET / HTTP/1.1\r\n")), Yes);
    assert_eq!(eval("if HTTP", &Ctx::with_buf(b"GET / HT")), Miss);
    assert_eq!(eval("if HTTP", &Ctx::with_buf(b"\x16\x03\x01")), No);
}

// Layer 4 fetches.

#[test]
fn connection_fetches() {
    assert_eq!(sample("src", &Ctx::new()), Ok(Some(Sample::Ip("10.1.2.3".parse().unwrap()))));
    assert_eq!(sample("dst", &Ctx::new()), Ok(Some(Sample::Ip("192.0.2.1".parse().unwrap()))));
    assert_eq!(int_of("src_port"), 40000);
    assert_eq!(int_of("dst_port"), 443);
    assert_eq!(str_of("fe_name"), "fe_main");
    assert_eq!(int_of("fe_id"), 7);
    assert_eq!(str_of("be_name"), "be_app");
    assert_eq!(int_of("be_id"), 3);
    let no_addr = Ctx { src: None, current: None, ..Ctx::new() };
    assert_eq!(sample("src", &no_addr), Ok(None));
    assert_eq!(sample("be_name", &no_addr), Ok(None));
    assert_eq!(sample("nbsrv", &no_addr), Ok(None));
}

#[test]
fn backend_state_fetches() {
    let c = Ctx::new();
    let app = &c.backends[0];
    assert_eq!(int_of("nbsrv"), 3);
    assert_eq!(sample("nbsrv(be_empty)", &c), Ok(Some(Sample::Int(0))));
    app.servers[1].set_admin(AdminState::Maint);
    assert_eq!(sample("nbsrv(be_app)", &c), Ok(Some(Sample::Int(2))));
    app.servers[0].cur_conns.store(4, Ordering::Relaxed);
    app.servers[2].cur_conns.store(1, Ordering::Relaxed);
    assert_eq!(sample("be_conn", &c), Ok(Some(Sample::Int(5))));
    assert_eq!(sample("be_conn(be_empty)", &c), Ok(Some(Sample::Int(0))));
    assert_eq!(sample("be_conn(nope)", &c), Ok(None));
    // Unlimited servers: connslots means nothing and is -1.
    assert_eq!(sample("connslots", &c), Ok(Some(Sample::Int(-1))));
    assert_eq!(eval("if { connslots(be_app) lt 0 }", &c), Yes);
    assert_eq!(sample("connslots(be_empty)", &c), Ok(Some(Sample::Int(0))));
    let servers = (0..2)
        .map(|i| {
            let mut s = ServerState::new(&format!("s{i}"), i + 1, ServerAddr::Inet(format!("127.0.0.1:{}", 8000 + i).parse().unwrap()), 1, false);
            s.maxconn.store(10, Ordering::Relaxed);
            s.maxqueue = 5;
            s
        })
        .collect();
    let limited = BackendState::new("be_lim", servers, Box::new(FirstUsable), BalanceOpts::default());
    limited.servers[0].cur_conns.store(4, Ordering::Relaxed);
    limited.servers[1].queued.store(2, Ordering::Relaxed);
    let c = Ctx { backends: vec![limited], ..Ctx::new() };
    // (10 - 4) + 5 + 10 + (5 - 2)
    assert_eq!(sample("connslots", &c), Ok(Some(Sample::Int(24))));
    c.backends[0].servers[1].set_up(false);
    assert_eq!(sample("connslots", &c), Ok(Some(Sample::Int(11))));
}

#[test]
fn constant_fetches() {
    assert_eq!(int_of("int(-42)"), -42);
    assert_eq!(str_of("str(hello)"), "hello");
    assert_eq!(sample("bool(1)", &Ctx::new()), Ok(Some(Sample::Bool(true))));
    assert_eq!(sample("ipv4(10.0.0.1)", &Ctx::new()), Ok(Some(Sample::Ip("10.0.0.1".parse().unwrap()))));
    assert_eq!(sample("ipv6(::1)", &Ctx::new()), Ok(Some(Sample::Ip(IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])))));
    assert!(CompiledSample::compile(&parse_sample("ipv4(::1)").unwrap()).is_err());
    assert!(CompiledSample::compile(&parse_sample("ipv6(nope)").unwrap()).is_err());
    assert_eq!(sample("always_false", &Ctx::new()), Ok(Some(Sample::Bool(false))));
    // PATH is set in any test environment.
    assert_eq!(str_of("env(PATH)"), std::env::var("PATH").unwrap());
    assert_eq!(sample("env(SLUICED_SURELY_UNSET_VAR)", &Ctx::new()), Ok(None));
}

#[test]
fn request_length_and_payload() {
    let c = Ctx::with_buf(b"\x00\x03abcdef");
    assert_eq!(sample("req.len", &c), Ok(Some(Sample::Int(8))));
    assert_eq!(sample("req_len", &c), Ok(Some(Sample::Int(8))));
    assert_eq!(sample("req.payload(2,3)", &c), Ok(Some(Sample::Bin(b"abc".to_vec()))));
    assert_eq!(sample("req.payload(2,0)", &c), Ok(Some(Sample::Bin(b"abcdef".to_vec()))));
    assert_eq!(sample("req.payload(8,0)", &c), Ok(Some(Sample::Bin(Vec::new()))));
    assert_eq!(sample("req.payload(9,0)", &c), Err(()));
    assert_eq!(sample("req.payload(6,3)", &c), Err(()));
    assert_eq!(sample("req.payload(6,3)", &Ctx::with_buf(b"\x00\x03abcdef").finalized()), Ok(None));
    assert_eq!(sample("req.payload(0,100000)", &c), Ok(None), "beyond the buffer limit: never");
    // Length-value blocks: a 2-byte length at 0, the block after it, or at an offset.
    assert_eq!(sample("req.payload_lv(0,2)", &c), Ok(Some(Sample::Bin(b"abc".to_vec()))));
    assert_eq!(sample("req.payload_lv(0,2,+1)", &c), Ok(Some(Sample::Bin(b"bcd".to_vec()))));
    assert_eq!(sample("req.payload_lv(0,2,5)", &c), Ok(Some(Sample::Bin(b"def".to_vec()))));
    assert_eq!(sample("req.payload_lv(0,2,6)", &c), Err(()));
    assert_eq!(sample("req.payload_lv(1,1)", &c), Ok(Some(Sample::Bin(b"abc".to_vec()))));
    assert_eq!(sample("req.payload_lv(0,1)", &c), Ok(None), "an empty block never matches");
    assert_eq!(sample("req.payload_lv(0,2)", &Ctx::with_buf(b"\x00")), Err(()));
    assert!(CompiledSample::compile(&parse_sample("req.payload_lv(0,5)").unwrap()).is_err());
    assert!(CompiledSample::compile(&parse_sample("req.payload(-1,2)").unwrap()).is_err());
}

#[test]
fn tls_hello_fetches_on_a_real_client_hello() {
    let hello = openssl_hello();
    let c = Ctx::with_buf(&hello);
    assert_eq!(str_of_ctx("req.ssl_sni", &c), "example.com");
    assert_eq!(str_of_ctx("req_ssl_sni", &c), "example.com");
    assert_eq!(sample("req.ssl_hello_type", &c), Ok(Some(Sample::Int(1))));
    assert_eq!(sample("req_ssl_hello_type", &c), Ok(Some(Sample::Int(1))));
    assert_eq!(sample("req.ssl_ver", &c), Ok(Some(Sample::Int(3 << 16 | 3))));
    assert_eq!(eval("if { req.ssl_ver 3.3 }", &c), Yes);
    assert_eq!(eval("if { req_ssl_ver lt 3.3 }", &c), No);
    assert_eq!(eval("if { req.ssl_sni -i EXAMPLE.com }", &c), Yes);
    assert_eq!(eval("if { req.ssl_sni -m end .com }", &c), Yes);
    assert_eq!(eval("if { req.ssl_hello_type 1 }", &c), Yes);
    for n in [0, 1, 5, 9, 100, hello.len() - 1] {
        let partial = Ctx::with_buf(&hello[..n]);
        assert_eq!(eval("if { req.ssl_sni -i example.com }", &partial), Miss, "{n} bytes");
        assert_eq!(eval("if { req.ssl_hello_type 1 }", &partial), Miss, "{n} bytes");
        assert_eq!(eval("if { req.ssl_ver 3.3 }", &partial), Miss, "{n} bytes");
        assert_eq!(eval("if { req.ssl_sni -i example.com }", &Ctx::with_buf(&hello[..n]).finalized()), No, "{n} bytes, final");
    }
    let plain = Ctx::with_buf(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert_eq!(eval("if { req.ssl_sni -m found }", &plain), No);
    assert_eq!(eval("if { req.ssl_hello_type 1 }", &plain), No);
    assert_eq!(eval("if { req.ssl_ver gt 0 }", &plain), No);
    let no_sni = Ctx::with_buf(&build_hello(Some(&[])));
    assert_eq!(eval("if { req.ssl_sni -m found }", &no_sni), No);
    assert_eq!(eval("if { req.ssl_hello_type 1 }", &no_sni), Yes);
    let upper = Ctx::with_buf(&build_hello(Some(&[sni_ext(b"Mixed.Example")])));
    assert_eq!(str_of_ctx("req.ssl_sni", &upper), "Mixed.Example");
    assert_eq!(eval("if { req.ssl_sni,lower mixed.example }", &upper), Yes);
}

fn str_of_ctx(text: &str, c: &Ctx) -> String {
    match sample(text, c) {
        Ok(Some(Sample::Str(s))) => s,
        other => panic!("{text}: {other:?}"),
    }
}

#[test]
fn proto_http_checks_the_request_line() {
    for (buf, want) in [
        (&b"GET / HTTP/1.1\r\n"[..], Yes),
        (b"POST /x?y=1 HTTP/1.0\n", Yes),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Yes),
        (b"", Miss),
        (b"GET", Miss),
        (b"GET /index.html HTTP/1.", Miss),
        (b"GET / HTTP/1.1\r", Miss),
        (b" GET / HTTP/1.1\r\n", No),
        (b"GET  / HTTP/1.1\r\n", No),
        (b"GET / FTP/1.1\r\n", No),
        (b"GET / HTTP/1.1x", No),
        (b"\x16\x03\x01", No),
    ] {
        assert_eq!(eval("if { req.proto_http }", &Ctx::with_buf(buf)), want, "{:?}", String::from_utf8_lossy(buf));
    }
    assert_eq!(eval("if { req.proto_http }", &Ctx::with_buf(b"GET").finalized()), No);
}

#[test]
fn fetches_not_implemented_here_are_absent() {
    let c = Ctx::with_buf(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(sample("req.hdr(host)", &c), Ok(None));
    assert_eq!(eval("if { req.hdr(host) -m found }", &c), No);
    assert_eq!(eval("if { ssl_fc }", &c), No);
    assert_eq!(eval("if !{ path_beg / }", &c), Yes);
}

#[test]
fn implemented_names_are_in_the_registry() {
    let r = super::sample::registry();
    for f in implemented_fetches() {
        assert!(r.fetch(f).is_some(), "fetch {f}");
    }
    for c in implemented_converters() {
        assert!(r.converter(c).is_some(), "converter {c}");
    }
}

// Converters.

#[test]
fn case_and_length_converters() {
    assert_eq!(str_of("str(MiXed),lower"), "mixed");
    assert_eq!(str_of("str(MiXed),upper"), "MIXED");
    assert_eq!(int_of("str(hello),length"), 5);
    assert_eq!(int_of("int(12345),length"), 5);
    assert_eq!(str_of("src,lower"), "10.1.2.3");
}

#[test]
fn ipmask_converter() {
    assert_eq!(sample("src,ipmask(24)", &Ctx::new()), Ok(Some(Sample::Ip("10.1.2.0".parse().unwrap()))));
    assert_eq!(sample("src,ipmask(255.255.0.0)", &Ctx::new()), Ok(Some(Sample::Ip("10.1.0.0".parse().unwrap()))));
    let v6 = Ctx { src: Some("[2001:db8:1:2::5]:1".parse().unwrap()), ..Ctx::new() };
    assert_eq!(sample("src,ipmask(24)", &v6), Ok(None), "no IPv6 mask: IPv6 addresses do not convert");
    assert_eq!(sample("src,ipmask(24,48)", &v6), Ok(Some(Sample::Ip("2001:db8:1::".parse().unwrap()))));
    assert_eq!(eval("if { src,ipmask(16) 10.1.0.0 }", &Ctx::new()), Yes);
    assert!(CompiledSample::compile(&parse_sample("src,ipmask(33)").unwrap()).is_err());
}

#[test]
fn slicing_converters() {
    let c = Ctx::with_buf(b"\x16\x03\x01\x00\x05");
    assert_eq!(sample("req.payload(0,5),bytes(1,2)", &c), Ok(Some(Sample::Bin(vec![3, 1]))));
    assert_eq!(sample("req.payload(0,5),bytes(3)", &c), Ok(Some(Sample::Bin(vec![0, 5]))));
    assert_eq!(sample("req.payload(0,5),bytes(9)", &c), Ok(Some(Sample::Bin(vec![]))));
    assert_eq!(sample("req.payload(0,5),bytes(4,10)", &c), Ok(Some(Sample::Bin(vec![5]))));
    assert_eq!(eval("if { req.payload(0,5),bytes(0,1) -m bin 16 }", &c), Yes);
}

#[test]
fn field_converter() {
    let f = |idx: &str, count: &str| sample(&format!("str(a/b//c/d),field({idx},/{count})"), &Ctx::new());
    let s = |v: &str| Ok(Some(Sample::Str(v.into())));
    assert_eq!(f("1", ""), s("a"));
    assert_eq!(f("2", ""), s("b"));
    assert_eq!(f("3", ""), s(""));
    assert_eq!(f("5", ""), s("d"));
    assert_eq!(f("6", ""), Ok(None));
    assert_eq!(f("-1", ""), s("d"));
    assert_eq!(f("-2", ""), s("c"));
    assert_eq!(f("-5", ""), s("a"));
    assert_eq!(f("-6", ""), Ok(None));
    assert_eq!(f("2", ",2"), s("b/"));
    assert_eq!(f("2", ",0"), s("b//c/d"));
    assert_eq!(f("-2", ",2"), s("/c"), "counted fields extend towards the start");
    assert_eq!(f("-3", ",0"), s("a/b/"));
    assert_eq!(str_of("str(k=v;x=y),field(2,=;)"), "v");
}

#[test]
fn word_converter() {
    let w = |idx: &str, count: &str| sample(&format!("str(//a/b//c/),word({idx},/{count})"), &Ctx::new());
    let s = |v: &str| Ok(Some(Sample::Str(v.into())));
    assert_eq!(w("1", ""), s("a"));
    assert_eq!(w("2", ""), s("b"));
    assert_eq!(w("3", ""), s("c"));
    assert_eq!(w("4", ""), Ok(None));
    assert_eq!(w("-1", ""), s("c"));
    assert_eq!(w("-3", ""), s("a"));
    assert_eq!(w("-4", ""), Ok(None));
    assert_eq!(w("1", ",2"), s("a/b"));
    assert_eq!(w("2", ",0"), s("b//c/"));
    assert_eq!(w("-1", ",2"), s("b//c"));
    assert_eq!(str_of("str(/api/v1/x),word(2,/)"), "v1");
}

#[test]
fn encoding_converters() {
    assert_eq!(str_of("str(ab),concat(<,,>)"), "ab<>", "everything goes after the input, as in HAProxy");
    assert_eq!(str_of("str(ab),concat(,txn.missing,)"), "ab");
    assert_eq!(str_of("str(a\u{ab}),hex"), "61C2AB");
    assert_eq!(str_of("src,hex"), "0A010203");
    assert_eq!(sample("req.payload(0,0),base64", &Ctx::new()), Ok(Some(Sample::Str(String::new()))));
    for (input, want) in [("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy")] {
        assert_eq!(sample(&format!("str({input}),base64"), &Ctx::new()), Ok(Some(Sample::Str(want.into()))), "{input}");
    }
}

#[test]
fn hash_converters() {
    assert_eq!(int_of("str(123456789),crc32"), 0xcbf4_3926);
    assert_eq!(sample("req.payload(0,0),djb2", &Ctx::new()), Ok(Some(Sample::Int(5381))));
    assert_eq!(int_of("str(a),djb2"), 5381 * 33 + 97);
    assert_eq!(int_of("str(a),sdbm"), 97);
    assert_eq!(int_of("str(ab),sdbm"), i64::from(98u32.wrapping_add(97 << 6).wrapping_add(97 << 16).wrapping_sub(97)));
    assert_eq!(sample("req.payload(0,0),wt6", &Ctx::new()), Ok(Some(Sample::Int(i64::from(0xa53c_965au32 ^ 0x5ca6_953a)))));
    // Stable values: these feed persistence and must not change between versions.
    let (a, b) = (int_of("str(a),wt6"), int_of("str(b),wt6"));
    assert_ne!(a, b);
    assert_eq!(int_of("str(a),wt6"), a);
    assert_ne!(int_of("str(123456789),crc32(1)"), 0xcbf4_3926);
    assert_eq!(int_of("str(123456789),crc32(1)"), i64::from(super::convert::full_hash(0xcbf4_3926)));
    assert_eq!(int_of("src,crc32"), i64::from(super::convert::crc32(&[10, 1, 2, 3])));
    assert_eq!(eval("if { src,crc32,mod(2) 0 1 }", &Ctx::new()), Yes);
}

#[test]
fn arithmetic_converters() {
    assert_eq!(int_of("int(7),add(3)"), 10);
    assert_eq!(int_of("int(7),sub(10)"), -3);
    assert_eq!(int_of("int(7),mul(-2)"), -14);
    assert_eq!(int_of("int(7),div(2)"), 3);
    assert_eq!(int_of("int(7),div(0)"), i64::MAX);
    assert_eq!(int_of("int(7),mod(4)"), 3);
    assert_eq!(int_of("int(7),mod(0)"), 0);
    assert_eq!(int_of("int(7),neg"), -7);
    assert_eq!(int_of("int(6),and(3)"), 2);
    assert_eq!(int_of("int(6),or(1)"), 7);
    assert_eq!(int_of("int(6),xor(3)"), 5);
    assert_eq!(int_of("int(0),cpl"), -1);
    assert_eq!(int_of("int(9223372036854775807),add(1)"), i64::MAX);
    assert_eq!(int_of("int(-9223372036854775808),div(-1)"), i64::MAX);
    assert_eq!(sample("int(0),not", &Ctx::new()), Ok(Some(Sample::Bool(true))));
    assert_eq!(sample("int(5),bool", &Ctx::new()), Ok(Some(Sample::Bool(true))));
    assert_eq!(sample("int(5),odd", &Ctx::new()), Ok(Some(Sample::Bool(true))));
    assert_eq!(sample("int(5),even", &Ctx::new()), Ok(Some(Sample::Bool(false))));
    assert_eq!(int_of("str(41),add(1)"), 42, "strings are cast to integers");
    assert_eq!(sample("str(x),add(1)", &Ctx::new()), Ok(None));
    assert_eq!(sample("int(1),add(txn.n)", &Ctx::new()), Ok(None), "a stream without variables");
    assert_eq!(eval("if { be_conn,not }", &Ctx::new()), Yes);
}

#[test]
fn regsub_converter() {
    assert_eq!(str_of("str(/api/v1/api),regsub(^/api/,/)"), "/v1/api");
    assert_eq!(str_of("str(aXbXc),regsub(X,-,g)"), "a-b-c");
    assert_eq!(str_of("str(aXbXc),regsub(X,-)"), "a-bXc");
    assert_eq!(str_of("str(aXbxc),regsub(x,-,gi)"), "a-b-c");
    assert_eq!(str_of("str(key=val),regsub(^([a-z]+)=([a-z]+)$,\\2=\\1)"), "val=key");
    assert_eq!(str_of("str(abc),regsub(b,\\x41)"), "aAc");
    assert_eq!(str_of("str(abc),regsub(z,y)"), "abc");
    assert_eq!(str_of("str(abc),regsub(,-,g)"), "-a-b-c-");
}

#[test]
fn unimplemented_converters_make_the_sample_absent() {
    assert_eq!(sample("str(a),in_table(t)", &Ctx::new()), Ok(None));
}

// Variables.

#[test]
fn var_fetch_returns_the_stored_type_or_the_default_as_a_string() {
    let c = Ctx::with_vars(&[("txn.n", Sample::Int(3)), ("sess.s", Sample::Str("ab".into()))]);
    assert_eq!(sample("var(txn.n)", &c), Ok(Some(Sample::Int(3))));
    assert_eq!(sample("var(sess.s)", &c), Ok(Some(Sample::Str("ab".into()))));
    assert_eq!(sample("var(txn.none)", &c), Ok(None));
    assert_eq!(sample("var(txn.none,dflt)", &c), Ok(Some(Sample::Str("dflt".into()))));
    assert_eq!(sample("var(txn.n,dflt)", &c), Ok(Some(Sample::Int(3))));
    assert_eq!(sample("var(check.x,d)", &c), Ok(None), "check. variables never exist on a stream");
    assert_eq!(eval("if { var(txn.n) 3 }", &c), Yes);
    assert_eq!(eval("if { var(sess.s) -m beg a }", &c), Yes);
    assert_eq!(eval("if { var(txn.none) -m found }", &c), No);
}

#[test]
fn concat_appends_a_variable_between_its_constants() {
    let c = Ctx::with_vars(&[("txn.host", Sample::Str("h".into())), ("txn.n", Sample::Int(7))]);
    assert_eq!(sample("str(a),concat(<,txn.host,>)", &c), Ok(Some(Sample::Str("a<h>".into()))));
    assert_eq!(sample("str(a),concat(:,txn.n)", &c), Ok(Some(Sample::Str("a:7".into()))));
    assert_eq!(sample("str(a),concat(:,txn.none,!)", &c), Ok(Some(Sample::Str("a:!".into()))));
}

#[test]
fn arithmetic_takes_a_variable_operand() {
    let c = Ctx::with_vars(&[("txn.n", Sample::Int(5)), ("txn.s", Sample::Str("x".into())), ("txn.d", Sample::Str("2".into()))]);
    assert_eq!(sample("int(1),add(txn.n)", &c), Ok(Some(Sample::Int(6))));
    assert_eq!(sample("int(20),div(txn.n)", &c), Ok(Some(Sample::Int(4))));
    assert_eq!(sample("int(6),mul(txn.d)", &c), Ok(Some(Sample::Int(12))), "a numeric string is cast");
    assert_eq!(sample("int(1),sub(txn.s)", &c), Ok(None), "not a number: the converter fails");
    assert_eq!(sample("int(1),add(txn.none)", &c), Ok(None), "not set: the converter fails");
}

#[test]
fn set_var_converter_stores_and_passes_the_value_on() {
    let c = Ctx::with_vars(&[("txn.old", Sample::Str("o".into()))]);
    assert_eq!(sample("str(abc),set-var(txn.x),upper", &c), Ok(Some(Sample::Str("ABC".into()))));
    assert_eq!(sample("var(txn.x)", &c), Ok(Some(Sample::Str("abc".into()))));
    assert_eq!(sample("int(4),set-var(req.n)", &c), Ok(Some(Sample::Int(4))));
    assert_eq!(sample("var(req.n)", &c), Ok(Some(Sample::Int(4))), "the stored type is kept");
    assert_eq!(sample("str(new),set-var(txn.old,ifnotexists)", &c), Ok(None), "a condition that fails makes the sample absent");
    assert_eq!(sample("var(txn.old)", &c), Ok(Some(Sample::Str("o".into()))));
    assert_eq!(sample("str(a),unset-var(txn.old)", &c), Ok(Some(Sample::Str("a".into()))));
    assert_eq!(sample("var(txn.old)", &c), Ok(None));
    assert_eq!(sample("str(a),set-var(txn.x)", &Ctx::new()), Ok(None), "no variables on this stream");
}

#[test]
fn set_var_converter_refuses_unknown_conditions() {
    let e = CompiledSample::compile(&parse_sample("str(a),set-var(txn.x,ifwhatever)").unwrap()).unwrap_err();
    assert!(e.contains("ifwhatever"), "{e}");
}

#[test]
fn strcmp_and_secure_memcmp_compare_with_a_variable() {
    let c = Ctx::with_vars(&[("txn.a", Sample::Str("abc".into()))]);
    assert_eq!(sample("str(abc),strcmp(txn.a)", &c), Ok(Some(Sample::Int(0))));
    assert!(matches!(sample("str(abd),strcmp(txn.a)", &c), Ok(Some(Sample::Int(n))) if n > 0));
    assert!(matches!(sample("str(ab),strcmp(txn.a)", &c), Ok(Some(Sample::Int(n))) if n < 0));
    assert_eq!(sample("str(abc),strcmp(txn.none)", &c), Ok(None));
    assert_eq!(sample("str(abc),secure_memcmp(txn.a)", &c), Ok(Some(Sample::Bool(true))));
    assert_eq!(sample("str(abd),secure_memcmp(txn.a)", &c), Ok(Some(Sample::Bool(false))));
    assert_eq!(sample("str(abcd),secure_memcmp(txn.a)", &c), Ok(Some(Sample::Bool(false))));
    assert_eq!(eval("if { req.hdr(x-a),strcmp(txn.a) eq 0 }", &Ctx { req: Some(Msg::parse(b"GET / HTTP/1.1\r\nX-A: abc\r\n\r\n")), ..c }), Yes);
}

#[test]
fn capture_fetches_read_the_transaction_slots() {
    use crate::log::config::CaptureDir;
    let cfg = super::capture::CaptureConfig { req_lens: vec![4, 4], res_lens: vec![2], ..Default::default() };
    let mut cap = Captured::new(&cfg);
    cap.store(CaptureDir::Request, 1, b"hello");
    cap.store(CaptureDir::Response, 0, b"xyz");
    let c = Ctx { captures: Some(std::cell::RefCell::new(cap)), ..Ctx::new() };
    assert_eq!(sample("capture.req.hdr(1)", &c), Ok(Some(Sample::Str("hell".into()))));
    assert_eq!(sample("capture.req.hdr(0)", &c), Ok(None), "nothing captured in slot 0");
    assert_eq!(sample("capture.req.hdr(9)", &c), Ok(None));
    assert_eq!(sample("capture.res.hdr(0)", &c), Ok(Some(Sample::Str("xy".into()))));
    assert_eq!(sample("capture.req.hdr(1)", &Ctx::new()), Ok(None));
}

#[test]
fn eval_ref_borrows_from_the_buffer() {
    let c = Ctx::with_buf(b"GET /a/b HTTP/1.1\r\n");
    let s = CompiledSample::compile(&parse_sample("req.payload(0,0),word(2,' '),field(2,/),lower").unwrap()).unwrap();
    match s.eval_ref(&c) {
        Ok(Some(super::eval::SampleRef::Str(std::borrow::Cow::Borrowed(b)))) => assert_eq!(b, b"a"),
        other => panic!("{other:?}"),
    }
}

mod never_panic {
    use super::*;
    use proptest::prelude::*;

    const CONDITIONS: &[&str] = &[
        "if { req.payload(0,4) -m bin 16030100 } || { req.ssl_sni -i -m end .example.com }",
        "if { req.ssl_hello_type 1 } { req.ssl_ver ge 3.1 } !{ req.proto_http }",
        "unless { req.payload_lv(0,2,+1) -m sub -i abc } or { req.len gt 10 }",
        "if { req.payload(1,0),word(2,/),field(1,.,0) -m dom -i example } || { req.payload(0,0),regsub(a+,b,g),lower -m reg ^b }",
        "if { req.payload(0,8),hex,length gt 3 } { req.payload(0,3),crc32,mod(7) 0:3 } { req.payload(2,2),wt6,djb2 -m found }",
        "if { req.payload(0,16),bytes(2,4),base64 -m beg A } || { req.payload(0,0),upper -m dir GET } || HTTP || REQ_CONTENT",
        "if { req.payload_lv(0,1),ipmask(8) 10.0.0.0/8 } || { req.payload(0,0),add(1) gt 5 }",
    ];

    proptest! {
        #[test]
        fn conditions_never_panic_on_arbitrary_buffers(buf in prop::collection::vec(any::<u8>(), 0..300), fin in any::<bool>()) {
            let c = Ctx { buf, fin, ..Ctx::new() };
            for text in CONDITIONS {
                let r = cond_with(text, &[]).eval(&c);
                if fin {
                    prop_assert_ne!(r, Tri::Miss, "{}", text);
                }
            }
        }

        #[test]
        fn conditions_never_panic_on_tls_like_buffers(tail in prop::collection::vec(any::<u8>(), 0..300), len in 0u16..400, fin in any::<bool>()) {
            let mut buf = vec![0x16, 3, 1];
            buf.extend(len.to_be_bytes());
            buf.push(1);
            buf.extend(tail);
            let c = Ctx { buf, fin, ..Ctx::new() };
            for text in CONDITIONS {
                let _ = cond_with(text, &[]).eval(&c);
            }
        }

        #[test]
        fn every_prefix_of_a_hello_is_a_miss_or_the_answer(cut in 0usize..400) {
            let hello = openssl_hello();
            let n = cut.min(hello.len());
            let r = cond_with("if { req.ssl_sni -i example.com }", &[]).eval(&Ctx::with_buf(&hello[..n]));
            prop_assert_eq!(r, if n == hello.len() { Tri::Yes } else { Tri::Miss });
        }
    }
}

#[test]
fn odd_arguments_never_panic_in_compile_or_eval() {
    use crate::config::expr::{Call, SampleExpr};
    let r = super::sample::registry();
    let odd: &[&[&str]] = &[&[], &[""], &["x"], &["-1", "-1", "-1"], &["999999999999999999999"], &["0", "", "0"]];
    let c = Ctx::with_buf(b"\x16\x03\x01\x00\x05\x01\x00\x00\x01");
    for args in odd {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        for d in &r.fetches {
            let expr = SampleExpr { fetch: Call { name: d.name.into(), args: args.clone() }, converters: Vec::new() };
            if let Ok(s) = CompiledSample::compile(&expr) {
                let _ = s.eval(&c);
            }
        }
        for d in &r.converters {
            let expr = SampleExpr { fetch: Call { name: "src".into(), args: Vec::new() }, converters: vec![Call { name: d.name.into(), args: args.clone() }] };
            if let Ok(s) = CompiledSample::compile(&expr) {
                let _ = s.eval(&c);
            }
        }
    }
}

// HTTP fetches.

fn http_sample(text: &str, c: &Ctx) -> Option<Sample> {
    sample(text, c).unwrap_or_else(|()| panic!("{text}: miss"))
}

/// The string sample of `text`, `None` when absent.
fn http_str(text: &str, c: &Ctx) -> Option<String> {
    match http_sample(text, c) {
        Some(Sample::Str(s)) => Some(s),
        None => None,
        other => panic!("{text}: {other:?}"),
    }
}

fn http_int(text: &str, c: &Ctx) -> Option<i64> {
    match http_sample(text, c) {
        Some(Sample::Int(n)) => Some(n),
        None => None,
        other => panic!("{text}: {other:?}"),
    }
}

fn some(s: &str) -> Option<String> {
    Some(s.to_owned())
}

#[test]
fn request_line_fetches() {
    let c = Ctx::http("GET /a/b?x=1&y HTTP/1.1\r\nHost: Example.com:8080\r\n\r\n");
    assert_eq!(http_str("method", &c), some("GET"));
    assert_eq!(http_str("path", &c), some("/a/b"));
    assert_eq!(http_str("pathq", &c), some("/a/b?x=1&y"));
    assert_eq!(http_str("query", &c), some("x=1&y"));
    assert_eq!(http_str("url", &c), some("/a/b?x=1&y"));
    assert_eq!(http_str("base", &c), some("Example.com:8080/a/b"));
    assert_eq!(http_str("req.ver", &c), some("1.1"));
    assert_eq!(http_str("req_ver", &c), some("1.1"));
    assert_eq!(http_sample("http_first_req", &c), Some(Sample::Bool(true)));
    let sdbm = |h: u32, b: &u8| u32::from(*b).wrapping_add(h << 6).wrapping_add(h << 16).wrapping_sub(h);
    let want = super::convert::full_hash(b"Example.com:8080/a/b".iter().fold(0, sdbm));
    assert_eq!(http_int("base32", &c), Some(i64::from(want)));

    let abs = Ctx::http("GET http://h.example:81/p/q?z HTTP/1.1\r\nHost: h.example:81\r\n\r\n");
    assert_eq!(http_str("path", &abs), some("/p/q"));
    assert_eq!(http_str("pathq", &abs), some("/p/q?z"));
    assert_eq!(http_str("query", &abs), some("z"));
    assert_eq!(http_str("url", &abs), some("http://h.example:81/p/q?z"));
    let no_path = Ctx::http("GET http://h.example HTTP/1.1\r\n\r\n");
    assert_eq!(http_str("path", &no_path), None);
    assert_eq!(http_str("base", &no_path), None, "neither host nor path");
    assert_eq!(http_str("path", &Ctx::http("OPTIONS * HTTP/1.1\r\n\r\n")), None);
    assert_eq!(http_str("path", &Ctx::http("CONNECT h:443 HTTP/1.1\r\n\r\n")), None);
    let no_query = Ctx::http("GET /n HTTP/1.0\r\n\r\n");
    assert_eq!(http_str("query", &no_query), None);
    assert_eq!(http_str("base", &no_query), some("/n"), "without Host, the path");
    assert_eq!(http_str("req.ver", &no_query), some("1.0"));
    assert_eq!(http_str("query", &Ctx::http("GET /e? HTTP/1.1\r\n\r\n")), some(""));
    let mut second = Ctx::http("GET / HTTP/1.1\r\n\r\n");
    second.req.as_mut().unwrap().first = false;
    assert_eq!(eval("if { http_first_req }", &second), No);
}

#[test]
fn http_fetches_are_absent_without_a_message() {
    let c = Ctx::new();
    for f in ["method", "path", "url", "base", "base32", "req.hdr(host)", "req.cook(a)", "status", "req.ver", "req.body", "url_param(a)", "http_first_req"] {
        assert_eq!(sample(f, &c), Ok(None), "{f}");
    }
    assert_eq!(eval("if { path_beg / }", &c), No);
    let req_only = Ctx::http("GET / HTTP/1.1\r\n\r\n");
    assert_eq!(sample("status", &req_only), Ok(None));
    assert_eq!(sample("res.hdr(server)", &req_only), Ok(None));
}

#[test]
fn predefined_http_acls() {
    let get = Ctx::http("GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    let post = Ctx::http("POST http://a/ HTTP/1.0\r\nContent-Length: 12\r\n\r\n");
    let star = Ctx::http("OPTIONS * HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    for (acl, ctx, want) in [
        ("HTTP", &get, Yes),
        ("HTTP", &Ctx::new().finalized(), No),
        ("HTTP_1.1", &get, Yes),
        ("HTTP_1.0", &get, No),
        ("HTTP_1.0", &post, Yes),
        ("HTTP_2.0", &get, No),
        ("HTTP_CONTENT", &post, Yes),
        ("HTTP_CONTENT", &get, No),
        ("HTTP_CONTENT", &star, No),
        ("HTTP_URL_ABS", &post, Yes),
        ("HTTP_URL_ABS", &get, No),
        ("HTTP_URL_SLASH", &get, Yes),
        ("HTTP_URL_SLASH", &post, No),
        ("HTTP_URL_STAR", &star, Yes),
        ("HTTP_URL_STAR", &get, No),
        ("METH_GET", &get, Yes),
        ("METH_GET", &Ctx::http("HEAD / HTTP/1.1\r\n\r\n"), Yes),
        ("METH_GET", &post, No),
        ("METH_HEAD", &get, No),
        ("METH_POST", &post, Yes),
        ("METH_OPTIONS", &star, Yes),
        ("METH_CONNECT", &Ctx::http("CONNECT a:443 HTTP/1.1\r\n\r\n"), Yes),
        ("METH_DELETE", &Ctx::http("DELETE /r HTTP/1.1\r\n\r\n"), Yes),
        ("METH_PUT", &Ctx::http("PUT /r HTTP/1.1\r\n\r\n"), Yes),
        ("METH_TRACE", &Ctx::http("TRACE /r HTTP/1.1\r\n\r\n"), Yes),
        ("METH_TRACE", &get, No),
    ] {
        assert_eq!(eval(&format!("if {acl}"), ctx), want, "{acl}");
    }
}

#[test]
fn method_matching_follows_haproxy() {
    let get = Ctx::http("GET / HTTP/1.1\r\n\r\n");
    let purge = Ctx::http("PURGE / HTTP/1.1\r\n\r\n");
    assert_eq!(eval("if { method GET }", &get), Yes);
    assert_eq!(eval("if { method get }", &get), No);
    assert_eq!(eval("if { method -i get }", &get), No, "known methods compare exactly, -i or not");
    assert_eq!(eval("if { method PURGE }", &purge), Yes);
    assert_eq!(eval("if { method -i purge }", &purge), Yes, "other methods compare as strings");
    assert_eq!(eval("if { method purge }", &purge), No);
    assert_eq!(eval("if { method,lower get }", &get), Yes, "a converted method is a string");
    assert_eq!(eval("if { method -m beg GE }", &get), Yes);
}

/// Two X-F lines holding four values, one of them quoted with a comma inside.
const HEADERS: &str = "GET / HTTP/1.1\r\nHost: www.example.com\r\nX-F: a, b\r\nx-f: \"c,d\", e\r\n\
    X-Forwarded-For: 10.0.0.1, 192.168.1.2:8080, junk, 2001:db8::1\r\nContent-Length: 42\r\nX-Empty:\r\nOther: z\r\n\r\n";

#[test]
fn header_occurrences() {
    let c = Ctx::http(HEADERS);
    for (f, want) in [
        ("req.hdr(x-f)", some("e")),
        ("hdr(X-F)", some("e")),
        ("req.hdr(x-f,1)", some("a")),
        ("req.hdr(x-f,2)", some("b")),
        ("req.hdr(x-f,3)", some("\"c,d\"")),
        ("req.hdr(x-f,-1)", some("e")),
        ("req.hdr(x-f,-4)", some("a")),
        ("req.hdr(x-f,5)", None),
        ("req.hdr(x-f,-5)", None),
        ("req.hdr(nope)", None),
        ("req.hdr(x-empty)", some("")),
        ("req.hdr", some("z")),
        ("req.fhdr(x-f)", some("\"c,d\", e")),
        ("req.fhdr(x-f,1)", some("a, b")),
        ("req.fhdr(x-f,-2)", some("a, b")),
        ("req.hdr(host),lower,upper", some("WWW.EXAMPLE.COM")),
    ] {
        assert_eq!(http_str(f, &c), want, "{f}");
    }
    for (f, want) in [("req.hdr_cnt(x-f)", 4), ("hdr_cnt(X-F)", 4), ("req.fhdr_cnt(x-f)", 2), ("req.hdr_cnt(nope)", 0), ("req.hdr_cnt", 12)] {
        assert_eq!(http_int(f, &c), Some(want), "{f}");
    }
    assert_eq!(http_int("req.hdr_val(content-length)", &c), Some(42));
    assert_eq!(http_int("hdr_val(x-f)", &c), Some(0), "not a number: 0, as HAProxy's strl2ic");
    // ACLs see every value unless an occurrence is given.
    for (acl, want) in [
        ("hdr(x-f) a", Yes),
        ("req.hdr(x-f) b", Yes),
        ("req.hdr(x-f) '\"c,d\"'", Yes),
        ("req.hdr(x-f,1) b", No),
        ("req.hdr(x-f,2) b", Yes),
        ("req.hdr(x-f),upper A", Yes),
        ("req.hdr(x-f) -m len 1", Yes),
        ("req.hdr(x-f) f", No),
        ("req.fhdr(x-f) -m str \"a, b\"", Yes),
        ("req.fhdr(x-f) a", No),
        ("hdr z", Yes),
        ("hdr_beg(host) -i WWW.", Yes),
        ("hdr_end(host) .com", Yes),
        ("hdr_dom(host) example", Yes),
        ("hdr_sub(x-f) c,", Yes),
        ("hdr_reg(x-f) ^[ab]$", Yes),
        ("hdr_len(x-empty) 0", Yes),
        ("req.hdr(x-empty) -m found", Yes),
        ("req.hdr(nope) -m found", No),
        ("hdr_cnt(x-f) 4", Yes),
    ] {
        assert_eq!(eval(&format!("if {{ {acl} }}"), &c), want, "{acl}");
    }
}

#[test]
fn header_values_in_predefined_acls() {
    assert_eq!(eval("if HTTP_CONTENT", &Ctx::http(HEADERS)), Yes);
    assert_eq!(eval("if HTTP_CONTENT", &Ctx::http("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n")), No);
}

#[test]
fn header_addresses() {
    let c = Ctx::http(HEADERS);
    let ip = |s: &str| Some(Sample::Ip(s.parse().unwrap()));
    assert_eq!(http_sample("req.hdr_ip(x-forwarded-for)", &c), ip("2001:db8::1"));
    assert_eq!(http_sample("hdr_ip(x-forwarded-for,1)", &c), ip("10.0.0.1"));
    assert_eq!(http_sample("req.hdr_ip(x-forwarded-for,2)", &c), ip("192.168.1.2"), "a port after the address is dropped");
    assert_eq!(http_sample("req.hdr_ip(x-forwarded-for,3)", &c), None);
    assert_eq!(eval("if { hdr_ip(x-forwarded-for) 192.168.0.0/16 }", &c), Yes, "every value, the junk skipped");
    assert_eq!(eval("if { hdr_ip(x-forwarded-for,-1) 10.0.0.0/8 }", &c), No);
    assert_eq!(eval("if { req.hdr_ip(x-forwarded-for,1) 10.0.0.0/8 }", &c), Yes);
}

#[test]
fn header_block() {
    let c = Ctx::http("GET / HTTP/1.1\r\nHost: a\r\nX-Y: 1, 2\r\n\r\n");
    assert_eq!(http_str("req.hdrs", &c), some("Host: a\r\nX-Y: 1, 2\r\n\r\n"));
    assert_eq!(http_str("req.hdrs", &Ctx::http("GET / HTTP/1.1\r\n\r\n")), some("\r\n"));
}

#[test]
fn request_cookies() {
    let c = Ctx::http("GET / HTTP/1.1\r\nCookie: a=1; sid=abc\r\nHost: h\r\ncookie: $Version=1; sid = def ; flag; b=\"q;r\", c=2\r\n\r\n");
    for (f, want) in [
        ("req.cook(sid)", some("def")),
        ("cook(a)", some("1")),
        ("req.cook", some("1")),
        ("req.cook(b)", some("\"q;r\"")),
        ("req.cook(c)", some("2")),
        ("req.cook(flag)", None),
        ("req.cook($Version)", None),
        ("req.cook(SID)", None),
        ("req.cook(nope)", None),
    ] {
        assert_eq!(http_str(f, &c), want, "{f}");
    }
    assert_eq!(http_int("req.cook_cnt(sid)", &c), Some(2));
    assert_eq!(http_int("cook_cnt", &c), Some(5));
    assert_eq!(http_int("req.cook_cnt(nope)", &c), Some(0));
    assert_eq!(http_int("req.cook_val(a)", &c), Some(1));
    for (acl, want) in [
        ("cook(sid) abc", Yes),
        ("cook(sid) def", Yes),
        ("cook(sid) xyz", No),
        ("req.cook(sid) -m found", Yes),
        ("req.cook(nope) -m found", No),
        ("cook_beg(sid) ab", Yes),
        ("cook_cnt(sid) 2", Yes),
    ] {
        assert_eq!(eval(&format!("if {{ {acl} }}"), &c), want, "{acl}");
    }
    assert_eq!(http_str("req.cook(a)", &Ctx::http("GET / HTTP/1.1\r\n\r\n")), None);
}

#[test]
fn response_fetches_and_cookies() {
    let c = Ctx::http("GET / HTTP/1.1\r\nCookie: sid=req\r\n\r\n").with_response(
        "HTTP/1.0 503 Service Unavailable\r\nServer: s1\r\nSet-Cookie: sid=new; Path=/; HttpOnly\r\n\
         Set-Cookie: theme=dark; Expires=Wed, 21 Oct 2015 07:28:00 GMT\r\nCache-Control: no-cache, private\r\n\r\n",
    );
    assert_eq!(http_int("status", &c), Some(503));
    assert_eq!(http_str("res.ver", &c), some("1.0"));
    assert_eq!(http_str("resp_ver", &c), some("1.0"));
    assert_eq!(http_str("res.hdr(cache-control)", &c), some("private"));
    assert_eq!(http_str("shdr(cache-control,1)", &c), some("no-cache"));
    assert_eq!(http_str("res.fhdr(cache-control)", &c), some("no-cache, private"));
    assert_eq!(http_int("res.hdr_cnt(set-cookie)", &c), Some(3), "the Expires comma splits");
    assert_eq!(http_str("res.cook(sid)", &c), some("new"));
    assert_eq!(http_str("scook(theme)", &c), some("dark"));
    assert_eq!(http_str("res.cook", &c), some("new"));
    assert_eq!(http_str("res.cook(Path)", &c), None, "attributes are not cookies");
    assert_eq!(http_str("req.cook(sid)", &c), some("req"));
    assert_eq!(eval("if { status ge 500 }", &c), Yes);
    assert_eq!(eval("if { shdr(server) s1 }", &c), Yes);
    assert_eq!(eval("if { scook(theme) dark }", &c), Yes);
    assert_eq!(eval("if { res.hdr(cache-control) private }", &c), Yes);
}

#[test]
fn url_parameters() {
    let c = Ctx::http("GET /p?a=1&b&c=&a=2;d=x%20y&E=5&f=a=b HTTP/1.1\r\n\r\n");
    for (f, want) in [
        ("url_param(a)", some("1")),
        ("urlp(a)", some("1")),
        ("url_param(b)", None),
        ("url_param(c)", some("")),
        ("url_param(d)", some("x%20y")),
        ("url_param(d),url_dec", some("x y")),
        ("url_param(e)", None),
        ("url_param(e,,i)", some("5")),
        ("url_param(f)", some("a=b")),
        ("url_param", some("1")),
        ("url_param(p)", None),
    ] {
        assert_eq!(http_str(f, &c), want, "{f}");
    }
    assert_eq!(http_int("urlp_val(E)", &c), Some(5));
    assert_eq!(eval("if { url_param(a) 2 }", &c), Yes, "ACLs see every occurrence");
    assert_eq!(eval("if { url_param(a) 3 }", &c), No);
    assert_eq!(eval("if { urlp(c) -m found }", &c), Yes);
    assert_eq!(eval("if { urlp(b) -m found }", &c), No, "a parameter without '=' has no value");
    assert_eq!(http_str("url_param(a)", &Ctx::http("GET /p HTTP/1.1\r\n\r\n")), None);
    let jsession = Ctx::http("GET /app;jsessionid=xyz HTTP/1.1\r\n\r\n");
    assert_eq!(http_str("url_param(jsessionid,;)", &jsession), some("xyz"));
    assert_eq!(http_str("url_param(jsessionid)", &jsession), None);
}

#[test]
fn request_body() {
    let c = Ctx::http("POST / HTTP/1.1\r\nContent-Length: 7\r\n\r\nk=v&x=1");
    assert_eq!(http_sample("req.body", &c), Some(Sample::Bin(b"k=v&x=1".to_vec())));
    assert_eq!(http_int("req.body_len", &c), Some(7));
    assert_eq!(eval("if { req.body -m sub x=1 }", &c), Yes);
    let unbuffered = Ctx::http("POST / HTTP/1.1\r\n");
    assert_eq!(http_sample("req.body", &unbuffered), None);
    assert_eq!(http_sample("req.body_len", &unbuffered), None);
}

#[test]
fn body_params_of_a_url_encoded_body() {
    let c = Ctx::http("POST / HTTP/1.1\r\nContent-Length: 21\r\n\r\nUser=bob&x=1&x=2&u=al");
    assert_eq!(http_str("req.body_param(x)", &c), some("1"), "the first occurrence");
    assert_eq!(http_str("req.body_param(user)", &c), None, "names are case-sensitive");
    assert_eq!(http_str("req.body_param(user,i)", &c), some("bob"));
    assert_eq!(http_str("req.body_param", &c), some("bob"), "without a name, the first parameter");
    assert_eq!(eval("if { req.body_param(x) 2 }", &c), Yes, "ACLs see every occurrence");
    assert_eq!(eval("if { req.body_param(x) 3 }", &c), No);
    assert_eq!(http_str("req.body_param(x)", &Ctx::http("POST / HTTP/1.1\r\n")), None, "no buffered body");
}

const HASH6: &str = "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";
const HASH5: &str = "$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA";
const HASH1: &str = "$1$saltsalt$9xy1btjgzLYfb7hivXtC//";

fn userlist() -> Userlist {
    let span = || Span::new("test".into(), 1);
    let user = |name: &str, password: UserPassword, groups: &[&str]| User {
        name: name.into(),
        password,
        groups: groups.iter().map(|g| g.to_string()).collect(),
        span: span(),
    };
    Userlist {
        name: "L".into(),
        span: span(),
        groups: vec![
            UserGroup { name: "admin".into(), users: vec![], span: span() },
            UserGroup { name: "ops".into(), users: vec!["bob".into()], span: span() },
        ],
        users: vec![
            user("alice", UserPassword::Insecure("secret".into()), &["admin"]),
            user("bob", UserPassword::Hashed(HASH6.into()), &[]),
            user("carol", UserPassword::Hashed(HASH5.into()), &[]),
            user("dave", UserPassword::Hashed(HASH1.into()), &[]),
        ],
    }
}

fn with_auth(authorization: &str) -> Ctx {
    let mut c = Ctx::http(&format!("GET / HTTP/1.1\r\nAuthorization: {authorization}\r\n\r\n"));
    c.userlists.push(userlist());
    c
}

#[test]
fn basic_auth_against_userlists() {
    let b64 = |s: &str| String::from_utf8(super::convert::base64(s.as_bytes())).unwrap();
    let basic = |cred: &str| with_auth(&format!("Basic {}", b64(cred)));
    for (cred, want) in [
        ("alice:secret", Yes),
        ("alice:Secret", No),
        ("alice:", No),
        ("bob:secret", Yes),
        ("bob:hunter2", No),
        ("carol:secret", Yes),
        ("dave:secret", No),
        ("eve:secret", No),
        ("alicesecret", No),
    ] {
        assert_eq!(eval("if { http_auth(L) }", &basic(cred)), want, "{cred}");
    }
    assert_eq!(eval("if { http_auth(L) }", &with_auth("basic YWxpY2U6c2VjcmV0")), Yes, "the scheme ignores case");
    assert_eq!(eval("if { http_auth(L) }", &with_auth("Basic !!!")), No);
    assert_eq!(eval("if { http_auth(L) }", &with_auth("Bearer YWxpY2U6c2VjcmV0")), No);
    assert_eq!(eval("if { http_auth(nope) }", &basic("alice:secret")), No, "an unknown userlist");
    assert_eq!(
        eval("if { http_auth(L) }", &{
            let mut c = Ctx::http("GET / HTTP/1.1\r\n\r\n");
            c.userlists.push(userlist());
            c
        }),
        No
    );
    // Groups: from the user's `groups` or the group's `users`.
    assert_eq!(eval("if { http_auth_group(L) admin }", &basic("alice:secret")), Yes);
    assert_eq!(eval("if { http_auth_group(L) ops }", &basic("alice:secret")), No);
    assert_eq!(eval("if { http_auth_group(L) ops admin }", &basic("bob:secret")), Yes);
    assert_eq!(eval("if { http_auth_group(L) ops }", &basic("bob:wrong")), No);
    assert_eq!(http_str("http_auth_group(L)", &basic("bob:secret")), some("bob"));
    assert_eq!(http_str("http_auth_user", &basic("bob:whatever")), some("bob"));
    assert_eq!(http_str("http_auth_type", &basic("bob:whatever")), some("Basic"));
    assert_eq!(http_str("http_auth_type", &with_auth("Bearer abc")), some("Bearer"));
    assert_eq!(http_str("http_auth_type", &Ctx::http("GET / HTTP/1.1\r\n\r\n")), None);
}

// Converters over HTTP values.

#[test]
fn url_converters() {
    let c = Ctx::http("GET / HTTP/1.1\r\nX-A: a%20b+c\r\nX-Q: /p?x=a+b%2Bc\r\nX-Bad: %zz\r\nX-Short: ab%4\r\nX-E: a b&c/d~é\r\n\r\n");
    assert_eq!(http_str("req.fhdr(x-a),url_dec", &c), some("a b+c"));
    assert_eq!(http_str("req.fhdr(x-a),url_dec(1)", &c), some("a b c"));
    assert_eq!(http_str("req.fhdr(x-q),url_dec", &c), some("/p?x=a b+c"), "'+' is a space after the '?'");
    assert_eq!(http_str("req.fhdr(x-bad),url_dec", &c), None);
    assert_eq!(http_str("req.fhdr(x-short),url_dec", &c), None);
    assert_eq!(http_str("req.fhdr(x-e),url_enc", &c), some("a%20b%26c%2Fd~%C3%A9"));
    assert_eq!(http_str("req.fhdr(x-e),url_enc,url_dec", &c), some("a b&c/d~é"));
    assert_eq!(http_str("str(plain-1.0_~),url_enc", &c), some("plain-1.0_~"));
}

#[test]
fn json_converter() {
    let body = |b: &[u8]| Ctx { req: Some(Msg { body: Some(b.to_vec()), ..Msg::default() }), ..Ctx::new() };
    let json = |b: &[u8], code: &str| http_str(&format!("req.body,json{code}"), &body(b));
    assert_eq!(json(b"a\"b\\c/d\n\r\t\x08\x0c\x01", ""), some("a\\\"b\\\\c\\/d\\n\\r\\t\\b\\f\\u0001"));
    assert_eq!(json("é".as_bytes(), ""), some("\\u00c3\\u00a9"), "ascii: each byte");
    assert_eq!(json("é€".as_bytes(), "(utf8)"), some("\\u00e9\\u20ac"));
    assert_eq!(json(b"a\xffb", "(utf8)"), None);
    assert_eq!(json(b"a\xffb", "(utf8s)"), some("ab"));
    assert_eq!(json(b"a\xc0\xafb", "(utf8)"), None, "overlong");
    assert_eq!(json(b"a\xc0\xafb", "(utf8p)"), some("a\\/b"));
    assert_eq!(json(b"a\xed\xa0\x80b", "(utf8p)"), None, "a surrogate");
    assert_eq!(json(b"a\xed\xa0\x80b", "(utf8ps)"), some("ab"));
    assert_eq!(json("a😀".as_bytes(), "(utf8)"), None, "beyond 16 bits");
    assert_eq!(json("a😀".as_bytes(), "(utf8s)"), some("a"));
    assert_eq!(json(b"ab\xe2\x82", "(utf8s)"), some("ab"), "a truncated sequence");
}

#[test]
fn digest_and_base64_converters() {
    let c = Ctx::new();
    let hex = |conv: &str| http_str(&format!("str(abc),{conv},hex"), &c).unwrap().to_ascii_lowercase();
    assert_eq!(hex("sha1"), "a9993e364706816aba3e25717850c26c9cd0d89d");
    assert_eq!(hex("sha2"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_eq!(hex("sha2(256)"), hex("sha2"));
    assert_eq!(hex("sha2(224)"), "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7");
    assert!(hex("sha2(384)").starts_with("cb00753f45a35e8bb5a03d699ac65007272c32ab"));
    assert!(hex("sha2(512)").starts_with("ddaf35a193617abacc417349ae20413112e6fa4e"));
    assert_eq!(http_sample("str(Zm9vYg==),b64dec", &c), Some(Sample::Bin(b"foob".to_vec())));
    assert_eq!(http_sample("str(Zm9vYmFy),b64dec", &c), Some(Sample::Bin(b"foobar".to_vec())));
    assert_eq!(http_sample("str(Zm9vYmE=),b64dec", &c), Some(Sample::Bin(b"fooba".to_vec())));
    assert_eq!(http_sample("str(Zm9vYg),b64dec", &c), None, "length not a multiple of 4");
    assert_eq!(http_sample("str(Zm9v!g==),b64dec", &c), None);
    assert_eq!(http_sample("str(Zg==Zg==),b64dec", &c), None, "padding inside");
    assert_eq!(http_sample("str(hello),base64,b64dec", &c), Some(Sample::Bin(b"hello".to_vec())));
}

#[test]
fn host_and_port_converters() {
    for (host, h, p) in [
        ("WWW.Example.com:8080", "www.example.com", 8080),
        ("example.com", "example.com", 0),
        ("example.com:", "example.com", 0),
        ("10.0.0.1:80", "10.0.0.1", 80),
        ("[::1]:443", "[::1]", 443),
        ("[::1]", "[::1]", 0),
    ] {
        let c = Ctx::http(&format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n"));
        assert_eq!(http_str("req.hdr(host),host_only", &c), some(h), "{host}");
        assert_eq!(http_int("req.hdr(host),port_only", &c), Some(p), "{host}");
    }
}

// Maps.

struct MapDir(std::path::PathBuf);

impl MapDir {
    fn new(name: &str) -> MapDir {
        let d = std::env::temp_dir().join(format!("sluiced-maps-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        MapDir(d)
    }
    fn file(&self, name: &str, text: &str) -> String {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }
}

impl Drop for MapDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn compile_err(text: &str) -> String {
    CompiledSample::compile(&parse_sample(text).unwrap_or_else(|e| panic!("{text}: {e}"))).unwrap_err()
}

#[test]
fn string_maps() {
    let d = MapDir::new("str");
    let hosts =
        d.file("hosts.map", "# hosts\n\nwww.example.com   be_www\n  api.example.com\tbe_api  \nwww.example.com be_dup\nbare\nspaced value is  the rest \r\n");
    let c = Ctx::http("GET / HTTP/1.1\r\nHost: WWW.example.com\r\n\r\n");
    assert_eq!(http_str(&format!("req.hdr(host),lower,map({hosts})"), &c), some("be_www"), "the first line of a key wins");
    assert_eq!(http_str(&format!("req.hdr(host),map({hosts})"), &c), None, "exact, case-sensitive");
    assert_eq!(http_str(&format!("req.hdr(host),map({hosts},be_default)"), &c), some("be_default"));
    assert_eq!(http_str(&format!("str(api.example.com),map_str({hosts})"), &c), some("be_api"));
    assert_eq!(http_str(&format!("str(api.example.com),map_str_str({hosts})"), &c), some("be_api"));
    assert_eq!(http_str(&format!("str(bare),map({hosts},x)"), &c), some(""), "a key without a value");
    assert_eq!(http_str(&format!("str(spaced),map({hosts})"), &c), some("value is  the rest"));
    assert_eq!(http_str(&format!("str(#),map({hosts})"), &c), None);
    assert_eq!(eval(&format!("if {{ req.hdr(host),lower,map({hosts}) -m found }}"), &c), Yes);
    assert_eq!(eval(&format!("if {{ req.hdr(host),lower,map({hosts}) be_www }}"), &c), Yes);
}

#[test]
fn prefix_and_list_maps() {
    let d = MapDir::new("list");
    let beg = d.file("beg.map", "/api v0\n/api/v2 v2\n/api/v2/admin admin\n/ root\n");
    let c = Ctx::new();
    let m = |input: &str, conv: &str, file: &str| http_str(&format!("str({input}),{conv}({file})"), &c);
    assert_eq!(m("/api/v2/admin/x", "map_beg", &beg), some("admin"), "the longest prefix");
    assert_eq!(m("/api/v2/x", "map_beg", &beg), some("v2"));
    assert_eq!(m("/apix", "map_beg", &beg), some("v0"));
    assert_eq!(m("/other", "map_beg", &beg), some("root"));
    assert_eq!(m("other", "map_beg", &beg), None);
    let sub = d.file("sub.map", "bot crawler\nGoogle google\n");
    assert_eq!(m("Googlebot/2.1", "map_sub", &sub), some("crawler"), "the first line that matches");
    assert_eq!(m("Google", "map_sub", &sub), some("google"));
    let end = d.file("end.map", ".png image\n.js script\n");
    assert_eq!(m("/a/logo.png", "map_end", &end), some("image"));
    assert_eq!(m("/a/logo.pn", "map_end", &end), None);
    let dir = d.file("dir.map", "img images\nstatic static\n");
    assert_eq!(m("/static/img/a.png", "map_dir", &dir), some("images"));
    assert_eq!(m("/imgs/a.png", "map_dir", &dir), None);
    let dom = d.file("dom.map", "example.com ex\ncom tld\n");
    assert_eq!(m("www.example.com", "map_dom", &dom), some("ex"));
    assert_eq!(m("www.other.com", "map_dom", &dom), some("tld"));
    assert_eq!(m("www.example.org", "map_dom", &dom), None);
    let reg = d.file("reg.map", "^/api/v[0-9]+/ api\n\\.php$ php\n. any\n");
    assert_eq!(m("/api/v12/x", "map_reg", &reg), some("api"));
    assert_eq!(m("/index.php", "map_reg", &reg), some("php"));
    assert_eq!(m("/x", "map_reg", &reg), some("any"));
}

#[test]
fn typed_maps() {
    let d = MapDir::new("typed");
    let ints = d.file("int.map", "200 ok\n500:599 server\n:99 low\n404 notfound\n");
    let c = Ctx::new();
    assert_eq!(http_str(&format!("int(404),map_int({ints})"), &c), some("notfound"));
    assert_eq!(http_str(&format!("int(503),map_int_str({ints})"), &c), some("server"));
    assert_eq!(http_str(&format!("int(-5),map_int({ints})"), &c), some("low"));
    assert_eq!(http_str(&format!("str(200),map_int({ints})"), &c), some("ok"), "strings are cast to integers");
    assert_eq!(http_str(&format!("str(abc),map_int({ints},dflt)"), &c), None, "an input that cannot be cast fails, default or not");
    assert_eq!(http_str(&format!("int(300),map_int({ints},dflt)"), &c), some("dflt"));
    let nets =
        d.file("ip.map", "10.0.0.0/8 lan\n10.1.0.0/16 dept\n10.1.2.3 host\n192.168.0.0/255.255.0.0 home\n2001:db8::/32 v6\n::ffff:172.16.0.0/108 mapped\n");
    let ip = |addr: &str| http_str(&format!("str({addr}),map_ip({nets})"), &c);
    assert_eq!(ip("10.9.9.9"), some("lan"));
    assert_eq!(ip("10.1.9.9"), some("dept"), "the finest network");
    assert_eq!(ip("10.1.2.3"), some("host"));
    assert_eq!(ip("192.168.7.7"), some("home"));
    assert_eq!(ip("2001:db8::7"), some("v6"));
    assert_eq!(ip("::ffff:10.1.2.3"), some("host"), "a mapped IPv6 address is looked up as IPv4");
    assert_eq!(ip("172.16.1.1"), some("mapped"), "an IPv4 address is looked up as mapped IPv6");
    assert_eq!(ip("11.0.0.1"), None);
    assert_eq!(ip("nope"), None);
    assert_eq!(http_str(&format!("src,map_ip({nets})"), &c), some("host"));
    assert_eq!(eval(&format!("if {{ src,map_ip({nets}) host }}"), &c), Yes);
    let weights = d.file("w.map", "a 10\nb -3\n");
    assert_eq!(http_int(&format!("str(b),map_str_int({weights})"), &c), Some(-3));
    assert_eq!(http_int(&format!("str(z),map_str_int({weights},7)"), &c), Some(7));
    assert_eq!(http_int(&format!("str(z),map_str_int({weights})"), &c), None);
    assert_eq!(eval(&format!("if {{ str(a),map_str_int({weights}) gt 5 }}"), &c), Yes);
    let addrs = d.file("a.map", "a 10.0.0.1\nb 2001:db8::1\n");
    assert_eq!(http_sample(&format!("str(b),map_str_ip({addrs})"), &c), Some(Sample::Ip("2001:db8::1".parse().unwrap())));
    assert_eq!(http_sample(&format!("str(z),map_str_ip({addrs},127.0.0.1)"), &c), Some(Sample::Ip("127.0.0.1".parse().unwrap())));
    assert_eq!(http_sample(&format!("str(10.0.0.1),map_ip_ip({nets2})", nets2 = d.file("ii.map", "10.0.0.0/8 10.255.255.255\n")), &c), {
        Some(Sample::Ip("10.255.255.255".parse().unwrap()))
    });
}

#[test]
fn map_errors_are_compile_errors_naming_the_file() {
    let d = MapDir::new("errors");
    let missing = d.0.join("missing.map").display().to_string();
    let e = compile_err(&format!("str(a),map({missing})"));
    assert!(e.contains("missing.map") && e.contains("cannot open"), "{e}");
    assert!(compile_err("str(a),map(/dev/null)").contains("not a regular file"));
    let bad_int = d.file("bad.map", "a 1\nb two\n");
    let e = compile_err(&format!("str(a),map_str_int({bad_int})"));
    assert!(e.contains("bad.map' line 2") && e.contains("'two' is not an integer"), "{e}");
    let bad_key = d.file("badkey.map", "10.0.0.0/33 x\n");
    assert!(compile_err(&format!("src,map_ip({bad_key})")).contains("line 1"));
    let bad_re = d.file("badre.map", "( x\n");
    assert!(compile_err(&format!("str(a),map_reg({bad_re})")).contains("invalid regex"));
    let good = d.file("good.map", "a 1\n");
    assert!(compile_err(&format!("str(a),map_str_int({good},x)")).contains("default value"));
    let good_ip = d.file("goodip.map", "a 10.0.0.1\n");
    let e = compile_err(&format!("str(a),map_str_ip({good_ip},x)"));
    assert!(e.contains("default value"), "{e}");
    // The same file read for a string output is fine.
    assert!(CompiledSample::compile(&parse_sample(&format!("str(a),map({bad_int})")).unwrap()).is_ok());
}

#[test]
fn map_files_are_read_at_compile_time() {
    let d = MapDir::new("compile");
    let f = d.file("m.map", "k first\n");
    let s = CompiledSample::compile(&parse_sample(&format!("str(k),map({f})")).unwrap()).unwrap();
    std::fs::remove_file(&f).unwrap();
    assert_eq!(s.eval(&Ctx::new()), Ok(Some(Sample::Str("first".into()))), "evaluation does not read the file");
    std::fs::write(&f, "k second and longer\n").unwrap();
    assert_eq!(http_str(&format!("str(k),map({f})"), &Ctx::new()), some("second and longer"), "a changed file is read again");
    assert_eq!(s.eval(&Ctx::new()), Ok(Some(Sample::Str("first".into()))));
}

mod http_never_panic {
    use super::*;
    use proptest::prelude::*;

    const SAMPLES: &[&str] = &[
        "path",
        "pathq",
        "query",
        "base",
        "base32",
        "url_param",
        "url_param(a)",
        "url_param(a,;,i)",
        "req.hdr(x)",
        "req.hdr(x,-2)",
        "req.hdr(x,3)",
        "req.fhdr(x)",
        "req.hdr_ip(x)",
        "req.hdr_val(x)",
        "req.hdr_cnt",
        "req.hdrs",
        "req.cook",
        "req.cook(a)",
        "req.cook_cnt",
        "res.cook(a)",
        "req.ver",
        "http_auth_user",
        "http_auth_type",
        "http_auth(L)",
        "http_auth_group(L)",
        "req.hdr(x),url_dec",
        "req.hdr(x),json(utf8ps)",
        "req.hdr(x),json(utf8)",
        "req.hdr(x),b64dec",
        "req.hdr(x),host_only",
        "req.hdr(x),port_only",
        "req.hdr(x),url_enc",
    ];
    const CONDITIONS: &[&str] = &[
        "if { hdr(x) a } || { cook(a) -m found } || { url_param(a) -m beg x } || { hdr_ip(x) 10.0.0.0/8 }",
        "if { http_auth_group(L) admin } || METH_GET || HTTP_URL_ABS || HTTP_CONTENT || { method -i x }",
    ];

    fn text() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                Just('a'),
                Just('='),
                Just(';'),
                Just(','),
                Just('"'),
                Just('\\'),
                Just('%'),
                Just('?'),
                Just(':'),
                Just('['),
                Just(']'),
                Just('/'),
                Just('$'),
                Just(' '),
                Just('1'),
                Just('.'),
                Just('é'),
                any::<char>()
            ],
            0..40,
        )
        .prop_map(|v| v.into_iter().filter(|c| !c.is_control()).collect())
    }

    proptest! {
        #[test]
        fn http_fetches_never_panic(uri in text(), x in text(), cookie in text(), auth in text(), set_cookie in text()) {
            let mut req = Msg { method: b"GET".to_vec(), uri: uri.into_bytes(), version: b"HTTP/1.1".to_vec(), first: true, ..Msg::default() };
            for (n, v) in [("x", x), ("Cookie", cookie), ("Authorization", auth.clone()), ("Authorization", format!("Basic {auth}")), ("Host", "h".into())] {
                req.headers.push((n.as_bytes().to_vec(), v.into_bytes()));
            }
            let res = Msg { status: 200, version: b"HTTP/1.1".to_vec(), headers: vec![(b"Set-Cookie".to_vec(), set_cookie.into_bytes())], ..Msg::default() };
            let c = Ctx { req: Some(req), res: Some(res), userlists: vec![userlist()], ..Ctx::new() };
            for s in SAMPLES {
                let _ = sample(s, &c);
            }
            for t in CONDITIONS {
                prop_assert_ne!(cond_with(t, &[]).eval(&c), Tri::Miss);
            }
        }
    }
}

#[test]
fn use_backend_with_a_lone_sample_names_the_backend_by_the_sample_text() {
    let d = MapDir::new("use-backend");
    let hosts = d.file("hosts.map", "example.com b_com\nexample.org 7\n");
    let rt = crate::route::RouteTable::compile(&crate::config::testing::ok(&format!(
        "defaults\n  mode http\nfrontend f\n  bind 127.0.0.1:8080\n  use_backend %[req.hdr(host),lower,map({hosts})]\n  default_backend dflt\n\
         frontend g\n  bind 127.0.0.1:8081\n  use_backend %[req.hdr(x-n),add(2)]\n  default_backend dflt\n\
         backend b_com\nbackend 7\nbackend 42\nbackend dflt\n"
    )))
    .unwrap();
    let pick = |fe: usize, raw: &str| {
        let f = &rt.frontends[fe];
        f.select_backend(&rt.backends, &Ctx::http(raw)).map(|i| rt.backends[i].name.clone())
    };
    assert_eq!(pick(0, "GET / HTTP/1.1\r\nHost: Example.COM\r\n\r\n").as_deref(), Some("b_com"));
    assert_eq!(pick(0, "GET / HTTP/1.1\r\nHost: example.org\r\n\r\n").as_deref(), Some("7"));
    assert_eq!(pick(0, "GET / HTTP/1.1\r\nHost: example.net\r\n\r\n").as_deref(), Some("dflt"), "not in the map: the default backend");
    assert_eq!(pick(0, "GET / HTTP/1.1\r\n\r\n").as_deref(), Some("dflt"), "no Host header: '-', no such backend");
    assert_eq!(pick(1, "GET / HTTP/1.1\r\nx-n: 40\r\n\r\n").as_deref(), Some("42"), "an integer names the backend by its digits");
}

#[test]
fn a_map_string_value_is_shared_with_the_index_and_is_a_string() {
    use super::eval::SampleRef;
    use std::borrow::Cow;
    let d = MapDir::new("shared");
    let hosts = d.file("hosts.map", "example.com b_com\n");
    let c = Ctx::http("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n");
    let e = CompiledSample::compile(&parse_sample(&format!("req.hdr(host),map({hosts})")).unwrap()).unwrap();
    let v = e.eval_ref(&c).unwrap().unwrap();
    assert!(matches!(v, SampleRef::SharedStr(_)), "{v:?}");
    assert_eq!(v, SampleRef::Str(Cow::Borrowed(b"b_com")));
    assert_ne!(v, SampleRef::Bin(Cow::Borrowed(b"b_com")));
    assert_eq!(v.to_sample(), Sample::Str("b_com".into()));
    let n = CompiledSample::compile(&parse_sample(&format!("str(x),map({hosts},12)")).unwrap()).unwrap();
    assert_eq!(n.eval_ref(&c).unwrap().unwrap().as_int(), Some(12), "a default string value casts as a string");
}

#[test]
fn server_and_queue_fetches() {
    let c = Ctx::new();
    let app = &c.backends[0];
    app.servers[1].cur_conns.store(7, Ordering::Relaxed);
    assert_eq!(sample("srv_conn(be_app/s1)", &c), Ok(Some(Sample::Int(7))));
    assert_eq!(sample("srv_conn(s1)", &c), Ok(Some(Sample::Int(7))), "a server of the current backend");
    assert_eq!(sample("srv_conn(be_app/nope)", &c), Ok(None));
    assert_eq!(sample("srv_is_up(be_app/s0)", &c), Ok(Some(Sample::Bool(true))));
    app.servers[0].set_up(false);
    assert_eq!(sample("srv_is_up(be_app/s0)", &c), Ok(Some(Sample::Bool(false))));
    app.servers[2].set_admin(AdminState::Maint);
    assert_eq!(eval("if { srv_is_up(be_app/s2) }", &c), No);
    app.servers[2].set_admin(AdminState::Drain);
    assert_eq!(eval("if { srv_is_up(be_app/s2) }", &c), Yes, "a draining server is up");
    app.servers[2].set_admin(AdminState::Ready);
    // Two usable servers (s1, s2); 3 in the backend queue and 2 in s1's: avg_queue is 5/2 rounded up.
    app.queued.store(3, Ordering::Relaxed);
    app.servers[1].queued.store(2, Ordering::Relaxed);
    assert_eq!(sample("queue", &c), Ok(Some(Sample::Int(5))));
    assert_eq!(sample("avg_queue(be_app)", &c), Ok(Some(Sample::Int(3))));
    assert_eq!(sample("queue(be_empty)", &c), Ok(Some(Sample::Int(0))));
    // No usable server: twice the queue.
    app.servers[1].set_up(false);
    app.servers[2].set_up(false);
    assert_eq!(sample("avg_queue", &c), Ok(Some(Sample::Int(10))));
}

#[test]
fn url_ip_and_port_come_from_an_absolute_uri() {
    let ip = |uri: &str| sample("url_ip", &Ctx::http(&format!("GET {uri} HTTP/1.1\r\nHost: h\r\n\r\n")));
    let port = |uri: &str| sample("url_port", &Ctx::http(&format!("GET {uri} HTTP/1.1\r\nHost: h\r\n\r\n")));
    assert_eq!(ip("http://10.0.0.1:8080/x"), Ok(Some(Sample::Ip("10.0.0.1".parse().unwrap()))));
    assert_eq!(ip("http://user@[2001:db8::1]/"), Ok(Some(Sample::Ip("2001:db8::1".parse().unwrap()))));
    assert_eq!(ip("http://example.com/"), Ok(None), "not an IP literal");
    assert_eq!(ip("/x"), Ok(None), "origin form");
    assert_eq!(port("http://10.0.0.1:8080/x"), Ok(Some(Sample::Int(8080))));
    assert_eq!(port("HTTP://example.com?q"), Ok(Some(Sample::Int(80))));
    assert_eq!(port("https://[::1]"), Ok(Some(Sample::Int(443))));
    assert_eq!(port("https://[::1]:8443/"), Ok(Some(Sample::Int(8443))));
    assert_eq!(port("http://h:99999/"), Ok(None), "out of range");
    assert_eq!(port("ftp://h/"), Ok(None));
    assert_eq!(port("/x"), Ok(None));
}

#[test]
fn header_names_and_announced_body_size() {
    let c = Ctx::http("POST / HTTP/1.1\r\nHost: h\r\nX-Trace: 1\r\nContent-Length: 12\r\n\r\nabc");
    assert_eq!(http_str("req.hdr_names", &c), some("host,x-trace,content-length"));
    assert_eq!(http_str("req.hdr_names(;)", &c), some("host;x-trace;content-length"));
    assert_eq!(sample("req.body_size", &c), Ok(Some(Sample::Int(12))), "announced, not buffered");
    let chunked = Ctx::http("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nhello");
    assert_eq!(sample("req.body_size", &chunked), Ok(Some(Sample::Int(5))), "the buffered body");
    assert_eq!(sample("req.body_size", &Ctx::http("GET / HTTP/1.1\r\nHost: h\r\n")), Ok(None));
    assert_eq!(http_str("req.uri", &Ctx::http("GET /a?b HTTP/1.1\r\n\r\n")), some("/a?b"));
}

#[test]
fn is_local_is_true_for_an_address_of_this_host_only() {
    let c = Ctx { src: Some("127.0.0.9:40000".parse().unwrap()), dst: Some("192.0.2.1:443".parse().unwrap()), ..Ctx::new() };
    assert_eq!(sample("src_is_local", &c), Ok(Some(Sample::Bool(true))), "all of 127/8 is the host's");
    assert_eq!(sample("dst_is_local", &c), Ok(Some(Sample::Bool(false))), "a documentation address is nobody's");
    assert_eq!(eval("if { src_is_local } !{ dst_is_local }", &c), Yes);
    assert_eq!(sample("src_is_local", &Ctx { src: None, ..Ctx::new() }), Ok(None));
}

#[test]
fn fc_rtt_is_absent_without_a_client_socket() {
    // The daemon's streams have one (tests/l7_rules.rs reads it through a real connection).
    assert_eq!(sample("fc_rtt", &Ctx::new()), Ok(None));
    assert_eq!(sample("fc_rttvar(us)", &Ctx::new()), Ok(None));
}
