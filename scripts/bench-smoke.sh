#!/usr/bin/env bash
# Runs every scenario of the scale benchmark at tiny sizes (well under a
# minute once built) and fails only if the harness itself is broken: a
# scenario that measured nothing, probes that failed against healthy
# backends, watch changes that never arrived, an xDS change that never reached
# Envoy. Timings are not checked.
set -euo pipefail
cd "$(dirname "$0")/.."
# The dev profile: it shares the test build, and timings do not matter here.
BENCH_SMOKE=1 cargo test --bench scale -- --smoke "$@"
# The xDS benchmark at tiny sizes (debug build, a real Envoy): checks its harness.
.venv/bin/python benches/xds/bench_xds.py --smoke
# The cluster benchmark (etcd + 3 daemons): tiny sizes, same rule.
cargo test --bench cluster -- --smoke
