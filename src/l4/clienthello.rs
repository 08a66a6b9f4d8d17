//! A strict, incremental parser of the TLS ClientHello at the start of a TCP stream, for content
//! inspection before any TLS is terminated (`req.ssl_sni`, SNI routing in TCP mode).
//!
//! Called on the bytes received so far: `Ok(None)` means "need more bytes" (a state, not an error),
//! `Err` means the stream is not a TLS handshake or the hello is malformed, and waiting longer will
//! not change that. The parser borrows from the buffer and never allocates.
//!
//! Only the first TLS record is read. A ClientHello longer than that record (split across records,
//! which needs a hello above 16 KiB or a peculiar client) is reported as
//! [`HelloError::SplitAcrossRecords`]; HAProxy's `req.ssl_sni` reads only the first record too.
//! SSLv2-compatible hellos are not TLS handshakes here.

use std::fmt;

/// TLS record content type of handshake messages.
pub const CONTENT_TYPE_HANDSHAKE: u8 = 0x16;
/// Handshake message type of a ClientHello (the value `req.ssl_hello_type` returns for it).
pub const HANDSHAKE_CLIENT_HELLO: u8 = 1;
/// The largest record fragment a peer may send (RFC 8446 section 5.1).
const MAX_FRAGMENT: usize = 1 << 14;
/// Record header: content type, version, length.
const RECORD_HEADER: usize = 5;
/// Handshake header: message type, 24-bit length.
const HANDSHAKE_HEADER: usize = 4;

const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;
const EXT_SUPPORTED_VERSIONS: u16 = 43;
const SERVER_NAME_TYPE_HOST: u8 = 0;

/// Why the bytes are not a usable ClientHello.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HelloError {
    /// The first byte is not the handshake content type (0x16): not TLS, or not a hello.
    NotHandshake(u8),
    /// The record version is not 3.x (SSLv3 to TLS 1.3).
    BadRecordVersion(u16),
    /// The record length is too small for a handshake message or above 2^14.
    BadRecordLength(usize),
    /// A handshake message other than a ClientHello.
    NotClientHello(u8),
    /// The ClientHello continues in another record (not supported: see the module documentation).
    SplitAcrossRecords,
    /// A field is out of range or a length does not add up; says which.
    Malformed(&'static str),
}

impl fmt::Display for HelloError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HelloError::NotHandshake(t) => write!(f, "not a TLS handshake record (content type 0x{t:02x})"),
            HelloError::BadRecordVersion(v) => write!(f, "unsupported TLS record version 0x{v:04x}"),
            HelloError::BadRecordLength(n) => write!(f, "invalid TLS record length {n}"),
            HelloError::NotClientHello(t) => write!(f, "handshake message type {t} is not a ClientHello"),
            HelloError::SplitAcrossRecords => f.write_str("ClientHello split across several TLS records"),
            HelloError::Malformed(what) => write!(f, "malformed ClientHello: {what}"),
        }
    }
}

impl std::error::Error for HelloError {}

/// What routing needs from a ClientHello; every slice borrows from the parsed buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientHello<'a> {
    /// The record layer version (0x0301 for most clients, whatever they speak).
    pub record_version: u16,
    /// `legacy_version` of the hello: 0x0303 for TLS 1.2 and 1.3 clients (1.3 is announced in
    /// `supported_versions`).
    pub legacy_version: u16,
    /// The host name of the `server_name` extension, as sent (not lower-cased).
    pub server_name: Option<&'a [u8]>,
    /// The length of the first record, header included. The record may go on after the ClientHello
    /// (and past the bytes received so far); the parser waits only for the ClientHello itself.
    pub record_len: usize,
    /// The `supported_versions` list, validated: pairs of bytes.
    supported_versions: Option<&'a [u8]>,
    /// The ALPN `protocol_name_list`, validated: non-empty length-prefixed names.
    alpn: Option<&'a [u8]>,
}

impl<'a> ClientHello<'a> {
    /// The versions of the `supported_versions` extension, in the client's order (GREASE included).
    pub fn supported_versions(&self) -> impl Iterator<Item = u16> + 'a {
        self.supported_versions.unwrap_or(&[]).chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]]))
    }

    /// True when the hello carries a `supported_versions` extension.
    pub fn has_supported_versions(&self) -> bool {
        self.supported_versions.is_some()
    }

    /// The ALPN protocol names, in the client's order.
    pub fn alpn_protocols(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let mut rest = self.alpn.unwrap_or(&[]);
        std::iter::from_fn(move || {
            let (&len, tail) = rest.split_first()?;
            let (name, tail) = tail.split_at_checked(usize::from(len))?;
            rest = tail;
            Some(name)
        })
    }

    /// The highest version the client offers: the highest non-GREASE entry of
    /// `supported_versions`, or `legacy_version` without that extension.
    pub fn max_version(&self) -> u16 {
        if self.supported_versions.is_none() {
            return self.legacy_version;
        }
        self.supported_versions().filter(|v| v & 0x0f0f != 0x0a0a).max().unwrap_or(self.legacy_version)
    }
}

/// Parses the ClientHello at the start of `buf`. `Ok(None)`: every byte so far is consistent with
/// a ClientHello, but it is not complete.
pub fn parse_client_hello(buf: &[u8]) -> Result<Option<ClientHello<'_>>, HelloError> {
    // Check the header bytes as they arrive, so that a non-TLS stream fails on its first byte.
    let Some(&content_type) = buf.first() else { return Ok(None) };
    if content_type != CONTENT_TYPE_HANDSHAKE {
        return Err(HelloError::NotHandshake(content_type));
    }
    if let Some(&major) = buf.get(1) {
        let minor = buf.get(2).copied().unwrap_or(0);
        if major != 3 || minor > 4 {
            return Err(HelloError::BadRecordVersion(u16::from_be_bytes([major, minor])));
        }
    }
    let Some(header) = buf.get(..RECORD_HEADER) else { return Ok(None) };
    let record_version = u16::from_be_bytes([header[1], header[2]]);
    let fragment_len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    if !(HANDSHAKE_HEADER..=MAX_FRAGMENT).contains(&fragment_len) {
        return Err(HelloError::BadRecordLength(fragment_len));
    }
    if let Some(&msg_type) = buf.get(RECORD_HEADER)
        && msg_type != HANDSHAKE_CLIENT_HELLO
    {
        return Err(HelloError::NotClientHello(msg_type));
    }
    let Some(hs) = buf.get(RECORD_HEADER..RECORD_HEADER + HANDSHAKE_HEADER) else { return Ok(None) };
    let body_len = (usize::from(hs[1]) << 16) | (usize::from(hs[2]) << 8) | usize::from(hs[3]);
    if HANDSHAKE_HEADER + body_len > fragment_len {
        return Err(HelloError::SplitAcrossRecords);
    }
    let start = RECORD_HEADER + HANDSHAKE_HEADER;
    let Some(body) = buf.get(start..start + body_len) else { return Ok(None) };
    let mut hello = parse_body(body)?;
    hello.record_version = record_version;
    hello.record_len = RECORD_HEADER + fragment_len;
    Ok(Some(hello))
}

/// The ClientHello body, after the handshake header (RFC 8446 section 4.1.2).
fn parse_body(body: &[u8]) -> Result<ClientHello<'_>, HelloError> {
    let mut r = Reader(body);
    let legacy_version = r.u16("client version")?;
    if legacy_version >> 8 != 3 {
        return Err(HelloError::Malformed("client version is not 3.x"));
    }
    r.take(32, "random")?;
    if r.vec8("session id")?.len() > 32 {
        return Err(HelloError::Malformed("session id longer than 32 bytes"));
    }
    let suites = r.vec16("cipher suites")?;
    if suites.is_empty() || suites.len() % 2 != 0 {
        return Err(HelloError::Malformed("cipher suite list is empty or of odd length"));
    }
    if r.vec8("compression methods")?.is_empty() {
        return Err(HelloError::Malformed("no compression method"));
    }
    let mut hello = ClientHello { record_version: 0, legacy_version, server_name: None, record_len: 0, supported_versions: None, alpn: None };
    // Before TLS 1.2 extensions were optional: the body may end here.
    if r.0.is_empty() {
        return Ok(hello);
    }
    let extensions = r.vec16("extensions")?;
    if !r.0.is_empty() {
        return Err(HelloError::Malformed("bytes after the extensions"));
    }
    let mut exts = Reader(extensions);
    while !exts.0.is_empty() {
        let ext_type = exts.u16("extension type")?;
        let data = exts.vec16("extension data")?;
        // Each extension type at most once (RFC 8446 section 4.2); there are few, so a rescan of
        // the ones before costs less than a set would.
        let seen_before = &extensions[..extensions.len() - exts.0.len() - 4 - data.len()];
        if ExtTypes(Reader(seen_before)).any(|t| t == ext_type) {
            return Err(HelloError::Malformed("duplicate extension"));
        }
        match ext_type {
            EXT_SERVER_NAME => hello.server_name = parse_server_name(data)?,
            EXT_ALPN => hello.alpn = Some(parse_alpn(data)?),
            EXT_SUPPORTED_VERSIONS => {
                let mut d = Reader(data);
                let list = d.vec8("supported versions")?;
                if list.len() < 2 || list.len() % 2 != 0 || !d.0.is_empty() {
                    return Err(HelloError::Malformed("supported versions"));
                }
                hello.supported_versions = Some(list);
            }
            _ => {}
        }
    }
    Ok(hello)
}

/// `server_name` (RFC 6066 section 3): a list with at most one host name.
fn parse_server_name(data: &[u8]) -> Result<Option<&[u8]>, HelloError> {
    let mut d = Reader(data);
    let mut list = Reader(d.vec16("server name list")?);
    if !d.0.is_empty() || list.0.is_empty() {
        return Err(HelloError::Malformed("server name list"));
    }
    let mut host = None;
    while !list.0.is_empty() {
        let name_type = list.u8("server name type")?;
        let name = list.vec16("server name")?;
        if name_type == SERVER_NAME_TYPE_HOST {
            if host.is_some() {
                return Err(HelloError::Malformed("two host names in server name"));
            }
            if name.is_empty() {
                return Err(HelloError::Malformed("empty host name"));
            }
            host = Some(name);
        }
    }
    Ok(host)
}

/// `application_layer_protocol_negotiation` (RFC 7301 section 3.1): non-empty names.
fn parse_alpn(data: &[u8]) -> Result<&[u8], HelloError> {
    let mut d = Reader(data);
    let list = d.vec16("ALPN list")?;
    if !d.0.is_empty() || list.is_empty() {
        return Err(HelloError::Malformed("ALPN list"));
    }
    let mut names = Reader(list);
    while !names.0.is_empty() {
        if names.vec8("ALPN protocol")?.is_empty() {
            return Err(HelloError::Malformed("empty ALPN protocol name"));
        }
    }
    Ok(list)
}

/// Reads big-endian fields from the front of a slice; running out is a malformed hello, since
/// the reader only ever sees complete messages.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], HelloError> {
        let (head, tail) = self.0.split_at_checked(n).ok_or(HelloError::Malformed(what))?;
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, HelloError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, HelloError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn vec8(&mut self, what: &'static str) -> Result<&'a [u8], HelloError> {
        let n = self.u8(what)?;
        self.take(usize::from(n), what)
    }
    fn vec16(&mut self, what: &'static str) -> Result<&'a [u8], HelloError> {
        let n = self.u16(what)?;
        self.take(usize::from(n), what)
    }
}

/// The types of a run of already-validated extensions.
struct ExtTypes<'a>(Reader<'a>);

impl Iterator for ExtTypes<'_> {
    type Item = u16;
    fn next(&mut self) -> Option<u16> {
        let t = self.0.u16("").ok()?;
        self.0.vec16("").ok()?;
        Some(t)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Captured from `openssl s_client -connect 127.0.0.1:<port> -servername example.com -alpn h2,http/1.1`
    /// (OpenSSL 3.0.19) against a listener that saved the bytes.
    pub(crate) const OPENSSL_HELLO_HEX: &[&str] = &[
        "160301014a01000146030343029660251efc4134c0f8de251aedbdfad09db97a73ca0d69b0b7dcc03a011820f39a000b233904d73bef661f6a19f224",
        "6ac15f33e92b5f7bd67d1cae9967911d003e130213031301c02cc030009fcca9cca8ccaac02bc02f009ec024c028006bc023c0270067c00ac0140039",
        "c009c0130033009d009c003d003c0035002f00ff010000bf00000010000e00000b6578616d706c652e636f6d000b000403000102000a00160014001d",
        "0017001e0019001801000101010201030104002300000010000e000c02683208687474702f312e310016000000170000000d002a0028040305030603",
        "080708080809080a080b080408050806040105010601030303010302040205020602002b0009080304030303020301002d0002010100330026002400",
        "1d0020ea93e00aec710d3d9cc51a5c8d72466b8b6c4e0fe0ffa28187dd34770376091e",
    ];

    pub(crate) fn unhex(parts: &[&str]) -> Vec<u8> {
        let s: String = parts.concat();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    pub(crate) fn openssl_hello() -> Vec<u8> {
        unhex(OPENSSL_HELLO_HEX)
    }

    fn vec16(b: &[u8]) -> Vec<u8> {
        let mut v = (b.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(b);
        v
    }

    fn ext(t: u16, data: &[u8]) -> Vec<u8> {
        let mut v = t.to_be_bytes().to_vec();
        v.extend(vec16(data));
        v
    }

    /// A ClientHello record with the given extensions (`None`: no extension block at all).
    pub(crate) fn build_hello(exts: Option<&[Vec<u8>]>) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend([7u8; 32]);
        body.push(0); // session id
        body.extend(vec16(&[0x13, 0x01]));
        body.extend([1, 0]);
        if let Some(exts) = exts {
            body.extend(vec16(&exts.concat()));
        }
        let mut hs = vec![1];
        hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend(body);
        let mut rec = vec![0x16, 3, 1];
        rec.extend((hs.len() as u16).to_be_bytes());
        rec.extend(hs);
        rec
    }

    pub(crate) fn sni_ext(host: &[u8]) -> Vec<u8> {
        let mut entry = vec![0];
        entry.extend(vec16(host));
        ext(0, &vec16(&entry))
    }

    #[test]
    fn openssl_hello_is_parsed() {
        let buf = openssl_hello();
        let h = parse_client_hello(&buf).unwrap().unwrap();
        assert_eq!(h.record_version, 0x0301);
        assert_eq!(h.legacy_version, 0x0303);
        assert_eq!(h.server_name, Some(&b"example.com"[..]));
        assert_eq!(h.alpn_protocols().collect::<Vec<_>>(), vec![&b"h2"[..], b"http/1.1"]);
        assert_eq!(h.supported_versions().collect::<Vec<_>>(), vec![0x0304, 0x0303, 0x0302, 0x0301]);
        assert_eq!(h.max_version(), 0x0304);
        assert_eq!(h.record_len, buf.len());
    }

    #[test]
    fn every_prefix_needs_more_bytes() {
        let buf = openssl_hello();
        for n in 0..buf.len() {
            assert_eq!(parse_client_hello(&buf[..n]), Ok(None), "prefix of {n} bytes");
        }
    }

    #[test]
    fn bytes_after_the_record_are_ignored() {
        let mut buf = openssl_hello();
        buf.extend_from_slice(b"\x17\x03\x03garbage");
        assert_eq!(parse_client_hello(&buf).unwrap().unwrap().record_len, buf.len() - 10);
    }

    #[test]
    fn non_tls_fails_on_the_first_byte() {
        assert_eq!(parse_client_hello(b"G"), Err(HelloError::NotHandshake(b'G')));
        assert_eq!(parse_client_hello(b"GET / HTTP/1.1\r\n"), Err(HelloError::NotHandshake(b'G')));
    }

    #[test]
    fn header_fields_are_checked_as_they_arrive() {
        assert_eq!(parse_client_hello(&[0x16, 2]), Err(HelloError::BadRecordVersion(0x0200)));
        assert_eq!(parse_client_hello(&[0x16, 3, 9]), Err(HelloError::BadRecordVersion(0x0309)));
        assert_eq!(parse_client_hello(&[0x16, 3, 1, 0, 2]), Err(HelloError::BadRecordLength(2)));
        assert_eq!(parse_client_hello(&[0x16, 3, 1, 0x40, 1]), Err(HelloError::BadRecordLength(0x4001)));
        assert_eq!(parse_client_hello(&[0x16, 3, 1, 0, 50, 2]), Err(HelloError::NotClientHello(2)));
        assert_eq!(parse_client_hello(&[0x16, 3, 1, 0, 50, 1, 0, 0, 50]), Err(HelloError::SplitAcrossRecords));
    }

    #[test]
    fn hello_without_extensions() {
        let buf = build_hello(None);
        let h = parse_client_hello(&buf).unwrap().unwrap();
        assert_eq!((h.server_name, h.has_supported_versions(), h.max_version()), (None, false, 0x0303));
        assert_eq!(h.alpn_protocols().count(), 0);
    }

    #[test]
    fn hand_built_sni_is_returned_as_sent() {
        let buf = build_hello(Some(&[sni_ext(b"Example.COM")]));
        assert_eq!(parse_client_hello(&buf).unwrap().unwrap().server_name, Some(&b"Example.COM"[..]));
    }

    #[test]
    fn corrupted_hellos_are_errors() {
        let malformed = |exts: &[Vec<u8>]| matches!(parse_client_hello(&build_hello(Some(exts))), Err(HelloError::Malformed(_)));
        assert!(malformed(&[sni_ext(b"a"), sni_ext(b"b")]), "duplicate extension");
        assert!(malformed(&[sni_ext(b"")]), "empty host name");
        assert!(malformed(&[ext(0, &[])]), "empty server name extension");
        assert!(malformed(&[ext(0, &[0, 9, 0, 0, 1, b'a'])]), "list length past the extension");
        assert!(malformed(&[ext(16, &vec16(&[0]))]), "empty ALPN name");
        assert!(malformed(&[ext(16, &vec16(&[]))]), "empty ALPN list");
        assert!(malformed(&[ext(43, &[3, 3, 4, 3])]), "odd supported versions");
        assert!(malformed(&[vec![0, 0, 0]]), "truncated extension header");
        // Lengths that overrun their container.
        let mut buf = build_hello(Some(&[sni_ext(b"a.example")]));
        let n = buf.len();
        buf[n - 10] = 0xff;
        assert!(matches!(parse_client_hello(&buf), Err(HelloError::Malformed(_))));
        // A session id longer than 32 bytes.
        let mut buf = build_hello(None);
        buf[9 + 34] = 33;
        assert!(matches!(parse_client_hello(&buf), Err(HelloError::Malformed(_))));
        // Trailing bytes inside the handshake message.
        let mut buf = build_hello(Some(&[sni_ext(b"a")]));
        buf.push(0);
        buf[4] += 1;
        buf[8] += 1;
        assert_eq!(parse_client_hello(&buf), Err(HelloError::Malformed("bytes after the extensions")));
    }

    #[test]
    fn every_corruption_of_a_real_hello_is_handled() {
        // Flip bits of every byte: the parser returns something and never panics.
        let buf = openssl_hello();
        for i in 0..buf.len() {
            for x in [0x01, 0x80, 0xff] {
                let mut b = buf.clone();
                b[i] ^= x;
                if let Ok(Some(h)) = parse_client_hello(&b) {
                    assert!(h.record_len <= RECORD_HEADER + MAX_FRAGMENT);
                }
            }
        }
    }

    mod never_panic {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn arbitrary_bytes(buf in prop::collection::vec(any::<u8>(), 0..600)) {
                let _ = parse_client_hello(&buf);
            }

            #[test]
            fn tls_looking_bytes(tail in prop::collection::vec(any::<u8>(), 0..400), len in 0u16..500) {
                let mut buf = vec![0x16, 3, 1];
                buf.extend(len.to_be_bytes());
                buf.push(1);
                buf.extend(tail);
                let _ = parse_client_hello(&buf);
            }
        }
    }
}
