//! Configuration of load balancing: `balance`, `hash-type`, `hash-balance-factor`, `cookie`,
//! `persist rdp-cookie`, parsed into a typed model. The algorithms live next to this file; cookie
//! persistence, which reads and writes HTTP headers, runs in `l7::cookie`.

use std::time::Duration;

use crate::config::expr::{SampleExpr, parse_sample};
use crate::config::model::Proxy;
use crate::config::registry::{Doc, KwArgs, ProxyKeyword, ProxyParse, Sections};
use crate::config::units::{parse_time_unit, parse_uint};
use crate::doc;

/// What a proxy says about choosing a server. `None` fields were not set (here or in defaults).
#[derive(Clone, Debug, Default)]
pub struct ProxyBalance {
    /// `balance`; HAProxy's default when unset is round robin.
    pub algo: Option<Balance>,
    /// `hash-type`; unset means map-based with sdbm.
    pub hash_type: Option<HashType>,
    /// `hash-balance-factor`: bounded-load consistent hashing, percent of the average load (0 = off).
    pub hash_balance_factor: Option<u32>,
    /// `cookie`: cookie-based persistence.
    pub cookie: Option<CookiePersistence>,
    /// `persist rdp-cookie[(name)]`: the cookie name, defaulted to `msts`.
    pub persist_rdp_cookie: Option<String>,
}

/// The `balance` algorithm with its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Balance {
    RoundRobin,
    StaticRr,
    LeastConn,
    First,
    Source,
    /// `random[(draws)]`: the least loaded of `draws` random picks (power of two choices by default).
    Random {
        draws: u32,
    },
    Uri(UriHash),
    /// `url_param NAME [check_post]`.
    UrlParam {
        name: String,
        check_post: bool,
    },
    /// `hdr(NAME) [use_domain_only]`.
    Hdr {
        name: String,
        use_domain_only: bool,
    },
    /// `rdp-cookie[(NAME)]`, the name defaulted to `mstshash`.
    RdpCookie {
        name: String,
    },
    /// `hash <expr>`: any sample expression.
    Hash(SampleExpr),
}

/// `balance uri [whole] [len N] [depth N] [path-only]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UriHash {
    /// Hash the query string too.
    pub whole: bool,
    /// Hash only the first N characters.
    pub len: Option<u32>,
    /// Hash only the first N directories.
    pub depth: Option<u32>,
    /// Ignore the scheme and authority of absolute URIs.
    pub path_only: bool,
}

/// `hash-type <method> [<function>] [avalanche]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashType {
    pub method: HashMethod,
    pub function: HashFunction,
    pub avalanche: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashMethod {
    /// Hash modulo the total weight: best spread, but every server change remaps most keys.
    MapBased,
    /// A hash ring: a server change remaps only its own share of keys.
    Consistent,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HashFunction {
    #[default]
    Sdbm,
    Djb2,
    Wt6,
    Crc32,
    /// The sample already is a hash (`balance hash` with an integer expression).
    None,
}

/// `cookie NAME [rewrite|insert|prefix] [indirect] ...`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CookiePersistence {
    pub name: String,
    /// `None`: the server sets the cookie and it is only read ("passive" mode).
    pub mode: Option<CookieMode>,
    pub indirect: bool,
    pub nocache: bool,
    pub postonly: bool,
    pub preserve: bool,
    pub httponly: bool,
    pub secure: bool,
    /// `dynamic`: server cookies derived from `dynamic-cookie-key` and the server address.
    pub dynamic: bool,
    pub domains: Vec<String>,
    pub maxidle: Option<Duration>,
    pub maxlife: Option<Duration>,
    /// `attr` values appended to the Set-Cookie header.
    pub attrs: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CookieMode {
    Rewrite,
    Insert,
    Prefix,
}

impl CookieMode {
    fn keyword(self) -> &'static str {
        match self {
            CookieMode::Rewrite => "rewrite",
            CookieMode::Insert => "insert",
            CookieMode::Prefix => "prefix",
        }
    }
}

fn kw(name: &'static str, sections: Sections, parse: ProxyParse, doc: Doc) -> ProxyKeyword {
    ProxyKeyword { name, sections, negatable: false, parse, doc }
}

pub fn proxy_keywords() -> Vec<ProxyKeyword> {
    use Sections as S;
    vec![
        kw(
            "balance",
            S::BE,
            parse_balance,
            doc!(
                Parsed,
                "balance roundrobin|static-rr|leastconn|first|source|random[(<draws>)]|uri [whole] [len <n>] [depth <n>] [path-only]|url_param <name> [check_post]|hdr(<name>) [use_domain_only]|rdp-cookie[(<name>)]|hash <expr>",
                "Chooses how the backend picks a server for a new stream.",
                "balance uri depth 2"
            ),
        ),
        kw(
            "hash-type",
            S::BE,
            parse_hash_type,
            doc!(
                Parsed,
                "hash-type map-based|consistent [sdbm|djb2|wt6|crc32|none] [avalanche]",
                "How hash-based algorithms map a key to a server, and with which hash function.",
                "hash-type consistent djb2"
            ),
        ),
        kw(
            "hash-balance-factor",
            S::BE,
            |a, p| {
                let v = one(a, "balance factor")?;
                let f = parse_uint(v, a.keyword, i32::MAX as u64)? as u32;
                if f != 0 && f <= 100 {
                    return Err(format!("'{}' must be 0 or greater than 100, got '{v}'", a.keyword));
                }
                p.balance.hash_balance_factor = Some(f);
                Ok(())
            },
            doc!(
                Parsed,
                "hash-balance-factor <factor>",
                "With hash-type consistent: a server takes a new stream only while it serves fewer than <factor>% of its weight's share of the streams in progress (counting the new one, at least 1); otherwise the key walks on along the ring, so a hot key spills over to the next servers. 0 disables; otherwise more than 100. Map-based hashing ignores it, as HAProxy does.",
                "hash-balance-factor 150"
            ),
        ),
        kw(
            "cookie",
            S::BE,
            parse_cookie,
            doc!(
                Parsed,
                "cookie <name> [rewrite|insert|prefix] [indirect] [nocache] [postonly] [preserve] [httponly] [secure] [domain <d>]* [maxidle <t>] [maxlife <t>] [dynamic] [attr <v>]*",
                "Sends a client back to the server named by a cookie (mode http; 'dynamic' is parsed only).",
                "cookie SRV insert indirect nocache"
            ),
        ),
        kw(
            "persist",
            S::BE,
            |a, p| {
                let word = one(a, "'rdp-cookie'")?;
                match paren_arg(word, "rdp-cookie")? {
                    Some(name) => p.balance.persist_rdp_cookie = Some(name.unwrap_or("msts").to_owned()),
                    None => return Err(format!("only 'rdp-cookie' is supported, got '{word}'")),
                }
                Ok(())
            },
            doc!(
                Parsed,
                "persist rdp-cookie[(<name>)]",
                "Mode tcp: a client whose RDP connection request carries a routing token (Cookie: msts=<ipv4>.<port>.0000, both little-endian as Windows' session broker writes them) goes to the server at that address and port when it is usable (any with option persist), before stickiness and balancing. Needs tcp-request inspect-delay and a content rule that waits for the cookie (tcp-request content accept if RDP_COOKIE).",
                "persist rdp-cookie"
            ),
        ),
    ]
}

fn one<'a>(a: &KwArgs<'a>, what: &str) -> Result<&'a str, String> {
    let v = a.need(0, what)?;
    a.at_most(1)?;
    Ok(v)
}

/// Splits `name` or `name(arg)`: `None` when `word` is neither, `Some(None)` for the bare name,
/// `Some(Some(arg))` for the parenthesized form. An empty or unterminated argument is an error.
pub(crate) fn paren_arg<'a>(word: &'a str, name: &str) -> Result<Option<Option<&'a str>>, String> {
    let Some(rest) = word.strip_prefix(name) else {
        return Ok(None);
    };
    if rest.is_empty() {
        return Ok(Some(None));
    }
    let Some(inner) = rest.strip_prefix('(') else {
        return Ok(None);
    };
    let inner = inner.strip_suffix(')').ok_or_else(|| format!("missing ')' in '{word}'"))?;
    if inner.is_empty() {
        return Err(format!("empty argument in '{word}'"));
    }
    Ok(Some(Some(inner)))
}

/// A strictly positive integer, for `len`, `depth` and `random` draws.
fn positive(v: Option<&str>, what: &str) -> Result<u32, String> {
    let v = v.ok_or_else(|| format!("'{what}' expects a positive integer"))?;
    match v.parse::<u32>() {
        Ok(n) if n > 0 && n <= i32::MAX as u32 => Ok(n),
        _ => Err(format!("'{what}' expects a positive integer, got '{v}'")),
    }
}

fn parse_balance(a: &mut KwArgs<'_>, p: &mut Proxy) -> Result<(), String> {
    let algo = a.need(0, "load balancing algorithm")?;
    let args: Vec<&str> = a.args()[1..].iter().map(|w| w.text.as_str()).collect();
    let no_args = |b: Balance| match args.first() {
        Some(x) => Err(format!("'{algo}' takes no argument, got '{x}'")),
        None => Ok(b),
    };
    let b = match algo {
        "roundrobin" => no_args(Balance::RoundRobin)?,
        "static-rr" => no_args(Balance::StaticRr)?,
        "leastconn" => no_args(Balance::LeastConn)?,
        "first" => no_args(Balance::First)?,
        "source" => no_args(Balance::Source)?,
        "uri" => Balance::Uri(parse_uri_opts(&args)?),
        "url_param" => {
            let name = args.first().ok_or("'url_param' requires a URL parameter name")?;
            let mut check_post = false;
            match args.get(1..).unwrap_or_default() {
                [] => {}
                ["check_post"] => check_post = true,
                ["check_post", max] if max.parse::<u32>().is_ok() => {
                    check_post = true;
                    a.warn(format!("the 'check_post' size '{max}' is ignored; the whole buffered body is searched"));
                }
                ["check_post", x, ..] => return Err(format!("unexpected argument '{x}' after 'check_post'")),
                [x, ..] => return Err(format!("'url_param' only accepts the 'check_post' modifier, got '{x}'")),
            }
            Balance::UrlParam { name: (*name).to_owned(), check_post }
        }
        "log-hash" => return Err("'log-hash' balances log backends, which sluiced does not support".into()),
        "hash" => {
            let expr = args.first().ok_or("'hash' requires a sample expression")?;
            if let Some(x) = args.get(1) {
                return Err(format!("unexpected argument '{x}' after the hash expression"));
            }
            Balance::Hash(parse_sample(expr)?)
        }
        _ => {
            if let Some(draws) = paren_arg(algo, "random")? {
                let draws = match draws {
                    Some(d) => positive(Some(d), "random")?,
                    None => 2,
                };
                no_args(Balance::Random { draws })?
            } else if let Some(name) = paren_arg(algo, "rdp-cookie")? {
                no_args(Balance::RdpCookie { name: name.unwrap_or("mstshash").to_owned() })?
            } else if let Some(name) = paren_arg(algo, "hdr")? {
                let name = name.ok_or("'hdr' requires an HTTP header field name, as in 'hdr(host)'")?;
                let use_domain_only = match args.as_slice() {
                    [] => false,
                    ["use_domain_only"] => true,
                    [x, ..] => return Err(format!("'hdr' only accepts the 'use_domain_only' modifier, got '{x}'")),
                };
                Balance::Hdr { name: name.to_owned(), use_domain_only }
            } else {
                return Err(format!(
                    "unknown load balancing algorithm '{algo}' (expected roundrobin, static-rr, leastconn, first, source, random, uri, url_param, hdr(name), rdp-cookie or hash)"
                ));
            }
        }
    };
    if let Balance::Hash(e) = &b {
        p.add_sample_refs(e, a.span, "balance");
    }
    p.balance.algo = Some(b);
    Ok(())
}

fn parse_uri_opts(args: &[&str]) -> Result<UriHash, String> {
    let mut u = UriHash::default();
    let mut i = 0;
    while i < args.len() {
        match args[i] {
            "whole" => u.whole = true,
            "path-only" => u.path_only = true,
            "len" => {
                i += 1;
                u.len = Some(positive(args.get(i).copied(), "len")?);
            }
            "depth" => {
                i += 1;
                u.depth = Some(positive(args.get(i).copied(), "depth")?);
            }
            x => return Err(format!("'uri' only accepts 'whole', 'len', 'depth' and 'path-only', got '{x}'")),
        }
        i += 1;
    }
    Ok(u)
}

fn parse_hash_type(a: &mut KwArgs<'_>, p: &mut Proxy) -> Result<(), String> {
    let method = match a.need(0, "hash method ('map-based' or 'consistent')")? {
        "map-based" => HashMethod::MapBased,
        "consistent" => HashMethod::Consistent,
        m => return Err(format!("unknown hash method '{m}' (expected 'map-based' or 'consistent')")),
    };
    let function = match a.arg(1) {
        None => HashFunction::default(),
        Some("sdbm") => HashFunction::Sdbm,
        Some("djb2") => HashFunction::Djb2,
        Some("wt6") => HashFunction::Wt6,
        Some("crc32") => HashFunction::Crc32,
        Some("none") => HashFunction::None,
        Some(f) => return Err(format!("unknown hash function '{f}' (expected sdbm, djb2, wt6, crc32 or none)")),
    };
    let avalanche = match a.arg(2) {
        None => false,
        Some("avalanche") => true,
        Some(m) => return Err(format!("only 'avalanche' is supported as a hash modifier, got '{m}'")),
    };
    a.at_most(3)?;
    p.balance.hash_type = Some(HashType { method, function, avalanche });
    Ok(())
}

fn parse_cookie(a: &mut KwArgs<'_>, p: &mut Proxy) -> Result<(), String> {
    let name = a.need(0, "cookie name")?;
    if name.is_empty() || name.bytes().any(|b| b.is_ascii_control() || b" \t;,=\"".contains(&b)) {
        return Err(format!("invalid cookie name '{name}'"));
    }
    let mut c = CookiePersistence { name: name.to_owned(), ..Default::default() };
    let args = &a.args()[1..];
    let mut i = 0;
    let value = |i: usize, opt: &str| -> Result<&str, String> { args.get(i).map(|w| w.text.as_str()).ok_or_else(|| format!("'{opt}' expects a value")) };
    while i < args.len() {
        let opt = args[i].text.as_str();
        match opt {
            "rewrite" | "insert" | "prefix" => {
                let mode = match opt {
                    "rewrite" => CookieMode::Rewrite,
                    "insert" => CookieMode::Insert,
                    _ => CookieMode::Prefix,
                };
                if let Some(prev) = c.mode.filter(|m| *m != mode) {
                    return Err(format!("cookie modes '{}' and '{opt}' are mutually exclusive (rewrite, insert and prefix)", prev.keyword()));
                }
                c.mode = Some(mode);
            }
            "indirect" => c.indirect = true,
            "nocache" => c.nocache = true,
            "postonly" => c.postonly = true,
            "preserve" => c.preserve = true,
            "httponly" => c.httponly = true,
            "secure" => c.secure = true,
            "dynamic" => c.dynamic = true,
            "domain" => {
                i += 1;
                let d = value(i, opt)?;
                if d.is_empty() || d.bytes().any(|b| b.is_ascii_control() || b == b';' || b == b' ') {
                    return Err(format!("invalid cookie domain '{d}'"));
                }
                if !d.contains('.') {
                    a.warn(format!("domain '{d}' contains no embedded dot and does not start with one; browsers may ignore it"));
                }
                c.domains.push(d.to_owned());
            }
            "maxidle" | "maxlife" => {
                i += 1;
                let t = parse_time_unit(value(i, opt)?, "s")?;
                if opt == "maxidle" { c.maxidle = Some(t) } else { c.maxlife = Some(t) }
            }
            "attr" => {
                i += 1;
                let v = value(i, opt)?;
                if v.bytes().any(|b| b.is_ascii_control() || b == b';') {
                    return Err(format!("'attr' value '{}' contains a ';' or a control character", v.escape_default()));
                }
                c.attrs.push(v.to_owned());
            }
            _ => {
                return Err(format!(
                    "unknown option '{opt}' (expected rewrite, insert, prefix, indirect, nocache, postonly, preserve, httponly, secure, domain, maxidle, maxlife, dynamic or attr)"
                ));
            }
        }
        i += 1;
    }
    if c.indirect && c.mode == Some(CookieMode::Rewrite) {
        return Err("cookie 'rewrite' and 'indirect' modes are mutually exclusive".into());
    }
    if c.preserve && c.mode != Some(CookieMode::Insert) && !c.indirect {
        return Err("cookie 'preserve' requires at least 'insert' or 'indirect'".into());
    }
    p.balance.cookie = Some(c);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::{load, ok};

    fn backend(lines: &str) -> ProxyBalance {
        ok(&format!("backend be\n{lines}\n")).proxies.remove(0).balance
    }

    /// The one alert of a backend made of `lines`, as (line, keyword, message).
    fn alert(lines: &str) -> (u32, String, String) {
        let loaded = load(&format!("backend be\n{lines}\n"));
        let alerts: Vec<_> = loaded.diags.alerts().collect();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        let d = alerts[0];
        (d.span.as_ref().unwrap().line, d.keyword.clone().unwrap_or_default(), d.msg.clone())
    }

    #[test]
    fn simple_algorithms_parse() {
        assert_eq!(backend("balance roundrobin").algo, Some(Balance::RoundRobin));
        assert_eq!(backend("balance static-rr").algo, Some(Balance::StaticRr));
        assert_eq!(backend("balance leastconn").algo, Some(Balance::LeastConn));
        assert_eq!(backend("balance first").algo, Some(Balance::First));
        assert_eq!(backend("balance source").algo, Some(Balance::Source));
    }

    #[test]
    fn random_defaults_to_two_draws() {
        assert_eq!(backend("balance random").algo, Some(Balance::Random { draws: 2 }));
        assert_eq!(backend("balance random(5)").algo, Some(Balance::Random { draws: 5 }));
    }

    #[test]
    fn random_rejects_zero_draws() {
        let (line, kw, msg) = alert("balance random(0)");
        assert_eq!((line, kw.as_str()), (2, "balance"));
        assert!(msg.contains("positive integer"), "{msg}");
    }

    #[test]
    fn uri_options_parse() {
        let b = backend("balance uri whole len 12 depth 3 path-only").algo;
        assert_eq!(b, Some(Balance::Uri(UriHash { whole: true, len: Some(12), depth: Some(3), path_only: true })));
    }

    #[test]
    fn uri_len_needs_a_value() {
        let (line, _, msg) = alert("balance uri len");
        assert_eq!(line, 2);
        assert!(msg.contains("'len'"), "{msg}");
    }

    #[test]
    fn url_param_takes_check_post() {
        assert_eq!(backend("balance url_param sid check_post").algo, Some(Balance::UrlParam { name: "sid".into(), check_post: true }));
        assert_eq!(backend("balance url_param sid").algo, Some(Balance::UrlParam { name: "sid".into(), check_post: false }));
    }

    #[test]
    fn url_param_rejects_other_modifiers() {
        let (_, _, msg) = alert("balance url_param sid check_get");
        assert!(msg.contains("check_post"), "{msg}");
    }

    #[test]
    fn hdr_takes_name_and_use_domain_only() {
        assert_eq!(backend("balance hdr(host) use_domain_only").algo, Some(Balance::Hdr { name: "host".into(), use_domain_only: true }));
    }

    #[test]
    fn hdr_without_name_is_refused() {
        let (_, _, msg) = alert("balance hdr");
        assert!(msg.contains("header field name"), "{msg}");
    }

    #[test]
    fn unterminated_parenthesis_is_refused() {
        let (_, _, msg) = alert("balance hdr(host");
        assert!(msg.contains("missing ')'"), "{msg}");
    }

    #[test]
    fn rdp_cookie_defaults_to_mstshash() {
        assert_eq!(backend("balance rdp-cookie").algo, Some(Balance::RdpCookie { name: "mstshash".into() }));
        assert_eq!(backend("balance rdp-cookie(user)").algo, Some(Balance::RdpCookie { name: "user".into() }));
    }

    #[test]
    fn hash_takes_a_sample_expression() {
        let Some(Balance::Hash(e)) = backend("balance hash req.cook(sid)").algo else { panic!("not a hash") };
        assert_eq!(e, parse_sample("req.cook(sid)").unwrap());
    }

    #[test]
    fn log_hash_is_not_supported() {
        let (_, kw, msg) = alert("balance log-hash");
        assert_eq!(kw, "balance");
        assert!(msg.contains("log backends"), "{msg}");
    }

    #[test]
    fn unknown_algorithm_is_refused() {
        let (line, kw, msg) = alert("\nbalance roundrobbin");
        assert_eq!((line, kw.as_str()), (3, "balance"));
        assert!(msg.contains("unknown load balancing algorithm 'roundrobbin'"), "{msg}");
    }

    #[test]
    fn balance_is_refused_in_frontends() {
        let loaded = load("frontend fe\n  bind :80\n  balance roundrobin\n");
        let a: Vec<_> = loaded.diags.alerts().collect();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].keyword.as_deref(), Some("balance"));
    }

    #[test]
    fn backend_inherits_balance_from_defaults() {
        let loaded = load("defaults\n  balance leastconn\nbackend be\n");
        assert_eq!(loaded.config.unwrap().proxies[0].balance.algo, Some(Balance::LeastConn));
    }

    #[test]
    fn hash_type_parses_method_function_and_modifier() {
        let h = backend("hash-type consistent djb2 avalanche").hash_type;
        assert_eq!(h, Some(HashType { method: HashMethod::Consistent, function: HashFunction::Djb2, avalanche: true }));
        let h = backend("hash-type map-based").hash_type;
        assert_eq!(h, Some(HashType { method: HashMethod::MapBased, function: HashFunction::Sdbm, avalanche: false }));
    }

    #[test]
    fn hash_type_rejects_unknown_function() {
        let (_, kw, msg) = alert("hash-type consistent md5");
        assert_eq!(kw, "hash-type");
        assert!(msg.contains("unknown hash function 'md5'"), "{msg}");
    }

    #[test]
    fn hash_type_rejects_unknown_modifier() {
        let (_, _, msg) = alert("hash-type consistent sdbm snowball");
        assert!(msg.contains("avalanche"), "{msg}");
    }

    #[test]
    fn hash_balance_factor_must_exceed_100() {
        assert_eq!(backend("hash-balance-factor 150").hash_balance_factor, Some(150));
        assert_eq!(backend("hash-balance-factor 0").hash_balance_factor, Some(0));
        let (_, kw, msg) = alert("hash-balance-factor 50");
        assert_eq!(kw, "hash-balance-factor");
        assert!(msg.contains("greater than 100"), "{msg}");
    }

    #[test]
    fn cookie_insert_with_flags_parses() {
        let c = backend("cookie SRV insert indirect nocache httponly secure domain .example.com maxidle 30m maxlife 8h attr SameSite=Lax").cookie.unwrap();
        assert_eq!(c.name, "SRV");
        assert_eq!(c.mode, Some(CookieMode::Insert));
        assert!(c.indirect && c.nocache && c.httponly && c.secure && !c.preserve);
        assert_eq!(c.domains, vec![".example.com".to_string()]);
        assert_eq!(c.maxidle, Some(Duration::from_secs(1800)));
        assert_eq!(c.maxlife, Some(Duration::from_secs(8 * 3600)));
        assert_eq!(c.attrs, vec!["SameSite=Lax".to_string()]);
    }

    #[test]
    fn cookie_without_mode_is_passive() {
        assert_eq!(backend("cookie JSESSIONID").cookie.unwrap().mode, None);
    }

    #[test]
    fn cookie_refuses_two_modes() {
        let (line, kw, msg) = alert("cookie SRV insert prefix");
        assert_eq!((line, kw.as_str()), (2, "cookie"));
        assert!(msg.contains("mutually exclusive"), "{msg}");
    }

    #[test]
    fn cookie_refuses_rewrite_with_indirect() {
        let (_, _, msg) = alert("cookie SRV rewrite indirect");
        assert!(msg.contains("'rewrite' and 'indirect'"), "{msg}");
    }

    #[test]
    fn cookie_preserve_needs_insert_or_indirect() {
        let (_, _, msg) = alert("cookie SRV prefix preserve");
        assert!(msg.contains("'preserve' requires"), "{msg}");
        assert!(backend("cookie SRV insert preserve").cookie.unwrap().preserve);
    }

    #[test]
    fn cookie_refuses_attr_with_semicolon() {
        let (_, _, msg) = alert("cookie SRV insert attr \"a;b\"");
        assert!(msg.contains("';'"), "{msg}");
    }

    #[test]
    fn cookie_domain_without_dot_warns() {
        let loaded = load("backend be\n  cookie SRV insert domain localhost\n");
        assert!(loaded.diags.warnings().any(|d| d.keyword.as_deref() == Some("cookie") && d.msg.contains("embedded dot")));
    }

    #[test]
    fn cookie_refuses_unknown_option() {
        let (_, _, msg) = alert("cookie SRV insert sticky");
        assert!(msg.contains("unknown option 'sticky'"), "{msg}");
    }

    #[test]
    fn persist_rdp_cookie_defaults_to_msts() {
        assert_eq!(backend("persist rdp-cookie").persist_rdp_cookie.as_deref(), Some("msts"));
        assert_eq!(backend("persist rdp-cookie(user)").persist_rdp_cookie.as_deref(), Some("user"));
    }

    #[test]
    fn persist_refuses_other_methods() {
        let (_, kw, msg) = alert("persist cookie");
        assert_eq!(kw, "persist");
        assert!(msg.contains("only 'rdp-cookie'"), "{msg}");
    }

    fn words() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        const VOCAB: &[&str] = &[
            "roundrobin",
            "random(",
            "random(0)",
            "uri",
            "len",
            "depth",
            "whole",
            "url_param",
            "check_post",
            "hdr(",
            "hdr()",
            "rdp-cookie(",
            "hash",
            "consistent",
            "map-based",
            "insert",
            "prefix",
            "rewrite",
            "indirect",
            "preserve",
            "domain",
            "maxidle",
            "attr",
            "é",
            "(",
            ")",
            "",
        ];
        let word = prop_oneof![proptest::sample::select(VOCAB).prop_map(str::to_owned), "[!-~]{0,12}"];
        proptest::collection::vec(word, 0..8).prop_map(|w| w.join(" "))
    }

    proptest::proptest! {
        #[test]
        fn balance_keywords_never_panic(kw in proptest::sample::select(&["balance", "hash-type", "hash-balance-factor", "cookie", "persist"][..]), rest in words()) {
            let _ = load(&format!("backend be\n  {kw} {rest}\n  server s1 10.0.0.1:80 {rest}\n"));
        }
    }
}
