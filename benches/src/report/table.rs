//! Markdown tables: one per scenario family, a row per scenario (and subscriber) and
//! configuration with the median of each figure over the seeds and its range, the issue's
//! targets on kham's rows, and a summary line per family and overall.

use std::fmt::Write as _;

use kham_sim::{ConfigName, RunResult};

use super::aggregate::{Aggregate, FIGURES, aggregate};
use super::group_by;
use super::targets::{Verdict, audio_targets, tallies, verdicts};

/// Shown for a metric that does not apply (`None`).
const NONE: &str = "–";

/// Prints one markdown table per scenario family to stdout, then the targets' summary, and
/// returns the same text.
///
/// Rows are scenario (`scenario/subscriber` when the subscriber is not `viewer`) ×
/// configuration, in the order of `results`; families appear in first-seen order. A cell is
/// the median over the scenario's seeds, followed by `(min-max)` when they differ.
/// Percentages have 1 decimal, seconds and per-minute rates 2, milliseconds, heights and
/// kbit/s none; `None` prints as "–". The last column holds the verdict on kham's rows.
pub fn tables(results: &[RunResult]) -> String {
    let aggregates = aggregate(results);
    let verdicts = verdicts(&aggregates);
    let mut out = String::new();
    let headers: Vec<&str> = FIGURES.iter().map(|f| f.header).collect();
    let runs = aggregates.iter().map(|a| a.runs.len()).max().unwrap_or(0);
    for (family, rows) in group_by(&aggregates, |a| a.family.clone()) {
        // Writing to a String cannot fail.
        let _ = writeln!(out, "### {family}\n");
        if runs > 1 {
            let _ = writeln!(out, "Median of {runs} runs (min-max).\n");
        }
        let _ = writeln!(
            out,
            "| scenario | config | {} | targets |",
            headers.join(" | ")
        );
        let _ = writeln!(out, "|---|---|{}---|", "---:|".repeat(headers.len()));
        for a in rows {
            let verdict = (a.config == ConfigName::Kham)
                .then(|| verdicts.iter().find(|v| v.subject == a.subject))
                .flatten()
                .map_or(String::new(), Verdict::text);
            let _ = writeln!(
                out,
                "| {} | {} | {} | {verdict} |",
                a.subject,
                a.config.as_str(),
                cells(a).join(" | ")
            );
        }
        out.push('\n');
    }
    let (per_family, overall) = tallies(&verdicts);
    if !verdicts.is_empty() {
        let _ = writeln!(out, "### targets (issue 12)\n");
        for t in &per_family {
            let _ = writeln!(out, "- {}: {}", t.family, t.text());
        }
        let _ = writeln!(out, "- **all families**: {}\n", overall.text());
    }
    let audio = audio_targets(&aggregates);
    if !audio.is_empty() {
        let _ = writeln!(out, "### targets (issue 14, thin links)\n");
        for line in audio {
            let _ = writeln!(out, "- {line}");
        }
        out.push('\n');
    }
    print!("{out}");
    out
}

/// The figure cells of one row, in the order of [`FIGURES`].
fn cells(a: &Aggregate<'_>) -> Vec<String> {
    FIGURES
        .iter()
        .map(|f| {
            a.spread(f)
                .map_or_else(|| NONE.to_owned(), |s| s.text(f.decimals))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{fixture, subject};

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
            // Scenario, config, the figures and the targets.
            assert_eq!(row.matches(" | ").count() + 1, 3 + FIGURES.len());
        }
        assert!(text.contains("### steps\n") && text.contains("### two_subscribers\n"));
        assert!(text.contains("| strong_weak/weak | kham |"));
        // kham: utilisation and downswitch known, recovery not; baselines: all three unknown.
        assert!(rows[0].contains("| 87.3 | 123 | 0.80 | – |"));
        assert!(rows[1].contains("| – | 123 | – | – |"));
        assert!(rows[0].starts_with("| steps_drop | kham | 1.3 | 1.3 | 0.50 | 2 | 0.0 |"));
        // The verdict on kham's row only; one seed, so no spread and no seed note.
        assert!(rows[0].ends_with("| frozen yes, height no, utilisation yes |"));
        assert!(rows[1].ends_with(" |  |"));
        assert!(!text.contains("Median"));
        assert!(text.contains("- steps: met on 0 of 1 (frozen 1/1, height 0/1, utilisation 1/1)"));
        assert!(text.contains("- **all families**: met on 0 of 2"));
    }

    #[test]
    fn several_seeds_show_median_and_range() {
        let mut results = fixture::results();
        for (seed, frozen) in [(2, 3.0), (3, 9.0)] {
            results.extend(fixture::results().into_iter().map(|mut r| {
                r.seed = seed;
                r.metrics.frozen_time_pct = frozen;
                r
            }));
        }
        let text = tables(&results);
        assert!(text.contains("Median of 3 runs (min-max)."));
        assert!(text.contains("| steps_drop | kham | 3.0 (1.3-9.0) | 1.3 | 0.50 |"));
        let rows = text
            .lines()
            .filter(|l| l.starts_with("| ") && !l.starts_with("| scenario"))
            .count();
        assert_eq!(rows, 6);
    }

    #[test]
    fn empty_input_gives_empty_text() {
        assert_eq!(tables(&[]), "");
    }
}
