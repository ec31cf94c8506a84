#!/usr/bin/env bash
# The xDS benchmark (benches/xds/bench_xds.py): 1,000 groups x 10 backends, a
# real Envoy and 100 xDS clients; prints the Markdown table of BENCHMARKS.md
# ("xDS"). Builds the release binaries first; needs .venv (scripts/setup-python.sh).
#   scripts/bench-xds.sh [--groups N --backends N --clients N --changes N]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bins -p mcp-health -p mcp-fixture
exec .venv/bin/python benches/xds/bench_xds.py "$@"
