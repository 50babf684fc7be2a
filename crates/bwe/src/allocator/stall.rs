//! Padding out of a stalled estimate.
//!
//! An SFU's sending is application-limited: the allocator forwards a layer that fits inside the
//! estimate with headroom, so what the subscriber acknowledges stays well below the estimate. In
//! str0m's send-side estimator (libwebrtc's design) the estimate then cannot grow: the delay-based
//! AIMD is capped at 1.5 x the acknowledged rate, and once the loss-based controller has entered
//! its loss-limited state it raises the estimate only towards 1.2-1.5 x the acknowledged rate and
//! starts no probe at all (`ProbeControl::can_probe`), so the allocation pulses find nothing to
//! trigger. Measured in Chromium behind norway-hsdpa/metro-8 (browser-quality, 2026-12-04): a
//! few losses in the first seconds put the loss controller into its decreasing state, and the
//! estimate stayed at exactly 162-189 kbit/s for 22-57 s while kham sent 100-130 kbit/s (180p at
//! 7.5 fps) and the direct call, whose encoder fills its estimate, climbed to 1 Mbit/s on the same
//! link.
//!
//! The way out is to send what the estimate already allows. When the estimate has not moved for
//! [`FLAT_FOR`] while the subscriber could use more, the allocator asks str0m to pad up to
//! [`PAD_SHARE`] of the estimate (the padding floor, `Probe::min_bps`) for [`PAD_FOR`], longer
//! while the estimate keeps rising. Padding within the estimate is what the estimator already
//! believes fits; a pad that finds nothing is retried after a backoff that doubles up to
//! [`MAX_BACKOFF`], so a link that really is that small costs a few seconds of padding a minute.
//!
//! The same schedule paces the padding of a subscriber whose video is paused for bandwidth
//! (`Stall::paused`): there the link carries audio alone, and padding that fills it is a queue
//! in front of the audio. Padding without pause (towards the resume rate, below the estimate)
//! kept a 60 kbit/s link in Chromium full for the whole pause: 56-62 kbit/s received every
//! second, audio arriving in bursts of 2-100 packets a second and 16-34 % of it concealed in
//! the first seconds. In windows, a pad stops at the first overuse, and it must lift the
//! estimate by [`PAUSED_RISE`] to go on.

use std::time::{Duration, Instant};

/// The estimate counts as flat while it stays within this share of where it was...
const FLAT_BAND: f64 = 0.05;
/// A pad while video is paused goes on only while it lifts the estimate by this share (the
/// additive increase alone moves a small estimate by 5 % in a second or two).
pub const PAUSED_RISE: f64 = 0.15;
/// ...for this long.
pub const FLAT_FOR: Duration = Duration::from_secs(4);
/// Padding goes up to this share of the estimate (media included).
pub const PAD_SHARE: f64 = 0.9;
/// A pad lasts this long, renewed while the estimate rises during it.
pub const PAD_FOR: Duration = Duration::from_secs(2);
/// After a pad that found nothing, the next waits this long, doubling...
const FIRST_BACKOFF: Duration = Duration::from_secs(4);
/// ...up to this.
pub const MAX_BACKOFF: Duration = Duration::from_secs(32);

/// Whether the estimate is stalled below what the subscriber could use, and the padding that
/// answers it.
#[derive(Debug, Clone, Copy)]
pub struct Stall {
    /// Where the estimate was when it last moved, and when.
    flat_at: u64,
    flat_since: Option<Instant>,
    /// The pad in progress: until when, and the estimate it started from.
    pad_until: Option<Instant>,
    pad_from: u64,
    /// No pad before this (after one that found nothing).
    next_after: Option<Instant>,
    backoff: Duration,
    /// The rise during a pad that counts as finding room.
    rise: f64,
}

impl Default for Stall {
    fn default() -> Self {
        Stall {
            flat_at: 0,
            flat_since: None,
            pad_until: None,
            pad_from: 0,
            next_after: None,
            backoff: FIRST_BACKOFF,
            rise: FLAT_BAND,
        }
    }
}

impl Stall {
    /// The schedule of the padding while video is paused for bandwidth.
    pub fn paused() -> Self {
        Stall {
            rise: PAUSED_RISE,
            ..Stall::default()
        }
    }

    /// The padding floor for a stalled estimate to ask for now (0 = none), [`PAD_SHARE`] of
    /// the estimate while [`Stall::pad`] says so.
    pub fn update(&mut self, now: Instant, estimate: u64, wants_more: bool) -> u64 {
        if self.pad(now, estimate, wants_more) {
            (estimate as f64 * PAD_SHARE) as u64
        } else {
            0
        }
    }

    /// Ends a pad in progress because the link got into trouble (overuse): the next one waits
    /// as after a pad that found nothing.
    pub fn abort(&mut self, now: Instant) {
        if self.pad_until.take().is_some() {
            self.next_after = Some(now + self.backoff);
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Whether to pad now. `wants_more`: the subscriber could use more than the estimate and
    /// nothing argues against testing the link (no shortfall, no keyframe burst in flight, no
    /// heavy loss); false ends a pad in progress at once.
    pub fn pad(&mut self, now: Instant, estimate: u64, wants_more: bool) -> bool {
        let moved = (estimate as f64 - self.flat_at as f64).abs() > FLAT_BAND * self.flat_at as f64;
        if moved || self.flat_since.is_none() {
            self.flat_at = estimate;
            self.flat_since = Some(now);
        }
        if !wants_more {
            self.pad_until = None;
            return false;
        }
        if let Some(until) = self.pad_until {
            if estimate as f64 > self.pad_from as f64 * (1.0 + self.rise) {
                // It found room: keep climbing, and the next stall starts from the base backoff.
                self.pad_from = estimate;
                self.pad_until = Some(now + PAD_FOR);
                self.backoff = FIRST_BACKOFF;
            } else if now >= until {
                self.pad_until = None;
                self.next_after = Some(now + self.backoff);
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                return false;
            }
            return true;
        }
        let flat = self
            .flat_since
            .is_some_and(|t| now.saturating_duration_since(t) >= FLAT_FOR);
        if flat && self.next_after.is_none_or(|t| now >= t) {
            self.pad_until = Some(now + PAD_FOR);
            self.pad_from = estimate;
            return true;
        }
        false
    }

    /// Whether a pad is in progress.
    #[cfg(test)]
    pub fn padding(&self) -> bool {
        self.pad_until.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn a_flat_estimate_is_padded_to_while_it_rises_and_backs_off_when_it_does_not() {
        let t0 = Instant::now();
        let mut s = Stall::default();
        let mut pads = Vec::new();
        // Flat at 160 kbit/s: the first pad after FLAT_FOR, to 0.9 x the estimate.
        for ms in (0..4_000).step_by(200) {
            assert_eq!(s.update(at(t0, ms), 160_000, true), 0, "at {ms} ms");
        }
        assert!(s.update(at(t0, 4_000), 160_000, true).abs_diff(144_000) <= 1);
        // The estimate rises during the pad: padding follows it and lasts.
        let mut est = 160_000;
        for ms in (4_200..10_000).step_by(200) {
            est += 4_000;
            let pad = s.update(at(t0, ms), est, true);
            assert!(pad.abs_diff(est * 9 / 10) <= 1, "{pad} at {ms} ms");
        }
        // It stops rising: the pad ends PAD_FOR later, and the next ones find nothing and come
        // further and further apart.
        for ms in (10_000..200_000).step_by(200) {
            if s.update(at(t0, ms), est, true) > 0 && pads.last().is_none_or(|&p| ms - p > 2_000) {
                pads.push(ms);
            }
        }
        let gaps: Vec<u64> = pads.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(pads.len() >= 4, "{pads:?}");
        assert!(gaps.windows(2).all(|g| g[1] >= g[0]), "{gaps:?}");
        assert!(
            *gaps.last().unwrap_or(&0) <= (MAX_BACKOFF + PAD_FOR).as_millis() as u64 + 200,
            "{gaps:?}"
        );
    }

    #[test]
    fn no_padding_when_the_subscriber_has_what_it_can_use_or_the_link_is_in_trouble() {
        let t0 = Instant::now();
        let mut s = Stall::default();
        for ms in (0..20_000).step_by(200) {
            assert_eq!(s.update(at(t0, ms), 160_000, false), 0);
        }
        // A pad in progress stops at once when the link gets into trouble.
        let mut s = Stall::default();
        for ms in (0..=4_000).step_by(200) {
            s.update(at(t0, ms), 160_000, true);
        }
        assert!(s.padding());
        assert_eq!(s.update(at(t0, 4_200), 160_000, false), 0);
        assert!(!s.padding());
    }
}
