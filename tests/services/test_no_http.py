"""The services without HTTP: a transaction Bundle and ingested payloads processed with no FastAPI app, no
HTTP client and no request, only a running hub and a ``Session`` (what a queue worker will have).

The Bundle and the payloads are the shared fixtures the API suites send over HTTP; here their typed results
(``EntryResult``, ``IngestReport``) are checked, and what they stored is read back through the services.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from fhir_hub.bundles.processor import process
from fhir_hub.bundles.references import references_in
from fhir_hub.config import Settings
from fhir_hub.errors import Gone, HubError, PreconditionFailed
from fhir_hub.hub import Hub
from fhir_hub.ingest.service import acknowledge, ingest
from fhir_hub.linking.elements import is_master_key
from fhir_hub.services import Session
from fhir_hub.services.create import create
from fhir_hub.services.delete import delete
from fhir_hub.services.read import read
from fhir_hub.services.search import search
from fhir_hub.services.update import conditional_update
from fhir_hub.store.records import StoredVersion
from tests.bundles.helpers import BOB, HOSPITALS, PRACTITIONERS, synthea
from tests.conftest import fixture_path, token_for

pytestmark = pytest.mark.anyio

HL7 = "x-application/hl7-v2+er7"


@pytest.fixture
async def session(hub: Hub, settings: Settings) -> AsyncIterator[Session]:
    """A hospital system at facility 79001, its token checked by the hub's authenticator (no request)."""
    caller = await hub.authenticator.caller(token_for(settings))
    yield Session.open(hub, caller)


def _resource(version: StoredVersion) -> dict[str, Any]:
    assert version.json is not None
    parsed: dict[str, Any] = orjson.loads(version.json)
    return parsed


def test_the_services_import_neither_fastapi_nor_the_routes() -> None:
    """The seam itself: what a queue worker imports to process Bundles and payloads pulls in no web stack."""
    modules = ("fhir_hub.services.create", "fhir_hub.services.update", "fhir_hub.services.patch",
               "fhir_hub.services.delete", "fhir_hub.services.read", "fhir_hub.services.search",
               "fhir_hub.bundles.processor", "fhir_hub.ingest.service")
    code = (f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'fastapi', 'starlette'}),"
            " sorted(m for m in sys.modules if m.startswith('fhir_hub.api')))")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert found.strip() == "[] []"


async def test_a_synthea_transaction_through_the_processor(session: Session) -> None:
    bob = synthea(BOB)
    wanted = {ref.split("?", 1)[1] for e in bob["entry"] for ref in references_in(e["resource"]) if "?" in ref}
    for name in (HOSPITALS, PRACTITIONERS):  # the directory batches, only the entries Bob refers to
        batch = synthea(name)
        batch["entry"] = [e for e in batch["entry"] if e["request"].get("ifNoneExist") in wanted]
        results = await process(session, "batch", batch)
        assert [r.status for r in results] == [201] * len(batch["entry"])
        assert not any(r.failed for r in results)

    results = await process(session, "transaction", bob)

    assert [r.status for r in results] == [201] * len(bob["entry"])
    sent_types = [e["resource"]["resourceType"] for e in bob["entry"]]
    versions = [r.version for r in results]
    assert all(v is not None for v in versions)
    assert [v.rtype for v in versions if v is not None] == sent_types
    assert {v.vid for v in versions if v is not None} == {1}
    references = {ref for v in versions if v is not None for ref in references_in(_resource(v))}
    assert not [ref for ref in references if "?" in ref or ref.startswith("urn:")], "every reference rewritten"
    for ref in sorted(r for r in references if not r.startswith("#") and not is_master_key(r)):
        rtype, rid = ref.split("/")
        assert (await read(session, rtype, rid)).key == ref  # stored, and readable by the caller (the person's
        # master is the hub's, which consent keeps from facilities)
    patient = versions[0]
    assert patient is not None and patient.rtype == "Patient"
    assert await read(session, "Patient", patient.rid) == patient
    encounters = await search(session, "Encounter", [("subject", patient.key), ("_total", "accurate")])
    assert encounters.outcome.total == sent_types.count("Encounter")


async def test_a_failing_transaction_raises_its_entry_error_and_stores_nothing(session: Session) -> None:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:a", "resource": {"resourceType": "Patient", "gender": "female"},
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Observation", "status": "not-a-status"},
         "request": {"method": "POST", "url": "Observation"}}]}
    with pytest.raises(HubError) as raised:
        await process(session, "transaction", bundle)
    assert "Bundle.entry[1]" in str(raised.value)
    assert (await search(session, "Patient", [("_total", "accurate")])).outcome.total == 0


async def test_writes_and_a_batch_answer_typed_results(session: Session) -> None:
    created = await create(session, "Patient", {"resourceType": "Patient", "identifier": [
        {"system": "urn:test", "value": "1"}]}, if_none_exist="identifier=urn:test|1")
    again = await create(session, "Patient", {"resourceType": "Patient"}, if_none_exist="identifier=urn:test|1")
    assert (created.status, created.what, again.status, again.what) == (201, "Created", 200, "Found existing")
    assert again.version == created.version
    assert created.version is not None
    updated = await conditional_update(session, "Patient", "identifier=urn:test|1", {
        "resourceType": "Patient", "identifier": [{"system": "urn:test", "value": "1"}], "active": True})
    assert updated.status == 200 and updated.version is not None and updated.version.vid == 2
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": f"Patient/{created.version.rid}"}},
        {"request": {"method": "GET", "url": "Patient?identifier=urn:test|1"}},
        {"request": {"method": "GET", "url": "Patient/nowhere"}}]}
    read_one, searched, missing = await process(session, "batch", batch)
    assert read_one.status == 200 and read_one.version == updated.version
    assert searched.search is not None and [v.rid for v in searched.search.outcome.page] == [created.version.rid]
    assert missing.status == 404 and missing.issues and "Bundle.entry[2]" in missing.issues[0].diagnostics
    deleted = await delete(session, "Patient", created.version.rid)
    assert deleted.status == 204 and deleted.version is not None and deleted.version.deleted
    with pytest.raises(Gone):
        await read(session, "Patient", created.version.rid)
    await create(session, "Patient", {"resourceType": "Patient", "identifier": [{"system": "urn:test", "value": "2"}]})
    await create(session, "Patient", {"resourceType": "Patient", "identifier": [{"system": "urn:test", "value": "2"}]})
    with pytest.raises(PreconditionFailed):
        await conditional_update(session, "Patient", "identifier=urn:test|2", {"resourceType": "Patient"})


async def test_an_hl7v2_admission_then_discharge_is_counted_from_the_typed_results(session: Session) -> None:
    admission = fixture_path("hl7v2", "messages", "ADT-A01-01.hl7").read_bytes()
    discharge = admission.replace(b"ADT^A01^ADT_A01|MSG00001|", b"ADT^A03^ADT_A03|MSG00002|")

    first = await ingest(session, admission, media_type=HL7, filename=None, format_name=None)

    assert (first.format, first.accepted, first.rejected) == ("hl7v2", 1, [])
    assert first.created >= 3 and first.updated == 0  # Patient, Encounter, ..., and the record's Provenance
    (encounter,) = (await search(session, "Encounter", [])).outcome.page
    assert _resource(encounter)["status"] == "in-progress"
    provenances = (await search(session, "Provenance", [])).outcome.page
    assert [_resource(p)["entity"][0]["what"]["identifier"]["value"] for p in provenances] == [first.archive]
    acks = await acknowledge(session, first, admission)
    assert b"MSA|AA|MSG00001" in acks

    second = await ingest(session, discharge, media_type=HL7, filename=None, format_name=None)
    assert second.created == 1 and second.updated >= 1  # its Provenance; the Encounter (and what it changed)
    (after,) = (await search(session, "Encounter", [])).outcome.page
    assert after.rid == encounter.rid and after.vid == 2 and _resource(after)["status"] == "finished"

    again = await ingest(session, discharge, media_type=HL7, filename=None, format_name=None)
    assert (again.created, again.updated) == (0, 0)
    assert again.existing == second.existing + second.updated + second.created
    assert (await read(session, "Encounter", after.rid)).vid == 2  # nothing stored for nothing


def _adt(control_id: str, msh4: str, pid3: str) -> str:
    return (f"MSH|^~\\&|HIS|{msh4}|HUB|SYT|20240501083000+0700||ADT^A04|{control_id}|P|2.5\r"
            f"EVN|A04|20240501083000\rPID|1||{pid3}||Nguyễn^Văn An||19900101|M\r"
            f"PV1|1|O|||||||||||||||||V-{control_id}\r")


async def test_a_refused_hl7v2_message_is_reported_and_acknowledged_ae(session: Session) -> None:
    """A message naming another facility in MSH-4 is refused; the ACK says so, the other message is stored."""
    payload = "\n".join([_adt("GOOD", "79001", "BN1^^^^MR"), _adt("SQUAT", "79415", "BN2^^^^MR")]).encode()

    report = await ingest(session, payload, media_type=HL7, filename=None, format_name=None)

    assert report.accepted == 1 and [(p.record, p.field) for p in report.rejected] == [("MSH-10=SQUAT", "MSH-4")]
    acks = await acknowledge(session, report, payload)
    assert b"MSA|AA|GOOD" in acks and b"MSA|AE|SQUAT" in acks and b"MSH-4" in acks
    assert (await search(session, "Patient", [("_total", "accurate")])).outcome.total == 1
