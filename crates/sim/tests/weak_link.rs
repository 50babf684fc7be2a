//! Short simulator runs in the test command: the adaptation must keep a call usable on weak
//! links and do better than forwarding the top layer. Thresholds leave room for run-to-run
//! variation (str0m's DTLS and SRTP keys are random, so timings differ slightly between runs);
//! the benchmark (`adaptation` in kham-benches) reports the exact figures.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use kham_sim::netem::LossModel;
use kham_sim::{ConfigName, LinkSpec, RunResult, Scenario, run};

const MS: fn(u64) -> Duration = Duration::from_millis;
const S: fn(u64) -> Duration = Duration::from_secs;

fn step(high: u64, low: u64) -> Scenario {
    Scenario::step("step", high, low, MS(150), (20, 20, 30))
}

fn one(sc: &Scenario, config: ConfigName) -> RunResult {
    let r = run(sc, config).unwrap().remove(0);
    println!("{} {}: {:?}", sc.name, config.as_str(), r.metrics);
    r
}

#[test]
fn no_audio_gap_at_300k_with_3_percent_random_loss() {
    let sc = Scenario::single(
        "300k-3%",
        "loss",
        S(40),
        LinkSpec::fixed(300_000, MS(150)).with_loss(LossModel::Random { p: 0.03 }),
    );
    let r = one(&sc, ConfigName::Kham);
    assert_eq!(r.metrics.audio_gaps, 0, "{:?}", r.metrics);
    assert!(
        r.metrics.mean_kbps > 100.0,
        "video still flows: {:?}",
        r.metrics
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Seconds from `drop_s` until the room first chose the lowest spatial layer (or paused).
fn lowest_layer_after(r: &RunResult, drop_s: f64) -> f64 {
    r.series
        .iter()
        .find(|s| s.t >= drop_s && s.layer.is_none_or(|l| l < 1.0))
        .map_or(f64::INFINITY, |s| s.t - drop_s)
}

#[test]
fn steps_down_fast_and_freezes_less_than_forwarding_the_top_layer() {
    let sc = step(2_000_000, 300_000);
    // Median of three runs: single runs vary (see the module comment).
    let kham: Vec<RunResult> = (0..3).map(|_| one(&sc, ConfigName::Kham)).collect();
    let top = one(&sc, ConfigName::NoAdaptation);
    // The decision: the lowest spatial layer chosen within 3 s of the drop (median).
    let chosen = median(kham.iter().map(|r| lowest_layer_after(r, 20.0)).collect());
    assert!(chosen <= 3.0, "median time to the lowest layer {chosen} s");
    // The sent rate fitting the link (QUALITY.md's downswitch) also counts what the room
    // repairs and probes: in about 3 of 10 runs it stays 10-30 % above 300 kbit/s for 4-9 s
    // after the layer fits (RTX of what the overflowing queue dropped is the suspect). The
    // benchmark reports that figure; here it must only happen within the low period.
    for r in &kham {
        let down = r.metrics.downswitch_s.unwrap();
        assert!(down < 12.0, "sent rate never fit the link: {down} s");
    }
    let frozen = median(kham.iter().map(|r| r.metrics.frozen_time_pct).collect());
    assert!(
        frozen * 2.0 < top.metrics.frozen_time_pct,
        "kham frozen {frozen:.1} % vs top layer {:.1} %",
        top.metrics.frozen_time_pct
    );
    assert!(kham.iter().all(|r| r.metrics.audio_gaps == 0));
    // The top layer overflows the 300 kbit/s link's queue; kham keeps it shorter.
    let queue = median(
        kham.iter()
            .map(|r| r.metrics.p95_queue_delay_ms.unwrap())
            .collect(),
    );
    assert!(queue < top.metrics.p95_queue_delay_ms.unwrap());
}

#[test]
fn below_the_lowest_layer_video_pauses_audio_continues_and_video_returns() {
    // 40 kbit/s: audio (16 kbit/s Opus in 60 ms packets, about 25 on the wire) fits, the
    // lowest layer beside it does not. (60 kbit/s until audio took 60 ms packets: there audio
    // and the lowest layer at its 30 kbit/s floor fit now.)
    let sc = step(1_000_000, 40_000);
    let r = one(&sc, ConfigName::Kham);
    assert!(
        r.metrics.audio_only_pct > 10.0,
        "video paused while at 40 kbit/s: {:?}",
        r.metrics
    );
    let paused_late = r
        .series
        .iter()
        .filter(|s| s.t > 60.0)
        .all(|s| s.layer.is_none());
    assert!(!paused_late, "video came back after capacity returned");
    let early = r
        .series
        .iter()
        .filter(|s| s.t > 5.0 && s.t < 20.0)
        .all(|s| s.layer.is_none());
    assert!(!early, "video before the drop");
}

#[test]
fn a_weak_subscriber_does_not_drag_down_a_strong_one() {
    let sc = step(2_000_000, 300_000).with_strong_viewer();
    let r = run(&sc, ConfigName::Kham).unwrap();
    let (strong, weak) = (&r[0].metrics, &r[1].metrics);
    println!("strong {strong:?}\nweak {weak:?}");
    assert!(
        strong.mean_height > 450.0,
        "strong subscriber gets high layers: {strong:?}"
    );
    // While the weak one is at 300 kbit/s (20-40 s; 25-40 once it has stepped down) the strong
    // one keeps the top layer and receives several times the weak one's rate.
    let during = |i: usize, f: &dyn Fn(&kham_sim::Sample) -> f64| {
        let v: Vec<f64> = r[i]
            .series
            .iter()
            .filter(|s| s.t > 25.0 && s.t < 40.0)
            .map(f)
            .collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    let strong_layer = during(0, &|s| s.layer.unwrap_or(-1.0));
    assert!(
        strong_layer > 1.8,
        "strong layer {strong_layer} while the weak one is at 300k"
    );
    let (sk, wk) = (
        during(0, &|s| s.received_kbps),
        during(1, &|s| s.received_kbps),
    );
    assert!(
        sk > 3.0 * wk,
        "strong {sk} kbit/s, weak {wk} kbit/s while the weak one is at 300k"
    );
}
