//! Reads lines into sections and dispatches each line to its keyword's handler. Every error is
//! collected; a bad line never stops the lines after it from being read.

use std::collections::HashMap;
use std::sync::Arc;

use super::diag::{Diags, Span, did_you_mean};
use super::lex::{Line, Word};
use super::model::*;
use super::registry::{KwArgs, Registry, Status, applied, collect_unapplied};

/// Sections sluiced knows of HAProxy but does not read.
const UNSUPPORTED_SECTIONS: &[&str] =
    &["cache", "program", "ring", "mailers", "crt-store", "log-forward", "fcgi-app", "traces", "acme", "dynamic-update", "ocsp-update"];

enum Current {
    None,
    Global,
    Proxy(Box<Proxy>),
    Userlist(Userlist),
    HttpErrors(HttpErrors),
    Resolvers(Box<crate::dns::config::Resolvers>),
    Peers(Box<crate::peers::config::PeersSection>),
    /// A section we reject: its lines are skipped, its header was the one error.
    Skip,
}

/// Builds the model from lexed lines. Inheritance from `defaults` happens here, as HAProxy copies
/// the defaults when a proxy section opens.
pub struct Builder {
    pub cfg: Config,
    pub diags: Diags,
    cur: Current,
    /// The defaults proxy a new proxy without `from` copies: the last `defaults` section read.
    last_defaults: Proxy,
    reg: &'static Registry,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    pub fn new() -> Builder {
        Builder {
            cfg: Config::default(),
            diags: Diags::default(),
            cur: Current::None,
            last_defaults: Proxy::new(ProxyKind::Defaults, "", Span::new(Arc::from("<builtin>"), 0)),
            reg: Registry::get(),
        }
    }

    pub fn feed(&mut self, lines: &[Line]) {
        for line in lines {
            self.line(line);
        }
        self.close_section();
    }

    pub fn finish(mut self) -> (Config, Diags) {
        self.close_section();
        (self.cfg, self.diags)
    }

    fn line(&mut self, line: &Line) {
        let first = &line.words[0];
        if !first.quoted && is_section(&first.text) {
            self.close_section();
            self.open_section(line);
            return;
        }
        let span = &line.span;
        match &mut self.cur {
            Current::None => {
                self.diags.alert(Some(span), Some(&first.text), format!("unknown keyword '{}' out of section", first.text));
            }
            Current::Skip => {}
            Current::Global => global_line(self.reg, &mut self.cfg.global, line, &mut self.diags),
            Current::Proxy(p) => proxy_line(self.reg, p, line, &mut self.diags),
            Current::Userlist(u) => userlist_line(u, line, &mut self.diags),
            Current::HttpErrors(h) => http_errors_line(h, line, &mut self.diags),
            Current::Resolvers(r) => crate::dns::config::section_line(r, line, &mut self.diags),
            Current::Peers(s) => crate::peers::config::section_line(s, line, &mut self.diags),
        }
    }

    fn open_section(&mut self, line: &Line) {
        let kw = line.words[0].text.as_str();
        let span = &line.span;
        let args: Vec<&str> = line.words[1..].iter().map(|w| w.text.as_str()).collect();
        match kw {
            "global" => {
                if !args.is_empty() {
                    self.diags.alert(Some(span), Some("global"), "'global' takes no argument");
                }
                self.cur = Current::Global;
            }
            "defaults" | "frontend" | "backend" | "listen" => {
                let kind = match kw {
                    "defaults" => ProxyKind::Defaults,
                    "frontend" => ProxyKind::Frontend,
                    "backend" => ProxyKind::Backend,
                    _ => ProxyKind::Listen,
                };
                let (name, from) = match args.as_slice() {
                    [] if kind == ProxyKind::Defaults => ("", None),
                    [] => {
                        self.diags.alert(Some(span), Some(kw), format!("'{kw}' expects a name"));
                        self.cur = Current::Skip;
                        return;
                    }
                    [n] => (*n, None),
                    [n, "from", f] => (*n, Some(*f)),
                    ["from", f] if kind == ProxyKind::Defaults => ("", Some(*f)),
                    _ => {
                        self.diags.alert(Some(span), Some(kw), format!("expects '{kw} <name> [from <defaults>]'"));
                        self.cur = Current::Skip;
                        return;
                    }
                };
                if !name.is_empty()
                    && let Err(e) = super::core_kw::check_name(kw, name)
                {
                    self.diags.alert(Some(span), Some(kw), e);
                }
                let base = match from {
                    None => self.last_defaults.clone(),
                    Some(f) => match self.cfg.defaults.iter().rev().find(|d| d.name == f) {
                        Some(d) => d.clone(),
                        None => {
                            let hint = did_you_mean(f, self.cfg.defaults.iter().map(|d| d.name.as_str()))
                                .map(|s| format!("; did you mean '{s}' maybe ?"))
                                .unwrap_or_default();
                            self.diags.alert(Some(span), Some(kw), format!("defaults section '{f}' not found{hint}"));
                            self.last_defaults.clone()
                        }
                    },
                };
                let mut p = Proxy::inherit(&base, kind, name, span.clone());
                if kind == ProxyKind::Defaults && from.is_none() {
                    // A new defaults section starts from the built-in defaults, as in HAProxy.
                    p = Proxy::new(ProxyKind::Defaults, name, span.clone());
                }
                p.from = from.map(|f| NameRef { name: f.to_owned(), span: span.clone() });
                self.cur = Current::Proxy(Box::new(p));
            }
            "userlist" | "http-errors" => {
                let [name] = args.as_slice() else {
                    self.diags.alert(Some(span), Some(kw), format!("'{kw}' expects exactly one name"));
                    self.cur = Current::Skip;
                    return;
                };
                if let Err(e) = super::core_kw::check_name(kw, name) {
                    self.diags.alert(Some(span), Some(kw), e);
                }
                self.cur = if kw == "userlist" {
                    Current::Userlist(Userlist { name: (*name).into(), span: span.clone(), groups: vec![], users: vec![] })
                } else {
                    Current::HttpErrors(HttpErrors { name: (*name).into(), span: span.clone(), files: vec![] })
                };
            }
            "resolvers" | "peers" => {
                let [name] = args.as_slice() else {
                    self.diags.alert(Some(span), Some(kw), format!("'{kw}' expects exactly one name"));
                    self.cur = Current::Skip;
                    return;
                };
                if let Err(e) = super::core_kw::check_name(kw, name) {
                    self.diags.alert(Some(span), Some(kw), e);
                }
                if kw == "resolvers" {
                    self.cur = Current::Resolvers(Box::new(crate::dns::config::Resolvers::new(name, span.clone())));
                    return;
                }
                self.cur = Current::Peers(Box::new(crate::peers::config::PeersSection::new(name, span.clone())));
            }
            _ => {
                self.diags.alert(Some(span), Some(kw), format!("'{kw}' sections are not supported by sluiced"));
                self.cur = Current::Skip;
            }
        }
    }

    fn close_section(&mut self) {
        match std::mem::replace(&mut self.cur, Current::None) {
            Current::Proxy(p) => {
                let p = *p;
                if p.kind == ProxyKind::Defaults {
                    self.last_defaults = p.clone();
                    if !p.name.is_empty() {
                        self.cfg.defaults.push(p);
                    }
                } else {
                    self.cfg.proxies.push(p);
                }
            }
            Current::Userlist(u) => self.cfg.userlists.push(u),
            Current::HttpErrors(h) => self.cfg.http_errors.push(h),
            Current::Resolvers(r) => self.cfg.resolvers.push(*r),
            Current::Peers(s) => self.cfg.peers.push(*s),
            Current::None | Current::Global | Current::Skip => {}
        }
    }
}

fn is_section(w: &str) -> bool {
    matches!(w, "global" | "defaults" | "frontend" | "backend" | "listen" | "userlist" | "http-errors" | "resolvers" | "peers")
        || UNSUPPORTED_SECTIONS.contains(&w)
}

/// Strips a `no`/`default` prefix: (negated, defaulted, words from the keyword on).
fn prefix(words: &[Word]) -> (bool, bool, &[Word]) {
    match words.first() {
        Some(w) if w.is("no") && words.len() > 1 => (true, false, &words[1..]),
        Some(w) if w.is("default") && words.len() > 1 => (false, true, &words[1..]),
        _ => (false, false, words),
    }
}

fn proxy_line(reg: &Registry, p: &mut Proxy, line: &Line, diags: &mut Diags) {
    let (negated, defaulted, words) = prefix(&line.words);
    let span = &line.span;
    let Some((k, n)) = reg.proxy_keyword(words) else {
        let shown = shown_keyword(words);
        diags.alert(Some(span), Some(&shown), unknown_proxy_keyword(reg, words, p.kind));
        return;
    };
    if (negated || defaulted) && !k.negatable {
        diags.alert(Some(span), Some(k.name), format!("'{}' cannot be prefixed with '{}'", k.name, line.words[0].text));
        return;
    }
    if !k.sections.has(p.kind.sections()) {
        diags.alert(Some(span), Some(k.name), format!("'{}' is not allowed in '{}' sections", k.name, p.kind.keyword()));
        return;
    }
    let warned = diags.items.len();
    let mut a = KwArgs { words: &line.words, kw_words: n, negated, defaulted, keyword: k.name, span, diags };
    let (parsed, unapplied) = collect_unapplied(|| (k.parse)(&mut a, p));
    if parsed.is_ok() {
        warn_unapplied(&mut a, "proxies", k.doc.status, warned, unapplied);
    }
    if let Err(e) = parsed {
        diags.alert(Some(span), Some(k.name), e);
        let first_arg = words.get(n).map(|w| w.text.clone()).unwrap_or_default();
        match k.name {
            "acl" => p.invalid_decls.push((RefKind::Acl, first_arg)),
            "server" => p.invalid_decls.push((RefKind::Server, format!("{}/{first_arg}", p.name))),
            "server-template" => p.invalid_decls.push((RefKind::Server, format!("{}/{first_arg}*", p.name))),
            "stick-table" => p.invalid_decls.push((RefKind::Table, p.name.clone())),
            _ => {}
        }
    }
}

fn shown_keyword(words: &[Word]) -> String {
    match words {
        [a, b, ..] if a.is("option") || a.is("timeout") => format!("{} {}", a.text, b.text),
        [a, ..] => a.text.clone(),
        [] => String::new(),
    }
}

fn unknown_proxy_keyword(reg: &Registry, words: &[Word], kind: ProxyKind) -> String {
    let shown = shown_keyword(words);
    let fits = reg.proxy.iter().filter(|k| k.sections.has(kind.sections())).map(|k| k.name);
    let hint = match words {
        [a, b, ..] if a.is("option") || a.is("timeout") => {
            let pre = format!("{} ", a.text);
            did_you_mean(&b.text, fits.filter_map(|n| n.strip_prefix(pre.as_str()))).map(|s| format!("{pre}{s}"))
        }
        _ => did_you_mean(&shown, fits.map(|n| n.split(' ').next().unwrap_or(n))).map(str::to_owned),
    };
    let base = match words {
        [a, b, ..] if a.is("option") => format!("unknown option '{}' in '{}' section", b.text, kind.keyword()),
        _ => format!("unknown keyword '{shown}' in '{}' section", kind.keyword()),
    };
    match hint {
        Some(h) => format!("{base}; did you mean '{h}' maybe ?"),
        None => base,
    }
}

fn global_line(reg: &Registry, g: &mut Global, line: &Line, diags: &mut Diags) {
    let (negated, defaulted, words) = prefix(&line.words);
    let span = &line.span;
    let Some((k, n)) = reg.global_keyword(words) else {
        let shown = words.first().map(|w| w.text.clone()).unwrap_or_default();
        let hint = did_you_mean(&shown, reg.global.iter().map(|k| k.name.split(' ').next().unwrap_or(k.name)))
            .map(|s| format!("; did you mean '{s}' maybe ?"))
            .unwrap_or_default();
        diags.alert(Some(span), Some(&shown), format!("unknown keyword '{shown}' in 'global' section{hint}"));
        return;
    };
    if (negated || defaulted) && !k.negatable {
        diags.alert(Some(span), Some(k.name), format!("'{}' cannot be prefixed with '{}'", k.name, line.words[0].text));
        return;
    }
    let warned = diags.items.len();
    let mut a = KwArgs { words: &line.words, kw_words: n, negated, defaulted, keyword: k.name, span, diags };
    let (parsed, unapplied) = collect_unapplied(|| (k.parse)(&mut a, g));
    match parsed {
        Ok(()) => warn_unapplied(&mut a, "global", k.doc.status, warned, unapplied),
        Err(e) => diags.alert(Some(span), Some(k.name), e),
    }
}

/// Warns about a line that parsed but asks for what sluiced does not act on yet: the keyword
/// itself (one warning for the line), else each parsed-only option, action, fetch or converter
/// it uses (`unapplied`, from [`collect_unapplied`]). A line its handler already warned about
/// (`warned` is the count of messages before it ran: the privilege keywords say more than this
/// would) is left at that. HAProxy acts on every keyword it accepts, so a configuration brought over must not
/// lose a rule, a limit or a check without a word.
fn warn_unapplied(a: &mut KwArgs<'_>, title: &str, declared: Status, warned: usize, unapplied: Vec<String>) {
    if a.diags.items.len() > warned {
        return;
    }
    if !applied(title, a.keyword, declared) {
        a.warn("parsed but not applied yet: sluiced does not act on this keyword");
        return;
    }
    for w in unapplied {
        a.warn(w);
    }
}

fn userlist_line(u: &mut Userlist, line: &Line, diags: &mut Diags) {
    let w: Vec<&str> = line.words.iter().map(|w| w.text.as_str()).collect();
    let span = &line.span;
    match w.as_slice() {
        ["group", name, rest @ ..] => {
            let users = match rest {
                [] => vec![],
                ["users", list] => list.split(',').map(str::to_owned).collect(),
                _ => return diags.alert(Some(span), Some("group"), "expects 'group <name> [users <user>,...]'"),
            };
            u.groups.push(UserGroup { name: (*name).into(), users, span: span.clone() });
        }
        ["user", name, rest @ ..] => {
            let mut password = None;
            let mut groups = vec![];
            let mut i = 0;
            while i < rest.len() {
                match (rest[i], rest.get(i + 1)) {
                    ("password", Some(p)) => password = Some(UserPassword::Hashed((*p).into())),
                    ("insecure-password", Some(p)) => password = Some(UserPassword::Insecure((*p).into())),
                    ("groups", Some(g)) => groups = g.split(',').map(str::to_owned).collect(),
                    (other, _) => {
                        return diags.alert(
                            Some(span),
                            Some("user"),
                            format!("unexpected '{other}' (expected password, insecure-password or groups with a value)"),
                        );
                    }
                }
                i += 2;
            }
            let Some(password) = password else {
                return diags.alert(Some(span), Some("user"), "missing 'password' or 'insecure-password'");
            };
            u.users.push(User { name: (*name).into(), password, groups, span: span.clone() });
        }
        [kw, ..] => diags.alert(Some(span), Some(kw), format!("unknown keyword '{kw}' in 'userlist' section (expected 'user' or 'group')")),
        [] => {}
    }
}

fn http_errors_line(h: &mut HttpErrors, line: &Line, diags: &mut Diags) {
    let w: Vec<&str> = line.words.iter().map(|w| w.text.as_str()).collect();
    let span = &line.span;
    match w.as_slice() {
        ["errorfile", code, file] => match code.parse::<u16>() {
            Ok(c) if super::validate::ERRORFILE_CODES.contains(&c) => h.files.push((c, (*file).into(), span.clone())),
            _ => diags.alert(Some(span), Some("errorfile"), format!("status code '{code}' cannot be customized")),
        },
        ["errorfile", ..] => diags.alert(Some(span), Some("errorfile"), "expects 'errorfile <status> <file>'"),
        [kw, ..] => diags.alert(Some(span), Some(kw), format!("unknown keyword '{kw}' in 'http-errors' section (expected 'errorfile')")),
        [] => {}
    }
}

/// Every section name, for uniqueness checks.
pub fn names_by_kind(cfg: &Config) -> HashMap<&str, Vec<&Proxy>> {
    let mut m: HashMap<&str, Vec<&Proxy>> = HashMap::new();
    for p in &cfg.proxies {
        m.entry(p.name.as_str()).or_default().push(p);
    }
    m
}
