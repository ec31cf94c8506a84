"""The checked-in stubs under src/mcphealth_client/_gen match what generate.py makes from proto/.

Run: .venv/bin/python -m pytest clients/python/tests   (or: .venv/bin/python clients/python/tests/test_stubs_current.py)
Fix a failure with: clients/python/generate.sh
"""

from __future__ import annotations

import difflib
import importlib.util
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLIENT = HERE.parent
CHECKED_IN = CLIENT / "src" / "mcphealth_client" / "_gen"
PINNED_TOOLS = "1.85.1"


def _load_generator():
    spec = importlib.util.spec_from_file_location("mcphealth_generate", CLIENT / "generate.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


def _files(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): p.read_text()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_stubs_current() -> None:
    from importlib.metadata import version

    installed = version("grpcio-tools")
    gen = _load_generator()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "_gen"
        gen.generate(out)
        fresh = _files(out)
    current = _files(CHECKED_IN)

    problems: list[str] = []
    for name in sorted(set(fresh) | set(current)):
        if name not in current:
            problems.append(f"missing from checked-in stubs: {name}")
        elif name not in fresh:
            problems.append(f"stale checked-in file (not generated any more): {name}")
        elif fresh[name] != current[name]:
            diff = "".join(
                list(
                    difflib.unified_diff(
                        current[name].splitlines(True),
                        fresh[name].splitlines(True),
                        f"checked-in/{name}",
                        f"fresh/{name}",
                    )
                )[:40]
            )
            problems.append(f"differs: {name}\n{diff}")
    hint = "run clients/python/generate.sh and commit the result"
    if installed != PINNED_TOOLS:
        hint += f" (note: grpcio-tools {installed} is installed, the stubs are made with {PINNED_TOOLS})"
    assert not problems, f"stubs out of date; {hint}:\n" + "\n".join(problems)


def test_stubs_import_alongside_grpc_health_checking() -> None:
    # Both define grpc.health.v1.*; ours lives in a private descriptor pool so both load.
    from grpc_health.v1 import health_pb2 as std

    from mcphealth_client._gen.grpc.health.v1 import health_pb2 as ours
    from mcphealth_client._gen.mcphealth.v1 import service_pb2, service_pb2_grpc, spec_pb2, status_pb2

    assert hasattr(service_pb2_grpc, "GroupHealthServiceStub")
    assert status_pb2.GroupPhase.Name(2) == "GROUP_PHASE_READY"
    assert spec_pb2.Transport.Name(2) == "TRANSPORT_SSE"
    msg = ours.HealthListResponse()
    msg.statuses["demo"].status = ours.HealthCheckResponse.SERVING
    back = std.HealthListResponse.FromString(msg.SerializeToString())
    assert back.statuses["demo"].status == std.HealthCheckResponse.SERVING
    assert service_pb2.DESCRIPTOR.services_by_name["GroupHealthService"].methods_by_name["WatchGroupHealth"]


if __name__ == "__main__":
    failed = 0
    for fn in (test_stubs_current, test_stubs_import_alongside_grpc_health_checking):
        try:
            fn()
            print(f"PASS {fn.__name__}")
        except AssertionError as exc:
            failed += 1
            print(f"FAIL {fn.__name__}: {exc}")
    print(f"{2 - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
