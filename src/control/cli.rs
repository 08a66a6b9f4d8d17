//! The commands of the runtime API: parsing a line, checking the socket's level, and acting on the
//! shared server and backend state. Transport-free, so it is tested without a socket.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::config::StatsLevel;
use super::stats::{self, Format, ProcessInfo, StatFilter};
use super::{errors, sessions};
use crate::balance::state::{AdminState, ServerState};
use crate::route::{Backend, RouteTable};

/// What the commands act on, and what `show info` needs about the process.
pub struct Ctx {
    pub rt: Arc<RouteTable>,
    started: std::time::Instant,
    start_unix_secs: u64,
    /// The certificate transaction `set ssl cert` opened, until `commit` or `abort` (one at a
    /// time, process-wide, as in HAProxy). Only the stats thread touches it.
    pub(super) ssl_txn: std::sync::Mutex<Option<super::ssl::Transaction>>,
}

impl Ctx {
    pub fn new(rt: Arc<RouteTable>) -> Ctx {
        let start_unix_secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        Ctx { rt, started: std::time::Instant::now(), start_unix_secs, ssl_txn: std::sync::Mutex::new(None) }
    }

    fn process_info(&self) -> ProcessInfo {
        let start = std::time::UNIX_EPOCH + std::time::Duration::from_secs(self.start_unix_secs);
        let mut info = ProcessInfo::for_this_process(self.rt.process.nbthread.unwrap_or(1), start);
        info.uptime_secs = self.started.elapsed().as_secs();
        info
    }
}

/// `control::stats` ends its answers with HAProxy's empty line already; the socket adds it after
/// every answer, so one goes.
fn without_blank(mut s: String) -> String {
    if s.ends_with("\n\n") {
        s.pop();
    }
    s
}

/// What the connection does after a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Continue,
    /// `prompt` switched interactive mode on (`true`) or off.
    Interactive(bool),
    /// `set timeout cli <delay>`: this connection's idle timeout.
    Timeout(std::time::Duration),
    Quit,
}

/// Every command: usage as `help` prints it, what it does, and the level it needs.
pub const COMMANDS: &[(&str, &str, StatsLevel)] = &[
    ("help [<command>]", "list matching or all commands", StatsLevel::User),
    ("show resolvers [<section>]", "dump the counters of the resolvers' name servers", StatsLevel::User),
    ("show peers [dict] [<section>]", "dump the peers sections: each node, its session and the tables it shares", StatsLevel::User),
    ("prompt", "toggle interactive mode with prompt", StatsLevel::User),
    ("quit", "disconnect", StatsLevel::User),
    ("set timeout cli <delay>", "change this connection's idle timeout (seconds by default)", StatsLevel::User),
    ("show version", "show version of the current process", StatsLevel::User),
    ("show info [typed|json]", "report information about the running process", StatsLevel::User),
    ("show stat [typed|json] [<iid> <type> <sid>]", "report counters for each proxy and server", StatsLevel::User),
    ("show servers state [<backend>]", "dump volatile server information (all or for a single backend)", StatsLevel::User),
    ("show servers conn [<backend>]", "dump server connections status (all or for a single backend)", StatsLevel::User),
    ("show backend", "list backends in the current running config", StatsLevel::User),
    ("show env [var]", "dump environment variables known to the process", StatsLevel::User),
    ("show activity", "show per-thread activity stats (for support/developers)", StatsLevel::User),
    ("show sess [<id>|all|help]", "report the list of current sessions or dump this exact session", StatsLevel::Operator),
    ("show errors [<px>] [request|response]", "report last request and/or response errors for each proxy", StatsLevel::Operator),
    ("show acl [<acl>]", "report available acls or dump an acl's contents", StatsLevel::User),
    ("show map [<map>]", "report available maps or dump a map's contents", StatsLevel::User),
    ("get acl <acl> <value>", "report the patterns matching a sample for an ACL", StatsLevel::User),
    ("get map <map> <value>", "report the keys and values matching a sample for a map", StatsLevel::User),
    ("show ssl cert [[*]<certfile>]", "display the SSL certificates used in memory, or the details of a file", StatsLevel::User),
    ("set ssl cert <certfile> <payload>", "replace a certificate file (opens a transaction)", StatsLevel::Admin),
    ("commit ssl cert <certfile>", "commit a certificate file", StatsLevel::Admin),
    ("abort ssl cert <certfile>", "abort a transaction for a certificate file", StatsLevel::Admin),
    ("get weight <bk>/<srv>", "report a server's current weight", StatsLevel::User),
    ("show table [<table> [data.<type> <op> <v>]*|[key <key>]]", "report table usage stats or dump this table's contents", StatsLevel::User),
    ("clear table <table> [data.<type> <op> <v>]*|[key <key>]", "remove entries from a stick table", StatsLevel::Operator),
    ("set table <table> key <key> [data.<type> <v>]*", "update or create a table entry's data", StatsLevel::Operator),
    ("clear counters [all]", "clear max statistics counters (or all counters)", StatsLevel::Operator),
    ("disable server <bk>/<srv>", "disable a server for maintenance (use 'set server' instead)", StatsLevel::Admin),
    ("enable server <bk>/<srv>", "enable a disabled server (use 'set server' instead)", StatsLevel::Admin),
    ("set server <bk>/<srv> state|weight|health|agent|addr|...", "change a server's state, weight, address or check status", StatsLevel::Admin),
    ("set weight <bk>/<srv> (<w>|<w>%)", "change a server's weight (use 'set server' instead)", StatsLevel::Admin),
    ("disable health <bk>/<srv>", "disable health checks on a server", StatsLevel::Admin),
    ("enable health <bk>/<srv>", "enable health checks on a server", StatsLevel::Admin),
    ("disable agent <bk>/<srv>", "disable agent checks on a server", StatsLevel::Admin),
    ("enable agent <bk>/<srv>", "enable agent checks on a server", StatsLevel::Admin),
    ("disable frontend <frontend>", "temporarily disable specific frontend", StatsLevel::Admin),
    ("enable frontend <frontend>", "re-enable specific frontend", StatsLevel::Admin),
    ("set maxconn server <bk>/<srv> <n>", "change a server's maxconn setting", StatsLevel::Admin),
    ("set maxconn frontend <frontend> <n>", "change a frontend's maxconn setting", StatsLevel::Admin),
    ("set maxconn global <n>", "change the per-process maxconn setting", StatsLevel::Admin),
    ("set rate-limit <setting> <value>", "change a rate limiting value", StatsLevel::Admin),
    ("add acl <acl> <pattern>", "add an acl entry", StatsLevel::Admin),
    ("add map <map> <key> <value>", "add a map entry", StatsLevel::Admin),
    ("clear acl <acl>", "clear the contents of this acl", StatsLevel::Admin),
    ("clear map <map>", "clear the contents of this map", StatsLevel::Admin),
    ("del acl <acl> [<key>|#<ref>]", "delete acl entries matching <key>", StatsLevel::Admin),
    ("del map <map> [<key>|#<ref>]", "delete map entries matching <key>", StatsLevel::Admin),
    ("set map <map> [<key>|#<ref>] <value>", "modify a map entry", StatsLevel::Admin),
    ("add server <bk>/<srv> [args]*", "add a bare server in a backend", StatsLevel::Admin),
    ("del server <bk>/<srv>", "remove a server", StatsLevel::Admin),
    ("shutdown session <id>", "kill a specific session", StatsLevel::Admin),
    ("shutdown sessions server <bk>/<srv>", "kill sessions on a server", StatsLevel::Admin),
];

/// The command keywords (first words of each usage) that name a command, with its level.
fn level_of(words: &[&str]) -> Option<StatsLevel> {
    let w = |i: usize| words.get(i).copied().unwrap_or("");
    Some(match (w(0), w(1)) {
        ("help" | "prompt" | "quit", _) => StatsLevel::User,
        ("set", "timeout") => StatsLevel::User,
        ("show", "version" | "info" | "stat" | "servers" | "backend" | "env" | "activity" | "acl" | "map" | "resolvers" | "peers") => StatsLevel::User,
        ("show", "sess" | "errors") => StatsLevel::Operator,
        ("get", "weight") => StatsLevel::User,
        ("show", "ssl") if w(2) == "cert" => StatsLevel::User,
        ("set" | "commit" | "abort", "ssl") if w(2) == "cert" => StatsLevel::Admin,
        ("show", "table") => StatsLevel::User,
        ("clear", "table") => StatsLevel::Operator,
        ("set", "table") => StatsLevel::Operator,
        ("clear", "counters") if w(2) == "all" => StatsLevel::Admin,
        ("clear", "counters") => StatsLevel::Operator,
        ("enable" | "disable", "server" | "health" | "agent" | "frontend") => StatsLevel::Admin,
        ("get", "map" | "acl") => StatsLevel::User,
        ("set", "server" | "weight" | "maxconn" | "rate-limit") => StatsLevel::Admin,
        ("add" | "del" | "set" | "clear", "map" | "acl") => StatsLevel::Admin,
        ("add" | "del", "server") => StatsLevel::Admin,
        ("shutdown", "session" | "sessions") => StatsLevel::Admin,
        _ => return None,
    })
}

/// The help text: one `  usage : description` line per command the level may run.
pub fn help(level: StatsLevel, filter: &[&str]) -> String {
    let mut out = String::new();
    for (usage, desc, need) in COMMANDS {
        if *need > level {
            continue;
        }
        if !filter.is_empty() && !filter.iter().zip(usage.split_whitespace()).all(|(f, u)| u.starts_with(f)) {
            continue;
        }
        let _ = writeln!(out, "  {usage:<40}: {desc}");
    }
    out
}

/// Splits a line into commands at unescaped `;`, and a command into words at spaces (`\` escapes
/// the next character, as in HAProxy).
pub fn split_commands(line: &str) -> Vec<Vec<String>> {
    let mut cmds = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                    in_word = true;
                }
            }
            ';' => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
                cmds.push(std::mem::take(&mut words));
            }
            c if c.is_ascii_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    cmds.push(words);
    cmds.retain(|c| !c.is_empty());
    cmds
}

/// Runs every command of `line`; returns the output (each answer followed by an empty line) and
/// what the connection does next. `payload`: the lines that followed a line ending with `<<`,
/// given to the last command of the line (as HAProxy does).
pub fn run_line(ctx: &Ctx, level: StatsLevel, line: &str, payload: Option<&str>, interactive: bool) -> (String, Outcome) {
    let mut out = String::new();
    let mut outcome = Outcome::Continue;
    let mut interactive_now = interactive;
    let cmds = split_commands(line);
    if cmds.is_empty() && interactive {
        return (String::new(), Outcome::Continue);
    }
    let last = cmds.len().saturating_sub(1);
    for (i, words) in cmds.into_iter().enumerate() {
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        match words.as_slice() {
            ["quit", ..] => return (out, Outcome::Quit),
            ["prompt", ..] => {
                interactive_now = !interactive_now;
                outcome = Outcome::Interactive(interactive_now);
                continue;
            }
            ["set", "timeout", "cli", d] => {
                match crate::config::units::parse_time_unit(d, "s") {
                    Ok(t) if !t.is_zero() => outcome = Outcome::Timeout(t),
                    _ => out.push_str("Expects an integer value.\n"),
                }
                out.push('\n');
                continue;
            }
            ["set", "timeout", ..] => {
                out.push_str("'set timeout' only supports 'cli'.\n\n");
                continue;
            }
            _ => {}
        }
        out.push_str(&run_with_payload(ctx, level, &words, payload.filter(|_| i == last)));
        out.push('\n');
    }
    (out, outcome)
}

/// Runs one command; the answer without its trailing empty line.
pub fn run(ctx: &Ctx, level: StatsLevel, words: &[&str]) -> String {
    run_with_payload(ctx, level, words, None)
}

/// Runs one command with its payload (`<<`), if any; the answer without its trailing empty line.
pub fn run_with_payload(ctx: &Ctx, level: StatsLevel, words: &[&str], payload: Option<&str>) -> String {
    let Some(need) = level_of(words) else {
        return format!("Unknown command: '{}', but maybe one of the following ones is a better match:\n{}", words.join(" "), help(level, &[]));
    };
    if need > level {
        return "Permission denied\n".into();
    }
    match exec(ctx, level, words, payload) {
        Ok(s) | Err(s) => s,
    }
}

fn exec(ctx: &Ctx, level: StatsLevel, words: &[&str], payload: Option<&str>) -> Result<String, String> {
    let rt = &ctx.rt;
    Ok(match words {
        ["help", rest @ ..] => help(level, rest),
        ["show", "version", ..] => format!("{}.0-sluiced-{}\n", crate::build::HAPROXY_COMPAT_VERSION, crate::build::VERSION),
        ["show", "info", rest @ ..] => without_blank(stats::show_info(rt, &ctx.process_info(), format_of(rest))),
        ["show", "stat", rest @ ..] => {
            let format = format_of(rest);
            let nums: Vec<&&str> = rest.iter().filter(|w| !matches!(**w, "typed" | "json" | "desc" | "up" | "no-maint")).collect();
            let mut filter = StatFilter::default();
            if let [iid, ty, sid] = nums.as_slice() {
                let n = |s: &str| s.parse::<i64>().map_err(|_| "Invalid numeric arguments: expects <iid> <type> <sid>.\n".to_string());
                let (iid, ty, sid) = (n(iid)?, n(ty)?, n(sid)?);
                filter = StatFilter { iid: (iid >= 0).then_some(iid), types: (ty >= 0).then_some(ty as u32), sid: (sid >= 0).then_some(sid) };
            }
            without_blank(stats::show_stat(rt, format, filter))
        }
        ["show", "servers", "state", rest @ ..] => {
            if let Some(b) = rest.first()
                && !rt.backends.iter().any(|be| be.name == *b)
            {
                return Err("Can't find backend.\n".into());
            }
            without_blank(stats::show_servers_state(rt, rest.first().copied()))
        }
        ["show", "servers", "conn", rest @ ..] => show_servers_conn(rt, rest.first().copied())?,
        ["show", "resolvers", rest @ ..] => crate::dns::show(rest.first().copied())?,
        ["show", "peers", rest @ ..] => crate::peers::show(rest.iter().copied().find(|w| *w != "dict"))?,
        ["show", "ssl", "cert", rest @ ..] => super::ssl::show_cert(rt, &ctx.ssl_txn, rest.first().copied())?,
        ["set", "ssl", "cert", rest @ ..] => super::ssl::set_cert(rt, &ctx.ssl_txn, rest.first().copied(), payload)?,
        ["commit", "ssl", "cert", rest @ ..] => super::ssl::commit_cert(rt, &ctx.ssl_txn, rest.first().copied())?,
        ["abort", "ssl", "cert", rest @ ..] => super::ssl::abort_cert(&ctx.ssl_txn, rest.first().copied())?,
        ["show", "backend", ..] => {
            let mut out = String::from("# name\n");
            for b in &rt.backends {
                let _ = writeln!(out, "{}", b.name);
            }
            out
        }
        ["show", "env"] => std::env::vars_os().map(|(k, v)| format!("{}={}\n", k.to_string_lossy(), v.to_string_lossy())).collect(),
        ["show", "env", name, ..] => match std::env::var_os(name) {
            Some(v) => format!("{name}={}\n", v.to_string_lossy()),
            None => return Err("Variable not found\n".into()),
        },
        ["show", "activity", ..] => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            let conns: u64 = rt.backends.iter().map(|b| b.state.total_conns()).sum();
            format!(
                "thread_id: 0 (1..{})\ndate_now: {}.{:06}\nuptime_now: {}.{:06}\nctr0: {conns} (connections to servers)\n",
                rt.process.nbthread.unwrap_or(1),
                now.as_secs(),
                now.subsec_micros(),
                ctx.started.elapsed().as_secs(),
                ctx.started.elapsed().subsec_micros()
            )
        }
        ["show", "sess", rest @ ..] => sessions::show_sess(sessions::registry(), rt, rest)?,
        ["shutdown", "session", rest @ ..] => sessions::shutdown_session(sessions::registry(), rest.first().copied())?,
        ["shutdown", "sessions", "server", target, ..] => {
            let (be, s) = server(rt, target)?;
            let be_idx = rt.backends.iter().position(|b| std::ptr::eq(b, be)).unwrap_or_default();
            let srv_idx = be.state.servers.indexed().find(|(_, x)| Arc::ptr_eq(x, s)).map(|(i, _)| i).unwrap_or_default();
            sessions::shutdown_server_sessions(sessions::registry(), be_idx, srv_idx)
        }
        ["shutdown", "sessions", ..] => return Err("Require 'backend/server'.\n".into()),
        ["show", "errors", rest @ ..] => errors::store().show(rt, rest)?,
        ["show" | "get" | "add" | "del" | "set" | "clear", kind @ ("map" | "acl"), rest @ ..] => super::maps::run(rt, words[0], kind, rest)?,
        ["add", "server", rest @ ..] => super::servers::add_server(rt, rest)?,
        ["del", "server", rest @ ..] => super::servers::del_server(rt, rest)?,
        ["show", "table", rest @ ..] => super::table::show(rt, rest)?,
        ["clear", "table", rest @ ..] => super::table::clear(rt, rest)?,
        ["set", "table", rest @ ..] => super::table::set(rt, rest)?,
        ["get", "weight", target, ..] => {
            let (_, s) = server(rt, target)?;
            format!("{} (initial {})\n", s.weight(), s.initial_weight)
        }
        ["get", "weight"] => return Err("Require 'backend/server'.\n".into()),
        ["clear", "counters", "all"] => {
            for fe in &rt.frontends {
                fe.counters.clear();
            }
            for b in &rt.backends {
                b.counters.clear();
                b.state.clear_counts();
                for s in &b.state.servers {
                    s.clear_counts();
                }
            }
            String::new()
        }
        // Without `all`, only the maxima go back to the current values.
        ["clear", "counters", ..] => {
            for c in rt.frontends.iter().map(|f| &f.counters).chain(rt.backends.iter().map(|b| &b.counters)) {
                c.clear_max();
            }
            String::new()
        }
        ["disable", "server", target, ..] => set_admin(rt, target, AdminState::Maint)?,
        ["enable", "server", target, ..] => set_admin(rt, target, AdminState::Ready)?,
        ["disable" | "enable", "server"] => return Err("Require 'backend/server'.\n".into()),
        ["set", "weight", target, w, ..] => set_weight(rt, target, w)?,
        ["set", "weight", ..] => return Err("Require 'backend/server' and 'weight' or 'weight%'.\n".into()),
        ["set", "server", target, rest @ ..] => set_server(rt, target, rest)?,
        ["set", "server"] => return Err("Require 'backend/server'.\n".into()),
        ["enable" | "disable", what @ ("health" | "agent"), target, ..] => toggle_check(rt, target, what, words[0] == "disable")?,
        ["disable" | "enable", "frontend", name, ..] => {
            let Some(fe) = rt.frontends.iter().find(|f| f.name == *name) else {
                return Err("No such frontend.\n".into());
            };
            fe.paused.store(words[0] == "disable", Ordering::Relaxed);
            String::new()
        }
        ["disable" | "enable", "frontend"] => return Err("A frontend name is expected.\n".into()),
        ["set", "maxconn", "server", target, n, ..] => {
            let (_, s) = server(rt, target)?;
            let n: u32 = n.parse().map_err(|_| "Invalid maxconn value.\n".to_string())?;
            s.maxconn.store(n, Ordering::Relaxed);
            String::new()
        }
        ["set", "maxconn", "frontend", rest @ ..] => super::limits::set_maxconn_frontend(rt, rest.first().copied(), rest.get(1).copied())?,
        ["set", "maxconn", "global", rest @ ..] => super::limits::set_maxconn_global(rt, rest.first().copied())?,
        ["set", "rate-limit", rest @ ..] => super::limits::set_rate_limit(rt, rest)?,
        ["set", "maxconn", ..] => return Err("'set maxconn' only supports 'frontend', 'server', and 'global'.\n".into()),
        _ => format!("Unknown command: '{}', but maybe one of the following ones is a better match:\n{}", words.join(" "), help(level, &words[..1])),
    })
}

/// `enable|disable health|agent <bk>/<srv>`.
pub(crate) fn toggle_check(rt: &RouteTable, target: &str, what: &str, off: bool) -> Result<String, String> {
    let (be, s) = server(rt, target)?;
    if what == "health" {
        s.check_disabled.store(off, Ordering::Relaxed);
        if off {
            // HAProxy: the last result is ignored and the server counts as up.
            s.set_up(true);
            s.set_nolb(false);
        }
    } else {
        s.agent_disabled.store(off, Ordering::Relaxed);
        if off {
            s.set_agent_down(false);
        }
    }
    be.state.state_changed();
    Ok(String::new())
}

fn format_of(args: &[&str]) -> Format {
    if args.contains(&"json") {
        Format::Json
    } else if args.contains(&"typed") {
        Format::Typed
    } else {
        Format::Csv
    }
}

/// `<backend>/<server>` to the backend and the server, with HAProxy's error texts.
fn server<'a>(rt: &'a RouteTable, target: &str) -> Result<(&'a Backend, &'a Arc<ServerState>), String> {
    let Some((b, s)) = target.split_once('/') else {
        return Err("Require 'backend/server'.\n".into());
    };
    let Some(be) = rt.backends.iter().find(|x| x.name == b) else {
        return Err("No such backend.\n".into());
    };
    let Some(srv) = be.state.servers.iter().find(|x| x.name == s) else {
        return Err("No such server.\n".into());
    };
    Ok((be, srv))
}

fn set_admin(rt: &RouteTable, target: &str, st: AdminState) -> Result<String, String> {
    let (be, s) = server(rt, target)?;
    s.set_admin(st);
    be.state.state_changed();
    Ok(String::new())
}

/// `<w>` (0..=256) or `<w>%` of the initial weight.
pub fn parse_weight(w: &str, initial: u32) -> Result<u32, String> {
    let (num, pct) = match w.strip_suffix('%') {
        Some(n) => (n, true),
        None => (w, false),
    };
    let n: u32 = num.parse().map_err(|_| "Require <weight> or <weight%>.\n".to_string())?;
    let v = if pct { (u64::from(initial) * u64::from(n) / 100) as u32 } else { n };
    if v > 256 {
        return Err("Absolute weight can only be between 0 and 256 inclusive.\n".into());
    }
    Ok(v)
}

fn set_weight(rt: &RouteTable, target: &str, w: &str) -> Result<String, String> {
    let (be, s) = server(rt, target)?;
    let v = parse_weight(w, s.initial_weight)?;
    s.weight.store(v, Ordering::Relaxed);
    be.state.state_changed();
    Ok(String::new())
}

pub(crate) fn set_server(rt: &RouteTable, target: &str, rest: &[&str]) -> Result<String, String> {
    let (be, s) = server(rt, target)?;
    match rest {
        ["state", st, ..] => {
            let st = match *st {
                "ready" => AdminState::Ready,
                "drain" => AdminState::Drain,
                "maint" => AdminState::Maint,
                _ => return Err("'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n".into()),
            };
            s.set_admin(st);
        }
        ["weight", w, ..] => return set_weight(rt, target, w),
        ["health", h, ..] => match *h {
            "up" => {
                s.set_up(true);
                s.set_nolb(false);
            }
            "stopping" => {
                s.set_up(true);
                s.set_nolb(true);
            }
            "down" => s.set_up(false),
            _ => return Err("'set server <srv> health' expects 'up', 'stopping', or 'down'.\n".into()),
        },
        ["agent", a, ..] => match *a {
            "up" => s.set_agent_down(false),
            "down" => s.set_agent_down(true),
            _ => return Err("'set server <srv> agent' expects 'up' or 'down'.\n".into()),
        },
        ["addr", rest @ ..] => return super::servers::set_addr(s, &be.state, rest),
        ["maxconn", n, ..] => {
            let n: u32 = n.parse().map_err(|_| "Invalid maxconn value.\n".to_string())?;
            s.maxconn.store(n, Ordering::Relaxed);
        }
        _ => return Err("usage: set server <backend>/<server> state|weight|health|agent|maxconn <value>\n".into()),
    }
    be.state.state_changed();
    Ok(String::new())
}

/// `show servers conn`: HAProxy's header and one line per server; idle pools are per worker and
/// not counted here, so their columns are 0.
fn show_servers_conn(rt: &RouteTable, backend: Option<&str>) -> Result<String, String> {
    if let Some(b) = backend
        && !rt.backends.iter().any(|be| be.name == b)
    {
        return Err("Can't find backend.\n".into());
    }
    let mut out =
        String::from("# bkname/svname bkid/svid addr port - purge_delay used_cur used_max need_est unsafe_nb safe_nb idle_lim idle_cur idle_per_thr[]\n");
    for be in rt.backends.iter().filter(|b| backend.is_none_or(|n| n == b.name)) {
        for s in &be.state.servers {
            let (addr, port) = match &**s.addr() {
                crate::balance::state::ServerAddr::Inet(a) => (a.ip().to_string(), a.port().to_string()),
                crate::balance::state::ServerAddr::InetSamePort(ip) | crate::balance::state::ServerAddr::InetOffset(ip, _) => (ip.to_string(), "0".into()),
                crate::balance::state::ServerAddr::Unix(p) => (p.display().to_string(), "0".into()),
                crate::balance::state::ServerAddr::Unresolved => ("-".into(), "0".into()),
            };
            let cur = s.cur_conns.load(Ordering::Relaxed);
            let _ = writeln!(out, "{}/{} {}/{} {addr} {port} - 0 {cur} {cur} 0 0 0 -1 0 ()", be.name, s.name, be.id, s.id);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Ctx {
        let text = "defaults\n    mode tcp\nfrontend f\n    bind :8080\n    default_backend be\nbackend be\n    server s1 127.0.0.1:1 weight 20\n    server s2 127.0.0.1:2\n";
        Ctx::new(Arc::new(RouteTable::compile(&crate::config::testing::ok(text)).unwrap()))
    }

    #[test]
    fn lines_split_at_unescaped_semicolons() {
        assert_eq!(split_commands("show info; show stat"), vec![vec!["show", "info"], vec!["show", "stat"]]);
        assert_eq!(split_commands("set map m a\\;b c ;; "), vec![vec!["set", "map", "m", "a;b", "c"]]);
        assert!(split_commands("  ").is_empty());
    }

    #[test]
    fn levels_follow_haproxy() {
        assert_eq!(level_of(&["show", "stat"]), Some(StatsLevel::User));
        assert_eq!(level_of(&["clear", "counters"]), Some(StatsLevel::Operator));
        assert_eq!(level_of(&["clear", "counters", "all"]), Some(StatsLevel::Admin));
        assert_eq!(level_of(&["set", "weight", "b/s", "1"]), Some(StatsLevel::Admin));
        assert_eq!(level_of(&["show", "sess"]), Some(StatsLevel::Operator));
        assert_eq!(level_of(&["show", "errors"]), Some(StatsLevel::Operator));
        assert_eq!(level_of(&["shutdown", "session", "0x1"]), Some(StatsLevel::Admin));
        assert_eq!(level_of(&["shutdown", "sessions", "server", "b/s"]), Some(StatsLevel::Admin));
        assert_eq!(level_of(&["frob"]), None);
        let c = ctx();
        assert_eq!(run(&c, StatsLevel::Operator, &["disable", "server", "be/s1"]), "Permission denied\n");
        assert_eq!(run(&c, StatsLevel::Operator, &["clear", "counters"]), "");
        assert!(run(&c, StatsLevel::User, &["frob"]).starts_with("Unknown command: 'frob'"));
    }

    #[test]
    fn weights_absolute_and_relative() {
        assert_eq!(parse_weight("7", 20), Ok(7));
        assert_eq!(parse_weight("50%", 20), Ok(10));
        assert!(parse_weight("257", 1).is_err());
        assert!(parse_weight("x", 1).is_err());
        let c = ctx();
        let (out, outcome) = run_line(&c, StatsLevel::Admin, "set weight be/s1 50%; get weight be/s1; get weight be/nope", None, false);
        assert_eq!(out, "\n10 (initial 20)\n\nNo such server.\n\n");
        assert_eq!(outcome, Outcome::Continue);
    }

    #[test]
    fn server_states_change_the_shared_state() {
        let c = ctx();
        let s = c.rt.backends[0].state.servers[1].clone();
        run(&c, StatsLevel::Admin, &["set", "server", "be/s2", "state", "drain"]);
        assert_eq!(s.admin(), AdminState::Drain);
        run(&c, StatsLevel::Admin, &["disable", "server", "be/s2"]);
        assert_eq!(s.admin(), AdminState::Maint);
        run(&c, StatsLevel::Admin, &["set", "server", "be/s2", "health", "down"]);
        assert!(!s.is_up());
        run(&c, StatsLevel::Admin, &["set", "server", "be/s2", "agent", "down"]);
        assert!(s.is_agent_down());
        run(&c, StatsLevel::Admin, &["disable", "health", "be/s2"]);
        assert!(s.check_disabled.load(Ordering::Relaxed));
        run(&c, StatsLevel::Admin, &["disable", "agent", "be/s2"]);
        assert!(s.is_up() && !s.is_agent_down());
        run(&c, StatsLevel::Admin, &["enable", "health", "be/s2"]);
        assert!(!s.check_disabled.load(Ordering::Relaxed));
        run(&c, StatsLevel::Admin, &["set", "maxconn", "server", "be/s2", "5"]);
        assert_eq!(s.maxconn.load(Ordering::Relaxed), 5);
        run(&c, StatsLevel::Admin, &["disable", "frontend", "f"]);
        assert!(c.rt.frontends[0].paused.load(Ordering::Relaxed));
    }

    #[test]
    fn prompt_and_quit() {
        let c = ctx();
        assert_eq!(run_line(&c, StatsLevel::User, "prompt", None, false), (String::new(), Outcome::Interactive(true)));
        assert_eq!(run_line(&c, StatsLevel::User, "prompt", None, true).1, Outcome::Interactive(false));
        assert_eq!(run_line(&c, StatsLevel::User, "show backend; quit; show backend", None, true), ("# name\nbe\n\n".into(), Outcome::Quit));
    }
}
