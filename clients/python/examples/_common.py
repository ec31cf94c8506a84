"""Shared bits of the examples: find the package even when it is not installed."""

from __future__ import annotations

import sys
from pathlib import Path

try:
    import mcphealth_client  # noqa: F401
except ImportError:  # running from a checkout without `pip install clients/python`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
