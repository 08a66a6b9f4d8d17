//! The stats socket: HAProxy's runtime API on unix, TCP and inherited (`fd@N`) listeners. One
//! thread with a current-thread runtime serves every socket; commands act on the shared server
//! and backend state (atomics), never on the routing table itself.
//!
//! A connection reads one line, runs its `;`-separated commands and closes, unless `prompt` makes
//! it interactive (`> ` prompt, commands until `quit`). Each answer ends with an empty line. A
//! line ending with the word `<<` is followed by a payload (a PEM bundle for `set ssl cert`):
//! the lines up to the next empty one.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use super::cli::{self, Ctx, Outcome};
use super::config::{GlobalStats, StatsLevel, StatsSocket};
use crate::config::addr::{AddrKind, Host, PortSpec};
use crate::route::RouteTable;

/// Default idle timeout of a runtime API connection (`stats timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default number of concurrent runtime API connections (`stats maxconn`).
pub const DEFAULT_MAXCONN: u32 = 10;
/// A command line longer than this is refused: a client cannot make the daemon buffer more.
pub const MAX_LINE: usize = 64 * 1024;
/// A payload (the lines after a line ending with `<<`) larger than this is refused, for the
/// same reason; a PEM bundle with its chain is a few KiB.
pub const MAX_PAYLOAD: usize = 1024 * 1024;

/// A bound stats socket, not yet served.
pub struct BoundSocket {
    listener: StdListener,
    level: StatsLevel,
    /// `expose-fd listeners`: answers `_getsocks` (`runtime::handover`).
    expose: bool,
}

enum StdListener {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

/// Binds every `stats socket`. Called before the process detaches, so a bind error is seen by
/// whoever started it.
pub fn bind_all(stats: &GlobalStats) -> Result<Vec<BoundSocket>, String> {
    stats.sockets.iter().map(|s| Ok(BoundSocket { listener: bind(s)?, level: s.level, expose: s.expose_fd_listeners })).collect()
}

fn bind(s: &StatsSocket) -> Result<StdListener, String> {
    let text = &s.addr.text;
    match &s.addr.kind {
        AddrKind::Unix(path) => {
            // A socket file left by a previous process would make bind fail; anything else at
            // that path is not ours to remove.
            use std::os::unix::fs::FileTypeExt;
            if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
                let _ = std::fs::remove_file(path);
            }
            let l = std::os::unix::net::UnixListener::bind(path).map_err(|e| format!("stats socket '{text}': cannot bind: {e}"))?;
            if let Some(mode) = s.mode {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| format!("stats socket '{text}': cannot chmod: {e}"))?;
            }
            chown(path, s)?;
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            Ok(StdListener::Unix(l))
        }
        AddrKind::Inet { host, port: PortSpec::Fixed(port), .. } => {
            let ip = match host {
                Host::Wildcard => std::net::IpAddr::from([0, 0, 0, 0]),
                Host::Ip(ip) => *ip,
                Host::Name(n) => {
                    use std::net::ToSocketAddrs;
                    (n.as_str(), *port)
                        .to_socket_addrs()
                        .ok()
                        .and_then(|mut a| a.next())
                        .map(|a| a.ip())
                        .ok_or_else(|| format!("stats socket '{text}': cannot resolve '{n}'"))?
                }
            };
            let l = std::net::TcpListener::bind((ip, *port)).map_err(|e| format!("stats socket '{text}': cannot bind: {e}"))?;
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            Ok(StdListener::Tcp(l))
        }
        AddrKind::Fd(n) => {
            let l = crate::runtime::sys::take_listening_fd(*n)?;
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            Ok(StdListener::Tcp(l))
        }
        _ => Err(format!("stats socket '{text}': this address form is not supported (unix path, ipv4@/ipv6@ address:port, or fd@N)")),
    }
}

/// `uid`/`gid`/`user`/`group` of a unix stats socket; only root may give a file away, so
/// otherwise they are left alone (as HAProxy, which applies them before dropping privileges).
fn chown(path: &std::path::Path, s: &StatsSocket) -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let uid = match (&s.uid, &s.user) {
        (Some(u), _) => Some(*u),
        (None, Some(name)) => Some(crate::runtime::identity::lookup_user(name).map_err(|e| format!("stats socket: {e}"))?.uid.as_raw()),
        _ => None,
    };
    let gid = match (&s.gid, &s.group) {
        (Some(g), _) => Some(*g),
        (None, Some(name)) => Some(crate::runtime::identity::lookup_group(name).map_err(|e| format!("stats socket: {e}"))?.as_raw()),
        _ => None,
    };
    crate::runtime::identity::chown_socket(path, uid, gid).map_err(|e| format!("stats socket: {e}"))
}

/// Starts the stats socket thread; does nothing without sockets and without a master. Under a
/// master (`runtime::master`), `channel` brings the connections of the master CLI's `@1 ...`.
pub fn spawn(rt: Arc<RouteTable>, stats: &GlobalStats, sockets: Vec<BoundSocket>, channel: Option<std::os::fd::OwnedFd>) -> std::io::Result<()> {
    if sockets.is_empty() && channel.is_none() {
        return Ok(());
    }
    let timeout = stats.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let slots = Arc::new(tokio::sync::Semaphore::new(stats.maxconn.unwrap_or(DEFAULT_MAXCONN) as usize));
    let ctx = Arc::new(Ctx::new(rt));
    std::thread::Builder::new().name("sluiced-stats".into()).spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            eprintln!("[ALERT]    ({}) : cannot start the stats socket runtime", std::process::id());
            return;
        };
        runtime.block_on(async move {
            let mut tasks = Vec::new();
            for s in sockets {
                let (ctx, slots) = (ctx.clone(), slots.clone());
                tasks.push(tokio::spawn(accept_loop(s, ctx, slots, timeout)));
            }
            if let Some(ch) = channel {
                let ctx = ctx.clone();
                tasks.push(tokio::spawn(crate::runtime::master::serve_channel(ch, move |conn, level| {
                    let ctx = ctx.clone();
                    if conn.set_nonblocking(true).is_err() {
                        return;
                    }
                    if let Ok(c) = tokio::net::UnixStream::from_std(conn) {
                        tokio::spawn(async move { serve(c, &ctx, level, timeout).await });
                    }
                })));
            }
            for t in tasks {
                let _ = t.await;
            }
        });
    })?;
    Ok(())
}

async fn accept_loop(s: BoundSocket, ctx: Arc<Ctx>, slots: Arc<tokio::sync::Semaphore>, timeout: Duration) {
    enum L {
        Tcp(tokio::net::TcpListener),
        Unix(tokio::net::UnixListener),
    }
    let l = match s.listener {
        StdListener::Tcp(t) => tokio::net::TcpListener::from_std(t).map(L::Tcp),
        StdListener::Unix(u) => tokio::net::UnixListener::from_std(u).map(L::Unix),
    };
    let Ok(l) = l else { return };
    loop {
        // `stats maxconn`: while full, connections wait in the kernel's backlog.
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        let (ctx, level, expose) = (ctx.clone(), s.level, s.expose);
        match &l {
            L::Tcp(t) => match t.accept().await {
                Ok((c, _)) => {
                    tokio::spawn(async move {
                        serve(c, &ctx, level, timeout).await;
                        drop(permit);
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            },
            L::Unix(u) => match u.accept().await {
                Ok((c, _)) => {
                    tokio::spawn(async move {
                        if expose && asks_for_sockets(&c, timeout).await {
                            if level == StatsLevel::Admin {
                                let _ = tokio::time::timeout(timeout, crate::runtime::handover::give(&c)).await;
                            } else {
                                let mut c = c;
                                let _ = c.write_all(b"Permission denied\n\n").await;
                            }
                        } else {
                            serve(c, &ctx, level, timeout).await;
                        }
                        drop(permit);
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            },
        }
    }
}

/// True when the connection's first line is `_getsocks` (`-x` from a new process), which is then
/// read off the socket; any other first line is left for [`serve`].
async fn asks_for_sockets(c: &tokio::net::UnixStream, timeout: Duration) -> bool {
    let want = crate::runtime::handover::REQUEST;
    let peek = async {
        loop {
            if c.readable().await.is_err() {
                return false;
            }
            let mut buf = [0u8; 16];
            let r = c.try_io(tokio::io::Interest::READABLE, || {
                nix::sys::socket::recv(std::os::fd::AsRawFd::as_raw_fd(c), &mut buf, nix::sys::socket::MsgFlags::MSG_PEEK).map_err(std::io::Error::from)
            });
            match r {
                Ok(0) => return false,
                Ok(n) if n >= want.len() => return buf[..want.len()] == *want,
                // Part of a line: more is on its way unless it already differs.
                Ok(n) if want.starts_with(&buf[..n]) => tokio::time::sleep(Duration::from_millis(1)).await,
                Ok(_) => return false,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return false,
            }
        }
    };
    if !tokio::time::timeout(timeout, peek).await.unwrap_or(false) {
        return false;
    }
    // The line is in the socket's buffer (just peeked): taken without waiting.
    let mut line = [0u8; 16];
    c.try_read(&mut line[..want.len()]).is_ok_and(|n| n == want.len())
}

/// Reads one line of at most [`MAX_LINE`] bytes; `None` at end of stream, on error or on a
/// timeout; `Some(Err(()))` when the line is too long.
async fn read_line<R: AsyncRead + Unpin>(r: &mut BufReader<R>, timeout: Duration) -> Option<Result<String, ()>> {
    let mut line = Vec::new();
    loop {
        let buf = match tokio::time::timeout(timeout, r.fill_buf()).await {
            Ok(Ok(b)) => b,
            _ => return None,
        };
        if buf.is_empty() {
            return if line.is_empty() { None } else { Some(Ok(String::from_utf8_lossy(&line).into_owned())) };
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        line.extend_from_slice(&buf[..take]);
        r.consume(take);
        if line.len() > MAX_LINE {
            return Some(Err(()));
        }
        if done {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Some(Ok(String::from_utf8_lossy(&line).into_owned()));
        }
    }
}

/// Why a payload was not read whole.
enum PayloadError {
    /// End of stream, an error or the idle timeout before the empty line that ends it.
    Closed,
    TooBig,
}

/// Reads a payload: lines up to the first empty one (or the end of the stream), each kept with
/// its `\n`; at most [`MAX_PAYLOAD`] bytes.
async fn read_payload<R: AsyncRead + Unpin>(r: &mut BufReader<R>, timeout: Duration) -> Result<String, PayloadError> {
    let mut payload = String::new();
    loop {
        match read_line(r, timeout).await {
            // A client that sent its payload and closed its side has said all it will.
            None if !payload.is_empty() => return Ok(payload),
            None => return Err(PayloadError::Closed),
            Some(Err(())) => return Err(PayloadError::TooBig),
            Some(Ok(l)) if l.is_empty() => return Ok(payload),
            Some(Ok(l)) => {
                if payload.len() + l.len() + 1 > MAX_PAYLOAD {
                    return Err(PayloadError::TooBig);
                }
                payload.push_str(&l);
                payload.push('\n');
            }
        }
    }
}

/// Reads and drops the rest of a refused payload, up to its empty line, the end of the stream,
/// or [`MAX_SKIP`] bytes (a client that never ends it is not read forever).
async fn skip_payload<R: AsyncRead + Unpin>(r: &mut BufReader<R>, timeout: Duration) {
    let mut skipped = 0;
    while skipped < MAX_SKIP {
        match read_line(r, timeout).await {
            None => return,
            Some(Ok(l)) if l.is_empty() => return,
            Some(Ok(l)) => skipped += l.len() + 1,
            Some(Err(())) => skipped += MAX_LINE,
        }
    }
}

/// How much of a refused payload is read and dropped at most.
const MAX_SKIP: usize = 64 * MAX_PAYLOAD;

/// A command line that ends with the word `<<` announces a payload; the line without it.
fn payload_command(line: &str) -> Option<&str> {
    let cmd = line.trim_end().strip_suffix("<<")?;
    (cmd.is_empty() || cmd.ends_with(|c: char| c.is_ascii_whitespace())).then_some(cmd)
}

/// One runtime API connection.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(conn: S, ctx: &Ctx, level: StatsLevel, mut timeout: Duration) {
    let (r, mut w) = tokio::io::split(conn);
    let mut r = BufReader::new(r);
    let mut interactive = false;
    loop {
        let line = match read_line(&mut r, timeout).await {
            None => return,
            Some(Err(())) => {
                let _ = w.write_all(b"Command line too long.\n\n").await;
                return;
            }
            Some(Ok(l)) => l,
        };
        let (line, payload) = match payload_command(&line) {
            None => (line.as_str(), None),
            Some(cmd) => match read_payload(&mut r, timeout).await {
                Ok(p) => (cmd, Some(p)),
                Err(PayloadError::Closed) => return,
                Err(PayloadError::TooBig) => {
                    // Closing with unread input would reset the connection, and the client
                    // could lose the answer: the rest of the payload is read and dropped first.
                    skip_payload(&mut r, timeout).await;
                    let msg = format!("Payload too big: at most {MAX_PAYLOAD} bytes.\n\n");
                    let _ = tokio::time::timeout(timeout, async { w.write_all(msg.as_bytes()).await.and(w.shutdown().await) }).await;
                    return;
                }
            },
        };
        let (out, outcome) = cli::run_line(ctx, level, line, payload.as_deref(), interactive);
        let mut out = out.into_bytes();
        match outcome {
            Outcome::Quit => {
                let _ = tokio::time::timeout(timeout, w.write_all(&out)).await;
                return;
            }
            Outcome::Interactive(on) => interactive = on,
            Outcome::Timeout(t) => timeout = t,
            Outcome::Continue => {}
        }
        if interactive {
            out.extend_from_slice(b"> ");
        }
        // A client that stops reading holds its slot no longer than `stats timeout`.
        let sent = tokio::time::timeout(timeout, async { w.write_all(&out).await.and(w.flush().await) }).await;
        if !matches!(sent, Ok(Ok(()))) || !interactive {
            let _ = w.shutdown().await;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::payload_command;

    #[test]
    fn only_a_last_word_of_two_less_than_signs_announces_a_payload() {
        assert_eq!(payload_command("set ssl cert /a.pem <<"), Some("set ssl cert /a.pem "));
        assert_eq!(payload_command("set ssl cert /a.pem <<  "), Some("set ssl cert /a.pem "));
        assert_eq!(payload_command("<<"), Some(""));
        assert_eq!(payload_command("set ssl cert /a.pem<<"), None);
        assert_eq!(payload_command("show ssl cert"), None);
    }
}
