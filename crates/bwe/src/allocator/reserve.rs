//! What the allocator keeps for audio, and what a standing queue takes off the estimate.
//!
//! **Speech is reserved through its pauses.** The allocator gives video what the estimate leaves
//! beside the audio. Measured per half second, speech in a pause is a few DTX packets (1-2
//! kbit/s), so in every pause of the talker a thin link looked able to carry video: on a
//! 48 kbit/s link (simulator, `audio` family) a probe confirmed the lowest layer during a pause
//! and when the talker went on, audio and video together queued 300-370 ms in front of the
//! speech, and video never paused again. [`AudioReserve`] holds the rate of speech through its
//! pauses and follows it down when it is lower (an `audio_rate` cap).
//!
//! **A standing queue is a rate the link does not carry.** str0m's delay-based estimator
//! reacts to queues that grow; a bottleneck queue that is full (a drop-tail buffer of a 3G cell)
//! no longer grows, the delay gradient is flat, and the estimate sits at what fills the
//! buffer, 10-15 % above the link (seen behind a steady 48 kbit/s link: 52-56 kbit/s estimated
//! for minutes, the buffer full, speech 350 ms late). The round-trip time shows it: it stays
//! above the lowest of the last [`RTT_WINDOW`]s by the queue. [`StandingQueue`] turns the excess
//! into a share of the estimate to give up ([`StandingQueue::factor`]), enough to drain it
//! within [`DRAIN_IN`], and the allocator steps video down (or pauses it) when the queue stands
//! for a few seconds while the detector sees no overuse (`AllocatorConfig::standing_queue`).

use std::time::{Duration, Instant};

/// Audio measured above this is speech (Opus's DTX in a pause sends a few packets a second,
/// 1-2 kbit/s with headers; speech at kham's lowest cap takes about 25).
pub const SPEECH_MIN_BPS: u64 = 8_000;
/// While speech goes on at a lower rate (a cap, a quieter talker) the reserve follows it down
/// after between one and two of these of speech (pauses do not count).
pub const FOLLOW: Duration = Duration::from_secs(3);

/// What speech takes: the highest audio rate of the last one or two [`FOLLOW`]s of speech, held
/// through pauses of any length (a listener's talker may be silent for minutes while the other
/// side speaks). Only time with speech advances the window, so neither a pause nor the
/// half-filled measurement windows at a spurt's start and end lower it.
#[derive(Debug, Clone, Default)]
pub struct AudioReserve {
    current: u64,
    previous: u64,
    speech_for: Duration,
    last: Option<Instant>,
}

impl AudioReserve {
    /// Feeds the audio rate measured now; returns what to reserve for audio.
    pub fn update(&mut self, now: Instant, bps: u64) -> u64 {
        let dt = self
            .last
            .map_or(Duration::ZERO, |l| now.saturating_duration_since(l));
        self.last = Some(now);
        if bps >= SPEECH_MIN_BPS || bps > self.current.max(self.previous) {
            self.current = self.current.max(bps);
            self.speech_for += dt;
            if self.speech_for >= FOLLOW {
                self.previous = self.current;
                self.current = bps;
                self.speech_for = Duration::ZERO;
            }
        }
        self.current.max(self.previous)
    }
}

/// How long [`RecentMax`] keeps a rate (two buckets: between one and two of these).
pub const RECENT: Duration = Duration::from_secs(5);

/// The highest of the rates fed in the last 5-10 s.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecentMax {
    current: u64,
    previous: u64,
    since: Option<Instant>,
}

impl RecentMax {
    pub fn update(&mut self, now: Instant, bps: u64) {
        let since = *self.since.get_or_insert(now);
        if now.saturating_duration_since(since) >= RECENT {
            self.previous = self.current;
            self.current = 0;
            self.since = Some(now);
        }
        self.current = self.current.max(bps);
    }

    pub fn get(&self) -> u64 {
        self.current.max(self.previous)
    }
}

/// The lowest round-trip time is taken over this window (two buckets), so that a new path with
/// a longer base delay (a handover) is learnt within one or two windows.
pub const RTT_WINDOW: Duration = Duration::from_secs(20);
/// Round-trip time above the lowest by less than this is jitter, not a queue.
pub const QUEUE_MIN: Duration = Duration::from_millis(100);
/// A standing queue is drained within this (what share of the estimate is given up).
pub const DRAIN_IN: Duration = Duration::from_secs(3);
/// Never more than this share of the estimate is given up for a queue.
pub const MAX_GIVE_UP: f64 = 0.3;

/// The round-trip time above its recent lowest: a bottleneck queue that does not drain.
#[derive(Debug, Clone, Default)]
pub struct StandingQueue {
    min_current: Option<Duration>,
    min_previous: Option<Duration>,
    since: Option<Instant>,
    excess: Duration,
}

impl StandingQueue {
    /// Feeds the round-trip time measured now (`None`: none yet).
    pub fn update(&mut self, now: Instant, rtt: Option<Duration>) {
        let Some(rtt) = rtt else {
            return;
        };
        let since = *self.since.get_or_insert(now);
        if now.saturating_duration_since(since) >= RTT_WINDOW {
            self.min_previous = self.min_current;
            self.min_current = None;
            self.since = Some(now);
        }
        self.min_current = Some(self.min_current.map_or(rtt, |m| m.min(rtt)));
        let base = match (self.min_current, self.min_previous) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(rtt),
        };
        self.excess = rtt.saturating_sub(base);
    }

    /// The queue standing now (round-trip time above its recent lowest).
    pub fn excess(&self) -> Duration {
        self.excess
    }

    /// The share of the estimate to allocate: 1 without a standing queue, less by what drains
    /// the queue within [`DRAIN_IN`], never below `1 - MAX_GIVE_UP`.
    pub fn factor(&self) -> f64 {
        if self.excess < QUEUE_MIN {
            return 1.0;
        }
        let give_up = self.excess.as_secs_f64() / DRAIN_IN.as_secs_f64();
        1.0 - give_up.min(MAX_GIVE_UP)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speech_is_reserved_through_pauses_and_followed_down() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut r = AudioReserve::default();
        assert_eq!(r.update(at(0), 40_000), 40_000);
        // A pause of any length: DTX only, the speech rate is held.
        assert_eq!(r.update(at(3_000), 2_000), 40_000);
        assert_eq!(r.update(at(60_000), 2_000), 40_000);
        // A spurt's first half-filled window does not lower it.
        assert_eq!(r.update(at(60_200), 15_000), 40_000);
        // Speech again at a capped rate: followed down after one to two FOLLOWs of speech.
        let mut v = 0;
        for k in 1..=10 {
            v = r.update(at(60_200 + k * 200), 25_000);
        }
        assert_eq!(v, 40_000, "2 s of speech: not yet");
        for k in 11..=40 {
            v = r.update(at(60_200 + k * 200), 25_000);
        }
        assert_eq!(v, 25_000, "8 s of speech at the cap");
        // Louder speech is taken at once.
        assert_eq!(r.update(at(69_000), 45_000), 45_000);
    }

    #[test]
    fn a_queue_that_stands_takes_a_share_of_the_estimate() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let ms = |v: u64| Some(Duration::from_millis(v));
        let mut q = StandingQueue::default();
        q.update(at(0), None);
        assert_eq!(q.factor(), 1.0);
        q.update(at(0), ms(150));
        q.update(at(1_000), ms(230));
        // 80 ms of jitter is no queue.
        assert_eq!(q.factor(), 1.0);
        q.update(at(2_000), ms(450));
        assert_eq!(q.excess(), Duration::from_millis(300));
        assert!((q.factor() - 0.9).abs() < 1e-9, "{}", q.factor());
        // Seconds of queue: at most MAX_GIVE_UP.
        q.update(at(3_000), ms(3_150));
        assert!((q.factor() - (1.0 - MAX_GIVE_UP)).abs() < 1e-9);
        // A new path with a longer base delay is learnt within two windows.
        for k in 0..45 {
            q.update(at(4_000 + k * 1_000), ms(400));
        }
        assert_eq!(q.factor(), 1.0, "{:?}", q.excess());
    }
}
