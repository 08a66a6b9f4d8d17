//! HTTP response compression: `compression algo`, `compression type`, `compression offload` and
//! `tune.comp.maxlevel`, with HAProxy's rules for when a response is compressed.
//!
//! The work splits in three, at the points of a transaction where the facts are known:
//! - **The request** ([`Policy::choose`]): the algorithm the client accepts (its `Accept-Encoding`
//!   with q-values), unless the request cannot take a compressed answer (HTTP/1.0, `HEAD`, an old
//!   browser announcing itself as `Mozilla/4`). With `offload`, the request's `Accept-Encoding`
//!   goes (see [`Policy::offload`]), so the server sends its response whole.
//! - **The response head** ([`Policy::applies`], [`response_edits`]): a `200` to `203` of
//!   HTTP/1.1 with a body of known length (`Content-Length` or chunked), not encoded yet, not
//!   `Cache-Control: no-transform`, not `multipart`, of a listed type when `compression type` lists
//!   any. Its head then loses `Content-Length`, says `Transfer-Encoding: chunked` and
//!   `Content-Encoding`, gets `Vary: Accept-Encoding`, and a strong `ETag` becomes weak (the bytes
//!   differ from the server's; RFC 9110 8.8.1).
//! - **The body** ([`Encoder`]): streamed through flate2, each batch read from the server sent on
//!   as one chunk after a sync flush, so a slowly produced body reaches the client as it comes.
//!
//! HAProxy takes the backend's settings when the backend has `compression algo`, else the
//! frontend's; sluiced does the same. `identity` is accepted and compresses nothing.

use std::io::Write;

use flate2::Compression;
use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};

use super::config::CompressionAlgo;
use crate::route::eval::HttpMsg;

/// Compression as one proxy configures it.
#[derive(Debug, Clone)]
pub struct Policy {
    /// In the configured order, which breaks ties between equal q-values.
    pub algos: Vec<CompressionAlgo>,
    /// `compression type`, lower-cased; empty compresses every type.
    pub types: Vec<Vec<u8>>,
    /// `compression offload`: the server never sees the client's `Accept-Encoding`.
    pub offload: bool,
    /// zlib level, 0 to 9 (`tune.comp.maxlevel`, HAProxy's default 1).
    pub level: u32,
}

impl Policy {
    /// The compiled policy of a proxy's settings; `None` when it names no algorithm.
    pub fn compile(c: &super::config::Compression, level: u32) -> Option<Policy> {
        if c.algos.is_empty() {
            return None;
        }
        Some(Policy { algos: c.algos.clone(), types: c.types.iter().map(|t| t.to_ascii_lowercase().into_bytes()).collect(), offload: c.offload, level })
    }

    /// The algorithm to compress the response to `req` with, if the request allows one: the
    /// configured algorithm the client's `Accept-Encoding` gives the highest q-value (ties go to
    /// the configured order); `*` stands for any. `None` for `identity`, for HTTP/1.0, `HEAD` and
    /// `CONNECT` requests, and for `Mozilla/4` user agents other than MSIE 6 SP2 and later.
    pub fn choose(&self, req: &dyn HttpMsg) -> Option<CompressionAlgo> {
        if req.version() != b"HTTP/1.1" || req.method() == b"HEAD" || req.method() == b"CONNECT" {
            return None;
        }
        // (q-value in thousandths, configured rank, algorithm)
        let mut best: Option<(u16, usize, CompressionAlgo)> = None;
        for i in 0..req.header_count() {
            let (name, value) = req.header(i);
            if name.eq_ignore_ascii_case(b"user-agent") && old_browser(value) {
                return None;
            }
            if !name.eq_ignore_ascii_case(b"accept-encoding") {
                continue;
            }
            for element in value.split(|&b| b == b',') {
                let mut parts = element.split(|&b| b == b';');
                let coding = trim(parts.next().unwrap_or_default());
                let q = parts.find_map(|p| qvalue(trim(p))).unwrap_or(1000);
                if q == 0 {
                    continue;
                }
                for (rank, &algo) in self.algos.iter().enumerate() {
                    if coding == b"*" || coding.eq_ignore_ascii_case(token(algo)) {
                        if best.is_none_or(|(bq, br, _)| q > bq || (q == bq && rank < br)) {
                            best = Some((q, rank, algo));
                        }
                        break;
                    }
                }
            }
        }
        best.map(|(_, _, a)| a).filter(|&a| a != CompressionAlgo::Identity)
    }

    /// Whether the response `res` (framed with a `Content-Length` of `len`, or chunked when
    /// `len` is `None`) is one to compress.
    pub fn applies(&self, res: &dyn HttpMsg, len: Option<u64>) -> bool {
        if !(200..=203).contains(&res.status()) || res.version() != b"HTTP/1.1" || len == Some(0) {
            return false;
        }
        let mut typed = false;
        for i in 0..res.header_count() {
            let (name, value) = res.header(i);
            if name.eq_ignore_ascii_case(b"content-encoding") {
                return false;
            }
            if name.eq_ignore_ascii_case(b"cache-control") && value.split(|&b| b == b',').any(|d| trim(d).eq_ignore_ascii_case(b"no-transform")) {
                return false;
            }
            if name.eq_ignore_ascii_case(b"content-type") {
                if starts_with_ignore_case(value, b"multipart") {
                    return false;
                }
                typed = typed || self.types.iter().any(|t| starts_with_ignore_case(value, t));
            }
        }
        self.types.is_empty() || typed
    }
}

/// The request header `offload` removes.
pub fn offload_edit() -> super::edit::Edit {
    super::edit::Edit::Del { name: "accept-encoding".into(), matching: super::edit::NameMatch::Str }
}

/// The rewrites of a response head that is compressed with `algo`.
pub fn response_edits(algo: CompressionAlgo, res: &dyn HttpMsg) -> Vec<super::edit::Edit> {
    use super::edit::{Edit, NameMatch};
    let mut edits = vec![
        Edit::Del { name: "content-length".into(), matching: NameMatch::Str },
        Edit::Set { name: "transfer-encoding".into(), value: b"chunked".to_vec() },
        Edit::Set { name: "content-encoding".into(), value: token(algo).to_vec() },
    ];
    let mut varies = false;
    let mut etags = Vec::new();
    for i in 0..res.header_count() {
        let (name, value) = res.header(i);
        if name.eq_ignore_ascii_case(b"vary") {
            varies = varies || value.split(|&b| b == b',').any(|v| matches!(trim(v), b"*") || trim(v).eq_ignore_ascii_case(b"accept-encoding"));
        } else if name.eq_ignore_ascii_case(b"etag") {
            etags.push(if value.starts_with(b"\"") { Some([b"W/", value].concat()) } else { Some(value.to_vec()) });
        }
    }
    if !varies {
        edits.push(Edit::Add { name: "vary".into(), value: b"Accept-Encoding".to_vec() });
    }
    if !etags.is_empty() {
        edits.push(Edit::SetFields { name: "etag".into(), values: etags });
    }
    edits
}

/// The content-coding a client names `algo` by (`raw-deflate` answers `deflate` too).
fn token(algo: CompressionAlgo) -> &'static [u8] {
    match algo {
        CompressionAlgo::Identity => b"identity",
        CompressionAlgo::Gzip => b"gzip",
        CompressionAlgo::Deflate | CompressionAlgo::RawDeflate => b"deflate",
    }
}

/// `q=0.5` as 500; `None` when `p` is not a q parameter, 0 when its value is not a qvalue.
fn qvalue(p: &[u8]) -> Option<u16> {
    let v = p.strip_prefix(b"q=").or_else(|| p.strip_prefix(b"Q="))?;
    let (int, frac) = match v.iter().position(|&b| b == b'.') {
        Some(dot) => (&v[..dot], &v[dot + 1..]),
        None => (v, &b""[..]),
    };
    if int.len() != 1 || frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return Some(0);
    }
    let mut q = match int[0] {
        b'0' => 0u16,
        b'1' => 1000,
        _ => return Some(0),
    };
    for (i, &d) in frac.iter().enumerate() {
        q += u16::from(d - b'0') * [100, 10, 1][i];
    }
    Some(q.min(1000))
}

/// A `Mozilla/4` user agent is an old browser known to mishandle compressed responses, unless it
/// is MSIE 7 or later, or MSIE 6 with XP SP2 (`SV1`), as in HAProxy.
fn old_browser(ua: &[u8]) -> bool {
    if !ua.starts_with(b"Mozilla/4") {
        return false;
    }
    let Some(at) = ua.windows(5).position(|w| w == b"MSIE ") else { return true };
    let digits = ua[at + 5..].iter().take_while(|b| b.is_ascii_digit()).fold(0u32, |n, &d| n.saturating_mul(10).saturating_add(u32::from(d - b'0')));
    !(digits >= 7 || (digits == 6 && ua.windows(3).any(|w| w == b"SV1")))
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |e| e + 1);
    &v[start..end]
}

fn starts_with_ignore_case(v: &[u8], prefix: &[u8]) -> bool {
    v.len() >= prefix.len() && v[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// A compressed body being written out as HTTP/1.1 chunks.
pub struct Encoder {
    inner: Inner,
    /// Uncompressed bytes taken in, and compressed bytes given out (chunk framing aside), for
    /// `comp_in` and `comp_out`.
    pub taken: u64,
    pub given: u64,
}

enum Inner {
    Gzip(GzEncoder<Vec<u8>>),
    Zlib(ZlibEncoder<Vec<u8>>),
    Raw(DeflateEncoder<Vec<u8>>),
}

impl Encoder {
    /// `None` for `identity`.
    pub fn new(algo: CompressionAlgo, level: u32) -> Option<Encoder> {
        let level = Compression::new(level.min(9));
        let inner = match algo {
            CompressionAlgo::Identity => return None,
            CompressionAlgo::Gzip => Inner::Gzip(GzEncoder::new(Vec::new(), level)),
            CompressionAlgo::Deflate => Inner::Zlib(ZlibEncoder::new(Vec::new(), level)),
            CompressionAlgo::RawDeflate => Inner::Raw(DeflateEncoder::new(Vec::new(), level)),
        };
        Some(Encoder { inner, taken: 0, given: 0 })
    }

    /// Takes in body bytes. Writing into memory cannot fail.
    pub fn write(&mut self, data: &[u8]) {
        self.taken += data.len() as u64;
        let _ = match &mut self.inner {
            Inner::Gzip(e) => e.write_all(data),
            Inner::Zlib(e) => e.write_all(data),
            Inner::Raw(e) => e.write_all(data),
        };
    }

    /// Appends to `out`, as one chunk, everything compressed so far (a sync flush: the client can
    /// decode all of it).
    pub fn flush_into(&mut self, out: &mut Vec<u8>) {
        let _ = match &mut self.inner {
            Inner::Gzip(e) => e.flush(),
            Inner::Zlib(e) => e.flush(),
            Inner::Raw(e) => e.flush(),
        };
        self.chunk_into(out);
    }

    /// Ends the stream: the last compressed bytes as a chunk, then the last chunk.
    pub fn finish_into(&mut self, out: &mut Vec<u8>) {
        let _ = match &mut self.inner {
            Inner::Gzip(e) => e.try_finish(),
            Inner::Zlib(e) => e.try_finish(),
            Inner::Raw(e) => e.try_finish(),
        };
        self.chunk_into(out);
        out.extend_from_slice(b"0\r\n\r\n");
    }

    fn chunk_into(&mut self, out: &mut Vec<u8>) {
        let produced = match &mut self.inner {
            Inner::Gzip(e) => e.get_mut(),
            Inner::Zlib(e) => e.get_mut(),
            Inner::Raw(e) => e.get_mut(),
        };
        if produced.is_empty() {
            return;
        }
        self.given += produced.len() as u64;
        let _ = write!(out, "{:x}\r\n", produced.len());
        out.extend_from_slice(produced);
        out.extend_from_slice(b"\r\n");
        produced.clear();
    }
}

#[cfg(test)]
#[path = "compress_tests.rs"]
mod tests;
