//! What every rule keyword shares, at layer 4 and layer 7: the rule shape (`<action> [if|unless
//! <cond>]`), the reader that hands an action its arguments, the action tables that name, parse and
//! document each action, and the actions both `tcp-request` and `http-request` have (stick counters,
//! variables, captures, address rewrites, connection marks).

use std::net::IpAddr;

use crate::config::diag::{Span, did_you_mean};
use crate::config::expr::{Condition, SampleExpr, parse_condition, parse_sample, split_condition};
use crate::config::lex::Word;
use crate::config::logformat::{LogFormat, parse_log_format};
use crate::config::model::{Proxy, RefKind};
use crate::config::registry::{Doc, DocTable, KwArgs};

/// One rule of a rule list: what to do, when, and where it was written.
#[derive(Clone, Debug)]
pub struct Rule<A> {
    pub action: A,
    /// `None` runs the action for every stream that reaches the rule.
    pub cond: Option<Condition>,
    pub span: Span,
}

/// An entry of an action table: the table is the parser's dispatch, the did-you-mean candidates and
/// the documentation at once, so the three cannot drift apart.
pub struct ActionDef<A> {
    /// The action word without its parenthesised arguments: `set-var`, `track-sc0`.
    pub name: &'static str,
    pub parse: fn(&mut ActionArgs<'_>) -> Result<A, String>,
    pub doc: Doc,
}

/// The documentation table of an action family.
pub fn doc_table<A>(title: &'static str, table: &[ActionDef<A>]) -> DocTable {
    DocTable { title, entries: table.iter().map(|d| (d.name.to_string(), None, d.doc)).collect() }
}

/// Hands an action parser its arguments one word at a time, and collects what the rule refers to
/// and warns about, so the caller records them only once the whole rule parsed.
pub struct ActionArgs<'a> {
    /// The action name, for messages.
    pub name: &'a str,
    /// The text between the parentheses after the name: `txn.x` in `set-var(txn.x)`.
    paren: Option<&'a str>,
    words: &'a [Word],
    pos: usize,
    refs: Vec<(RefKind, String)>,
    warnings: Vec<String>,
}

impl<'a> ActionArgs<'a> {
    pub fn new(name: &'a str, paren: Option<&'a str>, words: &'a [Word]) -> ActionArgs<'a> {
        ActionArgs { name, paren, words, pos: 0, refs: Vec::new(), warnings: Vec::new() }
    }

    pub fn peek(&self) -> Option<&'a str> {
        self.words.get(self.pos).map(|w| w.text.as_str())
    }

    pub fn take(&mut self) -> Option<&'a str> {
        let w = self.peek()?;
        self.pos += 1;
        Some(w)
    }

    /// The next word, or an error saying the action expects `what`.
    pub fn need(&mut self, what: &str) -> Result<&'a str, String> {
        self.take().ok_or_else(|| format!("'{}' expects {what}", self.name))
    }

    /// Fails when words are left over.
    pub fn finish(&self) -> Result<(), String> {
        match self.peek() {
            Some(w) => Err(format!("unexpected argument '{w}' to '{}'", self.name)),
            None => Ok(()),
        }
    }

    /// The parenthesised argument, which this action requires.
    pub fn paren(&self, what: &str) -> Result<&'a str, String> {
        match self.paren {
            Some(p) if !p.is_empty() => Ok(p),
            _ => Err(format!("'{}' expects {what} in parentheses: '{}(<{what}>)'", self.name, self.name)),
        }
    }

    /// Fails when the action was written with parentheses it does not take.
    pub fn no_paren(&self) -> Result<(), String> {
        match self.paren {
            Some(_) => Err(format!("'{}' takes no arguments in parentheses", self.name)),
            None => Ok(()),
        }
    }

    /// Parses the next word as a sample expression and records the tables it names.
    pub fn sample(&mut self, what: &str) -> Result<SampleExpr, String> {
        let text = self.need(what)?;
        self.sample_of(text)
    }

    pub fn sample_of(&mut self, text: &str) -> Result<SampleExpr, String> {
        let expr = parse_sample(text).map_err(|e| format!("'{}' : {e}", self.name))?;
        for t in expr.table_refs() {
            self.refs.push((RefKind::Table, t.to_owned()));
        }
        Ok(expr)
    }

    /// Parses the next word as a log-format string.
    pub fn format(&mut self, what: &str) -> Result<LogFormat, String> {
        let text = self.need(what)?;
        parse_log_format(text).map_err(|e| format!("'{}' : {e}", self.name))
    }

    /// Parses the next word as a regular expression, which must compile.
    pub fn regex(&mut self, what: &str) -> Result<Pattern, String> {
        let text = self.need(what)?;
        compile_regex(text)
    }

    pub fn add_ref(&mut self, kind: RefKind, name: &str) {
        self.refs.push((kind, name.to_owned()));
    }

    pub fn warn(&mut self, msg: impl Into<String>) {
        self.warnings.push(msg.into());
    }
}

/// A compiled regular expression that compares by its source text, so rules stay comparable.
#[derive(Clone, Debug)]
pub struct Pattern(pub regex::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for Pattern {}

pub fn compile_regex(text: &str) -> Result<Pattern, String> {
    regex::Regex::new(text).map(Pattern).map_err(|e| format!("invalid regex '{text}' : {}", e.to_string().lines().last().unwrap_or("syntax error").trim()))
}

/// Splits `set-var(txn.x)` into `set-var` and `txn.x`.
fn split_action_word(text: &str) -> Result<(&str, Option<&str>), String> {
    match text.split_once('(') {
        None => Ok((text, None)),
        Some((name, rest)) => match rest.strip_suffix(')') {
            Some(inner) => Ok((name, Some(inner))),
            None => Err(format!("missing closing parenthesis in '{text}'")),
        },
    }
}

/// Parses `<action> [args...] [if|unless <cond>]` against an action table: the handler of every
/// rule keyword. `family` names the keyword in messages (`http-request`, `tcp-request content`).
pub fn parse_rule<A>(family: &str, table: &[ActionDef<A>], a: &mut KwArgs<'_>, p: &mut Proxy) -> Result<Rule<A>, String> {
    let (words, cond_words) = split_condition(a.args());
    let Some(first) = words.first() else {
        let names: Vec<&str> = table.iter().map(|d| d.name).collect();
        return Err(format!("missing {family} action (expected one of: {})", names.join(", ")));
    };
    let (name, paren) = split_action_word(&first.text)?;
    let Some(def) = table.iter().find(|d| d.name == name) else {
        return Err(match did_you_mean(name, table.iter().map(|d| d.name)) {
            Some(s) => format!("unknown {family} action '{name}'; did you mean '{s}' maybe ?"),
            None => format!("unknown {family} action '{name}'"),
        });
    };
    let mut args = ActionArgs::new(def.name, paren, &words[1..]);
    let action = (def.parse)(&mut args)?;
    args.finish()?;
    crate::config::registry::note_use(&format!("{family} actions"), &format!("{family} action"), def.name, def.doc.status);
    finish_rule(a, p, args, action, cond_words)
}

/// Parses a keyword that is a single conditional action (`redirect`, `monitor fail`): `parse` sees
/// the words before `if`/`unless`.
pub fn parse_conditional<A>(a: &mut KwArgs<'_>, p: &mut Proxy, parse: impl FnOnce(&mut ActionArgs<'_>) -> Result<A, String>) -> Result<Rule<A>, String> {
    let (words, cond_words) = split_condition(a.args());
    let keyword = a.keyword;
    let mut args = ActionArgs::new(keyword, None, words);
    let action = parse(&mut args)?;
    args.finish()?;
    finish_rule(a, p, args, action, cond_words)
}

/// Parses a keyword whose words are all arguments (no condition), recording what they refer to.
pub fn parse_args<A>(a: &mut KwArgs<'_>, p: &mut Proxy, parse: impl FnOnce(&mut ActionArgs<'_>) -> Result<A, String>) -> Result<A, String> {
    let keyword = a.keyword;
    let mut args = ActionArgs::new(keyword, None, a.args());
    let action = parse(&mut args)?;
    args.finish()?;
    Ok(finish_rule(a, p, args, action, None)?.action)
}

fn finish_rule<A>(a: &mut KwArgs<'_>, p: &mut Proxy, args: ActionArgs<'_>, action: A, cond_words: Option<&[Word]>) -> Result<Rule<A>, String> {
    let cond = match cond_words {
        Some(w) => Some(parse_condition(w)?),
        None => None,
    };
    for (kind, name) in &args.refs {
        p.add_ref(*kind, name, a.span, a.keyword);
    }
    if let Some(c) = &cond {
        p.add_cond_refs(c, a.span, a.keyword);
    }
    for w in args.warnings {
        a.warn(w);
    }
    Ok(Rule { action, cond, span: a.span.clone() })
}

/// Actions that both layer 4 and layer 7 rules have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommonAction {
    /// `track-sc<n> <key> [table <table>]`: starts tracking the key in stick counter `sc`.
    TrackSc {
        sc: u8,
        key: SampleExpr,
        table: Option<String>,
    },
    /// `sc-inc-gpc(<idx>,<sc>)`, `sc-inc-gpc0(<sc>)`, `sc-inc-gpc1(<sc>)`.
    IncGpc {
        sc: u8,
        slot: GpcSlot,
    },
    /// `sc-add-gpc(<idx>,<sc>) <int|expr>`.
    AddGpc {
        sc: u8,
        idx: u32,
        value: IntOrExpr,
    },
    /// `sc-set-gpt(<idx>,<sc>) <int|expr>`, `sc-set-gpt0(<sc>) <int|expr>`.
    SetGpt {
        sc: u8,
        slot: GptSlot,
        value: IntOrExpr,
    },
    /// `sc-take-token(<sc>)` (sluiced extension): takes a token from the `token_bucket` of the
    /// entry tracked by counter `sc`; an empty bucket denies (HTTP 429) or rejects (TCP).
    TakeToken {
        sc: u8,
    },
    /// `set-var(<var>[,<cond>...]) <expr>`.
    SetVar {
        var: VarName,
        conds: Vec<VarCond>,
        expr: SampleExpr,
    },
    /// `set-var-fmt(<var>[,<cond>...]) <fmt>`.
    SetVarFmt {
        var: VarName,
        conds: Vec<VarCond>,
        fmt: LogFormat,
    },
    /// `unset-var(<var>)`.
    UnsetVar {
        var: VarName,
    },
    /// `capture <expr> len <n>|id <n>`.
    Capture {
        expr: SampleExpr,
        slot: CaptureSlot,
    },
    /// `set-src`, `set-dst`, `set-src-port`, `set-dst-port <expr>`.
    SetAddr {
        part: AddrPart,
        expr: SampleExpr,
    },
    SetLogLevel(LogLevel),
    /// `set-nice <n>`, -1024 (favoured) to 1024.
    SetNice(i32),
    /// `set-mark <mark>`: the netfilter mark of the client connection.
    SetMark(u32),
    /// `set-tos <tos>`: the TOS/DSCP field of the client connection.
    SetTos(u8),
    /// `set-priority-class <expr>`: queue priority class, -2047..2047.
    SetPriorityClass(SampleExpr),
    /// `set-priority-offset <expr>`: queue time offset in milliseconds.
    SetPriorityOffset(SampleExpr),
    /// `do-resolve(<var>,<resolvers>[,ipv4|ipv6]) <expr>`.
    DoResolve {
        var: VarName,
        resolvers: String,
        family: Option<IpFamily>,
        expr: SampleExpr,
    },
    /// `silent-drop [rst-ttl <ttl>]`: closes without telling the client.
    SilentDrop {
        rst_ttl: Option<u8>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GpcSlot {
    /// The legacy `gpc0` data type.
    Gpc0,
    /// The legacy `gpc1` data type.
    Gpc1,
    /// An element of the `gpc` array.
    Array(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GptSlot {
    /// The legacy `gpt0` data type.
    Gpt0,
    /// An element of the `gpt` array.
    Array(u32),
}

/// A value that is a constant when it parses as an integer, an expression otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IntOrExpr {
    Int(i64),
    Expr(SampleExpr),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VarScope {
    Proc,
    Sess,
    Txn,
    Req,
    Res,
}

/// A variable name with its mandatory scope: `txn.user`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VarName {
    pub scope: VarScope,
    /// The name after the scope.
    pub name: String,
}

/// Conditions `set-var` checks before setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VarCond {
    IfExists,
    IfNotExists,
    IfEmpty,
    IfNotEmpty,
    IfSet,
    IfNotSet,
    IfGt,
    IfLt,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureSlot {
    /// `len <n>`: a new capture slot of `n` bytes.
    Len(u32),
    /// `id <n>`: a slot declared with `declare capture`.
    Id(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrPart {
    Src,
    Dst,
    SrcPort,
    DstPort,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Emerg,
    Alert,
    Crit,
    Err,
    Warning,
    Notice,
    Info,
    Debug,
    /// Disables logging of the stream.
    Silent,
}

impl LogLevel {
    /// The syslog level it names; `None` for `silent`.
    pub fn syslog(self) -> Option<crate::log::config::Level> {
        use crate::log::config::Level as S;
        Some(match self {
            LogLevel::Emerg => S::Emerg,
            LogLevel::Alert => S::Alert,
            LogLevel::Crit => S::Crit,
            LogLevel::Err => S::Err,
            LogLevel::Warning => S::Warning,
            LogLevel::Notice => S::Notice,
            LogLevel::Info => S::Info,
            LogLevel::Debug => S::Debug,
            LogLevel::Silent => return None,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpFamily {
    Ipv4,
    Ipv6,
}

/// A service an action hands the stream to (`use-service`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    PrometheusExporter,
}

/// The services `use-service` knows, by name.
pub const SERVICES: &[(&str, Service)] = &[("prometheus-exporter", Service::PrometheusExporter)];

pub fn parse_service(a: &mut ActionArgs<'_>) -> Result<Service, String> {
    a.no_paren()?;
    let name = a.need("a service name")?;
    if let Some((_, s)) = SERVICES.iter().find(|(n, _)| *n == name) {
        return Ok(*s);
    }
    if name.starts_with("lua.") {
        return Err(format!("Lua service '{name}' is not supported by sluiced"));
    }
    let names: Vec<&str> = SERVICES.iter().map(|(n, _)| *n).collect();
    Err(format!("unknown service '{name}' (expected one of: {})", names.join(", ")))
}

/// The stick counters a rule may use: `track-sc0` to `track-sc2`, as HAProxy's default.
pub const STICK_COUNTERS: u8 = 3;

fn parse_sc(text: &str) -> Result<u8, String> {
    match text.trim().parse::<u8>() {
        Ok(v) if v < STICK_COUNTERS => Ok(v),
        _ => Err(format!("invalid stick counter '{text}' (expected 0 to {})", STICK_COUNTERS - 1)),
    }
}

/// The largest index of the `gpc`/`gpt` arrays.
pub const MAX_GP_INDEX: u32 = 99;

fn parse_gp_index(text: &str) -> Result<u32, String> {
    match text.trim().parse::<u32>() {
        Ok(v) if v <= MAX_GP_INDEX => Ok(v),
        _ => Err(format!("invalid array index '{text}' (expected 0 to {MAX_GP_INDEX})")),
    }
}

/// `<idx>,<sc>` as in `sc-inc-gpc(1,0)`.
fn parse_idx_sc(a: &ActionArgs<'_>) -> Result<(u32, u8), String> {
    let p = a.paren("index,stick counter")?;
    let (idx, sc) = p.split_once(',').ok_or_else(|| format!("'{}' expects '<index>,<stick counter>' in parentheses, got '{p}'", a.name))?;
    Ok((parse_gp_index(idx)?, parse_sc(sc)?))
}

fn int_or_expr(a: &mut ActionArgs<'_>) -> Result<IntOrExpr, String> {
    let text = a.need("an integer or a sample expression")?;
    match text.parse::<i64>() {
        Ok(v) => Ok(IntOrExpr::Int(v)),
        Err(_) => Ok(IntOrExpr::Expr(a.sample_of(text)?)),
    }
}

pub fn track_sc(a: &mut ActionArgs<'_>, sc: u8) -> Result<CommonAction, String> {
    a.no_paren()?;
    let key = a.sample("a key expression")?;
    let table = match a.peek() {
        Some("table") => {
            a.take();
            let t = a.need("a table name after 'table'")?;
            a.add_ref(RefKind::Table, t);
            Some(t.to_owned())
        }
        _ => {
            // The proxy's own table: an empty name stands for it (validation checks it exists).
            a.add_ref(RefKind::Table, "");
            None
        }
    };
    Ok(CommonAction::TrackSc { sc, key, table })
}

pub fn track_sc0(a: &mut ActionArgs<'_>) -> Result<CommonAction, String> {
    track_sc(a, 0)
}
pub fn track_sc1(a: &mut ActionArgs<'_>) -> Result<CommonAction, String> {
    track_sc(a, 1)
}
pub fn track_sc2(a: &mut ActionArgs<'_>) -> Result<CommonAction, String> {
    track_sc(a, 2)
}

pub fn sc_inc_gpc(a: &mut ActionArgs<'_>) -> Result<CommonAction, String> {
    let (idx, sc) = parse_idx_sc(a)?;
    Ok(CommonAction::IncGpc { sc, slot: GpcSlot::Array(idx) })
}

pub fn sc_inc_gpc0(a: &mut ActionArgs<'_>) -> Result<CommonAction, String> {
    Ok(CommonAction::IncGpc { sc: parse_sc(a.paren("stick counter")?)?, slot: GpcSlot::Gpc0 })
}

pub fn sc_inc_gpc1(a: &mut ActionArgs<'_>) -> Result<CommonAction, String> {
    Ok(CommonAction::IncGpc { sc: parse_sc(a.paren("stick counter")?)?, slot: GpcSlot::Gpc1 })
}

pub fn sc_add_gpc(a: &mut ActionArgs<'_>) -> Result<CommonAction, String> {
    let (idx, sc) = parse_idx_sc(a)?;
    Ok(CommonAction::AddGpc { sc, idx, value: int_or_expr(a)? })
}

pub fn sc_set_gpt(a: &mut ActionArgs<'_>) -> Result<CommonAction, String> {
    let (idx, sc) = parse_idx_sc(a)?;
    Ok(CommonAction::SetGpt { sc, slot: GptSlot::Array(idx), value: int_or_expr(a)? })
}

pub fn sc_take_token(a: &mut ActionArgs<'_>) -> Result<CommonAction, String> {
    Ok(CommonAction::TakeToken { sc: parse_sc(a.paren("stick counter")?)? })
}

pub fn sc_set_gpt0(a: &mut ActionArgs<'_>) -> Result<CommonAction, String> {
    let sc = parse_sc(a.paren("stick counter")?)?;
    Ok(CommonAction::SetGpt { sc, slot: GptSlot::Gpt0, value: int_or_expr(a)? })
}

/// Parses `txn.name`: the scope is mandatory, as HAProxy has no default scope.
pub fn parse_var_name(text: &str) -> Result<VarName, String> {
    let text = text.trim();
    let (scope, name) = match text.split_once('.') {
        Some(("proc", n)) => (VarScope::Proc, n),
        Some(("sess", n)) => (VarScope::Sess, n),
        Some(("txn", n)) => (VarScope::Txn, n),
        Some(("req", n)) => (VarScope::Req, n),
        Some(("res", n)) => (VarScope::Res, n),
        _ => return Err(format!("variable name '{text}' must start with a scope: 'proc.', 'sess.', 'txn.', 'req.' or 'res.'")),
    };
    if name.is_empty() {
        return Err(format!("missing variable name after the scope in '{text}'"));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '.')) {
        return Err(format!("character '{c}' is not permitted in variable name '{text}'"));
    }
    Ok(VarName { scope, name: name.to_owned() })
}

/// One `set-var` condition: `ifexists`, `ifgt`...
pub fn parse_var_cond(text: &str) -> Result<VarCond, String> {
    Ok(match text.trim() {
        "ifexists" => VarCond::IfExists,
        "ifnotexists" => VarCond::IfNotExists,
        "ifempty" => VarCond::IfEmpty,
        "ifnotempty" => VarCond::IfNotEmpty,
        "ifset" => VarCond::IfSet,
        "ifnotset" => VarCond::IfNotSet,
        "ifgt" => VarCond::IfGt,
        "iflt" => VarCond::IfLt,
        other => {
            return Err(format!("unknown set-var condition '{other}' (expected ifexists, ifnotexists, ifempty, ifnotempty, ifset, ifnotset, ifgt or iflt)"));
        }
    })
}

/// `(<var>[,<cond>...])`.
fn var_with_conds(a: &ActionArgs<'_>) -> Result<(VarName, Vec<VarCond>), String> {
    let mut parts = a.paren("variable name")?.split(',');
    let var = parse_var_name(parts.next().unwrap_or_default())?;
    let conds = parts.map(parse_var_cond).collect::<Result<_, _>>()?;
    Ok((var, conds))
}

pub fn set_var(a: &mut ActionArgs<'_>) -> Result<CommonAction, String> {
    let (var, conds) = var_with_conds(a)?;
    Ok(CommonAction::SetVar { var, conds, expr: a.sample("a sample expression")? })
}

pub fn set_var_fmt(a: &mut ActionArgs<'_>) -> Result<CommonAction, String> {
    let (var, conds) = var_with_conds(a)?;
    Ok(CommonAction::SetVarFmt { var, conds, fmt: a.format("a log-format string")? })
}

pub fn unset_var(a: &mut ActionArgs<'_>) -> Result<CommonAction, String> {
    Ok(CommonAction::UnsetVar { var: parse_var_name(a.paren("variable name")?)? })
}

fn capture_slot(a: &mut ActionArgs<'_>, len: bool, id: bool) -> Result<CaptureSlot, String> {
    let expected = match (len, id) {
        (true, true) => "'len <length>' or 'id <id>'",
        (true, false) => "'len <length>'",
        _ => "'id <id>'",
    };
    let kw = a.need(expected)?;
    let value = |a: &mut ActionArgs<'_>, what: &str| -> Result<u32, String> {
        let v = a.need(what)?;
        v.parse::<u32>().map_err(|_| format!("'{}' : {what} expects a non-negative integer, got '{v}'", a.name))
    };
    match kw {
        "len" if len => match value(a, "len")? {
            0 => Err(format!("'{}' : capture length must be greater than 0", a.name)),
            n => Ok(CaptureSlot::Len(n)),
        },
        "id" if id => Ok(CaptureSlot::Id(value(a, "id")?)),
        other => Err(format!("'{}' expects {expected} after the expression, got '{other}'", a.name)),
    }
}

fn capture(a: &mut ActionArgs<'_>, len: bool, id: bool) -> Result<CommonAction, String> {
    a.no_paren()?;
    let expr = a.sample("a sample expression")?;
    Ok(CommonAction::Capture { expr, slot: capture_slot(a, len, id)? })
}

/// `capture <expr> len <n>` (layer 4 rules).
pub fn capture_len(a: &mut ActionArgs<'_>) -> Result<CommonAction, String> {
    capture(a, true, false)
}
/// `capture <expr> len <n>|id <n>` (`http-request`).
pub fn capture_len_or_id(a: &mut ActionArgs<'_>) -> Result<CommonAction, String> {
    capture(a, true, true)
}
/// `capture <expr> id <n>` (responses: the slot must be declared).
pub fn capture_id(a: &mut ActionArgs<'_>) -> Result<CommonAction, String> {
    capture(a, false, true)
}

fn set_addr(a: &mut ActionArgs<'_>, part: AddrPart) -> Result<CommonAction, String> {
    a.no_paren()?;
    Ok(CommonAction::SetAddr { part, expr: a.sample("a sample expression")? })
}
pub fn set_src(a: &mut ActionArgs<'_>) -> Result<CommonAction, String> {
    set_addr(a, AddrPart::Src)
}
pub fn set_dst(a: &mut ActionArgs<'_>) -> Result<CommonAction, String> {
    set_addr(a, AddrPart::Dst)
}
pub fn set_src_port(a: &mut ActionArgs<'_>) -> Result<CommonAction, String> {
    set_addr(a, AddrPart::SrcPort)
}
pub fn set_dst_port(a: &mut ActionArgs<'_>) -> Result<CommonAction, String> {
    set_addr(a, AddrPart::DstPort)
}

pub const LOG_LEVELS: &[(&str, LogLevel)] = &[
    ("emerg", LogLevel::Emerg),
    ("alert", LogLevel::Alert),
    ("crit", LogLevel::Crit),
    ("err", LogLevel::Err),
    ("warning", LogLevel::Warning),
    ("notice", LogLevel::Notice),
    ("info", LogLevel::Info),
    ("debug", LogLevel::Debug),
    ("silent", LogLevel::Silent),
];

pub fn set_log_level(a: &mut ActionArgs<'_>) -> Result<CommonAction, String> {
    a.no_paren()?;
    let l = a.need("a log level")?;
    match LOG_LEVELS.iter().find(|(n, _)| *n == l) {
        Some((_, lvl)) => Ok(CommonAction::SetLogLevel(*lvl)),
        None => Err(format!("unknown log level '{l}' (expected emerg, alert, crit, err, warning, notice, info, debug or silent)")),
    }
}

/// Parses an integer written in decimal or, with `0x`, hexadecimal, as HAProxy's strtoul(base 0).
fn parse_num(text: &str) -> Option<u64> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

pub fn set_nice(a: &mut ActionArgs<'_>) -> Result<CommonAction, String> {
    a.no_paren()?;
    let v = a.need("a nice value")?;
    match v.parse::<i32>() {
        Ok(n) if (-1024..=1024).contains(&n) => Ok(CommonAction::SetNice(n)),
        _ => Err(format!("'{}' expects a nice value between -1024 and 1024, got '{v}'", a.name)),
    }
}

pub fn set_mark(a: &mut ActionArgs<'_>) -> Result<CommonAction, String> {
    a.no_paren()?;
    let v = a.need("a mark")?;
    match parse_num(v).and_then(|n| u32::try_from(n).ok()) {
        Some(n) => Ok(CommonAction::SetMark(n)),
        None => Err(format!("'{}' expects a 32-bit mark in decimal or 0x hexadecimal, got '{v}'", a.name)),
    }
}

pub fn set_tos(a: &mut ActionArgs<'_>) -> Result<CommonAction, String> {
    a.no_paren()?;
    let v = a.need("a TOS value")?;
    match parse_num(v).and_then(|n| u8::try_from(n).ok()) {
        Some(n) => Ok(CommonAction::SetTos(n)),
        None => Err(format!("'{}' expects a TOS value from 0 to 255, got '{v}'", a.name)),
    }
}

pub fn set_priority_class(a: &mut ActionArgs<'_>) -> Result<CommonAction, String> {
    a.no_paren()?;
    Ok(CommonAction::SetPriorityClass(a.sample("a sample expression")?))
}

pub fn set_priority_offset(a: &mut ActionArgs<'_>) -> Result<CommonAction, String> {
    a.no_paren()?;
    Ok(CommonAction::SetPriorityOffset(a.sample("a sample expression")?))
}

pub fn do_resolve(a: &mut ActionArgs<'_>) -> Result<CommonAction, String> {
    let p = a.paren("variable,resolvers[,ipv4|ipv6]")?;
    let mut parts = p.split(',').map(str::trim);
    let var = parse_var_name(parts.next().unwrap_or_default())?;
    let resolvers = match parts.next() {
        Some(r) if !r.is_empty() => r.to_owned(),
        _ => return Err(format!("'{}' expects a resolvers section name after the variable: 'do-resolve(<var>,<resolvers>)'", a.name)),
    };
    let family = match parts.next() {
        None => None,
        Some("ipv4") => Some(IpFamily::Ipv4),
        Some("ipv6") => Some(IpFamily::Ipv6),
        Some(other) => return Err(format!("'{}' : unknown address family '{other}' (expected ipv4 or ipv6)", a.name)),
    };
    if let Some(extra) = parts.next() {
        return Err(format!("'{}' : unexpected argument '{extra}' in parentheses", a.name));
    }
    a.add_ref(RefKind::Resolvers, &resolvers);
    let expr = a.sample("a sample expression")?;
    Ok(CommonAction::DoResolve { var, resolvers, family, expr })
}

pub fn silent_drop(a: &mut ActionArgs<'_>) -> Result<CommonAction, String> {
    a.no_paren()?;
    let rst_ttl = match a.peek() {
        Some("rst-ttl") => {
            a.take();
            let v = a.need("a TTL after 'rst-ttl'")?;
            match v.parse::<u8>() {
                Ok(t) if t > 0 => Some(t),
                _ => return Err(format!("'{}' : rst-ttl expects a TTL from 1 to 255, got '{v}'", a.name)),
            }
        }
        _ => None,
    };
    Ok(CommonAction::SilentDrop { rst_ttl })
}

/// An action that takes no argument.
pub fn no_args<A>(a: &mut ActionArgs<'_>, action: A) -> Result<A, String> {
    a.no_paren()?;
    Ok(action)
}

/// An IP network: `10.0.0.0/8`, `10.0.0.0/255.0.0.0`, `::1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub fn parse(text: &str) -> Result<IpNet, String> {
        let bad = || format!("invalid network '{text}' (expected <address>[/<prefix length or mask>])");
        let (addr, mask) = match text.split_once('/') {
            Some((a, m)) => (a, Some(m)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match mask {
            None => max,
            Some(m) => match m.parse::<u8>() {
                Ok(p) if p <= max => p,
                Ok(_) => return Err(bad()),
                Err(_) => match (addr, m.parse::<std::net::Ipv4Addr>()) {
                    (IpAddr::V4(_), Ok(mask)) => {
                        let bits = u32::from(mask);
                        if bits.leading_ones() + bits.trailing_zeros() != 32 {
                            return Err(format!("invalid network '{text}': mask '{m}' is not contiguous"));
                        }
                        bits.leading_ones() as u8
                    }
                    _ => return Err(bad()),
                },
            },
        };
        Ok(IpNet { addr, prefix })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn var_names_need_a_scope() {
        assert_eq!(parse_var_name("txn.user"), Ok(VarName { scope: VarScope::Txn, name: "user".into() }));
        assert!(parse_var_name("user").is_err());
        assert!(parse_var_name("txn.").is_err());
        assert!(parse_var_name("foo.bar").is_err());
        assert!(parse_var_name("req.a-b").is_err());
    }

    #[test]
    fn action_words_split_at_parentheses() {
        assert_eq!(split_action_word("set-var(txn.x)"), Ok(("set-var", Some("txn.x"))));
        assert_eq!(split_action_word("deny"), Ok(("deny", None)));
        assert!(split_action_word("set-var(txn.x").is_err());
    }

    #[test]
    fn networks_take_prefix_lengths_and_masks() {
        assert_eq!(IpNet::parse("10.0.0.0/8").map(|n| n.prefix), Ok(8));
        assert_eq!(IpNet::parse("10.0.0.0/255.255.0.0").map(|n| n.prefix), Ok(16));
        assert_eq!(IpNet::parse("127.0.0.1").map(|n| n.prefix), Ok(32));
        assert_eq!(IpNet::parse("::1/128").map(|n| n.prefix), Ok(128));
        assert!(IpNet::parse("10.0.0.0/33").is_err());
        assert!(IpNet::parse("10.0.0.0/255.0.255.0").is_err());
        assert!(IpNet::parse("nope").is_err());
    }

    #[test]
    fn numbers_take_hex() {
        assert_eq!(parse_num("0x10"), Some(16));
        assert_eq!(parse_num("16"), Some(16));
        assert_eq!(parse_num("0xzz"), None);
    }
}

/// Documentation of the shared actions. Syntax and examples show the action alone: the table title
/// names the rule keyword it follows.
pub mod docs {
    use crate::config::registry::Doc;
    use crate::doc;

    pub const TRACK_SC0: Doc = doc!(
        Parsed,
        "track-sc0 <key> [table <table>]",
        "Tracks the key in stick counter 0 (of the proxy's or the named table). A tcp-request tracking counts the connection and the session, an http-request one the connection and the request; an http-response one (its key may read the response) counts the connection and the response's status (http_err_cnt, http_fail_cnt), not the request.",
        "track-sc0 src table per_ip"
    );
    pub const TRACK_SC1: Doc =
        doc!(Parsed, "track-sc1 <key> [table <table>]", "Tracks the key in stick counter 1.", "track-sc1 req.hdr(x-user) table per_user");
    pub const TRACK_SC2: Doc = doc!(Parsed, "track-sc2 <key> [table <table>]", "Tracks the key in stick counter 2.", "track-sc2 dst_port");
    pub const SC_INC_GPC: Doc =
        doc!(Parsed, "sc-inc-gpc(<idx>,<sc>)", "Increments element <idx> of the gpc array of the entry tracked by counter <sc>.", "sc-inc-gpc(1,0)");
    pub const SC_INC_GPC0: Doc = doc!(Parsed, "sc-inc-gpc0(<sc>)", "Increments gpc0 of the entry tracked by counter <sc>.", "sc-inc-gpc0(0)");
    pub const SC_INC_GPC1: Doc = doc!(Parsed, "sc-inc-gpc1(<sc>)", "Increments gpc1 of the entry tracked by counter <sc>.", "sc-inc-gpc1(0)");
    pub const SC_ADD_GPC: Doc =
        doc!(Parsed, "sc-add-gpc(<idx>,<sc>) <int|expr>", "Adds a value to element <idx> of the gpc array of the tracked entry.", "sc-add-gpc(0,1) 10");
    pub const SC_SET_GPT: Doc =
        doc!(Parsed, "sc-set-gpt(<idx>,<sc>) <int|expr>", "Sets element <idx> of the gpt array of the tracked entry.", "sc-set-gpt(0,0) 1");
    pub const SC_TAKE_TOKEN: Doc = doc!(
        Parsed,
        "sc-take-token(<sc>)",
        "sluiced extension: takes one token from the token_bucket of the entry tracked by counter <sc>; when the bucket is empty, HTTP rules answer 429 with Retry-After and TCP rules reject the connection.",
        "sc-take-token(0)"
    );
    pub const SC_SET_GPT0: Doc = doc!(Parsed, "sc-set-gpt0(<sc>) <int|expr>", "Sets gpt0 of the entry tracked by counter <sc>.", "sc-set-gpt0(0) 1");
    pub const SET_VAR: Doc = doc!(
        Parsed,
        "set-var(<scope>.<name>[,<cond>...]) <expr>",
        "Stores the result of an expression in a variable; the scope (proc, sess, txn, req, res) is mandatory.",
        "set-var(txn.host) req.hdr(host)"
    );
    pub const SET_VAR_FMT: Doc = doc!(
        Parsed,
        "set-var-fmt(<scope>.<name>[,<cond>...]) <fmt>",
        "Stores a log-format string in a variable.",
        "set-var-fmt(txn.from) \"%[src]:%[src_port]\""
    );
    pub const UNSET_VAR: Doc = doc!(Parsed, "unset-var(<scope>.<name>)", "Removes a variable.", "unset-var(txn.host)");
    pub const CAPTURE_LEN: Doc = doc!(
        Parsed,
        "capture <expr> len <length>",
        "Captures the expression's value, truncated to <length> bytes, for the logs.",
        "capture req.payload(0,6) len 6"
    );
    pub const CAPTURE_LEN_OR_ID: Doc = doc!(
        Parsed,
        "capture <expr> [len <length> | id <id>]",
        "Captures the value in a new slot of <length> bytes or in a slot declared with 'declare capture'.",
        "capture req.hdr(user-agent) len 64"
    );
    pub const CAPTURE_ID: Doc =
        doc!(Parsed, "capture <expr> id <id>", "Captures the value in a slot declared with 'declare capture response'.", "capture res.hdr(server) id 0");
    pub const SET_SRC: Doc =
        doc!(Parsed, "set-src <expr>", "Replaces the client's source address with the expression's value.", "set-src hdr(x-forwarded-for)");
    pub const SET_DST: Doc = doc!(Parsed, "set-dst <expr>", "Replaces the destination address with the expression's value.", "set-dst var(txn.target)");
    pub const SET_SRC_PORT: Doc = doc!(Parsed, "set-src-port <expr>", "Replaces the client's source port.", "set-src-port hdr(x-port)");
    pub const SET_DST_PORT: Doc = doc!(Parsed, "set-dst-port <expr>", "Replaces the destination port.", "set-dst-port int(8443)");
    pub const SET_LOG_LEVEL: Doc =
        doc!(Parsed, "set-log-level <level>", "Changes the log level of the stream; 'silent' disables its log.", "set-log-level silent");
    pub const SET_NICE: Doc = doc!(Parsed, "set-nice <nice>", "Changes the scheduling priority of the stream, -1024 (first) to 1024 (last).", "set-nice -100");
    pub const SET_MARK: Doc = doc!(Parsed, "set-mark <mark>", "Sets the netfilter mark of the client connection's packets.", "set-mark 0x20");
    pub const SET_TOS: Doc = doc!(Parsed, "set-tos <tos>", "Sets the TOS/DSCP field of the client connection's packets.", "set-tos 0x10");
    pub const SET_PRIORITY_CLASS: Doc =
        doc!(Parsed, "set-priority-class <expr>", "Sets the queue priority class of the stream (-2047 to 2047, lower first).", "set-priority-class int(-10)");
    pub const SET_PRIORITY_OFFSET: Doc =
        doc!(Parsed, "set-priority-offset <expr>", "Sets the queue time offset of the stream in milliseconds.", "set-priority-offset int(-500)");
    pub const DO_RESOLVE: Doc = doc!(
        Parsed,
        "do-resolve(<var>,<resolvers>[,ipv4|ipv6]) <expr>",
        "Resolves a host name with a resolvers section and stores the address in a variable.",
        "do-resolve(txn.ip,dns,ipv4) req.hdr(host),host_only"
    );
    pub const SILENT_DROP: Doc = doc!(
        Parsed,
        "silent-drop [rst-ttl <ttl>]",
        "Closes the connection telling the client nothing, so an abuser's client keeps waiting on a connection sluiced has forgotten: no packet at all where the process may use TCP_REPAIR (CAP_NET_ADMIN), else a reset (never a FIN) whose IP TTL is 1; with rst-ttl, always a reset with that TTL. Counts as a denied request, as reject does.",
        "silent-drop if { sc_http_req_rate(0) gt 100 }"
    );
    pub const USE_SERVICE: Doc =
        doc!(Parsed, "use-service <service>", "Hands the stream to a built-in service (prometheus-exporter).", "use-service prometheus-exporter");
}
