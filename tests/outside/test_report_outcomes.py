"""ReportOutcomes as a gateway would send it: the Python client (clients/python) and
its sample against the real mcp-healthd binary probing real fixture MCP servers on
loopback. Failures eject a backend (not routable, its verdict kept), 4xx reports keep
it in, unknown backends are counted, and it returns once its ejection time is over and
a probe passes.

Run by scripts/test.sh after `cargo build`; needs .venv.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support import ROOT, TARGET, free_port, free_port_run, wait_for

sys.path.insert(0, str(ROOT / "clients" / "python" / "src"))
from mcphealth_client import connect, outcome_report, status_name  # noqa: E402
from mcphealth_client.pb import service_pb2  # noqa: E402

EXAMPLE = ROOT / "clients" / "python" / "examples" / "report_outcomes.py"
SERVING = health_pb2.HealthCheckResponse.SERVING


@pytest.fixture(scope="module")
def daemon():
    base = free_port_run(4)
    backends = subprocess.Popen(
        [str(TARGET / "mcp-sample-backends"), "--base-port", str(base)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    listen = f"127.0.0.1:{free_port()}"
    work = Path(tempfile.mkdtemp())
    token = work / "admin-token"
    token.write_text("s3cret-admin-token\n")
    config = work / "groups.yaml"
    # Two routable backends (a healthy one, a per-user one answering 401); 3 failures in a row eject one for 2 s, at most half the group.
    config.write_text(
        textwrap.dedent(
            f"""
            groups:
              - name: tools
                policy:
                  interval: 1s
                  timeout: 0.5s
                  outlier: {{consecutiveFailures: 3, baseEjectionTime: 2s, maxEjectedPercent: 50}}
                backends:
                  - name: a
                    url: http://127.0.0.1:{base}/mcp
                  - name: b
                    url: http://127.0.0.1:{base + 1}/mcp
                    auth: {{mode: AUTH_MODE_PER_USER}}
            """
        )
    )
    proc = subprocess.Popen(
        [str(TARGET / "mcp-healthd"), "--config", str(config), "--listen", listen, "--admin-token-file", str(token)],
        stderr=subprocess.DEVNULL,
    )
    channel = grpc.insecure_channel(listen)
    health = health_pb2_grpc.HealthStub(channel)
    wait_for("group tools SERVING", lambda: health.Check(health_pb2.HealthCheckRequest(service="tools"), timeout=2).status == SERVING)
    yield listen, "s3cret-admin-token", health, token
    channel.close()
    proc.terminate()
    proc.wait(timeout=10)
    backends.terminate()
    backends.wait(timeout=10)


def backend(client, name):
    return next(b for b in client.get_group("tools").backends if b.name == name)


def test_reports_need_the_admin_token(daemon):
    listen, _, _, _ = daemon
    with connect(listen) as c, pytest.raises(grpc.RpcError) as err:
        c.report_outcomes([outcome_report("tools", "a", "timeout")])
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_python_client_reports_eject_and_the_backend_returns(daemon):
    listen, token, health, _ = daemon
    with connect(listen, admin_token=token) as c:
        # 4xx and tool errors are the server answering: they keep it in.
        keep = [outcome_report("tools", "a", "http_status", http_status=404)] * 5 + [outcome_report("tools", "a", "tool_error")] * 5
        resp = c.report_outcomes(keep)
        assert (resp.accepted, resp.unknown_backend, resp.invalid, list(resp.ejected)) == (10, 0, 0, [])
        assert not backend(c, "a").HasField("ejection") and backend(c, "a").routable

        # Unknown names and invalid reports are counted, the stream goes on.
        fail = [
            outcome_report("tools", "nope", "timeout"),
            outcome_report("other", "a", "timeout"),
            outcome_report("tools", "a", "http_status", http_status=700),
            outcome_report("tools", "a", "http_status", http_status=503, latency_s=0.2),
            outcome_report("tools", "a", "json_rpc_error", json_rpc_code=-32603, method="tools/call"),
            outcome_report("tools", "a", "connect_failure"),
        ]
        resp = c.report_outcomes(fail)
        assert (resp.accepted, resp.unknown_backend, resp.invalid, list(resp.ejected)) == (3, 2, 1, ["tools/a"])

        a = backend(c, "a")
        # Ejected beside its verdict: the handshake works, so it stays HEALTHY, not routable.
        assert a.HasField("ejection") and not a.routable, a
        assert status_name(a.status) == "HEALTHY"
        assert a.ejection.count == 1 and "3 consecutive failures" in a.ejection.cause and "connect failure" in a.ejection.cause
        group = c.get_group("tools")
        assert group.summary.ejected == 1 and group.summary.routable == 1
        # b still routes: the group is DEGRADED, still serving.
        assert health.Check(health_pb2.HealthCheckRequest(service="tools"), timeout=2).status == SERVING

        # The cap (50 % of 2): b is not ejected while a is.
        resp = c.report_outcomes([outcome_report("tools", "b", "timeout")] * 3)
        assert list(resp.ejected) == [] and backend(c, "b").routable

        # Its time is over after 2 s; the next probe passes and it returns.
        wait_for("a returns", lambda: backend(c, "a").routable and not backend(c, "a").HasField("ejection"), timeout=20)
        history = c.groups.GetBackendHistory(service_pb2.GetBackendHistoryRequest(group="tools", backend="a"), timeout=5)
        assert [e.ejected for e in history.ejections] == [True, False]


def test_the_sample_reports_and_names_the_ejected_backend(daemon):
    listen, _, _, token_file = daemon
    # b's earlier run of 3 timeouts (capped then) has ended: a good report resets it.
    with connect(listen, admin_token="s3cret-admin-token") as c:
        c.report_outcomes([outcome_report("tools", "b", "ok")])
        wait_for("nobody ejected", lambda: c.get_group("tools").summary.ejected == 0, timeout=20)
    r = subprocess.run(
        [sys.executable, str(EXAMPLE), "tools", "b", "http_status", "--http-status", "502", "--count", "3",
         "--target", listen, "--admin-token-file", str(token_file)],
        capture_output=True, text=True, timeout=30,
        # This checkout's client, not one installed from another.
        env={**os.environ, "PYTHONPATH": str(ROOT / "clients" / "python" / "src")},
    )
    assert r.returncode == 0, r.stderr
    assert "accepted=3 unknown_backend=0 invalid=0 not_owned=0" in r.stdout and "ejected tools/b" in r.stdout, r.stdout
