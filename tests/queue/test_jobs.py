"""The priority queue's states, against the real store (``queue/jobs.py``)."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from fhir_hub.config import Settings
from fhir_hub.hub import Hub
from fhir_hub.queue.jobs import JobQueue, NewJob, errors, ready_key
from fhir_hub.store.schema import QUEUE

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def queue(hub: Hub, clock: Clock) -> AsyncIterator[JobQueue]:
    yield JobQueue(hub.store.db, hub.store.gate, clock=clock, lease_ms=1_000, max_attempts=3, backoff_ms=100)


def job(n: int, priority: int = 10, tier: str = "low", who: str | None = None) -> NewJob:
    return NewJob("test", {"n": n}, priority, tier, who=who)


def test_the_ready_key_sorts_by_priority_then_arrival() -> None:
    keys = [ready_key(5, 2), ready_key(9000, 7), ready_key(5, 1), ready_key(9000, 3)]
    assert sorted(keys) == [ready_key(9000, 3), ready_key(9000, 7), ready_key(5, 1), ready_key(5, 2)]
    with pytest.raises(ValueError):
        ready_key(10_000, 1)


async def test_claims_follow_priority_then_arrival_and_never_repeat(queue: JobQueue) -> None:
    await queue.enqueue([job(1, 10), job(2, 50), job(3, 10), job(4, 50)])
    claimed = [await queue.claim("w") for _ in range(5)]
    assert [c.body["n"] if c else None for c in claimed] == [2, 4, 1, 3, None]


async def test_a_high_priority_job_behind_100_000_low_ones_is_claimed_next(hub: Hub, queue: JobQueue) -> None:
    """Inserted straight into the collection as ``enqueue`` would (100,000 one by one would take minutes):
    the same documents, arrival numbers 1..100,000, then one high-priority job that arrived last."""
    docs = [{"_id": f"low-{n:06d}", "kind": "test", "body": {"n": n}, "p": 10, "tier": "low", "seq": n,
             "rk": ready_key(10, n), "st": "ready|low", "n": 0} for n in range(1, 100_001)]
    collection = hub.store.db[QUEUE]
    for start in range(0, len(docs), 5000):
        await collection.insert_many(docs[start:start + 5000], ordered=False)
    await hub.store.meta.update_one({"_id": "queue-seq"}, {"$set": {"n": 100_000}}, upsert=True)
    [urgent] = await queue.enqueue([job(-1, 9000, "high")])
    first = await queue.claim("w")
    assert first is not None and first.id == urgent
    second = await queue.claim("w")
    assert second is not None and second.id == "low-000001"
    status = await queue.status()
    assert status.of("ready") == 99_999 and status.of("leased") == 2


def _claim_all(uri: str, db_name: str, worker: str, found: Any) -> None:
    """One process claiming until the queue is empty (its own event loop, its own connection)."""
    async def run(queue: JobQueue) -> list[str]:
        mine = []
        while (claimed := await queue.claim(worker)) is not None:
            mine.append(claimed.id)
        return mine

    found.put(asyncio.run(_with_own_queue(uri, db_name, run)))


async def _with_own_queue(uri: str, db_name: str, work: Callable[[JobQueue], Awaitable[list[str]]]) -> list[str]:
    """``work`` on a queue of this process's own connection, as another machine's worker or hub would have."""
    from fhir_hub.store.transaction import WriteGate

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    try:
        return await work(JobQueue(client[db_name], WriteGate(False)))
    finally:
        await client.close()


def _in_processes(target: Callable[..., None], uri: str, db_name: str, names: list[str]) -> list[list[str]]:
    """``target(uri, db_name, name, found)`` in one spawned process per name, all at once; what each put."""
    context = multiprocessing.get_context("spawn")
    found = context.Queue()
    processes = [context.Process(target=target, args=(uri, db_name, name, found)) for name in names]
    for process in processes:
        process.start()
    results = [found.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    return results


async def test_workers_in_four_processes_claim_each_job_exactly_once(hub: Hub, queue: JobQueue,
                                                                     settings: Settings) -> None:
    ids = await queue.enqueue([job(n, n % 7) for n in range(400)])
    claimed = _in_processes(_claim_all, hub.mongodb_uri, settings.db_name, [f"w{i}" for i in range(4)])
    every = [job_id for mine in claimed for job_id in mine]
    assert sorted(every) == sorted(ids)  # each once: none lost, none claimed twice
    assert sum(1 for mine in claimed if mine) >= 2  # they did run at the same time


def _enqueue_some(uri: str, db_name: str, worker: str, found: Any) -> None:
    """One process queueing 10 batches of 5 jobs, its own event loop and connection; the ids it got."""
    async def run(queue: JobQueue) -> list[str]:
        ids = []
        for batch in range(10):
            ids += await queue.enqueue([job(batch * 5 + n) for n in range(5)])
        return ids

    found.put(asyncio.run(_with_own_queue(uri, db_name, run)))


async def test_four_processes_queueing_at_once_get_distinct_arrival_numbers(hub: Hub, settings: Settings) -> None:
    """The arrival counter (created by the first enqueue) is one atomic increment: never two jobs numbered
    alike, whoever creates it."""
    queued = _in_processes(_enqueue_some, hub.mongodb_uri, settings.db_name, [f"s{i}" for i in range(4)])
    ids = [job_id for mine in queued for job_id in mine]
    seqs = [doc["seq"] async for doc in hub.store.db[QUEUE].find({}, {"seq": 1})]
    assert len(ids) == len(set(ids)) == 200
    assert sorted(seqs) == list(range(1, 201))  # each number once, none skipped


async def test_an_expired_lease_is_claimed_again_and_counts_as_an_attempt(queue: JobQueue, clock: Clock) -> None:
    await queue.enqueue([job(1)])
    first = await queue.claim("crashed")
    assert first is not None and await queue.claim("other") is None
    clock.now += 999
    assert await queue.requeue_due() == 0  # still leased
    clock.now += 2
    assert await queue.requeue_due() == 1
    again = await queue.claim("other")
    assert again is not None and again.id == first.id and again.attempts == 1
    assert not await queue.heartbeat(first) and not await queue.complete(first)  # the first worker lost it
    assert await queue.heartbeat(again) and await queue.complete(again, {"created": 3})
    stored = await queue.get(first.id)
    assert stored is not None and stored["st"] == "done|low" and stored["res"] == {"created": 3}
    assert errors(stored) == [(1_001_001, "lease of crashed expired")]


async def test_a_heartbeat_keeps_the_lease(queue: JobQueue, clock: Clock) -> None:
    await queue.enqueue([job(1)])
    claimed = await queue.claim("w")
    assert claimed is not None
    for _ in range(5):
        clock.now += 800
        assert await queue.heartbeat(claimed)
        assert await queue.requeue_due() == 0
    assert await queue.claim("other") is None


async def test_failures_back_off_then_go_to_the_dead_letters_with_their_errors(queue: JobQueue, clock: Clock) -> None:
    await queue.enqueue([job(1)])
    for attempt, backoff in enumerate((100, 200), start=1):
        claimed = await queue.claim("w")
        assert claimed is not None and claimed.attempts == attempt - 1
        assert await queue.fail(claimed, f"boom {attempt}") == "delayed"
        clock.now += backoff - 1
        await queue.requeue_due()
        assert await queue.claim("w") is None  # still backing off
        clock.now += 1
        assert await queue.requeue_due() == 1
    last = await queue.claim("w")
    assert last is not None
    assert await queue.fail(last, "boom 3") == "dead"
    clock.now += 10_000
    await queue.requeue_due()
    assert await queue.claim("w") is None
    stored = await queue.get(last.id)
    assert stored is not None and [e for _at, e in errors(stored)] == ["boom 1", "boom 2", "boom 3"]
    assert (await queue.status()).of("dead") == 1
    assert await queue.retry() == 1  # an operator's retry: attempts reset, errors kept
    retried = await queue.claim("w")
    assert retried is not None and retried.attempts == 0 and retried.id == last.id


async def test_raising_a_person_s_priority_moves_their_pending_jobs_up(queue: JobQueue) -> None:
    await queue.enqueue([job(1, 10, who="cccd|1"), job(2, 10, who="cccd|2"), job(3, 10, who="cccd|1"),
                         job(4, 500, "medium")])
    assert await queue.reprioritise("cccd|2", 9000, "high") == 1
    assert await queue.reprioritise("cccd|1", 5, "low") == 0  # never lowered
    claimed = [await queue.claim("w") for _ in range(4)]
    assert [c.body["n"] if c else None for c in claimed] == [2, 4, 1, 3]
    status = await queue.status()
    assert status.of("leased", "high") == 1 and status.of("leased", "low") == 2


async def test_counts_by_state_and_tier(queue: JobQueue) -> None:
    await queue.enqueue([job(1, 9000, "high"), job(2, 10), job(3, 10)])
    claimed = await queue.claim("w")
    assert claimed is not None
    await queue.complete(claimed)
    status = await queue.status()
    assert status.counts == {"done": {"high": 1}, "ready": {"low": 2}}


async def test_a_job_claimed_while_it_is_raised_is_not_made_claimable_again(queue: JobQueue) -> None:
    """The window between ``reprioritise`` finding a ready job and raising it: a worker claims it meanwhile
    (and has not yet written its state). Raising it then must not give it a ready key again."""
    await queue.enqueue([job(1, 10, who="cccd|1")])
    stale = [doc async for doc in queue.collection.find({"who": "cccd|1"})]
    claimed = await queue.claim("w")
    assert claimed is not None
    await queue.collection.update_one({"_id": claimed.id}, {"$set": {"st": "ready|low"}})  # the claim's 2nd step

    class Stale:
        def __aiter__(self) -> Any:
            async def docs() -> Any:
                for doc in stale:
                    yield doc
            return docs()

    real = queue.collection

    class Collection:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def find(self, *_args: Any, **_kwargs: Any) -> Stale:
            return Stale()

    queue.collection = Collection()  # type: ignore[assignment]
    await queue.reprioritise("cccd|1", 9000, "high")
    queue.collection = real
    assert await queue.claim("other") is None
