//! The browser-quality scenarios: each is a publisher link and a subscriber link, given to
//! kham-relay as option lists, plus the capacity of the bottleneck over time (for the plots and
//! the quick mode's check).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kham_sim::netem::Trace;

/// One-way delay of the subscriber's link (RTT 150 ms), jitter and droptail limit, as in the
/// adaptation benchmark.
const DELAY: &str = "75ms";
const JITTER: &str = "5ms";
const QUEUE: &str = "400ms";
/// The 4G scenario: the 120 s window of the recording with the most seconds under this rate
/// after scaling, scaled to this mean and clipped to this top.
const LTE_FILE: &str = "mahimahi/ATT-LTE-driving.down";
const LTE_MEAN_BPS: f64 = 1_000_000.0;
const LTE_MAX_BPS: f64 = 2_000_000.0;
const LTE_DIP_BPS: f64 = 300_000.0;

/// A scenario ready for the driver.
#[derive(Debug, Clone)]
pub struct BrowserScenario {
    pub name: String,
    /// What the link is, for the report.
    pub description: String,
    /// kham-relay options of the publisher's and the subscriber's link.
    pub publisher: Vec<String>,
    pub subscriber: Vec<String>,
    /// Capacity of the constrained direction (bit/s) over time, offset 0 = the client's first
    /// datagram; `None` when unconstrained.
    pub capacity: Option<Trace>,
}

impl BrowserScenario {
    /// Capacity in kbit/s at `t` seconds, if the link is constrained.
    pub fn capacity_kbps(&self, t: f64) -> Option<f64> {
        let trace = self.capacity.as_ref()?;
        Some(trace.capacity_bps_at(Duration::from_secs_f64(t.max(0.0))) as f64 / 1000.0)
    }
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// A subscriber downlink on `trace_file` (RTT 150 ms), publisher unconstrained.
fn downlink_trace(
    name: &str,
    description: String,
    trace_file: &Path,
) -> Result<BrowserScenario, String> {
    let trace = read_trace(trace_file)?;
    let file = trace_file.to_string_lossy().into_owned();
    Ok(BrowserScenario {
        name: name.to_owned(),
        description,
        publisher: Vec::new(),
        subscriber: args(&[
            "--trace", &file, "--delay", DELAY, "--jitter", JITTER, "--queue", QUEUE,
        ]),
        capacity: Some(trace),
    })
}

fn read_trace(path: &Path) -> Result<Trace, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Trace::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes a per-second rate trace (`seconds Mbit/s`, the Norway format) and returns its path.
fn write_rate_trace(work: &Path, name: &str, kbps: &[f64]) -> Result<PathBuf, String> {
    let mut text = String::new();
    for (i, k) in kbps.iter().enumerate() {
        let _ = writeln!(text, "{i}.000000 {:.6}", k / 1000.0);
    }
    std::fs::create_dir_all(work).map_err(|e| format!("{}: {e}", work.display()))?;
    let path = work.join(format!("{name}.txt"));
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// 2 Mbit/s -> 300 kbit/s -> 2 Mbit/s, a third of `secs` each.
fn step(work: &Path, secs: u64) -> Result<BrowserScenario, String> {
    let third = secs / 3;
    let kbps: Vec<f64> = (0..secs)
        .map(|s| {
            if s >= third && s < 2 * third {
                300.0
            } else {
                2000.0
            }
        })
        .collect();
    let path = write_rate_trace(work, "step-2m-300k-2m", &kbps)?;
    downlink_trace(
        "step-2M-300k-2M",
        format!(
            "2 Mbit/s -> 300 kbit/s at {third} s -> 2 Mbit/s at {} s, RTT 150 ms",
            2 * third
        ),
        &path,
    )
}

/// The Mahimahi LTE drive with dips: per-second capacity, scaled to a 1 Mbit/s mean, clipped
/// at 2 Mbit/s (dips kept), the 120 s window with the most seconds under 300 kbit/s.
fn lte(traces: &Path, work: &Path, secs: u64) -> Result<BrowserScenario, String> {
    let path = traces.join(LTE_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut per_s: Vec<f64> = Vec::new();
    for line in text.lines() {
        let Ok(ms) = line.trim().parse::<u64>() else {
            continue;
        };
        let s = usize::try_from(ms / 1000).unwrap_or(usize::MAX);
        if s > 100_000 {
            break;
        }
        if per_s.len() <= s {
            per_s.resize(s + 1, 0.0);
        }
        per_s[s] += 12.0; // one 1500-byte opportunity, in kbit
    }
    if per_s.len() < 10 {
        return Err(format!("{}: too short", path.display()));
    }
    let mean = per_s.iter().sum::<f64>() / per_s.len() as f64;
    let factor = LTE_MEAN_BPS / 1000.0 / mean.max(1.0);
    let scaled: Vec<f64> = per_s
        .iter()
        .map(|k| (k * factor).min(LTE_MAX_BPS / 1000.0))
        .collect();
    let len = usize::try_from(secs).unwrap_or(120).min(scaled.len());
    let (mut best, mut best_dips) = (0, 0);
    for start in (0..=scaled.len() - len).step_by(10) {
        let dips = scaled[start..start + len]
            .iter()
            .filter(|k| **k < LTE_DIP_BPS / 1000.0)
            .count();
        if dips > best_dips {
            (best, best_dips) = (start, dips);
        }
    }
    let window = &scaled[best..best + len];
    let out = write_rate_trace(work, "lte-dips", window)?;
    downlink_trace(
        "att-lte-dips",
        format!(
            "{LTE_FILE} per second, scaled x{factor:.2} to a 1 Mbit/s mean, clipped at 2 Mbit/s, \
             seconds {best}-{} ({best_dips} s under 300 kbit/s), RTT 150 ms",
            best + len
        ),
        &out,
    )
}

/// Every scenario of the full run: the 13 Norway HSDPA traces, the LTE dips, the step, 3 %
/// loss at 300 ms RTT, and a publisher on a 3G uplink (metro-1) with a strong subscriber.
pub fn all(traces: &Path, work: &Path, secs: u64) -> Result<Vec<BrowserScenario>, String> {
    let mut list = Vec::new();
    let dir = traces.join("norway-hsdpa");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    for f in &files {
        list.push(trace_file(f)?);
    }
    list.push(lte(traces, work, secs)?);
    list.push(step(work, secs)?);
    list.push(rtt_300ms());
    list.push(thin(64));
    list.push(thin(48));
    let metro = dir.join("metro-1.txt");
    let metro_s = metro.to_string_lossy().into_owned();
    list.push(BrowserScenario {
        name: "weak-publisher-uplink".into(),
        description: "publisher's uplink on norway-hsdpa/metro-1 (RTT 150 ms), subscriber on 5 Mbit/s, RTT 40 ms".into(),
        publisher: args(&["--uplink-trace", &metro_s, "--delay", DELAY, "--jitter", JITTER, "--uplink-queue", QUEUE]),
        subscriber: args(&["--rate", "5mbit", "--delay", "20ms", "--queue", QUEUE]),
        capacity: Some(read_trace(&metro)?),
    });
    Ok(list)
}

/// A scenario for any trace file given on the command line (subscriber downlink, RTT 150 ms).
pub fn trace_file(path: &Path) -> Result<BrowserScenario, String> {
    // Absolute: the relay reads relative trace paths from its spec file's folder.
    let path = &path
        .canonicalize()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let stem = path.file_stem().and_then(|n| n.to_str()).unwrap_or("trace");
    let parent = path
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("");
    let name = if parent.is_empty() {
        stem.to_owned()
    } else {
        format!("{parent}/{stem}")
    };
    downlink_trace(
        &name,
        format!(
            "{} as the subscriber's downlink, RTT 150 ms",
            path.display()
        ),
        path,
    )
}

/// Issue 14's thin links: a fixed `kbps` downlink at RTT 150 ms, where only audio fits (named
/// `thin-Nk`; judged on speech: kham's concealment at most the direct call's + 1 point and
/// under 3 %).
pub fn thin(kbps: u64) -> BrowserScenario {
    let rate = format!("{kbps}kbit");
    BrowserScenario {
        name: format!("thin-{kbps}k"),
        description: format!("fixed {kbps} kbit/s downlink, RTT 150 ms (issue 14: speech)"),
        publisher: Vec::new(),
        subscriber: args(&[
            "--rate", &rate, "--delay", DELAY, "--jitter", JITTER, "--queue", QUEUE,
        ]),
        capacity: Some(Trace::fixed(kbps * 1000)),
    }
}

/// 1 Mbit/s, 3 % loss both ways, RTT 300 ms: where the first-frame target is measured (also by
/// `--joins`).
pub fn rtt_300ms() -> BrowserScenario {
    BrowserScenario {
        name: "loss-3pct-rtt-300ms".into(),
        description: "1 Mbit/s, 3 % random loss both ways, RTT 300 ms".into(),
        publisher: Vec::new(),
        subscriber: args(&[
            "--rate", "1mbit", "--delay", "150ms", "--jitter", JITTER, "--loss", "0.03", "--queue",
            QUEUE,
        ]),
        capacity: Some(Trace::fixed(1_000_000)),
    }
}

/// The quick scenario: a fixed 500 kbit/s downlink at RTT 150 ms.
pub fn quick() -> BrowserScenario {
    BrowserScenario {
        name: "fixed-500k".into(),
        description: "fixed 500 kbit/s downlink, RTT 150 ms".into(),
        publisher: Vec::new(),
        subscriber: args(&[
            "--rate", "500kbit", "--delay", DELAY, "--jitter", JITTER, "--queue", QUEUE,
        ]),
        capacity: Some(Trace::fixed(500_000)),
    }
}
