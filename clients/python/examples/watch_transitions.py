#!/usr/bin/env python3
"""Prints one line per backend status or group phase transition, e.g.

    group=demo phase READY -> DEGRADED (1 of 2 backends routable; 1 unhealthy)
    group=demo backend=api HEALTHY -> UNHEALTHY (connection refused)

The first snapshot prints each group's and backend's initial state, marked "(initial)",
unless --no-initial. Reconnects when the stream breaks (a re-sent SNAPSHOT is diffed
against what was already seen, so no transition is printed twice).
"""

from __future__ import annotations

import argparse
import sys
import time

import _common  # noqa: F401

import grpc

from mcphealth_client import connect, phase_name, reason_name, status_name
from mcphealth_client.pb import service_pb2


def reason_text(backend) -> str:
    if backend.reason.message:
        return backend.reason.message
    code = reason_name(backend.reason.code)
    if backend.reason.http_status:
        return f"{code.lower().replace('_', ' ')} {backend.reason.http_status}"
    return code.lower().replace("_", " ")


class Tracker:
    def __init__(self, show_initial: bool, out=sys.stdout):
        self.phases: dict[str, int] = {}
        self.statuses: dict[tuple[str, str], int] = {}
        self.show_initial = show_initial
        self.out = out
        self.lines = 0

    def emit(self, line: str) -> None:
        print(line, file=self.out, flush=True)
        self.lines += 1

    def group(self, g, initial: bool) -> None:
        old = self.phases.get(g.name)
        if old is None:
            if initial and self.show_initial or not initial:
                self.emit(f"group={g.name} phase {phase_name(g.phase)} ({'initial' if initial else 'new'}; {g.message})")
        elif old != g.phase:
            self.emit(f"group={g.name} phase {phase_name(old)} -> {phase_name(g.phase)} ({g.message})")
        self.phases[g.name] = g.phase

        seen = set()
        for b in g.backends:
            key = (g.name, b.name)
            seen.add(key)
            prev = self.statuses.get(key)
            if prev is None:
                if initial and self.show_initial or not initial:
                    label = "initial" if initial else "new"
                    self.emit(f"group={g.name} backend={b.name} {status_name(b.status)} ({label}; {reason_text(b)})")
            elif prev != b.status:
                self.emit(
                    f"group={g.name} backend={b.name} {status_name(prev)} -> {status_name(b.status)} ({reason_text(b)})"
                )
            self.statuses[key] = b.status
        for key in [k for k in self.statuses if k[0] == g.name and k not in seen]:
            self.emit(f"group={g.name} backend={key[1]} {status_name(self.statuses.pop(key))} -> (removed)")

    def deleted(self, g) -> None:
        old = self.phases.pop(g.name, None)
        for key in [k for k in self.statuses if k[0] == g.name]:
            del self.statuses[key]
        self.emit(f"group={g.name} phase {phase_name(old) if old is not None else '?'} -> (deleted)")

    def handle(self, msg, first: bool) -> None:
        kind = msg.kind
        if kind == service_pb2.WATCH_EVENT_KIND_DELETED:
            for g in msg.groups:
                self.deleted(g)
            return
        snapshot = kind == service_pb2.WATCH_EVENT_KIND_SNAPSHOT
        if snapshot:
            present = {g.name for g in msg.groups}
            for name in [n for n in self.phases if n not in present]:
                self.emit(f"group={name} phase {phase_name(self.phases.pop(name))} -> (gone)")
                for key in [k for k in self.statuses if k[0] == name]:
                    del self.statuses[key]
        for g in msg.groups:
            self.group(g, initial=first and snapshot)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("group", nargs="?", default="", help="group to watch (default: every group)")
    ap.add_argument("--target", default="127.0.0.1:50051", help="daemon address (default %(default)s)")
    ap.add_argument("--no-initial", action="store_true", help="do not print the initial state")
    ap.add_argument("--count", type=int, default=0, help="exit 0 after printing this many lines (0 = never)")
    ap.add_argument("--no-reconnect", action="store_true", help="exit 1 when the stream ends or breaks")
    args = ap.parse_args(argv)

    tracker = Tracker(show_initial=not args.no_initial)
    first = True
    with connect(args.target) as client:
        while True:
            try:
                for msg in client.watch(args.group):
                    tracker.handle(msg, first)
                    first = False
                    if args.count and tracker.lines >= args.count:
                        return 0
                print(f"watch: stream ended{' (group deleted)' if args.group else ''}", file=sys.stderr)
                if args.group and args.group not in tracker.phases:
                    return 0
            except grpc.RpcError as err:
                print(f"watch: {err.code().name}: {err.details()}", file=sys.stderr)
                if err.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.INVALID_ARGUMENT):
                    return 1
            except KeyboardInterrupt:
                return 130
            if args.no_reconnect:
                return 1
            time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
