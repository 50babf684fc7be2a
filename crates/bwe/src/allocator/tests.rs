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
    }
}

fn tracks() -> Vec<TrackInput> {
    vec![
        TrackInput {
            key: 1,
            kind: Kind::Audio,
            priority: Priority::Featured,
            rates: LayerRates {
                bps: [[40_000, 0, 0], [0; 3], [0; 3]],
            },
            max_spatial: 0,
            visible: true,
        },
        TrackInput {
            key: 2,
            kind: Kind::Video,
            priority: Priority::Featured,
            rates: rates(),
            max_spatial: 2,
            visible: true,
        },
    ]
}

fn input(t: &[TrackInput], est: u64) -> SubscriberInput<'_> {
    SubscriberInput {
        estimate_bps: Some(est),
        loss: 0.0,
        rtt: None,
        audio_only: false,
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

#[test]
fn starts_within_the_estimate_and_steps_down_at_once() {
    let c = Clock(Instant::now());
    let t = tracks();
    let mut a = Allocator::new(AllocatorConfig::default());
    let out = a.update(c.at(0), &input(&t, 2_000_000));
    // The start is on the lowest layer: the estimate is a guess before feedback.
    assert_eq!(video(out).layer, Some(Layer::LOWEST));
    assert_eq!(out.switches[0].reason, Reason::Start);
    // One hold later the layer that fits.
    a.update(c.at(600), &input(&t, 2_000_000));
    let out = a.update(c.at(1200), &input(&t, 2_000_000));
    assert_eq!(video(out).layer, Some(Layer::new(2, 2)));
    // The estimate collapses: the very next update steps down, with its reason.
    let out = a.update(c.at(1300), &input(&t, 300_000));
    assert_eq!(video(out).layer, Some(Layer::new(1, 0)));
    assert_eq!(out.switches.len(), 1);
    assert_eq!(out.switches[0].reason, Reason::BandwidthDrop);
}

#[test]
fn steps_up_only_after_the_estimate_held_and_probes_meanwhile() {
    let c = Clock(Instant::now());
    let t = tracks();
    let mut a = Allocator::new(AllocatorConfig::default());
    a.update(c.at(0), &input(&t, 300_000));
    a.update(c.at(600), &input(&t, 300_000));
    let out = a.update(c.at(1200), &input(&t, 300_000));
    let start = video(out).layer;
    assert_eq!(start, Some(Layer::new(1, 0)));
    let c = Clock(c.at(1200));
    // Asks the estimator to probe above what is sent.
    assert!(out.probe.desired_bps > 300_000, "{:?}", out.probe);
    // Capacity returns: nothing changes before the hold has passed.
    let out = a.update(c.at(500), &input(&t, 2_500_000));
    assert_eq!(video(out).layer, start);
    let out = a.update(c.at(1000), &input(&t, 2_500_000));
    assert_eq!(video(out).layer, start);
    let out = a.update(c.at(1600), &input(&t, 2_500_000));
    assert_eq!(video(out).layer, Some(Layer::new(2, 2)));
    assert_eq!(out.switches[0].reason, Reason::ProbeConfirmed);
}

#[test]
fn pauses_video_below_the_lowest_layer_and_resumes_by_itself() {
    let c = Clock(Instant::now());
    let t = tracks();
    let mut a = Allocator::new(AllocatorConfig::default());
    a.update(c.at(0), &input(&t, 1_000_000));
    // A shortfall below the lowest layer first keeps the lowest layer...
    let out = a.update(c.at(100), &input(&t, 70_000));
    assert_eq!(video(out).layer, Some(Layer::LOWEST));
    a.update(c.at(1100), &input(&t, 70_000));
    // ...and pauses video once it has lasted `pause_wait`.
    let out = a.update(c.at(2200), &input(&t, 70_000));
    assert_eq!(video(out).layer, None);
    assert_eq!(video(out).paused, Some(Reason::BandwidthDrop));
    // Audio keeps its allocation even above the estimate.
    assert!(
        out.decisions
            .iter()
            .any(|d| d.kind == Kind::Audio && d.layer.is_some())
    );
    assert!(out.probe.desired_bps >= 100_000, "{:?}", out.probe);
    for ms in (2400..20_000).step_by(200) {
        a.update(c.at(ms), &input(&t, 400_000));
    }
    let out = a.update(c.at(20_000), &input(&t, 400_000));
    assert!(video(out).layer.is_some());
    assert_eq!(video(out).paused, None);
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
fn an_upgrade_undone_soon_doubles_the_hold() {
    let c = Clock(Instant::now());
    let t = tracks();
    let cfg = AllocatorConfig::default();
    let mut a = Allocator::new(cfg.clone());
    a.update(c.at(0), &input(&t, 300_000));
    a.update(c.at(100), &input(&t, 2_500_000));
    a.update(c.at(1700), &input(&t, 2_500_000));
    assert_eq!(video(a.allocation()).layer, Some(Layer::new(2, 2)));
    a.update(c.at(2500), &input(&t, 300_000));
    assert_eq!(a.hold(), cfg.up_hold * 2);
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
        a.update(c.at(ms), &i);
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
    for ms in (200..7000).step_by(200) {
        a.update(c.at(ms), &i);
    }
    assert_eq!(video(a.allocation()).layer, Some(Layer::new(2, 2)));
}
