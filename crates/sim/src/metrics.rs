//! The figures of ../shared/design/QUALITY.md, computed from what a viewer saw.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::encoder::DEFAULT_MAX_BPS;
use crate::result::{ConfigName, Metrics, Sample};
use crate::scenario::CapacityEvent;
use crate::source::SentAudio;
use crate::viewer::Rendered;

/// Audio arriving later than this after capture missed its playout: counted as lost.
const AUDIO_DEADLINE: Duration = Duration::from_millis(1000);

/// Everything recorded about one viewer in one run.
pub struct Observed<'a> {
    pub start: Instant,
    pub duration: Duration,
    pub rendered: &'a [Rendered],
    pub sent_audio: &'a [SentAudio],
    pub received_audio: &'a BTreeMap<u32, Instant>,
    pub samples: &'a [Sample],
    /// Per bin: video deliberately paused for lack of bandwidth.
    pub paused: &'a [bool],
    pub queue_ms: &'a [f32],
    pub events: &'a [CapacityEvent],
    pub outages: &'a [(Duration, Duration)],
    pub bin: Duration,
}

impl Observed<'_> {
    fn offset(&self, t: Instant) -> Duration {
        t.saturating_duration_since(self.start)
    }

    fn in_outage(&self, a: Duration, b: Duration) -> bool {
        self.outages.iter().any(|&(s, e)| a < e && b > s)
    }

    fn paused_between(&self, a: Duration, b: Duration) -> bool {
        let bin = self.bin.as_secs_f64();
        let (i, j) = (
            (a.as_secs_f64() / bin) as usize,
            (b.as_secs_f64() / bin) as usize,
        );
        (i..=j).any(|k| self.paused.get(k).copied().unwrap_or(false))
    }
}

/// Computes the figures for one viewer.
pub fn measure(o: &Observed<'_>, config: ConfigName) -> Metrics {
    let minutes = o.duration.as_secs_f64() / 60.0;
    let mut m = Metrics::default();

    // Freezes (WebRTC definition), not counting deliberate pauses or outages.
    let mut times: Vec<Duration> = o.rendered.iter().map(|r| o.offset(r.at)).collect();
    times.push(o.duration);
    let mut intervals: Vec<f64> = Vec::new();
    // The same gaps with deliberate pauses included: time without moving video, as a user (and
    // the browser benchmark) sees it.
    let (mut frozen, mut freezes, mut still) = (0.0, 0u32, 0.0);
    for w in times.windows(2) {
        let gap = w[1].saturating_sub(w[0]).as_secs_f64();
        let recent = &intervals[intervals.len().saturating_sub(30)..];
        if !recent.is_empty() {
            let mean = recent.iter().sum::<f64>() / recent.len() as f64;
            let threshold = (3.0 * mean).max(mean + 0.150);
            if gap > threshold && !o.in_outage(w[0], w[1]) {
                still += gap;
                if !o.paused_between(w[0], w[1]) {
                    frozen += gap;
                    freezes += 1;
                    tracing::debug!(target: "kham_sim::freeze", config = config.as_str(), at_s = w[0].as_secs_f64(), gap_ms = (gap * 1000.0) as u64, "freeze");
                }
            }
        }
        intervals.push(gap);
    }
    let first = times.first().copied().unwrap_or(o.duration);
    let watched = (o.duration.saturating_sub(first)).as_secs_f64().max(1e-9);
    let pct = |x: f64| {
        if o.rendered.is_empty() {
            100.0
        } else {
            100.0 * x / watched
        }
    };
    m.frozen_time_pct = pct(frozen);
    m.frozen_or_paused_pct = pct(still);
    m.freezes_per_min = f64::from(freezes) / minutes;

    // Audio after repair: lost if never received or too late to play, weighted by the speech
    // a packet carries (a 60 ms packet lost is three 20 ms ones). Its delay is from sending
    // to receipt plus what a packet longer than 20 ms made its first sample wait (the
    // packetisation a longer packet time adds).
    let settled = o.duration.saturating_sub(Duration::from_secs(1));
    let (mut lost, mut counted, mut gaps, mut run) = (0u32, 0u32, 0u32, Duration::ZERO);
    let mut delays: Vec<Duration> = Vec::new();
    for a in o.sent_audio {
        let t = o.offset(a.at);
        if t > settled || o.in_outage(t.saturating_sub(a.frame), t + Duration::from_millis(20)) {
            run = Duration::ZERO;
            continue;
        }
        let frames = (a.frame.as_millis() / 20).max(1) as u32;
        counted += frames;
        let wait = a.frame.saturating_sub(Duration::from_millis(20));
        let delay = o
            .received_audio
            .get(&a.id)
            .map(|r| r.saturating_duration_since(a.at) + wait)
            .filter(|d| *d <= AUDIO_DEADLINE);
        if let (Some(d), true) = (delay, a.speech) {
            // Per 20 ms of speech, as the loss above: a 60 ms packet carries three frames, and
            // counted once it would weigh a second of 20 ms packets (the start of a call, before
            // the packet time is raised) three times as much as a second of 60 ms ones.
            delays.extend(std::iter::repeat_n(d, frames as usize));
            tracing::trace!(target: "kham_sim::audio_delay", t_s = t.as_secs_f64(), ms = d.as_millis() as u64, frames, "audio delay");
        }
        if delay.is_some() {
            run = Duration::ZERO;
        } else {
            lost += frames;
            let before = run;
            if a.speech {
                run += a.frame;
            }
            if before < Duration::from_millis(200) && run >= Duration::from_millis(200) {
                gaps += 1;
            }
        }
    }
    m.audio_gaps = gaps;
    delays.sort();
    m.p95_audio_delay_ms = delays
        .get((delays.len() * 95 / 100).min(delays.len().saturating_sub(1)))
        .map(|d| d.as_secs_f64() * 1000.0);
    m.audio_loss_after_repair_pct = 100.0 * f64::from(lost) / f64::from(counted.max(1));

    // Utilisation: received / min(capacity, everything subscribed at the top layer), per
    // second, outside outages.
    let top_kbps = (DEFAULT_MAX_BPS[2] as f64 + 32_000.0) / 1000.0;
    let per_sec = (1.0 / o.bin.as_secs_f64()).round() as usize;
    let mut util = Vec::new();
    let mut found = Vec::new();
    for (k, chunk) in o.samples.chunks(per_sec.max(1)).enumerate() {
        let a = Duration::from_secs(k as u64);
        if k < 3 || chunk.len() < per_sec || o.in_outage(a, a + Duration::from_secs(1)) {
            continue;
        }
        let cap = chunk.iter().map(|s| s.capacity_kbps).sum::<f64>() / chunk.len() as f64;
        let got = chunk.iter().map(|s| s.received_kbps).sum::<f64>() / chunk.len() as f64;
        let reference = cap.min(top_kbps);
        if reference > 1.0 {
            util.push((100.0 * got / reference).min(100.0));
            let est: Vec<f64> = chunk.iter().filter_map(|s| s.estimate_kbps).collect();
            if !est.is_empty() {
                let e = est.iter().sum::<f64>() / est.len() as f64;
                found.push((100.0 * e / reference).min(100.0));
            }
        }
    }
    let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    m.utilisation_pct = mean(&util);
    m.estimate_pct = mean(&found);

    let mut q: Vec<f32> = o.queue_ms.to_vec();
    q.sort_by(|a, b| a.total_cmp(b));
    m.p95_queue_delay_ms =
        (!q.is_empty()).then(|| f64::from(q[(q.len() * 95 / 100).min(q.len() - 1)]));

    // Downswitch: from a drop to the end of the first second whose sent rate fits.
    let bin_s = o.bin.as_secs_f64();
    let sent_1s = |i: usize| -> f64 {
        let w = &o.samples[i..(i + per_sec).min(o.samples.len())];
        w.iter().map(|s| s.sent_kbps).sum::<f64>() / w.len().max(1) as f64
    };
    let mut down: Option<f64> = None;
    let mut recovery: Option<f64> = None;
    for (e, ev) in o.events.iter().enumerate() {
        match *ev {
            CapacityEvent::Drop { at, to_bps } => {
                let i0 = (at.as_secs_f64() / bin_s) as usize;
                let until = o.events.get(e + 1).map_or(o.samples.len(), |n| match n {
                    CapacityEvent::Drop { at, .. } | CapacityEvent::Return { at } => {
                        (at.as_secs_f64() / bin_s) as usize
                    }
                });
                let fit = (i0..until.saturating_sub(per_sec))
                    .find(|&i| sent_1s(i) <= to_bps as f64 / 1000.0);
                let s = fit.map_or((until - i0.min(until)) as f64 * bin_s, |i| {
                    (i - i0 + per_sec) as f64 * bin_s
                });
                down = Some(down.map_or(s, |d: f64| d.max(s)));
            }
            CapacityEvent::Return { at } => {
                if config != ConfigName::Kham {
                    continue;
                }
                let s = recovery_after(o, at, e);
                recovery = Some(recovery.map_or(s, |d: f64| d.max(s)));
            }
        }
    }
    m.downswitch_s = down;
    m.recovery_s = recovery;

    // Spatial switches seen by the viewer.
    let switches = o
        .rendered
        .windows(2)
        .filter(|w| w[0].spatial != w[1].spatial)
        .count();
    m.switches_per_min = switches as f64 / minutes;
    m.audio_only_pct =
        100.0 * o.paused.iter().filter(|p| **p).count() as f64 / o.paused.len().max(1) as f64;
    m.mean_height = if o.rendered.is_empty() {
        0.0
    } else {
        o.rendered.iter().map(|r| f64::from(r.height)).sum::<f64>() / o.rendered.len() as f64
    };
    m.mean_kbps =
        o.samples.iter().map(|s| s.received_kbps).sum::<f64>() / o.samples.len().max(1) as f64;
    m.mean_capacity_kbps =
        o.samples.iter().map(|s| s.capacity_kbps).sum::<f64>() / o.samples.len().max(1) as f64;
    m
}

/// Seconds from capacity returning at `at` (event `index`) until the viewer has recovered:
/// the first frame of the top spatial layer, or the end of the first second (in 200 ms steps)
/// whose frames, counting only those captured after the return (not the backlog the link
/// flushes), come at 90 % of the frame rate and 90 % of the mean height of the 5 s before the
/// capacity fell (QUALITY.md's "90 % of the pre-drop rate", read as what the viewer sees),
/// whichever comes first; the rest of the call if neither does. The fall is the last `Drop`
/// before `at`, or the start of the outage that ends at `at`.
fn recovery_after(o: &Observed<'_>, at: Duration, index: usize) -> f64 {
    let captured_after = |r: &&Rendered| Duration::from_micros(r.capture_us) >= at;
    let top = o
        .rendered
        .iter()
        .filter(captured_after)
        .find(|r| r.spatial == 2)
        .map(|r| o.offset(r.at).saturating_sub(at).as_secs_f64());
    let fell = o.events[..index]
        .iter()
        .rev()
        .find_map(|e| match *e {
            CapacityEvent::Drop { at, .. } => Some(at),
            CapacityEvent::Return { .. } => None,
        })
        .or_else(|| {
            o.outages
                .iter()
                .filter(|&&(s, e)| s < at && e + o.bin >= at)
                .map(|&(s, _)| s)
                .max()
        });
    // (frames, mean height) rendered in [a, b), of those `keep` accepts.
    let seen = |a: Duration, b: Duration, keep: &dyn Fn(&&Rendered) -> bool| -> (usize, f64) {
        let (n, h) = o
            .rendered
            .iter()
            .filter(|r| (a..b).contains(&o.offset(r.at)))
            .filter(keep)
            .fold((0usize, 0.0), |(n, h), r| (n + 1, h + f64::from(r.height)));
        (n, if n > 0 { h / n as f64 } else { 0.0 })
    };
    let second = Duration::from_secs(1);
    let back = fell.and_then(|f| {
        let (n, height) = seen(f.saturating_sub(5 * second), f, &|_| true);
        let fps = n as f64 / f.min(5 * second).as_secs_f64().max(1e-9);
        let mut t = at;
        while t + second <= o.duration {
            let (k, h) = seen(t, t + second, &captured_after);
            if k > 0 && k as f64 >= 0.9 * fps && h >= 0.9 * height {
                return Some((t + second - at).as_secs_f64());
            }
            t += o.bin;
        }
        None
    });
    match (top, back) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a
            .or(b)
            .unwrap_or_else(|| o.duration.saturating_sub(at).as_secs_f64()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Received kbit/s per 200 ms bin from `rates` (one value per second).
    fn samples(rates: &[f64]) -> Vec<Sample> {
        rates
            .iter()
            .flat_map(|&r| std::iter::repeat_n(r, 5))
            .enumerate()
            .map(|(i, r)| Sample {
                t: i as f64 * 0.2,
                capacity_kbps: 1000.0,
                received_kbps: r,
                ..Sample::default()
            })
            .collect()
    }

    #[test]
    fn recovery_counts_from_the_return_to_the_pre_drop_picture_or_the_top_layer() {
        let start = Instant::now();
        let frame = |ms: u64, captured_ms: u64, height: u16| Rendered {
            at: start + Duration::from_millis(ms),
            spatial: u8::from(height >= 360),
            height,
            capture_us: captured_ms * 1000,
        };
        // 360p at 30 fps until an outage from 10 to 14 s; at 14 s the link flushes a backlog
        // captured before it; 180p from 14 to 17 s, 360p at 15 fps from 17 to 19 s, 360p at
        // 30 fps from 19 s.
        let mut rendered: Vec<Rendered> = (0..300)
            .map(|i| frame(i * 100 / 3, i * 100 / 3, 360))
            .collect();
        rendered.extend((0..12).map(|i| frame(14_000 + i * 10, 9_600 + i * 33, 360)));
        rendered.extend((420..510).map(|i| frame(i * 100 / 3 + 20, i * 100 / 3, 180)));
        rendered.extend(
            (510..570)
                .step_by(2)
                .map(|i| frame(i * 100 / 3 + 20, i * 100 / 3, 360)),
        );
        rendered.extend((570..900).map(|i| frame(i * 100 / 3 + 20, i * 100 / 3, 360)));
        let samples = samples(&[500.0; 30]);
        let paused = vec![false; samples.len()];
        let events = [CapacityEvent::Return {
            at: Duration::from_secs(14),
        }];
        let outages = [(Duration::from_secs(10), Duration::from_secs(14))];
        let audio = BTreeMap::new();
        let mut o = Observed {
            start,
            duration: Duration::from_secs(30),
            rendered: &rendered,
            sent_audio: &[],
            received_audio: &audio,
            samples: &samples,
            paused: &paused,
            queue_ms: &[],
            events: &events,
            outages: &outages,
            bin: Duration::from_millis(200),
        };
        let m = measure(&o, ConfigName::Kham);
        // Neither the backlog nor 180p nor 15 fps is the picture of before: the first full
        // second of 360p at 30 fps ends 6 s after the return (19.0 to 20.0 s, in 200 ms steps).
        assert!(
            (m.recovery_s.unwrap() - 6.0).abs() < 0.21,
            "{:?}",
            m.recovery_s
        );
        assert!((m.mean_capacity_kbps - 1000.0).abs() < 1e-9);
        // A top-layer frame captured 2 s after the return counts first.
        let top = [Rendered {
            spatial: 2,
            height: 720,
            ..frame(16_000, 15_900, 720)
        }];
        let mut with_top = rendered.clone();
        with_top.extend(top);
        with_top.sort_by_key(|r| r.at);
        o.rendered = &with_top;
        let m = measure(&o, ConfigName::Kham);
        assert!(
            (m.recovery_s.unwrap() - 2.0).abs() < 1e-6,
            "{:?}",
            m.recovery_s
        );
        // Baselines are not measured for recovery.
        assert_eq!(measure(&o, ConfigName::LowestLayer).recovery_s, None);
    }

    #[test]
    fn a_deliberate_pause_is_not_a_freeze_but_is_time_without_moving_video() {
        let start = Instant::now();
        // 30 fps from 0 to 10 s and from 15 to 30 s; video paused by the room from 10 to 15 s.
        let frame = |ms: u64| Rendered {
            at: start + Duration::from_millis(ms),
            spatial: 0,
            height: 180,
            capture_us: 0,
        };
        let rendered: Vec<Rendered> = (0..300)
            .map(|i| frame(i * 100 / 3))
            .chain((450..900).map(|i| frame(i * 100 / 3)))
            .collect();
        let samples = samples(&[500.0; 30]);
        let paused: Vec<bool> = (0..samples.len()).map(|i| (50..75).contains(&i)).collect();
        let audio = BTreeMap::new();
        let o = Observed {
            start,
            duration: Duration::from_secs(30),
            rendered: &rendered,
            sent_audio: &[],
            received_audio: &audio,
            samples: &samples,
            paused: &paused,
            queue_ms: &[],
            events: &[],
            outages: &[],
            bin: Duration::from_millis(200),
        };
        let m = measure(&o, ConfigName::Kham);
        assert!(m.frozen_time_pct < 0.01, "{}", m.frozen_time_pct);
        let want = 100.0 * 5.0 / 30.0;
        assert!(
            (m.frozen_or_paused_pct - want).abs() < 0.5,
            "{}",
            m.frozen_or_paused_pct
        );
        assert!(
            (m.audio_only_pct - want).abs() < 0.5,
            "{}",
            m.audio_only_pct
        );
    }

    #[test]
    fn audio_delay_is_a_percentile_of_speech_time_not_of_packets() {
        let start = Instant::now();
        let ms = Duration::from_millis;
        // 0.8 s of 20 ms packets 300 ms late (the start of a call), then 19.2 s of 60 ms
        // packets 100 ms late (plus the 40 ms their first sample waits): 40 packets of 360,
        // but 40 of 1000 frames of speech.
        let mut sent = Vec::new();
        let mut received = BTreeMap::new();
        let mut id = 0u32;
        let mut t = Duration::ZERO;
        while t < Duration::from_secs(20) {
            let (frame, late) = if t < ms(800) {
                (ms(20), ms(300))
            } else {
                (ms(60), ms(100))
            };
            sent.push(SentAudio {
                id,
                at: start + t,
                speech: true,
                frame,
            });
            received.insert(id, start + t + late);
            id += 1;
            t += frame;
        }
        let samples = samples(&[500.0; 21]);
        let paused = vec![false; samples.len()];
        let o = Observed {
            start,
            duration: Duration::from_secs(21),
            rendered: &[],
            sent_audio: &sent,
            received_audio: &received,
            samples: &samples,
            paused: &paused,
            queue_ms: &[],
            events: &[],
            outages: &[],
            bin: Duration::from_millis(200),
        };
        let m = measure(&o, ConfigName::Kham);
        // Counted per packet 11 % of the samples would be 300 ms and so would the p95; per
        // 20 ms of speech 4 % are, and the p95 is the 60 ms packets' 140.
        let p95 = m.p95_audio_delay_ms.unwrap();
        assert!((p95 - 140.0).abs() < 1.0, "{p95}");
        assert!(m.audio_loss_after_repair_pct < 1e-9);
    }
}
