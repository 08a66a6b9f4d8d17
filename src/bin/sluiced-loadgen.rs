//! Load tool of the L4 benchmark (`bench/l4/`).
//!
//! - `churn`: C concurrent loops of connect -> write N bytes -> read the N bytes echoed -> close, for a
//!   fixed time; reports connections per second, errors and connect+echo latency percentiles.
//! - `echo-server`: the origin of the churn test: echoes what it reads until EOF, then closes.
//!
//! Both run on one thread (tokio's current-thread runtime): the benchmark pins them to one CPU,
//! where one event loop costs less than a thread per connection.
//!
//! Output is one line of `key=value` pairs on stdout, for the harness to parse.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
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

enum Cmd {
    Churn(ChurnOpts),
    Echo(EchoOpts),
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
        Cmd::Help => ExitCode::SUCCESS,
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
