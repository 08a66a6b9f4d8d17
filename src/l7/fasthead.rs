//! A fast path for plain HTTP/1.x heads, tried before `httparse`.
//!
//! Why our own code on this path: `httparse` took about 1,900 of the 10,700 instructions the
//! proxy spends per keep-alive request (callgrind under `wrk -c50`, an nginx origin whose
//! response head has five fields), 18 % of the total and the largest single item. It is general:
//! obs-fold, bare LF line ends, whitespace around names and values, obs-text, partial heads,
//! and each byte goes through its state machine. Almost every head on the wire is in one plain
//! form, which a table walk checks and splits at a few instructions per byte.
//!
//! What it takes: only a complete head every line of which is in the plain form below. Anything
//! else (a byte outside these sets, leading empty lines, a bare LF, obs-fold, an empty value,
//! whitespace before the CRLF of a value, an incomplete head, more fields than allowed) makes it
//! answer `false`, and the head goes through `httparse` and the checks around it exactly as
//! before. So this path never refuses anything, and what it accepts `httparse` accepts too, with
//! the same offsets: a differential test (`fast_path_agrees_with_httparse`, in
//! `fasthead_tests.rs`) pins that on generated heads.
//!
//! The plain form (RFC 9112 sections 3, 4 and 5, without their optional parts):
//! - request line: `token SP target SP HTTP/1.x CRLF`, the target in `%x21-7E`;
//! - status line: `HTTP/1.x SP 3DIGIT SP reason CRLF`, the reason in `HTAB / SP / %x21-7E`;
//! - field line: `token ":" *( SP / HTAB ) value CRLF`, the value one or more bytes of
//!   `HTAB / SP / %x21-7E` that neither starts nor ends with SP or HTAB;
//! - then CRLF.

use super::h1::{Field, Head, Version};

/// `tchar` (RFC 9110 5.6.2).
static TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] =
            c.is_ascii_alphanumeric() || matches!(c, b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~');
        b += 1;
    }
    t
};

/// Bytes of a plain field value or reason phrase: HTAB, SP and visible ASCII.
static TEXT: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = b == 0x09 || (b >= 0x20 && b <= 0x7e);
        b += 1;
    }
    t
};

/// Bytes of a plain request target: visible ASCII.
static TARGET: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0x21;
    while b <= 0x7e {
        t[b] = true;
        b += 1;
    }
    t
};

/// Where the run of bytes from `at` that are in `set` ends.
#[inline(always)]
fn run(w: &[u8], at: usize, set: &[bool; 256]) -> usize {
    let rest = w.get(at..).unwrap_or_default();
    at + rest.iter().position(|&b| !set[b as usize]).unwrap_or(rest.len())
}

/// [`run`] over [`TEXT`], eight bytes at a time. The word tests are the "has a byte less than
/// / more than n" bit tricks: a flag may be set wrongly only above a byte that is rightly
/// flagged, so the lowest flag is the first byte that is not SP or visible ASCII. That byte
/// ends the run unless it is HTAB.
#[inline(always)]
fn text_end(w: &[u8], mut at: usize) -> usize {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGH: u64 = ONES * 0x80;
    while let Some(word) = w.get(at..at + 8) {
        let x = u64::from_le_bytes([word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7]]);
        let flags = (x.wrapping_sub(ONES * 0x20) & !x & HIGH) | ((x.wrapping_add(ONES) | x) & HIGH);
        if flags == 0 {
            at += 8;
            continue;
        }
        let first = at + (flags.trailing_zeros() / 8) as usize;
        if w[first] != b'\t' {
            return first;
        }
        at = first + 1;
    }
    run(w, at, &TEXT)
}

/// `HTTP/1.1` or `HTTP/1.0` at `at`.
#[inline(always)]
fn version(w: &[u8], at: usize) -> Option<Version> {
    match w.get(at..at + 8)? {
        b"HTTP/1.1" => Some(Version::Http11),
        b"HTTP/1.0" => Some(Version::Http10),
        _ => None,
    }
}

#[inline(always)]
fn crlf(w: &[u8], at: usize) -> bool {
    w.get(at..at + 2) == Some(b"\r\n")
}

/// The field lines from `at` to the empty line; the head's length, or `None` when they are not
/// all plain, there are more than `max`, or the head is not complete in `w`.
fn fields(w: &[u8], mut at: usize, max: usize, out: &mut Vec<Field>) -> Option<usize> {
    out.clear();
    loop {
        if crlf(w, at) {
            return Some(at + 2);
        }
        let name_end = run(w, at, &TOKEN);
        if name_end == at || w.get(name_end) != Some(&b':') || out.len() == max {
            return None;
        }
        let mut v = name_end + 1;
        while matches!(w.get(v), Some(b' ' | b'\t')) {
            v += 1;
        }
        let end = text_end(w, v);
        // Not empty, no trailing whitespace, then CRLF; a line after it that starts with
        // whitespace (obs-fold) is caught at the next round as a bad name.
        if end == v || matches!(w[end - 1], b' ' | b'\t') || !crlf(w, end) {
            return None;
        }
        out.push(Field { name: at..name_end, value: v..end });
        at = end + 2;
    }
}

/// Parses a plain request head at the start of `w` into `head`; false when the head is not
/// plain or not complete (`head` is then to be filled by the general parser).
pub fn request(w: &[u8], max_fields: usize, head: &mut Head) -> bool {
    let m_end = run(w, 0, &TOKEN);
    if m_end == 0 || w.get(m_end) != Some(&b' ') {
        return false;
    }
    let t_start = m_end + 1;
    let t_end = run(w, t_start, &TARGET);
    if t_end == t_start || w.get(t_end) != Some(&b' ') {
        return false;
    }
    let Some(v) = version(w, t_end + 1) else { return false };
    if !crlf(w, t_end + 9) {
        return false;
    }
    let Some(len) = fields(w, t_end + 11, max_fields, &mut head.fields) else { return false };
    head.method = 0..m_end;
    head.target = t_start..t_end;
    head.version = v;
    head.status = 0;
    head.reason = 0..0;
    head.len = len;
    true
}

/// Parses a plain response head at the start of `w` into `head`, as [`request`] does.
pub fn response(w: &[u8], max_fields: usize, head: &mut Head) -> bool {
    let Some(v) = version(w, 0) else { return false };
    let Some(&[b' ', a, b, c, b' ']) = w.get(8..13) else { return false };
    if !(a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit()) {
        return false;
    }
    let r_end = text_end(w, 13);
    if !crlf(w, r_end) {
        return false;
    }
    let Some(len) = fields(w, r_end + 2, max_fields, &mut head.fields) else { return false };
    head.method = 0..0;
    head.target = 0..0;
    head.version = v;
    head.status = u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0');
    head.reason = 13..r_end;
    head.len = len;
    true
}

#[cfg(test)]
#[path = "fasthead_tests.rs"]
mod tests;
