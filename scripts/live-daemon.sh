# Sourced by the client checks: starts the sample MCP backends and mcp-healthd (with
# examples/demo.yaml moved to free ports, metrics on, JSON logs) and stops them on exit.
#   source scripts/live-daemon.sh; live_start
# Sets LIVE_DIR (logs, config), LIVE_BASE (backends on LIVE_BASE..LIVE_BASE+3, +3 closed),
# LIVE_ADDR (host:port of gRPC), LIVE_METRICS (host:port of /metrics), LIVE_PY, LIVE_CTL.

live_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LIVE_PY="$live_repo/.venv/bin/python"
LIVE_CTL="$live_repo/target/debug/mcp-healthctl"
live_pids=()

live_say() { printf '[live] %s\n' "$*" >&2; }

live_stop() {
  local pid
  for pid in "${live_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  live_pids=()
}

# Free ports: four consecutive ones for the backends, one for gRPC, one for metrics.
live_ports() {
  "$LIVE_PY" - <<'PY'
import random, socket
def free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port)); return True
        except OSError:
            return False
for _ in range(200):
    base = random.randrange(20000, 60000)
    if all(free(base + i) for i in range(6)):
        print(base, base + 4, base + 5); break
else:
    raise SystemExit("no free ports")
PY
}

# Waits until FILE contains PATTERN (grep -E), for at most SECONDS.
live_wait_for() {
  local file="$1" pattern="$2" seconds="${3:-30}" i
  for ((i = 0; i < seconds * 10; i++)); do
    grep -Eq "$pattern" "$file" 2>/dev/null && return 0
    sleep 0.1
  done
  live_say "timed out after ${seconds}s waiting for /$pattern/ in $file:"
  tail -n 20 "$file" >&2 || true
  return 1
}

live_start() {
  [[ -x "$LIVE_PY" ]] || { live_say "error: $LIVE_PY missing; run scripts/setup-python.sh"; return 1; }
  live_say "building mcp-healthd, mcp-healthctl, mcp-sample-backends"
  (cd "$live_repo" && cargo build --quiet --workspace --bins)
  LIVE_DIR="$(mktemp -d)"
  read -r LIVE_BASE grpc_port metrics_port < <(live_ports)
  LIVE_ADDR="127.0.0.1:$grpc_port"
  LIVE_METRICS="127.0.0.1:$metrics_port"
  trap live_stop EXIT

  "$live_repo/target/debug/mcp-sample-backends" --base-port "$LIVE_BASE" >"$LIVE_DIR/backends.log" 2>&1 &
  live_pids+=($!)
  live_wait_for "$LIVE_DIR/backends.log" "Ctrl-C to stop" 30
  # examples/demo.yaml with its fixed ports 18081..18084 moved to LIVE_BASE..LIVE_BASE+3.
  sed -e "s/:18081/:$LIVE_BASE/; s/:18082/:$((LIVE_BASE + 1))/; s/:18083/:$((LIVE_BASE + 2))/; s/:18084/:$((LIVE_BASE + 3))/" \
    -e "s/:18081\//:$LIVE_BASE\//g; s/:18082\//:$((LIVE_BASE + 1))\//g; s/:18083\//:$((LIVE_BASE + 2))\//g; s/:18084\//:$((LIVE_BASE + 3))\//g" \
    "$live_repo/examples/demo.yaml" >"$LIVE_DIR/demo.yaml"
  "$live_repo/target/debug/mcp-healthd" --config "$LIVE_DIR/demo.yaml" --listen "$LIVE_ADDR" \
    --metrics-listen "$LIVE_METRICS" --log-format json 2>"$LIVE_DIR/daemon.log" &
  live_pids+=($!)
  live_wait_for "$LIVE_DIR/daemon.log" "every group has its first verdict" 60
  live_say "mcp-healthd on $LIVE_ADDR (metrics $LIVE_METRICS), backends from port $LIVE_BASE; logs in $LIVE_DIR"
}
