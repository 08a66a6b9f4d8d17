//! The keyword registry. Each feature module owns its keywords (style practice 4): it exposes
//! `proxy_keywords()`/`global_keywords()` and, where it has them, option and action tables, and
//! [`all_proxy_keywords`] lists the modules explicitly (no global constructors). Every entry carries
//! the one-line description, syntax and example that `docs/configuration.md` shows; a test keeps the
//! two in sync.

use super::diag::{Diags, Span};
use super::lex::Word;
use super::model::{Global, Proxy};

/// Which proxy sections accept a keyword.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sections(pub u8);

impl Sections {
    pub const DEFAULTS: Sections = Sections(1);
    pub const FRONTEND: Sections = Sections(2);
    pub const LISTEN: Sections = Sections(4);
    pub const BACKEND: Sections = Sections(8);
    /// defaults, frontend, listen, backend.
    pub const ALL: Sections = Sections(15);
    /// defaults, frontend, listen.
    pub const FE: Sections = Sections(7);
    /// defaults, listen, backend.
    pub const BE: Sections = Sections(13);
    /// frontend, listen, backend (not defaults).
    pub const PROXIES: Sections = Sections(14);
    /// frontend and listen.
    pub const FE_ONLY: Sections = Sections(6);
    /// listen and backend.
    pub const BE_ONLY: Sections = Sections(12);

    pub const fn has(self, other: Sections) -> bool {
        self.0 & other.0 != 0
    }

    /// `X`/`-` columns in the order defaults, frontend, listen, backend, as the docs print them.
    pub fn columns(self) -> [bool; 4] {
        [self.has(Self::DEFAULTS), self.has(Self::FRONTEND), self.has(Self::LISTEN), self.has(Self::BACKEND)]
    }
}

/// How far a keyword is implemented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Parsed, validated and acted upon by the daemon.
    Implemented,
    /// Parsed and validated into the model; the behaviour comes with a later issue. Each use is
    /// warned about at start ([`note_use`]).
    Parsed,
    /// Accepted so that HAProxy configurations load, with no effect by design ([`INERT`]).
    Ignored,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Implemented => "implemented",
            Status::Parsed => "parsed only",
            Status::Ignored => "ignored",
        }
    }
}

/// Parsed-only keywords whose lack of effect changes none of what a configuration means: which
/// connections are accepted, where requests go, what clients and servers are sent, limits, health
/// checks, logs. They are performance hints sluiced tunes itself, text shown nowhere yet, or
/// HAProxy knobs with nothing to act on here. These are accepted without a word; every other
/// parsed-only keyword, option, action, fetch and converter is warned about where it is used.
pub const INERT: &[(&str, &[&str])] = &[
    (
        "global",
        &[
            "busy-polling",
            "description",
            "expose-experimental-directives",
            "insecure-fork-wanted",
            "node",
            "noepoll",
            "nogetaddrinfo",
            "nopoll",
            "ssl-dh-param-file",
            "thread-groups",
            "tune.idle-pool.shared",
            "tune.max-checks-per-thread",
            "tune.maxaccept",
            "tune.maxpollevents",
            "tune.recv_enough",
            "tune.runqueue-depth",
            "tune.ssl.default-dh-param",
            "tune.ssl.lifetime",
        ],
    ),
    (
        "proxies",
        &[
            "description",
            "option contstats",
            "option http-no-delay",
            "option independent-streams",
            "option socket-stats",
            "option tcp-smart-accept",
            "option tcp-smart-connect",
            "stats show-modules",
        ],
    ),
    ("bind options", &["allow-0rtt", "id", "nice", "npn", "process", "shards", "thread"]),
    ("server options", &["allow-0rtt", "pool-low-conn", "pool-purge-delay", "tcp-ut", "tfo"]),
    ("http-request actions", &["set-nice", "wait-for-handshake"]),
    ("tcp-request content actions", &["set-nice"]),
];

fn listed(lists: &[(&str, &[&str])], title: &str, name: &str) -> bool {
    lists.iter().any(|(t, names)| *t == title && names.contains(&name))
}

/// Whether the daemon acts on `name` of the documentation table `title` (declared `declared` in
/// its registry entry), or it is [`INERT`].
pub fn applied(title: &str, name: &str, declared: Status) -> bool {
    declared != Status::Parsed
        || listed(crate::route::IMPLEMENTED, title, name)
        || listed(INERT, title, name)
        || match title {
            "sample fetches" => crate::route::eval::implemented_fetches().contains(&name),
            "converters" => crate::route::eval::implemented_converters().contains(&name),
            _ => false,
        }
}

thread_local! {
    /// What the configuration line being parsed uses that is parsed only; `None` outside
    /// [`collect_unapplied`] (the stats socket's `add server`, for one, parses server options too).
    static UNAPPLIED: std::cell::RefCell<Option<Vec<String>>> = const { std::cell::RefCell::new(None) };
}

/// Notes that the configuration line being parsed uses `name` (the `what` of table `title`,
/// declared `declared`): if the daemon does not act on it, the line gets a warning.
pub fn note_use(title: &str, what: &str, name: &str, declared: Status) {
    if applied(title, name, declared) {
        return;
    }
    UNAPPLIED.with(|u| {
        if let Some(v) = u.borrow_mut().as_mut() {
            let msg = match title {
                "sample fetches" => format!("the fetch '{name}' is parsed but not applied yet: it always yields no sample, and an ACL on it does not match"),
                "converters" => format!("the converter '{name}' is parsed but not applied yet: an expression using it yields no sample"),
                _ => format!("the {what} '{name}' is parsed but not applied yet: sluiced does not act on it"),
            };
            if !v.contains(&msg) {
                v.push(msg);
            }
        }
    });
}

/// Adds a warning for the configuration line being parsed, from code that has no [`KwArgs`] to
/// warn through (a server option's parser).
pub fn note_warning(msg: String) {
    UNAPPLIED.with(|u| {
        if let Some(v) = u.borrow_mut().as_mut() {
            v.push(msg);
        }
    });
}

/// Runs `parse` (a configuration line's handler) and returns, with its result, what it noted
/// through [`note_use`].
pub fn collect_unapplied<T>(parse: impl FnOnce() -> T) -> (T, Vec<String>) {
    let outer = UNAPPLIED.with(|u| u.replace(Some(Vec::new())));
    let r = parse();
    let noted = UNAPPLIED.with(|u| std::mem::replace(&mut *u.borrow_mut(), outer)).unwrap_or_default();
    (r, noted)
}

/// Documentation carried by every registry entry.
#[derive(Clone, Copy, Debug)]
pub struct Doc {
    pub syntax: &'static str,
    pub desc: &'static str,
    pub example: &'static str,
    pub status: Status,
}

/// What a keyword handler sees: the whole line, where the keyword ends, and a sink for warnings.
pub struct KwArgs<'a> {
    pub words: &'a [Word],
    /// How many words the keyword itself takes (`timeout client` is 2); `no`/`default` not counted.
    pub kw_words: usize,
    /// `no option X`.
    pub negated: bool,
    /// `default option X`.
    pub defaulted: bool,
    pub keyword: &'a str,
    pub span: &'a Span,
    pub diags: &'a mut Diags,
}

impl<'a> KwArgs<'a> {
    /// The words after the keyword.
    pub fn args(&self) -> &'a [Word] {
        let skip = self.kw_words + usize::from(self.negated || self.defaulted);
        self.words.get(skip..).unwrap_or(&[])
    }
    pub fn arg(&self, i: usize) -> Option<&'a str> {
        self.args().get(i).map(|w| w.text.as_str())
    }
    /// The argument at `i`, or an error naming `what` is missing.
    pub fn need(&self, i: usize, what: &str) -> Result<&'a str, String> {
        self.arg(i).ok_or_else(|| format!("missing {what}"))
    }
    /// Fails when more than `n` arguments were given.
    pub fn at_most(&self, n: usize) -> Result<(), String> {
        match self.args().get(n) {
            Some(w) => Err(format!("unexpected argument '{}'", w.text)),
            None => Ok(()),
        }
    }
    pub fn warn(&mut self, msg: impl Into<String>) {
        self.diags.warning(Some(self.span), Some(self.keyword), msg);
    }
}

pub type ProxyParse = fn(&mut KwArgs<'_>, &mut Proxy) -> Result<(), String>;
pub type GlobalParse = fn(&mut KwArgs<'_>, &mut Global) -> Result<(), String>;

/// A keyword of `defaults`/`frontend`/`listen`/`backend`.
#[derive(Clone, Copy)]
pub struct ProxyKeyword {
    /// The keyword's words, space separated: `timeout client`, `option httplog`.
    pub name: &'static str,
    pub sections: Sections,
    /// Accepts `no`/`default` in front (boolean `option`s).
    pub negatable: bool,
    pub parse: ProxyParse,
    pub doc: Doc,
}

/// A keyword of `global`.
#[derive(Clone, Copy)]
pub struct GlobalKeyword {
    pub name: &'static str,
    pub negatable: bool,
    pub parse: GlobalParse,
    pub doc: Doc,
}

/// One table of `docs/configuration.md`: a registry's entries by name.
pub struct DocTable {
    pub title: &'static str,
    pub entries: Vec<(String, Option<Sections>, Doc)>,
}

/// Every proxy keyword from every module, in module order.
pub fn all_proxy_keywords() -> Vec<ProxyKeyword> {
    let mut v = super::core_kw::proxy_keywords();
    v.extend(crate::balance::config::proxy_keywords());
    v.extend(crate::l4::config::proxy_keywords());
    v.extend(crate::l7::config::proxy_keywords());
    v.extend(crate::check::config::proxy_keywords());
    v.extend(crate::log::config::proxy_keywords());
    v.extend(crate::stick::config::proxy_keywords());
    v.extend(crate::control::config::proxy_keywords());
    v
}

/// Every global keyword from every module.
pub fn all_global_keywords() -> Vec<GlobalKeyword> {
    let mut v = super::core_kw::global_keywords();
    v.extend(crate::runtime::config::global_keywords());
    v.extend(crate::log::config::global_keywords());
    v.extend(crate::control::config::global_keywords());
    v.extend(crate::tls::config::global_keywords());
    v.extend(crate::check::config::global_keywords());
    v
}

/// Every table the configuration reference shows, in order.
pub fn doc_tables() -> Vec<DocTable> {
    let mut tables = vec![
        DocTable { title: "global", entries: all_global_keywords().into_iter().map(|k| (k.name.to_string(), None, k.doc)).collect() },
        DocTable { title: "proxies", entries: all_proxy_keywords().into_iter().map(|k| (k.name.to_string(), Some(k.sections), k.doc)).collect() },
    ];
    tables.push(DocTable { title: "bind options", entries: all_bind_options().into_iter().map(|o| (o.name.to_string(), None, o.doc)).collect() });
    tables.push(DocTable { title: "server options", entries: all_server_options().into_iter().map(|o| (o.name.to_string(), None, o.doc)).collect() });
    tables.extend(super::core_kw::doc_tables());
    tables.extend(crate::l7::config::doc_tables());
    tables.extend(crate::l4::config::doc_tables());
    tables.extend(crate::tls::config::doc_tables());
    tables.extend(crate::check::config::doc_tables());
    tables.extend(crate::route::sample::doc_tables());
    tables.extend(crate::dns::config::doc_tables());
    tables.extend(crate::peers::config::doc_tables());
    mark_implemented(&mut tables);
    tables
}

/// Sets the status of what the data plane acts on (`route::IMPLEMENTED`, and the fetches and
/// converters the evaluator implements) to implemented, and of what is [`INERT`] to ignored; the
/// rest stays "parsed only".
fn mark_implemented(tables: &mut [DocTable]) {
    for t in tables.iter_mut() {
        for (name, _, doc) in t.entries.iter_mut() {
            if doc.status == Status::Parsed && listed(INERT, t.title, name) {
                doc.status = Status::Ignored;
            } else if doc.status == Status::Parsed && applied(t.title, name, doc.status) {
                doc.status = Status::Implemented;
            }
        }
    }
}

/// A `bind` line option. `arg` is the option's value when `takes_arg`.
#[derive(Clone, Copy)]
pub struct BindOption {
    pub name: &'static str,
    pub takes_arg: bool,
    pub parse: fn(&mut super::model::Bind, Option<&str>) -> Result<(), String>,
    pub doc: Doc,
}

/// A `server`/`default-server` option.
#[derive(Clone, Copy)]
pub struct ServerOption {
    pub name: &'static str,
    pub takes_arg: bool,
    /// Accepted on `default-server` too.
    pub default_server: bool,
    pub parse: fn(&mut super::model::ServerOpts, Option<&str>) -> Result<(), String>,
    pub doc: Doc,
}

pub fn all_bind_options() -> Vec<BindOption> {
    let mut v = super::core_kw::bind_options();
    v.extend(crate::tls::config::bind_options());
    v
}

pub fn all_server_options() -> Vec<ServerOption> {
    let mut v = super::core_kw::server_options();
    v.extend(crate::check::config::server_options());
    v.extend(crate::tls::config::server_options());
    v
}

/// The registry, indexed once: lookups by first word instead of scanning every entry per line.
pub struct Registry {
    pub proxy: Vec<ProxyKeyword>,
    pub global: Vec<GlobalKeyword>,
    pub bind: Vec<BindOption>,
    pub server: Vec<ServerOption>,
    proxy_by_first: std::collections::HashMap<&'static str, Vec<usize>>,
    global_by_first: std::collections::HashMap<&'static str, Vec<usize>>,
    bind_by_name: std::collections::HashMap<&'static str, usize>,
    server_by_name: std::collections::HashMap<&'static str, usize>,
}

fn first_word(s: &'static str) -> &'static str {
    s.split(' ').next().unwrap_or(s)
}

impl Registry {
    pub fn build() -> Registry {
        let proxy = all_proxy_keywords();
        let global = all_global_keywords();
        let bind = all_bind_options();
        let server = all_server_options();
        let mut proxy_by_first: std::collections::HashMap<&'static str, Vec<usize>> = Default::default();
        for (i, k) in proxy.iter().enumerate() {
            proxy_by_first.entry(first_word(k.name)).or_default().push(i);
        }
        let mut global_by_first: std::collections::HashMap<&'static str, Vec<usize>> = Default::default();
        for (i, k) in global.iter().enumerate() {
            global_by_first.entry(first_word(k.name)).or_default().push(i);
        }
        let bind_by_name = bind.iter().enumerate().map(|(i, o)| (o.name, i)).collect();
        let server_by_name = server.iter().enumerate().map(|(i, o)| (o.name, i)).collect();
        Registry { proxy, global, bind, server, proxy_by_first, global_by_first, bind_by_name, server_by_name }
    }

    /// The proxy keyword `words` starts with, and how many words it takes.
    pub fn proxy_keyword(&self, words: &[Word]) -> Option<(&ProxyKeyword, usize)> {
        let idx = self.proxy_by_first.get(words.first()?.text.as_str())?;
        longest(words, idx.iter().map(|&i| &self.proxy[i]), |k| k.name)
    }

    pub fn global_keyword(&self, words: &[Word]) -> Option<(&GlobalKeyword, usize)> {
        let idx = self.global_by_first.get(words.first()?.text.as_str())?;
        longest(words, idx.iter().map(|&i| &self.global[i]), |k| k.name)
    }

    pub fn bind_option(&self, name: &str) -> Option<&BindOption> {
        self.bind_by_name.get(name).map(|&i| &self.bind[i])
    }

    pub fn server_option(&self, name: &str) -> Option<&ServerOption> {
        self.server_by_name.get(name).map(|&i| &self.server[i])
    }
}

fn longest<'k, K: 'k>(words: &[Word], cands: impl Iterator<Item = &'k K>, name: impl Fn(&K) -> &'static str) -> Option<(&'k K, usize)> {
    let mut best: Option<(&K, usize)> = None;
    for k in cands {
        let n = name(k);
        let parts = n.split(' ').count();
        if parts <= words.len() && n.split(' ').zip(words).all(|(p, w)| !w.quoted && p == w.text) && best.is_none_or(|(_, bn)| parts > bn) {
            best = Some((k, parts));
        }
    }
    best
}

/// Builds a [`Doc`]: `doc!(Parsed, "syntax", "one-line description", "example")`.
#[macro_export]
macro_rules! doc {
    ($status:ident, $syntax:expr, $desc:expr, $example:expr) => {
        $crate::config::registry::Doc { syntax: $syntax, desc: $desc, example: $example, status: $crate::config::registry::Status::$status }
    };
}

/// A boolean proxy `option` (`[no] option <name>`) that sets `Some(!negated)` in the field at
/// `path` of the proxy model: `bool_option!("redispatch", Sections::BE, options.redispatch, "...")`.
#[macro_export]
macro_rules! bool_option {
    ($name:literal, $sect:expr, $($field:ident).+, $desc:literal) => {
        $crate::config::registry::ProxyKeyword {
            name: concat!("option ", $name),
            sections: $sect,
            negatable: true,
            parse: |a, p| {
                a.at_most(0)?;
                p.$($field).+ = Some(!a.negated);
                Ok(())
            },
            doc: $crate::doc!(Parsed, concat!("[no] option ", $name), $desc, concat!("option ", $name)),
        }
    };
}

static REGISTRY: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();

impl Registry {
    /// The registry, built on first use.
    pub fn get() -> &'static Registry {
        REGISTRY.get_or_init(Registry::build)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::load;

    /// Odd arguments: empty, signs, overflow, separators, and words other keywords treat as syntax.
    const ODD: [&str; 14] = ["", "x", "-1", "0", "99999999999999999999", "1-", ":", "@", "a:b:c", "if", "unless", "/", "auto:", "{"];

    /// Every registered keyword and option, with one and two odd arguments: errors, never a panic.
    #[test]
    fn odd_arguments_never_panic_any_registered_keyword() {
        let reg = Registry::get();
        for a in ODD {
            for b in ODD.iter().step_by(4) {
                for k in &reg.proxy {
                    let _ = load(&format!("listen l\n    bind :80\n    {} {a} {b}\n", k.name));
                }
                for k in &reg.global {
                    let _ = load(&format!("global\n    {} {a} {b}\n", k.name));
                }
                for o in &reg.bind {
                    let _ = load(&format!("frontend f\n    bind :80 {} {a} {b}\n", o.name));
                }
                for o in &reg.server {
                    let _ = load(&format!("backend b\n    server s 127.0.0.1:80 {} {a} {b}\n", o.name));
                }
            }
        }
    }

    /// The warnings of a load, rendered.
    fn warnings(text: &str) -> Vec<String> {
        load(text).diags.warnings().map(|d| d.to_string()).collect()
    }

    #[test]
    fn every_inert_entry_names_a_documented_keyword_that_is_not_acted_on() {
        let tables = doc_tables();
        for (title, names) in INERT {
            let t = tables.iter().find(|t| t.title == *title).unwrap_or_else(|| panic!("no table '{title}'"));
            for n in *names {
                let (_, _, doc) = t.entries.iter().find(|(e, _, _)| e == n).unwrap_or_else(|| panic!("'{n}' is not in '{title}'"));
                assert_eq!(doc.status, Status::Ignored, "'{n}' of '{title}'");
                assert!(!listed(crate::route::IMPLEMENTED, title, n), "'{n}' of '{title}' is both implemented and inert");
            }
        }
    }

    #[test]
    fn parsed_only_keywords_options_actions_and_fetches_are_each_warned_about_where_used() {
        let w = warnings(
            "global\n    maxsslconn 10\n    busy-polling\ndefaults\n    mode http\nfrontend f\n    bind :80 namespace blue thread 1\n    \
             error-log-format \"%ci\"\n    option contstats\n    acl big be_sess_rate gt 5\n    http-request early-hint Link \"</a.css>\" if big\n    \
             http-request set-header x %[src,debug]\n    http-request deny if { path /x }\n    default_backend b\nbackend b\n    \
             server s 127.0.0.1:80 redir http://a tfo\n",
        );
        let expect = [
            "[t.cfg:2] : 'maxsslconn' : parsed but not applied yet: sluiced does not act on this keyword",
            "[t.cfg:7] : 'bind' : the bind option 'namespace' is parsed but not applied yet: sluiced does not act on it",
            "[t.cfg:8] : 'error-log-format' : parsed but not applied yet",
            "[t.cfg:10] : 'acl' : the fetch 'be_sess_rate' is parsed but not applied yet: it always yields no sample, and an ACL on it does not match",
            "[t.cfg:11] : 'http-request' : the http-request action 'early-hint' is parsed but not applied yet",
            "[t.cfg:12] : 'http-request' : the converter 'debug' is parsed but not applied yet: an expression using it yields no sample",
            "[t.cfg:16] : 'server' : the server option 'redir' is parsed but not applied yet",
        ];
        for e in expect {
            assert_eq!(w.iter().filter(|l| l.contains(e)).count(), 1, "'{e}' once in {w:#?}");
        }
        // Nothing else: not the inert `busy-polling`, `thread`, `option contstats` and `tfo`, and
        // not the implemented `deny`, `path` and `src`.
        assert_eq!(w.len(), expect.len(), "{w:#?}");
    }

    #[test]
    fn a_parsed_only_keyword_gets_one_warning_for_its_line_not_one_more_per_action_it_uses() {
        let w = warnings("backend b\n    mode tcp\n    server s 127.0.0.1:80\n    tcp-response content silent-drop if { req.len gt 0 }\n");
        assert_eq!(w.len(), 1, "{w:#?}");
        assert!(w[0].contains("[t.cfg:4] : 'tcp-response content' : parsed but not applied yet"), "{w:#?}");
    }

    #[test]
    fn a_keyword_its_handler_already_warned_about_gets_no_second_warning() {
        let w = warnings("defaults\n    option accept-invalid-http-request\n");
        assert_eq!(w.len(), 1, "{w:#?}");
        assert!(w[0].contains("sluiced stays strict: invalid HTTP requests are still rejected"), "{w:#?}");
    }

    #[test]
    fn server_options_parsed_outside_a_configuration_file_note_nothing() {
        // The stats socket's `add server` parses options with no line to warn on: nothing is kept
        // for the next configuration line to report.
        note_use("server options", "server option", "redir", Status::Parsed);
        let ((), noted) = collect_unapplied(|| ());
        assert!(noted.is_empty());
        let ((), noted) = collect_unapplied(|| note_use("server options", "server option", "redir", Status::Parsed));
        assert_eq!(noted.len(), 1);
    }
}
