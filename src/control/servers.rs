//! Dynamic servers on the runtime API: `add server`, `del server` and `set server ... addr`, with
//! HAProxy 3.4's answers and error texts.
//!
//! A backend's server list is append-only with stable indices (`balance::ServerList`): an added
//! server takes the next slot and a fresh id, and starts in maintenance (HAProxy's dynamic servers
//! do) until `enable server`; its health and agent checks, when asked for, stay off until `enable
//! health` / `enable agent`. A deleted server keeps its slot as a tombstone that is never picked
//! and never listed. An address change swaps the server's address, which workers read per
//! connection, and bumps its connection epoch so that idle pooled connections to the old address
//! are closed, never reused.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::balance::{AdminState, ServerAddr, ServerState};
use crate::config::addr::{AddrKind, AddrRules, Host, parse_address};
use crate::config::model::ServerOpts;
use crate::config::registry::Registry;
use crate::route::RouteTable;

/// The `updater` HAProxy names in the answer of an address change made on the stats socket.
const UPDATER: &str = "stats socket command";

/// Server keywords `add server` takes: those sluiced acts on that make sense for a server added
/// at run time. The configuration knows more (`track`, `ssl`, `resolvers`, ...); those are
/// refused as HAProxy refuses the keywords it does not take for dynamic servers.
pub const RUNTIME_KEYWORDS: &[&str] = &[
    "addr",
    "agent-addr",
    "agent-check",
    "agent-inter",
    "agent-port",
    "agent-send",
    "backup",
    "check",
    "check-send-proxy",
    "cookie",
    "disabled",
    "downinter",
    "error-limit",
    "fall",
    "fastinter",
    "init-state",
    "inter",
    "maxconn",
    "maxqueue",
    "observe",
    "on-error",
    "on-marked-down",
    "on-marked-up",
    "pool-max-conn",
    "port",
    "rise",
    "send-proxy",
    "send-proxy-v2",
    "slowstart",
    "weight",
];

/// `add server help` (HAProxy 3.2+): the keywords a dynamic server takes, one per line.
pub fn add_server_help() -> String {
    let mut out = String::from("List of keywords supported for dynamic server:\n");
    for k in RUNTIME_KEYWORDS {
        out.push_str(k);
        out.push('\n');
    }
    out
}

/// `<backend>/<server>` split, or HAProxy's error.
fn target(words: &[&str]) -> Result<(String, String), String> {
    let Some((b, s)) = words.first().and_then(|t| t.split_once('/')) else {
        return Err("Require 'backend/server'.\n".into());
    };
    Ok((b.to_owned(), s.to_owned()))
}

/// `add server <backend>/<server> <addr>[:<port>] [kw]*`; `words` start after `add server`.
pub fn add_server(rt: &Arc<RouteTable>, words: &[&str]) -> Result<String, String> {
    if words == ["help"] {
        return Ok(add_server_help());
    }
    let (b, name) = target(words)?;
    let Some(bi) = rt.backends.iter().position(|x| x.name == b) else {
        return Err("No such backend.\n".into());
    };
    let be = &rt.backends[bi];
    if !be.dynamic_servers {
        return Err(format!("Backend does not support dynamic servers : backend '{}' uses a non dynamic load balancing method.\n", be.name));
    }
    let Some(addr_text) = words.get(1) else {
        return Err("'server' expects <name> and <addr>[:<port>] as arguments.\n".into());
    };
    crate::config::core_kw::check_name("server", &name).map_err(|e| format!("{e}.\n"))?;
    let addr = parse_server_addr(addr_text)?;
    let opts = parse_keywords(&words[2..])?;
    if be.state.servers.find(&name).is_some() {
        return Err("Already exists a server with the same name in backend.\n".into());
    }
    // A fresh id: past every id the backend has used, deleted servers' included.
    let id = be.state.servers.slots().map(|s| s.id).max().unwrap_or(0) + 1;
    let mut st = crate::route::server_state(&name, id, addr, &opts);
    st.dynamic = true;
    st.dynamic_check = opts.check.enabled.then(|| (opts.check.rise.unwrap_or(2), opts.check.fall.unwrap_or(3)));
    // HAProxy: checks of a dynamic server stay off until `enable health` / `enable agent`.
    st.check_disabled.store(opts.check.enabled, Ordering::Relaxed);
    st.agent_disabled.store(opts.check.agent.enabled, Ordering::Relaxed);
    st.killable.store(st.on_down_kill || st.backup, Ordering::Relaxed);
    // Dynamic servers start in maintenance, `disabled` or not.
    st.set_admin(AdminState::Maint);
    let st = Arc::new(st);
    if opts.check.enabled || opts.check.agent.enabled {
        crate::check::engine::add_server(rt, bi, &st, &opts).map_err(|e| format!("Cannot start the checks of the server: {e}.\n"))?;
    }
    be.state.add_server(st);
    Ok("New server registered.\n".into())
}

/// The address of `add server`: an IP address with an optional port (or port offset), or a
/// unix socket path. Host names are refused: sluiced resolves names only when it loads its
/// configuration.
fn parse_server_addr(text: &str) -> Result<ServerAddr, String> {
    let a = parse_address(text, AddrRules { listener: false, server: true }).map_err(|e| format!("{e}.\n"))?;
    if let AddrKind::Inet { host: Host::Name(n), .. } = &a.kind {
        return Err(format!("could not resolve address '{n}': host names are resolved only when the configuration is loaded.\n"));
    }
    crate::route::server_addr(&a, None).map_err(|e| format!("{e}.\n"))
}

/// The keywords after the address, through the configuration's server options, limited to
/// [`RUNTIME_KEYWORDS`]. Dynamic servers do not inherit `default-server`, as in HAProxy.
fn parse_keywords(words: &[&str]) -> Result<ServerOpts, String> {
    let reg = Registry::get();
    let mut opts = ServerOpts::default();
    let mut i = 0;
    while i < words.len() {
        let name = words[i];
        let Some(o) = reg.server_option(name) else {
            return Err(format!("unknown keyword '{name}'.\n"));
        };
        if !RUNTIME_KEYWORDS.contains(&name) {
            return Err(format!("'{name}' option is not accepted for dynamic server\n"));
        }
        let arg = if o.takes_arg {
            i += 1;
            Some(*words.get(i).ok_or_else(|| format!("'{name}' expects an argument.\n"))?)
        } else {
            None
        };
        (o.parse)(&mut opts, arg).map_err(|e| format!("'{name}' : {e}.\n"))?;
        i += 1;
    }
    Ok(opts)
}

/// `del server <backend>/<server>`; `words` start after `del server`.
pub fn del_server(rt: &RouteTable, words: &[&str]) -> Result<String, String> {
    let (b, name) = target(words)?;
    let Some(be) = rt.backends.iter().find(|x| x.name == b) else {
        return Err("No such backend.\n".into());
    };
    let Some((_, s)) = be.state.servers.find(&name) else {
        return Err("No such server.\n".into());
    };
    if s.referenced {
        return Err("This server cannot be removed at runtime due to other configuration elements pointing to it.\n".into());
    }
    if s.admin() != AdminState::Maint {
        return Err("Only servers in maintenance mode can be deleted.\n".into());
    }
    // Streams on it, or waiting for it. Idle pooled connections do not count: deleting closes
    // them (HAProxy purges them when the server goes to maintenance).
    if s.cur_conns.load(Ordering::Acquire) > 0 || s.queued.load(Ordering::Acquire) > 0 {
        return Err("Server still has connections attached to it, cannot remove it.\n".into());
    }
    s.mark_deleted();
    be.state.conn_changed();
    be.state.state_changed();
    Ok("Server deleted.\n".into())
}

/// `set server <backend>/<server> addr <ip> [port <port>]`: HAProxy's answer says what changed.
pub fn set_addr(s: &ServerState, be_state: &crate::balance::BackendState, rest: &[&str]) -> Result<String, String> {
    let Some(ip_text) = rest.first() else {
        return Err("set server <b>/<s> addr requires an address and optionally a port.\n".into());
    };
    let port_text = match rest.get(1..) {
        Some(["port", p, ..]) => Some(*p),
        _ => None,
    };
    let Ok(ip) = ip_text.parse::<std::net::IpAddr>() else {
        return Err(format!("Invalid addr '{ip_text}'\n"));
    };
    let old = s.addr();
    let (old_ip, old_port) = match &**old {
        ServerAddr::Inet(a) => (Some(a.ip()), Some(a.port())),
        ServerAddr::InetSamePort(ip) | ServerAddr::InetOffset(ip, _) => (Some(*ip), None),
        ServerAddr::Unresolved => (None, None),
        ServerAddr::Unix(_) => return Err("Update for the current server address family is only supported through configuration file\n".into()),
    };
    let new_port = match port_text {
        None => None,
        Some(p) => {
            let Ok(n) = p.parse::<u16>() else {
                return Err(format!("problem converting port '{p}' to an int\n"));
            };
            if matches!(**old, ServerAddr::InetSamePort(_) | ServerAddr::InetOffset(..)) {
                return Err("can't set a fixed port because the server uses port mapping\n".into());
            }
            Some(n)
        }
    };
    let mut msg = String::new();
    if old_ip == Some(ip) {
        msg.push_str("no need to change the addr");
    } else {
        let from = old_ip.map_or_else(|| "(none)".to_owned(), |i| i.to_string());
        msg.push_str(&format!("IP changed from '{from}' to '{ip}'"));
    }
    if let Some(p) = new_port {
        if old_port == Some(p) {
            msg.push_str(", no need to change the port");
        } else {
            let from = old_port.map_or_else(|| "(none)".to_owned(), |p| p.to_string());
            msg.push_str(&format!(", port changed from '{from}' to '{p}'"));
        }
    }
    let addr = match (&**old, new_port) {
        (ServerAddr::InetSamePort(_), _) => ServerAddr::InetSamePort(ip),
        (ServerAddr::InetOffset(_, off), _) => ServerAddr::InetOffset(ip, *off),
        (_, Some(p)) => ServerAddr::Inet(std::net::SocketAddr::new(ip, p)),
        // A server without an address yet and no port given: the port stays unknown, so the
        // client's destination port is used, as for a server line without a port.
        (ServerAddr::Unresolved, None) => ServerAddr::InetSamePort(ip),
        (_, None) => ServerAddr::Inet(std::net::SocketAddr::new(ip, old_port.unwrap_or(0))),
    };
    drop(old);
    if old_ip != Some(ip) || new_port.is_some_and(|p| old_port != Some(p)) {
        s.set_addr(addr);
        be_state.conn_changed();
    }
    // A server that had no address leaves its resolution maintenance, as in HAProxy.
    if s.set_resolution_maint(false) {
        be_state.state_changed();
    }
    msg.push_str(&format!(" by '{UPDATER}'\n"));
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::cli::{Ctx, run};
    use crate::control::config::StatsLevel;

    fn ctx(balance: &str) -> Ctx {
        let text = format!(
            "defaults\n    mode tcp\nbackend be\n    {balance}\n    server s1 127.0.0.1:1\n    server s2 127.0.0.1\n    server s3 127.0.0.1:+10\n    server u /tmp/sluiced-test.sock\n"
        );
        Ctx::new(Arc::new(RouteTable::compile(&crate::config::testing::ok(&text)).unwrap()))
    }

    fn cmd(c: &Ctx, line: &str) -> String {
        run(c, StatsLevel::Admin, &line.split(' ').collect::<Vec<_>>())
    }

    #[test]
    fn added_server_takes_the_next_slot_a_fresh_id_and_starts_in_maintenance() {
        let c = ctx("balance roundrobin");
        assert_eq!(cmd(&c, "add server be/n 127.0.0.1:9 weight 7 maxconn 3 maxqueue 2 backup send-proxy-v2 cookie k"), "New server registered.\n");
        let st = &c.rt.backends[0].state;
        let (i, s) = st.servers.find("n").unwrap();
        assert_eq!((i, s.id, s.weight(), s.maxconn.load(Ordering::Relaxed), s.maxqueue), (4, 5, 7, 3, 2));
        assert!(s.backup && s.dynamic && s.send_proxy == 2 && s.cookie.as_deref() == Some("k"));
        assert_eq!(s.admin(), AdminState::Maint);
        assert_eq!(run(&c, StatsLevel::Operator, &["add", "server", "be/m", "127.0.0.1:9"]), "Permission denied\n");
        assert_eq!(cmd(&c, "add server be/s1 127.0.0.1:9"), "Already exists a server with the same name in backend.\n");
        assert_eq!(cmd(&c, "add server be/n2 127.0.0.1:9 track s1"), "'track' option is not accepted for dynamic server\n");
    }

    #[test]
    fn deleted_server_frees_its_name_but_not_its_id() {
        let c = ctx("balance leastconn");
        assert_eq!(cmd(&c, "del server be/s1"), "Only servers in maintenance mode can be deleted.\n");
        c.rt.backends[0].state.servers[0].cur_conns.store(1, Ordering::Relaxed);
        assert_eq!(cmd(&c, "disable server be/s1"), "");
        assert_eq!(cmd(&c, "del server be/s1"), "Server still has connections attached to it, cannot remove it.\n");
        c.rt.backends[0].state.servers[0].cur_conns.store(0, Ordering::Relaxed);
        assert_eq!(cmd(&c, "del server be/s1"), "Server deleted.\n");
        assert_eq!(cmd(&c, "del server be/s1"), "No such server.\n");
        assert_eq!(cmd(&c, "add server be/s1 127.0.0.1:2"), "New server registered.\n");
        let (i, s) = c.rt.backends[0].state.servers.find("s1").unwrap();
        assert_eq!((i, s.id), (4, 5));
        assert!(c.rt.backends[0].state.servers[0].is_deleted());
    }

    #[test]
    fn address_changes_answer_what_changed() {
        let c = ctx("balance roundrobin");
        let s = c.rt.backends[0].state.servers[0].clone();
        let epoch = s.conn_epoch();
        assert_eq!(cmd(&c, "set server be/s1 addr 127.0.0.2"), "IP changed from '127.0.0.1' to '127.0.0.2' by 'stats socket command'\n");
        assert_eq!(**s.addr(), ServerAddr::Inet("127.0.0.2:1".parse().unwrap()));
        assert_ne!(s.conn_epoch(), epoch);
        let epoch = s.conn_epoch();
        assert_eq!(cmd(&c, "set server be/s1 addr 127.0.0.2 port 1"), "no need to change the addr, no need to change the port by 'stats socket command'\n");
        assert_eq!(s.conn_epoch(), epoch, "nothing changed, nothing is closed");
        assert_eq!(cmd(&c, "set server be/s2 addr 127.0.0.3"), "IP changed from '127.0.0.1' to '127.0.0.3' by 'stats socket command'\n");
        assert_eq!(**c.rt.backends[0].state.servers[1].addr(), ServerAddr::InetSamePort("127.0.0.3".parse().unwrap()));
        assert_eq!(cmd(&c, "set server be/s3 addr 127.0.0.3 port 80"), "can't set a fixed port because the server uses port mapping\n");
        assert_eq!(cmd(&c, "set server be/u addr 127.0.0.3"), "Update for the current server address family is only supported through configuration file\n");
    }

    #[test]
    fn map_based_hashing_refuses_dynamic_servers_consistent_hashing_takes_them() {
        let refused = "Backend does not support dynamic servers : backend 'be' uses a non dynamic load balancing method.\n";
        assert_eq!(cmd(&ctx("balance static-rr"), "add server be/n 127.0.0.1:9"), refused);
        assert_eq!(cmd(&ctx("balance source"), "add server be/n 127.0.0.1:9"), refused);
        assert_eq!(cmd(&ctx("balance first"), "add server be/n 127.0.0.1:9"), "New server registered.\n");
        assert_eq!(cmd(&ctx("balance random"), "add server be/n 127.0.0.1:9"), "New server registered.\n");
        let c = ctx("balance source\n    hash-type consistent");
        assert_eq!(cmd(&c, "add server be/n 127.0.0.1:9"), "New server registered.\n");
        // Once enabled, the ring places it.
        assert_eq!(cmd(&c, "enable server be/n"), "");
        let st = &c.rt.backends[0].state;
        let key = |i: u8| crate::balance::PickKey { src: Some(std::net::IpAddr::from([10, 0, 0, i])), hash: None };
        let picked: Vec<usize> = (0..=255)
            .filter_map(|i| match st.pick(&key(i), &[]) {
                crate::balance::Pick::Server(s) => {
                    st.release(s);
                    Some(s)
                }
                _ => None,
            })
            .collect();
        assert!(picked.contains(&4), "{picked:?}");
    }
}
