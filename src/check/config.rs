//! Configuration of health checks: `check` server options, `option httpchk`, `http-check`,
//! `tcp-check`, protocol checks, agent checks and the check globals. Parsed into a typed model; the
//! checks themselves run in the engine (engine.rs).

use std::net::IpAddr;
use std::time::Duration;

use crate::config::addr::{AddrRules, Address, Host, parse_address};
use crate::config::diag::Span;
use crate::config::expr::{SampleExpr, parse_sample};
use crate::config::lex::Word;
use crate::config::logformat::{LogFormat, parse_log_format};
use crate::config::model::{Proxy, ServerOpts};
use crate::config::registry::{Doc, DocTable, GlobalKeyword, KwArgs, ProxyKeyword, ProxyParse, Sections, ServerOption};
use crate::config::units::{parse_time, parse_uint};
use crate::doc;

/// How a backend checks its servers, and the rules of `http-check`/`tcp-check`.
#[derive(Clone, Debug, Default)]
pub struct ProxyCheck {
    /// The check protocol chosen by an `option` (`httpchk`, `tcp-check`, `redis-check`, ...); `None`
    /// is a plain TCP connect check.
    pub kind: Option<CheckKind>,
    /// `http-check` rules, in order.
    pub http_rules: Vec<CheckRule<HttpCheckRule>>,
    /// `tcp-check` rules, in order.
    pub tcp_rules: Vec<CheckRule<TcpCheckRule>>,
    /// `http-check disable-on-404`: a 404 answer puts the server in maintenance-like NOLB state.
    pub disable_on_404: bool,
    /// `http-check send-state`: adds the `X-Haproxy-Server-State` header to HTTP checks.
    pub send_state: bool,
    /// The section that wrote `http_rules`. A proxy that declares its own rules replaces those it
    /// inherited from its defaults instead of appending to them, as in HAProxy.
    pub http_rules_owner: Option<Span>,
    /// The same for `tcp_rules`.
    pub tcp_rules_owner: Option<Span>,
}

/// The check protocol selected by an `option`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckKind {
    /// `option httpchk [<method>] [<uri>] [<version>]`.
    Http(HttpChk),
    /// `option tcp-check`: the `tcp-check` rules.
    Tcp,
    /// `option pgsql-check user <name>`.
    PgSql {
        user: String,
    },
    /// `option mysql-check [user <name> [post-41|pre-41]]`.
    MySql {
        user: Option<String>,
        post_41: bool,
    },
    Redis,
    /// `option smtpchk [HELO|EHLO <domain>]`.
    Smtp {
        ehlo: bool,
        domain: String,
    },
    Ldap,
    SslHello,
}

/// `option httpchk` arguments; `None` parts take HAProxy's defaults (`OPTIONS / HTTP/1.0`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpChk {
    pub method: Option<String>,
    pub uri: Option<String>,
    pub version: Option<String>,
    /// Headers written after the version with `\r\n` (an old idiom: `http-check send hdr` is the modern form).
    pub headers: Vec<(String, String)>,
}

/// A rule with the line it was written on.
#[derive(Clone, Debug)]
pub struct CheckRule<R> {
    pub rule: R,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum HttpCheckRule {
    Connect(CheckConnect),
    Send(HttpCheckSend),
    Expect(Expect<HttpMatch>),
    Comment(String),
    SetVar(SetVar),
    UnsetVar(String),
}

#[derive(Clone, Debug)]
pub enum TcpCheckRule {
    Connect(CheckConnect),
    Send(TcpSend),
    Expect(Expect<TcpMatch>),
    Comment(String),
    SetVar(SetVar),
    UnsetVar(String),
}

/// `http-check connect` / `tcp-check connect`: opens a (new) connection for the following rules.
#[derive(Clone, Debug, Default)]
pub struct CheckConnect {
    /// `default`: take the connection settings of the server line.
    pub default: bool,
    pub port: Option<CheckPort>,
    pub addr: Option<Address>,
    pub send_proxy: bool,
    pub via_socks4: bool,
    pub ssl: bool,
    pub sni: Option<String>,
    pub alpn: Option<Vec<String>>,
    pub linger: bool,
    pub proto: Option<String>,
    pub comment: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckPort {
    Number(u16),
    /// A sample expression evaluated when the check runs.
    Expr(SampleExpr),
}

/// `http-check send`: the request of an HTTP check; unset parts come from `option httpchk`.
#[derive(Clone, Debug, Default)]
pub struct HttpCheckSend {
    pub method: Option<String>,
    pub uri: Option<Text>,
    pub version: Option<String>,
    /// `hdr <name> <log-format value>`, in order.
    pub headers: Vec<(String, LogFormat)>,
    pub body: Option<Text>,
    pub comment: Option<String>,
}

/// A literal string or a log-format string evaluated per check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Text {
    Plain(String),
    Fmt(LogFormat),
}

/// `tcp-check send*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpSend {
    pub data: TcpSendData,
    pub comment: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TcpSendData {
    /// `send <string>`.
    String(String),
    /// `send-lf <fmt>`.
    StringLf(LogFormat),
    /// `send-binary <hex>`, decoded.
    Binary(Vec<u8>),
    /// `send-binary-lf <fmt>`: a log-format producing hex.
    BinaryLf(LogFormat),
}

/// `set-var(<name>[,<cond>...]) <expr>` or `set-var-fmt(<name>[,<cond>...]) <fmt>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetVar {
    /// With its scope: `check.port`, `txn.x`.
    pub name: String,
    /// `ifexists`, `ifnotempty`, ...
    pub conditions: Vec<String>,
    pub value: SetVarValue,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetVarValue {
    Expr(SampleExpr),
    Fmt(LogFormat),
}

/// `http-check expect` / `tcp-check expect`: what the answer must (or, negated, must not) match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expect<M> {
    /// Bytes to wait for before matching (`-1`, HAProxy's "until the end", is `None`).
    pub min_recv: Option<u32>,
    pub comment: Option<String>,
    pub ok_status: Option<CheckStatus>,
    pub error_status: Option<CheckStatus>,
    pub tout_status: Option<CheckStatus>,
    pub on_success: Option<LogFormat>,
    pub on_error: Option<LogFormat>,
    /// Sets the check's status code from a sample (`status-code`).
    pub status_code: Option<SampleExpr>,
    /// `!`: the rule passes when the pattern does not match.
    pub negated: bool,
    pub matcher: M,
}

/// Check result codes that `ok-status`, `error-status` and `tout-status` may force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckStatus {
    L7Ok,
    L7OkC,
    L6Ok,
    L4Ok,
    L7Rsp,
    L7Sts,
    L6Rsp,
    L4Con,
    L7Tout,
    L6Tout,
    L4Tout,
    /// Not a check result: `observe` saw `error-limit` consecutive errors on live traffic
    /// (HAProxy's `HANA`). Never written in a configuration.
    Hana,
}

/// A regular expression with its source, compiled when the configuration is read.
#[derive(Clone, Debug)]
pub struct CheckRegex {
    pub pattern: String,
    pub regex: regex::Regex,
}

impl PartialEq for CheckRegex {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}
impl Eq for CheckRegex {}

impl CheckRegex {
    pub(crate) fn new(pattern: &str) -> Result<CheckRegex, String> {
        let regex = regex::Regex::new(pattern).map_err(|e| format!("invalid regex '{pattern}' : {}", e.to_string().lines().last().unwrap_or_default()))?;
        Ok(CheckRegex { pattern: pattern.to_owned(), regex })
    }
}

/// What `http-check expect` matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpMatch {
    /// `status <code>[-<code>][,...]`: inclusive ranges.
    Status(Vec<(u16, u16)>),
    RStatus(CheckRegex),
    /// `hdr`/`fhdr name ... [value ...]`; `full` (fhdr) matches the whole header line value.
    Hdr {
        full: bool,
        name: HdrPattern,
        value: Option<HdrPattern>,
    },
    String(String),
    RString(CheckRegex),
}

/// A header name or value pattern of `expect hdr`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HdrPattern {
    Str(HdrMethod, String),
    /// `name-lf`/`value-lf`: evaluated per check.
    Fmt(HdrMethod, LogFormat),
    /// `-m reg`.
    Reg(CheckRegex),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HdrMethod {
    Str,
    Beg,
    End,
    Sub,
}

/// What `tcp-check expect` matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TcpMatch {
    String(String),
    RString(CheckRegex),
    Binary(Vec<u8>),
    /// Matched against the hex dump of the answer.
    RBinary(CheckRegex),
    StringLf(LogFormat),
    BinaryLf(LogFormat),
}

/// Health-check options of a `server` or `default-server` line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerCheck {
    /// `check` / `no-check`.
    pub enabled: bool,
    pub inter: Option<Duration>,
    /// Interval while the server is changing state.
    pub fastinter: Option<Duration>,
    /// Interval while the server is down.
    pub downinter: Option<Duration>,
    pub rise: Option<u32>,
    pub fall: Option<u32>,
    /// `port`: checks go to this port instead of the server's.
    pub port: Option<u16>,
    /// `addr`: checks go to this address instead of the server's.
    pub addr: Option<IpAddr>,
    pub send_proxy: bool,
    pub via_socks4: bool,
    pub ssl: bool,
    pub sni: Option<String>,
    pub alpn: Option<Vec<String>>,
    pub proto: Option<String>,
    pub agent: AgentCheck,
    pub init_state: Option<InitState>,
}

/// `agent-*` options: a side channel where the server reports its own state and weight.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentCheck {
    pub enabled: bool,
    pub port: Option<u16>,
    pub addr: Option<Host>,
    pub inter: Option<Duration>,
    /// Sent to the agent once connected.
    pub send: Option<String>,
}

/// `init-state`: the state a checked server starts in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitState {
    /// Up, and down after one failed check (the default, as in HAProxy).
    Up,
    /// Down, and up after one successful check.
    Down,
    /// Up, and down after `fall` failed checks.
    FullyUp,
    /// Down, and up after `rise` successful checks.
    FullyDown,
}

/// Check settings of the `global` section.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GlobalCheck {
    /// `spread-checks`: random +/- percent added to check intervals.
    pub spread_checks: Option<u32>,
    /// `max-spread-checks`: upper bound of the start-up spreading of the first checks.
    pub max_spread_checks: Option<Duration>,
    /// `tune.max-checks-per-thread`: checks running at once per thread; others wait.
    pub max_checks_per_thread: Option<u32>,
}

fn kw(name: &'static str, parse: ProxyParse, doc: Doc) -> ProxyKeyword {
    ProxyKeyword { name, sections: Sections::BE, negatable: false, parse, doc }
}

pub fn proxy_keywords() -> Vec<ProxyKeyword> {
    vec![
        kw(
            "option httpchk",
            parse_httpchk,
            doc!(
                Parsed,
                "option httpchk [<method>] [<uri>] [<version>]",
                "Checks servers with an HTTP request (default 'OPTIONS / HTTP/1.0'); a 2xx or 3xx answer passes.",
                "option httpchk GET /health HTTP/1.1"
            ),
        ),
        kw(
            "option tcp-check",
            |a, p| no_arg_kind(a, p, CheckKind::Tcp),
            doc!(Parsed, "option tcp-check", "Checks servers with the 'tcp-check' rules.", "option tcp-check"),
        ),
        kw(
            "option pgsql-check",
            |a, p| {
                match a.args() {
                    [u, name] if u.is("user") => p.check.kind = Some(CheckKind::PgSql { user: name.text.clone() }),
                    _ => return Err("expects 'user <username>'".into()),
                }
                Ok(())
            },
            doc!(Parsed, "option pgsql-check user <username>", "Checks PostgreSQL servers with a startup packet.", "option pgsql-check user haproxy"),
        ),
        kw(
            "option mysql-check",
            parse_mysql_check,
            doc!(
                Parsed,
                "option mysql-check [user <username> [post-41|pre-41]]",
                "Checks MySQL servers, optionally logging in as an unprivileged user.",
                "option mysql-check user haproxy post-41"
            ),
        ),
        kw(
            "option redis-check",
            |a, p| no_arg_kind(a, p, CheckKind::Redis),
            doc!(Parsed, "option redis-check", "Checks Redis servers with PING, expecting +PONG.", "option redis-check"),
        ),
        kw(
            "option smtpchk",
            parse_smtpchk,
            doc!(
                Parsed,
                "option smtpchk [HELO|EHLO <domain>]",
                "Checks SMTP servers with HELO or EHLO (default 'HELO localhost').",
                "option smtpchk EHLO lb.example.com"
            ),
        ),
        kw(
            "option ldap-check",
            |a, p| no_arg_kind(a, p, CheckKind::Ldap),
            doc!(Parsed, "option ldap-check", "Checks LDAP servers with an anonymous bind.", "option ldap-check"),
        ),
        kw(
            "option ssl-hello-chk",
            |a, p| no_arg_kind(a, p, CheckKind::SslHello),
            doc!(
                Parsed,
                "option ssl-hello-chk",
                "Checks that a server speaks TLS: sends a TLS 1.2 ClientHello (no handshake follows) and passes (L6OK) on a handshake or alert record; any other answer or a close is L6RSP, silence L6TOUT.",
                "option ssl-hello-chk"
            ),
        ),
        kw(
            "option spop-check",
            |_, _| Err("SPOP agents are not supported by sluiced".into()),
            doc!(Parsed, "option spop-check", "Not supported: sluiced has no SPOE; rejected.", "option tcp-check"),
        ),
        kw(
            "option external-check",
            |_, _| Err("external checks are not supported by sluiced (it never runs external programs); use 'option tcp-check' or 'option httpchk'".into()),
            doc!(Parsed, "option external-check", "Not supported: sluiced never runs external programs; rejected.", "option httpchk"),
        ),
        kw(
            "http-check",
            parse_http_check,
            doc!(
                Parsed,
                "http-check <rule> [args...]",
                "Adds a rule to the HTTP check ruleset, or sets an HTTP check option; rules are listed under 'http-check rules'.",
                "http-check expect status 200-399"
            ),
        ),
        kw(
            "tcp-check",
            parse_tcp_check,
            doc!(
                Parsed,
                "tcp-check <rule> [args...]",
                "Adds a rule to the TCP check ruleset; rules are listed under 'tcp-check rules'.",
                "tcp-check expect string +PONG"
            ),
        ),
    ]
}

fn no_arg_kind(a: &mut KwArgs<'_>, p: &mut Proxy, kind: CheckKind) -> Result<(), String> {
    a.at_most(0)?;
    p.check.kind = Some(kind);
    Ok(())
}

fn parse_httpchk(a: &mut KwArgs<'_>, p: &mut Proxy) -> Result<(), String> {
    let args: Vec<&str> = a.args().iter().map(|w| w.text.as_str()).collect();
    let (method, uri, version) = match args.as_slice() {
        [] => (None, None, None),
        [uri] => (None, Some(*uri), None),
        [m, uri] => (Some(*m), Some(*uri), None),
        [m, uri, v] => (Some(*m), Some(*uri), Some(*v)),
        [_, _, _, x, ..] => return Err(format!("unexpected argument '{x}' (expected [<method>] [<uri>] [<version>])")),
    };
    if let Some(m) = method {
        check_token("method", m)?;
    }
    if let Some(u) = uri {
        check_uri(u)?;
    }
    let mut chk = HttpChk { method: method.map(str::to_owned), uri: uri.map(str::to_owned), version: None, headers: Vec::new() };
    if let Some(v) = version {
        // "HTTP/1.1\r\nHost:\ www" was how headers were added before `http-check send hdr`.
        let mut parts = v.split("\r\n");
        let ver = parts.next().unwrap_or_default();
        check_version(ver)?;
        chk.version = Some(ver.to_owned());
        for h in parts.filter(|h| !h.is_empty()) {
            let (name, value) = h.split_once(':').ok_or_else(|| format!("invalid header '{h}' after the HTTP version"))?;
            check_token("header name", name)?;
            chk.headers.push((name.to_owned(), value.trim_start().to_owned()));
        }
        if !chk.headers.is_empty() {
            a.warn("headers after the version are deprecated; use 'http-check send hdr <name> <value>'");
        }
    }
    p.check.kind = Some(CheckKind::Http(chk));
    Ok(())
}

fn parse_mysql_check(a: &mut KwArgs<'_>, p: &mut Proxy) -> Result<(), String> {
    let args: Vec<&str> = a.args().iter().map(|w| w.text.as_str()).collect();
    let (user, post_41) = match args.as_slice() {
        [] => (None, true),
        ["user", u] | ["user", u, "post-41"] => (Some(*u), true),
        ["user", u, "pre-41"] => (Some(*u), false),
        ["user", _, x, ..] => return Err(format!("expects 'post-41' or 'pre-41' after the user name, got '{x}'")),
        _ => return Err("expects [user <username> [post-41|pre-41]]".into()),
    };
    p.check.kind = Some(CheckKind::MySql { user: user.map(str::to_owned), post_41 });
    Ok(())
}

fn parse_smtpchk(a: &mut KwArgs<'_>, p: &mut Proxy) -> Result<(), String> {
    let args: Vec<&str> = a.args().iter().map(|w| w.text.as_str()).collect();
    let is_greeting = |h: &str| h.eq_ignore_ascii_case("HELO") || h.eq_ignore_ascii_case("EHLO");
    let (ehlo, domain) = match args.as_slice() {
        [] => (false, "localhost"),
        [hello, ..] if !is_greeting(hello) => {
            // HAProxy turns any other command into its default.
            a.warn(format!("unknown greeting '{hello}', using 'HELO localhost' (expected HELO or EHLO)"));
            (false, "localhost")
        }
        [hello, domain] => (hello.eq_ignore_ascii_case("EHLO"), *domain),
        [_] => return Err("expects a domain after HELO or EHLO".into()),
        [_, _, x, ..] => return Err(format!("unexpected argument '{x}'")),
    };
    p.check.kind = Some(CheckKind::Smtp { ehlo, domain: domain.to_owned() });
    Ok(())
}

/// An HTTP token: method or header name.
fn check_token(what: &str, s: &str) -> Result<(), String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)) {
        return Err(format!("invalid {what} '{}'", s.escape_default()));
    }
    Ok(())
}

fn check_uri(s: &str) -> Result<(), String> {
    if s.is_empty() || s.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(format!("invalid URI '{}'", s.escape_default()));
    }
    Ok(())
}

fn check_version(s: &str) -> Result<(), String> {
    if !s.starts_with("HTTP/") || s.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(format!("invalid HTTP version '{}' (expected HTTP/1.0, HTTP/1.1, ...)", s.escape_default()));
    }
    Ok(())
}

/// The rules of `http-check`/`tcp-check` this proxy writes to: inherited rules are dropped the
/// first time the proxy declares one of its own.
fn own_rules<'a, R>(rules: &'a mut Vec<CheckRule<R>>, owner: &mut Option<Span>, section: &Span) -> &'a mut Vec<CheckRule<R>> {
    if owner.as_ref() != Some(section) {
        rules.clear();
        *owner = Some(section.clone());
    }
    rules
}

/// Names of the sub-keywords of `http-check`, for messages.
const HTTP_CHECK_RULES: &str = "connect, send, expect, comment, set-var, set-var-fmt, unset-var, disable-on-404 or send-state";
const TCP_CHECK_RULES: &str = "connect, send, send-lf, send-binary, send-binary-lf, expect, comment, set-var, set-var-fmt or unset-var";

fn parse_http_check(a: &mut KwArgs<'_>, p: &mut Proxy) -> Result<(), String> {
    let sub = a.need(0, &format!("rule ({HTTP_CHECK_RULES})"))?;
    let rest = &a.args()[1..];
    if sub == "disable-on-404" || sub == "send-state" {
        if let Some(x) = rest.first() {
            return Err(format!("'{sub}' takes no argument, got '{}'", x.text));
        }
        if sub == "disable-on-404" {
            p.check.disable_on_404 = true;
        } else {
            p.check.send_state = true;
        }
        return Ok(());
    }
    let parsed = || -> Result<Option<HttpCheckRule>, String> {
        Ok(Some(match sub {
            "connect" => HttpCheckRule::Connect(parse_connect(rest)?),
            "send" => HttpCheckRule::Send(parse_http_send(rest)?),
            "expect" => HttpCheckRule::Expect(parse_expect(rest, parse_http_match)?),
            "comment" => HttpCheckRule::Comment(one_arg(rest, "comment")?),
            _ => match parse_var_rule(sub, rest)? {
                Some(VarRule::Set(v)) => HttpCheckRule::SetVar(v),
                Some(VarRule::Unset(n)) => HttpCheckRule::UnsetVar(n),
                None => return Ok(None),
            },
        }))
    };
    let rule = parsed().map_err(|e| format!("'{sub}' : {e}"))?.ok_or_else(|| unknown_rule("http-check", sub, HTTP_CHECK_RULES))?;
    let section = p.span.clone();
    let c = &mut p.check;
    let rules = own_rules(&mut c.http_rules, &mut c.http_rules_owner, &section);
    if matches!(rule, HttpCheckRule::Connect(_)) && rules.iter().any(|r| matches!(r.rule, HttpCheckRule::Send(_) | HttpCheckRule::Expect(_))) {
        return Err(CONNECT_FIRST.replace("{}", "http-check"));
    }
    rules.push(CheckRule { rule, span: a.span.clone() });
    Ok(())
}

const CONNECT_FIRST: &str = "'connect' must be the first rule, preceded only by 'comment', 'set-var' or 'unset-var' rules, when the {} ruleset has a 'connect'";

fn parse_tcp_check(a: &mut KwArgs<'_>, p: &mut Proxy) -> Result<(), String> {
    let sub = a.need(0, &format!("rule ({TCP_CHECK_RULES})"))?;
    let rest = &a.args()[1..];
    let parsed = || -> Result<Option<TcpCheckRule>, String> {
        Ok(Some(match sub {
            "connect" => TcpCheckRule::Connect(parse_connect(rest)?),
            "send" | "send-lf" | "send-binary" | "send-binary-lf" => TcpCheckRule::Send(parse_tcp_send(sub, rest)?),
            "expect" => TcpCheckRule::Expect(parse_expect(rest, parse_tcp_match)?),
            "comment" => TcpCheckRule::Comment(one_arg(rest, "comment")?),
            _ => match parse_var_rule(sub, rest)? {
                Some(VarRule::Set(v)) => TcpCheckRule::SetVar(v),
                Some(VarRule::Unset(n)) => TcpCheckRule::UnsetVar(n),
                None => return Ok(None),
            },
        }))
    };
    let rule = parsed().map_err(|e| format!("'{sub}' : {e}"))?.ok_or_else(|| unknown_rule("tcp-check", sub, TCP_CHECK_RULES))?;
    let section = p.span.clone();
    let c = &mut p.check;
    let rules = own_rules(&mut c.tcp_rules, &mut c.tcp_rules_owner, &section);
    if matches!(rule, TcpCheckRule::Connect(_)) && rules.iter().any(|r| matches!(r.rule, TcpCheckRule::Send(_) | TcpCheckRule::Expect(_))) {
        return Err(CONNECT_FIRST.replace("{}", "tcp-check"));
    }
    rules.push(CheckRule { rule, span: a.span.clone() });
    Ok(())
}

fn unknown_rule(kw: &str, sub: &str, all: &str) -> String {
    let names = all.replace(" or ", ", ");
    match crate::config::diag::did_you_mean(sub, names.split(", ")) {
        Some(s) => format!("unknown {kw} rule '{sub}'; did you mean '{s}' maybe ? (expected {all})"),
        None => format!("unknown {kw} rule '{sub}' (expected {all})"),
    }
}

fn one_arg(rest: &[Word], what: &str) -> Result<String, String> {
    match rest {
        [v] => Ok(v.text.clone()),
        [] => Err(format!("'{what}' expects a value")),
        [_, x, ..] => Err(format!("unexpected argument '{}'", x.text)),
    }
}

fn value<'a>(rest: &'a [Word], i: usize, opt: &str) -> Result<&'a str, String> {
    rest.get(i + 1).map(|w| w.text.as_str()).ok_or_else(|| format!("'{opt}' expects a value"))
}

fn port_number(v: &str) -> Result<u16, String> {
    match v.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("invalid port '{v}' (expected 1 to 65535)")),
    }
}

fn alpn_list(v: &str) -> Result<Vec<String>, String> {
    let list: Vec<String> = v.split(',').map(str::to_owned).collect();
    if list.iter().any(|p| p.is_empty() || p.len() > 255) {
        return Err(format!("invalid ALPN list '{v}' (comma-separated protocol names of 1 to 255 bytes)"));
    }
    Ok(list)
}

fn parse_connect(rest: &[Word]) -> Result<CheckConnect, String> {
    let mut c = CheckConnect::default();
    let mut i = 0;
    while i < rest.len() {
        let opt = rest[i].text.as_str();
        match opt {
            "default" => c.default = true,
            "send-proxy" => c.send_proxy = true,
            "via-socks4" => c.via_socks4 = true,
            "ssl" => c.ssl = true,
            "linger" => c.linger = true,
            "port" => {
                let v = value(rest, i, opt)?;
                c.port = Some(if v.bytes().all(|b| b.is_ascii_digit()) { CheckPort::Number(port_number(v)?) } else { CheckPort::Expr(parse_sample(v)?) });
                i += 1;
            }
            "addr" => {
                let v = value(rest, i, opt)?;
                c.addr = Some(parse_address(v, AddrRules { listener: false, server: true })?);
                i += 1;
            }
            "sni" => {
                c.sni = Some(value(rest, i, opt)?.to_owned());
                i += 1;
            }
            "alpn" => {
                c.alpn = Some(alpn_list(value(rest, i, opt)?)?);
                i += 1;
            }
            "proto" => {
                c.proto = Some(value(rest, i, opt)?.to_owned());
                i += 1;
            }
            "comment" => {
                c.comment = Some(value(rest, i, opt)?.to_owned());
                i += 1;
            }
            _ => {
                return Err(format!("unknown option '{opt}' (expected default, port, addr, send-proxy, via-socks4, ssl, sni, alpn, linger, proto or comment)"));
            }
        }
        i += 1;
    }
    Ok(c)
}

fn parse_http_send(rest: &[Word]) -> Result<HttpCheckSend, String> {
    let mut s = HttpCheckSend::default();
    let mut i = 0;
    while i < rest.len() {
        let opt = rest[i].text.as_str();
        if !["meth", "uri", "uri-lf", "ver", "hdr", "body", "body-lf", "comment"].contains(&opt) {
            return Err(format!("unknown option '{opt}' (expected meth, uri, uri-lf, ver, hdr, body, body-lf or comment)"));
        }
        let v = value(rest, i, opt)?;
        match opt {
            "meth" => {
                check_token("method", v)?;
                s.method = Some(v.to_owned());
            }
            "uri" => {
                check_uri(v)?;
                s.uri = Some(Text::Plain(v.to_owned()));
            }
            "uri-lf" => s.uri = Some(Text::Fmt(parse_log_format(v)?)),
            "ver" => {
                check_version(v)?;
                s.version = Some(v.to_owned());
            }
            "hdr" => {
                check_token("header name", v)?;
                let hv = rest.get(i + 2).ok_or_else(|| format!("'hdr' expects a name and a value, got only '{v}'"))?;
                s.headers.push((v.to_owned(), parse_log_format(&hv.text)?));
                i += 1;
            }
            "body" | "body-lf" => {
                if s.body.is_some() {
                    return Err("only one of 'body' and 'body-lf' may be given".into());
                }
                s.body = Some(if opt == "body" { Text::Plain(v.to_owned()) } else { Text::Fmt(parse_log_format(v)?) });
            }
            _ => s.comment = Some(v.to_owned()),
        }
        i += 2;
    }
    Ok(s)
}

fn decode_hex(s: &str) -> Result<Vec<u8>, String> {
    if s.is_empty() || !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("invalid hexadecimal string '{}' (expected an even number of hex digits)", s.escape_default()));
    }
    // Every byte is an ASCII hex digit, so slicing by two is on char boundaries.
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| e.to_string())).collect()
}

fn parse_tcp_send(sub: &str, rest: &[Word]) -> Result<TcpSend, String> {
    let data = rest.first().ok_or_else(|| format!("'{sub}' expects data"))?.text.as_str();
    let comment = match &rest[1..] {
        [] => None,
        [c, v] if c.is("comment") => Some(v.text.clone()),
        [x, ..] => return Err(format!("unexpected '{}' (expected 'comment <text>')", x.text)),
    };
    let data = match sub {
        "send" => TcpSendData::String(data.to_owned()),
        "send-lf" => TcpSendData::StringLf(parse_log_format(data)?),
        "send-binary" => TcpSendData::Binary(decode_hex(data)?),
        _ => TcpSendData::BinaryLf(parse_log_format(data)?),
    };
    Ok(TcpSend { data, comment })
}

fn check_status(opt: &str, v: &str) -> Result<CheckStatus, String> {
    use CheckStatus::*;
    let (allowed, st): (&str, Option<CheckStatus>) = match opt {
        "ok-status" => {
            ("L7OK, L7OKC, L6OK or L4OK", [("L7OK", L7Ok), ("L7OKC", L7OkC), ("L6OK", L6Ok), ("L4OK", L4Ok)].into_iter().find(|(n, _)| *n == v).map(|x| x.1))
        }
        "error-status" => (
            "L7RSP, L7STS, L6RSP or L4CON",
            [("L7RSP", L7Rsp), ("L7STS", L7Sts), ("L6RSP", L6Rsp), ("L4CON", L4Con)].into_iter().find(|(n, _)| *n == v).map(|x| x.1),
        ),
        _ => ("L7TOUT, L6TOUT or L4TOUT", [("L7TOUT", L7Tout), ("L6TOUT", L6Tout), ("L4TOUT", L4Tout)].into_iter().find(|(n, _)| *n == v).map(|x| x.1)),
    };
    st.ok_or_else(|| format!("'{opt}' expects {allowed}, got '{v}'"))
}

/// Parses `expect` options in any order around `[!] <match> <pattern>`; `matcher` reads the match
/// at `rest[i]` and returns it with the number of words it used.
/// Reads a match at the start of the words: `None` when the first word is no match keyword, else
/// the match and how many words it used.
type MatchParser<M> = fn(&[Word]) -> Result<Option<(M, usize)>, String>;

fn parse_expect<M>(rest: &[Word], matcher: MatchParser<M>) -> Result<Expect<M>, String> {
    let mut e = Expect {
        min_recv: None,
        comment: None,
        ok_status: None,
        error_status: None,
        tout_status: None,
        on_success: None,
        on_error: None,
        status_code: None,
        negated: false,
        matcher: None,
    };
    let mut i = 0;
    while i < rest.len() {
        let opt = rest[i].text.as_str();
        match opt {
            "!" => {
                if e.matcher.is_some() {
                    return Err("'!' must come before the match".into());
                }
                e.negated = true;
                i += 1;
                continue;
            }
            "min-recv" => {
                let v = value(rest, i, opt)?;
                e.min_recv = match v {
                    "-1" => None,
                    _ => Some(parse_uint(v, "min-recv", i32::MAX as u64)? as u32),
                };
            }
            "comment" => e.comment = Some(value(rest, i, opt)?.to_owned()),
            "ok-status" => e.ok_status = Some(check_status(opt, value(rest, i, opt)?)?),
            "error-status" => e.error_status = Some(check_status(opt, value(rest, i, opt)?)?),
            "tout-status" => e.tout_status = Some(check_status(opt, value(rest, i, opt)?)?),
            "on-success" => e.on_success = Some(parse_log_format(value(rest, i, opt)?)?),
            "on-error" => e.on_error = Some(parse_log_format(value(rest, i, opt)?)?),
            "status-code" => e.status_code = Some(parse_sample(value(rest, i, opt)?)?),
            _ => match matcher(&rest[i..])? {
                Some((m, used)) => {
                    if e.matcher.is_some() {
                        return Err(format!("only one match is allowed, got a second one at '{opt}'"));
                    }
                    e.matcher = Some(m);
                    i += used;
                    continue;
                }
                None => return Err(format!("unknown option or match '{opt}'")),
            },
        }
        i += 2;
    }
    let matcher = e.matcher.ok_or("expects a match and its pattern")?;
    Ok(Expect {
        min_recv: e.min_recv,
        comment: e.comment,
        ok_status: e.ok_status,
        error_status: e.error_status,
        tout_status: e.tout_status,
        on_success: e.on_success,
        on_error: e.on_error,
        status_code: e.status_code,
        negated: e.negated,
        matcher,
    })
}

fn pattern<'a>(w: &'a [Word], what: &str) -> Result<&'a str, String> {
    w.get(1).map(|w| w.text.as_str()).ok_or_else(|| format!("'{what}' expects a pattern"))
}

fn status_ranges(v: &str) -> Result<Vec<(u16, u16)>, String> {
    let code = |s: &str| match s.parse::<u16>() {
        Ok(c) if (100..=599).contains(&c) => Ok(c),
        _ => Err(format!("invalid status code '{s}' in '{v}' (expected 100 to 599)")),
    };
    v.split(',')
        .map(|part| {
            let (lo, hi) = match part.split_once('-') {
                Some((l, h)) => (code(l)?, code(h)?),
                None => (code(part)?, code(part)?),
            };
            if hi < lo { Err(format!("invalid status range '{part}'")) } else { Ok((lo, hi)) }
        })
        .collect()
}

fn parse_http_match(w: &[Word]) -> Result<Option<(HttpMatch, usize)>, String> {
    let kind = w[0].text.as_str();
    let m = match kind {
        "status" => HttpMatch::Status(status_ranges(pattern(w, kind)?)?),
        "rstatus" => HttpMatch::RStatus(CheckRegex::new(pattern(w, kind)?)?),
        "string" => HttpMatch::String(pattern(w, kind)?.to_owned()),
        "rstring" => HttpMatch::RString(CheckRegex::new(pattern(w, kind)?)?),
        "hdr" | "fhdr" => return parse_hdr_match(w, kind == "fhdr").map(Some),
        _ => return Ok(None),
    };
    Ok(Some((m, 2)))
}

/// `hdr {name|name-lf} [-m meth] <name> [{value|value-lf} [-m meth] <value>]`.
fn parse_hdr_match(w: &[Word], full: bool) -> Result<(HttpMatch, usize), String> {
    let mut i = 1;
    let part = |i: &mut usize, keys: [&str; 2]| -> Result<Option<HdrPattern>, String> {
        let Some(k) = w.get(*i).map(|w| w.text.as_str()).filter(|k| keys.contains(k)) else {
            return Ok(None);
        };
        *i += 1;
        let mut meth = "str";
        if w.get(*i).is_some_and(|x| x.is("-m")) {
            meth = w.get(*i + 1).map(|x| x.text.as_str()).ok_or("'-m' expects a method (str, beg, end, sub or reg)")?;
            *i += 2;
        }
        let pat = w.get(*i).map(|x| x.text.as_str()).ok_or_else(|| format!("'{k}' expects a pattern"))?;
        *i += 1;
        let lf = k.ends_with("-lf");
        let m = match meth {
            "str" => HdrMethod::Str,
            "beg" => HdrMethod::Beg,
            "end" => HdrMethod::End,
            "sub" => HdrMethod::Sub,
            "reg" if lf => return Err(format!("'-m reg' cannot be used with '{k}'")),
            "reg" => return Ok(Some(HdrPattern::Reg(CheckRegex::new(pat)?))),
            _ => return Err(format!("unknown match method '{meth}' (expected str, beg, end, sub or reg)")),
        };
        Ok(Some(if lf { HdrPattern::Fmt(m, parse_log_format(pat)?) } else { HdrPattern::Str(m, pat.to_owned()) }))
    };
    let name = part(&mut i, ["name", "name-lf"])?.ok_or("'hdr' expects 'name <name>' or 'name-lf <fmt>'")?;
    let value = part(&mut i, ["value", "value-lf"])?;
    Ok((HttpMatch::Hdr { full, name, value }, i))
}

fn parse_tcp_match(w: &[Word]) -> Result<Option<(TcpMatch, usize)>, String> {
    let kind = w[0].text.as_str();
    let m = match kind {
        "string" => TcpMatch::String(pattern(w, kind)?.to_owned()),
        "rstring" => TcpMatch::RString(CheckRegex::new(pattern(w, kind)?)?),
        "binary" => TcpMatch::Binary(decode_hex(pattern(w, kind)?)?),
        "rbinary" => TcpMatch::RBinary(CheckRegex::new(pattern(w, kind)?)?),
        "string-lf" => TcpMatch::StringLf(parse_log_format(pattern(w, kind)?)?),
        "binary-lf" => TcpMatch::BinaryLf(parse_log_format(pattern(w, kind)?)?),
        _ => return Ok(None),
    };
    Ok(Some((m, 2)))
}

enum VarRule {
    Set(SetVar),
    Unset(String),
}

const VAR_SCOPES: &[&str] = &["proc", "sess", "txn", "req", "res", "check"];
const VAR_CONDITIONS: &[&str] = &["ifexists", "ifnotexists", "ifempty", "ifnotempty", "ifset", "ifnotset", "ifgt", "iflt"];

fn var_name(name: &str) -> Result<String, String> {
    let (scope, rest) = name.split_once('.').unwrap_or(("", ""));
    if !VAR_SCOPES.contains(&scope) || rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.') {
        return Err(format!("invalid variable name '{name}' (expected <scope>.<name> with scope proc, sess, txn, req, res or check)"));
    }
    Ok(name.to_owned())
}

/// `set-var(...)`, `set-var-fmt(...)`, `unset-var(...)`; `None` when `sub` is none of them.
fn parse_var_rule(sub: &str, rest: &[Word]) -> Result<Option<VarRule>, String> {
    let (op, inner) = match sub.split_once('(') {
        Some((op @ ("set-var" | "set-var-fmt" | "unset-var"), inner)) => (op, inner),
        _ => return Ok(None),
    };
    let inner = inner.strip_suffix(')').ok_or_else(|| format!("missing ')' in '{sub}'"))?;
    let mut parts = inner.split(',');
    let name = var_name(parts.next().unwrap_or_default())?;
    if op == "unset-var" {
        if inner.contains(',') {
            return Err(format!("'{op}' takes only a variable name"));
        }
        if let Some(x) = rest.first() {
            return Err(format!("unexpected argument '{}'", x.text));
        }
        return Ok(Some(VarRule::Unset(name)));
    }
    let conditions: Vec<String> = parts.map(str::to_owned).collect();
    if let Some(c) = conditions.iter().find(|c| !VAR_CONDITIONS.contains(&c.as_str())) {
        return Err(format!("unknown condition '{c}' in '{sub}' (expected {})", VAR_CONDITIONS.join(", ")));
    }
    let v = one_arg(rest, op)?;
    let value = if op == "set-var" { SetVarValue::Expr(parse_sample(&v)?) } else { SetVarValue::Fmt(parse_log_format(&v)?) };
    Ok(Some(VarRule::Set(SetVar { name, conditions, value })))
}

fn sopt(name: &'static str, takes_arg: bool, parse: fn(&mut ServerOpts, Option<&str>) -> Result<(), String>, doc: Doc) -> ServerOption {
    ServerOption { name, takes_arg, default_server: true, parse, doc }
}

fn positive_time(v: Option<&str>) -> Result<Duration, String> {
    let d = parse_time(v.unwrap_or_default())?;
    if d.is_zero() {
        return Err("expects a positive delay".into());
    }
    Ok(d)
}

fn positive_count(v: Option<&str>) -> Result<u32, String> {
    let v = v.unwrap_or_default();
    match v.parse::<u32>() {
        Ok(n) if n > 0 && n <= i32::MAX as u32 => Ok(n),
        _ => Err(format!("expects a positive integer, got '{v}'")),
    }
}

fn nonempty(v: Option<&str>) -> Result<String, String> {
    match v {
        Some(s) if !s.is_empty() => Ok(s.to_owned()),
        _ => Err("expects a non-empty value".into()),
    }
}

pub fn server_options() -> Vec<ServerOption> {
    vec![
        sopt(
            "check",
            false,
            |o, _| {
                o.check.enabled = true;
                Ok(())
            },
            doc!(Parsed, "check", "Enables health checks of the server.", "server s1 10.0.0.1:80 check"),
        ),
        sopt(
            "no-check",
            false,
            |o, _| {
                o.check.enabled = false;
                Ok(())
            },
            doc!(Parsed, "no-check", "Disables health checks enabled by default-server.", "server s1 10.0.0.1:80 no-check"),
        ),
        sopt(
            "inter",
            true,
            |o, v| {
                o.check.inter = Some(positive_time(v)?);
                Ok(())
            },
            doc!(Parsed, "inter <time>", "Interval between two checks (default 2s).", "server s1 10.0.0.1:80 check inter 5s"),
        ),
        sopt(
            "fastinter",
            true,
            |o, v| {
                o.check.fastinter = Some(positive_time(v)?);
                Ok(())
            },
            doc!(Parsed, "fastinter <time>", "Check interval while the server is going up or down.", "server s1 10.0.0.1:80 check fastinter 500ms"),
        ),
        sopt(
            "downinter",
            true,
            |o, v| {
                o.check.downinter = Some(positive_time(v)?);
                Ok(())
            },
            doc!(Parsed, "downinter <time>", "Check interval while the server is down.", "server s1 10.0.0.1:80 check downinter 10s"),
        ),
        sopt(
            "rise",
            true,
            |o, v| {
                o.check.rise = Some(positive_count(v)?);
                Ok(())
            },
            doc!(Parsed, "rise <n>", "Successful checks needed to consider a down server up (default 2).", "server s1 10.0.0.1:80 check rise 3"),
        ),
        sopt(
            "fall",
            true,
            |o, v| {
                o.check.fall = Some(positive_count(v)?);
                Ok(())
            },
            doc!(Parsed, "fall <n>", "Failed checks needed to consider an up server down (default 3).", "server s1 10.0.0.1:80 check fall 2"),
        ),
        sopt(
            "port",
            true,
            |o, v| {
                o.check.port = Some(port_number(v.unwrap_or_default())?);
                Ok(())
            },
            doc!(Parsed, "port <port>", "Port the checks connect to instead of the server's.", "server s1 10.0.0.1:80 check port 8080"),
        ),
        sopt(
            "addr",
            true,
            |o, v| {
                let v = v.unwrap_or_default();
                o.check.addr = Some(v.parse().map_err(|_| format!("invalid IP address '{v}'"))?);
                Ok(())
            },
            doc!(Parsed, "addr <ip>", "Address the checks connect to instead of the server's.", "server s1 10.0.0.1:80 check addr 10.0.1.1"),
        ),
        sopt(
            "check-send-proxy",
            false,
            |o, _| {
                o.check.send_proxy = true;
                Ok(())
            },
            doc!(Parsed, "check-send-proxy", "Sends a PROXY protocol header on check connections.", "server s1 10.0.0.1:80 check check-send-proxy"),
        ),
        sopt(
            "no-check-send-proxy",
            false,
            |o, _| {
                o.check.send_proxy = false;
                Ok(())
            },
            doc!(Parsed, "no-check-send-proxy", "Cancels an inherited 'check-send-proxy'.", "server s1 10.0.0.1:80 check no-check-send-proxy"),
        ),
        sopt(
            "check-via-socks4",
            false,
            |o, _| {
                o.check.via_socks4 = true;
                Ok(())
            },
            doc!(Parsed, "check-via-socks4", "Runs checks through the server's SOCKS4 proxy.", "server s1 10.0.0.1:80 check check-via-socks4"),
        ),
        sopt(
            "check-ssl",
            false,
            |o, _| {
                o.check.ssl = true;
                Ok(())
            },
            doc!(Parsed, "check-ssl", "Runs checks over TLS even when traffic is not.", "server s1 10.0.0.1:80 check check-ssl"),
        ),
        sopt(
            "no-check-ssl",
            false,
            |o, _| {
                o.check.ssl = false;
                Ok(())
            },
            doc!(Parsed, "no-check-ssl", "Cancels an inherited 'check-ssl'.", "server s1 10.0.0.1:80 check no-check-ssl"),
        ),
        sopt(
            "check-sni",
            true,
            |o, v| {
                o.check.sni = Some(nonempty(v)?);
                Ok(())
            },
            doc!(
                Parsed,
                "check-sni <name>",
                "Server name sent in the TLS handshake of checks.",
                "server s1 10.0.0.1:443 check check-ssl check-sni app.example.com"
            ),
        ),
        sopt(
            "check-alpn",
            true,
            |o, v| {
                o.check.alpn = Some(alpn_list(v.unwrap_or_default())?);
                Ok(())
            },
            doc!(
                Parsed,
                "check-alpn <proto>[,<proto>...]",
                "ALPN protocols offered by TLS checks.",
                "server s1 10.0.0.1:443 check check-ssl check-alpn h2,http/1.1"
            ),
        ),
        sopt(
            "check-proto",
            true,
            |o, v| {
                o.check.proto = Some(nonempty(v)?);
                Ok(())
            },
            doc!(Parsed, "check-proto <name>", "Forces the protocol of HTTP checks (h1, h2).", "server s1 10.0.0.1:80 check check-proto h2"),
        ),
        sopt(
            "agent-check",
            false,
            |o, _| {
                o.check.agent.enabled = true;
                Ok(())
            },
            doc!(
                Parsed,
                "agent-check",
                "Enables the agent check: the server reports its state and weight on agent-port.",
                "server s1 10.0.0.1:80 agent-check agent-port 9999"
            ),
        ),
        sopt(
            "no-agent-check",
            false,
            |o, _| {
                o.check.agent.enabled = false;
                Ok(())
            },
            doc!(Parsed, "no-agent-check", "Disables an agent check enabled by default-server.", "server s1 10.0.0.1:80 no-agent-check"),
        ),
        sopt(
            "agent-port",
            true,
            |o, v| {
                o.check.agent.port = Some(port_number(v.unwrap_or_default())?);
                Ok(())
            },
            doc!(Parsed, "agent-port <port>", "TCP port of the server's agent.", "server s1 10.0.0.1:80 agent-check agent-port 9999"),
        ),
        sopt(
            "agent-addr",
            true,
            |o, v| {
                let v = nonempty(v)?;
                o.check.agent.addr = Some(match v.parse::<IpAddr>() {
                    Ok(ip) => Host::Ip(ip),
                    Err(_) if v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') => Host::Name(v),
                    Err(_) => return Err(format!("invalid address or host name '{v}'")),
                });
                Ok(())
            },
            doc!(
                Parsed,
                "agent-addr <ip|name>",
                "Address of the server's agent, when not the server's.",
                "server s1 10.0.0.1:80 agent-check agent-addr 10.0.1.1 agent-port 9999"
            ),
        ),
        sopt(
            "agent-inter",
            true,
            |o, v| {
                o.check.agent.inter = Some(positive_time(v)?);
                Ok(())
            },
            doc!(Parsed, "agent-inter <time>", "Interval between two agent checks.", "server s1 10.0.0.1:80 agent-check agent-port 9999 agent-inter 5s"),
        ),
        sopt(
            "agent-send",
            true,
            |o, v| {
                o.check.agent.send = Some(v.unwrap_or_default().to_owned());
                Ok(())
            },
            doc!(
                Parsed,
                "agent-send <string>",
                "String sent to the agent once connected.",
                "server s1 10.0.0.1:80 agent-check agent-port 9999 agent-send \"status\\n\""
            ),
        ),
        sopt(
            "init-state",
            true,
            |o, v| {
                o.check.init_state = Some(match v.unwrap_or_default() {
                    "up" => InitState::Up,
                    "down" => InitState::Down,
                    "fully-up" => InitState::FullyUp,
                    "fully-down" => InitState::FullyDown,
                    x => return Err(format!("expects up, down, fully-up or fully-down, got '{x}'")),
                });
                Ok(())
            },
            doc!(Parsed, "init-state up|down|fully-up|fully-down", "State a checked server starts in.", "server s1 10.0.0.1:80 check init-state down"),
        ),
    ]
}

fn gkw(name: &'static str, parse: crate::config::registry::GlobalParse, doc: Doc) -> GlobalKeyword {
    GlobalKeyword { name, negatable: false, parse, doc }
}

fn g_one<'a>(a: &KwArgs<'a>, what: &str) -> Result<&'a str, String> {
    let v = a.need(0, what)?;
    a.at_most(1)?;
    Ok(v)
}

pub fn global_keywords() -> Vec<GlobalKeyword> {
    vec![
        gkw(
            "spread-checks",
            |a, g| {
                g.check.spread_checks = Some(parse_uint(g_one(a, "percentage")?, a.keyword, 50)? as u32);
                Ok(())
            },
            doc!(Parsed, "spread-checks <0..50>", "Randomly varies check intervals by up to this percentage.", "spread-checks 5"),
        ),
        gkw(
            "max-spread-checks",
            |a, g| {
                g.check.max_spread_checks = Some(parse_time(g_one(a, "time value")?)?);
                Ok(())
            },
            doc!(Parsed, "max-spread-checks <time>", "Longest delay used to spread the first checks at start-up.", "max-spread-checks 10s"),
        ),
        gkw(
            "tune.max-checks-per-thread",
            |a, g| {
                g.check.max_checks_per_thread = Some(parse_uint(g_one(a, "number of checks")?, a.keyword, i32::MAX as u64)? as u32);
                Ok(())
            },
            doc!(
                Parsed,
                "tune.max-checks-per-thread <n>",
                "Checks run at once per thread; more wait for a slot (0 = no limit).",
                "tune.max-checks-per-thread 50"
            ),
        ),
    ]
}

/// The rule kinds of `http-check` and `tcp-check`, for the configuration reference.
pub fn doc_tables() -> Vec<DocTable> {
    let e = |name: &str, d: Doc| (name.to_string(), None, d);
    vec![
        DocTable {
            title: "http-check rules",
            entries: vec![
                e(
                    "connect",
                    doc!(
                        Parsed,
                        "http-check connect [default] [port <n|expr>] [addr <ip>] [send-proxy] [via-socks4] [ssl] [sni <name>] [alpn <list>] [linger] [proto <name>] [comment <text>]",
                        "Opens the check connection; must come first when used.",
                        "http-check connect ssl sni app.example.com"
                    ),
                ),
                e(
                    "send",
                    doc!(
                        Parsed,
                        "http-check send [meth <m>] [uri <u>|uri-lf <fmt>] [ver <v>] [hdr <name> <fmt>]* [body <s>|body-lf <fmt>] [comment <text>]",
                        "Sends the check request; unset parts come from 'option httpchk'.",
                        "http-check send meth GET uri /health hdr Host app.example.com"
                    ),
                ),
                e(
                    "expect",
                    doc!(
                        Parsed,
                        "http-check expect [min-recv <n>] [comment <text>] [ok-status <st>] [error-status <st>] [tout-status <st>] [on-success <fmt>] [on-error <fmt>] [status-code <expr>] [!] status <codes>|rstatus <re>|hdr name <n> [value <v>]|fhdr name <n> [value <v>]|string <s>|rstring <re>",
                        "Checks the answer against a pattern; regexes are compiled when the configuration is read.",
                        "http-check expect status 200-399"
                    ),
                ),
                e("comment", doc!(Parsed, "http-check comment <text>", "Names the following rules in check reports.", "http-check comment \"login page\"")),
                e(
                    "set-var",
                    doc!(
                        Parsed,
                        "http-check set-var(<scope>.<name>[,<cond>...]) <expr> | set-var-fmt(<scope>.<name>) <fmt>",
                        "Sets a variable usable by the following rules.",
                        "http-check set-var(check.port) int(8080)"
                    ),
                ),
                e("unset-var", doc!(Parsed, "http-check unset-var(<scope>.<name>)", "Removes a variable.", "http-check unset-var(check.port)")),
                e(
                    "disable-on-404",
                    doc!(Parsed, "http-check disable-on-404", "Option: a 404 answer stops sending new traffic to an up server.", "http-check disable-on-404"),
                ),
                e("send-state", doc!(Parsed, "http-check send-state", "Option: adds the X-Haproxy-Server-State header to checks.", "http-check send-state")),
            ],
        },
        DocTable {
            title: "tcp-check rules",
            entries: vec![
                e(
                    "connect",
                    doc!(
                        Parsed,
                        "tcp-check connect [default] [port <n|expr>] [addr <ip>] [send-proxy] [via-socks4] [ssl] [sni <name>] [alpn <list>] [linger] [proto <name>] [comment <text>]",
                        "Opens a check connection; the first one must come before any send or expect.",
                        "tcp-check connect port 6379"
                    ),
                ),
                e("send", doc!(Parsed, "tcp-check send <string> [comment <text>]", "Sends a string.", "tcp-check send PING\\r\\n")),
                e(
                    "send-lf",
                    doc!(Parsed, "tcp-check send-lf <fmt> [comment <text>]", "Sends a log-format string.", "tcp-check send-lf \"HELLO %[env(HOST)]\\r\\n\""),
                ),
                e(
                    "send-binary",
                    doc!(
                        Parsed,
                        "tcp-check send-binary <hex> [comment <text>]",
                        "Sends bytes written in hexadecimal (even length).",
                        "tcp-check send-binary 50494e470d0a"
                    ),
                ),
                e(
                    "send-binary-lf",
                    doc!(
                        Parsed,
                        "tcp-check send-binary-lf <fmt> [comment <text>]",
                        "Sends bytes from a log-format producing hexadecimal.",
                        "tcp-check send-binary-lf \"%[var(check.hex)]\""
                    ),
                ),
                e(
                    "expect",
                    doc!(
                        Parsed,
                        "tcp-check expect [min-recv <n>] [comment <text>] [ok-status <st>] [error-status <st>] [tout-status <st>] [on-success <fmt>] [on-error <fmt>] [status-code <expr>] [!] string <s>|rstring <re>|binary <hex>|rbinary <re>|string-lf <fmt>|binary-lf <fmt>",
                        "Checks the received data against a pattern.",
                        "tcp-check expect string +PONG"
                    ),
                ),
                e("comment", doc!(Parsed, "tcp-check comment <text>", "Names the following rules in check reports.", "tcp-check comment \"redis role\"")),
                e(
                    "set-var",
                    doc!(
                        Parsed,
                        "tcp-check set-var(<scope>.<name>[,<cond>...]) <expr> | set-var-fmt(<scope>.<name>) <fmt>",
                        "Sets a variable usable by the following rules.",
                        "tcp-check set-var(check.port) int(6379)"
                    ),
                ),
                e("unset-var", doc!(Parsed, "tcp-check unset-var(<scope>.<name>)", "Removes a variable.", "tcp-check unset-var(check.port)")),
            ],
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::{load, ok};

    fn backend(lines: &str) -> Proxy {
        ok(&format!("backend be\n{lines}\n")).proxies.remove(0)
    }

    /// The one alert of a backend made of `lines`, as (line, keyword, message).
    fn alert(lines: &str) -> (u32, String, String) {
        let loaded = load(&format!("backend be\n{lines}\n"));
        let alerts: Vec<_> = loaded.diags.alerts().collect();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        let d = alerts[0];
        (d.span.as_ref().unwrap().line, d.keyword.clone().unwrap_or_default(), d.msg.clone())
    }

    fn server(opts: &str) -> ServerCheck {
        backend(&format!("  server s1 10.0.0.1:80 {opts}")).servers[0].opts.check.clone()
    }

    fn http_rules(lines: &str) -> Vec<HttpCheckRule> {
        backend(lines).check.http_rules.into_iter().map(|r| r.rule).collect()
    }

    fn tcp_rules(lines: &str) -> Vec<TcpCheckRule> {
        backend(lines).check.tcp_rules.into_iter().map(|r| r.rule).collect()
    }

    #[test]
    fn server_check_options_parse() {
        let c = server(
            "check inter 5s fastinter 500ms downinter 10s rise 3 fall 2 port 8080 addr 10.0.1.1 check-send-proxy check-ssl check-sni app.example.com check-alpn h2,http/1.1 check-proto h2 init-state fully-down verify none",
        );
        assert!(c.enabled && c.send_proxy && c.ssl);
        assert_eq!(c.inter, Some(Duration::from_secs(5)));
        assert_eq!(c.fastinter, Some(Duration::from_millis(500)));
        assert_eq!(c.downinter, Some(Duration::from_secs(10)));
        assert_eq!((c.rise, c.fall, c.port), (Some(3), Some(2), Some(8080)));
        assert_eq!(c.addr, Some("10.0.1.1".parse().unwrap()));
        assert_eq!(c.sni.as_deref(), Some("app.example.com"));
        assert_eq!(c.alpn, Some(vec!["h2".to_string(), "http/1.1".to_string()]));
        assert_eq!(c.proto.as_deref(), Some("h2"));
        assert_eq!(c.init_state, Some(InitState::FullyDown));
    }

    #[test]
    fn agent_options_parse() {
        let c = server("agent-check agent-port 9999 agent-addr agent.local agent-inter 3s agent-send \"ping\\n\"");
        assert!(c.agent.enabled);
        assert_eq!(c.agent.port, Some(9999));
        assert_eq!(c.agent.addr, Some(Host::Name("agent.local".into())));
        assert_eq!(c.agent.inter, Some(Duration::from_secs(3)));
        assert_eq!(c.agent.send.as_deref(), Some("ping\n"));
    }

    #[test]
    fn no_check_cancels_default_server_check() {
        let p = backend("  default-server check agent-check\n  server s1 10.0.0.1:80 no-check no-agent-check\n  server s2 10.0.0.2:80");
        assert!(!p.servers[0].opts.check.enabled && !p.servers[0].opts.check.agent.enabled);
        assert!(p.servers[1].opts.check.enabled && p.servers[1].opts.check.agent.enabled);
    }

    #[test]
    fn zero_rise_is_refused() {
        let (line, kw, msg) = alert("  server s1 10.0.0.1:80 check rise 0");
        assert_eq!((line, kw.as_str()), (2, "server"));
        assert!(msg.contains("'rise'") && msg.contains("positive integer"), "{msg}");
    }

    #[test]
    fn zero_inter_is_refused() {
        let (_, _, msg) = alert("  server s1 10.0.0.1:80 check inter 0");
        assert!(msg.contains("positive delay"), "{msg}");
    }

    #[test]
    fn check_port_out_of_range_is_refused() {
        let (_, _, msg) = alert("  server s1 10.0.0.1:80 check port 70000");
        assert!(msg.contains("invalid port"), "{msg}");
    }

    #[test]
    fn check_addr_must_be_an_ip() {
        let (_, _, msg) = alert("  server s1 10.0.0.1:80 check addr not-an-ip");
        assert!(msg.contains("invalid IP address"), "{msg}");
    }

    #[test]
    fn unknown_init_state_is_refused() {
        let (_, _, msg) = alert("  server s1 10.0.0.1:80 check init-state sideways");
        assert!(msg.contains("fully-down"), "{msg}");
    }

    #[test]
    fn httpchk_without_arguments_uses_defaults() {
        assert_eq!(backend("  option httpchk").check.kind, Some(CheckKind::Http(HttpChk::default())));
    }

    #[test]
    fn httpchk_with_one_argument_is_the_uri() {
        let Some(CheckKind::Http(h)) = backend("  option httpchk /health").check.kind else { panic!() };
        assert_eq!((h.method, h.uri.as_deref()), (None, Some("/health")));
    }

    #[test]
    fn httpchk_takes_method_uri_and_version() {
        let Some(CheckKind::Http(h)) = backend("  option httpchk GET /health HTTP/1.1").check.kind else { panic!() };
        assert_eq!((h.method.as_deref(), h.uri.as_deref(), h.version.as_deref()), (Some("GET"), Some("/health"), Some("HTTP/1.1")));
    }

    #[test]
    fn httpchk_headers_in_version_are_split_with_a_warning() {
        let loaded = load("backend be\n  option httpchk GET / \"HTTP/1.1\\r\\nHost: www.example.com\"\n");
        assert!(loaded.diags.warnings().any(|d| d.msg.contains("deprecated")));
        let Some(CheckKind::Http(h)) = loaded.config.unwrap().proxies[0].check.kind.clone() else { panic!() };
        assert_eq!(h.headers, vec![("Host".to_string(), "www.example.com".to_string())]);
    }

    #[test]
    fn httpchk_rejects_bad_version() {
        let (line, kw, msg) = alert("  option httpchk GET / FTP/1");
        assert_eq!((line, kw.as_str()), (2, "option httpchk"));
        assert!(msg.contains("invalid HTTP version"), "{msg}");
    }

    #[test]
    fn protocol_check_options_parse() {
        assert_eq!(backend("  option tcp-check").check.kind, Some(CheckKind::Tcp));
        assert_eq!(backend("  option redis-check").check.kind, Some(CheckKind::Redis));
        assert_eq!(backend("  option ldap-check").check.kind, Some(CheckKind::Ldap));
        assert_eq!(backend("  option ssl-hello-chk").check.kind, Some(CheckKind::SslHello));
        assert_eq!(backend("  option pgsql-check user lb").check.kind, Some(CheckKind::PgSql { user: "lb".into() }));
    }

    #[test]
    fn pgsql_check_requires_a_user() {
        let (_, kw, msg) = alert("  option pgsql-check");
        assert_eq!(kw, "option pgsql-check");
        assert!(msg.contains("user <username>"), "{msg}");
    }

    #[test]
    fn mysql_check_forms_parse() {
        assert_eq!(backend("  option mysql-check").check.kind, Some(CheckKind::MySql { user: None, post_41: true }));
        assert_eq!(backend("  option mysql-check user lb pre-41").check.kind, Some(CheckKind::MySql { user: Some("lb".into()), post_41: false }));
        let (_, _, msg) = alert("  option mysql-check user lb post-42");
        assert!(msg.contains("post-41"), "{msg}");
    }

    #[test]
    fn smtpchk_takes_greeting_and_domain() {
        assert_eq!(backend("  option smtpchk").check.kind, Some(CheckKind::Smtp { ehlo: false, domain: "localhost".into() }));
        assert_eq!(backend("  option smtpchk EHLO lb.example.com").check.kind, Some(CheckKind::Smtp { ehlo: true, domain: "lb.example.com".into() }));
    }

    #[test]
    fn spop_and_external_checks_are_refused() {
        assert!(alert("  option spop-check").2.contains("not supported"));
        let (_, kw, msg) = alert("  option external-check");
        assert_eq!(kw, "option external-check");
        assert!(msg.contains("not supported by sluiced"), "{msg}");
    }

    #[test]
    fn http_check_rules_keep_their_order() {
        let rules = http_rules(
            "  option httpchk\n  http-check comment start\n  http-check connect ssl sni app alpn h2 port 8443\n  http-check send meth GET uri /health ver HTTP/1.1 hdr Host app hdr X-A b body ok\n  http-check expect status 200-299,304\n  http-check set-var(check.x) int(1)\n  http-check unset-var(check.x)",
        );
        assert!(matches!(&rules[0], HttpCheckRule::Comment(c) if c == "start"));
        let HttpCheckRule::Connect(c) = &rules[1] else { panic!() };
        assert!(c.ssl);
        assert_eq!((c.sni.as_deref(), c.port.clone()), (Some("app"), Some(CheckPort::Number(8443))));
        let HttpCheckRule::Send(s) = &rules[2] else { panic!() };
        assert_eq!(s.method.as_deref(), Some("GET"));
        assert_eq!(s.uri, Some(Text::Plain("/health".into())));
        assert_eq!(s.headers.len(), 2);
        assert_eq!(s.body, Some(Text::Plain("ok".into())));
        let HttpCheckRule::Expect(e) = &rules[3] else { panic!() };
        assert_eq!(e.matcher, HttpMatch::Status(vec![(200, 299), (304, 304)]));
        assert!(matches!(&rules[4], HttpCheckRule::SetVar(v) if v.name == "check.x"));
        assert!(matches!(&rules[5], HttpCheckRule::UnsetVar(n) if n == "check.x"));
    }

    #[test]
    fn http_check_expect_options_and_negation_parse() {
        let rules = http_rules(
            "  http-check expect min-recv 10 comment c ok-status L7OKC error-status L7RSP tout-status L4TOUT on-success ok on-error ko status-code int(500) ! rstring ^down",
        );
        let HttpCheckRule::Expect(e) = &rules[0] else { panic!() };
        assert!(e.negated);
        assert_eq!(e.min_recv, Some(10));
        assert_eq!((e.ok_status, e.error_status, e.tout_status), (Some(CheckStatus::L7OkC), Some(CheckStatus::L7Rsp), Some(CheckStatus::L4Tout)));
        assert!(e.on_success.is_some() && e.on_error.is_some() && e.status_code.is_some());
        assert!(matches!(&e.matcher, HttpMatch::RString(r) if r.pattern == "^down"));
    }

    #[test]
    fn http_check_expect_hdr_parses() {
        let rules = http_rules("  http-check expect hdr name -m beg x-app value -m reg ^v[0-9]+$\n  http-check expect fhdr name-lf x-%[var(check.h)]");
        let HttpCheckRule::Expect(e) = &rules[0] else { panic!() };
        let HttpMatch::Hdr { full, name, value } = &e.matcher else { panic!() };
        assert!(!full);
        assert_eq!(name, &HdrPattern::Str(HdrMethod::Beg, "x-app".into()));
        assert!(matches!(value, Some(HdrPattern::Reg(r)) if r.pattern == "^v[0-9]+$"));
        let HttpCheckRule::Expect(e) = &rules[1] else { panic!() };
        assert!(matches!(&e.matcher, HttpMatch::Hdr { full: true, name: HdrPattern::Fmt(HdrMethod::Str, _), value: None }));
    }

    #[test]
    fn http_check_expect_bad_regex_is_refused() {
        let (line, kw, msg) = alert("  http-check expect rstatus ^(2");
        assert_eq!((line, kw.as_str()), (2, "http-check"));
        assert!(msg.contains("'expect'") && msg.contains("invalid regex"), "{msg}");
    }

    #[test]
    fn http_check_expect_bad_status_is_refused() {
        assert!(alert("  http-check expect status 2xx").2.contains("invalid status code"));
        assert!(alert("  http-check expect status 399-200").2.contains("invalid status range"));
    }

    #[test]
    fn http_check_expect_needs_a_match() {
        assert!(alert("  http-check expect comment c").2.contains("expects a match"));
    }

    #[test]
    fn http_check_expect_refuses_two_matches() {
        assert!(alert("  http-check expect status 200 string ok").2.contains("only one match"));
    }

    #[test]
    fn http_check_expect_refuses_wrong_status_category() {
        let (_, _, msg) = alert("  http-check expect ok-status L7RSP status 200");
        assert!(msg.contains("'ok-status' expects L7OK"), "{msg}");
    }

    #[test]
    fn http_check_send_refuses_body_and_body_lf() {
        assert!(alert("  http-check send body a body-lf b").2.contains("only one of 'body' and 'body-lf'"));
    }

    #[test]
    fn http_check_options_set_flags() {
        let p = backend("  http-check disable-on-404\n  http-check send-state");
        assert!(p.check.disable_on_404 && p.check.send_state);
        assert!(p.check.http_rules.is_empty());
    }

    #[test]
    fn unknown_http_check_rule_suggests_a_close_one() {
        let (_, kw, msg) = alert("  http-check expct status 200");
        assert_eq!(kw, "http-check");
        assert!(msg.contains("unknown http-check rule 'expct'") && msg.contains("did you mean 'expect'"), "{msg}");
    }

    #[test]
    fn connect_after_send_is_refused() {
        let (line, _, msg) = alert("  http-check send uri /\n  http-check connect");
        assert_eq!(line, 3);
        assert!(msg.contains("must be the first rule"), "{msg}");
        assert!(tcp_rules("  tcp-check comment c\n  tcp-check set-var(check.a) int(1)\n  tcp-check connect").len() == 3);
    }

    #[test]
    fn proxy_rules_replace_inherited_ones() {
        let loaded = load("defaults\n  http-check send uri /a\n  http-check expect status 200\nbackend be\n  http-check send uri /b\nbackend other\n");
        assert!(!loaded.diags.has_alerts(), "{:?}", loaded.diags.items);
        let cfg = loaded.config.unwrap();
        let be = &cfg.proxies[0].check.http_rules;
        assert_eq!(be.len(), 1);
        assert!(matches!(&be[0].rule, HttpCheckRule::Send(s) if s.uri == Some(Text::Plain("/b".into()))));
        assert_eq!(cfg.proxies[1].check.http_rules.len(), 2);
    }

    #[test]
    fn tcp_check_send_forms_parse() {
        let rules = tcp_rules(
            "  tcp-check send PING comment ping\n  tcp-check send-lf %[var(check.x)]\n  tcp-check send-binary 50494E47\n  tcp-check send-binary-lf %[var(check.hex)]",
        );
        assert!(matches!(&rules[0], TcpCheckRule::Send(TcpSend { data: TcpSendData::String(s), comment: Some(c) }) if s == "PING" && c == "ping"));
        assert!(matches!(&rules[1], TcpCheckRule::Send(TcpSend { data: TcpSendData::StringLf(_), .. })));
        assert!(matches!(&rules[2], TcpCheckRule::Send(TcpSend { data: TcpSendData::Binary(b), .. }) if b == b"PING"));
        assert!(matches!(&rules[3], TcpCheckRule::Send(TcpSend { data: TcpSendData::BinaryLf(_), .. })));
    }

    #[test]
    fn tcp_check_send_binary_refuses_odd_or_bad_hex() {
        assert!(alert("  tcp-check send-binary 504").2.contains("even number of hex digits"));
        assert!(alert("  tcp-check send-binary zz").2.contains("invalid hexadecimal"));
        assert!(alert("  tcp-check send-binary \"é1\"").2.contains("invalid hexadecimal"));
    }

    #[test]
    fn tcp_check_expect_matches_parse() {
        let rules = tcp_rules(
            "  tcp-check expect string +PONG\n  tcp-check expect rstring ^\\\\+OK\n  tcp-check expect binary 0a0b\n  tcp-check expect ! rbinary ^00\n  tcp-check expect string-lf %[var(check.s)]\n  tcp-check expect min-recv -1 binary-lf %[var(check.h)]",
        );
        let m: Vec<&TcpMatch> = rules
            .iter()
            .map(|r| match r {
                TcpCheckRule::Expect(e) => &e.matcher,
                _ => panic!(),
            })
            .collect();
        assert_eq!(m[0], &TcpMatch::String("+PONG".into()));
        assert!(matches!(m[1], TcpMatch::RString(_)));
        assert_eq!(m[2], &TcpMatch::Binary(vec![10, 11]));
        assert!(matches!(m[3], TcpMatch::RBinary(_)));
        assert!(matches!(&rules[3], TcpCheckRule::Expect(e) if e.negated));
        assert!(matches!(m[4], TcpMatch::StringLf(_)));
        assert!(matches!(m[5], TcpMatch::BinaryLf(_)));
    }

    #[test]
    fn tcp_check_expect_refuses_http_matches() {
        assert!(alert("  tcp-check expect status 200").2.contains("unknown option or match 'status'"));
    }

    #[test]
    fn tcp_check_connect_takes_a_port_expression() {
        let rules = tcp_rules("  tcp-check connect port var(check.port) addr 10.0.0.9:6379 send-proxy linger comment c");
        let TcpCheckRule::Connect(c) = &rules[0] else { panic!() };
        assert!(matches!(&c.port, Some(CheckPort::Expr(_))));
        assert!(c.addr.is_some() && c.send_proxy && c.linger);
        assert!(alert("  tcp-check connect port 0").2.contains("invalid port"));
    }

    #[test]
    fn set_var_requires_a_scope() {
        assert!(alert("  tcp-check set-var(x) int(1)").2.contains("invalid variable name 'x'"));
        assert!(alert("  tcp-check set-var(check.x,ifwhatever) int(1)").2.contains("unknown condition"));
        assert!(alert("  tcp-check set-var(check.x").2.contains("missing ')'"));
    }

    #[test]
    fn set_var_fmt_takes_a_log_format() {
        let rules = tcp_rules("  tcp-check set-var-fmt(check.x,ifnotset) \"%[src]\"");
        assert!(matches!(&rules[0], TcpCheckRule::SetVar(SetVar { value: SetVarValue::Fmt(_), conditions, .. }) if conditions == &["ifnotset".to_string()]));
    }

    #[test]
    fn check_keywords_are_refused_in_frontends() {
        let loaded = load("frontend fe\n  bind :80\n  http-check send uri /\n");
        let a: Vec<_> = loaded.diags.alerts().collect();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].keyword.as_deref(), Some("http-check"));
    }

    #[test]
    fn global_check_keywords_parse() {
        let loaded = load("global\n  spread-checks 5\n  max-spread-checks 2s\n  tune.max-checks-per-thread 20\n");
        let g = loaded.config.unwrap().global.check;
        assert_eq!(g, GlobalCheck { spread_checks: Some(5), max_spread_checks: Some(Duration::from_secs(2)), max_checks_per_thread: Some(20) });
    }

    #[test]
    fn spread_checks_above_50_is_refused() {
        let loaded = load("global\n  spread-checks 51\n");
        let a: Vec<_> = loaded.diags.alerts().collect();
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].span.as_ref().unwrap().line, a[0].keyword.as_deref()), (2, Some("spread-checks")));
        assert!(a[0].msg.contains("at most 50"), "{}", a[0].msg);
    }

    #[test]
    fn doc_tables_list_rule_kinds() {
        let t = doc_tables();
        let titles: Vec<_> = t.iter().map(|t| t.title).collect();
        assert_eq!(titles, vec!["http-check rules", "tcp-check rules"]);
        assert!(t[1].entries.iter().any(|(n, _, _)| n == "send-binary"));
    }

    fn words() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        const VOCAB: &[&str] = &[
            "connect",
            "send",
            "expect",
            "send-binary",
            "hdr",
            "name",
            "value",
            "-m",
            "reg",
            "status",
            "rstatus",
            "string",
            "rstring",
            "binary",
            "rbinary",
            "!",
            "min-recv",
            "ok-status",
            "set-var(",
            "unset-var(check.",
            "set-var(check.x,",
            "port",
            "addr",
            "alpn",
            "check",
            "inter",
            "rise",
            "agent-addr",
            "init-state",
            "é",
            "(",
            "[",
            "",
        ];
        let word = prop_oneof![proptest::sample::select(VOCAB).prop_map(str::to_owned), "[!-~]{0,12}"];
        proptest::collection::vec(word, 0..8).prop_map(|w| w.join(" "))
    }

    proptest::proptest! {
        #[test]
        fn check_keywords_never_panic(kw in proptest::sample::select(&["http-check", "tcp-check", "option httpchk", "option mysql-check", "option smtpchk", "option pgsql-check"][..]), rest in words()) {
            let _ = load(&format!("backend be\n  {kw} {rest}\n  server s1 10.0.0.1:80 {rest}\n"));
        }
    }
}
