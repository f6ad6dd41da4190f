"""New data raise a person's waiting jobs, wherever the data come from: a clinician's REST write, a
transaction Bundle, or the date itself (a 60th birthday), not only the person's next backfilled record."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_hub.auth.caller import Caller
from fhir_hub.config import Settings
from fhir_hub.fhir.instant import local_day
from fhir_hub.hub import Hub, running_hub
from fhir_hub.ingest.service import IngestReport, RecordProvenance
from fhir_hub.main import create_app
from fhir_hub.queue.ingest_jobs import KIND, enqueue_records, raise_on_their_day
from tests.conftest import auth, token_for
from tests.queue.test_backfill import _record

CCCD = "http://fhir.hl7.org.vn/core/sid/cccd"
ICD10 = "http://hl7.org/fhir/sid/icd-10"


def _person(cccd: str, born: str = "1995-03-01") -> dict[str, Any]:
    return {"resourceType": "Patient", "birthDate": born, "identifier": [{"system": CCCD, "value": cccd}],
            "name": [{"family": "Le"}]}


async def _queue(hub: Hub, *patients: dict[str, Any]) -> None:
    provenance = RecordProvenance("archive-1", "digest", "moh-xml", "79001", "test")
    await enqueue_records(hub.queue, Caller.hub("test"), IngestReport("archive-1", "moh-xml", None),
                          [_record(p) for p in patients], provenance)


async def _claimed(hub: Hub) -> list[tuple[str, str]]:
    order = []
    while (job := await hub.queue.claim("w")) is not None:
        if job.kind == KIND:  # the writes also queued refreshes of the priority record (test_refresh_jobs.py)
            order.append((str(job.who).rsplit("|", 1)[-1], job.tier))
    return order


def test_a_diagnosis_written_over_rest_moves_the_person_s_waiting_jobs_up(settings: Settings) -> None:
    async def queued() -> None:
        async with running_hub(settings) as hub:
            await _queue(hub, _person("079095000001"), _person("079095000002"), _person("079095000003"))

    async def tiers() -> dict[str, str]:
        async with running_hub(settings) as hub:
            return {str(d["who"]).rsplit("|", 1)[-1]: d["tier"] async for d in hub.queue.collection.find({})}

    async def claimed() -> list[tuple[str, str]]:
        async with running_hub(settings) as hub:
            return await _claimed(hub)

    def condition(patient: str, code: str) -> dict[str, Any]:
        return {"resourceType": "Condition", "subject": {"reference": f"Patient/{patient}"},
                "code": {"coding": [{"system": ICD10, "code": code}]}}

    asyncio.run(queued())
    fhir = {"Content-Type": "application/fhir+json"}
    with TestClient(create_app(settings), headers=auth(token_for(settings))) as client:
        made = client.post("/Patient", json=_person("079095000003"), headers=fhir)
        assert made.status_code == 201, made.text
        assert client.post("/Condition", json=condition(made.json()["id"], "J06.9"), headers=fhir).status_code == 201
        assert set(asyncio.run(tiers()).values()) == {"low"}  # a cold moves nothing
        assert client.post("/Condition", json=condition(made.json()["id"], "I50.0"), headers=fhir).status_code == 201
    assert asyncio.run(claimed()) == [("079095000003", "high"), ("079095000001", "low"), ("079095000002", "low")]


@pytest.mark.anyio
async def test_a_sixtieth_birthday_moves_the_person_s_waiting_jobs_up_on_the_day(hub: Hub) -> None:
    today = local_day(hub.writer.clock())
    tomorrow = today + timedelta(days=1)
    sixty = date(tomorrow.year - 60, tomorrow.month, tomorrow.day if (tomorrow.month, tomorrow.day) != (2, 29) else 28)
    await _queue(hub, _person("079095000011"), _person("079095000012", born=sixty.isoformat()))
    assert await raise_on_their_day(hub.queue, today) == 0  # not yet 60
    assert await raise_on_their_day(hub.queue, tomorrow) == 1
    assert await raise_on_their_day(hub.queue, tomorrow) == 0  # done once
    days = {str(doc["who"])[-2:]: doc.get("nc") async for doc in hub.queue.collection.find({})}
    assert days == {"11": "2055-03-01", "12": None}  # the young one's 60th birthday; nothing left to change
    assert await _claimed(hub) == [("079095000012", "high"), ("079095000011", "low")]
