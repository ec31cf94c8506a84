"""The helper API and the examples, against an in-process fake daemon (tests/fake_server.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
# This checkout's client, also when the venv has another checkout's installed (a worktree).
SRC = Path(__file__).resolve().parent.parent / "src"
sys.path.insert(0, str(SRC))

import fake_server as fs  # noqa: E402

from mcphealth_client import SERVING, WaitTimeout, connect, phase_name  # noqa: E402
from mcphealth_client.pb import service_pb2, status_pb2  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
S = status_pb2


@pytest.fixture()
def daemon():
    server, state, target = fs.start()
    state.set_group(
        fs.group(
            "demo",
            S.GROUP_PHASE_READY,
            fs.backend("api", S.BACKEND_STATUS_HEALTHY),
            fs.backend("db", S.BACKEND_STATUS_HEALTHY),
        )
    )
    yield state, target
    state.close_watchers()
    server.stop(0)


def test_list_and_get(daemon):
    state, target = daemon
    with connect(target) as c:
        groups = c.list_groups()
        assert [g.name for g in groups] == ["demo"]
        assert phase_name(groups[0].phase) == "READY"
        g = c.get_group("demo")
        assert [b.name for b in g.backends] == ["api", "db"]
        with pytest.raises(grpc.RpcError) as err:
            c.get_group("nope")
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert c.health_list() == {"": SERVING, "demo": SERVING}
        assert c.health_check("demo") == SERVING


def test_watch_snapshot_then_change(daemon):
    state, target = daemon
    with connect(target) as c:
        it = c.watch("demo")
        first = next(it)
        assert first.kind == service_pb2.WATCH_EVENT_KIND_SNAPSHOT
        threading.Timer(
            0.2,
            state.set_group,
            [fs.group("demo", S.GROUP_PHASE_DEGRADED, fs.backend("api", S.BACKEND_STATUS_UNHEALTHY))],
        ).start()
        second = next(it)
        assert second.kind == service_pb2.WATCH_EVENT_KIND_CHANGED
        assert second.groups[0].phase == S.GROUP_PHASE_DEGRADED
        it.cancel()


def test_wait_until_serving(daemon):
    state, target = daemon
    state.set_group(fs.group("slow", S.GROUP_PHASE_PENDING, fs.backend("a", S.BACKEND_STATUS_UNKNOWN)))
    with connect(target) as c:
        with pytest.raises(WaitTimeout) as exc:
            c.wait_until_serving("slow", timeout=0.5)
        assert "NOT_SERVING" in str(exc.value)
        threading.Timer(
            0.3, state.set_group, [fs.group("slow", S.GROUP_PHASE_READY, fs.backend("a", S.BACKEND_STATUS_HEALTHY))]
        ).start()
        t0 = time.monotonic()
        assert c.wait_until_serving("slow", timeout=5) == SERVING
        assert time.monotonic() - t0 < 3


def test_wait_until_serving_unreachable():
    with connect("127.0.0.1:1") as c:
        with pytest.raises(WaitTimeout) as exc:
            c.wait_until_serving("demo", timeout=0.5)
        assert "no status received" in str(exc.value)


def run_example(name: str, *args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )


@pytest.mark.parametrize("name", ["watch_transitions.py", "wait_serving.py", "list_health.py", "report_outcomes.py"])
def test_examples_help(name):
    r = run_example(name, "--help")
    assert r.returncode == 0, r.stderr
    assert "--target" in r.stdout


def test_example_list_health(daemon):
    _, target = daemon
    r = run_example("list_health.py", "--target", target)
    assert r.returncode == 0, r.stderr
    assert "demo phase=READY total=2 routable=2" in r.stdout
    assert "grpc.health.v1 List (2):" in r.stdout
    assert "  demo SERVING" in r.stdout


def test_example_wait_serving(daemon):
    state, target = daemon
    r = run_example("wait_serving.py", "demo", "--target", target, "--timeout", "5")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "group=demo SERVING" in r.stdout
    state.set_group(
        fs.group(
            "down",
            S.GROUP_PHASE_FAILED,
            fs.backend("api", S.BACKEND_STATUS_UNHEALTHY, S.REASON_CODE_CONNECTION_REFUSED, "connection refused"),
        )
    )
    r = run_example("wait_serving.py", "down", "--target", target, "--timeout", "0.5")
    assert r.returncode == 1
    assert "last status NOT_SERVING" in r.stdout
    assert "backend=api UNHEALTHY routable=false connection refused" in r.stdout


def test_example_watch_transitions(daemon):
    state, target = daemon
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "watch_transitions.py"), "demo", "--target", target, "--count", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [proc.stdout.readline().rstrip("\n") for _ in range(3)]
        assert lines[0].startswith("group=demo phase READY (initial")
        assert lines[1].startswith("group=demo backend=api HEALTHY (initial")
        state.set_group(
            fs.group(
                "demo",
                S.GROUP_PHASE_DEGRADED,
                fs.backend("api", S.BACKEND_STATUS_UNHEALTHY, S.REASON_CODE_CONNECTION_REFUSED),
                fs.backend("db", S.BACKEND_STATUS_HEALTHY),
            )
        )
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    rest = out.splitlines()
    assert rest[0].startswith("group=demo phase READY -> DEGRADED (")
    assert rest[1] == "group=demo backend=api HEALTHY -> UNHEALTHY (connection refused)"
