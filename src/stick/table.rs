//! A stick table as the workers share it: typed keys, the stored data of each entry, expiry and
//! the size bound.
//!
//! The table is split in shards by key hash, each a `Mutex` over a map and a slab of entries, held
//! only to find, insert or remove an entry; an entry's data has its own small lock, held for one
//! update. No lock covers the whole table, so workers updating different keys do not meet.
//!
//! The size is a hard bound: an insertion reserves a place in `used` first, and past `size` it
//! must evict an entry (or fail with `nopurge`). Eviction never takes an entry a live stream
//! tracks (its reference count is not zero). Among the others it samples a few of a shard and
//! takes an expired one, else the one least used recently: each entry counts its uses, and the
//! count is halved per second idle. A flood of one-shot keys then evicts its own one-shot keys
//! and not the clients being tracked and limited.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use super::config::{KeyType, StickTable, StoreType};
use super::freq::{Bucket, FreqCtr};
use crate::route::eval::SampleRef;

/// A seeded multiply-fold hasher: a few instructions for the fixed-size keys (addresses,
/// integers), and keyed by a random seed per table so that client-chosen string keys cannot be
/// made to collide on purpose (SipHash costs more than the rest of a lookup).
#[derive(Clone, Copy, Debug)]
pub struct KeyHasherBuilder {
    seed: u64,
}

impl KeyHasherBuilder {
    fn random() -> KeyHasherBuilder {
        use std::hash::BuildHasher;
        // RandomState is randomly keyed per process; its hash of a counter gives a seed.
        static N: AtomicU64 = AtomicU64::new(0);
        KeyHasherBuilder { seed: std::collections::hash_map::RandomState::new().hash_one(N.fetch_add(1, Ordering::Relaxed)) | 1 }
    }
}

impl std::hash::BuildHasher for KeyHasherBuilder {
    type Hasher = KeyHasher;
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher { state: self.seed }
    }
}

pub struct KeyHasher {
    state: u64,
}

const MULT: u64 = 0x9E37_79B9_7F4A_7C15;

fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a).wrapping_mul(u128::from(b));
    (p as u64) ^ ((p >> 64) as u64)
}

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.write_u64(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.write_u64(u64::from_le_bytes(b) ^ ((rest.len() as u64) << 56));
        }
    }
    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn write_u64(&mut self, n: u64) {
        self.state = fold_mul(self.state ^ n, MULT);
    }
    fn finish(&self) -> u64 {
        fold_mul(self.state, MULT ^ 0xA076_1D64_78BD_642F)
    }
}

/// Milliseconds on a monotonic clock (never 0). The coarse clock (the kernel's tick, a few ms) is
/// read from the vDSO in a few instructions, where `Instant::now` and its arithmetic cost a few
/// hundred per call; HAProxy's `now_ms` is likewise updated once per poll loop, not per read.
#[inline]
pub fn now_ms() -> u64 {
    use nix::time::{ClockId, clock_gettime};
    match clock_gettime(ClockId::CLOCK_MONOTONIC_COARSE) {
        Ok(t) => t.tv_sec() as u64 * 1000 + t.tv_nsec() as u64 / 1_000_000 + 1,
        Err(_) => now_ms_fallback(),
    }
}

#[cold]
#[inline(never)]
fn now_ms_fallback() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let d = START.get_or_init(Instant::now).elapsed();
    d.as_secs() * 1000 + u64::from(d.subsec_millis()) + 1
}

/// A stored data type, in HAProxy's order: `show table` prints them in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Dt {
    ServerId,
    Gpt0,
    Gpc0,
    Gpc0Rate,
    ConnCnt,
    ConnRate,
    ConnCur,
    SessCnt,
    SessRate,
    HttpReqCnt,
    HttpReqRate,
    HttpErrCnt,
    HttpErrRate,
    BytesInCnt,
    BytesInRate,
    BytesOutCnt,
    BytesOutRate,
    Gpc1,
    Gpc1Rate,
    ServerKey,
    HttpFailCnt,
    HttpFailRate,
    Gpt,
    Gpc,
    GpcRate,
    GlitchCnt,
    GlitchRate,
    /// sluiced's `token_bucket`.
    TokenBucket,
}

const NDT: usize = Dt::TokenBucket as usize + 1;

const ALL_DT: [Dt; NDT] = {
    use Dt::*;
    [
        ServerId,
        Gpt0,
        Gpc0,
        Gpc0Rate,
        ConnCnt,
        ConnRate,
        ConnCur,
        SessCnt,
        SessRate,
        HttpReqCnt,
        HttpReqRate,
        HttpErrCnt,
        HttpErrRate,
        BytesInCnt,
        BytesInRate,
        BytesOutCnt,
        BytesOutRate,
        Gpc1,
        Gpc1Rate,
        ServerKey,
        HttpFailCnt,
        HttpFailRate,
        Gpt,
        Gpc,
        GpcRate,
        GlitchCnt,
        GlitchRate,
        TokenBucket,
    ]
};

impl Dt {
    /// The type of HAProxy's number `n` (the peers protocol's data type ids).
    pub fn from_index(n: u8) -> Option<Dt> {
        ALL_DT.get(usize::from(n)).copied().filter(|d| *d != Dt::TokenBucket)
    }

    /// The type's bit in a mask of stored types.
    #[inline]
    pub const fn bit(self) -> u32 {
        1 << self as u32
    }

    pub fn name(self) -> &'static str {
        use Dt::*;
        match self {
            ServerId => "server_id",
            Gpt0 => "gpt0",
            Gpc0 => "gpc0",
            Gpc0Rate => "gpc0_rate",
            ConnCnt => "conn_cnt",
            ConnRate => "conn_rate",
            ConnCur => "conn_cur",
            SessCnt => "sess_cnt",
            SessRate => "sess_rate",
            HttpReqCnt => "http_req_cnt",
            HttpReqRate => "http_req_rate",
            HttpErrCnt => "http_err_cnt",
            HttpErrRate => "http_err_rate",
            BytesInCnt => "bytes_in_cnt",
            BytesInRate => "bytes_in_rate",
            BytesOutCnt => "bytes_out_cnt",
            BytesOutRate => "bytes_out_rate",
            Gpc1 => "gpc1",
            Gpc1Rate => "gpc1_rate",
            ServerKey => "server_key",
            HttpFailCnt => "http_fail_cnt",
            HttpFailRate => "http_fail_rate",
            Gpt => "gpt",
            Gpc => "gpc",
            GpcRate => "gpc_rate",
            GlitchCnt => "glitch_cnt",
            GlitchRate => "glitch_rate",
            TokenBucket => "token_bucket",
        }
    }

    pub fn by_name(name: &str) -> Option<Dt> {
        ALL_DT.iter().copied().find(|d| d.name() == name)
    }

    fn is_rate(self) -> bool {
        use Dt::*;
        matches!(self, Gpc0Rate | ConnRate | SessRate | HttpReqRate | HttpErrRate | BytesInRate | BytesOutRate | Gpc1Rate | HttpFailRate | GpcRate | GlitchRate)
    }

    fn is_array(self) -> bool {
        matches!(self, Dt::Gpt | Dt::Gpc | Dt::GpcRate)
    }

    /// The data type, its array length and its period (ms) or other argument.
    fn of(st: &StoreType) -> (Dt, u16, u64) {
        use StoreType as S;
        let ms = |d: &std::time::Duration| (d.as_millis() as u64).max(1);
        match st {
            S::ServerId => (Dt::ServerId, 1, 0),
            S::ServerKey => (Dt::ServerKey, 1, 0),
            S::Gpc0 => (Dt::Gpc0, 1, 0),
            S::Gpc0Rate(p) => (Dt::Gpc0Rate, 1, ms(p)),
            S::Gpc1 => (Dt::Gpc1, 1, 0),
            S::Gpc1Rate(p) => (Dt::Gpc1Rate, 1, ms(p)),
            S::Gpc(n) => (Dt::Gpc, *n as u16, 0),
            S::GpcRate(n, p) => (Dt::GpcRate, *n as u16, ms(p)),
            S::Gpt0 => (Dt::Gpt0, 1, 0),
            S::Gpt(n) => (Dt::Gpt, *n as u16, 0),
            S::ConnCnt => (Dt::ConnCnt, 1, 0),
            S::ConnCur => (Dt::ConnCur, 1, 0),
            S::ConnRate(p) => (Dt::ConnRate, 1, ms(p)),
            S::SessCnt => (Dt::SessCnt, 1, 0),
            S::SessRate(p) => (Dt::SessRate, 1, ms(p)),
            S::HttpReqCnt => (Dt::HttpReqCnt, 1, 0),
            S::HttpReqRate(p) => (Dt::HttpReqRate, 1, ms(p)),
            S::HttpErrCnt => (Dt::HttpErrCnt, 1, 0),
            S::HttpErrRate(p) => (Dt::HttpErrRate, 1, ms(p)),
            S::HttpFailCnt => (Dt::HttpFailCnt, 1, 0),
            S::HttpFailRate(p) => (Dt::HttpFailRate, 1, ms(p)),
            S::BytesInCnt => (Dt::BytesInCnt, 1, 0),
            S::BytesInRate(p) => (Dt::BytesInRate, 1, ms(p)),
            S::BytesOutCnt => (Dt::BytesOutCnt, 1, 0),
            S::BytesOutRate(p) => (Dt::BytesOutRate, 1, ms(p)),
            S::GlitchCnt => (Dt::GlitchCnt, 1, 0),
            S::GlitchRate(p) => (Dt::GlitchRate, 1, ms(p)),
            S::TokenBucket(t) => (Dt::TokenBucket, 1, ms(&t.period)),
        }
    }
}

/// Where each stored type lives in an entry's values.
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    present: bool,
    start: u16,
    count: u16,
    /// The period in ms of rates and of the token bucket.
    period: u64,
}

/// A key of the table's type.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    V4(u32),
    V6([u8; 16]),
    Int(u32),
    /// Strings (up to the table's length) and binary blocks (padded to it).
    Bytes(Box<[u8]>),
}

/// One value of an entry.
#[derive(Clone, Debug)]
enum Val {
    Int(u64),
    Freq(FreqCtr),
    Bucket(Bucket),
    Text(Option<Box<str>>),
}

/// An entry of the table.
#[derive(Debug)]
pub struct Entry {
    pub key: Key,
    /// Live streams tracking the entry: never evicted or expired while not zero. [`REMOVED`] is
    /// set, by one atomic operation that finds no tracker, when the entry leaves the table: a
    /// stream that kept the entry of its previous request ([`Table::retrack`]) then sees that it
    /// must look the key up again, and an entry taken out cannot go on counting unseen.
    refs: AtomicU32,
    /// Last update, for expiry.
    touched: AtomicU64,
    /// Uses, for eviction (halved per second idle when compared).
    uses: AtomicU32,
    /// Replication ([`Sync`]): set while the entry waits in the queue of changes for the peers.
    queued: std::sync::atomic::AtomicBool,
    /// Replication: the update id of the entry's last local change sent to the peers (0: none).
    upd: AtomicU32,
    data: Mutex<Box<[Val]>>,
}

/// The bit of [`Entry::refs`] that says the entry left the table.
const REMOVED: u32 = 1 << 31;

impl Entry {
    /// When the entry was last updated (the coarse clock's milliseconds): `table_idle` counts from it.
    pub fn touched_at(&self) -> u64 {
        self.touched.load(Ordering::Relaxed)
    }

    /// The update id of the entry's last local change sent to the peers (0: none).
    pub fn update_id(&self) -> u32 {
        self.upd.load(Ordering::Relaxed)
    }

    pub fn trackers(&self) -> u32 {
        self.refs.load(Ordering::Relaxed) & !REMOVED
    }

    /// Marks the entry removed if no stream tracks it; the caller then takes it out of its shard
    /// (under the shard's lock). False when tracked: it stays.
    fn retire(&self) -> bool {
        self.refs.compare_exchange(0, REMOVED, Ordering::AcqRel, Ordering::Relaxed).is_ok()
    }
}

#[derive(Debug)]
struct ShardInner {
    map: HashMap<Key, usize, KeyHasherBuilder>,
    slab: Vec<Arc<Entry>>,
    last_purge: u64,
    rng: u64,
}

impl ShardInner {
    fn remove_at(&mut self, i: usize) -> Arc<Entry> {
        let e = self.slab.swap_remove(i);
        self.map.remove(&e.key);
        if let Some(moved) = self.slab.get(i) {
            self.map.insert(moved.key.clone(), i);
        }
        e
    }

    fn next_rand(&mut self) -> u64 {
        // xorshift64: enough to spread eviction samples.
        let mut x = self.rng.max(1);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

/// What a new tracking counts besides the connection (`conn_cnt`, `conn_rate`, `conn_cur`):
/// a `tcp-request` rule's, the session (`sess_cnt`, `sess_rate`); an `http-request` rule's, the
/// request (`http_req_cnt`, `http_req_rate`); an `http-response` rule's, nothing more (the
/// request was counted where it was tracked, if it was).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counts {
    Session = 0,
    Request = 1,
    Response = 2,
}

impl From<bool> for Counts {
    /// `true`: an `http-request` tracking, `false`: a `tcp-request` one.
    fn from(http: bool) -> Counts {
        if http { Counts::Request } else { Counts::Session }
    }
}

/// A stick table shared by every worker.
#[derive(Debug)]
pub struct Table {
    pub name: String,
    pub key_type: KeyType,
    pub size: u32,
    /// `expire` in ms; 0 keeps entries until evicted.
    pub expire: u64,
    pub nopurge: bool,
    slots: [Slot; NDT],
    /// Bit `dt` set when the type is stored: the per-request updates of types a table does not
    /// store cost one test.
    stored: u32,
    /// Token bucket parameters, when stored.
    bucket: Option<(u32, u32)>,
    nvals: usize,
    /// What a stream starting to track an entry updates, from `tcp-request` (`[0]`) and from
    /// `http-request` (`[1]`): found once here, not per request.
    /// What a new tracking counts, per [`Counts`].
    track_ops: [Box<[Op]>; 3],
    /// Where `conn_cur` is, when stored.
    conn_cur: Option<usize>,
    shards: Box<[Mutex<ShardInner>]>,
    used: AtomicUsize,
    hasher: KeyHasherBuilder,
    /// The queue of local changes for the peers thread, when the table is replicated.
    sync: Option<Sync>,
}

/// The changes of a replicated table waiting for the peers thread: each changed entry's key, once
/// until taken (the entry's `queued` flag), so a key updated by every request is sent once per
/// round of the peers thread with its latest values.
#[derive(Debug, Default)]
pub struct Sync {
    pending: Mutex<Vec<Key>>,
    /// The last update id given.
    seq: AtomicU32,
}

/// A value learned from a peer, or read to be sent to one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wire {
    Int(u64),
    /// A rate: the age of its current period in ms, its current and previous counts.
    Freq {
        age: u64,
        curr: u64,
        prev: u64,
    },
    Text(Option<String>),
}

/// One update of an entry's values.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// A counter at this position goes up by one.
    Inc(usize),
    /// An event in the rate at this position, of this period.
    Event(usize, u64),
}

/// How many uses an entry may accumulate; halved per second idle.
const MAX_USES: u32 = 1 << 20;
/// Entries sampled per eviction attempt in a shard.
const EVICT_SAMPLES: usize = 8;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Table {
    pub fn new(name: &str, t: &StickTable) -> Table {
        let mut slots = [Slot::default(); NDT];
        let mut nvals = 0usize;
        let mut bucket = None;
        for st in &t.store {
            let (dt, count, period) = Dt::of(st);
            slots[dt as usize] = Slot { present: true, start: nvals as u16, count, period };
            nvals += usize::from(count);
            if let StoreType::TokenBucket(b) = st {
                bucket = Some((b.rate, b.burst));
            }
        }
        let nshards = (t.size as usize / 1024).next_power_of_two().clamp(1, 64);
        let hasher = KeyHasherBuilder::random();
        let shards = (0..nshards)
            .map(|i| Mutex::new(ShardInner { map: HashMap::with_hasher(hasher), slab: Vec::new(), last_purge: 0, rng: 0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1) }))
            .collect();
        let stored = ALL_DT.iter().filter(|d| slots[**d as usize].present).fold(0u32, |m, d| m | (1 << *d as u32));
        let ops = |types: &[Dt]| -> Box<[Op]> {
            types
                .iter()
                .map(|&d| slots[d as usize])
                .zip(types)
                .filter(|(s, _)| s.present)
                .map(|(s, d)| if d.is_rate() { Op::Event(usize::from(s.start), s.period) } else { Op::Inc(usize::from(s.start)) })
                .collect()
        };
        use Dt::*;
        let track_ops = [
            ops(&[ConnCnt, ConnRate, ConnCur, SessCnt, SessRate]),
            ops(&[ConnCnt, ConnRate, ConnCur, HttpReqCnt, HttpReqRate]),
            ops(&[ConnCnt, ConnRate, ConnCur]),
        ];
        let conn_cur = slots[ConnCur as usize].present.then_some(usize::from(slots[ConnCur as usize].start));
        Table {
            name: name.to_owned(),
            stored,
            key_type: t.key,
            size: t.size,
            expire: t.expire.map_or(0, |d| (d.as_millis() as u64).max(1)),
            nopurge: t.nopurge,
            slots,
            bucket,
            nvals,
            track_ops,
            conn_cur,
            shards,
            used: AtomicUsize::new(0),
            hasher,
            sync: None,
        }
    }

    /// Makes the table replicated: its local changes are queued for the peers thread.
    pub fn with_sync(mut self) -> Table {
        self.sync = Some(Sync::default());
        self
    }

    pub fn replicated(&self) -> bool {
        self.sync.is_some()
    }

    /// Queues the entry's change for the peers (once until taken).
    #[inline]
    fn changed(&self, e: &Entry) {
        if let Some(s) = &self.sync
            && !e.queued.swap(true, Ordering::AcqRel)
        {
            let mut p = lock(&s.pending);
            p.push(e.key.clone());
            // The first change since the peers thread last took them wakes it.
            if p.len() == 1 {
                drop(p);
                crate::peers::wake();
            }
        }
    }

    #[inline]
    pub fn stores(&self, dt: Dt) -> bool {
        self.stored & dt.bit() != 0
    }

    /// The stored types as a mask of [`Dt::bit`]s.
    #[inline]
    pub fn stored_mask(&self) -> u32 {
        self.stored
    }

    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    pub fn type_name(&self) -> &'static str {
        match self.key_type {
            KeyType::Ipv4 => "ip",
            KeyType::Ipv6 => "ipv6",
            KeyType::Integer => "integer",
            KeyType::String { .. } => "string",
            KeyType::Binary { .. } => "binary",
        }
    }

    /// The key of this table's type for a sample, as HAProxy casts: `None` when it does not
    /// convert (an IPv6 address into an `ip` table, text that is not a number...).
    pub fn key_of(&self, s: &SampleRef<'_>) -> Option<Key> {
        Some(match self.key_type {
            KeyType::Ipv4 | KeyType::Ipv6 => return self.key_of_ip(s.as_ip()?),
            KeyType::Integer => Key::Int(s.as_int()? as u32),
            KeyType::String { len } => {
                let b = s.as_bytes();
                Key::Bytes(b[..b.len().min(len as usize)].into())
            }
            KeyType::Binary { len } => {
                let b = s.as_bin();
                let mut v = b[..b.len().min(len as usize)].to_vec();
                v.resize(len as usize, 0);
                Key::Bytes(v.into())
            }
        })
    }

    /// [`key_of`](Self::key_of) the client's address (`src`).
    #[inline]
    pub fn key_of_addr(&self, a: &std::net::SocketAddr) -> Option<Key> {
        match (self.key_type, a) {
            (KeyType::Ipv4, std::net::SocketAddr::V4(a)) => Some(Key::V4(u32::from(*a.ip()))),
            _ => self.key_of_ip(a.ip()),
        }
    }

    /// [`key_of`](Self::key_of) an address.
    #[inline]
    pub fn key_of_ip(&self, ip: IpAddr) -> Option<Key> {
        Some(match self.key_type {
            KeyType::Ipv4 => match ip {
                IpAddr::V4(a) => Key::V4(u32::from(a)),
                IpAddr::V6(a) => Key::V4(u32::from(a.to_ipv4_mapped()?)),
            },
            KeyType::Ipv6 => match ip {
                IpAddr::V4(a) => Key::V6(a.to_ipv6_mapped().octets()),
                IpAddr::V6(a) => Key::V6(a.octets()),
            },
            _ => return self.key_of(&SampleRef::Ip(ip)),
        })
    }

    /// The key typed on the stats socket (`key 127.0.0.1`, `key 42`, `key abc`, hex for binary).
    pub fn parse_key(&self, text: &str) -> Option<Key> {
        match self.key_type {
            KeyType::Binary { len } => {
                if !text.len().is_multiple_of(2) {
                    return None;
                }
                let mut v = (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect::<Option<Vec<u8>>>()?;
                v.truncate(len as usize);
                v.resize(len as usize, 0);
                Some(Key::Bytes(v.into()))
            }
            KeyType::Integer => text.parse::<u32>().ok().map(Key::Int),
            _ => self.key_of(&SampleRef::Str(std::borrow::Cow::Borrowed(text.as_bytes()))),
        }
    }

    fn shard_of(&self, key: &Key) -> usize {
        if self.shards.len() == 1 {
            return 0;
        }
        // Fixed-size keys are mixed with the seed in one multiply; the high bits pick the shard
        // (the map inside uses its own full hash).
        let h = match key {
            Key::V4(x) | Key::Int(x) => fold_mul(u64::from(*x) ^ self.hasher.seed, MULT),
            _ => {
                use std::hash::BuildHasher;
                self.hasher.hash_one(key)
            }
        };
        (h >> 40) as usize & (self.shards.len() - 1)
    }

    fn new_values(&self, now: u64) -> Box<[Val]> {
        let mut out = vec![Val::Int(0); self.nvals];
        for dt in ALL_DT {
            let s = self.slots[dt as usize];
            if !s.present {
                continue;
            }
            let v = match dt {
                Dt::TokenBucket => Val::Bucket(Bucket::full(self.bucket.map_or(0, |b| b.1), now)),
                Dt::ServerKey => Val::Text(None),
                d if d.is_rate() => Val::Freq(FreqCtr::default()),
                _ => Val::Int(0),
            };
            for k in 0..usize::from(s.count) {
                out[usize::from(s.start) + k] = v.clone();
            }
        }
        out.into_boxed_slice()
    }

    fn expired(&self, e: &Entry, now: u64) -> bool {
        self.expire != 0 && e.refs.load(Ordering::Relaxed) == 0 && now >= e.touched.load(Ordering::Relaxed) + self.expire
    }

    fn touch(&self, e: &Entry, now: u64) {
        e.touched.store(now, Ordering::Relaxed);
        self.touch_uses(e);
    }

    fn touch_uses(&self, e: &Entry) {
        let u = e.uses.load(Ordering::Relaxed);
        if u < MAX_USES {
            e.uses.store(u + 1, Ordering::Relaxed);
        }
    }

    /// The entry of `key`, if present and not expired.
    pub fn lookup(&self, key: &Key) -> Option<Arc<Entry>> {
        let now = now_ms();
        let sh = lock(&self.shards[self.shard_of(key)]);
        let e = sh.slab.get(*sh.map.get(key)?)?;
        (!self.expired(e, now)).then(|| e.clone())
    }

    /// The entry of `key`, created when absent, and touched (its expiry pushed back). `None`
    /// when the table is full and nothing can be evicted (`nopurge`, or every entry tracked).
    pub fn get_or_create(&self, key: Key) -> Option<Arc<Entry>> {
        self.get_or_create_at(key, now_ms())
    }

    /// [`get_or_create`](Self::get_or_create) at `now` (read once by a caller that updates next).
    pub fn get_or_create_at(&self, key: Key, now: u64) -> Option<Arc<Entry>> {
        self.get_or_create_with(key, now, false, true)
    }

    /// `hold`: a stream tracks the entry, its reference taken under the shard's lock (a removal
    /// cannot come in between).
    /// `local`: a change made here (queued for the peers), not one learned from them.
    fn get_or_create_with(&self, key: Key, now: u64, hold: bool, local: bool) -> Option<Arc<Entry>> {
        let si = self.shard_of(&key);
        let take = |e: &Entry| {
            self.touch(e, now);
            if local {
                self.changed(e);
            }
            if hold {
                e.refs.fetch_add(1, Ordering::Relaxed);
            }
        };
        {
            let mut sh = lock(&self.shards[si]);
            if let Some(&i) = sh.map.get(&key) {
                let e = &sh.slab[i];
                // An expired entry is replaced by a fresh one (unless a stream took it again
                // meanwhile, without the lock: it is then live).
                if !(self.expired(e, now) && e.retire()) {
                    take(e);
                    return Some(e.clone());
                }
                sh.remove_at(i);
                self.used.fetch_sub(1, Ordering::Relaxed);
            }
            if now >= sh.last_purge + 1000 {
                sh.last_purge = now;
                self.purge_shard(&mut sh, now);
            }
        }
        // Reserve a place, evicting one entry past the size.
        if self.used.fetch_add(1, Ordering::Relaxed) >= self.size as usize && !self.evict_one(si, now) {
            self.used.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        let mut sh = lock(&self.shards[si]);
        if let Some(&i) = sh.map.get(&key) {
            // Another worker inserted it meanwhile.
            self.used.fetch_sub(1, Ordering::Relaxed);
            let e = &sh.slab[i];
            take(e);
            return Some(e.clone());
        }
        let e = Arc::new(Entry {
            key: key.clone(),
            refs: AtomicU32::new(u32::from(hold)),
            touched: AtomicU64::new(now),
            uses: AtomicU32::new(1),
            queued: std::sync::atomic::AtomicBool::new(false),
            upd: AtomicU32::new(0),
            data: Mutex::new(self.new_values(now)),
        });
        let i = sh.slab.len();
        sh.slab.push(e.clone());
        sh.map.insert(key, i);
        drop(sh);
        if local {
            self.changed(&e);
        }
        Some(e)
    }

    fn purge_shard(&self, sh: &mut ShardInner, now: u64) {
        if self.expire == 0 {
            return;
        }
        let mut i = 0;
        while i < sh.slab.len() {
            if self.expired(&sh.slab[i], now) && sh.slab[i].retire() {
                sh.remove_at(i);
                self.used.fetch_sub(1, Ordering::Relaxed);
            } else {
                i += 1;
            }
        }
    }

    /// Removes expired entries that no stream tracks.
    pub fn purge_expired(&self) {
        let now = now_ms();
        for s in self.shards.iter() {
            self.purge_shard(&mut lock(s), now);
        }
    }

    /// Evicts one untracked entry, starting with shard `first`: false when none can go.
    fn evict_one(&self, first: usize, now: u64) -> bool {
        if self.nopurge {
            return false;
        }
        let n = self.shards.len();
        for k in 0..n {
            let mut sh = lock(&self.shards[(first + k) % n]);
            // The victim had no tracker when chosen; one may have come since, without the lock
            // (`retrack`): it then stays, and another one is chosen.
            for _ in 0..2 {
                let Some(i) = self.victim(&mut sh, now) else { break };
                if sh.slab[i].retire() {
                    sh.remove_at(i);
                    self.used.fetch_sub(1, Ordering::Relaxed);
                    return true;
                }
            }
        }
        false
    }

    /// The entry of a shard to evict: an expired one, else the least used recently among a
    /// sample; never a tracked one.
    fn victim(&self, sh: &mut ShardInner, now: u64) -> Option<usize> {
        let len = sh.slab.len();
        if len == 0 {
            return None;
        }
        let score = |e: &Entry| {
            let idle_s = now.saturating_sub(e.touched.load(Ordering::Relaxed)) / 1000;
            e.uses.load(Ordering::Relaxed).checked_shr(idle_s.min(31) as u32).unwrap_or(0)
        };
        let mut best: Option<(u32, usize)> = None;
        let mut consider = |i: usize, sh: &ShardInner| {
            let e = &sh.slab[i];
            if e.refs.load(Ordering::Relaxed) != 0 {
                return false;
            }
            if self.expired(e, now) {
                best = Some((0, i));
                return true;
            }
            let s = score(e);
            if best.is_none_or(|(b, _)| s < b) {
                best = Some((s, i));
            }
            false
        };
        if len <= 4 * EVICT_SAMPLES {
            for i in 0..len {
                if consider(i, sh) {
                    break;
                }
            }
        } else {
            // Sample until EVICT_SAMPLES untracked entries were seen (or enough tries).
            let mut seen = 0;
            for _ in 0..EVICT_SAMPLES * 8 {
                let i = (sh.next_rand() % len as u64) as usize;
                if sh.slab[i].refs.load(Ordering::Relaxed) != 0 {
                    continue;
                }
                seen += 1;
                if consider(i, sh) || seen >= EVICT_SAMPLES {
                    break;
                }
            }
        }
        best.map(|(_, i)| i)
    }

    /// Removes an entry unless tracked; true when removed.
    pub fn remove(&self, key: &Key) -> bool {
        let mut sh = lock(&self.shards[self.shard_of(key)]);
        let Some(&i) = sh.map.get(key) else { return false };
        if !sh.slab[i].retire() {
            return false;
        }
        sh.remove_at(i);
        self.used.fetch_sub(1, Ordering::Relaxed);
        true
    }

    /// Every live entry (a snapshot), for the stats socket.
    pub fn entries(&self) -> Vec<Arc<Entry>> {
        let now = now_ms();
        let mut v = Vec::new();
        for s in self.shards.iter() {
            let sh = lock(s);
            v.extend(sh.slab.iter().filter(|e| !self.expired(e, now)).cloned());
        }
        v
    }

    /// Removes every untracked entry for which `drop_it` is true.
    pub fn clear_where(&self, mut drop_it: impl FnMut(&Table, &Entry) -> bool) {
        for s in self.shards.iter() {
            let mut sh = lock(s);
            let mut i = 0;
            while i < sh.slab.len() {
                let e = sh.slab[i].clone();
                if e.trackers() == 0 && drop_it(self, &e) && e.retire() {
                    sh.remove_at(i);
                    self.used.fetch_sub(1, Ordering::Relaxed);
                } else {
                    i += 1;
                }
            }
        }
    }

    // ---- data ----

    /// Runs `f` on the entry's values under its lock, with the update time.
    fn with<R>(&self, e: &Entry, f: impl FnOnce(&mut [Val], u64) -> R) -> R {
        self.with_at(e, now_ms(), f)
    }

    #[inline]
    fn with_at<R>(&self, e: &Entry, now: u64, f: impl FnOnce(&mut [Val], u64) -> R) -> R {
        let mut d = lock(&e.data);
        let r = f(&mut d, now);
        drop(d);
        e.touched.store(now, Ordering::Relaxed);
        self.changed(e);
        r
    }

    fn idx(&self, dt: Dt, i: usize) -> Option<(usize, u64)> {
        let s = self.slots[dt as usize];
        (s.present && i < usize::from(s.count)).then_some((usize::from(s.start) + i, s.period))
    }

    /// Adds `n` to a counter (or to a rate's current period).
    pub fn add(&self, e: &Entry, dt: Dt, i: usize, n: u64) -> Option<u64> {
        let (at, period) = self.idx(dt, i)?;
        self.with(e, |v, now| match &mut v[at] {
            Val::Int(x) => {
                *x = x.saturating_add(n);
                Some(*x)
            }
            Val::Freq(f) => Some(u64::from(f.update(now, period, n.min(u64::from(u32::MAX)) as u32))),
            _ => None,
        })
    }

    /// Adds `n` to the counter `cnt` and the rate `rate` that go together (`http_req_cnt` and
    /// `http_req_rate`...), those stored.
    #[inline]
    pub fn count(&self, e: &Entry, cnt: Dt, rate: Dt, n: u64) {
        if self.stored & ((1 << cnt as u32) | (1 << rate as u32)) != 0 {
            self.with(e, |v, now| self.bump(v, cnt, rate, n, now));
        }
    }

    fn bump(&self, v: &mut [Val], cnt: Dt, rate: Dt, n: u64, now: u64) {
        if let Some((at, _)) = self.idx(cnt, 0)
            && let Val::Int(x) = &mut v[at]
        {
            *x = x.saturating_add(n);
        }
        if let Some((at, period)) = self.idx(rate, 0)
            && let Val::Freq(f) = &mut v[at]
        {
            f.update(now, period, n.min(u64::from(u32::MAX)) as u32);
        }
    }

    /// A stream starts tracking the entry of `key` (created when absent): its reference, taken
    /// with the entry, and one update (under one lock) of the connection counters (`conn_cnt`,
    /// `conn_rate`, `conn_cur`) and of the session counters (`tcp-request`) or the request
    /// counters (`http-request`). `None` as [`get_or_create`](Self::get_or_create).
    pub fn track_at(&self, key: Key, counts: impl Into<Counts>, now: u64) -> Option<Arc<Entry>> {
        let e = self.get_or_create_with(key, now, true, true)?;
        self.count_tracking(&e, counts.into(), now);
        Some(e)
    }

    /// A stream tracks again the entry it tracked last (the previous request of a keep-alive
    /// connection, same key), without looking it up: as [`track_at`](Self::track_at) when the
    /// entry is still in the table and not expired; false, and nothing done, when it is not (the
    /// caller then calls `track_at`).
    pub fn retrack(&self, e: &Entry, counts: impl Into<Counts>, now: u64) -> bool {
        // The reference first: from then on no removal takes the entry (`retire` needs zero).
        let before = e.refs.fetch_add(1, Ordering::Acquire);
        if before & REMOVED != 0 || (before == 0 && self.expire != 0 && now >= e.touched.load(Ordering::Relaxed) + self.expire) {
            // Gone, or expired: a lookup replaces it.
            e.refs.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        self.touch_uses(e);
        self.count_tracking(e, counts.into(), now);
        true
    }

    /// A stream starts tracking an entry it holds (from [`get_or_create`](Self::get_or_create)):
    /// as [`track_at`](Self::track_at). False when the entry left the table meanwhile.
    pub fn start_tracking(&self, e: &Entry, counts: impl Into<Counts>, now: u64) -> bool {
        if e.refs.fetch_add(1, Ordering::Acquire) & REMOVED != 0 {
            e.refs.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        self.count_tracking(e, counts.into(), now);
        true
    }

    /// The connection counters (`conn_cnt`, `conn_rate`, `conn_cur`) and the session
    /// (`tcp-request`) or request (`http-request`) counters of a new tracking, and the entry's
    /// update time.
    #[inline(always)]
    fn count_tracking(&self, e: &Entry, counts: Counts, now: u64) {
        let ops = &self.track_ops[counts as usize];
        if ops.is_empty() {
            e.touched.store(now, Ordering::Relaxed);
            self.changed(e);
            return;
        }
        self.with_at(e, now, |v, now| {
            for op in ops.iter() {
                match *op {
                    Op::Inc(at) => {
                        if let Val::Int(x) = &mut v[at] {
                            *x = x.saturating_add(1);
                        }
                    }
                    Op::Event(at, period) => {
                        if let Val::Freq(f) = &mut v[at] {
                            f.update(now, period, 1);
                        }
                    }
                }
            }
        });
    }

    /// The stream stops tracking the entry at `now`: `conn_cur` goes down, the reference goes,
    /// and the expiry starts again.
    #[inline]
    pub fn stop_tracking(&self, e: &Entry, now: u64) {
        match self.conn_cur {
            Some(at) => self.with_at(e, now, |v, _| {
                if let Val::Int(x) = &mut v[at] {
                    *x = x.saturating_sub(1);
                }
            }),
            None => {
                e.touched.store(now, Ordering::Relaxed);
                self.changed(e);
            }
        }
        // Release: the updates above are seen by whoever removes the entry once untracked.
        e.refs.fetch_sub(1, Ordering::Release);
    }

    /// Sets a counter or tag.
    pub fn set(&self, e: &Entry, dt: Dt, i: usize, n: u64) -> bool {
        let Some((at, _)) = self.idx(dt, i) else { return false };
        let burst = self.bucket.map_or(0, |b| b.1);
        self.with(e, |v, now| match &mut v[at] {
            Val::Int(x) => {
                *x = n;
                true
            }
            Val::Freq(f) => {
                // HAProxy's `set table` of a rate restarts its window with that many events.
                *f = FreqCtr::default();
                f.update(now, self.slots[dt as usize].period, n.min(u64::from(u32::MAX)) as u32);
                true
            }
            Val::Bucket(b) => {
                b.set(now, n, burst);
                true
            }
            Val::Text(_) => false,
        })
    }

    /// Reads a counter, a rate over its period, a tag or the tokens left.
    pub fn get(&self, e: &Entry, dt: Dt, i: usize) -> Option<u64> {
        self.get_at(e, dt, i, now_ms())
    }

    /// [`get`](Self::get) at `now`.
    #[inline]
    pub fn get_at(&self, e: &Entry, dt: Dt, i: usize, now: u64) -> Option<u64> {
        let (at, period) = self.idx(dt, i)?;
        let d = lock(&e.data);
        match &d[at] {
            Val::Int(x) => Some(*x),
            Val::Freq(f) => Some(u64::from(f.read(now, period))),
            Val::Bucket(b) => {
                let (rate, burst) = self.bucket?;
                Some(b.level(now, rate, period, burst))
            }
            Val::Text(_) => None,
        }
    }

    /// Clears a counter, returning the value before.
    pub fn clear(&self, e: &Entry, dt: Dt, i: usize) -> Option<u64> {
        let before = self.get(e, dt, i)?;
        self.set(e, dt, i, 0);
        Some(before)
    }

    /// Takes a token from the entry's bucket: `None` when the table has no bucket, `Some(Ok)` when
    /// one was taken, `Some(Err(ms))` with the wait for the next one.
    pub fn take_token(&self, e: &Entry) -> Option<Result<(), u64>> {
        let (rate, burst) = self.bucket?;
        let (at, period) = self.idx(Dt::TokenBucket, 0)?;
        Some(self.with(e, |v, now| match &mut v[at] {
            Val::Bucket(b) => b.take(now, rate, period, burst),
            _ => Ok(()),
        }))
    }

    /// The server stored by `stick store-*` (`server_id`).
    pub fn server_id(&self, e: &Entry) -> Option<u64> {
        self.get(e, Dt::ServerId, 0).filter(|&id| id != 0)
    }

    // ---- replication (the peers thread) ----

    /// Takes the queued local changes: each entry still in the table, with the update id given to
    /// this change. The `queued` flag is cleared before the values are read, so a change made
    /// meanwhile is queued again and not lost.
    pub fn take_changes(&self) -> Vec<(Arc<Entry>, u32)> {
        let Some(s) = &self.sync else { return Vec::new() };
        let keys = std::mem::take(&mut *lock(&s.pending));
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            let found = {
                let sh = lock(&self.shards[self.shard_of(&k)]);
                sh.map.get(&k).map(|&i| sh.slab[i].clone())
            };
            let Some(e) = found else { continue };
            e.queued.store(false, Ordering::Release);
            let mut id = s.seq.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
            if id == 0 {
                id = s.seq.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
            }
            e.upd.store(id, Ordering::Relaxed);
            out.push((e, id));
        }
        out
    }

    /// The last update id given to a local change.
    pub fn last_update(&self) -> u32 {
        self.sync.as_ref().map_or(0, |s| s.seq.load(Ordering::Relaxed))
    }

    /// The stored types sent to peers, in type order: (type, elements, period in ms). The token
    /// bucket is sluiced's own and stays out.
    pub fn wire_types(&self) -> impl Iterator<Item = (Dt, u16, u64)> + '_ {
        ALL_DT.iter().filter(|d| **d != Dt::TokenBucket).map(|&d| (d, self.slots[d as usize])).filter(|(_, s)| s.present).map(|(d, s)| (d, s.count, s.period))
    }

    /// The entry's values as sent to peers, in [`wire_types`](Self::wire_types) order: (type,
    /// element, value), the form [`learn`](Self::learn) takes.
    pub fn wire_values(&self, e: &Entry, now: u64) -> Vec<(Dt, usize, Wire)> {
        let d = lock(&e.data);
        let mut out = Vec::with_capacity(self.nvals);
        for (dt, count, _) in self.wire_types() {
            let start = usize::from(self.slots[dt as usize].start);
            for k in 0..usize::from(count) {
                let w = match &d[start + k] {
                    Val::Int(x) => Wire::Int(*x),
                    Val::Freq(f) => {
                        let (tick, curr, prev) = f.parts();
                        Wire::Freq { age: if tick == 0 { 0 } else { now.saturating_sub(tick) }, curr: u64::from(curr), prev: u64::from(prev) }
                    }
                    Val::Text(t) => Wire::Text(t.as_deref().map(str::to_owned)),
                    Val::Bucket(_) => Wire::Int(0),
                };
                out.push((dt, k, w));
            }
        }
        out
    }

    /// Milliseconds before the entry expires, when the table has an expiry.
    pub fn expire_left(&self, e: &Entry, now: u64) -> Option<u64> {
        (self.expire != 0).then(|| (e.touched.load(Ordering::Relaxed) + self.expire).saturating_sub(now))
    }

    /// Applies an update learned from a peer: the entry is made when absent, each value of a type
    /// the table stores is set (`conn_cur` stays this node's own), and the expiry is the one sent
    /// (`left`, in ms) or the table's. Not queued for the peers again. False when the table is
    /// full and nothing can be evicted.
    pub fn learn(&self, key: Key, left: Option<u64>, values: &[(Dt, usize, Wire)]) -> bool {
        let now = now_ms();
        let Some(e) = self.get_or_create_with(key, now, false, false) else { return false };
        {
            let mut d = lock(&e.data);
            for (dt, i, w) in values {
                if *dt == Dt::ConnCur || *dt == Dt::TokenBucket {
                    continue;
                }
                let Some((at, _)) = self.idx(*dt, *i) else { continue };
                match (&mut d[at], w) {
                    (Val::Int(x), Wire::Int(n)) => *x = *n,
                    (Val::Freq(f), Wire::Freq { age, curr, prev }) => {
                        let tick = if *curr == 0 && *prev == 0 { 0 } else { now.saturating_sub(*age).max(1) };
                        *f = FreqCtr::from_parts(tick, (*curr).min(u64::from(u32::MAX)) as u32, (*prev).min(u64::from(u32::MAX)) as u32);
                    }
                    (Val::Text(t), Wire::Text(Some(s))) => *t = Some(s.as_str().into()),
                    _ => {}
                }
            }
        }
        let touched = match left {
            Some(l) if self.expire != 0 => (now + l.min(self.expire)).saturating_sub(self.expire).max(1),
            _ => now,
        };
        e.touched.store(touched, Ordering::Relaxed);
        true
    }

    /// The key type and key size a peer's definition of this table must have (HAProxy's: a
    /// string key's size counts its trailing zero).
    pub fn wire_key(&self) -> (u64, u64) {
        match self.key_type {
            KeyType::Ipv4 => (crate::peers::proto::KT_IPV4, 4),
            KeyType::Ipv6 => (crate::peers::proto::KT_IPV6, 16),
            KeyType::Integer => (crate::peers::proto::KT_SINT, 4),
            KeyType::String { len } => (crate::peers::proto::KT_STR, u64::from(len) + 1),
            KeyType::Binary { len } => (crate::peers::proto::KT_BIN, u64::from(len)),
        }
    }

    /// A key in its wire form.
    pub fn key_to_wire(&self, k: &Key) -> Vec<u8> {
        match k {
            Key::V4(a) | Key::Int(a) => a.to_be_bytes().to_vec(),
            Key::V6(a) => a.to_vec(),
            Key::Bytes(b) => b.to_vec(),
        }
    }

    /// A key from its wire form; `None` when it does not fit the table's type.
    pub fn key_from_wire(&self, b: &[u8]) -> Option<Key> {
        Some(match self.key_type {
            KeyType::Ipv4 => Key::V4(u32::from_be_bytes(b.try_into().ok()?)),
            KeyType::Integer => Key::Int(u32::from_be_bytes(b.try_into().ok()?)),
            KeyType::Ipv6 => Key::V6(b.try_into().ok()?),
            KeyType::String { len } => Key::Bytes(b[..b.len().min(len as usize)].into()),
            KeyType::Binary { len } => {
                let mut v = b[..b.len().min(len as usize)].to_vec();
                v.resize(len as usize, 0);
                Key::Bytes(v.into())
            }
        })
    }

    // ---- the stats socket ----

    /// `# table: <name>, type: <type>, size:<n>, used:<n>`.
    pub fn header(&self) -> String {
        format!("# table: {}, type: {}, size:{}, used:{}\n", self.name, self.type_name(), self.size, self.used())
    }

    /// The key as `show table` prints it.
    pub fn key_text(&self, k: &Key) -> String {
        match k {
            Key::V4(a) => Ipv4Addr::from(*a).to_string(),
            Key::V6(a) => Ipv6Addr::from(*a).to_string(),
            Key::Int(n) => n.to_string(),
            Key::Bytes(b) => match self.key_type {
                KeyType::Binary { .. } => b.iter().fold(String::new(), |mut s, c| {
                    let _ = write!(s, "{c:02X}");
                    s
                }),
                _ => {
                    let mut s = String::new();
                    for &c in b.iter() {
                        if c == 0 {
                            break;
                        }
                        if c.is_ascii_graphic() && c != b'\\' && c != b'=' {
                            s.push(c as char);
                        } else {
                            let _ = write!(s, "\\x{c:02x}");
                        }
                    }
                    s
                }
            },
        }
    }

    /// One `show table` line: `0x<id>: key=<k> use=<n> exp=<ms> shard=<n> <data>...`.
    pub fn dump_entry(&self, e: &Arc<Entry>) -> String {
        let now = now_ms();
        let exp = if self.expire == 0 { 0 } else { (e.touched.load(Ordering::Relaxed) + self.expire).saturating_sub(now) };
        // `shard` is HAProxy's peers shard, 0 without sharded peers (sluiced has no peers); the
        // lock shards of this table are an internal matter.
        let mut out = format!("{:p}: key={} use={} exp={} shard=0", Arc::as_ptr(e), self.key_text(&e.key), e.trackers(), exp);
        for dt in ALL_DT {
            let s = self.slots[dt as usize];
            if !s.present {
                continue;
            }
            for i in 0..usize::from(s.count) {
                // Arrays print their index before the first `_`: gpc0, gpc1_rate(10000).
                let name = if dt.is_array() {
                    let (pfx, sfx) = dt.name().split_once('_').map_or((dt.name(), ""), |(p, s)| (p, s));
                    if sfx.is_empty() { format!("{pfx}{i}") } else { format!("{pfx}{i}_{sfx}") }
                } else {
                    dt.name().to_owned()
                };
                let value = if dt == Dt::ServerKey {
                    let d = lock(&e.data);
                    match &d[usize::from(s.start)] {
                        Val::Text(Some(t)) => t.to_string(),
                        _ => String::new(),
                    }
                } else if dt == Dt::ServerId {
                    (self.get(e, dt, i).unwrap_or(0) as i64).to_string()
                } else {
                    self.get(e, dt, i).unwrap_or(0).to_string()
                };
                if dt.is_rate() || dt == Dt::TokenBucket {
                    let _ = write!(out, " {name}({})={value}", s.period);
                } else {
                    let _ = write!(out, " {name}={value}");
                }
            }
        }
        out.push('\n');
        out
    }
}

/// Every table of a routing table, by name.
#[derive(Debug, Default)]
pub struct Tables {
    pub list: Vec<Arc<Table>>,
    by_name: HashMap<String, usize>,
}

impl Tables {
    pub fn add(&mut self, t: Table) {
        self.by_name.insert(t.name.clone(), self.list.len());
        self.list.push(Arc::new(t));
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Table>> {
        self.by_name.get(name).map(|&i| &self.list[i])
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn table(size: u32, store: Vec<StoreType>) -> Table {
        Table::new("t", &StickTable { size, expire: Some(Duration::from_secs(60)), store, ..table_cfg() })
    }

    fn ip(n: u32) -> Key {
        Key::V4(n)
    }

    #[test]
    fn size_is_a_hard_bound() {
        let t = table(100, vec![StoreType::Gpc0]);
        for i in 0..1000 {
            t.get_or_create(ip(i)).unwrap();
        }
        assert_eq!(t.used(), 100);
        assert_eq!(t.entries().len(), 100);
    }

    #[test]
    fn tracked_entries_are_never_evicted() {
        let t = table(50, vec![StoreType::Gpc0]);
        let kept: Vec<_> = (0..10).map(|i| t.get_or_create(ip(1_000_000 + i)).unwrap()).collect();
        for e in &kept {
            assert!(t.start_tracking(e, false, now_ms()));
        }
        for i in 0..5000 {
            t.get_or_create(ip(i)).unwrap();
        }
        for e in &kept {
            assert!(t.lookup(&e.key).is_some_and(|x| Arc::ptr_eq(&x, e)));
        }
    }

    #[test]
    fn an_entry_is_tracked_again_only_while_it_is_in_the_table_and_not_expired() {
        let t = table(50, vec![StoreType::HttpReqCnt]);
        // `lookup` reads the clock: the times are the clock's, moved forward past the expiry.
        let n0 = now_ms();
        let cnt = |e: &Entry| t.get_at(e, Dt::HttpReqCnt, 0, n0).unwrap();
        let e = t.track_at(ip(1), true, n0).unwrap();
        assert_eq!((e.trackers(), cnt(&e)), (1, 1));
        t.stop_tracking(&e, n0);
        assert!(t.retrack(&e, true, n0 + 1_000));
        assert_eq!((e.trackers(), cnt(&e)), (1, 2));
        t.stop_tracking(&e, n0 + 1_000);
        // Evicted (by keys used more): refused, nothing counted.
        let mut i = 100;
        while t.lookup(&ip(1)).is_some() {
            for _ in 0..3 {
                t.get_or_create_at(ip(i), n0).unwrap();
            }
            i += 1;
            assert!(i < 100_000, "never evicted");
        }
        assert!(!t.retrack(&e, true, n0 + 1_000));
        assert_eq!((e.trackers(), cnt(&e)), (0, 2));
        // Removed: refused.
        let e = t.track_at(ip(2), true, n0).unwrap();
        t.stop_tracking(&e, n0);
        assert!(t.remove(&ip(2)));
        assert!(!t.retrack(&e, true, n0));
        assert_eq!((e.trackers(), cnt(&e)), (0, 1));
        // Expired (60 s after its release): refused, and a lookup replaces it.
        let e = t.track_at(ip(3), true, n0).unwrap();
        t.stop_tracking(&e, n0 + 2_000);
        assert!(!t.retrack(&e, true, n0 + 62_000));
        assert_eq!(e.trackers(), 0);
        let fresh = t.track_at(ip(3), true, n0 + 62_000).unwrap();
        assert!(!Arc::ptr_eq(&fresh, &e) && cnt(&fresh) == 1);
        assert!(!t.retrack(&e, true, n0 + 62_000));
    }

    #[test]
    fn tracking_again_and_removing_race_without_an_entry_counting_out_of_the_table() {
        let t = table(50, vec![StoreType::HttpReqCnt]);
        // Stops the remover when dropped, a failed assertion included.
        struct StopOnDrop<'a>(&'a AtomicU32);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(1, Ordering::Relaxed);
            }
        }
        let stop = AtomicU32::new(0);
        std::thread::scope(|s| {
            s.spawn(|| {
                while stop.load(Ordering::Relaxed) == 0 {
                    t.remove(&ip(1));
                }
            });
            let _stop = StopOnDrop(&stop);
            let mut e = t.track_at(ip(1), true, now_ms()).unwrap();
            t.stop_tracking(&e, now_ms());
            let (mut again, mut fresh) = (0, 0);
            // Until the remover won a few times (it may not be scheduled at once).
            let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while again + fresh < 20_000 || (fresh < 10 && std::time::Instant::now() < until) {
                let now = now_ms();
                if t.retrack(&e, true, now) {
                    again += 1;
                } else {
                    e = t.track_at(ip(1), true, now).unwrap();
                    fresh += 1;
                }
                // Tracked: in the table, and the one its key finds.
                assert!(t.lookup(&ip(1)).is_some_and(|x| Arc::ptr_eq(&x, &e)));
                t.stop_tracking(&e, now);
            }
            assert!(again > 0, "{again} {fresh}");
        });
        assert!(t.used() <= 1);
    }

    #[test]
    fn an_entry_tracked_again_is_neither_evicted_nor_removed() {
        let t = table(50, vec![StoreType::HttpReqCnt]);
        let e = t.track_at(ip(1), true, 1_000).unwrap();
        t.stop_tracking(&e, 1_000);
        assert!(t.retrack(&e, true, 1_000));
        for i in 100..1000 {
            t.get_or_create_at(ip(i), 1_000).unwrap();
        }
        assert!(!t.remove(&ip(1)));
        assert!(t.lookup(&ip(1)).is_some_and(|x| Arc::ptr_eq(&x, &e)));
    }

    #[test]
    fn frequently_used_untracked_entries_outlive_a_flood_of_one_shot_keys() {
        let t = table(64, vec![StoreType::Gpc0]);
        let busy = ip(7_777_777);
        for _ in 0..100 {
            t.get_or_create(busy.clone()).unwrap();
        }
        for i in 0..640 {
            t.get_or_create(ip(i)).unwrap();
        }
        assert!(t.lookup(&busy).is_some());
    }

    #[test]
    fn nopurge_refuses_new_entries_when_full() {
        let mut cfg = StickTable { key: KeyType::Integer, size: 2, nopurge: true, ..table_cfg() };
        let t = Table::new("n", &cfg);
        assert!(t.get_or_create(Key::Int(1)).is_some());
        assert!(t.get_or_create(Key::Int(2)).is_some());
        assert!(t.get_or_create(Key::Int(3)).is_none());
        assert!(t.get_or_create(Key::Int(1)).is_some());
        cfg.nopurge = false;
        let t = Table::new("n", &cfg);
        t.get_or_create(Key::Int(1));
        t.get_or_create(Key::Int(2));
        assert!(t.get_or_create(Key::Int(3)).is_some());
    }

    #[test]
    fn dump_prints_data_in_haproxy_order() {
        let t = table(10, vec![StoreType::HttpReqRate(Duration::from_secs(10)), StoreType::ConnCur, StoreType::Gpc0, StoreType::Gpc(2)]);
        let e = t.get_or_create(ip(0x7f00_0001)).unwrap();
        t.count(&e, Dt::HttpReqCnt, Dt::HttpReqRate, 4);
        let line = t.dump_entry(&e);
        let rest = line.split_once(" use=").unwrap().1;
        assert!(line.contains(": key=127.0.0.1 use=0 exp="), "{line}");
        assert!(rest.ends_with(" shard=0 gpc0=0 conn_cur=0 http_req_rate(10000)=4 gpc0=0 gpc1=0\n"), "{line}");
    }

    #[test]
    fn keys_convert_as_haproxy_casts() {
        let t = table(10, vec![]);
        assert_eq!(t.parse_key("10.0.0.1"), Some(Key::V4(0x0a00_0001)));
        assert_eq!(t.key_of(&SampleRef::Ip("::ffff:10.0.0.1".parse().unwrap())), Some(Key::V4(0x0a00_0001)));
        assert_eq!(t.key_of(&SampleRef::Ip("2001:db8::1".parse().unwrap())), None);
    }

    #[test]
    fn a_replicated_table_queues_each_changed_key_once_until_taken() {
        let t = table(10, vec![StoreType::HttpReqCnt, StoreType::Gpc0]).with_sync();
        let now = now_ms();
        for _ in 0..3 {
            let e = t.track_at(ip(1), true, now).unwrap();
            t.stop_tracking(&e, now);
        }
        let e2 = t.get_or_create(ip(2)).unwrap();
        t.add(&e2, Dt::Gpc0, 0, 5);
        let mut taken = t.take_changes();
        taken.sort_by_key(|(e, _)| e.key.clone());
        assert_eq!(taken.iter().map(|(e, _)| e.key.clone()).collect::<Vec<_>>(), [ip(1), ip(2)], "one change each");
        assert_eq!(taken.iter().map(|(_, id)| *id).collect::<std::collections::BTreeSet<_>>(), [1, 2].into(), "update ids given in turn");
        assert_eq!(t.wire_values(&taken[0].0, now), [(Dt::Gpc0, 0, Wire::Int(0)), (Dt::HttpReqCnt, 0, Wire::Int(3))], "gpc0, then http_req_cnt: type order");
        assert!(t.take_changes().is_empty());
        // A change after the take is queued again.
        t.add(&e2, Dt::Gpc0, 0, 1);
        let again = t.take_changes();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].1, 3);
        assert_eq!(again[0].0.update_id(), 3);
        // A table without peers queues nothing.
        let plain = table(10, vec![StoreType::Gpc0]);
        let e = plain.get_or_create(ip(1)).unwrap();
        plain.add(&e, Dt::Gpc0, 0, 1);
        assert!(plain.take_changes().is_empty());
    }

    #[test]
    fn learned_updates_set_values_and_expiry_without_being_queued_again() {
        let t = table(10, vec![StoreType::ConnCur, StoreType::Gpc0, StoreType::HttpReqRate(Duration::from_secs(10))]).with_sync();
        let now = now_ms();
        let held = t.track_at(ip(7), true, now).unwrap();
        t.take_changes();
        let values = [
            (Dt::ConnCur, 0, Wire::Int(40)),
            (Dt::Gpc0, 0, Wire::Int(9)),
            (Dt::HttpReqRate, 0, Wire::Freq { age: 1_000, curr: 6, prev: 0 }),
            (Dt::Gpc1, 0, Wire::Int(1)),
        ];
        assert!(t.learn(ip(7), Some(20_000), &values));
        assert!(t.learn(ip(8), None, &values));
        assert!(t.take_changes().is_empty(), "learned updates are not sent on");
        assert_eq!(t.get(&held, Dt::ConnCur, 0), Some(1), "conn_cur stays this node's");
        assert_eq!(t.get(&held, Dt::Gpc0, 0), Some(9));
        assert_eq!(t.get(&held, Dt::HttpReqRate, 0), Some(6));
        let left = t.expire_left(&held, now_ms()).unwrap();
        assert!(left <= 20_000 && left > 15_000, "{left}");
        let e8 = t.lookup(&ip(8)).unwrap();
        assert!(t.expire_left(&e8, now_ms()).unwrap() > 55_000, "the table's expiry when none is sent");
        t.stop_tracking(&held, now);
    }

    #[test]
    fn keys_take_haproxys_wire_forms() {
        let t = table(10, vec![]);
        assert_eq!(t.wire_key(), (crate::peers::proto::KT_IPV4, 4));
        assert_eq!(t.key_to_wire(&Key::V4(0x0a00_0001)), [10, 0, 0, 1]);
        assert_eq!(t.key_from_wire(&[10, 0, 0, 1]), Some(Key::V4(0x0a00_0001)));
        assert_eq!(t.key_from_wire(&[10, 0, 0]), None);
        let mut st = StickTable { key: KeyType::String { len: 4 }, ..table_cfg() };
        let s = Table::new("s", &st);
        assert_eq!(s.wire_key(), (crate::peers::proto::KT_STR, 5), "a string key's size counts its trailing zero");
        assert_eq!(s.key_from_wire(b"abcdef"), Some(Key::Bytes(b"abcd".to_vec().into())));
        st.key = KeyType::Binary { len: 4 };
        let b = Table::new("b", &st);
        assert_eq!(b.wire_key(), (crate::peers::proto::KT_BIN, 4));
        assert_eq!(b.key_from_wire(b"ab"), Some(Key::Bytes(b"ab\0\0".to_vec().into())));
    }

    /// An IPv4 table of 10 entries, no expiry, nothing stored.
    fn table_cfg() -> StickTable {
        StickTable {
            key: KeyType::Ipv4,
            size: 10,
            expire: None,
            nopurge: false,
            peers: None,
            srvkey: Default::default(),
            write_to: None,
            recv_only: false,
            store: vec![],
            span: crate::config::diag::Span::new("t".into(), 1),
        }
    }
}
