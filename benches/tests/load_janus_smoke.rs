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

mod common;

use common::{check_delivery, run_load};

#[test]
#[ignore = "needs root, Debian's janus and ~15 s; see the module docs"]
fn janus_run_delivers_and_joins() -> Result<(), String> {
    let args = [
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
        "--runs",
        "1",
    ];
    let (j, text) = run_load("kham-load-janus-smoke", &args)?;
    check_delivery(&j, &text, 4.0)?;
    if j["target"] != "janus" || j["srtp_profiles"].get("unknown").is_some() {
        return Err(format!(
            "target {} srtp profiles {}",
            j["target"], j["srtp_profiles"]
        ));
    }
    Ok(())
}
