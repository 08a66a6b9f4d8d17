//! Configuration of stick tables and stickiness: `stick-table` and the `stick on|match|store-*`
//! rules. Parsed into a typed model; `table`, `track` and `persist` run them.

use std::time::Duration;

use crate::config::diag::Span;
use crate::config::expr::{Condition, SampleExpr, parse_condition, parse_sample, split_condition};
use crate::config::model::{Proxy, RefKind};
use crate::config::registry::{Doc, KwArgs, ProxyKeyword, ProxyParse, Sections};
use crate::config::units::{parse_size, parse_time, parse_uint};
use crate::doc;

/// The stick table a proxy declares and the stickiness rules it applies, in order.
#[derive(Clone, Debug, Default)]
pub struct ProxyStick {
    /// `stick-table`: at most one per proxy, named after the proxy.
    pub table: Option<StickTable>,
    /// `stick on|match|store-request|store-response`, in file order.
    pub rules: Vec<StickRule>,
}

impl ProxyStick {
    /// True when the proxy declares a `stick-table` others can name.
    pub fn has_table(&self) -> bool {
        self.table.is_some()
    }
}

/// `stick-table type ... size ... [expire ...] [store ...]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StickTable {
    pub key: KeyType,
    /// Maximum number of entries.
    pub size: u32,
    /// Entries unused for this long are removed; `None` keeps them until evicted by size.
    pub expire: Option<Duration>,
    /// Refuse new entries when full instead of evicting the oldest.
    pub nopurge: bool,
    /// The `peers` section the table is replicated with.
    pub peers: Option<String>,
    /// How `server_key` identifies a server: by name (default) or by address.
    pub srvkey: SrvKey,
    /// A table of the same type this one's updates are also written to.
    pub write_to: Option<String>,
    /// Only learn updates from peers, never push local ones.
    pub recv_only: bool,
    /// Data stored per entry, in declaration order, each type once.
    pub store: Vec<StoreType>,
    pub span: Span,
}

/// The key of a stick table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// `ip`: IPv4 addresses (IPv6 ones are mapped when possible).
    Ipv4,
    Ipv6,
    /// `integer`: 32-bit integers.
    Integer,
    /// `string [len N]`: strings truncated to `len` bytes (default 31, as HAProxy's).
    String {
        len: u32,
    },
    /// `binary [len N]`: binary blocks padded or truncated to `len` bytes (default 32).
    Binary {
        len: u32,
    },
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SrvKey {
    #[default]
    Name,
    Addr,
}

/// A data type stored per entry. Rate periods are times (bare numbers are milliseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreType {
    ServerId,
    ServerKey,
    Gpc0,
    Gpc0Rate(Duration),
    Gpc1,
    Gpc1Rate(Duration),
    /// `gpc(N)`: an array of N general purpose counters.
    Gpc(u32),
    /// `gpc_rate(N,P)`: an array of N counter rates over period P.
    GpcRate(u32, Duration),
    Gpt0,
    /// `gpt(N)`: an array of N general purpose tags.
    Gpt(u32),
    ConnCnt,
    ConnCur,
    ConnRate(Duration),
    SessCnt,
    SessRate(Duration),
    HttpReqCnt,
    HttpReqRate(Duration),
    HttpErrCnt,
    HttpErrRate(Duration),
    HttpFailCnt,
    HttpFailRate(Duration),
    BytesInCnt,
    BytesInRate(Duration),
    BytesOutCnt,
    BytesOutRate(Duration),
    GlitchCnt,
    GlitchRate(Duration),
    /// sluiced extension, not in HAProxy: `token_bucket(RATE/PERIOD,BURST)`.
    TokenBucket(TokenBucket),
}

/// A token bucket per entry (sluiced extension): refilled with `rate` tokens every `period`, holding
/// at most `burst` tokens. `token_bucket(100/1s,300)` allows 100 requests a second on average and
/// bursts of up to 300.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenBucket {
    pub rate: u32,
    pub period: Duration,
    pub burst: u32,
}

impl StoreType {
    /// The data type's name as written in `store`, without arguments.
    pub fn name(&self) -> &'static str {
        use StoreType::*;
        match self {
            ServerId => "server_id",
            ServerKey => "server_key",
            Gpc0 => "gpc0",
            Gpc0Rate(_) => "gpc0_rate",
            Gpc1 => "gpc1",
            Gpc1Rate(_) => "gpc1_rate",
            Gpc(_) => "gpc",
            GpcRate(..) => "gpc_rate",
            Gpt0 => "gpt0",
            Gpt(_) => "gpt",
            ConnCnt => "conn_cnt",
            ConnCur => "conn_cur",
            ConnRate(_) => "conn_rate",
            SessCnt => "sess_cnt",
            SessRate(_) => "sess_rate",
            HttpReqCnt => "http_req_cnt",
            HttpReqRate(_) => "http_req_rate",
            HttpErrCnt => "http_err_cnt",
            HttpErrRate(_) => "http_err_rate",
            HttpFailCnt => "http_fail_cnt",
            HttpFailRate(_) => "http_fail_rate",
            BytesInCnt => "bytes_in_cnt",
            BytesInRate(_) => "bytes_in_rate",
            BytesOutCnt => "bytes_out_cnt",
            BytesOutRate(_) => "bytes_out_rate",
            GlitchCnt => "glitch_cnt",
            GlitchRate(_) => "glitch_rate",
            TokenBucket(_) => "token_bucket",
        }
    }
}

/// Which stickiness rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StickKind {
    /// `stick on`: match on the request, and store the chosen server if none matched.
    On,
    /// `stick match`: look the request up only.
    Match,
    /// `stick store-request`: store the server chosen for the request.
    StoreRequest,
    /// `stick store-response`: store a key taken from the response.
    StoreResponse,
}

/// `stick <kind> <expr> [table <name>] [if|unless <cond>]`.
#[derive(Clone, Debug)]
pub struct StickRule {
    pub kind: StickKind,
    pub expr: SampleExpr,
    /// The table to use; `None` is the proxy's own.
    pub table: Option<String>,
    pub cond: Option<Condition>,
    pub span: Span,
}

/// Largest `len` of string and binary keys: a sanity bound, keys are copied per lookup.
const MAX_KEY_LEN: u64 = 65_535;
/// Largest array of `gpc(N)`/`gpt(N)`, as in HAProxy.
const MAX_GP_ARRAY: u64 = 100;

fn kw(name: &'static str, sections: Sections, parse: ProxyParse, doc: Doc) -> ProxyKeyword {
    ProxyKeyword { name, sections, negatable: false, parse, doc }
}

pub fn proxy_keywords() -> Vec<ProxyKeyword> {
    use Sections as S;
    vec![
        kw(
            "stick-table",
            S::PROXIES,
            parse_stick_table,
            doc!(
                Parsed,
                "stick-table type ip|ipv6|integer|string [len <n>]|binary [len <n>] size <n>[k|m] [expire <time>] [nopurge] [peers <name>] [srvkey name|addr] [write-to <table>] [recv-only] [store <type>[,<type>...]]*",
                "Declares the proxy's stick table. Data types: server_id, server_key, gpc0, gpc0_rate(<p>), gpc1, gpc1_rate(<p>), gpc(<n>), gpc_rate(<n>,<p>), gpt0, gpt(<n>), conn_cnt, conn_cur, conn_rate(<p>), sess_cnt, sess_rate(<p>), http_req_cnt, http_req_rate(<p>), http_err_cnt, http_err_rate(<p>), http_fail_cnt, http_fail_rate(<p>), bytes_in_cnt, bytes_in_rate(<p>), bytes_out_cnt, bytes_out_rate(<p>), glitch_cnt, glitch_rate(<p>). sluiced extension (not in HAProxy): token_bucket(<rate>/<period>,<burst>) keeps a token bucket per entry, refilled with <rate> tokens every <period> and holding at most <burst> (a new entry starts full); the action sc-take-token(<sc>) takes one token and answers 429 with Retry-After (HTTP) or rejects (TCP) when none is left, and sc_tokens/src_tokens read what is left. The table is shared by all workers; when full, entries no stream tracks are evicted, rarely used ones first. peers <section> replicates it with the section's nodes (HAProxy or sluiced): the local changes are pushed, the peers' are learned (except conn_cur, which stays per node, and the token bucket, which is sluiced's own). write-to, srvkey and recv-only are parsed only.",
                "stick-table type ip size 1m expire 10m store http_req_rate(10s),token_bucket(100/1s,300)"
            ),
        ),
        kw(
            "stick on",
            S::BE_ONLY,
            |a, p| parse_stick_rule(a, p, StickKind::On),
            doc!(
                Parsed,
                "stick on <expr> [table <table>] [if|unless <cond>]",
                "Sends the stream to the server stored for the key, storing the chosen one otherwise.",
                "stick on src"
            ),
        ),
        kw(
            "stick match",
            S::BE_ONLY,
            |a, p| parse_stick_rule(a, p, StickKind::Match),
            doc!(
                Parsed,
                "stick match <expr> [table <table>] [if|unless <cond>]",
                "Sends the stream to the server stored for the key, if any.",
                "stick match req.cook(sid) table sessions"
            ),
        ),
        kw(
            "stick store-request",
            S::BE_ONLY,
            |a, p| parse_stick_rule(a, p, StickKind::StoreRequest),
            doc!(
                Parsed,
                "stick store-request <expr> [table <table>] [if|unless <cond>]",
                "Stores the server chosen for the request under a key taken from the request.",
                "stick store-request src"
            ),
        ),
        kw(
            "stick store-response",
            S::BE_ONLY,
            |a, p| parse_stick_rule(a, p, StickKind::StoreResponse),
            doc!(
                Parsed,
                "stick store-response <expr> [table <table>] [if|unless <cond>]",
                "Stores the server that answered under a key taken from the response.",
                "stick store-response res.cook(sid)"
            ),
        ),
    ]
}

fn parse_stick_table(a: &mut KwArgs<'_>, p: &mut Proxy) -> Result<(), String> {
    if let Some(t) = &p.stick.table {
        return Err(format!("only one stick-table per proxy is allowed; one is already declared at {}", t.span));
    }
    let args: Vec<&str> = a.args().iter().map(|w| w.text.as_str()).collect();
    let (t, refs) = parse_table(&args, a.span)?;
    for (kind, name) in refs {
        p.add_ref(kind, &name, a.span, "stick-table");
    }
    if t.write_to.as_deref() == Some(p.name.as_str()) {
        return Err("'write-to' cannot name the table itself".into());
    }
    p.stick.table = Some(t);
    Ok(())
}

/// The arguments of a `stick-table` line (or of a `table` line of a `peers` section, after its
/// name): the table, and the peers sections and tables it names, to be checked once everything
/// is read.
pub fn parse_table(args: &[&str], span: &crate::config::diag::Span) -> Result<(StickTable, Vec<(RefKind, String)>), String> {
    let mut refs = Vec::new();
    let mut key = None;
    let mut size = None;
    let mut t = StickTable {
        key: KeyType::Ipv4,
        size: 0,
        expire: None,
        nopurge: false,
        peers: None,
        srvkey: SrvKey::Name,
        write_to: None,
        recv_only: false,
        store: Vec::new(),
        span: span.clone(),
    };
    let mut i = 0;
    while i < args.len() {
        let opt = args[i];
        let value = |i: usize| args.get(i + 1).copied().ok_or_else(|| format!("'{opt}' expects a value"));
        match opt {
            "type" => {
                let ty = value(i)?;
                i += 1;
                let mut len = |default: u32| -> Result<u32, String> {
                    if args.get(i + 1) != Some(&"len") {
                        return Ok(default);
                    }
                    let v = args.get(i + 2).ok_or("'len' expects a value")?;
                    i += 2;
                    match parse_uint(v, "len", MAX_KEY_LEN)? {
                        0 => Err("'len' must be greater than 0".into()),
                        n => Ok(n as u32),
                    }
                };
                key = Some(match ty {
                    "ip" => KeyType::Ipv4,
                    "ipv6" => KeyType::Ipv6,
                    "integer" => KeyType::Integer,
                    // HAProxy's default string key holds 31 bytes and a trailing zero; `len <n>` holds n.
                    "string" => KeyType::String { len: len(31)? },
                    "binary" => KeyType::Binary { len: len(32)? },
                    _ => return Err(format!("unknown table type '{ty}' (expected ip, ipv6, integer, string or binary)")),
                });
            }
            "size" => {
                let v = value(i)?;
                i += 1;
                let n = parse_size(v)?;
                if n == 0 || n > u64::from(u32::MAX) {
                    return Err(format!("'size' must be between 1 and {}, got '{v}'", u32::MAX));
                }
                size = Some(n as u32);
            }
            "expire" => {
                i += 1;
                t.expire = Some(parse_time(value(i - 1)?)?);
            }
            "nopurge" => t.nopurge = true,
            "recv-only" => t.recv_only = true,
            "peers" => {
                i += 1;
                let name = value(i - 1)?;
                refs.push((RefKind::Peers, name.to_owned()));
                t.peers = Some(name.to_owned());
            }
            "srvkey" => {
                i += 1;
                t.srvkey = match value(i - 1)? {
                    "name" => SrvKey::Name,
                    "addr" => SrvKey::Addr,
                    v => return Err(format!("'srvkey' expects 'name' or 'addr', got '{v}'")),
                };
            }
            "write-to" => {
                i += 1;
                let name = value(i - 1)?;
                refs.push((RefKind::Table, name.to_owned()));
                t.write_to = Some(name.to_owned());
            }
            "store" => {
                i += 1;
                for item in split_top_level(value(i - 1)?) {
                    let st = parse_store_type(item)?;
                    if t.store.iter().any(|s| s.name() == st.name()) {
                        return Err(format!("data type '{}' is stored twice", st.name()));
                    }
                    t.store.push(st);
                }
            }
            _ => {
                return Err(format!("unknown argument '{opt}' (expected type, size, expire, nopurge, peers, srvkey, write-to, recv-only or store)"));
            }
        }
        i += 1;
    }
    t.key = key.ok_or("missing 'type'")?;
    t.size = size.ok_or("missing 'size'")?;
    Ok((t, refs))
}

/// Splits `a,b(1,2),c` at the commas outside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn period(name: &str, arg: &str) -> Result<Duration, String> {
    let d = parse_time(arg).map_err(|e| format!("'{name}' : {e}"))?;
    if d.is_zero() {
        return Err(format!("'{name}' : the period must be greater than 0"));
    }
    Ok(d)
}

fn array_size(name: &str, arg: &str) -> Result<u32, String> {
    match parse_uint(arg, name, MAX_GP_ARRAY)? {
        0 => Err(format!("'{name}' : the array size must be between 1 and {MAX_GP_ARRAY}")),
        n => Ok(n as u32),
    }
}

fn parse_token_bucket(arg: &str) -> Result<TokenBucket, String> {
    const SYNTAX: &str = "expects token_bucket(<rate>/<period>,<burst>), as in token_bucket(100/1s,300)";
    let (rate_period, burst) = arg.split_once(',').ok_or_else(|| format!("'token_bucket' {SYNTAX}"))?;
    let (rate, per) = rate_period.split_once('/').ok_or_else(|| format!("'token_bucket' {SYNTAX}"))?;
    let positive = |what: &str, v: &str| match parse_uint(v, what, u64::from(u32::MAX)) {
        Ok(0) => Err(format!("'token_bucket' : the {what} must be greater than 0")),
        Ok(n) => Ok(n as u32),
        Err(e) => Err(format!("'token_bucket' : {e}")),
    };
    Ok(TokenBucket { rate: positive("rate", rate)?, period: period("token_bucket", per)?, burst: positive("burst", burst)? })
}

fn parse_store_type(item: &str) -> Result<StoreType, String> {
    use StoreType::*;
    if item.is_empty() {
        return Err("empty data type in 'store'".into());
    }
    let (name, arg) = match item.split_once('(') {
        Some((n, rest)) => (n, Some(rest.strip_suffix(')').ok_or_else(|| format!("missing ')' in data type '{item}'"))?)),
        None => (item, None),
    };
    let no_arg = |t: StoreType| match arg {
        None => Ok(t),
        Some(_) => Err(format!("data type '{name}' takes no argument")),
    };
    let need = || arg.filter(|a| !a.is_empty()).ok_or_else(|| format!("data type '{name}' expects an argument, as in '{name}(10s)'"));
    let rate = |f: fn(Duration) -> StoreType| -> Result<StoreType, String> { Ok(f(period(name, need()?)?)) };
    match name {
        "server_id" => no_arg(ServerId),
        "server_key" => no_arg(ServerKey),
        "gpc0" => no_arg(Gpc0),
        "gpc0_rate" => rate(Gpc0Rate),
        "gpc1" => no_arg(Gpc1),
        "gpc1_rate" => rate(Gpc1Rate),
        "gpc" => Ok(Gpc(array_size(name, need()?)?)),
        "gpc_rate" => {
            let (n, p) = need()?.split_once(',').ok_or("data type 'gpc_rate' expects two arguments, as in 'gpc_rate(2,10s)'")?;
            Ok(GpcRate(array_size(name, n)?, period(name, p)?))
        }
        "gpt0" => no_arg(Gpt0),
        "gpt" => Ok(Gpt(array_size(name, need()?)?)),
        "conn_cnt" => no_arg(ConnCnt),
        "conn_cur" => no_arg(ConnCur),
        "conn_rate" => rate(ConnRate),
        "sess_cnt" => no_arg(SessCnt),
        "sess_rate" => rate(SessRate),
        "http_req_cnt" => no_arg(HttpReqCnt),
        "http_req_rate" => rate(HttpReqRate),
        "http_err_cnt" => no_arg(HttpErrCnt),
        "http_err_rate" => rate(HttpErrRate),
        "http_fail_cnt" => no_arg(HttpFailCnt),
        "http_fail_rate" => rate(HttpFailRate),
        "bytes_in_cnt" => no_arg(BytesInCnt),
        "bytes_in_rate" => rate(BytesInRate),
        "bytes_out_cnt" => no_arg(BytesOutCnt),
        "bytes_out_rate" => rate(BytesOutRate),
        "glitch_cnt" => no_arg(GlitchCnt),
        "glitch_rate" => rate(GlitchRate),
        "token_bucket" => Ok(TokenBucket(parse_token_bucket(need()?)?)),
        _ => Err(format!("unknown data type '{name}' in 'store'")),
    }
}

fn parse_stick_rule(a: &mut KwArgs<'_>, p: &mut Proxy, kind: StickKind) -> Result<(), String> {
    let (words, cond) = split_condition(a.args());
    let expr_word = words.first().ok_or("missing sample expression")?;
    let expr = parse_sample(&expr_word.text)?;
    let table = match &words[1..] {
        [] => None,
        [t, name] if t.is("table") => Some(name.text.clone()),
        [t] if t.is("table") => return Err("'table' expects a table name".into()),
        [x, ..] => return Err(format!("unexpected '{}' (expected 'table', 'if' or 'unless')", x.text)),
    };
    let cond = cond.map(parse_condition).transpose()?;
    let keyword = a.keyword;
    // Without `table`, the rule uses the proxy's own table, which must then exist.
    p.add_ref(RefKind::Table, table.as_deref().unwrap_or(&p.name.clone()), a.span, keyword);
    p.add_sample_refs(&expr, a.span, keyword);
    if let Some(c) = &cond {
        p.add_cond_refs(c, a.span, keyword);
    }
    p.stick.rules.push(StickRule { kind, expr, table, cond, span: a.span.clone() });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::{load, ok, one_alert};

    fn table(args: &str) -> StickTable {
        ok(&format!("backend be\n  stick-table {args}\n")).proxies.remove(0).stick.table.unwrap()
    }

    fn table_alert(args: &str) -> String {
        let (line, kw, msg) = one_alert(&format!("backend be\n  stick-table {args}\n"));
        assert_eq!((line, kw.as_str()), (2, "stick-table"));
        msg
    }

    #[test]
    fn ip_table_with_expire_parses() {
        let t = table("type ip size 1m expire 30s nopurge");
        assert_eq!(t.key, KeyType::Ipv4);
        assert_eq!(t.size, 1 << 20);
        assert_eq!(t.expire, Some(Duration::from_secs(30)));
        assert!(t.nopurge);
        assert!(t.store.is_empty());
    }

    #[test]
    fn string_keys_default_to_32_bytes() {
        assert_eq!(table("type string size 10").key, KeyType::String { len: 31 });
        assert_eq!(table("type string len 64 size 10").key, KeyType::String { len: 64 });
        assert_eq!(table("type binary len 8 size 10").key, KeyType::Binary { len: 8 });
        assert_eq!(table("type ipv6 size 10").key, KeyType::Ipv6);
        assert_eq!(table("type integer size 10").key, KeyType::Integer);
    }

    #[test]
    fn zero_key_length_is_refused() {
        assert!(table_alert("type string len 0 size 10").contains("greater than 0"));
    }

    #[test]
    fn type_and_size_are_required() {
        assert!(table_alert("type ip").contains("missing 'size'"));
        assert!(table_alert("size 10").contains("missing 'type'"));
        assert!(table_alert("type ip size 0").contains("'size'"));
    }

    #[test]
    fn unknown_type_is_refused() {
        assert!(table_alert("type mac size 10").contains("unknown table type 'mac'"));
    }

    #[test]
    fn store_types_parse_across_commas_and_repeats() {
        let t = table("type ip size 10 store gpc0,gpc_rate(2,10s),http_req_rate(10s) store conn_cur,gpt(3)");
        assert_eq!(
            t.store,
            vec![
                StoreType::Gpc0,
                StoreType::GpcRate(2, Duration::from_secs(10)),
                StoreType::HttpReqRate(Duration::from_secs(10)),
                StoreType::ConnCur,
                StoreType::Gpt(3),
            ]
        );
    }

    #[test]
    fn every_listed_store_type_is_known() {
        let all = "server_id,server_key,gpc0,gpc0_rate(1s),gpc1,gpc1_rate(1s),gpc(2),gpc_rate(2,1s),gpt0,gpt(2),conn_cnt,conn_cur,conn_rate(1s),sess_cnt,sess_rate(1s),http_req_cnt,http_req_rate(1s),http_err_cnt,http_err_rate(1s),http_fail_cnt,http_fail_rate(1s),bytes_in_cnt,bytes_in_rate(1s),bytes_out_cnt,bytes_out_rate(1s),glitch_cnt,glitch_rate(1s),token_bucket(1/1s,1)";
        assert_eq!(table(&format!("type ip size 10 store {all}")).store.len(), 28);
    }

    #[test]
    fn rate_periods_are_times() {
        assert_eq!(table("type ip size 10 store conn_rate(1500)").store, vec![StoreType::ConnRate(Duration::from_millis(1500))]);
        assert!(table_alert("type ip size 10 store conn_rate(fast)").contains("conn_rate"));
        assert!(table_alert("type ip size 10 store conn_rate(0)").contains("greater than 0"));
    }

    #[test]
    fn rate_without_period_is_refused() {
        assert!(table_alert("type ip size 10 store http_req_rate").contains("expects an argument"));
    }

    #[test]
    fn counter_with_argument_is_refused() {
        assert!(table_alert("type ip size 10 store gpc0(1)").contains("takes no argument"));
    }

    #[test]
    fn duplicate_store_type_is_refused() {
        assert!(table_alert("type ip size 10 store gpc0 store conn_cnt,gpc0").contains("'gpc0' is stored twice"));
        assert!(table_alert("type ip size 10 store conn_rate(1s),conn_rate(10s)").contains("stored twice"));
    }

    #[test]
    fn gpc_array_is_bounded() {
        assert!(table_alert("type ip size 10 store gpc(101)").contains("at most 100"));
        assert!(table_alert("type ip size 10 store gpc(0)").contains("between 1 and 100"));
    }

    #[test]
    fn unknown_store_type_is_refused() {
        assert!(table_alert("type ip size 10 store http_req_rte(10s)").contains("unknown data type 'http_req_rte'"));
    }

    #[test]
    fn token_bucket_extension_parses() {
        let t = table("type ip size 10 store token_bucket(100/1s,300)");
        assert_eq!(t.store, vec![StoreType::TokenBucket(TokenBucket { rate: 100, period: Duration::from_secs(1), burst: 300 })]);
    }

    #[test]
    fn malformed_token_bucket_is_refused() {
        assert!(table_alert("type ip size 10 store token_bucket(100,300)").contains("token_bucket(<rate>/<period>,<burst>)"));
        assert!(table_alert("type ip size 10 store token_bucket(0/1s,300)").contains("rate must be greater than 0"));
        assert!(table_alert("type ip size 10 store token_bucket(10/1s,0)").contains("burst must be greater than 0"));
        assert!(table_alert("type ip size 10 store token_bucket(10/0,5)").contains("period"));
    }

    #[test]
    fn srvkey_write_to_and_recv_only_parse() {
        let loaded = load("backend other\n  stick-table type ip size 10\nbackend be\n  stick-table type ip size 10 srvkey addr write-to other recv-only\n");
        assert!(!loaded.diags.has_alerts(), "{:?}", loaded.diags.items);
        let t = loaded.config.unwrap().proxies[1].stick.table.clone().unwrap();
        assert_eq!(t.srvkey, SrvKey::Addr);
        assert_eq!(t.write_to.as_deref(), Some("other"));
        assert!(t.recv_only);
    }

    #[test]
    fn write_to_unknown_table_is_reported() {
        let (line, kw, msg) = one_alert("backend be\n  stick-table type ip size 10 write-to nowhere\n");
        assert_eq!((line, kw.as_str()), (2, "stick-table"));
        assert!(msg.contains("'nowhere'"), "{msg}");
    }

    #[test]
    fn peers_records_a_reference() {
        let (line, kw, msg) = one_alert("backend be\n  stick-table type ip size 10 peers mypeers\n");
        assert_eq!((line, kw.as_str()), (2, "stick-table"));
        assert!(msg.contains("peers section 'mypeers'"), "{msg}");
    }

    #[test]
    fn second_table_in_a_proxy_is_refused() {
        let (line, _, msg) = one_alert("backend be\n  stick-table type ip size 10\n  stick-table type ip size 20\n");
        assert_eq!(line, 3);
        assert!(msg.contains("only one stick-table"), "{msg}");
    }

    #[test]
    fn has_table_follows_the_declaration() {
        let loaded = load("backend be\n  stick-table type ip size 10\nbackend other\n");
        let cfg = loaded.config.unwrap();
        assert!(cfg.proxies[0].stick.has_table());
        assert!(!cfg.proxies[1].stick.has_table());
    }

    #[test]
    fn stick_rules_keep_their_order_and_table() {
        let loaded = load(
            "backend t2\n  stick-table type string size 10\nbackend be\n  acl api path_beg /api\n  stick-table type ip size 10\n  stick on src\n  stick match req.cook(sid) table t2 if api\n  stick store-request src unless api\n  stick store-response res.cook(sid) table t2\n",
        );
        assert!(!loaded.diags.has_alerts(), "{:?}", loaded.diags.items);
        let cfg = loaded.config.unwrap();
        let rules = &cfg.proxies[1].stick.rules;
        let kinds: Vec<_> = rules.iter().map(|r| r.kind).collect();
        assert_eq!(kinds, vec![StickKind::On, StickKind::Match, StickKind::StoreRequest, StickKind::StoreResponse]);
        assert_eq!(rules[1].table.as_deref(), Some("t2"));
        assert!(rules[1].cond.is_some() && rules[2].cond.is_some() && rules[0].cond.is_none());
        assert_eq!(rules[0].table, None);
        assert_eq!(rules[3].span.line, 9);
    }

    #[test]
    fn stick_rule_without_own_table_is_reported() {
        let (line, kw, msg) = one_alert("backend be\n  stick on src\n");
        assert_eq!((line, kw.as_str()), (2, "stick on"));
        assert!(msg.contains("stick-table 'be'"), "{msg}");
    }

    #[test]
    fn stick_rule_with_unknown_table_is_reported() {
        let (_, kw, msg) = one_alert("backend be\n  stick-table type ip size 10\n  stick match src table nope\n");
        assert_eq!(kw, "stick match");
        assert!(msg.contains("'nope'"), "{msg}");
    }

    #[test]
    fn stick_rule_with_unknown_acl_is_reported() {
        let (_, _, msg) = one_alert("backend be\n  stick-table type ip size 10\n  stick on src if nope\n");
        assert!(msg.contains("no such ACL"), "{msg}");
    }

    #[test]
    fn stick_rule_rejects_trailing_words() {
        let (_, _, msg) = one_alert("backend be\n  stick-table type ip size 10\n  stick on src extra\n");
        assert!(msg.contains("unexpected 'extra'"), "{msg}");
    }

    #[test]
    fn stick_rules_are_refused_in_frontends() {
        let (_, kw, msg) = one_alert("frontend fe\n  bind :80\n  stick on src\n");
        assert_eq!(kw, "stick on");
        assert!(msg.contains("not allowed"), "{msg}");
    }

    fn words() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        const VOCAB: &[&str] = &[
            "type",
            "ip",
            "string",
            "len",
            "size",
            "expire",
            "store",
            "gpc(",
            "gpc_rate(1,",
            "token_bucket(",
            "token_bucket(1/,)",
            "peers",
            "write-to",
            "srvkey",
            "table",
            "if",
            "unless",
            "é(",
            ",",
            ")",
            "(",
            "1k",
        ];
        let word = prop_oneof![proptest::sample::select(VOCAB).prop_map(str::to_owned), "[!-~]{0,12}"];
        proptest::collection::vec(word, 0..8).prop_map(|w| w.join(" "))
    }

    proptest::proptest! {
        #[test]
        fn stick_keywords_never_panic(kw in proptest::sample::select(&["stick-table", "stick on", "stick match", "stick store-request", "stick store-response"][..]), rest in words()) {
            let _ = load(&format!("backend be\n  {kw} {rest}\n  server s1 10.0.0.1:80 {rest}\n"));
        }
    }
}
