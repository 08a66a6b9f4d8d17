//! The stick counters of a stream (`track-sc0..2`) and the actions on them, as the data plane runs
//! them.
//!
//! A stream holds three slots. `track-sc<n>` fills an empty slot with an entry of a table (created
//! when absent) and takes a reference on it, so the entry is neither evicted nor expired while the
//! stream lives; a slot already filled is left as is, as in HAProxy. Tracking counts a connection
//! (`conn_cnt`, `conn_rate`, and `conn_cur` until the slot is released), a session at layer 4
//! (`sess_cnt`, `sess_rate`), from `http-request`, the request (`http_req_cnt`, `http_req_rate`),
//! and from `http-response`, the response's status (`http_err_cnt`, `http_fail_cnt`). Slots filled
//! by `tcp-request` rules live as long as the connection, and every later HTTP request and
//! response of the connection counts in them; slots filled by `http-request` or `http-response`
//! rules end with their transaction.
//!
//! A stream without tracking pays for three empty slots and one test per hook.
//!
//! Every request of a keep-alive connection usually tracks the same key (`track-sc0 src`): a slot
//! released at the end of a transaction keeps its entry, and the next `track-sc` of that slot on
//! the same table and key takes it again without looking it up in the table, as long as the
//! entry is still there (see [`Table::retrack`]).
//!
//! The `http-request` rules of one request run without waiting: they read the clock once (the
//! coarse clock ticks every few ms anyway, and HAProxy reads it once per poll loop).

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use super::table::{Counts, Dt, Entry, Key, Table, Tables, now_ms};
use crate::route::eval::{CompiledSample, StreamCtx};

/// A filled slot: the stream holds a reference on the entry until [`StickCtrs`] releases it.
#[derive(Debug)]
pub struct Tracked {
    pub table: Arc<Table>,
    pub entry: Arc<Entry>,
    /// Filled by a `tcp-request` rule: lives as long as the connection.
    pub session: bool,
}

/// [`StickCtrs::clock`] outside the `http-request` rules: the clock is read at each use.
const CLOCK_OFF: u64 = u64::MAX;

/// The three stick counters of a stream. The per-request hooks read `stored` and `http_slots`
/// without borrowing the slots.
#[derive(Debug)]
pub struct StickCtrs {
    slots: RefCell<Slots>,
    /// The time the `http-request` rules of the current request run at (0: not read yet), or
    /// [`CLOCK_OFF`].
    clock: Cell<u64>,
    /// The stored types of the tracked tables ([`Dt::bit`]s): a per-request hook whose types no
    /// tracked table stores (the byte counters of a table that only stores `http_req_rate`) costs
    /// one test, not a walk over the slots.
    stored: Cell<u32>,
    /// Bit `n` set when slot `n` was filled by an `http-request` rule: released at the end of
    /// the transaction.
    http_slots: Cell<u8>,
}

/// The slots' entries; slot `n` tracks its entry when bit `n` of `live` is set. A slot an
/// `http-request` rule filled keeps its entry once released at the end of the transaction: the
/// next `track-sc` of the slot on the same table and key takes it again without a lookup.
#[derive(Debug, Default)]
pub struct Slots {
    slots: [Option<Tracked>; 3],
    live: u8,
}

impl Slots {
    /// The entry slot `sc` tracks.
    #[inline]
    pub fn get(&self, sc: u8) -> Option<&Tracked> {
        if self.live & (1 << sc) == 0 {
            return None;
        }
        self.slots[usize::from(sc)].as_ref()
    }

    fn each(&self, mut f: impl FnMut(&Tracked)) {
        for (i, t) in self.slots.iter().enumerate() {
            if self.live & (1 << i) != 0
                && let Some(t) = t
            {
                f(t);
            }
        }
    }

    /// Stops tracking in the slots of `mask` (those live) at `now`.
    fn release(&mut self, mask: u8, now: u64) {
        for (i, t) in self.slots.iter().enumerate() {
            if mask & self.live & (1 << i) != 0
                && let Some(t) = t
            {
                t.table.stop_tracking(&t.entry, now);
            }
        }
        self.live &= !mask;
    }

    fn stored(&self) -> u32 {
        let mut stored = 0;
        self.each(|t| stored |= t.table.stored_mask());
        stored
    }
}

const REQ: u32 = Dt::HttpReqCnt.bit() | Dt::HttpReqRate.bit();
const ERR: u32 = Dt::HttpErrCnt.bit() | Dt::HttpErrRate.bit();
const FAIL: u32 = Dt::HttpFailCnt.bit() | Dt::HttpFailRate.bit();
const BYTES_IN: u32 = Dt::BytesInCnt.bit() | Dt::BytesInRate.bit();
const BYTES_OUT: u32 = Dt::BytesOutCnt.bit() | Dt::BytesOutRate.bit();

impl Default for StickCtrs {
    fn default() -> StickCtrs {
        StickCtrs { slots: RefCell::default(), clock: Cell::new(CLOCK_OFF), stored: Cell::new(0), http_slots: Cell::new(0) }
    }
}

impl Drop for StickCtrs {
    fn drop(&mut self) {
        let s = self.slots.get_mut();
        if s.live != 0 {
            s.release(s.live, now_ms());
        }
    }
}

impl StickCtrs {
    /// The slots, borrowed: not while a rule fills one.
    #[inline]
    pub fn slots(&self) -> std::cell::Ref<'_, Slots> {
        self.slots.borrow()
    }

    /// The time for the stick counters now: read once for the `http-request` rules of a request.
    #[inline(always)]
    pub fn now(&self) -> u64 {
        match self.clock.get() {
            CLOCK_OFF => now_ms(),
            0 => {
                let now = now_ms();
                self.clock.set(now);
                now
            }
            now => now,
        }
    }

    /// Fills the empty slot `sc` with the entry of `key`, tracked at `now`: the entry the slot
    /// held in the previous transaction when it is that key's, else the table's (created when
    /// absent). Nothing when the table is full and nothing can be evicted.
    fn track(&self, sc: u8, table: &Arc<Table>, key: Key, level: Level, now: u64) {
        let mut s = self.slots.borrow_mut();
        debug_assert!(s.get(sc).is_none());
        let bit = 1 << sc;
        let http = level != Level::Tcp;
        let counts = match level {
            Level::Tcp => Counts::Session,
            Level::Http => Counts::Request,
            Level::HttpResponse => Counts::Response,
        };
        let slot = &mut s.slots[usize::from(sc)];
        match slot {
            Some(t) if Arc::ptr_eq(&t.table, table) && t.entry.key == key && table.retrack(&t.entry, counts, now) => t.session = !http,
            _ => match table.track_at(key, counts, now) {
                Some(entry) => *slot = Some(Tracked { table: table.clone(), entry, session: !http }),
                None => {
                    *slot = None;
                    return;
                }
            },
        }
        s.live |= bit;
        self.stored.set(self.stored.get() | table.stored_mask());
        if http {
            self.http_slots.set(self.http_slots.get() | bit);
        }
    }

    // The per-request hooks test the stored types inline and keep the work out of line, so a
    // stream that tracks nothing, or tracks tables that do not store what the hook counts, pays
    // a few instructions per hook and its caller's code is not changed by what tracking does.

    /// A new HTTP request on the connection: counted in the slots the connection tracks. Its
    /// `http-request` rules run next, up to [`request_rules_done`](Self::request_rules_done).
    #[inline]
    pub fn http_request(&self) {
        self.clock.set(0);
        if self.stored.get() & REQ != 0 {
            self.http_request_slow();
        }
    }

    #[inline(never)]
    fn http_request_slow(&self) {
        self.slots().each(|t| {
            if t.session {
                t.table.count(&t.entry, Dt::HttpReqCnt, Dt::HttpReqRate, 1);
            }
        });
    }

    /// The `http-request` rules of the request have run: the clock is read at each use again.
    #[inline]
    pub fn request_rules_done(&self) {
        self.clock.set(CLOCK_OFF);
    }

    /// The response status of a transaction: 4xx but 401 and 407 count as request errors, 5xx
    /// but 501 and 505 as failures, as in HAProxy.
    #[inline]
    pub fn http_status(&self, status: u16) {
        if self.stored.get() & (ERR | FAIL) != 0 && status >= 400 {
            self.http_status_slow(status);
        }
    }

    #[inline(never)]
    fn http_status_slow(&self, status: u16) {
        self.slots().each(|t| count_status(t, status));
    }

    /// The status of the response, counted in slot `sc` alone: an `http-response` rule tracked
    /// it after [`http_status`](Self::http_status) counted the others.
    fn count_status_in(&self, sc: u8, status: u16) {
        if let Some(t) = self.slots().get(sc) {
            count_status(t, status);
        }
    }

    /// Bytes received from (`inb`) and sent to (`outb`) the client.
    #[inline]
    pub fn bytes(&self, inb: u64, outb: u64) {
        if self.stored.get() & (BYTES_IN | BYTES_OUT) != 0 {
            self.bytes_slow(inb, outb);
        }
    }

    #[inline(never)]
    fn bytes_slow(&self, inb: u64, outb: u64) {
        self.slots().each(|t| {
            if inb > 0 {
                t.table.count(&t.entry, Dt::BytesInCnt, Dt::BytesInRate, inb);
            }
            if outb > 0 {
                t.table.count(&t.entry, Dt::BytesOutCnt, Dt::BytesOutRate, outb);
            }
        });
    }

    /// The end of an HTTP transaction: the slots `http-request` filled are released (and their
    /// entries kept for the next transaction).
    #[inline]
    pub fn end_transaction(&self) {
        if self.http_slots.get() != 0 {
            self.end_transaction_slow();
        }
    }

    #[inline(never)]
    fn end_transaction_slow(&self) {
        let mut s = self.slots.borrow_mut();
        s.release(self.http_slots.replace(0), now_ms());
        self.stored.set(if s.live == 0 { 0 } else { s.stored() });
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.slots().live == 0
    }
}

/// What the fetches and actions of a stream reach: the tables, its counters, and the table
/// `src_*` fetches use without a table argument (the frontend's, when it declares one).
#[derive(Clone, Copy)]
pub struct StickView<'a> {
    pub tables: &'a Tables,
    pub ctrs: &'a StickCtrs,
    pub default_table: &'a str,
}

/// Where tracking happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// `tcp-request connection|session|content`.
    Tcp,
    /// `http-request`.
    Http,
    /// `http-response`: a tracking counts no request, and counts the response's status at once
    /// (the status hook ran before the rules), as HAProxy does.
    HttpResponse,
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
        /// The key is `src` as is (the usual case): the address is read without evaluating `key`.
        src: bool,
        table: Arc<Table>,
    },
    /// `sc-inc-gpc0`, `sc-inc-gpc1`, `sc-inc-gpc`: the counter and its rate.
    IncGpc { sc: u8, cnt: Dt, rate: Dt, idx: usize },
    /// `sc-add-gpc`.
    AddGpc { sc: u8, idx: usize, value: Value },
    /// `sc-set-gpt0`, `sc-set-gpt`.
    SetGpt { sc: u8, dt: Dt, idx: usize, value: Value },
    /// `sc-take-token(<sc>)`: final when the bucket is empty.
    TakeToken { sc: u8 },
}

impl StickAction {
    /// Runs the action. `Err(ms)`: `sc-take-token` found the bucket empty, the next token comes
    /// in `ms`; the rule then denies (HTTP 429) or rejects (TCP).
    pub fn run(&self, ctx: &dyn StreamCtx, level: Level) -> Result<(), u64> {
        let Some(ctrs) = ctx.stick_ctrs() else { return Ok(()) };
        match self {
            StickAction::Track { sc, key, src, table } => {
                if ctrs.slots().get(*sc).is_some() {
                    return Ok(());
                }
                // The key is evaluated before the slots are borrowed: it may read them.
                let k = if *src { ctx.src().and_then(|a| table.key_of_addr(&a)) } else { key.eval_ref(ctx).ok().flatten().and_then(|s| table.key_of(&s)) };
                let Some(k) = k else { return Ok(()) };
                ctrs.track(*sc, table, k, level, ctrs.now());
                if level == Level::HttpResponse
                    && let Some(status) = ctx.http_response().map(|r| r.status())
                {
                    ctrs.count_status_in(*sc, status);
                }
            }
            StickAction::IncGpc { sc, cnt, rate, idx } => with_slot(ctrs, *sc, |t| {
                t.table.add(&t.entry, *cnt, *idx, 1);
                t.table.add(&t.entry, *rate, *idx, 1);
            }),
            StickAction::AddGpc { sc, idx, value } => {
                if let Some(n) = value.eval(ctx) {
                    with_slot(ctrs, *sc, |t| {
                        t.table.add(&t.entry, Dt::Gpc, *idx, n);
                        t.table.add(&t.entry, Dt::GpcRate, *idx, n);
                    });
                }
            }
            StickAction::SetGpt { sc, dt, idx, value } => {
                if let Some(n) = value.eval(ctx) {
                    with_slot(ctrs, *sc, |t| {
                        t.table.set(&t.entry, *dt, *idx, n);
                    });
                }
            }
            StickAction::TakeToken { sc } => {
                let c = ctrs.slots();
                if let Some(t) = c.get(*sc)
                    && let Some(r) = t.table.take_token(&t.entry)
                {
                    return r;
                }
            }
        }
        Ok(())
    }
}

/// A response status in one slot: 4xx but 401 and 407 as a request error, 5xx but 501 and 505
/// as a failure.
fn count_status(t: &Tracked, status: u16) {
    if matches!(status, 400..=499) && status != 401 && status != 407 {
        t.table.count(&t.entry, Dt::HttpErrCnt, Dt::HttpErrRate, 1);
    } else if matches!(status, 500..=599) && status != 501 && status != 505 {
        t.table.count(&t.entry, Dt::HttpFailCnt, Dt::HttpFailRate, 1);
    }
}

fn with_slot(ctrs: &StickCtrs, sc: u8, f: impl FnOnce(&Tracked)) {
    if let Some(t) = ctrs.slots().get(sc) {
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
            let src = key.fetch.name == "src" && key.fetch.args.is_empty() && key.converters.is_empty();
            StickAction::Track { sc: *sc, key: CompiledSample::compile(key)?, src, table }
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
