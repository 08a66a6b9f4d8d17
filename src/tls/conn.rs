//! A TLS connection over a plain one, implementing the session I/O trait ([`Conn`]) with rustls'
//! in-memory connection API: ciphertext is moved between the socket and rustls with
//! non-blocking reads and writes, so this works over any readiness backend.
//!
//! Every method takes `&self` (the two directions of a tunnel run at once on one connection):
//! rustls' state sits in a `RefCell` borrowed only between awaits, never across one, and rustls
//! keeps the ciphertext still to send in its own buffer, so either direction may flush it.
//!
//! - Reading: [`Conn::ready`] for reading returns once plaintext is buffered (or the peer closed,
//!   or the connection failed), pulling ciphertext from the socket as needed; [`Conn::read`]
//!   copies buffered plaintext out. An end of stream without `close_notify` reads as an end of
//!   stream, as HAProxy treats it.
//! - Writing: [`Conn::write`] encrypts a slice and returns once its records are handed to the
//!   kernel, so nothing written stays behind in rustls when a session goes idle or closes.

use std::cell::{Cell, RefCell};
use std::io::{self, BufRead, Read, Write};
use std::os::fd::BorrowedFd;
use std::sync::Arc;

use tokio::io::Interest;

use crate::runtime::io::{AnyConn, Conn};

/// Plaintext encrypted per write: four full records.
const WRITE_CHUNK: usize = 64 * 1024;

/// What the fetches and logs know of a TLS connection, fixed once the handshake is done.
#[derive(Debug, Default, Clone)]
pub struct TlsInfo {
    /// The server name the client asked for (front connections).
    pub sni: Option<String>,
    /// `TLSv1.2` or `TLSv1.3`.
    pub protocol: &'static str,
    /// OpenSSL's name of the cipher suite.
    pub cipher: &'static str,
    pub alpn: Option<Vec<u8>>,
    /// The session was resumed (ticket or cache).
    pub resumed: bool,
    /// The peer's certificate (DER), when it presented one.
    pub peer_cert: Option<Vec<u8>>,
    /// OpenSSL's id of the verification error `ca-ignore-err`/`crt-ignore-err` let through
    /// (`ssl_c_verify`, `ssl_c_err`); 0 when none.
    pub verify_error: i64,
}

impl TlsInfo {
    fn of(c: &rustls::Connection) -> TlsInfo {
        let protocol = match c.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "",
        };
        TlsInfo {
            sni: match c {
                rustls::Connection::Server(s) => s.server_name().map(str::to_owned),
                rustls::Connection::Client(_) => None,
            },
            protocol,
            cipher: c.negotiated_cipher_suite().map_or("", |s| super::server::openssl_name(s.suite())),
            alpn: c.alpn_protocol().map(<[u8]>::to_vec),
            resumed: c.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
            peer_cert: c.peer_certificates().and_then(|p| p.first()).map(|c| c.as_ref().to_vec()),
            verify_error: 0,
        }
    }
}

/// `io::Read`/`io::Write` over the socket without waiting: `WouldBlock` clears its readiness.
struct Sock<'a>(&'a AnyConn);

impl Read for Sock<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read_now(buf)
    }
}

impl Write for Sock<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write_now(buf)
    }
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored_now(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Why a handshake failed, for counters and logs.
#[derive(Debug)]
pub enum HandshakeError {
    /// The peer closed or the socket failed.
    Io(io::Error),
    /// The peer sent something that is not a valid handshake, or offered nothing in common.
    Tls(rustls::Error),
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeError::Io(e) => write!(f, "{e}"),
            HandshakeError::Tls(e) => write!(f, "{e}"),
        }
    }
}

/// A TLS connection (either side) over a plain socket.
pub struct TlsConn {
    io: AnyConn,
    tls: RefCell<rustls::Connection>,
    /// The socket reached end of stream.
    eof: Cell<bool>,
    /// A TLS error ended the connection: reads and writes fail.
    failed: Cell<bool>,
    info: TlsInfo,
}

impl std::fmt::Debug for TlsConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConn").field("io", &self.io).field("info", &self.info).finish()
    }
}

impl TlsConn {
    /// Runs the server side of a handshake on an accepted connection.
    pub async fn accept(io: AnyConn, acceptor: &super::server::Acceptor) -> Result<TlsConn, HandshakeError> {
        let c = rustls::ServerConnection::new(acceptor.config.clone()).map_err(HandshakeError::Tls)?;
        let mut t = Self::handshake(io, c.into()).await?;
        // A certificate accepted despite an error: which one, for `ssl_c_verify`.
        if let Some(strict) = &acceptor.reverify {
            let tls = t.tls.borrow();
            if let Some([end, rest @ ..]) = tls.peer_certificates()
                && let Err(e) = strict.verify_client_cert(end, rest, rustls_pki_types::UnixTime::now())
            {
                t.info.verify_error = super::server::x509_error(&e).0;
            }
        }
        Ok(t)
    }

    /// Runs the client side of a handshake on a connection to a server.
    pub async fn connect(io: AnyConn, config: Arc<rustls::ClientConfig>, name: rustls_pki_types::ServerName<'static>) -> Result<TlsConn, HandshakeError> {
        let c = rustls::ClientConnection::new(config, name).map_err(HandshakeError::Tls)?;
        Self::handshake(io, c.into()).await
    }

    async fn handshake(io: AnyConn, c: rustls::Connection) -> Result<TlsConn, HandshakeError> {
        let mut t = TlsConn { io, tls: RefCell::new(c), eof: Cell::new(false), failed: Cell::new(false), info: TlsInfo::default() };
        loop {
            t.flush().await.map_err(HandshakeError::Io)?;
            if !t.tls.borrow().is_handshaking() {
                break;
            }
            if t.eof.get() {
                return Err(HandshakeError::Io(io::ErrorKind::UnexpectedEof.into()));
            }
            match t.pull() {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => return Err(e),
            }
            t.io.ready(Interest::READABLE).await.map_err(HandshakeError::Io)?;
        }
        t.info = TlsInfo::of(&t.tls.borrow());
        Ok(t)
    }

    pub fn info(&self) -> &TlsInfo {
        &self.info
    }

    pub fn socket(&self) -> &AnyConn {
        &self.io
    }

    /// Moves what the socket holds into rustls and processes it, without waiting. True when
    /// something was read (or the end of stream seen). A TLS error sends the alert (best effort)
    /// and fails the connection.
    fn pull(&self) -> Result<bool, HandshakeError> {
        let mut tls = self.tls.borrow_mut();
        match tls.read_tls(&mut Sock(&self.io)) {
            Ok(0) => self.eof.set(true),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => {
                // A reset: every later read or write fails too.
                self.failed.set(true);
                return Err(HandshakeError::Io(e));
            }
        }
        match tls.process_new_packets() {
            Ok(_) => {
                // Answers to what arrived (a key update, a handshake message): sent now if the
                // socket takes them, else by the next flush.
                while tls.wants_write() {
                    if tls.write_tls(&mut Sock(&self.io)).is_err() {
                        break;
                    }
                }
                Ok(true)
            }
            Err(e) => {
                self.failed.set(true);
                let _ = tls.write_tls(&mut Sock(&self.io));
                Err(HandshakeError::Tls(e))
            }
        }
    }

    /// Sends every pending record, waiting for the socket to take them.
    async fn flush(&self) -> io::Result<()> {
        loop {
            let r = {
                let mut tls = self.tls.borrow_mut();
                if !tls.wants_write() {
                    return Ok(());
                }
                tls.write_tls(&mut Sock(&self.io))
            };
            match r {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.io.ready(Interest::WRITABLE).await?,
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether a read would return at once: plaintext buffered, the peer closed, or a failure.
    fn read_ready(&self) -> bool {
        if self.failed.get() || self.eof.get() {
            return true;
        }
        let mut tls = self.tls.borrow_mut();
        !matches!(tls.reader().fill_buf(), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Waits until a read would return at once.
    async fn wait_readable(&self) -> io::Result<()> {
        loop {
            if self.read_ready() {
                return Ok(());
            }
            match self.pull() {
                Ok(true) => continue,
                Ok(false) => {}
                // The read that follows reports it.
                Err(_) => return Ok(()),
            }
            self.io.ready(Interest::READABLE).await?;
        }
    }

    /// Returns when the peer has closed or the connection failed; never while it only sends
    /// data (which stays buffered for the next read).
    pub async fn peer_gone(&self) {
        loop {
            if self.wait_readable().await.is_err() {
                return;
            }
            // 0: data waits; 1: nothing yet; 2: closed or failed.
            let state = {
                let mut tls = self.tls.borrow_mut();
                match tls.reader().fill_buf() {
                    _ if self.failed.get() => 2,
                    Ok(b) if !b.is_empty() => 0,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock && !self.eof.get() => 1,
                    _ => 2,
                }
            };
            match state {
                0 => std::future::pending::<()>().await,
                1 => {}
                _ => return,
            }
        }
    }
}

impl Conn for TlsConn {
    async fn read(&self, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        if buf.capacity() == buf.len() {
            buf.reserve(16 * 1024);
        }
        loop {
            if self.failed.get() {
                return (Err(io::ErrorKind::InvalidData.into()), buf);
            }
            {
                let mut tls = self.tls.borrow_mut();
                let mut reader = tls.reader();
                match reader.fill_buf() {
                    Ok(chunk) => {
                        let n = chunk.len().min(buf.capacity() - buf.len());
                        buf.extend_from_slice(&chunk[..n]);
                        reader.consume(n);
                        return (Ok(n), buf);
                    }
                    // No close_notify before the end of stream: an end all the same.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return (Ok(0), buf),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if self.eof.get() {
                            return (Ok(0), buf);
                        }
                    }
                    Err(e) => return (Err(e), buf),
                }
            }
            if let Err(e) = self.wait_readable().await {
                return (Err(e), buf);
            }
        }
    }

    async fn write(&self, buf: Vec<u8>, from: usize) -> (io::Result<usize>, Vec<u8>) {
        if self.failed.get() {
            return (Err(io::ErrorKind::InvalidData.into()), buf);
        }
        if let Err(e) = self.flush().await {
            return (Err(e), buf);
        }
        let end = buf.len().min(from + WRITE_CHUNK);
        let n = match self.tls.borrow_mut().writer().write(&buf[from..end]) {
            Ok(n) => n,
            Err(e) => return (Err(e), buf),
        };
        match self.flush().await {
            Ok(()) => (Ok(n), buf),
            Err(e) => (Err(e), buf),
        }
    }

    fn shutdown_write(&self) -> io::Result<()> {
        {
            let mut tls = self.tls.borrow_mut();
            tls.send_close_notify();
            while tls.wants_write() {
                if tls.write_tls(&mut Sock(&self.io)).is_err() {
                    break;
                }
            }
        }
        self.io.shutdown_write()
    }

    async fn ready(&self, interest: Interest) -> io::Result<()> {
        if interest.is_readable() {
            self.wait_readable().await
        } else {
            self.flush().await?;
            self.io.ready(Interest::WRITABLE).await
        }
    }

    /// Runs on the raw socket: only for operations that do not touch the byte stream.
    fn try_io<R>(&self, interest: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        self.io.try_io(interest, f)
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.io.fd()
    }
}
