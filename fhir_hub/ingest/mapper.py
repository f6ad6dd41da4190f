"""Parsing and mapping a payload off the event loop, in a worker process.

Why off the loop: adapters are plain CPU work (hl7apy alone spends ~0.1 s on an ordinary ADT message), and
run on the event loop they stopped every request of the hub, ``/metadata`` included, for as long as one
payload took: 14.5 s for one crafted 200 KB HL7 v2 message, 3.8 s for 100 ordinary ADTs.

Why a process rather than a thread: a thread frees the loop from waiting for the whole payload but not from
the GIL. Measured with a 2 ms ticker on the loop while 30 ADT messages were mapped (about 3 s of mapping):
in a thread, the loop's ticks came 5.2 ms late at the median and ~40 ms at the 99th percentile (each time
the loop wants the GIL back it waits out the 5 ms switch interval, and a request needs it back many times);
in a worker process, 0.1 ms at the median and ~2 ms at the 99th percentile, with the same wall time for the
mapping. The price is a process start (~1.5 s, once, on the first payload) and the payload and its mapping
crossing a pipe (pickled; small beside the mapping itself). ``FHIR_HUB_INGEST_PROCESSES=0`` maps in a
thread instead (the tests' default: one process per test app would cost more than it shows).

Only the pure part runs there (``adapters``: bytes in, a ``Mapping`` out); archiving and committing the
records stay in the hub, on its one write path.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from adapters.base import Limits, Mapping, Source
from adapters.registry import adapter_for

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class MappingJob:
    """Everything the worker needs to choose the adapter and map one payload (sent to it pickled)."""

    payload: bytes
    filename: str | None
    media_type: str | None
    format_name: str | None
    mapping_dir: Path | None
    limits: Limits
    facility: str | None  # the caller's token's
    may_send_for: frozenset[str] | None  # see ``Source.may_send_for``


def map_payload(job: MappingJob) -> Mapping:
    """Choose the adapter and map (runs in the worker). Raises ``AdapterError`` for a payload no adapter reads."""
    adapter = adapter_for(job.payload, filename=job.filename, media_type=job.media_type,
                          format_name=job.format_name, mapping_dir=job.mapping_dir, limits=job.limits)
    return adapter.map(job.payload, Source(adapter.format, job.facility, job.may_send_for), filename=job.filename)


class WorkerStopped(RuntimeError):
    """The worker process died while mapping (killed, out of memory): the payload is reported, not retried,
    because the same payload would stop the next worker too."""


class MappingWorkers:
    """The hub's mapping workers: ``processes`` worker processes, started with the first payload (0: a
    thread of the hub's process). A payload waits for a free worker; the event loop never does."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None

    async def map(self, job: MappingJob) -> Mapping:
        return await self.run(map_payload, job)

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """``work(*args)`` in a worker: a module-level function of the pure packages, whose arguments and
        result pickle (HL7 v2 acknowledgements, which parse refused messages again, run here too)."""
        if self.processes <= 0:
            return await asyncio.to_thread(work, *args)
        pool = self._pool or self._start()
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, work, *args)
        except BrokenProcessPool:
            if self._pool is pool:
                self._pool = None  # the next payload gets a fresh worker
                _shutdown(pool, wait=False)
            raise WorkerStopped("the mapping worker stopped while reading this payload") from None

    def _start(self) -> ProcessPoolExecutor:
        # spawn: a forked child would inherit the hub's threads (the store client, the audit writer) mid-state
        self._pool = ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(_shutdown, pool, wait=True)


def _shutdown(pool: Executor, *, wait: bool) -> None:
    pool.shutdown(wait=wait, cancel_futures=True)
