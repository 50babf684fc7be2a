//! Markdown tables: one per scenario family, a row per scenario (and subscriber) and
//! configuration.

use std::fmt::Write as _;

use kham_sim::{Metrics, RunResult};

use super::{group_by, subject};

/// Shown for a metric that does not apply (`None`).
const NONE: &str = "–";

/// Column headers after the scenario and config columns, in the order of [`cells`].
const COLUMNS: [&str; 12] = [
    "frozen time %",
    "freezes/min",
    "audio gaps",
    "audio loss after repair %",
    "utilisation %",
    "p95 queuing delay ms",
    "downswitch s",
    "recovery s",
    "switches/min",
    "audio-only %",
    "mean height",
    "mean kbit/s",
];

/// Prints one markdown table per scenario family to stdout and returns the same text.
///
/// Rows are scenario (`scenario/subscriber` when the subscriber is not `viewer`) ×
/// configuration, in the order of `results`; families appear in first-seen order. Percentages
/// have 1 decimal, seconds and per-minute rates 2, milliseconds, heights and kbit/s none;
/// `None` prints as "–".
pub fn tables(results: &[RunResult]) -> String {
    let mut out = String::new();
    for (family, rows) in group_by(results, |r| r.family.clone()) {
        // Writing to a String cannot fail.
        let _ = writeln!(out, "### {family}\n");
        let _ = writeln!(out, "| scenario | config | {} |", COLUMNS.join(" | "));
        let _ = writeln!(out, "|---|---|{}", "---:|".repeat(COLUMNS.len()));
        for r in rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                subject(r),
                r.config.as_str(),
                cells(&r.metrics).join(" | ")
            );
        }
        out.push('\n');
    }
    print!("{out}");
    out
}

/// The metric cells of one row, in the order of [`COLUMNS`].
fn cells(m: &Metrics) -> [String; 12] {
    [
        format!("{:.1}", m.frozen_time_pct),
        format!("{:.2}", m.freezes_per_min),
        m.audio_gaps.to_string(),
        format!("{:.1}", m.audio_loss_after_repair_pct),
        opt(m.utilisation_pct, 1),
        opt(m.p95_queue_delay_ms, 0),
        opt(m.downswitch_s, 2),
        opt(m.recovery_s, 2),
        format!("{:.2}", m.switches_per_min),
        format!("{:.1}", m.audio_only_pct),
        format!("{:.0}", m.mean_height),
        format!("{:.0}", m.mean_kbps),
    ]
}

/// `value` with `decimals` decimals, or "–".
fn opt(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| NONE.to_owned(), |v| format!("{v:.decimals$}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    #[test]
    fn one_row_per_result_and_dash_for_none() {
        let results = fixture::results();
        let text = tables(&results);
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("| ") && !l.starts_with("| scenario"))
            .collect();
        assert_eq!(rows.len(), results.len());
        for (row, r) in rows.iter().zip(&results) {
            assert!(row.starts_with(&format!("| {} | {} |", subject(r), r.config.as_str())));
            // Scenario, config and the 12 metrics.
            assert_eq!(row.matches(" | ").count() + 1, 2 + COLUMNS.len());
        }
        assert!(text.contains("### steps\n") && text.contains("### two_subscribers\n"));
        assert!(text.contains("| strong_weak/weak | kham |"));
        // kham: utilisation and downswitch known, recovery not; baselines: all three unknown.
        assert!(rows[0].contains("| 87.3 | 123 | 0.80 | – |"));
        assert!(rows[1].contains("| – | 123 | – | – |"));
        assert!(rows[0].starts_with("| steps_drop | kham | 1.3 | 0.50 | 2 | 0.0 |"));
    }

    #[test]
    fn empty_input_gives_empty_text() {
        assert_eq!(tables(&[]), "");
    }
}
