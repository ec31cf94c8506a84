"""A thin, synchronous client for the mcp-health daemon (mcp-healthd).

    from mcphealth_client import connect

    with connect("127.0.0.1:50051") as c:
        for g in c.list_groups():
            print(g.name, phase_name(g.phase))
        c.wait_until_serving("demo", timeout=10)

Every method returns the generated protobuf messages (see mcphealth_client.pb).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health_pb2 as std_health_pb2
from grpc_health.v1 import health_pb2_grpc as std_health_pb2_grpc

from mcphealth_client._gen.grpc.health.v1 import health_pb2 as list_health_pb2
from mcphealth_client._gen.grpc.health.v1 import health_pb2_grpc as list_health_pb2_grpc
from mcphealth_client._gen.mcphealth.v1 import service_pb2, service_pb2_grpc, spec_pb2, status_pb2

DEFAULT_TARGET = "127.0.0.1:50051"

# grpc.health.v1 ServingStatus names, by number (the same in both health stubs).
SERVING_STATUS_NAMES = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}
SERVING = 1


def _short(enum_type: Any, value: int, prefix: str) -> str:
    try:
        name = enum_type.Name(value)
    except ValueError:
        return str(value)
    return name[len(prefix) :] if name.startswith(prefix) else name


def phase_name(value: int) -> str:
    """GROUP_PHASE_READY -> "READY"."""
    return _short(status_pb2.GroupPhase, value, "GROUP_PHASE_")


def status_name(value: int) -> str:
    """BACKEND_STATUS_HEALTHY -> "HEALTHY"."""
    return _short(status_pb2.BackendStatus, value, "BACKEND_STATUS_")


def reason_name(value: int) -> str:
    """REASON_CODE_CONNECTION_REFUSED -> "CONNECTION_REFUSED"."""
    return _short(status_pb2.ReasonCode, value, "REASON_CODE_")


def event_kind_name(value: int) -> str:
    """WATCH_EVENT_KIND_SNAPSHOT -> "SNAPSHOT"."""
    return _short(service_pb2.WatchEventKind, value, "WATCH_EVENT_KIND_")


def serving_status_name(value: int) -> str:
    return SERVING_STATUS_NAMES.get(value, str(value))


class WaitTimeout(Exception):
    """wait_until_serving gave up. `last_status` is the last grpc.health.v1 status seen (or None)."""

    def __init__(self, message: str, last_status: int | None = None):
        super().__init__(message)
        self.last_status = last_status


class Client:
    """Wraps one grpc.Channel. Use connect() to build one; close() or `with` to release it."""

    def __init__(self, channel: grpc.Channel, metadata: Sequence[tuple[str, str]] = ()):
        self.channel = channel
        self.metadata = tuple(metadata)
        self.groups = service_pb2_grpc.GroupHealthServiceStub(channel)
        # Check/Watch through the standard grpcio-health-checking stubs...
        self.health = std_health_pb2_grpc.HealthStub(channel)
        # ...and List through the stubs of our vendored health.proto.
        self.health_with_list = list_health_pb2_grpc.HealthStub(channel)

    # -- lifecycle ---------------------------------------------------------------------
    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _md(self) -> tuple[tuple[str, str], ...] | None:
        return self.metadata or None

    # -- mcphealth.v1.GroupHealthService ---------------------------------------------
    def list_groups(self, timeout: float | None = 10) -> list[service_pb2.GroupOverview]:
        resp = self.groups.ListGroups(service_pb2.ListGroupsRequest(), timeout=timeout, metadata=self._md())
        return list(resp.groups)

    def get_group(self, name: str, timeout: float | None = 10) -> status_pb2.GroupHealth:
        resp = self.groups.GetGroupHealth(
            service_pb2.GetGroupHealthRequest(group=name), timeout=timeout, metadata=self._md()
        )
        return resp.health

    def watch(self, group: str = "", timeout: float | None = None) -> Iterator[service_pb2.WatchGroupHealthResponse]:
        """Yields WatchGroupHealthResponse messages: a SNAPSHOT first, then CHANGED/DELETED.

        The iterator is also a grpc.Call: keep a reference and call .cancel() to stop it
        from another thread.
        """
        return self.groups.WatchGroupHealth(
            service_pb2.WatchGroupHealthRequest(group=group), timeout=timeout, metadata=self._md()
        )

    def apply_group(
        self, spec: spec_pb2.GroupSpec, validate_only: bool = False, timeout: float | None = 10
    ) -> service_pb2.ApplyGroupResponse:
        return self.groups.ApplyGroup(
            service_pb2.ApplyGroupRequest(spec=spec, validate_only=validate_only), timeout=timeout, metadata=self._md()
        )

    def delete_group(self, name: str, timeout: float | None = 10) -> None:
        self.groups.DeleteGroup(service_pb2.DeleteGroupRequest(group=name), timeout=timeout, metadata=self._md())

    def probe_backend(self, group: str, backend: str, timeout: float | None = 30) -> service_pb2.ProbeBackendResponse:
        return self.groups.ProbeBackend(
            service_pb2.ProbeBackendRequest(group=group, backend=backend), timeout=timeout, metadata=self._md()
        )

    def report_outcomes(
        self, reports: Iterable[service_pb2.OutcomeReport], timeout: float | None = 30
    ) -> service_pb2.ReportOutcomesResponse:
        """Streams outcomes of real traffic (ReportOutcomes, admin-guarded); returns the counts.

        Consecutive failures eject a backend at its group's policy.outlier. Reports for a
        group or backend the daemon does not have are counted (`unknown_backend`), not raised.
        Build reports with `outcome_report`.
        """
        return self.groups.ReportOutcomes(iter(reports), timeout=timeout, metadata=self._md())

    def get_config_status(self, timeout: float | None = 10) -> service_pb2.GetConfigStatusResponse:
        return self.groups.GetConfigStatus(service_pb2.GetConfigStatusRequest(), timeout=timeout, metadata=self._md())

    # -- grpc.health.v1.Health -------------------------------------------------------
    def health_check(self, service: str = "", timeout: float | None = 10) -> int:
        """The ServingStatus number of `service` ("" = the server). NOT_FOUND raises grpc.RpcError."""
        resp = self.health.Check(std_health_pb2.HealthCheckRequest(service=service), timeout=timeout, metadata=self._md())
        return resp.status

    def health_list(self, timeout: float | None = 10) -> dict[str, int]:
        """grpc.health.v1 List: {service name: ServingStatus number}."""
        resp = self.health_with_list.List(list_health_pb2.HealthListRequest(), timeout=timeout, metadata=self._md())
        return {name: st.status for name, st in resp.statuses.items()}

    def health_watch(self, service: str = "", timeout: float | None = None) -> Iterator[Any]:
        """grpc.health.v1 Watch: yields HealthCheckResponse messages, the current status first."""
        return self.health.Watch(std_health_pb2.HealthCheckRequest(service=service), timeout=timeout, metadata=self._md())

    def wait_until_serving(self, group: str, timeout: float) -> int:
        """Blocks until grpc.health.v1 reports `group` SERVING; returns SERVING.

        Uses Watch, so it wakes on the transition itself. A server that is not up yet,
        or a stream that breaks (UNAVAILABLE), is retried until the deadline.
        Raises WaitTimeout (with the last status seen, if any) when `timeout` elapses.
        """
        deadline = time.monotonic() + timeout
        last_status: int | None = None
        last_error = ""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            call = self.health.Watch(
                std_health_pb2.HealthCheckRequest(service=group),
                timeout=remaining,
                metadata=self._md(),
                wait_for_ready=True,
            )
            try:
                for resp in call:
                    last_status = resp.status
                    if resp.status == SERVING:
                        call.cancel()
                        return SERVING
            except grpc.RpcError as err:
                code = err.code()
                if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                    break
                if code == grpc.StatusCode.UNIMPLEMENTED:
                    raise
                last_error = f"{code.name}: {err.details()}"
            # The stream ended or broke; back off briefly and watch again.
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        if last_status is not None:
            why = f"last status {serving_status_name(last_status)}"
        elif last_error:
            why = f"no status received ({last_error})"
        else:
            why = "no status received (server unreachable?)"
        raise WaitTimeout(f"group {group!r} not SERVING after {timeout:g}s: {why}", last_status)


def outcome_report(
    group: str,
    backend: str,
    outcome: str,
    *,
    http_status: int = 0,
    json_rpc_code: int = 0,
    method: str = "",
    latency_s: float | None = None,
) -> service_pb2.OutcomeReport:
    """One OutcomeReport; `outcome` is the OutcomeKind without its prefix, any case:
    "ok", "connect_failure", "reset", "timeout", "http_status", "json_rpc_error", "tool_error"."""
    kind = service_pb2.OutcomeKind.Value("OUTCOME_KIND_" + outcome.upper())
    report = service_pb2.OutcomeReport(
        group=group,
        backend=backend,
        outcome=kind,
        http_status=http_status,
        json_rpc_code=json_rpc_code,
        method=method,
    )
    if latency_s is not None:
        report.latency.FromNanoseconds(int(latency_s * 1e9))
    return report


def connect(
    target: str = DEFAULT_TARGET,
    *,
    admin_token: str | None = None,
    metadata: Sequence[tuple[str, str]] = (),
    credentials: grpc.ChannelCredentials | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> Client:
    """Opens a channel (plaintext unless `credentials` is given) and returns a Client.

    `admin_token` is sent as `authorization: Bearer <token>` on every call (needed by
    ApplyGroup/DeleteGroup when the daemon has an admin token configured).
    """
    md = list(metadata)
    if admin_token:
        md.append(("authorization", f"Bearer {admin_token}"))
    if credentials is not None:
        channel = grpc.secure_channel(target, credentials, options=list(options))
    else:
        channel = grpc.insecure_channel(target, options=list(options))
    return Client(channel, md)
