#!/usr/bin/env bash
# Runs the full scale benchmark (release profile) and prints the Markdown
# table of BENCHMARKS.md. Takes about 20 minutes on 2 cores. Scenarios 7 and 8
# run dnsmasq (scripts/setup-system.sh installs it).
#   BENCH_ONLY=1,3    run some scenarios only (1 scale, 2 ceiling, 3 head-of-line,
#                     4 verdict, 5 watch fan-out, 6 Check throughput, 7 history
#                     memory, 8 probe cost: https, resumption, names; 9 start-up spread)
#   BENCH_REPEATS=N   repeats per figure (default 3; every figure is their median)
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo bench --bench scale -- "$@"
