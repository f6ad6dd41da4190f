"""R4 compartment search (search.html#compartments): ``GET /Patient/{id}/{type}`` finds the type's resources in
that patient's compartment, with the type's parameters, paging and links (fhir-kit-client's
``compartmentSearch`` sends exactly this); a person's golden record's compartment spans their linked records.
The read-path contract suite checks that nothing hidden shows through it."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from fhir_hub.config import Settings
from fhir_hub.linking.elements import master_of
from fhir_hub.main import create_app
from tests.conftest import as_, assert_outcome
from tests.linking.callers import operator

FHIR = {"Content-Type": "application/fhir+json"}
CCCD = "http://fhir.hl7.org.vn/core/sid/cccd"


def _put(client: TestClient, headers: dict[str, str], rtype: str, rid: str, **body: Any) -> None:
    answer = client.put(f"/{rtype}/{rid}", json={"resourceType": rtype, "id": rid, **body}, headers={**FHIR, **headers})
    assert answer.status_code in (200, 201), answer.text


def _obs(patient: str, code: str, **more: Any) -> dict[str, Any]:
    return {"status": "final", "code": {"coding": [{"system": "urn:code", "code": code}]},
            "subject": {"reference": f"Patient/{patient}"}, **more}


def _ids(bundle: dict[str, Any]) -> list[str]:
    return sorted(f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle.get("entry", [])
                  if e.get("search", {}).get("mode") == "match")


def _seed(client: TestClient, settings: Settings) -> None:
    """A and B at facility 79001; A's Observations (one as performer of B's), an Encounter of A."""
    at = as_(settings)
    _put(client, at, "Patient", "pa", name=[{"family": "An"}], birthDate="1950-01-01", gender="male")
    _put(client, at, "Patient", "pb", name=[{"family": "Bình"}], birthDate="1960-01-01", gender="female")
    _put(client, at, "Observation", "oa1", **_obs("pa", "bp"))
    _put(client, at, "Observation", "oa2", **_obs("pa", "hr"))
    _put(client, at, "Observation", "ob1", **_obs("pb", "bp"))
    # B's Observation that A performed (a self-reported measurement of a relative): in both compartments
    _put(client, at, "Observation", "ob2", **_obs("pb", "hr", performer=[{"reference": "Patient/pa"}]))
    _put(client, at, "Encounter", "ea", status="finished", subject={"reference": "Patient/pa"},
         **{"class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}})


def linked_person(client: TestClient, settings: Settings) -> str:
    """Bà Lan's records at 79001 (lan-1, Observation lan-o1) and 79002 (lan-2, lan-o2), one personal ID, so
    linked under one golden record: its id."""
    person = {"name": [{"family": "Lan"}], "birthDate": "1956-04-12", "gender": "female",
              "identifier": [{"system": CCCD, "value": "079156001234"}]}
    first, second = as_(settings, facility="79001"), as_(settings, facility="79002")
    _put(client, first, "Patient", "lan-1", **person)
    _put(client, second, "Patient", "lan-2", **person)
    _put(client, first, "Observation", "lan-o1", **_obs("lan-1", "bp"))
    _put(client, second, "Observation", "lan-o2", **_obs("lan-2", "bp"))
    masters = [master_of(client.get(f"/Patient/{record}", headers=operator(settings)).json())
               for record in ("lan-1", "lan-2")]
    assert masters[0] is not None and masters[1] is not None and masters[0][0] == masters[1][0]  # one person
    return masters[0][0].split("/", 1)[1]


def test_a_compartment_search_finds_the_types_resources_in_that_patients_compartment(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        _seed(client, settings)
        at = as_(settings)
        found = client.get("/Patient/pa/Observation", headers=at).json()
        assert _ids(found) == ["Observation/oa1", "Observation/oa2", "Observation/ob2"]  # subject or performer
        assert found["total"] == 3
        assert _ids(client.get("/Patient/pb/Observation", headers=at).json()) == ["Observation/ob1",
                                                                                 "Observation/ob2"]
        # the type's own parameters narrow further, as in a type search
        assert _ids(client.get("/Patient/pa/Observation?code=urn:code|bp", headers=at).json()) == [
            "Observation/oa1"]
        assert _ids(client.get("/Patient/pa/Encounter", headers=at).json()) == ["Encounter/ea"]
        assert _ids(client.get("/Patient/pa/Patient", headers=at).json()) == ["Patient/pa"]
        posted = client.post("/Patient/pa/Observation/_search", content="code=urn:code|hr",
                             headers={**at, "Content-Type": "application/x-www-form-urlencoded"}).json()
        assert _ids(posted) == ["Observation/oa2", "Observation/ob2"]
        assert _ids(client.get("/Patient/nobody/Observation", headers=at).json()) == []


def test_its_pages_link_back_to_the_compartment(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        _seed(client, settings)
        at = as_(settings)
        page = client.get("/Patient/pa/Observation?_count=1", headers=at).json()
        links = {link["relation"]: link["url"] for link in page["link"]}
        assert "/Patient/pa/Observation?" in links["self"] and "/Patient/pa/Observation?" in links["next"]
        seen = _ids(page)
        while "next" in links:
            page = client.get(links["next"], headers=at).json()
            links = {link["relation"]: link["url"] for link in page["link"]}
            seen += _ids(page)
        assert sorted(seen) == ["Observation/oa1", "Observation/oa2", "Observation/ob2"]


def test_only_the_patient_compartment_and_its_types(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        at = as_(settings)
        assert_outcome(client.get("/Patient/pa/Organization", headers=at), 400, "not-supported")
        assert_outcome(client.get("/Encounter/ea/Observation", headers=at), 400, "not-supported")
        assert_outcome(client.get("/Nonsense/x/Observation", headers=at), 404, "not-supported")
        assert_outcome(client.get("/Patient/pa/$lastn", headers=at), 404, "not-supported")
        assert_outcome(client.get("/Patient/pa/Observation?code:bogus=1", headers={
            **at, "Prefer": "handling=strict"}), 400)
        statement = client.get("/metadata").json()
        assert statement["rest"][0]["compartment"] == ["http://hl7.org/fhir/CompartmentDefinition/patient"]


def test_a_resident_searches_only_their_own_compartment(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        _seed(client, settings)
        resident = as_(settings, "resident", patient="pa")
        # ob2 is in A's compartment (A performed it) but it is B's measurement: a resident sees what is about
        # them alone (test_resident_sees_theirs_alone.py); a facility's search above lists it
        assert _ids(client.get("/Patient/pa/Observation", headers=resident).json()) == [
            "Observation/oa1", "Observation/oa2"]
        other = client.get("/Patient/pb/Observation", headers=resident).json()
        # another person's compartment is not theirs to search, even where a resource is in both (ob2)
        assert _ids(other) == [] and other["total"] == 0


def test_a_golden_records_compartment_spans_the_persons_linked_records(settings: Settings) -> None:
    """Two facilities' records of one person (same personal ID) are linked under one golden record: its
    compartment holds both records' data. A facility never sees a golden record, so for it that
    compartment is empty, as an unknown patient's; the hub's operator may search it."""
    with TestClient(create_app(settings)) as client:
        master = linked_person(client, settings)
        first = as_(settings, facility="79001")
        resident = as_(settings, "resident", patient=master)
        assert _ids(client.get(f"/Patient/{master}/Observation", headers=resident).json()) == [
            "Observation/lan-o1", "Observation/lan-o2"]
        assert _ids(client.get("/Patient/lan-1/Observation", headers=resident).json()) == ["Observation/lan-o1"]
        hidden = client.get(f"/Patient/{master}/Observation", headers=first).json()
        assert _ids(hidden) == [] and hidden["total"] == 0
        assert _ids(client.get("/Patient/lan-1/Observation", headers=first).json()) == ["Observation/lan-o1"]
