//! Socket options that neither socket2 nor nix wrap: `TCP_DEFER_ACCEPT` and the listener side of
//! `TCP_FASTOPEN`. The `unsafe` here is `setsockopt(2)` with an `int` value: the pointer and length
//! describe a live local `c_int`, and the descriptor is borrowed from a socket we own.

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

/// Wakes the listener only when data arrives, waiting at most `secs` seconds.
pub fn set_defer_accept(fd: BorrowedFd<'_>, secs: i32) -> io::Result<()> {
    set_int(fd, libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT, secs)
}

/// Accepts TCP Fast Open with a queue of `qlen` pending requests.
pub fn set_fastopen(fd: BorrowedFd<'_>, qlen: i32) -> io::Result<()> {
    set_int(fd, libc::IPPROTO_TCP, libc::TCP_FASTOPEN, qlen)
}
