#!/usr/bin/env bash
# The interop suite: the prober against the official MCP Python SDK's servers
# (tests/interop/mcp_servers.py). Makes sure .venv exists, then runs
# `cargo test --test interop`, printing the verdicts seen.
# Usage: scripts/interop.sh [extra cargo test args]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/scripts/setup-python.sh"
cd "$repo"
exec cargo test --test interop "$@" -- --nocapture --test-threads=1
