"""``fhir-hub worker``: a process that claims the queue's jobs, highest priority first, and runs them.

Any number of workers, in any number of processes on any number of machines, share one database: a claim
is atomic (``jobs.py``), so they never run one job twice at once. A worker renews its job's lease every
third of the lease while the job runs; if it dies (SIGKILL, a lost machine), the lease runs out, another
worker's ``requeue_due`` puts the job back, and it runs again. That is safe because running a job is
idempotent: a record's Bundle is conditional creates and updates keyed on business identifiers, its
Provenance found again by its tag, and a re-sent identical version stores nothing new, so a job done twice
leaves the store as once.

A worker claims up to ``FHIR_HUB_RECORDS_PER_TRANSACTION`` jobs at once, each the highest ready one at
its claim, and its handler runs them together (a record job commits them several per store transaction):
a high-risk job that arrives meanwhile waits for that one group, never behind the backlog.

Now and then a worker also raises the waiting jobs of people whose score changed with the date (a 60th
birthday: ``ingest_jobs.raise_on_their_day``).

A job that raises is failed (``JobQueue.fail``: a back-off, then the dead letters, its errors kept). A
record the hub refuses (a 4xx from the write path) is not a failure of the job: it is reported in the job's
result, as the synchronous ``$ingest`` reports it, and not retried.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fhir_hub.auth.caller import Caller
from fhir_hub.fhir.instant import local_day
from fhir_hub.hub import Hub
from fhir_hub.queue.ingest_jobs import KIND as RECORD_JOB
from fhir_hub.queue.ingest_jobs import raise_on_their_day, run_record_jobs
from fhir_hub.queue.jobs import Job
from fhir_hub.queue.refresh_jobs import run_refresh_jobs
from fhir_hub.queue.urgency import REFRESH
from fhir_hub.services.session import Session

log = logging.getLogger(__name__)
# runs a group of jobs of its kind: per job, its result or the exception that fails it
Handler = Callable[[Callable[[Caller], Session], list[Job]], Awaitable[list[dict[str, Any] | Exception]]]
HANDLERS: dict[str, Handler] = {RECORD_JOB: run_record_jobs, REFRESH: run_refresh_jobs}
REQUEUE_EVERY_S = 1.0
BIRTHDAYS_EVERY_S = 60.0  # how often a worker looks for jobs whose person's score changed with the date


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Worker:
    def __init__(self, hub: Hub, name: str | None = None, *, poll_s: float = 0.2,
                 handlers: dict[str, Handler] | None = None, group: int | None = None) -> None:
        self.hub = hub
        self.queue = hub.queue
        self.name = name or worker_name()
        self.poll_s = poll_s
        self.handlers = handlers or HANDLERS
        self.group = group or hub.settings.records_per_transaction
        self.done = 0

    def session_for(self, caller: Caller) -> Session:
        """The sender's session, without raising jobs on its writes: queuing the record raised them already."""
        return dataclasses.replace(Session.open(self.hub, caller), raises_jobs=False)

    async def run(self, stop: asyncio.Event, *, until_empty: bool = False) -> int:
        """Claim and run jobs until ``stop`` is set (or, ``until_empty``, until none is ready); jobs done."""
        requeued_at = birthdays_at = 0.0
        while not stop.is_set():
            if time.monotonic() - requeued_at >= REQUEUE_EVERY_S:
                await self.queue.requeue_due()
                requeued_at = time.monotonic()
            if time.monotonic() - birthdays_at >= BIRTHDAYS_EVERY_S:
                await raise_on_their_day(self.queue, local_day(self.hub.writer.clock()))
                birthdays_at = time.monotonic()
            jobs = await self._claim()
            if not jobs:
                if until_empty:
                    break
                try:
                    await asyncio.wait_for(stop.wait(), self.poll_s)
                except TimeoutError:
                    pass
                continue
            await self.run_group(jobs)
        return self.done

    async def _claim(self) -> list[Job]:
        """Up to ``group`` jobs, each the first in line when claimed; a job of another kind than the first ends
        the group (it is run next, alone or with its own kind)."""
        jobs: list[Job] = []
        while len(jobs) < self.group:
            job = await self.queue.claim(self.name)
            if job is None:
                break
            jobs.append(job)
            if job.kind != jobs[0].kind:
                break
        return jobs

    async def run_group(self, jobs: list[Job]) -> None:
        by_kind: dict[str, list[Job]] = {}
        for job in jobs:
            by_kind.setdefault(job.kind, []).append(job)
        for kind, same in by_kind.items():
            await self._run_kind(kind, same)

    async def _run_kind(self, kind: str, jobs: list[Job]) -> None:
        beats = [asyncio.create_task(self._heartbeat(job)) for job in jobs]
        try:
            handler = self.handlers.get(kind)
            try:
                if handler is None:
                    raise LookupError(f"no handler for jobs of kind {kind!r} in this worker")
                outcomes = await handler(self.session_for, jobs)
            except Exception as exc:  # noqa: BLE001 - any failure of a job is recorded with it, the worker goes on
                outcomes = [exc for _ in jobs]
            for job, outcome in zip(jobs, outcomes, strict=True):
                await self._finish(job, outcome)
        finally:
            for beat in beats:
                beat.cancel()

    async def _finish(self, job: Job, outcome: dict[str, Any] | Exception) -> None:
        if isinstance(outcome, Exception):
            state = await self.queue.fail(job, f"{type(outcome).__name__}: {outcome}")
            log.warning("job %s failed (%s): %s", job.id, state or "lease lost", outcome)
        elif await self.queue.complete(job, outcome):
            self.done += 1
        else:
            log.warning("job %s: lease lost before it was marked done (it ran; running again is harmless)", job.id)

    async def _heartbeat(self, job: Job) -> None:
        every = max(self.queue.lease_ms / 3000, 0.05)
        while True:
            await asyncio.sleep(every)
            if not await self.queue.heartbeat(job):
                return
