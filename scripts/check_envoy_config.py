"""Validates clients/envoy/envoy.yaml against Envoy's own API schema.

No Envoy binary can be installed here (not in Debian, PyPI or npm), so this
parses the config into `envoy.config.bootstrap.v3.Bootstrap` with the protobuf
types generated from envoyproxy/data-plane-api (PyPI `xds-protos`). Unknown
fields, wrong types, bad enum values and unresolvable `typed_config` types all
fail. Envoy's semantic checks (`envoy --mode validate`) remain a manual step,
documented in clients/envoy/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml
from google.protobuf import json_format

# Importing these registers the typed_config types the config names.
from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2  # noqa: F401
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2  # noqa: F401
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2  # noqa: F401


def main(path: str) -> int:
    doc = yaml.safe_load(Path(path).read_text())
    bootstrap = bootstrap_pb2.Bootstrap()
    try:
        json_format.ParseDict(doc, bootstrap)
    except json_format.ParseError as e:
        print(f"{path}: not a valid Envoy bootstrap: {e}", file=sys.stderr)
        return 1
    checks = []
    for cluster in bootstrap.static_resources.clusters:
        for hc in cluster.health_checks:
            if hc.HasField("grpc_health_check"):
                checks.append((cluster.name, hc.grpc_health_check.service_name))
    if not checks or any(not service for _, service in checks):
        print(f"{path}: expected a cluster with grpc_health_check.service_name set to a group; found {checks}", file=sys.stderr)
        return 1
    for cluster, service in checks:
        print(f"{path}: valid Envoy bootstrap; cluster {cluster} health-checks grpc.health service {service!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "clients/envoy/envoy.yaml"))
