//! Reports of the adaptation benchmark: markdown tables ([`tables`]), a JSON file for other
//! tools ([`write_json`]) and one PNG plot per scenario ([`write_plots`]), with the median and
//! spread over seeds ([`aggregate`]) and the targets ([`targets`]).
//!
//! Every function takes the flat list of [`RunResult`]s the simulator produced (one per
//! scenario × subscriber × configuration × seed) and never panics on odd input (empty series,
//! `NaN`).

pub mod aggregate;
mod json;
mod plot;
mod table;
pub mod targets;

pub use json::write_json;
pub(crate) use plot::font as plot_font;
pub(crate) use plot::sanitize as plot_file_name;
pub use plot::write_plots;
pub use table::tables;

use kham_sim::RunResult;

/// The subscriber name of single-subscriber scenarios, left out of row and file names.
const DEFAULT_SUBSCRIBER: &str = "viewer";

/// Scenario name, made unique per subscriber in multi-subscriber scenarios
/// (`strong_weak/weak`); the plain scenario name for the usual `viewer`.
fn subject(r: &RunResult) -> String {
    if r.subscriber == DEFAULT_SUBSCRIBER {
        r.scenario.clone()
    } else {
        format!("{}/{}", r.scenario, r.subscriber)
    }
}

/// Keys in first-seen order with the items of each, so reports follow the order of the run.
fn group_by<T, K: PartialEq>(items: &[T], key: impl Fn(&T) -> K) -> Vec<(K, Vec<&T>)> {
    let mut groups: Vec<(K, Vec<&T>)> = Vec::new();
    for r in items {
        let k = key(r);
        match groups.iter_mut().find(|(g, _)| *g == k) {
            Some((_, items)) => items.push(r),
            None => groups.push((k, vec![r])),
        }
    }
    groups
}

#[cfg(test)]
pub(crate) mod fixture {
    //! Synthetic results shared by the tests of the three reports.

    use kham_sim::{ConfigName, Metrics, RunResult, Sample};

    /// `steps_drop` (viewer) and `strong_weak` (weak subscriber), each under the three
    /// configurations; video paused for a while under kham, a `NaN` in one series.
    pub fn results() -> Vec<RunResult> {
        let mut out = Vec::new();
        for (scenario, family, subscriber) in [
            ("steps_drop", "steps", "viewer"),
            ("strong_weak", "two_subscribers", "weak"),
        ] {
            for config in ConfigName::ALL {
                let kham = config == ConfigName::Kham;
                let series = (0..100)
                    .map(|i| {
                        let t = f64::from(i) * 0.2;
                        let capacity_kbps = if t < 10.0 { 2500.0 } else { 400.0 };
                        Sample {
                            t,
                            capacity_kbps,
                            estimate_kbps: kham.then_some(capacity_kbps * 0.9),
                            sent_kbps: match config {
                                _ if i == 50 => f64::NAN,
                                ConfigName::Kham => 0.8 * capacity_kbps,
                                ConfigName::NoAdaptation => 1800.0,
                                ConfigName::LowestLayer => 200.0,
                            },
                            received_kbps: match config {
                                ConfigName::Kham => 0.75 * capacity_kbps,
                                ConfigName::NoAdaptation => capacity_kbps.min(1800.0),
                                ConfigName::LowestLayer => 200.0,
                            },
                            layer: match config {
                                ConfigName::Kham if (55..70).contains(&i) => None,
                                ConfigName::Kham if t < 10.0 => Some(2.67),
                                ConfigName::Kham => Some(0.67),
                                ConfigName::NoAdaptation => Some(2.67),
                                ConfigName::LowestLayer => Some(0.0),
                            },
                        }
                    })
                    .collect();
                out.push(RunResult {
                    scenario: scenario.into(),
                    family: family.into(),
                    config,
                    subscriber: subscriber.into(),
                    seed: 1,
                    duration_s: 20.0,
                    metrics: Metrics {
                        frozen_time_pct: 1.34,
                        frozen_or_paused_pct: 1.34,
                        freezes_per_min: 0.5,
                        audio_gaps: 2,
                        audio_loss_after_repair_pct: 0.04,
                        p95_audio_delay_ms: Some(180.0),
                        utilisation_pct: kham.then_some(87.3),
                        estimate_pct: kham.then_some(91.0),
                        p95_queue_delay_ms: Some(123.4),
                        downswitch_s: kham.then_some(0.8),
                        recovery_s: None,
                        switches_per_min: 3.0,
                        audio_only_pct: 7.5,
                        mean_height: 540.0,
                        mean_kbps: 1234.5,
                        mean_capacity_kbps: 1000.0,
                    },
                    series,
                });
            }
        }
        out
    }

    /// A fresh directory under the system temp dir, unique per test and process.
    pub fn temp_dir(test: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("kham-report-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }
}
