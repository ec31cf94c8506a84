#!/usr/bin/env python3
"""Waits until grpc.health.v1 reports GROUP as SERVING (via Watch).

Exit 0 when SERVING; exit 1 on timeout, printing why (the last health status and,
when the daemon answers, the group's phase and each backend's verdict).
"""

from __future__ import annotations

import argparse
import sys

import _common  # noqa: F401

import grpc

from mcphealth_client import WaitTimeout, connect, phase_name, status_name


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("group", help="group name (= grpc.health.v1 service name)")
    ap.add_argument("--target", default="127.0.0.1:50051", help="daemon address (default %(default)s)")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds to wait (default %(default)s)")
    args = ap.parse_args(argv)

    with connect(args.target) as client:
        try:
            client.wait_until_serving(args.group, args.timeout)
        except WaitTimeout as exc:
            print(f"timeout: {exc}")
            try:
                g = client.get_group(args.group, timeout=2)
            except grpc.RpcError as err:
                print(f"  (GetGroupHealth: {err.code().name}: {err.details()})")
            else:
                print(f"  group={g.name} phase={phase_name(g.phase)} {g.message}")
                for b in g.backends:
                    why = b.reason.message or ""
                    print(f"  backend={b.name} {status_name(b.status)} routable={str(b.routable).lower()} {why}".rstrip())
            return 1
        except grpc.RpcError as err:
            print(f"error: {err.code().name}: {err.details()}")
            return 1
    print(f"group={args.group} SERVING")
    return 0


if __name__ == "__main__":
    sys.exit(main())
