"""Coalesced reads by ``_id`` (``store/point_reads.py``): reads in flight together share one command, and a
read never gets an answer from a command sent before it was asked (that would be a stale read)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.collection import AsyncCollection

from fhir_hub.config import Settings
from fhir_hub.store.point_reads import PointReads

pytestmark = pytest.mark.anyio
Doc = dict[str, Any]


def _field(doc: Doc | None, name: str) -> Any:
    assert doc is not None
    return doc[name]


class Commands(monitoring.CommandListener):
    def __init__(self) -> None:
        self.finds: list[Doc] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find":
            self.finds.append(event.command["filter"])

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[tuple[AsyncCollection[Doc], Commands]]:
    commands = Commands()
    client: AsyncMongoClient[Doc] = AsyncMongoClient(settings.mongodb_uri, event_listeners=[commands])
    collection = client[settings.db_name]["docs"]
    await collection.insert_many([{"_id": f"k{i}", "v": 1} for i in range(30)])
    commands.finds.clear()
    yield collection, commands
    await client.drop_database(settings.db_name)
    await client.close()


class HeldAnswers:
    """The collection, except that each command's answer is held (after the command was really sent and
    answered by the store) until the test releases it: the window in which a later read could wrongly be
    handed an earlier command's answer."""

    def __init__(self, collection: AsyncCollection[Doc]) -> None:
        self.collection = collection
        self.release = asyncio.Event()
        self.sent = 0
        self.fail_next = False

    async def find_one(self, query: Doc, projection: Doc | None = None) -> Doc | None:
        doc = await self.collection.find_one(query, projection)
        self.sent += 1
        await self.release.wait()
        return doc

    def find(self, query: Doc, projection: Doc | None = None) -> AsyncIterator[Doc]:
        return self._find(query, projection)

    async def _find(self, query: Doc, projection: Doc | None) -> AsyncIterator[Doc]:
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("the store went away")
        docs = await self.collection.find(query, projection).to_list()
        self.sent += 1
        await self.release.wait()
        for doc in docs:
            yield doc


async def _one_in_flight(collection: AsyncCollection[Doc]) -> tuple[HeldAnswers, PointReads, asyncio.Task[Any]]:
    """Reads whose answers are held, and a read of k1 sent (answered by the store) but not handed back."""
    held = HeldAnswers(collection)
    reads = PointReads(held)  # type: ignore[arg-type]  # the same two methods, answers held
    first = asyncio.create_task(reads.get("k1"))
    while held.sent < 1:
        await asyncio.sleep(0.001)
    return held, reads, first


async def test_reads_in_flight_together_share_one_command(store: tuple[AsyncCollection[Doc], Commands]) -> None:
    collection, commands = store
    reads = PointReads(collection)
    keys = [f"k{i}" for i in range(20)] + ["k3", "k3", "missing"]
    found = await asyncio.gather(*(reads.get(key) for key in keys))
    assert [doc and doc["_id"] for doc in found] == [*keys[:-1], None]
    # the first read went alone, at once; the other 22 waited for it and then went together
    assert len(commands.finds) == 2
    assert commands.finds[0] == {"_id": "k0"}
    assert sorted(commands.finds[1]["_id"]["$in"]) == sorted(set(keys[1:]))


async def test_a_lone_read_is_sent_at_once_each_time(store: tuple[AsyncCollection[Doc], Commands]) -> None:
    collection, commands = store
    reads = PointReads(collection)
    for i in range(5):
        assert (await reads.get(f"k{i}")) == {"_id": f"k{i}", "v": 1}
    assert commands.finds == [{"_id": f"k{i}"} for i in range(5)]


async def test_a_read_asked_after_a_write_never_gets_an_answer_sent_before_it(
        store: tuple[AsyncCollection[Doc], Commands]) -> None:
    collection, _ = store
    held, reads, early = await _one_in_flight(collection)  # answered by the store with v 1
    await collection.update_one({"_id": "k1"}, {"$set": {"v": 2}})
    late = asyncio.create_task(reads.get("k1"))  # asked after the write: must see v 2
    await asyncio.sleep(0.01)
    held.release.set()
    assert _field(await early, "v") == 1
    assert _field(await late, "v") == 2
    assert held.sent == 2
    await collection.update_one({"_id": "k1"}, {"$set": {"v": 3}})
    assert _field(await reads.get("k1"), "v") == 3  # and nothing answered is kept for a later read


async def test_a_failed_command_fails_its_reads_only(store: tuple[AsyncCollection[Doc], Commands]) -> None:
    held, reads, first = await _one_in_flight(store[0])
    held.fail_next = True
    batch = [asyncio.create_task(reads.get(key)) for key in ("k2", "k3")]
    await asyncio.sleep(0.01)
    held.release.set()
    assert _field(await first, "_id") == "k1"
    for task in batch:
        with pytest.raises(RuntimeError, match="went away"):
            await task
    assert _field(await reads.get("k4"), "_id") == "k4"


async def test_a_cancelled_read_leaves_the_others_their_answers(
        store: tuple[AsyncCollection[Doc], Commands]) -> None:
    held, reads, first = await _one_in_flight(store[0])
    gone, kept = asyncio.create_task(reads.get("k2")), asyncio.create_task(reads.get("k2"))
    await asyncio.sleep(0.01)
    gone.cancel()
    held.release.set()
    assert _field(await first, "_id") == "k1"
    assert _field(await kept, "_id") == "k2"
    assert gone.cancelled()
    # the next lone read still goes at once: nothing is left counted as in flight
    assert _field(await reads.get("k5"), "_id") == "k5"
    assert reads._in_flight == 0
