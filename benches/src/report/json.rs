//! `adaptation.json`: the figures of every run, for tools that compare versions.

use std::fs;
use std::path::Path;

use kham_sim::RunResult;
use serde_json::{Value, json};

use super::subject;

/// Name of the file [`write_json`] writes.
pub const FILE_NAME: &str = "adaptation.json";

/// Writes `dir/adaptation.json` (creating `dir`): a JSON list with one object per result.
///
/// Keys: `scenario` (`scenario/subscriber` when the subscriber is not `viewer`, so
/// scenario + config identify an entry), `config`, `frozen_time_pct`, `freezes_per_min`,
/// `audio_gaps`, `audio_loss_after_repair_pct`, `utilisation_pct`, `p95_queue_delay_ms`,
/// `downswitch_s`, `recovery_s`, `switches_per_min`, `audio_only_pct`, `family`,
/// `subscriber`, `duration_s`, `mean_height`, `mean_kbps`. `None` (and a non-finite number)
/// is `null`.
pub fn write_json(dir: &Path, results: &[RunResult]) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    let list: Vec<Value> = results.iter().map(entry).collect();
    let text = serde_json::to_string_pretty(&list).map_err(std::io::Error::other)?;
    fs::write(dir.join(FILE_NAME), text + "\n")
}

/// The JSON object of one result.
fn entry(r: &RunResult) -> Value {
    let m = &r.metrics;
    json!({
        "scenario": subject(r),
        "config": r.config.as_str(),
        "frozen_time_pct": m.frozen_time_pct,
        "freezes_per_min": m.freezes_per_min,
        "audio_gaps": m.audio_gaps,
        "audio_loss_after_repair_pct": m.audio_loss_after_repair_pct,
        "utilisation_pct": m.utilisation_pct,
        "p95_queue_delay_ms": m.p95_queue_delay_ms,
        "downswitch_s": m.downswitch_s,
        "recovery_s": m.recovery_s,
        "switches_per_min": m.switches_per_min,
        "audio_only_pct": m.audio_only_pct,
        "family": r.family,
        "subscriber": r.subscriber,
        "duration_s": r.duration_s,
        "mean_height": m.mean_height,
        "mean_kbps": m.mean_kbps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    const KEYS: [&str; 17] = [
        "scenario",
        "config",
        "frozen_time_pct",
        "freezes_per_min",
        "audio_gaps",
        "audio_loss_after_repair_pct",
        "utilisation_pct",
        "p95_queue_delay_ms",
        "downswitch_s",
        "recovery_s",
        "switches_per_min",
        "audio_only_pct",
        "family",
        "subscriber",
        "duration_s",
        "mean_height",
        "mean_kbps",
    ];

    #[test]
    fn round_trips_with_exactly_the_keys_and_null_for_none() {
        let results = fixture::results();
        let dir = fixture::temp_dir("json");
        write_json(&dir, &results).unwrap();
        let text = fs::read_to_string(dir.join(FILE_NAME)).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        let list = value.as_array().unwrap();
        assert_eq!(list.len(), results.len());
        for (v, r) in list.iter().zip(&results) {
            let obj = v.as_object().unwrap();
            let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
            keys.sort_unstable();
            let mut want = KEYS.to_vec();
            want.sort_unstable();
            assert_eq!(keys, want);
            assert_eq!(obj["config"], r.config.as_str());
            assert_eq!(obj["recovery_s"], Value::Null);
            assert_eq!(
                obj["utilisation_pct"].is_null(),
                r.metrics.utilisation_pct.is_none()
            );
            assert_eq!(obj["audio_gaps"], 2);
        }
        // Unique per subscriber; scenario + config identify each entry.
        assert_eq!(list[3]["scenario"], "strong_weak/weak");
        assert_eq!(list[0]["scenario"], "steps_drop");
        let mut ids: Vec<String> = list
            .iter()
            .map(|v| format!("{}+{}", v["scenario"], v["config"]))
            .collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), list.len());
        fs::remove_dir_all(&dir).unwrap();
    }
}
