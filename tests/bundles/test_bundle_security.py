"""Bundles go through the same checks as single requests: token, scopes, compartment, facility boundary,
limits; and a transaction on nx-27017 neither loses nor absorbs a write made beside it."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_hub.auth.caller import Caller
from fhir_hub.config import Settings
from fhir_hub.errors import UnprocessableResource
from fhir_hub.hub import Hub
from fhir_hub.linking.elements import is_master_key
from fhir_hub.main import create_app
from fhir_hub.store.writer import Create
from tests.bundles.helpers import diagnostics, dump, statuses
from tests.conftest import auth, token_for
from tests.consent.test_consent_reads import consent, give


def _transaction(*entries: dict[str, Any], kind: str = "transaction") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def _post(resource: dict[str, Any], full_url: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"resource": resource, "request": {"method": "POST", "url": resource["resourceType"]}}
    if full_url:
        item["fullUrl"] = full_url
    return item


def _observation(patient_ref: str) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "code": {"text": "pulse"},
            "subject": {"reference": patient_ref}}


def _consent(patient_ref: str) -> dict[str, Any]:
    return {**consent(), "patient": {"reference": patient_ref}}  # a resident writes nothing but consents


def test_a_bundle_needs_a_token(settings: Settings) -> None:
    with TestClient(create_app(settings), raise_server_exceptions=False) as anonymous:
        answer = anonymous.post("/", json=_transaction())
        assert answer.status_code == 401
        assert answer.json()["resourceType"] == "OperationOutcome"


def test_resident_cannot_write_into_another_compartment_through_a_transaction(client: TestClient,
                                                                             settings: Settings) -> None:
    mine = client.put("/Patient/me", json={"resourceType": "Patient", "id": "me"}).json()
    client.put("/Patient/other", json={"resourceType": "Patient", "id": "other"})
    resident = auth(token_for(settings, "resident", patient=mine["id"], scope="patient/*.cruds"))
    before = dump(settings)
    bundle = _transaction(_post(_consent("Patient/me")), _post(_consent("Patient/other")))
    answer = client.post("/", json=bundle, headers=resident)
    assert answer.status_code == 403
    assert "Bundle.entry[1]" in diagnostics(answer.json())
    assert dump(settings) == before
    ok = client.post("/", json=_transaction(_post(_consent("Patient/me"))), headers=resident)
    assert ok.status_code == 200
    assert ok.json()["entry"][0]["resource"]["meta"]["source"] == "urn:fhir-hub:resident:me"


def test_resident_batch_reads_only_their_own_records(client: TestClient, settings: Settings) -> None:
    client.put("/Patient/me", json={"resourceType": "Patient", "id": "me"})
    client.put("/Patient/other", json={"resourceType": "Patient", "id": "other"})
    theirs = client.post("/Observation", json=_observation("Patient/other")).json()
    resident = auth(token_for(settings, "resident", patient="me"))
    batch = _transaction({"request": {"method": "GET", "url": f"Observation/{theirs['id']}"}},
                         {"request": {"method": "GET", "url": "Observation?code=pulse"}},
                         {"request": {"method": "GET", "url": "Patient/me"}}, kind="batch")
    answer = client.post("/", json=batch, headers=resident).json()
    assert statuses(answer) == ["404 Not Found", "200 OK", "200 OK"]
    assert answer["entry"][1]["resource"]["total"] == 0  # nothing of another compartment is counted
    assert "resource" not in answer["entry"][0]


def test_facility_boundary_and_source_in_a_batch(client: TestClient, settings: Settings) -> None:
    """Another facility that a consent lets read a record still cannot change it (403, the boundary)."""
    theirs = client.post("/Patient", json={"resourceType": "Patient", "name": [{"family": "Lê"}]}).json()
    give(client, auth(token_for(settings, "resident", patient=theirs["id"])),
         {**consent(), "patient": {"reference": f"Patient/{theirs['id']}"}})
    other_facility = auth(token_for(settings, facility="79002"))
    claimed = {"resourceType": "Patient", "meta": {"source": "urn:fhir-hub:facility:79001"}}
    batch = _transaction({"resource": {**theirs, "active": False},
                          "request": {"method": "PUT", "url": f"Patient/{theirs['id']}"}},
                         _post(claimed), kind="batch")
    answer = client.post("/", json=batch, headers=other_facility).json()
    assert statuses(answer) == ["403 Forbidden", "201 Created"]
    assert "facility boundary" in answer["entry"][0]["response"]["outcome"]["issue"][0]["diagnostics"]
    assert answer["entry"][1]["resource"]["meta"]["source"] == "urn:fhir-hub:facility:79002"
    assert client.get(f"/Patient/{theirs['id']}").json()["meta"]["versionId"] == "1"


def test_scopes_are_checked_entry_by_entry(client: TestClient, settings: Settings) -> None:
    reader = auth(token_for(settings, scope="system/Patient.rs"))
    before = dump(settings)
    answer = client.post("/", json=_transaction(_post({"resourceType": "Patient"})), headers=reader)
    assert answer.status_code == 403
    assert dump(settings) == before


def test_entry_limit_refuses_the_whole_bundle(settings: Settings) -> None:
    small = dataclasses.replace(settings, max_bundle_entries=3)
    with TestClient(create_app(small), raise_server_exceptions=False, headers=auth(token_for(small))) as client:
        before = dump(small)
        answer = client.post("/", json=_transaction(*[_post({"resourceType": "Patient"}) for _ in range(4)],
                                                    kind="batch"))
        assert answer.status_code == 413
        assert "FHIR_HUB_MAX_BUNDLE_ENTRIES" in diagnostics(answer.json())
        assert dump(small) == before


def test_references_are_rewritten_everywhere(client: TestClient) -> None:
    patient = {"resourceType": "Patient", "text": {"status": "generated", "div":
               '<div xmlns="http://www.w3.org/1999/xhtml"><a href="urn:uuid:org-1">clinic</a></div>'},
               "managingOrganization": {"reference": "urn:uuid:org-1"},
               "contained": [{"resourceType": "RelatedPerson", "id": "rp", "patient": {"reference": "urn:uuid:p-1"}}],
               "link": [{"other": {"reference": "#rp"}, "type": "seealso"}],  # dom-3: a contained one is referenced
               "extension": [{"url": "http://example.org/fhir/home-clinic", "valueReference": {"reference":
                                                                                              "urn:uuid:org-1"}}]}
    answer = client.post("/", json=_transaction(_post(patient, "urn:uuid:p-1"),
                                                _post({"resourceType": "Organization", "name": "Trạm y tế"},
                                                      "urn:uuid:org-1")))
    assert answer.status_code == 200, answer.text
    stored_patient, org = (e["resource"] for e in answer.json()["entry"])
    org_ref = f"Organization/{org['id']}"
    assert stored_patient["managingOrganization"]["reference"] == org_ref
    assert stored_patient["extension"][0]["valueReference"]["reference"] == org_ref
    assert stored_patient["contained"][0]["patient"]["reference"] == f"Patient/{stored_patient['id']}"
    assert f'href="{org_ref}"' in stored_patient["text"]["div"]
    found = client.get("/Patient", params={"organization": org_ref}).json()
    assert found["total"] == 1  # the search index holds the rewritten reference


def test_conditional_reference_with_two_matches_is_412(client: TestClient, settings: Settings) -> None:
    for _ in range(2):
        client.post("/Organization", json={"resourceType": "Organization",
                                           "identifier": [{"system": "urn:moh:facility", "value": "79001"}]})
    before = dump(settings)
    ref = {"reference": "Organization?identifier=urn:moh:facility|79001"}
    answer = client.post("/", json=_transaction(_post({"resourceType": "Patient", "managingOrganization": ref})))
    assert answer.status_code == 412
    assert "2 resources" in diagnostics(answer.json())
    assert dump(settings) == before


@pytest.mark.anyio
async def test_writes_beside_a_failing_transaction_are_kept(hub: Hub) -> None:
    """On nx-27017 an abort discards every write made meanwhile on the server; the store's gate makes other
    writes wait while a transaction's steps are being sent. The commit here fails half-way, after yielding
    to the other writers."""
    caller = Caller.hub("test")
    send = hub.store._send

    async def half_then_fail(steps: list[Any], session: Any = None, **options: Any) -> dict[int, int]:
        if session is None:
            return await send(steps, session, **options)
        await send(steps[: len(steps) // 2], session, **options)
        await asyncio.sleep(0.05)  # the single writes below get their turn here
        raise UnprocessableResource("injected failure during the commit")

    hub.store._send = half_then_fail  # type: ignore[method-assign]

    async def failing_transaction() -> None:
        with pytest.raises(UnprocessableResource):
            async with hub.store.transaction() as tx:
                for _i in range(30):
                    await hub.writer.commit(Create("Patient", {"resourceType": "Patient"}), caller=caller, tx=tx)

    async def single() -> str:
        await asyncio.sleep(0.01)
        result = await hub.writer.commit(Create("Patient", {"resourceType": "Patient", "gender": "female"}),
                                         caller=caller)
        return result.version.rid

    outcome = await asyncio.gather(failing_transaction(), *[single() for _ in range(20)])
    kept = {f"Patient/{rid}" for rid in outcome[1:]}
    assert await hub.store.live_among(kept) == kept
    stored = {key for key in await hub.store.live_keys("Patient") if not is_master_key(key)}  # and 20 masters
    assert stored == kept
