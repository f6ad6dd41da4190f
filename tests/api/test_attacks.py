"""Attacks found by an adversarial pass (hardening issue), each stopped: every test is named for what it stops.

Write-only tokens reading records through PATCH, residents reading other people's data in their own audit
trail, residents planting data in someone else's record, and update-as-create as an existence oracle.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from pymongo import monitoring

from fhir_hub.config import Settings
from fhir_hub.main import create_app
from fhir_hub.store.mongo import MongoStore
from fhir_hub.store.schema import HISTORY, RESOURCES
from tests.conftest import as_, assert_outcome, token_for
from tests.consent.test_consent_reads import consent

FHIR = {"Content-Type": "application/fhir+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}
SECRET_BIRTH_DATE = "1961-07-23"
HIV_VIRAL_LOAD = "20447-9"


def seed(client: TestClient, settings: Settings) -> dict[str, str]:
    """Residents pa (Nguyễn) and pb (Trần, with an HIV viral load), recorded by facility 79001."""
    hospital = {**FHIR, **as_(settings)}
    for pid, family in (("pa", "Nguyễn"), ("pb", "Trần")):
        patient = {"resourceType": "Patient", "id": pid, "name": [{"family": family}], "birthDate": SECRET_BIRTH_DATE}
        assert client.put(f"/Patient/{pid}", json=patient, headers=hospital).status_code == 201
    ids = {}
    for pid, code in (("pa", "8480-6"), ("pb", HIV_VIRAL_LOAD)):
        obs = {"resourceType": "Observation", "status": "final", "subject": {"reference": f"Patient/{pid}"},
               "code": {"coding": [{"system": "http://loinc.org", "code": code}]}}
        ids[pid] = client.post("/Observation", json=obs, headers=hospital).json()["id"]
    return ids


def flush(client: TestClient) -> None:
    client.portal.call(client.app.state.hub.audit.flush)  # type: ignore[attr-defined]


def fhirpath_patch(criteria: str) -> bytes:
    return orjson.dumps({"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
        {"name": "type", "valueCode": "replace"}, {"name": "path", "valueString": f"Patient.name.where({criteria})"},
        {"name": "value", "valueHumanName": {"family": "X"}}]}]})


# ------------------------------------------------------------------ 1. a write-only token reads through PATCH
@pytest.mark.parametrize("operations", [
    [{"op": "test", "path": "", "value": "x"}],
    [{"op": "test", "path": "/birthDate", "value": "x"}],
    [{"op": "test", "path": "/birthDate", "value": SECRET_BIRTH_DATE}, {"op": "remove", "path": "/nothing"}],
    [{"op": "copy", "from": "/birthDate", "path": "/id"}],
])
def test_a_write_only_token_cannot_read_a_record_through_json_patch(
        app_client: TestClient, settings: Settings, operations: list[dict[str, Any]]) -> None:
    seed(app_client, settings)
    writer = {**JSON_PATCH, **as_(settings, scope="system/*.cu")}
    assert_outcome(app_client.get("/Patient/pa", headers=writer), 403)
    answers = [app_client.patch(f"/Patient/{pid}", content=orjson.dumps(operations), headers=writer)
               for pid in ("pa", "does-not-exist")]
    for response in answers:
        assert_outcome(response, 403, "forbidden")
        assert SECRET_BIRTH_DATE not in response.text and "Nguy" not in response.text
    assert answers[0].json() == answers[1].json()  # nor whether the record exists
    assert app_client.get("/Patient/pa", headers=as_(settings)).json()["meta"]["versionId"] == "1"


def test_a_write_only_token_gets_no_yes_or_no_from_fhirpath_patch(app_client: TestClient, settings: Settings) -> None:
    seed(app_client, settings)
    writer = {**FHIR, **as_(settings, scope="system/*.cu")}
    true, false = (app_client.patch("/Patient/pb", content=fhirpath_patch(f"family = '{family}'"), headers=writer)
                   for family in ("Trần", "Lê"))
    assert true.status_code == false.status_code == 403 and true.json() == false.json()


def test_another_facility_cannot_probe_a_record_it_does_not_own(app_client: TestClient, settings: Settings) -> None:
    """Another facility may not run a patch over a record it did not create: without a consent it does not
    even see the record (404, exactly as for a missing one), and a failed test and a passing one answer alike."""
    seed(app_client, settings)
    other = as_(settings, facility="79002")
    probes = [[{"op": "test", "path": "/birthDate", "value": value}] for value in (SECRET_BIRTH_DATE, "1900-01-01")]
    answers = [app_client.patch("/Patient/pa", content=orjson.dumps(p), headers={**JSON_PATCH, **other})
               for p in probes]
    answers += [app_client.patch("/Patient/pb", content=fhirpath_patch(f"family = '{f}'"), headers={**FHIR, **other})
                for f in ("Trần", "Lê")]
    for response in answers:
        assert_outcome(response, 404)
        assert SECRET_BIRTH_DATE not in response.text
    assert answers[0].text == answers[1].text


def test_a_failed_test_operation_does_not_echo_the_stored_value(app_client: TestClient, settings: Settings) -> None:
    seed(app_client, settings)
    probe = [{"op": "test", "path": "/birthDate", "value": "1900-01-01"}]
    response = app_client.patch("/Patient/pa", content=orjson.dumps(probe), headers={**JSON_PATCH, **as_(settings)})
    assert_outcome(response, 422)
    assert SECRET_BIRTH_DATE not in response.text


def test_a_refused_patch_is_audited_against_the_patient(app_client: TestClient, settings: Settings) -> None:
    seed(app_client, settings)
    probe = orjson.dumps([{"op": "test", "path": "/birthDate", "value": "x"}])
    app_client.patch("/Patient/pa", content=probe, headers={**JSON_PATCH, **as_(settings, scope="system/*.cu",
                                                                                 subject="prober")})
    flush(app_client)
    own = app_client.get("/AuditEvent", params={"patient": "pa"}, headers=as_(settings, "resident", patient="pa"))
    attempts = [e["resource"] for e in own.json()["entry"]
                if e["resource"]["subtype"][0]["code"] == "patch"]
    assert len(attempts) == 1 and attempts[0]["outcome"] == "4"
    assert attempts[0]["agent"][0]["who"]["identifier"]["value"] == "prober"


# ------------------------------------------------------------ 2. other people's data in a resident's audit trail
def _everything_shown(bundle: dict[str, Any]) -> str:
    """The bundle's text with every base64 query decoded, so a leak in either form is found."""
    decoded = [base64.b64decode(entity["query"]).decode()
               for entry in bundle.get("entry", []) for entity in entry["resource"]["entity"] if "query" in entity]
    return orjson.dumps(bundle).decode() + "\n".join(decoded)


def test_a_resident_audit_trail_shows_nothing_of_other_people(app_client: TestClient, settings: Settings) -> None:
    ids = seed(app_client, settings)
    hospital = as_(settings, subject="his-cho-ray")
    for url in ("/Patient?name=Trần", "/Patient?_id=pa,pb", f"/Observation?_id={ids['pa']},{ids['pb']}",
                f"/Observation?code=http://loinc.org|8480-6,http://loinc.org|{HIV_VIRAL_LOAD}"):
        assert app_client.get(url, headers=hospital).status_code == 200
    flush(app_client)
    own = app_client.get("/AuditEvent", params={"_count": 200}, headers=as_(settings, "resident", patient="pa"))
    shown = _everything_shown(own.json())
    assert own.json()["entry"], "pa's own accesses are listed"
    for leak in ("Patient/pb", ids["pb"], "Trần", "Tr%C3%A1%BA%A7n", HIV_VIRAL_LOAD, "_id=", "name="):
        assert leak not in shown, leak
    # the audit administrator (the hub's operator) still sees every request whole: its query and every patient
    admin = app_client.get("/AuditEvent", params={"_count": 200}, headers=as_(settings, facility=None)).json()
    whole = _everything_shown(admin)
    assert "_id=pa,pb" in whole and HIV_VIRAL_LOAD in whole and "name=Tr" in whole


# ------------------------------------------------------------- 7. a resident plants data in another's record
@pytest.mark.parametrize("resource", [
    {"resourceType": "Observation", "status": "final", "code": {"text": "Huyết áp"},
     "subject": {"reference": "Patient/pa"}, "performer": [{"reference": "Patient/pb"}]},
    {"resourceType": "Observation", "status": "final", "code": {"text": "Huyết áp"},
     "subject": {"reference": "Patient/pb"}, "performer": [{"reference": "Patient/pa"}]},
    {"resourceType": "Patient", "link": [{"other": {"reference": "Patient/pb"}, "type": "seealso"}]},
])
def test_a_resident_cannot_write_into_another_residents_compartment(
        app_client: TestClient, settings: Settings, resource: dict[str, Any]) -> None:
    seed(app_client, settings)
    writer = {**FHIR, **as_(settings, "resident", patient="pa", scope="patient/*.cruds")}
    assert_outcome(app_client.post(f"/{resource['resourceType']}", json=resource, headers=writer), 403)
    theirs = app_client.get(f"/{resource['resourceType']}", headers=as_(settings, "resident", patient="pb")).json()
    assert all(e["resource"]["meta"]["source"].endswith(":facility:79001") for e in theirs.get("entry", []))


def test_a_resident_cannot_add_another_resident_to_their_own_record(app_client: TestClient,
                                                                     settings: Settings) -> None:
    """A resident's own consent (the one thing they write) cannot be turned into someone else's."""
    seed(app_client, settings)
    writer = {**FHIR, **as_(settings, "resident", patient="pa", scope="patient/*.cruds")}
    own = {**consent(), "patient": {"reference": "Patient/pa"}}
    created = app_client.post("/Consent", json=own, headers=writer).json()
    planted = {**created, "patient": {"reference": "Patient/pb"}}
    assert_outcome(app_client.put(f"/Consent/{created['id']}", json=planted, headers=writer), 403)
    patch = [{"op": "replace", "path": "/patient", "value": {"reference": "Patient/pb"}}]
    response = app_client.patch(f"/Consent/{created['id']}", content=orjson.dumps(patch),
                                headers={**writer, **JSON_PATCH})
    assert_outcome(response, 403)


# ------------------------------------------------------------------- 10. update-as-create as an existence oracle
def test_a_resident_put_does_not_tell_which_ids_exist(app_client: TestClient, settings: Settings) -> None:
    seed(app_client, settings)
    writer = {**FHIR, **as_(settings, "resident", patient="pa", scope="patient/*.cruds")}

    own = {**consent(), "patient": {"reference": "Patient/pa"}}
    theirs = app_client.post("/Consent", json={**own, "patient": {"reference": "Patient/pb"}},
                             headers={**FHIR, **as_(settings, "resident", patient="pb")}).json()["id"]

    def put(rid: str) -> dict[str, Any]:
        answer = assert_outcome(app_client.put(f"/Consent/{rid}", json={**own, "id": rid}, headers=writer), 404)
        return orjson.loads(orjson.dumps(answer).replace(rid.encode(), b"<id>"))

    assert put(theirs) == put("a-new-id")
    created = app_client.post("/Consent", json=own, headers=writer)
    assert created.status_code == 201  # residents create with POST, and update what is theirs
    changed = {**created.json(), "status": "inactive"}
    assert app_client.put(f"/Consent/{changed['id']}", json=changed, headers=writer).status_code == 200


# ------------------------------------------------------------------ 3. resident history ties up the store
class DocumentsRead(monitoring.CommandListener):
    """How many resource documents (current and superseded versions) the store hands the hub."""

    def __init__(self, db_name: str) -> None:
        self.db_name = db_name
        self.collections: dict[int, str] = {}
        self.count = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.database_name == self.db_name and event.command_name in ("find", "getMore"):
            name = event.command.get("find") or event.command.get("collection")
            self.collections[event.request_id] = str(name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if self.collections.pop(event.request_id, None) in (RESOURCES, HISTORY):
            cursor = event.reply.get("cursor", {})
            self.count += len(cursor.get("firstBatch", cursor.get("nextBatch", [])))

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self.collections.pop(event.request_id, None)


def _encounter(pid: str, n: int) -> dict[str, Any]:
    return {"resourceType": "Encounter", "id": f"e-{pid}-{n}", "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": f"Patient/{pid}"}}


def test_a_resident_history_reads_only_their_compartment(settings: Settings) -> None:
    reads = DocumentsRead(settings.db_name)
    monitoring.register(reads)  # applies to the app's client, created below
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        hospital = {**FHIR, **as_(settings)}
        others = [_encounter(f"p{i}", 1) for i in range(150)]
        for resource in others[:40]:  # other people's records change too: versions the resident must not cost
            resource["status"] = "in-progress"
        batch = {"resourceType": "Bundle", "type": "batch", "entry": [
            {"resource": r, "request": {"method": "PUT", "url": f"Encounter/{r['id']}"}} for r in others]}
        assert client.post("/", json=batch, headers=hospital).status_code == 200
        mine = [_encounter("pa", n) for n in range(3)]
        for resource in mine:
            assert client.put(f"/Encounter/{resource['id']}", json=resource, headers=hospital).status_code == 201
        for resource in others[:40]:
            client.put(f"/Encounter/{resource['id']}", json={**resource, "status": "finished"}, headers=hospital)
        client.put("/Encounter/e-pa-0", json={**mine[0], "status": "cancelled"}, headers=hospital)
        client.delete("/Encounter/e-pa-1", headers=hospital)  # a deletion stays in the resident's history
        resident = as_(settings, "resident", patient="pa")
        reads.count = 0
        seen, url = [], "/Encounter/_history?_count=1"
        while url:
            page = client.get(url, headers=resident).json()
            seen += [(e["fullUrl"].rsplit("/", 1)[1], e["response"]["etag"]) for e in page.get("entry", [])]
            url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
        everything = client.get("/_history", params={"_count": 50}, headers=resident).json()
        assert client.put("/Encounter/e-pa-1", json=mine[1], headers=hospital).status_code == 201  # resurrected
        again = client.get("/Encounter/_history", params={"_count": 50}, headers=resident).json()
    assert seen == [("e-pa-1", 'W/"2"'), ("e-pa-0", 'W/"2"'), ("e-pa-2", 'W/"1"'), ("e-pa-1", 'W/"1"'),
                    ("e-pa-0", 'W/"1"')]
    assert reads.count < 40, "the resident's history must not page through other people's versions"
    assert {e["fullUrl"].rsplit("/", 1)[1] for e in everything["entry"]} == {"e-pa-0", "e-pa-1", "e-pa-2"}
    assert [e["response"]["etag"] for e in again["entry"] if e["fullUrl"].endswith("e-pa-1")] == ['W/"3"', 'W/"2"',
                                                                                                  'W/"1"']


def test_versions_follow_a_corrected_subject(app_client: TestClient, settings: Settings) -> None:
    """After a facility corrects an Observation's subject from A to B, A no longer reads it in any version."""
    ids = seed(app_client, settings)
    hospital = {**FHIR, **as_(settings)}
    wrong = app_client.get(f"/Observation/{ids['pa']}", headers=hospital).json()
    corrected = {**wrong, "subject": {"reference": "Patient/pb"}}
    assert app_client.put(f"/Observation/{ids['pa']}", json=corrected, headers=hospital).status_code == 200
    a, b = as_(settings, "resident", patient="pa"), as_(settings, "resident", patient="pb")
    for url in (f"/Observation/{ids['pa']}/_history/1", f"/Observation/{ids['pa']}/_history",
                f"/Observation/{ids['pa']}"):
        assert_outcome(app_client.get(url, headers=a), 404)
        assert app_client.get(url, headers=b).status_code == 200, url
    for url in ("/Observation/_history", "/_history"):
        a_sees = {e["resource"]["id"] for e in app_client.get(url, headers=a).json().get("entry", [])}
        b_sees = [(e["resource"]["id"], e["resource"]["meta"]["versionId"])
                  for e in app_client.get(url, headers=b).json().get("entry", []) if e["resource"]["id"] == ids["pa"]]
        assert ids["pa"] not in a_sees and sorted(b_sees) == [(ids["pa"], "1"), (ids["pa"], "2")], url


class EndlessHistory:
    """A store history read that never ends by itself, noting when it starts and when it is stopped."""

    def __init__(self) -> None:
        self.started, self.stopped = threading.Event(), threading.Event()

    async def __call__(self, *_args: Any, **_kwargs: Any) -> Any:
        self.started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            self.stopped.set()
            raise


def test_a_read_past_its_time_budget_is_stopped_with_a_clear_error(settings: Settings,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    endless = EndlessHistory()
    monkeypatch.setattr(MongoStore, "history", endless)
    with TestClient(create_app(settings.with_(request_budget_ms=300)), raise_server_exceptions=False) as client:
        response = client.get("/Encounter/_history", headers=as_(settings))
        body = assert_outcome(response, 503, "timeout")
        assert "FHIR_HUB_REQUEST_BUDGET_MS" in body["issue"][0]["diagnostics"]
        assert endless.stopped.is_set()
        assert client.get("/Patient/pa", headers=as_(settings)).status_code == 404  # the hub goes on


def test_a_read_stops_when_its_client_leaves(live_server: str, settings: Settings,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    endless = EndlessHistory()
    monkeypatch.setattr(MongoStore, "history", endless)
    host, port = live_server.removeprefix("http://").split(":")
    token = token_for(settings)
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(f"GET /Encounter/_history HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}"
                           "\r\n\r\n".encode())
        assert endless.started.wait(10), "the history request did not reach the store"
    assert endless.stopped.wait(10), "the hub went on working for a client that had left"
