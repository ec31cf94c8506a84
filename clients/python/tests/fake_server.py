"""An in-process stand-in for mcp-healthd, for testing the client and the examples.

It serves mcphealth.v1.GroupHealthService (ListGroups, GetGroupHealth, WatchGroupHealth)
and grpc.health.v1.Health (Check, Watch, List) from a mutable in-memory state.
"""

from __future__ import annotations

import queue
import threading
from concurrent import futures

import grpc
from grpc_health.v1 import health as std_health
from grpc_health.v1 import health_pb2 as std_health_pb2
from grpc_health.v1 import health_pb2_grpc as std_health_pb2_grpc

from mcphealth_client.pb import service_pb2, service_pb2_grpc, status_pb2


class FakeDaemon(service_pb2_grpc.GroupHealthServiceServicer):
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.groups: dict[str, status_pb2.GroupHealth] = {}
        self.revision = 0
        self.watchers: list[tuple[str, queue.Queue]] = []
        self.health = _Health()

    # State changes -------------------------------------------------------------------
    def set_group(self, group: status_pb2.GroupHealth) -> None:
        with self.lock:
            self.revision += 1
            g = status_pb2.GroupHealth()
            g.CopyFrom(group)
            g.revision = self.revision
            self.groups[g.name] = g
            ev = service_pb2.WatchGroupHealthResponse(
                kind=service_pb2.WATCH_EVENT_KIND_CHANGED, revision=self.revision, groups=[g]
            )
            for name, q in self.watchers:
                if name in ("", g.name):
                    q.put(ev)
        serving = g.phase in (status_pb2.GROUP_PHASE_READY, status_pb2.GROUP_PHASE_DEGRADED)
        self.health.set(
            g.name,
            std_health_pb2.HealthCheckResponse.SERVING if serving else std_health_pb2.HealthCheckResponse.NOT_SERVING,
        )

    def close_watchers(self) -> None:
        with self.lock:
            for _, q in self.watchers:
                q.put(None)

    # RPCs -----------------------------------------------------------------------------
    def ListGroups(self, request, context):
        with self.lock:
            return service_pb2.ListGroupsResponse(
                groups=[
                    service_pb2.GroupOverview(
                        name=g.name, phase=g.phase, summary=g.summary, message=g.message, source=g.source
                    )
                    for g in sorted(self.groups.values(), key=lambda g: g.name)
                ]
            )

    def GetGroupHealth(self, request, context):
        with self.lock:
            g = self.groups.get(request.group)
        if g is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no group {request.group!r}")
        return service_pb2.GetGroupHealthResponse(health=g)

    def WatchGroupHealth(self, request, context):
        q: queue.Queue = queue.Queue()
        with self.lock:
            snap = [g for g in self.groups.values() if request.group in ("", g.name)]
            if request.group and not snap:
                context.abort(grpc.StatusCode.NOT_FOUND, f"no group {request.group!r}")
            first = service_pb2.WatchGroupHealthResponse(
                kind=service_pb2.WATCH_EVENT_KIND_SNAPSHOT, revision=self.revision, groups=snap
            )
            entry = (request.group, q)
            self.watchers.append(entry)
        context.add_callback(lambda: q.put(None))
        try:
            yield first
            while True:
                ev = q.get()
                if ev is None:
                    return
                yield ev
        finally:
            with self.lock:
                self.watchers.remove(entry)


class _Health(std_health.HealthServicer):
    """grpcio-health-checking's servicer plus List (which it does not implement)."""

    def __init__(self) -> None:
        super().__init__()  # serves "" (the whole server) as SERVING
        self._names: dict[str, int] = {"": std_health_pb2.HealthCheckResponse.SERVING}

    def set(self, service, status):
        self._names[service] = status
        super().set(service, status)

    def List(self, request, context):
        resp = std_health_pb2.HealthListResponse()
        for name, st in self._names.items():
            resp.statuses[name].status = st
        return resp


def start(port: int = 0) -> tuple[grpc.Server, FakeDaemon, str]:
    daemon = FakeDaemon()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    service_pb2_grpc.add_GroupHealthServiceServicer_to_server(daemon, server)
    std_health_pb2_grpc.add_HealthServicer_to_server(daemon.health, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    return server, daemon, f"127.0.0.1:{bound}"


def backend(name: str, status: int, reason: int = status_pb2.REASON_CODE_OK, message: str = "") -> status_pb2.BackendHealth:
    routable = status in (status_pb2.BACKEND_STATUS_HEALTHY, status_pb2.BACKEND_STATUS_DEGRADED)
    return status_pb2.BackendHealth(
        name=name,
        url=f"http://127.0.0.1:1/{name}",
        status=status,
        routable=routable,
        reason=status_pb2.Reason(code=reason, message=message),
    )


def group(name: str, phase: int, *backends: status_pb2.BackendHealth, message: str = "") -> status_pb2.GroupHealth:
    routable = sum(1 for b in backends if b.routable)
    return status_pb2.GroupHealth(
        name=name,
        phase=phase,
        message=message or f"{routable} of {len(backends)} backends routable",
        summary=status_pb2.Summary(total=len(backends), routable=routable),
        backends=list(backends),
    )
