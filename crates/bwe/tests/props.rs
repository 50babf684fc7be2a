//! Property tests of the allocation plan and the allocator policy.

use std::time::{Duration, Instant};

use kham_bwe::{
    Allocator, AllocatorConfig, Kind, Layer, LayerRates, Priority, SubscriberInput, TrackInput,
    plan,
};
use proptest::prelude::*;

fn arb_rates() -> impl Strategy<Value = LayerRates> {
    // Per spatial layer: a base and increasing temporal increments; some layers missing.
    prop::array::uniform3((
        any::<bool>(),
        20_000u64..800_000,
        0u64..300_000,
        0u64..600_000,
    ))
    .prop_map(|layers| {
        let mut bps = [[0u64; 3]; 3];
        for (s, (present, base, d1, d2)) in layers.iter().enumerate() {
            if *present || s == 0 {
                let base = base * (s as u64 * 3 + 1);
                bps[s] = [base, base + d1, base + d1 + d2];
            }
        }
        LayerRates::from_bps(bps)
    })
}

fn arb_track(key: u32) -> impl Strategy<Value = TrackInput> {
    (
        arb_rates(),
        prop_oneof![
            Just(Priority::Share),
            Just(Priority::Featured),
            Just(Priority::Other)
        ],
        0u8..3,
        prop::bool::weighted(0.9),
        prop::bool::weighted(0.1),
    )
        .prop_map(
            move |(rates, priority, max_spatial, visible, screen)| TrackInput {
                key,
                kind: if screen { Kind::Screen } else { Kind::Video },
                priority,
                rates,
                max_spatial,
                visible,
                unshaped_bps: None,
                lowest_cap_bps: None,
            },
        )
}

fn arb_tracks() -> impl Strategy<Value = Vec<TrackInput>> {
    (1usize..6).prop_flat_map(|n| {
        (0..n as u32)
            .map(arb_track)
            .collect::<Vec<_>>()
            .prop_map(|mut v| {
                v.push(audio(100));
                v
            })
    })
}

fn audio(key: u32) -> TrackInput {
    TrackInput {
        key,
        kind: Kind::Audio,
        priority: Priority::Other,
        rates: LayerRates::from_bps([[40_000, 0, 0], [0; 3], [0; 3]]),
        max_spatial: 0,
        visible: true,
        unshaped_bps: None,
        lowest_cap_bps: None,
    }
}

fn rank(p: Priority, k: Kind) -> Priority {
    if k == Kind::Screen {
        Priority::Share
    } else {
        p
    }
}

proptest! {
    #[test]
    fn plan_never_exceeds_the_budget(tracks in arb_tracks(), budget in 0u64..5_000_000) {
        let p = plan(&tracks, false, budget);
        prop_assert!(p.video_bps <= budget);
        let sum: u64 = p.video.iter().map(|(_, _, b)| *b).sum();
        prop_assert_eq!(sum, p.video_bps);
    }

    #[test]
    fn a_higher_budget_never_lowers_a_layer(tracks in arb_tracks(), a in 0u64..4_000_000, extra in 0u64..2_000_000) {
        let low = plan(&tracks, false, a);
        let high = plan(&tracks, false, a + extra);
        for ((k, l1, _), (k2, l2, _)) in low.video.iter().zip(high.video.iter()) {
            prop_assert_eq!(k, k2);
            prop_assert!(l2 >= l1, "track {} went from {:?} to {:?}", k, l1, l2);
        }
    }

    #[test]
    fn priorities_hold(tracks in arb_tracks(), budget in 0u64..3_000_000) {
        let p = plan(&tracks, false, budget);
        // A video of lower priority never has video while a higher-priority eligible one is paused.
        for a in tracks.iter().filter(|t| t.kind != Kind::Audio && t.visible) {
            for b in tracks.iter().filter(|t| t.kind != Kind::Audio && t.visible) {
                if rank(a.priority, a.kind) < rank(b.priority, b.kind) && p.layer_of(a.key).is_none() {
                    prop_assert!(p.layer_of(b.key).is_none(), "{} paused but lower {} has video", a.key, b.key);
                }
            }
        }
    }

    #[test]
    fn allocator_stays_within_the_estimate_and_keeps_audio(tracks in arb_tracks(), estimates in prop::collection::vec(50_000u64..4_000_000, 1..40)) {
        let t0 = Instant::now();
        let mut alloc = Allocator::new(AllocatorConfig::default());
        for (i, est) in estimates.iter().enumerate() {
            let now = t0 + Duration::from_millis(500 * i as u64);
            let a = alloc.update(now, &input(&tracks, Some(*est)));
            // Audio is never paused, whatever the estimate.
            prop_assert!(a.decisions.iter().filter(|d| d.kind == Kind::Audio).all(|d| d.layer.is_some()));
            let video: u64 = a.decisions.iter().filter(|d| d.kind != Kind::Audio).map(|d| d.bps).sum();
            let audio: u64 = a.decisions.iter().filter(|d| d.kind == Kind::Audio).map(|d| d.bps).sum();
            // Video takes the subscriber clearly above its estimate only at the lowest layers
            // (kept for `pause_wait` before pausing, and at the start), never by an upgrade,
            // except for the grace right after a big upgrade (whose keyframe the estimator reads
            // as overuse): then only down to what was sent before it. A small dip is held until
            // it is confirmed (`down_confirm`). So: below half of what is sent, only the lowest.
            // The grace lasts `upgrade_grace` (2 s, four ticks) after the upgrade, which an estimate
            // covering the new rate allowed.
            let grace = estimates[i.saturating_sub(4)..i].iter().any(|&e| e >= video + audio);
            if video > 0 && (*est as f64) < 0.5 * (video + audio) as f64 && !grace {
                for d in a.decisions.iter().filter(|d| d.kind != Kind::Audio && d.layer.is_some()) {
                    let t = tracks.iter().find(|t| t.key == d.key).unwrap();
                    let mut ladder = Vec::new();
                    t.rates.ladder(t.max_spatial, &mut ladder);
                    prop_assert_eq!(d.layer, ladder.first().map(|&(l, _)| l), "over the estimate {} above the lowest layer", est);
                }
            }
        }
    }

    #[test]
    fn no_flapping_on_a_constant_estimate(tracks in arb_tracks(), est in 50_000u64..4_000_000) {
        let t0 = Instant::now();
        let mut alloc = Allocator::new(AllocatorConfig::default());
        let mut changes = 0;
        let mut last: Option<Vec<Option<Layer>>> = None;
        for i in 0..600 {
            // Five minutes at 500 ms ticks: after settling, nothing may change.
            let now = t0 + Duration::from_millis(500 * i);
            let a = alloc.update(now, &input(&tracks, Some(est)));
            let layers: Vec<Option<Layer>> = a.decisions.iter().map(|d| d.layer).collect();
            if i > 20 && last.as_ref().is_some_and(|l| *l != layers) {
                changes += 1;
            }
            last = Some(layers);
        }
        prop_assert_eq!(changes, 0);
    }

    #[test]
    fn a_higher_estimate_never_lowers_a_layer_in_the_allocator(tracks in arb_tracks(), est in 50_000u64..3_000_000, extra in 0u64..2_000_000) {
        let t0 = Instant::now();
        let mut alloc = Allocator::new(AllocatorConfig::default());
        let mut before = Vec::new();
        for i in 0..20 {
            let a = alloc.update(t0 + Duration::from_millis(500 * i), &input(&tracks, Some(est)));
            before = a.decisions.iter().map(|d| d.layer).collect();
        }
        let a = alloc.update(t0 + Duration::from_millis(10_000), &input(&tracks, Some(est + extra)));
        for (d, b) in a.decisions.iter().zip(before.iter()) {
            prop_assert!(d.layer >= *b);
        }
    }
}

fn input(tracks: &[TrackInput], est: Option<u64>) -> SubscriberInput<'_> {
    SubscriberInput {
        estimate_bps: est,
        raw_estimate_bps: None,
        overusing: false,
        loss: 0.0,
        rtt: Some(Duration::from_millis(150)),
        audio_only: false,
        lossy: false,
        outage: false,
        tracks,
    }
}
