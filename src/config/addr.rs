//! Addresses as HAProxy writes them: `addr:port`, `:port`, `*:port`, `[v6]:port`, port ranges
//! `a:p1-p2`, port offsets `+N`/`-N` for servers, and the prefixed forms `ipv4@`, `ipv6@`, `unix@`,
//! `abns@`, `fd@N`, `sockpair@N`, `tcp@`/`udp@` families and `quic4@`/`quic6@`. A bare path is a unix
//! socket.

use std::net::{IpAddr, Ipv6Addr};
use std::path::PathBuf;

/// The transport an address asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Stream,
    Dgram,
    Quic,
}

/// Which family an inet address must resolve to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Any,
    V4,
    V6,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    /// No address or `*`: every local IPv4 address, as in HAProxy (`:::80` binds IPv6).
    Wildcard,
    Ip(IpAddr),
    /// A name resolved at start-up.
    Name(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortSpec {
    /// No port given (servers then use the client's destination port).
    None,
    Fixed(u16),
    /// `p1-p2`, inclusive, for `bind`.
    Range(u16, u16),
    /// `+N`/`-N` added to the client's destination port, for servers.
    Offset(i32),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddrKind {
    Inet {
        family: Family,
        host: Host,
        port: PortSpec,
    },
    Unix(PathBuf),
    /// Linux abstract namespace socket.
    Abns(String),
    /// An already listening socket inherited from the parent.
    Fd(i32),
    /// One end of a socketpair inherited from the parent.
    SockPair(i32),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    pub kind: AddrKind,
    pub transport: Transport,
    /// The text as written, for messages and `show` output.
    pub text: String,
}

/// What the place an address is written allows.
#[derive(Clone, Copy, Debug, Default)]
pub struct AddrRules {
    /// `bind`: port ranges, and a port is required for inet addresses.
    pub listener: bool,
    /// `server`: offsets, a missing port and host names are allowed.
    pub server: bool,
}

pub fn parse_address(text: &str, rules: AddrRules) -> Result<Address, String> {
    let (prefix, rest) = match text.find('@') {
        Some(i) if text[..i].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+') && i > 0 => (&text[..i], &text[i + 1..]),
        _ => ("", text),
    };
    let (family, transport) = match prefix {
        "" => (Family::Any, Transport::Stream),
        "ipv4" | "tcp4" => (Family::V4, Transport::Stream),
        "ipv6" | "tcp6" => (Family::V6, Transport::Stream),
        "tcp" | "stream+ipv4" => (Family::Any, Transport::Stream),
        "udp" => (Family::Any, Transport::Dgram),
        "udp4" => (Family::V4, Transport::Dgram),
        "udp6" => (Family::V6, Transport::Dgram),
        "quic4" => (Family::V4, Transport::Quic),
        "quic6" => (Family::V6, Transport::Quic),
        "unix" => {
            if rest.is_empty() {
                return Err(format!("missing path in address '{text}'"));
            }
            return Ok(Address { kind: AddrKind::Unix(PathBuf::from(rest)), transport: Transport::Stream, text: text.into() });
        }
        "abns" => {
            if rest.is_empty() {
                return Err(format!("missing name in address '{text}'"));
            }
            return Ok(Address { kind: AddrKind::Abns(rest.into()), transport: Transport::Stream, text: text.into() });
        }
        "fd" | "sockpair" => {
            let n: i32 = rest.parse().map_err(|_| format!("'{prefix}@' expects a file descriptor number, got '{rest}'"))?;
            if n < 0 {
                return Err(format!("'{prefix}@' expects a file descriptor number, got '{rest}'"));
            }
            let kind = if prefix == "fd" { AddrKind::Fd(n) } else { AddrKind::SockPair(n) };
            return Ok(Address { kind, transport: Transport::Stream, text: text.into() });
        }
        other => return Err(format!("unknown address family '{other}@' in '{text}'")),
    };
    if prefix.is_empty() && rest.starts_with('/') {
        return Ok(Address { kind: AddrKind::Unix(PathBuf::from(rest)), transport: Transport::Stream, text: text.into() });
    }
    if rest.is_empty() {
        return Err("missing address".into());
    }
    let (host_s, port_s) = split_host_port(rest).map_err(|e| format!("{e} in address '{text}'"))?;
    let port = parse_port(port_s, rules).map_err(|e| format!("{e} in address '{text}'"))?;
    if rules.listener && port == PortSpec::None && transport != Transport::Dgram {
        return Err(format!("missing port in address '{text}'"));
    }
    let host = match host_s {
        "" | "*" => Host::Wildcard,
        h => match h.parse::<IpAddr>() {
            // `0.0.0.0` and `::` stay addresses: they say which family's wildcard to bind.
            Ok(ip) => Host::Ip(ip),
            Err(_) => {
                if !valid_hostname(h) {
                    return Err(format!("invalid address '{h}' in '{text}'"));
                }
                Host::Name(h.into())
            }
        },
    };
    if let Host::Ip(ip) = &host {
        match (family, ip) {
            (Family::V4, IpAddr::V6(_)) => return Err(format!("'{text}' asks for IPv4 but gives an IPv6 address")),
            (Family::V6, IpAddr::V4(_)) => return Err(format!("'{text}' asks for IPv6 but gives an IPv4 address")),
            _ => {}
        }
    }
    Ok(Address { kind: AddrKind::Inet { family, host, port }, transport, text: text.into() })
}

/// Splits `host:port`. IPv6 may be bracketed (`[::1]:80`) or bare, in which case the last colon
/// separates the port, as HAProxy reads it (`::1:80` is `::1` port 80). A bare IPv6 address with no
/// port cannot be told apart, so a trailing group that is a valid IPv6 as a whole stays the address.
fn split_host_port(s: &str) -> Result<(&str, &str), String> {
    if let Some(inner) = s.strip_prefix('[') {
        let end = inner.find(']').ok_or("missing ']'")?;
        let host = &inner[..end];
        let after = &inner[end + 1..];
        return match after.strip_prefix(':') {
            Some(p) => Ok((host, p)),
            None if after.is_empty() => Ok((host, "")),
            None => Err(format!("unexpected '{after}' after ']'")),
        };
    }
    match s.rfind(':') {
        None => Ok((s, "")),
        Some(i) => {
            let (h, p) = (&s[..i], &s[i + 1..]);
            if h.contains(':') && s.parse::<Ipv6Addr>().is_ok() && p.parse::<u16>().is_err() {
                // A bare IPv6 address with no port.
                return Ok((s, ""));
            }
            Ok((h, p))
        }
    }
}

fn parse_port(p: &str, rules: AddrRules) -> Result<PortSpec, String> {
    if p.is_empty() {
        return Ok(PortSpec::None);
    }
    if let Some(off) = p.strip_prefix('+').or_else(|| p.strip_prefix('-').map(|_| p)) {
        if !rules.server {
            return Err(format!("port offset '{p}' is only allowed on servers"));
        }
        let v: i32 = off.parse().map_err(|_| format!("invalid port offset '{p}'"))?;
        if !(-65535..=65535).contains(&v) {
            return Err(format!("port offset '{p}' out of range"));
        }
        return Ok(PortSpec::Offset(v));
    }
    if let Some((a, b)) = p.split_once('-') {
        if !rules.listener {
            return Err(format!("port range '{p}' is only allowed on bind lines"));
        }
        let lo = port_num(a)?;
        let hi = port_num(b)?;
        if lo > hi || lo == 0 {
            return Err(format!("invalid port range '{p}'"));
        }
        return Ok(PortSpec::Range(lo, hi));
    }
    let v = port_num(p)?;
    if v == 0 && rules.server {
        return Err("port 0 is not a server port".into());
    }
    Ok(PortSpec::Fixed(v))
}

fn port_num(s: &str) -> Result<u16, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid port '{s}'"));
    }
    s.parse::<u16>().map_err(|_| format!("port '{s}' out of range (0-65535)"))
}

fn valid_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') && !l.starts_with('-'))
        // All-numeric dotted names are mistyped IPv4 addresses, not host names.
        && !h.split('.').all(|l| l.bytes().all(|b| b.is_ascii_digit()))
}

/// The address of a `source` keyword or server option (`10.0.0.2`, `10.0.0.2:4000`,
/// `[2001:db8::2]:4000`, `0.0.0.0`): what server connections are bound to before they connect,
/// port 0 when none is given (the kernel picks one). A port range (`10.0.0.2:1024-65535`) is
/// accepted and its first port is not used: the second value is a note that the kernel picks
/// the port, for the caller to warn with.
pub fn parse_source(text: &str) -> Result<(std::net::SocketAddr, Option<String>), String> {
    use std::net::{IpAddr, SocketAddr};
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok((SocketAddr::new(ip, 0), None));
    }
    if let Ok(sa) = text.parse::<SocketAddr>() {
        return Ok((sa, None));
    }
    let bad = || format!("'{text}' is not a source address (an IP address with an optional port)");
    let (host, ports) = text.rsplit_once(':').ok_or_else(bad)?;
    let (lo, hi) = ports.split_once('-').ok_or_else(bad)?;
    let (lo, hi) = (lo.parse::<u16>().map_err(|_| bad())?, hi.parse::<u16>().map_err(|_| bad())?);
    if lo == 0 || lo > hi {
        return Err(format!("'{text}': invalid port range"));
    }
    let ip = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().map_err(|_| bad())?;
    Ok((SocketAddr::new(ip, 0), Some(format!("the source port range {lo}-{hi} is not applied yet: the kernel picks each connection's port"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIND: AddrRules = AddrRules { listener: true, server: false };
    const SRV: AddrRules = AddrRules { listener: false, server: true };

    fn inet(a: &Address) -> (&Family, &Host, &PortSpec) {
        match &a.kind {
            AddrKind::Inet { family, host, port } => (family, host, port),
            k => panic!("not inet: {k:?}"),
        }
    }

    #[test]
    fn bind_forms() {
        let a = parse_address(":80", BIND).unwrap();
        assert_eq!(inet(&a), (&Family::Any, &Host::Wildcard, &PortSpec::Fixed(80)));
        let a = parse_address("*:8000-8010", BIND).unwrap();
        assert_eq!(inet(&a).2, &PortSpec::Range(8000, 8010));
        let a = parse_address("ipv6@[::1]:443", BIND).unwrap();
        assert_eq!(inet(&a).1, &Host::Ip("::1".parse().unwrap()));
        let a = parse_address("::1:443", BIND).unwrap();
        assert_eq!(inet(&a), (&Family::Any, &Host::Ip("::1".parse().unwrap()), &PortSpec::Fixed(443)));
        assert_eq!(parse_address("fd@3", BIND).unwrap().kind, AddrKind::Fd(3));
        assert_eq!(parse_address("unix@/run/s.sock", BIND).unwrap().kind, AddrKind::Unix("/run/s.sock".into()));
        assert_eq!(parse_address("/run/s.sock", BIND).unwrap().kind, AddrKind::Unix("/run/s.sock".into()));
        assert_eq!(parse_address("abns@x", BIND).unwrap().kind, AddrKind::Abns("x".into()));
        assert_eq!(parse_address("quic4@:443", BIND).unwrap().transport, Transport::Quic);
    }

    #[test]
    fn server_forms() {
        let a = parse_address("10.0.0.1", SRV).unwrap();
        assert_eq!(inet(&a).2, &PortSpec::None);
        let a = parse_address("10.0.0.1:+1000", SRV).unwrap();
        assert_eq!(inet(&a).2, &PortSpec::Offset(1000));
        let a = parse_address("db.internal:5432", SRV).unwrap();
        assert_eq!(inet(&a).1, &Host::Name("db.internal".into()));
    }

    #[test]
    fn bad_addresses_are_rejected() {
        for bad in ["", "10.0.0.1", ":99999", ":80-70", "1.2.3.4.5:80", "foo@bar", "fd@x", "ipv4@[::1]:80", ":+5", "bad host:80", "[::1:80"] {
            assert!(parse_address(bad, BIND).is_err(), "{bad} accepted");
        }
        assert!(parse_address("1.2.3.4:1-2", SRV).is_err());
    }

    #[test]
    fn source_addresses_take_an_optional_port_and_a_range_is_a_note() {
        assert_eq!(parse_source("10.0.0.2").unwrap(), ("10.0.0.2:0".parse().unwrap(), None));
        assert_eq!(parse_source("10.0.0.2:4000").unwrap().0, "10.0.0.2:4000".parse().unwrap());
        assert_eq!(parse_source("[2001:db8::2]:4000").unwrap().0, "[2001:db8::2]:4000".parse().unwrap());
        assert_eq!(parse_source("::").unwrap().0, "[::]:0".parse().unwrap());
        let (sa, note) = parse_source("10.0.0.2:1024-65535").unwrap();
        assert_eq!(sa, "10.0.0.2:0".parse().unwrap());
        assert!(note.unwrap().contains("1024-65535 is not applied yet"));
        assert!(parse_source("10.0.0.2:2000-1000").is_err());
        assert!(parse_source("example.com").unwrap_err().contains("is not a source address"));
    }
}
