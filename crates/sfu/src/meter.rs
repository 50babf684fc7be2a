//! Measured bitrate of every layer of a published track, for the allocator.
//!
//! Per packet this only adds to a fixed array (no allocation, no clock read: the packet's
//! arrival time comes in); every half second the counts become a smoothed rate.

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
    /// Smoothed per-temporal-layer rates (not cumulative).
    rate: [[f64; MAX_TEMPORAL]; MAX_SPATIAL],
    /// Windows in a row without any byte, per spatial layer.
    idle: [u8; MAX_SPATIAL],
}

impl Default for LayerMeter {
    fn default() -> Self {
        LayerMeter {
            window_start: None,
            bytes: [[0; MAX_TEMPORAL]; MAX_SPATIAL],
            rate: [[0.0; MAX_TEMPORAL]; MAX_SPATIAL],
            idle: [0; MAX_SPATIAL],
        }
    }
}

impl LayerMeter {
    /// Counts one packet of `bytes` on `spatial`/`temporal` (temporal 0 when unknown).
    pub fn record(&mut self, now: Instant, spatial: u8, temporal: u8, bytes: usize) {
        self.roll(now);
        let s = usize::from(spatial).min(MAX_SPATIAL - 1);
        let t = usize::from(temporal).min(MAX_TEMPORAL - 1);
        self.bytes[s][t] += bytes as u64;
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
                let old = self.rate[s][t];
                self.rate[s][t] = if old == 0.0 {
                    r
                } else {
                    ALPHA * r + (1.0 - ALPHA) * old
                };
                // A layer silent for two windows is gone (the browser stopped encoding it).
                if self.idle[s] >= 2 {
                    self.rate[s][t] = 0.0;
                }
                self.bytes[s][t] = 0;
            }
        }
        self.window_start = Some(now);
    }

    /// Cumulative rates per layer as the allocator wants them. A temporal layer that carries
    /// nothing while a higher one does (no temporal scalability) reports the lower rate.
    pub fn rates(&self) -> LayerRates {
        let mut out = LayerRates::default();
        for s in 0..MAX_SPATIAL {
            let mut sum = 0.0;
            let has_temporal = self.rate[s][1] > 0.0 || self.rate[s][2] > 0.0;
            for t in 0..MAX_TEMPORAL {
                sum += self.rate[s][t];
                out.bps[s][t] = if t > 0 && !has_temporal {
                    0
                } else {
                    sum as u64
                };
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
            m.record(now, 0, 0, 1000);
            m.record(now, 0, 1, 500);
            if i < 100 {
                m.record(now, 2, 0, 100);
            }
        }
        let r = m.rates();
        let near = |a: u64, b: u64| a.abs_diff(b) * 20 < b;
        assert!(near(r.bps[0][0], 800_000), "{:?}", r);
        assert!(near(r.bps[0][1], 1_200_000), "{:?}", r);
        assert_eq!(r.bps[0][2], r.bps[0][1], "no TL2: same as TL1");
        assert_eq!(r.bps[2], [0, 0, 0], "layer 2 stopped a second ago");
        assert_eq!(r.bps[1], [0, 0, 0]);
    }
}
