"""Several transaction Bundles committed in one store transaction answer exactly as if each were alone.

``bundles.processor.transactions`` is how ``$ingest`` and the queue's workers commit records several at a
time. Each Bundle stays all or nothing; a later one sees what the earlier ones of its group wrote; one that
writes a resource an earlier one wrote starts a new group; one the hub refuses leaves the others stored;
a group the store refuses is committed again one Bundle at a time. The backlog test compares a worker
committing eight records per transaction with one committing them one by one, over the benchmark's
generated MoH XML backlog (people with several records, high- and low-risk).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any
from unittest import mock

import orjson
import pytest
from pymongo import MongoClient

from bench.backlog import generate_backlog
from fhir_hub.auth.caller import Caller
from fhir_hub.auth.scopes import Scopes
from fhir_hub.bundles.processor import transactions
from fhir_hub.config import Settings
from fhir_hub.errors import HubError
from fhir_hub.hub import Hub
from fhir_hub.ingest.service import ingest
from fhir_hub.linking.elements import MASTER_ID_PREFIX
from fhir_hub.queue.ingest_jobs import enqueue_records
from fhir_hub.queue.worker import Worker
from fhir_hub.services.results import EntryResult
from fhir_hub.services.session import Session
from fhir_hub.store.mongo import MongoStore
from fhir_hub.store.records import VersionTaken
from fhir_hub.store.schema import RESOURCES
from tests.queue.test_backfill import _dump

SENDER = Caller("clinic", Scopes.parse("system/*.cruds"), facility="79001")


def _transaction(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def _patient_entry(system: str, value: str, *, family: str = "Nguyen", conditional_put: bool = False,
                   full_url: str | None = None) -> dict[str, Any]:
    resource = {"resourceType": "Patient", "identifier": [{"system": system, "value": value}],
                "name": [{"family": family}], "birthDate": "1990-01-01"}
    request = ({"method": "PUT", "url": f"Patient?identifier={system}|{value}"} if conditional_put else
               {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={system}|{value}"})
    return {"fullUrl": full_url or f"urn:uuid:{uuid.uuid4()}", "resource": resource, "request": request}


def _encounter_entry(subject: str, *, start: str = "2025-01-02") -> dict[str, Any]:
    return {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "request": {"method": "POST", "url": "Encounter"},
            "resource": {"resourceType": "Encounter", "status": "finished", "subject": {"reference": subject},
                         "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                         "period": {"start": start}}}


def _statuses(outcome: list[EntryResult] | HubError) -> list[int] | int:
    return outcome.status if isinstance(outcome, HubError) else [r.status for r in outcome]


def _stored(settings: Settings, rtype: str) -> list[dict[str, Any]]:
    with MongoClient(settings.mongodb_uri) as client:
        docs = client[settings.db_name][RESOURCES].find({"type": rtype, "deleted": {"$ne": True}})
        return [{**doc, "json": doc["json"].decode()} for doc in docs  # the facility's records, not masters
                if not str(doc["rid"]).startswith(MASTER_ID_PREFIX)]


@pytest.mark.anyio
async def test_each_bundle_answers_as_alone_and_a_refused_one_leaves_the_others(hub: Hub, settings: Settings) -> None:
    system = f"urn:test:{uuid.uuid4().hex[:8]}"
    first = _patient_entry(system, "A", full_url="urn:uuid:a1")
    bundles = [
        _transaction(first, _encounter_entry("urn:uuid:a1")),
        _transaction(_patient_entry(system, "B", full_url="urn:uuid:b1"),  # refused: its Encounter is invalid
                     _encounter_entry("urn:uuid:b1", start="not a date")),
        _transaction(_patient_entry(system, "A")),  # the first Bundle's Patient: found, not created again
        _transaction(_patient_entry(system, "C", full_url="urn:uuid:c1"), _encounter_entry("urn:uuid:c1")),
        _transaction(_patient_entry(system, "A", family="Tran", conditional_put=True)),  # updates A's Patient
    ]
    outcomes = await transactions(Session.open(hub, SENDER), bundles)
    assert [_statuses(o) for o in outcomes] == [[201, 201], 400, [200], [201, 201], [200]]
    found = outcomes[2]
    assert not isinstance(found, HubError) and not isinstance(outcomes[0], HubError)
    assert found[0].version is not None and outcomes[0][0].version is not None
    assert found[0].version.key == outcomes[0][0].version.key
    patients = {doc["rid"]: doc for doc in _stored(settings, "Patient") if system in doc["json"]}
    assert len(patients) == 2  # A and C; nothing of the refused B
    a = patients[outcomes[0][0].version.rid]
    assert a["vid"] == 2 and '"Tran"' in a["json"]
    assert len(_stored(settings, "Encounter")) == 2


@pytest.mark.anyio
async def test_a_group_the_store_refuses_is_committed_one_bundle_at_a_time(hub: Hub, settings: Settings) -> None:
    system = f"urn:test:{uuid.uuid4().hex[:8]}"
    original = MongoStore.transaction
    calls = []

    @asynccontextmanager
    async def failing_once(self: MongoStore) -> AsyncIterator[Any]:
        calls.append(1)
        async with original(self) as tx:
            yield tx
            if len(calls) == 1:  # a concurrent writer changed one of the group's resources
                raise VersionTaken("Patient/x")

    bundles = [_transaction(_patient_entry(system, str(n))) for n in range(4)]
    with mock.patch.object(MongoStore, "transaction", failing_once):
        outcomes = await transactions(Session.open(hub, SENDER), bundles)
    assert [_statuses(o) for o in outcomes] == [[201]] * 4
    assert len(calls) == 1 + 4  # the group, then each alone
    assert len([d for d in _stored(settings, "Patient") if system in d["json"]]) == 4


async def _backfill(settings: Settings, group: int) -> None:
    backlog = generate_backlog(6, 20, seed=7)
    from fhir_hub.hub import running_hub

    async with running_hub(settings) as hub:
        session = Session.open(hub, SENDER)
        for payload in backlog.payloads:
            await ingest(session, payload.body, media_type="application/xml", filename="xml130.xml",
                         format_name=None, later=partial(enqueue_records, hub.queue, SENDER))
        worker = Worker(hub, "test", group=group)
        assert await worker.run(asyncio.Event(), until_empty=True) == len(backlog.payloads)


def test_a_backlog_committed_eight_records_at_a_time_stores_what_one_by_one_does(settings: Settings) -> None:
    one_by_one = settings.with_(db_name=f"{settings.db_name}_1")
    asyncio.run(_backfill(one_by_one, 1))
    asyncio.run(_backfill(settings, 8))
    alone = _stored_once(one_by_one)
    assert sum(n for (rtype, _v, _j), n in alone.items() if rtype == "Patient") >= 6
    assert sum(n for (rtype, _v, _j), n in alone.items() if rtype == "Composition") >= 1
    assert _stored_once(settings) == alone


def _stored_once(settings: Settings) -> Counter[tuple[str, int, bytes]]:
    """The store as ``_dump`` gives it, except for how often the priority record was rewritten: a worker
    refreshes it once per group of records, one by one once per record, so its Flags and summary end the
    same with fewer versions (and the summary's date, its entries' latest change, differs between runs)."""
    found: Counter[tuple[str, int, bytes]] = Counter()
    for (rtype, vid, content), n in _dump(settings.mongodb_uri or "", settings.db_name).items():
        if rtype in ("Flag", "Composition"):
            vid, content = 0, orjson.dumps({k: v for k, v in orjson.loads(content).items() if k != "date"},
                                           option=orjson.OPT_SORT_KEYS)
        found[(rtype, vid, content)] += n
    return found
