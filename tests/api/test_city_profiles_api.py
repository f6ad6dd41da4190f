"""The city's profiles over HTTP: a write claiming one is held to it (``reject``: 422 at the element; ``warn``:
stored), ``$validate`` checks a claimed or requested one, the CapabilityStatement lists them and the
hub's StructureDefinitions are readable."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.conftest import assert_outcome
from tests.profiles.test_city_profiles import CONDITION, OBSERVATION, PATIENT, condition, observation


def _unclaimed(resource: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in resource.items() if k != "meta"}


def test_a_write_claiming_a_rejecting_profile_it_breaks_is_refused_at_the_element(client: TestClient) -> None:
    refused = client.post("/Condition", json=condition("E119x"))
    body = assert_outcome(refused, 422, "invariant")
    assert body["issue"][0]["expression"] == ["Condition.code.coding[0].code"]
    assert "vn-cond-1" in body["issue"][0]["diagnostics"] and CONDITION in body["issue"][0]["diagnostics"]
    assert client.get("/Condition").json()["total"] == 0
    assert client.post("/Condition", json=_unclaimed(condition("E119x"))).status_code == 201  # no claim, no promise
    assert client.post("/Condition", json=condition("E11.9")).status_code == 201


def test_a_write_claiming_a_warn_profile_it_breaks_is_stored(client: TestClient) -> None:
    stored = client.post("/Observation", json=observation(valueQuantity={"value": 72, "unit": "beats"}))
    assert stored.status_code == 201, stored.text


def test_validate_checks_the_claimed_and_the_requested_profile(client: TestClient) -> None:
    claimed = client.post("/Observation/$validate", json=observation(valueQuantity={"value": 72, "unit": "beats"}))
    issues = claimed.json()["issue"]
    errors = [i for i in issues if i["severity"] == "error"]
    assert [i["expression"] for i in errors] == [["Observation"]] and OBSERVATION in errors[0]["diagnostics"]
    requested = client.post(f"/Condition/$validate?profile={CONDITION}", json=_unclaimed(condition("E1")))
    assert [i["expression"] for i in requested.json()["issue"] if i["severity"] == "error"] == [
        ["Condition.code.coding[0].code"]]


def test_the_capability_statement_lists_the_city_profiles(client: TestClient) -> None:
    resources = {r["type"]: r for r in client.get("/metadata").json()["rest"][0]["resource"]}
    assert resources["Patient"]["supportedProfile"] == [PATIENT]
    assert resources["Condition"]["supportedProfile"] == [CONDITION]
    assert "supportedProfile" not in resources["Procedure"]


def test_the_hubs_structure_definitions_are_readable(client: TestClient) -> None:
    read = client.get("/StructureDefinition/vn-patient")
    assert read.status_code == 200 and read.json()["url"] == PATIENT
    found = client.get("/StructureDefinition", params={"url": PATIENT}).json()
    assert found["resourceType"] == "Bundle" and found["total"] == 1
    assert found["entry"][0]["resource"]["id"] == "vn-patient"
    both = client.get("/StructureDefinition", params={"url": f"{PATIENT}|0.1.0,{CONDITION}"}).json()
    assert [e["resource"]["id"] for e in both["entry"]] == ["vn-patient", "vn-condition"]
    assert_outcome(client.get("/StructureDefinition/nope"), 404, "not-found")


def test_other_structure_definitions_are_the_stores(client: TestClient) -> None:
    """The hub's are served in front of the store, never instead of it."""
    theirs = {"resourceType": "StructureDefinition", "url": "http://example.org/StructureDefinition/theirs",
              "name": "Theirs", "status": "draft", "kind": "resource", "abstract": False, "type": "Patient",
              "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient", "derivation": "constraint",
              "differential": {"element": [{"id": "Patient.name", "path": "Patient.name", "min": 1}]}}
    created = client.post("/StructureDefinition", json=theirs)
    assert created.status_code == 201, created.text
    rid = created.json()["id"]
    assert client.get(f"/StructureDefinition/{rid}").json()["url"] == theirs["url"]
    assert client.get("/StructureDefinition", params={"url": theirs["url"]}).json()["total"] == 1
    assert client.get("/StructureDefinition", params={"type": "Patient"}).json()["total"] == 1


def test_a_write_accepted_with_warnings_says_so_when_asked_for_an_outcome(client: TestClient) -> None:
    odd = observation(valueQuantity={"value": 72, "unit": "beats"})
    stored = client.post("/Observation", json=odd, headers={"Prefer": "return=OperationOutcome"})
    assert stored.status_code == 201, stored.text
    issues = stored.json()["issue"]
    assert [(i["severity"], i.get("expression")) for i in issues] == [("information", None),
                                                                      ("warning", ["Observation"])]
    assert "vn-obs-1" in issues[1]["diagnostics"] and OBSERVATION in issues[1]["diagnostics"]
    rid = stored.headers["Location"].split("/Observation/")[1].split("/")[0]
    fixed = client.put(f"/Observation/{rid}", json={**observation(), "id": rid},
                       headers={"Prefer": "return=OperationOutcome"})
    assert [i["severity"] for i in fixed.json()["issue"]] == ["information"]


@pytest.mark.parametrize("kind", ["transaction", "batch"])
def test_a_bundle_entry_accepted_with_warnings_carries_them_in_its_outcome(client: TestClient, kind: str) -> None:
    """R4 Bundle.entry.response.outcome: "hints and warnings produced as part of processing this entry"."""
    odd = observation(valueQuantity={"value": 72, "unit": "beats"})
    entries = [{"fullUrl": f"urn:uuid:00000000-0000-4000-8000-00000000000{i}", "resource": resource,
                "request": {"method": "POST", "url": "Observation"}} for i, resource in enumerate((odd, observation()))]
    answer = client.post("/", json={"resourceType": "Bundle", "type": kind, "entry": entries})
    assert answer.status_code == 200, answer.text
    warned, clean = (e["response"] for e in answer.json()["entry"])
    assert warned["status"].startswith("201") and clean["status"].startswith("201")
    issues = warned["outcome"]["issue"]
    assert [(i["severity"], i["expression"]) for i in issues] == [("warning", ["Observation"])]
    assert "vn-obs-1" in issues[0]["diagnostics"] and OBSERVATION in issues[0]["diagnostics"]
    assert "outcome" not in clean
    rid = answer.json()["entry"][0]["resource"]["id"]
    read = client.post("/", json={"resourceType": "Bundle", "type": "batch",
                                  "entry": [{"request": {"method": "GET", "url": f"Observation/{rid}"}}]})
    assert "outcome" not in read.json()["entry"][0]["response"]  # a read is not the write: no warnings
