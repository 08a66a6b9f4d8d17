//! Process-level operations that need `unsafe`, each with the invariant it keeps:
//!
//! - `fd@N` listeners: turning a raw descriptor number into an owned socket. The descriptor is
//!   open, is a socket, is listening, and nothing else in this process owns it.
//! - Going into the background: `fork(2)` is only sound while the process has one thread; it is
//!   called before any thread or runtime starts.
//! - A worker under a master (`super::master`): the descriptors the master passed it by number,
//!   and the runtime API connections it receives over its channel with `SCM_RIGHTS`.

#![allow(unsafe_code)]

use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{getsockopt, sockopt};

/// Takes ownership of inherited descriptor `n` after checking it is a listening socket.
pub fn take_listening_fd(n: i32) -> Result<std::net::TcpListener, String> {
    let raw: RawFd = n;
    if nix::fcntl::fcntl(unsafe { BorrowedFd::borrow_raw(raw) }, nix::fcntl::FcntlArg::F_GETFD).is_err() {
        return Err(format!("fd@{n}: no such open file descriptor"));
    }
    // SAFETY: the descriptor is open (checked above) and only borrowed for the duration of the call.
    let borrowed = unsafe { BorrowedFd::borrow_raw(raw) };
    match getsockopt(&borrowed, sockopt::AcceptConn) {
        Ok(true) => {}
        Ok(false) => return Err(format!("fd@{n}: the socket is not listening")),
        Err(e) => return Err(format!("fd@{n}: not a socket ({e})")),
    }
    // SAFETY: the descriptor is an open listening socket that the configuration hands to us alone.
    let owned = unsafe { OwnedFd::from_raw_fd(raw) };
    let l = std::net::TcpListener::from(owned);
    // An inherited socket may be blocking; the reactor needs it non-blocking.
    l.set_nonblocking(true).map_err(|e| format!("fd@{n}: {e}"))?;
    Ok(l)
}

/// Forks into the background as `-D` asks: the parent writes the child's pid to `pidfile` (so
/// the file is there when the launching command returns, as HAProxy does) and exits 0; the child
/// starts a new session with its standard streams on /dev/null, and returns.
///
/// Must be called while the process has a single thread.
pub fn daemonize(pidfile: Option<&std::path::Path>) -> Result<(), String> {
    use nix::unistd::{ForkResult, fork, setsid};
    // SAFETY: no thread has been started yet (listeners are bound, workers are not), so the child
    // inherits no lock held by another thread.
    match unsafe { fork() } {
        Err(e) => Err(format!("cannot fork: {e}")),
        Ok(ForkResult::Parent { child }) => {
            if let Some(p) = pidfile
                && let Err(e) = std::fs::write(p, format!("{child}\n"))
            {
                eprintln!("sluiced: cannot write pid file '{}': {e}", p.display());
                let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGTERM);
                std::process::exit(1);
            }
            std::process::exit(0);
        }
        Ok(ForkResult::Child) => {
            setsid().map_err(|e| format!("setsid: {e}"))?;
            let null = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null").map_err(|e| e.to_string())?;
            nix::unistd::dup2_stdin(&null).map_err(|e| e.to_string())?;
            nix::unistd::dup2_stdout(&null).map_err(|e| e.to_string())?;
            nix::unistd::dup2_stderr(&null).map_err(|e| e.to_string())?;
            Ok(())
        }
    }
}

/// Takes ownership of inherited descriptor `n` (the master's pipe and channel, in a worker
/// started by `super::master`) after checking it is open, and marks it close-on-exec so no
/// program the worker starts inherits it.
pub fn take_inherited_fd(n: i32) -> Result<OwnedFd, String> {
    if n < 3 {
        return Err(format!("descriptor {n} is a standard stream"));
    }
    // SAFETY: only borrowed for the duration of the call; an unopened number makes it fail.
    if nix::fcntl::fcntl(unsafe { BorrowedFd::borrow_raw(n) }, nix::fcntl::FcntlArg::F_GETFD).is_err() {
        return Err(format!("descriptor {n} is not open"));
    }
    // SAFETY: the descriptor is open (checked above); the master passed it to this process alone
    // and names it once, in the environment read at start.
    let owned = unsafe { OwnedFd::from_raw_fd(n) };
    nix::fcntl::fcntl(&owned, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC)).map_err(|e| format!("descriptor {n}: {e}"))?;
    Ok(owned)
}

/// Takes ownership of a descriptor received with `SCM_RIGHTS` (a runtime API connection the
/// master passes to a worker).
pub fn take_received_fd(n: RawFd) -> OwnedFd {
    // SAFETY: the kernel installed this descriptor in this process when the message was
    // received, and nothing else knows its number.
    unsafe { OwnedFd::from_raw_fd(n) }
}
