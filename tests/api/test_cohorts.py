"""The priority record's cohort Groups and the ward worklist (issue 18, ``fhir_hub/services/cohorts.py``):
assembled per request from the Flags the caller may see, so consent decides membership and scores too."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from unittest import mock

import pytest
from fastapi.testclient import TestClient

from adapters.normalize import administrative_address
from fhir_hub.config import Settings
from fhir_hub.main import create_app
from fhir_hub.priority.record import refresh
from fhir_hub.services import cohorts
from tests.conftest import as_

FHIR = {"Content-Type": "application/fhir+json"}
CCCD = "http://fhir.hl7.org.vn/core/sid/cccd"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
WARD, OTHER_WARD = "26734", "26737"
FACILITY = "http://fhir.hl7.org.vn/core/sid/ma-cskcb"
AMB = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}
TREAT = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}


def _patient(rid: str, born: str, ward: str) -> dict[str, Any]:
    address = {"text": "Thành phố Hồ Chí Minh", "extension": [administrative_address(state="79", ward=ward)]}
    return {"resourceType": "Patient", "id": rid, "birthDate": born, "gender": "female", "address": [address],
            "name": [{"family": f"Resident {rid}"}], "identifier": [{"system": CCCD, "value": f"0791{rid * 8}"}]}


def _days_ago(days: int) -> str:
    return (date.today() - timedelta(days=days)).isoformat()


def _put(client: TestClient, headers: dict[str, str], resource: dict[str, Any]) -> None:
    answer = client.put(f"/{resource['resourceType']}/{resource['id']}", json=resource, headers={**FHIR, **headers})
    assert answer.status_code in (200, 201), answer.text


def _permit(client: TestClient, settings: Settings, rid: str) -> None:
    """The resident lets facility 79001 read their record for treatment (labelled data not named: not those)."""
    consent = {"resourceType": "Consent", "status": "active",
               "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                     "code": "patient-privacy"}]},
               "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
               "patient": {"reference": f"Patient/{rid}"},
               "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                          "code": "OPTIN"}]},  # R4 ppc-1: a policy or a policyRule
               "provision": {"type": "permit", "purpose": [TREAT], "actor": [{
                   "role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                        "code": "IRCP"}]},
                   "reference": {"identifier": {"system": FACILITY, "value": "79001"}}}]}}
    answer = client.post("/Consent", json=consent, headers={**FHIR, **as_(settings, "resident", patient=rid)})
    assert answer.status_code == 201, answer.text


@pytest.fixture
def ward(settings: Settings) -> TestClient:
    """a: over 60, last visit two years ago; b: diabetic, seen 20 days ago; c: young and well; d: over 60, in
    another ward; e: over 60 with HIV, never seen. Everything written by facility 79001; each resident permits
    79001 to read for treatment."""
    with TestClient(create_app(settings)) as client:
        sender = as_(settings, "system", facility="79001")
        people = {"a": ("1950-05-01", WARD), "b": ("1990-05-01", WARD), "c": ("2000-05-01", WARD),
                  "d": ("1940-05-01", OTHER_WARD), "e": ("1945-05-01", WARD)}
        for rid, (born, where) in people.items():
            _put(client, sender, _patient(rid, born, where))
        for rid, code in (("b", "E11.9"), ("e", "B20")):
            _put(client, sender, {"resourceType": "Condition", "id": f"cond-{rid}",
                                  "subject": {"reference": f"Patient/{rid}"},
                                  "code": {"coding": [{"system": ICD10, "code": code}]}})
        for rid, day in (("a", _days_ago(730)), ("b", _days_ago(20)), ("d", _days_ago(3000))):
            _put(client, sender, {"resourceType": "Encounter", "id": f"enc-{rid}", "status": "finished", "class": AMB,
                                  "subject": {"reference": f"Patient/{rid}"}, "period": {"start": day, "end": day}})
        hub = client.app.state.hub  # type: ignore[attr-defined]
        for rid in people:
            client.portal.call(refresh, hub, f"Patient/{rid}")
            _permit(client, settings, rid)
        yield client


def _masters(client: TestClient, headers: dict[str, str], *rids: str) -> list[str]:
    hub = client.app.state.hub  # type: ignore[attr-defined]
    return [str(client.portal.call(hub.store.master_in_use, f"Patient/{rid}")) for rid in rids]


def test_the_worklist_lists_the_ward_s_high_risk_residents_not_seen_for_a_year(ward: TestClient,
                                                                              settings: Settings) -> None:
    clinician = as_(settings, "clinician", facility="79001")
    answer = ward.get("/Patient/$priority-worklist", params={"ward": WARD}, headers=clinician)
    assert answer.status_code == 200, answer.text
    listed = [e for e in answer.json().get("entry", []) if e["search"]["mode"] == "match"]
    assert [f"Patient/{e['resource']['id']}" for e in listed] == _masters(ward, clinician, "e", "a")
    assert answer.json()["total"] == 2
    visits = {e["resource"]["id"]: {x["url"].rsplit("/", 1)[-1]: next(v for k, v in x.items() if k.startswith("value"))
                                    for x in e["search"]["extension"]} for e in listed}
    assert [v["risk-score"] for v in visits.values()] == [10, 10]  # e's HIV is hidden: it adds nothing
    assert "last-visit" not in visits[listed[0]["resource"]["id"]]
    assert visits[listed[1]["resource"]["id"]]["last-visit"].startswith(_days_ago(730))
    assert "B20" not in answer.text and "hiv" not in answer.text.lower()
    longer = ward.get("/Patient/$priority-worklist", params={"ward": WARD, "months": "36"}, headers=clinician)
    assert [e["resource"]["id"] for e in longer.json()["entry"] if e["search"]["mode"] == "match"] == [
        listed[0]["resource"]["id"]]  # a was seen within three years
    stranger = as_(settings, "clinician", facility="79003")
    assert ward.get("/Patient/$priority-worklist", params={"ward": WARD}, headers=stranger).json()["total"] == 0
    assert ward.get("/Patient/$priority-worklist", params={"ward": "99999"}, headers=clinician).json()["total"] == 0


def test_a_cohort_group_lists_its_members_with_their_score_and_hides_what_consent_hides(ward: TestClient,
                                                                                       settings: Settings) -> None:
    clinician = as_(settings, "clinician", facility="79001")
    diabetes = ward.get("/Group/$risk-cohort", params={"group": "diabetes"}, headers=clinician)
    assert diabetes.status_code == 200, diabetes.text
    group = diabetes.json()
    assert group["resourceType"] == "Group" and group["quantity"] == 1 and group["actual"] is True
    assert [m["entity"]["reference"] for m in group["member"]] == _masters(ward, clinician, "b")
    assert group["member"][0]["extension"][0]["valueInteger"] == 10
    elderly = ward.get("/Group/$risk-cohort", params={"group": "age-60-plus", "ward": WARD}, headers=clinician).json()
    assert sorted(m["entity"]["reference"] for m in elderly["member"]) == sorted(_masters(ward, clinician, "a", "e"))
    hiv = ward.get("/Group/$risk-cohort", params={"group": "hiv"}, headers=clinician).json()
    assert hiv["quantity"] == 0 and "member" not in hiv or hiv["member"] == []
    resident = ward.get("/Group/$risk-cohort", params={"group": "hiv"}, headers=as_(settings, "resident", patient="e"))
    assert resident.json()["quantity"] == 1  # her own
    assert ward.get("/Group/$risk-cohort", params={"group": "nope"}, headers=clinician).status_code == 400
    assert ward.get("/Patient/$priority-worklist", headers=clinician).status_code == 400


def test_a_cohort_too_large_to_count_lists_its_first_members_without_a_quantity(ward: TestClient,
                                                                              settings: Settings) -> None:
    clinician = as_(settings, "clinician", facility="79001")
    with mock.patch.object(cohorts, "MAX_MEMBERS", 1):
        elderly = ward.get("/Group/$risk-cohort", params={"group": "age-60-plus"}, headers=clinician).json()
    assert len(elderly["member"]) == 1 and "quantity" not in elderly
