//! A screen share through the allocator's step-up and step-down paths: bought before camera
//! video, and its resolution kept while frame rate goes first.

use std::time::{Duration, Instant};

use super::*;
use crate::input::Priority;
use crate::layer::LayerRates;

/// A camera (three simulcast layers, 30 fps) and a simulcast share of the same rates at a
/// slide-show frame rate, plus audio.
fn tracks() -> Vec<TrackInput> {
    let camera = LayerRates {
        bps: [
            [60_000, 90_000, 150_000],
            [200_000, 300_000, 500_000],
            [600_000, 900_000, 1_500_000],
        ],
        fps: [[7, 15, 30], [7, 15, 30], [7, 15, 30]],
    };
    let video = |key, kind, rates| TrackInput {
        key,
        kind,
        priority: Priority::Featured,
        rates,
        max_spatial: 2,
        visible: true,
        unshaped_bps: None,
        lowest_cap_bps: None,
    };
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
        video(2, Kind::Video, camera),
        video(
            3,
            Kind::Screen,
            LayerRates {
                fps: [[2, 5, 10], [2, 5, 10], [2, 5, 10]],
                ..camera
            },
        ),
    ]
}

fn layer(a: &Allocation, key: u32) -> Option<Layer> {
    a.decisions
        .iter()
        .find(|d| d.key == key)
        .and_then(|d| d.layer)
}

/// Updates every 200 ms for `secs` at a fixed estimate; returns the last (camera, share).
fn run(
    a: &mut Allocator,
    t0: Instant,
    from_s: u64,
    secs: u64,
    est: u64,
    t: &[TrackInput],
) -> (Option<Layer>, Option<Layer>) {
    let mut last = (None, None);
    for ms in (from_s * 1000..(from_s + secs) * 1000).step_by(200) {
        let input = SubscriberInput {
            estimate_bps: Some(est),
            raw_estimate_bps: None,
            overusing: false,
            loss: 0.0,
            rtt: None,
            audio_only: false,
            lossy: false,
            outage: false,
            tracks: t,
        };
        let out = a.update(t0 + Duration::from_millis(ms), &input);
        last = (layer(out, 2), layer(out, 3));
        // Never the camera above the share's resolution, on the way up or down.
        if let (Some(cam), share) = last {
            let share = share.expect("camera video flows while the share is paused");
            assert!(
                cam.spatial <= share.spatial,
                "camera {cam:?} above the share {share:?} at {ms} ms, {est} bit/s"
            );
        }
    }
    last
}

#[test]
fn a_share_is_bought_first_and_keeps_its_resolution_on_the_way_up_and_down() {
    let t0 = Instant::now();
    let t = tracks();
    let mut a = Allocator::new(AllocatorConfig::default());
    // Room for the share's top resolution at its lowest frame rate and a thumbnail camera.
    let (cam, share) = run(&mut a, t0, 0, 40, 1_100_000, &t);
    assert_eq!(share.map(|l| l.spatial), Some(2), "share {share:?}");
    assert!(cam.is_none_or(|l| l.spatial == 0), "camera {cam:?}");
    // Plenty: the share's frame rate comes back in full before the camera goes above 180p.
    let (cam, share) = run(&mut a, t0, 40, 40, 4_000_000, &t);
    assert_eq!(share, Some(Layer::new(2, 2)));
    assert!(cam.is_some_and(|l| l.spatial >= 1), "camera {cam:?}");
    // The link shrinks: the camera goes down and the share keeps 720p, giving up frame rate.
    let (cam, share) = run(&mut a, t0, 80, 40, 1_000_000, &t);
    assert_eq!(share.map(|l| l.spatial), Some(2), "share {share:?}");
    assert!(cam.is_none_or(|l| l.spatial == 0), "camera {cam:?}");
    // Too thin for the share's top resolution: both on their lowest layer (everyone gets
    // something before anyone is upgraded), the share not below the camera.
    let (cam, share) = run(&mut a, t0, 120, 40, 200_000, &t);
    assert_eq!(share, Some(Layer::LOWEST));
    assert!(cam.is_none_or(|l| l == Layer::LOWEST), "camera {cam:?}");
    // Room for one video: the camera is paused, the share goes on.
    let (cam, share) = run(&mut a, t0, 160, 40, 120_000, &t);
    assert_eq!(share, Some(Layer::LOWEST));
    assert_eq!(cam, None, "camera {cam:?} kept while only one video fits");
}
