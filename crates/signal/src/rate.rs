//! The per-socket rate limit of signaling messages: a token bucket, with time as a parameter so
//! it is tested without a clock.
//!
//! Every frame a client sends takes a token; tokens come back at `rate` per second up to
//! `burst`. A frame finding the bucket empty is dropped and the client is told (`rate_limited`,
//! at most once a second). A client that goes on regardless (`flood_after` frames dropped since
//! its bucket was last full) is flooding: the session closes it (close code 4005). One
//! participant can then no longer fill the other participants' queues with re-broadcasts.

use std::time::{Duration, Instant};

/// The configured limits (`[signaling]` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    /// Sustained messages per second.
    pub rate: f64,
    /// Messages that may arrive at once after a quiet period.
    pub burst: u32,
    /// Frames dropped since the bucket was last full after which the client is closed.
    pub flood_after: u32,
}

impl Default for RateLimits {
    /// The embedded configuration's values: far above what the web client sends (a `video_view`
    /// at most 4 times a second, a ping every 20 s, a handful of messages on admission and per
    /// renegotiation, mutes on clicks).
    fn default() -> Self {
        RateLimits {
            rate: 20.0,
            burst: 60,
            flood_after: 100,
        }
    }
}

/// What to do with one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Handle it.
    Pass,
    /// Drop it; `notify`: send the client a `rate_limited` error (at most once a second).
    Drop { notify: bool },
    /// Drop it and close the socket: the client keeps flooding.
    Flooding,
}

/// How often a client is told its messages are dropped.
const NOTIFY_EVERY: Duration = Duration::from_secs(1);

/// One socket's bucket.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    limits: RateLimits,
    tokens: f64,
    last: Instant,
    /// Frames dropped since the bucket was last full.
    dropped: u32,
    last_notice: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(limits: RateLimits, now: Instant) -> Self {
        TokenBucket {
            limits,
            tokens: f64::from(limits.burst),
            last: now,
            dropped: 0,
            last_notice: None,
        }
    }

    /// Takes a token for a frame arriving at `now`.
    pub fn take(&mut self, now: Instant) -> Verdict {
        let burst = f64::from(self.limits.burst);
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.limits.rate).min(burst);
        if self.tokens >= burst {
            // Quiet long enough to refill: earlier excess is forgiven.
            self.dropped = 0;
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Verdict::Pass;
        }
        self.dropped = self.dropped.saturating_add(1);
        if self.dropped >= self.limits.flood_after {
            return Verdict::Flooding;
        }
        let notify = self
            .last_notice
            .is_none_or(|t| now.saturating_duration_since(t) >= NOTIFY_EVERY);
        if notify {
            self.last_notice = Some(now);
        }
        Verdict::Drop { notify }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: RateLimits = RateLimits {
        rate: 10.0,
        burst: 5,
        flood_after: 20,
    };

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn burst_passes_then_drops_and_notifies_once_a_second() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(LIMITS, t0);
        for _ in 0..5 {
            assert_eq!(b.take(t0), Verdict::Pass);
        }
        assert_eq!(b.take(t0), Verdict::Drop { notify: true });
        assert_eq!(b.take(ms(t0, 50)), Verdict::Drop { notify: false });
        // 100 ms at 10/s brings one token back.
        assert_eq!(b.take(ms(t0, 150)), Verdict::Pass);
        assert_eq!(b.take(ms(t0, 160)), Verdict::Drop { notify: false });
        // 0.84 s refill the bucket, but only up to the burst.
        for _ in 0..5 {
            assert_eq!(b.take(ms(t0, 990)), Verdict::Pass);
        }
        assert_eq!(b.take(ms(t0, 990)), Verdict::Drop { notify: false });
        assert_eq!(b.take(ms(t0, 995)), Verdict::Drop { notify: false });
        // A second after the first notice the client is told again.
        assert_eq!(b.take(ms(t0, 1000)), Verdict::Drop { notify: true });
    }

    #[test]
    fn steady_rate_never_drops() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(LIMITS, t0);
        // Exactly the rate, for a minute, after spending the burst.
        for _ in 0..5 {
            assert_eq!(b.take(t0), Verdict::Pass);
        }
        for i in 1..=600 {
            assert_eq!(b.take(ms(t0, i * 100)), Verdict::Pass, "message {i}");
        }
    }

    #[test]
    fn a_flood_is_closed_after_flood_after_drops() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(LIMITS, t0);
        let verdicts: Vec<Verdict> = (0..40).map(|_| b.take(t0)).collect();
        let passed = verdicts.iter().filter(|v| **v == Verdict::Pass).count();
        assert_eq!(passed, 5);
        let first_flood = verdicts.iter().position(|v| *v == Verdict::Flooding);
        assert_eq!(first_flood, Some(5 + 19), "20th dropped frame closes");
    }

    #[test]
    fn sustained_excess_is_flooding_within_seconds() {
        // Twice the rate: half the frames dropped, 10 a second, so the 20th drop comes
        // about 2 s after the burst is spent.
        let t0 = Instant::now();
        let mut b = TokenBucket::new(LIMITS, t0);
        let mut flooding_at = None;
        for i in 0..200u64 {
            if b.take(ms(t0, i * 50)) == Verdict::Flooding {
                flooding_at = Some(i * 50);
                break;
            }
        }
        let at = flooding_at.expect("twice the rate must end as flooding");
        assert!((1500..=3000).contains(&at), "flooding at {at} ms");
    }

    #[test]
    fn a_quiet_period_forgives_earlier_drops() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(LIMITS, t0);
        // Burst plus 15 drops, three times, each after a pause that refills the bucket: 45 drops
        // in all, never 20 in one episode.
        for round in 0..3u64 {
            let t = ms(t0, round * 2000);
            for _ in 0..5 {
                assert_eq!(b.take(t), Verdict::Pass);
            }
            for _ in 0..15 {
                assert!(matches!(b.take(t), Verdict::Drop { .. }));
            }
        }
    }

    #[test]
    fn time_going_backwards_does_not_mint_tokens() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut b = TokenBucket::new(LIMITS, t0);
        for _ in 0..5 {
            b.take(t0);
        }
        assert!(matches!(
            b.take(t0 - Duration::from_secs(5)),
            Verdict::Drop { .. }
        ));
        assert!(matches!(b.take(t0), Verdict::Drop { .. }));
    }
}
