//! Configuration of the stats socket (`stats socket` in `global`) and the HTTP stats page.

use std::time::Duration;

use crate::config::addr::{AddrRules, Address, Transport, parse_address};
use crate::config::diag::Span;
use crate::config::expr::{Condition, parse_condition, split_condition};
use crate::config::model::{Global, Proxy};
use crate::config::registry::{Doc, GlobalKeyword, GlobalParse, KwArgs, ProxyKeyword, ProxyParse, Sections};
use crate::config::units::{parse_time, parse_uint};
use crate::doc;

/// The URI of the stats page when only `stats enable` (or another `stats` keyword) is given.
pub const DEFAULT_STATS_URI: &str = "/haproxy?stats";
/// The realm of the stats page's authentication when `stats realm` is not given.
pub const DEFAULT_STATS_REALM: &str = "HAProxy Statistics";

/// What commands a stats socket accepts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum StatsLevel {
    /// Read-only commands.
    User,
    /// Also non-sensitive changes (clear counters); HAProxy's default.
    #[default]
    Operator,
    /// Every command.
    Admin,
}

/// How `severity-output` prefixes answers of the runtime API.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SeverityOutput {
    #[default]
    None,
    /// `[3]: ...`
    Number,
    /// `[err]: ...`
    String,
}

/// One `stats socket` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsSocket {
    pub addr: Address,
    /// Unix socket permissions (`mode`, octal).
    pub mode: Option<u32>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub level: StatsLevel,
    /// `expose-fd listeners`: the socket hands listening sockets to a new process (`-x`).
    pub expose_fd_listeners: bool,
    pub severity_output: SeverityOutput,
    pub name: Option<String>,
    /// `thread <set>`: which threads serve the socket; kept as written.
    pub thread: Option<String>,
    pub span: Span,
}

/// The `global` section's stats settings.
#[derive(Clone, Debug, Default)]
pub struct GlobalStats {
    pub sockets: Vec<StatsSocket>,
    /// Idle timeout of a runtime API connection (`stats timeout`, default 10s).
    pub timeout: Option<Duration>,
    /// Concurrent connections on the stats sockets (`stats maxconn`, default 10).
    pub maxconn: Option<u32>,
}

/// `stats auth <user>:<password>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsUser {
    pub user: String,
    pub password: String,
}

/// What a `stats http-request` rule does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatsAction {
    Allow,
    Deny,
    /// Asks for credentials, with an optional realm.
    Auth {
        realm: Option<String>,
    },
}

/// `stats http-request allow|deny|auth [realm R] [if|unless cond]`.
#[derive(Clone, Debug)]
pub struct StatsRule {
    pub action: StatsAction,
    pub cond: Option<Condition>,
    pub span: Span,
}

/// `stats admin if|unless <cond>`: when the page's admin actions are enabled.
#[derive(Clone, Debug)]
pub struct StatsAdmin {
    pub cond: Condition,
    pub span: Span,
}

/// A proxy's HTTP stats page. Any `stats` keyword enables the page, as in HAProxy.
#[derive(Clone, Debug, Default)]
pub struct StatsPage {
    pub enabled: bool,
    /// `stats uri`; [`DEFAULT_STATS_URI`] when `None`.
    pub uri: Option<String>,
    /// `stats realm`; [`DEFAULT_STATS_REALM`] when `None`.
    pub realm: Option<String>,
    pub auth: Vec<StatsUser>,
    /// `stats refresh`: the page reloads itself this often.
    pub refresh: Option<Duration>,
    pub admin: Vec<StatsAdmin>,
    pub hide_version: bool,
    pub show_legends: bool,
    pub show_modules: bool,
    /// `stats show-node [name]`: `Some(None)` shows the global node name.
    pub show_node: Option<Option<String>>,
    /// `stats show-desc [desc]`: `Some(None)` shows the global description.
    pub show_desc: Option<Option<String>>,
    /// `stats scope`: the proxies shown; empty shows all.
    pub scope: Vec<String>,
    pub http_request: Vec<StatsRule>,
}

impl StatsPage {
    pub fn uri(&self) -> &str {
        self.uri.as_deref().unwrap_or(DEFAULT_STATS_URI)
    }
    pub fn realm(&self) -> &str {
        self.realm.as_deref().unwrap_or(DEFAULT_STATS_REALM)
    }
}

fn kw(name: &'static str, sections: Sections, parse: ProxyParse, doc: Doc) -> ProxyKeyword {
    ProxyKeyword { name, sections, negatable: false, parse, doc }
}

fn one<'a>(a: &KwArgs<'a>, what: &str) -> Result<&'a str, String> {
    let v = a.need(0, what)?;
    a.at_most(1)?;
    Ok(v)
}

fn join_args(a: &KwArgs<'_>) -> String {
    a.args().iter().map(|w| w.text.as_str()).collect::<Vec<_>>().join(" ")
}

/// A `stats` keyword that takes no argument and turns a flag on.
macro_rules! stats_flag {
    ($name:literal, $field:ident, $desc:literal) => {
        kw(
            concat!("stats ", $name),
            Sections::ALL,
            |a, p| {
                a.at_most(0)?;
                p.stats.enabled = true;
                p.stats.$field = true;
                Ok(())
            },
            doc!(Parsed, concat!("stats ", $name), $desc, concat!("stats ", $name)),
        )
    };
}

pub fn proxy_keywords() -> Vec<ProxyKeyword> {
    use Sections as S;
    vec![
        kw(
            "stats enable",
            S::ALL,
            |a, p| {
                a.at_most(0)?;
                p.stats.enabled = true;
                Ok(())
            },
            doc!(Parsed, "stats enable", "Serves the HTML/CSV stats page at the stats URI (default /haproxy?stats).", "stats enable"),
        ),
        kw(
            "stats uri",
            S::ALL,
            |a, p| {
                let uri = one(a, "URI prefix")?;
                if !uri.starts_with('/') {
                    a.warn(format!("the stats URI '{uri}' does not start with '/' and will only match absolute-form requests"));
                }
                p.stats.enabled = true;
                p.stats.uri = Some(uri.to_owned());
                Ok(())
            },
            doc!(Parsed, "stats uri <prefix>", "Serves the stats page on requests whose URI starts with <prefix>; enables stats.", "stats uri /stats"),
        ),
        kw(
            "stats realm",
            S::ALL,
            |a, p| {
                p.stats.enabled = true;
                p.stats.realm = Some(one(a, "realm")?.to_owned());
                Ok(())
            },
            doc!(Parsed, "stats realm <realm>", "Realm shown when the stats page asks for credentials; enables stats.", "stats realm Haproxy\\ Statistics"),
        ),
        kw(
            "stats auth",
            S::ALL,
            |a, p| {
                let v = one(a, "<user>:<password>")?;
                let (user, password) = v.split_once(':').ok_or_else(|| format!("expects <user>:<password>, got '{v}'"))?;
                if user.is_empty() {
                    return Err("missing user name before ':'".into());
                }
                p.stats.enabled = true;
                p.stats.auth.push(StatsUser { user: user.to_owned(), password: password.to_owned() });
                Ok(())
            },
            doc!(
                Parsed,
                "stats auth <user>:<password>",
                "Requires basic authentication on the stats page; repeat for several users; enables stats.",
                "stats auth admin:s3cret"
            ),
        ),
        kw(
            "stats refresh",
            S::ALL,
            |a, p| {
                let t = parse_time(one(a, "refresh delay")?)?;
                p.stats.enabled = true;
                p.stats.refresh = Some(t);
                Ok(())
            },
            doc!(Parsed, "stats refresh <delay>", "Makes the stats page reload itself every <delay>; enables stats.", "stats refresh 10s"),
        ),
        kw(
            "stats admin",
            S::PROXIES,
            |a, p| {
                let (before, cond) = split_condition(a.args());
                if let Some(w) = before.first() {
                    return Err(format!("unexpected '{}' (expected 'if' or 'unless')", w.text));
                }
                let cond = parse_condition(cond.ok_or("expects 'if' or 'unless' followed by a condition")?)?;
                p.add_cond_refs(&cond, a.span, "stats admin");
                p.stats.enabled = true;
                p.stats.admin.push(StatsAdmin { cond, span: a.span.clone() });
                Ok(())
            },
            doc!(
                Parsed,
                "stats admin if|unless <cond>",
                "Enables the stats page's admin actions when the condition holds: each backend's table gets a form (a checkbox per server; set state ready/drain/maint, force health or agent up/down, enable/disable checks, kill sessions) posted to the stats URI and answered with a 303 to `<uri>;st=DONE|PART|NONE|ERRP|DENY`. A frontend with `stats admin` reads request bodies before its rules, as with `option http-buffer-request`.",
                "stats admin if LOCALHOST"
            ),
        ),
        stats_flag!("hide-version", hide_version, "Hides the version and release date on the stats page."),
        stats_flag!("show-legends", show_legends, "Shows the legends (server states, process details) on the stats page."),
        stats_flag!("show-modules", show_modules, "Shows the statistics of extra modules on the stats page."),
        kw(
            "stats show-node",
            S::ALL,
            |a, p| {
                a.at_most(1)?;
                p.stats.enabled = true;
                p.stats.show_node = Some(a.arg(0).map(str::to_owned));
                Ok(())
            },
            doc!(Parsed, "stats show-node [<name>]", "Shows a node name on the stats page (default: the global 'node').", "stats show-node lb1"),
        ),
        kw(
            "stats show-desc",
            S::ALL,
            |a, p| {
                p.stats.enabled = true;
                p.stats.show_desc = Some(if a.args().is_empty() { None } else { Some(join_args(a)) });
                Ok(())
            },
            doc!(
                Parsed,
                "stats show-desc [<description>]",
                "Shows a description on the stats page (default: the global 'description').",
                "stats show-desc edge balancer, rack 4"
            ),
        ),
        kw(
            "stats scope",
            S::ALL,
            |a, p| {
                let name = one(a, "proxy name")?;
                p.stats.enabled = true;
                p.stats.scope.push(name.to_owned());
                Ok(())
            },
            doc!(Parsed, "stats scope <proxy>|.", "Limits the stats page to the named proxies ('.' is this one); repeat for several.", "stats scope www"),
        ),
        kw(
            "stats http-request",
            S::PROXIES,
            parse_stats_http_request,
            doc!(
                Parsed,
                "stats http-request allow|deny|auth [realm <realm>] [if|unless <cond>]",
                "Access rule evaluated before the stats page is served; the first matching rule applies.",
                "stats http-request auth realm Stats unless AUTH_OK"
            ),
        ),
    ]
}

fn parse_stats_http_request(a: &mut KwArgs<'_>, p: &mut Proxy) -> Result<(), String> {
    let (words, cond) = split_condition(a.args());
    let action = match words.first().map(|w| w.text.as_str()) {
        Some("allow") | Some("deny") if words.len() > 1 => return Err(format!("unexpected '{}' (expected 'if' or 'unless')", words[1].text)),
        Some("allow") => StatsAction::Allow,
        Some("deny") => StatsAction::Deny,
        Some("auth") => match &words[1..] {
            [] => StatsAction::Auth { realm: None },
            [r, realm] if r.text == "realm" => StatsAction::Auth { realm: Some(realm.text.clone()) },
            [r] if r.text == "realm" => return Err("'realm' expects an argument".into()),
            [w, ..] => return Err(format!("unexpected '{}' (expected 'realm', 'if' or 'unless')", w.text)),
        },
        Some(other) => return Err(format!("unknown action '{other}' (expected 'allow', 'deny' or 'auth')")),
        None => return Err("missing action (expected 'allow', 'deny' or 'auth')".into()),
    };
    let cond = cond.map(parse_condition).transpose()?;
    if let Some(c) = &cond {
        p.add_cond_refs(c, a.span, "stats http-request");
    }
    p.stats.enabled = true;
    p.stats.http_request.push(StatsRule { action, cond, span: a.span.clone() });
    Ok(())
}

fn gkw(name: &'static str, parse: GlobalParse, doc: Doc) -> GlobalKeyword {
    GlobalKeyword { name, negatable: false, parse, doc }
}

pub fn global_keywords() -> Vec<GlobalKeyword> {
    vec![
        gkw(
            "stats socket",
            parse_stats_socket,
            doc!(
                Parsed,
                "stats socket <addr> [mode <octal>] [user <u>] [group <g>] [uid <n>] [gid <n>] [level user|operator|admin] [expose-fd listeners] [severity-output none|number|string] [name <n>] [thread <set>]",
                "Opens a runtime API socket (unix path, ipv4@/ipv6@ address, abns@ or fd@); repeat for several.",
                "stats socket /run/haproxy/admin.sock mode 660 level admin expose-fd listeners"
            ),
        ),
        gkw(
            "stats timeout",
            |a, g| {
                g.stats.timeout = Some(parse_time(one(a, "timeout")?)?);
                Ok(())
            },
            doc!(Parsed, "stats timeout <time>", "Idle timeout of runtime API connections (default 10s).", "stats timeout 30s"),
        ),
        gkw(
            "stats maxconn",
            |a, g| {
                let v = one(a, "connection count")?;
                let n = parse_uint(v, "stats maxconn", u32::MAX.into())? as u32;
                if n == 0 {
                    return Err("stats maxconn must be positive".into());
                }
                g.stats.maxconn = Some(n);
                Ok(())
            },
            doc!(Parsed, "stats maxconn <n>", "Maximum concurrent runtime API connections (default 10).", "stats maxconn 20"),
        ),
        gkw(
            "stats bind-process",
            |_, _| Err("'stats bind-process' was removed in HAProxy 2.5 with 'nbproc'; use 'thread' on 'stats socket'".into()),
            doc!(Parsed, "stats bind-process <set>", "Removed (HAProxy 2.5); rejected with a hint.", "stats socket /run/haproxy.sock thread 1"),
        ),
    ]
}

fn parse_stats_socket(a: &mut KwArgs<'_>, g: &mut Global) -> Result<(), String> {
    let args = a.args();
    let addr_text = a.need(0, "socket address")?;
    let addr = parse_address(addr_text, AddrRules { listener: true, server: false })?;
    if addr.transport != Transport::Stream {
        return Err(format!("'{addr_text}' is not a stream socket address"));
    }
    let mut s = StatsSocket {
        addr,
        mode: None,
        user: None,
        group: None,
        uid: None,
        gid: None,
        level: StatsLevel::default(),
        expose_fd_listeners: false,
        severity_output: SeverityOutput::default(),
        name: None,
        thread: None,
        span: a.span.clone(),
    };
    let mut i = 1;
    while i < args.len() {
        let opt = args[i].text.as_str();
        let v = args.get(i + 1).map(|w| w.text.as_str()).ok_or_else(|| format!("'{opt}' expects an argument"))?;
        match opt {
            "mode" => s.mode = Some(u32::from_str_radix(v, 8).ok().filter(|m| *m <= 0o7777).ok_or_else(|| format!("'mode' expects an octal mode, got '{v}'"))?),
            "user" => s.user = Some(v.to_owned()),
            "group" => s.group = Some(v.to_owned()),
            "uid" => s.uid = Some(parse_uint(v, "uid", u32::MAX.into())? as u32),
            "gid" => s.gid = Some(parse_uint(v, "gid", u32::MAX.into())? as u32),
            "level" => {
                s.level = match v {
                    "user" => StatsLevel::User,
                    "operator" => StatsLevel::Operator,
                    "admin" => StatsLevel::Admin,
                    _ => return Err(format!("'level' expects 'user', 'operator' or 'admin', got '{v}'")),
                }
            }
            "expose-fd" => {
                if v != "listeners" {
                    return Err(format!("'expose-fd' expects 'listeners', got '{v}'"));
                }
                s.expose_fd_listeners = true;
            }
            "severity-output" => {
                s.severity_output = match v {
                    "none" => SeverityOutput::None,
                    "number" => SeverityOutput::Number,
                    "string" => SeverityOutput::String,
                    _ => return Err(format!("'severity-output' expects 'none', 'number' or 'string', got '{v}'")),
                }
            }
            "name" => s.name = Some(v.to_owned()),
            "thread" => s.thread = Some(v.to_owned()),
            "process" => return Err("'process' was removed in HAProxy 2.5 with 'nbproc'; use 'thread'".into()),
            other => return Err(format!("unknown 'stats socket' option '{other}'")),
        }
        i += 2;
    }
    g.stats.sockets.push(s);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::addr::AddrKind;
    use crate::config::testing::{load, ok, one_alert};

    fn page(body: &str) -> StatsPage {
        ok(&format!("listen st\n    bind :8404\n{body}")).proxy("st").unwrap().stats.clone()
    }

    #[test]
    fn stats_socket_options_are_read() {
        let g = ok(
            "global\n    stats socket /run/admin.sock mode 660 user haproxy group haproxy level admin expose-fd listeners severity-output string name adm\n",
        )
        .global
        .stats;
        let s = &g.sockets[0];
        assert_eq!(s.addr.kind, AddrKind::Unix("/run/admin.sock".into()));
        assert_eq!(s.mode, Some(0o660));
        assert_eq!((s.user.as_deref(), s.group.as_deref()), (Some("haproxy"), Some("haproxy")));
        assert_eq!(s.level, StatsLevel::Admin);
        assert!(s.expose_fd_listeners);
        assert_eq!(s.severity_output, SeverityOutput::String);
        assert_eq!(s.name.as_deref(), Some("adm"));
    }

    #[test]
    fn stats_socket_level_defaults_to_operator() {
        let g = ok("global\n    stats socket /run/a.sock\n").global.stats;
        assert_eq!(g.sockets[0].level, StatsLevel::Operator);
    }

    #[test]
    fn several_stats_sockets_of_several_kinds() {
        let g = ok("global\n    stats socket /run/a.sock\n    stats socket ipv4@127.0.0.1:9999 level user\n    stats socket fd@3\n    stats socket abns@ctl\n")
            .global
            .stats;
        assert_eq!(g.sockets.len(), 4);
        assert!(matches!(g.sockets[1].addr.kind, AddrKind::Inet { .. }));
        assert_eq!(g.sockets[2].addr.kind, AddrKind::Fd(3));
        assert_eq!(g.sockets[3].addr.kind, AddrKind::Abns("ctl".into()));
    }

    #[test]
    fn stats_socket_bad_level_is_an_error_on_its_line() {
        let (line, kw, msg) = one_alert("global\n    daemon\n    stats socket /run/a.sock level root\n");
        assert_eq!((line, kw.as_str()), (3, "stats socket"));
        assert!(msg.contains("'level'"), "{msg}");
    }

    #[test]
    fn stats_socket_rejects_bad_mode_expose_fd_and_unknown_options() {
        assert!(one_alert("global\n    stats socket /run/a.sock mode 9\n").2.contains("octal"));
        assert!(one_alert("global\n    stats socket /run/a.sock expose-fd all\n").2.contains("listeners"));
        assert!(one_alert("global\n    stats socket /run/a.sock colour blue\n").2.contains("unknown 'stats socket' option 'colour'"));
        assert!(one_alert("global\n    stats socket /run/a.sock level\n").2.contains("expects an argument"));
    }

    #[test]
    fn stats_socket_inet_address_needs_a_port() {
        assert!(one_alert("global\n    stats socket ipv4@127.0.0.1\n").2.contains("missing port"));
    }

    #[test]
    fn stats_timeout_and_maxconn() {
        let g = ok("global\n    stats timeout 30s\n    stats maxconn 5\n").global.stats;
        assert_eq!(g.timeout, Some(Duration::from_secs(30)));
        assert_eq!(g.maxconn, Some(5));
    }

    #[test]
    fn stats_bind_process_is_rejected() {
        let (_, kw, msg) = one_alert("global\n    stats bind-process 1\n");
        assert_eq!(kw, "stats bind-process");
        assert!(msg.contains("removed"), "{msg}");
    }

    #[test]
    fn stats_uri_alone_enables_the_page() {
        let s = page("    stats uri /stats\n");
        assert!(s.enabled);
        assert_eq!(s.uri(), "/stats");
        assert_eq!(s.realm(), DEFAULT_STATS_REALM);
    }

    #[test]
    fn stats_enable_uses_the_default_uri() {
        let s = page("    stats enable\n");
        assert!(s.enabled);
        assert_eq!(s.uri(), "/haproxy?stats");
    }

    #[test]
    fn stats_auth_is_repeatable_and_needs_a_colon() {
        let s = page("    stats auth admin:pw\n    stats auth ro:x:y\n");
        assert_eq!(s.auth, vec![StatsUser { user: "admin".into(), password: "pw".into() }, StatsUser { user: "ro".into(), password: "x:y".into() }]);
        let (line, kw, _) = one_alert("listen st\n    bind :8404\n    stats auth admin\n");
        assert_eq!((line, kw.as_str()), (3, "stats auth"));
    }

    #[test]
    fn stats_page_flags_and_texts() {
        let s = page(
            "    stats realm Stats\n    stats refresh 10s\n    stats hide-version\n    stats show-legends\n    stats show-modules\n    stats show-node\n    stats show-desc edge lb\n    stats scope .\n    stats scope www\n",
        );
        assert_eq!(s.realm(), "Stats");
        assert_eq!(s.refresh, Some(Duration::from_secs(10)));
        assert!(s.hide_version && s.show_legends && s.show_modules);
        assert_eq!(s.show_node, Some(None));
        assert_eq!(s.show_desc, Some(Some("edge lb".into())));
        assert_eq!(s.scope, vec![".".to_string(), "www".to_string()]);
    }

    #[test]
    fn stats_admin_takes_a_condition() {
        let s = page("    acl LOCAL src_is_local\n    stats admin if LOCAL\n");
        assert_eq!(s.admin.len(), 1);
        assert_eq!(s.admin[0].cond.acl_names().collect::<Vec<_>>(), vec!["LOCAL"]);
    }

    #[test]
    fn stats_admin_without_condition_is_an_error() {
        let (line, kw, msg) = one_alert("listen st\n    bind :8404\n    stats admin\n");
        assert_eq!((line, kw.as_str()), (3, "stats admin"));
        assert!(msg.contains("'if' or 'unless'"), "{msg}");
    }

    #[test]
    fn stats_admin_is_not_allowed_in_defaults() {
        let (_, kw, msg) = one_alert("defaults\n    stats admin if TRUE\n");
        assert_eq!(kw, "stats admin");
        assert!(msg.contains("not allowed"), "{msg}");
    }

    #[test]
    fn stats_http_request_rules() {
        let s = page(
            "    acl AUTH_OK path_beg /x\n    stats http-request allow if AUTH_OK\n    stats http-request auth realm Stats unless AUTH_OK\n    stats http-request deny\n",
        );
        assert_eq!(s.http_request.len(), 3);
        assert_eq!(s.http_request[0].action, StatsAction::Allow);
        assert!(s.http_request[0].cond.is_some());
        assert_eq!(s.http_request[1].action, StatsAction::Auth { realm: Some("Stats".into()) });
        assert_eq!(s.http_request[2].action, StatsAction::Deny);
        assert!(s.http_request[2].cond.is_none());
    }

    #[test]
    fn stats_http_request_unknown_action_is_an_error() {
        let (line, kw, msg) = one_alert("listen st\n    bind :8404\n    stats http-request redirect\n");
        assert_eq!((line, kw.as_str()), (3, "stats http-request"));
        assert!(msg.contains("unknown action 'redirect'"), "{msg}");
    }

    #[test]
    fn stats_uri_without_a_slash_is_a_warning() {
        let l = load("listen st\n    bind :8404\n    stats uri stats\n");
        assert!(l.config.is_some());
        assert!(l.diags.warnings().any(|d| d.keyword.as_deref() == Some("stats uri") && d.msg.contains("does not start with '/'")));
    }

    #[test]
    fn global_keyword_examples_parse() {
        for k in global_keywords() {
            let l = load(&format!("global\n    {}\n", k.doc.example));
            assert!(l.config.is_some(), "example of '{}' rejected: {:?}", k.name, l.diags.items);
        }
    }
}
