"""FHIRPath Patch (R4 fhirpatch.html): every operation over HTTP, the errors that name the operation, and
properties of the path parser and the operations (hypothesis)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhir_hub.errors import BadRequest, HubError, UnprocessableResource
from fhir_hub.fhir.fhirpath_patch import fhirpath_patch, parse_path
from fhir_hub.fhir.validation import validate_resource
from tests.conftest import assert_outcome

FHIR = {"Content-Type": "application/fhir+json"}
PATIENT = {"resourceType": "Patient", "active": True,
           "identifier": [{"system": "urn:vn:cccd", "value": "079190000001"},
                          {"system": "urn:vn:bhyt", "value": "DN4797915000001"}],
           "name": [{"family": "Nguyễn", "given": ["Văn", "An"]}], "gender": "male", "birthDate": "1980-01-01",
           "extension": [{"url": "http://example.org/ethnicity", "valueString": "Kinh"}]}


def operation(kind: str, path: str, **parts: Any) -> dict[str, Any]:
    """One operation parameter; ``value`` is given as its typed part (``{"valueString": ...}``) or parts."""
    items: list[dict[str, Any]] = [{"name": "type", "valueCode": kind}, {"name": "path", "valueString": path}]
    for name, value in parts.items():
        if name == "value":
            items.append({"name": "value", **value})
        elif name == "name":
            items.append({"name": "name", "valueString": value})
        else:
            items.append({"name": name, "valueInteger": value})
    return {"name": "operation", "part": items}


def patch_of(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": list(operations)}


def created(client: TestClient) -> str:
    response = client.post("/Patient", json=PATIENT, headers=FHIR)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def send(client: TestClient, pid: str, *operations: dict[str, Any]) -> Any:
    return client.patch(f"/Patient/{pid}", json=patch_of(*operations), headers=FHIR)


# ------------------------------------------------------------------------------------------- over HTTP
def test_every_operation_in_one_patch(client: TestClient) -> None:
    pid = created(client)
    response = send(
        client, pid,
        operation("replace", "Patient.birthDate", value={"valueDate": "1981-02-03"}),
        operation("add", "Patient", name="telecom", value={"valueContactPoint": {"system": "phone",
                                                                                  "value": "+84903123456"}}),
        operation("insert", "Patient.name.given", index=0, value={"valueString": "Bé"}),
        operation("move", "Patient.identifier", source=1, destination=0),
        operation("delete", "Patient.extension('http://example.org/ethnicity')"),
        operation("add", "Patient", name="contact", value={"part": [
            {"name": "relationship", "valueCodeableConcept": {"text": "mother"}},
            {"name": "name", "valueHumanName": {"family": "Trần", "given": ["Thị", "Bình"]}}]}),
        operation("add", "Patient", name="deceased", value={"valueBoolean": False}),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["meta"]["versionId"] == "2"
    assert body["birthDate"] == "1981-02-03"
    assert body["telecom"] == [{"system": "phone", "value": "+84903123456"}]
    assert body["name"][0]["given"] == ["Bé", "Văn", "An"]
    assert [i["system"] for i in body["identifier"]] == ["urn:vn:bhyt", "urn:vn:cccd"]
    assert "extension" not in body  # its only item deleted: FHIR JSON has no empty arrays
    assert body["contact"] == [{"relationship": [{"text": "mother"}],
                                "name": {"family": "Trần", "given": ["Thị", "Bình"]}}]
    assert body["deceasedBoolean"] is False
    assert client.get(f"/Patient/{pid}").json() == body


def test_replace_a_choice_element_takes_the_new_type(client: TestClient) -> None:
    pid = created(client)
    assert send(client, pid, operation("add", "Patient", name="deceased", value={"valueBoolean": False})
                ).status_code == 200
    body = send(client, pid, operation("replace", "Patient.deceased", value={"valueDateTime": "2026-11-01"})).json()
    assert body["deceasedDateTime"] == "2026-11-01" and "deceasedBoolean" not in body


def test_where_selects_the_element(client: TestClient) -> None:
    pid = created(client)
    body = send(client, pid, operation("replace", "Patient.identifier.where(system = 'urn:vn:bhyt').value",
                                       value={"valueString": "DN4797915000002"})).json()
    assert body["identifier"][1]["value"] == "DN4797915000002"
    assert body["identifier"][0] == PATIENT["identifier"][0]


def test_delete_of_nothing_changes_nothing_but_the_version(client: TestClient) -> None:
    pid = created(client)
    body = send(client, pid, operation("delete", "Patient.telecom")).json()
    assert body["meta"]["versionId"] == "2" and body["name"] == PATIENT["name"]
    # a Parameters with no operation is a patch that changes nothing (HL7's case "No Difference")
    body = send(client, pid).json()
    assert body["meta"]["versionId"] == "3" and body["name"] == PATIENT["name"]


@pytest.mark.parametrize(("operations", "status", "message"), [
    ([operation("replace", "Patient.name.given", value={"valueString": "x"})], 422, "matches 2 elements"),
    ([operation("replace", "Patient.telecom", value={"valueString": "x"})], 422, "matches no element"),
    ([operation("add", "Patient", name="gender", value={"valueCode": "female"})], 422, "does not repeat"),
    ([operation("add", "Patient", name="colour", value={"valueString": "red"})], 422, "not an element"),
    ([operation("insert", "Patient.identifier", index=5, value={"valueIdentifier": {"value": "1"}})], 422,
     "past the end"),
    ([operation("move", "Patient.identifier", source=0, destination=2)], 422, "below 2"),
    ([operation("replace", "Observation.status", value={"valueCode": "final"})], 422, "is for Observation"),
    ([operation("replace", "Patient.birthDate", value={"valueDate": "1980-13-45"})], 400, "birthDate"),
    ([operation("remove", "Patient.birthDate")], 400, "not one of"),
    ([operation("replace", "Patient.name.select(given)", value={"valueString": "x"})], 400, "not supported"),
    ([operation("insert", "Patient.identifier", value={"valueString": "x"})], 400, "needs index"),
    ([{"name": "operation"}], 400, "with parts"),
], ids=["two-matches", "no-match", "single-exists", "unknown-element", "insert-past-end", "move-out-of-range",
        "other-type", "invalid-result", "unknown-type", "unsupported-path", "missing-part", "no-parts"])
def test_bad_patches_name_the_problem_and_change_nothing(client: TestClient, operations: list[dict[str, Any]],
                                                          status: int, message: str) -> None:
    pid = created(client)
    response = send(client, pid, *operations)
    body = assert_outcome(response, status)
    assert message in body["issue"][0]["diagnostics"], body
    assert client.get(f"/Patient/{pid}").json()["meta"]["versionId"] == "1"


def test_the_failing_operation_is_named(client: TestClient) -> None:
    pid = created(client)
    response = send(client, pid, operation("delete", "Patient.telecom"),
                    operation("replace", "Patient.telecom", value={"valueString": "x"}))
    assert "parameter[1]" in assert_outcome(response, 422)["issue"][0]["diagnostics"]


def test_conditional_fhirpath_patch(client: TestClient) -> None:
    pid = created(client)
    response = client.patch("/Patient?identifier=urn:vn:cccd|079190000001", headers=FHIR,
                            json=patch_of(operation("replace", "Patient.active", value={"valueBoolean": False})))
    assert response.status_code == 200, response.text
    assert client.get(f"/Patient/{pid}").json()["active"] is False


# ------------------------------------------------------------------------------------------ properties
_NAMES = st.sampled_from(["name", "given", "identifier", "value", "system", "extension", "url", "x1"])
_SEGMENT = st.one_of(_NAMES, _NAMES.map(lambda n: f"{n}[0]"), st.just("first()"), st.just("last()"),
                     st.just("where(system = 'a')"), st.just("extension('http://e')"))


@given(st.text(max_size=60))
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_any_path_text_parses_or_is_a_400(text: str) -> None:
    try:
        parse_path(text, where="p")
    except BadRequest:
        pass


@given(st.lists(_SEGMENT, min_size=1, max_size=5), st.sampled_from(["delete", "replace", "insert", "move", "add"]))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_well_formed_paths_apply_or_answer_422_never_crash(segments: list[str], kind: str) -> None:
    path = "Patient." + ".".join(segments)
    parts: dict[str, Any] = {"delete": {}, "replace": {"value": {"valueString": "z"}},
                             "insert": {"index": 0, "value": {"valueString": "z"}},
                             "move": {"source": 0, "destination": 0},
                             "add": {"name": "given", "value": {"valueString": "z"}}}[kind]
    before = copy.deepcopy(PATIENT)
    try:
        fhirpath_patch(patch_of(operation(kind, path, **parts)))(PATIENT)
    except UnprocessableResource:
        pass
    assert before == PATIENT  # the stored version is never changed in place


@given(st.integers(0, 2), st.text(min_size=1, max_size=12))
@settings(max_examples=100, deadline=None)
def test_insert_then_delete_at_the_same_index_is_the_identity(index: int, given_name: str) -> None:
    insert = fhirpath_patch(patch_of(operation("insert", "Patient.name[0].given", index=index,
                                               value={"valueString": given_name})))
    delete = fhirpath_patch(patch_of(operation("delete", f"Patient.name[0].given[{index}]")))
    inserted = insert(PATIENT)
    assert inserted["name"][0]["given"][index] == given_name
    assert delete(inserted) == PATIENT


@given(st.integers(0, 1), st.integers(0, 1))
@settings(max_examples=20, deadline=None)
def test_move_there_and_back_is_the_identity(source: int, destination: int) -> None:
    there = fhirpath_patch(patch_of(operation("move", "Patient.identifier", source=source, destination=destination)))
    back = fhirpath_patch(patch_of(operation("move", "Patient.identifier", source=destination, destination=source)))
    assert back(there(PATIENT)) == PATIENT


@given(st.sampled_from(["Patient.birthDate", "Patient.gender", "Patient.active", "Patient.name[0].family"]))
@settings(max_examples=20, deadline=None)
def test_delete_leaves_a_valid_resource(path: str) -> None:
    try:
        validate_resource(fhirpath_patch(patch_of(operation("delete", path)))(PATIENT))
    except HubError as error:  # pragma: no cover - the message says which
        pytest.fail(str(error))
