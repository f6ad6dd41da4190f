"""Security over HTTP: tokens on every endpoint, scopes, residents' compartments, facility boundary, audit."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.auditevent import AuditEvent

from fhir_hub.auth.tokens import mint_development_token
from fhir_hub.config import Settings
from tests.conftest import as_, assert_outcome, auth, token_for
from tests.consent.test_consent_reads import consent, give

FHIR = {"Content-Type": "application/fhir+json"}
PUBLIC = ("/metadata", "/.well-known/smart-configuration", "/.well-known/jwks.json")
# the token endpoint authenticates its clients by their signed assertion (tests/auth/test_backend_services.py)
TOKEN_ENDPOINT = "/auth/token"


def seed(client: TestClient, settings: Settings) -> dict[str, str]:
    """Two residents with their own data, as a hospital system (facility 79001) would send it."""
    hospital = as_(settings)
    for pid, family in (("pa", "Nguyễn"), ("pb", "Trần")):
        response = client.put(f"/Patient/{pid}", json={"resourceType": "Patient", "id": pid,
                                                       "name": [{"family": family}]}, headers={**FHIR, **hospital})
        assert response.status_code == 201, response.text
    ids = {}
    for pid in ("pa", "pb"):
        obs = {"resourceType": "Observation", "status": "final", "code": {"text": "Huyết áp"},
               "subject": {"reference": f"Patient/{pid}"}, "identifier": [{"system": "urn:lab", "value": f"o-{pid}"}]}
        ids[f"obs-{pid}"] = client.post("/Observation", json=obs, headers={**FHIR, **hospital}).json()["id"]
    org = client.post("/Organization", json={"resourceType": "Organization", "name": "Trạm Y tế Phường 1"},
                      headers={**FHIR, **hospital})
    ids["org"] = org.json()["id"]
    return ids


# ------------------------------------------------------------------------------------------- tokens
def test_public_endpoints_need_no_token(app_client: TestClient) -> None:
    for path in PUBLIC:
        assert app_client.get(path).status_code == 200, path
    smart = app_client.get("/.well-known/smart-configuration").json()
    assert "permission-v2" in smart["capabilities"] and smart["jwks_uri"].endswith("/.well-known/jwks.json")
    assert app_client.get("/.well-known/jwks.json").json()["keys"][0]["alg"] == "ES256"
    security = app_client.get("/metadata").json()["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"


def test_every_other_endpoint_needs_a_token(app_client: TestClient) -> None:
    document = app_client.get("/openapi.json").json()
    checked = 0
    for template, operations in document["paths"].items():
        if template in PUBLIC or template == TOKEN_ENDPOINT:
            continue
        path = template.replace("{rtype}", "Patient").replace("{rid}", "pa").replace("{vid}", "1")
        for method in operations:
            response = app_client.request(method.upper(), path, json={"resourceType": "Patient", "id": "pa"})
            assert_outcome(response, 401, "login")
            assert response.headers["www-authenticate"].startswith("Bearer")
            checked += 1
    assert checked >= 12


def test_bad_tokens_get_401_with_the_bearer_challenge(app_client: TestClient, settings: Settings) -> None:
    now = int(time.time())
    expired = token_for(settings, ttl_seconds=-3600)
    wrong_audience = token_for(settings, aud="urn:another-hub")
    wrong_issuer = token_for(settings, iss="https://evil.example")
    not_yet = token_for(settings, nbf=now + 3600)
    cases = {"expired": expired, "wrong audience": wrong_audience, "wrong issuer": wrong_issuer,
             "not yet valid": not_yet, "garbage": "not-a-token", "truncated": expired[:40],
             "JWE": "a.b.c.d.e", "1 MB": "x" * 1_000_000}
    for name, token in cases.items():
        response = app_client.get("/Patient", headers=auth(token))
        body = assert_outcome(response, 401)
        assert 'error="invalid_token"' in response.headers["www-authenticate"], name
        assert body["issue"][0]["diagnostics"].startswith("Invalid bearer token"), name
    assert assert_outcome(app_client.get("/Patient", headers=auth(expired)), 401)["issue"][0]["code"] == "expired"
    assert_outcome(app_client.get("/Patient", headers={"Authorization": "Basic dXNlcjpwYXNz"}), 401)


def test_a_token_signed_by_another_key_is_refused(app_client: TestClient, settings: Settings,
                                                  tmp_path_factory: pytest.TempPathFactory) -> None:
    from fhir_hub.auth.keys import development_key

    other_pem, _ = development_key(tmp_path_factory.mktemp("attacker"))  # same kid, different key
    now = int(time.time())
    forged = mint_development_token(other_pem, {"iss": settings.issuer, "aud": settings.audience, "sub": "x",
                                                "iat": now, "exp": now + 60, "scope": "system/*.cruds"})
    assert_outcome(app_client.get("/Patient", headers=auth(forged)), 401)


# ------------------------------------------------------------------------------------------- scopes
def test_scopes_decide_interactions_and_types(app_client: TestClient, settings: Settings) -> None:
    seed(app_client, settings)
    lab = as_(settings, scope="system/Observation.rs")
    assert app_client.get("/Observation", headers=lab).status_code == 200
    body = assert_outcome(app_client.get("/Patient/pa", headers=lab), 403, "forbidden")
    assert "read on Patient" in body["issue"][0]["diagnostics"]
    response = app_client.post("/Observation", json={"resourceType": "Observation"}, headers={**FHIR, **lab})
    assert_outcome(response, 403)
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert_outcome(app_client.get("/Spaceship/1", headers=lab), 404)  # unknown types stay 404
    assert_outcome(app_client.get("/_history", headers=as_(settings, scope="system/Observation.c")), 403)
    system_history = app_client.get("/_history", headers=lab).json()
    assert {e["resource"]["resourceType"] for e in system_history["entry"]} == {"Observation"}


def test_too_many_search_parameters(app_client: TestClient, settings: Settings) -> None:
    params = "&".join(f"p{i}=x" for i in range(31))
    assert_outcome(app_client.get(f"/Patient?{params}", headers=as_(settings)), 400, "too-costly")


# --------------------------------------------------------------------------------- compartments
def test_a_resident_sees_only_their_own_record(app_client: TestClient, settings: Settings) -> None:
    ids = seed(app_client, settings)
    mine = as_(settings, "resident", patient="pa")
    get = lambda url, **kw: app_client.get(url, headers=mine, **kw)  # noqa: E731
    assert get("/Patient/pa").status_code == 200
    assert get(f"/Observation/{ids['obs-pa']}").status_code == 200
    for url in ("/Patient/pb", f"/Observation/{ids['obs-pb']}", f"/Observation/{ids['obs-pb']}/_history/1",
                f"/Observation/{ids['obs-pb']}/_history", "/Patient/pb/_history", f"/Organization/{ids['org']}"):
        response = get(url)
        assert response.status_code in (403, 404), url
        if url.startswith(("/Patient/pb", "/Observation")):
            body = assert_outcome(response, 404, "not-found")  # indistinguishable from a missing resource
            assert body["issue"][0]["diagnostics"].endswith("is not known to this server")
    search = get("/Observation").json()
    assert search["total"] == 1 and [e["resource"]["id"] for e in search["entry"]] == [ids["obs-pa"]]
    assert get("/Observation", params={"identifier": "urn:lab|o-pb"}).json()["total"] == 0
    assert get("/Patient").json()["total"] == 1
    leaks = {("Observation", ids["obs-pb"]), ("Patient", "pb")}
    for url, params, expected in (
        ("/Observation", {"_include": "Observation:subject"}, {("Observation", ids["obs-pa"]), ("Patient", "pa")}),
        ("/Patient", {"_revinclude": "Observation:subject"}, {("Observation", ids["obs-pa"]), ("Patient", "pa")}),
        ("/Observation", {"subject:Patient.name": "Trần"}, set()),  # the chain runs under the same grant
        ("/Observation", {"subject:Patient.name": "Nguyễn"}, {("Observation", ids["obs-pa"])}),
        ("/Observation", {"subject": "Patient/pb"}, set()),
        ("/Observation", {"patient": "pb"}, set()),
        ("/Patient", {"_has:Observation:subject:code": "Huyết áp"}, set()),  # code is a token: no text match
        ("/Patient", {"_has:Observation:subject:identifier": "urn:lab|o-pb"}, set()),
        ("/Patient", {"_has:Observation:subject:identifier": "urn:lab|o-pa"}, {("Patient", "pa")}),
        ("/Observation", {"_sort": "-date", "_count": "5"}, {("Observation", ids["obs-pa"])}),
        ("/Observation", {"code:missing": "false"}, {("Observation", ids["obs-pa"])}),
        ("/Observation", {"status:not": "cancelled"}, {("Observation", ids["obs-pa"])}),
        ("/Observation", {"_id": ids["obs-pb"]}, set()),
        ("/Observation", {"_id:not": "nothing"}, {("Observation", ids["obs-pa"])}),
        ("/", {"_type": "Observation,Patient"}, {("Observation", ids["obs-pa"]), ("Patient", "pa")}),
        ("/", {"_lastUpdated": "ge2000"}, {("Observation", ids["obs-pa"]), ("Patient", "pa")}),  # no Organization
        ("/", {"_id": f"pb,{ids['obs-pb']}"}, set()),
        ("/Patient", {"_id": "pa", "_revinclude:iterate": "Observation:subject"},
         {("Observation", ids["obs-pa"]), ("Patient", "pa")}),
    ):
        answer = get(url, params=params).json()
        returned = {(e["resource"]["resourceType"], e["resource"]["id"]) for e in answer.get("entry", [])
                    if e["search"]["mode"] != "outcome"}
        assert returned == expected and not returned & leaks, params
        assert answer["total"] == len([e for e in answer.get("entry", []) if e["search"]["mode"] == "match"])
    history = get("/Observation/_history").json()
    assert {e["resource"]["id"] for e in history["entry"]} == {ids["obs-pa"]}
    system = get("/_history").json()
    assert {e["resource"]["subject"]["reference"] for e in system["entry"]
            if e["resource"]["resourceType"] == "Observation"} == {"Patient/pa"}
    patients = {e["resource"]["id"] for e in system["entry"] if e["resource"]["resourceType"] == "Patient"}
    assert {pid for pid in patients if not pid.startswith("master-")} == {"pa"}  # and pa's own master record
    assert assert_outcome(get("/Organization"), 403)  # not in the Patient compartment: no patient scope reaches it
    assert assert_outcome(get("/", params={"_type": "Organization"}), 403)
    batch = app_client.post("/", json={"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": "Patient/pb"}}]}, headers={**FHIR, **mine})
    assert batch.status_code == 200 and "Trần" not in batch.text
    assert batch.json()["entry"][0]["response"]["status"] == "404 Not Found"


def test_a_deleted_record_of_another_resident_is_not_even_gone(app_client: TestClient, settings: Settings) -> None:
    ids = seed(app_client, settings)
    app_client.delete(f"/Observation/{ids['obs-pb']}", headers=as_(settings))
    assert_outcome(app_client.get(f"/Observation/{ids['obs-pb']}", headers=as_(settings, "resident", patient="pa")),
                   404)
    assert_outcome(app_client.get(f"/Observation/{ids['obs-pb']}", headers=as_(settings, "resident", patient="pb")),
                   410)


def test_resident_writes_stay_in_their_compartment(app_client: TestClient, settings: Settings) -> None:
    """A resident writes their consents and nothing else, and only about themselves."""
    ids = seed(app_client, settings)
    writer = {**FHIR, **as_(settings, "resident", patient="pa", scope="patient/*.cruds")}
    own = {**consent(), "patient": {"reference": "Patient/pa"}}
    created = app_client.post("/Consent", json=own, headers=writer)
    assert created.status_code == 201
    assert created.json()["meta"]["source"] == "urn:fhir-hub:resident:pa"
    other = {**own, "patient": {"reference": "Patient/pb"}}
    assert_outcome(app_client.post("/Consent", json=other, headers=writer), 403)
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "Cân nặng"},
                   "subject": {"reference": "Patient/pa"}}
    assert "writes only their consents" in assert_outcome(
        app_client.post("/Observation", json=observation, headers=writer), 403)["issue"][0]["diagnostics"]
    theirs = app_client.get(f"/Observation/{ids['obs-pb']}", headers=as_(settings)).json()
    assert_outcome(app_client.put(f"/Observation/{ids['obs-pb']}", json=theirs, headers=writer), 404)
    assert app_client.delete("/Observation", params={"identifier": "urn:lab|o-pb"}, headers=writer).status_code == 204
    assert app_client.get(f"/Observation/{ids['obs-pb']}", headers=as_(settings)).status_code == 200  # untouched
    readonly = {**FHIR, **as_(settings, "resident", patient="pa", scope="patient/*.rs")}
    assert_outcome(app_client.post("/Consent", json=own, headers=readonly), 403)
    # a hospital's record about the resident is the hospital's: the resident cannot rewrite it
    hospital_record = app_client.get(f"/Observation/{ids['obs-pa']}", headers=as_(settings)).json()
    assert_outcome(app_client.put(f"/Observation/{ids['obs-pa']}", json=hospital_record, headers=writer), 403)


# -------------------------------------------------------------------------------- facility boundary
def test_a_facility_writes_only_under_its_own_name(app_client: TestClient, settings: Settings) -> None:
    """Another facility cannot change a record: one it may not see is as absent (404, a delete of nothing);
    one a consent lets it read is still not its own (403, the facility boundary)."""
    mine = {**FHIR, **as_(settings, facility="79001")}
    theirs = {**FHIR, **as_(settings, facility="79002")}
    spoofed = {"resourceType": "Patient", "meta": {"source": "urn:fhir-hub:facility:79002"}, "active": True}
    created = app_client.post("/Patient", json=spoofed, headers=mine).json()
    assert created["meta"]["source"] == "urn:fhir-hub:facility:79001"
    pid = created["id"]
    assert_outcome(app_client.put(f"/Patient/{pid}", json=created, headers=theirs), 404)
    assert app_client.delete(f"/Patient/{pid}", headers=theirs).status_code == 204
    give(app_client, as_(settings, "resident", patient=pid), {**consent(), "patient": {"reference": f"Patient/{pid}"}})
    assert "facility boundary" in assert_outcome(app_client.put(f"/Patient/{pid}", json=created, headers=theirs),
                                                 403)["issue"][0]["diagnostics"]
    assert_outcome(app_client.delete(f"/Patient/{pid}", headers=theirs), 403)
    assert app_client.put(f"/Patient/{pid}", json=created, headers=mine).status_code == 200
    no_facility = {**FHIR, **as_(settings, role="clinician")}
    assert_outcome(app_client.post("/Patient", json={"resourceType": "Patient"}, headers=no_facility), 403)
    for method in ("POST", "PUT"):
        url = "/AuditEvent" if method == "POST" else "/AuditEvent/x"
        response = app_client.request(method, url, json={"resourceType": "AuditEvent", "id": "x"}, headers=mine)
        assert_outcome(response, 403)


# ----------------------------------------------------------------------------------------- audit
def test_every_request_leaves_an_audit_event(app_client: TestClient, settings: Settings) -> None:
    ids = seed(app_client, settings)
    hospital = as_(settings, facility="79001", purpose="TREAT", subject="his-cho-ray")
    app_client.get("/Patient/pa", headers=hospital)
    app_client.get(f"/Observation/{ids['obs-pb']}", headers=as_(settings, "resident", patient="pa"))  # refused
    app_client.get("/Observation", headers={**as_(settings, "clinician", purpose="ETREAT", subject="bs-an"),
                                            "X-Emergency-Reason": "collapsed in the waiting room"})
    app_client.portal.call(app_client.app.state.hub.audit.flush)
    operator = as_(settings, facility=None)  # the audit administrator
    everything = app_client.get("/AuditEvent", params={"_count": 100}, headers=operator).json()
    events = [e["resource"] for e in everything["entry"]]
    for event in events:
        AuditEvent.model_validate(event)
        assert event["meta"]["source"] == "urn:fhir-hub:audit"
    read = next(e for e in events if e["subtype"][0]["code"] == "read" and
                e["agent"][0]["who"]["identifier"]["value"] == "his-cho-ray" and
                e["entity"][0]["what"] == {"reference": "Patient/pa"})  # (another: pa's master, issue 16)
    assert read["outcome"] == "0" and read["action"] == "R"
    assert read["agent"][1]["who"]["identifier"]["value"] == "79001"
    assert {"what": {"reference": "Patient/pa"}} .items() <= read["entity"][0].items()
    refused = next(e for e in events if e["outcome"] == "4")
    assert refused["outcomeDesc"] == "HTTP 404"
    emergency = [e for e in events if e["purposeOfEvent"][0]["coding"][0]["code"] == "ETREAT"]
    # one AuditEvent per patient the search touched (IHE Basic Audit Log Patterns), and the administrator's
    per_patient = [e for e in emergency if len(patients_of(e)) == 1]
    assert sorted(e["entity"][0]["what"]["reference"] for e in per_patient) == ["Patient/pa", "Patient/pb"]
    assert [patients_of(e) for e in emergency if e not in per_patient] == [["Patient/pa", "Patient/pb"]]
    # a resident sees who accessed their record, and nothing about anyone else's
    own = app_client.get("/AuditEvent", params={"_count": 100}, headers=as_(settings, "resident", patient="pb")).json()
    own_events = [e["resource"] for e in own["entry"]]
    person = {"Patient/pb", app_client.get("/Patient/pb", headers=operator).json()["link"][0]["other"]["reference"]}
    assert own_events and all(any(ent.get("what", {}).get("reference") in person for ent in ev["entity"])
                              for ev in own_events)
    assert not any(ev["agent"][0]["who"].get("identifier", {}).get("value") == "his-cho-ray" for ev in own_events)


def patients_of(event: dict[str, Any]) -> list[str]:
    return [e["what"]["reference"] for e in event["entity"] if e.get("role", {}).get("display") == "Patient"]


def test_audit_events_are_not_editable(app_client: TestClient, settings: Settings) -> None:
    app_client.get("/Patient", headers=as_(settings))
    app_client.portal.call(app_client.app.state.hub.audit.flush)
    event = app_client.get("/AuditEvent", headers=as_(settings, facility=None)).json()["entry"][0]["resource"]
    admin = {**FHIR, **as_(settings, scope="system/*.cruds", facility=None)}  # the operator, audit administrator
    assert_outcome(app_client.put(f"/AuditEvent/{event['id']}", content=orjson.dumps(event), headers=admin), 403)
    assert_outcome(app_client.delete(f"/AuditEvent/{event['id']}", headers=admin), 403)
    assert app_client.get(f"/AuditEvent/{event['id']}", headers=admin).json()["meta"]["versionId"] == "1"
