//! Measured bitrate and frame rate of every layer of a published track, for the allocator.
//!
//! Per packet this only adds to fixed arrays (no allocation, no clock read: the packet's
//! arrival time comes in); every half second the counts become smoothed rates.

use std::time::{Duration, Instant};

use kham_bwe::{LayerRates, MAX_SPATIAL, MAX_TEMPORAL};

/// Length of one measurement window.
const WINDOW: Duration = Duration::from_millis(500);
/// Weight of the newest window in the smoothed rate.
const ALPHA: f64 = 0.5;

#[derive(Debug, Clone)]
pub struct LayerMeter {
    window_start: Option<Instant>,
    bytes: [[u64; MAX_TEMPORAL]; MAX_SPATIAL],
    /// Frames ended (RTP marker) in the window.
    frames: [[u32; MAX_TEMPORAL]; MAX_SPATIAL],
    /// Smoothed per-temporal-layer rates (not cumulative).
    rate: [[f64; MAX_TEMPORAL]; MAX_SPATIAL],
    /// Smoothed per-temporal-layer frame rates (not cumulative).
    fps: [[f64; MAX_TEMPORAL]; MAX_SPATIAL],
    /// Windows in a row without any byte, per spatial layer.
    idle: [u8; MAX_SPATIAL],
}

impl Default for LayerMeter {
    fn default() -> Self {
        LayerMeter {
            window_start: None,
            bytes: [[0; MAX_TEMPORAL]; MAX_SPATIAL],
            frames: [[0; MAX_TEMPORAL]; MAX_SPATIAL],
            rate: [[0.0; MAX_TEMPORAL]; MAX_SPATIAL],
            fps: [[0.0; MAX_TEMPORAL]; MAX_SPATIAL],
            idle: [0; MAX_SPATIAL],
        }
    }
}

impl LayerMeter {
    /// Counts one packet of `bytes` on `spatial`/`temporal` (temporal 0 when unknown);
    /// `frame_end` when it is the last packet of a frame (the RTP marker).
    pub fn record(
        &mut self,
        now: Instant,
        spatial: u8,
        temporal: u8,
        bytes: usize,
        frame_end: bool,
    ) {
        self.roll(now);
        let s = usize::from(spatial).min(MAX_SPATIAL - 1);
        let t = usize::from(temporal).min(MAX_TEMPORAL - 1);
        self.bytes[s][t] += bytes as u64;
        self.frames[s][t] += u32::from(frame_end);
    }

    /// Closes finished windows.
    pub fn roll(&mut self, now: Instant) {
        let Some(start) = self.window_start else {
            self.window_start = Some(now);
            return;
        };
        let elapsed = now.saturating_duration_since(start);
        if elapsed < WINDOW {
            return;
        }
        let secs = elapsed.as_secs_f64();
        for s in 0..MAX_SPATIAL {
            let total: u64 = self.bytes[s].iter().sum();
            self.idle[s] = if total == 0 {
                self.idle[s].saturating_add(1)
            } else {
                0
            };
            for t in 0..MAX_TEMPORAL {
                let r = self.bytes[s][t] as f64 * 8.0 / secs;
                let f = f64::from(self.frames[s][t]) / secs;
                let (old, old_fps) = (self.rate[s][t], self.fps[s][t]);
                self.rate[s][t] = if old == 0.0 {
                    r
                } else {
                    ALPHA * r + (1.0 - ALPHA) * old
                };
                self.fps[s][t] = if old_fps == 0.0 {
                    f
                } else {
                    ALPHA * f + (1.0 - ALPHA) * old_fps
                };
                // A layer silent for two windows is gone (the browser stopped encoding it).
                if self.idle[s] >= 2 {
                    self.rate[s][t] = 0.0;
                    self.fps[s][t] = 0.0;
                }
                self.bytes[s][t] = 0;
                self.frames[s][t] = 0;
            }
        }
        self.window_start = Some(now);
    }

    /// Cumulative rates per layer as the allocator wants them. A temporal layer that carries
    /// nothing while a higher one does (no temporal scalability) reports the lower rate.
    pub fn rates(&self) -> LayerRates {
        let mut out = LayerRates::default();
        for s in 0..MAX_SPATIAL {
            let (mut sum, mut frames) = (0.0, 0.0);
            let has_temporal = self.rate[s][1] > 0.0 || self.rate[s][2] > 0.0;
            for t in 0..MAX_TEMPORAL {
                sum += self.rate[s][t];
                frames += self.fps[s][t];
                let (bps, fps) = if t > 0 && !has_temporal {
                    (0, 0)
                } else {
                    (sum as u64, frames.round().min(255.0) as u8)
                };
                out.bps[s][t] = bps;
                out.fps[s][t] = fps;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_cumulative_temporal_rates_and_forgets_silent_layers() {
        let t0 = Instant::now();
        let mut m = LayerMeter::default();
        // 2 s of layer 0: 1000 bytes of TL0 and 500 of TL1 every 10 ms = 800 + 400 kbit/s.
        for i in 0..=200u64 {
            let now = t0 + Duration::from_millis(10 * i);
            m.record(now, 0, 0, 1000, i % 2 == 0);
            m.record(now, 0, 1, 500, i % 2 == 1);
            if i < 100 {
                m.record(now, 2, 0, 100, true);
            }
        }
        let r = m.rates();
        let near = |a: u64, b: u64| a.abs_diff(b) * 20 < b;
        assert!(near(r.bps[0][0], 800_000), "{:?}", r);
        assert!(near(r.bps[0][1], 1_200_000), "{:?}", r);
        assert_eq!(r.bps[0][2], r.bps[0][1], "no TL2: same as TL1");
        // 50 TL0 frames and 50 TL1 frames a second.
        assert!((49..=51).contains(&r.fps[0][0]), "{:?}", r);
        assert!((99..=101).contains(&r.fps[0][1]), "{:?}", r);
        assert_eq!(r.bps[2], [0, 0, 0], "layer 2 stopped a second ago");
        assert_eq!(r.bps[1], [0, 0, 0]);
    }
}
