"""Python client for mcp-health's gRPC API (mcphealth.v1 and grpc.health.v1)."""

from mcphealth_client.client import (
    DEFAULT_TARGET,
    SERVING,
    Client,
    WaitTimeout,
    connect,
    event_kind_name,
    outcome_report,
    phase_name,
    reason_name,
    serving_status_name,
    status_name,
)

__all__ = [
    "DEFAULT_TARGET",
    "SERVING",
    "Client",
    "WaitTimeout",
    "connect",
    "event_kind_name",
    "outcome_report",
    "phase_name",
    "reason_name",
    "serving_status_name",
    "status_name",
]

__version__ = "0.1.0"
