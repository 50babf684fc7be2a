//! Runs one scenario under one configuration and measures every viewer.

use std::time::Duration;

use kham_sfu::kham_bwe::{Kind, Layer, Reason};
use kham_sfu::{Adaptation, RoomConfig};

use crate::metrics::{Observed, measure};
use crate::result::{ConfigName, RunResult, Sample};
use crate::scenario::{LinkSpec, Scenario};
use crate::world::{Role, World};

/// Length of one series bin.
pub const BIN: Duration = Duration::from_millis(200);

/// Simulates `scenario` with the room choosing layers as `config` says; one result per viewer.
pub fn run(scenario: &Scenario, config: ConfigName) -> Result<Vec<RunResult>, String> {
    let adaptation = match config {
        ConfigName::Kham => Adaptation::default(),
        ConfigName::NoAdaptation => Adaptation::Fixed(Layer::new(2, 2)),
        ConfigName::LowestLayer => Adaptation::Fixed(Layer::new(0, 2)),
    };
    let room = RoomConfig {
        adaptation,
        ..RoomConfig::default()
    };
    let seed = scenario.seed;
    // str0m's own random draws (SSRCs, sequence numbers, ICE credentials, and DTLS's timers:
    // `World::new` installs `crate::dtls`) from the run's seed.
    fastrand::seed(seed ^ 0x5eed);
    let mut w = World::new(room, seed, BIN);
    let strong = LinkSpec::fixed(20_000_000, scenario.publisher_up.delay * 2);
    w.add_publisher(
        scenario.publisher_up.config(seed ^ 0x11),
        strong.config(seed ^ 0x12),
        seed,
    )?;
    for (k, v) in scenario.viewers.iter().enumerate() {
        // The viewer's uplink carries only feedback; same delay and loss as its downlink.
        let up = LinkSpec {
            trace: kham_netem::Trace::fixed(2_000_000),
            ..v.down.clone()
        };
        let give_up = (scenario.rtt(v) * 3 / 2).max(Duration::from_millis(400));
        w.add_viewer(
            &v.name,
            up.config(seed ^ (0x100 + k as u64)),
            v.down.config(seed ^ (0x200 + k as u64)),
            give_up,
        )?;
    }
    let n = scenario.viewers.len();
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); n];
    let mut paused: Vec<Vec<bool>> = vec![Vec::new(); n];
    let end = w.start + scenario.duration;
    w.run_until(end, |w| {
        let t = w.now.saturating_duration_since(w.start).as_secs_f64();
        for (k, ep) in w
            .eps
            .iter()
            .filter(|e| matches!(e.role, Role::Viewer { .. }))
            .enumerate()
        {
            let alloc = w.room.allocation(&ep.id);
            let video = alloc.and_then(|a| a.decisions.iter().find(|d| d.kind != Kind::Audio));
            let (layer, is_paused) = match config {
                ConfigName::Kham => (
                    video
                        .and_then(|d| d.layer)
                        .map(|l| f64::from(l.spatial) + f64::from(l.temporal) / 3.0),
                    video.is_some_and(|d| d.paused == Some(Reason::BandwidthDrop)),
                ),
                ConfigName::NoAdaptation => (Some(2.0 + 2.0 / 3.0), false),
                ConfigName::LowestLayer => (Some(2.0 / 3.0), false),
            };
            // The bin that just ended.
            let bin = samples[k].len();
            let bytes = |v: &Vec<u64>| {
                v.get(bin).copied().unwrap_or(0) as f64 * 8.0 / BIN.as_secs_f64() / 1000.0
            };
            samples[k].push(Sample {
                t,
                capacity_kbps: ep.down.capacity_bps_at(w.now) as f64 / 1000.0,
                estimate_kbps: match config {
                    ConfigName::Kham => alloc.map(|a| a.estimate_bps as f64 / 1000.0),
                    _ => None,
                },
                sent_kbps: bytes(&ep.traffic.sent),
                received_kbps: bytes(&ep.traffic.received),
                layer,
            });
            paused[k].push(is_paused);
        }
    });

    let mut out = Vec::new();
    let sent_audio = w.sent_audio().to_vec();
    for (k, ep) in w
        .eps
        .iter()
        .filter(|e| matches!(e.role, Role::Viewer { .. }))
        .enumerate()
    {
        let Role::Viewer { video, audio, .. } = &ep.role else {
            continue;
        };
        let obs = Observed {
            start: w.start,
            duration: scenario.duration,
            rendered: &video.rendered,
            sent_audio: &sent_audio,
            received_audio: &audio.received,
            samples: &samples[k],
            paused: &paused[k],
            queue_ms: &ep.traffic.queue_ms,
            events: &scenario.events,
            outages: &scenario.outages,
            bin: BIN,
        };
        out.push(RunResult {
            scenario: scenario.name.clone(),
            family: scenario.family.clone(),
            config,
            subscriber: scenario.viewers[k].name.clone(),
            seed: scenario.seed,
            duration_s: scenario.duration.as_secs_f64(),
            metrics: measure(&obs, config),
            series: samples[k].clone(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The run [`a_run_repeats_itself`] and [`a_run_repeats_in_another_process`] compare: a
    /// 1 Mbit/s link with a 300 ms round trip, where DTLS's flight timer (1 s +- 50 %) can fire
    /// before the answer comes back.
    fn digest() -> String {
        let mut sc = Scenario::single(
            "repeat",
            "rtt",
            Duration::from_secs(30),
            LinkSpec::fixed(1_000_000, Duration::from_millis(300)),
        );
        sc.seed = 2;
        let r = run(&sc, ConfigName::Kham).expect("runs");
        format!("{:?} {:?}", r[0].metrics, r[0].series)
    }

    /// A rerun repeats itself (benches/README.md, "Run-to-run variation"): str0m's generator is
    /// seeded per run, its maps have a fixed order in this build, and DTLS records count on the
    /// links by a rounded size. The second run is on another thread: dimpl's draws were the
    /// thread's own generator's before `crate::dtls` seeded them.
    #[test]
    fn a_run_repeats_itself() {
        let a = digest();
        let b = std::thread::spawn(digest).join().expect("second run");
        assert!(a == b, "two runs of one seed differ");
    }

    /// ... and in another process, which has its own wall-clock origin (str0m's NTP and
    /// abs-send-time fractions rounded differently in every process until the origin was a
    /// whole second) and its own OS-seeded generators. The test runs itself again as a child.
    #[test]
    fn a_run_repeats_in_another_process() {
        const CHILD: &str = "KHAM_SIM_REPEAT_CHILD";
        const MARK: &str = "digest: ";
        if std::env::var_os(CHILD).is_some() {
            println!("{MARK}{}", digest());
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "run::tests::a_run_repeats_in_another_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .output()
            .expect("runs the test binary");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let theirs = stdout
            .lines()
            .find_map(|l| l.split_once(MARK).map(|(_, d)| d))
            .unwrap_or_else(|| panic!("no digest from the child: {stdout}"));
        assert!(theirs == digest(), "a run differs in another process");
    }
}
