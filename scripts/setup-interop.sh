#!/usr/bin/env bash
# Installs what the interop matrix (tests/it/interop_matrix.rs) runs besides .venv
# (idempotent; quick when nothing changed):
#   - Node.js and npm (Debian's packages, only when `node` is missing);
#   - tests/interop/node/node_modules from the committed package-lock.json (`npm ci`):
#     @modelcontextprotocol/sdk 1.x, the SDK 2.x (@modelcontextprotocol/server and
#     @modelcontextprotocol/node), @modelcontextprotocol/server-everything,
#     supergateway, express;
#   - tests/interop/conformance/node_modules (`npm ci`): @modelcontextprotocol/conformance
#     and Node.js 22 (the npm package `node`), for tests/it/conformance.rs;
#   - .venv-mcp1: the Python SDK 1.x line and mcp-proxy, pinned in
#     tests/interop/requirements-mcp1.txt (its own venv: .venv has mcp 2.x);
#   - crates/interop-rmcp (the rmcp server), built with `cargo build -p interop-rmcp`.
# Usage: scripts/setup-interop.sh [--force]
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
node_dir="$repo/tests/interop/node"
venv="$repo/.venv-mcp1"
req="$repo/tests/interop/requirements-mcp1.txt"
python="${PYTHON:-python3}"
force=0
[[ "${1:-}" == "--force" ]] && force=1
say() { printf '[setup-interop] %s\n' "$*"; }
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  say "installing nodejs and npm (Debian packages)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi

stamp="$node_dir/node_modules/.mcphealth-stamp"
want="$( { node --version; sha256sum "$node_dir/package-lock.json"; } | sha256sum | cut -d' ' -f1)"
if [[ $force -eq 0 && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  say "npm packages up to date"
else
  say "npm ci in tests/interop/node"
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" > "$stamp"
fi

# The MCP conformance suite and the Node.js 22 it needs (fs.globSync), as the npm package
# `node` inside its own node_modules: nothing changes the system's node.
conf_dir="$repo/tests/interop/conformance"
cstamp="$conf_dir/node_modules/.mcphealth-stamp"
cwant="$(sha256sum "$conf_dir/package-lock.json" | cut -d' ' -f1)"
if [[ $force -eq 0 && -f "$cstamp" && "$(cat "$cstamp")" == "$cwant" && -x "$conf_dir/node_modules/.bin/node" ]]; then
  say "conformance suite up to date"
else
  say "npm ci in tests/interop/conformance (@modelcontextprotocol/conformance, node 22)"
  (cd "$conf_dir" && npm ci --no-audit --no-fund --loglevel=error)
  "$conf_dir/node_modules/.bin/node" -e 'if (typeof require("fs").globSync !== "function") process.exit(1)' \
    || { say "error: the conformance suite's node has no fs.globSync"; exit 1; }
  echo "$cwant" > "$cstamp"
fi

vstamp="$venv/.mcphealth-stamp"
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
  say "creating $venv with $("$python" --version 2>&1)"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  force=1
fi
vwant="$( { "$venv/bin/python" -c 'import sys; print(sys.version)'; cat "$req"; } | sha256sum | cut -d' ' -f1)"
if [[ $force -eq 0 && -f "$vstamp" && "$(cat "$vstamp")" == "$vwant" ]]; then
  say ".venv-mcp1 up to date"
else
  say "installing tests/interop/requirements-mcp1.txt into .venv-mcp1"
  "$venv/bin/python" -m pip install --quiet --requirement "$req"
  "$venv/bin/python" -m pip check >/dev/null || { "$venv/bin/python" -m pip check; exit 1; }
  echo "$vwant" > "$vstamp"
fi

say "building crates/interop-rmcp"
(cd "$repo" && cargo build --quiet -p interop-rmcp)

say "node $(node --version), npm $(npm --version); $("$venv/bin/python" -m pip list 2>/dev/null | grep -E '^(mcp|mcp-proxy) ' | tr -s ' ' '=' | paste -sd' ')"
say "done"
