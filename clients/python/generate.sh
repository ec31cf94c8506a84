#!/usr/bin/env bash
# Regenerates the checked-in stubs under src/mcphealth_client/_gen from the repo's proto/.
# Usage: clients/python/generate.sh [OUTDIR]
# Uses the repo's .venv (scripts/setup-python.sh) when present, else python3 with grpcio-tools.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
py="${PYTHON:-}"
if [[ -z "$py" ]]; then
  if [[ -x "$repo/.venv/bin/python" ]]; then py="$repo/.venv/bin/python"; else py=python3; fi
fi
exec "$py" "$here/generate.py" "$@"
