#!/usr/bin/env bash
# The interop suites: the prober against the official MCP Python SDK's servers
# (tests/it/interop.rs, tests/interop/mcp_servers.py) and the interop matrix over
# the TypeScript, Python and Rust SDKs and the stdio bridges
# (tests/it/interop_matrix.rs). Makes sure .venv, .venv-mcp1, the npm packages and
# interop-rmcp exist, then runs both, printing the verdicts seen.
# Usage: scripts/interop.sh [extra cargo test args]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/scripts/setup-python.sh"
bash "$repo/scripts/setup-interop.sh"
cd "$repo"
exec cargo test --test it "$@" -- interop:: interop_matrix:: --nocapture --test-threads=1
