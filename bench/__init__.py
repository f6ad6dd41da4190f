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


def queue_counts(jobs: Any) -> dict[str, dict[str, int]]:
    """The priority queue's jobs by state and tier (one ``$group``, as ``fhir-hub queue status`` counts)."""
    counts: dict[str, dict[str, int]] = {}
    for doc in jobs.aggregate([{"$group": {"_id": "$st", "n": {"$sum": 1}}}]):
        state, _, tier = str(doc["_id"]).partition("|")
        counts.setdefault(state, {})[tier] = int(doc["n"])
    return counts
