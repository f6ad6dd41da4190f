"""An update that would store what is already there stores nothing: same version, same history."""

from __future__ import annotations

from fastapi.testclient import TestClient

PATIENT = {"resourceType": "Patient", "id": "same-1", "name": [{"family": "Lê", "given": ["Lan"]}],
           "meta": {"tag": [{"system": "urn:t", "code": "a"}]}}


def test_an_identical_put_keeps_the_version_and_a_changed_one_makes_the_next(client: TestClient) -> None:
    first = client.put("/Patient/same-1", json=PATIENT)
    assert first.status_code == 201
    again = client.put("/Patient/same-1", json=PATIENT)
    assert again.status_code == 200 and again.headers["etag"] == 'W/"1"'
    assert again.json()["meta"]["lastUpdated"] == first.json()["meta"]["lastUpdated"]
    assert len(client.get("/Patient/same-1/_history").json()["entry"]) == 1
    changed = client.put("/Patient/same-1", json={**PATIENT, "gender": "female"})
    assert changed.status_code == 200 and changed.headers["etag"] == 'W/"2"'
    untagged = {k: v for k, v in PATIENT.items() if k != "meta"}
    retagged = client.put("/Patient/same-1", json={**untagged, "gender": "female"})
    assert retagged.headers["etag"] == 'W/"3"'  # meta other than the version stamps is content


def test_an_identical_put_after_a_delete_restores_the_resource(client: TestClient) -> None:
    client.put("/Patient/same-1", json=PATIENT)
    client.delete("/Patient/same-1")
    again = client.put("/Patient/same-1", json=PATIENT)
    assert again.status_code == 201 and again.headers["etag"] == 'W/"3"'
