#!/usr/bin/env bash
# The whole test suite: Rust unit and integration tests (including the MCP
# Python SDK interop suite), the Python client tests, and the outside-client
# checks (grpcio-health-checking, grpcurl) against the real binary.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
step() { printf '\n==> %s\n' "$*"; }

step "python environment (.venv: MCP SDK, grpcio, grpcurl)"
bash scripts/setup-python.sh

step "build (no system protoc needed)"
cargo build --workspace --all-targets

step "rust tests"
cargo test --workspace

step "python client and interop-server tests"
.venv/bin/python -m pytest -q clients/python/tests tests/interop

step "outside clients against the real daemon (grpcio health client, grpcurl)"
.venv/bin/python -m pytest -q tests/outside

for extra in scripts/check-clients.sh scripts/bench-smoke.sh; do
  if [[ -f "$extra" ]]; then
    step "$extra"
    bash "$extra"
  fi
done
step "all tests passed"
