//! Converters, compiled once (masks parsed, regexes built) and applied to a [`SampleRef`]. A
//! converter that cannot apply to its input, or that is not implemented yet (maps, variables, stick
//! tables, digests), makes the sample absent.
//!
//! Converters that shorten or keep their input (`field`, `word`, `bytes`, `lower` on lower-case
//! text) keep borrowing from the request buffer instead of copying.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use super::eval::SampleRef;
use crate::config::expr::Call;

const IMPLEMENTED: &[&str] = &[
    "lower", "upper", "ipmask", "length", "bytes", "field", "word", "concat", "hex", "base64", "crc32", "djb2", "sdbm", "wt6", "add", "sub", "mul", "div",
    "mod", "neg", "and", "or", "xor", "cpl", "not", "bool", "even", "odd", "regsub",
];

/// The converters applied for real; the registry's others make the sample absent for now.
pub fn implemented_converters() -> &'static [&'static str] {
    IMPLEMENTED
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hash {
    Crc32,
    Djb2,
    Sdbm,
    Wt6,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    And,
    Or,
    Xor,
}

/// One piece of a `regsub` replacement: text, or a capture group (`\1`).
#[derive(Debug)]
pub(crate) enum Subst {
    Text(Vec<u8>),
    Group(usize),
}

#[derive(Debug)]
pub(crate) enum Conv {
    Lower,
    Upper,
    IpMask {
        v4: Ipv4Addr,
        v6: Option<Ipv6Addr>,
    },
    Length,
    Bytes {
        offset: usize,
        length: Option<usize>,
    },
    Field {
        index: i64,
        delims: Box<[u8]>,
        count: i64,
    },
    Word {
        index: i64,
        delims: Box<[u8]>,
        count: i64,
    },
    Concat {
        start: Box<[u8]>,
        end: Box<[u8]>,
    },
    Hex,
    Base64,
    Hash {
        func: Hash,
        avalanche: bool,
    },
    Arith(Arith, i64),
    Neg,
    Cpl,
    Not,
    Bool,
    Even,
    Odd,
    RegSub {
        re: regex::bytes::Regex,
        subst: Vec<Subst>,
        global: bool,
    },
    /// Known to the registry, not applied at this layer: the sample becomes absent.
    Unsupported,
}

fn arg(call: &Call, i: usize) -> Option<&str> {
    call.args.get(i).map(String::as_str).filter(|a| !a.is_empty())
}

fn int_arg(call: &Call, i: usize) -> Result<Option<i64>, String> {
    arg(call, i).map(|a| a.parse::<i64>().map_err(|_| format!("{}: argument {} '{a}' is not an integer", call.name, i + 1))).transpose()
}

impl Conv {
    pub fn compile(call: &Call) -> Result<Conv, String> {
        let name = call.name.as_str();
        let arith = |op| match arg(call, 0).map(str::parse::<i64>) {
            Some(Ok(n)) => Conv::Arith(op, n),
            // A variable operand: variables come with the HTTP layer.
            _ => Conv::Unsupported,
        };
        Ok(match name {
            "lower" => Conv::Lower,
            "upper" => Conv::Upper,
            "ipmask" => {
                let m4 = arg(call, 0).unwrap_or_default();
                let v4 = parse_v4_mask(m4).ok_or_else(|| format!("ipmask: invalid IPv4 mask '{m4}'"))?;
                let v6 = arg(call, 1).map(|m| parse_v6_mask(m).ok_or_else(|| format!("ipmask: invalid IPv6 mask '{m}'"))).transpose()?;
                Conv::IpMask { v4, v6 }
            }
            "length" => Conv::Length,
            "bytes" => match (arg(call, 0).map(str::parse::<usize>), arg(call, 1).map(str::parse::<usize>)) {
                (Some(Ok(offset)), None) => Conv::Bytes { offset, length: None },
                (Some(Ok(offset)), Some(Ok(length))) => Conv::Bytes { offset, length: Some(length) },
                _ => Conv::Unsupported,
            },
            "field" | "word" => {
                let index = int_arg(call, 0)?.unwrap_or(0);
                let delims: Box<[u8]> = call.args.get(1).map(|d| d.as_bytes().into()).unwrap_or_default();
                let count = int_arg(call, 2)?.unwrap_or(1);
                if index == 0 || count < 0 {
                    return Err(format!("{name}: the index must not be 0 and the count not negative"));
                }
                if name == "field" { Conv::Field { index, delims, count } } else { Conv::Word { index, delims, count } }
            }
            "concat" => {
                // The variable in the middle is looked up at run time; variables come with the
                // HTTP layer, and HAProxy leaves a missing variable out.
                let start = call.args.first().map(|s| s.as_bytes().into()).unwrap_or_default();
                let end = call.args.get(2).map(|s| s.as_bytes().into()).unwrap_or_default();
                Conv::Concat { start, end }
            }
            "hex" => Conv::Hex,
            "base64" => Conv::Base64,
            "crc32" | "djb2" | "sdbm" | "wt6" => {
                let func = match name {
                    "crc32" => Hash::Crc32,
                    "djb2" => Hash::Djb2,
                    "sdbm" => Hash::Sdbm,
                    _ => Hash::Wt6,
                };
                Conv::Hash { func, avalanche: int_arg(call, 0)?.unwrap_or(0) != 0 }
            }
            "add" => arith(Arith::Add),
            "sub" => arith(Arith::Sub),
            "mul" => arith(Arith::Mul),
            "div" => arith(Arith::Div),
            "mod" => arith(Arith::Mod),
            "and" => arith(Arith::And),
            "or" => arith(Arith::Or),
            "xor" => arith(Arith::Xor),
            "neg" => Conv::Neg,
            "cpl" => Conv::Cpl,
            "not" => Conv::Not,
            "bool" => Conv::Bool,
            "even" => Conv::Even,
            "odd" => Conv::Odd,
            "regsub" => {
                let flags = arg(call, 2).unwrap_or_default();
                if let Some(bad) = flags.chars().find(|c| !matches!(c, 'i' | 'g')) {
                    return Err(format!("regsub: unknown flag '{bad}' (expected i or g)"));
                }
                let source = call.args.first().map(String::as_str).unwrap_or_default();
                // The configuration check's options (`compile_regex`), on bytes: samples need not be UTF-8.
                let re = regex::bytes::RegexBuilder::new(source)
                    .case_insensitive(flags.contains('i'))
                    .size_limit(1 << 22)
                    .build()
                    .map_err(|e| format!("regsub: invalid regex '{source}': {e}"))?;
                let subst = parse_subst(call.args.get(1).map(String::as_str).unwrap_or_default())?;
                Conv::RegSub { re, subst, global: flags.contains('g') }
            }
            _ if super::sample::registry().converter(name).is_some() => Conv::Unsupported,
            _ => return Err(format!("unknown converter '{name}'")),
        })
    }

    /// The converted sample, or `None` when it does not apply to the input.
    pub fn apply<'a>(&self, v: SampleRef<'a>) -> Option<SampleRef<'a>> {
        match self {
            Conv::Lower => Some(SampleRef::Str(map_case(v.into_bytes(), false))),
            Conv::Upper => Some(SampleRef::Str(map_case(v.into_bytes(), true))),
            Conv::IpMask { v4, v6 } => match v.as_ip()? {
                IpAddr::V4(a) => Some(SampleRef::Ip(IpAddr::V4(Ipv4Addr::from(u32::from(a) & u32::from(*v4))))),
                IpAddr::V6(a) => Some(SampleRef::Ip(IpAddr::V6(Ipv6Addr::from(u128::from(a) & u128::from((*v6)?))))),
            },
            Conv::Length => Some(SampleRef::Int(i64::try_from(v.as_bytes().len()).ok()?)),
            Conv::Bytes { offset, length } => {
                let b = v.into_bytes();
                let start = (*offset).min(b.len());
                let end = match length {
                    Some(l) => start.saturating_add(*l).min(b.len()),
                    None => b.len(),
                };
                Some(SampleRef::Bin(slice_cow(b, start..end)))
            }
            Conv::Field { index, delims, count } => {
                let b = v.into_bytes();
                let r = field(&b, *index, delims, *count)?;
                Some(SampleRef::Str(slice_cow(b, r)))
            }
            Conv::Word { index, delims, count } => {
                let b = v.into_bytes();
                let r = word(&b, *index, delims, *count)?;
                Some(SampleRef::Str(slice_cow(b, r)))
            }
            Conv::Concat { start, end } => {
                let b = v.into_bytes();
                if start.is_empty() && end.is_empty() {
                    return Some(SampleRef::Str(b));
                }
                let mut out = Vec::with_capacity(start.len() + b.len() + end.len());
                out.extend_from_slice(start);
                out.extend_from_slice(&b);
                out.extend_from_slice(end);
                Some(SampleRef::Str(Cow::Owned(out)))
            }
            Conv::Hex => Some(SampleRef::Str(Cow::Owned(hex_upper(&v.as_bin())))),
            Conv::Base64 => Some(SampleRef::Str(Cow::Owned(base64(&v.as_bin())))),
            Conv::Hash { func, avalanche } => {
                let data = v.as_bin();
                let h = match func {
                    Hash::Crc32 => crc32(&data),
                    Hash::Djb2 => djb2(&data),
                    Hash::Sdbm => sdbm(&data),
                    Hash::Wt6 => wt6(&data),
                };
                Some(SampleRef::Int(i64::from(if *avalanche { full_hash(h) } else { h })))
            }
            Conv::Arith(op, n) => Some(SampleRef::Int(arith(*op, v.as_int()?, *n))),
            Conv::Neg => Some(SampleRef::Int(v.as_int()?.saturating_neg())),
            Conv::Cpl => Some(SampleRef::Int(!v.as_int()?)),
            Conv::Not => Some(SampleRef::Bool(v.as_int()? == 0)),
            Conv::Bool => Some(SampleRef::Bool(v.as_int()? != 0)),
            Conv::Even => Some(SampleRef::Bool(v.as_int()? & 1 == 0)),
            Conv::Odd => Some(SampleRef::Bool(v.as_int()? & 1 == 1)),
            Conv::RegSub { re, subst, global } => Some(SampleRef::Str(regsub(v.into_bytes(), re, subst, *global))),
            Conv::Unsupported => None,
        }
    }
}

/// `24` or `255.255.255.0`.
fn parse_v4_mask(m: &str) -> Option<Ipv4Addr> {
    if let Ok(bits) = m.parse::<u32>() {
        return (bits <= 32).then(|| Ipv4Addr::from(u32::MAX.checked_shl(32 - bits).unwrap_or(0)));
    }
    m.parse().ok()
}

/// `64`.
fn parse_v6_mask(m: &str) -> Option<Ipv6Addr> {
    let bits = m.parse::<u32>().ok().filter(|b| *b <= 128)?;
    Some(Ipv6Addr::from(u128::MAX.checked_shl(128 - bits).unwrap_or(0)))
}

/// ASCII case mapping, as HAProxy does byte by byte; borrowed input already in the right case
/// stays borrowed.
fn map_case(b: Cow<'_, [u8]>, upper: bool) -> Cow<'_, [u8]> {
    let needs = |c: &u8| if upper { c.is_ascii_lowercase() } else { c.is_ascii_uppercase() };
    if !b.iter().any(needs) {
        return b;
    }
    let mut v = b.into_owned();
    if upper {
        v.make_ascii_uppercase();
    } else {
        v.make_ascii_lowercase();
    }
    Cow::Owned(v)
}

/// A sub-slice, borrowed if the input was.
fn slice_cow(b: Cow<'_, [u8]>, r: Range<usize>) -> Cow<'_, [u8]> {
    match b {
        Cow::Borrowed(s) => Cow::Borrowed(s.get(r).unwrap_or_default()),
        Cow::Owned(mut v) => {
            v.truncate(r.end);
            v.drain(..r.start.min(v.len()));
            Cow::Owned(v)
        }
    }
}

/// HAProxy's `field`: fields are separated by any one of `delims`, empty fields count; a negative
/// index counts from the end; `count` fields are returned together, 0 meaning all the rest.
fn field(s: &[u8], index: i64, delims: &[u8], count: i64) -> Option<Range<usize>> {
    let mut left = count;
    if index > 0 {
        let (mut n, mut start) = (1, 0);
        for (i, b) in s.iter().enumerate() {
            if !delims.contains(b) {
                continue;
            }
            if n == index {
                if left == 1 {
                    return Some(start..i);
                }
                left = (left - 1).max(0);
            } else {
                start = i + 1;
                n += 1;
            }
        }
        (n == index).then_some(start..s.len())
    } else {
        let (mut n, mut end) = (-1, s.len());
        for (i, b) in s.iter().enumerate().rev() {
            if !delims.contains(b) {
                continue;
            }
            if n == index {
                if left == 1 {
                    return Some(i + 1..end);
                }
                left = (left - 1).max(0);
            } else {
                end = i;
                n -= 1;
            }
        }
        (n == index).then_some(0..end)
    }
}

/// HAProxy's `word`: like `field`, but runs of delimiters separate once and leading or trailing
/// delimiters make no empty word.
fn word(s: &[u8], index: i64, delims: &[u8], count: i64) -> Option<Range<usize>> {
    let mut left = count;
    let (mut n, mut in_word) = (0i64, false);
    let step = if index > 0 { 1 } else { -1 };
    // Forward, `mark` is the start of the current word; backward, its end.
    let mut mark = if index > 0 { 0 } else { s.len() };
    for k in 0..s.len() {
        let i = if index > 0 { k } else { s.len() - 1 - k };
        let sep = delims.contains(&s[i]);
        if !in_word {
            if !sep {
                if n != index {
                    n += step;
                    mark = if index > 0 { i } else { i + 1 };
                }
                in_word = true;
            }
        } else if sep {
            if n == index {
                if left == 1 {
                    return Some(if index > 0 { mark..i } else { i + 1..mark });
                }
                left = (left - 1).max(0);
            }
            in_word = false;
        }
    }
    (n == index).then_some(if index > 0 { mark..s.len() } else { 0..mark })
}

fn hex_upper(b: &[u8]) -> Vec<u8> {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    b.iter().flat_map(|&x| [DIGITS[usize::from(x >> 4)], DIGITS[usize::from(x & 15)]]).collect()
}

fn base64(b: &[u8]) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(b.len().div_ceil(3) * 4);
    for chunk in b.chunks(3) {
        let n = (u32::from(chunk[0]) << 16) | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8) | u32::from(*chunk.get(2).unwrap_or(&0));
        let sextet = |k: u32| ALPHABET[((n >> (18 - 6 * k)) & 63) as usize];
        out.push(sextet(0));
        out.push(sextet(1));
        out.push(if chunk.len() > 1 { sextet(2) } else { b'=' });
        out.push(if chunk.len() > 2 { sextet(3) } else { b'=' });
    }
    out
}

/// Saturating arithmetic, as HAProxy's: division by zero gives the largest integer, modulo by zero 0.
fn arith(op: Arith, a: i64, b: i64) -> i64 {
    match op {
        Arith::Add => a.saturating_add(b),
        Arith::Sub => a.saturating_sub(b),
        Arith::Mul => a.saturating_mul(b),
        Arith::Div => a.checked_div(b).unwrap_or(i64::MAX),
        Arith::Mod => a.checked_rem(b).unwrap_or(0),
        Arith::And => a & b,
        Arith::Or => a | b,
        Arith::Xor => a ^ b,
    }
}

fn parse_subst(s: &str) -> Result<Vec<Subst>, String> {
    let mut out = Vec::new();
    let mut text = Vec::new();
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            text.push(b);
            continue;
        }
        match bytes.next() {
            None => return Err(format!("regsub: '{s}' ends with a lone '\\'")),
            Some(d @ b'0'..=b'9') => {
                if !text.is_empty() {
                    out.push(Subst::Text(std::mem::take(&mut text)));
                }
                out.push(Subst::Group(usize::from(d - b'0')));
            }
            Some(b'x') => {
                let hi = bytes.next().and_then(|h| char::from(h).to_digit(16));
                let lo = bytes.next().and_then(|h| char::from(h).to_digit(16));
                let (Some(hi), Some(lo)) = (hi, lo) else { return Err(format!("regsub: invalid '\\x' escape in '{s}'")) };
                text.push(u8::try_from(hi * 16 + lo).unwrap_or(0));
            }
            Some(other) => text.push(other),
        }
    }
    if !text.is_empty() {
        out.push(Subst::Text(text));
    }
    Ok(out)
}

fn regsub<'a>(input: Cow<'a, [u8]>, re: &regex::bytes::Regex, subst: &[Subst], global: bool) -> Cow<'a, [u8]> {
    let mut out = Vec::new();
    let mut last = 0;
    for caps in re.captures_iter(&input) {
        let Some(m) = caps.get(0) else { continue };
        out.extend_from_slice(&input[last..m.start()]);
        for part in subst {
            match part {
                Subst::Text(t) => out.extend_from_slice(t),
                Subst::Group(g) => out.extend_from_slice(caps.get(*g).map_or(&[][..], |c| c.as_bytes())),
            }
        }
        last = m.end();
        if !global {
            break;
        }
    }
    if last == 0 && out.is_empty() {
        return input;
    }
    out.extend_from_slice(&input[last..]);
    Cow::Owned(out)
}

/// CRC-32 (IEEE 802.3, as zlib and HAProxy's `hash_crc32`).
pub(crate) fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    !data.iter().fold(!0u32, |c, &b| TABLE[usize::from((c as u8) ^ b)] ^ (c >> 8))
}

/// DJB2: h = h * 33 + c, from 5381.
pub(crate) fn djb2(data: &[u8]) -> u32 {
    data.iter().fold(5381u32, |h, &b| h.wrapping_mul(33).wrapping_add(u32::from(b)))
}

/// SDBM: h = c + (h << 6) + (h << 16) - h.
pub(crate) fn sdbm(data: &[u8]) -> u32 {
    data.iter().fold(0u32, |h, &b| u32::from(b).wrapping_add(h << 6).wrapping_add(h << 16).wrapping_sub(h))
}

/// WT6, Willy Tarreau's 6-round hash (HAProxy's `hash_wt6`).
pub(crate) fn wt6(data: &[u8]) -> u32 {
    let (mut h0, mut h1) = (0xa53c_965au32, 0x5ca6_953au32);
    let (mut step0, mut step1) = (6u32, 18u32);
    for &b in data {
        let t = u32::from(b);
        h0 = !(h0 ^ t);
        h1 = !(h1.wrapping_add(t));
        let rotated = h1.rotate_left(step0);
        h1 = h0.rotate_left(step1);
        h0 = rotated;
        let mix = ((h0 >> 16) ^ h1) & 0xffff;
        step0 = mix & 0x1f;
        step1 = mix >> 11;
    }
    h0 ^ h1
}

/// The avalanche applied by the hash converters' optional argument (Bob Jenkins' 32-bit mix).
pub(crate) fn full_hash(a: u32) -> u32 {
    let a = a.wrapping_add(0x7ed5_5d16).wrapping_add(a << 12);
    let a = (a ^ 0xc761_c23c) ^ (a >> 19);
    let a = a.wrapping_add(0x1656_67b1).wrapping_add(a << 5);
    let a = a.wrapping_add(0xd3a2_646c) ^ (a << 9);
    let a = a.wrapping_add(0xfd70_46c5).wrapping_add(a << 3);
    (a ^ 0xb55a_4f09) ^ (a >> 16)
}
