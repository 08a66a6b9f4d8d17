//! Keywords every proxy has whatever its features: `mode`, `bind`, `server`, `timeout`, `acl`,
//! `use_backend`, the core `option`s, and the basic `global` keywords. Bind and server options that
//! belong to a feature (TLS, checks) live in that feature's module.

use super::addr::{AddrKind, AddrRules, Address, Host, PortSpec, parse_address};
use super::expr::{parse_acl, parse_condition, split_condition};
use super::logformat::parse_log_format;
use super::model::*;
use super::registry::{BindOption, DocTable, GlobalKeyword, KwArgs, ProxyKeyword, Registry, Sections, ServerOption};
use super::units::{parse_size, parse_time, parse_uint};
use crate::doc;

const U32: u64 = u32::MAX as u64;

fn kw(name: &'static str, sections: Sections, parse: super::registry::ProxyParse, doc: super::registry::Doc) -> ProxyKeyword {
    ProxyKeyword { name, sections, negatable: false, parse, doc }
}

fn opt(name: &'static str, sections: Sections, parse: super::registry::ProxyParse, doc: super::registry::Doc) -> ProxyKeyword {
    ProxyKeyword { name, sections, negatable: true, parse, doc }
}

fn gkw(name: &'static str, parse: super::registry::GlobalParse, doc: super::registry::Doc) -> GlobalKeyword {
    GlobalKeyword { name, negatable: false, parse, doc }
}

/// A global keyword that also takes a `no` prefix.
fn gkw_neg(name: &'static str, parse: super::registry::GlobalParse, doc: super::registry::Doc) -> GlobalKeyword {
    GlobalKeyword { name, negatable: true, parse, doc }
}

/// Parses the single argument of a keyword that takes exactly one.
fn one<'a>(a: &KwArgs<'a>, what: &str) -> Result<&'a str, String> {
    let v = a.need(0, what)?;
    a.at_most(1)?;
    Ok(v)
}

/// `user` and `uid` (and `group` and `gid`) set the same thing; HAProxy complains about the second
/// and goes on, and so does sluiced: the later line wins.
fn replaced_identity(a: &mut KwArgs<'_>, already: bool, what: &str) {
    if already {
        a.warn(format!("{what} already specified; this line replaces it"));
    }
}

fn one_u32(a: &KwArgs<'_>, what: &str) -> Result<u32, String> {
    Ok(parse_uint(one(a, what)?, a.keyword, U32)? as u32)
}

fn one_time(a: &KwArgs<'_>) -> Result<std::time::Duration, String> {
    parse_time(one(a, "time value")?)
}

/// Proxy, server and ACL names: HAProxy's character set.
pub fn check_name(kind: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("missing {kind} name"));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || "-_.:".contains(*c))) {
        return Err(format!("character '{c}' is not permitted in {kind} name '{name}'"));
    }
    Ok(())
}

macro_rules! timeout_kw {
    ($name:literal, $sect:expr, $field:ident, $desc:literal) => {
        kw(
            concat!("timeout ", $name),
            $sect,
            |a, p| {
                p.timeouts.$field = Some(one_time(a)?);
                Ok(())
            },
            doc!(Parsed, concat!("timeout ", $name, " <time>"), $desc, concat!("timeout ", $name, " 30s")),
        )
    };
}

pub fn proxy_keywords() -> Vec<ProxyKeyword> {
    use Sections as S;
    vec![
        kw("mode", S::ALL, parse_mode, doc!(Parsed, "mode tcp|http", "Whether the proxy forwards raw TCP or parses HTTP.", "mode http")),
        kw(
            "bind",
            S::FE_ONLY,
            parse_bind,
            doc!(
                Parsed,
                "bind <addr>[,<addr>...] [options...]",
                "Listens on one or more addresses; options are listed under 'bind options'.",
                "bind :443 ssl crt /etc/sluiced/certs/"
            ),
        ),
        kw(
            "server",
            S::BE_ONLY,
            parse_server,
            doc!(
                Parsed,
                "server <name> <addr>[:port] [options...]",
                "Declares a server of the backend; options are listed under 'server options'.",
                "server app1 10.0.0.11:8080 check weight 10"
            ),
        ),
        kw(
            "default-server",
            S::BE,
            parse_default_server,
            doc!(Parsed, "default-server [options...]", "Options applied to every following server of the proxy.", "default-server inter 2s fall 3 rise 2"),
        ),
        kw(
            "server-template",
            S::BE_ONLY,
            parse_server_template,
            doc!(
                Parsed,
                "server-template <prefix> <num|low-high> <fqdn>[:port] [options...]",
                "Declares numbered servers <prefix>1..N sharing one address and options.",
                "server-template web 1-5 web.service.local:80 check"
            ),
        ),
        timeout_kw!("client", S::FE, client, "Maximum inactivity time on the client side."),
        timeout_kw!("client-fin", S::FE, client_fin, "Inactivity timeout on the client side once the client has half-closed."),
        timeout_kw!("server", S::BE, server, "Maximum inactivity time on the server side."),
        timeout_kw!("server-fin", S::BE, server_fin, "Inactivity timeout on the server side once the server has half-closed."),
        timeout_kw!("connect", S::BE, connect, "Maximum time to wait for a connection to a server to succeed."),
        timeout_kw!("queue", S::BE, queue, "Maximum time a request waits in the queue for a connection slot."),
        timeout_kw!("tunnel", S::BE, tunnel, "Inactivity timeout for tunnels (WebSocket, CONNECT, TCP once established)."),
        timeout_kw!("http-request", S::ALL, http_request, "Deadline for receiving a complete HTTP request head."),
        timeout_kw!("http-keep-alive", S::ALL, http_keep_alive, "Maximum time to wait for a new HTTP request on a kept-alive connection."),
        timeout_kw!("check", S::BE, check, "Additional read timeout for health checks once connected."),
        timeout_kw!("tarpit", S::ALL, tarpit, "How long tarpitted requests are held before the error is returned."),
        kw(
            "maxconn",
            S::FE,
            |a, p| {
                p.maxconn = Some(one_u32(a, "connection count")?);
                Ok(())
            },
            doc!(Parsed, "maxconn <n>", "Maximum concurrent connections on the frontend; accepting pauses at the limit.", "maxconn 20000"),
        ),
        kw(
            "backlog",
            S::FE,
            |a, p| {
                p.backlog = Some(one_u32(a, "backlog")?);
                Ok(())
            },
            doc!(Parsed, "backlog <n>", "Listen backlog for the frontend's listeners.", "backlog 4096"),
        ),
        kw(
            "fullconn",
            S::BE,
            |a, p| {
                p.fullconn = Some(one_u32(a, "connection count")?);
                Ok(())
            },
            doc!(
                Parsed,
                "fullconn <n>",
                "Backend load (connections and queued streams) at which servers with minconn reach their maxconn; by default a tenth of the maxconn of the frontends that name the backend. Shown as the backend's slim.",
                "fullconn 1000"
            ),
        ),
        kw(
            "retries",
            S::BE,
            |a, p| {
                p.retries = Some(one_u32(a, "retry count")?);
                Ok(())
            },
            doc!(Parsed, "retries <n>", "Number of times a failed connection attempt to a server is retried.", "retries 3"),
        ),
        kw(
            "rate-limit sessions",
            S::FE,
            |a, p| {
                p.rate_limit_sessions = Some(one_u32(a, "session rate")?);
                Ok(())
            },
            doc!(
                Parsed,
                "rate-limit sessions <rate>",
                "Maximum new sessions per second the frontend accepts, over all workers: past it the listeners pause until the next second, so new connections wait in the kernel's backlog. show stat reports it as rate_lim, with rate and rate_max.",
                "rate-limit sessions 1000"
            ),
        ),
        kw(
            "acl",
            S::ALL,
            parse_acl_kw,
            doc!(
                Parsed,
                "acl <name> <fetch>[(args)][,conv...] [flags] [operator] <value> ...",
                "Declares a named access control list tested by conditions.",
                "acl is_api path_beg /api/"
            ),
        ),
        kw(
            "use_backend",
            S::FE_ONLY,
            parse_use_backend,
            doc!(
                Parsed,
                "use_backend <backend|%[expr]> [if|unless <cond>]",
                "Switches to a backend when the condition holds; the name may be a log-format string.",
                "use_backend api if is_api"
            ),
        ),
        kw(
            "default_backend",
            S::FE,
            parse_default_backend,
            doc!(Parsed, "default_backend <backend>", "Backend used when no use_backend rule matched.", "default_backend web"),
        ),
        kw(
            "use-server",
            S::BE_ONLY,
            parse_use_server,
            doc!(
                Implemented,
                "use-server <server> [if|unless <cond>]",
                "Sends the stream to a named server when the condition holds, bypassing balancing: tried in order after cookie persistence and before stick match; a server down or in maintenance is skipped unless option persist.",
                "use-server s1 if { req.hdr(x-pin) s1 }"
            ),
        ),
        kw(
            "description",
            S::PROXIES,
            |a, p| {
                p.description = Some(join_args(a));
                Ok(())
            },
            doc!(Parsed, "description <text>", "Free text shown in the stats.", "description public web entry point"),
        ),
        kw(
            "id",
            S::PROXIES,
            |a, p| {
                p.id = Some(positive_id(one(a, "numeric id")?)?);
                p.id_span = Some(a.span.clone());
                Ok(())
            },
            doc!(Parsed, "id <n>", "Sets the proxy's numeric identifier (iid in stats).", "id 10"),
        ),
        kw(
            "disabled",
            S::ALL,
            |a, p| {
                a.at_most(0)?;
                p.disabled = true;
                Ok(())
            },
            doc!(Parsed, "disabled", "Declares the proxy but does not start it.", "disabled"),
        ),
        kw(
            "enabled",
            S::ALL,
            |a, p| {
                a.at_most(0)?;
                p.disabled = false;
                Ok(())
            },
            doc!(Parsed, "enabled", "Cancels an inherited 'disabled'.", "enabled"),
        ),
        kw(
            "source",
            S::BE,
            |a, p| {
                let addr = a.need(0, "source address")?;
                let (_, note) = super::addr::parse_source(addr)?;
                if let Some(n) = note {
                    a.warn(n);
                }
                if let Some(extra) = a.arg(1) {
                    a.warn(format!("'{extra}' and what follows it are not applied yet (no transparent proxying): connections leave from {addr}"));
                }
                p.default_server.source = Some(join_args(a));
                Ok(())
            },
            doc!(
                Parsed,
                "source <addr>[:port] [usesrc ...]",
                "Address the backend's connections to servers leave from (bound before connecting; port 0 or none lets the kernel pick). Servers inherit it unless they have a source of their own, and their health checks leave from the same IP. usesrc (transparent proxying) and port ranges are accepted with a warning and not applied yet.",
                "source 10.0.0.2"
            ),
        ),
        opt(
            "option redispatch",
            S::BE,
            |a, p| {
                p.options.redispatch = Some(!a.negated);
                if let Some(v) = a.arg(0) {
                    p.options.redispatch_interval = Some(v.parse().map_err(|_| format!("invalid redispatch interval '{v}'"))?);
                }
                a.at_most(1)
            },
            doc!(
                Parsed,
                "[no] option redispatch [<interval>]",
                "Lets a retried connection go to another server than the one first chosen.",
                "option redispatch"
            ),
        ),
        crate::bool_option!("allbackups", S::BE, options.allbackups, "Uses all backup servers at once instead of only the first."),
        crate::bool_option!("abortonclose", S::ALL, options.abortonclose, "Aborts a queued or pending request when the client closes."),
        crate::bool_option!("tcpka", S::ALL, options.tcpka, "Enables TCP keep-alive on both sides."),
        crate::bool_option!("clitcpka", S::FE, options.clitcpka, "Enables TCP keep-alive on the client side."),
        crate::bool_option!("srvtcpka", S::BE, options.srvtcpka, "Enables TCP keep-alive on the server side."),
        crate::bool_option!("nolinger", S::ALL, options.nolinger, "Closes connections with a reset instead of lingering."),
        crate::bool_option!("splice-auto", S::ALL, options.splice_auto, "Uses kernel splicing in both directions when it pays."),
        crate::bool_option!("splice-request", S::ALL, options.splice_request, "Uses kernel splicing from client to server."),
        crate::bool_option!("splice-response", S::ALL, options.splice_response, "Uses kernel splicing from server to client."),
        crate::bool_option!("persist", S::BE, options.persist, "Keeps sending a persistent client to its server even when it is down or in maintenance."),
        crate::bool_option!("transparent", S::BE, options.transparent, "Connects to the client's original destination address."),
        crate::bool_option!("independent-streams", S::ALL, options.independent_streams, "Lets read and write timeouts of each side advance independently."),
        crate::bool_option!("socket-stats", S::FE, options.socket_stats, "Keeps statistics per listening socket."),
        crate::bool_option!("contstats", S::ALL, options.contstats, "Updates traffic counters continuously for long sessions."),
        crate::bool_option!("tcp-smart-accept", S::FE, options.tcp_smart_accept, "Delays the accept acknowledgement until data arrives where possible."),
        crate::bool_option!("tcp-smart-connect", S::BE, options.tcp_smart_connect, "Sends the first data with the connection's ACK."),
    ]
}

fn join_args(a: &KwArgs<'_>) -> String {
    a.args().iter().map(|w| w.text.as_str()).collect::<Vec<_>>().join(" ")
}

fn positive_id(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(v) if v > 0 && v <= i32::MAX as u32 => Ok(v),
        _ => Err(format!("id must be a positive integer, got '{s}'")),
    }
}

fn parse_mode(a: &mut KwArgs<'_>, p: &mut Proxy) -> Result<(), String> {
    p.mode = match one(a, "mode")? {
        "tcp" => Mode::Tcp,
        "http" => Mode::Http,
        m @ ("log" | "spop" | "health") => return Err(format!("mode '{m}' is not supported by sluiced")),
        m => return Err(format!("unknown mode '{m}' (expected 'tcp' or 'http')")),
    };
    Ok(())
}

fn parse_bind(a: &mut KwArgs<'_>, p: &mut Proxy) -> Result<(), String> {
    let addrs = a.need(0, "address")?;
    let mut bind = Bind::new(a.span.clone());
    for text in addrs.split(',') {
        bind.addrs.push(parse_address(text, AddrRules { listener: true, server: false })?);
    }
    let reg = Registry::get();
    let rest = &a.args()[1..];
    let mut i = 0;
    while i < rest.len() {
        let name = rest[i].text.as_str();
        let o = reg.bind_option(name).ok_or_else(|| unknown_option("bind", name, reg.bind.iter().map(|o| o.name)))?;
        super::registry::note_use("bind options", "bind option", o.name, o.doc.status);
        let arg = if o.takes_arg {
            i += 1;
            Some(rest.get(i).map(|w| w.text.as_str()).ok_or_else(|| format!("'{name}' expects an argument"))?)
        } else {
            None
        };
        (o.parse)(&mut bind, arg).map_err(|e| format!("'{name}' : {e}"))?;
        i += 1;
    }
    p.binds.push(bind);
    Ok(())
}

fn unknown_option<'a>(what: &str, name: &str, all: impl IntoIterator<Item = &'a str>) -> String {
    match super::diag::did_you_mean(name, all) {
        Some(s) => format!("unknown {what} option '{name}'; did you mean '{s}' maybe ?"),
        None => format!("unknown {what} option '{name}'"),
    }
}

/// Applies server options from `words` to `opts`. `id` is returned, because only `server` has one.
fn parse_server_options(words: &[super::lex::Word], opts: &mut ServerOpts, is_default: bool) -> Result<Option<u32>, String> {
    let reg = Registry::get();
    let mut id = None;
    let mut i = 0;
    while i < words.len() {
        let name = words[i].text.as_str();
        if name == "id" && !is_default {
            i += 1;
            id = Some(positive_id(words.get(i).map(|w| w.text.as_str()).ok_or("'id' expects an argument")?)?);
            i += 1;
            continue;
        }
        let what = if is_default { "default-server" } else { "server" };
        let o = reg.server_option(name).ok_or_else(|| unknown_option(what, name, reg.server.iter().map(|o| o.name)))?;
        if is_default && !o.default_server {
            return Err(format!("'{name}' is not allowed on 'default-server' lines"));
        }
        super::registry::note_use("server options", "server option", o.name, o.doc.status);
        let arg = if o.takes_arg {
            i += 1;
            Some(words.get(i).map(|w| w.text.as_str()).ok_or_else(|| format!("'{name}' expects an argument"))?)
        } else {
            None
        };
        (o.parse)(opts, arg).map_err(|e| format!("'{name}' : {e}"))?;
        i += 1;
    }
    Ok(id)
}

fn parse_server(a: &mut KwArgs<'_>, p: &mut Proxy) -> Result<(), String> {
    let name = a.need(0, "server name")?;
    check_name("server", name)?;
    let addr_text = a.need(1, "server address")?;
    let addr = parse_address(addr_text, AddrRules { listener: false, server: true })?;
    let mut opts = p.default_server.clone();
    let id = parse_server_options(&a.args()[2..], &mut opts, false)?;
    if let Some(t) = &opts.track {
        p.add_ref(RefKind::Server, t, a.span, "server");
    }
    p.servers.push(Server { name: name.to_owned(), addr, resolved: None, id, span: a.span.clone(), opts });
    Ok(())
}

fn parse_default_server(a: &mut KwArgs<'_>, p: &mut Proxy) -> Result<(), String> {
    let words = a.args();
    let mut opts = p.default_server.clone();
    parse_server_options(words, &mut opts, true)?;
    p.default_server = opts;
    Ok(())
}

fn parse_server_template(a: &mut KwArgs<'_>, p: &mut Proxy) -> Result<(), String> {
    let prefix = a.need(0, "server name prefix")?;
    check_name("server", prefix)?;
    let range = a.need(1, "number or range of servers")?;
    let (lo, hi) = match range.split_once('-') {
        Some((l, h)) => (l.parse::<u32>().map_err(|_| format!("invalid range '{range}'"))?, h.parse::<u32>().map_err(|_| format!("invalid range '{range}'"))?),
        None => (1, range.parse::<u32>().map_err(|_| format!("invalid number of servers '{range}'"))?),
    };
    if lo == 0 || hi < lo || hi - lo >= 100_000 {
        return Err(format!("invalid range of servers '{range}'"));
    }
    let addr = parse_address(a.need(2, "server address")?, AddrRules { listener: false, server: true })?;
    let mut opts = p.default_server.clone();
    if parse_server_options(&a.args()[3..], &mut opts, false)?.is_some() {
        return Err("'id' is not allowed on 'server-template' lines".into());
    }
    for n in lo..=hi {
        p.servers.push(Server { name: format!("{prefix}{n}"), addr: addr.clone(), resolved: None, id: None, span: a.span.clone(), opts: opts.clone() });
    }
    Ok(())
}

fn parse_acl_kw(a: &mut KwArgs<'_>, p: &mut Proxy) -> Result<(), String> {
    let name = a.need(0, "ACL name")?;
    check_name("ACL", name)?;
    let body = parse_acl(&a.args()[1..])?;
    p.add_sample_refs(&body.expr, a.span, "acl");
    p.acls.push(AclDecl { name: name.to_owned(), body, span: a.span.clone() });
    Ok(())
}

fn parse_use_backend(a: &mut KwArgs<'_>, p: &mut Proxy) -> Result<(), String> {
    let (target, cond) = split_condition(a.args());
    let name = target.first().ok_or("missing backend name")?;
    if target.len() > 1 {
        return Err(format!("unexpected '{}' (expected 'if' or 'unless')", target[1].text));
    }
    let cond = cond.map(parse_condition).transpose()?;
    let target = if name.text.contains("%[") {
        let lf = parse_log_format(&name.text)?;
        for e in lf.samples() {
            p.add_sample_refs(e, a.span, "use_backend");
        }
        BackendTarget::Dynamic(lf)
    } else {
        p.add_ref(RefKind::Backend, &name.text, a.span, "use_backend");
        BackendTarget::Named(name.text.clone())
    };
    if let Some(c) = &cond {
        p.add_cond_refs(c, a.span, "use_backend");
    }
    p.use_backends.push(UseBackend { target, cond, span: a.span.clone() });
    Ok(())
}

fn parse_default_backend(a: &mut KwArgs<'_>, p: &mut Proxy) -> Result<(), String> {
    // Checked by validation for every frontend, including one that inherits it from defaults.
    let name = one(a, "backend name")?;
    p.default_backend = Some(NameRef { name: name.to_owned(), span: a.span.clone() });
    Ok(())
}

fn parse_use_server(a: &mut KwArgs<'_>, p: &mut Proxy) -> Result<(), String> {
    let (target, cond) = split_condition(a.args());
    let name = target.first().ok_or("missing server name")?;
    if target.len() > 1 {
        return Err(format!("unexpected '{}' (expected 'if' or 'unless')", target[1].text));
    }
    let cond = cond.map(parse_condition).transpose()?;
    if let Some(c) = &cond {
        p.add_cond_refs(c, a.span, "use-server");
    }
    p.use_servers.push(UseServer { server: name.text.clone(), cond, span: a.span.clone() });
    Ok(())
}

fn u32_arg(v: Option<&str>, max: u64) -> Result<u32, String> {
    let v = v.unwrap_or_default();
    Ok(parse_uint(v, "value", max)? as u32)
}

fn bopt(name: &'static str, takes_arg: bool, parse: fn(&mut Bind, Option<&str>) -> Result<(), String>, doc: super::registry::Doc) -> BindOption {
    BindOption { name, takes_arg, parse, doc }
}

pub fn bind_options() -> Vec<BindOption> {
    vec![
        bopt(
            "name",
            true,
            |b, v| {
                b.name = v.map(str::to_owned);
                Ok(())
            },
            doc!(Parsed, "name <name>", "Names the listener in stats and logs.", "bind :80 name http"),
        ),
        bopt(
            "id",
            true,
            |b, v| {
                b.id = Some(positive_id(v.unwrap_or_default())?);
                Ok(())
            },
            doc!(Parsed, "id <n>", "Numeric identifier of the listener.", "bind :80 id 3"),
        ),
        bopt(
            "backlog",
            true,
            |b, v| {
                b.backlog = Some(u32_arg(v, U32)?);
                Ok(())
            },
            doc!(Parsed, "backlog <n>", "Listen backlog of this socket.", "bind :80 backlog 1024"),
        ),
        bopt(
            "maxconn",
            true,
            |b, v| {
                b.maxconn = Some(u32_arg(v, U32)?);
                Ok(())
            },
            doc!(
                Parsed,
                "maxconn <n>",
                "Maximum concurrent connections on this bind line (all its addresses and threads together); at the limit it is no longer accepted from, and new connections wait in the kernel's backlog.",
                "bind :80 maxconn 1000"
            ),
        ),
        bopt(
            "accept-proxy",
            false,
            |b, _| {
                b.accept_proxy = true;
                Ok(())
            },
            doc!(Parsed, "accept-proxy", "Requires a PROXY protocol v1 or v2 header on every connection.", "bind :80 accept-proxy"),
        ),
        bopt(
            "v4v6",
            false,
            |b, _| {
                b.v4v6 = true;
                Ok(())
            },
            doc!(Parsed, "v4v6", "An IPv6 socket also accepts IPv4 connections.", "bind :::80 v4v6"),
        ),
        bopt(
            "v6only",
            false,
            |b, _| {
                b.v6only = true;
                Ok(())
            },
            doc!(Parsed, "v6only", "An IPv6 socket accepts only IPv6 connections.", "bind :::80 v6only"),
        ),
        bopt(
            "defer-accept",
            false,
            |b, _| {
                b.defer_accept = true;
                Ok(())
            },
            doc!(Parsed, "defer-accept", "Wakes up only when data arrives (TCP_DEFER_ACCEPT).", "bind :80 defer-accept"),
        ),
        bopt(
            "tfo",
            false,
            |b, _| {
                b.tfo = true;
                Ok(())
            },
            doc!(Parsed, "tfo", "Enables TCP Fast Open on the listener.", "bind :80 tfo"),
        ),
        bopt(
            "transparent",
            false,
            |b, _| {
                b.transparent = true;
                Ok(())
            },
            doc!(Parsed, "transparent", "Binds to a non-local address (IP_TRANSPARENT).", "bind 192.0.2.1:80 transparent"),
        ),
        bopt(
            "interface",
            true,
            |b, v| {
                b.interface = v.map(str::to_owned);
                Ok(())
            },
            doc!(Parsed, "interface <name>", "Restricts the socket to one network interface (SO_BINDTODEVICE).", "bind :80 interface eth0"),
        ),
        bopt(
            "namespace",
            true,
            |b, v| {
                b.namespace = v.map(str::to_owned);
                Ok(())
            },
            doc!(Parsed, "namespace <name>", "Opens the socket in a network namespace.", "bind :80 namespace blue"),
        ),
        bopt(
            "mss",
            true,
            |b, v| {
                b.mss = Some(v.unwrap_or_default().parse().map_err(|_| "expects an integer")?);
                Ok(())
            },
            doc!(Parsed, "mss <n>", "Sets TCP_MAXSEG on accepted connections.", "bind :80 mss 1400"),
        ),
        bopt(
            "nice",
            true,
            |b, v| {
                b.nice = Some(v.unwrap_or_default().parse().map_err(|_| "expects an integer")?);
                Ok(())
            },
            doc!(Parsed, "nice <n>", "Scheduling priority of this listener's connections.", "bind :80 nice 10"),
        ),
        bopt(
            "thread",
            true,
            |b, v| {
                b.thread = v.map(str::to_owned);
                Ok(())
            },
            doc!(Parsed, "thread <set>", "Restricts the listener to some worker threads.", "bind :80 thread 1-2"),
        ),
        bopt(
            "process",
            true,
            |b, v| {
                b.process = v.map(str::to_owned);
                Ok(())
            },
            doc!(Parsed, "process <set>", "Legacy process binding, accepted for compatibility.", "bind :80 process 1"),
        ),
        bopt(
            "shards",
            true,
            |b, v| {
                b.shards = v.map(str::to_owned);
                Ok(())
            },
            doc!(Parsed, "shards <n>|by-thread|by-group", "How many SO_REUSEPORT sockets back the listener.", "bind :80 shards by-thread"),
        ),
        bopt(
            "tcp-ut",
            true,
            |b, v| {
                b.tcp_ut = Some(parse_time(v.unwrap_or_default())?);
                Ok(())
            },
            doc!(Parsed, "tcp-ut <time>", "TCP_USER_TIMEOUT of accepted connections.", "bind :80 tcp-ut 30s"),
        ),
        bopt(
            "mode",
            true,
            |b, v| {
                b.mode = Some(u32::from_str_radix(v.unwrap_or_default(), 8).map_err(|_| "expects an octal mode")?);
                Ok(())
            },
            doc!(Parsed, "mode <octal>", "Permissions of a unix socket.", "bind /run/s.sock mode 600"),
        ),
        bopt(
            "uid",
            true,
            |b, v| {
                b.uid = Some(parse_uint(v.unwrap_or_default(), "uid", U32)? as u32);
                Ok(())
            },
            doc!(Implemented, "uid <uid>", "Owner of a unix socket, by number (when started as root).", "bind /run/s.sock uid 0"),
        ),
        bopt(
            "gid",
            true,
            |b, v| {
                b.gid = Some(parse_uint(v.unwrap_or_default(), "gid", U32)? as u32);
                Ok(())
            },
            doc!(Implemented, "gid <gid>", "Group of a unix socket, by number (when started as root).", "bind /run/s.sock gid 0"),
        ),
        bopt(
            "user",
            true,
            |b, v| {
                b.uid = Some(crate::runtime::identity::lookup_user(v.unwrap_or_default())?.uid.as_raw());
                Ok(())
            },
            doc!(Implemented, "user <name>", "Owner of a unix socket, by name (when started as root).", "bind /run/s.sock user haproxy"),
        ),
        bopt(
            "group",
            true,
            |b, v| {
                b.gid = Some(crate::runtime::identity::lookup_group(v.unwrap_or_default())?.as_raw());
                Ok(())
            },
            doc!(Implemented, "group <name>", "Group of a unix socket, by name (when started as root).", "bind /run/s.sock group haproxy"),
        ),
        bopt(
            "proto",
            true,
            |b, v| {
                b.proto = v.map(str::to_owned);
                Ok(())
            },
            doc!(Parsed, "proto <name>", "Forces the multiplexer protocol (h1, h2).", "bind :80 proto h2"),
        ),
    ]
}

fn sopt(name: &'static str, takes_arg: bool, parse: fn(&mut ServerOpts, Option<&str>) -> Result<(), String>, doc: super::registry::Doc) -> ServerOption {
    ServerOption { name, takes_arg, default_server: true, parse, doc }
}

fn arg_str(v: Option<&str>) -> Option<String> {
    v.map(str::to_owned)
}

pub fn server_options() -> Vec<ServerOption> {
    vec![
        sopt(
            "weight",
            true,
            |o, v| {
                o.weight = Some(u32_arg(v, 256)?);
                Ok(())
            },
            doc!(Parsed, "weight <0-256>", "Relative share of the load this server receives.", "server s1 10.0.0.1:80 weight 20"),
        ),
        sopt(
            "backup",
            false,
            |o, _| {
                o.backup = true;
                Ok(())
            },
            doc!(Parsed, "backup", "Used only when every active server is down.", "server s9 10.0.0.9:80 backup"),
        ),
        sopt(
            "no-backup",
            false,
            |o, _| {
                o.backup = false;
                Ok(())
            },
            doc!(Parsed, "no-backup", "Cancels an inherited 'backup'.", "server s1 10.0.0.1:80 no-backup"),
        ),
        sopt(
            "disabled",
            false,
            |o, _| {
                o.disabled = true;
                Ok(())
            },
            doc!(Parsed, "disabled", "Starts the server in maintenance.", "server s1 10.0.0.1:80 disabled"),
        ),
        sopt(
            "enabled",
            false,
            |o, _| {
                o.disabled = false;
                Ok(())
            },
            doc!(Parsed, "enabled", "Cancels an inherited 'disabled'.", "server s1 10.0.0.1:80 enabled"),
        ),
        sopt(
            "maxconn",
            true,
            |o, v| {
                o.maxconn = Some(u32_arg(v, U32)?);
                Ok(())
            },
            doc!(Parsed, "maxconn <n>", "Maximum concurrent connections to this server; more wait in the queue.", "server s1 10.0.0.1:80 maxconn 100"),
        ),
        sopt(
            "minconn",
            true,
            |o, v| {
                o.minconn = Some(u32_arg(v, U32)?);
                Ok(())
            },
            doc!(Parsed, "minconn <n>", "Dynamic maxconn floor, scaled with the backend's fullconn.", "server s1 10.0.0.1:80 minconn 10 maxconn 100"),
        ),
        sopt(
            "maxqueue",
            true,
            |o, v| {
                o.maxqueue = Some(u32_arg(v, U32)?);
                Ok(())
            },
            doc!(
                Implemented,
                "maxqueue <n>",
                "Maximum streams waiting for a slot on this server when persistence, use-server or stick match sends them there; beyond it a stream is balanced to another server instead (0, the default: no limit).",
                "server s1 10.0.0.1:80 maxconn 100 maxqueue 50"
            ),
        ),
        sopt(
            "send-proxy",
            false,
            |o, _| {
                o.send_proxy = true;
                Ok(())
            },
            doc!(Parsed, "send-proxy", "Sends a PROXY protocol v1 header to the server.", "server s1 10.0.0.1:80 send-proxy"),
        ),
        sopt(
            "no-send-proxy",
            false,
            |o, _| {
                o.send_proxy = false;
                Ok(())
            },
            doc!(Parsed, "no-send-proxy", "Cancels an inherited 'send-proxy'.", "server s1 10.0.0.1:80 no-send-proxy"),
        ),
        sopt(
            "send-proxy-v2",
            false,
            |o, _| {
                o.send_proxy_v2 = true;
                Ok(())
            },
            doc!(Parsed, "send-proxy-v2", "Sends a PROXY protocol v2 header to the server.", "server s1 10.0.0.1:80 send-proxy-v2"),
        ),
        sopt(
            "no-send-proxy-v2",
            false,
            |o, _| {
                o.send_proxy_v2 = false;
                Ok(())
            },
            doc!(Parsed, "no-send-proxy-v2", "Cancels an inherited 'send-proxy-v2'.", "server s1 10.0.0.1:80 no-send-proxy-v2"),
        ),
        sopt(
            "proxy-v2-options",
            true,
            |o, v| {
                o.proxy_v2_options = v.unwrap_or_default().split(',').map(str::to_owned).collect();
                Ok(())
            },
            doc!(
                Parsed,
                "proxy-v2-options <opt>[,<opt>...]",
                "TLVs added to PROXY v2 headers (ssl, cert-cn, authority, unique-id...).",
                "server s1 10.0.0.1:80 send-proxy-v2 proxy-v2-options ssl,unique-id"
            ),
        ),
        sopt(
            "cookie",
            true,
            |o, v| {
                o.cookie = arg_str(v);
                Ok(())
            },
            doc!(Parsed, "cookie <value>", "Cookie value identifying this server for persistence.", "server s1 10.0.0.1:80 cookie s1"),
        ),
        sopt(
            "redir",
            true,
            |o, v| {
                o.redir = arg_str(v);
                Ok(())
            },
            doc!(
                Parsed,
                "redir <prefix>",
                "Answers GET/HEAD with a redirect to this prefix instead of forwarding.",
                "server s1 10.0.0.1:80 redir http://s1.example.com"
            ),
        ),
        sopt(
            "source",
            true,
            |o, v| {
                if let Some(note) = super::addr::parse_source(v.unwrap_or_default())?.1 {
                    super::registry::note_warning(note);
                }
                o.source = arg_str(v);
                Ok(())
            },
            doc!(
                Parsed,
                "source <addr>[:port]",
                "Address connections (and health checks, with any port) to this server leave from, instead of the backend's source.",
                "server s1 10.0.0.1:80 source 10.0.0.2"
            ),
        ),
        sopt(
            "init-addr",
            true,
            |o, v| {
                o.init_addr = arg_str(v);
                Ok(())
            },
            doc!(
                Parsed,
                "init-addr {last|libc|none|<ip>},...",
                "How the server's address is found at start-up.",
                "server s1 app.local:80 init-addr last,libc,none"
            ),
        ),
        sopt(
            "resolvers",
            true,
            |o, v| {
                o.resolvers = arg_str(v);
                Ok(())
            },
            doc!(
                Implemented,
                "resolvers <section>",
                "Resolves the server's host name at run time with the name servers of a `resolvers` section, every `timeout resolve`: the server follows its address, and goes into maintenance (`MAINT (resolution)`) when the name stops resolving for longer than the section's `hold`. Servers of one backend resolving one name (`server-template`) each take a different address.",
                "server-template web 1-5 web.service.local:80 check resolvers dns init-addr none"
            ),
        ),
        sopt(
            "resolve-prefer",
            true,
            |o, v| {
                match v {
                    Some("ipv4" | "ipv6") => o.resolve_prefer = arg_str(v),
                    other => return Err(format!("expects 'ipv4' or 'ipv6', not '{}'", other.unwrap_or_default())),
                }
                Ok(())
            },
            doc!(
                Implemented,
                "resolve-prefer ipv4|ipv6",
                "The address family asked for first when resolving (default ipv6); the other is asked for when the name has no address of the first. It also picks among the addresses `init-addr libc` finds.",
                "server s1 app.local:80 resolvers dns resolve-prefer ipv4"
            ),
        ),
        sopt(
            "resolve-net",
            true,
            |o, v| {
                crate::dns::config::parse_nets(v.unwrap_or_default())?;
                o.resolve_net = arg_str(v);
                Ok(())
            },
            doc!(
                Implemented,
                "resolve-net <network>[,...]",
                "Among the resolved addresses, the server takes one in these networks first.",
                "server s1 app.local:80 resolvers dns resolve-net 10.0.0.0/8"
            ),
        ),
        sopt(
            "resolve-opts",
            true,
            |o, v| {
                for opt in v.unwrap_or_default().split(',') {
                    match opt {
                        "allow-dup-ip" => o.resolve_allow_dup = Some(true),
                        "prevent-dup-ip" => o.resolve_allow_dup = Some(false),
                        "ignore-weight" => {}
                        _ => return Err(format!("unknown option '{opt}' (expected allow-dup-ip, prevent-dup-ip or ignore-weight)")),
                    }
                }
                Ok(())
            },
            doc!(
                Implemented,
                "resolve-opts allow-dup-ip|prevent-dup-ip|ignore-weight,...",
                "`allow-dup-ip`: servers of the backend resolving the same name may share an address; `prevent-dup-ip` (the default): each takes a different one. `ignore-weight` is accepted (SRV weights are not read yet).",
                "server s1 app.local:80 resolvers dns resolve-opts allow-dup-ip"
            ),
        ),
        sopt(
            "namespace",
            true,
            |o, v| {
                o.namespace = arg_str(v);
                Ok(())
            },
            doc!(Parsed, "namespace <name>", "Network namespace for connections to this server.", "server s1 10.0.0.1:80 namespace blue"),
        ),
        sopt(
            "tfo",
            false,
            |o, _| {
                o.tfo = true;
                Ok(())
            },
            doc!(Parsed, "tfo", "Uses TCP Fast Open towards the server.", "server s1 10.0.0.1:80 tfo"),
        ),
        sopt(
            "pool-max-conn",
            true,
            |o, v| {
                o.pool_max_conn = Some(v.unwrap_or_default().parse().map_err(|_| "expects an integer (-1 for unlimited)")?);
                Ok(())
            },
            doc!(Parsed, "pool-max-conn <n>", "Maximum idle connections kept for reuse (-1 unlimited).", "server s1 10.0.0.1:80 pool-max-conn 100"),
        ),
        sopt(
            "pool-low-conn",
            true,
            |o, v| {
                o.pool_low_conn = Some(u32_arg(v, U32)?);
                Ok(())
            },
            doc!(Parsed, "pool-low-conn <n>", "Idle connections below which a worker prefers opening a new one.", "server s1 10.0.0.1:80 pool-low-conn 8"),
        ),
        sopt(
            "pool-purge-delay",
            true,
            |o, v| {
                o.pool_purge_delay = Some(parse_time(v.unwrap_or_default())?);
                Ok(())
            },
            doc!(Parsed, "pool-purge-delay <time>", "How often idle pooled connections are trimmed.", "server s1 10.0.0.1:80 pool-purge-delay 5s"),
        ),
        sopt(
            "max-reuse",
            true,
            |o, v| {
                o.max_reuse = Some(v.unwrap_or_default().parse().map_err(|_| "expects an integer")?);
                Ok(())
            },
            doc!(
                Parsed,
                "max-reuse <n>",
                "How many times one idle server connection may be reused for another request (-1 unlimited, 0 never: each request gets a new connection).",
                "server s1 10.0.0.1:80 max-reuse 1000"
            ),
        ),
        sopt(
            "proto",
            true,
            |o, v| {
                o.proto = arg_str(v);
                Ok(())
            },
            doc!(Parsed, "proto <name>", "Forces the protocol towards the server (h1, h2).", "server s1 10.0.0.1:80 proto h2"),
        ),
        sopt(
            "on-error",
            true,
            |o, v| {
                o.on_error = Some(one_of(v, &["fastinter", "fail-check", "sudden-death", "mark-down"])?);
                Ok(())
            },
            doc!(
                Parsed,
                "on-error fastinter|fail-check|sudden-death|mark-down",
                "What observed errors do to the server's health.",
                "server s1 10.0.0.1:80 check observe layer4 on-error mark-down"
            ),
        ),
        sopt(
            "on-marked-down",
            true,
            |o, v| {
                o.on_marked_down = Some(one_of(v, &["shutdown-sessions"])?);
                Ok(())
            },
            doc!(
                Parsed,
                "on-marked-down shutdown-sessions",
                "Closes the server's sessions when it goes down.",
                "server s1 10.0.0.1:80 check on-marked-down shutdown-sessions"
            ),
        ),
        sopt(
            "on-marked-up",
            true,
            |o, v| {
                o.on_marked_up = Some(one_of(v, &["shutdown-backup-sessions"])?);
                Ok(())
            },
            doc!(
                Parsed,
                "on-marked-up shutdown-backup-sessions",
                "Closes backup servers' sessions when this one comes up.",
                "server s1 10.0.0.1:80 check on-marked-up shutdown-backup-sessions"
            ),
        ),
        sopt(
            "error-limit",
            true,
            |o, v| {
                o.error_limit = Some(u32_arg(v, U32)?);
                Ok(())
            },
            doc!(Parsed, "error-limit <n>", "Consecutive observed errors that trigger on-error.", "server s1 10.0.0.1:80 check observe layer7 error-limit 10"),
        ),
        sopt(
            "observe",
            true,
            |o, v| {
                o.observe = Some(one_of(v, &["layer4", "layer7", "none"])?);
                Ok(())
            },
            doc!(Parsed, "observe layer4|layer7", "Counts live traffic errors towards the server's health.", "server s1 10.0.0.1:80 check observe layer4"),
        ),
        sopt(
            "slowstart",
            true,
            |o, v| {
                o.slowstart = Some(parse_time(v.unwrap_or_default())?);
                Ok(())
            },
            doc!(Parsed, "slowstart <time>", "Ramps the weight up over this time after the server recovers.", "server s1 10.0.0.1:80 check slowstart 30s"),
        ),
        ServerOption {
            name: "track",
            takes_arg: true,
            default_server: false,
            parse: |o, v| {
                let v = v.unwrap_or_default();
                if v.is_empty() {
                    return Err("expects [<backend>/]<server>".into());
                }
                o.track = Some(v.to_owned());
                Ok(())
            },
            doc: doc!(Parsed, "track [<backend>/]<server>", "Follows another server's health instead of checking.", "server s1 10.0.0.1:80 track be_main/s1"),
        },
        sopt(
            "tcp-ut",
            true,
            |o, v| {
                o.tcp_ut = Some(parse_time(v.unwrap_or_default())?);
                Ok(())
            },
            doc!(Parsed, "tcp-ut <time>", "TCP_USER_TIMEOUT of connections to this server.", "server s1 10.0.0.1:80 tcp-ut 20s"),
        ),
    ]
}

fn one_of(v: Option<&str>, allowed: &[&str]) -> Result<String, String> {
    let v = v.unwrap_or_default();
    if allowed.contains(&v) { Ok(v.to_owned()) } else { Err(format!("expects one of {}, got '{v}'", allowed.join(", "))) }
}

fn g_one<'a>(a: &KwArgs<'a>) -> Result<&'a str, String> {
    one(a, "value")
}

pub fn global_keywords() -> Vec<GlobalKeyword> {
    vec![
        gkw(
            "daemon",
            |a, g| {
                a.at_most(0)?;
                g.daemon = true;
                Ok(())
            },
            doc!(Parsed, "daemon", "Forks into the background at start (same as -D).", "daemon"),
        ),
        gkw(
            "master-worker",
            |a, g| {
                a.at_most(1)?;
                g.master_worker = true;
                match a.arg(0) {
                    None => {}
                    Some("no-exit-on-failure") => g.master_worker_no_exit_on_failure = true,
                    Some(other) => return Err(format!("'master-worker' only accepts 'no-exit-on-failure', not '{other}'")),
                }
                Ok(())
            },
            doc!(
                Implemented,
                "master-worker [no-exit-on-failure]",
                "Runs a master process that starts, reloads (SIGUSR2, SIGHUP) and watches the worker (same as -W). With no-exit-on-failure, a worker that dies leaves the master waiting for a reload instead of stopping it.",
                "master-worker"
            ),
        ),
        gkw(
            "maxconn",
            |a, g| {
                g.maxconn = Some(one_u32(a, "connection count")?);
                Ok(())
            },
            doc!(Parsed, "maxconn <n>", "Process-wide maximum of concurrent connections.", "maxconn 100000"),
        ),
        gkw(
            "pidfile",
            |a, g| {
                g.pidfile = Some(g_one(a)?.to_owned());
                Ok(())
            },
            doc!(Parsed, "pidfile <path>", "Writes the pid to this file (same as -p).", "pidfile /run/sluiced.pid"),
        ),
        gkw(
            "user",
            |a, g| {
                let name = g_one(a)?;
                let u = crate::runtime::identity::lookup_user(name)?;
                replaced_identity(a, g.uid.is_some(), "user/uid");
                g.user = Some(name.to_owned());
                g.uid = Some(u.uid.as_raw());
                g.user_gid = Some(u.gid.as_raw());
                Ok(())
            },
            doc!(
                Implemented,
                "user <name>",
                "User to switch to once the sockets are bound (looked up when the file is read). Without 'group', its primary group is taken and the supplementary groups dropped.",
                "user haproxy"
            ),
        ),
        gkw(
            "group",
            |a, g| {
                let name = g_one(a)?;
                let gid = crate::runtime::identity::lookup_group(name)?;
                replaced_identity(a, g.gid.is_some(), "group/gid");
                g.group = Some(name.to_owned());
                g.gid = Some(gid.as_raw());
                Ok(())
            },
            doc!(
                Implemented,
                "group <name>",
                "Group to switch to once the sockets are bound (looked up when the file is read); supplementary groups are dropped.",
                "group haproxy"
            ),
        ),
        gkw(
            "uid",
            |a, g| {
                let uid = one_u32(a, "uid")?;
                replaced_identity(a, g.uid.is_some(), "user/uid");
                g.user = None;
                g.uid = Some(uid);
                g.user_gid = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)).ok().flatten().map(|u| u.gid.as_raw());
                Ok(())
            },
            doc!(Implemented, "uid <n>", "User id to switch to once the sockets are bound; 0 keeps the identity the daemon started with.", "uid 99"),
        ),
        gkw(
            "gid",
            |a, g| {
                let gid = one_u32(a, "gid")?;
                replaced_identity(a, g.gid.is_some(), "group/gid");
                g.group = None;
                g.gid = Some(gid);
                Ok(())
            },
            doc!(Implemented, "gid <n>", "Group id to switch to once the sockets are bound; supplementary groups are dropped.", "gid 99"),
        ),
        gkw(
            "chroot",
            |a, g| {
                g.chroot = Some(g_one(a)?.to_owned());
                Ok(())
            },
            doc!(
                Implemented,
                "chroot <dir>",
                "Directory to chroot into once the sockets are bound, before switching user. Unix log sockets must then exist inside it.",
                "chroot /var/lib/haproxy"
            ),
        ),
        gkw(
            "setcap",
            |a, g| {
                let list = g_one(a)?;
                g.setcap = crate::runtime::identity::parse_caps(list)?;
                Ok(())
            },
            doc!(
                Implemented,
                "setcap <cap>[,<cap>...]",
                "Capabilities kept when switching from root to another user: cap_net_raw, cap_net_admin (transparent 'source ... usesrc'), cap_net_bind_service, cap_sys_admin.",
                "setcap cap_net_admin,cap_net_bind_service"
            ),
        ),
        gkw(
            "set-dumpable",
            |a, g| {
                a.at_most(0)?;
                g.set_dumpable = true;
                Ok(())
            },
            doc!(
                Implemented,
                "set-dumpable",
                "Lets the process dump core after switching user, and raises its core size limit to the hard limit.",
                "set-dumpable"
            ),
        ),
        gkw(
            "node",
            |a, g| {
                g.node = Some(g_one(a)?.to_owned());
                Ok(())
            },
            doc!(Parsed, "node <name>", "Name of this node in stats output.", "node lb1"),
        ),
        gkw(
            "description",
            |a, g| {
                g.description = Some(join_args(a));
                Ok(())
            },
            doc!(Parsed, "description <text>", "Free text describing this node.", "description edge balancer, rack 4"),
        ),
        gkw(
            "localpeer",
            |a, g| {
                g.localpeer = Some(g_one(a)?.to_owned());
                Ok(())
            },
            doc!(
                Parsed,
                "localpeer <name>",
                "This node's name in peers sections; -L on the command line wins over it, and without either it is the host name.",
                "localpeer lb1"
            ),
        ),
        gkw(
            "hard-stop-after",
            |a, g| {
                g.hard_stop_after = Some(one_time(a)?);
                Ok(())
            },
            doc!(Parsed, "hard-stop-after <time>", "Longest time a soft stop waits for sessions before exiting.", "hard-stop-after 30s"),
        ),
        gkw(
            "ulimit-n",
            |a, g| {
                g.ulimit_n = Some(one_u32(a, "file descriptor count")?);
                Ok(())
            },
            doc!(
                Implemented,
                "ulimit-n <n>",
                "Sets the descriptor limit (soft and, above the hard one, hard: that needs root). Without it the soft limit is raised to the hard one, and further (as root) to about twice the global maxconn. A limit that cannot be set stops start-up (see strict-limits).",
                "ulimit-n 200000"
            ),
        ),
        gkw(
            "maxconnrate",
            |a, g| {
                g.maxconnrate = Some(one_u32(a, "rate")?);
                Ok(())
            },
            doc!(
                Parsed,
                "maxconnrate <n>",
                "Process-wide maximum of accepted connections per second; beyond it the workers stop accepting until the next second (set rate-limit connections global changes it).",
                "maxconnrate 5000"
            ),
        ),
        gkw(
            "maxsessrate",
            |a, g| {
                g.maxsessrate = Some(one_u32(a, "rate")?);
                Ok(())
            },
            doc!(
                Parsed,
                "maxsessrate <n>",
                "Process-wide maximum of new sessions per second, counted when a connection is accepted (set rate-limit sessions global changes it).",
                "maxsessrate 5000"
            ),
        ),
        gkw(
            "maxsslconn",
            |a, g| {
                g.maxsslconn = Some(one_u32(a, "connection count")?);
                Ok(())
            },
            doc!(Parsed, "maxsslconn <n>", "Process-wide maximum of concurrent TLS connections.", "maxsslconn 20000"),
        ),
        gkw(
            "quiet",
            |a, g| {
                a.at_most(0)?;
                g.quiet = true;
                Ok(())
            },
            doc!(Parsed, "quiet", "Prints nothing at start-up (same as -q).", "quiet"),
        ),
        gkw(
            "zero-warning",
            |a, g| {
                a.at_most(0)?;
                g.zero_warning = true;
                Ok(())
            },
            doc!(Implemented, "zero-warning", "Treats every configuration warning as fatal (same as -dW).", "zero-warning"),
        ),
        gkw(
            "setenv",
            |a, g| env_op(a, g, "setenv", 2),
            doc!(
                Parsed,
                "setenv <name> <value>",
                "Sets an environment variable for the lines after it (${NAME} expansion, .if conditions), in this file and the next ones. The process's own environment is left as it was: sluiced runs no programs that would inherit it.",
                "setenv LISTEN 127.0.0.1:8080"
            ),
        ),
        gkw(
            "presetenv",
            |a, g| env_op(a, g, "presetenv", 2),
            doc!(
                Parsed,
                "presetenv <name> <value>",
                "Sets an environment variable, as setenv does, unless it is already set: a default the environment may override.",
                "presetenv DC eu-1"
            ),
        ),
        gkw(
            "unsetenv",
            |a, g| env_op(a, g, "unsetenv", 1),
            doc!(Parsed, "unsetenv <name> ...", "Removes environment variables for the lines after it.", "unsetenv DEBUG"),
        ),
        gkw(
            "resetenv",
            |a, g| env_op(a, g, "resetenv", 0),
            doc!(Parsed, "resetenv [<name> ...]", "Removes every environment variable but the ones named, for the lines after it.", "resetenv PATH HOME"),
        ),
        gkw(
            "expose-experimental-directives",
            |a, _| a.at_most(0),
            doc!(
                Parsed,
                "expose-experimental-directives",
                "Accepted for compatibility; sluiced has no experimental directives.",
                "expose-experimental-directives"
            ),
        ),
        gkw(
            "insecure-fork-wanted",
            |a, _| a.at_most(0),
            doc!(Parsed, "insecure-fork-wanted", "Accepted for compatibility; sluiced never forks helpers.", "insecure-fork-wanted"),
        ),
        gkw_neg(
            "strict-limits",
            |a, g| {
                a.at_most(0)?;
                g.strict_limits = Some(!a.negated);
                Ok(())
            },
            doc!(
                Implemented,
                "[no] strict-limits",
                "Fails start-up when the descriptor limit that ulimit-n or the global maxconn needs cannot be set. On by default, as in HAProxy since 2.6; 'no strict-limits' makes it a warning.",
                "no strict-limits"
            ),
        ),
        gkw(
            "nbproc",
            |_, _| Err("'nbproc' was removed in HAProxy 2.5; use 'nbthread'".into()),
            doc!(Parsed, "nbproc <n>", "Removed (HAProxy 2.5); rejected with a hint to use nbthread.", "nbthread 4"),
        ),
    ]
}

fn env_op(a: &mut KwArgs<'_>, g: &mut Global, op: &str, nargs: usize) -> Result<(), String> {
    let args: Vec<String> = a.args().iter().map(|w| w.text.clone()).collect();
    match op {
        "setenv" | "presetenv" if args.len() != 2 => return Err(format!("'{op}' expects a name and a value")),
        "unsetenv" if args.is_empty() => return Err("'unsetenv' expects at least one name".into()),
        _ => {}
    }
    let _ = nargs;
    g.env_ops.push((op.to_owned(), args));
    Ok(())
}

/// The keywords of `userlist` and `http-errors` sections, for the docs (the parser handles them).
pub fn doc_tables() -> Vec<DocTable> {
    vec![
        DocTable {
            title: "userlist",
            entries: vec![
                (
                    "group".into(),
                    None,
                    doc!(Implemented, "group <name> [users <user>[,<user>...]]", "Declares a group of users.", "group admins users alice,bob"),
                ),
                (
                    "user".into(),
                    None,
                    doc!(
                        Implemented,
                        "user <name> [password <hash>|insecure-password <text>] [groups <group>,...]",
                        "Declares a user with a crypt(3) hash or a clear password.",
                        "user alice password $6$salt$hash groups admins"
                    ),
                ),
            ],
        },
        DocTable {
            title: "http-errors",
            entries: vec![(
                "errorfile".into(),
                None,
                doc!(
                    Implemented,
                    "errorfile <status> <file>",
                    "Raw HTTP response sent for this status by proxies using the section.",
                    "errorfile 503 /etc/sluiced/errors/503.http"
                ),
            )],
        },
    ]
}

/// True when `a` names a concrete IP, not a wildcard or a name.
pub fn is_ip(a: &Address) -> bool {
    matches!(&a.kind, AddrKind::Inet { host: Host::Ip(_), .. })
}

/// The fixed port of an address, if it has one.
pub fn fixed_port(a: &Address) -> Option<u16> {
    match &a.kind {
        AddrKind::Inet { port: PortSpec::Fixed(p), .. } => Some(*p),
        _ => None,
    }
}

/// Parses `tune.bufsize`-style sizes for callers in other modules.
pub fn size_arg(a: &KwArgs<'_>) -> Result<u64, String> {
    parse_size(one(a, "size")?)
}
