//! Figures of one configuration in one scenario, from its per-second samples.
//!
//! Choices (../shared/design/QUALITY.md): a freeze is WebRTC's (`totalFreezesDuration`), plus
//! the gap still open at the end of the run (a stalled or paused video is not in
//! `totalFreezesDuration` until it resumes). Frozen time counts from the first decoded frame to
//! the end (the time before it is `first_frame_s`); it is the larger of that and the polled
//! measure (every whole second without a new decoded frame), so it is a lower bound of the time
//! without a moving picture. Time kham deliberately paused video (audio only) is counted as
//! frozen here (what the viewer sees) and also reported apart as `audio_only_pct`.

use super::samples::Sample;

/// A gap shorter than this at the end of the run is not a freeze (WebRTC's threshold at 5 fps).
const OPEN_GAP_MIN_S: f64 = 0.6;

/// When the subscriber reached each call-setup stage, seconds after the configuration's t0
/// (the subscriber starting to connect, once the publisher is ready); `None`: never.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stages {
    /// The call's first offer at the subscriber: sent by it (kham), or received by it (p2p,
    /// Janus: the publisher or the server offers).
    pub offer: Option<f64>,
    /// ICE connected (a candidate pair works).
    pub ice: Option<f64>,
    /// Peer connection connected (ICE and DTLS done).
    pub connected: Option<f64>,
    /// First video RTP (video bytesReceived > 0).
    pub rtp: Option<f64>,
    /// First complete video frame (framesReceived > 0; the decoder starts on a keyframe).
    pub keyframe: Option<f64>,
    /// First decoded video frame.
    pub frame: Option<f64>,
}

impl Stages {
    /// From the stages the page marked (see `Sample::stages`).
    pub fn from_marks(m: &std::collections::BTreeMap<String, f64>) -> Stages {
        let get = |k: &str| m.get(k).copied();
        let offer = match (get("local_offer"), get("remote_offer")) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Stages {
            offer,
            ice: get("ice_connected"),
            connected: get("connected"),
            rtp: get("first_rtp"),
            keyframe: get("first_keyframe"),
            frame: get("first_frame"),
        }
    }

    /// The six stages in order, with their names.
    pub fn list(&self) -> [(&'static str, Option<f64>); 6] {
        [
            ("offer", self.offer),
            ("ice_connected", self.ice),
            ("connected", self.connected),
            ("first_rtp", self.rtp),
            ("first_keyframe", self.keyframe),
            ("first_frame", self.frame),
        ]
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    pub frozen_time_pct: f64,
    pub freezes_per_min: f64,
    /// Mean frameHeight over the seconds in which frames were decoded.
    pub mean_height: f64,
    /// Received video + audio RTP payload (inbound-rtp bytesReceived) over the run.
    pub mean_kbps: f64,
    pub audio_concealed_pct: f64,
    /// From the subscriber starting to join to its first decoded frame; `None`: never.
    pub first_frame_s: Option<f64>,
    /// Call-setup stages from the same t0.
    pub stages: Stages,
    pub mean_fps: f64,
    /// Mean video jitter buffer delay per emitted frame.
    pub jitter_buffer_ms: f64,
    pub video_packets_lost: f64,
    /// Video loss repair at the subscriber over the run: FEC packets and retransmissions
    /// received, NACKs sent.
    pub video_fec_packets: f64,
    pub video_rtx_packets: f64,
    pub video_nacks: f64,
    /// Keyframes asked for (PLI) and decoded, frames dropped before decoding.
    pub video_plis: f64,
    pub video_keyframes: f64,
    pub video_frames_dropped: f64,
    pub audio_packets_lost: f64,
    /// Seconds the server reported video paused for bandwidth, in percent of the run.
    pub audio_only_pct: f64,
    /// Seconds in the run.
    pub duration_s: f64,
}

/// Computes the figures; an empty series gives 100 % frozen and nothing else.
pub fn figures(samples: &[Sample]) -> Figures {
    let Some(last) = samples.last() else {
        return Figures {
            frozen_time_pct: 100.0,
            ..Figures::default()
        };
    };
    let duration = last.t.max(1.0);
    let first_frame = samples
        .iter()
        .rev()
        .find_map(|s| s.first_frame_s)
        .or_else(|| samples.iter().find(|s| s.frames_decoded > 0.0).map(|s| s.t));
    let mut f = Figures {
        first_frame_s: first_frame,
        stages: Stages::from_marks(&last.stages),
        duration_s: duration,
        mean_kbps: last.inbound_bytes * 8.0 / duration / 1000.0,
        video_packets_lost: last.video_lost,
        video_fec_packets: last.video_fec,
        video_rtx_packets: last.video_rtx,
        video_nacks: last.video_nacks,
        video_plis: last.video_plis,
        video_keyframes: last.video_keyframes,
        video_frames_dropped: last.video_frames_dropped,
        audio_packets_lost: last.audio_lost,
        ..Figures::default()
    };
    if last.audio_samples > 0.0 {
        f.audio_concealed_pct = 100.0 * last.concealed / last.audio_samples;
    } else {
        f.audio_concealed_pct = 100.0;
    }
    let paused = samples
        .iter()
        .filter(|s| s.layer.as_deref() == Some("paused"))
        .count();
    f.audio_only_pct = 100.0 * paused as f64 / samples.len() as f64;

    let Some(ff) = first_frame else {
        f.frozen_time_pct = 100.0;
        return f;
    };
    let window = (last.t - ff).max(1.0);
    // WebRTC's freezes plus the gap open at the end.
    let last_new_frame = samples
        .windows(2)
        .filter(|w| w[1].frames_decoded > w[0].frames_decoded)
        .map(|w| w[1].t)
        .next_back()
        .unwrap_or(ff);
    let open = (last.t - last_new_frame).max(0.0);
    let open = if open >= OPEN_GAP_MIN_S { open } else { 0.0 };
    let webrtc = last.freezes_s + open;
    // Polled: whole seconds after the first frame without a new decoded frame.
    let polled = samples
        .windows(2)
        .filter(|w| w[0].t >= ff && w[1].frames_decoded <= w[0].frames_decoded)
        .map(|w| w[1].t - w[0].t)
        .sum::<f64>();
    f.frozen_time_pct = (100.0 * webrtc.max(polled) / window).min(100.0);
    let freezes = last.freeze_count + if open > 0.0 { 1.0 } else { 0.0 };
    f.freezes_per_min = freezes / (window / 60.0);

    let with_frames: Vec<&Sample> = samples
        .windows(2)
        .filter(|w| w[1].frames_decoded > w[0].frames_decoded)
        .map(|w| &w[1])
        .collect();
    if !with_frames.is_empty() {
        let n = with_frames.len() as f64;
        f.mean_height = with_frames.iter().map(|s| s.height).sum::<f64>() / n;
    }
    f.mean_fps = last.frames_decoded / window;
    if last.jitter_buffer_emitted > 0.0 {
        f.jitter_buffer_ms = 1000.0 * last.jitter_buffer_delay_s / last.jitter_buffer_emitted;
    }
    f
}

/// Received kbit/s (transport payload: RTP + RTCP + SRTP, no IP/UDP headers) between `from`
/// and `to` seconds, or `None` without samples spanning it.
pub fn transport_kbps(samples: &[Sample], from: f64, to: f64) -> Option<f64> {
    let a = samples.iter().find(|s| s.t >= from)?;
    let b = samples.iter().rev().find(|s| s.t <= to)?;
    (b.t > a.t).then(|| (b.transport_bytes - a.transport_bytes) * 8.0 / (b.t - a.t) / 1000.0)
}

/// One second of a configuration, for the plots and the JSON series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub t: f64,
    /// Received kbit/s (inbound-rtp payload, video + audio) over the second before `t`.
    pub kbps: f64,
    /// Frame height, 0 when no frame was decoded in that second.
    pub height: f64,
}

/// Per-second received kbit/s and frame height.
pub fn per_second(samples: &[Sample]) -> Vec<Point> {
    samples
        .windows(2)
        .map(|w| {
            let dt = (w[1].t - w[0].t).max(0.001);
            let kbps = (w[1].inbound_bytes - w[0].inbound_bytes) * 8.0 / dt / 1000.0;
            let h = if w[1].frames_decoded > w[0].frames_decoded {
                w[1].height
            } else {
                0.0
            };
            Point {
                t: w[1].t,
                kbps: kbps.max(0.0),
                height: h,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: f64, frames: f64, bytes: f64) -> Sample {
        Sample {
            t,
            frames_decoded: frames,
            inbound_bytes: bytes,
            height: 360.0,
            audio_samples: 48_000.0 * t,
            ..Sample::default()
        }
    }

    #[test]
    fn empty_is_frozen() {
        assert_eq!(figures(&[]).frozen_time_pct, 100.0);
    }

    #[test]
    fn open_gap_at_end_counts() {
        // Frames for 10 s, then 5 s without: 5 of 14 s after the first frame frozen.
        let mut v: Vec<Sample> = (1..=10)
            .map(|t| s(f64::from(t), f64::from(t) * 15.0, f64::from(t) * 1000.0))
            .collect();
        v.extend((11..=15).map(|t| s(f64::from(t), 150.0, 10_000.0)));
        for x in &mut v {
            x.first_frame_s = Some(1.0);
        }
        let f = figures(&v);
        assert!(
            (f.frozen_time_pct - 100.0 * 5.0 / 14.0).abs() < 0.01,
            "{f:?}"
        );
        assert!((f.freezes_per_min - 60.0 / 14.0).abs() < 0.01);
        assert_eq!(f.mean_height, 360.0);
        assert!((f.mean_kbps - 10_000.0 * 8.0 / 15.0 / 1000.0).abs() < 0.01);
        assert_eq!(f.first_frame_s, Some(1.0));
    }

    #[test]
    fn stages_take_the_first_offer_either_way() {
        let marks = |list: &[(&str, f64)]| {
            list.iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        // kham: the subscriber offers, the server offers its tracks later.
        let k = Stages::from_marks(&marks(&[
            ("local_offer", 0.2),
            ("remote_offer", 0.9),
            ("connected", 0.6),
            ("first_frame", 1.1),
        ]));
        assert_eq!(k.offer, Some(0.2));
        assert_eq!(k.connected, Some(0.6));
        assert_eq!(k.rtp, None);
        // p2p: the publisher offers.
        let p = Stages::from_marks(&marks(&[("remote_offer", 0.05), ("local_answer", 0.08)]));
        assert_eq!(p.offer, Some(0.05));
        assert_eq!(p.list()[5], ("first_frame", None));
    }

    #[test]
    fn transport_rate_over_a_window() {
        let v: Vec<Sample> = (0..=10)
            .map(|t| Sample {
                t: f64::from(t),
                transport_bytes: f64::from(t) * 62_500.0,
                ..Sample::default()
            })
            .collect();
        assert_eq!(transport_kbps(&v, 2.0, 10.0), Some(500.0));
        assert_eq!(transport_kbps(&[], 0.0, 1.0), None);
    }
}
