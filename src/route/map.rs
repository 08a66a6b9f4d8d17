//! Map files for the `map_*` converters, read when the routing table is compiled and indexed for
//! their match method, so that a lookup scans no list it need not:
//!
//! - `str`: a hash table (first line of a key wins).
//! - `beg`: hash tables per key length, longest first: the longest matching prefix wins, as in
//!   HAProxy's prefix tree.
//! - `ip`: hash tables of networks per prefix length, longest first (the finest network wins).
//! - `sub`, `dir`, `dom`, `end`, `reg`, `int`: lists in file order (the first match wins), as HAProxy
//!   keeps them.
//!
//! The file format is HAProxy's: one `key value` per line, the value being the rest of the line
//! after the blanks that follow the key; blank lines and `#` comments are skipped.
//!
//! A file is one pattern reference ([`super::patref`]) per routing table, read once; every
//! converter that reads it the same way shares one index, rebuilt when the runtime API changes
//! the reference.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Weak};

use arc_swap::ArcSwap;

use super::patref::{self, Entry, PatRef, PatUser};

/// How keys are compared with the input (the `map_<match>` part of the converter name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum MapMatch {
    Str,
    Beg,
    Sub,
    Dir,
    Dom,
    End,
    Reg,
    Int,
    Ip,
}

/// What the values are (the `_str`, `_int`, `_ip` suffix).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum MapOut {
    Str,
    Int,
    Ip,
}

impl MapMatch {
    fn parse(s: &str) -> Option<MapMatch> {
        Some(match s {
            "str" => MapMatch::Str,
            "beg" => MapMatch::Beg,
            "sub" => MapMatch::Sub,
            "dir" => MapMatch::Dir,
            "dom" => MapMatch::Dom,
            "end" => MapMatch::End,
            "reg" => MapMatch::Reg,
            "int" => MapMatch::Int,
            "ip" => MapMatch::Ip,
            _ => return None,
        })
    }
}

/// `map`, `map_beg`, `map_ip_int`...: the match method and the output type.
pub(crate) fn parse_converter_name(name: &str) -> Option<(MapMatch, MapOut)> {
    if name == "map" {
        return Some((MapMatch::Str, MapOut::Str));
    }
    let rest = name.strip_prefix("map_")?;
    let (m, out) = match rest.split_once('_') {
        Some((m, o)) => (m, o),
        None => (rest, "str"),
    };
    let out = match out {
        "str" => MapOut::Str,
        "int" => MapOut::Int,
        "ip" => MapOut::Ip,
        _ => return None,
    };
    Some((MapMatch::parse(m)?, out))
}

/// A map value, parsed for the output type. A string is shared with the samples that take it:
/// a lookup costs no copy, and a sample keeps its value when the index is replaced meanwhile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum MapValue {
    Str(Arc<[u8]>),
    Int(i64),
    Ip(IpAddr),
}

impl MapValue {
    /// Parses `v` as the output type says.
    pub fn parse(v: &[u8], out: MapOut) -> Result<MapValue, String> {
        let text = || String::from_utf8_lossy(v);
        match out {
            MapOut::Str => Ok(MapValue::Str(v.into())),
            MapOut::Int => std::str::from_utf8(v).ok().and_then(|s| s.parse().ok()).map(MapValue::Int).ok_or_else(|| format!("'{}' is not an integer", text())),
            MapOut::Ip => {
                std::str::from_utf8(v).ok().and_then(|s| s.parse().ok()).map(MapValue::Ip).ok_or_else(|| format!("'{}' is not an IPv4 or IPv6 address", text()))
            }
        }
    }
}

/// Networks by prefix length, longest first; each maps a masked address to an entry.
#[derive(Debug)]
struct PrefixTable<T> {
    by_len: Vec<(u32, T, HashMap<T, u32>)>,
}

impl<T: Copy + Eq + std::hash::Hash + std::ops::BitAnd<Output = T>> PrefixTable<T> {
    fn new() -> Self {
        PrefixTable { by_len: Vec::new() }
    }

    fn insert(&mut self, len: u32, mask: T, net: T, entry: u32) {
        let i = match self.by_len.iter().position(|(l, _, _)| *l == len) {
            Some(i) => i,
            None => {
                let at = self.by_len.iter().position(|(l, _, _)| *l < len).unwrap_or(self.by_len.len());
                self.by_len.insert(at, (len, mask, HashMap::new()));
                at
            }
        };
        self.by_len[i].2.entry(net & mask).or_insert(entry);
    }

    fn lookup(&self, addr: T) -> Option<u32> {
        self.by_len.iter().find_map(|(_, mask, nets)| nets.get(&(addr & *mask)).copied())
    }
}

type Keys = HashMap<Box<[u8]>, u32>;

/// The keys, indexed for the match method; entries are indexes into [`MapFile::values`].
#[derive(Debug)]
enum Index {
    Str(Keys),
    /// Prefixes by length, longest first.
    Beg(Vec<(usize, Keys)>),
    /// `sub`, `dir`, `dom`, `end`: the keys in file order.
    List(Vec<Box<[u8]>>),
    Reg(Vec<regex::bytes::Regex>),
    /// Inclusive ranges in file order.
    Int(Vec<(i64, i64)>),
    Ip {
        v4: PrefixTable<u32>,
        v6: PrefixTable<u128>,
    },
}

/// A map file read and indexed.
#[derive(Debug)]
pub(crate) struct MapFile {
    method: MapMatch,
    index: Index,
    values: Vec<MapValue>,
}

/// One `key value` line of a map file, with its line number.
pub(crate) fn entries(text: &[u8]) -> impl Iterator<Item = (usize, &[u8], &[u8])> {
    text.split(|&c| c == b'\n').enumerate().filter_map(|(n, line)| {
        let blank = |c: &u8| *c == b' ' || *c == b'\t';
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let start = line.iter().position(|c| !blank(c))?;
        let line = &line[start..];
        if line.first() == Some(&b'#') {
            return None;
        }
        let key_end = line.iter().position(blank).unwrap_or(line.len());
        let rest = &line[key_end..];
        let value = &rest[rest.iter().position(|c| !blank(c)).unwrap_or(rest.len())..];
        let value_end = value.iter().rposition(|c| !blank(c)).map_or(0, |i| i + 1);
        Some((n + 1, &line[..key_end], &value[..value_end]))
    })
}

/// An integer key: `5`, `1:10`, `:10`, `10:`.
fn parse_int_key(k: &str) -> Option<(i64, i64)> {
    match k.split_once(':') {
        None => k.parse().ok().map(|n| (n, n)),
        Some(("", "")) => None,
        Some((lo, hi)) => {
            let lo = if lo.is_empty() { i64::MIN } else { lo.parse().ok()? };
            let hi = if hi.is_empty() { i64::MAX } else { hi.parse().ok()? };
            (lo <= hi).then_some((lo, hi))
        }
    }
}

/// An address key: `10.0.0.1`, `10.0.0.0/8`, `10.0.0.0/255.0.0.0`, `2001:db8::/32`.
fn parse_ip_key(k: &str) -> Option<(IpAddr, u32)> {
    let (a, m) = match k.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (k, None),
    };
    let addr: IpAddr = a.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match m {
        None => max,
        Some(m) if !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()) => m.parse().ok().filter(|p| *p <= max)?,
        Some(m) if addr.is_ipv4() => {
            let bits = u32::from(m.parse::<Ipv4Addr>().ok()?);
            (bits.leading_ones() + bits.trailing_zeros() == 32).then_some(bits.leading_ones())?
        }
        Some(_) => return None,
    };
    Some((addr, prefix))
}

fn v4_mask(prefix: u32) -> u32 {
    u32::MAX.checked_shl(32 - prefix.min(32)).unwrap_or(0)
}

fn v6_mask(prefix: u32) -> u128 {
    u128::MAX.checked_shl(128 - prefix.min(128)).unwrap_or(0)
}

impl MapFile {
    /// Indexes the entries of a pattern reference; an error comes with the position of the entry
    /// (from 0) whose key or value is wrong.
    pub fn from_entries(list: &[super::patref::Entry], method: MapMatch, out: MapOut) -> Result<MapFile, (usize, String)> {
        let it = list.iter().enumerate().map(|(i, e)| (i, e.key.as_bytes(), e.value.as_deref().unwrap_or("").as_bytes()));
        Self::build(it, method, out)
    }

    /// Indexes `(line, key, value)` entries; an error comes with the entry's line.
    fn build<'a>(list: impl Iterator<Item = (usize, &'a [u8], &'a [u8])>, method: MapMatch, out: MapOut) -> Result<MapFile, (usize, String)> {
        let mut index = match method {
            MapMatch::Str => Index::Str(HashMap::new()),
            MapMatch::Beg => Index::Beg(Vec::new()),
            MapMatch::Sub | MapMatch::Dir | MapMatch::Dom | MapMatch::End => Index::List(Vec::new()),
            MapMatch::Reg => Index::Reg(Vec::new()),
            MapMatch::Int => Index::Int(Vec::new()),
            MapMatch::Ip => Index::Ip { v4: PrefixTable::new(), v6: PrefixTable::new() },
        };
        let mut values = Vec::new();
        for (line, key, value) in list {
            let bad = |e: String| (line, e);
            let entry = u32::try_from(values.len()).map_err(|_| bad("too many entries".into()))?;
            values.push(MapValue::parse(value, out).map_err(bad)?);
            let key_text = || String::from_utf8_lossy(key);
            match &mut index {
                Index::Str(h) => {
                    h.entry(key.into()).or_insert(entry);
                }
                Index::Beg(by_len) => {
                    let i = match by_len.iter().position(|(l, _)| *l == key.len()) {
                        Some(i) => i,
                        None => {
                            let at = by_len.iter().position(|(l, _)| *l < key.len()).unwrap_or(by_len.len());
                            by_len.insert(at, (key.len(), HashMap::new()));
                            at
                        }
                    };
                    by_len[i].1.entry(key.into()).or_insert(entry);
                }
                Index::List(keys) => keys.push(key.into()),
                Index::Reg(res) => {
                    let src = std::str::from_utf8(key).map_err(|_| bad(format!("regex '{}' is not UTF-8", key_text())))?;
                    let re = regex::bytes::RegexBuilder::new(src)
                        .size_limit(1 << 22)
                        .build()
                        .map_err(|e| bad(format!("invalid regex '{src}': {}", super::sample::first_line(&e.to_string()))))?;
                    res.push(re);
                }
                Index::Int(ranges) => {
                    let r = std::str::from_utf8(key).ok().and_then(parse_int_key).ok_or_else(|| bad(format!("'{}' is not an integer or range", key_text())))?;
                    ranges.push(r);
                }
                Index::Ip { v4, v6 } => {
                    let (addr, prefix) =
                        std::str::from_utf8(key).ok().and_then(parse_ip_key).ok_or_else(|| bad(format!("'{}' is not an address or network", key_text())))?;
                    match addr {
                        IpAddr::V4(a) => v4.insert(prefix, v4_mask(prefix), u32::from(a), entry),
                        IpAddr::V6(a) => v6.insert(prefix, v6_mask(prefix), u128::from(a), entry),
                    }
                }
            }
        }
        Ok(MapFile { method, index, values })
    }

    /// The value for a string input (every method but `int` and `ip`).
    pub fn lookup_bytes(&self, s: &[u8]) -> Option<&MapValue> {
        self.values.get(self.find_bytes(s)?)
    }

    /// The entry (its position in the file) a string input matches.
    pub fn find_bytes(&self, s: &[u8]) -> Option<usize> {
        let entry = match &self.index {
            Index::Str(h) => h.get(s).copied(),
            Index::Beg(by_len) => by_len.iter().filter(|(l, _)| *l <= s.len()).find_map(|(l, h)| h.get(&s[..*l]).copied()),
            Index::List(keys) => {
                let hit = |k: &[u8]| match self.method {
                    MapMatch::Sub => super::acl::find(s, k, false).is_some(),
                    MapMatch::End => s.ends_with(k),
                    MapMatch::Dir => super::acl::match_word(s, k, false, b"/?"),
                    _ => super::acl::match_word(s, k, false, b"/?.:"),
                };
                keys.iter().position(|k| hit(k)).and_then(|i| u32::try_from(i).ok())
            }
            Index::Reg(res) => res.iter().position(|r| r.is_match(s)).and_then(|i| u32::try_from(i).ok()),
            Index::Int(_) | Index::Ip { .. } => None,
        };
        usize::try_from(entry?).ok()
    }

    pub fn lookup_int(&self, n: i64) -> Option<&MapValue> {
        self.values.get(self.find_int(n)?)
    }

    pub fn find_int(&self, n: i64) -> Option<usize> {
        let Index::Int(ranges) = &self.index else { return None };
        ranges.iter().position(|&(lo, hi)| lo <= n && n <= hi)
    }

    pub fn value(&self, entry: usize) -> Option<&MapValue> {
        self.values.get(entry)
    }

    /// IPv4 inputs are also looked up as IPv4-mapped IPv6 addresses, and mapped IPv6 inputs as
    /// IPv4, as HAProxy does.
    pub fn lookup_ip(&self, a: IpAddr) -> Option<&MapValue> {
        self.values.get(self.find_ip(a)?)
    }

    pub fn find_ip(&self, a: IpAddr) -> Option<usize> {
        let Index::Ip { v4, v6 } = &self.index else { return None };
        let entry = match a {
            IpAddr::V4(a) => v4.lookup(u32::from(a)).or_else(|| v6.lookup(u128::from(a.to_ipv6_mapped()))),
            IpAddr::V6(a) => v6.lookup(u128::from(a)).or_else(|| a.to_ipv4_mapped().and_then(|m| v4.lookup(u32::from(m)))),
        };
        usize::try_from(entry?).ok()
    }

    pub fn method(&self) -> MapMatch {
        self.method
    }
}

/// A map converter's view of a pattern reference: the index for its match method and output
/// type, swapped whole when the reference changes (`add map`, ...), read without a lock.
#[derive(Debug)]
pub(crate) struct LiveMap {
    method: MapMatch,
    out: MapOut,
    pref: Arc<PatRef>,
    map: ArcSwap<MapFile>,
}

impl LiveMap {
    /// The map `path` for `method` and `out`: shared with every converter of the routing table
    /// being compiled that reads the same file the same way.
    pub fn load(path: &str, method: MapMatch, out: MapOut) -> Result<Arc<LiveMap>, String> {
        let pref = patref::for_file(path, true, None)
            .map_err(|e| format!("cannot open map file '{path}': {}", e.trim_start_matches(&format!("cannot open file '{path}': "))))?;
        thread_local! {
            static SHARED: std::cell::RefCell<Vec<Weak<LiveMap>>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let found = SHARED.with(|s| {
            let mut s = s.borrow_mut();
            s.retain(|w| w.strong_count() > 0);
            s.iter().filter_map(Weak::upgrade).find(|m| Arc::ptr_eq(&m.pref, &pref) && m.method == method && m.out == out)
        });
        if let Some(m) = found {
            return Ok(m);
        }
        let file = MapFile::from_entries(&pref.entries(), method, out).map_err(|(i, e)| {
            // Name the line: the entries are the file's lines without blanks and comments.
            let line = std::fs::read(path).ok().and_then(|t| entries(&t).nth(i).map(|(n, _, _)| n)).unwrap_or(0);
            format!("map file '{path}' line {line}: {e}")
        })?;
        let live = Arc::new(LiveMap { method, out, pref: pref.clone(), map: ArcSwap::from_pointee(file) });
        let user: Arc<dyn PatUser> = live.clone();
        pref.add_user(Arc::downgrade(&user), true, "map".into());
        SHARED.with(|s| s.borrow_mut().push(Arc::downgrade(&live)));
        Ok(live)
    }

    /// The index now; a change installs a new one, this one stays valid while held.
    pub fn current(&self) -> arc_swap::Guard<Arc<MapFile>> {
        self.map.load()
    }
}

/// HAProxy's name of a match method.
pub(crate) fn method_name(m: MapMatch) -> &'static str {
    match m {
        MapMatch::Str => "str",
        MapMatch::Beg => "beg",
        MapMatch::Sub => "sub",
        MapMatch::Dir => "dir",
        MapMatch::Dom => "dom",
        MapMatch::End => "end",
        MapMatch::Reg => "reg",
        MapMatch::Int => "int",
        MapMatch::Ip => "ip",
    }
}

impl PatUser for LiveMap {
    fn stage(self: Arc<Self>, view: &dyn Fn(&PatRef) -> Vec<Entry>) -> Result<Box<dyn FnOnce() + '_>, String> {
        let file = MapFile::from_entries(&view(&self.pref), self.method, self.out).map_err(|(_, e)| e)?;
        Ok(Box::new(move || self.map.store(Arc::new(file))))
    }

    fn lookup(&self, input: &str, entries: &dyn Fn(&PatRef) -> Vec<Entry>, map: bool) -> String {
        let file = self.map.load();
        let found = match self.method {
            MapMatch::Int => input.trim().parse().ok().and_then(|n| file.find_int(n)),
            MapMatch::Ip => input.trim().parse().ok().and_then(|a| file.find_ip(a)),
            _ => file.find_bytes(input.as_bytes()),
        };
        let mut line = format!("type={}, case=sensitive", method_name(self.method));
        let (yes, no) = if map { (", found=yes", ", found=no") } else { (", match=yes", ", match=no") };
        let list = entries(&self.pref);
        match found.and_then(|i| Some((list.get(i)?, file.value(i)?))) {
            None => line.push_str(no),
            Some((e, v)) => {
                line.push_str(yes);
                let tree = matches!(self.method, MapMatch::Str | MapMatch::Beg | MapMatch::Ip);
                line.push_str(if tree { ", idx=tree" } else { ", idx=list" });
                if map {
                    let ty = match v {
                        MapValue::Str(_) => "str",
                        MapValue::Int(_) => "sint",
                        MapValue::Ip(IpAddr::V4(_)) => "ipv4",
                        MapValue::Ip(IpAddr::V6(_)) => "ipv6",
                    };
                    line.push_str(&format!(", key=\"{}\", value=\"{}\", type=\"{ty}\"", e.key, e.value.as_deref().unwrap_or("")));
                } else {
                    line.push_str(&format!(", pattern=\"{}\"", e.key));
                }
            }
        }
        line.push('\n');
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converter_names() {
        assert_eq!(parse_converter_name("map"), Some((MapMatch::Str, MapOut::Str)));
        assert_eq!(parse_converter_name("map_beg"), Some((MapMatch::Beg, MapOut::Str)));
        assert_eq!(parse_converter_name("map_ip_int"), Some((MapMatch::Ip, MapOut::Int)));
        assert_eq!(parse_converter_name("map_str_str"), Some((MapMatch::Str, MapOut::Str)));
        assert_eq!(parse_converter_name("map_x"), None);
        assert_eq!(parse_converter_name("mapper"), None);
    }

    #[test]
    fn lines_are_key_and_rest() {
        let got: Vec<_> = entries(b"# c\n \n  k1 v 1 \r\nk2\nk3\t\t x\n").map(|(n, k, v)| (n, k.to_vec(), v.to_vec())).collect();
        assert_eq!(got, vec![(3, b"k1".to_vec(), b"v 1".to_vec()), (4, b"k2".to_vec(), vec![]), (5, b"k3".to_vec(), b"x".to_vec())]);
    }
}
