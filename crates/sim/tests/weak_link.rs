//! Short simulator runs that the test command executes: the adaptation must keep a call usable
//! on a weak link, and must do better than forwarding the top layer.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use kham_sim::netem::{LossModel, Trace};
use kham_sim::{CapacityEvent, ConfigName, LinkSpec, Scenario, run};

fn steps() -> Scenario {
    let s = |secs, bps| (Duration::from_secs(secs), bps);
    let trace = Trace::from_steps(&[s(20, 2_000_000), s(20, 300_000), s(200, 2_000_000)]);
    let mut sc = Scenario::single(
        "2M-300k-2M",
        "steps",
        Duration::from_secs(60),
        LinkSpec::trace(trace, Duration::from_millis(150)),
    );
    sc.events = vec![
        CapacityEvent::Drop {
            at: Duration::from_secs(20),
            to_bps: 300_000,
        },
        CapacityEvent::Return {
            at: Duration::from_secs(40),
        },
    ];
    sc
}

#[test]
fn step_down_to_300k_and_back() {
    if std::env::var("SIM_TRACE").is_ok() {
        tracing_subscriber::fmt()
            .with_env_filter("str0m=trace")
            .with_writer(std::io::stderr)
            .init();
    }
    let t = std::time::Instant::now();
    let kham = run(&steps(), ConfigName::Kham).unwrap().remove(0);
    println!("kham: {:?} ({:?} wall)", kham.metrics, t.elapsed());
    let top = run(&steps(), ConfigName::NoAdaptation).unwrap().remove(0);
    println!("no adaptation: {:?}", top.metrics);
    for s in kham.series.iter().step_by(5) {
        println!(
            "{:5.1}s cap {:6.0} est {:?} sent {:6.0} recv {:6.0} layer {:?}",
            s.t,
            s.capacity_kbps,
            s.estimate_kbps.map(|e| e.round()),
            s.sent_kbps,
            s.received_kbps,
            s.layer
        );
    }
    assert!(kham.metrics.mean_kbps > 100.0);
}

#[test]
fn no_audio_gap_at_300k_with_3_percent_loss() {
    let sc = Scenario::single(
        "300k-3pct",
        "loss",
        Duration::from_secs(40),
        LinkSpec::fixed(300_000, Duration::from_millis(150))
            .with_loss(LossModel::Random { p: 0.03 }),
    );
    let r = run(&sc, ConfigName::Kham).unwrap().remove(0);
    println!("{:?}", r.metrics);
}
