"""_revinclude:iterate follows references back from included resources too (search.html#revinclude)."""

from __future__ import annotations

from fastapi.testclient import TestClient

FHIR = {"Content-Type": "application/fhir+json"}


def _put(client: TestClient, resource: dict[str, object]) -> None:
    response = client.put(f"/{resource['resourceType']}/{resource['id']}", json=resource, headers=FHIR)
    assert response.status_code == 201, response.text


def _entries(client: TestClient, url: str) -> dict[str, set[str]]:
    body = client.get(url).json()
    found: dict[str, set[str]] = {"match": set(), "include": set()}
    for entry in body.get("entry", []):
        resource = entry["resource"]
        found.setdefault(entry["search"]["mode"], set()).add(f"{resource['resourceType']}/{resource['id']}")
    return found


def test_revinclude_iterate_reaches_resources_that_refer_to_included_ones(client: TestClient) -> None:
    _put(client, {"resourceType": "Patient", "id": "p"})
    _put(client, {"resourceType": "Encounter", "id": "e", "status": "finished",
                  "class": {"code": "AMB"}, "subject": {"reference": "Patient/p"}})
    _put(client, {"resourceType": "Observation", "id": "o", "status": "final", "code": {"text": "weight"},
                  "encounter": {"reference": "Encounter/e"}})
    _put(client, {"resourceType": "Observation", "id": "elsewhere", "status": "final", "code": {"text": "x"},
                  "encounter": {"reference": "Encounter/other"}})

    once = _entries(client, "/Patient?_id=p&_revinclude=Encounter:subject&_revinclude=Observation:encounter")
    assert once == {"match": {"Patient/p"}, "include": {"Encounter/e"}}

    iterated = _entries(client, "/Patient?_id=p&_revinclude=Encounter:subject"
                                "&_revinclude:iterate=Observation:encounter")
    assert iterated == {"match": {"Patient/p"}, "include": {"Encounter/e", "Observation/o"}}
