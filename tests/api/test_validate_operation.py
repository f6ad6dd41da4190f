"""Required bindings and invariants over HTTP: refused on write (422, naming element and value set or
invariant), and listed by ``$validate`` at type and instance level without anything being stored."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import assert_outcome

ADMINISTRATIVE_GENDER = "http://hl7.org/fhir/ValueSet/administrative-gender"
TEXT = {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">Lan</div>'}


def patient(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "text": TEXT, "name": [{"family": "Nguyen", "given": ["Lan"]}],
            "gender": "female", **elements}


def observation(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "text": TEXT,
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "valueQuantity": {"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"},
            **elements}


def _issue(response: Any, expression: str) -> dict[str, Any]:
    issues = response.json()["issue"]
    found = [i for i in issues if i.get("expression") == [expression]]
    assert found, issues
    return found[0]


def test_a_gender_outside_its_required_value_set_is_refused(client: TestClient) -> None:
    refused = client.post("/Patient", json=patient(gender="robot"))
    assert_outcome(refused, 422, "code-invalid")
    issue = _issue(refused, "Patient.gender")
    assert "'robot'" in issue["diagnostics"] and ADMINISTRATIVE_GENDER in issue["diagnostics"]
    assert client.get("/Patient").json()["total"] == 0


def test_an_observation_status_outside_its_value_set_is_refused(client: TestClient) -> None:
    refused = client.post("/Observation", json=observation(status="bogus"))
    assert_outcome(refused, 422, "code-invalid")
    assert "http://hl7.org/fhir/ValueSet/observation-status" in _issue(refused, "Observation.status")["diagnostics"]


def test_a_component_code_is_named_by_its_position(client: TestClient) -> None:
    component = {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                 "valueQuantity": {"value": 120, "comparator": "about"}}
    refused = client.post("/Observation", json=observation(component=[component, component]))
    assert_outcome(refused, 422, "code-invalid")
    _issue(refused, "Observation.component[0].valueQuantity.comparator")
    _issue(refused, "Observation.component[1].valueQuantity.comparator")


def test_a_contact_with_no_details_breaks_pat_1(client: TestClient) -> None:
    refused = client.post("/Patient", json=patient(contact=[{"name": {"family": "Tran"}}, {"gender": "male"}]))
    assert_outcome(refused, 422, "invariant")
    assert "pat-1" in _issue(refused, "Patient.contact[1]")["diagnostics"]
    assert len(refused.json()["issue"]) == 1  # the first contact has a name


def test_a_value_and_a_data_absent_reason_break_obs_6(client: TestClient) -> None:
    absent = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": "unknown"}]}
    refused = client.post("/Observation", json=observation(dataAbsentReason=absent))
    assert_outcome(refused, 422, "invariant")
    issue = _issue(refused, "Observation")
    assert "obs-6" in issue["diagnostics"] and "dataAbsentReason" in issue["diagnostics"]


def test_a_bundle_entry_breaking_a_binding_fails_the_transaction(client: TestClient) -> None:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:1", "resource": patient(), "request": {"method": "POST", "url": "Patient"}},
        {"resource": patient(gender="robot"), "request": {"method": "POST", "url": "Patient"}}]}
    answer = client.post("/", json=bundle)
    assert answer.status_code in (400, 422), answer.text
    assert "Patient.gender" in answer.text and ADMINISTRATIVE_GENDER in answer.text
    assert client.get("/Patient").json()["total"] == 0


def test_validate_lists_every_issue_and_stores_nothing(client: TestClient) -> None:
    bad = patient(gender="robot", contact=[{"gender": "male"}], meta={"profile": ["http://example.org/Nope"]})
    answer = client.post("/Patient/$validate", json=bad)
    assert answer.status_code == 200, answer.text
    assert answer.json()["resourceType"] == "OperationOutcome"
    assert _issue(answer, "Patient.gender")["severity"] == "error"
    assert _issue(answer, "Patient.contact[0]")["code"] == "invariant"
    unknown = _issue(answer, "Patient.meta.profile[0]")
    assert unknown["severity"] == "warning" and "http://example.org/Nope" in unknown["diagnostics"]
    assert client.get("/Patient").json()["total"] == 0


def test_validate_says_all_ok_for_a_good_resource(client: TestClient) -> None:
    answer = client.post("/Patient/$validate", json=patient())
    assert answer.status_code == 200
    assert [(i["severity"], i["code"]) for i in answer.json()["issue"]] == [("information", "informational")]


def test_validate_takes_parameters_and_reports_an_unknown_profile(client: TestClient) -> None:
    parameters = {"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": observation()}, {"name": "mode", "valueCode": "create"},
        {"name": "profile", "valueUri": "http://hl7.org/fhir/StructureDefinition/vitalsigns"}]}
    answer = client.post("/Observation/$validate", json=parameters)
    assert answer.status_code == 200
    issue = _issue(answer, "profile")
    assert issue["severity"] == "error" and issue["code"] == "not-supported"
    assert "vitalsigns" in issue["diagnostics"] and "not known" in issue["diagnostics"]


def test_validate_reports_structural_problems_as_issues(client: TestClient) -> None:
    answer = client.post("/Patient/$validate", json={"resourceType": "Patient", "gender": 3})
    assert answer.status_code == 200
    assert _issue(answer, "Patient.gender")["severity"] == "error"


def test_validate_delete_and_update_modes_at_instance_level(client: TestClient) -> None:
    created = client.post("/Patient", json=patient())
    assert created.status_code == 201, created.text
    rid = created.json()["id"]
    ok = client.post(f"/Patient/{rid}/$validate?mode=delete")
    assert [i["code"] for i in ok.json()["issue"]] == ["informational"]
    missing = client.post("/Patient/nobody/$validate?mode=delete")
    assert missing.status_code == 200 and missing.json()["issue"][0]["code"] == "not-found"
    moved = client.post(f"/Patient/{rid}/$validate?mode=update", json=patient(id="other"))
    assert _issue(moved, "Patient.id")["severity"] == "error"
    same = client.post(f"/Patient/{rid}/$validate?mode=update", json=patient(id=rid))
    assert [i["code"] for i in same.json()["issue"]] == ["informational"]


def test_validate_refuses_a_malformed_request(client: TestClient) -> None:
    assert_outcome(client.post("/Patient/$validate?mode=sideways", json=patient()), 400, "invalid")
    assert_outcome(client.post("/Patient/$validate", content=b""), 400, "invalid")
    assert_outcome(client.post("/Patient/$validate?mode=delete"), 400, "invalid")


def test_the_capability_statement_lists_validate_on_every_type(client: TestClient) -> None:
    resources = client.get("/metadata").json()["rest"][0]["resource"]
    assert all(any(op["name"] == "validate" for op in r.get("operation", [])) for r in resources)
