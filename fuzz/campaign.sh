#!/usr/bin/env bash
# A local libFuzzer campaign over every target (see README.md): coverage-guided, stable toolchain
# (`-s none`), a fixed seed and a fixed number of executions per target, the corpus under
# corpus/<target>/ grown in place. Prints one line per target: executions, coverage, corpus
# size, seconds, and whether it found anything (a finding stops the script; the input is under
# artifacts/<target>/). It grows a copy of corpus/<target>/ under artifacts/corpus/<target>/, not
# the committed seeds: commit what is worth keeping after `cargo fuzz cmin`.
#
#   bash fuzz/campaign.sh [RUNS] [TARGET...]     # RUNS defaults to 10000000; room gets RUNS/100
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). Takes minutes per parser target on
# two cores; not part of the test command.
set -euo pipefail
cd "$(dirname "$0")"
runs="${1:-10000000}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(vp8 red forwarder rfc4571 token signal_json sdp trace relay_spec room data_channel)
fi
cargo fuzz build -s none -O >/dev/null
for t in "${targets[@]}"; do
  n="$runs"
  max_len=1400
  case "$t" in
    room) n=$((runs / 100)) ;;
  esac
  case "$t" in
    signal_json | sdp | trace | relay_spec | room | data_channel) max_len=65536 ;;
  esac
  start=$(date +%s)
  log="artifacts/$t.log"
  mkdir -p "artifacts/$t" "artifacts/corpus/$t"
  cp -n corpus/"$t"/* "artifacts/corpus/$t/" 2>/dev/null || true
  if ! cargo fuzz run -s none -O "$t" "artifacts/corpus/$t" -- -seed=1 -runs="$n" -max_len="$max_len" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="artifacts/$t/" >"$log" 2>&1; then
    echo "$t: FINDING (see $log and artifacts/$t/)"
    tail -n 30 "$log"
    exit 1
  fi
  secs=$(($(date +%s) - start))
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 || true)
  corp=$(grep -oE 'corp: [0-9]+/[0-9]+[a-zA-Z]*' "$log" | tail -1 || true)
  execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || true)
  echo "$t: ${execs:-?} executions, $cov, $corp, ${secs} s, no finding"
done
