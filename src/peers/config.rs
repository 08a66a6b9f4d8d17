//! The `peers` section: the nodes a stick table is replicated with. Parsed here into
//! [`PeersSection`]; [`plan`] finds this node in each section (by the local peer name: `-L`,
//! `localpeer`, else the host name) when the routing table is built, and the run-time side is
//! [`super::spawn`].

use std::net::{SocketAddr, ToSocketAddrs};

use crate::config::diag::{Diags, Span};
use crate::config::lex::Line;
use crate::config::model::Config;
use crate::config::registry::{Doc, DocTable, Status};

/// One `peer` (or `server`) line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerDecl {
    pub name: String,
    /// `None` for a `server` line without an address (this node, whose address is `bind`'s).
    pub addr: Option<SocketAddr>,
    pub span: Span,
}

/// A `table <name> ...` line: a stick table declared in the section, named `<section>/<name>`
/// by the rules and the stats socket, and `/<name>` between peers (as HAProxy names it).
#[derive(Clone, Debug)]
pub struct PeerTable {
    pub name: String,
    pub full: String,
    pub table: crate::stick::config::StickTable,
}

/// A `peers <name>` section.
#[derive(Clone, Debug)]
pub struct PeersSection {
    pub name: String,
    pub span: Span,
    pub peers: Vec<PeerDecl>,
    pub tables: Vec<PeerTable>,
    /// `bind <addr>:<port>`: where this node listens (the newer form, with `server` lines).
    pub bind: Option<(SocketAddr, Span)>,
    pub disabled: bool,
}

impl PeersSection {
    pub fn new(name: &str, span: Span) -> PeersSection {
        PeersSection { name: name.to_owned(), span, peers: Vec::new(), tables: Vec::new(), bind: None, disabled: false }
    }
}

/// Reads `<host>:<port>` (an IP address, `[v6]:port`, or a host name resolved now).
fn peer_addr(text: &str) -> Result<SocketAddr, String> {
    let bare = ["ipv4@", "ipv6@", "tcp@", "tcp4@", "tcp6@"].iter().find_map(|p| text.strip_prefix(p)).unwrap_or(text);
    if let Ok(sa) = bare.parse::<SocketAddr>() {
        return if sa.port() == 0 { Err(format!("'{text}': port 0 is not a peer's port")) } else { Ok(sa) };
    }
    let Some((host, port)) = bare.rsplit_once(':') else { return Err(format!("'{text}': missing port (expected <address>:<port>)")) };
    let port: u16 = port.parse().map_err(|_| format!("'{text}': invalid port '{port}'"))?;
    if port == 0 {
        return Err(format!("'{text}': port 0 is not a peer's port"));
    }
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    (host, port).to_socket_addrs().ok().and_then(|mut a| a.next()).ok_or_else(|| format!("'{text}': cannot resolve host name '{host}'"))
}

/// One line of a `peers` section.
pub fn section_line(s: &mut PeersSection, line: &Line, diags: &mut Diags) {
    let w: Vec<&str> = line.words.iter().map(|w| w.text.as_str()).collect();
    let span = &line.span;
    let Some(&kw) = w.first() else { return };
    let mut add = |name: &str, addr: Option<&str>, diags: &mut Diags| {
        if let Err(e) = crate::config::core_kw::check_name(kw, name) {
            return diags.alert(Some(span), Some(kw), e);
        }
        if s.peers.iter().any(|p| p.name == name) {
            return diags.alert(Some(span), Some(kw), format!("peer '{name}' is declared twice in peers section '{}'", s.name));
        }
        let addr = match addr.map(peer_addr) {
            None => None,
            Some(Ok(a)) => Some(a),
            Some(Err(e)) => return diags.alert(Some(span), Some(kw), e),
        };
        s.peers.push(PeerDecl { name: name.to_owned(), addr, span: span.clone() });
    };
    match w.as_slice() {
        ["peer", name, addr, rest @ ..] => {
            add(name, Some(addr), diags);
            peer_options(rest, span, kw, diags);
        }
        ["peer", ..] => diags.alert(Some(span), Some(kw), "expects 'peer <name> <address>:<port>'"),
        ["server", name] => add(name, None, diags),
        ["server", name, addr, rest @ ..] => {
            add(name, Some(addr), diags);
            peer_options(rest, span, kw, diags);
        }
        ["server", ..] => diags.alert(Some(span), Some(kw), "expects 'server <name> [<address>:<port>]'"),
        ["bind", addr, ..] => match peer_addr(addr) {
            Ok(_) if s.bind.is_some() => diags.alert(Some(span), Some(kw), format!("peers section '{}' has a second 'bind' line", s.name)),
            Ok(a) => s.bind = Some((a, span.clone())),
            Err(e) => diags.alert(Some(span), Some(kw), e),
        },
        ["bind"] => diags.alert(Some(span), Some(kw), "expects 'bind <address>:<port>'"),
        ["disabled"] => s.disabled = true,
        ["enabled"] => s.disabled = false,
        // Accepted as HAProxy does; they change nothing here (no TLS between peers yet, no
        // sharding, no logs of the peers' own sessions).
        ["default-bind", ..] | ["default-server", ..] | ["log", ..] | ["shards", _] => {}
        ["table", name, rest @ ..] => {
            if let Err(e) = crate::config::core_kw::check_name(kw, name) {
                return diags.alert(Some(span), Some(kw), e);
            }
            if s.tables.iter().any(|t| t.name == *name) {
                return diags.alert(Some(span), Some(kw), format!("table '{name}' is declared twice in peers section '{}'", s.name));
            }
            if rest.contains(&"peers") {
                return diags.alert(Some(span), Some(kw), "a table of a peers section is replicated with that section: 'peers' is not allowed here");
            }
            match crate::stick::config::parse_table(rest, span) {
                Ok((mut table, _)) => {
                    table.peers = Some(s.name.clone());
                    s.tables.push(PeerTable { name: (*name).to_owned(), full: format!("{}/{name}", s.name), table });
                }
                Err(e) => diags.alert(Some(span), Some(kw), e),
            }
        }
        ["table"] => diags.alert(Some(span), Some(kw), "expects 'table <name> type <type> size <size> [expire <time>] [store <types>]'"),
        _ => diags.alert(
            Some(span),
            Some(kw),
            format!(
                "unknown keyword '{kw}' in 'peers' section (expected peer, server, table, bind, disabled, enabled, default-bind, default-server, log or shards)"
            ),
        ),
    }
}

/// Options after a peer's address: `shard <n>` is accepted (sharding is not done); TLS options
/// are refused (peers speak clear TCP here).
fn peer_options(rest: &[&str], span: &Span, kw: &str, diags: &mut Diags) {
    let mut i = 0;
    while i < rest.len() {
        match rest[i] {
            "shard" if i + 1 < rest.len() => i += 2,
            "ssl" | "crt" | "ca-file" | "verify" => {
                return diags.alert(Some(span), Some(kw), format!("'{}': TLS between peers is not supported yet by sluiced", rest[i]));
            }
            other => return diags.alert(Some(span), Some(kw), format!("unknown option '{other}' after the peer's address (expected shard)")),
        }
    }
}

/// Checks the sections: unique names, and peers with addresses.
pub fn validate(cfg: &Config, diags: &mut Diags) {
    let mut seen = std::collections::HashSet::new();
    for s in &cfg.peers {
        if !seen.insert(s.name.as_str()) {
            diags.alert(Some(&s.span), Some("peers"), format!("peers section '{}' is declared twice", s.name));
        }
        if s.peers.is_empty() {
            diags.warning(Some(&s.span), Some("peers"), format!("peers section '{}' has no peer: its tables are not replicated", s.name));
        }
        let mut addrs = std::collections::HashSet::new();
        for p in &s.peers {
            if let Some(a) = p.addr
                && !addrs.insert(a)
            {
                diags.alert(Some(&p.span), Some("peer"), format!("peer '{}' has the address of another peer of section '{}' ({a})", p.name, s.name));
            }
        }
    }
}

/// A section as this node runs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectionPlan {
    pub name: String,
    /// This node's name in the section.
    pub local: String,
    /// Where this node listens for its peers.
    pub listen: SocketAddr,
    /// The other nodes.
    pub remotes: Vec<(String, SocketAddr)>,
    /// The tables replicated with the section: (the table's name, its name between peers). A
    /// backend's table has one name; a `table` of the section is `<section>/<name>` here and
    /// `/<name>` between peers, as HAProxy sends it.
    pub tables: Vec<(String, String)>,
}

/// This node's name in peers sections: `-L` (put in `localpeer` by the command line), else
/// `localpeer`, else the host name.
pub fn local_name(cfg: &Config) -> String {
    cfg.global.localpeer.clone().unwrap_or_else(|| nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "localhost".into()))
}

/// Finds this node in each section. A section without this node, or without an address to
/// listen on, is left out with a warning, as HAProxy removes an incomplete section; the tables
/// naming it are then not replicated.
pub fn plan(cfg: &Config, diags: &mut Diags) -> Vec<SectionPlan> {
    let local = local_name(cfg);
    let mut out = Vec::new();
    for s in &cfg.peers {
        if s.disabled {
            continue;
        }
        let tables: Vec<(String, String)> = cfg
            .proxies
            .iter()
            .filter(|p| p.stick.table.as_ref().is_some_and(|t| t.peers.as_deref() == Some(s.name.as_str())))
            .map(|p| (p.name.clone(), p.name.clone()))
            // HAProxy names such a table between peers with what follows the section's name,
            // slash included: `/<name>`.
            .chain(s.tables.iter().map(|t| (t.full.clone(), format!("/{}", t.name))))
            .collect();
        let Some(me) = s.peers.iter().find(|p| p.name == local) else {
            diags.warning(
                Some(&s.span),
                Some("peers"),
                format!(
                    "Removing incomplete section 'peers {}' (no peer named '{local}'; set the local peer name with -L or 'localpeer'): its tables are not replicated",
                    s.name
                ),
            );
            continue;
        };
        let Some(listen) = me.addr.or(s.bind.as_ref().map(|b| b.0)) else {
            diags.warning(
                Some(&me.span),
                Some("peers"),
                format!("Removing incomplete section 'peers {}' (local peer '{local}' has no address and the section no 'bind')", s.name),
            );
            continue;
        };
        let remotes = s.peers.iter().filter(|p| p.name != local).filter_map(|p| Some((p.name.clone(), p.addr?))).collect();
        out.push(SectionPlan { name: s.name.clone(), local: local.clone(), listen, remotes, tables });
    }
    out
}

macro_rules! kw {
    ($name:literal, $syntax:literal, $desc:literal, $example:literal) => {
        ($name.to_string(), None, Doc { syntax: $syntax, desc: $desc, example: $example, status: Status::Implemented })
    };
    ($name:literal, $syntax:literal, $desc:literal, $example:literal, $status:expr) => {
        ($name.to_string(), None, Doc { syntax: $syntax, desc: $desc, example: $example, status: $status })
    };
}

/// The keywords of the `peers` section, for `docs/configuration.md`.
pub fn doc_tables() -> Vec<DocTable> {
    vec![DocTable {
        title: "peers section",
        entries: vec![
            kw!(
                "peer",
                "peer <name> <address>:<port> [shard <n>]",
                "A node of the section. The one named as this node (-L, `localpeer`, else the host name) is where this process listens for the others; each other one is connected to, and the tables naming the section are replicated with it over HAProxy's peers protocol (2.1), so HAProxy and sluiced nodes can be mixed. A section with only this node keeps the tables across a reload: the old process hands them to the new one.",
                "peer lb1 10.0.0.1:10000"
            ),
            kw!(
                "server",
                "server <name> [<address>:<port>]",
                "The newer form of `peer`: the line for this node may leave out the address, which `bind` then gives.",
                "server lb2 10.0.0.2:10000"
            ),
            kw!("bind", "bind <address>:<port>", "Where this node listens, with `server` lines.", "bind 10.0.0.1:10000"),
            kw!(
                "table",
                "table <name> type <type> [len <n>] size <n> [expire <time>] [nopurge] [store <types>]",
                "A stick table replicated with the section, as a backend's `stick-table` line declares one. Rules and the stats socket name it `<section>/<name>` (`track-sc0 src table mesh/per_ip`); between peers it is `/<name>`, as HAProxy names it.",
                "table per_ip type ip size 100k expire 10m store http_req_rate(10s)"
            ),
            kw!("disabled", "disabled", "Turns the section off: its tables are not replicated.", "disabled"),
            kw!("enabled", "enabled", "Turns the section on again (the default).", "enabled"),
            kw!(
                "default-bind",
                "default-bind <options>",
                "Accepted for HAProxy configurations; it has no effect (peers speak plain TCP here).",
                "default-bind v4v6",
                Status::Ignored
            ),
            kw!(
                "default-server",
                "default-server <options>",
                "Accepted for HAProxy configurations; it has no effect.",
                "default-server inter 2s",
                Status::Ignored
            ),
            kw!("log", "log <target> ...", "Accepted for HAProxy configurations; peer sessions are not logged.", "log 127.0.0.1 local0", Status::Ignored),
            kw!("shards", "shards <n>", "Accepted for HAProxy configurations; every entry goes to every peer.", "shards 3", Status::Ignored),
        ],
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_addresses_take_ips_brackets_and_prefixes() {
        assert_eq!(peer_addr("127.0.0.1:10000").unwrap(), "127.0.0.1:10000".parse().unwrap());
        assert_eq!(peer_addr("[::1]:10000").unwrap(), "[::1]:10000".parse().unwrap());
        assert_eq!(peer_addr("ipv4@10.0.0.1:1").unwrap(), "10.0.0.1:1".parse().unwrap());
        assert_eq!(peer_addr("localhost:10000").unwrap().port(), 10000);
        assert!(peer_addr("127.0.0.1").unwrap_err().contains("missing port"));
        assert!(peer_addr("127.0.0.1:0").is_err());
        assert!(peer_addr("127.0.0.1:x").is_err());
    }

    #[test]
    fn this_node_is_found_by_its_name_and_listens_on_its_address_or_bind() {
        use crate::config::testing::{alerts, ok};
        let be = "backend be\n    stick-table type ip size 10 peers p\nbackend other\n    stick-table type ip size 10\n";
        // The `peer` form: this node's line gives the address.
        let cfg = ok(&format!("global\n    localpeer a\npeers p\n    peer a 127.0.0.1:1000\n    peer b 127.0.0.2:1000\n{be}"));
        let mut d = Diags::default();
        let plans = plan(&cfg, &mut d);
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].listen, "127.0.0.1:1000".parse().unwrap());
        assert_eq!(plans[0].remotes, vec![("b".to_string(), "127.0.0.2:1000".parse().unwrap())]);
        assert_eq!(plans[0].tables, vec![("be".to_string(), "be".to_string())], "only the tables naming the section");
        assert_eq!(d.warnings().count(), 0);
        // The `bind` + `server` form, with a table of the section.
        let cfg = ok(&format!(
            "global\n    localpeer a\npeers p\n    bind 127.0.0.1:2000\n    server a\n    server b 127.0.0.2:2000\n    table t type ip size 10\n{be}"
        ));
        let plans = plan(&cfg, &mut Diags::default());
        assert_eq!(plans[0].listen, "127.0.0.1:2000".parse().unwrap());
        assert_eq!(plans[0].remotes.len(), 1);
        assert_eq!(plans[0].tables[1], ("p/t".to_string(), "/t".to_string()));
        // No line for this node, or no address for it: the section is left out with a warning.
        for text in ["peers p\n    peer z 127.0.0.1:1000\n", "peers p\n    server a\n"] {
            let cfg = ok(&format!("global\n    localpeer a\n{text}{be}"));
            let mut d = Diags::default();
            assert!(plan(&cfg, &mut d).is_empty());
            assert!(d.warnings().any(|w| w.msg.contains("Removing incomplete section 'peers p'")), "{text}");
        }
        // A disabled section is left out silently.
        let cfg = ok(&format!("global\n    localpeer a\npeers p\n    disabled\n    peer a 127.0.0.1:1000\n{be}"));
        assert!(plan(&cfg, &mut Diags::default()).is_empty());
        // Table lines: a second one of the same name, and `peers` in one, are refused.
        let a = alerts("peers p\n    peer a 127.0.0.1:1000\n    table t type ip size 10\n    table t type ip size 10\n    table u type ip size 1 peers p\n");
        assert!(a[0].contains("t.cfg:4") && a[0].contains("declared twice"), "{a:?}");
        assert!(a[1].contains("t.cfg:5") && a[1].contains("'peers' is not allowed here"), "{a:?}");
    }
}
