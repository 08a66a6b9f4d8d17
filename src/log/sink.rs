//! Log sinks and syslog framing.
//!
//! Dates are written in UTC: HAProxy writes local time, but reading the local time zone needs
//! libc's `localtime_r` (unsafe here) or a time-zone crate; on servers running in UTC, as most
//! containers do, the output is the same.

use std::io::Write;
use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::time::{SystemTime, UNIX_EPOCH};

use super::config::{Facility, Level, LogLineFormat, LogTarget};
use crate::config::addr::{AddrKind, Host, PortSpec};

/// Lines queued for standard output or error before new ones are dropped.
const STDIO_QUEUE: usize = 4096;

/// Where framed lines go.
#[derive(Debug)]
pub enum Sink {
    /// A connected, non-blocking UDP socket.
    Udp(UdpSocket),
    /// A non-blocking unix datagram socket and the path it sends to.
    Unix(UnixDatagram, std::path::PathBuf),
    /// A queue to the thread writing standard output (1) or error (2).
    Stdio(SyncSender<Vec<u8>>),
}

impl Sink {
    pub fn open(t: &LogTarget) -> Result<Arc<Sink>, String> {
        Ok(Arc::new(match t {
            LogTarget::Udp(a) => {
                let AddrKind::Inet { host, port, .. } = &a.kind else { return Err(format!("'{}' is not an inet address", a.text)) };
                let ip = match host {
                    Host::Ip(ip) => *ip,
                    Host::Name(n) => {
                        use std::net::ToSocketAddrs;
                        (n.as_str(), 0).to_socket_addrs().map_err(|e| format!("{n}: {e}"))?.next().ok_or_else(|| format!("{n}: no address"))?.ip()
                    }
                    Host::Wildcard => return Err(format!("'{}': a log target needs an address", a.text)),
                };
                let port = match port {
                    PortSpec::Fixed(p) => *p,
                    _ => super::config::DEFAULT_SYSLOG_PORT,
                };
                let dst = std::net::SocketAddr::new(ip, port);
                let bind: std::net::SocketAddr = if ip.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() };
                let s = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
                s.connect(dst).map_err(|e| e.to_string())?;
                s.set_nonblocking(true).map_err(|e| e.to_string())?;
                Sink::Udp(s)
            }
            LogTarget::Unix(p) => {
                let s = UnixDatagram::unbound().map_err(|e| e.to_string())?;
                s.set_nonblocking(true).map_err(|e| e.to_string())?;
                Sink::Unix(s, p.clone())
            }
            LogTarget::Stdout | LogTarget::Fd(1) => Sink::Stdio(stdio(1)),
            LogTarget::Stderr | LogTarget::Fd(2) => Sink::Stdio(stdio(2)),
            LogTarget::Fd(n) => return Err(format!("fd@{n}: only fd@1 and fd@2 are supported")),
            LogTarget::Tcp(_) => return Err("syslog over TCP is not supported yet".into()),
            LogTarget::Ring(n) => return Err(format!("ring@{n}: ring sections are not supported yet")),
        }))
    }

    /// Sends one framed line; never waits. A line the sink cannot take now is dropped and counted.
    pub fn send(&self, line: &[u8]) {
        let ok = match self {
            Sink::Udp(s) => s.send(line).is_ok(),
            Sink::Unix(s, p) => s.send_to(line, p).is_ok(),
            Sink::Stdio(tx) => match tx.try_send(line.to_vec()) {
                Ok(()) => true,
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
            },
        };
        if ok {
            super::SENT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        } else {
            super::dropped();
        }
    }
}

/// One writer thread per standard stream, shared by every sink writing to it.
fn stdio(fd: i32) -> SyncSender<Vec<u8>> {
    static OUT: std::sync::OnceLock<SyncSender<Vec<u8>>> = std::sync::OnceLock::new();
    static ERR: std::sync::OnceLock<SyncSender<Vec<u8>>> = std::sync::OnceLock::new();
    let cell = if fd == 1 { &OUT } else { &ERR };
    cell.get_or_init(|| {
        let (tx, rx) = sync_channel::<Vec<u8>>(STDIO_QUEUE);
        let _ = std::thread::Builder::new().name(format!("log-fd{fd}")).spawn(move || {
            for line in rx {
                let r = if fd == 1 { std::io::stdout().lock().write_all(&line) } else { std::io::stderr().lock().write_all(&line) };
                if r.is_err() {
                    super::dropped();
                }
            }
        });
        tx
    })
    .clone()
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// A broken-down UTC date.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tm {
    pub year: i64,
    /// 1..=12
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub min: u32,
    pub sec: u32,
    pub micros: u32,
}

impl Tm {
    pub fn from(t: SystemTime) -> Tm {
        let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        Tm::from_unix(d.as_secs() as i64, d.subsec_micros())
    }

    /// The date `secs` seconds (and `micros`) after the epoch; before it when negative.
    pub fn from_unix(secs: i64, micros: u32) -> Tm {
        let days = secs.div_euclid(86400);
        let rem = secs.rem_euclid(86400) as u32;
        // Howard Hinnant's days-to-civil.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Tm { year, month, day, hour: rem / 3600, min: rem / 60 % 60, sec: rem % 60, micros }
    }
    pub fn month_name(&self) -> &'static str {
        MONTHS[(self.month - 1) as usize]
    }
}

/// Frames `msg` for a target of format `fmt`, appending to `out`, cut to `len` bytes including
/// the final newline.
#[allow(clippy::too_many_arguments)]
pub fn frame(
    out: &mut Vec<u8>,
    fmt: LogLineFormat,
    facility: Facility,
    level: Level,
    now: SystemTime,
    host: Option<&str>,
    tag: &str,
    pid: u32,
    msg: &str,
    len: usize,
) {
    let pri = (facility as u32) * 8 + level as u32;
    let tm = Tm::from(now);
    let start = out.len();
    let _ = match fmt {
        LogLineFormat::Rfc3164 | LogLineFormat::Local => {
            let _ = write!(out, "<{pri}>{} {:>2} {:02}:{:02}:{:02} ", tm.month_name(), tm.day, tm.hour, tm.min, tm.sec);
            if let (Some(h), LogLineFormat::Rfc3164) = (host, fmt) {
                let _ = write!(out, "{h} ");
            }
            write!(out, "{tag}[{pid}]: ")
        }
        LogLineFormat::Rfc5424 => write!(
            out,
            "<{pri}>1 {:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}+00:00 {} {tag} {pid} - - ",
            tm.year,
            tm.month,
            tm.day,
            tm.hour,
            tm.min,
            tm.sec,
            tm.micros,
            host.unwrap_or("-")
        ),
        LogLineFormat::Raw => Ok(()),
        LogLineFormat::Short => write!(out, "<{}>", level as u32),
        LogLineFormat::Priority => write!(out, "<{pri}>"),
        LogLineFormat::Iso => write!(out, "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}+00:00 ", tm.year, tm.month, tm.day, tm.hour, tm.min, tm.sec, tm.micros),
        LogLineFormat::Timed => write!(out, "<{pri}>{} {:>2} {:02}:{:02}:{:02} ", tm.month_name(), tm.day, tm.hour, tm.min, tm.sec),
    };
    out.extend_from_slice(msg.as_bytes());
    if out.len() - start + 1 > len {
        out.truncate(start + len.saturating_sub(1));
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(817_934)
    }

    fn framed(fmt: LogLineFormat, host: Option<&str>, msg: &str, len: usize) -> String {
        let mut out = Vec::new();
        // 2024-06-20 09:47:56 UTC
        frame(&mut out, fmt, Facility::Local0, Level::Info, at(1_718_876_876), host, "haproxy", 42, msg, len);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn dates() {
        assert_eq!(Tm::from(at(0)), Tm { year: 1970, month: 1, day: 1, hour: 0, min: 0, sec: 0, micros: 817_934 });
        assert_eq!(Tm::from(at(951_782_400)), Tm { year: 2000, month: 2, day: 29, hour: 0, min: 0, sec: 0, micros: 817_934 });
        assert_eq!(Tm::from(at(1_718_876_876)), Tm { year: 2024, month: 6, day: 20, hour: 9, min: 47, sec: 56, micros: 817_934 });
    }

    #[test]
    fn rfc3164() {
        assert_eq!(framed(LogLineFormat::Rfc3164, None, "hello", 1024), "<134>Jun 20 09:47:56 haproxy[42]: hello\n");
        assert_eq!(framed(LogLineFormat::Rfc3164, Some("lb1"), "hello", 1024), "<134>Jun 20 09:47:56 lb1 haproxy[42]: hello\n");
        let mut out = Vec::new();
        frame(&mut out, LogLineFormat::Rfc3164, Facility::Local7, Level::Err, at(1_717_200_000), None, "t", 1, "m", 1024);
        assert_eq!(out, b"<187>Jun  1 00:00:00 t[1]: m\n");
    }

    #[test]
    fn rfc5424() {
        assert_eq!(framed(LogLineFormat::Rfc5424, None, "hello", 1024), "<134>1 2024-06-20T09:47:56.817934+00:00 - haproxy 42 - - hello\n");
    }

    #[test]
    fn other_formats() {
        assert_eq!(framed(LogLineFormat::Raw, None, "hello", 1024), "hello\n");
        assert_eq!(framed(LogLineFormat::Short, None, "hello", 1024), "<6>hello\n");
        assert_eq!(framed(LogLineFormat::Priority, None, "hello", 1024), "<134>hello\n");
        assert_eq!(framed(LogLineFormat::Local, Some("h"), "hello", 1024), "<134>Jun 20 09:47:56 haproxy[42]: hello\n");
    }

    #[test]
    fn unix_datagram_sink() {
        let dir = std::env::temp_dir().join(format!("sluiced-log-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("log.sock");
        let _ = std::fs::remove_file(&path);
        let rx = UnixDatagram::bind(&path).unwrap();
        let sink = Sink::open(&LogTarget::Unix(path.clone())).unwrap();
        sink.send(b"<134>hello\n");
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"<134>hello\n");
        // Nobody listening: the line is dropped and counted, the sender does not wait.
        let _ = std::fs::remove_file(&path);
        let before = crate::log::DROPPED.load(std::sync::atomic::Ordering::Relaxed);
        sink.send(b"lost\n");
        assert!(crate::log::DROPPED.load(std::sync::atomic::Ordering::Relaxed) > before);
    }

    #[test]
    fn unsupported_targets_are_errors() {
        assert!(Sink::open(&LogTarget::Ring("r".into())).is_err());
        assert!(Sink::open(&LogTarget::Fd(5)).is_err());
    }

    #[test]
    fn len_truncates_including_newline() {
        let long = "x".repeat(200);
        let s = framed(LogLineFormat::Raw, None, &long, 80);
        assert_eq!(s.len(), 80);
        assert!(s.ends_with("x\n"));
    }
}
