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
    let (mut frozen, mut freezes) = (0.0, 0u32);
    for w in times.windows(2) {
        let gap = w[1].saturating_sub(w[0]).as_secs_f64();
        let recent = &intervals[intervals.len().saturating_sub(30)..];
        if !recent.is_empty() {
            let mean = recent.iter().sum::<f64>() / recent.len() as f64;
            let threshold = (3.0 * mean).max(mean + 0.150);
            if gap > threshold && !o.in_outage(w[0], w[1]) && !o.paused_between(w[0], w[1]) {
                frozen += gap;
                freezes += 1;
            }
        }
        intervals.push(gap);
    }
    let first = times.first().copied().unwrap_or(o.duration);
    let watched = (o.duration.saturating_sub(first)).as_secs_f64().max(1e-9);
    m.frozen_time_pct = if o.rendered.is_empty() {
        100.0
    } else {
        100.0 * frozen / watched
    };
    m.freezes_per_min = f64::from(freezes) / minutes;

    // Audio after repair: lost if never received or too late to play.
    let settled = o.duration.saturating_sub(Duration::from_secs(1));
    let (mut lost, mut counted, mut gaps, mut run) = (0u32, 0u32, 0u32, Duration::ZERO);
    for a in o.sent_audio {
        let t = o.offset(a.at);
        if t > settled || o.in_outage(t, t + Duration::from_millis(20)) {
            run = Duration::ZERO;
            continue;
        }
        counted += 1;
        let ok = o
            .received_audio
            .get(&a.id)
            .is_some_and(|r| r.saturating_duration_since(a.at) <= AUDIO_DEADLINE);
        if ok {
            run = Duration::ZERO;
        } else {
            lost += 1;
            let before = run;
            if a.speech {
                run += Duration::from_millis(20);
            }
            if before < Duration::from_millis(200) && run >= Duration::from_millis(200) {
                gaps += 1;
            }
        }
    }
    m.audio_gaps = gaps;
    m.audio_loss_after_repair_pct = 100.0 * f64::from(lost) / f64::from(counted.max(1));

    // Utilisation: received / min(capacity, everything subscribed at the top layer), per
    // second, outside outages.
    let top_kbps = (DEFAULT_MAX_BPS[2] as f64 + 32_000.0) / 1000.0;
    let per_sec = (1.0 / o.bin.as_secs_f64()).round() as usize;
    let mut util = Vec::new();
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
        }
    }
    m.utilisation_pct = (!util.is_empty()).then(|| util.iter().sum::<f64>() / util.len() as f64);

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
                let top = o
                    .rendered
                    .iter()
                    .find(|r| o.offset(r.at) >= at && r.spatial == 2)
                    .map(|r| o.offset(r.at).saturating_sub(at).as_secs_f64());
                let s = top.unwrap_or((o.duration.saturating_sub(at)).as_secs_f64());
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
    m
}
