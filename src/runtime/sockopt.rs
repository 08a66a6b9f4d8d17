//! Socket options: `TCP_DEFER_ACCEPT` and the listener side of `TCP_FASTOPEN`, the process-wide
//! buffer sizes of `tune.rcvbuf.*`/`tune.sndbuf.*`, a server socket's `source` address, and what
//! `silent-drop` does to a client socket (`TCP_REPAIR`, the IP TTL), and the kernel's
//! round-trip time of a connection (`TCP_INFO`, for `fc_rtt`). The `unsafe` here is
//! `setsockopt(2)` with an `int` value and `getsockopt(2)` into a `tcp_info`, for the options
//! neither socket2 nor nix wraps: the pointer and length describe a live local value, and the
//! descriptor is borrowed from a socket we own.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use nix::libc;

fn set_int(fd: BorrowedFd<'_>, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: `value` lives across the call and its size is passed; `fd` is a valid open socket.
    let r =
        unsafe { libc::setsockopt(fd.as_raw_fd(), level, name, (&value as *const libc::c_int).cast(), std::mem::size_of::<libc::c_int>() as libc::socklen_t) };
    if r == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// The kernel's smoothed round-trip time of a TCP connection and its variance, in
/// microseconds (`TCP_INFO`); `None` on a socket that is not TCP.
pub fn tcp_rtt(fd: BorrowedFd<'_>) -> Option<(u32, u32)> {
    // SAFETY: `tcp_info` is plain integers, so all zeroes is a valid value.
    let mut ti: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: the pointer and length describe `ti`, which outlives the call; the kernel writes at
    // most `len` bytes; `fd` is a valid open socket.
    let r = unsafe { libc::getsockopt(fd.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_INFO, (&raw mut ti).cast(), &mut len) };
    (r == 0).then_some((ti.tcpi_rtt, ti.tcpi_rttvar))
}

/// Wakes the listener only when data arrives, waiting at most `secs` seconds.
pub fn set_defer_accept(fd: BorrowedFd<'_>, secs: i32) -> io::Result<()> {
    set_int(fd, libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT, secs)
}

/// Accepts TCP Fast Open with a queue of `qlen` pending requests.
pub fn set_fastopen(fd: BorrowedFd<'_>, qlen: i32) -> io::Result<()> {
    set_int(fd, libc::IPPROTO_TCP, libc::TCP_FASTOPEN, qlen)
}

/// `tune.rcvbuf.client`, `tune.sndbuf.client`, `tune.rcvbuf.server` and `tune.sndbuf.server`: the
/// kernel buffer sizes forced on client and server sockets, as HAProxy does (`SO_RCVBUF`,
/// `SO_SNDBUF`; Linux doubles the value for its bookkeeping, caps it at `net.core.rmem_max` /
/// `wmem_max`, and stops tuning that buffer by itself). Unset, the kernel sizes buffers itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketBuffers {
    pub rcv_client: Option<u64>,
    pub snd_client: Option<u64>,
    pub rcv_server: Option<u64>,
    pub snd_server: Option<u64>,
}

static BUFFERS: std::sync::OnceLock<SocketBuffers> = std::sync::OnceLock::new();

/// Sets the socket buffer sizes once, before anything is bound or connected (a later call
/// changes nothing: a reload is a new process).
pub fn set_socket_buffers(b: SocketBuffers) {
    let _ = BUFFERS.set(b);
}

fn set_buffers(fd: BorrowedFd<'_>, rcv: Option<u64>, snd: Option<u64>) -> io::Result<()> {
    let s = socket2::SockRef::from(&fd);
    let size = |n: u64| n.min(i32::MAX as u64) as usize;
    if let Some(n) = rcv {
        s.set_recv_buffer_size(size(n))?;
    }
    if let Some(n) = snd {
        s.set_send_buffer_size(size(n))?;
    }
    Ok(())
}

/// Applies the client sizes to a listening socket, before `listen`: the connections it accepts
/// inherit them from it.
pub fn apply_client_buffers(fd: BorrowedFd<'_>) -> io::Result<()> {
    let b = BUFFERS.get().copied().unwrap_or_default();
    set_buffers(fd, b.rcv_client, b.snd_client)
}

/// Whether server sockets get sizes of their own (else connecting needs no extra step).
pub fn server_buffers_set() -> bool {
    BUFFERS.get().is_some_and(|b| b.rcv_server.is_some() || b.snd_server.is_some())
}

/// Readies a server socket before it connects: the server buffer sizes (before the handshake,
/// so the receive window it offers is scaled for them), and the `source` address it leaves
/// from. With no source port, `IP_BIND_ADDRESS_NO_PORT` lets the kernel pick the port at connect
/// time, per destination, instead of reserving one at bind time for every connection.
pub fn prepare_server_socket(fd: BorrowedFd<'_>, source: Option<std::net::SocketAddr>) -> io::Result<()> {
    let b = BUFFERS.get().copied().unwrap_or_default();
    set_buffers(fd, b.rcv_server, b.snd_server)?;
    if let Some(sa) = source {
        if sa.port() == 0 {
            let _ = set_int(fd, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, 1);
        }
        let s = socket2::SockRef::from(&fd);
        if sa.port() != 0 {
            s.set_reuse_address(true)?;
        }
        s.bind(&sa.into()).map_err(|e| io::Error::new(e.kind(), format!("cannot bind to source {sa}: {e}")))?;
    }
    Ok(())
}

/// Makes the close of client socket `fd` tell the client nothing, for `silent-drop`: an abuser's
/// client then keeps waiting on a connection the daemon has already forgotten. As HAProxy does:
/// without `rst-ttl`, `TCP_REPAIR` (which needs `CAP_NET_ADMIN`) makes the close send no packet
/// at all; otherwise, or with `rst-ttl <ttl>`, the close resets the connection (`SO_LINGER` 0:
/// no FIN, no `TIME_WAIT`) with the IP TTL / IPv6 hop limit at `ttl` (1 by default), so that the
/// reset dies in the network before it reaches a remote client. Best effort: the connection is
/// closed whatever the kernel refuses.
pub fn silent_drop(fd: BorrowedFd<'_>, rst_ttl: Option<u8>) {
    if rst_ttl.is_none() && set_int(fd, libc::IPPROTO_TCP, libc::TCP_REPAIR, 1).is_ok() {
        return;
    }
    let ttl = libc::c_int::from(rst_ttl.unwrap_or(1));
    // One of the two fits the socket's family; the other fails harmlessly.
    let _ = set_int(fd, libc::IPPROTO_IP, libc::IP_TTL, ttl);
    let _ = set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, ttl);
    let _ = socket2::SockRef::from(&fd).set_linger(Some(std::time::Duration::ZERO));
}
