#!/usr/bin/env python3
"""Reports outcomes of real traffic to one backend (mcphealth.v1 ReportOutcomes), as a
gateway does after each request, and prints what the daemon counted and whom it ejected.
With the group's default policy.outlier, 5 failures in a row eject the backend.

    report_outcomes.py GROUP BACKEND http_status --http-status 503 --count 5
    report_outcomes.py GROUP BACKEND json_rpc_error --json-rpc-code -32603 --count 5
"""

from __future__ import annotations

import argparse
import sys

import _common  # noqa: F401

import grpc

from mcphealth_client import connect, outcome_report

OUTCOMES = ["ok", "connect_failure", "reset", "timeout", "http_status", "json_rpc_error", "tool_error"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("group")
    ap.add_argument("backend")
    ap.add_argument("outcome", choices=OUTCOMES)
    ap.add_argument("--http-status", type=int, default=0)
    ap.add_argument("--json-rpc-code", type=int, default=0)
    ap.add_argument("--method", default="", help="the request's JSON-RPC method (default tools/call)")
    ap.add_argument("--count", type=int, default=1, help="reports to send in one stream (default %(default)s)")
    ap.add_argument("--target", default="127.0.0.1:50051", help="daemon address (default %(default)s)")
    ap.add_argument("--admin-token-file", help="file holding the daemon's admin token")
    args = ap.parse_args(argv)

    token = None
    if args.admin_token_file:
        with open(args.admin_token_file, encoding="utf-8") as f:
            token = f.read().strip()
    report = outcome_report(
        args.group,
        args.backend,
        args.outcome,
        http_status=args.http_status,
        json_rpc_code=args.json_rpc_code,
        method=args.method,
    )
    with connect(args.target, admin_token=token) as client:
        try:
            resp = client.report_outcomes([report] * args.count)
        except grpc.RpcError as err:
            print(f"ReportOutcomes failed: {err.code().name}: {err.details()}", file=sys.stderr)
            return 1
    print(f"accepted={resp.accepted} unknown_backend={resp.unknown_backend} invalid={resp.invalid} not_owned={resp.not_owned} forwarded={resp.forwarded} dropped={resp.dropped}")
    for b in resp.ejected:
        print(f"ejected {b}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
