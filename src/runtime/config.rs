//! Configuration of the workers: `nbthread`, `cpu-map`, `tune.*`.

use crate::config::model::Global;
use crate::config::registry::{Doc, GlobalKeyword, GlobalParse, KwArgs};
use crate::config::units::{parse_size, parse_uint};
use crate::doc;

/// The largest thread count and thread number accepted.
pub const MAX_THREADS: u32 = 4096;
/// The largest number of thread groups.
pub const MAX_THREAD_GROUPS: u32 = 32;
/// The largest CPU number accepted in a CPU set.
pub const MAX_CPU: u32 = 4095;
/// `tune.bufsize` when not set.
pub const DEFAULT_BUFSIZE: u64 = 16384;
/// `tune.maxrewrite` when not set.
pub const DEFAULT_MAXREWRITE: u64 = 1024;

/// A set of threads or thread groups as `cpu-map` writes them: `all`, `odd`, `even`, or numbers and
/// ranges (`1`, `1-4`, `1,3-5`), 1-based.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ThreadSet {
    All,
    Odd,
    Even,
    /// Inclusive ranges.
    Ranges(Vec<(u32, u32)>),
}

impl ThreadSet {
    /// How many members the set names, when it names them explicitly.
    pub fn explicit_len(&self) -> Option<u32> {
        match self {
            ThreadSet::Ranges(r) => Some(count(r)),
            _ => None,
        }
    }
}

/// Members of inclusive ranges, saturating: a line may repeat ranges without bound.
fn count(ranges: &[(u32, u32)]) -> u32 {
    ranges.iter().fold(0u32, |acc, (lo, hi)| acc.saturating_add(hi.saturating_sub(*lo).saturating_add(1)))
}

/// One `cpu-map [auto:]<group>[/<threads>] <cpus>...` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuMap {
    /// `auto:`: members of the thread set are bound one-to-one to the CPUs, in order.
    pub auto: bool,
    /// The part before `/`: thread groups when threads follow, else threads (or group 1's threads).
    pub first: ThreadSet,
    /// The part after `/`.
    pub threads: Option<ThreadSet>,
    /// CPU numbers (0-based), as inclusive ranges in the order written.
    pub cpus: Vec<(u32, u32)>,
}

/// The I/O backend the workers use. A sluiced extension (`io-backend`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IoBackend {
    /// io_uring when the kernel offers it, else epoll.
    #[default]
    Auto,
    Uring,
    Epoll,
}

/// How body writes on io_uring use zero-copy sends (`tune.uring.send-zc`). A sluiced extension.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SendZc {
    /// Plain sends only.
    #[default]
    Off,
    /// Zero-copy sends for large body writes, until the kernel reports that it copied a
    /// connection's bytes anyway; that connection then sends plainly.
    Auto,
    /// Zero-copy sends for large body writes, whatever the kernel reports.
    Always,
}

/// `tune.*` values; `None` is the built-in default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tune {
    /// Size of a stream buffer; a request or response head must fit in it.
    pub bufsize: Option<u64>,
    /// Part of the buffer kept free for header rewrites.
    pub maxrewrite: Option<u64>,
    pub http_maxhdr: Option<u32>,
    /// zlib level of HTTP compression (HAProxy's default: 1).
    pub comp_maxlevel: Option<u32>,
    /// `maxcomprate` (kB/s), `maxcompcpuusage` (%), `maxzlibmem` (MB): parsed only.
    pub maxcomprate: Option<u32>,
    pub maxcompcpuusage: Option<u32>,
    pub maxzlibmem: Option<u32>,
    /// Connections accepted at once per listener wake-up; `-1` is unlimited.
    pub maxaccept: Option<i32>,
    pub maxpollevents: Option<u32>,
    pub pipesize: Option<u64>,
    pub rcvbuf_client: Option<u64>,
    pub rcvbuf_server: Option<u64>,
    pub sndbuf_client: Option<u64>,
    pub sndbuf_server: Option<u64>,
    /// Whether idle server connections are shared between threads.
    pub idle_pool_shared: Option<bool>,
    /// Bytes below which a read is considered too small to be worth waking the stream.
    pub recv_enough: Option<u64>,
    /// Tasks run per scheduler pass.
    pub runqueue_depth: Option<u32>,
    /// Zero-copy sends for body writes on io_uring.
    pub uring_send_zc: Option<SendZc>,
    /// The smallest body write sent zero-copy.
    pub uring_send_zc_min: Option<u64>,
}

impl Tune {
    pub fn bufsize(&self) -> u64 {
        self.bufsize.unwrap_or(DEFAULT_BUFSIZE)
    }
    pub fn maxrewrite(&self) -> u64 {
        self.maxrewrite.unwrap_or(DEFAULT_MAXREWRITE)
    }
    pub fn uring_send_zc(&self) -> SendZc {
        self.uring_send_zc.unwrap_or_default()
    }
    pub fn uring_send_zc_min(&self) -> usize {
        self.uring_send_zc_min.map_or(super::uring::DEFAULT_SEND_ZC_MIN, |n| n as usize)
    }
}

/// The `global` section's worker settings.
#[derive(Clone, Debug, Default)]
pub struct GlobalRuntime {
    pub nbthread: Option<u32>,
    pub thread_groups: Option<u32>,
    pub cpu_maps: Vec<CpuMap>,
    pub tune: Tune,
    pub noepoll: bool,
    pub nopoll: bool,
    pub nosplice: bool,
    pub noreuseport: bool,
    pub nogetaddrinfo: bool,
    pub busy_polling: bool,
    pub io_backend: IoBackend,
}

fn one<'a>(a: &KwArgs<'a>, what: &str) -> Result<&'a str, String> {
    let v = a.need(0, what)?;
    a.at_most(1)?;
    Ok(v)
}

fn gkw(name: &'static str, parse: GlobalParse, doc: Doc) -> GlobalKeyword {
    GlobalKeyword { name, negatable: false, parse, doc }
}

/// A number in `lo..=hi`, named after the keyword in errors.
fn ranged(a: &KwArgs<'_>, lo: u32, hi: u32) -> Result<u32, String> {
    let v = one(a, "value")?;
    match v.parse::<u32>() {
        Ok(n) if (lo..=hi).contains(&n) => Ok(n),
        _ => Err(format!("'{}' expects an integer between {lo} and {hi}, got '{v}'", a.keyword)),
    }
}

/// A size that fits a socket option or a buffer length (at most 2^31-1 bytes), not zero.
fn size(a: &KwArgs<'_>) -> Result<u64, String> {
    let v = one(a, "size")?;
    let n = parse_size(v)?;
    if n == 0 || n > i32::MAX as u64 {
        return Err(format!("'{}' expects a size between 1 and 2147483647 bytes, got '{v}'", a.keyword));
    }
    Ok(n)
}

/// Parses `1`, `1-4`, `1,3-5`; every number in `lo..=hi`.
fn parse_ranges(s: &str, lo: u32, hi: u32, what: &str) -> Result<Vec<(u32, u32)>, String> {
    let bad = || format!("invalid {what} '{s}'");
    let mut out = Vec::new();
    for part in s.split(',') {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<u32>().map_err(|_| bad())?, b.parse::<u32>().map_err(|_| bad())?),
            None => {
                let n = part.parse::<u32>().map_err(|_| bad())?;
                (n, n)
            }
        };
        if a > b || a < lo || b > hi {
            return Err(format!("{what} '{part}' out of range ({lo}-{hi})"));
        }
        out.push((a, b));
    }
    Ok(out)
}

fn parse_thread_set(s: &str, max: u32, what: &str) -> Result<ThreadSet, String> {
    Ok(match s {
        "all" => ThreadSet::All,
        "odd" => ThreadSet::Odd,
        "even" => ThreadSet::Even,
        _ => ThreadSet::Ranges(parse_ranges(s, 1, max, what)?),
    })
}

/// Parses the words after `cpu-map`.
pub fn parse_cpu_map(words: &[&str]) -> Result<CpuMap, String> {
    let spec = *words.first().ok_or("expects [auto:]<thread-group>[/<thread-set>] <cpu-set>...")?;
    let (auto, spec) = match spec.strip_prefix("auto:") {
        Some(rest) => (true, rest),
        None => (false, spec),
    };
    let (first, threads) = match spec.split_once('/') {
        Some((g, t)) => (parse_thread_set(g, MAX_THREAD_GROUPS, "thread group set")?, Some(parse_thread_set(t, MAX_THREADS, "thread set")?)),
        None => (parse_thread_set(spec, MAX_THREADS, "thread set")?, None),
    };
    if words.len() < 2 {
        return Err("missing CPU set".into());
    }
    let mut cpus = Vec::new();
    for w in &words[1..] {
        cpus.extend(parse_ranges(w, 0, MAX_CPU, "CPU set")?);
    }
    if auto {
        // The one side given as a list is bound member by member to the CPUs, in order.
        let (groups, thread_side) = match &threads {
            Some(t) => (first.explicit_len(), t.explicit_len()),
            None => (None, first.explicit_len()),
        };
        let many = |n: Option<u32>| n.filter(|n| *n > 1);
        if many(groups).is_some() && many(thread_side).is_some() {
            return Err("with 'auto:', only one of the thread group set and the thread set may be a range".into());
        }
        let n_cpus = count(&cpus);
        if let Some(n) = many(groups).or(many(thread_side))
            && n_cpus > 1
            && n != n_cpus
        {
            return Err(format!("with 'auto:', the {n} threads or groups need as many CPUs, got {n_cpus}"));
        }
    }
    Ok(CpuMap { auto, first, threads, cpus })
}

/// Checks `tune.bufsize` against `tune.maxrewrite` once both are set.
fn check_rewrite(g: &Global) -> Result<(), String> {
    if let (Some(buf), Some(rw)) = (g.runtime.tune.bufsize, g.runtime.tune.maxrewrite)
        && rw >= buf
    {
        return Err(format!("tune.maxrewrite ({rw}) must be smaller than tune.bufsize ({buf})"));
    }
    Ok(())
}

macro_rules! flag {
    ($name:literal, $field:ident, $desc:literal) => {
        gkw(
            $name,
            |a, g| {
                a.at_most(0)?;
                g.runtime.$field = true;
                Ok(())
            },
            doc!(Parsed, $name, $desc, $name),
        )
    };
}

macro_rules! tune_size {
    ($name:literal, $field:ident, $desc:literal, $example:literal) => {
        gkw(
            $name,
            |a, g| {
                g.runtime.tune.$field = Some(size(a)?);
                Ok(())
            },
            doc!(Parsed, concat!($name, " <size>"), $desc, $example),
        )
    };
}

pub fn global_keywords() -> Vec<GlobalKeyword> {
    vec![
        gkw(
            "nbthread",
            |a, g| {
                let n = ranged(a, 1, MAX_THREADS)?;
                if let Some(tg) = g.runtime.thread_groups.filter(|tg| *tg > n) {
                    return Err(format!("nbthread ({n}) is lower than thread-groups ({tg})"));
                }
                g.runtime.nbthread = Some(n);
                Ok(())
            },
            doc!(Parsed, "nbthread <n>", "Number of worker threads (default: one per CPU available).", "nbthread 8"),
        ),
        gkw(
            "thread-groups",
            |a, g| {
                let n = ranged(a, 1, MAX_THREAD_GROUPS)?;
                if let Some(nb) = g.runtime.nbthread.filter(|nb| *nb < n) {
                    return Err(format!("thread-groups ({n}) is higher than nbthread ({nb})"));
                }
                g.runtime.thread_groups = Some(n);
                Ok(())
            },
            doc!(Parsed, "thread-groups <n>", "Number of thread groups threads are spread over.", "thread-groups 2"),
        ),
        gkw(
            "cpu-map",
            |a, g| {
                let words: Vec<&str> = a.args().iter().map(|w| w.text.as_str()).collect();
                g.runtime.cpu_maps.push(parse_cpu_map(&words)?);
                Ok(())
            },
            doc!(
                Parsed,
                "cpu-map [auto:]<thread-group>[/<thread-set>] <cpu-set>...",
                "Binds threads to CPUs; sets are numbers, ranges, 'all', 'odd' or 'even'.",
                "cpu-map auto:1/1-4 0-3"
            ),
        ),
        gkw(
            "tune.bufsize",
            |a, g| {
                let n = size(a)?;
                if n < 1024 {
                    return Err(format!("tune.bufsize must be at least 1024, got {n}"));
                }
                g.runtime.tune.bufsize = Some(n);
                check_rewrite(g)
            },
            doc!(Parsed, "tune.bufsize <size>", "Size of each stream buffer (default 16k); request and response heads must fit.", "tune.bufsize 32768"),
        ),
        gkw(
            "tune.maxrewrite",
            |a, g| {
                let v = one(a, "size")?;
                g.runtime.tune.maxrewrite = Some(parse_size(v)?);
                check_rewrite(g)
            },
            doc!(Parsed, "tune.maxrewrite <size>", "Buffer space kept free for header rewrites (default 1024); below tune.bufsize.", "tune.maxrewrite 2048"),
        ),
        gkw(
            "tune.http.maxhdr",
            |a, g| {
                g.runtime.tune.http_maxhdr = Some(ranged(a, 1, 32767)?);
                Ok(())
            },
            doc!(Parsed, "tune.http.maxhdr <n>", "Maximum number of headers in a request or response (default 101).", "tune.http.maxhdr 200"),
        ),
        gkw(
            "tune.comp.maxlevel",
            |a, g| {
                g.runtime.tune.comp_maxlevel = Some(ranged(a, 1, 9)?);
                Ok(())
            },
            doc!(
                Parsed,
                "tune.comp.maxlevel <1..9>",
                "zlib level of HTTP response compression (default 1): higher compresses more for more CPU.",
                "tune.comp.maxlevel 6"
            ),
        ),
        gkw(
            "maxcomprate",
            |a, g| {
                g.runtime.tune.maxcomprate = Some(ranged(a, 0, u32::MAX)?);
                Ok(())
            },
            doc!(Parsed, "maxcomprate <kB/s>", "Input rate above which HTTP compression lowers its level, then stops (0 = no limit).", "maxcomprate 10000"),
        ),
        gkw(
            "maxcompcpuusage",
            |a, g| {
                g.runtime.tune.maxcompcpuusage = Some(ranged(a, 0, 100)?);
                Ok(())
            },
            doc!(
                Parsed,
                "maxcompcpuusage <percent>",
                "CPU use above which HTTP compression lowers its level, then stops for new responses.",
                "maxcompcpuusage 80"
            ),
        ),
        gkw(
            "maxzlibmem",
            |a, g| {
                g.runtime.tune.maxzlibmem = Some(ranged(a, 0, u32::MAX)?);
                Ok(())
            },
            doc!(Parsed, "maxzlibmem <MB>", "Memory the compressor may use; beyond it responses pass uncompressed (0 = no limit).", "maxzlibmem 64"),
        ),
        gkw(
            "tune.maxaccept",
            |a, g| {
                let v = one(a, "count")?;
                g.runtime.tune.maxaccept = Some(match v.parse::<i32>() {
                    Ok(n) if n >= -1 => n,
                    _ => return Err(format!("'tune.maxaccept' expects -1 or a non-negative integer, got '{v}'")),
                });
                Ok(())
            },
            doc!(Parsed, "tune.maxaccept <n>", "Connections accepted per listener wake-up (-1 unlimited).", "tune.maxaccept 64"),
        ),
        gkw(
            "tune.maxpollevents",
            |a, g| {
                g.runtime.tune.maxpollevents = Some(ranged(a, 1, u32::MAX)?);
                Ok(())
            },
            doc!(Parsed, "tune.maxpollevents <n>", "Events processed per poller call.", "tune.maxpollevents 200"),
        ),
        tune_size!(
            "tune.pipesize",
            pipesize,
            "Size of the kernel pipes used for splicing. Unset, a pipe starts at the kernel's default and grows to 256 KiB the first time one splice moves at least half its capacity (a bulk transfer); set, every pipe has this size.",
            "tune.pipesize 262144"
        ),
        tune_size!(
            "tune.rcvbuf.client",
            rcvbuf_client,
            "Kernel receive buffer (SO_RCVBUF) of client sockets: set on the TCP listeners, whose connections inherit it. Linux doubles it and caps it at net.core.rmem_max; unset, the kernel tunes it.",
            "tune.rcvbuf.client 65536"
        ),
        tune_size!(
            "tune.rcvbuf.server",
            rcvbuf_server,
            "Kernel receive buffer (SO_RCVBUF) of server sockets, set before they connect. Linux doubles it and caps it at net.core.rmem_max; unset, the kernel tunes it.",
            "tune.rcvbuf.server 65536"
        ),
        tune_size!(
            "tune.sndbuf.client",
            sndbuf_client,
            "Kernel send buffer (SO_SNDBUF) of client sockets: set on the TCP listeners, whose connections inherit it. Linux doubles it and caps it at net.core.wmem_max; unset, the kernel tunes it.",
            "tune.sndbuf.client 65536"
        ),
        tune_size!(
            "tune.sndbuf.server",
            sndbuf_server,
            "Kernel send buffer (SO_SNDBUF) of server sockets, set before they connect. Linux doubles it and caps it at net.core.wmem_max; unset, the kernel tunes it.",
            "tune.sndbuf.server 65536"
        ),
        tune_size!("tune.recv_enough", recv_enough, "Read size below which more data is awaited before waking the stream.", "tune.recv_enough 10k"),
        gkw(
            "tune.idle-pool.shared",
            |a, g| {
                g.runtime.tune.idle_pool_shared = Some(match one(a, "'on' or 'off'")? {
                    "on" => true,
                    "off" => false,
                    other => return Err(format!("expects 'on' or 'off', got '{other}'")),
                });
                Ok(())
            },
            doc!(
                Parsed,
                "tune.idle-pool.shared on|off",
                "Whether threads may reuse each other's idle server connections (default on).",
                "tune.idle-pool.shared off"
            ),
        ),
        gkw(
            "tune.runqueue-depth",
            |a, g| {
                g.runtime.tune.runqueue_depth = Some(parse_uint(one(a, "depth")?, "tune.runqueue-depth", u32::MAX.into())? as u32);
                Ok(())
            },
            doc!(Parsed, "tune.runqueue-depth <n>", "Tasks run per scheduler pass before polling again.", "tune.runqueue-depth 200"),
        ),
        flag!("noepoll", noepoll, "Does not use epoll."),
        flag!("nopoll", nopoll, "Does not use poll."),
        flag!("nosplice", nosplice, "Never uses kernel splicing."),
        flag!("noreuseport", noreuseport, "Does not set SO_REUSEPORT on listeners."),
        flag!("nogetaddrinfo", nogetaddrinfo, "Resolves names with gethostbyname instead of getaddrinfo."),
        flag!("busy-polling", busy_polling, "Polls without sleeping, trading CPU for latency."),
        gkw(
            "io-backend",
            |a, g| {
                g.runtime.io_backend = match one(a, "'auto', 'uring' or 'epoll'")? {
                    "auto" => IoBackend::Auto,
                    "uring" => IoBackend::Uring,
                    "epoll" => IoBackend::Epoll,
                    other => return Err(format!("expects 'auto', 'uring' or 'epoll', got '{other}'")),
                };
                Ok(())
            },
            doc!(
                Implemented,
                "io-backend auto|uring|epoll",
                "sluiced extension: the workers' I/O backend; auto (the default) uses io_uring when a ring can be created with the operations needed, else epoll with one notice saying why; uring refuses to start without it. The command line's --io-backend overrides it.",
                "io-backend epoll"
            ),
        ),
        gkw(
            "tune.uring.send-zc",
            |a, g| {
                g.runtime.tune.uring_send_zc = Some(match one(a, "'off', 'auto' or 'always'")? {
                    "off" => SendZc::Off,
                    "auto" => SendZc::Auto,
                    "always" => SendZc::Always,
                    other => return Err(format!("expects 'off', 'auto' or 'always', got '{other}'")),
                });
                Ok(())
            },
            doc!(
                Implemented,
                "tune.uring.send-zc off|auto|always",
                "sluiced extension: on the io_uring backend, HTTP body writes of at least tune.uring.send-zc-min bytes go out as zero-copy sends (IORING_OP_SEND_ZC, Linux 6.0): the kernel sends from the buffer's pages instead of copying them. off (the default) never does; auto stops on a connection once the kernel reports it copied that connection's bytes anyway (loopback, veth, devices without scatter-gather); always ignores the report. No effect on epoll.",
                "tune.uring.send-zc auto"
            ),
        ),
        gkw(
            "tune.uring.send-zc-min",
            |a, g| {
                g.runtime.tune.uring_send_zc_min = Some(size(a)?);
                Ok(())
            },
            doc!(
                Implemented,
                "tune.uring.send-zc-min <size>",
                "sluiced extension: the smallest body write sent zero-copy under tune.uring.send-zc (default 16k).",
                "tune.uring.send-zc-min 32k"
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::{load, one_alert};

    fn runtime(body: &str) -> GlobalRuntime {
        let l = load(&format!("global\n{body}"));
        let alerts: Vec<String> = l.diags.alerts().map(|d| d.to_string()).collect();
        l.config.unwrap_or_else(|| panic!("config rejected: {alerts:?}")).global.runtime
    }

    #[test]
    fn nbthread_and_thread_groups() {
        let r = runtime("    nbthread 8\n    thread-groups 2\n");
        assert_eq!((r.nbthread, r.thread_groups), (Some(8), Some(2)));
    }

    #[test]
    fn nbthread_out_of_range_is_an_error_on_its_line() {
        let (line, kw, msg) = one_alert("global\n    nbthread 0\n");
        assert_eq!((line, kw.as_str()), (2, "nbthread"));
        assert!(msg.contains("between 1 and 4096"), "{msg}");
        assert!(one_alert("global\n    nbthread 4097\n").2.contains("between 1 and 4096"));
    }

    #[test]
    fn more_thread_groups_than_threads_is_an_error() {
        assert!(one_alert("global\n    nbthread 2\n    thread-groups 4\n").2.contains("higher than nbthread"));
    }

    #[test]
    fn cpu_map_auto_group_and_threads() {
        let r = runtime("    cpu-map auto:1/1-4 0-3\n");
        assert_eq!(
            r.cpu_maps,
            vec![CpuMap { auto: true, first: ThreadSet::Ranges(vec![(1, 1)]), threads: Some(ThreadSet::Ranges(vec![(1, 4)])), cpus: vec![(0, 3)] }]
        );
    }

    #[test]
    fn cpu_map_named_sets_and_several_cpu_words() {
        let r = runtime("    cpu-map 1/all 0-3 8-11\n    cpu-map odd 1,3\n    cpu-map even 0\n");
        assert_eq!(r.cpu_maps[0].threads, Some(ThreadSet::All));
        assert_eq!(r.cpu_maps[0].cpus, vec![(0, 3), (8, 11)]);
        assert_eq!(r.cpu_maps[1].first, ThreadSet::Odd);
        assert_eq!(r.cpu_maps[1].cpus, vec![(1, 1), (3, 3)]);
        assert_eq!(r.cpu_maps[2].first, ThreadSet::Even);
    }

    #[test]
    fn cpu_map_auto_with_mismatched_sizes_is_an_error() {
        let (line, kw, msg) = one_alert("global\n    cpu-map auto:1/1-4 0-2\n");
        assert_eq!((line, kw.as_str()), (2, "cpu-map"));
        assert!(msg.contains("need as many CPUs"), "{msg}");
    }

    #[test]
    fn cpu_map_with_huge_repeated_ranges_does_not_panic() {
        let cpus = vec!["0-4095"; 2000].join(",");
        let threads = vec!["1-4096"; 2000].join(",");
        let _ = load(&format!("global\n    cpu-map auto:{threads} {cpus}\n"));
        let _ = load(&format!("global\n    cpu-map auto:{threads} 0-1\n"));
    }

    #[test]
    fn cpu_map_bad_sets_are_errors() {
        assert!(one_alert("global\n    cpu-map 1\n").2.contains("missing CPU set"));
        assert!(one_alert("global\n    cpu-map 0 1\n").2.contains("out of range"));
        assert!(one_alert("global\n    cpu-map 1 3-1\n").2.contains("out of range"));
        assert!(one_alert("global\n    cpu-map 1 x\n").2.contains("invalid CPU set"));
    }

    #[test]
    fn tune_sizes_take_units() {
        let r = runtime(
            "    tune.bufsize 32k\n    tune.maxrewrite 2048\n    tune.pipesize 256k\n    tune.rcvbuf.client 64k\n    tune.sndbuf.server 128k\n    tune.recv_enough 10k\n",
        );
        assert_eq!(r.tune.bufsize, Some(32768));
        assert_eq!(r.tune.maxrewrite(), 2048);
        assert_eq!(r.tune.pipesize, Some(262144));
        assert_eq!(r.tune.rcvbuf_client, Some(65536));
        assert_eq!(r.tune.sndbuf_server, Some(131072));
        assert_eq!(r.tune.recv_enough, Some(10240));
    }

    #[test]
    fn maxrewrite_not_below_bufsize_is_an_error_whichever_comes_first() {
        let (line, kw, msg) = one_alert("global\n    tune.bufsize 4096\n    tune.maxrewrite 4096\n");
        assert_eq!((line, kw.as_str()), (3, "tune.maxrewrite"));
        assert!(msg.contains("must be smaller than tune.bufsize"), "{msg}");
        let (line, kw, _) = one_alert("global\n    tune.maxrewrite 8192\n    tune.bufsize 4096\n");
        assert_eq!((line, kw.as_str()), (3, "tune.bufsize"));
    }

    #[test]
    fn tune_counts_and_switches() {
        let r =
            runtime("    tune.http.maxhdr 200\n    tune.maxaccept -1\n    tune.maxpollevents 100\n    tune.idle-pool.shared off\n    tune.runqueue-depth 50\n");
        assert_eq!(r.tune.http_maxhdr, Some(200));
        assert_eq!(r.tune.maxaccept, Some(-1));
        assert_eq!(r.tune.maxpollevents, Some(100));
        assert_eq!(r.tune.idle_pool_shared, Some(false));
        assert_eq!(r.tune.runqueue_depth, Some(50));
    }

    #[test]
    fn bad_tune_values_are_errors() {
        assert!(one_alert("global\n    tune.http.maxhdr 40000\n").2.contains("between 1 and 32767"));
        assert!(one_alert("global\n    tune.bufsize 512\n").2.contains("at least 1024"));
        assert!(one_alert("global\n    tune.idle-pool.shared yes\n").2.contains("'on' or 'off'"));
        assert!(one_alert("global\n    tune.maxaccept -2\n").2.contains("-1 or a non-negative"));
        assert!(one_alert("global\n    tune.sndbuf.client 0\n").2.contains("between 1 and"));
    }

    #[test]
    fn poller_and_socket_switches() {
        let r = runtime("    noepoll\n    nopoll\n    nosplice\n    noreuseport\n    nogetaddrinfo\n    busy-polling\n");
        assert!(r.noepoll && r.nopoll && r.nosplice && r.noreuseport && r.nogetaddrinfo && r.busy_polling);
    }

    #[test]
    fn io_backend_defaults_to_auto_and_can_be_chosen() {
        assert_eq!(runtime("    daemon\n").io_backend, IoBackend::Auto);
        assert_eq!(runtime("    io-backend epoll\n").io_backend, IoBackend::Epoll);
        assert_eq!(runtime("    io-backend uring\n").io_backend, IoBackend::Uring);
        assert!(one_alert("global\n    io-backend kqueue\n").2.contains("'auto', 'uring' or 'epoll'"));
    }

    #[test]
    fn uring_send_zc_defaults_to_off_at_16k_and_can_be_chosen() {
        let t = runtime("    daemon\n").tune;
        assert_eq!((t.uring_send_zc(), t.uring_send_zc_min()), (SendZc::Off, 16 * 1024));
        let t = runtime("    tune.uring.send-zc auto\n    tune.uring.send-zc-min 64k\n").tune;
        assert_eq!((t.uring_send_zc(), t.uring_send_zc_min()), (SendZc::Auto, 64 * 1024));
        assert_eq!(runtime("    tune.uring.send-zc always\n").tune.uring_send_zc(), SendZc::Always);
        assert!(one_alert("global\n    tune.uring.send-zc yes\n").2.contains("'off', 'auto' or 'always'"));
        assert!(one_alert("global\n    tune.uring.send-zc-min 0\n").2.contains("tune.uring.send-zc-min"));
    }

    #[test]
    fn global_keyword_examples_parse() {
        for k in global_keywords() {
            let l = load(&format!("global\n    {}\n", k.doc.example));
            assert!(l.config.is_some(), "example of '{}' rejected: {:?}", k.name, l.diags.items);
        }
    }
}

impl ThreadSet {
    /// True when 1-based `n` is in the set.
    pub fn contains(&self, n: u32) -> bool {
        match self {
            ThreadSet::All => true,
            ThreadSet::Odd => n % 2 == 1,
            ThreadSet::Even => n.is_multiple_of(2),
            ThreadSet::Ranges(r) => r.iter().any(|&(lo, hi)| (lo..=hi).contains(&n)),
        }
    }

    /// 1-based position of `n` among the set's members (for `auto:` one-to-one binding).
    fn position(&self, n: u32) -> Option<u32> {
        self.contains(n).then(|| (1..=n).filter(|&k| self.contains(k)).count() as u32)
    }
}

/// How many worker threads run: `nbthread`, or one per available CPU.
pub fn thread_count(rt: &GlobalRuntime) -> u32 {
    rt.nbthread.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32))
}

/// The CPUs each worker thread is pinned to, by `cpu-map` (index 0 is thread 1). Without a
/// `cpu-map` line naming a thread, the thread is pinned to CPU `(thread - 1) % CPUs`, one worker per
/// CPU as the design asks. Only thread group 1 exists: `1/<threads>` names threads of group 1.
pub fn worker_cpus(rt: &GlobalRuntime) -> Vec<Option<Vec<usize>>> {
    let n = thread_count(rt);
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    (1..=n)
        .map(|t| {
            for m in rt.cpu_maps.iter().rev() {
                let set = m.threads.as_ref().unwrap_or(&m.first);
                if m.threads.is_some() && !m.first.contains(1) {
                    continue;
                }
                let cpus: Vec<usize> = m.cpus.iter().flat_map(|&(lo, hi)| lo as usize..=hi as usize).collect();
                if m.auto {
                    if let Some(pos) = set.position(t) {
                        return cpus.get(pos as usize - 1).map(|c| vec![*c]);
                    }
                } else if set.contains(t) {
                    return Some(cpus);
                }
            }
            Some(vec![(t as usize - 1) % ncpu])
        })
        .collect()
}

#[cfg(test)]
mod cpu_map_tests {
    use super::*;
    use crate::config::testing::load;

    fn cpus(global: &str) -> Vec<Option<Vec<usize>>> {
        worker_cpus(&load(&format!("global\n{global}\n")).config.expect("config").global.runtime)
    }

    #[test]
    fn auto_binds_threads_to_cpus_one_to_one() {
        assert_eq!(cpus("nbthread 2\ncpu-map auto:1/1-2 0-1"), vec![Some(vec![0]), Some(vec![1])]);
        assert_eq!(cpus("nbthread 2\ncpu-map auto:1-2 1 0"), vec![Some(vec![1]), Some(vec![0])]);
    }

    #[test]
    fn a_plain_map_binds_each_thread_to_the_whole_cpu_set() {
        assert_eq!(cpus("nbthread 2\ncpu-map 1-2 0-1"), vec![Some(vec![0, 1]), Some(vec![0, 1])]);
        // Thread 2 is mapped to CPU 0; thread 1 keeps its default, CPU 0.
        assert_eq!(cpus("nbthread 2\ncpu-map 2 1"), vec![Some(vec![0]), Some(vec![1])]);
        assert_eq!(cpus("nbthread 2\ncpu-map 2 0"), vec![Some(vec![0]), Some(vec![0])]);
    }
}
