//! The PROXY protocol, versions 1 (text) and 2 (binary, with TLVs): parsing what `accept-proxy`
//! listeners receive and encoding what `send-proxy`/`send-proxy-v2` servers get.
//!
//! The reference is HAProxy's `doc/proxy-protocol.txt`; constant names follow it so that a reader
//! of that document finds them here. Parsing is incremental and strict: a buffer is either a
//! prefix of a valid header (`Ok(None)`, read more), a whole header, or rejected as soon as no
//! continuation could make it valid.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// The longest v1 line a receiver must accept, CRLF included (`PROXY UNKNOWN` with two full IPv6
/// addresses and ports); a line without CRLF by then is rejected.
pub const V1_MAX_LEN: usize = 107;
const V1_PREFIX: &[u8] = b"PROXY ";

/// The 12 bytes that open every v2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Signature, version/command, family/transport and the 2-byte length.
const V2_FIXED_LEN: usize = 16;
/// The longest v2 header: the length field is 16 bits.
pub const V2_MAX_LEN: usize = V2_FIXED_LEN + u16::MAX as usize;
/// Size of one `sun_path` in an AF_UNIX address block.
pub const UNIX_PATH_LEN: usize = 108;

/// Registered v2 TLV types.
pub const PP2_TYPE_ALPN: u8 = 0x01;
pub const PP2_TYPE_AUTHORITY: u8 = 0x02;
pub const PP2_TYPE_CRC32C: u8 = 0x03;
pub const PP2_TYPE_NOOP: u8 = 0x04;
pub const PP2_TYPE_UNIQUE_ID: u8 = 0x05;
pub const PP2_TYPE_SSL: u8 = 0x20;
pub const PP2_SUBTYPE_SSL_VERSION: u8 = 0x21;
pub const PP2_SUBTYPE_SSL_CN: u8 = 0x22;
pub const PP2_SUBTYPE_SSL_CIPHER: u8 = 0x23;
pub const PP2_SUBTYPE_SSL_SIG_ALG: u8 = 0x24;
pub const PP2_SUBTYPE_SSL_KEY_ALG: u8 = 0x25;
pub const PP2_TYPE_NETNS: u8 = 0x30;

/// Bits of the `client` field of a `PP2_TYPE_SSL` TLV.
pub const PP2_CLIENT_SSL: u8 = 0x01;
pub const PP2_CLIENT_CERT_CONN: u8 = 0x02;
pub const PP2_CLIENT_CERT_SESS: u8 = 0x04;

/// The spec caps `PP2_TYPE_UNIQUE_ID` values at 128 bytes; HAProxy rejects longer ones.
const UNIQUE_ID_MAX_LEN: usize = 128;

/// What the sender says the connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// v2 `LOCAL`: the sender opened the connection itself (health checks); the connection's own
    /// addresses stand and any address block is ignored.
    Local,
    /// Relayed on behalf of a client (every v1 header, v2 `PROXY`).
    Proxy,
}

/// The relayed connection's transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// v1 `UNKNOWN`, v2 `UNSPEC`.
    Unspec,
    /// v1 `TCP4`/`TCP6`, v2 `STREAM`.
    Stream,
    /// v2 `DGRAM`.
    Dgram,
}

/// The raw AF_UNIX address block of a v2 header (`sun_path` of each side, NUL padded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnixAddrs {
    pub src: [u8; UNIX_PATH_LEN],
    pub dst: [u8; UNIX_PATH_LEN],
}

impl UnixAddrs {
    /// The source path up to its first NUL (an abstract socket starts with NUL and gives `b""`).
    pub fn src_path(&self) -> &[u8] {
        until_nul(&self.src)
    }

    /// The destination path up to its first NUL.
    pub fn dst_path(&self) -> &[u8] {
        until_nul(&self.dst)
    }
}

fn until_nul(path: &[u8]) -> &[u8] {
    path.iter().position(|&b| b == 0).map_or(path, |n| &path[..n])
}

/// A parsed PROXY header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyHeader {
    pub version: u8,
    /// The original addresses; `None` for `LOCAL` (v2) and `UNKNOWN` (v1) headers, where the
    /// connection's own addresses stand. Also `None` for AF_UNIX (see `unix`) and `UNSPEC`.
    pub src: Option<SocketAddr>,
    pub dst: Option<SocketAddr>,
    /// v2 TLVs as (type, value), in order. Already checked: CRC32C verified, SSL sub-TLVs well
    /// formed, UNIQUE_ID at most 128 bytes.
    pub tlvs: Vec<(u8, Vec<u8>)>,
    pub command: Command,
    pub transport: Transport,
    /// AF_UNIX address block of a v2 `PROXY` header; boxed because it is rare and 216 bytes.
    pub unix: Option<Box<UnixAddrs>>,
}

impl ProxyHeader {
    /// The value of the first TLV of type `kind`.
    pub fn tlv(&self, kind: u8) -> Option<&[u8]> {
        self.tlvs.iter().find(|(k, _)| *k == kind).map(|(_, v)| v.as_slice())
    }

    pub fn alpn(&self) -> Option<&[u8]> {
        self.tlv(PP2_TYPE_ALPN)
    }

    /// The client's SNI or host name, as the sender saw it.
    pub fn authority(&self) -> Option<&[u8]> {
        self.tlv(PP2_TYPE_AUTHORITY)
    }

    pub fn unique_id(&self) -> Option<&[u8]> {
        self.tlv(PP2_TYPE_UNIQUE_ID)
    }

    pub fn netns(&self) -> Option<&[u8]> {
        self.tlv(PP2_TYPE_NETNS)
    }

    /// The `PP2_TYPE_SSL` TLV, split into its fixed fields and sub-TLVs.
    pub fn ssl(&self) -> Option<Ssl<'_>> {
        // `parse` checked the layout, so this only fails on a hand-built header.
        self.tlv(PP2_TYPE_SSL).and_then(|v| Ssl::parse(v).ok())
    }
}

/// A `PP2_TYPE_SSL` TLV value: what the sender knows of the client's TLS session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ssl<'a> {
    /// `PP2_CLIENT_*` bits.
    pub client: u8,
    /// Zero when the client presented a certificate and it verified.
    pub verify: u32,
    sub_tlvs: &'a [u8],
}

impl<'a> Ssl<'a> {
    fn parse(value: &'a [u8]) -> Result<Self, &'static str> {
        let [client, v0, v1, v2, v3, sub_tlvs @ ..] = value else {
            return Err("PROXY v2 SSL TLV shorter than its client and verify fields");
        };
        let mut rest = sub_tlvs;
        while let Some((_, next)) = split_tlv(rest)? {
            rest = next;
        }
        Ok(Ssl { client: *client, verify: u32::from_be_bytes([*v0, *v1, *v2, *v3]), sub_tlvs })
    }

    pub fn sub_tlvs(&self) -> Tlvs<'a> {
        Tlvs { rest: self.sub_tlvs }
    }

    /// The value of the first sub-TLV of type `kind`.
    pub fn sub(&self, kind: u8) -> Option<&'a [u8]> {
        self.sub_tlvs().find(|(k, _)| *k == kind).map(|(_, v)| v)
    }

    pub fn version(&self) -> Option<&'a [u8]> {
        self.sub(PP2_SUBTYPE_SSL_VERSION)
    }

    /// The client certificate's Common Name.
    pub fn cn(&self) -> Option<&'a [u8]> {
        self.sub(PP2_SUBTYPE_SSL_CN)
    }

    pub fn cipher(&self) -> Option<&'a [u8]> {
        self.sub(PP2_SUBTYPE_SSL_CIPHER)
    }

    pub fn sig_alg(&self) -> Option<&'a [u8]> {
        self.sub(PP2_SUBTYPE_SSL_SIG_ALG)
    }

    pub fn key_alg(&self) -> Option<&'a [u8]> {
        self.sub(PP2_SUBTYPE_SSL_KEY_ALG)
    }
}

/// Walks a TLV list as (type, value) without allocating; stops at the first malformed entry.
#[derive(Clone, Debug)]
pub struct Tlvs<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Tlvs<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        match split_tlv(self.rest) {
            Ok(Some((tlv, next))) => {
                self.rest = next;
                Some(tlv)
            }
            _ => {
                self.rest = &[];
                None
            }
        }
    }
}

type TlvSplit<'a> = Option<((u8, &'a [u8]), &'a [u8])>;

/// Splits the first TLV off `rest`: `Ok(None)` at the end of the list.
fn split_tlv(rest: &[u8]) -> Result<TlvSplit<'_>, &'static str> {
    if rest.is_empty() {
        return Ok(None);
    }
    let [kind, hi, lo, tail @ ..] = rest else {
        return Err("PROXY v2 TLV header truncated");
    };
    let len = usize::from(u16::from_be_bytes([*hi, *lo]));
    if len > tail.len() {
        return Err("PROXY v2 TLV value overruns the header");
    }
    let (value, next) = tail.split_at(len);
    Ok(Some(((*kind, value), next)))
}

/// Parses a header at the start of `buf`. `Ok(None)`: not enough bytes yet; `Ok(Some((h, n)))`:
/// the header takes the first `n` bytes; `Err`: not a valid PROXY header (close the connection).
pub fn parse(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, String> {
    let parsed = match buf.first() {
        None => Ok(None),
        Some(b'P') => parse_v1(buf),
        Some(b'\r') => parse_v2(buf),
        Some(_) => Err("not a PROXY protocol header"),
    };
    parsed.map_err(String::from)
}

fn parse_v1(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, &'static str> {
    if !starts_as(buf, V1_PREFIX) {
        return Err("not a PROXY protocol header");
    }
    if buf.len() <= V1_PREFIX.len() {
        return Ok(None);
    }
    let window = &buf[..buf.len().min(V1_MAX_LEN)];
    let mut line_end = None;
    for (i, &b) in window.iter().enumerate().skip(V1_PREFIX.len()) {
        match b {
            b'\n' if window[i - 1] == b'\r' => {
                line_end = Some(i - 1);
                break;
            }
            b'\n' => return Err("PROXY v1 line ends with a bare LF"),
            b'\r' if window.get(i + 1).is_some_and(|&next| next != b'\n') => return Err("PROXY v1 line has a bare CR"),
            _ => {}
        }
    }
    let Some(end) = line_end else {
        if buf.len() >= V1_MAX_LEN {
            return Err("PROXY v1 line has no CRLF within 107 bytes");
        }
        // A trailing CR can only be the line's end: what precedes it must be complete.
        let body = &buf[V1_PREFIX.len()..];
        match body.strip_suffix(b"\r") {
            Some(line) => v1_fields(line, true)?,
            None => v1_fields(body, false)?,
        };
        return Ok(None);
    };
    let (src, dst) = v1_fields(&buf[V1_PREFIX.len()..end], true)?;
    let transport = if src.is_some() { Transport::Stream } else { Transport::Unspec };
    let header = ProxyHeader { version: 1, src, dst, tlvs: Vec::new(), command: Command::Proxy, transport, unix: None };
    Ok(Some((header, end + 2)))
}

/// True when `buf` and `expected` agree on their common length.
fn starts_as(buf: &[u8], expected: &[u8]) -> bool {
    let n = buf.len().min(expected.len());
    buf[..n] == expected[..n]
}

#[derive(Clone, Copy)]
enum V1Family {
    Tcp4,
    Tcp6,
}

type AddrPair = (Option<SocketAddr>, Option<SocketAddr>);

/// Checks the fields after `PROXY `. With `complete` the line is whole (CRLF stripped) and the
/// addresses come back; otherwise the last field may be cut short and only its characters and
/// length are checked, every earlier field fully.
fn v1_fields(body: &[u8], complete: bool) -> Result<AddrPair, &'static str> {
    let mut tokens = body.split(|&b| b == b' ').peekable();
    let proto = tokens.next().unwrap_or_default();
    let proto_whole = complete || tokens.peek().is_some();
    let family = match proto {
        // The receiver must ignore whatever follows UNKNOWN up to the CRLF.
        b"UNKNOWN" if proto_whole => return Ok((None, None)),
        b"TCP4" if proto_whole => V1Family::Tcp4,
        b"TCP6" if proto_whole => V1Family::Tcp6,
        p if !proto_whole && [&b"TCP4"[..], b"TCP6", b"UNKNOWN"].iter().any(|k| k.starts_with(p)) => return Ok((None, None)),
        _ => return Err("PROXY v1 protocol is not TCP4, TCP6 or UNKNOWN"),
    };
    let mut fields: [&[u8]; 4] = [&[]; 4];
    let mut count = 0;
    for token in tokens {
        let Some(slot) = fields.get_mut(count) else {
            return Err("PROXY v1 line has fields after the destination port");
        };
        *slot = token;
        count += 1;
    }
    if complete && count < fields.len() {
        return Err("PROXY v1 line is missing fields");
    }
    let mut ips = [None; 2];
    let mut ports = [0u16; 2];
    for (i, field) in fields[..count].iter().enumerate() {
        let whole = complete || i + 1 < count;
        if i < 2 {
            const BAD_ADDR: &str = "PROXY v1 address is not a valid literal of its family";
            if whole {
                ips[i] = Some(v1_ip(field, family).ok_or(BAD_ADDR)?);
            } else if !v1_ip_prefix(field, family) {
                return Err(BAD_ADDR);
            }
        } else {
            const BAD_PORT: &str = "PROXY v1 port is not a decimal 0-65535 without leading zeros";
            if whole {
                ports[i - 2] = v1_port(field).ok_or(BAD_PORT)?;
            } else if !v1_port_prefix(field) {
                return Err(BAD_PORT);
            }
        }
    }
    match ips {
        [Some(src), Some(dst)] if complete => Ok((Some(SocketAddr::new(src, ports[0])), Some(SocketAddr::new(dst, ports[1])))),
        _ => Ok((None, None)),
    }
}

fn v1_ip(field: &[u8], family: V1Family) -> Option<IpAddr> {
    match family {
        V1Family::Tcp4 => strict_ipv4(field).map(IpAddr::V4),
        // std's IPv6 parser takes RFC 4291 text (incl. `::ffff:1.2.3.4`, no zone, no octal).
        V1Family::Tcp6 => std::str::from_utf8(field).ok()?.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
    }
}

/// Could `field` still grow into an address of `family`? (Character set and length only.)
fn v1_ip_prefix(field: &[u8], family: V1Family) -> bool {
    match family {
        V1Family::Tcp4 => field.len() <= 15 && field.iter().all(|&b| b.is_ascii_digit() || b == b'.'),
        // 45: `ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255`, the longest text form.
        V1Family::Tcp6 => field.len() <= 45 && field.iter().all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.'),
    }
}

/// Dotted quad, decimal, no leading zeros (the spec forbids them to avoid octal confusion).
fn strict_ipv4(field: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = field.split(|&b| b == b'.');
    for octet in &mut octets {
        *octet = u8::try_from(strict_decimal(parts.next()?, 3)?).ok()?;
    }
    parts.next().is_none().then_some(Ipv4Addr::from(octets))
}

fn v1_port(field: &[u8]) -> Option<u16> {
    u16::try_from(strict_decimal(field, 5)?).ok()
}

fn v1_port_prefix(field: &[u8]) -> bool {
    field.len() <= 5 && field.iter().all(u8::is_ascii_digit) && !(field.len() > 1 && field[0] == b'0')
}

/// 1 to `max_digits` ASCII digits, no leading zero unless the number is 0.
fn strict_decimal(digits: &[u8], max_digits: usize) -> Option<u32> {
    if digits.is_empty() || digits.len() > max_digits || (digits.len() > 1 && digits[0] == b'0') {
        return None;
    }
    digits.iter().try_fold(0u32, |n, &b| b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0')))
}

fn parse_v2(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, &'static str> {
    if !starts_as(buf, &V2_SIGNATURE) {
        return Err("not a PROXY protocol header");
    }
    let Some(&ver_cmd) = buf.get(12) else { return Ok(None) };
    if ver_cmd >> 4 != 2 {
        return Err("PROXY v2 header has a version other than 2");
    }
    let command = match ver_cmd & 0x0f {
        0x0 => Command::Local,
        0x1 => Command::Proxy,
        _ => return Err("PROXY v2 command is neither LOCAL nor PROXY"),
    };
    let Some(&fam) = buf.get(13) else { return Ok(None) };
    let transport = match fam & 0x0f {
        0x0 => Transport::Unspec,
        0x1 => Transport::Stream,
        0x2 => Transport::Dgram,
        _ => return Err("PROXY v2 transport is not UNSPEC, STREAM or DGRAM"),
    };
    if fam >> 4 > 3 {
        return Err("PROXY v2 address family is not UNSPEC, INET, INET6 or UNIX");
    }
    let Some(&[hi, lo]) = buf.get(14..16) else { return Ok(None) };
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    let layout = match fam {
        0x00 => Some(0),
        0x11 | 0x12 => Some(12),
        0x21 | 0x22 => Some(36),
        0x31 | 0x32 => Some(2 * UNIX_PATH_LEN),
        // A family with UNSPEC transport (or the reverse) has no defined layout.
        _ => None,
    };
    let addr_len = match (command, layout) {
        (Command::Proxy, None) => return Err("PROXY v2 address family and transport do not go together"),
        (Command::Proxy, Some(n)) if n > len => return Err("PROXY v2 length is shorter than the address block"),
        (Command::Proxy, Some(n)) => n,
        // LOCAL ignores the family; TLVs follow the address block when there is room for it,
        // otherwise the whole block is opaque and skipped.
        (Command::Local, Some(n)) if n <= len => n,
        (Command::Local, _) => len,
    };
    let total = V2_FIXED_LEN + len;
    let Some(header) = buf.get(..total) else { return Ok(None) };
    let (addrs, tlv_bytes) = header[V2_FIXED_LEN..].split_at(addr_len);

    let mut src = None;
    let mut dst = None;
    let mut unix = None;
    if command == Command::Proxy {
        match fam >> 4 {
            0x1 => {
                let ip = |at: usize| Ipv4Addr::new(addrs[at], addrs[at + 1], addrs[at + 2], addrs[at + 3]);
                src = Some(SocketAddr::V4(SocketAddrV4::new(ip(0), be16(addrs, 8))));
                dst = Some(SocketAddr::V4(SocketAddrV4::new(ip(4), be16(addrs, 10))));
            }
            0x2 => {
                let ip = |at: usize| Ipv6Addr::from(<[u8; 16]>::try_from(&addrs[at..at + 16]).unwrap_or_default());
                src = Some(SocketAddr::V6(SocketAddrV6::new(ip(0), be16(addrs, 32), 0, 0)));
                dst = Some(SocketAddr::V6(SocketAddrV6::new(ip(16), be16(addrs, 34), 0, 0)));
            }
            0x3 => {
                let (s, d) = addrs.split_at(UNIX_PATH_LEN);
                let path = |p: &[u8]| <[u8; UNIX_PATH_LEN]>::try_from(p).unwrap_or([0; UNIX_PATH_LEN]);
                unix = Some(Box::new(UnixAddrs { src: path(s), dst: path(d) }));
            }
            _ => {}
        }
    }

    // First pass: check every TLV and find the checksum, so the list is allocated once.
    let mut count = 0;
    let mut crc_at = None;
    let mut rest = tlv_bytes;
    while let Some(((kind, value), next)) = split_tlv(rest)? {
        match kind {
            PP2_TYPE_CRC32C if value.len() != 4 => return Err("PROXY v2 CRC32C TLV is not 4 bytes"),
            PP2_TYPE_CRC32C if crc_at.is_some() => return Err("PROXY v2 header has two CRC32C TLVs"),
            PP2_TYPE_CRC32C => crc_at = Some(total - next.len() - 4),
            PP2_TYPE_UNIQUE_ID if value.len() > UNIQUE_ID_MAX_LEN => return Err("PROXY v2 UNIQUE_ID TLV is over 128 bytes"),
            PP2_TYPE_SSL => {
                Ssl::parse(value)?;
            }
            _ => {}
        }
        count += 1;
        rest = next;
    }
    if let Some(at) = crc_at {
        let sent = u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]);
        if crc32c_zeroed(header, at) != sent {
            return Err("PROXY v2 CRC32C checksum mismatch");
        }
    }
    let mut tlvs = Vec::with_capacity(count);
    tlvs.extend(Tlvs { rest: tlv_bytes }.map(|(kind, value)| (kind, value.to_vec())));

    let header = ProxyHeader { version: 2, src, dst, tlvs, command, transport, unix };
    Ok(Some((header, total)))
}

fn be16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

/// CRC32c (Castagnoli, reflected polynomial 0x82F63B78, as in RFC 4960 appendix B).
pub fn crc32c(data: &[u8]) -> u32 {
    !crc32c_update(!0, data)
}

/// The CRC32c of `header` with the 4 checksum bytes at `at` read as zeros.
fn crc32c_zeroed(header: &[u8], at: usize) -> u32 {
    let state = crc32c_update(!0, &header[..at]);
    let state = crc32c_update(state, &[0; 4]);
    !crc32c_update(state, &header[at + 4..])
}

fn crc32c_update(mut state: u32, data: &[u8]) -> u32 {
    for &b in data {
        state = CRC32C_TABLE[usize::from(state as u8 ^ b)] ^ (state >> 8);
    }
    state
}

const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// The pair as it goes on the wire: both IPv4, or both IPv6 with an IPv4 side mapped into
/// `::ffff:0:0/96` (what HAProxy's `make_proxy_line_v1/v2` do with mixed families).
enum WirePair {
    V4(SocketAddrV4, SocketAddrV4),
    V6(SocketAddrV6, SocketAddrV6),
}

fn wire_pair(src: Option<SocketAddr>, dst: Option<SocketAddr>) -> Option<WirePair> {
    let to_v6 = |a: SocketAddr| match a {
        SocketAddr::V4(a) => SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0),
        SocketAddr::V6(a) => a,
    };
    match (src?, dst?) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => Some(WirePair::V4(s, d)),
        (s, d) => Some(WirePair::V6(to_v6(s), to_v6(d))),
    }
}

/// Encodes a v1 header: `PROXY TCP4 ...\r\n` when both addresses are IPv4, `PROXY TCP6 ...\r\n`
/// when either is IPv6 (the IPv4 one is sent IPv4-mapped, as HAProxy does), `PROXY UNKNOWN\r\n`
/// when an address is missing.
pub fn encode_v1(src: Option<SocketAddr>, dst: Option<SocketAddr>) -> Vec<u8> {
    match wire_pair(src, dst) {
        Some(WirePair::V4(s, d)) => format!("PROXY TCP4 {} {} {} {}\r\n", s.ip(), d.ip(), s.port(), d.port()).into_bytes(),
        Some(WirePair::V6(s, d)) => format!("PROXY TCP6 {} {} {} {}\r\n", s.ip(), d.ip(), s.port(), d.port()).into_bytes(),
        None => b"PROXY UNKNOWN\r\n".to_vec(),
    }
}

/// Encodes a v2 header with the given TLVs: `PROXY` over `AF_INET`/`AF_INET6` `STREAM` (mixed
/// families as in `encode_v1`), or `LOCAL` with `AF_UNSPEC` when an address is missing.
///
/// A `PP2_TYPE_CRC32C` TLV is written as 4 bytes holding the header's checksum whatever value
/// was passed (only the first one; later ones are dropped). TLVs that would push the header past
/// `V2_MAX_LEN` are dropped, since the length field cannot describe them.
pub fn encode_v2(src: Option<SocketAddr>, dst: Option<SocketAddr>, tlvs: &[(u8, &[u8])]) -> Vec<u8> {
    let pair = wire_pair(src, dst);
    let addr_len = match pair {
        Some(WirePair::V4(..)) => 12,
        Some(WirePair::V6(..)) => 36,
        None => 0,
    };
    let tlv_len: usize = tlvs.iter().map(|(_, v)| 3 + v.len().max(4)).sum();
    let mut out = Vec::with_capacity((V2_FIXED_LEN + addr_len + tlv_len).min(V2_MAX_LEN));
    out.extend_from_slice(&V2_SIGNATURE);
    match pair {
        Some(WirePair::V4(s, d)) => {
            out.extend_from_slice(&[0x21, 0x11, 0, 0]);
            out.extend_from_slice(&s.ip().octets());
            out.extend_from_slice(&d.ip().octets());
            out.extend_from_slice(&s.port().to_be_bytes());
            out.extend_from_slice(&d.port().to_be_bytes());
        }
        Some(WirePair::V6(s, d)) => {
            out.extend_from_slice(&[0x21, 0x21, 0, 0]);
            out.extend_from_slice(&s.ip().octets());
            out.extend_from_slice(&d.ip().octets());
            out.extend_from_slice(&s.port().to_be_bytes());
            out.extend_from_slice(&d.port().to_be_bytes());
        }
        None => out.extend_from_slice(&[0x20, 0x00, 0, 0]),
    }
    let mut crc_at = None;
    for &(kind, value) in tlvs {
        let value = if kind == PP2_TYPE_CRC32C {
            if crc_at.is_some() {
                continue;
            }
            &[0u8; 4][..]
        } else {
            value
        };
        let Ok(len) = u16::try_from(value.len()) else { continue };
        if out.len() + 3 + value.len() > V2_MAX_LEN {
            continue;
        }
        out.push(kind);
        out.extend_from_slice(&len.to_be_bytes());
        if kind == PP2_TYPE_CRC32C {
            crc_at = Some(out.len());
        }
        out.extend_from_slice(value);
    }
    // Fits: every append above kept the total within V2_MAX_LEN.
    let len = u16::try_from(out.len() - V2_FIXED_LEN).unwrap_or(u16::MAX);
    out[14..16].copy_from_slice(&len.to_be_bytes());
    if let Some(at) = crc_at {
        let crc = crc32c(&out);
        out[at..at + 4].copy_from_slice(&crc.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn complete(buf: &[u8]) -> (ProxyHeader, usize) {
        match parse(buf) {
            Ok(Some(done)) => done,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(buf)),
        }
    }

    fn assert_err(buf: &[u8]) {
        assert!(parse(buf).is_err(), "{:?} was accepted: {:?}", String::from_utf8_lossy(buf), parse(buf));
    }

    /// Every strict prefix of `header` must ask for more bytes.
    fn assert_prefixes_pending(header: &[u8]) {
        for n in 0..header.len() {
            assert_eq!(parse(&header[..n]), Ok(None), "prefix {n} of {:?}", String::from_utf8_lossy(header));
        }
    }

    fn v2(ver_cmd: u8, fam: u8, block: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.extend_from_slice(&[ver_cmd, fam]);
        out.extend_from_slice(&u16::try_from(block.len()).unwrap().to_be_bytes());
        out.extend_from_slice(block);
        out
    }

    fn tlv(kind: u8, value: &[u8]) -> Vec<u8> {
        let mut out = vec![kind];
        out.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
        out.extend_from_slice(value);
        out
    }

    const V4_BLOCK: [u8; 12] = [192, 168, 0, 1, 192, 168, 0, 11, 0xDC, 0x04, 0x01, 0xBB];

    #[test]
    fn crc32c_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn v1_spec_example() {
        let line = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
        assert_eq!(encode_v1(Some(sa("192.168.0.1:56324")), Some(sa("192.168.0.11:443"))), line);
        let (h, n) = complete(line);
        assert_eq!((h.version, h.src, h.dst, n), (1, Some(sa("192.168.0.1:56324")), Some(sa("192.168.0.11:443")), line.len()));
        assert_eq!((h.command, h.transport), (Command::Proxy, Transport::Stream));
        assert_prefixes_pending(line);
    }

    #[test]
    fn v1_tcp6_and_unknown() {
        let line = b"PROXY TCP6 2001:db8::1 ::1 65535 0\r\n";
        assert_eq!(encode_v1(Some(sa("[2001:db8::1]:65535")), Some(sa("[::1]:0"))), line);
        let (h, _) = complete(line);
        assert_eq!((h.src, h.dst), (Some(sa("[2001:db8::1]:65535")), Some(sa("[::1]:0"))));
        assert_prefixes_pending(line);

        assert_eq!(encode_v1(None, Some(sa("1.2.3.4:5"))), b"PROXY UNKNOWN\r\n");
        assert_eq!(encode_v1(Some(sa("1.2.3.4:5")), None), b"PROXY UNKNOWN\r\n");
        let (h, n) = complete(b"PROXY UNKNOWN\r\n");
        assert_eq!((h.src, h.dst, h.transport, n), (None, None, Transport::Unspec, 15));
        // The worst case from the spec: UNKNOWN followed by anything, 107 bytes in all.
        let longest = format!("PROXY UNKNOWN {0} {0} 65535 65535\r\n", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
        assert_eq!(longest.len(), V1_MAX_LEN);
        assert_eq!(complete(longest.as_bytes()).1, V1_MAX_LEN);
        assert_prefixes_pending(longest.as_bytes());
        assert_eq!(complete(b"PROXY UNKNOWN garbage ~~ \x01\xff\r\nrest").1, 29);
    }

    #[test]
    fn v1_mixed_families_go_tcp6_mapped() {
        let line = encode_v1(Some(sa("10.0.0.1:1000")), Some(sa("[2001:db8::2]:443")));
        assert_eq!(line, b"PROXY TCP6 ::ffff:10.0.0.1 2001:db8::2 1000 443\r\n");
        let (h, _) = complete(&line);
        assert_eq!(h.src, Some(sa("[::ffff:10.0.0.1]:1000")));
        // A mapped address with an IPv4 one: both go IPv6; HAProxy does not unmap.
        let line = encode_v1(Some(sa("[::ffff:10.0.0.1]:1")), Some(sa("10.0.0.2:2")));
        assert_eq!(line, b"PROXY TCP6 ::ffff:10.0.0.1 ::ffff:10.0.0.2 1 2\r\n");
    }

    #[test]
    fn v1_header_then_payload() {
        let buf = b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nGET / HTTP/1.1\r\n\r\n";
        assert_eq!(complete(buf).1, 32);
    }

    #[test]
    fn v1_corruptions() {
        for bad in [
            &b"X"[..],
            b"PROXX",
            b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP5",
            b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1  2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 ",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 \r",
            b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 ::1 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 ::1",
            b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
            b"PROXY TCP6 ::1 fe80::1%eth0 1 2\r\n",
            b"PROXY TCP6 :::1 ::1 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 123456",
            b"PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n",
            b"PROXY UNKNOWNX\r\n",
            b"PROXY UNKNOWN\n",
            b"PROXY UNKNOWN junk\rjunk\r\n",
            b"PROXY \r\n",
        ] {
            assert_err(bad);
        }
        // No CRLF within 107 bytes, even for UNKNOWN whose rest is ignored.
        let mut long = b"PROXY UNKNOWN ".to_vec();
        long.resize(V1_MAX_LEN, b'a');
        assert_err(&long);
        long.truncate(V1_MAX_LEN - 1);
        assert_eq!(parse(&long), Ok(None));
        long.extend_from_slice(b"\r\n");
        assert_err(&long);
    }

    #[test]
    fn v2_exact_bytes_ipv4() {
        let expected = v2(0x21, 0x11, &V4_BLOCK);
        assert_eq!(expected.len(), 28);
        assert_eq!(encode_v2(Some(sa("192.168.0.1:56324")), Some(sa("192.168.0.11:443")), &[]), expected);
        let (h, n) = complete(&expected);
        assert_eq!((h.version, h.command, h.transport, n), (2, Command::Proxy, Transport::Stream, 28));
        assert_eq!((h.src, h.dst), (Some(sa("192.168.0.1:56324")), Some(sa("192.168.0.11:443"))));
        assert_prefixes_pending(&expected);
    }

    #[test]
    fn v2_exact_bytes_ipv6_and_local() {
        let mut block = [0u8; 36];
        block[..16].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        block[31] = 2;
        block[32..].copy_from_slice(&[0x30, 0x39, 0x00, 0x50]);
        let expected = v2(0x21, 0x21, &block);
        assert_eq!(encode_v2(Some(sa("[2001:db8::1]:12345")), Some(sa("[::2]:80")), &[]), expected);
        let (h, _) = complete(&expected);
        assert_eq!((h.src, h.dst), (Some(sa("[2001:db8::1]:12345")), Some(sa("[::2]:80"))));

        let local = v2(0x20, 0x00, &[]);
        assert_eq!(encode_v2(None, Some(sa("1.2.3.4:5")), &[]), local);
        let (h, n) = complete(&local);
        assert_eq!((h.command, h.src, h.dst, n), (Command::Local, None, None, 16));
        assert_prefixes_pending(&local);
        // LOCAL ignores any address block, but its length still counts.
        let (h, n) = complete(&v2(0x20, 0x11, &V4_BLOCK));
        assert_eq!((h.src, n), (None, 28));
    }

    #[test]
    fn v2_mixed_families_go_inet6() {
        let out = encode_v2(Some(sa("10.0.0.1:1")), Some(sa("[::1]:2")), &[]);
        assert_eq!(out[13], 0x21);
        assert_eq!(complete(&out).0.src, Some(sa("[::ffff:10.0.0.1]:1")));
    }

    #[test]
    fn v2_dgram_and_unix() {
        let (h, _) = complete(&v2(0x21, 0x12, &V4_BLOCK));
        assert_eq!((h.transport, h.src), (Transport::Dgram, Some(sa("192.168.0.1:56324"))));

        let mut block = vec![0u8; 2 * UNIX_PATH_LEN];
        block[..8].copy_from_slice(b"/run/src");
        block[UNIX_PATH_LEN..UNIX_PATH_LEN + 4].copy_from_slice(b"/dst");
        block.extend(tlv(PP2_TYPE_NOOP, b""));
        let buf = v2(0x21, 0x31, &block);
        let (h, n) = complete(&buf);
        assert_eq!((h.src, h.dst, n, h.tlvs.len()), (None, None, 16 + 216 + 3, 1));
        let unix = h.unix.expect("unix addresses");
        assert_eq!((unix.src_path(), unix.dst_path()), (&b"/run/src"[..], &b"/dst"[..]));
        assert_prefixes_pending(&buf);

        // UNSPEC with PROXY: no addresses, TLVs right after the fixed part.
        let (h, _) = complete(&v2(0x21, 0x00, &tlv(PP2_TYPE_AUTHORITY, b"example.com")));
        assert_eq!((h.src, h.authority()), (None, Some(&b"example.com"[..])));
    }

    #[test]
    fn v2_header_then_payload() {
        let mut buf = encode_v2(Some(sa("1.2.3.4:1")), Some(sa("5.6.7.8:2")), &[(PP2_TYPE_ALPN, b"h2")]);
        let len = buf.len();
        buf.extend_from_slice(b"\x16\x03\x01 client hello");
        assert_eq!(complete(&buf).1, len);
    }

    #[test]
    fn v2_tlvs_and_ssl() {
        let mut ssl = vec![PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN, 0, 0, 0, 7];
        ssl.extend(tlv(PP2_SUBTYPE_SSL_VERSION, b"TLSv1.3"));
        ssl.extend(tlv(PP2_SUBTYPE_SSL_CN, b"client.example"));
        ssl.extend(tlv(PP2_SUBTYPE_SSL_CIPHER, b"TLS_AES_128_GCM_SHA256"));
        ssl.extend(tlv(PP2_SUBTYPE_SSL_SIG_ALG, b"RSA-SHA256"));
        ssl.extend(tlv(PP2_SUBTYPE_SSL_KEY_ALG, b"RSA2048"));
        let mut block = V4_BLOCK.to_vec();
        block.extend(tlv(PP2_TYPE_ALPN, b"h2"));
        block.extend(tlv(PP2_TYPE_AUTHORITY, b"example.com"));
        block.extend(tlv(PP2_TYPE_NOOP, &[0; 5]));
        block.extend(tlv(PP2_TYPE_UNIQUE_ID, &[9; 128]));
        block.extend(tlv(PP2_TYPE_SSL, &ssl));
        block.extend(tlv(PP2_TYPE_NETNS, b"blue"));
        block.extend(tlv(0xE0, b"custom"));
        let buf = v2(0x21, 0x11, &block);
        let (h, _) = complete(&buf);
        let kinds: Vec<u8> = h.tlvs.iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, [PP2_TYPE_ALPN, PP2_TYPE_AUTHORITY, PP2_TYPE_NOOP, PP2_TYPE_UNIQUE_ID, PP2_TYPE_SSL, PP2_TYPE_NETNS, 0xE0]);
        assert_eq!((h.alpn(), h.authority(), h.netns()), (Some(&b"h2"[..]), Some(&b"example.com"[..]), Some(&b"blue"[..])));
        assert_eq!(h.unique_id().map(<[u8]>::len), Some(128));
        assert_eq!(h.tlv(0xE0), Some(&b"custom"[..]));
        let s = h.ssl().expect("ssl tlv");
        assert_eq!((s.client, s.verify), (PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN, 7));
        assert_eq!(s.version(), Some(&b"TLSv1.3"[..]));
        assert_eq!(s.cn(), Some(&b"client.example"[..]));
        assert_eq!(s.cipher(), Some(&b"TLS_AES_128_GCM_SHA256"[..]));
        assert_eq!((s.sig_alg(), s.key_alg()), (Some(&b"RSA-SHA256"[..]), Some(&b"RSA2048"[..])));
        assert_eq!(s.sub_tlvs().count(), 5);
        assert_prefixes_pending(&buf);

        // encode_v2 writes the same TLVs back.
        let borrowed: Vec<(u8, &[u8])> = h.tlvs.iter().map(|(k, v)| (*k, v.as_slice())).collect();
        assert_eq!(encode_v2(h.src, h.dst, &borrowed), buf);
    }

    #[test]
    fn v2_crc32c() {
        let tlvs: [(u8, &[u8]); 2] = [(PP2_TYPE_CRC32C, &[]), (PP2_TYPE_ALPN, b"http/1.1")];
        let buf = encode_v2(Some(sa("1.2.3.4:1")), Some(sa("5.6.7.8:2")), &tlvs);
        let (h, _) = complete(&buf);
        let sent = h.tlv(PP2_TYPE_CRC32C).expect("crc tlv");
        // The checksum is over the header with its own field zeroed, stored big-endian.
        let mut zeroed = buf.clone();
        zeroed[31..35].fill(0);
        assert_eq!(sent, crc32c(&zeroed).to_be_bytes());
        assert_eq!(&buf[31..35], sent);
        // Any flipped bit past the fixed part is caught, including in the checksum itself; not in
        // the checksum TLV's type byte (28), which turns it into an unchecked AUTHORITY TLV.
        for i in (16..buf.len()).filter(|&i| i != 28) {
            let mut bad = buf.clone();
            bad[i] ^= 0x01;
            assert_err(&bad);
        }
        // LOCAL headers carry TLVs too (HAProxy health checks with crc32c).
        let local = encode_v2(None, None, &[(PP2_TYPE_CRC32C, &[1, 2, 3, 4])]);
        assert_eq!((local[12], local[13], local.len()), (0x20, 0x00, 23));
        assert_eq!(complete(&local).0.tlvs.len(), 1);
        let mut bad = local.clone();
        bad[19] ^= 0x80;
        assert_err(&bad);
    }

    #[test]
    fn v2_corruptions() {
        let good = v2(0x21, 0x11, &V4_BLOCK);
        let with = |i: usize, b: u8| {
            let mut out = good.clone();
            out[i] = b;
            out
        };
        for (i, sig) in V2_SIGNATURE.iter().enumerate() {
            assert_err(&with(i, sig ^ 0x40));
            // Detected as soon as the bad signature byte arrives.
            assert_err(&with(i, sig ^ 0x40)[..=i]);
        }
        for bad in [
            with(12, 0x11),
            with(12, 0x31),
            with(12, 0x22),
            with(12, 0x2F),
            with(13, 0x41),
            with(13, 0x13),
            with(13, 0x10),
            with(13, 0x01),
            with(13, 0x21),
            with(13, 0x31),
            with(15, 11),
        ] {
            assert_err(&bad);
            assert_err(&bad[..16]);
        }
        let with_tlvs = |extra: &[u8]| {
            let mut block = V4_BLOCK.to_vec();
            block.extend_from_slice(extra);
            assert_err(&v2(0x21, 0x11, &block));
        };
        with_tlvs(&[PP2_TYPE_NOOP]);
        with_tlvs(&[PP2_TYPE_NOOP, 0]);
        with_tlvs(&[PP2_TYPE_NOOP, 0, 1]);
        with_tlvs(&[PP2_TYPE_NOOP, 0xFF, 0xFF, 0]);
        with_tlvs(&tlv(PP2_TYPE_CRC32C, &[0; 3]));
        with_tlvs(&[tlv(PP2_TYPE_CRC32C, &[0; 4]), tlv(PP2_TYPE_CRC32C, &[0; 4])].concat());
        with_tlvs(&tlv(PP2_TYPE_UNIQUE_ID, &[0; 129]));
        with_tlvs(&tlv(PP2_TYPE_SSL, &[1, 0, 0, 0]));
        with_tlvs(&tlv(PP2_TYPE_SSL, &[1, 0, 0, 0, 0, PP2_SUBTYPE_SSL_CN, 0, 5, b'a']));
        with_tlvs(&tlv(PP2_TYPE_SSL, &[1, 0, 0, 0, 0, PP2_SUBTYPE_SSL_CN]));
    }

    #[test]
    fn v2_encode_drops_what_the_length_cannot_hold() {
        let big = vec![7u8; 40_000];
        let out = encode_v2(Some(sa("1.2.3.4:1")), Some(sa("5.6.7.8:2")), &[(0xE0, &big), (0xE1, &big), (PP2_TYPE_NOOP, b"")]);
        let (h, n) = complete(&out);
        assert_eq!(n, out.len());
        assert_eq!(h.tlvs.iter().map(|(k, v)| (*k, v.len())).collect::<Vec<_>>(), [(0xE0, 40_000), (PP2_TYPE_NOOP, 0)]);
        let full = vec![0u8; V2_MAX_LEN - 28 - 3];
        let out = encode_v2(Some(sa("1.2.3.4:1")), Some(sa("5.6.7.8:2")), &[(0xE0, &full)]);
        assert_eq!(out.len(), V2_MAX_LEN);
        assert_eq!(complete(&out).1, V2_MAX_LEN);
    }

    fn any_addr() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port))),
            (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((Ipv6Addr::from(ip), port))),
            // Mapped and short addresses exercise the text forms' special cases.
            (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((Ipv4Addr::from(ip).to_ipv6_mapped(), port))),
            (any::<u8>(), any::<u16>()).prop_map(|(b, port)| SocketAddr::from((Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, u16::from(b)), port))),
        ]
    }

    /// What the wire carries for `a` when the pair is sent as IPv6.
    fn as_v6(a: SocketAddr) -> SocketAddr {
        match a {
            SocketAddr::V4(v4) => SocketAddr::from((v4.ip().to_ipv6_mapped(), v4.port())),
            v6 => v6,
        }
    }

    fn expected_pair(src: SocketAddr, dst: SocketAddr) -> (Option<SocketAddr>, Option<SocketAddr>) {
        if src.is_ipv4() && dst.is_ipv4() { (Some(src), Some(dst)) } else { (Some(as_v6(src)), Some(as_v6(dst))) }
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn parse_never_panics_past_the_magic(v1 in any::<bool>(), tail in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut buf = if v1 { b"PROXY TCP6 ".to_vec() } else { V2_SIGNATURE.to_vec() };
            buf.extend_from_slice(&tail);
            if let Ok(Some((_, n))) = parse(&buf) {
                prop_assert!(n <= buf.len());
            }
        }

        #[test]
        fn v1_round_trip(src in any_addr(), dst in any_addr(), payload in proptest::collection::vec(any::<u8>(), 0..8)) {
            let line = encode_v1(Some(src), Some(dst));
            prop_assert!(line.len() <= V1_MAX_LEN);
            for n in 0..line.len() {
                prop_assert_eq!(parse(&line[..n]), Ok(None));
            }
            let mut buf = line.clone();
            buf.extend_from_slice(&payload);
            let (h, n) = parse(&buf).unwrap().unwrap();
            prop_assert_eq!(n, line.len());
            prop_assert_eq!((h.src, h.dst), expected_pair(src, dst));
        }

        #[test]
        fn v2_round_trip(
            src in any_addr(),
            dst in any_addr(),
            crc in any::<bool>(),
            tlvs in proptest::collection::vec(
                (any::<u8>().prop_filter("checked types", |k| ![PP2_TYPE_CRC32C, PP2_TYPE_UNIQUE_ID, PP2_TYPE_SSL].contains(k)),
                 proptest::collection::vec(any::<u8>(), 0..40)),
                0..5),
        ) {
            let mut list: Vec<(u8, &[u8])> = tlvs.iter().map(|(k, v)| (*k, v.as_slice())).collect();
            if crc {
                list.insert(0, (PP2_TYPE_CRC32C, &[]));
            }
            let buf = encode_v2(Some(src), Some(dst), &list);
            for n in 0..buf.len() {
                prop_assert_eq!(parse(&buf[..n]), Ok(None));
            }
            let (h, n) = parse(&buf).unwrap().unwrap();
            prop_assert_eq!(n, buf.len());
            prop_assert_eq!((h.src, h.dst), expected_pair(src, dst));
            let got: Vec<(u8, Vec<u8>)> = h.tlvs.into_iter().filter(|(k, _)| *k != PP2_TYPE_CRC32C).collect();
            prop_assert_eq!(got, tlvs);
        }
    }
}
