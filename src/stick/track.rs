//! The stick counters of a stream (`track-sc0..2`) and the actions on them, as the data plane runs
//! them.
//!
//! A stream holds three slots. `track-sc<n>` fills an empty slot with an entry of a table (created
//! when absent) and takes a reference on it, so the entry is neither evicted nor expired while the
//! stream lives; a slot already filled is left as is, as in HAProxy. Tracking counts a connection
//! (`conn_cnt`, `conn_rate`, and `conn_cur` until the slot is released), a session at layer 4
//! (`sess_cnt`, `sess_rate`) and, from `http-request`, the request (`http_req_cnt`,
//! `http_req_rate`). Slots filled by `tcp-request` rules live as long as the connection, and every
//! later HTTP request and response of the connection counts in them; slots filled by
//! `http-request` rules end with their transaction.
//!
//! A stream without tracking pays for three empty slots and one test per hook.

use std::cell::RefCell;
use std::sync::Arc;

use super::table::{Dt, Entry, Table, Tables};
use crate::route::eval::{CompiledSample, StreamCtx};

/// A filled slot.
#[derive(Debug)]
pub struct Tracked {
    pub table: Arc<Table>,
    pub entry: Arc<Entry>,
    /// Filled by a `tcp-request` rule: lives as long as the connection.
    pub session: bool,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.table.stop_tracking(&self.entry);
    }
}

/// The three stick counters of a stream.
#[derive(Debug, Default)]
pub struct StickCtrs {
    pub slots: [Option<Tracked>; 3],
    /// The stored types of the tracked tables ([`Dt::bit`]s): a per-request hook whose types no
    /// tracked table stores (the byte counters of a table that only stores `http_req_rate`) costs
    /// one test, not a walk over the slots.
    stored: u32,
    /// Bit `n` set when slot `n` was filled by an `http-request` rule: released at the end of
    /// the transaction.
    http_slots: u8,
}

const REQ: u32 = Dt::HttpReqCnt.bit() | Dt::HttpReqRate.bit();
const ERR: u32 = Dt::HttpErrCnt.bit() | Dt::HttpErrRate.bit();
const FAIL: u32 = Dt::HttpFailCnt.bit() | Dt::HttpFailRate.bit();
const BYTES_IN: u32 = Dt::BytesInCnt.bit() | Dt::BytesInRate.bit();
const BYTES_OUT: u32 = Dt::BytesOutCnt.bit() | Dt::BytesOutRate.bit();

impl StickCtrs {
    fn each(&self, mut f: impl FnMut(&Tracked)) {
        for t in self.slots.iter().flatten() {
            f(t);
        }
    }

    /// Fills slot `sc`.
    pub fn fill(&mut self, sc: usize, t: Tracked) {
        self.stored |= t.table.stored_mask();
        if !t.session {
            self.http_slots |= 1 << sc;
        }
        self.slots[sc] = Some(t);
    }

    // The per-request hooks test the stored types inline and keep the work out of line, so a
    // stream that tracks nothing, or tracks tables that do not store what the hook counts, pays
    // a few instructions per hook and its caller's code is not changed by what tracking does.

    /// A new HTTP request on the connection: counted in the slots the connection tracks.
    #[inline]
    pub fn http_request(&self) {
        if self.stored & REQ != 0 {
            self.http_request_slow();
        }
    }

    #[inline(never)]
    fn http_request_slow(&self) {
        self.each(|t| {
            if t.session {
                t.table.count(&t.entry, Dt::HttpReqCnt, Dt::HttpReqRate, 1);
            }
        });
    }

    /// The response status of a transaction: 4xx but 401 and 407 count as request errors, 5xx
    /// but 501 and 505 as failures, as in HAProxy.
    #[inline]
    pub fn http_status(&self, status: u16) {
        if self.stored & (ERR | FAIL) != 0 && status >= 400 {
            self.http_status_slow(status);
        }
    }

    #[inline(never)]
    fn http_status_slow(&self, status: u16) {
        let (err, fail) = (matches!(status, 400..=499) && status != 401 && status != 407, matches!(status, 500..=599) && status != 501 && status != 505);
        if err || fail {
            self.each(|t| {
                if err {
                    t.table.count(&t.entry, Dt::HttpErrCnt, Dt::HttpErrRate, 1);
                } else {
                    t.table.count(&t.entry, Dt::HttpFailCnt, Dt::HttpFailRate, 1);
                }
            });
        }
    }

    /// Bytes received from (`inb`) and sent to (`outb`) the client.
    #[inline]
    pub fn bytes(&self, inb: u64, outb: u64) {
        if self.stored & (BYTES_IN | BYTES_OUT) != 0 {
            self.bytes_slow(inb, outb);
        }
    }

    #[inline(never)]
    fn bytes_slow(&self, inb: u64, outb: u64) {
        self.each(|t| {
            if inb > 0 {
                t.table.count(&t.entry, Dt::BytesInCnt, Dt::BytesInRate, inb);
            }
            if outb > 0 {
                t.table.count(&t.entry, Dt::BytesOutCnt, Dt::BytesOutRate, outb);
            }
        });
    }

    /// The end of an HTTP transaction: the slots `http-request` filled are released.
    #[inline]
    pub fn end_transaction(&mut self) {
        if self.http_slots != 0 {
            self.end_transaction_slow();
        }
    }

    #[inline(never)]
    fn end_transaction_slow(&mut self) {
        for (i, s) in self.slots.iter_mut().enumerate() {
            if self.http_slots & (1 << i) != 0 {
                *s = None;
            }
        }
        self.http_slots = 0;
        self.stored = self.slots.iter().flatten().fold(0, |m, t| m | t.table.stored_mask());
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(Option::is_none)
    }
}

/// What the fetches and actions of a stream reach: the tables, its counters, and the table
/// `src_*` fetches use without a table argument (the frontend's, when it declares one).
#[derive(Clone, Copy)]
pub struct StickView<'a> {
    pub tables: &'a Tables,
    pub ctrs: &'a RefCell<StickCtrs>,
    pub default_table: &'a str,
}

/// Where tracking happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// `tcp-request connection|session|content`.
    Tcp,
    /// `http-request`.
    Http,
}

/// An integer or an expression evaluated per stream.
#[derive(Debug)]
pub enum Value {
    Int(i64),
    Expr(CompiledSample),
}

impl Value {
    fn eval(&self, ctx: &dyn StreamCtx) -> Option<u64> {
        match self {
            Value::Int(n) => Some(*n as u64),
            Value::Expr(e) => e.eval_ref(ctx).ok().flatten()?.as_int().map(|n| n as u64),
        }
    }
}

/// A compiled stick-counter action.
#[derive(Debug)]
pub enum StickAction {
    Track {
        sc: u8,
        key: CompiledSample,
        table: Arc<Table>,
    },
    /// `sc-inc-gpc0`, `sc-inc-gpc1`, `sc-inc-gpc`: the counter and its rate.
    IncGpc {
        sc: u8,
        cnt: Dt,
        rate: Dt,
        idx: usize,
    },
    /// `sc-add-gpc`.
    AddGpc {
        sc: u8,
        idx: usize,
        value: Value,
    },
    /// `sc-set-gpt0`, `sc-set-gpt`.
    SetGpt {
        sc: u8,
        dt: Dt,
        idx: usize,
        value: Value,
    },
    /// `sc-take-token(<sc>)`: final when the bucket is empty.
    TakeToken {
        sc: u8,
    },
}

impl StickAction {
    /// Runs the action. `Err(ms)`: `sc-take-token` found the bucket empty, the next token comes
    /// in `ms`; the rule then denies (HTTP 429) or rejects (TCP).
    pub fn run(&self, ctx: &dyn StreamCtx, level: Level) -> Result<(), u64> {
        let Some(view) = ctx.stick() else { return Ok(()) };
        match self {
            StickAction::Track { sc, key, table } => {
                if view.ctrs.borrow().slots[usize::from(*sc)].is_some() {
                    return Ok(());
                }
                // The key is evaluated before the slots are borrowed: it may read them.
                let Some(k) = key.eval_ref(ctx).ok().flatten().and_then(|s| table.key_of(&s)) else { return Ok(()) };
                let now = super::table::now_ms();
                let Some(e) = table.get_or_create_at(k, now) else { return Ok(()) };
                table.start_tracking(&e, level == Level::Http, now);
                view.ctrs.borrow_mut().fill(usize::from(*sc), Tracked { table: table.clone(), entry: e, session: level == Level::Tcp });
            }
            StickAction::IncGpc { sc, cnt, rate, idx } => with_slot(&view, *sc, |t| {
                t.table.add(&t.entry, *cnt, *idx, 1);
                t.table.add(&t.entry, *rate, *idx, 1);
            }),
            StickAction::AddGpc { sc, idx, value } => {
                if let Some(n) = value.eval(ctx) {
                    with_slot(&view, *sc, |t| {
                        t.table.add(&t.entry, Dt::Gpc, *idx, n);
                        t.table.add(&t.entry, Dt::GpcRate, *idx, n);
                    });
                }
            }
            StickAction::SetGpt { sc, dt, idx, value } => {
                if let Some(n) = value.eval(ctx) {
                    with_slot(&view, *sc, |t| {
                        t.table.set(&t.entry, *dt, *idx, n);
                    });
                }
            }
            StickAction::TakeToken { sc } => {
                let c = view.ctrs.borrow();
                if let Some(t) = &c.slots[usize::from(*sc)]
                    && let Some(r) = t.table.take_token(&t.entry)
                {
                    return r;
                }
            }
        }
        Ok(())
    }
}

fn with_slot(view: &StickView<'_>, sc: u8, f: impl FnOnce(&Tracked)) {
    if let Some(t) = &view.ctrs.borrow().slots[usize::from(sc)] {
        f(t);
    }
}

/// Compiles a shared action when it is a stick-counter one: `Ok(None)` for the others. `proxy`
/// names the table `track-sc` uses without `table`.
pub fn compile(c: &crate::l4::action::CommonAction, proxy: &str, tables: &Tables) -> Result<Option<StickAction>, String> {
    use crate::l4::action::{CommonAction as C, GpcSlot, GptSlot, IntOrExpr};
    let value = |v: &IntOrExpr| -> Result<Value, String> {
        Ok(match v {
            IntOrExpr::Int(n) => Value::Int(*n),
            IntOrExpr::Expr(e) => Value::Expr(CompiledSample::compile(e)?),
        })
    };
    Ok(Some(match c {
        C::TrackSc { sc, key, table } => {
            let name = table.as_deref().unwrap_or(proxy);
            let table = tables.get(name).ok_or_else(|| format!("no stick-table named '{name}'"))?.clone();
            StickAction::Track { sc: *sc, key: CompiledSample::compile(key)?, table }
        }
        C::IncGpc { sc, slot } => match slot {
            GpcSlot::Gpc0 => StickAction::IncGpc { sc: *sc, cnt: Dt::Gpc0, rate: Dt::Gpc0Rate, idx: 0 },
            GpcSlot::Gpc1 => StickAction::IncGpc { sc: *sc, cnt: Dt::Gpc1, rate: Dt::Gpc1Rate, idx: 0 },
            GpcSlot::Array(i) => StickAction::IncGpc { sc: *sc, cnt: Dt::Gpc, rate: Dt::GpcRate, idx: *i as usize },
        },
        C::AddGpc { sc, idx, value: v } => StickAction::AddGpc { sc: *sc, idx: *idx as usize, value: value(v)? },
        C::SetGpt { sc, slot, value: v } => {
            let (dt, idx) = match slot {
                GptSlot::Gpt0 => (Dt::Gpt0, 0),
                GptSlot::Array(i) => (Dt::Gpt, *i as usize),
            };
            StickAction::SetGpt { sc: *sc, dt, idx, value: value(v)? }
        }
        C::TakeToken { sc } => StickAction::TakeToken { sc: *sc },
        _ => return Ok(None),
    }))
}
