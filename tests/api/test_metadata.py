"""The CapabilityStatement is generated from what is mounted, and every claim in it works."""

from __future__ import annotations

from fastapi.testclient import TestClient
from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from fhir_hub.fhir.registry import resource_types
from fhir_hub.search.params import params_for

FHIR = {"Content-Type": "application/fhir+json"}


def test_capability_statement_is_valid_r4(client: TestClient) -> None:
    response = client.get("/metadata")
    assert response.status_code == 200
    body = response.json()
    CapabilityStatement.model_validate(body)
    assert body["fhirVersion"] == "4.0.1"
    assert "application/fhir+json" in body["format"]
    rest = body["rest"][0]
    assert [r["type"] for r in rest["resource"]] == list(resource_types())
    assert {i["code"] for i in rest["interaction"]} == {"history-system", "search-system", "transaction", "batch"}
    assert {p["name"] for p in rest["searchParam"]} == {"_id", "_lastUpdated", "_tag", "_profile", "_security",
                                                        "_source", "_type"}
    assert {o["name"]: o["definition"].rsplit("/", 1)[-1] for o in rest["operation"]} == {
        "ingest": "ingest", "replay": "replay", "access-check": "access-check", "ingest-status": "ingest-status",
        "queue-status": "queue-status"}
    (patient,) = [r for r in rest["resource"] if r["type"] == "Patient"]
    assert sorted(o["name"] for o in patient["operation"]) == sorted(  # each once: $access-log, $summary: two levels
        {"match", "merge", "unmerge", "review", "review-list", "links", "access-log", "risk", "priority-worklist",
         "everything", "summary", "validate"})
    (audit,) = [r for r in rest["resource"] if r["type"] == "AuditEvent"]
    assert [o["name"] for o in audit["operation"]] == ["emergency-access", "validate"]
    (group,) = [r for r in rest["resource"] if r["type"] == "Group"]
    assert [o["name"] for o in group["operation"]] == ["risk-cohort", "validate"]
    assert all([o["name"] for o in r["operation"]] == ["validate"]  # $validate is on every type
               for r in rest["resource"] if r["type"] not in ("Patient", "AuditEvent", "Group"))


def test_every_claimed_interaction_works(client: TestClient) -> None:
    rest = client.get("/metadata").json()["rest"][0]
    patient = next(r for r in rest["resource"] if r["type"] == "Patient")
    claimed = {i["code"] for i in patient["interaction"]}
    assert claimed == {"read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create",
                       "search-type"}
    assert patient["conditionalCreate"] is True and patient["conditionalUpdate"] is True
    assert patient["conditionalDelete"] == "single" and patient["updateCreate"] is True
    assert patient["versioning"] == "versioned-update" and patient["readHistory"] is True
    names = {p["name"] for p in patient["searchParam"]}
    assert names == set(params_for("Patient")) | {"_id", "_lastUpdated"}
    assert {"name", "family", "birthdate", "identifier", "general-practitioner", "_tag"} <= names
    binary = next(r for r in rest["resource"] if r["type"] == "Binary")
    assert {p["name"] for p in binary["searchParam"]} >= {"_id", "_lastUpdated", "_tag", "_profile"}
    audit = next(r for r in rest["resource"] if r["type"] == "AuditEvent")
    assert {p["name"] for p in audit["searchParam"]} == {"_id", "patient"}
    assert {i["code"] for i in audit["interaction"]}.isdisjoint({"create", "update", "delete"})

    ident = "identifier=urn:cap|1"
    checks = {
        "create": lambda: client.post("/Patient", json={"resourceType": "Patient"}, headers={
            **FHIR, "If-None-Exist": ident}),
        "update": lambda: client.put("/Patient/cap", json={"resourceType": "Patient", "id": "cap",
                                                           "identifier": [{"system": "urn:cap", "value": "1"}]},
                                     headers=FHIR),
        "read": lambda: client.get("/Patient/cap"),
        "vread": lambda: client.get("/Patient/cap/_history/1"),
        "history-instance": lambda: client.get("/Patient/cap/_history"),
        "history-type": lambda: client.get("/Patient/_history"),
        "search-type": lambda: client.get(f"/Patient?{ident}"),
        "patch": lambda: client.patch("/Patient/cap", json=[{"op": "add", "path": "/active", "value": True}],
                                      headers={"Content-Type": "application/json-patch+json"}),
        "delete": lambda: client.delete("/Patient/cap"),
    }
    order = ["create", "update", "read", "vread", "history-instance", "history-type", "search-type", "patch",
             "delete"]
    assert set(order) == claimed
    for code in order:
        response = checks[code]()
        assert response.status_code in (200, 201, 204), (code, response.text)
    assert client.get("/_history").status_code == 200
    batch = client.post("/", json={"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": "Patient/cap"}}]})
    assert batch.status_code == 200 and batch.json()["entry"][0]["response"]["status"] == "410 Gone"
