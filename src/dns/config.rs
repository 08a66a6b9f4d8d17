//! The `resolvers` section: the name servers a server's host name is resolved with at run time,
//! and how often and how patiently. Parsed here into [`Resolvers`]; the run-time side is
//! [`super::spawn`].

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::config::diag::{Diags, Span};
use crate::config::lex::Line;
use crate::config::model::Config;
use crate::config::registry::{Doc, DocTable, Status};
use crate::config::units::parse_time;

/// The section HAProxy declares by itself from `/etc/resolv.conf` when a server names it and the
/// configuration does not.
pub const DEFAULT_SECTION: &str = "default";

/// How long the last good answer is kept when resolutions fail, by how they fail (`hold`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    pub nx: Duration,
    pub other: Duration,
    pub refused: Duration,
    pub timeout: Duration,
    pub valid: Duration,
    /// How long an address that left the answers is still handed out.
    pub obsolete: Duration,
}

impl Default for Hold {
    /// HAProxy's: 10s for `valid`, 0 for `obsolete`, 30s for the others.
    fn default() -> Hold {
        let s30 = Duration::from_secs(30);
        Hold { nx: s30, other: s30, refused: s30, timeout: s30, valid: Duration::from_secs(10), obsolete: Duration::ZERO }
    }
}

/// One `nameserver` line (or one taken from `resolv.conf`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nameserver {
    pub id: String,
    pub addr: SocketAddr,
}

/// A `resolvers <name>` section.
#[derive(Clone, Debug)]
pub struct Resolvers {
    pub name: String,
    pub span: Span,
    pub nameservers: Vec<Nameserver>,
    /// Queries sent for one resolution before it fails with a timeout (`resolve_retries`).
    pub resolve_retries: u32,
    /// Time between two resolutions of a name (`timeout resolve`).
    pub timeout_resolve: Duration,
    /// Time to wait for an answer before sending the query again (`timeout retry`).
    pub timeout_retry: Duration,
    pub hold: Hold,
    /// The largest answer accepted, announced to the name servers with EDNS0 above 512.
    pub accepted_payload_size: u16,
}

impl Resolvers {
    pub fn new(name: &str, span: Span) -> Resolvers {
        Resolvers {
            name: name.to_owned(),
            span,
            nameservers: Vec::new(),
            resolve_retries: 3,
            timeout_resolve: Duration::from_secs(1),
            timeout_retry: Duration::from_secs(1),
            hold: Hold::default(),
            accepted_payload_size: 512,
        }
    }
}

/// Reads a nameserver's address: `[udp@|udp4@|udp6@]<ip>[:<port>]`, port 53 by default, an IPv6
/// address alone or in brackets with a port.
pub fn nameserver_addr(text: &str) -> Result<SocketAddr, String> {
    let bare = ["udp@", "udp4@", "udp6@", "ipv4@", "ipv6@"].iter().find_map(|p| text.strip_prefix(p)).unwrap_or(text);
    if bare.starts_with("tcp") && bare.contains('@') {
        return Err(format!("'{text}': name servers over TCP are not supported yet by sluiced (use UDP)"));
    }
    if let Ok(sa) = bare.parse::<SocketAddr>() {
        return Ok(sa);
    }
    // As in HAProxy, the port follows the last colon, also for an IPv6 address written without
    // brackets (`::1:5353`).
    if let Some((ip, port)) = bare.rsplit_once(':')
        && let (Ok(ip), Ok(port)) = (ip.parse::<IpAddr>(), port.parse::<u16>())
    {
        return Ok(SocketAddr::new(ip, port));
    }
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    Err(format!("'{text}' is not an IP address with an optional port (host names are not supported for name servers)"))
}

/// The `nameserver` lines of a `resolv.conf` text.
pub fn from_resolv_conf(text: &str) -> Vec<Nameserver> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == "nameserver").then_some(())?;
            let a = w.next()?;
            // A scoped IPv6 address (`fe80::1%eth0`) cannot be written in a SocketAddr: skipped.
            let ip = a.parse::<IpAddr>().ok()?;
            Some(Nameserver { id: a.to_owned(), addr: SocketAddr::new(ip, 53) })
        })
        .collect()
}

fn read_resolv_conf() -> Result<Vec<Nameserver>, String> {
    let text = std::fs::read_to_string("/etc/resolv.conf").map_err(|e| format!("cannot read /etc/resolv.conf: {e}"))?;
    Ok(from_resolv_conf(&text))
}

/// One line of a `resolvers` section.
pub fn section_line(r: &mut Resolvers, line: &Line, diags: &mut Diags) {
    let w: Vec<&str> = line.words.iter().map(|w| w.text.as_str()).collect();
    let span = &line.span;
    let Some(&kw) = w.first() else { return };
    let time = |v: &str, what: &str, diags: &mut Diags| match parse_time(v) {
        Ok(d) => Some(d),
        Err(e) => {
            diags.alert(Some(span), Some(kw), format!("{what}: {e}"));
            None
        }
    };
    match w.as_slice() {
        ["nameserver", id, addr] => match nameserver_addr(addr) {
            Ok(_) if r.nameservers.iter().any(|n| n.id == *id) => {
                diags.alert(Some(span), Some(kw), format!("nameserver '{id}' is declared twice in resolvers section '{}'", r.name));
            }
            Ok(a) => r.nameservers.push(Nameserver { id: (*id).to_owned(), addr: a }),
            Err(e) => diags.alert(Some(span), Some(kw), e),
        },
        ["nameserver", ..] => diags.alert(Some(span), Some(kw), "expects 'nameserver <id> <ip>[:<port>]'"),
        ["parse-resolv-conf"] => match read_resolv_conf() {
            Ok(list) => {
                if list.is_empty() {
                    diags.warning(Some(span), Some(kw), "/etc/resolv.conf lists no usable name server");
                }
                for n in list {
                    if !r.nameservers.iter().any(|m| m.addr == n.addr) {
                        r.nameservers.push(n);
                    }
                }
            }
            Err(e) => diags.alert(Some(span), Some(kw), e),
        },
        ["resolve_retries", n] => match n.parse::<u32>() {
            Ok(n) if n >= 1 => r.resolve_retries = n,
            _ => diags.alert(Some(span), Some(kw), format!("expects a number of queries of at least 1, not '{n}'")),
        },
        ["timeout", which @ ("resolve" | "retry"), v] => {
            if let Some(d) = time(v, &format!("timeout {which}"), diags) {
                if d.is_zero() {
                    diags.alert(Some(span), Some(kw), format!("timeout {which} must be greater than 0"));
                } else if *which == "resolve" {
                    r.timeout_resolve = d;
                } else {
                    r.timeout_retry = d;
                }
            }
        }
        ["timeout", ..] => diags.alert(Some(span), Some(kw), "expects 'timeout resolve|retry <time>'"),
        ["hold", status, v] => {
            let slot = match *status {
                "nx" => &mut r.hold.nx,
                "other" => &mut r.hold.other,
                "refused" => &mut r.hold.refused,
                "timeout" => &mut r.hold.timeout,
                "valid" => &mut r.hold.valid,
                "obsolete" => &mut r.hold.obsolete,
                _ => {
                    return diags.alert(
                        Some(span),
                        Some(kw),
                        format!("unknown status '{status}' (expected nx, other, refused, timeout, valid or obsolete)"),
                    );
                }
            };
            if let Some(d) = time(v, &format!("hold {status}"), diags) {
                *slot = d;
            }
        }
        ["hold", ..] => diags.alert(Some(span), Some(kw), "expects 'hold <status> <time>'"),
        ["accepted_payload_size", n] => match n.parse::<u16>() {
            Ok(n) if n >= 512 => r.accepted_payload_size = n,
            _ => diags.alert(Some(span), Some(kw), format!("expects a size between 512 and 65535, not '{n}'")),
        },
        // Gone from HAProxy since 1.9 (resolutions are allocated as needed); accepted as it is.
        ["resolution_pool_size", _] => {}
        _ => diags.alert(
            Some(span),
            Some(kw),
            format!(
                "unknown keyword '{kw}' in 'resolvers' section (expected nameserver, parse-resolv-conf, resolve_retries, timeout, hold or accepted_payload_size), or wrong arguments"
            ),
        ),
    }
}

/// Checks the sections and the servers that name them. A server naming `default` when no such
/// section is declared gets HAProxy's implicit one, read from `/etc/resolv.conf`.
pub fn validate(cfg: &mut Config, diags: &mut Diags) {
    let mut seen = std::collections::HashSet::new();
    for r in &cfg.resolvers {
        if !seen.insert(r.name.clone()) {
            diags.alert(Some(&r.span), Some("resolvers"), format!("resolvers section '{}' is declared twice", r.name));
        }
        if r.nameservers.is_empty() {
            diags.alert(Some(&r.span), Some("resolvers"), format!("resolvers section '{}' has no nameserver", r.name));
        }
    }
    let mut implicit = None;
    for p in &cfg.proxies {
        for s in &p.servers {
            let Some(name) = s.opts.resolvers.as_deref() else { continue };
            if cfg.resolvers.iter().any(|r| r.name == name) {
                continue;
            }
            if name == DEFAULT_SECTION {
                implicit.get_or_insert_with(|| s.span.clone());
            } else {
                let hint = crate::config::diag::did_you_mean(name, cfg.resolvers.iter().map(|r| r.name.as_str()))
                    .map(|s| format!("; did you mean '{s}' maybe ?"))
                    .unwrap_or_default();
                diags.alert(
                    Some(&s.span),
                    Some("server"),
                    format!("unable to find resolvers section '{name}' referenced by server '{}/{}'{hint}", p.name, s.name),
                );
            }
        }
    }
    if let Some(span) = implicit {
        let mut r = Resolvers::new(DEFAULT_SECTION, span.clone());
        match read_resolv_conf() {
            Ok(list) if !list.is_empty() => r.nameservers = list,
            Ok(_) => diags.alert(Some(&span), Some("server"), "resolvers section 'default' is not declared and /etc/resolv.conf lists no name server"),
            Err(e) => diags.alert(Some(&span), Some("server"), format!("resolvers section 'default' is not declared and {e}")),
        }
        cfg.resolvers.push(r);
    }
}

/// `resolve-net <net>[,...]`: the networks whose addresses a server prefers among the answers.
pub fn parse_nets(text: &str) -> Result<Vec<(IpAddr, u8)>, String> {
    text.split(',')
        .map(|n| {
            let (ip, len) = n.split_once('/').ok_or_else(|| format!("'{n}' is not a network (<ip>/<prefix>)"))?;
            let ip: IpAddr = ip.parse().map_err(|_| format!("'{ip}' is not an IP address"))?;
            let len: u8 = len.parse().map_err(|_| format!("'{len}' is not a prefix length"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            if len > max {
                return Err(format!("prefix length {len} is longer than {max}"));
            }
            Ok((ip, len))
        })
        .collect()
}

/// Whether `ip` is in network `net`/`len`.
pub fn in_net(ip: IpAddr, (net, len): (IpAddr, u8)) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len)) };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

macro_rules! kw {
    ($name:literal, $syntax:literal, $desc:literal, $example:literal) => {
        ($name.to_string(), None, Doc { syntax: $syntax, desc: $desc, example: $example, status: Status::Implemented })
    };
}

/// The keywords of the `resolvers` section, for `docs/configuration.md`.
pub fn doc_tables() -> Vec<DocTable> {
    vec![DocTable {
        title: "resolvers section",
        entries: vec![
            kw!(
                "nameserver",
                "nameserver <id> [udp@]<ip>[:<port>]",
                "A name server to query (UDP, port 53 by default). Every query goes to all of them; the first valid answer is used.",
                "nameserver dns1 10.0.0.53:53"
            ),
            kw!(
                "parse-resolv-conf",
                "parse-resolv-conf",
                "Adds the `nameserver` lines of `/etc/resolv.conf`, read when the configuration is loaded.",
                "parse-resolv-conf"
            ),
            kw!("resolve_retries", "resolve_retries <n>", "Queries sent for one resolution before it fails with a timeout (default 3).", "resolve_retries 3"),
            kw!(
                "timeout",
                "timeout resolve|retry <time>",
                "`resolve`: time between two resolutions of a name (default 1s). `retry`: time to wait for an answer before querying again (default 1s).",
                "timeout resolve 5s"
            ),
            kw!(
                "hold",
                "hold nx|other|refused|timeout|valid|obsolete <time>",
                "How long a server keeps its last address while resolutions fail with that status before it goes into maintenance (default 30s); `obsolete`: how long an address that left the answers is still used (default 0); `valid` is accepted (default 10s).",
                "hold nx 10s"
            ),
            kw!(
                "accepted_payload_size",
                "accepted_payload_size <512..65535>",
                "The largest answer accepted; above 512 it is announced to the name servers with EDNS0 (default 512).",
                "accepted_payload_size 4096"
            ),
            (
                "resolution_pool_size".to_string(),
                None,
                Doc {
                    syntax: "resolution_pool_size <n>",
                    desc: "Accepted for old configurations; it has no effect (as in HAProxy since 1.9).",
                    example: "resolution_pool_size 64",
                    status: Status::Ignored,
                },
            ),
        ],
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameserver_addresses_take_haproxys_forms() {
        assert_eq!(nameserver_addr("10.0.0.1").unwrap(), "10.0.0.1:53".parse().unwrap());
        assert_eq!(nameserver_addr("udp@10.0.0.1:5353").unwrap(), "10.0.0.1:5353".parse().unwrap());
        assert_eq!(nameserver_addr("[::1]:5353").unwrap(), "[::1]:5353".parse().unwrap());
        assert_eq!(nameserver_addr("::1").unwrap(), "[::1]:53".parse().unwrap());
        assert_eq!(nameserver_addr("ipv6@::1:5353").unwrap(), "[::1]:5353".parse().unwrap());
        assert!(nameserver_addr("tcp@10.0.0.1:53").unwrap_err().contains("TCP"));
        assert!(nameserver_addr("dns.example:53").is_err());
    }

    #[test]
    fn resolv_conf_gives_its_nameserver_lines() {
        let l = from_resolv_conf("# comment\nsearch example.com\nnameserver 10.0.0.2\nnameserver ::1\nnameserver fe80::1%eth0\noptions ndots:2\n");
        assert_eq!(
            l,
            vec![
                Nameserver { id: "10.0.0.2".into(), addr: "10.0.0.2:53".parse().unwrap() },
                Nameserver { id: "::1".into(), addr: "[::1]:53".parse().unwrap() }
            ]
        );
    }

    #[test]
    fn networks_match_by_prefix() {
        let nets = parse_nets("10.1.0.0/16,fd00::/8").unwrap();
        assert!(in_net("10.1.2.3".parse().unwrap(), nets[0]));
        assert!(!in_net("10.2.2.3".parse().unwrap(), nets[0]));
        assert!(in_net("fd12::1".parse().unwrap(), nets[1]));
        assert!(!in_net("10.1.2.3".parse().unwrap(), nets[1]));
        assert!(parse_nets("10.0.0.0/33").is_err());
        assert!(parse_nets("10.0.0.0").is_err());
    }
}
