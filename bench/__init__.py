"""Benchmarks (``make bench``): hub figures beside baselines measured in the same run."""

from __future__ import annotations

import os
import platform
import time
from typing import Any


def results_header(benchmark: str) -> dict[str, Any]:
    """What every results file starts with: what was measured, when, and on what machine (the figures of
    a shared, noisy machine are only comparable with this beside them)."""
    return {"benchmark": benchmark, "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}}
