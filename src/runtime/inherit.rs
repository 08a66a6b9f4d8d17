//! `fd@N` listeners: taking ownership of a listening socket inherited from the parent process.
//!
//! This is the one place with `unsafe`: turning a raw descriptor number into an owned socket. The
//! invariant it keeps: the descriptor is open, is a socket, is listening, and nothing else in this
//! process owns it (the configuration names each `fd@N` once; validation refuses duplicates).

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
    Ok(std::net::TcpListener::from(owned))
}
