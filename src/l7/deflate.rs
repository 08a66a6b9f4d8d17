//! A fast deflate (RFC 1951) encoder for HTTP compression at level 1, the default of
//! `tune.comp.maxlevel`: greedy matching through one small hash table, fixed Huffman codes only,
//! and a sync flush that costs a few bytes.
//!
//! Why not a crate: flate2's Rust backend (miniz_oxide) at level 1 spent about 700,000
//! instructions on a 16 KB page of HTML (callgrind, through the proxy), more than half of them
//! clearing some 300 KB of window, hash chains and code buffers that each stream starts with (its
//! reset clears them too), and much of the rest building a dynamic Huffman table at every sync
//! flush. A proxy compresses many short bodies, each flushed once per read from the server: the
//! case that design serves worst. HAProxy uses its own small compressor (libslz) for the same
//! reason. This one clears a 16 KB table per stream, keeps the last 32 KB of input, and does
//! nothing at a flush but end the block: about 154,000 instructions for the same page.
//! Levels 2 to 9 still use flate2, for its better ratio.
//!
//! The trade: fixed codes and one candidate per hash compress less. On the benchmark's page
//! (`bench/http/compressbench.py`) the output is 3,106 bytes, against 2,722 for miniz_oxide's
//! level 1, 2,392 for nginx's zlib at level 1 and 3,182 for HAProxy's libslz.

/// Input positions kept for matches: deflate's largest distance.
const WINDOW: usize = 32 * 1024;
const HASH_BITS: u32 = 12;
const MIN_MATCH: usize = 4;
const MAX_MATCH: usize = 258;

/// Streaming deflate state: what is written goes to the `out` of each call, as whole bytes
/// except for the bits of an unfinished byte kept until the next call.
pub struct FastDeflate {
    /// The input so far, its last [`WINDOW`] bytes at least (trimmed when it holds twice that).
    hist: Vec<u8>,
    /// For each hash of four bytes, 1 + the position in `hist` where they were last seen; 0 none.
    table: Box<[u32; 1 << HASH_BITS]>,
    bits: u64,
    nbits: u32,
    /// A fixed-code block is open (its header written, not its end).
    open: bool,
}

impl Default for FastDeflate {
    fn default() -> FastDeflate {
        FastDeflate::new()
    }
}

impl FastDeflate {
    pub fn new() -> FastDeflate {
        FastDeflate { hist: Vec::new(), table: Box::new([0; 1 << HASH_BITS]), bits: 0, nbits: 0, open: false }
    }

    /// Compresses `data`, appending to `out` what is complete.
    pub fn write(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if data.is_empty() {
            return;
        }
        // About what fixed codes make of text, so that `out` grows once.
        out.reserve(data.len() / 2 + 64);
        if !self.open {
            // BFINAL 0, BTYPE 01 (fixed codes).
            self.put(0b010, 3, out);
            self.open = true;
        }
        if self.hist.len() + data.len() > 2 * WINDOW {
            self.trim();
        }
        if self.hist.capacity() == 0 {
            self.hist.reserve_exact((2 * WINDOW).max(data.len()));
        }
        let start = self.hist.len();
        self.hist.extend_from_slice(data);
        let h = &self.hist[..];
        let end = h.len();
        let table = &mut *self.table;
        let (mut bits, mut nbits) = (self.bits, self.nbits);
        let mut put = |code: u32, n: u32, out: &mut Vec<u8>| {
            bits |= u64::from(code) << nbits;
            nbits += n;
            if nbits >= 32 {
                out.extend_from_slice(&(bits as u32).to_le_bytes());
                bits >>= 32;
                nbits -= 32;
            }
        };
        let mut i = start;
        while i + MIN_MATCH <= end {
            let word = load32(h, i);
            let slot = &mut table[(word.wrapping_mul(0x9E37_79B1) >> (32 - HASH_BITS)) as usize];
            let cand = *slot as usize;
            *slot = (i + 1) as u32;
            if cand > 0 && i - (cand - 1) <= WINDOW && load32(h, cand - 1) == word {
                let from = cand - 1;
                let most = (end - i).min(MAX_MATCH);
                let mut len = MIN_MATCH;
                // Eight bytes at a time, then the first that differs.
                while len + 8 <= most {
                    let x = load64(h, from + len) ^ load64(h, i + len);
                    if x != 0 {
                        len += (x.trailing_zeros() / 8) as usize;
                        break;
                    }
                    len += 8;
                }
                if len + 8 > most {
                    while len < most && h[from + len] == h[i + len] {
                        len += 1;
                    }
                }
                let len = len.min(most);
                let (code, n) = match_bits(len);
                put(code, n, out);
                let (dcode, dn) = dist_bits(i - from);
                put(dcode, dn, out);
                i += len;
                continue;
            }
            let (code, n) = LITERALS[h[i] as usize];
            put(u32::from(code), u32::from(n), out);
            i += 1;
        }
        for &b in &h[i..end] {
            let (code, n) = LITERALS[b as usize];
            put(u32::from(code), u32::from(n), out);
        }
        self.bits = bits;
        self.nbits = nbits;
    }

    /// Ends the block and adds an empty stored block, byte-aligned: the receiver can decode
    /// everything written so far (zlib's `Z_SYNC_FLUSH`).
    pub fn flush(&mut self, out: &mut Vec<u8>) {
        if !self.open {
            return;
        }
        self.put(0, 7, out); // end of block: symbol 256, seven zero bits
        self.open = false;
        self.put(0, 3, out); // BFINAL 0, BTYPE 00 (stored)
        self.align(out);
        out.extend_from_slice(&[0, 0, 0xff, 0xff]);
    }

    /// Ends the stream: the open block, then a final empty block, padded to a byte.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.open {
            self.put(0, 7, out);
            self.open = false;
        }
        self.put(0b011, 3, out); // BFINAL 1, BTYPE 01
        self.put(0, 7, out);
        self.align(out);
    }

    /// Drops history older than the window; the table's positions move with it.
    fn trim(&mut self) {
        let keep = WINDOW.min(self.hist.len());
        let drop = self.hist.len() - keep;
        if drop == 0 {
            return;
        }
        self.hist.drain(..drop);
        let drop = drop as u32;
        for e in self.table.iter_mut() {
            *e = e.saturating_sub(drop);
        }
    }

    #[inline]
    fn put(&mut self, bits: u32, n: u32, out: &mut Vec<u8>) {
        self.bits |= u64::from(bits) << self.nbits;
        self.nbits += n;
        if self.nbits >= 32 {
            out.extend_from_slice(&(self.bits as u32).to_le_bytes());
            self.bits >>= 32;
            self.nbits -= 32;
        }
    }

    fn align(&mut self, out: &mut Vec<u8>) {
        while self.nbits > 0 {
            out.push(self.bits as u8);
            self.bits >>= 8;
            self.nbits = self.nbits.saturating_sub(8);
        }
        self.bits = 0;
    }
}

/// Four input bytes at `i`, little-endian.
#[inline(always)]
fn load32(h: &[u8], i: usize) -> u32 {
    let b: [u8; 4] = h[i..i + 4].try_into().unwrap_or_default();
    u32::from_le_bytes(b)
}

#[inline(always)]
fn load64(h: &[u8], i: usize) -> u64 {
    let b: [u8; 8] = h[i..i + 8].try_into().unwrap_or_default();
    u64::from_le_bytes(b)
}

/// The code of a match length (symbols 257 to 285, RFC 1951 3.2.5) with its extra bits, as bits
/// to write and how many.
#[inline(always)]
fn match_bits(len: usize) -> (u32, u32) {
    LENGTHS[len]
}

/// [`length_bits`] of every match length, computed at build time (index: the length).
const LENGTHS: [(u32, u32); MAX_MATCH + 1] = {
    let mut t = [(0u32, 0u32); MAX_MATCH + 1];
    let mut len = 3;
    while len <= MAX_MATCH {
        t[len] = length_bits(len);
        len += 1;
    }
    t
};

const fn length_bits(len: usize) -> (u32, u32) {
    let (sym, extra, value) = if len == MAX_MATCH {
        (285u32, 0u32, 0u32)
    } else {
        let v = (len - 3) as u32;
        if v < 8 {
            (257 + v, 0, 0)
        } else {
            let nb = 31 - v.leading_zeros();
            (257 + 4 * (nb - 1) + ((v >> (nb - 2)) & 3), nb - 2, v & ((1 << (nb - 2)) - 1))
        }
    };
    let (code, clen) = fixed_code(sym);
    (code | (value << clen), clen + extra)
}

/// The 30 distance codes, bit-reversed in five bits.
const DIST_CODES: [u32; 30] = {
    let mut t = [0u32; 30];
    let mut c = 0;
    while c < 30 {
        t[c] = reverse(c as u32, 5);
        c += 1;
    }
    t
};

/// The five-bit code of a distance (codes 0 to 29) with its extra bits.
#[inline(always)]
fn dist_bits(dist: usize) -> (u32, u32) {
    let v = (dist - 1) as u32;
    let (dcode, dextra, dvalue) = if v < 4 {
        (v, 0, 0)
    } else {
        let nb = 31 - v.leading_zeros();
        (2 * nb + ((v >> (nb - 1)) & 1), nb - 1, v & ((1 << (nb - 1)) - 1))
    };
    (DIST_CODES[dcode as usize] | (dvalue << 5), 5 + dextra)
}

/// The fixed Huffman code of a literal/length symbol (RFC 1951 3.2.6), bit-reversed for the
/// LSB-first stream, and its length.
const fn fixed_code(sym: u32) -> (u32, u32) {
    let (code, len) = match sym {
        0..=143 => (0x30 + sym, 8),
        144..=255 => (0x190 + sym - 144, 9),
        256..=279 => (sym - 256, 7),
        _ => (0xc0 + sym - 280, 8),
    };
    (reverse(code, len), len)
}

const fn reverse(code: u32, len: u32) -> u32 {
    code.reverse_bits() >> (32 - len)
}

/// [`fixed_code`] of every byte, computed at build time.
const LITERALS: [(u16, u8); 256] = {
    let mut t = [(0u16, 0u8); 256];
    let mut i = 0;
    while i < 256 {
        let (c, l) = fixed_code(i as u32);
        t[i] = (c as u16, l as u8);
        i += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn inflate(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::DeflateDecoder::new(data).read_to_end(&mut out).expect("a valid deflate stream");
        out
    }

    fn compress(parts: &[&[u8]], flush_each: bool) -> Vec<u8> {
        let mut d = FastDeflate::new();
        let mut out = Vec::new();
        for p in parts {
            d.write(p, &mut out);
            if flush_each {
                d.flush(&mut out);
            }
        }
        d.finish(&mut out);
        out
    }

    #[test]
    fn streams_of_every_shape_inflate_to_their_input() {
        let text: Vec<u8> = (0..40_000u32).flat_map(|i| format!("<td>{}</td>", i % 313).into_bytes()).collect();
        let random = noise(100_000);
        let runs = [vec![b'a'; 70_000], vec![0u8; 5], b"abcabcabcabcabcabcabcabcabcabc".to_vec()];
        for input in [&text[..], &random[..], &runs[0][..], &runs[1][..], &runs[2][..], b"", b"x"] {
            for part in [1usize, 7, 1000, 16_384, 100_000] {
                let parts: Vec<&[u8]> = input.chunks(part).collect();
                for flush_each in [false, true] {
                    let z = compress(&parts, flush_each);
                    assert!(inflate(&z) == input, "input of {} bytes in parts of {part}, flush {flush_each}", input.len());
                }
            }
        }
        // It compresses: text to under a fifth, long runs to almost nothing.
        assert!(compress(&[&text], false).len() * 5 < text.len());
        assert!(compress(&[&runs[0]], false).len() < 1000);
    }

    #[test]
    fn every_match_length_and_distance_code_decodes() {
        // A block of noise, then copies of parts of it at every distance class and every length.
        let noise = noise(40_000);
        let mut input = noise.clone();
        for (k, dist) in [1usize, 2, 3, 4, 5, 7, 9, 13, 17, 33, 65, 129, 257, 513, 1025, 2049, 4097, 8193, 16385, 24577, 32768].into_iter().enumerate() {
            for len in [4usize, 5, 10, 11, 13, 19, 35, 67, 131, 227, 257, 258, 259] {
                let from = input.len() - dist;
                for j in 0..len {
                    let b = input[from + j];
                    input.push(b);
                }
                input.push(k as u8);
                input.extend_from_slice(&noise[..7]);
            }
        }
        assert!(inflate(&compress(&[&input], false)) == input);
        assert!(inflate(&compress(&input.chunks(3000).collect::<Vec<_>>(), true)) == input);
    }

    #[test]
    fn a_sync_flush_makes_everything_so_far_decodable() {
        let mut d = FastDeflate::new();
        let mut out = Vec::new();
        d.write(b"hello hello hello, ", &mut out);
        d.flush(&mut out);
        let mut dec = flate2::Decompress::new(false);
        let mut got = Vec::with_capacity(100);
        dec.decompress_vec(&out, &mut got, flate2::FlushDecompress::Sync).unwrap();
        assert_eq!(got, b"hello hello hello, ");
        assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    }

    proptest::proptest! {
        /// Any input, built from a few words so that matches of every kind occur, cut at any
        /// points, with a sync flush after any part: it inflates back to itself.
        #[test]
        fn any_input_cut_and_flushed_anywhere_inflates_to_itself(
            words in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 1..40), 1..8),
            picks in proptest::collection::vec((0usize..8, 1usize..300), 0..200),
            cuts in proptest::collection::vec((1usize..5000, proptest::bool::ANY), 0..8),
        ) {
            let mut input = Vec::new();
            for (w, times) in picks {
                let word = &words[w % words.len()];
                for _ in 0..times % 7 + 1 {
                    input.extend_from_slice(word);
                }
            }
            let mut d = FastDeflate::new();
            let mut out = Vec::new();
            let mut rest = &input[..];
            for (cut, flush) in cuts {
                let (part, r) = rest.split_at(cut.min(rest.len()));
                d.write(part, &mut out);
                if flush {
                    d.flush(&mut out);
                }
                rest = r;
            }
            d.write(rest, &mut out);
            d.finish(&mut out);
            proptest::prop_assert!(inflate(&out) == input);
        }
    }

    /// Bytes that do not compress (xorshift), the same for a given length.
    pub(super) fn noise(n: usize) -> Vec<u8> {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }
}
