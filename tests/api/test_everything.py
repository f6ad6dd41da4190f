"""``Patient/{id}/$everything``: the patient's compartment, every type at once, with what it references, paged
and linked like a search; ``_type``, ``_since``, ``_count``; a golden record's spans the person's records.
The read-path contract suite checks that nothing hidden shows through it."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from fhir_hub.config import Settings
from fhir_hub.main import create_app
from tests.api.test_compartment_search import _ids, _obs, _put, _seed, linked_person
from tests.conftest import as_, assert_outcome


def _entries(bundle: dict[str, Any], mode: str) -> list[str]:
    return sorted(f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle.get("entry", [])
                  if e.get("search", {}).get("mode") == mode)


def _with_references(client: TestClient, settings: Settings) -> None:
    at = as_(settings)
    _seed(client, settings)
    _put(client, at, "Practitioner", "dr", name=[{"family": "Bác sĩ"}])
    _put(client, at, "Organization", "org", name="Trạm y tế")
    _put(client, at, "Observation", "oa1", **_obs("pa", "bp", performer=[{"reference": "Practitioner/dr"}]))
    _put(client, at, "Encounter", "ea", status="finished", subject={"reference": "Patient/pa"},
         serviceProvider={"reference": "Organization/org"},
         **{"class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}})


def test_everything_is_the_compartment_with_what_it_references(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        _with_references(client, settings)
        found = client.get("/Patient/pa/$everything", headers=as_(settings)).json()
        assert found["type"] == "searchset"
        assert _entries(found, "match") == ["Encounter/ea", "Observation/oa1", "Observation/oa2", "Observation/ob2",
                                            "Patient/pa"]
        assert found["total"] == 5
        assert _entries(found, "include") == ["Organization/org", "Practitioner/dr"]
        only = client.get("/Patient/pa/$everything?_type=Observation,Patient", headers=as_(settings)).json()
        assert _entries(only, "match") == ["Observation/oa1", "Observation/oa2", "Observation/ob2", "Patient/pa"]
        assert _entries(only, "include") == ["Practitioner/dr"]


def test_since_and_paging(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        _with_references(client, settings)
        at = as_(settings)
        _put(client, at, "Observation", "oa2", **_obs("pa", "hr", valueString="later"))
        since = client.get("/Observation/oa2", headers=at).json()["meta"]["lastUpdated"]
        later = client.get("/Patient/pa/$everything", params={"_since": since}, headers=at).json()
        assert _entries(later, "match") == ["Observation/oa2"]
        page = client.get("/Patient/pa/$everything?_count=2&_type=Observation,Encounter", headers=at).json()
        seen = _entries(page, "match")
        links = {link["relation"]: link["url"] for link in page["link"]}
        assert "/Patient/pa/$everything?" in links["next"] and "_type=Observation%2CEncounter" in links["next"]
        while "next" in links:
            page = client.get(links["next"], headers=at).json()
            links = {link["relation"]: link["url"] for link in page["link"]}
            seen += _entries(page, "match")
        assert sorted(seen) == ["Encounter/ea", "Observation/oa1", "Observation/oa2", "Observation/ob2"]


def test_its_errors(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        at = as_(settings)
        assert_outcome(client.get("/Patient/pa/$everything?_type=Organization", headers=at), 400)
        assert_outcome(client.get("/Patient/pa/$everything?_since=yesterday", headers=at), 400)
        ignored = client.get("/Patient/pa/$everything?start=2020-01-01", headers=at).json()
        assert any(e.get("search", {}).get("mode") == "outcome" for e in ignored["entry"])
        assert_outcome(client.get("/Patient/pa/$everything?start=2020-01-01",
                                  headers={**at, "Prefer": "handling=strict"}), 400, "not-supported")
        statement = client.get("/metadata").json()
        patient = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Patient")
        assert {"name": "everything",
                "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"} in patient["operation"]


def test_a_residents_everything_and_a_golden_records(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        _seed(client, settings)
        resident = as_(settings, "resident", patient="pa")
        mine = client.get("/Patient/pa/$everything", headers=resident).json()
        assert "Observation/oa1" in _entries(mine, "match")
        assert _ids(client.get("/Patient/pb/$everything", headers=resident).json()) == []
        master = linked_person(client, settings)
        first = as_(settings, facility="79001")
        lan = as_(settings, "resident", patient=master)
        everything = client.get(f"/Patient/{master}/$everything?_type=Observation", headers=lan).json()
        assert _entries(everything, "match") == ["Observation/lan-o1", "Observation/lan-o2"]
        hidden = client.get(f"/Patient/{master}/$everything", headers=first).json()
        assert _ids(hidden) == [] and hidden["total"] == 0
