"""A resident's correction request (issue 19): a ``Task`` routed by the hub to the facility that created
the record, read by that facility in its worklist and by nobody else but the resident.

The world: facility 79002 treats Lan (``pat-lan``) and Minh (``pat-minh``) and holds the Organization with
its MoH code; facility 79003 treats neither.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_hub.config import Settings
from fhir_hub.main import create_app
from tests.conftest import as_, assert_outcome
from tests.consent.test_consent_reads import FHIR, put

FACILITY_SYSTEM = "http://fhir.hl7.org.vn/core/sid/ma-cskcb"
TASK_CODES = "http://hl7.org/fhir/CodeSystem/task-code"
WORKLIST = {"owner": "Organization/org-79002", "status": "requested"}


@pytest.fixture
def world(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        facility = as_(settings, facility="79002")
        put(client, facility, "Organization", "org-79002", {
            "name": "Bệnh viện Quận 2", "identifier": [{"system": FACILITY_SYSTEM, "value": "79002"}]})
        for pid, given in (("pat-lan", "Lan"), ("pat-minh", "Minh")):
            put(client, facility, "Patient", pid, {"name": [{"family": "Nguyễn", "given": [given]}]})
            put(client, facility, "Condition", f"cond-{pid}", {
                "subject": {"reference": f"Patient/{pid}"},
                "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "E11"}]}})
        yield client


def request_body(record: str = "Condition/cond-pat-lan", patient: str = "pat-lan", **changes: Any) -> dict[str, Any]:
    return {"resourceType": "Task", "status": "requested", "intent": "proposal",
            "code": {"coding": [{"system": TASK_CODES, "code": "change"}]},
            "focus": {"reference": record}, "for": {"reference": f"Patient/{patient}"},
            "description": "Tôi không bị tiểu đường type 2", **changes}


def ask(client: TestClient, headers: dict[str, str], body: dict[str, Any]) -> Any:
    return client.post("/Task", json=body, headers={**FHIR, **headers})


def lan(settings: Settings) -> dict[str, str]:
    return as_(settings, "resident", patient="pat-lan")


def ids(client: TestClient, headers: dict[str, str], params: dict[str, str]) -> list[str]:
    found = client.get("/Task", params=params, headers=headers)
    assert found.status_code == 200, found.text
    bundle = found.json()
    listed = [e["resource"]["id"] for e in bundle.get("entry", [])]
    assert bundle["total"] == len(listed)
    return listed


def test_the_hub_routes_a_request_to_the_facility_that_created_the_record(
        world: TestClient, settings: Settings) -> None:
    claimed = {"reference": "Organization/elsewhere", "identifier": {"system": FACILITY_SYSTEM, "value": "79003"}}
    created = ask(world, lan(settings), request_body(owner=claimed, authoredOn="1999-01-01"))
    assert created.status_code == 201, created.text
    task = created.json()
    assert task["owner"] == {"reference": "Organization/org-79002", "display": "Bệnh viện Quận 2",
                             "identifier": {"system": FACILITY_SYSTEM, "value": "79002"}}  # never the client's
    assert task["requester"] == {"reference": "Patient/pat-lan"}
    assert task["authoredOn"] != "1999-01-01"
    assert task["meta"]["source"].endswith(":resident:pat-lan")

    facility, other = as_(settings, facility="79002"), as_(settings, facility="79003")
    assert ids(world, facility, WORKLIST) == [task["id"]]
    assert world.get(f"/Task/{task['id']}", headers=as_(settings, "clinician", facility="79002")).status_code == 200
    assert ids(world, other, {"status": "requested"}) == []
    assert_outcome(world.get(f"/Task/{task['id']}", headers=other), 404)
    assert ids(world, lan(settings), {}) == [task["id"]]
    assert_outcome(world.get(f"/Task/{task['id']}", headers=as_(settings, "resident", patient="pat-minh")), 404)
    assert ids(world, as_(settings, "resident", patient="pat-minh"), {}) == []


def test_without_the_facility_s_organization_the_owner_is_its_code(world: TestClient, settings: Settings) -> None:
    put(world, as_(settings, facility="79004"), "Observation", "obs-lan", {
        "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
        "subject": {"reference": "Patient/pat-lan"}})
    task = ask(world, lan(settings), request_body("Observation/obs-lan")).json()
    assert task["owner"] == {"identifier": {"system": FACILITY_SYSTEM, "value": "79004"}}
    assert ids(world, as_(settings, facility="79004"), {"status": "requested"}) == [task["id"]]
    assert ids(world, as_(settings, facility="79002"), {"status": "requested"}) == []


def test_a_record_the_resident_may_not_read_is_refused_as_one_that_does_not_exist(
        world: TestClient, settings: Settings) -> None:
    someone_else = assert_outcome(ask(world, lan(settings), request_body("Condition/cond-pat-minh")), 422)
    unknown = assert_outcome(ask(world, lan(settings), request_body("Condition/never-written")), 422)
    assert someone_else["issue"][0]["expression"] == ["Task.focus"]
    assert someone_else["issue"][0]["diagnostics"].replace("cond-pat-minh", "X") == \
        unknown["issue"][0]["diagnostics"].replace("never-written", "X")
    not_personal = assert_outcome(ask(world, lan(settings), request_body("Organization/org-79002")), 422)
    assert not_personal["issue"][0]["expression"] == ["Task.focus"]
    assert ids(world, as_(settings, facility="79002"), {}) == []


@pytest.mark.parametrize(("changes", "status", "element"), [
    ({"for": {"reference": "Patient/pat-minh"}}, 403, "Task.for"),
    ({"status": "draft"}, 422, "Task.status"),
    ({"intent": "plan"}, 422, "Task.intent"),
    ({"code": {"coding": [{"system": TASK_CODES, "code": "abort"}]}}, 422, "Task.code"),
    ({"description": " "}, 422, "Task.description"),
    ({"focus": {"reference": "Patient/pat-minh"}}, 422, "Task.focus"),
    ({"focus": {"display": "my diagnosis"}}, 422, "Task.focus"),
])
def test_what_is_not_a_resident_s_correction_request_is_refused_naming_the_element(
        world: TestClient, settings: Settings, changes: dict[str, Any], status: int, element: str) -> None:
    body = assert_outcome(ask(world, lan(settings), request_body(**changes)), status)
    assert body["issue"][0]["expression"] == [element]


def test_a_resident_creates_requests_and_writes_nothing_else(world: TestClient, settings: Settings) -> None:
    task = ask(world, lan(settings), request_body()).json()
    changed = {**task, "status": "cancelled"}
    assert_outcome(world.put(f"/Task/{task['id']}", json=changed, headers={**FHIR, **lan(settings)}), 403, "forbidden")
    assert_outcome(world.delete(f"/Task/{task['id']}", headers=lan(settings)), 403)
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                   "subject": {"reference": "Patient/pat-lan"}}
    assert_outcome(world.post("/Observation", json=observation, headers={**FHIR, **lan(settings)}), 403)


def test_a_facility_naming_another_as_a_task_s_owner_discloses_nothing(world: TestClient, settings: Settings) -> None:
    owner = {"identifier": {"system": FACILITY_SYSTEM, "value": "79003"}}
    created = world.post("/Task", json=request_body(owner=owner), headers={**FHIR, **as_(settings, facility="79002")})
    assert created.status_code == 201, created.text
    assert_outcome(world.get(f"/Task/{created.json()['id']}", headers=as_(settings, facility="79003")), 404)


def test_the_facility_answers_the_request_and_changes_nothing_else(world: TestClient, settings: Settings) -> None:
    """The owner updates the Task's workflow elements (accepted, then completed with a note), by PATCH or by
    PUT; what was asked, about what and for whom, stays the resident's; another facility answers nothing."""
    client = world
    made = ask(client, lan(settings), request_body())
    assert made.status_code == 201, made.text
    tid = made.json()["id"]
    owner = {**FHIR, **as_(settings, facility="79002")}
    patching = {**owner, "Content-Type": "application/json-patch+json"}
    accepted = client.patch(f"/Task/{tid}", headers=patching, json=[
        {"op": "replace", "path": "/status", "value": "accepted"}])
    assert accepted.status_code == 200, accepted.text
    body = accepted.json()
    assert body["meta"]["source"].endswith(":facility:79002") and body["focus"] == made.json()["focus"]
    done = {**body, "status": "completed", "note": [{"text": "Đã sửa chẩn đoán"}]}
    assert client.put(f"/Task/{tid}", headers=owner, json=done).status_code == 200
    seen = client.get(f"/Task/{tid}", headers=lan(settings)).json()  # the resident sees the answer
    assert seen["status"] == "completed" and seen["note"] == [{"text": "Đã sửa chẩn đoán"}]
    moved = client.patch(f"/Task/{tid}", headers=patching, json=[
        {"op": "replace", "path": "/focus/reference", "value": "Condition/cond-pat-minh"}])
    assert "Task.focus" in assert_outcome(moved, 403)["issue"][0]["diagnostics"]
    other = client.patch(f"/Task/{tid}", headers={**patching, **as_(settings, facility="79003")}, json=[
        {"op": "replace", "path": "/status", "value": "rejected"}])
    assert other.status_code in (403, 404)
    assert client.get(f"/Task/{tid}", headers=owner).json()["status"] == "completed"
