#!/usr/bin/env bash
# The whole test suite: Rust unit and integration tests (including the MCP
# Python SDK interop suite, tests/it/interop.rs, and the interop matrix over the
# TypeScript, Python and Rust SDKs and stdio bridges, tests/it/interop_matrix.rs),
# the Python client tests, the
# outside-client checks (grpcio-health-checking, grpcurl, Envoy) against the real
# binary, the status page in a real browser, the OTLP export of the `otel` feature, the client/recipe checks,
# a fixed seed of the fault-schedule harness (crates/fault-schedule), a smoke run of every fuzz
# target (scripts/fuzz-smoke.sh) and of the benchmark harness.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# Each step's heading also gives the free disk space, so that a run that
# fills the disk shows where.
step() { printf '\n==> %s [free: %s]\n' "$*" "$(df -h --output=avail . | tail -1 | tr -d ' ')"; }

# A run from a fresh clone writes about 12 GB (target/, fuzz/target, the
# installs; BENCHMARKS.md, "Fresh-clone CI runs"). With less free it would fail
# late, in whichever step fills the disk, so say so at the start.
need_gb=15
free_gb=$(df -BG --output=avail . | tail -1 | tr -dc '0-9')
if [ "$free_gb" -lt "$need_gb" ]; then
  echo "warning: ${free_gb} GB free here; a run from a fresh clone needs about ${need_gb} GB (target/, fuzz/target, the installs)" >&2
fi

step "system packages (dnsmasq: the DNS server of the DNS tests and benchmarks)"
bash scripts/setup-system.sh

step "python environment (.venv: MCP SDK, grpcio, grpcurl)"
bash scripts/setup-python.sh

step "interop matrix environment (npm: TypeScript SDK servers and bridges; .venv-mcp1: Python SDK 1.x, mcp-proxy; rmcp)"
bash scripts/setup-interop.sh
step "etcd for the cluster tests (Debian etcd-server; the tests start their own nodes)"
bash scripts/setup-etcd.sh
step "system tools (prometheus, promtool)"
bash scripts/setup-tools.sh

step "build (no system protoc needed)"
cargo build --workspace --all-targets

step "the previous release's mcp-healthd (tests/it/cluster_versions.rs: an old and a new replica side by side)"
bash scripts/build-previous.sh

step "rust tests (tests/it/probe_cost.rs runs dnsmasq and TLS fronts on loopback)"
cargo test --workspace

step "fault schedule: seed 20, 16 faults of all 9 kinds, safety invariants only (RELIABILITY.md; root: network namespaces)"
# About 70 s here; past 3 minutes the run fails (timeout exits 124).
timeout --kill-after=30 180 target/debug/fault-schedule --seed 20 --faults 16 --safety-only

step "OpenTelemetry export (feature otel) to a fake OTLP collector"
cargo test --features otel --test otel_export

step "python client and interop-server tests"
.venv/bin/python -m pytest -q clients/python/tests tests/interop

step "outside clients against the real daemon (grpcio health client, grpcurl, Envoy)"
.venv/bin/python -m pytest -q tests/outside

step "clients against a live daemon: CLI, Python examples, grpcurl recipes, manifests, metrics"
bash scripts/check-clients.sh

step "the status page in a real browser (Debian chromium, playwright-core)"
bash scripts/test-browser.sh

step "fuzz smoke: every parser of untrusted input, each cargo-fuzz target for 10 s (RELIABILITY.md)"
bash scripts/fuzz-smoke.sh

step "benchmark harness smoke run (checks the harness works, not timings)"
bash scripts/bench-smoke.sh
step "all tests passed"
