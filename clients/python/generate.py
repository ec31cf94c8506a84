#!/usr/bin/env python3
"""Regenerate the checked-in gRPC stubs of mcphealth_client from ../../proto.

    python clients/python/generate.py            # into src/mcphealth_client/_gen
    python clients/python/generate.py OUTDIR     # into OUTDIR (used by tests/test_stubs_current.py)

Needs grpcio-tools (pinned in scripts/requirements-ci.txt). The output is post-processed:

* imports of `mcphealth.v1` and `grpc.health.v1` are made absolute under
  `mcphealth_client._gen`, so they work inside the package (a top-level `grpc.health`
  would clash with grpcio's own `grpc` package);
* the vendored grpc/health/v1/health.proto (which has List) is loaded into a private
  descriptor pool: grpcio-health-checking registers the same `grpc.health.v1.*` symbols
  in the default pool, and protobuf refuses duplicate symbols, so both could not be
  imported into one process otherwise. The wire format is identical.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PROTO_ROOT = REPO / "proto"
DEFAULT_OUT = HERE / "src" / "mcphealth_client" / "_gen"
PKG = "mcphealth_client._gen"

PROTOS = [
    "mcphealth/v1/spec.proto",
    "mcphealth/v1/status.proto",
    "mcphealth/v1/service.proto",
    "grpc/health/v1/health.proto",
]

_IMPORT_RE = re.compile(r"^(from|import) (mcphealth\.v1|grpc\.health\.v1)( import|\b)", re.MULTILINE)


def _rewrite(text: str) -> str:
    return _IMPORT_RE.sub(lambda m: f"{m.group(1)} {PKG}.{m.group(2)}{m.group(3)}", text)


def _private_pool(text: str) -> str:
    marker = "_sym_db = _symbol_database.Default()\n"
    if marker not in text or "_descriptor_pool.Default().AddSerializedFile(" not in text:
        raise SystemExit("generate.py: unexpected health_pb2.py layout; update _private_pool()")
    text = text.replace(
        marker,
        marker + "# mcphealth_client: a private pool, see generate.py.\n_POOL = _descriptor_pool.DescriptorPool()\n",
    )
    return text.replace("_descriptor_pool.Default().AddSerializedFile(", "_POOL.AddSerializedFile(")


def generate(out: Path) -> None:
    from grpc_tools import protoc  # imported late so --help works without it

    try:
        from importlib.metadata import version

        tools_version = version("grpcio-tools")
    except Exception:  # pragma: no cover
        tools_version = "unknown"

    include = Path(protoc.__file__).resolve().parent / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        args = [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{include}",
            f"--python_out={tmpdir}",
            f"--pyi_out={tmpdir}",
            f"--grpc_python_out={tmpdir}",
            *PROTOS,
        ]
        rc = protoc.main(args)
        if rc != 0:
            raise SystemExit(f"generate.py: protoc failed with exit code {rc}")

        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        for src in sorted(tmpdir.rglob("*")):
            if src.is_dir():
                continue
            rel = src.relative_to(tmpdir)
            dst = out / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            text = _rewrite(src.read_text())
            if rel.as_posix() == "grpc/health/v1/health_pb2.py":
                text = _private_pool(text)
            dst.write_text(text)

    # Package markers for every directory.
    (out / "__init__.py").write_text(
        '"""Generated from proto/ by clients/python/generate.py with grpcio-tools '
        f'{tools_version}. DO NOT EDIT."""\n'
    )
    for d in sorted(p for p in out.rglob("*") if p.is_dir()):
        init = d / "__init__.py"
        if not init.exists():
            init.write_text("")


def main() -> int:
    if len(sys.argv) > 2 or (len(sys.argv) == 2 and sys.argv[1] in ("-h", "--help")):
        print(__doc__)
        return 0 if len(sys.argv) == 2 else 2
    out = Path(sys.argv[1]).resolve() if len(sys.argv) == 2 else DEFAULT_OUT
    generate(out)
    print(f"generated stubs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
