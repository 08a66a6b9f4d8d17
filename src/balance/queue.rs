//! The wake-up of streams waiting in a backend's queue for a server slot.
//!
//! Nearly every release happens with nobody queued. A bare `Notify::notify_one` would still do a
//! compare-and-swap on the backend's notify state, a cache line every worker writes per request;
//! counting the waiters lets a release read a counter instead, and notify only when someone waits.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering, fence};
use std::task::{Context, Poll};

use tokio::sync::Notify;
use tokio::sync::futures::Notified;

/// Woken when a server slot is released (one waiter) or the servers' state changed (all).
#[derive(Debug, Default)]
pub struct SlotFreed {
    notify: Notify,
    /// Live [`SlotWait`]s: streams about to check for a slot, or waiting for one.
    waiters: AtomicUsize,
}

impl SlotFreed {
    pub fn new() -> SlotFreed {
        SlotFreed::default()
    }

    /// Registers a waiter: call it before checking for a free slot, `enable` the wait, check,
    /// then await. A slot released after this call is either seen by the check or wakes a waiter.
    ///
    /// Why no wake-up is lost: the waiter counts itself (SeqCst), fences, then reads the servers'
    /// `cur_conns`; a release decrements `cur_conns` (SeqCst), then reads the count (SeqCst). If
    /// the release reads 0, its decrement comes before this fence in the single SeqCst order, so
    /// the check after the fence sees the freed slot.
    pub fn notified(&self) -> SlotWait<'_> {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        SlotWait { notified: self.notify.notified(), _registered: Registered(&self.waiters) }
    }

    /// A slot was released, its `cur_conns` decrement made with `SeqCst`: wakes one waiter, if
    /// any registered.
    pub fn notify_one(&self) {
        if self.waiters.load(Ordering::SeqCst) > 0 {
            self.notify.notify_one();
        }
    }

    /// The servers' state or limits changed: every waiter checks again.
    pub fn notify_waiters(&self) {
        self.notify.notify_waiters();
    }

    /// Waiters registered now.
    pub fn waiters(&self) -> usize {
        self.waiters.load(Ordering::Relaxed)
    }
}

/// Counts one waiter for as long as its [`SlotWait`] lives; dropped after the inner `Notified`
/// (fields drop in order), so a waiter leaves the notify list before it stops being counted.
#[derive(Debug)]
struct Registered<'a>(&'a AtomicUsize);

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

pin_project_lite::pin_project! {
    /// A registered wait for a freed slot (see [`SlotFreed::notified`]).
    pub struct SlotWait<'a> {
        #[pin]
        notified: Notified<'a>,
        _registered: Registered<'a>,
    }
}

impl SlotWait<'_> {
    /// Joins the notify list now, so that a `notify_one` before the first poll is not lost
    /// (as [`Notified::enable`]); true when already notified.
    pub fn enable(self: Pin<&mut Self>) -> bool {
        self.project().notified.enable()
    }
}

impl Future for SlotWait<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.project().notified.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_release_with_nobody_waiting_leaves_no_permit() {
        let s = SlotFreed::new();
        s.notify_one();
        let w = s.notified();
        tokio::pin!(w);
        assert!(!w.as_mut().enable());
        assert_eq!(s.waiters(), 1);
    }

    #[test]
    fn waiters_are_counted_while_their_wait_lives() {
        let s = SlotFreed::new();
        let a = s.notified();
        let b = s.notified();
        assert_eq!(s.waiters(), 2);
        drop(a);
        assert_eq!(s.waiters(), 1);
        drop(b);
        assert_eq!(s.waiters(), 0);
    }

    #[test]
    fn a_registered_waiter_is_woken_even_before_it_enables() {
        let s = SlotFreed::new();
        let w = s.notified();
        s.notify_one();
        tokio::pin!(w);
        assert!(w.as_mut().enable());
    }
}
