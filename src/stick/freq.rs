//! HAProxy's frequency counters over a period (`freq_ctr` with a period, as the stick tables use
//! them), and the token bucket of the `token_bucket` data type.
//!
//! A rate is a sliding window: the events of the current period plus those of the previous period
//! weighted by the part of the window it still covers, `curr + prev * remain / period`, integer
//! division. A period starts at the first event and then rotates on period boundaries; after two
//! idle periods the history is dropped. Thresholds written for HAProxy mean the same here.

/// A frequency counter. Times are milliseconds of [`super::table::now_ms`]; `tick` 0 means no event
/// yet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FreqCtr {
    /// Start of the current period.
    tick: u64,
    curr: u32,
    prev: u32,
}

impl FreqCtr {
    /// Start of the current period (0: no event yet), its count and the previous period's.
    pub fn parts(&self) -> (u64, u32, u32) {
        (self.tick, self.curr, self.prev)
    }

    /// A counter from its parts, as a peer sends them.
    pub fn from_parts(tick: u64, curr: u32, prev: u32) -> FreqCtr {
        FreqCtr { tick, curr, prev }
    }

    /// Adds `inc` events now; returns the events of the current period.
    pub fn update(&mut self, now: u64, period: u64, inc: u32) -> u32 {
        let elapsed = now.saturating_sub(self.tick);
        if self.tick == 0 || elapsed >= period {
            if self.tick != 0 && elapsed < 2 * period {
                // The period just ended is the window's history.
                self.prev = self.curr;
                self.tick += period;
            } else {
                self.prev = 0;
                self.tick = now;
            }
            self.curr = 0;
        }
        self.curr = self.curr.saturating_add(inc);
        self.curr
    }

    /// Events over the last `period`, as HAProxy's `read_freq_ctr_period`.
    #[inline]
    pub fn read(&self, now: u64, period: u64) -> u32 {
        if self.tick == 0 {
            return 0;
        }
        let (mut curr, mut past) = (u64::from(self.curr), u64::from(self.prev));
        let mut remain = self.tick as i64 + period as i64 - now as i64;
        if remain < 0 {
            // The current period is over: what it counted is now the history, still partly in
            // the window unless a whole period has passed since.
            remain += period as i64;
            past = if remain >= 0 { curr } else { 0 };
            curr = 0;
        }
        let remain = remain.max(0) as u64;
        ((past * remain + curr * period) / period).min(u64::from(u32::MAX)) as u32
    }
}

/// A token bucket: `rate` tokens every `period` ms, at most `burst`. A new bucket is full.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    tokens: f64,
    last: u64,
}

impl Bucket {
    pub fn full(burst: u32, now: u64) -> Bucket {
        Bucket { tokens: f64::from(burst), last: now }
    }

    fn refill(&mut self, now: u64, rate: u32, period: u64, burst: u32) {
        let elapsed = now.saturating_sub(self.last);
        self.tokens = (self.tokens + elapsed as f64 * f64::from(rate) / period as f64).min(f64::from(burst));
        self.last = now;
    }

    /// Takes one token: `Ok(())`, or `Err(ms)` with the wait until one is there.
    pub fn take(&mut self, now: u64, rate: u32, period: u64, burst: u32) -> Result<(), u64> {
        self.refill(now, rate, period, burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        let missing = 1.0 - self.tokens;
        Err((missing * period as f64 / f64::from(rate)).ceil().max(1.0) as u64)
    }

    /// Whole tokens left now.
    pub fn level(&self, now: u64, rate: u32, period: u64, burst: u32) -> u64 {
        let mut b = *self;
        b.refill(now, rate, period, burst);
        b.tokens.floor() as u64
    }

    /// Sets the level (`set table ... data.token_bucket <n>`).
    pub fn set(&mut self, now: u64, tokens: u64, burst: u32) {
        self.tokens = (tokens as f64).min(f64::from(burst));
        self.last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u64 = 10_000;

    #[test]
    fn first_period_counts_every_event() {
        let mut f = FreqCtr::default();
        assert_eq!(f.read(5_000, P), 0);
        for i in 0..10 {
            f.update(5_000 + i, P, 1);
        }
        assert_eq!(f.read(5_010, P), 10);
        assert_eq!(f.read(5_000 + P - 1, P), 10);
    }

    #[test]
    fn previous_period_is_weighted_by_what_remains_of_the_window() {
        let mut f = FreqCtr::default();
        for _ in 0..10 {
            f.update(1_000, P, 1);
        }
        // A quarter into the next period: 10 * 3/4 of the history.
        assert_eq!(f.read(1_000 + P + P / 4, P), 7);
        f.update(1_000 + P + P / 4, P, 1);
        assert_eq!(f.read(1_000 + P + P / 4, P), 1 + 7);
        // Half way: 10 * 1/2 + 1.
        assert_eq!(f.read(1_000 + P + P / 2, P), 6);
    }

    #[test]
    fn two_idle_periods_forget_everything() {
        let mut f = FreqCtr::default();
        f.update(1_000, P, 5);
        assert_eq!(f.read(1_000 + 2 * P, P), 0);
        f.update(1_000 + 3 * P, P, 1);
        assert_eq!(f.read(1_000 + 3 * P, P), 1);
    }

    #[test]
    fn periods_rotate_on_their_boundaries() {
        let mut f = FreqCtr::default();
        f.update(1_000, P, 4);
        // An event late in the next period rotates to the boundary, not to now.
        f.update(1_000 + P + 9_000, P, 1);
        assert_eq!(f.read(1_000 + P + 9_000, P), 1 + 4 * 1_000 / P as u32);
    }

    #[test]
    fn bucket_allows_the_burst_then_the_rate() {
        let mut b = Bucket::full(3, 1);
        for _ in 0..3 {
            assert!(b.take(1, 1, 1_000, 3).is_ok());
        }
        assert_eq!(b.take(1, 1, 1_000, 3), Err(1_000));
        assert_eq!(b.take(501, 1, 1_000, 3), Err(500));
        assert!(b.take(1_001, 1, 1_000, 3).is_ok());
        assert_eq!(b.level(100_000, 1, 1_000, 3), 3);
    }
}
