//! Per-worker pools: pipes for `splice(2)` and copy buffers. A tunnel borrows one pipe per
//! direction and gives it back empty; a pipe that still holds data when its tunnel ends is
//! closed, never reused. Buffers are reused so that a session costs no `malloc`/`free` of its
//! copy buffers (glibc hands freed 16 KiB chunks back with `madvise`, a system call each).

use std::cell::RefCell;
use std::io;
use std::os::fd::OwnedFd;

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::unistd::pipe2;

/// A pipe: bytes spliced in from one socket wait here until spliced out to the other.
#[derive(Debug)]
pub struct Pipe {
    pub read: OwnedFd,
    pub write: OwnedFd,
    /// Bytes in the pipe now.
    pub pending: usize,
}

/// The pipes of one worker.
#[derive(Debug)]
pub struct PipePool {
    free: RefCell<Vec<Pipe>>,
    /// `tune.pipesize`, applied with `F_SETPIPE_SZ`; `None` keeps the kernel's default.
    size: Option<usize>,
    /// Idle pipes kept at most.
    keep: usize,
}

impl PipePool {
    pub fn new(size: Option<usize>, keep: usize) -> PipePool {
        PipePool { free: RefCell::new(Vec::new()), size, keep }
    }

    pub fn get(&self) -> io::Result<Pipe> {
        if let Some(p) = self.free.borrow_mut().pop() {
            return Ok(p);
        }
        let (read, write) = pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        if let Some(sz) = self.size {
            // The kernel rounds up and caps at /proc/sys/fs/pipe-max-size; a refusal keeps the default.
            let _ = fcntl(&write, FcntlArg::F_SETPIPE_SZ(sz.min(i32::MAX as usize) as i32));
        }
        Ok(Pipe { read, write, pending: 0 })
    }

    pub fn put(&self, p: Pipe) {
        let mut free = self.free.borrow_mut();
        if p.pending == 0 && free.len() < self.keep {
            free.push(p);
        }
    }

    /// Idle pipes in the pool now.
    pub fn idle(&self) -> usize {
        self.free.borrow().len()
    }
}

/// The copy buffers of one worker, all of one capacity.
#[derive(Debug)]
pub struct BufferPool {
    free: RefCell<Vec<Vec<u8>>>,
    keep: usize,
}

impl BufferPool {
    pub fn new(keep: usize) -> BufferPool {
        BufferPool { free: RefCell::new(Vec::new()), keep }
    }

    /// An empty buffer with at least `cap` bytes of capacity.
    pub fn get(&self, cap: usize) -> Vec<u8> {
        match self.free.borrow_mut().pop() {
            Some(b) if b.capacity() >= cap => b,
            _ => Vec::with_capacity(cap),
        }
    }

    pub fn put(&self, mut b: Vec<u8>) {
        let mut free = self.free.borrow_mut();
        if free.len() < self.keep {
            b.clear();
            free.push(b);
        }
    }
}
