use std::time::{Duration, Instant};

use super::*;
use crate::input::Priority;
use crate::layer::LayerRates;

fn rates() -> LayerRates {
    LayerRates {
        bps: [
            [60_000, 90_000, 150_000],
            [200_000, 300_000, 500_000],
            [600_000, 900_000, 1_500_000],
        ],
        // A 30 fps camera.
        fps: [[7, 15, 30], [7, 15, 30], [7, 15, 30]],
    }
}

fn tracks() -> Vec<TrackInput> {
    vec![
        TrackInput {
            key: 1,
            kind: Kind::Audio,
            priority: Priority::Featured,
            rates: LayerRates::from_bps([[40_000, 0, 0], [0; 3], [0; 3]]),
            max_spatial: 0,
            visible: true,
            unshaped_bps: None,
            lowest_cap_bps: None,
        },
        TrackInput {
            key: 2,
            kind: Kind::Video,
            priority: Priority::Featured,
            rates: rates(),
            max_spatial: 2,
            visible: true,
            unshaped_bps: None,
            lowest_cap_bps: None,
        },
    ]
}

fn input(t: &[TrackInput], est: u64) -> SubscriberInput<'_> {
    SubscriberInput {
        estimate_bps: Some(est),
        raw_estimate_bps: None,
        overusing: false,
        loss: 0.0,
        rtt: None,
        audio_only: false,
        lossy: false,
        outage: false,
        tracks: t,
    }
}

fn video(a: &Allocation) -> Decision {
    *a.decisions
        .iter()
        .find(|d| d.key == 2)
        .expect("video decision")
}

struct Clock(Instant);
impl Clock {
    fn at(&self, ms: u64) -> Instant {
        self.0 + Duration::from_millis(ms)
    }
}

/// Runs updates every 200 ms over `[from, to)` with a fixed estimate.
fn run(a: &mut Allocator, c: &Clock, t: &[TrackInput], from: u64, to: u64, est: u64) {
    for ms in (from..to).step_by(200) {
        a.update(c.at(ms), &input(t, est));
    }
}

#[test]
fn starts_on_the_lowest_layer_climbs_with_holds_and_steps_down_at_once() {
    let c = Clock(Instant::now());
    let t = tracks();
    let mut a = Allocator::new(AllocatorConfig::default());
    let out = a.update(c.at(0), &input(&t, 2_000_000));
    // The start is on the lowest layer: the estimate is a guess before feedback.
    assert_eq!(video(out).layer, Some(Layer::LOWEST));
    assert_eq!(out.switches[0].reason, Reason::Start);
    // A spatial upgrade waits its hold (2 s) and then jumps to what fits in 0.75 x the
    // estimate (1.46 M: 720p at 15 fps).
    run(&mut a, &c, &t, 200, 1800, 2_000_000);
    assert_eq!(video(a.allocation()).layer, Some(Layer::LOWEST));
    run(&mut a, &c, &t, 1800, 2400, 2_000_000);
    assert_eq!(video(a.allocation()).layer, Some(Layer::new(2, 1)));
    // The full frame rate after another (padded: 900 k to 1.5 M is a big step) hold, since
    // 0.85 x 2 M covers 1.5 M + audio.
    run(&mut a, &c, &t, 2400, 4800, 2_000_000);
    assert_eq!(video(a.allocation()).layer, Some(Layer::new(2, 2)));
    // The estimate collapses: the very next update steps down, with its reason.
    let out = a.update(c.at(4800), &input(&t, 300_000));
    assert_eq!(video(out).layer, Some(Layer::new(0, 2)));
    assert_eq!(out.switches.len(), 1);
    assert_eq!(out.switches[0].reason, Reason::BandwidthDrop);
}

#[test]
fn a_small_dip_below_what_is_sent_steps_down_only_once_confirmed() {
    let c = Clock(Instant::now());
    let t = tracks();
    let mut a = Allocator::new(AllocatorConfig::default());
    run(&mut a, &c, &t, 0, 6000, 2_500_000);
    assert_eq!(video(a.allocation()).layer, Some(Layer::new(2, 2)));
    // 0.9 x what is sent (the estimator's dip after an overuse): held for a second...
    run(&mut a, &c, &t, 6000, 7000, 1_390_000);
    assert_eq!(video(a.allocation()).layer, Some(Layer::new(2, 2)));
    // ...and the estimate recovers: nothing happened.
    run(&mut a, &c, &t, 7000, 8000, 2_000_000);
    assert_eq!(video(a.allocation()).layer, Some(Layer::new(2, 2)));
    // A dip that lasts is a smaller link.
    run(&mut a, &c, &t, 8000, 9600, 1_390_000);
    assert!(video(a.allocation()).layer < Some(Layer::new(2, 2)));
}

#[test]
fn probes_for_the_ideal_in_pulses_that_back_off() {
    let c = Clock(Instant::now());
    let t = tracks();
    let mut a = Allocator::new(AllocatorConfig::default());
    let mut pulses = Vec::new();
    for ms in (0..40_000).step_by(200) {
        let out = a.update(c.at(ms), &input(&t, 300_000));
        // Desired covers the ideal (every layer, with audio), not the next step.
        assert!(out.probe.desired_bps >= 1_540_000, "{:?}", out.probe);
        if out.probe.pulse {
            pulses.push(ms);
        }
    }
    // Pulses at the base interval first, then further apart as they find nothing.
    assert!(pulses.len() >= 4, "{pulses:?}");
    let gaps: Vec<u64> = pulses.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.last() > gaps.first(), "{gaps:?}");
    assert!(*gaps.last().unwrap_or(&0) <= 16_000, "{gaps:?}");
    // At the ideal: no pulse.
    let mut b = Allocator::new(AllocatorConfig::default());
    for ms in (0..10_000).step_by(200) {
        let out = b.update(c.at(ms), &input(&t, 5_000_000));
        assert!(
            !out.probe.pulse || ms < 6_000,
            "pulse at {ms} with room to spare"
        );
    }
}

#[test]
fn a_shaped_publisher_does_not_keep_the_estimate_where_it_is() {
    // The publisher's top layer is capped to this subscriber's estimate: it measures 650 kbit/s
    // on a link estimated at 960. By the measured rates the subscriber has all it can use (no
    // probe, and the estimator, application-limited, cannot grow); what the layer would send
    // unshaped (2.5 Mbit/s) is what `desired` probes for.
    let c = Clock(Instant::now());
    let mut t = tracks();
    t[1].rates = LayerRates::from_bps([
        [60_000, 90_000, 150_000],
        [200_000, 300_000, 450_000],
        [400_000, 500_000, 650_000],
    ]);
    let mut shaped = Allocator::new(AllocatorConfig::default());
    let mut pulses = 0;
    for ms in (0..20_000).step_by(200) {
        let out = shaped.update(c.at(ms), &input(&t, 960_000));
        assert!(out.probe.desired_bps < 960_000, "{:?}", out.probe);
        pulses += usize::from(out.probe.pulse);
    }
    assert_eq!(pulses, 0, "measured rates alone never ask for more");
    t[1].unshaped_bps = Some(2_500_000);
    let mut a = Allocator::new(AllocatorConfig::default());
    let mut pulses = 0;
    for ms in (0..30_000).step_by(200) {
        let out = a.update(c.at(ms), &input(&t, 960_000));
        // Not in the first seconds of video, while the estimate may still be the start's guess.
        if ms < 10_000 {
            assert!(out.probe.desired_bps < 960_000, "{:?}", out.probe);
            continue;
        }
        assert!(out.probe.desired_bps >= 2_500_000, "{:?}", out.probe);
        pulses += usize::from(out.probe.pulse);
    }
    assert!(pulses >= 2, "{pulses} pulses in 20 s");
    // The layer chosen is still what the measured rates allow.
    assert_eq!(video(a.allocation()).layer, Some(Layer::new(2, 2)));
}

#[test]
fn pauses_video_below_the_lowest_layer_and_resumes_by_itself() {
    let c = Clock(Instant::now());
    let t = tracks();
    let mut a = Allocator::new(AllocatorConfig::default());
    a.update(c.at(0), &input(&t, 1_000_000));
    // A shortfall below the lowest layer first keeps the lowest layer...
    let out = a.update(c.at(100), &input(&t, 90_000));
    assert_eq!(video(out).layer, Some(Layer::LOWEST));
    a.update(c.at(1100), &input(&t, 90_000));
    // ...and pauses video once it has lasted `pause_wait`.
    let out = a.update(c.at(2200), &input(&t, 90_000));
    assert_eq!(video(out).layer, None);
    assert_eq!(video(out).paused, Some(Reason::BandwidthDrop));
    // Audio keeps its allocation even above the estimate.
    assert!(
        out.decisions
            .iter()
            .any(|d| d.kind == Kind::Audio && d.layer.is_some())
    );
    // While paused the link is padded towards the resume rate, but below the estimate (padding
    // above it would queue in front of the audio), in windows once the estimate has settled,
    // and probed above it.
    let out = a.update(c.at(2400), &input(&t, 90_000));
    assert!(
        out.probe.min_bps < 72_000,
        "no pad at once: {:?}",
        out.probe
    );
    assert!(out.probe.desired_bps > 90_000, "{:?}", out.probe);
    let out = a.update(c.at(4200), &input(&t, 90_000));
    assert_eq!(
        out.probe.min_bps, 72_000,
        "0.8 x the estimate: {:?}",
        out.probe
    );
    // The pad finds nothing: it ends after its window, the next comes later.
    let padded = |a: &mut Allocator, from: u64, to: u64, est: u64| -> u64 {
        (from..to)
            .step_by(100)
            .filter(|&ms| a.update(c.at(ms), &input(&t, est)).probe.min_bps >= est * 8 / 10)
            .count() as u64
            * 100
    };
    let first = padded(&mut a, 4300, 10_000, 90_000);
    assert!((1500..=2100).contains(&first), "padded {first} ms of 5.7 s");
    let later = padded(&mut a, 10_000, 40_000, 90_000);
    assert!(later <= 6_500, "padded {later} ms of the next 30 s");
    // Overuse ends a pad at once.
    let mut over = input(&t, 90_000);
    over.overusing = true;
    let mut next = 40_000;
    while a.update(c.at(next), &input(&t, 90_000)).probe.min_bps < 72_000 {
        next += 100;
        assert!(next < 80_000, "another pad within 40 s");
    }
    assert!(a.update(c.at(next + 100), &over).probe.min_bps < 72_000);
    assert!(a.update(c.at(next + 200), &input(&t, 90_000)).probe.min_bps < 72_000);
    // A higher estimate: still at most 0.8 x of it.
    let out = a.update(c.at(next + 300), &input(&t, 100_000));
    assert!(out.probe.min_bps <= 80_000, "{:?}", out.probe);
    // The floor fits again: video is back within seconds.
    run(&mut a, &c, &t, next + 400, next + 3000, 120_000);
    assert_eq!(video(a.allocation()).layer, Some(Layer::LOWEST));
    assert_eq!(video(a.allocation()).paused, None);
}

#[test]
fn a_deep_shortfall_pauses_at_once() {
    let c = Clock(Instant::now());
    let t = tracks();
    let mut a = Allocator::new(AllocatorConfig::default());
    a.update(c.at(0), &input(&t, 1_000_000));
    // Far below audio plus the lowest layer: no two seconds of queue in front of the audio.
    let out = a.update(c.at(100), &input(&t, 30_000));
    assert!(video(out).layer.is_some(), "a dip is not a link yet");
    let out = a.update(c.at(700), &input(&t, 30_000));
    assert_eq!(video(out).layer, None);
    assert_eq!(video(out).paused, Some(Reason::BandwidthDrop));
}

#[test]
fn a_spatial_upgrade_undone_soon_blocks_the_next_for_a_growing_backoff() {
    let c = Clock(Instant::now());
    let t = tracks();
    let cfg = AllocatorConfig::default();
    let mut a = Allocator::new(cfg.clone());
    run(&mut a, &c, &t, 0, 2400, 2_500_000);
    assert_eq!(video(a.allocation()).layer.map(|l| l.spatial), Some(2));
    // The upgrade collapses the link. Right after it the estimator's dip is given its grace
    // (the layer before the upgrade still fits); then back down, and no spatial upgrade for the
    // backoff.
    run(&mut a, &c, &t, 2400, 3000, 600_000);
    assert_eq!(
        video(a.allocation()).layer.map(|l| l.spatial),
        Some(2),
        "grace"
    );
    run(&mut a, &c, &t, 3000, 4600, 600_000);
    let down = video(a.allocation()).layer;
    assert!(down.map(|l| l.spatial) < Some(2), "{down:?}");
    run(&mut a, &c, &t, 4600, 4600 + 7000, 2_500_000);
    assert_eq!(
        video(a.allocation()).layer.map(|l| l.spatial),
        down.map(|l| l.spatial),
        "spatial upgrade before the backoff ended"
    );
    run(&mut a, &c, &t, 11_600, 15_600, 2_500_000);
    assert_eq!(video(a.allocation()).layer.map(|l| l.spatial), Some(2));
    // A second failure soon after doubles the backoff. A collapse even below what was sent
    // before the upgrade is a step down at once, grace or not.
    run(&mut a, &c, &t, 15_600, 16_000, 100_000);
    assert!(video(a.allocation()).layer.map(|l| l.spatial) < Some(2));
    assert_eq!(a.backoff(), cfg.spatial_backoff * 2);
    // A third stays at the cap (`max_spatial_backoff`).
    run(&mut a, &c, &t, 16_000, 16_000 + 16_000 + 4000, 2_500_000);
    assert_eq!(video(a.allocation()).layer.map(|l| l.spatial), Some(2));
    run(&mut a, &c, &t, 36_000, 36_400, 100_000);
    assert!(video(a.allocation()).layer.map(|l| l.spatial) < Some(2));
    assert_eq!(a.backoff(), cfg.max_spatial_backoff);
    assert_eq!(cfg.max_spatial_backoff, Duration::from_secs(16));
}

#[test]
fn temporal_upgrades_come_before_a_spatial_one_is_affordable() {
    let c = Clock(Instant::now());
    let t = tracks();
    let mut a = Allocator::new(AllocatorConfig::default());
    // 0.85 x 260 k - 40 k = 181 k: 180p at 30 fps fits, 360p (15 fps, 300 k) does not.
    run(&mut a, &c, &t, 0, 4000, 260_000);
    assert_eq!(video(a.allocation()).layer, Some(Layer::new(0, 2)));
}

#[test]
fn audio_only_choice_hidden_tile_and_small_tile_apply_at_once() {
    let c = Clock(Instant::now());
    let mut t = tracks();
    let mut a = Allocator::new(AllocatorConfig::default());
    a.update(c.at(0), &input(&t, 3_000_000));
    let mut i = input(&t, 3_000_000);
    i.audio_only = true;
    let out = a.update(c.at(100), &i);
    assert_eq!(video(out).layer, None);
    assert_eq!(video(out).paused, Some(Reason::AudioOnlyChosen));
    assert_eq!(out.switches[0].reason, Reason::AudioOnlyChosen);
    let out = a.update(c.at(200), &input(&t, 3_000_000));
    assert!(video(out).layer.is_some());
    t[1].max_spatial = 0;
    let out = a.update(c.at(300), &input(&t, 3_000_000));
    assert_eq!(video(out).layer.map(|l| l.spatial), Some(0));
    assert_eq!(out.switches[0].reason, Reason::TileSize);
    t[1].visible = false;
    let out = a.update(c.at(400), &input(&t, 3_000_000));
    assert_eq!(video(out).paused, Some(Reason::Hidden));
}

#[test]
fn no_upgrade_while_loss_is_high() {
    let c = Clock(Instant::now());
    let t = tracks();
    let mut a = Allocator::new(AllocatorConfig::default());
    a.update(c.at(0), &input(&t, 300_000));
    for ms in (100..10_000).step_by(100) {
        let mut i = input(&t, 2_500_000);
        i.loss = 0.2;
        let out = a.update(c.at(ms), &i);
        assert!(!out.probe.pulse, "no probing into a lossy link");
    }
    // Still where it started.
    assert_eq!(video(a.allocation()).layer, Some(Layer::LOWEST));
}

#[test]
fn a_subscriber_without_feedback_is_not_held_at_the_initial_estimate() {
    let c = Clock(Instant::now());
    let t = tracks();
    let mut a = Allocator::new(AllocatorConfig::default());
    let mut i = input(&t, 0);
    i.estimate_bps = None;
    let out = a.update(c.at(0), &i);
    let first = video(out).layer;
    assert!(
        first.is_some() && first < Some(Layer::new(2, 0)),
        "initial estimate first: {first:?}"
    );
    for ms in (200..10_000).step_by(200) {
        a.update(c.at(ms), &i);
    }
    assert_eq!(video(a.allocation()).layer, Some(Layer::new(2, 2)));
}

/// [`input`] with an unsmoothed estimate and the delay detector's state.
fn with_raw_estimate(t: &[TrackInput], est: u64, raw: u64, overusing: bool) -> SubscriberInput<'_> {
    let mut i = input(t, est);
    i.raw_estimate_bps = Some(raw);
    i.overusing = overusing;
    i
}

#[test]
fn the_unsmoothed_estimate_sheds_a_collapse_at_once_but_a_dip_of_it_is_held() {
    let c = Clock(Instant::now());
    let t = tracks();
    let mut a = Allocator::new(AllocatorConfig::default());
    run(&mut a, &c, &t, 0, 6000, 2_500_000);
    assert_eq!(video(a.allocation()).layer, Some(Layer::new(2, 2)));
    let with_raw = |est: u64, raw: u64| with_raw_estimate(&t, est, raw, true);
    // After a keyframe's transient overuse the estimator sits at 0.85x what was sent while the
    // smoothed estimate has not moved: held.
    for ms in (6000..8000).step_by(200) {
        a.update(c.at(ms), &with_raw(2_400_000, 1_480_000));
    }
    assert_eq!(video(a.allocation()).layer, Some(Layer::new(2, 2)));
    // A collapse to 300 kbit/s shows in the unsmoothed estimate first: stepped down in the same
    // update, while the smoothed one still says 2 Mbit/s.
    let out = a.update(c.at(8000), &with_raw(2_000_000, 300_000));
    assert_eq!(video(out).layer, Some(Layer::new(0, 2)));
    // And no upgrade while it stays low.
    for ms in (8200..14_000).step_by(200) {
        a.update(c.at(ms), &with_raw(1_800_000, 300_000));
    }
    assert_eq!(video(a.allocation()).layer, Some(Layer::new(0, 2)));
}

#[test]
fn a_dip_of_the_unsmoothed_estimate_without_overuse_is_not_a_collapse() {
    // Random loss (3 % on a 1 Mbit/s link at 300 ms RTT in Chromium) makes the loss-based
    // controller pull the unsmoothed estimate to a quarter for a second or so, with no queue
    // growing: stepping down at once on that cost a keyframe and a freeze each time.
    let c = Clock(Instant::now());
    let t = tracks();
    let mut a = Allocator::new(AllocatorConfig::default());
    run(&mut a, &c, &t, 0, 6000, 2_500_000);
    assert_eq!(video(a.allocation()).layer, Some(Layer::new(2, 2)));
    for ms in (6000..7000).step_by(200) {
        a.update(c.at(ms), &with_raw_estimate(&t, 2_400_000, 600_000, false));
    }
    assert_eq!(video(a.allocation()).layer, Some(Layer::new(2, 2)));
    // The same dip with the delay detector overusing is a collapse: stepped down at once.
    let out = a.update(c.at(7000), &with_raw_estimate(&t, 2_400_000, 600_000, true));
    assert!(
        video(out).layer < Some(Layer::new(2, 0)),
        "{:?}",
        video(out).layer
    );
}

#[test]
fn a_thin_link_found_at_the_start_pauses_video_within_a_moment() {
    // Behind 60 kbit/s: the initial probe's result pulls the unsmoothed estimate to its floor
    // half a second after video started, while the 3-second average still shows the guess.
    let c = Clock(Instant::now());
    let t = tracks();
    let mut a = Allocator::new(AllocatorConfig::default());
    let out = a.update(c.at(0), &input(&t, 600_000));
    assert_eq!(video(out).layer, Some(Layer::LOWEST));
    run(&mut a, &c, &t, 200, 600, 600_000);
    let thin = |est| with_raw_estimate(&t, est, 40_000, false);
    let out = a.update(c.at(600), &thin(320_000));
    assert!(video(out).layer.is_some(), "one reading is not a link yet");
    a.update(c.at(800), &thin(250_000));
    let out = a.update(c.at(1000), &thin(200_000));
    assert_eq!(video(out).layer, None, "paused 0.4 s after the reading");
    assert_eq!(video(out).paused, Some(Reason::BandwidthDrop));

    // A reading that the next ones take back, with the 3-second average lagging below the
    // lowest layer (a clean link whose receiver was busy for a moment): not a thin link.
    let mut d = Allocator::new(AllocatorConfig::default());
    d.update(c.at(0), &input(&t, 600_000));
    run(&mut d, &c, &t, 200, 600, 600_000);
    d.update(c.at(600), &thin(320_000));
    for ms in (800..3000).step_by(200) {
        let out = d.update(c.at(ms), &with_raw_estimate(&t, 60_000, 300_000, false));
        assert!(video(out).layer.is_some(), "{ms}");
    }

    // The same reading later in the call is a dip without overuse (random loss): held.
    let mut b = Allocator::new(AllocatorConfig::default());
    run(&mut b, &c, &t, 0, 6000, 600_000);
    let before = video(b.allocation()).layer;
    for ms in (6000..7400).step_by(200) {
        b.update(c.at(ms), &with_raw_estimate(&t, 600_000, 40_000, false));
    }
    assert_eq!(video(b.allocation()).layer, before);
}

#[test]
fn desired_rises_only_at_pulses_while_measured_rates_jitter() {
    // str0m probes on every rise of `desired` above the estimate: layer rates measured a
    // few percent apart from one allocation to the next must not each start a probe.
    let c = Clock(Instant::now());
    let mut a = Allocator::new(AllocatorConfig::default());
    let mut prev: Option<u64> = None;
    let mut rises = Vec::new();
    let mut pulses = 0;
    for (k, ms) in (0..20_000u64).step_by(200).enumerate() {
        let mut t = tracks();
        let wobble = [100u64, 108, 95, 104, 92, 110][k % 6];
        for r in t[1].rates.bps.iter_mut().flatten() {
            *r = *r * wobble / 100;
        }
        let out = a.update(c.at(ms), &input(&t, 300_000));
        if out.probe.pulse {
            pulses += 1;
        } else if prev.is_some_and(|p| out.probe.desired_bps > p) {
            rises.push(ms);
        }
        prev = Some(out.probe.desired_bps);
    }
    assert!(pulses >= 2, "pulses still probe ({pulses})");
    assert!(rises.is_empty(), "desired rose between pulses at {rises:?}");
}

#[test]
fn while_paused_for_bandwidth_pulses_back_off_only_a_little() {
    // Paused on a link just below audio plus the lowest layer: the pulses (allocation probes)
    // are how a link that recovered is found, so they back off only to
    // `max_paused_probe_interval` (each one is a queue in front of the audio of a thin link),
    // and a pulse that finds room brings back the base interval.
    let c = Clock(Instant::now());
    let t = tracks();
    let cfg = AllocatorConfig::default();
    let mut a = Allocator::new(cfg.clone());
    a.update(c.at(0), &input(&t, 600_000));
    let mut pulses = Vec::new();
    for ms in (200..60_000).step_by(200) {
        let out = a.update(c.at(ms), &input(&t, 80_000));
        if out.probe.pulse && ms > 5_000 {
            pulses.push(ms);
        }
    }
    assert_eq!(video(a.allocation()).paused, Some(Reason::BandwidthDrop));
    let gaps: Vec<u64> = pulses.windows(2).map(|w| w[1] - w[0]).collect();
    let base = cfg.probe_interval.as_millis() as u64;
    let max = cfg.max_paused_probe_interval.as_millis() as u64;
    assert!(gaps.len() >= 5, "{pulses:?}");
    assert!(gaps.iter().all(|&g| g <= max + 200), "{gaps:?}");
    assert!(
        gaps.iter().rev().take(2).all(|&g| g + 200 >= max),
        "{gaps:?}"
    );
    // The estimate grows a fifth (still paused): the pulse after it comes at the base
    // interval.
    let mut later = Vec::new();
    for ms in (60_000..80_000).step_by(200) {
        let out = a.update(c.at(ms), &input(&t, 96_000));
        if out.probe.pulse {
            later.push(ms);
        }
    }
    assert_eq!(video(a.allocation()).paused, Some(Reason::BandwidthDrop));
    let gaps: Vec<u64> = later.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.first().is_some_and(|&g| g <= base + 200), "{later:?}");
}

#[test]
fn no_spatial_upgrade_until_a_restarted_estimator_has_measured_the_link() {
    let c = Clock(Instant::now());
    let t = tracks();
    let mut a = Allocator::new(AllocatorConfig::default());
    // The estimator starts over from its guess as video starts: the guess is no measurement.
    a.estimator_restarted(c.at(0));
    run(&mut a, &c, &t, 0, 3800, 2_000_000);
    assert_eq!(video(a.allocation()).layer.map(|l| l.spatial), Some(0));
    // After the start window a spatial upgrade follows its hold as usual.
    run(&mut a, &c, &t, 3800, 7000, 2_000_000);
    assert!(video(a.allocation()).layer.is_some_and(|l| l.spatial > 0));
}

#[test]
fn on_a_lossy_link_the_lowest_layer_is_not_paused_and_comes_back_at_once() {
    let c = Clock(Instant::now());
    let t = tracks();
    let lossy = |est: u64, lossy: bool, overusing: bool| SubscriberInput {
        raw_estimate_bps: Some(est),
        overusing,
        loss: 0.2,
        lossy,
        ..input(&t, est)
    };
    let mut a = Allocator::new(AllocatorConfig::default());
    run(&mut a, &c, &t, 0, 2000, 1_000_000);
    assert!(video(a.allocation()).layer.is_some());
    // 20 % random loss: the loss-based estimate reads 40 kbit/s, far below audio plus the
    // lowest layer, for 10 s. Not paused: stepped down to the lowest spatial layer at most.
    for ms in (2000..12_000).step_by(200) {
        a.update(c.at(ms), &lossy(40_000, true, false));
    }
    let d = video(a.allocation());
    assert_eq!(d.layer.map(|l| l.spatial), Some(0), "{d:?}");
    assert_eq!(d.paused, None);
    // The same estimate without the lossy mark (a thin link): paused within the waits.
    for ms in (12_000..20_000).step_by(200) {
        a.update(c.at(ms), &lossy(40_000, false, false));
    }
    assert_eq!(video(a.allocation()).paused, Some(Reason::BandwidthDrop));
    // Lossy again, but the delay-based detector sees queues growing: still paused...
    for ms in (20_000..21_000).step_by(200) {
        a.update(c.at(ms), &lossy(40_000, true, true));
    }
    assert_eq!(video(a.allocation()).layer, None);
    // ...and once no overuse has been seen for a while, back on the lowest layer at once,
    // whatever the loss (no upgrade is made above `max_loss_for_upgrade`).
    let mut back = None;
    for ms in (21_000..26_000).step_by(200) {
        if video(a.update(c.at(ms), &lossy(40_000, true, false)))
            .layer
            .is_some()
        {
            back.get_or_insert(ms);
        }
    }
    let back = back.expect("resumed");
    assert!(back <= 21_000 + 3_000, "resumed at {back} ms");
    assert_eq!(video(a.allocation()).layer.map(|l| l.spatial), Some(0));
}

#[test]
fn a_restarted_estimator_may_probe_past_an_ideal_not_measured_yet() {
    let c = Clock(Instant::now());
    let mut t = tracks();
    // Video has just started: its layers have no measured rate yet.
    t[1].rates = LayerRates::default();
    let mut a = Allocator::new(AllocatorConfig::default());
    a.estimator_restarted(c.at(0));
    let out = a.update(c.at(0), &input(&t, 600_000));
    // The initial probes (capped at 2x desired) can measure up to twice the guess...
    assert!(out.probe.desired_bps >= 600_000, "{:?}", out.probe);
    // ...and nothing is padded for it.
    assert!(out.probe.min_bps < 100_000, "{:?}", out.probe);
    // After the start window the ideal is what the tracks use again (audio alone here).
    run(&mut a, &c, &t, 200, 5000, 600_000);
    let out = a.update(c.at(5000), &input(&t, 600_000));
    assert!(out.probe.desired_bps < 200_000, "{:?}", out.probe);
}

#[test]
fn nothing_is_upgraded_or_pulsed_while_the_subscriber_is_silent() {
    let c = Clock(Instant::now());
    let t = tracks();
    let mut a = Allocator::new(AllocatorConfig::default());
    run(&mut a, &c, &t, 0, 2000, 300_000);
    let before = video(a.allocation()).layer;
    let silent = |est: u64| SubscriberInput {
        outage: true,
        ..input(&t, est)
    };
    for ms in (2000..12_000).step_by(200) {
        let out = a.update(c.at(ms), &silent(3_000_000));
        assert!(!out.probe.pulse, "no pulse at {ms} ms");
    }
    assert_eq!(video(a.allocation()).layer, before, "no upgrade");
    // Feedback back: upgrades as usual.
    run(&mut a, &c, &t, 12_000, 20_000, 3_000_000);
    assert!(video(a.allocation()).layer > before);
}

/// A resume that ends in a pause again within `failed_resume_window` doubles the margin the
/// next one needs above audio and the lowest layer (up to `max_resume_margin_bps`), so a link
/// that cannot carry video is not tried at the same estimate again and again.
#[test]
fn a_resume_that_fails_soon_raises_the_margin_of_the_next() {
    let c = Clock(Instant::now());
    let t = tracks();
    let cfg = AllocatorConfig::default();
    let mut a = Allocator::new(cfg.clone());
    let paused = |a: &Allocator| video(a.allocation()).layer.is_none();
    // Audio 40 kbit/s and the lowest layer's base 60: the floor is 100, the first resume is at
    // 120 (the 20 kbit/s margin; `resume_factor` alone would say 110).
    assert_eq!(cfg.resume_margin_bps, 20_000);
    run(&mut a, &c, &t, 0, 3000, 1_000_000);
    run(&mut a, &c, &t, 3000, 10_000, 90_000);
    assert!(paused(&a), "paused below the floor");
    run(&mut a, &c, &t, 10_000, 14_000, 115_000);
    assert!(paused(&a), "resumed 15 kbit/s above the floor");
    run(&mut a, &c, &t, 14_000, 18_000, 122_000);
    assert!(!paused(&a), "resumed at 122 kbit/s");
    // It does not hold: paused again within the window...
    run(&mut a, &c, &t, 18_000, 24_000, 90_000);
    assert!(paused(&a), "paused again");
    // ...and 122 no longer resumes it: the margin is 40 now.
    run(&mut a, &c, &t, 24_000, 34_000, 122_000);
    assert!(paused(&a), "resumed again at the same estimate");
    run(&mut a, &c, &t, 34_000, 38_000, 142_000);
    assert!(!paused(&a), "not resumed 42 kbit/s above the floor");
    // Failing again and again, the margin stops at its maximum.
    for round in 0..3u64 {
        let t0 = 38_000 + round * 20_000;
        run(&mut a, &c, &t, t0, t0 + 6000, 90_000);
        assert!(paused(&a), "round {round}: paused");
        run(
            &mut a,
            &c,
            &t,
            t0 + 6000,
            t0 + 20_000,
            100_000 + cfg.max_resume_margin_bps + 2000,
        );
        assert!(
            !paused(&a),
            "round {round}: not resumed above the largest margin"
        );
    }
}

/// A resume waits out its hold without padding past what a paused video pads to (a share of
/// the estimate): on a thin link padding up to audio and the lowest layer queued in front of
/// the speech for the whole hold.
#[test]
fn a_resume_is_not_padded_to_during_its_hold() {
    let c = Clock(Instant::now());
    let t = tracks();
    let cfg = AllocatorConfig::default();
    let mut a = Allocator::new(cfg.clone());
    run(&mut a, &c, &t, 0, 3000, 1_000_000);
    run(&mut a, &c, &t, 3000, 10_000, 90_000);
    assert!(
        video(a.allocation()).layer.is_none(),
        "paused below the floor"
    );
    // Audio 40 and the lowest layer 60: the resume is at 120, its padding would be 100.
    let est = 122_000;
    let mut held = 0;
    let mut ms = 10_000;
    while video(a.allocation()).layer.is_none() && ms < 20_000 {
        a.update(c.at(ms), &input(&t, est));
        if video(a.allocation()).layer.is_some() {
            break;
        }
        let min = a.allocation().probe.min_bps;
        assert!(
            min as f64 <= est as f64 * cfg.paused_padding,
            "padded to {min} at {ms} ms in the hold"
        );
        held += 1;
        ms += 200;
    }
    assert!(video(a.allocation()).layer.is_some(), "resumed");
    assert!(held > 3, "the resume had a hold ({held} updates)");
}

/// Video paused on a thin link while its lowest layer cost 60 kbit/s; the publisher is then
/// told to shape it down to 24 (the video floor) and it measures 20. Once the estimate covers
/// audio and the shaped layer with the resume margin, video comes back, though the 5-10 s
/// memory of the lowest layer's cost still holds the old 60. Without the cap it waits for the
/// memory to forget.
#[test]
fn a_floor_told_to_the_publisher_bounds_the_remembered_cost_of_the_lowest_layer() {
    for (cap, resumed) in [(Some(24_000), true), (None, false)] {
        let c = Clock(Instant::now());
        let mut t = tracks();
        let mut a = Allocator::new(AllocatorConfig::default());
        run(&mut a, &c, &t, 0, 3000, 300_000);
        run(&mut a, &c, &t, 3000, 9000, 50_000);
        assert_eq!(video(a.allocation()).paused, Some(Reason::BandwidthDrop));
        t[1].rates = LayerRates::from_bps([[20_000, 30_000, 40_000], [0; 3], [0; 3]]);
        t[1].lowest_cap_bps = cap;
        run(&mut a, &c, &t, 9000, 13_000, 95_000);
        let v = video(a.allocation());
        assert_eq!(
            v.layer.is_some(),
            resumed,
            "cap {cap:?}: layer {:?} paused {:?}",
            v.layer,
            v.paused
        );
    }
}

#[test]
fn a_flowing_layer_is_not_left_because_its_measured_rate_crossed_a_lower_one() {
    let c = Clock(Instant::now());
    let mut t = tracks();
    let mut a = Allocator::new(AllocatorConfig::default());
    run(&mut a, &c, &t, 0, 40_000, 3_000_000);
    assert_eq!(video(a.allocation()).layer, Some(Layer::new(2, 2)));
    // After a keyframe the 720p encoder undershoots: 720p at 30 fps measures less than 360p at
    // 30 fps (500 k) for a moment, and the ladder leaves 720p out. It still flows: no switch (a
    // spatial one would need a keyframe, to be sent more bits).
    t[1].rates.bps[2] = [300_000, 420_000, 480_000];
    let out = a.update(c.at(40_000), &input(&t, 3_000_000));
    assert_eq!(video(out).layer, Some(Layer::new(2, 2)));
    assert!(out.switches.is_empty(), "{:?}", out.switches);
    // A layer that stops flowing is left at once.
    t[1].rates.bps[2] = [0; 3];
    let out = a.update(c.at(40_200), &input(&t, 3_000_000));
    assert_eq!(video(out).layer, Some(Layer::new(1, 2)));
    assert_eq!(out.switches[0].reason, Reason::LayerGone);
}

#[test]
fn an_outage_thins_the_video_to_a_fluid_base_and_gives_the_layer_back_after() {
    let c = Clock(Instant::now());
    let t = tracks();
    let mut a = at_720p(&c, &t);
    let before = Some(Layer::new(2, 2));
    // The link goes silent: 720p at 15 fps (7 fps is not fluid above the lowest resolution),
    // no keyframe needed, and held through the outage.
    let silent = SubscriberInput {
        outage: true,
        ..input(&t, 2_500_000)
    };
    let out = a.update(c.at(6000), &silent);
    assert_eq!(video(out).layer, Some(Layer::new(2, 1)));
    assert_eq!(out.switches[0].reason, Reason::Outage);
    run_with(&mut a, &c, 6200, 9000, &silent);
    assert_eq!(video(a.allocation()).layer, Some(Layer::new(2, 1)));
    // Back: the estimator was started again from the estimate before the gap, while the
    // smoothed estimate still averages the gap's readings. The layer held before comes back
    // at once and stays while the restarted estimator's readings are the link's.
    a.outage_over(c.at(9000));
    let back = SubscriberInput {
        raw_estimate_bps: Some(2_500_000),
        ..input(&t, 900_000)
    };
    let out = a.update(c.at(9000), &back);
    assert_eq!(video(out).layer, before);
    assert_eq!(out.switches[0].reason, Reason::Outage);
    run_with(&mut a, &c, 9200, 11_000, &back);
    assert_eq!(video(a.allocation()).layer, before);
    // A link that came back thinner shows in those readings: stepped down on them.
    let thinner = SubscriberInput {
        raw_estimate_bps: Some(400_000),
        ..input(&t, 900_000)
    };
    let out = a.update(c.at(11_000), &thinner);
    assert!(
        video(out).layer.is_some_and(|l| l.spatial < 2),
        "{:?}",
        video(out).layer
    );
}

/// An allocator that climbed to 720p at full frame rate on a 2.5 Mbit/s link by 6 s.
fn at_720p(c: &Clock, t: &[TrackInput]) -> Allocator {
    let mut a = Allocator::new(AllocatorConfig::default());
    run(&mut a, c, t, 0, 6000, 2_500_000);
    assert_eq!(video(a.allocation()).layer, Some(Layer::new(2, 2)));
    a
}

/// Runs updates every 200 ms over `[from, to)` with one input.
fn run_with(a: &mut Allocator, c: &Clock, from: u64, to: u64, i: &SubscriberInput<'_>) {
    for ms in (from..to).step_by(200) {
        a.update(c.at(ms), i);
    }
}

#[test]
fn feedback_that_stops_on_a_saturated_link_is_not_treated_as_an_outage() {
    let c = Clock(Instant::now());
    let t = tracks();
    let mut a = at_720p(&c, &t);
    let before = Some(Layer::new(2, 2));
    // The delay-based detector saw overuse just before the feedback stopped: the silence is
    // the saturated link's queue. No thinning, and nothing from before it is trusted after.
    let overused = SubscriberInput {
        overusing: true,
        ..input(&t, 2_500_000)
    };
    a.update(c.at(5800), &overused);
    let silent = SubscriberInput {
        outage: true,
        ..input(&t, 2_500_000)
    };
    let out = a.update(c.at(6000), &silent);
    assert_eq!(video(out).layer, before);
    assert!(out.switches.is_empty(), "{:?}", out.switches);
    run_with(&mut a, &c, 6200, 9000, &silent);
    a.outage_over(c.at(9000));
    // Back: the restarted estimator's high reading is not read alone; the smoothed estimate
    // (the link's, with the queue in it) says 720p does not fit and it steps down.
    let back = SubscriberInput {
        raw_estimate_bps: Some(2_500_000),
        ..input(&t, 400_000)
    };
    run_with(&mut a, &c, 9000, 12_000, &back);
    assert!(
        video(a.allocation()).layer.is_some_and(|l| l.spatial < 2),
        "{:?}",
        video(a.allocation()).layer
    );
}
