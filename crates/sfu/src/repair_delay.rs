//! Time for a retransmission to arrive before its frame is due on screen.
//!
//! A browser renders each video frame at its capture time plus a playout delay that follows the
//! jitter it measures. A lost packet repaired by NACK arrives a round trip later; if the playout
//! delay is shorter than that, the frame misses its slot and the picture freezes. libwebrtc knows
//! this: once three frames were delayed by retransmission (forgotten after 60 s without one) its
//! jitter estimator adds the round-trip time to the delay. But a browser learns the round trip
//! only from reports about what it sends: a receive-only participant (an observer, a specialist
//! with the camera off) never knows it and never adds it. On a 1 Mbit/s link with 3 % random loss
//! and a 300 ms round trip, Chromium as kham's observer held a 104 ms jitter buffer and froze
//! 20.9 % of the time (31 freezes a minute) where a direct call froze 1.7 % (browser-quality,
//! 2026-12-05).
//!
//! kham knows the subscriber's round trip (its receiver reports) and how many NACKs it sent, so
//! it applies libwebrtc's own rule for the browser and tells it through the playout-delay RTP
//! header extension (`http://www.webrtc.org/experiments/rtp-hdrext/playout-delay`, on every video
//! packet once it first applied): a minimum playout delay of the smoothed round trip plus
//! [`MARGIN`] once [`NACK_LIMIT`] NACKs came within [`NACK_TIMEOUT`], [`FLOOR`] otherwise, and a
//! maximum of [`MAX_DELAY`] (libwebrtc's default, so the maximum changes nothing). Never a
//! minimum of zero: libwebrtc reads min 0 with a maximum as a request for its low-latency
//! renderer, which drops frames to keep the queue short. A browser that does know
//! the round trip already holds about as much, so the minimum changes nothing there either. The
//! cost is latency: the audio is held as long as the video (lip sync), so on a lossy 300 ms
//! link the picture plays about a quarter of a second later than before (0.13 s later than a
//! direct call protected by ULPFEC). A frozen picture is worse for an
//! examination than a late one, and this is what the browser itself does when it can.
//!
//! Sans-IO: the time is a parameter; the room calls [`RepairDelay::update`] at every allocation
//! and reads [`RepairDelay::extension`] when it writes a video packet.

use std::time::{Duration, Instant};

/// NACKs within [`NACK_TIMEOUT`] of each other before the delay is added (libwebrtc's
/// `kNackLimit`, which counts frames delayed by retransmission).
pub const NACK_LIMIT: u64 = 3;
/// NACK count forgotten after this long without one (libwebrtc's `kNackCountTimeout`).
pub const NACK_TIMEOUT: Duration = Duration::from_secs(60);
/// Beyond the round trip: the receiver notices a gap at the next packet (a few ms at video
/// rates) and the frame must still be assembled and decoded.
pub const MARGIN: Duration = Duration::from_millis(50);
/// No more than this is asked for: a round trip inflated by a standing queue would otherwise
/// hold the picture (and the speech) a second or more behind.
pub const CAP: Duration = Duration::from_millis(700);
/// The maximum playout delay sent with the minimum (libwebrtc's default maximum).
pub const MAX_DELAY: Duration = Duration::from_secs(10);
/// The minimum sent once the rule no longer applies (below any jitter estimate: no effect).
pub const FLOOR: Duration = Duration::from_millis(10);
/// The minimum moves only by this much or more (every change is a new target for the
/// browser's delay, which then slews towards it).
const STEP: Duration = Duration::from_millis(20);
/// Weight of a new round-trip reading in the smoothed one.
const RTT_GAIN: f64 = 0.25;

/// One subscriber's repair delay.
#[derive(Debug, Default)]
pub struct RepairDelay {
    /// The cumulative NACK count last seen.
    nacks_seen: u64,
    /// NACKs counted since the count was last forgotten, and when the last one came.
    count: u64,
    last_nack: Option<Instant>,
    rtt_ms: Option<f64>,
    min: Duration,
    /// The rule applied at some point: the extension is sent from then on.
    applied: bool,
}

impl RepairDelay {
    /// Takes the subscriber's cumulative NACK count (every NACK it sent about what kham sends
    /// it) and its latest round trip (`None` when unknown, or not the link's, as during an
    /// outage: the last value is kept).
    pub fn update(&mut self, now: Instant, nacks_total: u64, rtt: Option<Duration>) {
        // A counter that went backwards restarted: count what it says now.
        let new = nacks_total
            .checked_sub(self.nacks_seen)
            .unwrap_or(nacks_total);
        self.nacks_seen = nacks_total;
        if self
            .last_nack
            .is_some_and(|t| now.saturating_duration_since(t) > NACK_TIMEOUT)
        {
            self.count = 0;
            self.last_nack = None;
        }
        if new > 0 {
            self.count = self.count.saturating_add(new);
            self.last_nack = Some(now);
        }
        if let Some(r) = rtt {
            let r = r.as_secs_f64() * 1000.0;
            self.rtt_ms = Some(self.rtt_ms.map_or(r, |s| s + RTT_GAIN * (r - s)));
        }
        let want = match self.rtt_ms {
            Some(rtt) if self.count >= NACK_LIMIT => {
                (Duration::from_secs_f64(rtt / 1000.0) + MARGIN).min(CAP)
            }
            _ => Duration::ZERO,
        };
        let moved = want.abs_diff(self.min);
        if moved >= STEP || (want.is_zero() != self.min.is_zero()) {
            if want.is_zero() != self.min.is_zero() {
                tracing::debug!(
                    min_ms = want.as_millis() as u64,
                    nacks = self.count,
                    "repair delay for the subscriber's video"
                );
            }
            // Whole 10 ms steps: the extension's unit.
            self.min = Duration::from_millis(want.as_millis().div_ceil(10) as u64 * 10);
        }
        self.applied |= !self.min.is_zero();
    }

    /// The minimum playout delay the rule asks for now (zero: none).
    #[cfg(test)]
    pub fn min_delay(&self) -> Duration {
        self.min
    }

    /// The (minimum, maximum) playout delay to write on the subscriber's video packets: none
    /// before the rule first applied, [`FLOOR`] as the minimum after it stopped applying.
    pub fn extension(&self) -> Option<(Duration, Duration)> {
        self.applied.then(|| (self.min.max(FLOOR), MAX_DELAY))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn no_delay_without_nacks() {
        let t0 = Instant::now();
        let mut r = RepairDelay::default();
        for i in 0..50 {
            r.update(t0 + ms(200 * i), 0, Some(ms(300)));
        }
        assert_eq!(r.min_delay(), Duration::ZERO);
        // Two NACKs are not yet a lossy link.
        r.update(t0 + ms(11_000), 2, Some(ms(300)));
        assert_eq!(r.min_delay(), Duration::ZERO);
        // Nothing is written on the packets before the rule first applies.
        assert_eq!(r.extension(), None);
    }

    #[test]
    fn a_round_trip_after_three_nacks_and_none_a_minute_later() {
        let t0 = Instant::now();
        let mut r = RepairDelay::default();
        r.update(t0, 0, Some(ms(300)));
        r.update(t0 + ms(1000), 3, Some(ms(300)));
        assert_eq!(r.min_delay(), ms(350));
        assert_eq!(r.extension(), Some((ms(350), MAX_DELAY)));
        // Still on 59 s after the last NACK...
        r.update(t0 + ms(60_000), 3, Some(ms(300)));
        assert_eq!(r.min_delay(), ms(350));
        // ...forgotten after 60 s without one.
        r.update(t0 + ms(61_500), 3, Some(ms(300)));
        assert_eq!(r.min_delay(), Duration::ZERO);
        // The browser is told the rule no longer applies, never with a minimum of zero.
        assert_eq!(r.extension(), Some((FLOOR, MAX_DELAY)));
        // A single NACK later does not bring it back.
        r.update(t0 + ms(62_000), 4, Some(ms(300)));
        assert_eq!(r.min_delay(), Duration::ZERO);
    }

    #[test]
    fn follows_the_round_trip_smoothly_and_is_capped() {
        let t0 = Instant::now();
        let mut r = RepairDelay::default();
        r.update(t0, 5, Some(ms(100)));
        assert_eq!(r.min_delay(), ms(150));
        // One reading of a queue moves it by a quarter of the difference.
        r.update(t0 + ms(200), 5, Some(ms(900)));
        assert_eq!(r.min_delay(), ms(350));
        // A standing queue of seconds is capped.
        for i in 2..40 {
            r.update(t0 + ms(200 * i), 5, Some(ms(3000)));
        }
        assert_eq!(r.min_delay(), CAP);
        // An unknown round trip keeps the last value.
        r.update(t0 + ms(9000), 5, None);
        assert_eq!(r.min_delay(), CAP);
    }

    #[test]
    fn small_changes_do_not_move_it() {
        let t0 = Instant::now();
        let mut r = RepairDelay::default();
        r.update(t0, 5, Some(ms(300)));
        assert_eq!(r.min_delay(), ms(350));
        r.update(t0 + ms(200), 5, Some(ms(340)));
        assert_eq!(r.min_delay(), ms(350));
    }

    #[test]
    fn a_restarted_counter_counts_from_zero() {
        let t0 = Instant::now();
        let mut r = RepairDelay::default();
        r.update(t0, 100, Some(ms(200)));
        assert_eq!(r.min_delay(), ms(250));
        // The counter went back to 1: one new NACK, the count stays above the limit.
        r.update(t0 + ms(200), 1, Some(ms(200)));
        assert_eq!(r.min_delay(), ms(250));
    }
}
