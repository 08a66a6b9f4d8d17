//! A session's reusable timer: one tokio [`Sleep`], re-armed for each wait instead of a new
//! `tokio::time::timeout` per wait.
//!
//! Why: a fresh timeout per wait inserts a timer into the runtime's wheel when the wait blocks and
//! takes it out again when the wait ends, each under the time driver's lock; a keep-alive
//! request waits twice (for the request head, then for the response head), so that was four
//! wheel operations per request (about a thousand instructions of the proxy's per-request
//! total, counted with callgrind). Re-arming a registered `Sleep` to a later deadline only moves
//! its expiry forward in an atomic (tokio re-files it lazily if the earlier tick comes), and the
//! deadlines of successive waits on a connection mostly grow, so most re-arms touch no lock.
//! A wait whose future is ready at once never touches the timer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Poll, Waker};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// A timer owned by one session, for its waits one at a time.
///
/// The timer is armed lazily: a wait whose deadline is at or after the one the timer is armed
/// for leaves it alone, and when it fires before the wait's own deadline it is re-armed then. A
/// keep-alive connection whose timeouts are all the same length therefore re-arms about once per
/// timeout period, not once per wait. The session task's waker is registered with the timer once
/// and again only after a re-arm (or when the task's waker changed).
#[derive(Debug, Default)]
pub struct Deadline {
    sleep: Option<Pin<Box<Sleep>>>,
    /// The waker the armed timer will wake.
    registered: Option<Waker>,
}

impl Deadline {
    pub fn new() -> Deadline {
        Deadline::default()
    }

    /// Runs `f` until it completes or `at` passes; `None` when the deadline came first.
    pub async fn run<F: Future>(&mut self, at: Instant, f: F) -> Option<F::Output> {
        let mut f = std::pin::pin!(f);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(v) = f.as_mut().poll(cx) {
                return Poll::Ready(Some(v));
            }
            let sleep = match &mut self.sleep {
                Some(s) => {
                    if s.deadline() > at || (s.is_elapsed() && Instant::now() < at) {
                        // Armed too late for this wait, or fired early for it: re-arm.
                        s.as_mut().reset(at);
                        self.registered = None;
                    }
                    s
                }
                None => self.sleep.insert(Box::pin(tokio::time::sleep_until(at))),
            };
            if sleep.is_elapsed() {
                // It fired at or after `at` (a timer armed earlier was re-armed above).
                return Poll::Ready(None);
            }
            if !self.registered.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                if sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(None);
                }
                self.registered = Some(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }
}

/// The time now for a session deadline, read from the coarse monotonic clock
/// (`CLOCK_MONOTONIC_COARSE`) and never earlier than the precise clock.
///
/// Why: a keep-alive request computes a deadline for each of its two head waits, and again when
/// a head's first byte arrives. The precise clock is a `rdtsc` and some arithmetic in the vDSO,
/// which in a virtual machine showed up as about 2 % of the proxy's CPU per request (perf); the
/// coarse clock is a load of the time the kernel last stored at a tick. Deadlines are whole
/// milliseconds or more and tokio's timer wheel rounds to milliseconds anyway.
///
/// How: the coarse clock is the precise clock truncated to the last tick, so it lags by less than
/// its resolution. The first call on a thread pairs one precise reading with one coarse reading
/// and adds one resolution to the offset, so the result is never before the precise time and at
/// most two ticks (8 ms at `HZ=250`) after it: a deadline may fire that much late, never early.
pub fn coarse_now() -> Instant {
    use nix::time::{ClockId, clock_gettime};
    fn coarse() -> Option<Duration> {
        clock_gettime(ClockId::CLOCK_MONOTONIC_COARSE).ok().map(Duration::from)
    }
    thread_local! {
        /// The precise instant that coarse time zero maps to, plus one resolution; `None` where
        /// the coarse clock is missing.
        static BASE: Option<Instant> = {
            let res = nix::time::clock_getres(ClockId::CLOCK_MONOTONIC_COARSE).ok().map(Duration::from);
            let now = Instant::now();
            match (coarse(), res) {
                (Some(c), Some(r)) if r <= Duration::from_millis(20) => now.checked_sub(c).map(|b| b + r),
                _ => None,
            }
        };
    }
    BASE.with(|b| match (*b, coarse()) {
        (Some(base), Some(c)) => base + c,
        _ => Instant::now(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap()
    }

    #[test]
    fn coarse_now_is_never_before_the_precise_clock_and_close_after_it() {
        rt().block_on(async {
            for _ in 0..2000 {
                let before = Instant::now();
                let c = coarse_now();
                let after = Instant::now();
                assert!(c >= before, "coarse {c:?} before precise {before:?}");
                assert!(c <= after + Duration::from_millis(40), "coarse {c:?} too far after {after:?}");
            }
            let t = coarse_now();
            tokio::time::sleep(Duration::from_millis(30)).await;
            assert!(coarse_now() >= t + Duration::from_millis(20));
        });
    }

    #[test]
    fn a_ready_future_wins_without_arming_the_timer() {
        rt().block_on(async {
            let mut d = Deadline::new();
            assert_eq!(d.run(Instant::now(), async { 7 }).await, Some(7));
            assert!(d.sleep.is_none());
        });
    }

    #[test]
    fn a_timer_armed_for_an_earlier_wait_does_not_end_a_later_one() {
        rt().block_on(async {
            let mut d = Deadline::new();
            let t = Instant::now();
            let quick = async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                1
            };
            assert_eq!(d.run(t + Duration::from_millis(100), quick).await, Some(1));
            // Still armed for t + 100 ms, which passes during this wait: the wait goes on to its
            // own deadline and its future finishes first.
            let slow = async {
                tokio::time::sleep_until(t + Duration::from_millis(250)).await;
                2
            };
            assert_eq!(d.run(t + Duration::from_secs(30), slow).await, Some(2));
            assert!(t.elapsed() >= Duration::from_millis(250));
        });
    }

    #[test]
    fn the_deadline_ends_a_wait_and_the_timer_is_reused_for_later_and_earlier_deadlines() {
        rt().block_on(async {
            let mut d = Deadline::new();
            let start = Instant::now();
            assert_eq!(d.run(start + Duration::from_millis(50), std::future::pending::<()>()).await, None);
            assert!(start.elapsed() >= Duration::from_millis(50));
            // Later deadline: the future finishes first.
            let t = Instant::now();
            let got = d.run(t + Duration::from_secs(60), async {
                tokio::time::sleep(Duration::from_millis(10)).await;
                3
            });
            assert_eq!(got.await, Some(3));
            // An earlier deadline than the one still filed (60 s): it ends the wait, not the old one.
            let t = Instant::now();
            assert_eq!(d.run(t + Duration::from_millis(100), std::future::pending::<()>()).await, None);
            let waited = t.elapsed();
            assert!(waited >= Duration::from_millis(100) && waited < Duration::from_secs(30), "{waited:?}");
        });
    }
}
