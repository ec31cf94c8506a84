#!/usr/bin/env bash
# Starts sample MCP backends (healthy, per-user OAuth, slow; one port left closed)
# and mcp-healthd probing them with examples/demo.yaml, with its status page on
# MCP_HEALTH_UI_LISTEN (127.0.0.1:8080). Ctrl-C stops both.
# Within seconds the log shows group demo READY (with one per-user backend
# UNAUTHENTICATED but routable), oauth-only READY, and broken FAILED.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --quiet --bin mcp-healthd -p mcp-health -p mcp-fixture --bin mcp-sample-backends
target/debug/mcp-sample-backends --base-port 18081 &
backends=$!
trap 'kill $backends 2>/dev/null || true' EXIT
listen="${MCP_HEALTH_LISTEN:-127.0.0.1:50051}"
ui="${MCP_HEALTH_UI_LISTEN:-127.0.0.1:8080}"
exec_args=(--config examples/demo.yaml --listen "$listen" --ui-listen "$ui" "$@")
echo "[demo] status page: http://$ui/" >&2
echo "[demo] try: grpcurl -plaintext -d '{\"group\":\"demo\"}' $listen mcphealth.v1.GroupHealthService/GetGroupHealth" >&2
target/debug/mcp-healthd "${exec_args[@]}"
