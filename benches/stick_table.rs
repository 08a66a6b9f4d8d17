//! The cost of tracking one request in a shared stick table (`bench/README.md`, "Stick-table
//! tracking cost"): what `http-request track-sc0 src` plus a `sc_http_req_rate(0)` check do to
//! the table per request (find or create the entry, start tracking it, read the rate, stop
//! tracking; the later requests of a kept-alive connection take their entry again without the
//! lookup, `Table::retrack`), timed
//!
//! - in a table of 1,000 entries and in a table pre-filled with 1,000,000 entries (keys visited
//!   in a random order, so that most entries are not in the CPU caches), one thread;
//! - with one and with two threads hitting the same 1,000 keys (two workers, one table).
//!
//! `cargo bench --bench stick_table` prints ns per track. With `--probe`, the program instead runs
//! each workload once in `#[inline(never)]` functions named `probe_*`, for callgrind to count the
//! instructions of just those (`bench/stick/table_ir.sh`).
//!
//! The counters are checked at the end: every track must have counted once (no update lost
//! between two threads), and no entry may have been evicted.

use std::hint::black_box;
use std::time::{Duration, Instant};

use sluiced::config::diag::Span;
use sluiced::stick::config::{KeyType, StickTable, StoreType};
use sluiced::stick::table::{Dt, Key, Table, now_ms};

const MILLION: u32 = 1_000_000;
const SMALL: u32 = 1_000;

fn table(size: u32) -> Table {
    let t = StickTable {
        key: KeyType::Ipv4,
        size,
        expire: Some(Duration::from_secs(600)),
        nopurge: false,
        peers: None,
        srvkey: Default::default(),
        write_to: None,
        recv_only: false,
        store: vec![StoreType::HttpReqCnt, StoreType::HttpReqRate(Duration::from_secs(10))],
        span: Span::new("bench".into(), 1),
    };
    Table::new("bench", &t)
}

/// The `n`-th of distinct IPv4 keys (multiplying by an odd constant is a bijection).
fn key(n: u32) -> Key {
    Key::V4(n.wrapping_mul(0x9E37_79B1) ^ 0x0A00_0000)
}

/// `n` key numbers below `below` in a random order (xorshift; the same every run).
fn order(n: usize, below: u32, seed: u64) -> Vec<u32> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % u64::from(below)) as u32
        })
        .collect()
}

/// One request's work on the table, as the data plane does it for `http-request track-sc0 src`
/// and `deny if { sc_http_req_rate(0) gt N }`.
#[inline(always)]
fn track(t: &Table, k: Key) -> u64 {
    let now = now_ms();
    let e = t.track_at(k, true, now).expect("room in the table");
    let rate = t.get_at(&e, Dt::HttpReqRate, 0, now).unwrap_or(0);
    t.stop_tracking(&e, now);
    rate
}

fn fill(t: &Table, n: u32) {
    for i in 0..n {
        black_box(t.get_or_create(key(i)).expect("room"));
    }
}

#[inline(never)]
fn probe_small(t: &Table, keys: &[u32]) -> u64 {
    keys.iter().map(|&k| track(t, key(k))).sum()
}

// Not the same body as `probe_small`: identical functions are folded into one by the compiler,
// and callgrind would then count both workloads under one name.
#[inline(never)]
fn probe_million(t: &Table, keys: &[u32]) -> u64 {
    keys.iter().map(|&k| track(t, key(k))).max().unwrap_or(0)
}

#[inline(never)]
fn probe_insert(t: &Table, from: u32, n: u32) {
    for i in from..from + n {
        black_box(t.get_or_create(key(i)).expect("room"));
    }
}

fn timed(t: &Table, keys: &[u32]) -> f64 {
    let start = Instant::now();
    black_box(keys.iter().map(|&k| track(t, key(k))).sum::<u64>());
    start.elapsed().as_nanos() as f64 / keys.len() as f64
}

fn count_of(t: &Table, k: u32) -> u64 {
    let e = t.lookup(&key(k)).expect("entry present");
    t.get(&e, Dt::HttpReqCnt, 0).expect("http_req_cnt stored")
}

/// `threads` threads each tracking `per_thread` times over the same 1,000 keys (each its own
/// random order): ns per track seen by each thread (the median of the threads).
fn shared(threads: usize, per_thread: usize) -> (f64, f64) {
    let t = table(SMALL * 2);
    fill(&t, SMALL);
    let before: u64 = (0..SMALL).map(|k| count_of(&t, k)).sum();
    let orders: Vec<Vec<u32>> = (0..threads).map(|i| order(per_thread, SMALL, 7 + i as u64)).collect();
    let start = Instant::now();
    let mut per: Vec<f64> = std::thread::scope(|s| {
        let hs: Vec<_> = orders.iter().map(|o| s.spawn(|| timed(&t, o))).collect();
        hs.into_iter().map(|h| h.join().expect("bench thread")).collect()
    });
    let wall = start.elapsed().as_nanos() as f64 / (threads * per_thread) as f64;
    let after: u64 = (0..SMALL).map(|k| count_of(&t, k)).sum();
    assert_eq!(after - before, (threads * per_thread) as u64, "every track counts once");
    assert_eq!(t.used(), SMALL as usize);
    per.sort_by(f64::total_cmp);
    (per[per.len() / 2], wall)
}

fn main() {
    let probe = std::env::args().any(|a| a == "--probe");
    if probe {
        // Under callgrind: `--toggle-collect='*probe_*'` counts these calls only.
        let small = table(SMALL * 2);
        fill(&small, SMALL);
        black_box(probe_small(&small, &order(100_000, SMALL, 3)));
        let big = table(1 << 20);
        fill(&big, MILLION);
        let keys = order(100_000, MILLION, 5);
        black_box(probe_million(&big, &keys));
        probe_insert(&big, MILLION, 10_000);
        assert_eq!(big.used(), MILLION as usize + 10_000);
        return;
    }
    let tracks = 2_000_000;
    let small = table(SMALL * 2);
    fill(&small, SMALL);
    let keys = order(tracks, SMALL, 3);
    timed(&small, &keys[..tracks / 10]);
    let ns_small = timed(&small, &keys);

    let big = table(1 << 20);
    let start = Instant::now();
    fill(&big, MILLION);
    let ns_fill = start.elapsed().as_nanos() as f64 / f64::from(MILLION);
    assert_eq!(big.used(), MILLION as usize);
    let keys = order(tracks, MILLION, 5);
    let before: u64 = keys[..1000].iter().map(|&k| count_of(&big, k)).sum();
    let ns_big = timed(&big, &keys);
    assert_eq!(big.used(), MILLION as usize, "nothing evicted");
    assert!(keys[..1000].iter().map(|&k| count_of(&big, k)).sum::<u64>() > before);

    let (one, one_wall) = shared(1, tracks);
    let (two, two_wall) = shared(2, tracks);
    println!("| workload | ns per track |");
    println!("|---|---|");
    println!("| 1,000 entries, 1 thread | {ns_small:.1} |");
    println!("| fill: insertion of 1,000,000 new keys | {ns_fill:.1} |");
    println!("| 1,000,000 entries, random keys, 1 thread | {ns_big:.1} |");
    println!("| same 1,000 keys, 1 thread | {one:.1} (wall / tracks: {one_wall:.1}) |");
    println!("| same 1,000 keys, 2 threads | {two:.1} per thread (wall / all tracks: {two_wall:.1}) |");
}
