#!/usr/bin/env bash
# The whole test suite: Rust unit and integration tests (including the MCP
# Python SDK interop suite, tests/interop.rs), the Python client tests, the
# outside-client checks (grpcio-health-checking, grpcurl, Envoy) against the real
# binary, the OTLP export of the `otel` feature, the client/recipe checks,
# and a smoke run of the benchmark harness.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
step() { printf '\n==> %s\n' "$*"; }

step "python environment (.venv: MCP SDK, grpcio, grpcurl)"
bash scripts/setup-python.sh

step "system tools (prometheus, promtool)"
bash scripts/setup-tools.sh

step "build (no system protoc needed)"
cargo build --workspace --all-targets

step "rust tests"
cargo test --workspace

step "OpenTelemetry export (feature otel) to a fake OTLP collector"
cargo test --features otel --test otel_export

step "python client and interop-server tests"
.venv/bin/python -m pytest -q clients/python/tests tests/interop

step "outside clients against the real daemon (grpcio health client, grpcurl, Envoy)"
.venv/bin/python -m pytest -q tests/outside

step "clients against a live daemon: CLI, Python examples, grpcurl recipes, manifests, metrics"
bash scripts/check-clients.sh

step "benchmark harness smoke run (checks the harness works, not timings)"
bash scripts/bench-smoke.sh
step "all tests passed"
