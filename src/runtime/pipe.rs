//! Per-worker pools: pipes for `splice(2)` and copy buffers. A tunnel borrows one pipe per
//! direction and gives it back empty; a pipe that still holds data when its tunnel ends is
//! closed, never reused. Buffers are reused so that a session costs no `malloc`/`free` of its
//! copy buffers (glibc hands freed 16 KiB chunks back with `madvise`, a system call each).
//!
//! Pipe size: `tune.pipesize` when set, for every pipe, as HAProxy does. Unset, a pipe starts at
//! the kernel's default (64 KiB) and grows to [`GROWN_SIZE`] the first time one splice moves at
//! least half its capacity into it: a bulk transfer, whose socket may hold more than the pipe can
//! take. Half, not all: a pipe holds a number of page pieces (16 in 64 KiB), and segments that do
//! not start on a page boundary use up the pieces before the bytes reach the capacity (a full
//! 64 KiB pipe was seen to hold 65,483 bytes). When the proxy is what limits a transfer, each
//! splice then moves up to four times as much, for 14-23 % more bytes per CPU-second; when the
//! sender is, a splice moves what has arrived and the size makes no difference (bench/RESULTS.md,
//! "Pipes that grow for bulk transfers"). Small exchanges never get near and keep the default.
//!
//! Grown pipes are bounded per process ([`grow_budget`]): a grown pipe can pin four times the data
//! of a default one under a slow reader, and an unprivileged user's pipe capacity counts against
//! `fs.pipe-user-pages-soft`, past which the kernel makes every new pipe of that user one page.

use std::cell::RefCell;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::unistd::pipe2;

/// What a pipe grows to when a splice half fills it (and `tune.pipesize` is unset).
pub const GROWN_SIZE: usize = 256 * 1024;
/// Grown pipes at most per process when nothing smaller applies (see [`grow_budget`]).
const GROWN_MAX: usize = 1024;
/// Grown pipes open now, in every worker.
static GROWN: AtomicUsize = AtomicUsize::new(0);

/// A pipe: bytes spliced in from one socket wait here until spliced out to the other.
#[derive(Debug)]
pub struct Pipe {
    pub read: OwnedFd,
    pub write: OwnedFd,
    /// Bytes in the pipe now.
    pub pending: usize,
    /// What the pipe holds at most, as the kernel reported it.
    pub capacity: usize,
    /// Whether the pipe may still grow (it has not grown, nor been refused).
    may_grow: bool,
    /// Whether it counts in [`GROWN`].
    grown: bool,
}

impl Drop for Pipe {
    fn drop(&mut self) {
        if self.grown {
            GROWN.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Pipe {
    /// After a splice into the pipe moved `n` bytes: when that is at least half its capacity,
    /// grows it to [`GROWN_SIZE`] if it may and the process's budget allows. Once per pipe.
    pub fn filled(&mut self, n: usize) {
        if !self.may_grow || n < self.capacity / 2 {
            return;
        }
        self.may_grow = false;
        if GROWN.fetch_add(1, Ordering::Relaxed) >= grow_budget() {
            GROWN.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        match fcntl(&self.write, FcntlArg::F_SETPIPE_SZ(GROWN_SIZE as i32)) {
            Ok(c) => {
                self.capacity = c as usize;
                self.grown = true;
            }
            Err(_) => {
                GROWN.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Whether this pipe has grown past its first size.
    #[cfg(test)]
    fn is_grown(&self) -> bool {
        self.grown
    }
}

/// Grown pipes the process may hold: [`GROWN_MAX`], and for a user the kernel limits (one without
/// `CAP_SYS_RESOURCE` or `CAP_SYS_ADMIN`, under a non-zero `fs.pipe-user-pages-soft`) no more than
/// a quarter of that soft limit's pages, so growing leaves the user's other pipes their size.
fn grow_budget() -> usize {
    *BUDGET.get_or_init(|| {
        let privileged = std::fs::read_to_string("/proc/self/status").ok().is_some_and(|s| privileged(&s));
        budget_for(soft_pages(), privileged)
    })
}

static BUDGET: OnceLock<usize> = OnceLock::new();

fn soft_pages() -> Option<usize> {
    std::fs::read_to_string("/proc/sys/fs/pipe-user-pages-soft").ok().and_then(|s| s.trim().parse::<usize>().ok())
}

/// Settles [`grow_budget`] before the process gives up root ([`super::identity`]): a chroot hides
/// `/proc`, and whether the process will be privileged is known ahead of the switch.
pub fn fix_grow_budget(unprivileged_after: bool) {
    let privileged = !unprivileged_after && std::fs::read_to_string("/proc/self/status").ok().is_some_and(|s| privileged(&s));
    let _ = BUDGET.set(budget_for(soft_pages(), privileged));
}

/// The budget of [`grow_budget`] from the soft limit (pages) and whether the user is privileged.
fn budget_for(soft_pages: Option<usize>, privileged: bool) -> usize {
    let pages_per_pipe = GROWN_SIZE / 4096;
    match soft_pages {
        Some(soft) if soft > 0 && !privileged => (soft / 4 / pages_per_pipe).min(GROWN_MAX),
        _ => GROWN_MAX,
    }
}

/// Whether the effective capabilities in a `/proc/<pid>/status` text include `CAP_SYS_ADMIN` (21)
/// or `CAP_SYS_RESOURCE` (24), either of which lifts the kernel's per-user pipe limits.
fn privileged(status: &str) -> bool {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & ((1 << 21) | (1 << 24)) != 0)
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
        let capacity = fcntl(&write, FcntlArg::F_GETPIPE_SZ).map_or(65536, |c| c as usize);
        Ok(Pipe { read, write, pending: 0, capacity, may_grow: self.size.is_none() && capacity < GROWN_SIZE, grown: false })
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn fill(p: &Pipe, n: usize) {
        let mut w = std::fs::File::from(p.write.try_clone().unwrap());
        w.write_all(&vec![7u8; n]).unwrap();
    }

    #[test]
    fn a_pipe_a_splice_half_filled_grows_once_and_a_less_filled_one_does_not() {
        let pool = PipePool::new(None, 4);
        let mut p = pool.get().unwrap();
        let first = p.capacity;
        assert!(first < GROWN_SIZE, "the kernel's default pipe is {first} bytes");
        p.filled(first / 2 - 1);
        assert_eq!(p.capacity, first);
        assert!(!p.is_grown());
        // A full pipe of unaligned segments holds a little less than its capacity.
        fill(&p, first - 53);
        p.filled(first - 53);
        assert_eq!(p.capacity, GROWN_SIZE);
        assert!(p.is_grown());
        assert_eq!(fcntl(&p.write, FcntlArg::F_GETPIPE_SZ).unwrap() as usize, GROWN_SIZE);
    }

    #[test]
    fn a_set_tune_pipesize_is_kept_even_when_a_splice_fills_the_pipe() {
        let pool = PipePool::new(Some(65536), 4);
        let mut p = pool.get().unwrap();
        assert_eq!(p.capacity, 65536);
        fill(&p, 65536);
        p.filled(65536);
        assert_eq!(fcntl(&p.write, FcntlArg::F_GETPIPE_SZ).unwrap(), 65536);
        assert!(!p.is_grown());
    }

    #[test]
    fn the_grow_budget_is_a_quarter_of_the_soft_limit_only_for_users_it_binds() {
        // The kernel's default soft limit, 16384 pages: a quarter is 4096 pages, 64 pipes of 256 KiB.
        assert_eq!(budget_for(Some(16384), false), 64);
        assert_eq!(budget_for(Some(16384), true), GROWN_MAX);
        assert_eq!(budget_for(Some(0), false), GROWN_MAX, "0 means no soft limit");
        assert_eq!(budget_for(None, false), GROWN_MAX);
        assert_eq!(budget_for(Some(1 << 30), false), GROWN_MAX);
        assert_eq!(budget_for(Some(100), false), 0);
    }

    #[test]
    fn sys_admin_or_sys_resource_in_capeff_count_as_privileged() {
        assert!(privileged("Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n"));
        assert!(privileged("CapEff:\t0000000000200000\n"));
        assert!(privileged("CapEff:\t0000000001000000\n"));
        assert!(!privileged("CapPrm:\t000001ffffffffff\nCapEff:\t0000000000000400\n"));
        assert!(!privileged("no capabilities line\n"));
    }
}
