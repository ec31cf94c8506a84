"""The generated message modules, under short names.

    from mcphealth_client.pb import spec_pb2, status_pb2, service_pb2, health_pb2
"""

from mcphealth_client._gen.grpc.health.v1 import health_pb2, health_pb2_grpc
from mcphealth_client._gen.mcphealth.v1 import (
    service_pb2,
    service_pb2_grpc,
    spec_pb2,
    status_pb2,
)

__all__ = ["health_pb2", "health_pb2_grpc", "service_pb2", "service_pb2_grpc", "spec_pb2", "status_pb2"]
