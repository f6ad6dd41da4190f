"""The write path against the real store: versions under concurrency, repair after a crash, fallbacks."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools

import orjson
import pytest

from fhir_hub.auth.caller import Caller
from fhir_hub.config import Settings
from fhir_hub.errors import BadRequest, HubError, PreconditionFailed
from fhir_hub.hub import Hub, running_hub
from fhir_hub.search.indexing import index_format, index_keys
from fhir_hub.search.keys import token_match
from fhir_hub.store.index_docs import entries_in, pack
from fhir_hub.store.plan import set_document
from fhir_hub.store.records import (
    Derived,
    EntryMatch,
    SearchEntry,
    StoredVersion,
    VersionChange,
    VersionTaken,
    deletion_entries,
)
from fhir_hub.store.schema import SEARCH_INDEX
from fhir_hub.store.writer import Create, Delete, Update, Writer

pytestmark = pytest.mark.anyio
HUB = Caller.hub("test")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The write protocol on its own: with patient matching on, each Patient written here would also make
    a master record (with its own versions, index entries and clock ticks); tests/linking covers those."""
    return dataclasses.replace(settings, link_patients=False)


def patient(rid: str | None = None, **extra: object) -> dict[str, object]:
    body: dict[str, object] = {"resourceType": "Patient", **extra}
    if rid is not None:
        body["id"] = rid
    return body


async def matching(hub: Hub, match: EntryMatch) -> set[str]:
    return {entry["r"] for entry in await hub.store.entries(match)}


async def live_count(hub: Hub, key: str) -> int:
    return await hub.store.current_docs.count_documents({"_id": key, "live": {"$exists": True}})


async def test_concurrent_updates_get_distinct_versions_and_none_is_lost(hub: Hub) -> None:
    await hub.writer.commit(Update("Patient", "p1", patient("p1")), caller=HUB)
    results = await asyncio.gather(
        *(
            hub.writer.commit(Update("Patient", "p1", patient("p1", birthDate=f"19{10 + i}")), caller=HUB)
            for i in range(20)
        )
    )
    vids = sorted(r.version.vid for r in results)
    assert vids == list(range(2, 22))
    history = await hub.store.history(rtype="Patient", rid="p1", limit=100)
    assert [v.vid for v in history.versions] == list(range(21, 0, -1))
    stored_dates = {orjson.loads(v.json)["birthDate"] for v in history.versions if v.vid > 1}
    assert stored_dates == {f"19{10 + i}" for i in range(20)}  # every update kept, none overwritten
    assert await live_count(hub, "Patient/p1") == 1
    assert (await hub.store.current("Patient", "p1")).vid == 21


async def test_concurrent_updates_with_the_same_if_match_let_exactly_one_win(hub: Hub) -> None:
    await hub.writer.commit(Update("Patient", "p2", patient("p2")), caller=HUB)
    outcomes = await asyncio.gather(
        *(
            hub.writer.commit(Update("Patient", "p2", patient("p2", active=True), if_match=1), caller=HUB)
            for _ in range(10)
        ),
        return_exceptions=True,
    )
    winners = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(winners) == 1 and winners[0].version.vid == 2
    assert all(isinstance(o, PreconditionFailed) for o in outcomes if isinstance(o, BaseException))
    assert (await hub.store.current("Patient", "p2")).vid == 2


async def test_concurrent_update_as_create_creates_once(hub: Hub) -> None:
    results = await asyncio.gather(
        *(hub.writer.commit(Update("Patient", "new", {**patient("new"), "birthDate": f"200{i}"}), caller=HUB)
          for i in range(8))  # each a change: an identical update stores no version
    )
    assert sum(r.created for r in results) == 1
    assert sorted(r.version.vid for r in results) == list(range(1, 9))


async def test_last_updated_increases_even_when_the_clock_goes_back(hub: Hub) -> None:
    times = iter([5_000_000, 4_000_000, 3_000_000])
    writer = Writer(
        hub.store, clock=lambda: next(times), new_id=lambda: "fixed", source_prefix="urn:test", link_patients=False
    )
    first = await writer.commit(Create("Patient", patient()), caller=HUB)
    second = await writer.commit(Update("Patient", "fixed", {**patient("fixed"), "gender": "other"}), caller=HUB)
    third = await writer.commit(Delete("Patient", "fixed"), caller=HUB)
    assert first.version.rid == "fixed"
    assert first.version.ts < second.version.ts < third.version.ts
    assert orjson.loads(second.version.json)["meta"]["lastUpdated"] == "1970-01-01T00:00:05.000001+00:00"


async def test_update_body_must_carry_the_url_id(hub: Hub) -> None:
    with pytest.raises(BadRequest, match="must carry the id"):
        await hub.writer.commit(Update("Patient", "p3", patient()), caller=HUB)
    with pytest.raises(BadRequest, match="'other'"):
        await hub.writer.commit(Update("Patient", "p3", patient("other")), caller=HUB)
    with pytest.raises(HubError):
        await hub.writer.commit(Update("Patient", "bad id!", patient("bad id!")), caller=HUB)
    assert await hub.store.current("Patient", "p3") is None


async def test_reconcile_repairs_a_write_left_half_done(hub: Hub) -> None:
    """Simulate a crash after the commit point: version stored, search entries not applied."""
    ident = {"system": "urn:a", "value": "1"}
    first = await hub.writer.commit(Update("Patient", "p4", patient("p4", identifier=[ident])), caller=HUB)
    crashed = StoredVersion(
        "Patient",
        "p4",
        2,
        10**17,
        "PUT",
        deleted=False,
        json=orjson.dumps(patient("p4", identifier=[{"system": "urn:b", "value": "2"}])),
    )
    await hub.store.history_docs.insert_one(first.version.history_doc())
    half_done = set_document(crashed.current_doc() | {"pending": True})
    await hub.store.current_docs.update_one({"_id": "Patient/p4"}, half_done)
    stale_doc = pack("Patient/p4", [SearchEntry("Patient|identifier|stale", "")])[0] | {"_id": "Patient/p4|9"}
    await hub.store.index.insert_one(stale_doc)
    assert await hub.store.reconcile_pending() == 1
    keys = {e async for d in hub.store.index.find({"r": "Patient/p4"}) for e in entries_in(d)}
    assert keys == set(index_keys("Patient", orjson.loads(crashed.json)))
    assert await hub.store.current_docs.count_documents({"pending": True}) == 0
    assert await hub.store.reconcile_pending() == 0
    assert await matching(hub, token_match("Patient", "identifier", "urn:a", "1")) == set()
    assert await matching(hub, token_match("Patient", "identifier", "urn:b", "2")) == {"Patient/p4"}


async def test_writer_finishes_a_stale_pending_version_before_building_on_it(hub: Hub) -> None:
    first = await hub.writer.commit(Update("Patient", "p5", patient("p5", identifier=[{"value": "old"}])), caller=HUB)
    stale = StoredVersion(
        "Patient",
        "p5",
        2,
        first.version.ts + 1,
        "PUT",
        deleted=False,
        json=orjson.dumps(patient("p5", identifier=[{"value": "mid"}])),
    )
    await hub.store.history_docs.insert_one(first.version.history_doc())
    half_done = set_document(stale.current_doc() | {"pending": True})
    await hub.store.current_docs.update_one({"_id": "Patient/p5"}, half_done)
    later = Writer(
        hub.store,
        clock=lambda: hub.writer.clock() + 10_000_000,
        new_id=hub.writer.new_id,
        source_prefix="urn:test",
    )  # ten seconds on: the pending version's writer is presumed dead
    result = await later.commit(Update("Patient", "p5", patient("p5", identifier=[{"value": "new"}])), caller=HUB)
    assert result.version.vid == 3
    keys = {e async for d in hub.store.index.find({"r": "Patient/p5"}) for e in entries_in(d)}
    assert keys == set(index_keys("Patient", orjson.loads(result.version.json)))
    history = await hub.store.history(rtype="Patient", rid="p5", limit=10)
    assert [v.vid for v in history.versions] == [3, 2, 1]


async def test_a_lost_race_leaves_no_trace(hub: Hub) -> None:
    """A writer that read version 1 after another wrote version 2 must not overwrite it."""
    first = await hub.writer.commit(Update("Patient", "p6", patient("p6", identifier=[{"value": "a"}])), caller=HUB)
    await hub.writer.commit(Update("Patient", "p6", patient("p6", identifier=[{"value": "b"}])), caller=HUB)
    late = StoredVersion("Patient", "p6", 2, 10**17, "PUT", deleted=False, json=b'{"resourceType":"Patient"}')
    entries = pack("Patient/p6", {SearchEntry("Patient|identifier|c", "")})
    change = VersionChange(late, first.version, (Derived(SEARCH_INDEX, entries),))
    with pytest.raises(VersionTaken):
        await hub.store.write(change)
    current = await hub.store.current("Patient", "p6")
    assert current is not None and orjson.loads(current.json)["identifier"] == [{"value": "b"}]
    assert await matching(hub, token_match("Patient", "identifier", None, "c")) == set()


async def test_sequential_fallback_writes_the_same_state(hub: Hub) -> None:
    """Servers without client-level bulkWrite (MongoDB < 8.0) get the same operations one by one."""
    hub.store.capabilities = dataclasses.replace(hub.store.capabilities, client_bulk_write=False)
    ids = itertools.count()
    writer = Writer(
        hub.store, clock=hub.writer.clock, new_id=lambda: f"s{next(ids)}", source_prefix="urn:test", link_patients=False
    )
    created = await writer.commit(
        Create("Patient", patient(identifier=[{"system": "urn:x", "value": "7"}])), caller=HUB
    )
    await writer.commit(
        Update("Patient", "s0", patient("s0", identifier=[{"system": "urn:x", "value": "8"}])), caller=HUB
    )
    old = token_match("Patient", "identifier", "urn:x", "7")
    new = token_match("Patient", "identifier", "urn:x", "8")
    assert await matching(hub, old) == set()
    assert await matching(hub, new) == {"Patient/s0"}
    await writer.commit(Delete("Patient", created.version.rid), caller=HUB)
    assert await matching(hub, new) == set()
    assert await live_count(hub, "Patient/s0") == 0
    assert await hub.store.current_docs.count_documents({"pending": True}) == 0


async def test_entries_of_an_older_index_format_are_recomputed_at_start(settings: Settings) -> None:
    """A store written by an older indexer (here: entries lost, format 1) is brought up to date before the
    hub answers a search, and a start with the current format changes nothing."""
    async with running_hub(settings) as hub:
        await hub.writer.commit(Update("Patient", "old", patient("old", identifier=[{"value": "9"}])), caller=HUB)
        await hub.writer.commit(Update("Patient", "gone", patient("gone")), caller=HUB)
        await hub.writer.commit(Delete("Patient", "gone"), caller=HUB)
        wanted = {e async for d in hub.store.index.find({"r": "Patient/old"}) for e in entries_in(d)}
        assert await hub.store.index_format() == index_format(settings.time_zone)
        await hub.store.index.delete_many({"r": "Patient/old"})
        # an entry in the layout of format 2 (one document per entry, under an index on ``k``)
        await hub.store.index.insert_one({"_id": "0" * 40, "r": "Patient/gone", "k": "Patient|identifier|stale",
                                          "s": ""})
        await hub.store.index.create_index("k")
        await hub.store.set_index_format("1")
    async with running_hub(settings) as hub:
        assert await hub.store.index_format() == index_format(settings.time_zone)
        assert {e async for d in hub.store.index.find({"r": "Patient/old"}) for e in entries_in(d)} == wanted
        gone = {e async for d in hub.store.index.find({"r": "Patient/gone"}) for e in entries_in(d)}
        assert gone == deletion_entries("Patient", frozenset({"gone"}))  # the stale entry removed, only these left
        assert "k_1" not in await hub.store.index.index_information()  # an index of the old layout is dropped
        assert await matching(hub, token_match("Patient", "identifier", None, "9")) == {"Patient/old"}


async def test_a_count_waits_for_an_open_transaction_on_a_store_without_isolation(settings: Settings) -> None:
    """nx-27017 runs an aggregation in a SQLite savepoint on the connection every session shares: one that
    begins inside a Bundle's transaction and ends after it began releases the transaction's savepoint too
    ("no such savepoint" at its commit, seen when a client counted while a payload was ingested). So a
    count takes the write gate like a write and waits for the transaction."""
    async with running_hub(settings) as hub:
        store = hub.store
        if not store.gate.enabled:
            pytest.skip("the store isolates transactions: no gate")
        order: list[str] = []
        async with store.gate.exclusive():
            counting = asyncio.create_task(store.count_live("Patient"))
            await asyncio.sleep(0.05)
            order.append("transaction done")
            assert not counting.done()
        assert await counting == 0
        order.append("counted")
        assert order == ["transaction done", "counted"]
