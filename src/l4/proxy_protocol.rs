//! The PROXY protocol, versions 1 (text) and 2 (binary, with TLVs): parsing what `accept-proxy`
//! listeners receive and encoding what `send-proxy`/`send-proxy-v2` servers get. (Interface stub.)

use std::net::SocketAddr;

/// A parsed PROXY header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyHeader {
    pub version: u8,
    /// The original addresses; `None` for `LOCAL` (v2) and `UNKNOWN` (v1) headers, where the
    /// connection's own addresses stand.
    pub src: Option<SocketAddr>,
    pub dst: Option<SocketAddr>,
    /// v2 TLVs as (type, value), in order.
    pub tlvs: Vec<(u8, Vec<u8>)>,
}

/// Parses a header at the start of `buf`. `Ok(None)`: not enough bytes yet; `Ok(Some((h, n)))`:
/// the header takes the first `n` bytes; `Err`: not a valid PROXY header (close the connection).
pub fn parse(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, String> {
    let _ = buf;
    Err("PROXY protocol is not implemented yet".into())
}

/// Encodes a v1 header (`PROXY TCP4 ...\r\n`, or `PROXY UNKNOWN\r\n` when an address is missing
/// or the families differ).
pub fn encode_v1(src: Option<SocketAddr>, dst: Option<SocketAddr>) -> Vec<u8> {
    let _ = (src, dst);
    Vec::new()
}

/// Encodes a v2 header with the given TLVs (`LOCAL` when an address is missing).
pub fn encode_v2(src: Option<SocketAddr>, dst: Option<SocketAddr>, tlvs: &[(u8, &[u8])]) -> Vec<u8> {
    let _ = (src, dst, tlvs);
    Vec::new()
}
