"""Synthea's conditional Bundles end to end, all-or-nothing under an injected failure (with and without
server transactions), and re-sending with ifNoneExist creating nothing new."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pymongo.errors import AutoReconnect

from fhir_hub.bundles.references import references_in
from fhir_hub.config import Settings
from fhir_hub.linking.elements import is_master_key
from tests.bundles.helpers import BOB, CECELIA, HOSPITALS, PRACTITIONERS, diagnostics, dump, statuses, synthea

MINIMAL = {"Prefer": "return=minimal"}


def _load_directories(client: TestClient, *, whole: bool = False) -> None:
    """The hospital and practitioner batches; unless ``whole``, only the entries the patients refer to
    (the whole batches take ~20 s on the embedded store; one test loads them whole)."""
    wanted = {ref.split("?", 1)[1] for name in (BOB, CECELIA) for e in synthea(name)["entry"]
              for ref in references_in(e["resource"]) if "?" in ref}
    for name in (HOSPITALS, PRACTITIONERS):
        bundle = synthea(name)
        if not whole:
            bundle["entry"] = [e for e in bundle["entry"] if e["request"].get("ifNoneExist") in wanted]
        answer = client.post("/", json=bundle, headers=MINIMAL)
        assert answer.status_code == 200
        assert set(statuses(answer.json())) == {"201 Created"}


def test_patient_transactions_resolve_every_conditional_reference(client: TestClient) -> None:
    _load_directories(client, whole=True)
    for name in (BOB, CECELIA):
        bundle = synthea(name)
        answer = client.post("/", json=bundle)
        assert answer.status_code == 200, answer.text[:500]
        body = answer.json()
        assert statuses(body) == ["201 Created"] * len(bundle["entry"])
        stored = [e["resource"] for e in body["entry"]]
        targets = {ref for resource in stored for ref in references_in(resource) if not ref.startswith("#")}
        assert targets, "the patient Bundles refer to patients, practitioners and organizations"
        assert not [t for t in targets if "?" in t or t.startswith("urn:")], "every reference was rewritten"
        for target in sorted(targets):  # but the person's master: the hub's, which consent keeps from facilities
            assert client.get(f"/{target}").status_code == (404 if is_master_key(target) else 200), target
        patient = body["entry"][0]["resource"]
        encounters = client.get("/Encounter", params={"subject": f"Patient/{patient['id']}", "_total": "accurate"})
        expected = sum(1 for e in bundle["entry"] if e["resource"]["resourceType"] == "Encounter")
        assert encounters.json()["total"] == expected


def _with_bad_entry(bundle: dict[str, Any], index: int) -> dict[str, Any]:
    broken = copy.deepcopy(bundle)
    broken["entry"][index]["resource"]["status"] = "not-a-status-code"
    broken["entry"][index]["resource"]["unknownElement"] = True
    return broken


@pytest.mark.parametrize("server_transactions", [True, False], ids=["transaction", "undo-on-standalone"])
def test_a_failure_at_entry_150_leaves_the_store_exactly_as_before(client: TestClient, settings: Settings,
                                                                   server_transactions: bool) -> None:
    _load_directories(client)
    hub = client.app.state.hub  # type: ignore[attr-defined]
    if not server_transactions:  # behave as on a standalone mongod: writes go out one by one, then are undone
        hub.store.capabilities = dataclasses.replace(hub.store.capabilities, transactions=False)
    existing = client.post("/Patient", json={"resourceType": "Patient", "name": [{"family": "Trần"}]}).json()
    bundle = _with_bad_entry(synthea(BOB), 150)
    changed = {**existing, "name": [{"family": "Trần", "given": ["Thị"]}]}
    bundle["entry"].insert(1, {"fullUrl": "urn:uuid:existing", "resource": changed,
                               "request": {"method": "PUT", "url": f"Patient/{existing['id']}"}})
    before = dump(settings)
    answer = client.post("/", json=bundle)
    assert answer.status_code == 400, answer.text[:500]
    assert "Bundle.entry[151]" in diagnostics(answer.json())
    assert dump(settings) == before


def test_a_store_failure_in_the_middle_of_the_commit_rolls_everything_back(client: TestClient,
                                                                           settings: Settings) -> None:
    """Chunks of the transaction's steps reach the server inside its transaction, then the connection fails
    half-way through a later chunk, while the hub is still preparing the next ones."""
    _load_directories(client)
    store = client.app.state.hub.store  # type: ignore[attr-defined]
    send = store._send
    sent: list[int] = []

    async def fail_in_a_later_chunk(steps: list[Any], session: Any = None, **options: Any) -> dict[int, int]:
        if session is None or sum(sent) < 1000:
            sent.append(len(steps))
            return await send(steps, session, **options)
        await send(steps[: len(steps) // 2], session, **options)
        sent.append(len(steps) // 2)
        raise AutoReconnect("connection lost in the middle of the commit (injected)")

    store._send = fail_in_a_later_chunk
    before = dump(settings)
    answer = client.post("/", json=synthea(BOB))
    assert answer.status_code == 503
    assert len(sent) > 2 and sum(sent) > 1000  # many documents were written in the transaction before it failed
    assert dump(settings) == before


def test_resending_with_if_none_exist_on_every_entry_creates_nothing(client: TestClient, settings: Settings) -> None:
    _load_directories(client)
    bundle = synthea(CECELIA)
    for item in bundle["entry"]:  # what an adapter sends: each record keyed by its business identifier
        resource, key = item["resource"], item["fullUrl"]
        resource["identifier"] = [*resource.get("identifier", []), {"system": "urn:ietf:rfc:3986", "value": key}]
        item["request"]["ifNoneExist"] = f"identifier=urn:ietf:rfc:3986|{key}"
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] not in ("Provenance",)]
    first = client.post("/", json=bundle, headers=MINIMAL)
    assert first.status_code == 200, first.text[:500]
    assert set(statuses(first.json())) == {"201 Created"}
    before = dump(settings)
    again = client.post("/", json=bundle, headers=MINIMAL)
    assert again.status_code == 200
    assert set(statuses(again.json())) == {"200 OK"}
    assert dump(settings) == before
    assert [e["response"]["location"] for e in again.json()["entry"]] == \
        [e["response"]["location"] for e in first.json()["entry"]]
