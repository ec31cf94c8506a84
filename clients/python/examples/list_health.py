#!/usr/bin/env python3
"""Prints every group with its phase and summary (mcphealth.v1 ListGroups), then the
grpc.health.v1 List output (one line per service name with its serving status)."""

from __future__ import annotations

import argparse
import sys

import _common  # noqa: F401

import grpc

from mcphealth_client import connect, phase_name, serving_status_name


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--target", default="127.0.0.1:50051", help="daemon address (default %(default)s)")
    ap.add_argument("--timeout", type=float, default=5.0, help="per-call deadline in seconds (default %(default)s)")
    args = ap.parse_args(argv)

    rc = 0
    with connect(args.target) as client:
        try:
            groups = client.list_groups(timeout=args.timeout)
        except grpc.RpcError as err:
            print(f"ListGroups failed: {err.code().name}: {err.details()}", file=sys.stderr)
            return 1
        print(f"groups ({len(groups)}):")
        for g in groups:
            s = g.summary
            print(
                f"  {g.name} phase={phase_name(g.phase)} total={s.total} routable={s.routable} "
                f"healthy={s.healthy} degraded={s.degraded} unhealthy={s.unhealthy} "
                f"unauthenticated={s.unauthenticated} unknown={s.unknown}"
                + (f" ({g.message})" if g.message else "")
            )
        try:
            statuses = client.health_list(timeout=args.timeout)
        except grpc.RpcError as err:
            print(f"grpc.health.v1 List failed: {err.code().name}: {err.details()}", file=sys.stderr)
            rc = 1
        else:
            print(f"grpc.health.v1 List ({len(statuses)}):")
            for name in sorted(statuses):
                print(f"  {name or '(server)'!s} {serving_status_name(statuses[name])}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
