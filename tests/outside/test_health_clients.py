"""grpc.health.v1 and reflection as outside tools see them: Python's official
grpcio-health-checking client and the grpcurl binary, against the real
mcp-healthd binary probing real fixture MCP servers on loopback.

Run by .ci/run (via scripts/test.sh) after `cargo build`; needs .venv.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support import TARGET, VENV_BIN, free_port, free_port_run, wait_for

GRPCURL = VENV_BIN / "grpcurl"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


@pytest.fixture(scope="module")
def daemon():
    base = free_port_run(4)
    backends = subprocess.Popen([str(TARGET / "mcp-sample-backends"), "--base-port", str(base)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    listen = f"127.0.0.1:{free_port()}"
    config = Path(tempfile.mkdtemp()) / "groups.yaml"
    config.write_text(
        textwrap.dedent(
            f"""
            groups:
              - name: ready
                policy: {{interval: 0.5s, timeout: 0.4s}}
                backends:
                  - name: api
                    url: http://127.0.0.1:{base}/mcp
                  - name: github
                    url: http://127.0.0.1:{base + 1}/mcp
                    auth: {{mode: AUTH_MODE_PER_USER}}
              - name: failed
                policy: {{interval: 0.5s, timeout: 0.4s, unhealthyThreshold: 1}}
                backends:
                  - name: down
                    url: http://127.0.0.1:{base + 3}/mcp
            """
        )
    )
    proc = subprocess.Popen([str(TARGET / "mcp-healthd"), "--config", str(config), "--listen", listen], stderr=subprocess.PIPE, text=True)
    channel = grpc.insecure_channel(listen)
    stub = health_pb2_grpc.HealthStub(channel)
    wait_for("group ready SERVING", lambda: stub.Check(health_pb2.HealthCheckRequest(service="ready"), timeout=2).status == SERVING)
    yield listen, stub, proc
    channel.close()
    proc.terminate()
    _, err = proc.communicate(timeout=20)
    backends.terminate()
    backends.wait(timeout=10)
    assert proc.returncode == 0, f"mcp-healthd exit {proc.returncode}: {err[-2000:]}"


def test_check(daemon):
    _, stub, _ = daemon
    check = lambda svc: stub.Check(health_pb2.HealthCheckRequest(service=svc), timeout=5).status  # noqa: E731
    assert check("") == SERVING
    assert check("mcphealth.v1.GroupHealthService") == SERVING
    assert check("ready") == SERVING
    assert wait_for("failed NOT_SERVING", lambda: check("failed") == NOT_SERVING)
    with pytest.raises(grpc.RpcError) as e:
        check("no-such-group")
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_list(daemon):
    _, stub, _ = daemon
    resp = stub.List(health_pb2.HealthListRequest(), timeout=5)
    got = {name: r.status for name, r in resp.statuses.items()}
    assert got == {"": SERVING, "mcphealth.v1.GroupHealthService": SERVING, "ready": SERVING, "failed": NOT_SERVING}


def test_watch_of_an_unknown_service_stays_open_and_updates_when_it_appears(daemon):
    listen, stub, _ = daemon
    stream = stub.Watch(health_pb2.HealthCheckRequest(service="later"), timeout=30)
    assert next(stream).status == SERVICE_UNKNOWN
    # The stream is still open: create the group through the API with grpcurl.
    spec = {"spec": {"name": "later", "policy": {"interval": "0.5s", "timeout": "0.4s"}, "backends": []}}
    out = subprocess.run([str(GRPCURL), "-plaintext", "-d", json.dumps(spec), listen, "mcphealth.v1.GroupHealthService/ApplyGroup"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    # A group with no backends is FAILED: NOT_SERVING.
    assert next(stream).status == NOT_SERVING
    stream.cancel()


def test_grpcurl_reflection_and_health(daemon):
    listen, _, _ = daemon
    run = lambda *args: subprocess.run([str(GRPCURL), "-plaintext", *args], capture_output=True, text=True, timeout=30)  # noqa: E731
    listed = run(listen, "list")
    assert listed.returncode == 0, listed.stderr
    assert {"grpc.health.v1.Health", "mcphealth.v1.GroupHealthService"} <= set(listed.stdout.split())
    described = run(listen, "describe", "mcphealth.v1.GroupHealthService")
    assert "rpc WatchGroupHealth" in described.stdout
    check = run("-d", '{"service":"ready"}', listen, "grpc.health.v1.Health/Check")
    assert json.loads(check.stdout) == {"status": "SERVING"}
    health = run("-d", '{"group":"ready"}', listen, "mcphealth.v1.GroupHealthService/GetGroupHealth")
    assert health.returncode == 0, health.stderr
    group = json.loads(health.stdout)["health"]
    assert group["phase"] == "GROUP_PHASE_READY"
    statuses = {b["name"]: b["status"] for b in group["backends"]}
    assert statuses == {"api": "BACKEND_STATUS_HEALTHY", "github": "BACKEND_STATUS_UNAUTHENTICATED"}
    assert group["message"] == "all 2 backends routable; 1 backend requires authentication"


def test_sigterm_serves_not_serving_then_exits_zero():
    base_listen = f"127.0.0.1:{free_port()}"
    proc = subprocess.Popen([str(TARGET / "mcp-healthd"), "--listen", base_listen], stderr=subprocess.PIPE, text=True)
    channel = grpc.insecure_channel(base_listen)
    stub = health_pb2_grpc.HealthStub(channel)
    wait_for("daemon up", lambda: stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2).status == SERVING)
    stream = stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=30)
    assert next(stream).status == SERVING
    proc.terminate()
    assert next(stream).status == NOT_SERVING
    # Then the stream ends cleanly and the process exits 0.
    assert list(stream) == []
    assert proc.wait(timeout=20) == 0
    channel.close()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
