//! When a decodable frame is shown: a receiver's playout delay, as libwebrtc's video timing
//! does it, so that freezes are counted the way a browser's `freezeCount` counts them.
//!
//! A browser does not show a frame the moment its last packet arrives. It renders each frame at
//! its capture time plus a playout delay that follows the jitter it sees; a frame that arrives
//! after its render time is shown late and raises the delay; after a few frames had to be
//! repaired by NACK the delay includes about a round trip (libwebrtc's jitter estimate adds the
//! RTT once NACKs are seen), so later repairs land inside it instead of stalling the picture.
//! Without this a simulated viewer counts every retransmitted packet as a freeze, which a real
//! Chromium does not, and penalises layers with more packets per second on lossy links.
//!
//! The model, per frame (times relative to the frame's capture):
//! - `lateness` = arrival - capture - the smallest transit seen (the propagation baseline);
//! - the target delay is the largest lateness of the last [`WINDOW`] (outliers above
//!   [`MAX_DELAY`] ignored), plus a small margin;
//! - the current delay moves towards the target by at most [`MAX_CHANGE_PER_S`] per second of
//!   frames, except that a late frame raises it at once by its lateness (up to the target);
//! - a frame is shown at `max(arrival, capture + baseline + current delay)`, never before the
//!   previous frame.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How far back the target delay looks.
const WINDOW: Duration = Duration::from_secs(10);
/// Lateness above this is a stall, not jitter: it does not set the delay.
const MAX_DELAY: Duration = Duration::from_millis(1000);
/// Added to the largest recent lateness (render and decode time in a browser).
const MARGIN: Duration = Duration::from_millis(10);
/// How fast the current delay may move towards the target (libwebrtc: 100 ms per second).
const MAX_CHANGE_PER_S: f64 = 0.1;

/// A receiver's playout clock.
#[derive(Debug, Default)]
pub struct Playout {
    /// Smallest arrival - capture seen.
    base: Option<Duration>,
    /// Recent (arrival instant, lateness).
    recent: VecDeque<(Instant, Duration)>,
    current: Duration,
    last_capture_us: Option<u64>,
    last_shown: Option<Instant>,
}

impl Playout {
    /// When a frame captured at `capture_us` (publisher clock, microseconds since its start,
    /// `start` on the viewer's clock) and complete and decodable at `now` is shown.
    pub fn show(&mut self, now: Instant, start: Instant, capture_us: u64) -> Instant {
        let capture = start + Duration::from_micros(capture_us);
        let transit = now.saturating_duration_since(capture);
        let base = *self.base.get_or_insert(transit);
        let base = base.min(transit);
        self.base = Some(base);
        let lateness = transit.saturating_sub(base);
        // Move the current delay towards the target for the media time since the last frame.
        let elapsed = self
            .last_capture_us
            .map_or(0, |l| capture_us.saturating_sub(l));
        self.last_capture_us = Some(
            self.last_capture_us
                .map_or(capture_us, |l| l.max(capture_us)),
        );
        if lateness <= MAX_DELAY {
            self.recent.push_back((now, lateness));
        }
        while self
            .recent
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > WINDOW)
        {
            self.recent.pop_front();
        }
        let target = self
            .recent
            .iter()
            .map(|&(_, l)| l)
            .max()
            .unwrap_or_default()
            + MARGIN;
        let step = Duration::from_secs_f64(elapsed as f64 / 1e6 * MAX_CHANGE_PER_S);
        self.current = if self.current < target {
            (self.current + step).min(target)
        } else {
            self.current.saturating_sub(step).max(target)
        };
        let planned = capture + base + self.current;
        let mut at = planned.max(now);
        if now > planned {
            // Late: shown on arrival, and the delay grows by what it missed (up to the target).
            self.current = (self.current + (now - planned)).min(target.max(self.current));
        }
        if let Some(prev) = self.last_shown {
            at = at.max(prev);
        }
        self.last_shown = Some(at);
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: Duration = Duration::from_millis(33);

    #[test]
    fn steady_frames_are_shown_at_a_steady_pace() {
        let start = Instant::now();
        let mut p = Playout::default();
        let mut shown = Vec::new();
        for i in 0..100u64 {
            let capture_us = i * 33_000;
            let arrival = start + Duration::from_micros(capture_us) + Duration::from_millis(75);
            shown.push(p.show(arrival, start, capture_us));
        }
        // Within a few ms of the frame interval (the delay settles on its margin first).
        for w in shown.windows(2) {
            let gap = w[1] - w[0];
            assert!(gap <= FRAME + Duration::from_millis(5), "{gap:?}");
        }
    }

    #[test]
    fn repeated_repairs_are_absorbed_once_the_delay_has_grown() {
        let start = Instant::now();
        let mut p = Playout::default();
        let mut gaps = Vec::new();
        let mut prev: Option<Instant> = None;
        for i in 0..300u64 {
            let capture_us = i * 33_000;
            // Every 20th frame needed a retransmission: 160 ms late.
            let late = if i % 20 == 10 { 160 } else { 0 };
            let arrival =
                start + Duration::from_micros(capture_us) + Duration::from_millis(75 + late);
            let at = p.show(arrival, start, capture_us);
            if let Some(pr) = prev {
                gaps.push(at - pr);
            }
            prev = Some(at);
        }
        // The first repair stalls the picture; by the end of ten seconds none does.
        let long = |g: &&Duration| **g > Duration::from_millis(150);
        assert!(gaps[..20].iter().any(|g| long(&g)), "first repair shows");
        assert!(!gaps[200..].iter().any(|g| long(&g)), "{:?}", &gaps[200..]);
    }

    #[test]
    fn a_stall_longer_than_a_second_is_a_freeze_and_does_not_become_the_delay() {
        let start = Instant::now();
        let mut p = Playout::default();
        let mut last = start;
        for i in 0..30u64 {
            last = p.show(
                start + Duration::from_micros(i * 33_000) + Duration::from_millis(75),
                start,
                i * 33_000,
            );
        }
        // Nothing for 2 s, then frames again.
        let capture_us = 30 * 33_000 + 2_000_000;
        let arrival = start + Duration::from_micros(capture_us) + Duration::from_millis(75);
        let at = p.show(arrival, start, capture_us);
        assert!(at - last > Duration::from_secs(2));
        let next = p.show(arrival + FRAME, start, capture_us + 33_000);
        assert!(next - at <= FRAME + Duration::from_millis(5));
    }
}
