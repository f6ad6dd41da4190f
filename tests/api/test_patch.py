"""PATCH with JSON Patch (FHIR R4 http.html#patch) and conditional patch, end to end over HTTP (FHIRPath
Patch: test_fhirpath_patch.py)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from fhir_hub.config import Settings
from tests.conftest import assert_outcome, auth, token_for

FHIR = {"Content-Type": "application/fhir+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}


def create_patient(client: TestClient, **extra: Any) -> dict[str, Any]:
    resource = {"resourceType": "Patient", "name": [{"family": "Nguyễn", "given": ["Văn", "An"]}],
                "birthDate": "1980-01-01", **extra}
    response = client.post("/Patient", json=resource, headers=FHIR)
    assert response.status_code == 201, response.text
    return response.json()


def send_patch(client: TestClient, url: str, operations: Any, headers: dict[str, str] | None = None) -> Any:
    return client.patch(url, content=orjson.dumps(operations), headers={**JSON_PATCH, **(headers or {})})


def diagnostics(response: Any) -> str:
    return str(response.json()["issue"][0]["diagnostics"])


def current(client: TestClient, pid: str) -> dict[str, Any]:
    response = client.get(f"/Patient/{pid}")
    assert response.status_code == 200, response.text
    return response.json()


BIRTH_DATE = [{"op": "replace", "path": "/birthDate", "value": "1990-05-17"}]


# ------------------------------------------------------------------------------------------ success
def test_replace_birth_date_makes_version_2(client: TestClient) -> None:
    created = create_patient(client)
    pid = created["id"]
    response = send_patch(client, f"/Patient/{pid}", BIRTH_DATE)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["birthDate"] == "1990-05-17"
    assert body["id"] == pid
    assert body["meta"]["versionId"] == "2"
    assert response.headers["etag"] == 'W/"2"'
    assert body["name"] == created["name"]  # untouched elements stay as they were
    assert current(client, pid) == body
    assert client.get(f"/Patient/{pid}/_history/1").json()["birthDate"] == "1980-01-01"


def test_if_match_pins_the_version(client: TestClient) -> None:
    pid = create_patient(client)["id"]
    assert send_patch(client, f"/Patient/{pid}", [{"op": "add", "path": "/active", "value": True}]).status_code == 200
    stale = send_patch(client, f"/Patient/{pid}", BIRTH_DATE, {"If-Match": 'W/"1"'})
    assert_outcome(stale, 412)
    assert current(client, pid)["meta"]["versionId"] == "2"
    assert current(client, pid)["birthDate"] == "1980-01-01"
    ok = send_patch(client, f"/Patient/{pid}", BIRTH_DATE, {"If-Match": 'W/"2"'})
    assert ok.status_code == 200, ok.text
    assert ok.json()["meta"]["versionId"] == "3"
    assert ok.headers["etag"] == 'W/"3"'
    assert current(client, pid)["birthDate"] == "1990-05-17"


def test_prefer_return_minimal_has_no_body(client: TestClient) -> None:
    pid = create_patient(client)["id"]
    response = send_patch(client, f"/Patient/{pid}", BIRTH_DATE, {"Prefer": "return=minimal"})
    assert response.status_code == 200, response.text
    assert response.content == b""
    assert response.headers["etag"] == 'W/"2"'
    assert current(client, pid)["birthDate"] == "1990-05-17"


# ---------------------------------------------------------------------------------- malformed patch
@pytest.mark.parametrize(("operations", "index"), [
    ([{"op": "frobnicate", "path": "/birthDate", "value": "x"}], 0),
    ([{"op": "add", "path": "/active", "value": True}, {"op": "replace", "value": "1990-05-17"}], 1),
    ([{"op": "test", "path": "/id", "value": "x"}, {"op": "add", "path": "/active", "value": True},
      {"op": "add", "path": "/gender"}], 2),
    ([{"op": "remove", "path": "birthDate"}], 0),
    (["replace"], 0),
], ids=["unknown-op", "missing-path", "add-without-value", "path-not-a-pointer", "not-an-object"])
def test_malformed_patch_is_400_naming_the_operation(client: TestClient, operations: Any, index: int) -> None:
    pid = create_patient(client)["id"]
    response = send_patch(client, f"/Patient/{pid}", operations)
    assert_outcome(response, 400, "invalid")
    assert f"operation {index}" in diagnostics(response)
    assert current(client, pid)["meta"]["versionId"] == "1"


@pytest.mark.parametrize("operations", [
    [{"op": ["replace"], "path": "/birthDate", "value": "1990-05-17"}],
    [{"op": {"name": "replace"}, "path": "/birthDate", "value": "1990-05-17"}],
    [{"op": "add", "path": "/a~2", "value": 1}],
    [{"op": "remove", "path": "/name/0~"}],
], ids=["op-is-array", "op-is-object", "bad-escape", "dangling-tilde"])
def test_malformed_patch_that_trips_the_checker_is_400(client: TestClient, operations: Any) -> None:
    pid = create_patient(client)["id"]
    response = send_patch(client, f"/Patient/{pid}", operations)
    assert_outcome(response, 400, "invalid")
    assert "operation 0" in diagnostics(response)
    assert current(client, pid)["meta"]["versionId"] == "1"


@pytest.mark.parametrize("body", [
    b'{"op": "replace", "path": "/birthDate", "value": "1990-05-17"}', b"[]", b'"patch"', b"not json", b"",
], ids=["object-not-array", "empty-array", "string", "not-json", "empty-body"])
def test_patch_that_is_not_an_array_of_operations_is_400(client: TestClient, body: bytes) -> None:
    pid = create_patient(client)["id"]
    response = client.patch(f"/Patient/{pid}", content=body, headers=JSON_PATCH)
    assert_outcome(response, 400)
    assert current(client, pid)["meta"]["versionId"] == "1"


def test_object_instead_of_array_names_the_rule(client: TestClient) -> None:
    pid = create_patient(client)["id"]
    response = send_patch(client, f"/Patient/{pid}", BIRTH_DATE[0])
    assert_outcome(response, 400, "invalid")
    assert "non-empty JSON array of operations" in diagnostics(response)


# --------------------------------------------------------------------------------- patch not applied
def test_failing_test_op_is_422_and_stores_nothing(client: TestClient) -> None:
    pid = create_patient(client)["id"]
    operations = [{"op": "test", "path": "/birthDate", "value": "2000-01-01"}, *BIRTH_DATE]
    response = send_patch(client, f"/Patient/{pid}", operations)
    assert_outcome(response, 422, "processing")
    assert "test operation failed" in diagnostics(response)
    stored = current(client, pid)
    assert stored["meta"]["versionId"] == "1"
    assert stored["birthDate"] == "1980-01-01"
    assert client.get(f"/Patient/{pid}/_history/2").status_code == 404


def test_passing_test_op_lets_the_patch_through(client: TestClient) -> None:
    pid = create_patient(client)["id"]
    operations = [{"op": "test", "path": "/birthDate", "value": "1980-01-01"}, *BIRTH_DATE]
    response = send_patch(client, f"/Patient/{pid}", operations)
    assert response.status_code == 200, response.text
    assert response.json()["birthDate"] == "1990-05-17"


def test_removing_a_missing_path_is_422(client: TestClient) -> None:
    pid = create_patient(client)["id"]
    response = send_patch(client, f"/Patient/{pid}", [{"op": "remove", "path": "/deceasedBoolean"}])
    assert_outcome(response, 422, "processing")
    assert "does not apply" in diagnostics(response)
    assert current(client, pid)["meta"]["versionId"] == "1"


@pytest.mark.parametrize("operations", [
    [{"op": "replace", "path": "/id", "value": "someone-else"}],
    [{"op": "remove", "path": "/id"}],
    [{"op": "replace", "path": "/resourceType", "value": "Practitioner"}],
], ids=["replace-id", "remove-id", "replace-type"])
def test_patch_may_not_change_id_or_type(client: TestClient, operations: list[dict[str, Any]]) -> None:
    pid = create_patient(client)["id"]
    response = send_patch(client, f"/Patient/{pid}", operations)
    assert_outcome(response, 422, "processing")
    assert "may not change the resource's type or id" in diagnostics(response)
    assert current(client, pid)["meta"]["versionId"] == "1"
    assert client.get("/Patient/someone-else").status_code == 404


@pytest.mark.parametrize(("operations", "code", "element", "message"), [
    ([{"op": "replace", "path": "/birthDate", "value": "not-a-date"}], "value", "Patient.birthDate", "not-a-date"),
    ([{"op": "add", "path": "/unknownElement", "value": "x"}], "structure", "Patient.unknownElement",
     "unknown element"),
    ([{"op": "replace", "path": "/active", "value": "yes"}], "value", "Patient.active", "JSON boolean"),
], ids=["bad-date", "unknown-element", "wrong-type"])
def test_patch_producing_an_invalid_resource_is_400(client: TestClient, operations: list[dict[str, Any]], code: str,
                                                    element: str, message: str) -> None:
    pid = create_patient(client, active=True)["id"]
    response = send_patch(client, f"/Patient/{pid}", operations)
    issue = assert_outcome(response, 400, code)["issue"][0]
    assert issue["expression"] == [element]
    assert issue["diagnostics"].startswith(f"{element}: ")
    assert message in issue["diagnostics"]
    stored = current(client, pid)
    assert stored["meta"]["versionId"] == "1"
    assert stored["birthDate"] == "1980-01-01" and stored["active"] is True


# ------------------------------------------------------------------------------------- media types
@pytest.mark.parametrize("headers", [{"Content-Type": "application/xml"}, {"Content-Type": "text/plain"}, {}],
                         ids=["xml", "text", "none"])
def test_patch_needs_a_patch_media_type(client: TestClient, headers: dict[str, str]) -> None:
    pid = create_patient(client)["id"]
    response = client.patch(f"/Patient/{pid}", content=orjson.dumps(BIRTH_DATE), headers=headers)
    assert_outcome(response, 415, "not-supported")
    assert "application/json-patch+json" in diagnostics(response)
    assert current(client, pid)["meta"]["versionId"] == "1"


@pytest.mark.parametrize("headers", [FHIR, {"Content-Type": "application/json"}], ids=["fhir-json", "plain-json"])
def test_a_json_patch_sent_as_fhir_json_is_read_as_fhirpath_patch_and_refused(client: TestClient,
                                                                              headers: dict[str, str]) -> None:
    pid = create_patient(client)["id"]
    response = client.patch(f"/Patient/{pid}", content=orjson.dumps(BIRTH_DATE), headers=headers)
    assert_outcome(response, 400, "invalid")
    assert "Parameters" in diagnostics(response)
    assert current(client, pid)["meta"]["versionId"] == "1"


# ------------------------------------------------------------------------------- missing and deleted
def test_patch_of_unknown_resource_is_404(client: TestClient) -> None:
    response = send_patch(client, "/Patient/never-created", BIRTH_DATE)
    assert_outcome(response, 404, "not-found")
    assert client.get("/Patient/never-created").status_code == 404


def test_patch_of_deleted_resource_is_410(client: TestClient) -> None:
    pid = create_patient(client)["id"]
    assert client.delete(f"/Patient/{pid}").status_code in (200, 204)
    response = send_patch(client, f"/Patient/{pid}", BIRTH_DATE)
    assert_outcome(response, 410, "deleted")
    assert client.get(f"/Patient/{pid}").status_code == 410


# ------------------------------------------------------------------------------- conditional patch
def test_conditional_patch_patches_the_single_match(client: TestClient) -> None:
    target = create_patient(client, identifier=[{"system": "urn:cccd", "value": "079001"}])
    other = create_patient(client, identifier=[{"system": "urn:cccd", "value": "079002"}])
    response = send_patch(client, "/Patient?identifier=urn:cccd|079001", BIRTH_DATE)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == target["id"]
    assert body["birthDate"] == "1990-05-17"
    assert body["meta"]["versionId"] == "2"
    assert response.headers["etag"] == 'W/"2"'
    assert current(client, target["id"]) == body
    assert current(client, other["id"]) == other


def test_conditional_patch_without_a_match_is_404(client: TestClient) -> None:
    existing = create_patient(client, identifier=[{"system": "urn:cccd", "value": "079001"}])
    response = send_patch(client, "/Patient?identifier=urn:cccd|nobody", BIRTH_DATE)
    assert_outcome(response, 404, "not-found")
    assert current(client, existing["id"]) == existing
    assert client.get("/Patient").json()["total"] == 1  # a conditional patch never creates


def test_conditional_patch_with_two_matches_is_412(client: TestClient) -> None:
    first = create_patient(client, identifier=[{"system": "urn:cccd", "value": "twin"}])
    second = create_patient(client, identifier=[{"system": "urn:cccd", "value": "twin"}])
    response = send_patch(client, "/Patient?identifier=urn:cccd|twin", BIRTH_DATE)
    assert_outcome(response, 412, "multiple-matches")
    assert current(client, first["id"]) == first
    assert current(client, second["id"]) == second


# ------------------------------------------------------------------------------------------ residents
def test_a_resident_cannot_patch_another_patient(client: TestClient, settings: Settings) -> None:
    for pid in ("p1", "p2"):
        response = client.put(f"/Patient/{pid}", json={"resourceType": "Patient", "id": pid, "birthDate": "1980-01-01"},
                              headers=FHIR)
        assert response.status_code == 201, response.text
    before = current(client, "p2")
    resident = auth(token_for(settings, "resident", patient="p1", scope="patient/*.cruds"))
    response = send_patch(client, "/Patient/p2", BIRTH_DATE, resident)
    assert_outcome(response, 404, "not-found")
    assert current(client, "p2") == before
    # their own record exists for them: refused (403), not hidden, for a resident writes only their consents
    own = send_patch(client, "/Patient/p1", BIRTH_DATE, resident)
    assert_outcome(own, 403, "forbidden")
    assert "writes only their consents" in diagnostics(own)
    assert current(client, "p1")["meta"]["versionId"] == "1"
