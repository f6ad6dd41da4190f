"""``fhir-hub worker``: a process that claims the queue's jobs, highest priority first, and runs them.

Any number of workers, in any number of processes on any number of machines, share one database: a claim
is atomic (``jobs.py``), so they never run one job twice at once. A worker renews its job's lease every
third of the lease while the job runs; if it dies (SIGKILL, a lost machine), the lease runs out, another
worker's ``requeue_due`` puts the job back, and it runs again. That is safe because running a job is
idempotent: a record's Bundle is conditional creates and updates keyed on business identifiers, its
Provenance found again by its tag, and a re-sent identical version stores nothing new, so a job done twice
leaves the store as once.

A job that raises is failed (``JobQueue.fail``: a back-off, then the dead letters, its errors kept). A
record the hub refuses (a 4xx from the write path) is not a failure of the job: it is reported in the job's
result, as the synchronous ``$ingest`` reports it, and not retried.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fhir_hub.auth.caller import Caller
from fhir_hub.hub import Hub
from fhir_hub.queue.ingest_jobs import KIND as RECORD_JOB
from fhir_hub.queue.ingest_jobs import run_record_job
from fhir_hub.queue.jobs import Job
from fhir_hub.services.session import Session

log = logging.getLogger(__name__)
Handler = Callable[[Callable[[Caller], Session], Job], Awaitable[dict[str, Any]]]
HANDLERS: dict[str, Handler] = {RECORD_JOB: run_record_job}
REQUEUE_EVERY_S = 1.0


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Worker:
    def __init__(self, hub: Hub, name: str | None = None, *, poll_s: float = 0.2,
                 handlers: dict[str, Handler] | None = None) -> None:
        self.hub = hub
        self.queue = hub.queue
        self.name = name or worker_name()
        self.poll_s = poll_s
        self.handlers = handlers or HANDLERS
        self.done = 0

    def session_for(self, caller: Caller) -> Session:
        return Session.open(self.hub, caller)

    async def run(self, stop: asyncio.Event, *, until_empty: bool = False) -> int:
        """Claim and run jobs until ``stop`` is set (or, ``until_empty``, until none is ready); jobs done."""
        requeued_at = 0.0
        while not stop.is_set():
            if time.monotonic() - requeued_at >= REQUEUE_EVERY_S:
                await self.queue.requeue_due()
                requeued_at = time.monotonic()
            job = await self.queue.claim(self.name)
            if job is None:
                if until_empty:
                    break
                try:
                    await asyncio.wait_for(stop.wait(), self.poll_s)
                except TimeoutError:
                    pass
                continue
            await self.run_one(job)
        return self.done

    async def run_one(self, job: Job) -> None:
        beat = asyncio.create_task(self._heartbeat(job))
        try:
            handler = self.handlers.get(job.kind)
            if handler is None:
                raise LookupError(f"no handler for jobs of kind {job.kind!r} in this worker")
            result = await handler(self.session_for, job)
        except Exception as exc:  # noqa: BLE001 - any failure of a job is recorded with it, the worker goes on
            state = await self.queue.fail(job, f"{type(exc).__name__}: {exc}")
            log.warning("job %s failed (%s): %s", job.id, state or "lease lost", exc)
        else:
            if await self.queue.complete(job, result):
                self.done += 1
            else:
                log.warning("job %s: lease lost before it was marked done (it ran; running again is harmless)",
                            job.id)
        finally:
            beat.cancel()

    async def _heartbeat(self, job: Job) -> None:
        every = max(self.queue.lease_ms / 3000, 0.05)
        while True:
            await asyncio.sleep(every)
            if not await self.queue.heartbeat(job):
                return
