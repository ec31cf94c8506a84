#!/usr/bin/env bash
# Exercises every client against a live mcp-healthd (issue 5), for .ci/run:
#   1. parses the Kubernetes manifests and the Envoy config (scripts/check_manifests.py);
#   2. starts sample backends + mcp-healthd (examples/demo.yaml, metrics on, JSON logs);
#   3. checks the start-up logs are JSON lines with the load and first-verdict progress;
#   4. mcp-healthctl smoke run (the full CLI suite is tests/it/cli_commands.rs) and a dry-run
#      apply of the ConfigMap's groups;
#   5. the Python examples (list_health, wait_serving, watch_transitions);
#   6. the grpcurl recipes of clients/grpcurl.md;
#   7. a forced transition (the sample backends stop): watch_transitions prints it and the
#      metrics move (backend status, group phase, transitions counter).
# Needs .venv (scripts/setup-python.sh). Exit 0 only if everything passed.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
source scripts/live-daemon.sh
py="$LIVE_PY"
examples="clients/python/examples"
fail() { echo "check-clients: FAIL: $*" >&2; exit 1; }
step() { printf '\n== %s\n' "$*"; }
# Runs a command, shows its output, checks its exit code and that each pattern (grep -E) appears.
expect() {
  local want="$1" out rc=0; shift
  local -a patterns=()
  while [[ "$1" != "--" ]]; do patterns+=("$1"); shift; done; shift
  out="$("$@" 2>&1)" || rc=$?
  printf '%s\n' "$out" | sed 's/^/  | /'
  [[ $rc -eq $want ]] || fail "exit $rc, want $want: $*"
  local p
  for p in "${patterns[@]}"; do
    grep -Eq -- "$p" <<<"$out" || fail "output lacks /$p/: $*"
  done
}
metric() { # metric SERIES -> value (empty when absent)
  "$py" -c 'import sys, urllib.request
text = urllib.request.urlopen(f"http://{sys.argv[1]}/metrics", timeout=5).read().decode()
print(next((l.rsplit(" ", 1)[1] for l in text.splitlines() if l.startswith(sys.argv[2] + " ")), ""))' "$LIVE_METRICS" "$1"
}

step "manifests (clients/kubernetes, clients/envoy)"
[[ -x "$py" ]] || fail "$py missing; run scripts/setup-python.sh"
cm_groups="$(mktemp)"
"$py" scripts/check_manifests.py clients "$cm_groups"
# Envoy's own API schema, field by field (Envoy itself validates and runs the file in
# tests/outside/test_envoy.py).
"$py" scripts/check_envoy_config.py clients/envoy/envoy.yaml

step "live daemon"
live_start

step "JSON logs and start-up progress"
"$py" - "$LIVE_DIR/daemon.log" <<'PY'
import json, sys
lines = [l for l in open(sys.argv[1]) if l.strip()]
events = [json.loads(l) for l in lines]  # every line is one JSON object
loaded = [e for e in events if e.get("message") == "config loaded"]
assert loaded and loaded[0]["groups"] == 3 and loaded[0]["backends"] == 5, loaded
first = [e for e in events if e.get("message") == "every group has its first verdict"]
assert first and first[0]["groups"] == 3 and first[0]["backends"] == 5 and "elapsed_ms" in first[0], first
assert all({"timestamp", "level"} <= e.keys() for e in events)
print(f"  {len(events)} JSON log lines; config loaded (3 groups, 5 backends); first verdicts after {first[0]['elapsed_ms']} ms")
PY

step "mcp-healthctl"
export MCP_HEALTH_SERVER="$LIVE_ADDR"
expect 0 '^demo +READY +2/2' '^broken +FAILED +0/2' -- "$LIVE_CTL" groups
expect 0 '"phase": "GROUP_PHASE_READY"' -- "$LIVE_CTL" get demo -o json
expect 0 'status: SERVING' -- "$LIVE_CTL" check demo
expect 4 'status: NOT_SERVING' -- "$LIVE_CTL" check broken -o yaml
expect 3 'NOT_FOUND' -- "$LIVE_CTL" check no-such-group
expect 0 'group tools is valid' 'group github is valid' -- "$LIVE_CTL" apply --dry-run -f "$cm_groups"

step "Python examples"
expect 0 'demo phase=READY total=2 routable=2' 'broken phase=FAILED' 'grpc.health.v1 List' -- \
  "$py" "$examples/list_health.py" --target "$LIVE_ADDR"
expect 0 'group=demo SERVING' -- "$py" "$examples/wait_serving.py" demo --target "$LIVE_ADDR" --timeout 10
expect 1 'timeout:' 'backend=down UNHEALTHY' -- "$py" "$examples/wait_serving.py" broken --target "$LIVE_ADDR" --timeout 1
expect 0 'group=demo phase READY \(initial' 'group=demo backend=healthy HEALTHY \(initial' -- \
  "$py" "$examples/watch_transitions.py" demo --target "$LIVE_ADDR" --count 3

step "grpcurl recipes"
LIVE_ADDR="$LIVE_ADDR" LIVE_BASE="$LIVE_BASE" bash scripts/check-grpcurl-recipes.sh

step "forced transition: the sample backends stop"
# A failing HEALTHY backend goes DEGRADED first, then UNHEALTHY at the unhealthy threshold.
to_degraded='mcp_health_backend_transitions_total{from="healthy",to="degraded"}'
to_unhealthy='mcp_health_backend_transitions_total{from="degraded",to="unhealthy"}'
before_degraded="$(metric "$to_degraded")"
before_unhealthy="$(metric "$to_unhealthy")"
[[ "$(metric 'mcp_health_backend_status{group="demo",backend="healthy",status="healthy"}')" == 1 ]] || fail "demo/healthy is not healthy in /metrics"
[[ "$(metric 'mcp_health_group_phase{group="demo",phase="ready"}')" == 1 ]] || fail "demo is not ready in /metrics"
watch_out="$LIVE_DIR/watch.txt"
"$py" "$examples/watch_transitions.py" demo --target "$LIVE_ADDR" --no-initial >"$watch_out" 2>&1 &
watcher=$!
live_pids+=("$watcher")
sleep 1  # let the watcher take its snapshot; a transition before it would be "initial"
kill "${live_pids[0]}"  # mcp-sample-backends
live_wait_for "$watch_out" 'group=demo backend=healthy HEALTHY -> DEGRADED \(connection refused\)' 60 || fail "no transition printed"
live_wait_for "$watch_out" 'group=demo backend=healthy DEGRADED -> UNHEALTHY' 60 || fail "no transition printed"
live_wait_for "$watch_out" 'group=demo phase DEGRADED -> FAILED' 10 || fail "no phase change printed"
sed 's/^/  | /' "$watch_out"
after_degraded="$(metric "$to_degraded")"
after_unhealthy="$(metric "$to_unhealthy")"
[[ "${after_degraded:-0}" -ge $(( ${before_degraded:-0} + 1 )) ]] || fail "healthy->degraded transitions did not grow ($before_degraded -> $after_degraded)"
[[ "${after_unhealthy:-0}" -ge $(( ${before_unhealthy:-0} + 2 )) ]] || fail "degraded->unhealthy transitions did not grow by 2 ($before_unhealthy -> $after_unhealthy)"
[[ "$(metric 'mcp_health_backend_status{group="demo",backend="healthy",status="unhealthy"}')" == 1 ]] || fail "demo/healthy not unhealthy in /metrics"
[[ "$(metric 'mcp_health_backend_status{group="demo",backend="healthy",status="healthy"}')" == 0 ]] || fail "demo/healthy still healthy in /metrics"
[[ "$(metric 'mcp_health_group_phase{group="demo",phase="ready"}')" == 0 ]] || fail "demo still ready in /metrics"
[[ "$(metric 'mcp_health_group_phase{group="demo",phase="failed"}')" == 1 ]] || fail "demo not failed in /metrics"
[[ "$(metric 'mcp_health_group_routable_backends{group="demo"}')" == 0 ]] || fail "demo still has routable backends in /metrics"
echo "  metrics: healthy->degraded ${before_degraded:-0} -> $after_degraded, degraded->unhealthy ${before_unhealthy:-0} -> $after_unhealthy; demo/healthy unhealthy=1; demo failed=1, routable=0"

printf '\ncheck-clients: all client checks passed\n'
