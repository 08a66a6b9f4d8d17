//! `persist rdp-cookie[(<name>)]`: a Microsoft RDP client reconnecting to a farm sends, in its
//! connection request, the routing token its session broker gave it (`Cookie: msts=<ip>.<port>.0000`).
//! The token names the server by address: `<ip>` is the IPv4 address's four bytes read as a
//! little-endian integer and `<port>` the port's two bytes read the same way (3389 is 15629), as
//! Windows writes them. The server of the backend at that address and port gets the stream
//! without balancing, when it is usable (up and not in maintenance, or any with `option persist`),
//! as in HAProxy. The token is read from the request buffer, so the frontend needs a `tcp-request
//! inspect-delay` and a rule that waits for it (`tcp-request content accept if RDP_COOKIE`).

use std::net::{IpAddr, Ipv4Addr};

use crate::balance::{ServerAddr, ServerList};
use crate::config::model::Proxy;
use crate::route::fetch::{Rdp, rdp_cookie};

/// A backend's `persist rdp-cookie`.
#[derive(Debug)]
pub struct RdpPersist {
    /// The cookie holding the token (`msts` by default).
    name: String,
    /// `option persist`: a down server or one in maintenance is still used.
    persist: bool,
}

/// The address and port a routing token names: `None` when it is not `<int>.<int>.<rest>`.
pub fn token_target(token: &str) -> Option<(Ipv4Addr, u16)> {
    let mut parts = token.splitn(3, '.');
    let ip: u32 = parts.next()?.parse().ok()?;
    let port: u32 = parts.next()?.parse().ok()?;
    parts.next()?;
    let port = u16::try_from(port).ok()?;
    Some((Ipv4Addr::from(ip.to_le_bytes()), u16::from_be_bytes(port.to_le_bytes())))
}

impl RdpPersist {
    pub fn compile(p: &Proxy) -> Option<RdpPersist> {
        let name = p.balance.persist_rdp_cookie.clone()?;
        Some(RdpPersist { name, persist: p.options.persist.unwrap_or(false) })
    }

    /// The usable server the request buffer's routing token names.
    pub fn chosen(&self, buf: &[u8], servers: &ServerList) -> Option<usize> {
        let Rdp::Found(token) = rdp_cookie(buf, Some(&self.name)) else { return None };
        let (ip, port) = token_target(token)?;
        servers
            .indexed()
            .find(|(_, s)| matches!(**s.addr(), ServerAddr::Inet(a) if a.ip() == IpAddr::V4(ip) && a.port() == port) && s.takes_named(self.persist))
            .map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_routing_token_names_an_ipv4_address_and_port_in_little_endian() {
        // 10.0.0.172 and 3389, as Windows' session broker writes them.
        assert_eq!(token_target("2885681162.15629.0000"), Some((Ipv4Addr::new(10, 0, 0, 172), 3389)));
        assert_eq!(token_target("16777343.15629.0000"), Some((Ipv4Addr::new(127, 0, 0, 1), 3389)));
        assert_eq!(token_target("16777343.15629"), None, "the third part is required");
        assert_eq!(token_target("x.15629.0000"), None);
        assert_eq!(token_target("16777343.70000.0000"), None, "not a port");
    }

    fn request(cookie: &[u8]) -> Vec<u8> {
        let mut v = b"\x03\x00\x00\x2b\x26\xe0\x00\x00\x00\x00\x00".to_vec();
        v.extend_from_slice(cookie);
        v
    }

    #[test]
    fn the_cookie_is_read_as_haproxy_reads_it() {
        let r = request(b"Cookie: mstshash=alice\r\n\x01\x00");
        assert_eq!(rdp_cookie(&r, Some("mstshash")), Rdp::Found("alice"));
        assert_eq!(rdp_cookie(&r, Some("MSTSHASH")), Rdp::Found("alice"), "names compare without case");
        assert_eq!(rdp_cookie(&r, None), Rdp::Found("alice"), "no name: the first cookie");
        assert_eq!(rdp_cookie(&r, Some("msts")), Rdp::NotCookie);
        assert_eq!(rdp_cookie(&request(b"cookie:   msts=1.2.0000\r\n"), Some("msts")), Rdp::Found("1.2.0000"));
        assert_eq!(rdp_cookie(&request(b"Cookie: mstshash=ali"), Some("mstshash")), Rdp::TooShort);
        assert_eq!(rdp_cookie(&request(b"Cookie: mstshash=alice\r"), Some("mstshash")), Rdp::TooShort);
        assert_eq!(rdp_cookie(&request(b"Cookie: mstshash=alice\rX"), Some("mstshash")), Rdp::NotCookie);
        assert_eq!(rdp_cookie(&request(b"\x01\x00\x08\x00\x03\x00\x00\x00"), None), Rdp::NotCookie);
        assert_eq!(rdp_cookie(b"\x03\x00\x00", None), Rdp::TooShort);
    }
}
