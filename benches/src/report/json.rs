//! `adaptation.json`: the figures of every run, their medians over seeds and the issue's
//! verdicts, for tools that compare versions.

use std::fs;
use std::path::Path;

use kham_sim::RunResult;
use serde_json::{Map, Value, json};

use super::aggregate::{Aggregate, FIGURES, aggregate};
use super::subject;
use super::targets::{Tally, Target, Verdict, tallies, verdicts};

/// Name of the file [`write_json`] writes.
pub const FILE_NAME: &str = "adaptation.json";

/// Writes `dir/adaptation.json` (creating `dir`): an object with
///
/// - `seeds`: the seeds that ran;
/// - `runs`: one object per run: `scenario` (`scenario/subscriber` when the subscriber is not
///   `viewer`, so scenario + config + seed identify a run), `config`, `seed`, `family`,
///   `subscriber`, `duration_s` and every figure ([`FIGURES`]' keys);
/// - `aggregates`: per scenario and configuration, `runs` (how many) and per figure
///   `{median, min, max, n}` over the seeds;
/// - `verdicts`: per scenario (and subscriber), each applicable target as
///   `{met, value, bound}` (kham's median against its bound) and `all_met`;
/// - `summary`: per family and `overall`, `{met, of}` for all targets and per target.
///
/// `None` (and a non-finite number) is `null`.
pub fn write_json(dir: &Path, results: &[RunResult]) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    let text = serde_json::to_string_pretty(&document(results)).map_err(std::io::Error::other)?;
    fs::write(dir.join(FILE_NAME), text + "\n")
}

fn document(results: &[RunResult]) -> Value {
    let aggregates = aggregate(results);
    let verdicts = verdicts(&aggregates);
    let (families, overall) = tallies(&verdicts);
    let mut seeds: Vec<u64> = results.iter().map(|r| r.seed).collect();
    seeds.sort_unstable();
    seeds.dedup();
    json!({
        "seeds": seeds,
        "runs": results.iter().map(run).collect::<Vec<_>>(),
        "aggregates": aggregates.iter().map(aggregate_entry).collect::<Vec<_>>(),
        "verdicts": verdicts.iter().map(verdict).collect::<Vec<_>>(),
        "summary": {
            "families": families.iter().map(tally).collect::<Vec<_>>(),
            "overall": tally(&overall),
        },
    })
}

/// The JSON object of one run.
fn run(r: &RunResult) -> Value {
    let mut o = Map::new();
    o.insert("scenario".into(), json!(subject(r)));
    o.insert("config".into(), json!(r.config.as_str()));
    o.insert("seed".into(), json!(r.seed));
    o.insert("family".into(), json!(r.family));
    o.insert("subscriber".into(), json!(r.subscriber));
    o.insert("duration_s".into(), json!(r.duration_s));
    for f in &FIGURES {
        o.insert(f.key.into(), number((f.get)(&r.metrics)));
    }
    Value::Object(o)
}

fn number(v: Option<f64>) -> Value {
    v.filter(|x| x.is_finite())
        .map_or(Value::Null, |x| json!(x))
}

fn aggregate_entry(a: &Aggregate<'_>) -> Value {
    let mut figures = Map::new();
    for f in &FIGURES {
        let v = a.spread(f).map_or(
            Value::Null,
            |s| json!({"median": s.median, "min": s.min, "max": s.max, "n": s.n}),
        );
        figures.insert(f.key.into(), v);
    }
    json!({
        "scenario": a.subject,
        "family": a.family,
        "subscriber": a.subscriber,
        "config": a.config.as_str(),
        "runs": a.runs.len(),
        "figures": figures,
    })
}

fn verdict(v: &Verdict) -> Value {
    let mut targets = Map::new();
    for c in &v.checks {
        targets.insert(
            c.target.key().into(),
            json!({"met": c.met, "value": c.value, "bound": c.bound}),
        );
    }
    json!({
        "scenario": v.subject,
        "family": v.family,
        "subscriber": v.subscriber,
        "targets": targets,
        "all_met": v.all_met(),
    })
}

fn tally(t: &Tally) -> Value {
    let mut per = Map::new();
    for (target, (met, of)) in Target::ALL.iter().zip(t.per_target) {
        per.insert(target.key().into(), json!({"met": met, "of": of}));
    }
    json!({
        "family": t.family,
        "all": {"met": t.all.0, "of": t.all.1},
        "targets": per,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    #[test]
    fn keeps_every_run_with_its_seed_and_the_medians_and_verdicts() {
        let mut results = fixture::results();
        results.extend(fixture::results().into_iter().map(|mut r| {
            r.seed = 9;
            r.metrics.frozen_time_pct = 5.0;
            r
        }));
        let dir = fixture::temp_dir("json");
        write_json(&dir, &results).unwrap();
        let text = fs::read_to_string(dir.join(FILE_NAME)).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["seeds"], json!([1, 9]));
        let runs = value["runs"].as_array().unwrap();
        assert_eq!(runs.len(), results.len());
        for (v, r) in runs.iter().zip(&results) {
            let obj = v.as_object().unwrap();
            assert_eq!(obj.len(), 6 + FIGURES.len());
            assert_eq!(obj["config"], r.config.as_str());
            assert_eq!(obj["seed"], r.seed);
            assert_eq!(obj["recovery_s"], Value::Null);
            assert_eq!(
                obj["utilisation_pct"].is_null(),
                r.metrics.utilisation_pct.is_none()
            );
            assert_eq!(obj["audio_gaps"], 2.0);
        }
        // Scenario + config + seed identify a run.
        let mut ids: Vec<String> = runs
            .iter()
            .map(|v| format!("{}+{}+{}", v["scenario"], v["config"], v["seed"]))
            .collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), runs.len());
        assert_eq!(runs[3]["scenario"], "strong_weak/weak");

        let aggs = value["aggregates"].as_array().unwrap();
        assert_eq!(aggs.len(), 6);
        let frozen = &aggs[0]["figures"]["frozen_time_pct"];
        assert_eq!(aggs[0]["runs"], 2);
        assert_eq!(frozen["min"], 1.34);
        assert_eq!(frozen["max"], 5.0);
        assert_eq!(aggs[0]["figures"]["recovery_s"], Value::Null);

        let verdicts = value["verdicts"].as_array().unwrap();
        assert_eq!(verdicts.len(), 2);
        let t = &verdicts[0]["targets"];
        assert_eq!(t["utilisation"]["met"], true);
        assert_eq!(t["height"]["met"], false);
        assert!(t.get("recovery").is_none(), "no return, no recovery target");
        assert_eq!(verdicts[0]["all_met"], false);
        assert_eq!(
            value["summary"]["overall"]["all"],
            json!({"met": 0, "of": 2})
        );
        assert_eq!(
            value["summary"]["families"][0]["targets"]["utilisation"],
            json!({"met": 1, "of": 1})
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
