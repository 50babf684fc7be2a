//! `--joins N`: the first frame at 300 ms RTT over N joins, each with its own link seed.
//!
//! Why not the full run's single join: the relay drops packets by a seeded draw, and call setup
//! is a handful of packets (STUN checks, a ClientHello in two datagrams, two or three handshake
//! flights, a keyframe). Which of them a draw hits decides the join: one lost handshake
//! datagram costs the DTLS client's retransmission timer (Chromium: twice the ICE RTT, about
//! 0.65 s here), one lost keyframe packet a NACK round trip or a new keyframe. With one seed the
//! same packet is lost in every run of a configuration (session 34: kham's ClientHello's second
//! fragment in 5 of 5 runs with all four configurations up; with two the browser had one local
//! candidate fewer, a different packet count, and no such loss), so one join per run compares
//! two single draws. Every configuration still gets the same seed within a join.

use std::path::Path;

use serde_json::json;

use super::metrics::{self, Stages};
use super::run::{self, Tools};
use super::scenarios::BrowserScenario;
use crate::report::aggregate::Spread;

/// The target: kham's first frame within this many seconds of the direct call's.
pub const TARGET_S: f64 = 0.5;

/// One configuration in one join.
#[derive(Debug, Clone)]
pub struct Join {
    pub seed: u64,
    pub config: String,
    /// `None`: no frame within the join's duration.
    pub first_frame_s: Option<f64>,
    pub stages: Stages,
}

/// Runs `n` joins of `scenario` with seeds `seed`, `seed + 1`, ...; every configuration of a
/// join runs at once, as in the full run.
pub fn run(
    tools: &Tools,
    scenario: &BrowserScenario,
    configs: &[String],
    n: u64,
    seed: u64,
    duration_s: u64,
    work: &Path,
) -> Result<Vec<Join>, String> {
    let mut out = Vec::new();
    for k in 0..n {
        let s = seed + k;
        eprintln!("join {}/{n} (seed {s})", k + 1);
        let driver = run::scenario(
            tools,
            scenario,
            configs,
            duration_s,
            s,
            &work.join(format!("join-{k:02}")),
        )?;
        for (config, e) in &driver.errors {
            eprintln!("  {config}: error: {e}");
        }
        for (config, samples) in driver.series {
            let f = metrics::figures(&samples);
            eprintln!(
                "  {config}: first frame {}",
                f.first_frame_s
                    .map_or_else(|| "none".to_owned(), |v| format!("{v:.2} s"))
            );
            out.push(Join {
                seed: s,
                config,
                first_frame_s: f.first_frame_s,
                stages: f.stages,
            });
        }
    }
    Ok(out)
}

/// Per configuration: the spread of its first frames (a join without one counts as
/// `duration_s`, the worst it can be), with how many joins had none; `None` without joins.
fn first_frames(joins: &[Join], config: &str, duration_s: f64) -> Option<(Spread, usize)> {
    let mine = joins.iter().filter(|j| j.config == config);
    let missing = mine.clone().filter(|j| j.first_frame_s.is_none()).count();
    let spread = Spread::of(mine.map(|j| j.first_frame_s.unwrap_or(duration_s)))?;
    Some((spread, missing))
}

/// The configurations in the order they first appear.
fn configs(joins: &[Join]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for j in joins {
        if !out.contains(&j.config) {
            out.push(j.config.clone());
        }
    }
    out
}

/// kham's median first frame against the direct call's: `None` without both.
pub fn verdict(joins: &[Join], duration_s: f64) -> Option<(f64, f64, bool)> {
    let (k, _) = first_frames(joins, "kham", duration_s)?;
    let (p, _) = first_frames(joins, "p2p", duration_s)?;
    Some((k.median, p.median, k.median <= p.median + TARGET_S))
}

/// The table: per configuration the median, fastest and slowest first frame, the median DTLS
/// and first-RTP stages, and every join's figure in seed order.
pub fn markdown(joins: &[Join], duration_s: f64) -> String {
    let mut md = String::from(
        "| config | joins | first frame median | min | max | no frame | connected median | first RTP median | per seed |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for c in configs(joins) {
        let Some((v, missing)) = first_frames(joins, &c, duration_s) else {
            continue;
        };
        let stage_median = |get: fn(&Stages) -> Option<f64>| {
            Spread::of(
                joins
                    .iter()
                    .filter(|j| j.config == c)
                    .filter_map(|j| get(&j.stages)),
            )
            .map_or_else(|| "-".to_owned(), |s| format!("{:.2}", s.median))
        };
        let per_seed: Vec<String> = joins
            .iter()
            .filter(|j| j.config == c)
            .map(|j| {
                j.first_frame_s
                    .map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"))
            })
            .collect();
        md.push_str(&format!(
            "| {c} | {} | {:.2} | {:.2} | {:.2} | {missing} | {} | {} | {} |\n",
            v.n,
            v.median,
            v.min,
            v.max,
            stage_median(|s| s.connected),
            stage_median(|s| s.rtp),
            per_seed.join(" ")
        ));
    }
    match verdict(joins, duration_s) {
        Some((k, p, ok)) => md.push_str(&format!(
            "\nfirst frame at RTT 300 ms, median over joins, within {TARGET_S} s of the direct call's: {} (kham {k:.2} s, direct {p:.2} s)\n",
            if ok { "met" } else { "NOT met" }
        )),
        None => md.push_str("\nno verdict: kham and p2p both needed\n"),
    }
    md
}

/// The joins as JSON: every join's figure and stages, and the verdict.
pub fn json(joins: &[Join], duration_s: f64) -> serde_json::Value {
    let v = verdict(joins, duration_s);
    json!({
        "target_s": TARGET_S,
        "joins": joins.iter().map(|j| json!({
            "seed": j.seed,
            "config": j.config,
            "first_frame_s": j.first_frame_s,
            "stages_s": j.stages.list().iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect::<serde_json::Map<_, _>>(),
        })).collect::<Vec<_>>(),
        "kham_median_s": v.map(|x| x.0),
        "p2p_median_s": v.map(|x| x.1),
        "met": v.map(|x| x.2),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(seed: u64, config: &str, ff: Option<f64>) -> Join {
        Join {
            seed,
            config: config.into(),
            first_frame_s: ff,
            stages: Stages::default(),
        }
    }

    #[test]
    fn the_verdict_compares_medians_and_a_join_without_a_frame_counts_as_the_worst() {
        // kham: 1.2, 1.3, none (10) -> median 1.3; p2p: 1.0, 1.1, 2.5 -> median 1.1.
        let joins = vec![
            join(1, "kham", Some(1.2)),
            join(1, "p2p", Some(1.0)),
            join(2, "kham", Some(1.3)),
            join(2, "p2p", Some(2.5)),
            join(3, "kham", None),
            join(3, "p2p", Some(1.1)),
        ];
        let (k, p, ok) = verdict(&joins, 10.0).unwrap();
        assert!((k - 1.3).abs() < 1e-9 && (p - 1.1).abs() < 1e-9 && ok);
        // Two joins of three without a frame: the median is the join's duration.
        let mut worse = joins.clone();
        worse[2].first_frame_s = None;
        let (k, _, ok) = verdict(&worse, 10.0).unwrap();
        assert!((k - 10.0).abs() < 1e-9 && !ok);
        assert!(markdown(&worse, 10.0).contains("NOT met"));
        assert_eq!(verdict(&joins[..1], 10.0), None);
    }
}
