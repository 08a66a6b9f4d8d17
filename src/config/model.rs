//! The typed configuration model: what the text means, with the `Span` of everything that names
//! something, so validation can point at the line. Each feature module owns the sub-configuration it
//! fills in (`balance`, `check`, `l7`, ...); this file holds what every proxy has.

use std::time::Duration;

use super::addr::Address;
use super::diag::Span;
use super::expr::{AclBody, Condition, SampleExpr};

/// A name that refers to something declared elsewhere, with where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameRef {
    pub name: String,
    pub span: Span,
}

/// What a reference points at, so validation can check it exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefKind {
    Backend,
    /// A stick table: a proxy with a `stick-table`.
    Table,
    Userlist,
    HttpErrors,
    /// `backend/server`.
    Server,
    /// An ACL name of the proxy the reference is in.
    Acl,
    /// A `peers` section.
    Peers,
    Resolvers,
}

/// A reference recorded while parsing, checked once the whole configuration is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ref {
    pub kind: RefKind,
    pub name: String,
    pub span: Span,
    pub keyword: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    #[default]
    Tcp,
    Http,
    /// `mode log`, `mode spop`: parsed so the error can name them.
    Other,
}

/// The kind of section a proxy was declared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyKind {
    Defaults,
    Frontend,
    Backend,
    Listen,
}

impl ProxyKind {
    pub fn keyword(self) -> &'static str {
        match self {
            ProxyKind::Defaults => "defaults",
            ProxyKind::Frontend => "frontend",
            ProxyKind::Backend => "backend",
            ProxyKind::Listen => "listen",
        }
    }
    pub fn sections(self) -> super::registry::Sections {
        use super::registry::Sections;
        match self {
            ProxyKind::Defaults => Sections::DEFAULTS,
            ProxyKind::Frontend => Sections::FRONTEND,
            ProxyKind::Backend => Sections::BACKEND,
            ProxyKind::Listen => Sections::LISTEN,
        }
    }
    pub fn has_frontend(self) -> bool {
        matches!(self, ProxyKind::Frontend | ProxyKind::Listen)
    }
    pub fn has_backend(self) -> bool {
        matches!(self, ProxyKind::Backend | ProxyKind::Listen)
    }
}

/// Timeouts of a proxy; `None` is "not set".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Timeouts {
    pub client: Option<Duration>,
    pub client_fin: Option<Duration>,
    pub server: Option<Duration>,
    pub server_fin: Option<Duration>,
    pub connect: Option<Duration>,
    pub queue: Option<Duration>,
    pub tunnel: Option<Duration>,
    pub http_request: Option<Duration>,
    pub http_keep_alive: Option<Duration>,
    pub check: Option<Duration>,
    pub tarpit: Option<Duration>,
}

/// A declared ACL: `acl NAME <criterion> [flags] [operator] <values>`.
#[derive(Clone, Debug)]
pub struct AclDecl {
    pub name: String,
    pub body: AclBody,
    pub span: Span,
}

/// A `use_backend <name|%[expr]> [if|unless cond]` rule.
#[derive(Clone, Debug)]
pub struct UseBackend {
    pub target: BackendTarget,
    pub cond: Option<Condition>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum BackendTarget {
    Named(String),
    /// A log-format string evaluated per stream (`%[req.hdr(host),lower]`).
    Dynamic(super::logformat::LogFormat),
}

/// A `use-server <name> [if|unless cond]` rule.
#[derive(Clone, Debug)]
pub struct UseServer {
    pub server: String,
    pub cond: Option<Condition>,
    pub span: Span,
}

/// A `bind` line.
#[derive(Clone, Debug)]
pub struct Bind {
    pub addrs: Vec<Address>,
    pub span: Span,
    pub name: Option<String>,
    pub id: Option<u32>,
    pub backlog: Option<u32>,
    pub maxconn: Option<u32>,
    pub accept_proxy: bool,
    pub v4v6: bool,
    pub v6only: bool,
    pub defer_accept: bool,
    pub tfo: bool,
    pub transparent: bool,
    pub interface: Option<String>,
    pub namespace: Option<String>,
    pub mss: Option<i32>,
    pub nice: Option<i32>,
    pub thread: Option<String>,
    pub process: Option<String>,
    pub shards: Option<String>,
    pub tcp_ut: Option<Duration>,
    /// Unix socket options.
    pub mode: Option<u32>,
    /// Owner and group of a unix socket: `uid`/`gid`, or `user`/`group` looked up when the file
    /// was read.
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Protocol given with `proto`.
    pub proto: Option<String>,
    pub tls: crate::tls::config::BindTls,
}

impl Bind {
    pub fn new(span: Span) -> Bind {
        Bind {
            addrs: Vec::new(),
            span,
            name: None,
            id: None,
            backlog: None,
            maxconn: None,
            accept_proxy: false,
            v4v6: false,
            v6only: false,
            defer_accept: false,
            tfo: false,
            transparent: false,
            interface: None,
            namespace: None,
            mss: None,
            nice: None,
            thread: None,
            process: None,
            shards: None,
            tcp_ut: None,
            mode: None,
            uid: None,
            gid: None,
            proto: None,
            tls: Default::default(),
        }
    }
}

/// Options a `server` line and a `default-server` line share.
#[derive(Clone, Debug, Default)]
pub struct ServerOpts {
    pub weight: Option<u32>,
    pub backup: bool,
    pub disabled: bool,
    pub maxconn: Option<u32>,
    pub minconn: Option<u32>,
    pub maxqueue: Option<u32>,
    pub send_proxy: bool,
    pub send_proxy_v2: bool,
    pub proxy_v2_options: Vec<String>,
    pub cookie: Option<String>,
    pub redir: Option<String>,
    pub source: Option<String>,
    pub init_addr: Option<String>,
    pub resolvers: Option<String>,
    pub resolve_prefer: Option<String>,
    /// `resolve-net`: the networks preferred among the resolved addresses, as written.
    pub resolve_net: Option<String>,
    /// `resolve-opts allow-dup-ip` (true) or `prevent-dup-ip` (false).
    pub resolve_allow_dup: Option<bool>,
    pub namespace: Option<String>,
    pub tfo: bool,
    pub pool_max_conn: Option<i64>,
    pub pool_low_conn: Option<u32>,
    pub pool_purge_delay: Option<Duration>,
    pub max_reuse: Option<i64>,
    pub proto: Option<String>,
    pub on_error: Option<String>,
    pub on_marked_down: Option<String>,
    pub on_marked_up: Option<String>,
    pub error_limit: Option<u32>,
    pub observe: Option<String>,
    pub slowstart: Option<Duration>,
    pub track: Option<String>,
    pub tcp_ut: Option<Duration>,
    pub check: crate::check::config::ServerCheck,
    pub tls: crate::tls::config::ServerTls,
}

/// A `server` line (or one server generated by `server-template`).
#[derive(Clone, Debug)]
pub struct Server {
    pub name: String,
    pub addr: Address,
    /// The address a host name resolved to when the configuration was loaded (`init-addr libc`);
    /// `None` for literal addresses, and for names left unresolved by `init-addr none`.
    pub resolved: Option<std::net::IpAddr>,
    pub id: Option<u32>,
    pub span: Span,
    pub opts: ServerOpts,
}

/// One proxy section: `defaults`, `frontend`, `backend` or `listen`. A proxy starts as a copy of the
/// defaults it inherits from, then its own keywords apply, as in HAProxy.
#[derive(Clone, Debug)]
pub struct Proxy {
    pub kind: ProxyKind,
    pub name: String,
    pub span: Span,
    /// `from NAME` (or the last anonymous defaults).
    pub from: Option<NameRef>,
    pub mode: Mode,
    pub disabled: bool,
    pub id: Option<u32>,
    /// Where `id` was set, for duplicate-id messages.
    pub id_span: Option<Span>,
    pub description: Option<String>,
    pub maxconn: Option<u32>,
    pub backlog: Option<u32>,
    pub fullconn: Option<u32>,
    pub retries: Option<u32>,
    pub rate_limit_sessions: Option<u32>,
    pub timeouts: Timeouts,
    pub acls: Vec<AclDecl>,
    pub binds: Vec<Bind>,
    pub servers: Vec<Server>,
    pub default_server: ServerOpts,
    pub use_backends: Vec<UseBackend>,
    pub default_backend: Option<NameRef>,
    pub use_servers: Vec<UseServer>,
    /// Boolean `option` keywords that no feature module owns (core behaviour).
    pub options: CoreOptions,
    /// Every cross-reference recorded while parsing, checked by validation.
    pub refs: Vec<Ref>,
    /// Names whose declaration line was rejected: references to them are not reported again, so a
    /// mistake gives one error, not one per use.
    pub invalid_decls: Vec<(RefKind, String)>,
    pub balance: crate::balance::config::ProxyBalance,
    pub l4: crate::l4::config::ProxyTcp,
    pub http: crate::l7::config::ProxyHttp,
    pub check: crate::check::config::ProxyCheck,
    pub log: crate::log::config::ProxyLog,
    pub stick: crate::stick::config::ProxyStick,
    pub stats: crate::control::config::StatsPage,
}

/// Core boolean options; `None` is "not set here", so inheritance can tell unset from off.
#[derive(Clone, Debug, Default)]
pub struct CoreOptions {
    pub redispatch: Option<bool>,
    pub redispatch_interval: Option<i32>,
    pub allbackups: Option<bool>,
    pub abortonclose: Option<bool>,
    pub tcpka: Option<bool>,
    pub clitcpka: Option<bool>,
    pub srvtcpka: Option<bool>,
    pub nolinger: Option<bool>,
    pub splice_auto: Option<bool>,
    pub splice_request: Option<bool>,
    pub splice_response: Option<bool>,
    pub persist: Option<bool>,
    pub transparent: Option<bool>,
    pub independent_streams: Option<bool>,
    pub socket_stats: Option<bool>,
    pub contstats: Option<bool>,
    pub tcp_smart_accept: Option<bool>,
    pub tcp_smart_connect: Option<bool>,
}

impl Proxy {
    pub fn new(kind: ProxyKind, name: &str, span: Span) -> Proxy {
        Proxy {
            kind,
            name: name.to_owned(),
            span,
            from: None,
            mode: Mode::default(),
            disabled: false,
            id: None,
            id_span: None,
            description: None,
            maxconn: None,
            backlog: None,
            fullconn: None,
            retries: None,
            rate_limit_sessions: None,
            timeouts: Timeouts::default(),
            acls: Vec::new(),
            binds: Vec::new(),
            servers: Vec::new(),
            default_server: ServerOpts::default(),
            use_backends: Vec::new(),
            default_backend: None,
            use_servers: Vec::new(),
            options: CoreOptions::default(),
            refs: Vec::new(),
            invalid_decls: Vec::new(),
            balance: Default::default(),
            l4: Default::default(),
            http: Default::default(),
            check: Default::default(),
            log: Default::default(),
            stick: Default::default(),
            stats: Default::default(),
        }
    }

    /// A new proxy inheriting everything `defaults` set, as HAProxy copies the defaults proxy.
    pub fn inherit(defaults: &Proxy, kind: ProxyKind, name: &str, span: Span) -> Proxy {
        let mut p = defaults.clone();
        p.kind = kind;
        p.name = name.to_owned();
        p.span = span;
        p.from = None;
        p.id = None;
        p.id_span = None;
        p.description = None;
        p.binds.clear();
        p.servers.clear();
        p.use_backends.clear();
        p.use_servers.clear();
        if !kind.has_frontend() {
            p.default_backend = None;
        }
        p
    }

    /// Records a reference for validation.
    pub fn add_ref(&mut self, kind: RefKind, name: &str, span: &Span, keyword: &str) {
        self.refs.push(Ref { kind, name: name.to_owned(), span: span.clone(), keyword: keyword.to_owned() });
    }

    /// Records every ACL name a condition uses.
    pub fn add_cond_refs(&mut self, cond: &Condition, span: &Span, keyword: &str) {
        for name in cond.acl_names() {
            self.add_ref(RefKind::Acl, name, span, keyword);
        }
        for r in cond.table_refs() {
            self.add_ref(RefKind::Table, r, span, keyword);
        }
        for r in cond.userlist_refs() {
            self.add_ref(RefKind::Userlist, r, span, keyword);
        }
    }

    /// Records the stick tables a sample expression names.
    pub fn add_sample_refs(&mut self, expr: &SampleExpr, span: &Span, keyword: &str) {
        for r in expr.table_refs() {
            self.add_ref(RefKind::Table, r, span, keyword);
        }
        for r in expr.userlist_refs() {
            self.add_ref(RefKind::Userlist, r, span, keyword);
        }
    }
}

/// A `userlist` section.
#[derive(Clone, Debug)]
pub struct Userlist {
    pub name: String,
    pub span: Span,
    pub groups: Vec<UserGroup>,
    pub users: Vec<User>,
}

#[derive(Clone, Debug)]
pub struct UserGroup {
    pub name: String,
    pub users: Vec<String>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub password: UserPassword,
    pub groups: Vec<String>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum UserPassword {
    /// `password <crypt(3) hash>`.
    Hashed(String),
    /// `insecure-password <text>`.
    Insecure(String),
}

/// An `http-errors` section: `errorfile <status> <file>` lines.
#[derive(Clone, Debug)]
pub struct HttpErrors {
    pub name: String,
    pub span: Span,
    pub files: Vec<(u16, String, Span)>,
}

/// The whole `global` section (several are merged).
#[derive(Clone, Debug, Default)]
pub struct Global {
    pub daemon: bool,
    pub master_worker: bool,
    /// `master-worker no-exit-on-failure`: a failed current worker does not stop the master.
    pub master_worker_no_exit_on_failure: bool,
    pub maxconn: Option<u32>,
    pub pidfile: Option<String>,
    pub user: Option<String>,
    pub group: Option<String>,
    /// The user to become after binding: `uid`, or `user` looked up when the file was read.
    pub uid: Option<u32>,
    /// The group to become: `gid`, or `group` looked up when the file was read.
    pub gid: Option<u32>,
    /// The primary group of `user`, used when no group is given.
    pub user_gid: Option<u32>,
    pub chroot: Option<String>,
    /// `setcap`: capabilities kept across the switch from root (HAProxy's names).
    pub setcap: Vec<&'static str>,
    /// `set-dumpable`.
    pub set_dumpable: bool,
    pub node: Option<String>,
    pub description: Option<String>,
    pub localpeer: Option<String>,
    pub hard_stop_after: Option<Duration>,
    pub ulimit_n: Option<u32>,
    /// `strict-limits` (`Some(true)`) or `no strict-limits` (`Some(false)`); on when absent.
    pub strict_limits: Option<bool>,
    pub maxconnrate: Option<u32>,
    pub maxsessrate: Option<u32>,
    pub maxsslconn: Option<u32>,
    pub quiet: bool,
    pub zero_warning: bool,
    /// `setenv`/`presetenv`/`unsetenv`/`resetenv`, in order; the lexer applies them as it reads
    /// (`lex::EnvOverlay`), so this is a record.
    pub env_ops: Vec<(String, Vec<String>)>,
    pub runtime: crate::runtime::config::GlobalRuntime,
    pub log: crate::log::config::GlobalLog,
    pub stats: crate::control::config::GlobalStats,
    pub tls: crate::tls::config::GlobalTls,
    pub check: crate::check::config::GlobalCheck,
}

/// The parsed, resolved and validated configuration.
#[derive(Clone, Debug, Default)]
pub struct Config {
    pub global: Global,
    /// Named defaults sections, by name.
    pub defaults: Vec<Proxy>,
    /// Frontends, backends and listens, in file order.
    pub proxies: Vec<Proxy>,
    pub userlists: Vec<Userlist>,
    pub http_errors: Vec<HttpErrors>,
    pub resolvers: Vec<crate::dns::config::Resolvers>,
    pub peers: Vec<crate::peers::config::PeersSection>,
    /// The files that were read, in order.
    pub files: Vec<String>,
}

impl Config {
    pub fn proxy(&self, name: &str) -> Option<&Proxy> {
        self.proxies.iter().find(|p| p.name == name)
    }
    pub fn backend(&self, name: &str) -> Option<&Proxy> {
        self.proxies.iter().find(|p| p.name == name && p.kind.has_backend())
    }
}
