//! Every fuzz target on its saved inputs (`fuzz/corpus/<name>/`, `fuzz/regressions/<name>/`),
//! then on a seeded number of mutations of them: deterministic, seconds under `cargo test`.
//! `KHAM_FUZZ_RUNS` sets the mutations per target (default 3000; 0 replays only).
//! libFuzzer's coverage-guided runs are in `fuzz/` (see its README).

use std::path::{Path, PathBuf};

use kham_fuzz_targets::TARGETS;
use kham_fuzz_targets::mutate::{Rng, mutate};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn inputs(kind: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = fuzz_dir().join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, bytes)
        })
        .collect()
}

#[test]
fn every_target_has_a_corpus() {
    for (name, _) in TARGETS {
        assert!(
            !inputs("corpus", name).is_empty(),
            "fuzz/corpus/{name}/ is empty"
        );
    }
}

#[test]
fn saved_inputs_replay_clean() {
    for (name, f) in TARGETS {
        for kind in ["corpus", "regressions"] {
            for (path, bytes) in inputs(kind, name) {
                let r = std::panic::catch_unwind(|| f(&bytes));
                assert!(r.is_ok(), "{name}: {} fails", path.display());
            }
        }
    }
}

#[test]
fn seeded_mutations_find_nothing() {
    let runs: u64 = std::env::var("KHAM_FUZZ_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    for (k, (name, f)) in TARGETS.iter().enumerate() {
        let seeds: Vec<Vec<u8>> = inputs("corpus", name).into_iter().map(|(_, b)| b).collect();
        let mut rng = Rng::new(0x6b68_616d + k as u64);
        for i in 0..runs {
            let input = mutate(&mut rng, &seeds, 65_536);
            let r = std::panic::catch_unwind(|| f(&input));
            assert!(
                r.is_ok(),
                "{name}: mutation {i} fails; save it under fuzz/regressions/{name}/: {:02x?}",
                input
            );
        }
    }
}

#[test]
fn the_token_corpus_holds_the_one_signed_token() {
    // The seed that makes `token` exercise the accepting path (same key, same claims: HS256
    // signing is deterministic).
    let signed = kham_fuzz_targets::signed_token();
    let saved = inputs("corpus", "token");
    assert!(
        saved.iter().any(|(_, b)| b == signed.as_bytes()),
        "fuzz/corpus/token/signed should hold {signed}"
    );
    kham_fuzz_targets::token(signed.as_bytes());
}
