//! The small I/O trait session code talks to. Reads and writes take and return owned buffers, so
//! a completion-based backend (io_uring, where the kernel holds the buffer until the operation
//! completes) can implement it without touching session code; the readiness half (`readable`,
//! `writable`, `try_io`) serves `splice(2)`, which stays readiness-driven on every backend.
//!
//! This file holds the epoll implementation, over tokio's reactor.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use tokio::io::Interest;
use tokio::net::{TcpStream, UnixStream};

/// A connected stream socket as sessions use it. Methods take `&self` so the two directions of a
/// tunnel can run at once on one connection.
pub trait Conn {
    /// Reads into the spare capacity of `buf` (its length is what it already holds) and gives it
    /// back; `Ok(0)` is end of stream.
    fn read(&self, buf: Vec<u8>) -> impl Future<Output = (io::Result<usize>, Vec<u8>)>;
    /// Writes `buf[from..]` (at least one byte unless it fails) and gives the buffer back.
    fn write(&self, buf: Vec<u8>, from: usize) -> impl Future<Output = (io::Result<usize>, Vec<u8>)>;
    /// Shuts the write side: the peer reads end of stream.
    fn shutdown_write(&self) -> io::Result<()>;
    /// Waits until the socket may be readable or writable, for `try_io`.
    fn ready(&self, interest: Interest) -> impl Future<Output = io::Result<()>>;
    /// Runs a non-blocking operation on the socket's descriptor; `WouldBlock` clears readiness.
    fn try_io<R>(&self, interest: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R>;
    fn fd(&self) -> BorrowedFd<'_>;
    /// A hint after a read returned less than it asked for: the socket is drained, so the next
    /// read should wait for readiness instead of trying (and failing with `EAGAIN`). Readiness
    /// backends clear their cached state; completion backends ignore it.
    fn drained(&self) {}
}

/// A connection on the epoll backend.
#[derive(Debug)]
pub enum EpollConn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl EpollConn {
    fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        socket2::SockRef::from(self).shutdown(how)
    }
}

impl AsFd for EpollConn {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            EpollConn::Tcp(s) => s.as_fd(),
            EpollConn::Unix(s) => s.as_fd(),
        }
    }
}

impl EpollConn {
    /// One non-blocking write attempt, without waiting for readiness: `WouldBlock` when the
    /// socket is not known writable or its buffer is full.
    pub fn try_write_now(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            EpollConn::Tcp(s) => s.try_write(buf),
            EpollConn::Unix(s) => s.try_write(buf),
        }
    }
    /// [`try_write_now`](Self::try_write_now) with several slices in one system call.
    pub fn try_write_vectored_now(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            EpollConn::Tcp(s) => s.try_write_vectored(bufs),
            EpollConn::Unix(s) => s.try_write_vectored(bufs),
        }
    }
    /// Polls for read readiness (tokio's per-direction slot), for a wait the caller bounds itself.
    pub fn poll_read_ready(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<()>> {
        match self {
            EpollConn::Tcp(s) => s.poll_read_ready(cx),
            EpollConn::Unix(s) => s.poll_read_ready(cx),
        }
    }
    /// One non-blocking read attempt: `WouldBlock` when nothing is there.
    pub fn try_read_now(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            EpollConn::Tcp(s) => s.try_read(buf),
            EpollConn::Unix(s) => s.try_read(buf),
        }
    }
}

impl Conn for EpollConn {
    async fn read(&self, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        if buf.capacity() == buf.len() {
            buf.reserve(16 * 1024);
        }
        // Try first: callers mostly read right after a readiness wait, and a socket tokio does
        // not know readable fails the attempt without a system call.
        loop {
            let r = match self {
                EpollConn::Tcp(s) => s.try_read_buf(&mut buf),
                EpollConn::Unix(s) => s.try_read_buf(&mut buf),
            };
            match r {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return (r, buf),
            }
            if let Err(e) = self.ready(Interest::READABLE).await {
                return (Err(e), buf);
            }
        }
    }

    async fn write(&self, buf: Vec<u8>, from: usize) -> (io::Result<usize>, Vec<u8>) {
        loop {
            if let Err(e) = self.ready(Interest::WRITABLE).await {
                return (Err(e), buf);
            }
            let r = match self {
                EpollConn::Tcp(s) => s.try_write(&buf[from..]),
                EpollConn::Unix(s) => s.try_write(&buf[from..]),
            };
            match r {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return (r, buf),
            }
        }
    }

    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }

    async fn ready(&self, interest: Interest) -> io::Result<()> {
        // One direction: tokio's per-direction waker slot (`poll_*_ready`), which costs a fraction
        // of the general `ready` future (a waiter linked into a list under the socket's lock,
        // unlinked again on drop). Session code waits on a socket from its one task, so the single
        // slot per direction is enough.
        if interest == Interest::READABLE {
            return std::future::poll_fn(|cx| self.poll_read_ready(cx)).await;
        }
        if interest == Interest::WRITABLE {
            return std::future::poll_fn(|cx| match self {
                EpollConn::Tcp(s) => s.poll_write_ready(cx),
                EpollConn::Unix(s) => s.poll_write_ready(cx),
            })
            .await;
        }
        match self {
            EpollConn::Tcp(s) => s.ready(interest).await.map(drop),
            EpollConn::Unix(s) => s.ready(interest).await.map(drop),
        }
    }

    fn try_io<R>(&self, interest: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        match self {
            EpollConn::Tcp(s) => s.try_io(interest, f),
            EpollConn::Unix(s) => s.try_io(interest, f),
        }
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.as_fd()
    }

    fn drained(&self) {
        // A closure that reports `WouldBlock` makes tokio clear the cached readiness without a
        // system call. No reactor turn happens between the short read and this, so no event can
        // be lost: data arriving later raises a new edge-triggered event.
        let _ = self.try_io(Interest::READABLE, || Err::<(), _>(io::ErrorKind::WouldBlock.into()));
    }
}

/// Writes all of `buf[from..]`.
pub async fn write_all<C: Conn>(c: &C, mut buf: Vec<u8>, mut from: usize) -> (io::Result<()>, Vec<u8>) {
    while from < buf.len() {
        let (r, b) = c.write(buf, from).await;
        buf = b;
        match r {
            Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
            Ok(n) => from += n,
            Err(e) => return (Err(e), buf),
        }
    }
    (Ok(()), buf)
}

/// A client or server connection as sessions hold it: a plain socket, or TLS over one. Plain
/// connections pay one branch per operation and no allocation; a TLS connection is boxed (its
/// rustls state is large) so plain sessions stay small.
#[derive(Debug)]
pub enum Transport {
    Plain(AnyConn),
    Tls(Box<crate::tls::TlsConn>),
}

impl Transport {
    /// The socket under the connection (addresses, socket options).
    pub fn socket(&self) -> &AnyConn {
        match self {
            Transport::Plain(c) => c,
            Transport::Tls(t) => t.socket(),
        }
    }
    /// What the TLS handshake settled, on a TLS connection.
    pub fn tls(&self) -> Option<&crate::tls::TlsInfo> {
        match self {
            Transport::Plain(_) => None,
            Transport::Tls(t) => Some(t.info()),
        }
    }
    /// Bytes can be spliced between the socket and a pipe: the stream is not encrypted.
    pub fn spliceable(&self) -> bool {
        matches!(self, Transport::Plain(_))
    }
    /// Says the next read waits for a head: on io_uring it may start a multishot receive
    /// ([`UringConn::head_wait`](super::uring::UringConn::head_wait)).
    pub fn head_wait(&self) {
        if let Transport::Plain(AnyConn::Uring(u)) = self {
            u.head_wait();
        }
    }
    /// What the connection's multishot receive took from the socket that no read returned yet
    /// (always nothing off io_uring): a check that peeks at the socket must look here first.
    pub fn read_ahead(&self) -> super::uring::Ahead {
        match self {
            Transport::Plain(AnyConn::Uring(u)) => u.read_ahead(),
            _ => super::uring::Ahead::Nothing,
        }
    }
    /// What a read would find now, without taking it: data, the end of the stream, or nothing
    /// yet. It looks at what io_uring's multishot receive holds, then peeks at the socket. A peek
    /// that finds nothing clears the readiness left over from the read that took the last bytes,
    /// so the next wait for readability is a real one. A TLS connection says `Data`: its records
    /// are read by the TLS layer.
    pub fn peek(&self) -> io::Result<super::uring::Ahead> {
        use super::uring::Ahead;
        use std::os::fd::AsRawFd;
        if let Transport::Tls(_) = self {
            return Ok(Ahead::Data);
        }
        match self.read_ahead() {
            Ahead::Nothing => {}
            held => return Ok(held),
        }
        let mut b = [0u8; 1];
        let peeked = self.try_io(Interest::READABLE, || {
            nix::sys::socket::recv(self.fd().as_raw_fd(), &mut b, nix::sys::socket::MsgFlags::MSG_PEEK | nix::sys::socket::MsgFlags::MSG_DONTWAIT)
                .map_err(io::Error::from)
        });
        match peeked {
            Ok(0) => Ok(Ahead::End),
            Ok(_) => Ok(Ahead::Data),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Ahead::Nothing),
            Err(e) => Err(e),
        }
    }
    /// True when an idle connection may have received something (bytes or an end) since its last
    /// read came back short, as far as the backend knows without a system call: epoll's cached
    /// readiness (set again only by a new event after the short read cleared it), or what
    /// io_uring's multishot receive took. False is not a promise (a TLS connection, or an
    /// io_uring connection without a multishot receive, always says false).
    pub fn may_have_spoken(&self) -> bool {
        match self {
            Transport::Plain(AnyConn::Epoll(e)) => {
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                e.poll_read_ready(&mut cx).is_ready()
            }
            Transport::Plain(AnyConn::Uring(u)) => u.read_ahead() != super::uring::Ahead::Nothing,
            Transport::Tls(_) => false,
        }
    }
    /// Ends reading ahead before the socket is spliced or peeked at, appending what was read
    /// ahead to `into` ([`UringConn::stop_read_ahead`](super::uring::UringConn::stop_read_ahead)).
    pub async fn stop_read_ahead(&self, into: &mut Vec<u8>) {
        if let Transport::Plain(AnyConn::Uring(u)) = self {
            u.stop_read_ahead(into).await;
        }
    }
    /// One non-blocking write attempt; on TLS always `WouldBlock` (a TLS write may have to wait
    /// for its records to leave, so it goes through [`Conn::write`]).
    pub fn try_write_now(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(c) => c.try_write_now(buf),
            Transport::Tls(_) => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

/// A connection on whichever backend the worker runs: what session code holds. A plain enum, so
/// the epoll path costs a branch per call, no allocation and no copy.
#[derive(Debug)]
pub enum AnyConn {
    Epoll(EpollConn),
    Uring(super::uring::UringConn),
}

impl AnyConn {
    /// The socket as a TCP socket, for socket options and addresses; `None` for a UNIX socket.
    pub fn tcp(&self) -> Option<socket2::SockRef<'_>> {
        let tcp = match self {
            AnyConn::Epoll(c) => matches!(c, EpollConn::Tcp(_)),
            AnyConn::Uring(c) => c.is_tcp(),
        };
        tcp.then(|| socket2::SockRef::from(self))
    }

    /// The local address of a TCP socket.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.tcp()?.local_addr().ok()?.as_socket()
    }

    /// The peer address of a TCP socket.
    pub fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        self.tcp()?.peer_addr().ok()?.as_socket()
    }

    /// One non-blocking read attempt (`WouldBlock` when nothing is there), for TLS records.
    pub fn try_read_now(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            AnyConn::Epoll(c) => c.try_read_now(buf),
            AnyConn::Uring(c) => c.try_read_now(buf),
        }
    }

    /// One non-blocking vectored write attempt, for TLS records.
    pub fn try_write_vectored_now(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            AnyConn::Epoll(c) => c.try_write_vectored_now(bufs),
            AnyConn::Uring(c) => c.try_write_vectored_now(bufs),
        }
    }

    /// One non-blocking write attempt, without waiting for readiness: `WouldBlock` when the
    /// socket is not known writable or its buffer is full.
    pub fn try_write_now(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            AnyConn::Epoll(c) => c.try_write_now(buf),
            AnyConn::Uring(c) => c.try_write_now(buf),
        }
    }
}

impl Conn for Transport {
    async fn read(&self, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        match self {
            Transport::Plain(c) => c.read(buf).await,
            Transport::Tls(t) => t.read(buf).await,
        }
    }
    async fn write(&self, buf: Vec<u8>, from: usize) -> (io::Result<usize>, Vec<u8>) {
        match self {
            Transport::Plain(c) => c.write(buf, from).await,
            Transport::Tls(t) => t.write(buf, from).await,
        }
    }
    fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Transport::Plain(c) => c.shutdown_write(),
            Transport::Tls(t) => t.shutdown_write(),
        }
    }
    async fn ready(&self, interest: Interest) -> io::Result<()> {
        match self {
            Transport::Plain(c) => c.ready(interest).await,
            Transport::Tls(t) => t.ready(interest).await,
        }
    }
    fn try_io<R>(&self, interest: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        self.socket().try_io(interest, f)
    }
    fn fd(&self) -> BorrowedFd<'_> {
        self.socket().fd()
    }
    fn drained(&self) {
        if let Transport::Plain(c) = self {
            c.drained()
        }
    }
}

impl AsFd for AnyConn {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            AnyConn::Epoll(c) => c.as_fd(),
            AnyConn::Uring(c) => c.as_fd(),
        }
    }
}

impl Conn for AnyConn {
    async fn read(&self, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        match self {
            AnyConn::Epoll(c) => c.read(buf).await,
            AnyConn::Uring(c) => c.read(buf).await,
        }
    }

    async fn write(&self, buf: Vec<u8>, from: usize) -> (io::Result<usize>, Vec<u8>) {
        match self {
            AnyConn::Epoll(c) => c.write(buf, from).await,
            AnyConn::Uring(c) => c.write(buf, from).await,
        }
    }

    fn shutdown_write(&self) -> io::Result<()> {
        match self {
            AnyConn::Epoll(c) => c.shutdown_write(),
            AnyConn::Uring(c) => c.shutdown_write(),
        }
    }

    async fn ready(&self, interest: Interest) -> io::Result<()> {
        match self {
            AnyConn::Epoll(c) => c.ready(interest).await,
            AnyConn::Uring(c) => c.ready(interest).await,
        }
    }

    fn try_io<R>(&self, interest: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        match self {
            AnyConn::Epoll(c) => c.try_io(interest, f),
            AnyConn::Uring(c) => c.try_io(interest, f),
        }
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.as_fd()
    }

    fn drained(&self) {
        match self {
            AnyConn::Epoll(c) => c.drained(),
            AnyConn::Uring(c) => c.drained(),
        }
    }
}
