"""The commit pipeline over registered derivers: a deriver registered beside the search index has its documents
written with each version, in the same request or transaction (so rolled back with it), removed when the
version that gave them is superseded, and recomputed by crash repair from the stored JSON."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from pymongo.errors import AutoReconnect

from fhir_hub.auth.caller import Caller
from fhir_hub.config import Settings
from fhir_hub.hub import Hub, running_hub
from fhir_hub.store.derivers import DERIVERS, SearchIndex
from fhir_hub.store.index_docs import entries_in
from fhir_hub.store.plan import set_document
from fhir_hub.store.records import StoredVersion
from fhir_hub.store.schema import SEARCH_INDEX
from fhir_hub.store.writer import Create, Delete, Update

pytestmark = pytest.mark.anyio
HUB = Caller.hub("test")
PROBES = "test_probe_docs"


@dataclasses.dataclass(frozen=True)
class FamilyProbe:
    """One document per live version: its number and the family names it holds; nothing for a deletion."""

    name: str = "family probe"
    collection: str = PROBES

    def derive(self, version: StoredVersion, resource: dict[str, Any] | None) -> list[dict[str, Any]]:
        if resource is None:
            return []
        families = sorted(n.get("family", "") for n in resource.get("name", []))
        return [{"_id": f"{version.key}|probe", "r": version.key, "vid": version.vid, "families": families}]


@pytest.fixture
async def probed(settings: Settings) -> AsyncIterator[Hub]:
    async with running_hub(settings, derivers=(*DERIVERS, FamilyProbe())) as hub:
        yield hub


def patient(rid: str, *families: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": rid, "name": [{"family": f} for f in families]}


async def probes(hub: Hub, key: str) -> list[dict[str, Any]]:
    return [doc async for doc in hub.store.db[PROBES].find({"r": key})]


async def index_entries(hub: Hub, key: str) -> set[Any]:
    return {e async for d in hub.store.index.find({"r": key}) for e in entries_in(d)}


def expected_index(version: StoredVersion) -> set[Any]:
    resource = orjson.loads(version.json) if version.json is not None else None
    return {e for d in SearchIndex().derive(version, resource) for e in entries_in(d)}


def test_the_search_index_is_the_first_registered_deriver() -> None:
    assert DERIVERS[0].collection == SEARCH_INDEX


async def test_each_version_writes_its_documents_and_supersedes_the_last_ones(probed: Hub) -> None:
    created = await probed.writer.commit(Create("Patient", {"resourceType": "Patient", "name": [{"family": "Lê"}]}),
                                         caller=HUB)
    key = created.version.key
    assert await probes(probed, key) == [{"_id": f"{key}|probe", "r": key, "vid": 1, "families": ["Lê"]}]
    rid = created.version.rid
    await probed.writer.commit(Update("Patient", rid, patient(rid, "Lê", "Phạm")), caller=HUB)
    assert await probes(probed, key) == [{"_id": f"{key}|probe", "r": key, "vid": 2, "families": ["Lê", "Phạm"]}]
    deleted = await probed.writer.commit(Delete("Patient", rid), caller=HUB)
    assert await probes(probed, key) == []  # a deletion keeps nothing of this deriver's
    assert await index_entries(probed, key) == expected_index(deleted.version)  # the index keeps its own


@pytest.mark.parametrize("server_transactions", [True, False], ids=["transaction", "undo-on-standalone"])
async def test_derived_documents_are_written_in_the_transaction_of_their_version(probed: Hub,
                                                                                 server_transactions: bool) -> None:
    store = probed.store
    if not server_transactions:  # as on a standalone mongod: written one by one, undone on failure
        store.capabilities = dataclasses.replace(store.capabilities, transactions=False)
    await probed.writer.commit(Update("Patient", "kept", patient("kept", "Võ")), caller=HUB)

    async with store.transaction() as tx:
        await probed.writer.commit(Update("Patient", "together", patient("together", "Đặng")), caller=HUB, tx=tx)
        if server_transactions:  # collected with the version's own steps, sent in the same server transaction
            # (the new person's master, written in the same transaction, has its own)
            assert [s.kind for s in tx.steps if s.collection == PROBES and s.first["r"] == "Patient/together"] \
                == ["insert"]
    assert [d["families"] for d in await probes(probed, "Patient/together")] == [["Đặng"]]

    send = store._send

    async def fail_half_way(steps: list[Any], session: Any = None, **options: Any) -> dict[int, int]:
        if session is None:
            return await send(steps, session, **options)
        await send(steps[: len(steps) // 2 + 1], session, **options)  # the derived documents go first
        raise AutoReconnect("connection lost in the middle of the commit (injected)")

    store._send = fail_half_way  # type: ignore[method-assign]
    with pytest.raises(Exception, match="injected|rolled back"):
        async with store.transaction() as tx:
            await probed.writer.commit(Create("Patient", {"resourceType": "Patient", "name": [{"family": "Hồ"}]},
                                              rid="lost"), caller=HUB, tx=tx)
            await probed.writer.commit(Update("Patient", "kept", patient("kept", "Võ", "Hồ")), caller=HUB, tx=tx)
            if not server_transactions:
                assert [d["families"] for d in await probes(probed, "Patient/lost")] == [["Hồ"]]
                raise RuntimeError("the group failed after its writes: they are rolled back")
    store._send = send  # type: ignore[method-assign]
    assert await store.current("Patient", "lost") is None
    assert await probes(probed, "Patient/lost") == []
    assert [d["families"] for d in await probes(probed, "Patient/kept")] == [["Võ"]]
    assert (await store.current("Patient", "kept")).vid == 1


async def test_crash_repair_recomputes_every_deriver_from_the_stored_json(probed: Hub) -> None:
    """Simulate a crash after the commit point: version 2 stored and still ``pending``, none of its derived
    documents applied, and a stray document left in the probe collection."""
    first = await probed.writer.commit(Update("Patient", "c1", patient("c1", "Ngô")), caller=HUB)
    crashed = StoredVersion("Patient", "c1", 2, first.version.ts + 1, "PUT", deleted=False,
                            json=orjson.dumps(patient("c1", "Dương")))
    await probed.store.history_docs.insert_one(first.version.history_doc())
    await probed.store.current_docs.update_one({"_id": "Patient/c1"},
                                               set_document(crashed.current_doc() | {"pending": True}))
    await probed.store.db[PROBES].insert_one({"_id": "Patient/c1|stray", "r": "Patient/c1", "vid": 0})
    assert sorted(d["vid"] for d in await probes(probed, "Patient/c1")) == [0, 1]  # stale: version 1's, and the stray

    assert await probed.store.reconcile_pending() == 1
    assert await probes(probed, "Patient/c1") == [{"_id": "Patient/c1|probe", "r": "Patient/c1", "vid": 2,
                                                   "families": ["Dương"]}]
    assert await index_entries(probed, "Patient/c1") == expected_index(crashed)
    assert await probed.store.current_docs.count_documents({"pending": True}) == 0


async def test_a_restart_repairs_what_a_crash_left_for_every_deriver(settings: Settings) -> None:
    """The same repair at start-up, by a hub that runs the same derivers as the one that crashed."""
    derivers = (*DERIVERS, FamilyProbe())
    async with running_hub(settings, derivers=derivers) as hub:
        await hub.writer.commit(Update("Patient", "r1", patient("r1", "Bùi")), caller=HUB)
        await hub.store.db[PROBES].delete_many({})
        await hub.store.current_docs.update_one({"_id": "Patient/r1"}, {"$set": {"pending": True}})
    async with running_hub(settings, derivers=derivers) as hub:
        assert [d["families"] for d in await probes(hub, "Patient/r1")] == [["Bùi"]]
