//! Listening sockets. Each worker gets its own `SO_REUSEPORT` socket per bind address, so the
//! kernel spreads connections over the workers without a shared accept queue; `fd@N` sockets and
//! unix sockets cannot be duplicated that way and are shared by every worker instead.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd};

use socket2::{Domain, Protocol, Socket, Type};

use crate::config::addr::{AddrKind, Address, Family, Host, PortSpec, Transport};
use crate::config::model::Bind;
use crate::route::RouteTable;

/// A bound, listening socket before it is handed to a worker's reactor.
#[derive(Debug)]
pub enum StdListener {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

/// A listening socket with what the accept loop needs to know about it.
#[derive(Debug)]
pub struct BoundListener {
    /// Index into [`RouteTable::frontends`].
    pub frontend: usize,
    /// Index into the frontend's binds.
    pub bind: usize,
    pub listener: StdListener,
    /// Bound by this process (not an inherited `fd@N`), and not shared with a master: it may
    /// take the socket off the port at stop ([`leave_handles`]).
    pub owned: bool,
    /// For a TCP socket of this process's own binding: what a master keeps it under, so the next
    /// worker takes the same socket for the same address, worker and options ([`key`]).
    pub key: Option<String>,
}

/// The name a master keeps a TCP listening socket under between workers: its address, the
/// worker thread it serves, and the bind options set on the socket itself. A reload whose line
/// changed one of them binds a new socket.
pub fn key(sa: SocketAddr, worker: usize, b: &Bind, backlog: Option<u32>) -> String {
    format!("{sa} {worker} {:?}", (b.v6only, b.v4v6, b.transparent, &b.interface, b.mss, b.tcp_ut, b.backlog.or(backlog), b.defer_accept, b.tfo))
        .replace('\n', " ")
}

/// Default listen backlog when neither the bind line nor the frontend sets one.
const DEFAULT_BACKLOG: i32 = 1024;

fn socket_addrs(a: &Address) -> Result<Vec<SocketAddr>, String> {
    let AddrKind::Inet { family, host, port } = &a.kind else { return Ok(Vec::new()) };
    let ip = match host {
        Host::Wildcard => match family {
            Family::V6 => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
            _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        },
        Host::Ip(ip) => *ip,
        Host::Name(n) => std::net::ToSocketAddrs::to_socket_addrs(&(n.as_str(), 0))
            .map_err(|e| format!("cannot resolve '{n}': {e}"))?
            .next()
            .ok_or_else(|| format!("cannot resolve '{n}'"))?
            .ip(),
    };
    Ok(match port {
        PortSpec::Fixed(p) => vec![SocketAddr::new(ip, *p)],
        PortSpec::Range(lo, hi) => (*lo..=*hi).map(|p| SocketAddr::new(ip, p)).collect(),
        PortSpec::None | PortSpec::Offset(_) => return Err(format!("'{}' has no port to listen on", a.text)),
    })
}

fn tcp_listener(sa: SocketAddr, b: &Bind, fe_backlog: Option<u32>, reuseport: bool) -> Result<std::net::TcpListener, String> {
    let what = |e: std::io::Error| format!("cannot bind socket [{sa}]: {e}");
    let s = Socket::new(Domain::for_address(sa), Type::STREAM, Some(Protocol::TCP)).map_err(what)?;
    s.set_reuse_address(true).map_err(what)?;
    if reuseport {
        s.set_reuse_port(true).map_err(what)?;
    }
    if sa.is_ipv6() {
        // HAProxy's default is the system's; `v6only`/`v4v6` force it.
        if b.v6only {
            s.set_only_v6(true).map_err(what)?;
        } else if b.v4v6 {
            s.set_only_v6(false).map_err(what)?;
        }
    }
    if b.transparent {
        let r = if sa.is_ipv6() { s.set_ip_transparent_v6(true) } else { s.set_ip_transparent_v4(true) };
        r.map_err(|e| format!("cannot enable 'transparent' on [{sa}]: {e}"))?;
    }
    if let Some(iface) = &b.interface {
        s.bind_device(Some(iface.as_bytes())).map_err(|e| format!("cannot bind [{sa}] to interface '{iface}': {e}"))?;
    }
    if let Some(mss) = b.mss {
        s.set_tcp_mss(mss.unsigned_abs()).map_err(what)?;
    }
    if let Some(t) = b.tcp_ut {
        s.set_tcp_user_timeout(Some(t)).map_err(what)?;
    }
    super::sockopt::apply_client_buffers(s.as_fd()).map_err(|e| format!("cannot set tune.rcvbuf.client/tune.sndbuf.client on [{sa}]: {e}"))?;
    s.set_nonblocking(true).map_err(what)?;
    s.bind(&sa.into()).map_err(what)?;
    let backlog = b.backlog.or(fe_backlog).map_or(DEFAULT_BACKLOG, |v| v.min(i32::MAX as u32) as i32);
    s.listen(backlog).map_err(what)?;
    if b.defer_accept {
        super::sockopt::set_defer_accept(s.as_fd(), 1).map_err(|e| format!("cannot enable 'defer-accept' on [{sa}]: {e}"))?;
    }
    if b.tfo {
        super::sockopt::set_fastopen(s.as_fd(), backlog).map_err(|e| format!("cannot enable 'tfo' on [{sa}]: {e}"))?;
    }
    Ok(s.into())
}

fn unix_listener(path: &std::path::Path, b: &Bind) -> Result<std::os::unix::net::UnixListener, String> {
    // A stale socket file from an earlier run would make bind fail; only a socket is removed.
    if let Ok(m) = std::fs::symlink_metadata(path)
        && std::os::unix::fs::FileTypeExt::is_socket(&m.file_type())
    {
        let _ = std::fs::remove_file(path);
    }
    let l = std::os::unix::net::UnixListener::bind(path).map_err(|e| format!("cannot bind unix socket '{}': {e}", path.display()))?;
    l.set_nonblocking(true).map_err(|e| e.to_string())?;
    if let Some(mode) = b.mode {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| format!("cannot chmod '{}': {e}", path.display()))?;
    }
    super::identity::chown_socket(path, b.uid, b.gid)?;
    Ok(l)
}

/// Binds every listener of every frontend, for `workers` workers: `result[w]` is worker `w`'s.
/// Binding happens in the main thread before any worker starts, so an address in use is an
/// error at start-up, not a worker that silently does nothing.
///
/// `inherited` holds the sockets a master kept from the previous worker, by [`key`]: one with
/// the same key is taken instead of binding anew, so connections waiting in its queue are
/// accepted by this process rather than reset when the previous one leaves.
pub fn bind_all(
    rt: &RouteTable,
    workers: usize,
    backlog_of: impl Fn(usize) -> Option<u32>,
    inherited: &mut std::collections::HashMap<String, std::os::fd::OwnedFd>,
) -> Result<Vec<Vec<BoundListener>>, String> {
    let mut per_worker: Vec<Vec<BoundListener>> = (0..workers).map(|_| Vec::new()).collect();
    for (fi, fe) in rt.frontends.iter().enumerate() {
        for (bi, b) in fe.binds.iter().enumerate() {
            for a in &b.addrs {
                if a.transport != Transport::Stream {
                    return Err(format!("frontend '{}': '{}' is not a stream address (QUIC and UDP are not supported yet)", fe.name, a.text));
                }
                let shared = match &a.kind {
                    AddrKind::Fd(n) => Some(StdListener::Tcp(super::sys::take_listening_fd(*n)?)),
                    AddrKind::Unix(p) => Some(StdListener::Unix(unix_listener(p, b)?)),
                    AddrKind::Abns(_) | AddrKind::SockPair(_) => return Err(format!("frontend '{}': '{}' is not supported yet", fe.name, a.text)),
                    AddrKind::Inet { .. } => None,
                };
                let owned = !matches!(a.kind, AddrKind::Fd(_));
                if let Some(l) = shared {
                    for w in per_worker.iter_mut() {
                        let dup = match &l {
                            StdListener::Tcp(t) => StdListener::Tcp(t.try_clone().map_err(|e| e.to_string())?),
                            StdListener::Unix(u) => StdListener::Unix(u.try_clone().map_err(|e| e.to_string())?),
                        };
                        w.push(BoundListener { frontend: fi, bind: bi, listener: dup, owned, key: None });
                    }
                    continue;
                }
                for sa in socket_addrs(a)? {
                    for (wi, w) in per_worker.iter_mut().enumerate() {
                        let key = key(sa, wi, b, backlog_of(fi));
                        // `SO_REUSEPORT` always, as HAProxy on Linux: the workers share the port,
                        // and so does the next process during a reload (`-sf`), which binds while
                        // this one still listens.
                        let l = match inherited.remove(&key) {
                            Some(fd) => {
                                let l = std::net::TcpListener::from(fd);
                                l.set_nonblocking(true).map_err(|e| format!("[{sa}]: {e}"))?;
                                l
                            }
                            None => tcp_listener(sa, b, backlog_of(fi), true)?,
                        };
                        w.push(BoundListener { frontend: fi, bind: bi, listener: StdListener::Tcp(l), owned: true, key: Some(key) });
                    }
                }
            }
        }
    }
    Ok(per_worker)
}

/// Every TCP listening socket of this process's own binding, with its [`key`]: what a master
/// keeps for the next worker, and what `-x` hands to the next process.
pub fn keyed(per_worker: &[Vec<BoundListener>]) -> impl Iterator<Item = (&str, std::os::fd::BorrowedFd<'_>)> {
    per_worker.iter().flatten().filter_map(|l| match (&l.key, &l.listener) {
        (Some(k), StdListener::Tcp(t)) => Some((k.as_str(), t.as_fd())),
        _ => None,
    })
}

/// A copy of every listening socket this process bound, for the main thread to take off the port
/// the moment it is told to stop ([`leave_port`]), whatever the workers are doing then.
pub fn leave_handles(per_worker: &[Vec<BoundListener>]) -> Vec<std::os::fd::OwnedFd> {
    per_worker
        .iter()
        .flatten()
        .filter(|l| l.owned)
        .filter_map(|l| match &l.listener {
            StdListener::Tcp(t) => t.as_fd().try_clone_to_owned().ok(),
            StdListener::Unix(u) => u.as_fd().try_clone_to_owned().ok(),
        })
        .collect()
}

/// Takes the listening sockets off their ports at once: `shutdown(SHUT_RD)` stops a TCP listener
/// (the kernel unhashes it, so a new process sharing the port with `SO_REUSEPORT` gets every new
/// connection) and makes a unix one refuse connections.
///
/// Closing is not enough on the uring backend: an accept in flight holds the socket open inside
/// the kernel until the worker's ring has cancelled it, or has been torn down after the process
/// exited, and meanwhile the socket keeps its share of the port's new connections, which are then
/// reset. The accept in flight ends with an error, which the workers, already told to stop, take
/// as the end of their listener.
pub fn leave_port(handles: Vec<std::os::fd::OwnedFd>) {
    for fd in handles {
        let _ = nix::sys::socket::shutdown(fd.as_raw_fd(), nix::sys::socket::Shutdown::Read);
    }
}
