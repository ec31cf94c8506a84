#!/usr/bin/env bash
# Runs every recipe of clients/grpcurl.md marked `<!-- check: exit=N expect="..." -->` against
# a live mcp-healthd, in order, with .venv/bin/grpcurl, and checks exit codes and output.
# Starts its own daemon and sample backends unless LIVE_ADDR and LIVE_BASE are set (as
# scripts/check-clients.sh does).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${LIVE_ADDR:-}" || -z "${LIVE_BASE:-}" ]]; then
  source "$repo/scripts/live-daemon.sh"
  live_start
fi
[[ -x "$repo/.venv/bin/grpcurl" ]] || { echo "error: .venv/bin/grpcurl missing; run scripts/setup-python.sh" >&2; exit 1; }
PATH="$repo/.venv/bin:$PATH" LIVE_ADDR="$LIVE_ADDR" LIVE_BASE="$LIVE_BASE" \
  "$repo/.venv/bin/python" "$repo/scripts/check_grpcurl_recipes.py" "$repo/clients/grpcurl.md"
