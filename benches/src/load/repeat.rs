//! Repeated runs and the agreement rule of issue 15 / CAPACITY.md §1.5: a capacity figure is one
//! that two or more runs of the same measurement agree on within [`AGREE`]. `load --runs N`
//! runs the measurement N times (each with its own server, into `DIR/run-I/`), and
//! `DIR/load.json` is the median run (by CPU per forwarded packet) with `runs` (each run's
//! figures) and `runs_spread_pct`; the result is invalid, its capacity figures moved to
//! `unvalidated`, when a run is invalid or the runs disagree.

use serde_json::{Value, json};

use crate::load::{LoadError, Options, Outcome, run, write_outcome};

/// Runs disagreeing by more than this share (max - min over min) give no capacity figure.
pub const AGREE: f64 = 0.10;

/// The figures the agreement rule compares.
pub const COMPARED: [&str; 2] = ["cpu_us_per_packet", "forwarded_pps"];

/// The capacity figures a valid `load.json` carries at its top level (an invalid one under
/// `unvalidated`).
const CAPACITY: [&str; 9] = [
    "cpu_us_per_packet",
    "cpu_us_per_packet_user",
    "cpu_us_per_packet_sys",
    "forwarded_pps",
    "cpu_us_per_delivered_packet",
    "cpu_us_per_delivered_packet_user",
    "cpu_us_per_delivered_packet_sys",
    "delivered_pps",
    "server_cpu_pct",
];

/// A figure of one run's `load.json`, valid or not.
fn figure(run: &Value, key: &str) -> Option<f64> {
    run[key]
        .as_f64()
        .or_else(|| run["unvalidated"][key].as_f64())
}

/// The spread of `key` over the runs, `(max - min) / min`, if every run has it.
pub fn spread(runs: &[Value], key: &str) -> Option<f64> {
    let v: Option<Vec<f64>> = runs.iter().map(|r| figure(r, key)).collect();
    let v = v?;
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min > 0.0 && v.len() > 1).then(|| (max - min) / min)
}

/// Combines the runs' `load.json`: the median run's content, `runs`, `runs_spread_pct`, and
/// the validity of all of them together. Returns it with its validity and reasons.
pub fn combine(runs: &[Value]) -> (Value, bool, Vec<String>) {
    let mut order: Vec<usize> = (0..runs.len()).collect();
    order.sort_by(|&a, &b| {
        let f = |i: usize| figure(&runs[i], COMPARED[0]).unwrap_or(f64::INFINITY);
        f(a).total_cmp(&f(b))
    });
    let median = order.get(runs.len() / 2).copied().unwrap_or(0);
    let mut out = runs.get(median).cloned().unwrap_or_else(|| json!({}));
    let mut reasons = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        if r["valid"].as_bool() != Some(true) {
            let why: Vec<String> = r["invalid_reasons"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            reasons.push(format!("run {}: invalid ({})", i + 1, why.join("; ")));
        }
    }
    let mut spreads = serde_json::Map::new();
    for key in COMPARED {
        match spread(runs, key) {
            Some(s) => {
                if s > AGREE {
                    reasons.push(format!(
                        "the {} runs disagree on {key} by {:.0} % (more than {:.0} %)",
                        runs.len(),
                        s * 100.0,
                        AGREE * 100.0
                    ));
                }
                spreads.insert(key.to_owned(), json!(s * 100.0));
            }
            None if runs.len() > 1 => {
                reasons.push(format!("{key} missing in a run: agreement not checked"));
            }
            None => {}
        }
    }
    let valid = reasons.is_empty();
    if !valid && out["valid"].as_bool() == Some(true) {
        // The median run was valid on its own: its capacity figures become unvalidated.
        let mut cap = serde_json::Map::new();
        for key in CAPACITY {
            cap.insert(key.to_owned(), out[key].take());
        }
        out["unvalidated"] = Value::Object(cap);
    }
    out["valid"] = json!(valid);
    out["invalid_reasons"] = json!(reasons);
    out["median_run"] = json!(median + 1);
    out["runs_spread_pct"] = Value::Object(spreads);
    out["runs"] = runs
        .iter()
        .map(|r| {
            let mut m = serde_json::Map::new();
            m.insert("valid".to_owned(), r["valid"].clone());
            for key in COMPARED.iter().chain(["pss_mb", "loss_pct"].iter()) {
                m.insert((*key).to_owned(), json!(figure(r, key)));
            }
            Value::Object(m)
        })
        .collect();
    (out, valid, reasons)
}

/// Runs the measurement `n` times into `out/run-I/` and writes the combined `out/load.json`.
pub async fn repeated(o: Options, n: usize) -> Result<Outcome, LoadError> {
    let mut runs = Vec::new();
    for i in 1..=n.max(1) {
        let mut oi = o.clone();
        oi.out = o.out.join(format!("run-{i}"));
        let r = run(oi).await?;
        eprintln!(
            "load: run {i} of {n}: valid={} cpu_us_per_packet={} forwarded_pps={}",
            r.valid,
            figure(&r.json, COMPARED[0]).map_or("-".into(), |v| format!("{v:.2}")),
            figure(&r.json, COMPARED[1]).map_or("-".into(), |v| format!("{v:.0}")),
        );
        runs.push(r.json);
    }
    let (json, valid, reasons) = combine(&runs);
    write_outcome(&o.out, json, valid, reasons)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(cpu: f64, pps: f64) -> Value {
        json!({"valid": true, "invalid_reasons": [], "cpu_us_per_packet": cpu,
               "forwarded_pps": pps, "unvalidated": null, "pss_mb": 50.0, "loss_pct": 0.0})
    }

    #[test]
    fn runs_that_agree_give_the_median_run() {
        let runs = [
            valid(13.0, 10_000.0),
            valid(12.0, 10_200.0),
            valid(12.5, 10_100.0),
        ];
        let (out, ok, reasons) = combine(&runs);
        assert!(ok, "{reasons:?}");
        assert_eq!(out["cpu_us_per_packet"], json!(12.5));
        assert_eq!(out["median_run"], json!(3));
        assert_eq!(out["runs"].as_array().map(Vec::len), Some(3));
    }

    #[test]
    fn runs_more_than_a_tenth_apart_give_no_capacity_figure() {
        let runs = [valid(12.0, 10_000.0), valid(13.5, 10_000.0)];
        let (out, ok, reasons) = combine(&runs);
        assert!(!ok);
        assert!(reasons[0].contains("cpu_us_per_packet"), "{reasons:?}");
        assert_eq!(out["cpu_us_per_packet"], Value::Null);
        assert!(out["unvalidated"]["cpu_us_per_packet"].as_f64().is_some());
        assert_eq!(out["valid"], json!(false));
    }

    #[test]
    fn an_invalid_run_makes_the_whole_invalid() {
        let bad = json!({"valid": false, "invalid_reasons": ["generator CPU 91 %"],
                         "cpu_us_per_packet": null, "forwarded_pps": null,
                         "unvalidated": {"cpu_us_per_packet": 12.1, "forwarded_pps": 10_050.0}});
        let (out, ok, reasons) = combine(&[valid(12.0, 10_000.0), bad]);
        assert!(!ok);
        assert!(
            reasons
                .iter()
                .any(|r| r.contains("run 2") && r.contains("91 %")),
            "{reasons:?}"
        );
        assert_eq!(out["valid"], json!(false));
    }

    #[test]
    fn one_run_is_its_own_result() {
        let (out, ok, _) = combine(&[valid(12.0, 10_000.0)]);
        assert!(ok);
        assert_eq!(out["cpu_us_per_packet"], json!(12.0));
    }
}
