//! Converters, compiled once (masks parsed, regexes built, map files read and indexed) and applied
//! to a [`SampleRef`]. A converter that cannot apply to its input, or that is not implemented yet
//! (stick tables), makes the sample absent. Converters that read or write variables (`concat`,
//! the arithmetic ones with a variable operand, `strcmp`, `secure_memcmp`, `set-var`,
//! `unset-var`) reach them through the stream.
//!
//! Converters that shorten or keep their input (`field`, `word`, `bytes`, `lower` on lower-case
//! text, `json_query` on an array or a string without escapes) keep borrowing from the request
//! buffer instead of copying.
//!
//! `utime` and `ltime` format with the C library's `gmtime_r`/`localtime_r` and `strftime`, as
//! HAProxy does, so the formats are strftime(3)'s and `ltime` follows the process's time zone
//! (`TZ`); `json_query`'s number without a type is printed with `snprintf("%g")`, as HAProxy's.
//! These C library calls are the module's only `unsafe` code.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use sha1::Digest;

use super::eval::{SampleRef, StreamCtx};
use super::map::{self, LiveMap, MapMatch, MapOut, MapValue};
use super::vars::VarConds;
use crate::config::expr::Call;
use crate::l4::action::{VarName, parse_var_cond, parse_var_name};

const IMPLEMENTED: &[&str] = &[
    "http_date",
    "ltrim",
    "rtrim",
    "hex2i",
    "lower",
    "upper",
    "ipmask",
    "length",
    "bytes",
    "field",
    "word",
    "concat",
    "hex",
    "base64",
    "b64dec",
    "crc32",
    "djb2",
    "sdbm",
    "wt6",
    "add",
    "sub",
    "mul",
    "div",
    "mod",
    "neg",
    "and",
    "or",
    "xor",
    "cpl",
    "not",
    "bool",
    "even",
    "odd",
    "regsub",
    "url_dec",
    "url_enc",
    "json",
    "sha1",
    "sha2",
    "host_only",
    "port_only",
    "strcmp",
    "secure_memcmp",
    "set-var",
    "unset-var",
    "utime",
    "ltime",
    "xxh32",
    "xxh64",
    "xxh3",
    "json_query",
];

/// The converters applied for real; the registry's others make the sample absent for now.
pub fn implemented_converters() -> &'static [&'static str] {
    static ALL: OnceLock<Vec<&'static str>> = OnceLock::new();
    ALL.get_or_init(|| {
        let maps = super::sample::registry().converters.iter().map(|d| d.name).filter(|n| map::parse_converter_name(n).is_some());
        // Probed with both shapes of arguments: `(<idx>,<table>)` and `(<table>)`.
        let shapes = [vec!["0".to_string(), "t".to_string()], vec!["t".to_string()]];
        let stick = super::sample::registry()
            .converters
            .iter()
            .map(|d| d.name)
            .filter(move |n| shapes.iter().any(|args| matches!(crate::stick::fetch::StickConv::compile(n, args), Ok(Some(_)))));
        IMPLEMENTED.iter().copied().chain(maps).chain(stick).collect()
    })
}

/// The input decoders of `json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JsonInput {
    Ascii,
    Utf8,
    /// `utf8s`: characters in error are dropped.
    Utf8Skip,
    /// `utf8p`: overlong encodings are accepted.
    Utf8Permissive,
    /// `utf8ps`: overlong encodings accepted, other errors dropped.
    Utf8PermissiveSkip,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hash {
    Crc32,
    Djb2,
    Sdbm,
    Wt6,
}

/// The xxHash variants: HAProxy gives `xxh32` as an unsigned 32-bit value, `xxh64` and `xxh3` as
/// their 64-bit value cast to a signed integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum XxHash {
    Xxh32,
    Xxh64,
    /// XXH3's 64-bit variant.
    Xxh3,
}

/// One step of a `json_query` path: `.name` (a member of an object) or `[N]` (an element of an
/// array).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum JsonStep {
    Member(Box<[u8]>),
    Index(usize),
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

/// The operand of an arithmetic converter: a constant, or a variable read when applied.
#[derive(Debug)]
pub(crate) enum Operand {
    Int(i64),
    Var(VarName),
}

/// One piece of a `regsub` replacement: text, or a capture group (`\1`).
#[derive(Debug)]
pub(crate) enum Subst {
    Text(Vec<u8>),
    Group(usize),
}

#[derive(Debug)]
pub(crate) enum Conv {
    /// `http_date([<offset>[,<unit>]])`: the offset in seconds, the input in `unit`.
    HttpDate {
        offset: i64,
        unit: super::fetch::TimeUnit,
    },
    /// `utime(<format>[,<offset>])` or `ltime` (`local`): the input UNIX timestamp (as HAProxy,
    /// masked to its low 55 bits) plus `offset` seconds, formatted by strftime(3) in UTC or in the
    /// local time zone. An empty result (or one longer than [`STRFTIME_MAX`]) makes the sample
    /// absent.
    Time {
        format: std::ffi::CString,
        offset: i64,
        local: bool,
    },
    /// `xxh32([<seed>])`, `xxh64([<seed>])`, `xxh3([<seed>])`: the hash of the input's bytes (an
    /// address's network-order bytes); the seed is 0 by default, and truncated to 32 bits for
    /// `xxh32` as HAProxy's `unsigned int`.
    XxHash {
        func: XxHash,
        seed: i64,
    },
    /// `json_query(<json_path>[,int])`: the value at the path in the input JSON text, as HAProxy's
    /// (mjson): a string unescaped, `true`/`false` a boolean, an array its JSON text, a number its
    /// `%g` text or with `int` its integer part (absent beyond ±(2^53-1)); `null`, an object, a
    /// path not found or invalid JSON before the value make the sample absent.
    JsonQuery {
        path: Box<[JsonStep]>,
        int: bool,
    },
    /// `ltrim(<chars>)` (`left`) or `rtrim(<chars>)`.
    Trim {
        chars: Box<[u8]>,
        left: bool,
    },
    Hex2i,
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
    /// `concat([<start>][,<var>][,<end>])`: a variable that is not set adds nothing.
    Concat {
        start: Box<[u8]>,
        var: Option<VarName>,
        end: Box<[u8]>,
    },
    Hex,
    Base64,
    Hash {
        func: Hash,
        avalanche: bool,
    },
    Arith(Arith, Operand),
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
    /// `map_<match>_<out>(<file>[,<default>])`: the file was read when compiled; the runtime API
    /// may change its entries since.
    Map {
        map: Arc<LiveMap>,
        default: Option<MapValue>,
    },
    /// `url_dec([<in_form>])`: `+` is a space everywhere with `in_form`, else only after a `?`.
    UrlDec {
        in_form: bool,
    },
    UrlEnc,
    Json(JsonInput),
    B64Dec,
    Sha1,
    /// `sha2([<bits>])`: 224, 256, 384 or 512.
    Sha2(u16),
    HostOnly,
    PortOnly,
    StrCmp(VarName),
    SecureMemcmp(VarName),
    /// `set-var(<var>[,<cond>...])`: stores the input and passes it on.
    SetVar {
        var: VarName,
        conds: VarConds,
    },
    UnsetVar(VarName),
    /// `in_table`, `table_*`: the input is a key of a stick table.
    Stick(crate::stick::fetch::StickConv),
    /// Known to the registry, not applied at this layer: the sample becomes absent.
    Unsupported,
}

fn arg(call: &Call, i: usize) -> Option<&str> {
    call.args.get(i).map(String::as_str).filter(|a| !a.is_empty())
}

fn int_arg(call: &Call, i: usize) -> Result<Option<i64>, String> {
    arg(call, i).map(|a| a.parse::<i64>().map_err(|_| format!("{}: argument {} '{a}' is not an integer", call.name, i + 1))).transpose()
}

/// A variable argument. `check.` variables (health checks) and malformed names, which the
/// expression parser already reported, are never found: `None`.
fn var_arg(call: &Call, i: usize) -> Option<VarName> {
    arg(call, i).and_then(|a| parse_var_name(a).ok())
}

impl Conv {
    pub fn compile(call: &Call) -> Result<Conv, String> {
        let name = call.name.as_str();
        let arith = |op| match (arg(call, 0).map(str::parse::<i64>), var_arg(call, 0)) {
            (Some(Ok(n)), _) => Conv::Arith(op, Operand::Int(n)),
            (_, Some(v)) => Conv::Arith(op, Operand::Var(v)),
            _ => Conv::Unsupported,
        };
        let with_var = |f: fn(VarName) -> Conv| var_arg(call, 0).map_or(Conv::Unsupported, f);
        if let Some((method, out)) = map::parse_converter_name(name) {
            return compile_map(call, method, out);
        }
        Ok(match name {
            "http_date" => Conv::HttpDate { offset: int_arg(call, 0)?.unwrap_or(0), unit: super::fetch::TimeUnit::parse(arg(call, 1))? },
            "utime" | "ltime" => {
                let format = call.args.first().filter(|f| !f.is_empty()).ok_or_else(|| format!("{name}: missing format"))?;
                let format = std::ffi::CString::new(format.as_str()).map_err(|_| format!("{name}: the format contains a NUL byte"))?;
                Conv::Time { format, offset: int_arg(call, 1)?.unwrap_or(0), local: name == "ltime" }
            }
            "xxh32" | "xxh64" | "xxh3" => {
                let func = match name {
                    "xxh32" => XxHash::Xxh32,
                    "xxh64" => XxHash::Xxh64,
                    _ => XxHash::Xxh3,
                };
                Conv::XxHash { func, seed: int_arg(call, 0)?.unwrap_or(0) }
            }
            "json_query" => {
                let source = arg(call, 0).ok_or("json_query: the JSON path must not be empty")?;
                let path = parse_json_path(source).ok_or_else(|| format!("json_query: invalid JSON path '{source}' (expected $, .name and [N] steps)"))?;
                let int = match arg(call, 1) {
                    None => false,
                    Some("int") => true,
                    // HAProxy's check: no other output type.
                    Some(other) => return Err(format!("json_query: output type '{other}' is not supported (only \"int\")")),
                };
                Conv::JsonQuery { path: path.into(), int }
            }
            "ltrim" | "rtrim" => Conv::Trim { chars: call.args.first().map(|c| c.as_bytes().into()).unwrap_or_default(), left: name == "ltrim" },
            "hex2i" => Conv::Hex2i,
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
                let start = call.args.first().map(|s| s.as_bytes().into()).unwrap_or_default();
                let end = call.args.get(2).map(|s| s.as_bytes().into()).unwrap_or_default();
                Conv::Concat { start, var: var_arg(call, 1), end }
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
            "url_dec" => Conv::UrlDec { in_form: int_arg(call, 0)?.unwrap_or(0) != 0 },
            "url_enc" => Conv::UrlEnc,
            "json" => Conv::Json(match arg(call, 0).unwrap_or("ascii") {
                "ascii" => JsonInput::Ascii,
                "utf8" => JsonInput::Utf8,
                "utf8s" => JsonInput::Utf8Skip,
                "utf8p" => JsonInput::Utf8Permissive,
                "utf8ps" => JsonInput::Utf8PermissiveSkip,
                other => return Err(format!("json: unknown input code '{other}'")),
            }),
            "b64dec" => Conv::B64Dec,
            "sha1" => Conv::Sha1,
            "sha2" => match int_arg(call, 0)?.unwrap_or(256) {
                bits @ (224 | 256 | 384 | 512) => Conv::Sha2(bits as u16),
                bits => return Err(format!("sha2: unsupported number of bits {bits} (224, 256, 384 or 512)")),
            },
            "host_only" => Conv::HostOnly,
            "port_only" => Conv::PortOnly,
            "strcmp" => with_var(Conv::StrCmp),
            "secure_memcmp" => with_var(Conv::SecureMemcmp),
            "set-var" => {
                let conds = call.args.iter().skip(1).filter(|c| !c.is_empty()).map(|c| parse_var_cond(c)).collect::<Result<Vec<_>, _>>()?;
                match var_arg(call, 0) {
                    Some(var) => Conv::SetVar { var, conds: VarConds::from_config(&conds) },
                    None => Conv::Unsupported,
                }
            }
            "unset-var" => with_var(Conv::UnsetVar),
            _ if super::sample::registry().converter(name).is_some() => match crate::stick::fetch::StickConv::compile(name, &call.args)? {
                Some(c) => Conv::Stick(c),
                None => Conv::Unsupported,
            },
            _ => return Err(format!("unknown converter '{name}'")),
        })
    }

    /// The converted sample, or `None` when it does not apply to the input. `ctx` is the stream,
    /// for the converters that use variables.
    pub fn apply<'a>(&'a self, v: SampleRef<'a>, ctx: &dyn StreamCtx) -> Option<SampleRef<'a>> {
        let var = |name: &VarName| ctx.vars().and_then(|s| s.get(name));
        match self {
            Conv::HttpDate { offset, unit } => {
                let (secs, micros) = unit.split(v.as_int()?);
                Some(SampleRef::Str(Cow::Owned(http_date(secs.saturating_add(*offset), micros, *unit).into_bytes())))
            }
            Conv::Time { format, offset, local } => {
                // HAProxy's mask keeps a timestamp positive; its offset is added after it.
                let t = (v.as_int()? & 0x007f_ffff_ffff_ffff).wrapping_add(*offset);
                strftime(format, t, *local).map(|s| SampleRef::Str(Cow::Owned(s)))
            }
            Conv::XxHash { func, seed } => {
                let data = v.as_bin();
                Some(SampleRef::Int(match func {
                    XxHash::Xxh32 => i64::from(xxhash_rust::xxh32::xxh32(&data, *seed as u32)),
                    XxHash::Xxh64 => xxhash_rust::xxh64::xxh64(&data, *seed as u64) as i64,
                    XxHash::Xxh3 => xxhash_rust::xxh3::xxh3_64_with_seed(&data, *seed as u64) as i64,
                }))
            }
            Conv::JsonQuery { path, int } => json_query(v.into_bytes(), path, *int),
            Conv::Trim { chars, left } => {
                let b = v.into_bytes();
                let keep = |c: &u8| !chars.contains(c);
                let r = if *left { b.iter().position(keep).unwrap_or(b.len())..b.len() } else { 0..b.iter().rposition(keep).map_or(0, |i| i + 1) };
                Some(SampleRef::Str(slice_cow(b, r)))
            }
            Conv::Hex2i => Some(SampleRef::Int(hex2i(&v.as_bytes()))),
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
            Conv::Concat { start, var: name, end } => {
                let b = v.into_bytes();
                let middle = name.as_ref().and_then(var).map(|s| s.into_ref().into_bytes());
                let middle = middle.as_deref().unwrap_or_default();
                if start.is_empty() && middle.is_empty() && end.is_empty() {
                    return Some(SampleRef::Str(b));
                }
                let mut out = Vec::with_capacity(b.len() + start.len() + middle.len() + end.len());
                out.extend_from_slice(&b);
                out.extend_from_slice(start);
                out.extend_from_slice(middle);
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
            Conv::Arith(op, operand) => {
                // A variable that is not set, or not a number, fails the converter, as in HAProxy.
                let n = match operand {
                    Operand::Int(n) => *n,
                    Operand::Var(name) => var(name)?.into_ref().as_int()?,
                };
                Some(SampleRef::Int(arith(*op, v.as_int()?, n)))
            }
            Conv::Neg => Some(SampleRef::Int(v.as_int()?.saturating_neg())),
            Conv::Cpl => Some(SampleRef::Int(!v.as_int()?)),
            Conv::Not => Some(SampleRef::Bool(v.as_int()? == 0)),
            Conv::Bool => Some(SampleRef::Bool(v.as_int()? != 0)),
            Conv::Even => Some(SampleRef::Bool(v.as_int()? & 1 == 0)),
            Conv::Odd => Some(SampleRef::Bool(v.as_int()? & 1 == 1)),
            Conv::RegSub { re, subst, global } => Some(SampleRef::Str(regsub(v.into_bytes(), re, subst, *global))),
            Conv::Map { map, default } => {
                let map = map.current();
                // An input that cannot be cast to the key type fails, default or not, as in HAProxy.
                let found = match map.method() {
                    MapMatch::Int => map.lookup_int(v.as_int()?),
                    MapMatch::Ip => map.lookup_ip(v.as_ip()?),
                    _ => map.lookup_bytes(&v.as_bytes()),
                };
                // The index may be replaced once this returns: a string value is shared, not
                // borrowed.
                Some(match found.or(default.as_ref())? {
                    MapValue::Str(s) => SampleRef::SharedStr(s.clone()),
                    MapValue::Int(n) => SampleRef::Int(*n),
                    MapValue::Ip(a) => SampleRef::Ip(*a),
                })
            }
            Conv::UrlDec { in_form } => url_dec(v.into_bytes(), *in_form).map(SampleRef::Str),
            Conv::UrlEnc => Some(SampleRef::Str(url_enc(v.into_bytes()))),
            Conv::Json(input) => json(&v.as_bytes(), *input).map(|j| SampleRef::Str(Cow::Owned(j))),
            Conv::B64Dec => base64_decode(&v.as_bytes()).map(|b| SampleRef::Bin(Cow::Owned(b))),
            Conv::Sha1 => Some(SampleRef::Bin(Cow::Owned(sha1::Sha1::digest(v.as_bin()).to_vec()))),
            Conv::Sha2(bits) => {
                let data = v.as_bin();
                let d = match bits {
                    224 => sha2::Sha224::digest(&data).to_vec(),
                    384 => sha2::Sha384::digest(&data).to_vec(),
                    512 => sha2::Sha512::digest(&data).to_vec(),
                    _ => sha2::Sha256::digest(&data).to_vec(),
                };
                Some(SampleRef::Bin(Cow::Owned(d)))
            }
            Conv::HostOnly => {
                let b = v.into_bytes();
                let end = host_port_split(&b).map_or(b.len(), |(h, _)| h.len());
                Some(SampleRef::Str(map_case(slice_cow(b, 0..end), false)))
            }
            Conv::PortOnly => {
                let b = v.as_bytes();
                let port = host_port_split(&b).and_then(|(_, p)| std::str::from_utf8(p).ok()?.parse::<u16>().ok());
                Some(SampleRef::Int(port.map_or(0, i64::from)))
            }
            Conv::StrCmp(name) => {
                let other = var(name)?.into_ref();
                let (a, b) = (v.as_bytes(), other.as_bytes());
                // HAProxy's: memcmp over the common length, then the difference of the lengths.
                let diff = a.iter().zip(b.iter()).find(|(x, y)| x != y).map(|(x, y)| i64::from(*x) - i64::from(*y));
                Some(SampleRef::Int(diff.unwrap_or(a.len() as i64 - b.len() as i64)))
            }
            Conv::SecureMemcmp(name) => {
                let other = var(name)?.into_ref();
                let (a, b) = (v.as_bytes(), other.as_bytes());
                // Every byte is compared whatever the first difference, so the time says nothing.
                let same = a.len() == b.len() && a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
                Some(SampleRef::Bool(same))
            }
            // Not stored (a condition failed, or the scope is not available) fails the converter,
            // as HAProxy's does.
            Conv::SetVar { var: name, conds } => ctx.vars()?.set(name, v.to_sample(), *conds).then_some(v),
            Conv::UnsetVar(name) => {
                if let Some(s) = ctx.vars() {
                    s.unset(name);
                }
                Some(v)
            }
            Conv::Stick(c) => c.apply(&v, ctx),
            Conv::Unsupported => None,
        }
    }
}

/// `map_<match>_<out>(<file>[,<default>])`: reads and indexes the file now.
fn compile_map(call: &Call, method: MapMatch, out: MapOut) -> Result<Conv, String> {
    let name = call.name.as_str();
    let path = arg(call, 0).ok_or_else(|| format!("{name}: missing map file"))?;
    let map = LiveMap::load(path, method, out).map_err(|e| format!("{name}: {e}"))?;
    let default = match call.args.get(1) {
        // An empty default is an empty string, and no default for the other outputs.
        Some(d) if out == MapOut::Str || !d.is_empty() => Some(MapValue::parse(d.as_bytes(), out).map_err(|e| format!("{name}: default value {e}"))?),
        _ => None,
    };
    Ok(Conv::Map { map, default })
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

pub(crate) fn base64(b: &[u8]) -> Vec<u8> {
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

/// Standard base64 with padding, as HAProxy's `base64dec`: the length must be a multiple of 4 and
/// `=` may only end it.
pub(crate) fn base64_decode(s: &[u8]) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(4) {
        return None;
    }
    let sextet = |c: u8| -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    };
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let chunks = s.len() / 4;
    for (i, chunk) in s.chunks(4).enumerate() {
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && i + 1 != chunks) {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = (n << 6) | sextet(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - pad]);
    }
    Some(out)
}

fn hex_value(c: u8) -> Option<u8> {
    char::from(c).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// A value of an `application/x-www-form-urlencoded` body: `%XX` escapes and `+` decoded.
pub(crate) fn form_decode(b: &[u8]) -> Option<Vec<u8>> {
    url_dec(Cow::Borrowed(b), true).map(Cow::into_owned)
}

/// HAProxy's `url_decode`: `%XX` escapes decoded (an invalid one fails), `+` a space in a form or
/// after a `?`; the input ends at a NUL byte.
fn url_dec(b: Cow<'_, [u8]>, mut in_form: bool) -> Option<Cow<'_, [u8]>> {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    let input = &b[..end];
    let form_from = if in_form { 0 } else { input.iter().position(|&c| c == b'?').unwrap_or(input.len()) };
    let changes = |(i, &c): (usize, &u8)| c == b'%' || (c == b'+' && i > form_from) || (c == b'+' && in_form);
    if end == b.len() && !input.iter().enumerate().any(changes) {
        return Some(b);
    }
    let mut out = Vec::with_capacity(end);
    let mut i = 0;
    while let Some(&c) = input.get(i) {
        match c {
            b'+' => out.push(if in_form { b' ' } else { b'+' }),
            b'%' => {
                let hi = input.get(i + 1).copied().and_then(hex_value)?;
                let lo = input.get(i + 2).copied().and_then(hex_value)?;
                out.push((hi << 4) | lo);
                i += 2;
            }
            b'?' => {
                in_form = true;
                out.push(c);
            }
            _ => out.push(c),
        }
        i += 1;
    }
    Some(Cow::Owned(out))
}

/// `url_enc(query)`: everything but RFC 3986 unreserved characters as upper-case `%XX`.
fn url_enc(b: Cow<'_, [u8]>) -> Cow<'_, [u8]> {
    let keep = |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~');
    if b.iter().all(keep) {
        return b;
    }
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = Vec::with_capacity(b.len() * 3);
    for &c in b.iter() {
        if keep(&c) {
            out.push(c);
        } else {
            out.extend_from_slice(&[b'%', DIGITS[usize::from(c >> 4)], DIGITS[usize::from(c & 15)]]);
        }
    }
    Cow::Owned(out)
}

/// The errors HAProxy's UTF-8 decoder reports.
const UTF8_BADSEQ: u8 = 1;
const UTF8_INVRANGE: u8 = 2;
const UTF8_OVERLONG: u8 = 4;

/// Decodes one character as HAProxy's `utf8_next` does (sequences of up to 6 bytes): the code
/// point, the bytes it took (at least 1) and its errors.
fn utf8_next(s: &[u8]) -> (u32, usize, u8) {
    let Some(&first) = s.first() else { return (0, 1, 0) };
    let (mut c, more) = match first {
        0x00..=0x7f => return (u32::from(first), 1, 0),
        0xc0..=0xdf => (u32::from(first & 0x1f), 1),
        0xe0..=0xef => (u32::from(first & 0x0f), 2),
        0xf0..=0xf7 => (u32::from(first & 0x07), 3),
        0xf8..=0xfb => (u32::from(first & 0x03), 4),
        0xfc..=0xfd => (u32::from(first & 0x01), 5),
        _ => return (u32::from(first), 1, UTF8_BADSEQ),
    };
    if s.len() <= more {
        return (u32::from(first), 1, UTF8_BADSEQ);
    }
    for (k, &b) in s[1..=more].iter().enumerate() {
        if b & 0xc0 != 0x80 {
            return (c, k + 1, UTF8_BADSEQ);
        }
        c = (c << 6) | u32::from(b & 0x3f);
    }
    let len = more + 1;
    let min_len = match c {
        0..=0x7f => 1,
        0x80..=0x7ff => 2,
        0x800..=0xffff => 3,
        0x1_0000..=0x1f_ffff => 4,
        0x20_0000..=0x3ff_ffff => 5,
        _ => 6,
    };
    let mut code = if len > min_len { UTF8_OVERLONG } else { 0 };
    if (0xd800..=0xdfff).contains(&c) || (0xfffe..=0xffff).contains(&c) {
        code |= UTF8_INVRANGE;
    }
    (c, len, code)
}

/// HAProxy's `json` converter: the input escaped for a JSON string, decoded as `input` says;
/// characters outside printable ASCII become `\uXXXX`.
fn json(s: &[u8], input: JsonInput) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() + 8);
    let mut i = 0;
    while i < s.len() {
        let c = if input == JsonInput::Ascii {
            i += 1;
            u32::from(s[i - 1])
        } else {
            let (c, len, code) = utf8_next(&s[i..]);
            i += len;
            let fatal = match input {
                JsonInput::Utf8 | JsonInput::Utf8Skip => code != 0,
                _ => code & (UTF8_INVRANGE | UTF8_BADSEQ) != 0,
            };
            let skip = matches!(input, JsonInput::Utf8Skip | JsonInput::Utf8PermissiveSkip);
            if fatal || c > 0xffff {
                if skip {
                    continue;
                }
                return None;
            }
            c
        };
        match c {
            0x22 => out.extend_from_slice(b"\\\""),
            0x5c => out.extend_from_slice(b"\\\\"),
            0x2f => out.extend_from_slice(b"\\/"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            0x0d => out.extend_from_slice(b"\\r"),
            0x0a => out.extend_from_slice(b"\\n"),
            0x09 => out.extend_from_slice(b"\\t"),
            0x20..=0x7e => out.push(c as u8),
            _ => out.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
        }
    }
    Some(out)
}

/// A Host value split into host and port, as HAProxy's `http_get_host_port`: the port follows the
/// last `:` after any `]`; `None` without one.
fn host_port_split(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let after = b.iter().rposition(|&c| c == b']').map_or(0, |i| i + 1);
    let colon = after + b[after..].iter().rposition(|&c| c == b':')?;
    Some((&b[..colon], &b[colon + 1..]))
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

// The hash functions are the balancing ones: converters and `balance` must hash alike.
pub(crate) use crate::balance::hash::{avalanche as full_hash, crc32, djb2, sdbm, wt6};

/// An IMF-fixdate (RFC 9110, 5.6.7), `Sun, 06 Nov 1994 08:49:37 GMT`, with HAProxy's fraction of a
/// second for the `ms` and `us` units.
fn http_date(secs: i64, micros: u32, unit: super::fetch::TimeUnit) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    let tm = crate::log::sink::Tm::from_unix(secs, micros);
    let day = DAYS[secs.div_euclid(86_400).rem_euclid(7) as usize];
    let frac = match unit {
        super::fetch::TimeUnit::S => String::new(),
        super::fetch::TimeUnit::Ms => format!(".{:03}", micros / 1000),
        super::fetch::TimeUnit::Us => format!(".{micros:06}"),
    };
    format!("{day}, {:02} {} {:04} {:02}:{:02}:{:02}{frac} GMT", tm.day, tm.month_name(), tm.year, tm.hour, tm.min, tm.sec)
}

/// The longest `utime`/`ltime` result. HAProxy writes into its trash buffer (16 kB by default);
/// date formats are far shorter.
const STRFTIME_MAX: usize = 1024;

/// strftime(3) of `t` (UNIX seconds) in UTC, or in the local time zone with `local`, as HAProxy's
/// `utime` and `ltime`. `None` when the C library cannot break the time down, or when the result
/// is empty or longer than [`STRFTIME_MAX`] (strftime then returns 0).
#[allow(unsafe_code)]
fn strftime(format: &std::ffi::CStr, t: i64, local: bool) -> Option<Vec<u8>> {
    let t = t as libc::time_t;
    // SAFETY: `tm` is plain data (a null `tm_zone` is valid) that the reentrant gmtime_r and
    // localtime_r fill from `t`, both living across the call.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let filled = unsafe { if local { libc::localtime_r(&t, &mut tm) } else { libc::gmtime_r(&t, &mut tm) } };
    if filled.is_null() {
        return None;
    }
    let mut buf = [0u8; STRFTIME_MAX];
    // SAFETY: strftime writes at most `buf.len()` bytes into `buf`; the format is NUL-terminated;
    // `tm` was filled above (its `tm_zone`, if any, points to the C library's time zone data).
    let n = unsafe { libc::strftime(buf.as_mut_ptr().cast(), buf.len(), format.as_ptr(), &tm) };
    (n > 0).then(|| buf[..n].to_vec())
}

/// Parses a `json_query` path: `$`, then `.name` steps (`\` takes the next character as it is, as
/// in HAProxy's `$.my\.key`) and `[N]` steps. `None` when it is not one.
fn parse_json_path(p: &str) -> Option<Vec<JsonStep>> {
    let mut rest = p.as_bytes().strip_prefix(b"$")?;
    let mut steps = Vec::new();
    while let Some((&c, after)) = rest.split_first() {
        rest = after;
        match c {
            b'.' => {
                let mut name = Vec::new();
                while let Some((&c, after)) = rest.split_first() {
                    if c == b'.' || c == b'[' {
                        break;
                    }
                    rest = after;
                    match (c, rest.split_first()) {
                        (b'\\', Some((&escaped, after))) => {
                            name.push(escaped);
                            rest = after;
                        }
                        _ => name.push(c),
                    }
                }
                if name.is_empty() {
                    return None;
                }
                steps.push(JsonStep::Member(name.into()));
            }
            b'[' => {
                let close = rest.iter().position(|&c| c == b']')?;
                let digits = &rest[..close];
                if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                    return None;
                }
                steps.push(JsonStep::Index(std::str::from_utf8(digits).ok()?.parse().ok()?));
                rest = &rest[close + 1..];
            }
            _ => return None,
        }
    }
    Some(steps)
}

/// mjson's nesting limit (HAProxy's `MJSON_MAX_DEPTH`): deeper arrays and objects are invalid.
const JSON_MAX_DEPTH: usize = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JsonKind {
    Str,
    Number,
    True,
    False,
    Null,
    Array,
    Object,
}

/// Walks a JSON text to one value and stops there, as HAProxy's mjson does. A small scanner
/// rather than serde_json because mjson's answers differ from a full parse: the first of
/// duplicate members is taken, the text after the value is not read (a body cut short after it
/// still answers), and arrays and numbers are given as their text.
struct JsonScan<'s> {
    s: &'s [u8],
    i: usize,
}

impl JsonScan<'_> {
    /// The next byte after white space.
    fn peek(&mut self) -> Option<u8> {
        while matches!(self.s.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
        self.s.get(self.i).copied()
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// The value at `path` from here: its kind and where its text is (a string's without the
    /// quotes). `None` when it is not there or the text is not JSON up to it.
    fn find(&mut self, path: &[JsonStep], depth: usize) -> Option<(JsonKind, Range<usize>)> {
        let Some((step, rest)) = path.split_first() else { return self.value(depth) };
        let (open, close) = match step {
            JsonStep::Member(_) => (b'{', b'}'),
            JsonStep::Index(_) => (b'[', b']'),
        };
        if self.peek()? != open || depth >= JSON_MAX_DEPTH {
            return None;
        }
        self.i += 1;
        if self.peek()? == close {
            return None;
        }
        for n in 0.. {
            let here = match step {
                JsonStep::Member(name) => {
                    let key = self.string()?;
                    self.expect(b':')?;
                    *json_unescape(&self.s[key])? == **name
                }
                JsonStep::Index(i) => n == *i,
            };
            if here {
                return self.find(rest, depth + 1);
            }
            self.value(depth + 1)?;
            self.expect(b',')?;
        }
        None
    }

    /// Goes past one value: its kind and where its text is (a string's without the quotes).
    fn value(&mut self, depth: usize) -> Option<(JsonKind, Range<usize>)> {
        let c = self.peek()?;
        let start = self.i;
        let kind = match c {
            b'"' => return Some((JsonKind::Str, self.string()?)),
            b'{' | b'[' => {
                let close = if c == b'{' { b'}' } else { b']' };
                if depth >= JSON_MAX_DEPTH {
                    return None;
                }
                self.i += 1;
                if self.peek()? != close {
                    loop {
                        if c == b'{' {
                            self.string()?;
                            self.expect(b':')?;
                        }
                        self.value(depth + 1)?;
                        match self.peek()? {
                            b',' => self.i += 1,
                            x if x == close => break,
                            _ => return None,
                        }
                    }
                }
                self.i += 1;
                if c == b'{' { JsonKind::Object } else { JsonKind::Array }
            }
            b't' => self.literal(b"true", JsonKind::True)?,
            b'f' => self.literal(b"false", JsonKind::False)?,
            b'n' => self.literal(b"null", JsonKind::Null)?,
            _ => self.number()?,
        };
        Some((kind, start..self.i))
    }

    fn literal(&mut self, word: &[u8], kind: JsonKind) -> Option<JsonKind> {
        self.s[self.i..].starts_with(word).then(|| {
            self.i += word.len();
            kind
        })
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Option<JsonKind> {
        let s = self.s;
        let mut i = self.i;
        let digits = |i: &mut usize| {
            let start = *i;
            while s.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i > start
        };
        if s.get(i) == Some(&b'-') {
            i += 1;
        }
        if s.get(i) == Some(&b'0') {
            i += 1;
        } else if !digits(&mut i) {
            return None;
        }
        if s.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i).then_some(())?;
        }
        if matches!(s.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(s.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            digits(&mut i).then_some(())?;
        }
        self.i = i;
        Some(JsonKind::Number)
    }

    /// Goes past a string from its opening quote: where its content is. Escapes are checked, not
    /// decoded.
    fn string(&mut self) -> Option<Range<usize>> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.i + 1;
        let mut i = start;
        loop {
            i += memchr::memchr2(b'"', b'\\', &self.s[i..])?;
            if self.s[i] == b'"' {
                self.i = i + 1;
                return Some(start..i);
            }
            match *self.s.get(i + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                b'u' if self.s.get(i + 2..i + 6)?.iter().all(u8::is_ascii_hexdigit) => i += 6,
                _ => return None,
            }
        }
    }
}

/// A JSON string's content (escapes already checked) unescaped; `\uXXXX` escapes, surrogate pairs
/// included, become UTF-8 (mjson only decodes `\u00XX`, to one byte, and fails on the others). `None`
/// for a lone surrogate.
fn json_unescape(raw: &[u8]) -> Option<Cow<'_, [u8]>> {
    if !raw.contains(&b'\\') {
        return Some(Cow::Borrowed(raw));
    }
    let hex = |at: usize| raw.get(at..at + 4).and_then(|h| u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&c) = raw.get(i) {
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let e = *raw.get(i)?;
        i += 1;
        out.push(match e {
            b'b' => 8,
            b'f' => 12,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let mut cp = hex(i)?;
                i += 4;
                if (0xd800..0xdc00).contains(&cp) && raw.get(i..i + 2) == Some(b"\\u") {
                    let low = hex(i + 2)?;
                    if (0xdc00..0xe000).contains(&low) {
                        cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
                        i += 6;
                    }
                }
                out.extend_from_slice(char::from_u32(cp)?.encode_utf8(&mut [0; 4]).as_bytes());
                continue;
            }
            other => other,
        });
    }
    Some(Cow::Owned(out))
}

/// HAProxy's `json_query` on the input text (see [`Conv::JsonQuery`]).
fn json_query<'a>(b: Cow<'a, [u8]>, path: &[JsonStep], int: bool) -> Option<SampleRef<'a>> {
    let (kind, r) = JsonScan { s: &b, i: 0 }.find(path, 0)?;
    Some(match kind {
        JsonKind::Str if !b[r.clone()].contains(&b'\\') => SampleRef::Str(slice_cow(b, r)),
        JsonKind::Str => SampleRef::Str(Cow::Owned(json_unescape(&b[r])?.into_owned())),
        JsonKind::Array => SampleRef::Str(slice_cow(b, r)),
        JsonKind::True => SampleRef::Bool(true),
        JsonKind::False => SampleRef::Bool(false),
        JsonKind::Number if int => SampleRef::Int(json_int(&b[r])?),
        JsonKind::Number => SampleRef::Str(Cow::Owned(format_g(std::str::from_utf8(&b[r]).ok()?.parse().ok()?))),
        JsonKind::Null | JsonKind::Object => return None,
    })
}

/// `json_query(...,int)`: the number's integer part, as HAProxy's `strtoll` reads it (`4.5` is 4,
/// `1e3` is 1); `None` outside the interoperable range ±(2^53-1) of RFC 7159, 6, as HAProxy.
fn json_int(number: &[u8]) -> Option<i64> {
    const MAX: i64 = (1 << 53) - 1;
    let end = number.iter().skip(1).position(|c| !c.is_ascii_digit()).map_or(number.len(), |p| p + 1);
    let n = std::str::from_utf8(&number[..end]).ok()?.parse::<i64>().ok()?;
    (-MAX..=MAX).contains(&n).then_some(n)
}

/// `%g` of `x` (6 significant digits, an exponent below 1e-4 or from 1e6), as HAProxy prints a
/// JSON number with `snprintf`.
#[allow(unsafe_code)]
fn format_g(x: f64) -> Vec<u8> {
    let mut buf = [0u8; 32];
    // SAFETY: snprintf writes at most `buf.len()` bytes into `buf`; `%g` reads the one double given.
    let n = unsafe { libc::snprintf(buf.as_mut_ptr().cast(), buf.len(), c"%g".as_ptr(), x) };
    let n = usize::try_from(n).unwrap_or(0).min(buf.len() - 1);
    buf[..n].to_vec()
}

/// `hex2i`: the leading hexadecimal digits of the input as a signed 64-bit integer (wrapping, as
/// HAProxy's reads them), with an optional `-`; 0 when there are none.
fn hex2i(b: &[u8]) -> i64 {
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        _ => (false, b),
    };
    let mut n: i64 = 0;
    for &c in digits {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => break,
        };
        n = n.wrapping_mul(16).wrapping_add(i64::from(d));
    }
    if neg { n.wrapping_neg() } else { n }
}

#[cfg(test)]
mod date_tests {
    use super::*;
    use crate::route::fetch::TimeUnit;

    #[test]
    fn http_dates_are_imf_fixdates_with_the_units_fraction() {
        assert_eq!(http_date(784_111_777, 0, TimeUnit::S), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(0, 0, TimeUnit::S), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_795_504_920, 123_456, TimeUnit::Ms), "Tue, 24 Nov 2026 07:22:00.123 GMT");
        assert_eq!(http_date(1_795_504_920, 123_456, TimeUnit::Us), "Tue, 24 Nov 2026 07:22:00.123456 GMT");
        assert_eq!(http_date(-86_400, 0, TimeUnit::S), "Wed, 31 Dec 1969 00:00:00 GMT");
    }

    /// A stream with nothing in it: the converters tested here do not look at the stream.
    use crate::route::acl::CliCtx as NoStream;

    fn compile(name: &str, args: &[&str]) -> Result<Conv, String> {
        Conv::compile(&Call { name: name.to_string(), args: args.iter().map(|a| a.to_string()).collect() })
    }

    fn conv(name: &str, args: &[&str]) -> Conv {
        compile(name, args).unwrap()
    }

    fn run<'a>(c: &'a Conv, input: SampleRef<'a>) -> Option<SampleRef<'a>> {
        c.apply(input, &NoStream)
    }

    fn text(s: &str) -> SampleRef<'static> {
        SampleRef::Str(Cow::Owned(s.as_bytes().to_vec()))
    }

    #[test]
    fn utime_formats_the_timestamp_plus_offset_in_utc_with_strftime() {
        let c = conv("utime", &["%Y-%m-%d %H:%M:%S"]);
        assert_eq!(run(&c, SampleRef::Int(0)), Some(text("1970-01-01 00:00:00")));
        // HAProxy's reg-test vectors (reg-tests/converter/time.vtc).
        let c = conv("utime", &["%Y-%m-%dT%H:%M:%S"]);
        assert_eq!(run(&c, SampleRef::Int(1_000_000_000)), Some(text("2001-09-09T01:46:40")));
        let c = conv("utime", &["%Y-%m-%dT%H:%M:%S", "60"]);
        assert_eq!(run(&c, SampleRef::Int(1_000_000_000)), Some(text("2001-09-09T01:47:40")));
        let c = conv("utime", &["%Y-%m-%dT%H:%M:%S", "-100"]);
        assert_eq!(run(&c, SampleRef::Int(1_000_000_000)), Some(text("2001-09-09T01:45:00")));
        let c = conv("utime", &["%a, %d %b %Y %T %Z %j %%"]);
        assert_eq!(run(&c, SampleRef::Int(784_111_777)), Some(text("Sun, 06 Nov 1994 08:49:37 GMT 310 %")));
    }

    #[test]
    fn utime_casts_a_string_input_and_is_absent_for_a_non_integer() {
        let c = conv("utime", &["%Y"]);
        assert_eq!(run(&c, text("86400")), Some(text("1970")));
        assert_eq!(run(&c, SampleRef::Bool(true)), Some(text("1970")));
        assert_eq!(run(&c, text("soon")), None);
        assert_eq!(run(&c, SampleRef::Bin(Cow::Borrowed(b"\x01"))), None);
        assert_eq!(run(&c, SampleRef::Ip(std::net::Ipv4Addr::LOCALHOST.into())), None);
    }

    #[test]
    fn utime_masks_the_input_to_55_bits_as_haproxy_before_the_offset() {
        let c = conv("utime", &["%Y-%m-%d %H:%M:%S"]);
        assert_eq!(run(&c, SampleRef::Int(-1)), run(&c, SampleRef::Int(0x007f_ffff_ffff_ffff)));
        let c = conv("utime", &["%Y-%m-%d %H:%M:%S", "-1"]);
        assert_eq!(run(&c, SampleRef::Int(0)), Some(text("1969-12-31 23:59:59")));
    }

    #[test]
    fn utime_with_a_result_longer_than_its_buffer_is_absent() {
        // strftime then returns 0, as for an empty result.
        let c = conv("utime", &[&"%Y".repeat(STRFTIME_MAX / 4 + 1)]);
        assert_eq!(run(&c, SampleRef::Int(0)), None);
        let c = conv("utime", &[&"%Y".repeat(STRFTIME_MAX / 4 - 1)]);
        assert_eq!(run(&c, SampleRef::Int(0)).map(|s| s.as_bytes().len()), Some(STRFTIME_MAX - 4));
    }

    #[test]
    fn utime_and_ltime_need_a_format() {
        for name in ["utime", "ltime"] {
            assert!(compile(name, &[]).unwrap_err().contains("missing format"));
            assert!(compile(name, &[""]).unwrap_err().contains("missing format"));
            assert!(compile(name, &["%s", "x"]).is_err());
        }
    }

    #[test]
    fn ltime_formats_in_the_local_time_zone() {
        // `%s` turns the broken-down local time back into the timestamp, whatever TZ is.
        let c = conv("ltime", &["%s"]);
        assert_eq!(run(&c, SampleRef::Int(1_000_000_000)), Some(text("1000000000")));
        let c = conv("ltime", &["%s", "60"]);
        assert_eq!(run(&c, SampleRef::Int(1_000_000_000)), Some(text("1000000060")));
        let c = conv("ltime", &["%M:%S"]);
        assert_eq!(run(&c, text("x")), None);
        // Seconds never depend on the zone.
        assert!(run(&c, SampleRef::Int(1_000_000_000)).is_some_and(|s| s.as_bytes().ends_with(b":40")));
    }

    #[test]
    fn xxh_hashes_match_the_reference_vectors_with_seed_0() {
        let empty = || SampleRef::Str(Cow::Borrowed(b""));
        assert_eq!(run(&conv("xxh32", &[]), empty()), Some(SampleRef::Int(0x02CC_5D05)));
        assert_eq!(run(&conv("xxh64", &[]), empty()), Some(SampleRef::Int(0xEF46_DB37_51D8_E999_u64 as i64)));
        assert_eq!(run(&conv("xxh3", &[]), empty()), Some(SampleRef::Int(0x2D06_8005_38D3_94C2)));
        assert_eq!(run(&conv("xxh64", &["0"]), empty()), run(&conv("xxh64", &[]), empty()));
    }

    #[test]
    fn xxh_seeds_change_the_hash_and_are_cast_as_haproxy() {
        let abc = || text("abc");
        for name in ["xxh32", "xxh64", "xxh3"] {
            assert_ne!(run(&conv(name, &["1"]), abc()), run(&conv(name, &[]), abc()), "{name}");
        }
        // xxh32's seed is an unsigned int: -1 is 0xffffffff; the result is never negative.
        assert_eq!(run(&conv("xxh32", &["-1"]), abc()), Some(SampleRef::Int(i64::from(xxhash_rust::xxh32::xxh32(b"abc", u32::MAX)))));
        assert_eq!(run(&conv("xxh32", &["4294967296"]), abc()), run(&conv("xxh32", &[]), abc()));
        assert_eq!(run(&conv("xxh64", &["-1"]), abc()), Some(SampleRef::Int(xxhash_rust::xxh64::xxh64(b"abc", u64::MAX) as i64)));
        assert_eq!(run(&conv("xxh3", &["7"]), abc()), Some(SampleRef::Int(xxhash_rust::xxh3::xxh3_64_with_seed(b"abc", 7) as i64)));
        assert!((0..1000).all(|i| run(&conv("xxh32", &[]), SampleRef::Int(i)).and_then(|s| s.as_int()).is_some_and(|h| (0..1 << 32).contains(&h))));
    }

    #[test]
    fn xxh_hashes_an_address_as_its_network_order_bytes() {
        let ip = SampleRef::Ip(std::net::Ipv4Addr::new(10, 1, 2, 3).into());
        assert_eq!(run(&conv("xxh32", &[]), ip), Some(SampleRef::Int(i64::from(xxhash_rust::xxh32::xxh32(&[10, 1, 2, 3], 0)))));
    }

    /// `json_query(<path>[,<type>])` of `json`; the converter is leaked so the result may borrow.
    fn query(args: &[&str], json: &'static str) -> Option<SampleRef<'static>> {
        let c: &'static Conv = Box::leak(Box::new(conv("json_query", args)));
        run(c, SampleRef::Str(Cow::Borrowed(json.as_bytes())))
    }

    #[test]
    fn json_query_gives_strings_unescaped_and_borrows_those_without_escapes() {
        let doc = r#"{"user": {"name": "bob", "roles": ["admin", "dev"]}, "q": "a\"b\\c\/\n\u00e9\ud83d\ude00"}"#;
        assert_eq!(query(&["$.user.name"], doc), Some(text("bob")));
        assert!(matches!(query(&["$.user.name"], doc), Some(SampleRef::Str(Cow::Borrowed(b"bob")))));
        assert_eq!(query(&["$.user.roles[1]"], doc), Some(text("dev")));
        assert_eq!(query(&["$.q"], doc), Some(text("a\"b\\c/\né😀")));
        assert_eq!(query(&["$"], r#" "top" "#), Some(text("top")));
        // A lone surrogate has no UTF-8 form.
        assert_eq!(query(&["$.s"], r#"{"s":"\ud83d"}"#), None);
    }

    #[test]
    fn json_query_gives_booleans_and_an_array_as_its_text() {
        let doc = r#"{"t":true,"f":false,"a":[1, {"b":null}, "x"],"e":[]}"#;
        assert_eq!(query(&["$.t"], doc), Some(SampleRef::Bool(true)));
        assert_eq!(query(&["$.f"], doc), Some(SampleRef::Bool(false)));
        assert_eq!(query(&["$.a"], doc), Some(text(r#"[1, {"b":null}, "x"]"#)));
        assert_eq!(query(&["$.e"], doc), Some(text("[]")));
        assert_eq!(query(&["$.a[1].b"], doc), None);
    }

    #[test]
    fn json_query_of_null_or_an_object_is_absent() {
        let doc = r#"{"n":null,"o":{"k":1},"e":{}}"#;
        assert_eq!(query(&["$.n"], doc), None);
        assert_eq!(query(&["$.o"], doc), None);
        assert_eq!(query(&["$.e"], doc), None);
        assert_eq!(query(&["$"], doc), None);
    }

    #[test]
    fn json_query_prints_numbers_with_percent_g_unless_int_is_asked() {
        let doc = r#"{"i":4,"neg":-4,"d":4.5,"big":1234567,"small":0.00001,"exp":2.5E3,"zero":-0}"#;
        assert_eq!(query(&["$.i"], doc), Some(text("4")));
        assert_eq!(query(&["$.neg"], doc), Some(text("-4")));
        assert_eq!(query(&["$.d"], doc), Some(text("4.5")));
        assert_eq!(query(&["$.big"], doc), Some(text("1.23457e+06")));
        assert_eq!(query(&["$.small"], doc), Some(text("1e-05")));
        assert_eq!(query(&["$.exp"], doc), Some(text("2500")));
        assert_eq!(query(&["$.zero"], doc), Some(text("-0")));
        assert_eq!(query(&["$.i", "int"], doc), Some(SampleRef::Int(4)));
        assert_eq!(query(&["$.neg", "int"], doc), Some(SampleRef::Int(-4)));
        // strtoll's integer part, as HAProxy.
        assert_eq!(query(&["$.d", "int"], doc), Some(SampleRef::Int(4)));
        assert_eq!(query(&["$.exp", "int"], doc), Some(SampleRef::Int(2)));
        assert_eq!(query(&["$.zero", "int"], doc), Some(SampleRef::Int(0)));
    }

    #[test]
    fn json_query_int_is_absent_beyond_the_interoperable_range() {
        assert_eq!(query(&["$[0]", "int"], "[9007199254740991]"), Some(SampleRef::Int(9_007_199_254_740_991)));
        assert_eq!(query(&["$[0]", "int"], "[-9007199254740991]"), Some(SampleRef::Int(-9_007_199_254_740_991)));
        assert_eq!(query(&["$[0]", "int"], "[9007199254740992]"), None);
        assert_eq!(query(&["$[0]", "int"], "[-99999999999999999999999]"), None);
        // `int` does not turn other types into numbers.
        assert_eq!(query(&["$[0]", "int"], r#"["4"]"#), Some(text("4")));
    }

    #[test]
    fn json_query_of_a_missing_path_is_absent() {
        let doc = r#"{"a":{"b":[10,20]}}"#;
        assert_eq!(query(&["$.x"], doc), None);
        assert_eq!(query(&["$.a.b[2]"], doc), None);
        assert_eq!(query(&["$.a[0]"], doc), None);
        assert_eq!(query(&["$.a.b.c"], doc), None);
        assert_eq!(query(&["$.a.b[1].c"], doc), None);
        assert_eq!(query(&["$.a.b[1]"], doc), Some(text("20")));
        assert_eq!(query(&["$.a"], "[]"), None);
        assert_eq!(query(&["$[0]"], "[]"), None);
    }

    #[test]
    fn json_query_of_invalid_json_up_to_the_value_is_absent() {
        assert_eq!(query(&["$.b"], r#"{"a" 1, "b":2}"#), None);
        assert_eq!(query(&["$.b"], r#"{"a":tru, "b":2}"#), None);
        assert_eq!(query(&["$.b"], r#"{"a":"\x", "b":2}"#), None);
        assert_eq!(query(&["$.b"], r#"{"a":01, "b":2}"#), None);
        assert_eq!(query(&["$.b"], r#"{"a":[1,}, "b":2}"#), None);
        assert_eq!(query(&["$.b"], r#"{"a":1, "b":"open"#), None);
        assert_eq!(query(&["$.a"], ""), None);
        assert_eq!(query(&["$.a"], "not json"), None);
        // As mjson, the scan stops at the value: what follows is not read.
        assert_eq!(query(&["$.a"], r#"{"a":"v", "b":"#), Some(text("v")));
    }

    #[test]
    fn json_query_takes_the_first_duplicate_member_and_unescaped_keys() {
        assert_eq!(query(&["$.a"], r#"{"a":1,"a":2}"#), Some(text("1")));
        assert_eq!(query(&["$.my\\.key"], r#"{"my":{"key":1},"my.key":"v"}"#), Some(text("v")));
        assert_eq!(query(&["$.my.key"], r#"{"my.key":"v","my":{"key":1}}"#), Some(text("1")));
        assert_eq!(query(&["$.é"], r#"{"\u00e9":"e"}"#), Some(text("e")));
        assert_eq!(query(&["$.a[0]"], " { \"a\" : [ \"x\" , 2 ] } "), Some(text("x")));
    }

    #[test]
    fn json_query_accepts_20_levels_of_nesting_as_mjson() {
        let nested = |n: usize| Box::leak(format!("{}1{}", "[".repeat(n), "]".repeat(n)).into_boxed_str()) as &'static str;
        let path = |n: usize| format!("${}", "[0]".repeat(n));
        assert_eq!(query(&[&path(20)], nested(20)), Some(text("1")));
        assert_eq!(query(&[&path(21)], nested(21)), None);
        assert_eq!(query(&["$.a"], Box::leak(format!(r#"{{"x":{}1{},"a":2}}"#, "[".repeat(19), "]".repeat(19)).into_boxed_str())), Some(text("2")));
        assert_eq!(query(&["$.a"], Box::leak(format!(r#"{{"x":{}1{},"a":2}}"#, "[".repeat(20), "]".repeat(20)).into_boxed_str())), None);
    }

    #[test]
    fn json_query_reads_binary_input() {
        let c = conv("json_query", &["$.a"]);
        assert_eq!(run(&c, SampleRef::Bin(Cow::Borrowed(br#"{"a":"b"}"#))), Some(text("b")));
        assert_eq!(run(&c, SampleRef::Int(4)), None);
    }

    #[test]
    fn json_query_checks_its_path_and_type_when_compiled() {
        assert!(compile("json_query", &[""]).unwrap_err().contains("must not be empty"));
        for bad in ["a.b", "$a", "$.", "$..a", "$.a[x]", "$.a[]", "$.a[1", "$[-1]"] {
            assert!(compile("json_query", &[bad]).unwrap_err().contains("invalid JSON path"), "{bad}");
        }
        assert!(compile("json_query", &["$.a", "bool"]).unwrap_err().contains("only \"int\""));
        assert!(compile("json_query", &["$.a", "str"]).is_err());
        assert!(compile("json_query", &["$.a", "int"]).is_ok());
        assert!(compile("json_query", &["$.a", ""]).is_ok());
        let steps = |p: &str| parse_json_path(p).unwrap();
        assert_eq!(steps("$"), vec![]);
        assert_eq!(steps("$.user.roles[0]"), vec![JsonStep::Member((*b"user").into()), JsonStep::Member((*b"roles").into()), JsonStep::Index(0)]);
        assert_eq!(steps(r"$.a\.b\[c\\"), vec![JsonStep::Member((*br"a.b[c\").into())]);
    }
    #[test]
    fn hex2i_reads_leading_hex_digits_with_a_sign() {
        assert_eq!(hex2i(b"ff"), 255);
        assert_eq!(hex2i(b"-1A"), -26);
        assert_eq!(hex2i(b"10zz"), 16);
        assert_eq!(hex2i(b"zz"), 0);
        assert_eq!(hex2i(b"ffffffffffffffff"), -1);
    }
}
