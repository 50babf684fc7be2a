#!/usr/bin/env bash
# The whole test suite, runnable on a fresh Debian machine: installs what is missing, then runs
# formatting, lints, unit and integration tests, and the real-browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> [%ds] %s\n' "$SECONDS" "$*"; }

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
if ((${#need_apt[@]})); then
  log "installing ${need_apt[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

log "sans-IO crates pull no IO runtime"
for c in kham-proto kham-bwe kham-netem kham-sfu; do
  if cargo tree -p "$c" -e normal --prefix none | grep -qE '^(tokio|axum|hyper|mio|socket2) '; then
    echo "crate $c depends on an IO runtime" >&2
    exit 1
  fi
done

log "cargo build (kham binary)"
cargo build -p kham-server --quiet
export KHAM_BIN="$PWD/target/debug/kham"

log "cargo test (unit, loopback WebRTC, signaling, UDP)"
cargo test --workspace --quiet

log "load generator smoke (5 consults for 15 s through real ICE, DTLS and SRTP: every join, >= 99 % delivered)"
cargo test -p kham-benches --test load_smoke --quiet -- --ignored

log "browser tests (Chromium + playwright-core)"
bash tests/browser/run.sh

log "browser-quality --quick (real Chromium behind kham-relay: the relay constrains the link)"
if ! command -v ffmpeg >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq ffmpeg >/dev/null
fi
cargo build -p kham-relay --quiet
KHAM_RELAY_BIN="$PWD/target/debug/kham-relay" \
  cargo run -p kham-benches --bin browser-quality --quiet -- --quick --out target/browser-quality-quick

log "browser-quality --clean --quick (the kham call on loopback: 360p within 30 s, no poor badge)"
cargo run -p kham-benches --bin browser-quality --quiet -- --clean --quick --out target/browser-quality-clean-quick

log "adaptation --quick (simulator: frozen within the lowest layer's + 5 points, height >= 1.5x)"
cargo run -p kham-benches --bin adaptation --quiet -- --quick --out target/adaptation-quick
log "all green"
