#!/usr/bin/env bash
# A short run of every cargo-fuzz target in fuzz/ (RELIABILITY.md, "Fuzzing"):
# one build of all targets, then each for FUZZ_SECONDS (default 10) from its
# seeds (fuzz/seeds/<target>) and its local corpus (fuzz/corpus/<target>,
# gitignored), with libFuzzer's memory bounds. A finding fails the script;
# the crashing input is left in fuzz/artifacts/<target>/.
#
# The toolchain is stable only, so cargo-fuzz builds with RUSTC_BOOTSTRAP=1
# (it needs -Z flags for the sanitizer and coverage instrumentation). The
# build keeps overflow checks and debug assertions on (cargo-fuzz's default).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz"
seconds="${FUZZ_SECONDS:-10}"
# Bounds of every run: a single allocation over MALLOC_MB or a process over
# RSS_MB is a finding. The probe's caps are 64 KiB (metadata) and 1 MiB
# (replies), and the targets pick caps up to 64 KiB; the RSS bound leaves
# room for AddressSanitizer's own shadow memory.
malloc_mb="${FUZZ_MALLOC_MB:-16}"
rss_mb="${FUZZ_RSS_MB:-2048}"

if ! command -v cargo-fuzz >/dev/null; then
  cargo install cargo-fuzz --locked
fi
targets=$(RUSTC_BOOTSTRAP=1 cargo fuzz list)
start=$(date +%s)
RUSTC_BOOTSTRAP=1 cargo fuzz build
echo "fuzz build: $(($(date +%s) - start)) s"
bin="target/$(rustc -vV | sed -n 's/^host: //p')/release"
for t in $targets; do
  mkdir -p "corpus/$t" "artifacts/$t"
  seeds=()
  [ -d "seeds/$t" ] && seeds=("seeds/$t")
  echo "==> $t (${seconds} s)"
  log="target/smoke-$t.log"
  if ! "$bin/$t" "corpus/$t" "${seeds[@]}" -artifact_prefix="artifacts/$t/" \
    -max_total_time="$seconds" -rss_limit_mb="$rss_mb" -malloc_limit_mb="$malloc_mb" \
    -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz target $t failed: the input is in fuzz/artifacts/$t/"
    exit 1
  fi
  grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || true
done
echo "fuzz smoke: $(($(date +%s) - start)) s in all"
