"""``GET /Patient/{id}/$risk``: the score, the rules that gave it and their evidence, read as the record is."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from fhir_hub.config import Settings
from fhir_hub.main import create_app
from tests.conftest import as_

FHIR = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
ICD10 = "http://hl7.org/fhir/sid/icd-10"


def _put(client: TestClient, headers: dict[str, str], rtype: str, rid: str, body: dict[str, Any]) -> None:
    answer = client.put(f"/{rtype}/{rid}", json={"resourceType": rtype, "id": rid, **body}, headers={**FHIR, **headers})
    assert answer.status_code in (200, 201), answer.text


def _condition(patient: str, code: str, **more: Any) -> dict[str, Any]:
    return {"subject": {"reference": f"Patient/{patient}"}, "code": {"coding": [{"system": ICD10, "code": code}]},
            **more}


def _rules(body: dict[str, Any]) -> dict[str, list[str]]:
    found = {}
    for p in body["parameter"]:
        if p["name"] == "rule":
            parts = {q["name"]: q for q in p["part"]}
            found[parts["id"]["valueCode"]] = [q["valueString"] for q in p["part"] if q["name"] == "evidence"]
    return found


def _value(body: dict[str, Any], name: str) -> Any:
    return next(next(v for k, v in p.items() if k.startswith("value")) for p in body["parameter"] if p["name"] == name)


def test_a_person_s_score_is_explained_by_its_rules_and_evidence(app_client: TestClient, settings: Settings) -> None:
    hospital = as_(settings, facility="79001")
    _put(app_client, hospital, "Patient", "ba", {"birthDate": "1950-05-01", "gender": "female",
                                                 "name": [{"family": "Lê", "given": ["Thị", "Ba"]}]})
    _put(app_client, hospital, "Condition", "dm", _condition("ba", "E11.9"))
    _put(app_client, hospital, "Condition", "old", _condition("ba", "I10", clinicalStatus={"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "resolved"}]}))
    answer = app_client.get("/Patient/ba/$risk", headers=hospital)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    rules = _rules(body)
    assert _value(body, "tier") == "high" and _value(body, "score") > 0
    assert any("E11.9" in e for evidence in rules.values() for e in evidence), rules
    assert not any("I10" in e for evidence in rules.values() for e in evidence)  # resolved: not counted
    assert any("1950-05-01" in e for evidence in rules.values() for e in evidence)  # the age rule's evidence


def test_what_the_caller_may_not_read_neither_shows_nor_counts(app_client: TestClient, settings: Settings) -> None:
    hospital = as_(settings, facility="79001")
    _put(app_client, hospital, "Patient", "tu", {"birthDate": "1990-01-01", "gender": "male"})
    _put(app_client, hospital, "Condition", "tu-dm", _condition("tu", "E10.1"))
    other = as_(settings, facility="79002")  # another facility, no consent from the resident: nothing
    assert app_client.get("/Patient/tu/$risk", headers=other).status_code == 404
    assert app_client.get("/Patient/nobody/$risk", headers=other).status_code == 404
    operator = as_(settings, facility=None)  # reads Patients only: the diagnosis does not count
    seen = app_client.get("/Patient/tu/$risk", headers=operator)
    assert seen.status_code == 200 and _rules(seen.json()) == {} and _value(seen.json(), "tier") == "low"
    assert "E10" not in seen.text
    mine = app_client.get("/Patient/tu/$risk", headers=hospital)
    assert _value(mine.json(), "tier") == "high"


def test_a_server_with_a_lower_page_maximum_still_assesses(settings: Settings) -> None:
    """FHIR_HUB_MAX_COUNT below the 1,000 diagnoses $risk reads in one page: it reads the server's maximum
    instead of asking for more than the server allows (a 400)."""
    with TestClient(create_app(settings.with_(max_count=50))) as client:
        hospital = as_(settings, facility="79001")
        _put(client, hospital, "Patient", "nam", {"birthDate": "1980-05-01", "name": [{"family": "Lý"}]})
        _put(client, hospital, "Condition", "dm-nam", _condition("nam", "E11.9"))
        answer = client.get("/Patient/nam/$risk", headers=hospital)
        assert answer.status_code == 200, answer.text
        assert "diabetes" in _rules(answer.json())
