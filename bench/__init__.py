"""Benchmarks (``make bench``): hub figures beside baselines measured in the same run."""

from __future__ import annotations

import contextlib
import os
import platform
import time
from typing import Any

from fhir_hub.config import Settings
from fhir_hub.store.store_lock import StoreLock


def results_header(benchmark: str) -> dict[str, Any]:
    """What every results file starts with: what was measured, when, and on what machine (the figures of
    a shared, noisy machine are only comparable with this beside them)."""
    return {"benchmark": benchmark, "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}}


def queue_counts(jobs: Any, lock: StoreLock | None) -> dict[str, dict[str, int]]:
    """The priority queue's jobs by state and tier (one ``$group``, as ``fhir-hub queue status`` counts), under
    the store's lock (``store_lock``): on nx-27017 an aggregation would release the savepoint of a transaction
    a worker has open (``fhir_hub/store/count.py``)."""
    counts: dict[str, dict[str, int]] = {}
    with lock.held_shared() if lock is not None else contextlib.nullcontext():
        groups = list(jobs.aggregate([{"$group": {"_id": "$st", "n": {"$sum": 1}}}]))
    for doc in groups:
        state, _, tier = str(doc["_id"]).partition("|")
        counts.setdefault(state, {})[tier] = int(doc["n"])
    return counts


def store_lock(uri: str, db_name: str) -> StoreLock | None:
    """The lock the benchmark's hub processes take on their embedded store: its directory read from the same
    environment, by the same settings."""
    return StoreLock.for_server(uri, db_name, Settings.from_env().store_lock_dir)
