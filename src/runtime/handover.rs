//! Handing the listening sockets to the next process without a master: `-x <socket>` in the new
//! process, `stats socket ... level admin expose-fd listeners` in the old one (HAProxy's seamless
//! reload). The new process takes the sockets whose `listener::key` matches a bind of its own
//! instead of binding them, so the accept queues are never closed; the old process, once it has
//! given them, only stops accepting when told to finish, and never takes them off the port.
//!
//! The exchange is sluiced's own (HAProxy's answer carries its internal listener descriptions,
//! which nothing but HAProxy reads): the new process writes the line `_getsocks`; the old one
//! answers `K <key>` lines, each socket in `SCM_RIGHTS` on the write that carries its line, in
//! order, then `E`. Both sides parse a byte stream, so writes that the kernel splits or joins
//! change nothing. A worker reports its sockets to its master (`super::master`) in the same form.

use std::collections::HashMap;
use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The line that asks for the sockets.
pub const REQUEST: &[u8] = b"_getsocks\n";
/// At most this many sockets per write (the kernel's limit is 253).
const FDS_PER_WRITE: usize = 200;

static EXPOSED: OnceLock<Vec<(String, OwnedFd)>> = OnceLock::new();
static GIVEN: AtomicBool = AtomicBool::new(false);

/// Records copies of this process's TCP listening sockets, by key, for `_getsocks`.
pub fn expose(listeners: Vec<(String, OwnedFd)>) {
    let _ = EXPOSED.set(listeners);
}

/// True once a new process has taken the sockets: from then on they are shared with it, and
/// this process must not take them off their ports.
pub fn given() -> bool {
    GIVEN.load(Ordering::Relaxed)
}

/// A list of sockets as written: `K <key>` lines, at most [`FDS_PER_WRITE`] per write, each
/// write's sockets riding on it, then `E`.
pub fn encode<'a>(list: impl IntoIterator<Item = (&'a str, RawFd)>) -> Vec<(Vec<u8>, Vec<RawFd>)> {
    let list: Vec<(&str, RawFd)> = list.into_iter().collect();
    let mut writes: Vec<(Vec<u8>, Vec<RawFd>)> = list
        .chunks(FDS_PER_WRITE)
        .map(|chunk| (chunk.iter().map(|(k, _)| format!("K {k}\n")).collect::<String>().into_bytes(), chunk.iter().map(|&(_, fd)| fd).collect()))
        .collect();
    writes.push((b"E\n".to_vec(), Vec::new()));
    writes
}

/// Reads a list written as [`encode`] makes it from `fd`, up to its `E` (`flags`: `MSG_DONTWAIT`
/// for a list that must already be there).
pub fn receive(fd: BorrowedFd<'_>, flags: nix::sys::socket::MsgFlags) -> Result<Vec<(String, OwnedFd)>, String> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let (mut text, mut fds) = (Vec::new(), Vec::new());
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([RawFd; 253]);
        let msg = recvmsg::<()>(fd.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC | flags).map_err(|e| e.to_string())?;
        for m in msg.cmsgs().map_err(|e| e.to_string())? {
            if let ControlMessageOwned::ScmRights(v) = m {
                fds.extend(v.into_iter().map(super::sys::take_received_fd));
            }
        }
        let n = msg.bytes;
        if n == 0 {
            return Err("closed before the end of the list".into());
        }
        text.extend_from_slice(&buf[..n]);
        if text == b"E\n" || text.windows(3).any(|w| w == b"\nE\n") {
            break;
        }
        if text.len() > 16 * 1024 * 1024 {
            return Err("a list too long".into());
        }
    }
    let text = String::from_utf8_lossy(&text);
    let mut keys = Vec::new();
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("K", key)) => keys.push(key.to_string()),
            _ if line == "E" => break,
            _ => return Err(format!("'{line}' where a socket was expected")),
        }
    }
    if keys.len() != fds.len() {
        return Err(format!("{} socket names for {} sockets", keys.len(), fds.len()));
    }
    Ok(keys.into_iter().zip(fds).collect())
}

/// Answers `_getsocks` on `c` (the request line already read).
pub async fn give(c: &tokio::net::UnixStream) -> std::io::Result<()> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    let all: &[(String, OwnedFd)] = EXPOSED.get().map_or(&[], Vec::as_slice);
    GIVEN.store(true, Ordering::Relaxed);
    for (text, fds) in encode(all.iter().map(|(k, fd)| (k.as_str(), fd.as_raw_fd()))) {
        let mut sent = 0;
        while sent < text.len() {
            c.writable().await?;
            // The sockets ride on the first bytes of their lines; the rest follows plain.
            let with: &[i32] = if sent == 0 { &fds } else { &[] };
            let cmsgs = [ControlMessage::ScmRights(with)];
            let r = c.try_io(tokio::io::Interest::WRITABLE, || {
                sendmsg::<()>(c.as_raw_fd(), &[IoSlice::new(&text[sent..])], if with.is_empty() { &[] } else { &cmsgs }, MsgFlags::MSG_NOSIGNAL, None)
                    .map_err(std::io::Error::from)
            });
            match r {
                Ok(n) => sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Asks the process behind the unix socket `path` for its listening sockets (`-x`).
pub fn fetch(path: &std::path::Path) -> Result<HashMap<String, OwnedFd>, String> {
    use std::io::Write;
    let mut c = std::os::unix::net::UnixStream::connect(path).map_err(|e| format!("cannot connect to '{}': {e}", path.display()))?;
    c.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    c.write_all(REQUEST).map_err(|e| format!("'{}': {e}", path.display()))?;
    let list = receive(c.as_fd(), nix::sys::socket::MsgFlags::empty())
        .map_err(|e| format!("'{}': {e} (is it a stats socket with 'level admin expose-fd listeners'?)", path.display()))?;
    Ok(list.into_iter().collect())
}
