#!/usr/bin/env bash
# The MCP client the official conformance suite runs (tests/it/conformance.rs): mcp-healthd
# itself. The suite appends the scenario's server URL ($1) and sets MCP_CONFORMANCE_SCENARIO
# and, for the auth scenarios, MCP_CONFORMANCE_CONTEXT (JSON: client_id, client_secret, or
# private_key_pem and signing_algorithm). This writes a one-backend config as an operator
# would (secrets in files, no tokenUrl: the probe discovers it), starts mcp-healthd, waits
# for the first verdict, and exits 0 only if the backend is HEALTHY and routable. The suite judges the
# requests it saw; the exit status says what mcp-healthd concluded.
# Binaries: $MCP_HEALTH_BIN_DIR, else target/debug of this repo. Needs `node` on PATH (the
# suite's own, from node_modules/.bin).
set -euo pipefail
url="${1:?usage: healthd-client.sh SERVER_URL}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
bin="${MCP_HEALTH_BIN_DIR:-$repo/target/debug}"
dir="$(mktemp -d)"
daemon=""
cleanup() {
  [[ -n "$daemon" ]] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT

# The context's fields into files (mode 600), and the auth block that names them.
auth="$(MCP_DIR="$dir" MCP_URL="$url" node --input-type=module -e '
import { writeFileSync } from "node:fs";
const ctx = JSON.parse(process.env.MCP_CONFORMANCE_CONTEXT || "{}");
const dir = process.env.MCP_DIR;
const file = (name, value) => { writeFileSync(`${dir}/${name}`, value, { mode: 0o600 }); return `${dir}/${name}`; };
if (!ctx.client_id) { console.log(""); process.exit(0); }
const o = { clientId: { file: file("client-id", ctx.client_id) } };
if (ctx.private_key_pem) {
  o.privateKeyJwt = { privateKey: { file: file("client-key.pem", ctx.private_key_pem) }, algorithm: ctx.signing_algorithm || "ES256" };
} else {
  o.clientSecret = { file: file("client-secret", ctx.client_secret) };
}
console.log(JSON.stringify({ mode: "AUTH_MODE_OAUTH2_CLIENT_CREDENTIALS", oauth2ClientCredentials: o }));
')"
port="$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
{
  echo "groups:"
  echo "  - name: conformance"
  echo "    policy: {interval: 30s, timeout: 10s}"
  echo "    backends:"
  echo "      - name: server"
  echo "        url: \"$url\""
  [[ -n "$auth" ]] && echo "        auth: $auth"
} >"$dir/config.yaml"

"$bin/mcp-healthd" --config "$dir/config.yaml" --listen "127.0.0.1:$port" 2>"$dir/daemon.log" &
daemon=$!
for ((i = 0; i < 300; i++)); do
  grep -q "every group has its first verdict" "$dir/daemon.log" && break
  kill -0 "$daemon" 2>/dev/null || break
  sleep 0.1
done
verdict="$("$bin/mcp-healthctl" --server "127.0.0.1:$port" get conformance 2>&1 || true)"
printf '%s\n' "$verdict"
grep -Eq "^server +HEALTHY +yes " <<<"$verdict" || { echo "mcp-healthd log:" >&2; cat "$dir/daemon.log" >&2; exit 1; }
