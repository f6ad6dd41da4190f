"""Validating a transaction's resources in worker processes while the hub indexes and stores them.

Why: R4B validation is the largest single cost of a transaction Bundle in the hub (~0.3 of ~0.8 ms of CPU
per resource, measured with ``python -m bench bundles``), and under the GIL nothing else of the request runs
while it does. Handed to a worker process (``validation_worker``), it runs on another core while the hub
rewrites references, extracts search entries and sends earlier parts to the store.

Why it is still the one write path: ``Writer.commit`` decides on exactly what it stores. It calls ``check``,
which accepts a resource without validating it again only when a worker validated the same bytes (the
resource is serialised when handed over and again at the check) and found them valid. Anything else is
validated in process: a resource the worker refused (so the error, its element paths and status are the
ones a hub without workers gives), one never handed over, a worker not started yet, still starting or gone.

Only transactions with at least ``MIN_RESOURCES`` resources to write use the workers; below that the round
trip costs more than it saves. ``FHIR_HUB_VALIDATION_PROCESSES=0`` turns them off.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import sys
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fhir_hub.fhir.jsonio import dumps
from fhir_hub.fhir.validation import validate_resource
from fhir_hub.fhir.validation_worker import FRAME, READY, encode_request

log = logging.getLogger(__name__)

MIN_RESOURCES = 16
CHUNK = 16  # resources per request: the first verdicts come back while the worker validates the rest
_STOP_SECONDS = 5.0
_VERDICT_SECONDS = 30.0  # a worker silent this long is not waited for any more (validated in process)
_MAX_STARTS = 3  # workers that keep dying are given up on: validation then stays in process


class WorkerGone(RuntimeError):
    """The worker process stopped or broke the protocol; whatever it was asked is validated in process."""


@dataclass
class _Worker:
    process: asyncio.subprocess.Process
    answers: deque[asyncio.Future[bytes]] = field(default_factory=deque)  # in the order the requests went
    ready: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    reader: asyncio.Task[None] | None = None
    closed: bool = False  # the worker's output ended: nothing asked from now on can be answered

    @property
    def alive(self) -> bool:
        return (not self.closed and self.ready.done() and not self.ready.exception()
                and self.process.returncode is None)

    def ask(self, items: list[tuple[str, bytes]]) -> asyncio.Future[bytes]:
        answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        answer.add_done_callback(_retrieve)  # an answer nobody awaits (the transaction failed) stays quiet
        assert self.process.stdin is not None
        if self.closed:  # checked and appended in one step of the event loop: the reader cannot miss it
            answer.set_exception(WorkerGone("the validation worker stopped"))
            return answer
        self.answers.append(answer)
        self.process.stdin.write(encode_request(items))  # buffered by the transport: never blocks the loop
        return answer

    async def read_answers(self) -> None:
        assert self.process.stdout is not None
        stdout = self.process.stdout
        error: BaseException = WorkerGone("the validation worker stopped")
        try:
            while True:
                head = await stdout.readexactly(FRAME.size)
                payload = await stdout.readexactly(FRAME.unpack(head)[0])
                if not self.ready.done():
                    if payload != READY:
                        raise WorkerGone("the validation worker did not start as expected")
                    self.ready.set_result(None)
                elif self.answers:
                    self.answers.popleft().set_result(payload)
        except (asyncio.IncompleteReadError, ConnectionError, WorkerGone) as exc:
            error = exc if isinstance(exc, WorkerGone) else error
        finally:
            self.closed = True
            pending: list[asyncio.Future[Any]] = [self.ready, *self.answers]
            for waiting in pending:
                if not waiting.done():
                    waiting.set_exception(error)
            self.answers.clear()


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


@dataclass(frozen=True, slots=True)
class _Handed:
    body: bytes
    answer: asyncio.Future[bytes]
    index: int


class Handover:
    """Resources of one transaction on their way to the workers, ``CHUNK`` at a time (the last part when
    ``flush`` is called), so that a worker validates the first ones while the hub prepares the rest."""

    def __init__(self, ahead: ValidationAhead | None) -> None:
        self._ahead = ahead
        self._part: list[tuple[str, dict[str, Any]]] = []
        self.handed: list[int] = []

    def add(self, rtype: str, resource: dict[str, Any]) -> None:
        if self._ahead is None:
            return
        self._part.append((rtype, resource))
        if len(self._part) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        if self._ahead is not None and self._part and self._ahead.ready:
            self.handed += self._ahead._send(self._part)
        self._part = []


class ValidationAhead:
    """Validation worker processes, started on first use (or by ``start``), shared by the hub's requests."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._workers: list[_Worker] = []
        self._turn = itertools.count()
        self._handed: dict[int, _Handed] = {}  # id(resource) -> what a worker was given
        self._starts = 0
        self._starting: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        """Whether the workers can validate (until then, validation stays in process)."""
        return bool(self._workers) and all(w.alive for w in self._workers)

    async def start(self) -> None:
        """Start the workers (they import the models in the background; ``started`` waits for that).
        Concurrent calls share one start."""
        if self.processes <= 0 or self._workers:
            return
        if self._starting is None:
            self._starts += 1
            self._starting = asyncio.get_running_loop().create_task(self._spawn())
        starting = self._starting
        try:
            await asyncio.shield(starting)
        finally:
            if starting.done() and self._starting is starting:
                self._starting = None

    async def _spawn(self) -> None:
        workers = []
        for _ in range(self.processes):
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "fhir_hub.fhir.validation_worker",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                start_new_session=True)  # Ctrl-C reaches the hub, which then closes the worker's input
            worker = _Worker(process)
            worker.ready.add_done_callback(_retrieve)
            worker.reader = asyncio.create_task(worker.read_answers())
            workers.append(worker)
        self._workers = workers

    async def started(self) -> bool:
        """Start the workers and wait until they can validate; False if they could not start."""
        await self.start()
        try:
            await asyncio.gather(*(w.ready for w in self._workers))
        except WorkerGone as error:
            log.warning("validation workers did not start (%s); validating in process", error)
            return False
        return self.ready

    async def close(self) -> None:
        if self._starting is not None:  # let a start under way finish, so that its workers are closed too
            with contextlib.suppress(Exception):
                await self._starting
            self._starting = None
        workers, self._workers = self._workers, []
        for worker in workers:
            if worker.process.stdin is not None:
                worker.process.stdin.close()  # the worker stops at the end of its input
        for worker in workers:
            try:
                await asyncio.wait_for(worker.process.wait(), _STOP_SECONDS)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.kill()
                await worker.process.wait()
            if worker.reader is not None:
                await worker.reader

    @contextmanager
    def ahead(self, expected: int) -> Iterator[Handover]:
        """A ``Handover`` for the duration of the block: resources added to it go to the workers as they come,
        and a later ``check`` of the same content waits for a worker's verdict instead of validating again.
        ``expected``: how many resources the transaction writes (few: nothing is handed over)."""
        usable = self.processes > 0 and expected >= MIN_RESOURCES
        if usable and not self.ready:
            self._restart_soon()
            usable = False
        handover = Handover(self if usable else None)
        try:
            yield handover
        finally:
            for key in handover.handed:
                self._handed.pop(key, None)

    def _send(self, part: list[tuple[str, dict[str, Any]]]) -> list[int]:
        bodies = [dumps(resource) for _rtype, resource in part]
        worker = self._workers[next(self._turn) % len(self._workers)]
        answer = worker.ask([(rtype, body) for (rtype, _resource), body in zip(part, bodies, strict=True)])
        for index, ((_rtype, resource), body) in enumerate(zip(part, bodies, strict=True)):
            self._handed[id(resource)] = _Handed(body, answer, index)
        return [id(resource) for _rtype, resource in part]

    async def check(self, resource: dict[str, Any], rtype: str) -> None:
        """Raise what ``validate_resource`` raises for an invalid resource; return when it is valid."""
        handed = self._handed.pop(id(resource), None)
        if handed is not None:
            try:
                found = await asyncio.wait_for(asyncio.shield(handed.answer), _VERDICT_SECONDS)
            except (WorkerGone, TimeoutError) as error:
                log.warning("validation worker failed (%s); validating in process", error or "no answer")
            else:
                if found[handed.index] == 1 and dumps(resource) == handed.body:
                    return
        validate_resource(resource, expected_type=rtype)

    def _restart_soon(self) -> None:
        """Start the workers for the next large transaction (this one validates in process meanwhile);
        workers that died are replaced."""
        if self._workers and all(w.ready.done() for w in self._workers):
            dead, self._workers = self._workers, []
            log.warning("validation workers stopped; starting new ones")
            for worker in dead:
                if worker.process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        worker.process.kill()
        if self._workers:
            return
        if self._starts >= _MAX_STARTS:
            log.warning("validation workers failed %d times; validating in process from now on", self._starts)
            self.processes = 0
            return
        task = asyncio.get_running_loop().create_task(self.start())
        task.add_done_callback(_retrieve)
