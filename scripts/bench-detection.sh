#!/usr/bin/env bash
# The detection benchmark of issue 21 (benches/detection/bench_detection.py):
# a fleet of TypeScript-SDK servers behind two real Envoys, killed 20 times;
# detection p50/p99 for active probing, edge intervals, ALS ejection and
# Envoy's own outlier detection, and false ejections under 1 % client errors.
# Prints the Markdown table of BENCHMARKS.md ("Detection (issue 21)"). Builds
# the debug binaries (detection is latency, not CPU); needs .venv
# (scripts/setup-python.sh) and tests/interop/node/node_modules (setup-interop.sh).
#   scripts/bench-detection.sh [--smoke] [--backends N --kills N --rate R --false-secs S]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --bins
exec .venv/bin/python benches/detection/bench_detection.py "$@"
