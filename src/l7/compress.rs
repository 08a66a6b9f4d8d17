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
//!   `Cache-Control: no-transform`, not `multipart`, with one valid `ETag` at most, not under
//!   `compression minsize-res`, of a listed type when `compression type` lists any. Its head then loses `Content-Length`, says `Transfer-Encoding: chunked` and
//!   `Content-Encoding`, gets `Vary: Accept-Encoding`, and a strong `ETag` becomes weak (the bytes
//!   differ from the server's; RFC 9110 8.8.1).
//! - **The body** ([`Encoder`]): streamed through flate2, each batch read from the server sent on
//!   as one chunk after a sync flush, so a slowly produced body reaches the client as it comes.
//!
//! HAProxy takes the backend's settings when the backend has `compression algo`, else the
//! frontend's; sluiced does the same. `identity` is accepted and compresses nothing.

use std::io::Write;

use flate2::{Compress, Compression, FlushCompress};

use super::config::CompressionAlgo;
use super::reply::has_token;
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
    /// `compression minsize-res`: a smaller `Content-Length` passes as it is.
    pub minsize: u64,
}

impl Policy {
    /// The compiled policy of a proxy's settings; `None` when it names no algorithm.
    /// `None` when it names no algorithm, or compresses requests only (`compression direction
    /// request`).
    pub fn compile(c: &super::config::Compression, level: u32) -> Option<Policy> {
        if c.algos.is_empty() || c.direction == Some(super::config::CompressionDirection::Request) {
            return None;
        }
        Some(Policy {
            algos: c.algos.clone(),
            types: c.types.iter().map(|t| t.to_ascii_lowercase().into_bytes()).collect(),
            offload: c.offload,
            level,
            minsize: c.minsize_res.unwrap_or(0),
        })
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
                let coding = parts.next().unwrap_or_default().trim_ascii();
                let q = parts.find_map(|p| qvalue(p.trim_ascii())).unwrap_or(1000);
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
        if !(200..=203).contains(&res.status()) || res.version() != b"HTTP/1.1" || len.is_some_and(|n| n == 0 || n < self.minsize) {
            return false;
        }
        let (mut typed, mut etags) = (false, 0);
        for i in 0..res.header_count() {
            let (name, value) = res.header(i);
            if name.eq_ignore_ascii_case(b"content-encoding") {
                return false;
            }
            if name.eq_ignore_ascii_case(b"cache-control") && has_token(value, b"no-transform") {
                return false;
            }
            // Several ETags, or one that is not an entity-tag (RFC 9110 8.8.3): HAProxy leaves
            // such a response alone rather than guess which one to weaken.
            if name.eq_ignore_ascii_case(b"etag") {
                etags += 1;
                let tag = value.strip_prefix(b"W/").unwrap_or(value);
                if etags > 1 || tag.len() < 2 || tag[0] != b'"' || tag[tag.len() - 1] != b'"' || tag[1..tag.len() - 1].contains(&b'"') {
                    return false;
                }
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
    for i in 0..res.header_count() {
        let (name, value) = res.header(i);
        if name.eq_ignore_ascii_case(b"vary") {
            varies = varies || has_token(value, b"*") || has_token(value, b"accept-encoding");
        } else if name.eq_ignore_ascii_case(b"etag") && value.starts_with(b"\"") {
            // [`Policy::applies`] let through one valid entity-tag at most.
            edits.push(Edit::Set { name: "etag".into(), value: [b"W/", value].concat() });
        }
    }
    if !varies {
        edits.push(Edit::Add { name: "vary".into(), value: b"Accept-Encoding".to_vec() });
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

fn starts_with_ignore_case(v: &[u8], prefix: &[u8]) -> bool {
    v.len() >= prefix.len() && v[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// A compressed body being written out as HTTP/1.1 chunks.
///
/// At level 1 (the default) the deflate stream is [`super::deflate::FastDeflate`]'s. Above it,
/// flate2's, whose state comes from a small pool per worker thread and goes back to it when the
/// body is done: a new one allocates about 300 KB of buffers (miniz_oxide's window, hash chains
/// and code buffers). The gzip and zlib wrappers are written here around raw deflate (RFC 1952,
/// RFC 1950), so each kind of state serves all three algorithms.
pub struct Encoder {
    deflate: Deflate,
    wrap: Wrap,
    level: u32,
    /// Compressed bytes not yet written out as a chunk.
    pending: Vec<u8>,
    /// Uncompressed bytes taken in, and compressed bytes given out (chunk framing aside), for
    /// `comp_in` and `comp_out`.
    pub taken: u64,
    pub given: u64,
}

/// Level 1: sluiced's own fast deflate (see [`super::deflate`]); above: flate2's, pooled.
enum Deflate {
    Fast(Box<super::deflate::FastDeflate>),
    Flate(Option<Compress>),
}

enum Wrap {
    Gzip(flate2::Crc),
    Zlib(u32, u32),
    Raw,
}

/// Deflate states kept per worker thread for the next compressed response (at most
/// [`POOL_MAX`], about 300 KB each), by level.
const POOL_MAX: usize = 4;

thread_local! {
    static POOL: std::cell::RefCell<Vec<(u32, Compress)>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Encoder {
    /// `None` for `identity`.
    pub fn new(algo: CompressionAlgo, level: u32) -> Option<Encoder> {
        let level = level.min(9);
        let (wrap, pending) = match algo {
            CompressionAlgo::Identity => return None,
            // The gzip header: magic, deflate, no flags, no time, no extra flags, OS unknown.
            CompressionAlgo::Gzip => (Wrap::Gzip(flate2::Crc::new()), vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]),
            // The zlib header: deflate with a 32 KB window, no dictionary, the level's hint,
            // checked as RFC 1950 wants (a multiple of 31).
            CompressionAlgo::Deflate => {
                let flevel: u16 = match level {
                    0 | 1 => 0,
                    2..=5 => 1,
                    6 => 2,
                    _ => 3,
                };
                let h = 0x7800u16 | (flevel << 6);
                let h = h + (31 - h % 31) % 31;
                (Wrap::Zlib(1, 0), h.to_be_bytes().to_vec())
            }
            CompressionAlgo::RawDeflate => (Wrap::Raw, Vec::new()),
        };
        let deflate = if level <= 1 {
            Deflate::Fast(Box::default())
        } else {
            Deflate::Flate(Some(
                POOL.with(|p| {
                    let mut p = p.borrow_mut();
                    let at = p.iter().position(|(l, _)| *l == level)?;
                    Some(p.swap_remove(at).1)
                })
                .unwrap_or_else(|| Compress::new(Compression::new(level), false)),
            ))
        };
        Some(Encoder { deflate, wrap, level, pending, taken: 0, given: 0 })
    }

    /// Takes in body bytes.
    pub fn write(&mut self, data: &[u8]) {
        self.taken += data.len() as u64;
        match &mut self.wrap {
            Wrap::Gzip(crc) => crc.update(data),
            Wrap::Zlib(a, b) => adler32(a, b, data),
            Wrap::Raw => {}
        }
        self.run(data, FlushCompress::None);
    }

    /// Appends to `out`, as one chunk, everything compressed so far (a sync flush: the client can
    /// decode all of it).
    pub fn flush_into(&mut self, out: &mut Vec<u8>) {
        self.run(&[], FlushCompress::Sync);
        self.chunk_into(out);
    }

    /// Ends the stream: the last compressed bytes and the wrapper's trailer as a chunk, then the
    /// last chunk.
    pub fn finish_into(&mut self, out: &mut Vec<u8>) {
        self.run(&[], FlushCompress::Finish);
        match &self.wrap {
            Wrap::Gzip(crc) => {
                self.pending.extend_from_slice(&crc.sum().to_le_bytes());
                self.pending.extend_from_slice(&crc.amount().to_le_bytes());
            }
            Wrap::Zlib(a, b) => self.pending.extend_from_slice(&((*b << 16) | *a).to_be_bytes()),
            Wrap::Raw => {}
        }
        self.chunk_into(out);
        out.extend_from_slice(b"0\r\n\r\n");
    }

    /// Feeds `input` to deflate with `flush`, collecting its output in `pending`.
    fn run(&mut self, mut input: &[u8], flush: FlushCompress) {
        let d = match &mut self.deflate {
            Deflate::Fast(f) => {
                match flush {
                    FlushCompress::Sync => f.flush(&mut self.pending),
                    FlushCompress::Finish => f.finish(&mut self.pending),
                    _ => f.write(input, &mut self.pending),
                }
                return;
            }
            Deflate::Flate(d) => match d {
                Some(d) => d,
                None => return,
            },
        };
        loop {
            if self.pending.capacity() - self.pending.len() < 512 {
                self.pending.reserve(input.len().max(8192));
            }
            let (in_before, out_before) = (d.total_in(), self.pending.len());
            let Ok(status) = d.compress_vec(input, &mut self.pending, flush) else { return };
            let used = (d.total_in() - in_before) as usize;
            input = &input[used..];
            let room_left = self.pending.len() < self.pending.capacity();
            let done = match flush {
                FlushCompress::Finish => status == flate2::Status::StreamEnd,
                _ => input.is_empty() && room_left,
            };
            // No progress with room to spare: nothing more will come of this call.
            if done || (used == 0 && self.pending.len() == out_before && room_left) {
                return;
            }
        }
    }

    fn chunk_into(&mut self, out: &mut Vec<u8>) {
        if self.pending.is_empty() {
            return;
        }
        self.given += self.pending.len() as u64;
        let _ = write!(out, "{:x}\r\n", self.pending.len());
        out.extend_from_slice(&self.pending);
        out.extend_from_slice(b"\r\n");
        self.pending.clear();
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        if let Deflate::Flate(Some(mut d)) = std::mem::replace(&mut self.deflate, Deflate::Flate(None)) {
            POOL.with(|p| {
                let mut p = p.borrow_mut();
                if p.len() < POOL_MAX {
                    d.reset();
                    p.push((self.level, d));
                }
            });
        }
    }
}

/// The Adler-32 sums (RFC 1950 8.2) `a` and `b` carried over `data`.
fn adler32(a: &mut u32, b: &mut u32, data: &[u8]) {
    const MOD: u32 = 65521;
    // 5552 bytes is the most that can be summed before `b` could overflow a u32.
    for block in data.chunks(5552) {
        for &x in block {
            *a += u32::from(x);
            *b += *a;
        }
        *a %= MOD;
        *b %= MOD;
    }
}

#[cfg(test)]
#[path = "compress_tests.rs"]
mod tests;
