//! Load tool of the L4 benchmark (`bench/l4/`).
//!
//! - `churn`: C concurrent loops of connect -> write N bytes -> read the N bytes echoed -> close, for a
//!   fixed time; reports connections per second, errors and connect+echo latency percentiles.
//! - `echo-server`: the origin of the churn test: echoes what it reads until EOF, then closes.
//! - `cpu-distance`: the round trip of one cache line between two CPUs, for the HTTP and L4
//!   harnesses to see where the host has put the proxy's CPU against the load's (see
//!   `bench/README.md`): on a VM the two virtual CPUs may share a cache one minute and sit on
//!   distant cores the next, and every loopback request crosses between them.
//! - `syscall-cost`: what one system call's entry and exit cost on a CPU, so that reports taken
//!   on different hosts of the same CPU model can be told apart (a proxy makes two to four system
//!   calls per keep-alive request); and what a call on a descriptor costs in a process of one
//!   thread and in one of two (Linux skips the file's reference count only where the calling
//!   thread's descriptor table has no other user: HAProxy with `nbthread 1` is one thread, sluiced
//!   never is).
//!
//! `churn` and `echo-server` run on one thread (tokio's current-thread runtime): the benchmark pins them to one CPU,
//! where one event loop costs less than a thread per connection.
//!
//! Output is one line of `key=value` pairs on stdout, for the harness to parse.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const USAGE: &str = "Usage:
  sluiced-loadgen churn --target <ip:port> [--concurrency C] [--duration SECS] [--payload BYTES] [--timeout SECS]
      C loops of connect, write BYTES, read them back, close, for SECS seconds. Prints one line:
      conns=.. errors=.. secs=.. conns_per_sec=.. p50_us=.. p99_us=.. max_us=..
      Defaults: C 32, SECS 10, BYTES 16, per-connection timeout 5 s.
  sluiced-loadgen echo-server --listen <ip:port> [--print-port] [--max-seconds SECS]
      Echoes what each connection sends until EOF, then closes it. --print-port prints the bound
      port alone on a line (use port 0 to let the kernel choose). Exits after SECS seconds if given.
  sluiced-loadgen cpu-distance [--cpus A,B] [--round-trips N] [--batches K] [--samples S] [--interval-ms MS] [--stream]
      Bounces one cache line between a thread pinned to CPU A and one pinned to CPU B, N times in
      each of K batches; the fastest batch is one sample. Takes S samples MS milliseconds apart.
      Prints one line: round_trip_ns=.. (median sample) min_ns=.. max_ns=.. samples_ns=a,b,..
      --stream also prints each sample as it is taken (sample_ns=..), for a caller that stops
      the sampling by killing the process.
      Defaults: CPUs 0,1, N 20000, K 3, S 1, MS 500. A sample fails after 5 s (a CPU that is
      not free to spin).
  sluiced-loadgen syscall-cost [--cpu C] [--calls N] [--batches K]
      Pinned to CPU C, makes N getppid system calls in each of K batches; the fastest batch is
      the figure. Then the same with fcntl(F_GETFL) on a pipe, the cheapest call on a descriptor,
      first with this process's one thread, then with a second (idle) thread. Prints one line:
      syscall_ns=.. (fastest batch) batches_ns=a,b,.. fd_alone_ns=.. fd_shared_ns=..
      Defaults: CPU 0, N 200000, K 5.
";

struct ChurnOpts {
    target: SocketAddr,
    concurrency: usize,
    duration: Duration,
    payload: usize,
    timeout: Duration,
}

struct EchoOpts {
    listen: SocketAddr,
    print_port: bool,
    max_seconds: Option<Duration>,
}

struct DistanceOpts {
    cpus: (usize, usize),
    round_trips: u64,
    batches: usize,
    samples: usize,
    interval: Duration,
    stream: bool,
}

struct SyscallOpts {
    cpu: usize,
    calls: u64,
    batches: usize,
}

enum Cmd {
    Churn(ChurnOpts),
    Echo(EchoOpts),
    Distance(DistanceOpts),
    Syscall(SyscallOpts),
    Help,
}

fn value<'a>(args: &'a [String], i: &mut usize) -> Result<&'a str, String> {
    *i += 1;
    args.get(*i).map(String::as_str).ok_or_else(|| format!("'{}' needs a value", args[*i - 1]))
}

fn num<T: std::str::FromStr>(args: &[String], i: &mut usize) -> Result<T, String> {
    let flag = args[*i].clone();
    let v = value(args, i)?;
    v.parse().map_err(|_| format!("{flag}: '{v}' is not a valid number"))
}

fn secs(args: &[String], i: &mut usize) -> Result<Duration, String> {
    let flag = args[*i].clone();
    let s: f64 = num(args, i)?;
    if !(s.is_finite() && s > 0.0) {
        return Err(format!("{flag}: must be a positive number of seconds"));
    }
    Ok(Duration::from_secs_f64(s))
}

fn addr(args: &[String], i: &mut usize) -> Result<SocketAddr, String> {
    let flag = args[*i].clone();
    let v = value(args, i)?;
    v.parse().map_err(|_| format!("{flag}: '{v}' is not an ip:port address"))
}

fn parse(args: &[String]) -> Result<Cmd, String> {
    let Some(sub) = args.first() else { return Ok(Cmd::Help) };
    let mut i = 1;
    match sub.as_str() {
        "churn" => {
            let mut target = None;
            let mut o = ChurnOpts {
                target: SocketAddr::from(([127, 0, 0, 1], 0)),
                concurrency: 32,
                duration: Duration::from_secs(10),
                payload: 16,
                timeout: Duration::from_secs(5),
            };
            while i < args.len() {
                match args[i].as_str() {
                    "--target" => target = Some(addr(args, &mut i)?),
                    "--concurrency" => o.concurrency = num(args, &mut i)?,
                    "--duration" => o.duration = secs(args, &mut i)?,
                    "--payload" => o.payload = num(args, &mut i)?,
                    "--timeout" => o.timeout = secs(args, &mut i)?,
                    other => return Err(format!("churn: unknown option '{other}'")),
                }
                i += 1;
            }
            o.target = target.ok_or("churn: --target is required")?;
            if o.concurrency == 0 || o.payload == 0 {
                return Err("churn: --concurrency and --payload must be at least 1".into());
            }
            Ok(Cmd::Churn(o))
        }
        "echo-server" => {
            let mut o = EchoOpts { listen: SocketAddr::from(([127, 0, 0, 1], 0)), print_port: false, max_seconds: None };
            while i < args.len() {
                match args[i].as_str() {
                    "--listen" => o.listen = addr(args, &mut i)?,
                    "--print-port" => o.print_port = true,
                    "--max-seconds" => o.max_seconds = Some(secs(args, &mut i)?),
                    other => return Err(format!("echo-server: unknown option '{other}'")),
                }
                i += 1;
            }
            Ok(Cmd::Echo(o))
        }
        "cpu-distance" => {
            let mut o = DistanceOpts { cpus: (0, 1), round_trips: 20_000, batches: 3, samples: 1, interval: Duration::from_millis(500), stream: false };
            while i < args.len() {
                match args[i].as_str() {
                    "--cpus" => {
                        let v = value(args, &mut i)?;
                        let pair = v.split_once(',').and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)));
                        o.cpus = pair.ok_or_else(|| format!("--cpus: '{v}' is not two CPU numbers like 0,1"))?;
                    }
                    "--round-trips" => o.round_trips = num(args, &mut i)?,
                    "--batches" => o.batches = num(args, &mut i)?,
                    "--samples" => o.samples = num(args, &mut i)?,
                    "--interval-ms" => o.interval = Duration::from_millis(num(args, &mut i)?),
                    "--stream" => o.stream = true,
                    other => return Err(format!("cpu-distance: unknown option '{other}'")),
                }
                i += 1;
            }
            if o.cpus.0 == o.cpus.1 {
                return Err("cpu-distance: --cpus needs two different CPUs".into());
            }
            if o.round_trips == 0 || o.batches == 0 || o.samples == 0 {
                return Err("cpu-distance: --round-trips, --batches and --samples must be at least 1".into());
            }
            Ok(Cmd::Distance(o))
        }
        "syscall-cost" => {
            let mut o = SyscallOpts { cpu: 0, calls: 200_000, batches: 5 };
            while i < args.len() {
                match args[i].as_str() {
                    "--cpu" => o.cpu = num(args, &mut i)?,
                    "--calls" => o.calls = num(args, &mut i)?,
                    "--batches" => o.batches = num(args, &mut i)?,
                    other => return Err(format!("syscall-cost: unknown option '{other}'")),
                }
                i += 1;
            }
            if o.calls == 0 || o.batches == 0 {
                return Err("syscall-cost: --calls and --batches must be at least 1".into());
            }
            Ok(Cmd::Syscall(o))
        }
        "-h" | "--help" | "help" => Ok(Cmd::Help),
        other => Err(format!("unknown subcommand '{other}'")),
    }
}

/// What one churn loop counted.
#[derive(Default)]
struct Tally {
    ok: u64,
    errors: u64,
    /// Connect + echo latency of each successful connection, in microseconds.
    lat_us: Vec<u32>,
    first_error: Option<String>,
}

async fn one_conn(target: SocketAddr, payload: &[u8], buf: &mut [u8]) -> std::io::Result<()> {
    let mut s = TcpStream::connect(target).await?;
    s.set_nodelay(true)?;
    s.write_all(payload).await?;
    s.read_exact(buf).await?;
    Ok(())
}

async fn churn_loop(target: SocketAddr, payload: Arc<[u8]>, deadline: Instant, timeout: Duration) -> Tally {
    let mut t = Tally::default();
    let mut buf = vec![0u8; payload.len()];
    while Instant::now() < deadline {
        let start = Instant::now();
        let res = match tokio::time::timeout(timeout, one_conn(target, &payload, &mut buf)).await {
            Ok(Ok(())) if buf[..] == payload[..] => Ok(()),
            Ok(Ok(())) => Err("echo differs from what was sent".to_string()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no echo within {timeout:?}")),
        };
        match res {
            Ok(()) => {
                t.ok += 1;
                t.lat_us.push(start.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
            }
            Err(e) => {
                t.errors += 1;
                t.first_error.get_or_insert(e);
                // A refused or reset connection fails at once: don't spin the CPU the proxy shares.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    t
}

/// The `p`-th percentile (0..=100) of sorted values, nearest rank.
fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn churn(o: ChurnOpts) -> ExitCode {
    let payload: Arc<[u8]> = (0..o.payload).map(|i| b'a' + (i % 26) as u8).collect();
    let start = Instant::now();
    let deadline = start + o.duration;
    let tasks: Vec<_> = (0..o.concurrency).map(|_| tokio::spawn(churn_loop(o.target, payload.clone(), deadline, o.timeout))).collect();
    let mut all = Tally::default();
    for t in tasks {
        match t.await {
            Ok(t) => {
                all.ok += t.ok;
                all.errors += t.errors;
                all.lat_us.extend(t.lat_us);
                if all.first_error.is_none() {
                    all.first_error = t.first_error;
                }
            }
            Err(e) => {
                eprintln!("churn: a loop failed: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    all.lat_us.sort_unstable();
    println!(
        "conns={} errors={} secs={:.3} conns_per_sec={:.1} p50_us={} p99_us={} max_us={}",
        all.ok,
        all.errors,
        secs,
        all.ok as f64 / secs,
        percentile(&all.lat_us, 50.0),
        percentile(&all.lat_us, 99.0),
        all.lat_us.last().copied().unwrap_or(0)
    );
    if let Some(e) = all.first_error {
        eprintln!("churn: first error: {e}");
    }
    if all.ok == 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

async fn echo_conn(mut s: TcpStream) {
    let _ = s.set_nodelay(true);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if s.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn echo_server(o: EchoOpts) -> ExitCode {
    let listener = match TcpListener::bind(o.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("echo-server: cannot listen on {}: {e}", o.listen);
            return ExitCode::FAILURE;
        }
    };
    if o.print_port {
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{port}");
        let _ = out.flush();
    }
    let accept_loop = async {
        loop {
            match listener.accept().await {
                Ok((s, _)) => {
                    tokio::spawn(echo_conn(s));
                }
                Err(e) => {
                    // Out of descriptors or a connection aborted before accept: wait a little, go on.
                    eprintln!("echo-server: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    };
    match o.max_seconds {
        Some(d) => {
            let _ = tokio::time::timeout(d, accept_loop).await;
        }
        None => accept_loop.await,
    }
    ExitCode::SUCCESS
}

/// Pins the calling thread to `cpu`.
fn pin(cpu: usize) -> Result<(), String> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu).map_err(|e| format!("CPU {cpu}: {e}"))?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).map_err(|e| format!("cannot pin to CPU {cpu}: {e}"))
}

/// Spins until `line` holds `want`; false once `give_up` has passed (checked every 4,096 spins).
fn wait_for(line: &AtomicU64, want: u64, give_up: Instant) -> bool {
    let mut spins = 0u32;
    while line.load(Ordering::Acquire) != want {
        std::hint::spin_loop();
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(4096) && Instant::now() > give_up {
            return false;
        }
    }
    true
}

/// Nanoseconds per round trip of a cache line between the two CPUs, one figure per batch. The
/// line carries a counter: the first CPU writes each odd value and waits for the next even one,
/// which the second CPU writes when it has seen the odd one. The calling thread is pinned to the
/// first CPU; a thread pinned to the second lives for this one measurement.
fn round_trips(o: &DistanceOpts) -> Result<Vec<f64>, String> {
    let line = Arc::new(AtomicU64::new(0));
    let total = o.round_trips * o.batches as u64;
    let give_up = Instant::now() + Duration::from_secs(5);
    pin(o.cpus.0)?;
    let peer = {
        let line = line.clone();
        let cpu = o.cpus.1;
        std::thread::spawn(move || -> Result<(), String> {
            pin(cpu)?;
            for i in 0..total {
                if !wait_for(&line, 2 * i + 1, give_up) {
                    return Err(format!("CPU {cpu} did not see the line in 5 s"));
                }
                line.store(2 * i + 2, Ordering::Release);
            }
            Ok(())
        })
    };
    let mut out = Vec::with_capacity(o.batches);
    let mut n = 0u64;
    'batches: for _ in 0..o.batches {
        let t0 = Instant::now();
        for _ in 0..o.round_trips {
            line.store(2 * n + 1, Ordering::Release);
            if !wait_for(&line, 2 * n + 2, give_up) {
                break 'batches;
            }
            n += 1;
        }
        out.push(t0.elapsed().as_nanos() as f64 / o.round_trips as f64);
    }
    // On a timeout the peer gives up by itself at the same deadline.
    peer.join().map_err(|_| "the peer thread panicked".to_string())??;
    if out.len() < o.batches {
        return Err(format!("no round trip between CPUs {} and {} in 5 s", o.cpus.0, o.cpus.1));
    }
    Ok(out)
}

/// One sample per `o.samples`, `o.interval` apart: the fastest of the sample's batches (a batch
/// during which either thread was preempted is slower, never faster).
fn cpu_distance(o: &DistanceOpts) -> Result<Vec<f64>, String> {
    let mut samples = Vec::with_capacity(o.samples);
    for i in 0..o.samples {
        if i > 0 {
            std::thread::sleep(o.interval);
        }
        let fastest = round_trips(o)?.into_iter().fold(f64::INFINITY, f64::min);
        if o.stream {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "sample_ns={fastest:.1}");
            let _ = out.flush();
        }
        samples.push(fastest);
    }
    Ok(samples)
}

/// Nanoseconds per call of `call`, one figure per batch of `o.calls` calls.
fn time_batches(o: &SyscallOpts, mut call: impl FnMut()) -> Vec<f64> {
    (0..o.batches)
        .map(|_| {
            let t0 = Instant::now();
            for _ in 0..o.calls {
                call();
            }
            t0.elapsed().as_nanos() as f64 / o.calls as f64
        })
        .collect()
}

/// The fastest batch's figure.
fn fastest(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

/// Nanoseconds per `getppid` system call, one figure per batch, on the calling thread pinned to
/// `o.cpu`. `getppid` does no work in the kernel beyond reading a field, and the C library does
/// not answer it from a cache, so each call is one entry into the kernel and one exit.
fn syscall_cost(o: &SyscallOpts) -> Result<Vec<f64>, String> {
    pin(o.cpu)?;
    Ok(time_batches(o, || {
        std::hint::black_box(nix::unistd::getppid());
    }))
}

/// Nanoseconds per `fcntl(F_GETFL)` on a pipe, the fastest of `o.batches` batches: first as the
/// calling thread finds the process, then with one more thread (idle, waiting to be told to end)
/// sharing its descriptor table. Called from `main` before anything else starts a thread, the
/// first figure is a one-thread process's: Linux then looks descriptors up without touching the
/// file's reference count, and with a second thread it takes and drops a reference per call.
fn fd_call_cost(o: &SyscallOpts) -> Result<(f64, f64), String> {
    pin(o.cpu)?;
    let (r, _w) = nix::unistd::pipe().map_err(|e| format!("pipe: {e}"))?;
    let getfl = || {
        let _ = std::hint::black_box(nix::fcntl::fcntl(&r, nix::fcntl::FcntlArg::F_GETFL));
    };
    let alone = fastest(&time_batches(o, getfl));
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let second = std::thread::spawn(move || rx.recv());
    let shared = fastest(&time_batches(o, getfl));
    drop(tx);
    let _ = second.join();
    Ok((alone, shared))
}

/// Figures with one decimal, comma-separated.
fn list(v: &[f64]) -> String {
    v.iter().map(|x| format!("{x:.1}")).collect::<Vec<_>>().join(",")
}

/// `cpu-distance`'s line: the median sample, the extremes and every sample (at least one).
fn distance_line(v: &[f64]) -> String {
    let mut sorted = v.to_vec();
    sorted.sort_by(f64::total_cmp);
    let (med, min, max) = (sorted[sorted.len() / 2], sorted[0], sorted[sorted.len() - 1]);
    format!("round_trip_ns={med:.1} min_ns={min:.1} max_ns={max:.1} samples_ns={}", list(v))
}

/// `syscall-cost`'s line: the fastest batch first (what the harness reads), then every batch.
fn syscall_line(v: &[f64]) -> String {
    format!("syscall_ns={:.1} batches_ns={}", fastest(v), list(v))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = match parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sluiced-loadgen: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Cmd::Help = cmd {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    // The two measurements run without the runtime; their line is what the harness parses.
    // `syscall-cost` runs on this thread before any other exists, so that `fd_call_cost`'s first
    // figure is a one-thread process's.
    let measured = match &cmd {
        Cmd::Distance(o) => Some(("cpu-distance", cpu_distance(o).map(|v| distance_line(&v)))),
        Cmd::Syscall(o) => Some((
            "syscall-cost",
            syscall_cost(o)
                .and_then(|v| fd_call_cost(o).map(|(alone, shared)| format!("{} fd_alone_ns={alone:.1} fd_shared_ns={shared:.1}", syscall_line(&v)))),
        )),
        _ => None,
    };
    if let Some((name, result)) = measured {
        return match result {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("sluiced-loadgen: {name}: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sluiced-loadgen: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cmd {
        Cmd::Churn(o) => rt.block_on(churn(o)),
        Cmd::Echo(o) => rt.block_on(echo_server(o)),
        Cmd::Distance(_) | Cmd::Syscall(_) | Cmd::Help => ExitCode::SUCCESS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn percentile_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn churn_options() {
        let Ok(Cmd::Churn(o)) = parse(&args(&["churn", "--target", "127.0.0.1:9", "--concurrency", "4", "--duration", "0.5", "--payload", "3"])) else {
            panic!("churn options rejected")
        };
        assert_eq!((o.target.port(), o.concurrency, o.duration, o.payload), (9, 4, Duration::from_millis(500), 3));
        assert!(parse(&args(&["churn"])).is_err());
        assert!(parse(&args(&["churn", "--target", "x"])).is_err());
        assert!(parse(&args(&["churn", "--target", "127.0.0.1:9", "--payload", "0"])).is_err());
        assert!(parse(&args(&["churn", "--target", "127.0.0.1:9", "--duration", "-1"])).is_err());
    }

    #[test]
    fn cpu_distance_options() {
        let o = ["cpu-distance", "--cpus", "2,5", "--round-trips", "100", "--batches", "3", "--samples", "4", "--interval-ms", "20", "--stream"];
        let Ok(Cmd::Distance(o)) = parse(&args(&o)) else { panic!("cpu-distance options rejected") };
        assert_eq!((o.cpus, o.round_trips, o.batches, o.samples, o.interval, o.stream), ((2, 5), 100, 3, 4, Duration::from_millis(20), true));
        let Ok(Cmd::Distance(d)) = parse(&args(&["cpu-distance"])) else { panic!("defaults rejected") };
        assert_eq!((d.cpus, d.round_trips, d.batches, d.samples, d.stream), ((0, 1), 20_000, 3, 1, false));
        assert!(parse(&args(&["cpu-distance", "--samples", "0"])).is_err());
        assert!(parse(&args(&["cpu-distance", "--cpus", "1,1"])).is_err());
        assert!(parse(&args(&["cpu-distance", "--cpus", "1"])).is_err());
        assert!(parse(&args(&["cpu-distance", "--batches", "0"])).is_err());
    }

    /// The CPUs this process may run on, in order.
    fn allowed_cpus() -> Vec<usize> {
        let allowed = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).unwrap();
        (0..nix::sched::CpuSet::count()).filter(|&c| allowed.is_set(c).unwrap_or(false)).collect()
    }

    #[test]
    fn cpu_distance_takes_one_sample_per_interval_between_two_cpus() {
        // The first two CPUs this process may run on (CI machines have at least two).
        let cpus = allowed_cpus();
        if cpus.len() < 2 {
            eprintln!("skipped: one CPU only");
            return;
        }
        // On its own thread: the measurement pins the calling thread.
        let o = DistanceOpts { cpus: (cpus[0], cpus[1]), round_trips: 2_000, batches: 3, samples: 3, interval: Duration::from_millis(50), stream: false };
        let t0 = Instant::now();
        let v = std::thread::spawn(move || cpu_distance(&o)).join().unwrap().unwrap();
        assert_eq!(v.len(), 3);
        assert!(t0.elapsed() >= Duration::from_millis(100), "the samples were not spaced out");
        // A round trip between two CPUs costs at least a few nanoseconds and, spinning, far less than a millisecond.
        assert!(v.iter().all(|&ns| ns > 1.0 && ns < 1_000_000.0), "{v:?}");
    }

    #[test]
    fn measurement_lines_lead_with_the_figure_the_harness_reads() {
        assert_eq!(distance_line(&[480.0, 70.25, 75.0]), "round_trip_ns=75.0 min_ns=70.2 max_ns=480.0 samples_ns=480.0,70.2,75.0");
        assert_eq!(syscall_line(&[201.6, 199.64, 200.5]), "syscall_ns=199.6 batches_ns=201.6,199.6,200.5");
    }

    #[test]
    fn syscall_cost_options() {
        let Ok(Cmd::Syscall(o)) = parse(&args(&["syscall-cost", "--cpu", "1", "--calls", "1000", "--batches", "2"])) else {
            panic!("syscall-cost options rejected")
        };
        assert_eq!((o.cpu, o.calls, o.batches), (1, 1000, 2));
        let Ok(Cmd::Syscall(d)) = parse(&args(&["syscall-cost"])) else { panic!("defaults rejected") };
        assert_eq!((d.cpu, d.calls, d.batches), (0, 200_000, 5));
        assert!(parse(&args(&["syscall-cost", "--calls", "0"])).is_err());
        assert!(parse(&args(&["syscall-cost", "--batches", "0"])).is_err());
        assert!(parse(&args(&["syscall-cost", "--cpus", "0,1"])).is_err());
    }

    #[test]
    fn syscall_cost_gives_one_figure_per_batch_on_the_cpu_asked_for() {
        // The last CPU allowed: a thread left unpinned is less likely to be found there by chance.
        let cpus = allowed_cpus();
        let cpu = cpus[cpus.len() - 1];
        let o = SyscallOpts { cpu, calls: 10_000, batches: 3 };
        // On its own thread: the measurement pins the calling thread.
        let (v, on) = std::thread::spawn(move || (syscall_cost(&o), nix::sched::sched_getcpu())).join().unwrap();
        let v = v.unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(on.unwrap(), cpu, "the thread was not pinned");
        // A system call's entry and exit cost tens of nanoseconds at least and far less than a
        // millisecond: a sanity range, not a timing assertion.
        assert!(v.iter().all(|&ns| ns > 1.0 && ns < 1_000_000.0), "{v:?}");
        // A CPU the process may not use is refused, not ignored.
        let o = SyscallOpts { cpu: nix::sched::CpuSet::count() - 1, calls: 1, batches: 1 };
        if !cpus.contains(&o.cpu) {
            assert!(std::thread::spawn(move || syscall_cost(&o)).join().unwrap().is_err());
        }
    }

    #[test]
    fn fd_call_cost_gives_a_figure_alone_and_one_shared() {
        let cpus = allowed_cpus();
        let o = SyscallOpts { cpu: cpus[cpus.len() - 1], calls: 10_000, batches: 2 };
        // On its own thread: the measurement pins the calling thread.
        let (alone, shared) = std::thread::spawn(move || fd_call_cost(&o)).join().unwrap().unwrap();
        // Sanity ranges, not timing assertions (the test harness has threads of its own, so here
        // both figures are a shared table's).
        assert!(alone > 1.0 && alone < 1_000_000.0 && shared > 1.0 && shared < 1_000_000.0, "{alone} {shared}");
    }

    #[test]
    fn churn_through_the_echo_server() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let target = listener.local_addr().unwrap();
            tokio::spawn(async move {
                while let Ok((s, _)) = listener.accept().await {
                    tokio::spawn(echo_conn(s));
                }
            });
            let payload: Arc<[u8]> = Arc::from(&b"hello"[..]);
            let t = churn_loop(target, payload, Instant::now() + Duration::from_millis(200), Duration::from_secs(2)).await;
            assert!(t.ok > 0, "no connection completed: {:?}", t.first_error);
            assert_eq!(t.errors, 0, "{:?}", t.first_error);
            assert_eq!(t.lat_us.len() as u64, t.ok);
        });
    }
}
