//! The live server's adaptive-forwarding behaviour, through the real room on virtual time: what
//! subscribers are told (`video_state`), dynacast at the publisher, adaptive stream, quality
//! scores, RED, and bad input (absurd views, nonexistent layers, a layer without keyframes).

use std::time::Duration;

use kham_netem::{LossModel, Trace};
use kham_proto::{PauseReason, QualityLevel, VideoState, VideoView};
use kham_sfu::{RoomConfig, RoomEvent};

use crate::scenario::LinkSpec;
use crate::world::{Role, World};

const RTT: Duration = Duration::from_millis(100);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A room with the publisher and one viewer per downlink (viewer `i` is named `v<i>`).
fn world(downs: &[LinkSpec]) -> World {
    let strong = LinkSpec::fixed(20_000_000, Duration::from_millis(20));
    world_with(strong, false, downs)
}

fn world_with(publisher_up: LinkSpec, publisher_bwe: bool, downs: &[LinkSpec]) -> World {
    let mut w = World::new(RoomConfig::default(), 7, crate::BIN);
    w.publisher_bwe = publisher_bwe;
    let strong = LinkSpec::fixed(20_000_000, Duration::from_millis(20));
    w.add_publisher(publisher_up.config(1), strong.config(2), 7)
        .expect("publisher joins");
    for (i, d) in downs.iter().enumerate() {
        let up = LinkSpec {
            trace: Trace::fixed(2_000_000),
            ..d.clone()
        };
        w.add_viewer(
            &format!("v{i}"),
            up.config(10 + i as u64),
            d.config(20 + i as u64),
            Duration::from_millis(400),
        )
        .expect("viewer joins");
    }
    w
}

fn run_for(w: &mut World, d: Duration) {
    let until = w.now + d;
    w.run_until(until, |_| {});
}

/// The video states sent to `peer`, with their time since the start.
fn video_states(w: &World, peer: &str) -> Vec<(Duration, Vec<VideoState>)> {
    w.notices
        .iter()
        .filter_map(|(t, e)| match e {
            RoomEvent::VideoState { peer: p, tracks } if p.as_str() == peer => {
                Some((t.saturating_duration_since(w.start), tracks.clone()))
            }
            _ => None,
        })
        .collect()
}

fn last_state(w: &World, peer: &str) -> Option<VideoState> {
    video_states(w, peer).last()?.1.first().cloned()
}

/// The publisher's video layers being sent now.
fn publisher_active(w: &World) -> [bool; 3] {
    w.eps
        .iter()
        .find_map(|e| match &e.role {
            Role::Publisher { video, .. } => Some(video.active),
            _ => None,
        })
        .expect("publisher")
}

/// The viewer's receive mid of the publisher's video.
fn video_mid(w: &World, viewer: &str) -> String {
    let ep = w
        .eps
        .iter()
        .find(|e| e.id.as_str() == viewer)
        .expect("viewer");
    ep.tracks
        .iter()
        .find(|t| t.kind == kham_proto::MediaKind::Video && t.active)
        .map(|t| t.mid.clone())
        .expect("a video m-line")
}

fn view(mid: &str, width: u32, height: u32, visible: bool) -> VideoView {
    VideoView {
        mid: mid.into(),
        width,
        height,
        visible,
        max_spatial: None,
    }
}

fn current_layer(w: &World, viewer: &str) -> Option<u8> {
    w.room.current_layer(&viewer.into(), &"publisher".into())
}

#[test]
fn weak_link_pauses_with_a_reason_and_resumes_by_itself() {
    // 48 kbit/s for 25 s (audio fits, no video layer does), then 2 Mbit/s. (60 kbit/s until
    // the simulated publisher obeyed `audio_rate` and str0m's padding stopped overshooting: with
    // the audio capped at 16 kbit/s, audio plus the lowest layer at 90p fit in 60, and a probe
    // measured 73 kbit/s there, so the allocator resumed video by its rules.)
    let trace = Trace::from_steps(&[
        (secs(5), 2_000_000),
        (secs(25), 48_000),
        (secs(30), 2_000_000),
    ]);
    let mut w = world(&[LinkSpec::trace(trace, RTT)]);
    run_for(&mut w, secs(5));
    let s = last_state(&w, "v0").expect("a video state before the drop");
    assert!(!s.paused, "video flows on 2 Mbit/s: {s:?}");
    assert!(s.layer.is_some());
    run_for(&mut w, secs(25));
    let s = last_state(&w, "v0").expect("a state after the drop");
    assert!(
        s.paused,
        "paused on 48 kbit/s: {s:?} {:?}",
        video_states(&w, "v0")
    );
    assert_eq!(s.reason, Some(PauseReason::Bandwidth));
    run_for(&mut w, secs(30));
    let s = last_state(&w, "v0").expect("a state after the return");
    assert!(!s.paused, "resumed by itself: {:?}", video_states(&w, "v0"));
    // Sent on change only: a handful of messages, not one per allocation.
    let n = video_states(&w, "v0").len();
    assert!(n < 40, "{n} video_state messages in 60 s");
}

#[test]
fn audio_only_choice_is_honoured_and_reported() {
    let mut w = world(&[LinkSpec::fixed(2_000_000, RTT)]);
    run_for(&mut w, secs(5));
    assert!(current_layer(&w, "v0").is_some());
    w.room.set_audio_only(&"v0".into(), true).unwrap();
    run_for(&mut w, secs(1));
    let s = last_state(&w, "v0").unwrap();
    assert_eq!((s.paused, s.reason), (true, Some(PauseReason::AudioOnly)));
    assert_eq!(current_layer(&w, "v0"), None);
    // Nobody shows the video any more: dynacast stops every layer at the publisher.
    run_for(&mut w, secs(5));
    assert_eq!(publisher_active(&w), [false; 3]);
    w.room.set_audio_only(&"v0".into(), false).unwrap();
    run_for(&mut w, secs(3));
    assert_eq!(publisher_active(&w), [true; 3]);
    let s = last_state(&w, "v0").unwrap();
    assert!(!s.paused, "video again: {s:?}");
}

#[test]
fn small_tiles_get_small_layers_and_dynacast_stops_the_rest() {
    let mut w = world(&[LinkSpec::fixed(5_000_000, RTT)]);
    // Probing, then two padded spatial upgrades: 720p within seconds, with margin for the
    // estimator's variation from run to run (str0m's random SSRCs and keys change packet sizes;
    // 8-10 s typically, 11 s seen).
    let mut waited = 0;
    while current_layer(&w, "v0") != Some(2) && waited < 15 {
        run_for(&mut w, secs(1));
        waited += 1;
    }
    assert_eq!(
        current_layer(&w, "v0"),
        Some(2),
        "big tile by default, 5 Mbit/s, within 15 s"
    );
    eprintln!("720p after {waited} s");
    let mid = video_mid(&w, "v0");
    w.room
        .set_video_views(&"v0".into(), &[view(&mid, 320, 180, true)])
        .unwrap();
    run_for(&mut w, secs(2));
    assert_eq!(current_layer(&w, "v0"), Some(0), "a 320x180 tile gets 180p");
    run_for(&mut w, secs(4));
    assert_eq!(publisher_active(&w), [true, false, false], "dynacast");
    // The tile grows: the layers come back and the viewer gets the big one again.
    w.room
        .set_video_views(&"v0".into(), &[view(&mid, 1280, 720, true)])
        .unwrap();
    // Layers restart, then two padded spatial upgrades (2 s holds) and their keyframes: 3-5 s.
    // It took 54 s in one run in five (session 35) while str0m's loss-based estimate was capped
    // by an old ALR probe's reading that allocation probes could not lift (fixed in the vendored
    // str0m, KHAM-PATCH.md, "Every probe is proof of capacity"; 3-5 s in 16 of 16 runs after).
    let mut waited = 0;
    while current_layer(&w, "v0") != Some(2) && waited < 20 {
        run_for(&mut w, secs(1));
        waited += 1;
    }
    eprintln!("720p again after {waited} s");
    assert_eq!(publisher_active(&w), [true; 3]);
    assert_eq!(current_layer(&w, "v0"), Some(2), "720p again within 20 s");
    // Hidden: nothing at all.
    w.room
        .set_video_views(&"v0".into(), &[view(&mid, 1280, 720, false)])
        .unwrap();
    run_for(&mut w, secs(1));
    let s = last_state(&w, "v0").unwrap();
    assert_eq!((s.paused, s.reason), (true, Some(PauseReason::Hidden)));
}

#[test]
fn absurd_views_and_nonexistent_layers_are_clamped_without_stalling_others() {
    let mut w = world(&[
        LinkSpec::fixed(5_000_000, RTT),
        LinkSpec::fixed(5_000_000, RTT),
    ]);
    run_for(&mut w, secs(6));
    let mid = video_mid(&w, "v0");
    let mut absurd = view(&mid, u32::MAX, u32::MAX, true);
    absurd.max_spatial = Some(200);
    let garbage = [
        absurd,
        view("no-such-mid", 10, 10, true),
        view("", 0, 0, false),
    ];
    for _ in 0..50 {
        w.room.set_video_views(&"v0".into(), &garbage).unwrap();
    }
    assert!(w.room.set_video_views(&"nobody".into(), &garbage).is_err());
    // Room for a failed upgrade and its backoff: the point is that nothing stalls.
    run_for(&mut w, secs(20));
    assert_eq!(
        current_layer(&w, "v0"),
        Some(2),
        "clamped to the top layer that exists"
    );
    assert_eq!(
        current_layer(&w, "v1"),
        Some(2),
        "the other viewer is untouched"
    );
}

#[test]
fn a_layer_that_never_sends_keyframes_does_not_stall_the_video() {
    let mut w = world(&[
        LinkSpec::fixed(5_000_000, RTT),
        LinkSpec::fixed(5_000_000, RTT),
    ]);
    for ep in &mut w.eps {
        if let Role::Publisher { video, .. } = &mut ep.role {
            video.never_keyframe[2] = true;
        }
    }
    run_for(&mut w, secs(12));
    for v in ["v0", "v1"] {
        let layer = current_layer(&w, v);
        assert!(
            matches!(layer, Some(0 | 1)),
            "{v} gets a layer with keyframes, not nothing: {layer:?}"
        );
        let s = last_state(&w, v).unwrap();
        assert!(!s.paused, "{v}: {s:?}");
    }
}

#[test]
fn quality_is_honest_about_a_weak_lossy_link() {
    let weak = LinkSpec::fixed(300_000, Duration::from_millis(150))
        .with_loss(LossModel::Random { p: 0.03 });
    let mut w = world(&[weak, LinkSpec::fixed(5_000_000, Duration::from_millis(40))]);
    run_for(&mut w, secs(30));
    let last = w
        .notices
        .iter()
        .rev()
        .find_map(|(_, e)| match e {
            RoomEvent::Quality { scores } => Some(scores.clone()),
            _ => None,
        })
        .expect("quality scores sent");
    let of = |id: &str| last.iter().find(|q| q.id.as_str() == id).map(|q| q.quality);
    let weak = of("v0").expect("weak viewer scored");
    assert!(
        weak >= QualityLevel::Poor,
        "300 kbit/s with 3 % loss: {weak:?}"
    );
    let strong = of("v1").expect("strong viewer scored");
    assert!(
        strong <= QualityLevel::Good,
        "5 Mbit/s clean link: {strong:?}"
    );
}

#[test]
fn lossy_subscribers_get_red_audio() {
    let lossy = LinkSpec::fixed(1_000_000, RTT).with_loss(LossModel::Random { p: 0.05 });
    let mut w = world(&[lossy]);
    run_for(&mut w, secs(40));
    let (lost_with_red, total) = audio_loss(&w);
    assert!(total > 1000, "{total} audio packets");
    // Without RED (the room only sends it to a viewer that negotiated it; a plain-Opus viewer
    // gets none) the same link loses about 5 % of audio.
    let frac = lost_with_red as f64 / total as f64;
    assert!(frac < 0.02, "audio lost after RED: {:.1} %", frac * 100.0);
}

#[test]
fn a_lossy_uplink_is_repaired_and_the_publisher_gets_congestion_feedback() {
    let lossy_up = LinkSpec::fixed(5_000_000, Duration::from_millis(80))
        .with_loss(LossModel::Random { p: 0.03 });
    let mut w = world_with(lossy_up, true, &[LinkSpec::fixed(5_000_000, RTT)]);
    run_for(&mut w, secs(20));
    let stats = w.room.media_stats();
    let publisher = stats.iter().find(|s| s.id.as_str() == "publisher").unwrap();
    assert!(
        publisher.totals.nacks_sent > 10,
        "the room NACKs what the uplink lost: {:?}",
        publisher.totals
    );
    // TWCC feedback from the room drives the publisher's own estimator.
    let ep = w.eps.iter().find(|e| e.id.as_str() == "publisher").unwrap();
    assert!(!ep.estimates.is_empty(), "the publisher got no estimate");
}

/// (audio packets the viewer never got, packets sent), after the first 10 s.
fn audio_loss(w: &World) -> (usize, usize) {
    let sent = w.sent_audio();
    let received = w
        .eps
        .iter()
        .find_map(|e| match &e.role {
            Role::Viewer { audio, .. } => Some(&audio.received),
            _ => None,
        })
        .expect("viewer");
    let from = w.start + secs(10);
    let late = w.now - secs(1);
    let window: Vec<_> = sent
        .iter()
        .filter(|a| a.at >= from && a.at < late)
        .collect();
    let lost = window
        .iter()
        .filter(|a| !received.contains_key(&a.id))
        .count();
    (lost, window.len())
}
