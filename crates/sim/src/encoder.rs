//! How a browser's VP8 simulcast encoder shares its send rate among its encodings.
//!
//! The server steers a publisher two ways (adaptation v2): per-encoding limits applied with
//! `RTCRtpSender.setParameters` (`maxBitrate`, `maxFramerate`, `scaleResolutionDownBy`, from
//! `publish_layers`), and REMB, which caps the browser's whole send target. This module models
//! what libwebrtc does with both, so the simulator measures the allocator against a publisher
//! that reacts as Chrome's does:
//!
//! - every encoding's minimum, target and maximum rate follow its resolution (libwebrtc's VP8
//!   simulcast table, `video/config/simulcast.cc`), capped by `maxBitrate`;
//! - the simulcast rate allocator (`simulcast_rate_allocator.cc`) gives the lowest active
//!   encoding at least its minimum, then each encoding in order of its maximum up to its target
//!   while the rest of the budget covers its minimum, then what is left to the highest one sent
//!   up to its maximum; an encoding whose minimum does not fit stops (with the layers above it)
//!   and needs 1.2 x its minimum to start again;
//! - the encoder's rate control settles on a new rate in about a second ([`RATE_LAG`]).
//!
//! Not modelled: CPU or quality scaling, frame dropping by the encoder's buffer model, and
//! whether Chrome takes its audio out of a REMB cap: here REMB is the video budget, which is
//! what the server computes it as (the subscriber's estimate minus audio).

use std::time::Duration;

/// The camera: 1280x720 at 30 fps.
pub const CAPTURE_WIDTH: u32 = 1280;
pub const CAPTURE_HEIGHT: u32 = 720;
pub const CAPTURE_FPS: f64 = 30.0;

/// What the SDK publishes (web-client/sdk/kham.js): maxBitrate per encoding q, h, f.
pub const DEFAULT_MAX_BPS: [u64; 3] = [150_000, 500_000, 1_500_000];
/// And scaleResolutionDownBy: 180p, 360p, 720p from the 720p camera.
pub const DEFAULT_SCALE: [f64; 3] = [4.0, 2.0, 1.0];

/// A stopped encoding needs this factor on its minimum to start again (libwebrtc's default
/// video hysteresis, `StableTargetRateExperiment`), so it does not flap on a budget at its edge.
pub const RESTART_HYSTERESIS: f64 = 1.2;

/// Time constant of the encoder's approach to a new rate: 95 % of a change in about 0.9 s.
pub const RATE_LAG: Duration = Duration::from_millis(300);

/// Bytes a video packet carries besides the frame: VP8 descriptor 6, RTP header 12, header
/// extensions about 12, SRTP tag 10, UDP/IPv4 28. libwebrtc takes this overhead out of a send
/// target before the encoders get it.
pub const PACKET_OVERHEAD_BYTES: u64 = 68;

/// Largest frame bytes in one packet (the source's packetizer).
pub const MTU_PAYLOAD: usize = 1150;

/// Share of an encoding's rate per temporal layer (libwebrtc's 40/20/40 split for three).
pub const TEMPORAL_SHARE: [f64; 3] = [0.4, 0.2, 0.4];
/// Fraction of an encoding's frames in each temporal layer (pattern 0, 2, 1, 2).
pub const TEMPORAL_FRAMES: [f64; 3] = [0.25, 0.25, 0.5];

/// libwebrtc's VP8 simulcast table: (pixels of the row's resolution, max, target, min kbit/s).
/// A stream takes the first row whose pixel count it reaches (rows largest first).
const VP8_ROWS: [(u32, u64, u64, u64); 7] = [
    (1920 * 1080, 5000, 4000, 800),
    (1280 * 720, 2500, 2500, 600),
    (960 * 540, 1200, 1200, 350),
    (640 * 360, 700, 500, 150),
    (480 * 270, 450, 350, 150),
    (320 * 180, 200, 150, 30),
    (0, 200, 150, 30),
];

/// Limits the server asked for on one encoding (`publish_layers`); `None`: the SDK's default.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EncodingLimits {
    pub max_bitrate: Option<u32>,
    pub max_framerate: Option<f32>,
    pub scale_resolution_down_by: Option<f32>,
}

/// One encoding's effective parameters after its limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Encoding {
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    pub min_bps: u64,
    pub target_bps: u64,
    pub max_bps: u64,
}

impl Encoding {
    /// Encoding `index` (0 = q, 1 = h, 2 = f) under `limits`. Values a browser would reject
    /// (NaN, a scale under 1, a frame rate under 1) fall back to the default or the nearest
    /// legal value instead of failing: the simulator must not panic on what a server sends.
    pub fn resolve(index: usize, limits: &EncodingLimits) -> Encoding {
        let i = index.min(2);
        let scale = limits
            .scale_resolution_down_by
            .map(f64::from)
            .filter(|s| s.is_finite())
            .map_or(DEFAULT_SCALE[i], |s| s.max(1.0));
        let width = ((f64::from(CAPTURE_WIDTH) / scale) as u32).max(1);
        let height = ((f64::from(CAPTURE_HEIGHT) / scale) as u32).max(1);
        let fps = limits
            .max_framerate
            .map(f64::from)
            .filter(|f| f.is_finite())
            .map_or(CAPTURE_FPS, |f| f.clamp(1.0, CAPTURE_FPS));
        let max_bps = limits
            .max_bitrate
            .map_or(DEFAULT_MAX_BPS[i], u64::from)
            .max(1);
        let pixels = width.saturating_mul(height);
        let (_, _, target_kbps, min_kbps) = VP8_ROWS
            .iter()
            .copied()
            .find(|r| pixels >= r.0)
            .unwrap_or(VP8_ROWS[VP8_ROWS.len() - 1]);
        Encoding {
            width,
            height,
            fps,
            min_bps: (min_kbps * 1000).min(max_bps),
            target_bps: (target_kbps * 1000).min(max_bps),
            max_bps,
        }
    }

    /// Packets per second this encoding sends at `rate_bps` (frames of each temporal layer,
    /// split at [`MTU_PAYLOAD`]).
    pub fn packet_rate(&self, rate_bps: f64) -> f64 {
        (0..3)
            .map(|tl| {
                let frames = self.fps * TEMPORAL_FRAMES[tl];
                let bytes = rate_bps * TEMPORAL_SHARE[tl] / frames.max(1e-9) / 8.0;
                // Frame sizes vary around their mean: half a packet more on average once split.
                let packets = if bytes <= MTU_PAYLOAD as f64 {
                    1.0
                } else {
                    bytes / MTU_PAYLOAD as f64 + 0.5
                };
                frames * packets
            })
            .sum()
    }

    /// Bits per second of packet overhead at `rate_bps`.
    pub fn overhead_bps(&self, rate_bps: f64) -> f64 {
        self.packet_rate(rate_bps) * (PACKET_OVERHEAD_BYTES * 8) as f64
    }
}

/// libwebrtc's simulcast rate allocator, with the state its hysteresis needs.
#[derive(Debug, Clone, Default)]
pub struct SimulcastAllocator {
    /// Which encodings the last allocation sent; `None` before the first one (no hysteresis
    /// then, as after an encoder reconfiguration).
    enabled: Option<[bool; 3]>,
}

impl SimulcastAllocator {
    /// Forgets which encodings were sent: the next allocation applies no restart hysteresis.
    /// libwebrtc builds a new allocator when `setParameters` reconfigures the encoder.
    pub fn reconfigured(&mut self) {
        self.enabled = None;
    }

    /// Shares `total_bps` among the `active` encodings; 0 = not sent.
    pub fn allocate(
        &mut self,
        total_bps: u64,
        encodings: &[Encoding; 3],
        active: [bool; 3],
    ) -> [u64; 3] {
        let mut out = [0u64; 3];
        // In order of maximum rate (stable: ties keep q, h, f).
        let mut order = [0usize, 1, 2];
        order.sort_by_key(|&i| encodings[i].max_bps);
        let Some(first) = order.iter().copied().find(|&i| active[i]) else {
            self.enabled = Some([false; 3]);
            return out;
        };
        let first_allocation = self.enabled.is_none();
        let was = self.enabled.unwrap_or([false; 3]);
        // The lowest active encoding always gets its minimum: a browser does not suspend its
        // video below the minimum (that is a separate, default-off setting).
        let mut left = total_bps.max(encodings[first].min_bps);
        let mut enabled = [false; 3];
        let mut top = first;
        for &i in &order {
            if !active[i] {
                continue;
            }
            let e = &encodings[i];
            let mut min = e.min_bps;
            if !first_allocation && !was[i] {
                min = ((min as f64 * RESTART_HYSTERESIS) as u64).min(e.target_bps);
            }
            if left < min {
                break;
            }
            let rate = left.min(e.target_bps);
            out[i] = rate;
            enabled[i] = true;
            left -= rate;
            top = i;
        }
        if left > 0 {
            let extra = left.min(encodings[top].max_bps.saturating_sub(out[top]));
            out[top] += extra;
        }
        self.enabled = Some(enabled);
        out
    }
}

/// The video budget the encoders share: the tightest of REMB and the publisher's own
/// estimate (both already video-only), less packet overhead, never above what the active
/// encodings can use. Without either it is the sum of their maxima (today's fixed ladder).
pub fn encoder_budget(
    cap_bps: Option<u64>,
    encodings: &[Encoding; 3],
    active: [bool; 3],
    allocator: &SimulcastAllocator,
) -> u64 {
    let sum_max: u64 = (0..3)
        .filter(|&i| active[i])
        .map(|i| encodings[i].max_bps)
        .sum();
    let Some(cap) = cap_bps else {
        return sum_max;
    };
    // Overhead depends on the packet rate, which depends on the allocation: one refinement
    // from the allocation of the whole cap is within a few percent.
    let trial = allocator.clone().allocate(cap, encodings, active);
    let overhead: f64 = (0..3)
        .filter(|&i| trial[i] > 0)
        .map(|i| encodings[i].overhead_bps(trial[i] as f64))
        .sum();
    (cap.saturating_sub(overhead as u64)).min(sum_max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> [Encoding; 3] {
        [0, 1, 2].map(|i| Encoding::resolve(i, &EncodingLimits::default()))
    }

    #[test]
    fn defaults_are_the_sdk_ladder() {
        let e = defaults();
        assert_eq!(
            e.map(|e| (e.height, e.max_bps, e.target_bps)),
            [
                (180, 150_000, 150_000),
                (360, 500_000, 500_000),
                (720, 1_500_000, 1_500_000)
            ]
        );
        assert_eq!(e.map(|e| e.min_bps), [30_000, 150_000, 600_000]);
        assert!(e.iter().all(|e| e.fps == CAPTURE_FPS));
    }

    #[test]
    fn limits_shape_an_encoding_and_bad_values_fall_back() {
        let q = Encoding::resolve(
            0,
            &EncodingLimits {
                max_bitrate: Some(60_000),
                max_framerate: Some(15.0),
                scale_resolution_down_by: Some(8.0),
            },
        );
        assert_eq!((q.width, q.height, q.fps), (160, 90, 15.0));
        assert_eq!(
            (q.min_bps, q.target_bps, q.max_bps),
            (30_000, 60_000, 60_000)
        );
        // A maximum under the table's minimum lowers the minimum with it.
        let tiny = Encoding::resolve(
            0,
            &EncodingLimits {
                max_bitrate: Some(20_000),
                ..EncodingLimits::default()
            },
        );
        assert_eq!((tiny.min_bps, tiny.max_bps), (20_000, 20_000));
        let bad = Encoding::resolve(
            7,
            &EncodingLimits {
                max_bitrate: Some(0),
                max_framerate: Some(f32::NAN),
                scale_resolution_down_by: Some(0.25),
            },
        );
        assert_eq!((bad.height, bad.fps, bad.max_bps), (720, CAPTURE_FPS, 1));
    }

    #[test]
    fn allocation_fills_lowest_first_and_stops_what_does_not_fit() {
        let e = defaults();
        let mut a = SimulcastAllocator::default();
        let all = [true; 3];
        // Everything fits: each at its maximum.
        assert_eq!(
            a.allocate(2_150_000, &e, all),
            [150_000, 500_000, 1_500_000]
        );
        // 400 kbit/s: q at target, h gets the rest (over its 150 k minimum), f stops.
        assert_eq!(a.allocate(400_000, &e, all), [150_000, 250_000, 0]);
        // 160 kbit/s: h's minimum does not fit beside q; the rest tops q up to its maximum.
        assert_eq!(a.allocate(160_000, &e, all), [150_000, 0, 0]);
        // Starting h again needs 1.2 x its minimum: 150 + 170 is not enough, 150 + 180 is.
        assert_eq!(a.allocate(320_000, &e, all), [150_000, 0, 0]);
        assert_eq!(a.allocate(330_000, &e, all), [150_000, 180_000, 0]);
        // Below q's minimum, q still gets its minimum (no suspension).
        assert_eq!(a.allocate(10_000, &e, all), [30_000, 0, 0]);
        // Dynacast: inactive encodings get nothing, the budget goes to the others.
        assert_eq!(
            a.allocate(2_150_000, &e, [true, false, true]),
            [150_000, 0, 1_500_000]
        );
        assert_eq!(a.allocate(1_000_000, &e, [false; 3]), [0, 0, 0]);
    }

    #[test]
    fn budget_is_the_sum_of_maxima_without_a_cap_and_leaves_room_for_overhead() {
        let e = defaults();
        let a = SimulcastAllocator::default();
        assert_eq!(encoder_budget(None, &e, [true; 3], &a), 2_150_000);
        assert_eq!(encoder_budget(None, &e, [true, true, false], &a), 650_000);
        let b = encoder_budget(Some(400_000), &e, [true; 3], &a);
        // q and h at 30 fps are about 60-80 packets a second: 30-45 kbit/s of overhead.
        assert!((350_000..375_000).contains(&b), "{b}");
        assert_eq!(
            encoder_budget(Some(50_000_000), &e, [true; 3], &a),
            2_150_000
        );
    }
}
