#!/usr/bin/env bash
# The status page in a real browser (tests/browser, node's test runner with
# playwright-core driving Debian's chromium) against the real mcp-healthd and
# fixture MCP servers. Screenshots are kept in the test's temp dir (paths printed).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/scripts/setup-browser.sh"
(cd "$repo" && cargo build --quiet --workspace --bins)
cd "$repo/tests/browser"
exec node --test
