"""A resident's token reads what is about them alone: a resource also in another person's compartment (a
household Group, an Observation of a relative they performed, another person's Patient record whose
``link`` names theirs) is answered on every read path exactly as one that does not exist, while their own
Patient record stays readable whatever its links say (``Narrowing.exclusive_to``, consent/decision.py).
A facility's clinician, whose access consents decide person by person, still sees those resources."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_hub.config import Settings
from fhir_hub.main import create_app
from tests.conftest import as_

FHIR = {"Content-Type": "application/fhir+json"}
SHARED = ["Group/household-zq", "Observation/obs-relative-zq", "Patient/pat-q-zq"]
THEIRS = ["Group/solo-zq", "Observation/obs-own-zq", "Patient/pat-p-zq"]


def _put(client: TestClient, headers: dict[str, str], rtype: str, rid: str, **body: Any) -> None:
    answer = client.put(f"/{rtype}/{rid}", json={"resourceType": rtype, "id": rid, **body}, headers={**FHIR, **headers})
    assert answer.status_code in (200, 201), answer.text


def _keys(bundle: dict[str, Any], mode: str | None = None) -> list[str]:
    """The Bundle's resources but P's golden record (made by the hub's matching: hers too, where listed)."""
    return sorted(f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle.get("entry", [])
                  if (mode is None or e.get("search", {}).get("mode") == mode)
                  and not e["resource"]["id"].startswith("master-"))


def _counted(bundle: dict[str, Any]) -> bool:
    """Whether the total counts exactly the matches listed (every test search fits one page)."""
    return bundle["total"] == sum(e.get("search", {}).get("mode", "match") == "match" for e in bundle["entry"])


def _obs(subject: str, **more: Any) -> dict[str, Any]:
    return {"status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
            "subject": {"reference": f"Patient/{subject}"}, **more}


@pytest.fixture(scope="module")
def seeded(mongodb_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    settings = Settings(mongodb_uri=mongodb_uri, db_name=f"test_exclusive_{tmp_path_factory.mktemp('n').name}",
                        data_dir=tmp_path_factory.mktemp("var"), validation_processes=0, ingest_processes=0)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        at = as_(settings)  # facility 79001
        # P's own record names Q's (a relative's record kept as "see also"): still P's to read
        _put(client, at, "Patient", "pat-p-zq", name=[{"family": "Phạm"}], gender="female",
             link=[{"other": {"reference": "Patient/pat-q-zq"}, "type": "seealso"}])
        # Q's record names P's: Q's data, in P's compartment through that link
        _put(client, at, "Patient", "pat-q-zq", name=[{"family": "Quách"}], gender="male", birthDate="1941-02-03",
             link=[{"other": {"reference": "Patient/pat-p-zq"}, "type": "seealso"}])
        _put(client, at, "Group", "household-zq", type="person", actual=True, name="Hộ gia đình 12",
             member=[{"entity": {"reference": "Patient/pat-p-zq"}}, {"entity": {"reference": "Patient/pat-q-zq"}}])
        _put(client, at, "Group", "solo-zq", type="person", actual=True, name="Theo dõi huyết áp",
             member=[{"entity": {"reference": "Patient/pat-p-zq"}}])
        _put(client, at, "Observation", "obs-own-zq", **_obs("pat-p-zq"))
        # Q's blood pressure that P measured at home: in P's compartment as performer, but Q's
        _put(client, at, "Observation", "obs-relative-zq", **_obs("pat-q-zq", performer=[
            {"reference": "Patient/pat-p-zq"}]))
        yield client, settings


def test_reads_and_searches_answer_shared_resources_as_absent(seeded: Any) -> None:
    client, settings = seeded
    resident = as_(settings, "resident", patient="pat-p-zq")
    for key in SHARED:
        assert client.get(f"/{key}", headers=resident).status_code == 404, key
        assert client.get(f"/{key}/_history/1", headers=resident).status_code == 404, key
        assert client.get(f"/{key}/_history", headers=resident).status_code == 404, key
    for key in THEIRS:
        assert client.get(f"/{key}", headers=resident).status_code == 200, key
    for rtype in ("Group", "Observation", "Patient"):
        found = client.get(f"/{rtype}?_total=accurate", headers=resident).json()
        assert _keys(found) == [k for k in THEIRS if k.startswith(rtype)] and _counted(found), found
        history = client.get(f"/{rtype}/_history", headers=resident).json()
        assert _keys(history) == [k for k in THEIRS if k.startswith(rtype)] and _counted(history), history
    everything = client.get("/Patient/pat-p-zq/$everything", headers=resident).json()
    assert _keys(everything, "match") == sorted(THEIRS) and _counted(everything)
    compartment = client.get("/Patient/pat-p-zq/Observation", headers=resident).json()
    assert _keys(compartment) == ["Observation/obs-own-zq"] and _counted(compartment)
    included = client.get("/Patient?_id=pat-p-zq&_revinclude=Group:member&_revinclude=Observation:performer"
                          "&_include=Patient:link", headers=resident).json()
    assert _keys(included) == ["Group/solo-zq", "Patient/pat-p-zq"]
    system = client.get("/?_type=Group,Observation,Patient&_total=accurate", headers=resident).json()
    assert _keys(system) == sorted(THEIRS) and _counted(system)
    for text in (str(everything), str(included), str(system)):
        assert "household-zq" not in text and "obs-relative-zq" not in text and "Quách" not in text


def test_a_facility_still_sees_them(seeded: Any) -> None:
    client, settings = seeded
    facility = as_(settings)
    for key in SHARED + THEIRS:
        assert client.get(f"/{key}", headers=facility).status_code == 200, key
    everything = client.get("/Patient/pat-p-zq/$everything", headers=facility).json()
    assert _keys(everything, "match") == sorted(SHARED + THEIRS)
