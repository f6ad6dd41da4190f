"""The durable priority queue: one MongoDB document per job, claimed highest priority first, atomically.

**Strict priority.** A job that may be claimed carries ``rk``, its *ready key*: the inverted priority then
the arrival number, zero-padded (``"0000|0000000000000042"`` is priority ``MAX_PRIORITY``, 42nd to arrive).
A claim is one ``find_one_and_update`` on the documents that have ``rk``, sorted by it, which removes ``rk``
and writes the lease in the same step: the server serialises it per document, so two workers never claim
one job, and the job claimed is always the first in (priority, arrival) order, however many jobs of lower
priority were queued before it (job libraries that sort by time and use priority as a tie-breaker, such as
Agenda's, let a backlog starve urgent work). ``rk`` is a scalar string under a sparse single-field index:
the shape both MongoDB and nx-27017 answer from the index (nx does not use compound indexes, and mis-answers
queries on indexed arrays), measured at ~2-3 ms per claim behind 100,000 queued jobs.

**Leases and timers.** A claimed job holds a lease until ``due`` (milliseconds since the epoch); its worker
extends it by heartbeats, each conditional on the lease token it was given, so a worker that lost its job
(its lease expired and another claimed it) learns so and stops. A failed job waits in ``delayed`` until its
back-off ``due``. One ``due`` field serves both: any worker's ``requeue_due`` puts every job whose ``due``
has passed back in the ready set with its old ``rk`` (an expired lease counts as a failed attempt, so a
job that kills its workers ends in the dead-letter list). After ``max_attempts`` failures a job is
``dead`` with every error kept, until an operator retries it.

**Counts** come from one ``$group`` on ``st`` (state and tier): nx-27017 answers ``count_documents`` by a
full scan (~1 s per 100,000 jobs) but groups on a field in ~10 ms.

The processing itself is the caller's (``worker.py``): this module only moves jobs between states.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import OperationFailure

from fhir_hub.store.schema import META, QUEUE
from fhir_hub.store.transaction import WriteGate

MAX_PRIORITY = 9999
_ONCE_REMEMBERED = 10_000  # enqueue_once keys remembered per process
STATES = ("ready", "leased", "delayed", "done", "dead")
TIERS = ("high", "medium", "low")  # the risk rules' tiers (profiles/risk), highest first
Clock = Callable[[], int]  # milliseconds since the epoch


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


def ready_key(priority: int, seq: int) -> str:
    """Sorts by priority (highest first), then arrival: the claim order."""
    if not 0 <= priority <= MAX_PRIORITY:
        raise ValueError(f"priority {priority} outside 0..{MAX_PRIORITY}")
    return f"{MAX_PRIORITY - priority:04d}|{seq:016d}"


@dataclass(frozen=True)
class NewJob:
    kind: str  # what processes it (``worker.py`` looks the handler up by kind)
    body: dict[str, Any]  # what the handler needs, stored with the job
    priority: int
    tier: str  # the priority tier, for counting ("high", "medium", "low")
    who: str | None = None  # the person's strongest identifier key: re-prioritisation finds its jobs by it
    batch: str | None = None  # e.g. the archived payload the job came from: its status URL counts by it
    changes_on: str | None = None  # ISO day its priority may rise with no new data (a 60th birthday)


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    body: dict[str, Any]
    priority: int
    tier: str
    seq: int
    attempts: int  # failed attempts before this claim
    token: str  # this claim's lease token
    who: str | None
    batch: str | None
    changes_on: str | None = None

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Job:
        return cls(doc["_id"], doc["kind"], doc["body"], doc["p"], doc["tier"], doc["seq"], doc.get("n", 0),
                   doc.get("token", ""), doc.get("who"), doc.get("b"), doc.get("nc"))


@dataclass
class Status:
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # state -> tier -> jobs

    def of(self, state: str, tier: str | None = None) -> int:
        by_tier = self.counts.get(state, {})
        return by_tier.get(tier, 0) if tier is not None else sum(by_tier.values())


class JobQueue:
    def __init__(self, db: Any, gate: WriteGate, *, clock: Clock = wall_clock_ms, lease_ms: int = 30_000,
                 max_attempts: int = 5, backoff_ms: int = 1_000) -> None:
        self.collection = db[QUEUE]
        self.meta = db[META]
        self.gate = gate
        self.clock = clock
        self.lease_ms = lease_ms
        self.max_attempts = max_attempts
        self.backoff_ms = backoff_ms
        self._queued_once: OrderedDict[str, None] = OrderedDict()  # enqueue_once's keys, oldest first

    # ------------------------------------------------------------------------------------------ in
    async def enqueue(self, jobs: Sequence[NewJob]) -> list[str]:
        """Queue ``jobs`` (ready at once), numbered in the order given; their ids."""
        if not jobs:
            return []
        first = await self._numbers(len(jobs))
        now = self.clock()
        docs = [self._doc(job, first + n, now) for n, job in enumerate(jobs)]
        async with self.gate.shared():
            for start in range(0, len(docs), 1000):
                await self.collection.insert_many(docs[start:start + 1000], ordered=False)
        return [d["_id"] for d in docs]

    async def enqueue_once(self, job: NewJob, key: str, *, due: int | None = None) -> bool:
        """Queue ``job`` under the id ``key`` unless a job has it already (in any state): whether it was
        queued. The unique ``_id`` makes it race-free across processes (the same write seen by two hubs); the
        keys this process queued lately are remembered, so a person's tenth write in a window costs nothing.
        ``due`` (ms): not claimable before then; it waits as a delayed job, raised like one, until a worker's
        ``requeue_due`` makes it ready."""
        if self.queued_lately(key):
            return False
        now = self.clock()
        # numbered by the clock, not the shared counter (one request less on a write's path): it waits behind
        # the counted jobs of its priority, which arrived earlier anyway
        doc = self._doc(job, now * 1000 + secrets.randbelow(1000), now, key, due=due if due is not None and due > now
                        else None)
        try:
            async with self.gate.shared():
                await self.collection.insert_one(doc)
        except OperationFailure:  # a duplicate key (nx-27017 may report another code): there already?
            if await self.collection.find_one({"_id": key}, {"_id": 1}) is None:
                raise
            self._remember(key)
            return False
        self._remember(key)
        return True

    def queued_lately(self, key: str) -> bool:
        """Whether this process queued (or found queued) ``key`` lately: no need to ask the store."""
        return key in self._queued_once

    def _remember(self, key: str) -> None:
        self._queued_once[key] = None
        if len(self._queued_once) > _ONCE_REMEMBERED:
            self._queued_once.popitem(last=False)

    @staticmethod
    def _doc(job: NewJob, seq: int, now: int, job_id: str | None = None, *, due: int | None = None
             ) -> dict[str, Any]:
        """A new job's document: ready (with its claim key), or delayed until ``due`` (ms; none until then)."""
        doc: dict[str, Any] = {"_id": job_id or f"job-{seq:016d}-{secrets.token_hex(4)}", "kind": job.kind,
                               "body": job.body, "p": job.priority, "tier": job.tier, "seq": seq, "n": 0, "at": now}
        if due is None:
            doc.update(rk=ready_key(job.priority, seq), st=f"ready|{job.tier}")
        else:
            doc.update(st=f"delayed|{job.tier}", due=due)
        if job.who is not None:
            doc["who"] = job.who
        if job.batch is not None:
            doc["b"] = job.batch
        if job.changes_on is not None:
            doc["nc"] = job.changes_on
        return doc

    async def _numbers(self, count: int) -> int:
        """The first of ``count`` consecutive arrival numbers, reserved atomically (one counter for every
        process)."""
        async with self.gate.shared():
            doc = await self.meta.find_one_and_update({"_id": "queue-seq"}, {"$inc": {"n": count}}, upsert=True,
                                                      return_document=ReturnDocument.AFTER)
        return int(doc["n"]) - count + 1

    # ------------------------------------------------------------------------------------------ claims
    async def claim(self, worker: str) -> Job | None:
        """The ready job that comes first in (priority, arrival) order, leased to ``worker``; None if none."""
        token = secrets.token_hex(8)
        now = self.clock()
        async with self.gate.shared():
            doc = await self.collection.find_one_and_update(
                {"rk": {"$exists": True}},
                {"$unset": {"rk": ""}, "$set": {"owner": worker, "token": token, "due": now + self.lease_ms,
                                                "claimed": now}},
                sort=[("rk", 1)], return_document=ReturnDocument.AFTER)
        if doc is None:
            return None
        # the state for counting only: the claim itself is ``rk`` gone and the lease written, in one step
        async with self.gate.shared():
            await self.collection.update_one({"_id": doc["_id"], "token": token},
                                             {"$set": {"st": f"leased|{doc['tier']}"}})
        return Job.from_doc(doc)

    async def heartbeat(self, job: Job) -> bool:
        """Extend ``job``'s lease; False when the job is no longer this claim's (expired and claimed again)."""
        async with self.gate.shared():
            result = await self.collection.update_one({"_id": job.id, "token": job.token},
                                                      {"$set": {"due": self.clock() + self.lease_ms}})
        return result.matched_count == 1

    async def complete(self, job: Job, result: dict[str, Any] | None = None) -> bool:
        """Mark ``job`` done; False when its lease was lost (another worker has it now: its result stands)."""
        now = self.clock()
        async with self.gate.shared():
            updated = await self.collection.update_one(
                {"_id": job.id, "token": job.token},
                {"$set": {"st": f"done|{job.tier}", "done": now, "res": result or {}},
                 "$unset": {"due": "", "owner": "", "token": "", "nc": ""}})
        return updated.matched_count == 1

    async def fail(self, job: Job, error: str) -> str | None:
        """Record a failed attempt: back to the queue after a back-off, or ``dead`` after ``max_attempts``;
        the state it went to (None: the lease was lost, nothing changed)."""
        attempts = job.attempts + 1
        now = self.clock()
        dead = attempts >= self.max_attempts
        state = "dead" if dead else "delayed"
        change: dict[str, Any] = {"$set": {"n": attempts, "err": error, "st": f"{state}|{job.tier}"},
                                  "$push": {"errs": _error(now, error)},
                                  "$unset": {"owner": "", "token": ""}}
        if dead:
            change["$unset"]["due"] = ""
        else:
            change["$set"]["due"] = now + self.backoff_ms * 2 ** (attempts - 1)
        async with self.gate.shared():
            updated = await self.collection.update_one({"_id": job.id, "token": job.token}, change)
        return state if updated.matched_count == 1 else None

    async def requeue_due(self, limit: int = 500) -> int:
        """Every job whose ``due`` has passed back in the ready set: a delayed job after its back-off, a
        leased one whose worker stopped heart-beating (an attempt failed: its error says so). Each move is
        conditional on the ``due`` it was found with, so a heartbeat that came first wins."""
        now = self.clock()
        moved = 0
        found = [doc async for doc in self.collection.find({"due": {"$lte": now}},
                                                             {"p": 1, "seq": 1, "due": 1, "tier": 1, "n": 1,
                                                              "owner": 1, "st": 1}).limit(limit)]
        for doc in found:
            expired = doc.get("owner") is not None  # leased, not delayed
            attempts = doc.get("n", 0) + (1 if expired else 0)
            if expired and attempts >= self.max_attempts:
                change: dict[str, Any] = {
                    "$set": {"n": attempts, "st": f"dead|{doc['tier']}", "err": "lease expired: the worker stopped"},
                    "$push": {"errs": _error(now, f"lease of {doc['owner']} expired")},
                    "$unset": {"due": "", "owner": "", "token": ""}}
            else:
                change = {"$set": {"rk": ready_key(doc["p"], doc["seq"]), "st": f"ready|{doc['tier']}", "n": attempts},
                          "$unset": {"due": "", "owner": "", "token": ""}}
                if expired:
                    change["$push"] = {"errs": _error(now, f"lease of {doc['owner']} expired")}
            async with self.gate.shared():
                # on the due and priority it was read with: a heartbeat or a raise meanwhile wins, until next time
                result = await self.collection.update_one({"_id": doc["_id"], "due": doc["due"], "p": doc["p"]},
                                                          change)
            moved += result.modified_count
        return moved

    # ------------------------------------------------------------------------------------------ operators
    async def retry(self, job_ids: Iterable[str] | None = None) -> int:
        """Put dead jobs back in the queue with their attempts reset (their errors kept): those named, or all."""
        moved = 0
        wanted = set(job_ids) if job_ids is not None else None
        for tier in TIERS:
            async for doc in self.collection.find({"st": f"dead|{tier}"}, {"p": 1, "seq": 1, "tier": 1, "st": 1}):
                if wanted is not None and doc["_id"] not in wanted:
                    continue
                async with self.gate.shared():
                    result = await self.collection.update_one(
                        {"_id": doc["_id"], "st": doc["st"]},
                        {"$set": {"rk": ready_key(doc["p"], doc["seq"]), "st": f"ready|{doc['tier']}", "n": 0}})
                moved += result.modified_count
        return moved

    async def reprioritise(self, who: str, priority: int, tier: str) -> int:
        """Raise the waiting jobs of the person known by ``who`` to ``priority`` (never lower them): a more
        urgent record moves their remaining work up. A ready job gets a new ``rk`` (same arrival number),
        only while it is still unclaimed: the update is conditional on the ``rk`` it was found with, which a
        claim removes atomically (so a raised job is never made claimable again while a worker runs it). A
        delayed job is raised while it is still delayed, and requeued later with the new priority. A job
        running now is left as it is."""
        moved = 0
        async for doc in self.collection.find({"who": who}, {"p": 1, "seq": 1, "rk": 1, "st": 1, "due": 1}):
            state = str(doc.get("st", "")).split("|")[0]
            if doc["p"] >= priority:
                continue
            change: dict[str, Any] = {"$set": {"p": priority, "tier": tier}}
            if "rk" in doc:
                condition = {"_id": doc["_id"], "rk": doc["rk"]}
                change["$set"] |= {"rk": ready_key(priority, doc["seq"]), "st": f"ready|{tier}"}
            elif state == "delayed":
                condition = {"_id": doc["_id"], "st": doc["st"], "due": doc.get("due")}
                change["$set"]["st"] = f"delayed|{tier}"
            else:
                continue  # running, done or dead
            async with self.gate.shared():
                result = await self.collection.update_one(condition, change)
            moved += result.modified_count
        return moved

    async def changing(self, today: str, limit: int = 500) -> list[Job]:
        """Waiting jobs whose priority may change by ``today`` (ISO day) with no new data: their ``changes_on``
        has come. Done and dead jobs are left alone (their change day is dropped when they finish)."""
        waiting = []
        async for doc in self.collection.find({"nc": {"$lte": today}}).limit(limit):
            if "rk" in doc or str(doc.get("st", "")).startswith("delayed"):
                waiting.append(Job.from_doc(doc))
            elif not str(doc.get("st", "")).startswith("leased"):  # dead: nothing left to raise
                async with self.gate.shared():
                    await self.collection.update_one({"_id": doc["_id"], "nc": doc["nc"]}, {"$unset": {"nc": ""}})
        return waiting

    async def changed(self, job: Job, was: str, changes_on: str | None) -> None:
        """Record the next day the job's priority may change (None: never), if no one else did meanwhile."""
        change: dict[str, Any] = {"$set": {"nc": changes_on}} if changes_on else {"$unset": {"nc": ""}}
        async with self.gate.shared():
            await self.collection.update_one({"_id": job.id, "nc": was}, change)

    # ------------------------------------------------------------------------------------------ reading
    async def highest(self, who: str) -> tuple[int, str] | None:
        """The highest priority among the jobs of the person known by ``who``, with its tier (None: none)."""
        jobs = self.collection.find({"who": who}, {"p": 1, "tier": 1})
        found = [(int(doc["p"]), str(doc["tier"])) async for doc in jobs]
        return max(found) if found else None

    async def status(self) -> Status:
        """Jobs by state and tier. An aggregation, so under the write gate (``store/count.py`` says why: on
        nx-27017 it would release the savepoint of a transaction another request has open)."""
        status = Status()
        async with self.gate.shared():
            groups = await (await self.collection.aggregate([{"$group": {"_id": "$st", "n": {"$sum": 1}}}])).to_list()
        for doc in groups:
            state, _, tier = str(doc["_id"]).partition("|")
            status.counts.setdefault(state, {})[tier] = int(doc["n"])
        return status

    async def get(self, job_id: str) -> dict[str, Any] | None:
        doc: dict[str, Any] | None = await self.collection.find_one({"_id": job_id})
        return doc


def _error(at: int, error: str) -> str:
    """One kept error, as ``"<ms since the epoch>|<message>"``: a string, because nx-27017 stores a
    subdocument given to ``$push`` as its JSON text (MongoDB would keep the document); ``errors`` reads it."""
    return f"{at}|{error}"


def errors(doc: dict[str, Any]) -> list[tuple[int, str]]:
    """A job document's kept errors, oldest first: (milliseconds since the epoch, message)."""
    found = []
    for item in doc.get("errs") or []:
        at, _, message = str(item).partition("|")
        found.append((int(at) if at.isdigit() else 0, message))
    return found
