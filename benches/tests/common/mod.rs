//! What the load generator's smoke tests share: running `load` into a scratch directory and
//! checking that every join completed and every stream was delivered.

use std::process::Command;

/// Runs the `load` binary with `args` and `--out` a scratch directory; returns its `load.json`
/// and the text (for messages).
pub fn run_load(name: &str, args: &[&str]) -> Result<(serde_json::Value, String), String> {
    let out = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let status = Command::new(env!("CARGO_BIN_EXE_load"))
        .args(args)
        .arg("--out")
        .arg(&out)
        .status()
        .map_err(|e| format!("running load: {e}"))?;
    if !status.success() {
        return Err(format!("load exited with {status}"));
    }
    let text = std::fs::read_to_string(out.join("load.json")).map_err(|e| e.to_string())?;
    let j = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&out);
    Ok((j, text))
}

/// A number of `load.json`.
pub fn number(j: &serde_json::Value, k: &str) -> Result<f64, String> {
    j[k].as_f64().ok_or(format!("no {k} in load.json"))
}

/// Every one of at least `min_joins` joins completed without error, and every subscriber got at
/// least 99 % of every stream sent to it.
pub fn check_delivery(j: &serde_json::Value, text: &str, min_joins: f64) -> Result<(), String> {
    let (done, expected) = (number(j, "joins_completed")?, number(j, "joins_expected")?);
    if done < expected || expected < min_joins {
        return Err(format!("{done} of {expected} joins completed: {text}"));
    }
    if !j["join_errors"].as_array().is_some_and(Vec::is_empty) {
        return Err(format!("join errors: {}", j["join_errors"]));
    }
    let min = number(j, "min_stream_received_pct")?;
    if min < 99.0 {
        return Err(format!(
            "a subscriber got {min:.2} % of a stream (< 99 %): {text}"
        ));
    }
    Ok(())
}
