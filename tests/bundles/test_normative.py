"""The transaction and batch edge cases of microsoft/fhir-server (Normative/), each with the answer the
FHIR R4 rules (http.html#transaction) call for; a refused transaction must leave the store as it was."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from fhir_hub.config import Settings
from tests.bundles.helpers import diagnostics, dump, normative, statuses

REFUSED = [
    # (fixture, status, words the message must contain)
    ("Bundle-Transaction.json", 400, ["entry[7]", "ValueSet/$lookup"]),
    ("Bundle-TransactionWithInvalidProcessingRoutes.json", 400, ["entry[1]", "operations"]),
    ("Bundle-TransactionWithMultipleEntriesModifyingSameResource.json", 400, ["entry[2]", "Patient/123", "entry 1"]),
    ("Bundle-TransactionWithMultipleResourcesWithSameFullUrl.json", 400, ["entry[1].fullUrl"]),
    ("Bundle-TransactionWithPOSTFullUrlMatchesWithPUTRequestUrl.json", 400, ["entry[1].fullUrl", "Patient/123"]),
    ("Bundle-TransactionWithConditionalReferenceReferringToSameResource.json", 400, ["entry[1]", "same conditional"]),
    ("Bundle-TransactionWithForeignReferenceInResourceBody.json", 400, ["urn:uuid:4a089b8a-b0a0-46a9-92da-c8b653aa2e73",
                                                                       "not the fullUrl"]),
    ("Bundle-TransactionWithConditionalReferenceInResourceBody.json", 412, ["Patient?identifier=12345", "no resource"]),
    ("Bundle-TransactionWithInvalidResourceType.json", 400, ["Patientt", "not a resource type"]),
    ("Bundle-TransactionForRollBack.json", 404, ["entry[1]", "Patient/12345"]),
    ("Bundle-TransactionForRollBackWithDelete.json", 412, ["entry[1]", "If-Match"]),
    ("Bundle-TransactionWithConditionalCreateAndReference.json", 422, ["entry[1]", "sopClass"]),
    ("Bundle-TransactionWithInvalidProcessingRecord.json", 400, ["entry[5]", "id"]),
    ("Bundle-TypeMissing.json", 400, ["Bundle.type"]),
    ("Bundle-InvalidBundleType.json", 400, ["Bundle.type", "invalid-type"]),
]


@pytest.mark.parametrize(("name", "status", "words"), REFUSED, ids=[r[0] for r in REFUSED])
def test_refused_transactions_name_the_entry_and_store_nothing(client: TestClient, settings: Settings, name: str,
                                                               status: int, words: list[str]) -> None:
    client.put("/Patient/patient-rollback-1", json={"resourceType": "Patient", "id": "patient-rollback-1"})
    before = dump(settings)
    answer = client.post("/", json=normative(name))
    assert answer.status_code == status, answer.text
    assert answer.json()["resourceType"] == "OperationOutcome"
    for word in words:
        assert word in diagnostics(answer.json())
    assert dump(settings) == before


def test_batch_entries_succeed_or_fail_alone(client: TestClient) -> None:
    answer = client.post("/", json=normative("Bundle-Batch.json"))
    assert answer.status_code == 200
    body = answer.json()
    assert body["type"] == "batch-response"
    assert statuses(body) == ["201 Created", "201 Created", "201 Created", "201 Created", "400 Bad Request",
                              "204 No Content", "204 No Content", "400 Bad Request", "200 OK", "404 Not Found"]
    failed = body["entry"][4]["response"]["outcome"]
    assert failed["resourceType"] == "OperationOutcome"
    assert "ifMatch" in failed["issue"][0]["diagnostics"]
    assert body["entry"][8]["resource"]["type"] == "searchset"
    created = body["entry"][2]["response"]
    assert created["location"].endswith("/Patient/123/_history/1") and created["etag"] == 'W/"1"'
    assert client.get("/Patient/123").json()["id"] == "123"
    # the same batch again: ifNoneExist now finds what the first run created, PUT makes new versions
    again = statuses(client.post("/", json=normative("Bundle-Batch.json")).json())
    assert again[1] == "200 OK" and again[2] == "200 OK" and again[3] == "200 OK"


def test_batch_conditional_update_by_identifier_creates_then_updates(client: TestClient) -> None:
    first = client.post("/", json=normative("Bundle-BatchWithConditionalUpdateByIdentifier.json")).json()
    assert statuses(first) == ["201 Created"] * 4
    second = client.post("/", json=normative("Bundle-BatchWithConditionalUpdateByIdentifier.json")).json()
    assert statuses(second) == ["200 OK"] * 4
    assert [e["resource"]["id"] for e in first["entry"]] == [e["resource"]["id"] for e in second["entry"]]
    assert client.get("/Patient", params={"identifier": "|11788759296811"}).json()["total"] == 1


def test_valid_transaction_commits_every_entry(client: TestClient) -> None:
    answer = client.post("/", json=normative("Bundle-TransactionWithValidBundleEntry.json"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["type"] == "transaction-response"
    assert statuses(body) == ["201 Created"] * 4
    for entry in body["entry"]:
        assert client.get(entry["response"]["location"].split("/_history")[0]).status_code == 200


def test_transaction_with_all_valid_routes_resolves_conditions(client: TestClient) -> None:
    answer = client.post("/", json=normative("Bundle-TransactionWithAllValidRoutes.json"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert statuses(body) == ["201 Created", "201 Created", "201 Created", "201 Created", "200 OK", "200 OK"]
    # GETs run after the writes, on the committed state: the search finds what the transaction stored
    stored = [e["resource"] for e in normative("Bundle-TransactionWithAllValidRoutes.json")["entry"]
              if e["request"]["method"] in ("POST", "PUT")]
    peters = sum(any(part.lower().startswith("peter") for n in r.get("name", [])
                     for part in [n.get("family", ""), *n.get("given", [])]) for r in stored)
    by_name = body["entry"][4]["resource"]
    assert by_name["type"] == "searchset" and by_name["total"] == peters > 0
    assert body["entry"][5]["resource"]["total"] == 0


def test_json_patch_in_a_batch(client: TestClient) -> None:
    answer = client.post("/", json=normative("Bundle-BinaryPatch.json")).json()
    assert statuses(answer) == ["201 Created", "200 OK"]
    patched = client.get("/Patient/9F746C86-48B4-424D-9F92-1E46215E35D5").json()
    assert patched["meta"]["versionId"] == "2"
    assert answer["entry"][1]["resource"] == patched


def test_fhirpath_patch_in_a_batch(client: TestClient) -> None:
    answer = client.post("/", json=normative("Bundle-FhirPatch.json")).json()
    assert statuses(answer) == ["201 Created", "200 OK", "200 OK"]
    patched = client.get("/Patient/9F746C86-48B4-424D-9F92-1E46215E35D5").json()
    assert patched["meta"]["versionId"] == "3"
    assert patched["gender"] == "female"
    race = next(e for e in patched["extension"] if e["url"].endswith("us-core-race"))
    assert race["extension"][0] == {"url": "ombCategory", "valueCoding": {
        "system": "urn:oid:2.16.840.1.113883.6.238", "code": "2054-5", "display": "Black or African American"}}
    assert race["extension"][1] == {"url": "text", "valueString": "Asian"}  # the rest is as it was
