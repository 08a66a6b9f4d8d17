//! ACLs compiled for matching: each ACL body becomes its compiled sample and a [`Matcher`] whose
//! patterns are prepared once (lower-cased for `-i`, regexes built, networks as integers, exact
//! strings in a hash set when there are many), and the predefined ACLs (`TRUE`, `LOCALHOST`, ...).

use std::collections::HashSet;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::eval::{CompiledSample, SampleRef, StreamCtx, Tri};
use super::patref::{self, Entry, PatRef, PatUser};
use crate::config::diag::Span;
use crate::config::expr::{AclBody, MatchMethod, Pattern, parse_acl, parse_pattern, parse_values};
use crate::config::lex::Word;
use crate::config::model::AclDecl;

/// HAProxy's predefined ACLs (configuration manual 7.4), as the ACL lines they stand for.
/// `WAIT_END` has no fetch in the registry and is built directly.
const PREDEFINED: &[(&str, &str)] = &[
    ("TRUE", "always_true"),
    ("FALSE", "always_false"),
    ("LOCALHOST", "src 127.0.0.1/8 ::1"),
    ("HTTP", "req.proto_http"),
    ("HTTP_1.0", "req.ver 1.0"),
    ("HTTP_1.1", "req.ver 1.1"),
    ("HTTP_2.0", "req.ver 2.0"),
    ("HTTP_3.0", "req.ver 3.0"),
    ("HTTP_CONTENT", "req.hdr_val(content-length) gt 0"),
    ("HTTP_URL_ABS", "url_reg ^[^/:]*://"),
    ("HTTP_URL_SLASH", "url_beg /"),
    ("HTTP_URL_STAR", "url *"),
    ("METH_CONNECT", "method CONNECT"),
    ("METH_DELETE", "method DELETE"),
    ("METH_GET", "method GET HEAD"),
    ("METH_HEAD", "method HEAD"),
    ("METH_OPTIONS", "method OPTIONS"),
    ("METH_POST", "method POST"),
    ("METH_PUT", "method PUT"),
    ("METH_TRACE", "method TRACE"),
    ("RDP_COOKIE", "req.rdp_cookie_cnt gt 0"),
    ("REQ_CONTENT", "req.len gt 0"),
];

/// Compiles the ACL `name`: the proxy's declarations of that name, ORed, or else a predefined one.
pub(crate) fn compile_named(name: &str, acls: &[AclDecl]) -> Result<CompiledAcl, String> {
    let decls: Vec<(&AclBody, Option<&Span>)> = acls.iter().filter(|d| d.name == name).map(|d| (&d.body, Some(&d.span))).collect();
    if !decls.is_empty() {
        return CompiledAcl::compile_live(&decls).map_err(|e| format!("ACL '{name}': {e}"));
    }
    predefined(name).ok_or_else(|| format!("unknown ACL '{name}'"))?
}

/// A predefined ACL by name.
pub(crate) fn predefined(name: &str) -> Option<Result<CompiledAcl, String>> {
    if name == "WAIT_END" {
        let sample = CompiledSample::compile(&crate::config::expr::SampleExpr {
            fetch: crate::config::expr::Call { name: "wait_end".into(), args: Vec::new() },
            converters: Vec::new(),
        });
        return Some(sample.map(|sample| CompiledAcl { exprs: vec![AclExpr { sample, matcher: AclMatcher::Fixed(Matcher::Bool) }] }));
    }
    let (_, text) = PREDEFINED.iter().find(|(n, _)| *n == name)?;
    let words: Vec<Word> = text.split_whitespace().map(Word::bare).collect();
    Some(parse_acl(&words).and_then(|body| CompiledAcl::compile_fixed(std::slice::from_ref(&body))).map_err(|e| format!("predefined ACL '{name}': {e}")))
}

/// An ACL: one expression per declaration line, ORed.
#[derive(Debug)]
pub(crate) struct CompiledAcl {
    exprs: Vec<AclExpr>,
}

#[derive(Debug)]
struct AclExpr {
    sample: CompiledSample,
    matcher: AclMatcher,
}

/// A predefined ACL's patterns never change; a configured ACL's may, through the runtime API.
#[derive(Debug)]
enum AclMatcher {
    Fixed(Matcher),
    Live(Arc<LiveAcl>),
}

impl CompiledAcl {
    /// An inline ACL (`{ ... }`): its `-f` files can be changed at run time. Without files
    /// nothing can change it (no command names its values): its matcher is fixed, and a rule
    /// does not pay for reading a swappable one.
    pub fn compile(bodies: &[AclBody]) -> Result<CompiledAcl, String> {
        if bodies.iter().all(|b| b.files.is_empty()) {
            return Self::compile_fixed(bodies);
        }
        let decls: Vec<(&AclBody, Option<&Span>)> = bodies.iter().map(|b| (b, None)).collect();
        Self::compile_live(&decls)
    }

    /// Each body with its pattern references: its `-f` files and, for a declaration (with its
    /// place in the configuration), the values on its line.
    fn compile_live(decls: &[(&AclBody, Option<&Span>)]) -> Result<CompiledAcl, String> {
        let exprs = decls
            .iter()
            .map(|(b, at)| Ok(AclExpr { sample: CompiledSample::compile(&b.expr)?, matcher: AclMatcher::Live(LiveAcl::compile(b, *at)?) }))
            .collect::<Result<_, String>>()?;
        Ok(CompiledAcl { exprs })
    }

    fn compile_fixed(bodies: &[AclBody]) -> Result<CompiledAcl, String> {
        let exprs = bodies
            .iter()
            .map(|b| Ok(AclExpr { sample: CompiledSample::compile(&b.expr)?, matcher: AclMatcher::Fixed(Matcher::compile(b)?) }))
            .collect::<Result<_, String>>()?;
        Ok(CompiledAcl { exprs })
    }

    /// Any expression matching is a match; a sample that is missing, or that does not match but
    /// may still change, is a miss.
    pub fn eval(&self, ctx: &dyn StreamCtx) -> Tri {
        let mut result = Tri::No;
        for e in &self.exprs {
            let live;
            let matcher = match &e.matcher {
                AclMatcher::Fixed(m) => m,
                AclMatcher::Live(l) => {
                    live = l.matcher.load();
                    &**live
                }
            };
            let (hit, may_change) = e.sample.any_value(ctx, |v| matcher.matches(v, ctx));
            let t = match (hit, may_change) {
                (true, _) => Tri::Yes,
                (false, true) => Tri::Miss,
                (false, false) => Tri::No,
            };
            result = result.or(t);
            if result == Tri::Yes {
                break;
            }
        }
        result
    }
}

/// An ACL expression whose patterns come from pattern references (its line's values, its `-f`
/// files), rebuilt whole when the runtime API changes one of them and read without a lock.
#[derive(Debug)]
pub(crate) struct LiveAcl {
    /// The body without its patterns: how patterns parse and match.
    body: AclBody,
    /// The line's values first (when listed), then each `-f` file.
    refs: Vec<Arc<PatRef>>,
    matcher: ArcSwap<Matcher>,
}

impl LiveAcl {
    fn compile(b: &AclBody, at: Option<&Span>) -> Result<Arc<LiveAcl>, String> {
        let mut body = b.clone();
        body.patterns.clear();
        let mut refs = Vec::new();
        let fetch = &b.expr.fetch.name;
        // An `acl` line's values are listed by `show acl` as HAProxy does (`acl 'src' file 'x'
        // line 3`); an inline ACL's values have no line to name and stay as written.
        let values = match at {
            Some(span) => {
                let key = format!("{}:{}:{}", span.file, span.line, b.values.join(" "));
                patref::for_values(&b.values, b.unique_id.filter(|_| b.files.is_empty()), Some(key))
            }
            None => patref::unlisted_values(&b.values),
        };
        let used_at = match at {
            Some(span) => format!("acl at file '{}' line {}", span.file, span.line),
            None => "acl".to_owned(),
        };
        refs.push((values, at.map(|span| format!("acl '{fetch}' file '{}' line {}", span.file, span.line))));
        for f in &b.files {
            let r = patref::for_file(f, b.map_files, b.unique_id)?;
            refs.push((r, Some(used_at.clone())));
        }
        let view = |p: &PatRef| p.entries();
        let matcher = build_matcher(&body, refs.iter().map(|(r, _)| r), &view)?;
        let live = Arc::new(LiveAcl { body, refs: refs.iter().map(|(r, _)| r.clone()).collect(), matcher: ArcSwap::from_pointee(matcher) });
        let user: Arc<dyn PatUser> = live.clone();
        for (r, used) in refs {
            if let Some(used) = used {
                r.add_user(Arc::downgrade(&user), false, used);
            }
        }
        Ok(live)
    }
}

/// The matcher of `body` over the patterns of `refs`: a line's values parse as on the line
/// (operators included), a file's entries one pattern each (a map file's keys).
fn build_matcher<'a>(body: &AclBody, refs: impl Iterator<Item = &'a Arc<PatRef>>, view: &dyn Fn(&PatRef) -> Vec<Entry>) -> Result<Matcher, String> {
    let mut b = body.clone();
    for r in refs {
        let entries = view(r);
        if r.reference.is_empty() {
            let words: Vec<Word> = entries.iter().map(|e| Word::bare(&e.key)).collect();
            b.patterns.extend(parse_values(body, &words)?);
        } else {
            for e in &entries {
                b.patterns.push(parse_pattern(&e.key, body)?);
            }
        }
    }
    Matcher::compile(&b)
}

/// What `get acl` matches against: no stream, only the value typed (also the empty stream of
/// converter unit tests).
pub(crate) struct CliCtx;

impl StreamCtx for CliCtx {
    fn src(&self) -> Option<std::net::SocketAddr> {
        None
    }
    fn dst(&self) -> Option<std::net::SocketAddr> {
        None
    }
    fn frontend_name(&self) -> &str {
        ""
    }
    fn frontend_id(&self) -> u32 {
        0
    }
    fn backend(&self, _name: &str) -> Option<&crate::balance::BackendState> {
        None
    }
    fn current_backend(&self) -> Option<&crate::balance::BackendState> {
        None
    }
    fn req_buffer(&self) -> &[u8] {
        &[]
    }
    fn req_final(&self) -> bool {
        true
    }
}

/// `input` as the sample type `method` compares.
fn cli_sample(input: &str, method: MatchMethod) -> Option<SampleRef<'_>> {
    Some(match method {
        MatchMethod::Int | MatchMethod::Bool => SampleRef::Int(input.trim().parse().ok()?),
        MatchMethod::Ip => SampleRef::Ip(input.trim().parse().ok()?),
        _ => SampleRef::Str(std::borrow::Cow::Borrowed(input.as_bytes())),
    })
}

impl PatUser for LiveAcl {
    fn stage(self: Arc<Self>, view: &dyn Fn(&PatRef) -> Vec<Entry>) -> Result<Box<dyn FnOnce() + '_>, String> {
        let m = build_matcher(&self.body, self.refs.iter(), view)?;
        Ok(Box::new(move || self.matcher.store(Arc::new(m))))
    }

    /// Tries each entry of each reference alone, to name the one that matches first.
    fn lookup(&self, input: &str, entries: &dyn Fn(&PatRef) -> Vec<Entry>, map: bool) -> String {
        let method = self.body.method;
        let mut line = format!("type={}, case={}", method.name(), if self.body.ignore_case { "insensitive" } else { "sensitive" });
        let sample = cli_sample(input, method);
        let mut found = None;
        // Most lookups miss: the whole matcher says so before any entry is tried alone.
        let any = sample.as_ref().is_some_and(|s| self.matcher.load().matches(s, &CliCtx));
        'refs: for r in self.refs.iter().filter(|_| any) {
            for e in entries(r) {
                let one = |p: &PatRef| if std::ptr::eq(p, &**r) { vec![e.clone()] } else { Vec::new() };
                let hit = build_matcher(&self.body, std::iter::once(r), &one).is_ok_and(|m| sample.as_ref().is_some_and(|s| m.matches(s, &CliCtx)));
                if hit {
                    found = Some(e.key.clone());
                    break 'refs;
                }
            }
        }
        let idx = if matches!(method, MatchMethod::Str | MatchMethod::Ip) { "tree" } else { "list" };
        // `get map` names the key and, since an ACL keeps no value, `value=none`, as HAProxy.
        match (found, map) {
            (Some(k), false) => line.push_str(&format!(", match=yes, idx={idx}, pattern=\"{k}\"\n")),
            (Some(k), true) => line.push_str(&format!(", found=yes, idx={idx}, key=\"{k}\", value=none\n")),
            (None, false) => line.push_str(", match=no\n"),
            (None, true) => line.push_str(", found=no\n"),
        }
        line
    }
}

/// Inclusive integer range; open ends are `None`.
#[derive(Clone, Copy, Debug)]
struct IntRange {
    lo: Option<i64>,
    hi: Option<i64>,
}

impl IntRange {
    fn contains(self, n: i64) -> bool {
        self.lo.is_none_or(|lo| n >= lo) && self.hi.is_none_or(|hi| n <= hi)
    }
}

/// Above this many exact strings or addresses, a hash set beats a scan.
const SET_THRESHOLD: usize = 8;

/// Exact strings: scanned when few, hashed when many. Lower-cased for `-i`.
#[derive(Debug)]
enum Exact {
    List(Vec<Box<[u8]>>),
    Set(HashSet<Box<[u8]>>),
}

/// Networks as integers; single addresses hashed when many. IPv4 patterns also match IPv4-mapped
/// IPv6 samples, and IPv6 patterns IPv4 samples through their mapped form, as HAProxy does.
#[derive(Debug, Default)]
struct IpSet {
    v4_hosts: HashSet<u32>,
    v4_nets: Vec<(u32, u32)>,
    v6_hosts: HashSet<u128>,
    v6_nets: Vec<(u128, u128)>,
}

impl IpSet {
    fn add(&mut self, addr: IpAddr, prefix: u8) {
        match addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix.min(32))).unwrap_or(0);
                if prefix >= 32 {
                    self.v4_hosts.insert(u32::from(a));
                } else {
                    self.v4_nets.push((u32::from(a) & mask, mask));
                }
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix.min(128))).unwrap_or(0);
                if prefix >= 128 {
                    self.v6_hosts.insert(u128::from(a));
                } else {
                    self.v6_nets.push((u128::from(a) & mask, mask));
                }
            }
        }
    }

    fn contains(&self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(a) => self.has_v4(u32::from(a)) || self.has_v6(u128::from(a.to_ipv6_mapped())),
            IpAddr::V6(a) => self.has_v6(u128::from(a)) || a.to_ipv4_mapped().is_some_and(|m| self.has_v4(u32::from(m))),
        }
    }

    fn has_v4(&self, a: u32) -> bool {
        self.v4_hosts.contains(&a) || self.v4_nets.iter().any(|&(net, mask)| a & mask == net)
    }

    fn has_v6(&self, a: u128) -> bool {
        self.v6_hosts.contains(&a) || self.v6_nets.iter().any(|&(net, mask)| a & mask == net)
    }
}

/// How an ACL tests its sample, with its patterns prepared.
#[derive(Debug)]
enum Matcher {
    Found,
    Bool,
    Int(Vec<IntRange>),
    Len(Vec<IntRange>),
    Ip(IpSet),
    Bin(Vec<Box<[u8]>>),
    Str {
        exact: Exact,
        icase: bool,
    },
    Sub {
        pats: Vec<Box<[u8]>>,
        icase: bool,
    },
    Reg(Vec<regex::bytes::Regex>),
    Beg {
        pats: Vec<Box<[u8]>>,
        icase: bool,
    },
    End {
        pats: Vec<Box<[u8]>>,
        icase: bool,
    },
    /// `dir` and `dom`: the pattern between delimiters, which are given here.
    Delimited {
        pats: Vec<Box<[u8]>>,
        icase: bool,
        delims: &'static [u8],
    },
    /// `method` with its default matching: HAProxy compares the methods it knows exactly, and only
    /// other methods as strings (where `-i` applies).
    Meth {
        pats: Vec<Box<[u8]>>,
        icase: bool,
    },
    /// `http_auth_group(<userlist>)`: the patterns are groups the authenticated user must be in.
    AuthGroup {
        userlist: String,
        groups: Vec<Box<str>>,
    },
}

/// The methods HAProxy recognises; any other is matched as a string.
const KNOWN_METHODS: &[&[u8]] = &[b"OPTIONS", b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"TRACE", b"CONNECT"];

impl Matcher {
    fn compile(b: &AclBody) -> Result<Matcher, String> {
        let icase = b.ignore_case;
        let strings = || -> Vec<Box<[u8]>> {
            b.patterns
                .iter()
                .filter_map(|p| match p {
                    Pattern::Str(s) => Some(if icase { s.to_ascii_lowercase().into_bytes().into() } else { s.as_bytes().into() }),
                    _ => None,
                })
                .collect()
        };
        let ints = || b.patterns.iter().filter_map(|p| if let Pattern::Int { lo, hi } = p { Some(IntRange { lo: *lo, hi: *hi }) } else { None }).collect();
        let plain_fetch = |name: &str| b.expr.fetch.name == name && b.expr.converters.is_empty() && b.method == MatchMethod::Str;
        let raw = || b.patterns.iter().filter_map(|p| if let Pattern::Str(s) = p { Some(s.as_str()) } else { None });
        if plain_fetch("method") {
            return Ok(Matcher::Meth { pats: raw().map(|s| s.as_bytes().into()).collect(), icase });
        }
        if plain_fetch("http_auth_group") {
            let userlist = b.expr.fetch.args.first().cloned().unwrap_or_default();
            return Ok(Matcher::AuthGroup { userlist, groups: raw().map(Into::into).collect() });
        }
        Ok(match b.method {
            MatchMethod::Found => Matcher::Found,
            MatchMethod::Bool => Matcher::Bool,
            MatchMethod::Int => Matcher::Int(ints()),
            MatchMethod::Len => Matcher::Len(ints()),
            MatchMethod::Ip => {
                let mut set = IpSet::default();
                for p in &b.patterns {
                    match p {
                        Pattern::Ip { addr, prefix } => set.add(*addr, *prefix),
                        Pattern::Host(h) => {
                            let addrs = (h.as_str(), 0).to_socket_addrs().map_err(|e| format!("cannot resolve '{h}': {e}"))?;
                            for a in addrs {
                                set.add(a.ip(), if a.is_ipv4() { 32 } else { 128 });
                            }
                        }
                        _ => {}
                    }
                }
                Matcher::Ip(set)
            }
            MatchMethod::Bin => {
                Matcher::Bin(b.patterns.iter().filter_map(|p| if let Pattern::Bin(v) = p { Some(v.as_slice().into()) } else { None }).collect())
            }
            MatchMethod::Str => {
                let pats = strings();
                let exact = if pats.len() > SET_THRESHOLD { Exact::Set(pats.into_iter().collect()) } else { Exact::List(pats) };
                Matcher::Str { exact, icase }
            }
            MatchMethod::Sub => Matcher::Sub { pats: strings(), icase },
            MatchMethod::Beg => Matcher::Beg { pats: strings(), icase },
            MatchMethod::End => Matcher::End { pats: strings(), icase },
            MatchMethod::Dir => Matcher::Delimited { pats: strings(), icase, delims: b"/?" },
            MatchMethod::Dom => Matcher::Delimited { pats: strings(), icase, delims: b"/?.:" },
            MatchMethod::Reg => Matcher::Reg(
                b.patterns
                    .iter()
                    .filter_map(|p| if let Pattern::Regex(r) = p { Some(r) } else { None })
                    .map(|r| {
                        regex::bytes::RegexBuilder::new(r).case_insensitive(icase).size_limit(1 << 22).build().map_err(|e| format!("invalid regex '{r}': {e}"))
                    })
                    .collect::<Result<_, _>>()?,
            ),
        })
    }

    /// Integer comparisons (`gt 10`, rates and counters against a limit) are the most frequent
    /// per-request matches: tested here, inline, the other methods out of line.
    #[inline]
    fn matches(&self, v: &SampleRef<'_>, ctx: &dyn StreamCtx) -> bool {
        match self {
            Matcher::Int(ranges) => v.as_int().is_some_and(|n| ranges.iter().any(|r| r.contains(n))),
            _ => self.matches_other(v, ctx),
        }
    }

    #[inline(never)]
    fn matches_other(&self, v: &SampleRef<'_>, ctx: &dyn StreamCtx) -> bool {
        match self {
            Matcher::Found => true,
            Matcher::Bool => v.as_int().is_some_and(|n| n != 0),
            Matcher::Int(ranges) => v.as_int().is_some_and(|n| ranges.iter().any(|r| r.contains(n))),
            Matcher::Len(ranges) => {
                let len = i64::try_from(v.as_bytes().len()).unwrap_or(i64::MAX);
                ranges.iter().any(|r| r.contains(len))
            }
            Matcher::Ip(set) => v.as_ip().is_some_and(|a| set.contains(a)),
            Matcher::Bin(pats) => {
                let s = v.as_bytes();
                pats.iter().any(|p| **p == *s)
            }
            Matcher::Str { exact, icase } => {
                let s = v.as_bytes();
                match exact {
                    Exact::List(pats) => pats.iter().any(|p| eq(p, &s, *icase)),
                    Exact::Set(set) if *icase => with_lowercase(&s, |l| set.contains(l)),
                    Exact::Set(set) => set.contains(&*s),
                }
            }
            Matcher::Sub { pats, icase } => {
                let s = v.as_bytes();
                pats.iter().any(|p| find(&s, p, *icase).is_some())
            }
            Matcher::Beg { pats, icase } => {
                let s = v.as_bytes();
                pats.iter().any(|p| s.get(..p.len()).is_some_and(|h| eq(p, h, *icase)))
            }
            Matcher::End { pats, icase } => {
                let s = v.as_bytes();
                pats.iter().any(|p| s.len() >= p.len() && eq(p, &s[s.len() - p.len()..], *icase))
            }
            Matcher::Delimited { pats, icase, delims } => {
                let s = v.as_bytes();
                pats.iter().any(|p| match_word(&s, p, *icase, delims))
            }
            Matcher::Reg(res) => {
                let s = v.as_bytes();
                res.iter().any(|r| r.is_match(&s))
            }
            Matcher::Meth { pats, icase } => {
                let s = v.as_bytes();
                let known = |m: &[u8]| KNOWN_METHODS.contains(&m);
                pats.iter().any(|p| if *icase && !known(p) && !known(&s) { p.eq_ignore_ascii_case(&s) } else { **p == *s })
            }
            Matcher::AuthGroup { userlist, groups } => {
                let name = v.as_bytes();
                let (Some(ul), Ok(user)) = (ctx.userlist(userlist), std::str::from_utf8(&name)) else { return false };
                super::auth::in_any_group(ul, user, groups)
            }
        }
    }
}

/// `pat` (lower-cased already when `icase`) equals `s`.
fn eq(pat: &[u8], s: &[u8], icase: bool) -> bool {
    if icase { pat.eq_ignore_ascii_case(s) } else { pat == s }
}

/// The position of `pat` in `s`.
pub(crate) fn find(s: &[u8], pat: &[u8], icase: bool) -> Option<usize> {
    if pat.is_empty() {
        return Some(0);
    }
    let first = pat[0];
    s.windows(pat.len()).position(|w| if icase { w[0].eq_ignore_ascii_case(&first) && w.eq_ignore_ascii_case(pat) } else { w[0] == first && w == pat })
}

/// Runs `f` on an ASCII-lower-cased copy of `s`, on the stack when it is short.
fn with_lowercase<R>(s: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    let mut stack = [0u8; 256];
    if let Some(buf) = stack.get_mut(..s.len()) {
        buf.copy_from_slice(s);
        buf.make_ascii_lowercase();
        f(buf)
    } else {
        f(&s.to_ascii_lowercase())
    }
}

/// HAProxy's `dir`/`dom` matching: `pat`, stripped of its own leading and trailing delimiters, found
/// in `s` starting right after a delimiter (or at the start) and ending right before one (or at the
/// end).
pub(crate) fn match_word(s: &[u8], pat: &[u8], icase: bool, delims: &[u8]) -> bool {
    let is_delim = |b: &u8| delims.contains(b);
    let start = pat.iter().position(|b| !is_delim(b)).unwrap_or(pat.len());
    let end = pat.iter().rposition(|b| !is_delim(b)).map_or(start, |e| e + 1);
    let pat = &pat[start..end];
    if pat.is_empty() || pat.len() > s.len() {
        return false;
    }
    (0..=s.len() - pat.len()).any(|i| (i == 0 || is_delim(&s[i - 1])) && eq(pat, &s[i..i + pat.len()], icase) && s.get(i + pat.len()).is_none_or(is_delim))
}

/// Every predefined ACL name, for tests.
#[cfg(test)]
pub(crate) fn predefined_names() -> impl Iterator<Item = &'static str> {
    PREDEFINED.iter().map(|(n, _)| *n).chain(std::iter::once("WAIT_END"))
}
