//! The adaptation benchmark's scenarios, as data (../shared/design/QUALITY.md's families).

use std::path::{Path, PathBuf};
use std::time::Duration;

use kham_sim::netem::{LossModel, Trace};
use kham_sim::{CapacityEvent, LinkSpec, Scenario};

const MS: fn(u64) -> Duration = Duration::from_millis;
const S: fn(u64) -> Duration = Duration::from_secs;

/// Traces averaging more than this are scaled down into the rural range.
const RURAL_MAX_MEAN: u64 = 2_500_000;
/// Mean a scaled trace is brought to.
const RURAL_MEAN: u64 = 1_500_000;

fn step(name: &str, high: u64, low: u64, rtt: Duration, secs: (u64, u64, u64)) -> Scenario {
    Scenario::step(name, high, low, rtt, secs)
}

fn outage(secs: u64) -> Scenario {
    let mut sc = step(
        &format!("outage-{secs}s"),
        1_000_000,
        0,
        MS(150),
        (20, secs, 30),
    );
    sc.family = "outages".into();
    sc.outages = vec![(S(20), S(20 + secs))];
    sc.events
        .retain(|e| matches!(e, CapacityEvent::Return { .. }));
    sc
}

fn loss(name: &str, model: LossModel) -> Scenario {
    loss_at(name, 1_000_000, model)
}

fn loss_at(name: &str, bps: u64, model: LossModel) -> Scenario {
    Scenario::single(
        name,
        "loss",
        S(60),
        LinkSpec::fixed(bps, MS(150)).with_loss(model),
    )
}

/// Issue 14's thin links: steady capacity at 150 ms RTT for 60 s, where only audio can fit.
fn thin(kbps: u64) -> Scenario {
    Scenario::single(
        &format!("steady-{kbps}k"),
        "audio",
        S(60),
        LinkSpec::fixed(kbps * 1000, MS(150)),
    )
}

fn rtt(ms: u64) -> Scenario {
    Scenario::single(
        &format!("rtt-{ms}ms"),
        "rtt",
        S(60),
        LinkSpec::fixed(1_000_000, MS(ms)),
    )
}

/// A trace scenario: 120 s of the recording (scaled into the rural range when it is a fast LTE
/// drive), with and without 1 % random loss.
pub fn trace_scenarios(path: &Path, secs: u64) -> Result<Vec<Scenario>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut trace = Trace::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let stem = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("trace")
        .to_string();
    let mut name = stem.clone();
    if trace.mean_bps() > RURAL_MAX_MEAN {
        let factor = RURAL_MEAN as f64 / trace.mean_bps() as f64;
        trace = trace.scaled(factor);
        name = format!("{stem} (scaled x{factor:.2})");
    }
    let link = LinkSpec::trace(trace, MS(150));
    let plain = Scenario::single(&name, "traces", S(secs), link.clone());
    let lossy = Scenario::single(
        &format!("{name} +1% loss"),
        "traces",
        S(secs),
        link.with_loss(LossModel::Random { p: 0.01 }),
    );
    Ok(vec![plain, lossy])
}

/// A strong and a weak subscriber in one room: the strong one must not be dragged down.
fn strong_and_weak() -> Scenario {
    let mut sc =
        step("strong_weak", 2_000_000, 300_000, MS(150), (20, 20, 30)).with_strong_viewer();
    sc.family = "two_subscribers".into();
    sc
}

/// Every trace file in the shared folder (one level of subfolders).
pub fn shared_traces(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "md")
                || p.extension().is_some_and(|x| x == "up")
            {
                // READMEs, and Mahimahi uplinks (the viewer's downlink is what matters here).
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// All synthetic scenarios; `quick` keeps a representative subset.
pub fn synthetic(quick: bool) -> Vec<Scenario> {
    let mut v = vec![
        step("2M-300k-2M", 2_000_000, 300_000, MS(150), (20, 20, 30)),
        step("1M-120k-1M", 1_000_000, 120_000, MS(150), (20, 20, 30)),
    ];
    if !quick {
        // A collapse to a link that carries audio alone (a cell edge): video must pause soon
        // enough for the speech, and come back.
        v.push(step("1M-64k-1M", 1_000_000, 64_000, MS(150), (20, 30, 30)));
    }
    let outages: &[u64] = if quick { &[4] } else { &[1, 2, 4, 8] };
    v.extend(outages.iter().map(|&s| outage(s)));
    let losses: &[u32] = if quick { &[3] } else { &[0, 1, 3, 5, 10] };
    for &p in losses {
        v.push(loss(
            &format!("random-{p}%"),
            LossModel::Random {
                p: f64::from(p) / 100.0,
            },
        ));
        if p > 0 && !quick {
            v.push(loss(
                &format!("bursty-{p}%"),
                LossModel::bursty(f64::from(p) / 100.0, 3.0),
            ));
        }
    }
    if !quick {
        // The browser test's weak link (tests/browser/weak-link.test.mjs): a rural 3G cell's
        // few hundred kbit/s with random loss, where the lowest layer fits with room to spare.
        v.push(loss_at(
            "300k-random-3%",
            300_000,
            LossModel::Random { p: 0.03 },
        ));
    }
    let rtts: &[u64] = if quick { &[300] } else { &[50, 150, 300, 600] };
    v.extend(rtts.iter().map(|&ms| rtt(ms)));
    v.push(strong_and_weak());
    let thins: &[u64] = if quick { &[64, 48] } else { &[96, 64, 48, 32] };
    v.extend(thins.iter().map(|&k| thin(k)));
    v
}
