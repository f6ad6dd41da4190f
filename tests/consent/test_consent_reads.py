"""Consents over HTTP: every read obeys the default policy and the resident's consents, from the next
request on.

The world: facility 79002 treats Lan (``pat-lan``) and keeps her Observation and Encounter; a clinician of
facility 79001 asks. Lan gives, narrows and withdraws consents with her own token.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_hub.config import Settings
from fhir_hub.main import create_app
from tests.conftest import as_, assert_outcome

FHIR = {"Content-Type": "application/fhir+json"}
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
HIV = {"system": ACT, "code": "HIV"}
TYPES = "http://hl7.org/fhir/resource-types"


@pytest.fixture
def world(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        other = as_(settings, facility="79002")
        put(client, other, "Patient", "pat-lan", {"name": [{"family": "Nguyễn", "given": ["Lan"]}],
                                                   "birthDate": "1956-04-12", "gender": "female"})
        put(client, other, "Observation", "obs-bp", {
            "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
            "subject": {"reference": "Patient/pat-lan"}, "effectiveDateTime": "2025-03-01"})
        put(client, other, "Encounter", "enc-1", {"status": "finished", "class": {"code": "AMB"},
                                                   "subject": {"reference": "Patient/pat-lan"},
                                                   "period": {"start": "2025-03-01"}})
        put(client, other, "Condition", "cond-hiv", {
            "meta": {"security": [HIV]}, "subject": {"reference": "Patient/pat-lan"},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "B20"}]}})
        yield client


def put(client: TestClient, headers: dict[str, str], rtype: str, rid: str, body: dict[str, Any]) -> Any:
    response = client.put(f"/{rtype}/{rid}", json={"resourceType": rtype, "id": rid, **body},
                          headers={**FHIR, **headers})
    assert response.status_code in (200, 201), response.text
    return response.json()


def give(client: TestClient, headers: dict[str, str], body: dict[str, Any]) -> str:
    """A resident creates with POST (a PUT would tell which ids exist); returns the new Consent's id."""
    response = client.post("/Consent", json={k: v for k, v in body.items() if k != "id"}, headers={**FHIR, **headers})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def consent(rid: str = "", *, status: str = "active", **provision: Any) -> dict[str, Any]:
    return {"resourceType": "Consent", **({"id": rid} if rid else {}), "status": status,
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                  "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": "Patient/pat-lan"},
            # R4 ppc-1: a Consent names a policy or a policyRule (the hub's rules come from the provisions)
            "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
            "provision": {"type": "permit", **provision}}


def facility_actor(code: str) -> dict[str, Any]:
    return {"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                 "code": "IRCP"}]},
            "reference": {"identifier": {"system": "http://fhir.hl7.org.vn/core/sid/ma-cskcb", "value": code}}}


def lan(settings: Settings) -> dict[str, str]:
    return as_(settings, "resident", patient="pat-lan")


def clinician(settings: Settings, **claims: Any) -> dict[str, str]:
    return as_(settings, "clinician", facility="79001", **claims)


def seen(client: TestClient, headers: dict[str, str]) -> set[str]:
    """Everything of Lan's a caller finds by reads and by one search per type, checked against the totals."""
    found = set()
    for rtype, rid in (("Patient", "pat-lan"), ("Observation", "obs-bp"), ("Encounter", "enc-1"),
                       ("Condition", "cond-hiv")):
        read = client.get(f"/{rtype}/{rid}", headers=headers)
        assert read.status_code in (200, 404), read.text
        searched = client.get(f"/{rtype}", params={"_id": rid}, headers=headers).json()
        assert searched["total"] == len(searched.get("entry", [])) == (read.status_code == 200)
        if read.status_code == 200:
            found.add(f"{rtype}/{rid}")
    return found


def test_another_facility_reads_nothing_without_consent_and_its_own_records_always(
        world: TestClient, settings: Settings) -> None:
    assert seen(world, clinician(settings)) == set()
    assert seen(world, as_(settings, "clinician", facility="79002")) == {
        "Patient/pat-lan", "Observation/obs-bp", "Encounter/enc-1", "Condition/cond-hiv"}
    assert seen(world, lan(settings)) == {"Patient/pat-lan", "Observation/obs-bp", "Encounter/enc-1",
                                          "Condition/cond-hiv"}


def test_a_permit_opens_the_record_but_not_labelled_data_and_withdrawal_closes_it_next_request(
        world: TestClient, settings: Settings) -> None:
    treatment = [{"system": ACT, "code": "TREAT"}]
    cid = give(world, lan(settings), consent(actor=[facility_actor("79001")], purpose=treatment))
    assert seen(world, clinician(settings)) == {"Patient/pat-lan", "Observation/obs-bp", "Encounter/enc-1"}
    assert seen(world, as_(settings, "clinician", facility="79003")) == set()  # the permit names 79001 only
    put(world, lan(settings), "Consent", cid, consent(cid, status="inactive", actor=[facility_actor("79001")]))
    assert seen(world, clinician(settings)) == set()


def test_a_permit_naming_the_label_opens_labelled_data(world: TestClient, settings: Settings) -> None:
    give(world, lan(settings), consent(securityLabel=[HIV]))
    assert "Condition/cond-hiv" in seen(world, clinician(settings))


def test_a_nested_deny_is_an_exception_to_its_permit(world: TestClient, settings: Settings) -> None:
    observations = [{"system": TYPES, "code": "Observation"}]
    give(world, lan(settings), consent(provision=[{"type": "deny", "class": observations}]))
    assert seen(world, clinician(settings)) == {"Patient/pat-lan", "Encounter/enc-1"}


def test_a_deny_in_another_consent_beats_a_permit(world: TestClient, settings: Settings) -> None:
    give(world, lan(settings), consent())
    denial = consent(actor=[facility_actor("79001")])
    denial["provision"]["type"] = "deny"
    give(world, lan(settings), denial)
    assert seen(world, clinician(settings)) == set()
    assert seen(world, as_(settings, "clinician", facility="79003")) == {
        "Patient/pat-lan", "Observation/obs-bp", "Encounter/enc-1"}


def test_an_expired_provision_period_permits_nothing(world: TestClient, settings: Settings) -> None:
    give(world, lan(settings), consent(period={"start": "2020-01-01", "end": "2021-01-01"}))
    assert seen(world, clinician(settings)) == set()


def test_a_data_period_bounds_what_is_shared(world: TestClient, settings: Settings) -> None:
    cid = give(world, lan(settings), consent(dataPeriod={"start": "2025-01-01", "end": "2025-02-28"}))
    assert "Observation/obs-bp" not in seen(world, clinician(settings))  # taken 2025-03-01
    put(world, lan(settings), "Consent", cid, consent(cid, dataPeriod={"start": "2025-01-01"}))
    assert "Observation/obs-bp" in seen(world, clinician(settings))


def test_research_needs_a_permit_naming_the_purpose_and_public_health_gets_nothing(
        world: TestClient, settings: Settings) -> None:
    give(world, lan(settings), consent())
    assert seen(world, clinician(settings, purpose="HRESCH")) == set()
    give(world, lan(settings), consent(purpose=[{"system": ACT, "code": "HRESCH"}]))
    assert seen(world, clinician(settings, purpose="HRESCH")) == {"Patient/pat-lan", "Observation/obs-bp",
                                                                  "Encounter/enc-1"}
    assert seen(world, clinician(settings, purpose="PUBHLTH")) == set()
    assert seen(world, as_(settings, "clinician", facility="79002", purpose="PUBHLTH")) == set()


def test_breaking_the_glass_needs_a_reason_and_reads_despite_a_deny_but_not_labelled_data(
        world: TestClient, settings: Settings) -> None:
    denial = consent()
    denial["provision"]["type"] = "deny"
    give(world, lan(settings), denial)
    emergency = clinician(settings, purpose="ETREAT")
    body = assert_outcome(world.get("/Observation/obs-bp", headers=emergency), 403, "forbidden")
    assert "X-Emergency-Reason" in body["issue"][0]["diagnostics"]
    with_reason = {**emergency, "X-Emergency-Reason": "unconscious on arrival, allergies unknown"}
    assert seen(world, with_reason) == {"Patient/pat-lan", "Observation/obs-bp", "Encounter/enc-1"}
    system = as_(settings, facility="79001", purpose="ETREAT")
    assert_outcome(world.get("/Observation/obs-bp", headers={**system, "X-Emergency-Reason": "x"}), 403)


def test_an_emergency_token_must_be_short_lived(world: TestClient, settings: Settings) -> None:
    settings = settings.with_(max_token_lifetime_seconds=86_400)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        long = clinician(settings, purpose="ETREAT", ttl_seconds=7200)
        response = client.get("/Observation/obs-bp", headers={**long, "X-Emergency-Reason": "x"})
        assert_outcome(response, 401)
        assert "at most 3600 s" in response.text


def test_only_the_resident_gives_a_privacy_consent_and_writes_nothing_else(
        world: TestClient, settings: Settings) -> None:
    response = world.post("/Consent", json=consent(), headers={**FHIR, **clinician(settings)})
    assert "resident or a child's guardian" in assert_outcome(response, 403)["issue"][0]["diagnostics"]
    broad = as_(settings, "resident", patient="pat-lan", scope="patient/*.cruds")  # scopes alone would allow it
    own = world.post("/Observation", headers={**FHIR, **broad}, json={
        "resourceType": "Observation", "status": "final", "code": {"text": "weight"},
        "subject": {"reference": "Patient/pat-lan"}})
    assert "writes only their consents" in assert_outcome(own, 403)["issue"][0]["diagnostics"]
    cid = give(world, lan(settings), {**consent(), "verification": [
        {"verified": True, "verifiedWith": {"reference": "RelatedPerson/forged"}}]})
    stored = world.get(f"/Consent/{cid}", headers=lan(settings)).json()
    assert [v["verifiedWith"]["reference"] for v in stored["verification"]] == ["Patient/pat-lan"]


def test_a_consent_the_hub_cannot_apply_is_refused_naming_the_element(world: TestClient, settings: Settings) -> None:
    bad = consent(provision=[{"class": [{"system": TYPES, "code": "Observation"}]}])
    response = world.post("/Consent", json=bad, headers={**FHIR, **lan(settings)})
    body = assert_outcome(response, 422)
    assert body["issue"][0]["expression"] == ["Consent.provision.provision[0].type"]


def test_the_operator_asks_why_a_facility_may_or_may_not_read(world: TestClient, settings: Settings) -> None:
    operator = as_(settings, facility=None)

    def check(**params: str) -> dict[str, Any]:
        response = world.get("/Observation/obs-bp/$access-check", params=params, headers=operator)
        assert response.status_code == 200, response.text
        return {p["name"]: next(v for k, v in p.items() if k.startswith("value")) for p in response.json()["parameter"]}

    assert check(facility="79001") == {"permitted": False, "rule": "no-consent", "emergency": False,
                                       "reason": check(facility="79001")["reason"]}
    assert check(facility="79002")["rule"] == "own-records"
    cid = give(world, lan(settings), consent(provision=[{"type": "deny", "class": [{"system": TYPES,
                                                                                    "code": "Observation"}]}]))
    answer = check(facility="79001")
    assert answer["permitted"] is False and answer["provision"] == f"Consent/{cid}#Consent.provision.provision[0]"
    assert check(facility="79001", purpose="ETREAT", reason="arrest")["emergency"] is True
    assert_outcome(world.get("/Observation/obs-bp/$access-check", headers=clinician(settings)), 403)
    assert_outcome(world.get("/Observation/nope/$access-check", headers=operator), 404)
    assert_outcome(world.get("/Observation/obs-bp/$access-check", params={"facility": "x"}, headers=operator), 400)


def test_a_master_is_shown_only_to_whom_every_record_of_the_person_is(world: TestClient, settings: Settings) -> None:
    """The golden record carries what each source says (identifiers, which records it came from): a caller
    whose consents hide one of the person's records sees the others, never the master."""
    cccd = [{"system": "http://fhir.hl7.org.vn/core/sid/cccd", "value": "079156001234"}]
    for rid, facility in (("hoa-a", "79002"), ("hoa-b", "79003")):
        put(world, as_(settings, facility=facility), "Patient", rid, {
            "name": [{"family": "Trần", "given": ["Thị", "Hoa"]}], "birthDate": "1956-01-02", "gender": "female",
            "identifier": cccd})
    operator = as_(settings, facility=None)
    master = world.get("/Patient/hoa-a", headers=operator).json()["link"][0]["other"]["reference"]
    assert world.get("/Patient/hoa-b", headers=operator).json()["link"][0]["other"]["reference"] == master

    def shown() -> set[str]:
        found = world.get("/Patient", params={"_tag": "https://fhir.hub.hcmc.vn/CodeSystem/record-role|master",
                                              "_id": master.split("/")[1]}, headers=clinician(settings)).json()
        listed = world.get("/Patient", params={"identifier": "079156001234", "_total": "accurate"},
                           headers=clinician(settings)).json()
        assert listed["total"] == len(listed.get("entry", []))
        read = world.get(f"/{master}", headers=clinician(settings)).status_code == 200
        return ({e["fullUrl"].split("/", 3)[-1] for e in [*found.get("entry", []), *listed.get("entry", [])]}
                | ({master} if read else set()))

    hoa = as_(settings, "resident", patient="hoa-a")
    hide_b = [{"type": "deny", "data": [{"meaning": "instance", "reference": {"reference": "Patient/hoa-b"}}]}]
    cid = give(world, hoa, {**consent(provision=hide_b), "patient": {"reference": "Patient/hoa-a"}})
    assert shown() == {"Patient/hoa-a"}
    put(world, hoa, "Consent", cid, {**consent(cid), "patient": {"reference": "Patient/hoa-a"}})
    assert shown() == {"Patient/hoa-a", "Patient/hoa-b", master}


def test_history_judges_each_version_on_its_own_labels(world: TestClient, settings: Settings) -> None:
    """A diagnosis first recorded plainly, then corrected to an HIV code: the first version is shared under a
    permit, the labelled one is not, even on one page of type history."""
    other = as_(settings, facility="79002")
    put(world, other, "Condition", "cond-later", {"subject": {"reference": "Patient/pat-lan"},
                                                 "code": {"coding": [{"system": "urn:x", "code": "fever"}]}})
    put(world, other, "Condition", "cond-later", {"meta": {"security": [HIV]},
                                                 "subject": {"reference": "Patient/pat-lan"},
                                                 "code": {"coding": [{"system": "urn:x", "code": "fever"}]}})
    give(world, lan(settings), consent())
    history = world.get("/Condition/_history", params={"_count": 50}, headers=clinician(settings)).json()
    versions = {(e["resource"]["id"], e["resource"]["meta"]["versionId"]) for e in history.get("entry", [])
                if "resource" in e}
    assert ("cond-later", "1") in versions and ("cond-later", "2") not in versions
