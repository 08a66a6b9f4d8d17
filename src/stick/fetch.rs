//! The stick-table sample fetches (`sc_*`, `sc0_*`..`sc2_*`, `src_*`, `table_cnt`, `table_avl`)
//! and converters (`in_table`, `table_*`), compiled from their names once and evaluated through the
//! stream's [`StickView`].
//!
//! As in HAProxy: an `sc*` fetch on a counter the stream does not track is absent (`sc*_tracked`
//! is false); a `src_*` fetch for an address the table does not hold is 0; a data type the table
//! does not store is absent; a `table_*` converter on a key the table does not hold is absent.
//! `src_*` without a table argument uses the frontend's table.

use std::sync::Arc;

use super::table::{Dt, Entry, Table};
use super::track::StickView;
use crate::route::eval::{SampleRef, StreamCtx};

/// Which entry a fetch reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The entry a stick counter tracks.
    Sc(u8),
    /// The entry of the client's address.
    Src,
}

/// What is read or done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    Get(Dt, usize),
    Inc(Dt, Dt, usize),
    Clr(Dt, usize),
    /// `kbytes_in`/`kbytes_out`: the byte count divided by 1024.
    Kbytes(Dt),
    Tracked,
    Trackers,
    /// `src_updt_conn_cnt`.
    UpdtConnCnt,
}

/// A compiled stick-table fetch.
#[derive(Debug)]
pub enum StickFetch {
    /// A value of the entry a stick counter tracks, in its table (`sc_http_req_rate(0)`): the
    /// usual per-request check, read without the general case's dispatch.
    ScGet {
        sc: u8,
        dt: Dt,
        idx: usize,
    },
    Entry {
        source: Source,
        table: Option<Box<str>>,
        what: What,
    },
    /// `table_cnt`, `table_avl`.
    Table {
        table: Option<Box<str>>,
        avail: bool,
    },
}

fn what_of(name: &str, idx: Option<usize>) -> Option<What> {
    let i = idx.unwrap_or(0);
    Some(match name {
        "get_gpc0" => What::Get(Dt::Gpc0, 0),
        "get_gpc1" => What::Get(Dt::Gpc1, 0),
        "get_gpt0" => What::Get(Dt::Gpt0, 0),
        "inc_gpc0" => What::Inc(Dt::Gpc0, Dt::Gpc0Rate, 0),
        "inc_gpc1" => What::Inc(Dt::Gpc1, Dt::Gpc1Rate, 0),
        "clr_gpc0" => What::Clr(Dt::Gpc0, 0),
        "clr_gpc1" => What::Clr(Dt::Gpc1, 0),
        "get_gpc" => What::Get(Dt::Gpc, i),
        "gpc_rate" => What::Get(Dt::GpcRate, i),
        "inc_gpc" => What::Inc(Dt::Gpc, Dt::GpcRate, i),
        "clr_gpc" => What::Clr(Dt::Gpc, i),
        "get_gpt" => What::Get(Dt::Gpt, i),
        "gpc" => What::Get(Dt::Gpc, i),
        "gpt" => What::Get(Dt::Gpt, i),
        "kbytes_in" => What::Kbytes(Dt::BytesInCnt),
        "kbytes_out" => What::Kbytes(Dt::BytesOutCnt),
        "tracked" => What::Tracked,
        "trackers" => What::Trackers,
        "tokens" => What::Get(Dt::TokenBucket, 0),
        n => What::Get(Dt::by_name(n).filter(|d| !matches!(d, Dt::Gpc | Dt::GpcRate | Dt::Gpt | Dt::ServerKey | Dt::TokenBucket))?, 0),
    })
}

fn arg(args: &[String], i: usize) -> Option<&str> {
    args.get(i).map(String::as_str).filter(|a| !a.is_empty())
}

fn int(args: &[String], i: usize, name: &str) -> Result<usize, String> {
    arg(args, i).unwrap_or("0").parse().map_err(|_| format!("{name}: argument {} must be a non-negative integer", i + 1))
}

const INDEXED: &[&str] = &["get_gpc", "gpc_rate", "inc_gpc", "clr_gpc", "get_gpt"];

impl StickFetch {
    /// The fetch of that name, or `None` when it is not a stick-table fetch.
    pub fn compile(name: &str, args: &[String]) -> Result<Option<StickFetch>, String> {
        let table = |i: usize| arg(args, i).map(Into::into);
        if name == "table_cnt" || name == "table_avl" {
            return Ok(Some(StickFetch::Table { table: table(0), avail: name == "table_avl" }));
        }
        if name == "src_updt_conn_cnt" {
            return Ok(Some(StickFetch::Entry { source: Source::Src, table: table(0), what: What::UpdtConnCnt }));
        }
        let (source, rest, first_arg) = if let Some(r) = name.strip_prefix("sc_") {
            // `sc_<x>(<ctr>[,<table>])`, `sc_<x>(<idx>,<ctr>[,<table>])`.
            let indexed = INDEXED.contains(&r);
            let ctr_at = usize::from(indexed);
            let ctr = int(args, ctr_at, name)?;
            if ctr > 2 {
                return Err(format!("{name}: invalid stick counter {ctr} (expected 0 to 2)"));
            }
            (Source::Sc(ctr as u8), r, ctr_at + 1)
        } else if let Some(r) = name.strip_prefix("src_") {
            (Source::Src, r, usize::from(INDEXED.contains(&r)))
        } else if let Some((n, r)) = name.strip_prefix("sc").and_then(|r| r.split_once('_')) {
            let Ok(ctr) = n.parse::<u8>() else { return Ok(None) };
            if ctr > 2 {
                return Ok(None);
            }
            (Source::Sc(ctr), r, 0)
        } else {
            return Ok(None);
        };
        let idx = INDEXED.contains(&rest).then(|| int(args, 0, name)).transpose()?;
        let Some(what) = what_of(rest, idx) else { return Ok(None) };
        Ok(Some(match (source, table(first_arg), what) {
            (Source::Sc(sc), None, What::Get(dt, idx)) => StickFetch::ScGet { sc, dt, idx },
            (source, table, what) => StickFetch::Entry { source, table, what },
        }))
    }

    #[inline]
    pub fn eval<'a>(&self, ctx: &'a dyn StreamCtx) -> Option<SampleRef<'a>> {
        match *self {
            StickFetch::ScGet { sc, dt, idx } => sc_get(ctx, sc, dt, idx),
            _ => self.eval_other(ctx),
        }
    }

    fn eval_other<'a>(&self, ctx: &'a dyn StreamCtx) -> Option<SampleRef<'a>> {
        let view = ctx.stick()?;
        match self {
            StickFetch::ScGet { sc, dt, idx } => sc_get(ctx, *sc, *dt, *idx),
            StickFetch::Table { table, avail } => {
                let t = view.tables.get(table.as_deref().unwrap_or(view.default_table))?;
                t.purge_expired();
                let used = t.used() as i64;
                Some(SampleRef::Int(if *avail { i64::from(t.size) - used } else { used }))
            }
            StickFetch::Entry { source: Source::Sc(n), table, what } => {
                let c = view.ctrs.slots();
                let Some(tr) = c.get(*n) else {
                    return (*what == What::Tracked).then_some(SampleRef::Bool(false));
                };
                if *what == What::Tracked {
                    return Some(SampleRef::Bool(true));
                }
                // With a table argument, the tracked key is looked up in that table.
                match table.as_deref().filter(|name| *name != tr.table.name) {
                    Some(name) => {
                        let other = view.tables.get(name)?;
                        let e = other.lookup(&tr.entry.key);
                        read(other, e.as_ref(), *what, true, view.ctrs.now())
                    }
                    None => read(&tr.table, Some(&tr.entry), *what, false, view.ctrs.now()),
                }
            }
            StickFetch::Entry { source: Source::Src, table, what } => {
                let t = view.tables.get(table.as_deref().unwrap_or(view.default_table))?;
                let key = t.key_of(&SampleRef::Ip(ctx.src()?.ip()))?;
                let creates = matches!(what, What::Inc(..) | What::UpdtConnCnt);
                let e = if creates { t.get_or_create(key) } else { t.lookup(&key) };
                read(t, e.as_ref(), *what, true, view.ctrs.now())
            }
        }
    }
}

/// [`StickFetch::ScGet`].
#[inline]
fn sc_get<'a>(ctx: &dyn StreamCtx, sc: u8, dt: Dt, idx: usize) -> Option<SampleRef<'a>> {
    let ctrs = ctx.stick_ctrs()?;
    let c = ctrs.slots();
    let tr = c.get(sc)?;
    let v = tr.table.get_at(&tr.entry, dt, idx, ctrs.now())?;
    Some(SampleRef::Int(v.min(i64::MAX as u64) as i64))
}

/// Reads (or updates) an entry at `now`; `missing_is_zero`: an absent entry reads as 0.
fn read<'a>(t: &Table, e: Option<&Arc<Entry>>, what: What, missing_is_zero: bool, now: u64) -> Option<SampleRef<'a>> {
    let Some(e) = e else {
        return match what {
            What::Get(dt, _) | What::Inc(dt, ..) | What::Clr(dt, _) | What::Kbytes(dt) if !t.stores(dt) => None,
            _ if missing_is_zero => Some(SampleRef::Int(0)),
            _ => None,
        };
    };
    let v = match what {
        What::Get(dt, i) => t.get_at(e, dt, i, now)?,
        What::Inc(cnt, rate, i) => {
            let v = t.add(e, cnt, i, 1)?;
            t.add(e, rate, i, 1);
            v
        }
        What::Clr(dt, i) => t.clear(e, dt, i)?,
        What::Kbytes(dt) => t.get_at(e, dt, 0, now)? / 1024,
        What::Tracked => return Some(SampleRef::Bool(true)),
        What::Trackers => u64::from(e.trackers()),
        What::UpdtConnCnt => t.add(e, Dt::ConnCnt, 0, 1)?,
    };
    Some(SampleRef::Int(v.min(i64::MAX as u64) as i64))
}

/// A compiled stick-table converter: the input sample is the key.
#[derive(Debug)]
pub struct StickConv {
    table: Box<str>,
    kind: ConvKind,
}

#[derive(Debug)]
enum ConvKind {
    /// `in_table`.
    InTable,
    /// `table_<data type>`.
    Read(What),
    /// `table_expire(<table>[,<default>])`: milliseconds until the entry expires.
    Expire(Option<i64>),
    /// `table_idle(<table>[,<default>])`: milliseconds since the entry was last updated.
    Idle(Option<i64>),
}

impl StickConv {
    pub fn compile(name: &str, args: &[String]) -> Result<Option<StickConv>, String> {
        if name == "in_table" {
            return Ok(arg(args, 0).map(|t| StickConv { table: t.into(), kind: ConvKind::InTable }));
        }
        let Some(rest) = name.strip_prefix("table_") else { return Ok(None) };
        if rest == "expire" || rest == "idle" {
            let default = match args.get(1).filter(|a| !a.is_empty()) {
                Some(d) => Some(d.parse::<i64>().map_err(|_| format!("{name}: the default '{d}' is not an integer"))?),
                None => None,
            };
            let kind = if rest == "expire" { ConvKind::Expire(default) } else { ConvKind::Idle(default) };
            return Ok(arg(args, 0).map(|t| StickConv { table: t.into(), kind }));
        }
        let (idx, table_at) = match rest {
            "gpc" | "gpc_rate" | "gpt" => (Some(int(args, 0, name)?), 1),
            _ => (None, 0),
        };
        let what = match rest {
            "gpc0" => What::Get(Dt::Gpc0, 0),
            "gpc1" => What::Get(Dt::Gpc1, 0),
            "gpt0" => What::Get(Dt::Gpt0, 0),
            "gpc_rate" => What::Get(Dt::GpcRate, idx.unwrap_or(0)),
            _ => match what_of(rest, idx) {
                Some(w) => w,
                None => return Ok(None),
            },
        };
        Ok(arg(args, table_at).map(|t| StickConv { table: t.into(), kind: ConvKind::Read(what) }))
    }

    pub fn apply<'a>(&self, v: &SampleRef<'_>, ctx: &dyn StreamCtx) -> Option<SampleRef<'a>> {
        let view: StickView<'_> = ctx.stick()?;
        let t = view.tables.get(&self.table)?;
        let e = t.key_of(v).and_then(|k| t.lookup(&k));
        match self.kind {
            ConvKind::InTable => Some(SampleRef::Bool(e.is_some())),
            ConvKind::Read(w) => read(t, Some(&e?), w, false, view.ctrs.now()),
            // A key not in the table (or, for `table_expire`, a table without `expire`) gives
            // the default, or no sample, as in HAProxy.
            ConvKind::Expire(default) => {
                let left = e.and_then(|e| t.expire_left(&e, view.ctrs.now()));
                left.map(|ms| ms.min(i64::MAX as u64) as i64).or(default).map(SampleRef::Int)
            }
            ConvKind::Idle(default) => {
                let idle = e.map(|e| view.ctrs.now().saturating_sub(e.touched_at()));
                idle.map(|ms| ms.min(i64::MAX as u64) as i64).or(default).map(SampleRef::Int)
            }
        }
    }
}
