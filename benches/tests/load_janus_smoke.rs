//! Smoke test of the load generator's Janus path: `load --target janus` with 2 consult rooms
//! for 5 s against Debian's Janus, started by `benches/browser/janus/janus.sh` (which installs
//! the `janus` package with apt when it is missing) in network namespace `kham-load`. Ignored
//! by default and not part of `scripts/test.sh`: it needs root (`ip netns`), the Janus package
//! and about 15 s once Janus is installed; run it with
//!
//!     cargo test -p kham-benches --test load_janus_smoke -- --ignored
//!
//! It asserts every join completed, every subscriber got at least 99 % of every stream sent to
//! it, and the SRTP profile of every media session was seen.

use std::process::Command;

#[test]
#[ignore = "needs root, Debian's janus and ~15 s; see the module docs"]
fn janus_run_delivers_and_joins() -> Result<(), String> {
    let out = std::env::temp_dir().join(format!("kham-load-janus-smoke-{}", std::process::id()));
    let status = Command::new(env!("CARGO_BIN_EXE_load"))
        .args([
            "--target",
            "janus",
            "--scenario",
            "consults",
            "--size",
            "2",
            "--seconds",
            "5",
            "--warmup",
            "1",
            "--no-pin",
            "--out",
        ])
        .arg(&out)
        .status()
        .map_err(|e| format!("running load: {e}"))?;
    if !status.success() {
        return Err(format!("load exited with {status}"));
    }
    let text = std::fs::read_to_string(out.join("load.json")).map_err(|e| e.to_string())?;
    let j: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&out);
    let n = |k: &str| j[k].as_f64().ok_or(format!("no {k} in load.json"));
    let (done, expected) = (n("joins_completed")?, n("joins_expected")?);
    if done < expected || expected < 4.0 {
        return Err(format!("{done} of {expected} joins completed: {text}"));
    }
    if !j["join_errors"].as_array().is_some_and(Vec::is_empty) {
        return Err(format!("join errors: {}", j["join_errors"]));
    }
    let min = n("min_stream_received_pct")?;
    if min < 99.0 {
        return Err(format!(
            "a subscriber got {min:.2} % of a stream (< 99 %): {text}"
        ));
    }
    if j["target"] != "janus" || j["srtp_profiles"].get("unknown").is_some() {
        return Err(format!(
            "target {} srtp profiles {}",
            j["target"], j["srtp_profiles"]
        ));
    }
    Ok(())
}
