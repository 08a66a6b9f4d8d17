//! ACLs, conditions and sample expressions, as HAProxy writes them (configuration manual, section 7).
//!
//! - A sample expression is a fetch and a converter chain in one word: `req.hdr(host),lower,map(/x.map)`.
//!   Every name and argument is checked against the registry in [`crate::route::sample`].
//! - An ACL is `<fetch> [flags] [operator] <values>`; the values are parsed into typed patterns by
//!   the match method (`-m`, the `_beg`-style suffix of the fetch name, or the fetch's output type).
//! - A condition is `if|unless` followed by ORs (`||`, `or`) of ANDs of terms, each a named ACL or an
//!   inline `{ ... }` ACL, possibly negated with `!`.

use std::net::{IpAddr, Ipv4Addr};

use super::core_kw::check_name;
use super::diag::did_you_mean;
use super::lex::Word;
use crate::route::sample::{self, SampleDef, SampleType};

/// A sample fetch with its converter chain: `req.hdr(host),lower,map(/etc/hosts.map)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleExpr {
    pub fetch: Call,
    pub converters: Vec<Call>,
}

/// `name(arg1,arg2)`: arguments unescaped, already checked against the registry's argument kinds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub name: String,
    pub args: Vec<String>,
}

impl SampleExpr {
    /// Stick tables named by the fetch or the converters (`src_conn_rate(tbl)`, `table_cnt(tbl)`).
    pub fn table_refs(&self) -> Vec<&str> {
        let r = sample::registry();
        let mut refs = Vec::new();
        if let Some(d) = r.fetch(&self.fetch.name) {
            refs.extend(sample::table_args(d, &self.fetch.args));
        }
        for c in &self.converters {
            if let Some(d) = r.converter(&c.name) {
                refs.extend(sample::table_args(d, &c.args));
            }
        }
        refs
    }

    /// Userlists named by `http_auth(<userlist>)` and `http_auth_group(<userlist>)`.
    pub fn userlist_refs(&self) -> Vec<&str> {
        match self.fetch.name.as_str() {
            "http_auth" | "http_auth_group" => self.fetch.args.first().map(String::as_str).into_iter().collect(),
            _ => Vec::new(),
        }
    }

    /// The type the expression produces; converters that pass their input through keep its type.
    pub fn out_type(&self) -> SampleType {
        let r = sample::registry();
        let mut t = r.fetch(&self.fetch.name).map_or(SampleType::Any, |d| d.out);
        for c in &self.converters {
            match r.converter(&c.name).map(|d| d.out) {
                Some(SampleType::Any) | None => {}
                Some(out) => t = out,
            }
        }
        t
    }
}

/// How an ACL compares the sample with its patterns (`-m <method>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchMethod {
    /// The sample exists; patterns are ignored.
    Found,
    /// The sample is a true boolean or a non-zero integer; patterns are ignored.
    Bool,
    Int,
    Ip,
    Bin,
    /// The sample's length, compared as an integer.
    Len,
    Str,
    Sub,
    Reg,
    Beg,
    End,
    /// A slash-delimited part of the sample.
    Dir,
    /// A dot-delimited part of the sample.
    Dom,
}

const METHODS: &[(&str, MatchMethod)] = &[
    ("found", MatchMethod::Found),
    ("bool", MatchMethod::Bool),
    ("int", MatchMethod::Int),
    ("ip", MatchMethod::Ip),
    ("bin", MatchMethod::Bin),
    ("len", MatchMethod::Len),
    ("str", MatchMethod::Str),
    ("sub", MatchMethod::Sub),
    ("reg", MatchMethod::Reg),
    ("beg", MatchMethod::Beg),
    ("end", MatchMethod::End),
    ("dir", MatchMethod::Dir),
    ("dom", MatchMethod::Dom),
];

impl MatchMethod {
    pub fn parse(s: &str) -> Result<MatchMethod, String> {
        METHODS.iter().find(|(n, _)| *n == s).map(|(_, m)| *m).ok_or_else(|| {
            let hint = did_you_mean(s, METHODS.iter().map(|(n, _)| *n)).map(|h| format!("; did you mean '{h}'?")).unwrap_or_default();
            format!("unknown match method '{s}'{hint}")
        })
    }

    pub fn name(self) -> &'static str {
        METHODS.iter().find(|(_, m)| *m == self).map_or("?", |(n, _)| n)
    }

    /// The method used when none is given: the one that fits the sample's type.
    pub fn default_for(t: SampleType) -> MatchMethod {
        match t {
            SampleType::Bool => MatchMethod::Bool,
            SampleType::Int => MatchMethod::Int,
            SampleType::Ip => MatchMethod::Ip,
            SampleType::Bin => MatchMethod::Bin,
            SampleType::Str | SampleType::Meth | SampleType::Any => MatchMethod::Str,
        }
    }

    fn takes_int(self) -> bool {
        matches!(self, MatchMethod::Int | MatchMethod::Len)
    }
}

/// One parsed ACL value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// An integer range, bounds included; `eq 5` is `5..=5`, `ge 5` is `5..`, `1:100` is `1..=100`.
    Int {
        lo: Option<i64>,
        hi: Option<i64>,
    },
    /// An address and prefix length (32 or 128 for a single address).
    Ip {
        addr: IpAddr,
        prefix: u8,
    },
    /// A host name, resolved when the configuration is loaded (not with `-n`).
    Host(String),
    Str(String),
    /// A regex source; it compiled when parsed.
    Regex(String),
    Bin(Vec<u8>),
}

/// The body of an ACL: `<fetch> [flags] [operator] <values>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclBody {
    pub expr: SampleExpr,
    pub method: MatchMethod,
    /// `-i`: string and regex patterns ignore case.
    pub ignore_case: bool,
    /// `-f <file>`: pattern files, already read into `patterns`.
    pub files: Vec<String>,
    /// `-M`: the `-f` files are maps; only the key (first word) of each line is a pattern.
    pub map_files: bool,
    /// `-n`: no DNS resolution; IP patterns must be addresses.
    pub no_dns: bool,
    /// `-u <id>`: the unique id of the ACL's pattern list (for the runtime API).
    pub unique_id: Option<i64>,
    /// The values as written on the line.
    pub values: Vec<String>,
    /// Values from the line, then from the files, parsed for `method`.
    pub patterns: Vec<Pattern>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Polarity {
    If,
    Unless,
}

/// One term of a condition: an ACL name or an inline `{ ... }` ACL, possibly negated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Term {
    pub negated: bool,
    pub acl: AclRef,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AclRef {
    Named(String),
    Inline(Box<AclBody>),
}

/// `if|unless` followed by ORs of ANDs of terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    pub polarity: Polarity,
    /// Disjunction of conjunctions.
    pub any_of: Vec<Vec<Term>>,
}

impl Condition {
    pub fn acl_names(&self) -> impl Iterator<Item = &str> {
        self.any_of.iter().flatten().filter_map(|t| match &t.acl {
            AclRef::Named(n) => Some(n.as_str()),
            AclRef::Inline(_) => None,
        })
    }

    /// Stick tables named by the inline ACLs.
    pub fn table_refs(&self) -> Vec<&str> {
        self.any_of
            .iter()
            .flatten()
            .filter_map(|t| match &t.acl {
                AclRef::Inline(b) => Some(b.expr.table_refs()),
                AclRef::Named(_) => None,
            })
            .flatten()
            .collect()
    }

    /// Userlists named by the inline ACLs.
    pub fn userlist_refs(&self) -> Vec<&str> {
        self.any_of
            .iter()
            .flatten()
            .filter_map(|t| match &t.acl {
                AclRef::Inline(b) => Some(b.expr.userlist_refs()),
                AclRef::Named(_) => None,
            })
            .flatten()
            .collect()
    }
}

/// Splits rule words at the first unquoted `if`/`unless`: (action words, condition words).
pub fn split_condition(words: &[Word]) -> (&[Word], Option<&[Word]>) {
    match words.iter().position(|w| w.is("if") || w.is("unless")) {
        Some(i) => (&words[..i], Some(&words[i..])),
        None => (words, None),
    }
}

/// Parses `if|unless <terms>`; `words[0]` is `if` or `unless`.
pub fn parse_condition(words: &[Word]) -> Result<Condition, String> {
    let first = words.first().ok_or("missing 'if' or 'unless'")?;
    let polarity = if first.is("if") {
        Polarity::If
    } else if first.is("unless") {
        Polarity::Unless
    } else {
        return Err(format!("expected 'if' or 'unless', got '{}'", first.text));
    };
    let rest = &words[1..];
    if rest.is_empty() {
        return Err(format!("missing condition after '{}'", first.text));
    }
    let mut any_of: Vec<Vec<Term>> = vec![Vec::new()];
    let mut negate = false;
    let mut last_or = "";
    let mut i = 0;
    while let Some(w) = rest.get(i) {
        i += 1;
        if w.is("||") || w.is("or") {
            if negate {
                return Err(format!("'!' must be followed by an ACL, not '{}'", w.text));
            }
            if any_of.last().is_none_or(Vec::is_empty) {
                return Err(format!("'{}' must follow an ACL", w.text));
            }
            any_of.push(Vec::new());
            last_or = if w.is("or") { "or" } else { "||" };
            continue;
        }
        if w.is("!") {
            negate = !negate;
            continue;
        }
        if w.is("}") {
            return Err("unexpected '}' without a matching '{'".into());
        }
        // `!{` glued together is accepted as `! {`.
        if w.is("!{") {
            negate = !negate;
        }
        let acl = if w.is("{") || w.is("!{") {
            let len = rest[i..].iter().position(|w| w.is("}")).ok_or("missing closing '}' in condition")?;
            let body = &rest[i..i + len];
            if body.iter().any(|w| w.is("{")) {
                return Err("'{' inside an inline ACL (a literal '{' value must be quoted)".into());
            }
            if body.is_empty() {
                return Err("empty inline ACL '{ }'".into());
            }
            i += len + 1;
            AclRef::Inline(Box::new(parse_acl(body).map_err(|e| format!("in inline ACL: {e}"))?))
        } else {
            let (bang, name) = match w.text.strip_prefix('!') {
                Some(n) => (true, n),
                None => (false, w.text.as_str()),
            };
            check_name("ACL", name)?;
            negate ^= bang;
            AclRef::Named(name.to_owned())
        };
        if let Some(group) = any_of.last_mut() {
            group.push(Term { negated: negate, acl });
        }
        negate = false;
    }
    if negate {
        return Err("'!' at the end of the condition".into());
    }
    if any_of.last().is_none_or(Vec::is_empty) {
        return Err(format!("condition ends with '{last_or}'"));
    }
    Ok(Condition { polarity, any_of })
}

/// ACL-only fetch names: a string fetch followed by the match method (`path_beg`, `hdr_sub(host)`).
const DERIVED_PREFIXES: &[&str] = &["path", "url", "base", "hdr", "shdr", "cook", "scook", "urlp", "url_param", "ssl_fc_sni", "req_ssl_sni", "req.ssl_sni"];
const DERIVED_SUFFIXES: &[(&str, MatchMethod)] = &[
    ("beg", MatchMethod::Beg),
    ("end", MatchMethod::End),
    ("sub", MatchMethod::Sub),
    ("reg", MatchMethod::Reg),
    ("dir", MatchMethod::Dir),
    ("dom", MatchMethod::Dom),
    ("len", MatchMethod::Len),
    ("str", MatchMethod::Str),
];

/// Every ACL-only derived name, for "did you mean" hints.
fn derived_names() -> impl Iterator<Item = String> {
    DERIVED_PREFIXES.iter().flat_map(|p| DERIVED_SUFFIXES.iter().map(move |(s, _)| format!("{p}_{s}")))
}

/// `path_beg` -> (`path`, beg). Only names that are not fetches themselves.
fn derived_fetch(name: &str) -> Option<(&'static str, MatchMethod)> {
    let (prefix, suffix) = name.rsplit_once('_')?;
    let base = DERIVED_PREFIXES.iter().find(|p| **p == prefix)?;
    let method = DERIVED_SUFFIXES.iter().find(|(s, _)| *s == suffix)?.1;
    Some((base, method))
}

/// Parses an ACL body: the words after `acl NAME`.
pub fn parse_acl(words: &[Word]) -> Result<AclBody, String> {
    let first = words.first().ok_or("missing fetch method")?;
    let (expr, implied) = parse_sample_in(&first.text, true)?;
    let mut method = implied;
    let mut body = AclBody {
        expr,
        method: MatchMethod::Str,
        ignore_case: false,
        files: Vec::new(),
        map_files: false,
        no_dns: false,
        unique_id: None,
        values: Vec::new(),
        patterns: Vec::new(),
    };
    let mut i = 1;
    while let Some(w) = words.get(i) {
        if !w.text.starts_with('-') || w.text.len() < 2 {
            break;
        }
        i += 1;
        match w.text.as_str() {
            "--" => break,
            "-i" => body.ignore_case = true,
            "-n" => body.no_dns = true,
            "-M" => body.map_files = true,
            "-f" => body.files.push(words.get(i).ok_or("missing file name after '-f'")?.text.clone()),
            "-u" => {
                let id = words.get(i).ok_or("missing id after '-u'")?;
                body.unique_id = Some(id.text.parse().map_err(|_| format!("'-u' expects a numeric id, got '{}'", id.text))?);
            }
            "-m" => {
                let m = MatchMethod::parse(&words.get(i).ok_or("missing match method after '-m'")?.text)?;
                if let Some(im) = implied.filter(|im| *im != m) {
                    return Err(format!("'-m {}' conflicts with the '{}' match implied by '{}'", m.name(), im.name(), first.text));
                }
                method = Some(m);
            }
            other => return Err(format!("'{other}' is not a valid ACL option. Please use '--' before any pattern beginning with a '-'")),
        }
        if matches!(w.text.as_str(), "-f" | "-u" | "-m") {
            i += 1;
        }
    }
    body.method = method.unwrap_or_else(|| MatchMethod::default_for(body.expr.out_type()));
    let values = words.get(i..).unwrap_or(&[]);
    body.values = values.iter().map(|w| w.text.clone()).collect();
    let mut patterns = parse_values(&body, values)?;
    for f in &body.files {
        read_pattern_file(&mut patterns, f, &body)?;
    }
    body.patterns = patterns;
    Ok(body)
}

const INT_OPS: &[&str] = &["eq", "ge", "gt", "le", "lt"];

pub(crate) fn parse_values(body: &AclBody, values: &[Word]) -> Result<Vec<Pattern>, String> {
    if matches!(body.method, MatchMethod::Found | MatchMethod::Bool) {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut op: Option<&str> = None;
    for v in values {
        if body.method.takes_int() && INT_OPS.contains(&v.text.as_str()) {
            if let Some(prev) = op {
                return Err(format!("operator '{prev}' must be followed by a value, not '{}'", v.text));
            }
            op = INT_OPS.iter().find(|o| **o == v.text).copied();
            continue;
        }
        out.push(parse_int_with_op(op.take(), &v.text, body)?);
    }
    if let Some(prev) = op {
        return Err(format!("operator '{prev}' must be followed by a value"));
    }
    Ok(out)
}

fn parse_int_with_op(op: Option<&str>, v: &str, body: &AclBody) -> Result<Pattern, String> {
    if !body.method.takes_int() {
        return parse_pattern(v, body);
    }
    let Some(op) = op else { return parse_pattern(v, body) };
    if v.contains(':') {
        return Err(format!("operator '{op}' cannot be used with the range '{v}'"));
    }
    let n = parse_int_value(v)?;
    let overflow = || format!("integer '{v}' is out of range for '{op}'");
    Ok(match op {
        "eq" => Pattern::Int { lo: Some(n), hi: Some(n) },
        "ge" => Pattern::Int { lo: Some(n), hi: None },
        "gt" => Pattern::Int { lo: Some(n.checked_add(1).ok_or_else(overflow)?), hi: None },
        "le" => Pattern::Int { lo: None, hi: Some(n) },
        _ => Pattern::Int { lo: None, hi: Some(n.checked_sub(1).ok_or_else(overflow)?) },
    })
}

/// An integer value: `42`, `-3`, or a dotted version `3.1` (major * 65536 + minor, as `req.ssl_ver`).
fn parse_int_value(v: &str) -> Result<i64, String> {
    let bad = || format!("'{v}' is not a valid integer");
    match v.split_once('.') {
        None => v.parse().map_err(|_| bad()),
        Some((major, minor)) => {
            let major: i64 = major.parse().map_err(|_| bad())?;
            let minor: i64 = minor.parse().map_err(|_| bad())?;
            if !(0..65536).contains(&minor) || major < 0 {
                return Err(bad());
            }
            major.checked_mul(65536).and_then(|m| m.checked_add(minor)).ok_or_else(bad)
        }
    }
}

/// One value for the body's match method.
pub(crate) fn parse_pattern(v: &str, body: &AclBody) -> Result<Pattern, String> {
    match body.method {
        MatchMethod::Int | MatchMethod::Len => match v.split_once(':') {
            Some((lo, hi)) => {
                let lo = if lo.is_empty() { None } else { Some(parse_int_value(lo)?) };
                let hi = if hi.is_empty() { None } else { Some(parse_int_value(hi)?) };
                if lo.is_none() && hi.is_none() {
                    return Err(format!("'{v}' is not a valid integer range"));
                }
                if let (Some(l), Some(h)) = (lo, hi)
                    && l > h
                {
                    return Err(format!("range '{v}' is empty (its lower bound is above its upper bound)"));
                }
                Ok(Pattern::Int { lo, hi })
            }
            None => parse_int_value(v).map(|n| Pattern::Int { lo: Some(n), hi: Some(n) }),
        },
        MatchMethod::Ip => parse_ip_pattern(v, body.no_dns),
        MatchMethod::Bin => parse_hex(v).map(Pattern::Bin),
        MatchMethod::Reg => {
            compile_regex(v, body.ignore_case)?;
            Ok(Pattern::Regex(v.to_owned()))
        }
        MatchMethod::Found | MatchMethod::Bool => Ok(Pattern::Str(v.to_owned())),
        MatchMethod::Str | MatchMethod::Sub | MatchMethod::Beg | MatchMethod::End | MatchMethod::Dir | MatchMethod::Dom => Ok(Pattern::Str(v.to_owned())),
    }
}

/// Compiles a regex the way the matcher will, so that a bad one fails at load time.
pub fn compile_regex(re: &str, ignore_case: bool) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(re)
        .case_insensitive(ignore_case)
        .size_limit(1 << 22)
        .build()
        .map_err(|e| format!("invalid regex '{re}': {}", sample::first_line(&e.to_string())))
}

fn parse_hex(v: &str) -> Result<Vec<u8>, String> {
    let bad = || format!("'{v}' is not a valid hex string");
    if !v.len().is_multiple_of(2) || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    (0..v.len()).step_by(2).map(|i| v.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()).ok_or_else(bad)).collect()
}

/// `10.0.0.1`, `10.0.0.0/8`, `10.0.0.0/255.0.0.0`, `2001:db8::/32`, or a host name unless `-n`.
fn parse_ip_pattern(v: &str, no_dns: bool) -> Result<Pattern, String> {
    let (addr_s, mask) = match v.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (v, None),
    };
    let Ok(addr) = addr_s.parse::<IpAddr>() else {
        let hostname = !addr_s.is_empty() && addr_s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if mask.is_none() && hostname && !no_dns {
            return Ok(Pattern::Host(v.to_owned()));
        }
        return Err(format!("'{v}' is not a valid IPv4 or IPv6 address"));
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match mask {
        None => max,
        Some(m) if !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()) => match m.parse::<u8>() {
            Ok(p) if p <= max => p,
            _ => return Err(format!("invalid mask '/{m}' in '{v}' (at most {max})")),
        },
        Some(m) if addr.is_ipv4() => {
            let bits = m.parse::<Ipv4Addr>().map(u32::from).map_err(|_| format!("invalid mask '/{m}' in '{v}'"))?;
            if bits.leading_ones() + bits.trailing_zeros() != 32 {
                return Err(format!("non-contiguous mask '/{m}' in '{v}'"));
            }
            bits.leading_ones() as u8
        }
        Some(m) => return Err(format!("invalid mask '/{m}' in '{v}'")),
    };
    Ok(Pattern::Ip { addr, prefix })
}

/// Reads a `-f` file: one pattern per line, blank lines and `#` comments skipped.
fn read_pattern_file(out: &mut Vec<Pattern>, path: &str, body: &AclBody) -> Result<(), String> {
    let cannot = || format!("cannot open file '{path}'");
    // Only regular files: a device such as /dev/zero would never end.
    if !std::fs::metadata(path).map_err(|_| cannot())?.is_file() {
        return Err(cannot());
    }
    let bytes = std::fs::read(path).map_err(|_| cannot())?;
    let text = String::from_utf8_lossy(&bytes);
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let v = if body.map_files { line.split_whitespace().next().unwrap_or(line) } else { line };
        out.push(parse_pattern(v, body).map_err(|e| format!("file '{path}' line {}: {e}", n + 1))?);
    }
    Ok(())
}

/// Parses a sample expression.
pub fn parse_sample(text: &str) -> Result<SampleExpr, String> {
    parse_sample_in(text, false).map(|(e, _)| e)
}

/// Parses a sample expression; in an ACL, the fetch may be an ACL-only derived name (`path_beg`),
/// which comes back as its base fetch and the match method it implies.
fn parse_sample_in(text: &str, acl: bool) -> Result<(SampleExpr, Option<MatchMethod>), String> {
    if text.is_empty() {
        return Err("missing sample expression".into());
    }
    let mut calls = split_calls(text)?.into_iter();
    let Some(mut fetch) = calls.next() else { return Err("missing sample expression".into()) };
    let r = sample::registry();
    let mut implied = None;
    let def = match r.fetch(&fetch.name) {
        Some(d) => d,
        None => match derived_fetch(&fetch.name).filter(|_| acl).and_then(|(base, m)| Some((r.fetch(base)?, m))) {
            Some((d, m)) => {
                implied = Some(m);
                fetch.name = d.name.to_owned();
                d
            }
            None => {
                let derived: Vec<String> = if acl { derived_names().collect() } else { Vec::new() };
                return Err(unknown("fetch method", &fetch.name, r.fetches.iter().map(|d| d.name).chain(derived.iter().map(String::as_str))));
            }
        },
    };
    sample::check_args(def, "fetch method", &fetch.args)?;
    super::registry::note_use("sample fetches", "fetch", def.name, def.doc.status);
    let mut converters = Vec::new();
    for c in calls {
        let def: &SampleDef = r.converter(&c.name).ok_or_else(|| unknown("converter", &c.name, r.converters.iter().map(|d| d.name)))?;
        sample::check_args(def, "converter", &c.args)?;
        super::registry::note_use("converters", "converter", def.name, def.doc.status);
        converters.push(c);
    }
    Ok((SampleExpr { fetch, converters }, implied))
}

fn unknown<'a>(what: &str, name: &str, names: impl Iterator<Item = &'a str>) -> String {
    let hint = did_you_mean(name, names).map(|h| format!("; did you mean '{h}'?")).unwrap_or_default();
    format!("unknown {what} '{name}'{hint}")
}

fn valid_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// Splits `fetch(args),conv(args),...` into calls. Inside arguments, parentheses nest, `'...'` and
/// `"..."` quote, `\,` is a comma and `\` before anything else is kept (regexes need it).
fn split_calls(text: &str) -> Result<Vec<Call>, String> {
    let mut calls = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '(' || c == ',' {
                break;
            }
            if !valid_name_char(c) {
                return Err(format!("unexpected character '{c}' in sample expression '{text}'"));
            }
            name.push(c);
            chars.next();
        }
        if name.is_empty() {
            return Err(if calls.is_empty() { format!("missing fetch method in '{text}'") } else { format!("missing converter after ',' in '{text}'") });
        }
        let mut args = Vec::new();
        if chars.peek() == Some(&'(') {
            chars.next();
            args = split_args(&mut chars, text)?;
        }
        calls.push(Call { name, args });
        match chars.next() {
            None => return Ok(calls),
            Some(',') => {}
            Some(c) => return Err(format!("unexpected character '{c}' after ')' in sample expression '{text}'")),
        }
    }
}

fn split_args(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, text: &str) -> Result<Vec<String>, String> {
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut depth = 0usize;
    loop {
        let Some(c) = chars.next() else { return Err(format!("missing closing ')' in sample expression '{text}'")) };
        match c {
            '\\' => match chars.next() {
                Some(',') => cur.push(','),
                Some(n) => {
                    cur.push('\\');
                    cur.push(n);
                }
                None => return Err(format!("trailing backslash in sample expression '{text}'")),
            },
            '\'' | '"' => loop {
                match chars.next() {
                    Some(q) if q == c => break,
                    Some('\\') if c == '"' => match chars.next() {
                        Some(n) => cur.push(n),
                        None => return Err(format!("missing closing quote in sample expression '{text}'")),
                    },
                    Some(n) => cur.push(n),
                    None => return Err(format!("missing closing quote in sample expression '{text}'")),
                }
            },
            '(' => {
                depth += 1;
                cur.push(c);
            }
            ')' if depth == 0 => {
                // `f()` has no argument; `f(,)` has two empty ones.
                if !(args.is_empty() && cur.is_empty()) {
                    args.push(cur);
                }
                return Ok(args);
            }
            ')' => {
                depth -= 1;
                cur.push(c);
            }
            ',' if depth == 0 => {
                args.push(std::mem::take(&mut cur));
            }
            _ => cur.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<Word> {
        s.split_whitespace().map(Word::bare).collect()
    }

    fn acl(s: &str) -> Result<AclBody, String> {
        parse_acl(&w(s))
    }

    fn cond(s: &str) -> Result<Condition, String> {
        parse_condition(&w(s))
    }

    fn int(lo: Option<i64>, hi: Option<i64>) -> Pattern {
        Pattern::Int { lo, hi }
    }

    // Sample expressions.

    #[test]
    fn sample_with_args_and_converter_chain() {
        let e = parse_sample("req.hdr(host),lower,map_dom(/etc/x.map,default)").unwrap();
        assert_eq!(e.fetch, Call { name: "req.hdr".into(), args: vec!["host".into()] });
        assert_eq!(e.converters.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), vec!["lower", "map_dom"]);
        assert_eq!(e.converters[1].args, vec!["/etc/x.map", "default"]);
    }

    #[test]
    fn sample_args_may_be_empty_or_negative() {
        assert_eq!(parse_sample("req.hdr(host,-1)").unwrap().fetch.args, vec!["host", "-1"]);
        assert_eq!(parse_sample("req.hdr()").unwrap().fetch.args, Vec::<String>::new());
        assert_eq!(parse_sample("src,concat(,txn.x,)").unwrap().converters[0].args, vec!["", "txn.x", ""]);
    }

    #[test]
    fn sample_args_nest_parentheses() {
        let e = parse_sample("path,regsub(^/(api|v1)/,/,g)").unwrap();
        assert_eq!(e.converters[0].args, vec!["^/(api|v1)/", "/", "g"]);
    }

    #[test]
    fn sample_args_unescape_commas_and_keep_other_escapes() {
        let e = parse_sample("path,regsub(\\.php$,\\,x)").unwrap();
        assert_eq!(e.converters[0].args, vec!["\\.php$", ",x"]);
    }

    #[test]
    fn sample_args_may_be_quoted() {
        let e = parse_sample("req.hdr(x),field(1,'),')").unwrap();
        assert_eq!(e.converters[0].args, vec!["1", "),"]);
    }

    #[test]
    fn sample_unknown_fetch_suggests_a_name() {
        let e = parse_sample("req.hdrr(host)").unwrap_err();
        assert_eq!(e, "unknown fetch method 'req.hdrr'; did you mean 'req.hdr'?");
    }

    #[test]
    fn sample_unknown_converter_suggests_a_name() {
        let e = parse_sample("path,lowr").unwrap_err();
        assert_eq!(e, "unknown converter 'lowr'; did you mean 'lower'?");
    }

    #[test]
    fn sample_derived_names_are_acl_only() {
        assert!(parse_sample("path_beg").unwrap_err().contains("unknown fetch method"));
    }

    #[test]
    fn sample_unclosed_parenthesis_is_an_error() {
        assert!(parse_sample("req.hdr(host").unwrap_err().contains("missing closing ')'"));
    }

    #[test]
    fn sample_text_after_arguments_is_an_error() {
        assert!(parse_sample("req.hdr(host)x").unwrap_err().contains("after ')'"));
    }

    #[test]
    fn sample_trailing_comma_is_an_error() {
        assert!(parse_sample("path,").unwrap_err().contains("missing converter"));
    }

    #[test]
    fn sample_empty_is_an_error() {
        assert!(parse_sample("").is_err());
        assert!(parse_sample("(x)").is_err());
    }

    #[test]
    fn sample_argument_counts_are_checked() {
        assert!(parse_sample("src(x)").unwrap_err().contains("takes no argument"));
        assert!(parse_sample("path,regsub(x)").unwrap_err().contains("at least 2"));
    }

    #[test]
    fn sample_arithmetic_takes_int_or_variable() {
        assert!(parse_sample("int(1),add(2),mul(txn.k)").is_ok());
        assert!(parse_sample("int(1),add(two)").is_err());
    }

    #[test]
    fn sample_table_refs_come_from_table_arguments() {
        assert_eq!(parse_sample("src_conn_rate(st_src)").unwrap().table_refs(), vec!["st_src"]);
        assert_eq!(parse_sample("sc_http_req_rate(0,st_a)").unwrap().table_refs(), vec!["st_a"]);
        assert_eq!(parse_sample("sc0_http_req_rate").unwrap().table_refs(), Vec::<&str>::new());
        assert_eq!(parse_sample("table_cnt(t1)").unwrap().table_refs(), vec!["t1"]);
        assert_eq!(parse_sample("src,in_table(t2)").unwrap().table_refs(), vec!["t2"]);
        assert_eq!(parse_sample("src,table_http_req_rate(t3)").unwrap().table_refs(), vec!["t3"]);
    }

    #[test]
    fn sample_out_type_follows_the_last_converter() {
        assert_eq!(parse_sample("path,length").unwrap().out_type(), SampleType::Int);
        assert_eq!(parse_sample("src,debug").unwrap().out_type(), SampleType::Ip);
    }

    // ACLs.

    #[test]
    fn acl_string_values_default_to_exact_match() {
        let b = acl("hdr(host) -i a.example.com b.example.com").unwrap();
        assert_eq!(b.method, MatchMethod::Str);
        assert!(b.ignore_case);
        assert_eq!(b.patterns, vec![Pattern::Str("a.example.com".into()), Pattern::Str("b.example.com".into())]);
    }

    #[test]
    fn acl_derived_name_implies_the_method() {
        let b = acl("path_beg /api/").unwrap();
        assert_eq!((b.expr.fetch.name.as_str(), b.method), ("path", MatchMethod::Beg));
        let b = acl("hdr_dom(host) example.com").unwrap();
        assert_eq!((b.expr.fetch.name.as_str(), b.method), ("hdr", MatchMethod::Dom));
        assert_eq!(b.expr.fetch.args, vec!["host"]);
    }

    #[test]
    fn acl_misspelt_derived_name_suggests_one() {
        assert_eq!(acl("path_bge /a").unwrap_err(), "unknown fetch method 'path_bge'; did you mean 'path_beg'?");
    }

    #[test]
    fn acl_derived_len_takes_integers() {
        assert_eq!(acl("path_len gt 100").unwrap().patterns, vec![int(Some(101), None)]);
    }

    #[test]
    fn acl_match_method_flag() {
        let b = acl("req.ssl_sni -m end .example.com").unwrap();
        assert_eq!(b.method, MatchMethod::End);
    }

    #[test]
    fn acl_unknown_match_method_is_an_error() {
        assert_eq!(acl("path -m begn /x").unwrap_err(), "unknown match method 'begn'; did you mean 'beg'?");
    }

    #[test]
    fn acl_conflicting_match_method_is_an_error() {
        assert!(acl("path_beg -m sub /x").unwrap_err().contains("conflicts"));
        assert!(acl("path_beg -m beg /x").is_ok());
    }

    #[test]
    fn acl_integer_operators() {
        let b = acl("dst_port ge 1024").unwrap();
        assert_eq!(b.patterns, vec![int(Some(1024), None)]);
        assert_eq!(acl("status lt 500").unwrap().patterns, vec![int(None, Some(499))]);
        assert_eq!(acl("status eq 200 404").unwrap().patterns, vec![int(Some(200), Some(200)), int(Some(404), Some(404))]);
    }

    #[test]
    fn acl_integer_ranges() {
        assert_eq!(acl("dst_port 1:100 8000:").unwrap().patterns, vec![int(Some(1), Some(100)), int(Some(8000), None)]);
        assert!(acl("dst_port 100:1").unwrap_err().contains("empty"));
        assert!(acl("dst_port :").is_err());
    }

    #[test]
    fn acl_integer_dotted_versions() {
        assert_eq!(acl("req.ssl_ver 3.1").unwrap().patterns, vec![int(Some(3 * 65536 + 1), Some(3 * 65536 + 1))]);
    }

    #[test]
    fn acl_operator_without_value_is_an_error() {
        assert!(acl("status ge").unwrap_err().contains("must be followed by a value"));
        assert!(acl("status ge lt 5").is_err());
        assert!(acl("status ge 1:5").unwrap_err().contains("range"));
    }

    #[test]
    fn acl_bad_integer_is_an_error() {
        assert_eq!(acl("status abc").unwrap_err(), "'abc' is not a valid integer");
        assert!(acl("status lt -9223372036854775808").is_err());
    }

    #[test]
    fn acl_operators_are_strings_for_string_matches() {
        assert_eq!(acl("path eq").unwrap().patterns, vec![Pattern::Str("eq".into())]);
    }

    #[test]
    fn acl_ip_values_with_masks() {
        let b = acl("src 10.0.0.0/8 192.168.1.1 10.1.0.0/255.255.0.0 2001:db8::/32").unwrap();
        let p: Vec<_> = b.patterns.iter().map(|p| if let Pattern::Ip { prefix, .. } = p { *prefix } else { 0 }).collect();
        assert_eq!(p, vec![8, 32, 16, 32]);
    }

    #[test]
    fn acl_bad_ip_is_an_error() {
        assert!(acl("src 10.0.0.0/33").unwrap_err().contains("invalid mask"));
        assert!(acl("src 10.0.0.0/255.0.255.0").unwrap_err().contains("non-contiguous"));
        assert!(acl("src 10.0.0.300/8").unwrap_err().contains("not a valid IPv4 or IPv6"));
    }

    #[test]
    fn acl_host_names_need_dns() {
        assert_eq!(acl("src localhost").unwrap().patterns, vec![Pattern::Host("localhost".into())]);
        assert!(acl("src -n localhost").is_err());
    }

    #[test]
    fn acl_hdr_ip_is_ip_typed() {
        assert_eq!(acl("hdr_ip(x-forwarded-for,-1) 10.0.0.0/8").unwrap().method, MatchMethod::Ip);
    }

    #[test]
    fn acl_regex_must_compile() {
        assert_eq!(acl("path_reg ^/api/v[0-9]+/").unwrap().patterns, vec![Pattern::Regex("^/api/v[0-9]+/".into())]);
        assert!(acl("path -m reg (").unwrap_err().starts_with("invalid regex '('"));
    }

    #[test]
    fn acl_bin_values_are_hex() {
        assert_eq!(acl("req.payload(0,1) -m bin 16").unwrap().patterns, vec![Pattern::Bin(vec![0x16])]);
        assert!(acl("req.payload(0,1) 1").unwrap_err().contains("hex"));
    }

    #[test]
    fn acl_bool_and_found_ignore_values() {
        assert_eq!(acl("ssl_fc").unwrap().method, MatchMethod::Bool);
        let b = acl("req.cook(sid) -m found").unwrap();
        assert_eq!((b.method, b.patterns.len()), (MatchMethod::Found, 0));
    }

    #[test]
    fn acl_double_dash_ends_flags() {
        assert_eq!(acl("hdr(x) -- -i").unwrap().patterns, vec![Pattern::Str("-i".into())]);
        assert_eq!(acl("hdr_val(x) -- -5").unwrap().patterns, vec![int(Some(-5), Some(-5))]);
    }

    #[test]
    fn acl_unknown_flag_is_an_error() {
        assert!(acl("path -x /a").unwrap_err().contains("'-x' is not a valid ACL option"));
    }

    #[test]
    fn acl_flags_needing_an_argument() {
        assert_eq!(acl("path -f").unwrap_err(), "missing file name after '-f'");
        assert_eq!(acl("path -m").unwrap_err(), "missing match method after '-m'");
        assert!(acl("path -u x").unwrap_err().contains("numeric id"));
        assert_eq!(acl("path -u 7 /").unwrap().unique_id, Some(7));
    }

    #[test]
    fn acl_missing_pattern_file_is_an_error() {
        assert_eq!(acl("src -f /nonexistent/x.lst").unwrap_err(), "cannot open file '/nonexistent/x.lst'");
        assert_eq!(acl("src -f /dev/null").unwrap_err(), "cannot open file '/dev/null'");
    }

    #[test]
    fn acl_pattern_files_are_read_and_checked() {
        let dir = std::env::temp_dir().join(format!("sluiced-expr-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.lst");
        std::fs::write(&good, "# nets\n10.0.0.0/8\n\n192.168.0.1 backend_a\n").unwrap();
        let bad = dir.join("bad.lst");
        std::fs::write(&bad, "10.0.0.0/8\nnot/an/ip\n").unwrap();
        let b = acl(&format!("src -M -f {} -f {}", good.display(), good.display())).unwrap();
        assert_eq!(b.patterns.len(), 4);
        assert_eq!(b.files.len(), 2);
        let e = acl(&format!("src -f {}", bad.display())).unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn acl_missing_fetch_is_an_error() {
        assert_eq!(acl("").unwrap_err(), "missing fetch method");
    }

    #[test]
    fn acl_table_refs_from_stick_fetches() {
        assert_eq!(acl("sc_http_req_rate(0,st_src) gt 10").unwrap().expr.table_refs(), vec!["st_src"]);
    }

    // Conditions.

    #[test]
    fn condition_ands_and_ors() {
        let c = cond("if a b || c or !d").unwrap();
        assert_eq!(c.polarity, Polarity::If);
        assert_eq!(c.any_of.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 1, 1]);
        assert_eq!(c.acl_names().collect::<Vec<_>>(), vec!["a", "b", "c", "d"]);
        assert!(c.any_of[2][0].negated);
    }

    #[test]
    fn condition_unless_polarity() {
        assert_eq!(cond("unless a").unwrap().polarity, Polarity::Unless);
    }

    #[test]
    fn condition_separate_bang_negates() {
        let c = cond("if ! a").unwrap();
        assert!(c.any_of[0][0].negated);
        assert!(!cond("if ! !a").unwrap().any_of[0][0].negated);
    }

    #[test]
    fn condition_inline_acl() {
        let c = cond("if { path_beg /api } ! { src 10.0.0.0/8 }").unwrap();
        assert_eq!(c.any_of[0].len(), 2);
        assert!(matches!(&c.any_of[0][0].acl, AclRef::Inline(b) if b.method == MatchMethod::Beg));
        assert!(c.any_of[0][1].negated);
        assert_eq!(c.acl_names().count(), 0);
    }

    #[test]
    fn condition_glued_bang_brace_negates_the_inline_acl() {
        let c = cond("if !{ src 10.0.0.0/8 }").unwrap();
        assert!(c.any_of[0][0].negated);
    }

    #[test]
    fn condition_quoted_brace_is_a_value() {
        let mut words = w("if { hdr(x) X }");
        words[3] = Word { text: "{".into(), quoted: true };
        let c = parse_condition(&words).unwrap();
        assert!(matches!(&c.any_of[0][0].acl, AclRef::Inline(b) if b.patterns == vec![Pattern::Str("{".into())]));
    }

    #[test]
    fn condition_inline_table_refs() {
        assert_eq!(cond("if { src_conn_rate(st) gt 5 } a").unwrap().table_refs(), vec!["st"]);
    }

    #[test]
    fn condition_empty_is_an_error() {
        assert_eq!(cond("if").unwrap_err(), "missing condition after 'if'");
    }

    #[test]
    fn condition_unbalanced_braces_are_errors() {
        assert_eq!(cond("if { path /").unwrap_err(), "missing closing '}' in condition");
        assert!(cond("if a }").unwrap_err().contains("without a matching '{'"));
        assert!(cond("if { { path / } }").unwrap_err().contains("inside an inline ACL"));
        assert_eq!(cond("if { }").unwrap_err(), "empty inline ACL '{ }'");
    }

    #[test]
    fn condition_trailing_or_is_an_error() {
        assert_eq!(cond("if a ||").unwrap_err(), "condition ends with '||'");
        assert_eq!(cond("if a or").unwrap_err(), "condition ends with 'or'");
    }

    #[test]
    fn condition_leading_or_double_or_is_an_error() {
        assert!(cond("if || a").unwrap_err().contains("must follow an ACL"));
        assert!(cond("if a || || b").is_err());
    }

    #[test]
    fn condition_dangling_bang_is_an_error() {
        assert_eq!(cond("if a !").unwrap_err(), "'!' at the end of the condition");
        assert!(cond("if ! || a").is_err());
    }

    #[test]
    fn condition_bad_acl_name_is_an_error() {
        assert!(cond("if a$b").unwrap_err().contains("not permitted"));
    }

    #[test]
    fn condition_inline_errors_say_where() {
        assert!(cond("if { nope }").unwrap_err().starts_with("in inline ACL: unknown fetch method 'nope'"));
    }

    #[test]
    fn split_condition_finds_first_unquoted_if() {
        let mut words = w("be if a");
        let (a, c) = split_condition(&words);
        assert_eq!((a.len(), c.map(<[Word]>::len)), (1, Some(2)));
        words[1].quoted = true;
        assert!(split_condition(&words).1.is_none());
    }

    #[test]
    fn registry_examples_of_acls_parse() {
        for t in sample::doc_tables() {
            for (name, _, doc) in &t.entries {
                if !doc.example.starts_with("acl ") {
                    continue;
                }
                let words = crate::config::lex::split_words(doc.example, &std::collections::HashMap::new()).unwrap();
                if let Err(e) = parse_acl(&words[2..]) {
                    panic!("{name}: example '{}' does not parse: {e}", doc.example);
                }
            }
        }
    }
}

#[cfg(test)]
mod never_panic {
    use super::*;
    use proptest::prelude::*;

    fn word() -> impl Strategy<Value = Word> {
        let tok = prop_oneof![
            Just("{".to_string()),
            Just("}".to_string()),
            Just("!".to_string()),
            Just("||".to_string()),
            Just("-m".to_string()),
            Just("-i".to_string()),
            Just("ge".to_string()),
            Just("src".to_string()),
            Just("path_beg".to_string()),
            Just("hdr(host)".to_string()),
            any::<String>(),
        ];
        (tok, any::<bool>()).prop_map(|(text, quoted)| Word { text, quoted })
    }

    proptest! {
        #[test]
        fn parse_sample_never_panics(s in any::<String>()) {
            let _ = parse_sample(&s);
        }

        #[test]
        fn parse_sample_never_panics_on_expression_like_text(s in "[a-z_.(),\\\\'\"0-9-]{0,40}") {
            let _ = parse_sample(&s);
        }

        #[test]
        fn parse_acl_and_condition_never_panic(words in prop::collection::vec(word(), 0..8)) {
            let _ = parse_acl(&words);
            let mut cond = vec![Word::bare("if")];
            cond.extend(words.iter().cloned());
            let _ = parse_condition(&cond);
            let _ = parse_condition(&words);
            let _ = split_condition(&words);
        }

        #[test]
        fn parse_log_format_never_panics(s in any::<String>()) {
            let _ = crate::config::logformat::parse_log_format(&s);
        }

        #[test]
        fn parse_log_format_never_panics_on_format_like_text(s in "[%{}\\[\\]+QX,a-zA-Z()\\\\ ]{0,40}") {
            let _ = crate::config::logformat::parse_log_format(&s);
        }
    }
}
