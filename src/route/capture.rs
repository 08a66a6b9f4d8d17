//! Captures: `capture request header`, `capture response header`, `capture cookie`, `declare
//! capture`, and the `capture` action, read back with `capture.req.hdr(<idx>)` and
//! `capture.res.hdr(<idx>)`, and by the logs' `%hr`/`%hs` (`%CC`/`%CS` for the cookie).
//!
//! As in HAProxy, the slots belong to the frontend and are numbered in configuration order:
//! request slots across `capture request header`, `declare capture request` and `http-request
//! capture ... len`; response slots across `capture response header` and `declare capture
//! response`. `capture ... id <n>` fills slot `n`, from the frontend or from a backend. Values are
//! kept per transaction, cut to the slot's length.
//!
//! A frontend without captures has empty slot lists: nothing is allocated for them, per
//! connection or per request. With captures, each slot keeps its buffer from one transaction to
//! the next.

use crate::config::model::{Mode, Proxy};
use crate::l4::action::{CaptureSlot, CommonAction};
use crate::l7::config::HttpAction;
use crate::log::config::CaptureDir;
use crate::route::eval::HttpMsg;

/// A frontend's capture slots, compiled.
#[derive(Debug, Default)]
pub struct CaptureConfig {
    /// The length of each request slot.
    pub req_lens: Vec<usize>,
    /// The length of each response slot.
    pub res_lens: Vec<usize>,
    /// `capture request header <name>`: the header name and its slot.
    pub req_headers: Vec<(String, usize)>,
    /// `capture response header <name>`: the header name and its slot.
    pub res_headers: Vec<(String, usize)>,
    /// `capture cookie <name> len <n>`: the name prefix and the length kept.
    pub cookie: Option<(String, usize)>,
}

/// The longest cookie capture, as HAProxy's default `tune.http.cookielen` (63) allows.
pub const COOKIE_LEN_MAX: usize = 63;

impl CaptureConfig {
    /// Numbers the slots of a proxy with a frontend in configuration order. Also returns the slot
    /// of each `http-request capture ... len` rule, in rule order.
    pub fn compile(p: &Proxy) -> (CaptureConfig, Vec<usize>) {
        let mut cfg = CaptureConfig::default();
        if !p.kind.has_frontend() || p.mode != Mode::Http {
            return (cfg, Vec::new());
        }
        enum Req<'a> {
            Header(&'a str),
            Declared,
            Rule,
        }
        // Every capture of one proxy is in one file (a section does not span files): the line
        // orders them.
        let mut req: Vec<(u32, usize, Req<'_>)> = Vec::new();
        for h in &p.log.request_headers {
            req.push((h.span.line, h.len as usize, Req::Header(&h.name)));
        }
        for d in p.log.declared.iter().filter(|d| d.dir == CaptureDir::Request) {
            req.push((d.span.line, d.len as usize, Req::Declared));
        }
        for r in &p.http.request_rules {
            if let HttpAction::Common(CommonAction::Capture { slot: CaptureSlot::Len(n), .. }) = &r.action {
                req.push((r.span.line, *n as usize, Req::Rule));
            }
        }
        req.sort_by_key(|(line, _, _)| *line);
        let mut rule_slots = Vec::new();
        for (slot, (_, len, what)) in req.into_iter().enumerate() {
            cfg.req_lens.push(len);
            match what {
                Req::Header(name) => cfg.req_headers.push((name.to_owned(), slot)),
                Req::Declared => {}
                Req::Rule => rule_slots.push(slot),
            }
        }
        let mut res: Vec<(u32, usize, Option<&str>)> = Vec::new();
        for h in &p.log.response_headers {
            res.push((h.span.line, h.len as usize, Some(&h.name)));
        }
        for d in p.log.declared.iter().filter(|d| d.dir == CaptureDir::Response) {
            res.push((d.span.line, d.len as usize, None));
        }
        res.sort_by_key(|(line, _, _)| *line);
        cfg.cookie = p.log.cookie.as_ref().map(|c| (c.name.clone(), (c.len as usize).min(COOKIE_LEN_MAX)));
        for (slot, (_, len, name)) in res.into_iter().enumerate() {
            cfg.res_lens.push(len);
            if let Some(name) = name {
                cfg.res_headers.push((name.to_owned(), slot));
            }
        }
        (cfg, rule_slots)
    }

    pub fn is_empty(&self) -> bool {
        self.req_lens.is_empty() && self.res_lens.is_empty() && self.cookie.is_none()
    }
}

#[derive(Debug)]
struct Slot {
    len: usize,
    value: Vec<u8>,
    set: bool,
}

/// The captured values of the current transaction of a connection.
#[derive(Debug, Default)]
pub struct Captured {
    req: Vec<Slot>,
    res: Vec<Slot>,
    /// `capture cookie`: the first matching `name=value` of the request and of the response.
    req_cookie: Option<Vec<u8>>,
    res_cookie: Option<Vec<u8>>,
}

impl Captured {
    /// The slots of a frontend, empty.
    pub fn new(cfg: &CaptureConfig) -> Captured {
        let slots = |lens: &[usize]| lens.iter().map(|&len| Slot { len, value: Vec::new(), set: false }).collect();
        Captured { req: slots(&cfg.req_lens), res: slots(&cfg.res_lens), req_cookie: None, res_cookie: None }
    }

    /// A new transaction: every slot is empty again (their buffers stay).
    pub fn new_transaction(&mut self) {
        for s in self.req.iter_mut().chain(self.res.iter_mut()) {
            s.value.clear();
            s.set = false;
        }
        self.req_cookie = None;
        self.res_cookie = None;
    }

    /// The cookie `capture cookie` kept from the request or the response of this transaction.
    pub fn cookie(&self, dir: CaptureDir) -> Option<&[u8]> {
        match dir {
            CaptureDir::Request => self.req_cookie.as_deref(),
            CaptureDir::Response => self.res_cookie.as_deref(),
        }
    }

    fn slots(&mut self, dir: CaptureDir) -> &mut [Slot] {
        match dir {
            CaptureDir::Request => &mut self.req,
            CaptureDir::Response => &mut self.res,
        }
    }

    /// Stores `value`, cut to the slot's length; a slot the frontend does not have is ignored
    /// (an `id` from a backend behind a frontend with fewer slots), as in HAProxy.
    pub fn store(&mut self, dir: CaptureDir, slot: usize, value: &[u8]) {
        if let Some(s) = self.slots(dir).get_mut(slot) {
            s.value.clear();
            s.value.extend_from_slice(&value[..value.len().min(s.len)]);
            s.set = true;
        }
    }

    /// The value of a slot, when something was captured in it during this transaction.
    pub fn get(&self, dir: CaptureDir, slot: usize) -> Option<&[u8]> {
        let slots = match dir {
            CaptureDir::Request => &self.req,
            CaptureDir::Response => &self.res,
        };
        slots.get(slot).filter(|s| s.set).map(|s| s.value.as_slice())
    }

    /// Fills the header slots and the cookie capture from a message head, before the rules run.
    /// A header sent several times leaves its last value, as in HAProxy.
    /// Inlined test, work out of line: a frontend without captures pays a few instructions per
    /// message.
    #[inline]
    pub fn headers(&mut self, cfg: &CaptureConfig, dir: CaptureDir, msg: &dyn HttpMsg) {
        let headers = match dir {
            CaptureDir::Request => &cfg.req_headers,
            CaptureDir::Response => &cfg.res_headers,
        };
        if !headers.is_empty() || cfg.cookie.is_some() {
            self.capture_headers(headers, cfg, dir, msg);
        }
    }

    #[inline(never)]
    fn capture_headers(&mut self, headers: &[(String, usize)], cfg: &CaptureConfig, dir: CaptureDir, msg: &dyn HttpMsg) {
        for i in 0..msg.header_count() {
            let (name, value) = msg.header(i);
            for (want, slot) in headers {
                if name.eq_ignore_ascii_case(want.as_bytes()) {
                    self.store(dir, *slot, value);
                }
            }
        }
        if let Some((prefix, len)) = &cfg.cookie {
            let found = match dir {
                CaptureDir::Request => request_cookie(msg, prefix.as_bytes()),
                CaptureDir::Response => response_cookie(msg, prefix.as_bytes()),
            };
            let kept = found.map(|c| c[..c.len().min(*len)].to_vec());
            match dir {
                CaptureDir::Request => self.req_cookie = kept,
                CaptureDir::Response => self.res_cookie = kept,
            }
        }
    }
}

/// The first cookie of the request's `Cookie` headers whose name starts with `prefix`, as
/// `name=value` (HAProxy compares the prefix bytes, so `capture cookie SID=` asks for exactly
/// `SID`).
fn request_cookie<'m>(msg: &'m dyn HttpMsg, prefix: &[u8]) -> Option<&'m [u8]> {
    (0..msg.header_count())
        .map(|i| msg.header(i))
        .filter(|(name, _)| name.eq_ignore_ascii_case(b"cookie"))
        .flat_map(|(_, value)| value.split(|&b| b == b';' || b == b','))
        .map(|pair| pair.trim_ascii())
        .find(|pair| pair.starts_with(prefix))
}

/// The first `Set-Cookie` of the response whose cookie name starts with `prefix`, as
/// `name=value` (its attributes left out).
fn response_cookie<'m>(msg: &'m dyn HttpMsg, prefix: &[u8]) -> Option<&'m [u8]> {
    (0..msg.header_count())
        .map(|i| msg.header(i))
        .filter(|(name, _)| name.eq_ignore_ascii_case(b"set-cookie"))
        .map(|(_, value)| value.split(|&b| b == b';').next().unwrap_or_default().trim_ascii())
        .find(|pair| pair.starts_with(prefix))
}

#[cfg(test)]
mod cookie_tests {
    use super::*;
    use crate::config::testing::ok;

    struct Head(Vec<(&'static [u8], &'static [u8])>);

    impl HttpMsg for Head {
        fn method(&self) -> &[u8] {
            b"GET"
        }
        fn uri(&self) -> &[u8] {
            b"/"
        }
        fn version(&self) -> &[u8] {
            b"HTTP/1.1"
        }
        fn status(&self) -> u16 {
            200
        }
        fn header_count(&self) -> usize {
            self.0.len()
        }
        fn header(&self, i: usize) -> (&[u8], &[u8]) {
            self.0[i]
        }
        fn first_request(&self) -> bool {
            true
        }
        fn body(&self) -> Option<&[u8]> {
            None
        }
    }

    fn cfg(line: &str) -> CaptureConfig {
        CaptureConfig::compile(&ok(&format!("frontend fe\n    mode http\n    bind :80\n    {line}\n")).proxies[0]).0
    }

    #[test]
    fn the_first_request_cookie_with_the_prefix_is_kept_as_name_equals_value_cut_to_len() {
        let c = cfg("capture cookie SID len 8");
        let mut cap = Captured::new(&c);
        let req = Head(vec![(b"Host", b"h"), (b"Cookie", b"lang=en; SIDX=abcdefghij; SID=1"), (b"cookie", b"SID=2")]);
        cap.headers(&c, CaptureDir::Request, &req);
        assert_eq!(cap.cookie(CaptureDir::Request), Some(&b"SIDX=abc"[..]), "a prefix match, cut to 8 bytes");
        let exact = cfg("capture cookie SID= len 32");
        let mut cap = Captured::new(&exact);
        cap.headers(&exact, CaptureDir::Request, &req);
        assert_eq!(cap.cookie(CaptureDir::Request), Some(&b"SID=1"[..]), "'SID=' asks for SID itself");
        cap.headers(&exact, CaptureDir::Request, &Head(vec![(b"Cookie", b"other=1")]));
        assert_eq!(cap.cookie(CaptureDir::Request), None);
    }

    #[test]
    fn a_response_cookie_is_taken_from_set_cookie_without_its_attributes() {
        let c = cfg("capture cookie SID len 64");
        assert_eq!(c.cookie, Some(("SID".to_string(), COOKIE_LEN_MAX)), "len is capped at 63, as tune.http.cookielen");
        let mut cap = Captured::new(&c);
        let res = Head(vec![(b"Set-Cookie", b"a=1; Path=/"), (b"set-cookie", b"SID=xyz; Path=/; HttpOnly")]);
        cap.headers(&c, CaptureDir::Response, &res);
        assert_eq!(cap.cookie(CaptureDir::Response), Some(&b"SID=xyz"[..]));
        cap.new_transaction();
        assert_eq!(cap.cookie(CaptureDir::Response), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::ok;

    fn captures_of(frontend: &str) -> (CaptureConfig, Vec<usize>) {
        let cfg = ok(&format!("frontend fe\n    mode http\n    bind :80\n{frontend}"));
        CaptureConfig::compile(&cfg.proxies[0])
    }

    #[test]
    fn request_slots_are_numbered_in_configuration_order() {
        let (c, rules) = captures_of(
            "    http-request capture req.hdr(x-a) len 4\n    capture request header Host len 8\n    declare capture request len 16\n    http-request capture path len 2\n",
        );
        assert_eq!(c.req_lens, [4, 8, 16, 2]);
        assert_eq!(c.req_headers, [("Host".to_string(), 1)]);
        assert_eq!(rules, [0, 3]);
    }

    #[test]
    fn response_slots_count_headers_and_declarations() {
        let (c, _) = captures_of("    declare capture response len 3\n    capture response header Server len 10\n");
        assert_eq!(c.res_lens, [3, 10]);
        assert_eq!(c.res_headers, [("Server".to_string(), 1)]);
        assert!(c.req_lens.is_empty());
    }

    #[test]
    fn values_are_cut_to_the_slot_length_and_reset_per_transaction() {
        let (cfg, _) = captures_of("    declare capture request len 3\n");
        let mut c = Captured::new(&cfg);
        assert_eq!(c.get(CaptureDir::Request, 0), None);
        c.store(CaptureDir::Request, 0, b"abcdef");
        assert_eq!(c.get(CaptureDir::Request, 0), Some(&b"abc"[..]));
        c.store(CaptureDir::Request, 7, b"ignored");
        c.store(CaptureDir::Response, 0, b"ignored");
        assert_eq!(c.get(CaptureDir::Response, 0), None);
        c.new_transaction();
        assert_eq!(c.get(CaptureDir::Request, 0), None);
    }

    fn compile_error(text: &str) -> String {
        crate::route::RouteTable::compile(&ok(text)).expect_err("compiles")
    }

    #[test]
    fn capture_len_in_a_backend_is_refused() {
        let e = compile_error("backend be\n    mode http\n    http-request capture path len 8\n    server s 127.0.0.1:1\n");
        assert!(e.contains("needs a frontend"), "{e}");
    }

    #[test]
    fn capture_id_must_name_a_declared_slot_in_a_frontend() {
        let fe = "frontend fe\n    mode http\n    bind :80\n    declare capture request len 8\n";
        let e = compile_error(&format!("{fe}    http-request capture path id 1\n"));
        assert!(e.contains("capture id '1'"), "{e}");
        let e = compile_error(&format!("{fe}    http-response capture status id 0\n"));
        assert!(e.contains("capture id '0'"), "{e}");
        assert!(crate::route::RouteTable::compile(&ok(&format!("{fe}    http-request capture path id 0\n"))).is_ok());
        let be = "backend be\n    mode http\n    http-request capture path id 5\n    server s 127.0.0.1:1\n";
        assert!(crate::route::RouteTable::compile(&ok(be)).is_ok(), "a backend cannot know its frontends' slots");
    }

    #[test]
    fn no_captures_no_slots() {
        let (cfg, _) = captures_of("");
        assert!(cfg.is_empty());
        let c = Captured::new(&cfg);
        assert_eq!((c.req.capacity(), c.res.capacity()), (0, 0));
    }
}
