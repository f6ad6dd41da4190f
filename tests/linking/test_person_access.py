"""One person, one record, as clients see it: a resident's token covers every linked record, a clinician
asks for a person's data through the master, and a name search can list one entry per person.

Under the consent policy a facility reads its own records and, of other facilities', only what the
resident's consents permit; masters and other facilities' Patient records are listed for the hub's operator
(``callers.py``)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from fhir_hub.config import Settings
from fhir_hub.linking.elements import RECORD_ROLE
from tests.conftest import as_
from tests.consent.test_consent_reads import consent, give
from tests.linking.callers import operator

CCCD = "http://fhir.hl7.org.vn/core/sid/cccd"
FHIR = {"Content-Type": "application/fhir+json"}


def _patient(family: str, given: list[str], birth: str, cccd: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "Patient", "name": [{"family": family, "given": given}],
                            "birthDate": birth, "gender": "female"}
    if cccd:
        body["identifier"] = [{"system": CCCD, "value": cccd}]
    return body


def _seed(client: TestClient, settings: Settings) -> dict[str, str]:
    """Bà Lan at three facilities (two with her CCCD, one without, spelled without diacritics), each with
    an Encounter and an Observation; and another woman at the first facility."""
    ids: dict[str, str] = {}
    people = {"79001": _patient("Nguyễn", ["Thị", "Lan"], "1956-04-12", "079156001234"),
              "79002": _patient("Nguyen", ["Thi", "Lan"], "1956-04-12", "079156001234"),
              "79003": _patient("Nguyễn", ["Thị", "Lan"], "1956-04-12", None)
              | {"telecom": [{"system": "phone", "value": "0903123456"}]},
              "other": _patient("Trần", ["Thị", "Hoa"], "1970-01-01", "079170005678")}
    people["79002"]["telecom"] = [{"system": "phone", "value": "0903123456"}]
    for name, body in people.items():
        facility = "79001" if name == "other" else name
        headers = {**FHIR, **as_(settings, "system", facility=facility)}
        created = client.post("/Patient", json=body, headers=headers)
        assert created.status_code == 201, created.text
        pid = ids[name] = created.json()["id"]
        for rtype, extra in (("Encounter", {"status": "finished", "class": {"code": "AMB"}}),
                             ("Observation", {"status": "final", "code": {"text": "Huyết áp"}})):
            field = "subject"
            response = client.post(f"/{rtype}", json={"resourceType": rtype, **extra,
                                                       field: {"reference": f"Patient/{pid}"}}, headers=headers)
            assert response.status_code == 201, response.text
    master = client.get(f"/Patient/{ids['79001']}", headers=as_(settings)).json()["link"][-1]["other"]["reference"]
    ids["master"] = master.removeprefix("Patient/")
    return ids


def _subjects(bundle: dict[str, Any]) -> set[str]:
    return {e["resource"]["subject"]["reference"].removeprefix("Patient/") for e in bundle.get("entry", [])}


def test_a_resident_token_on_the_master_or_any_record_reads_every_facilitys_encounters(
        app_client: TestClient, settings: Settings) -> None:
    ids = _seed(app_client, settings)
    lan = {ids["79001"], ids["79002"], ids["79003"]}
    for signed_in_as in (ids["master"], ids["79002"]):
        resident = as_(settings, "resident", patient=signed_in_as)
        encounters = app_client.get("/Encounter", headers=resident).json()
        assert _subjects(encounters) == lan and encounters["total"] == 3
        assert app_client.get(f"/Patient/{ids['79003']}", headers=resident).status_code == 200
        assert app_client.get(f"/Patient/{ids['other']}", headers=resident).status_code == 404
    other = app_client.get("/Encounter", headers=as_(settings, "resident", patient=ids["other"])).json()
    assert _subjects(other) == {ids["other"]}


def test_a_clinician_asks_through_the_master_or_with_mdm(app_client: TestClient, settings: Settings) -> None:
    """Through the master or with ``:mdm`` a facility reaches the person's every record, but reads other
    facilities' data only once she permits it (here a permit-all privacy consent she gives on one record,
    which holds for all of hers)."""
    ids = _seed(app_client, settings)
    lan = {ids["79001"], ids["79002"], ids["79003"]}
    clinician = as_(settings, "system")
    queries = (f"patient=Patient/{ids['master']}", f"subject={ids['master']}",
               f"subject:mdm=Patient/{ids['79003']}", f"patient:mdm={ids['79002']}")
    for query in queries:
        found = app_client.get(f"/Observation?{query}", headers=clinician).json()
        assert _subjects(found) == {ids["79001"]} and found["total"] == 1, query  # its own record only
    give(app_client, as_(settings, "resident", patient=ids["79003"]),
         consent() | {"patient": {"reference": f"Patient/{ids['79003']}"}})
    for query in queries:
        found = app_client.get(f"/Observation?{query}", headers=clinician).json()
        assert _subjects(found) == lan, query
    # without :mdm a source record is that record alone
    alone = app_client.get(f"/Observation?patient=Patient/{ids['79003']}", headers=clinician).json()
    assert _subjects(alone) == {ids["79003"]}


def test_a_name_search_lists_records_or_one_master_per_person(app_client: TestClient, settings: Settings) -> None:
    """The operator lists every facility's records, or one master per person; a facility lists its own
    records, and other facilities' and the master once the resident permits it."""
    ids = _seed(app_client, settings)
    hub = operator(settings)
    records = app_client.get("/Patient?given=lan", headers=hub).json()
    assert {e["resource"]["id"] for e in records["entry"]} == {ids["79001"], ids["79002"], ids["79003"]}
    masters = app_client.get(f"/Patient?given=lan&_tag={RECORD_ROLE}|master", headers=hub).json()
    assert [e["resource"]["id"] for e in masters["entry"]] == [ids["master"]] and masters["total"] == 1
    golden = masters["entry"][0]["resource"]
    assert {i["value"] for i in golden["identifier"]} == {"079156001234"}
    assert app_client.get(f"/Patient?_tag={RECORD_ROLE}|master&_summary=count", headers=hub).json()["total"] == 2
    assert app_client.get("/Patient?_summary=count", headers=hub).json()["total"] == 4

    clinician = as_(settings, "system")
    own = app_client.get("/Patient?given=lan", headers=clinician).json()
    assert [e["resource"]["id"] for e in own["entry"]] == [ids["79001"]] and own["total"] == 1
    assert app_client.get(f"/Patient?given=lan&_tag={RECORD_ROLE}|master", headers=clinician).json()["total"] == 0
    # a conditional create by the personal ID finds exactly the facility's own record: the other facility's
    # and the master are not the facility's to see
    lan = _patient("Nguyễn", ["Thị", "Lan"], "1956-04-12", "079156001234")
    conditional = {**FHIR, **clinician, "If-None-Exist": f"identifier={CCCD}|079156001234"}
    again = app_client.post("/Patient", json=lan, headers=conditional)
    assert again.status_code == 200 and again.json()["id"] == ids["79001"], again.text
    # once she permits it, the facility sees her three records and her master, and the conditional create
    # meets two facilities' records carrying the ID: the master does not count
    give(app_client, as_(settings, "resident", patient=ids["79001"]),
         consent() | {"patient": {"reference": f"Patient/{ids['79001']}"}})
    seen = app_client.get("/Patient?given=lan", headers=clinician).json()
    assert {e["resource"]["id"] for e in seen["entry"]} == {ids["79001"], ids["79002"], ids["79003"]}
    masters = app_client.get(f"/Patient?given=lan&_tag={RECORD_ROLE}|master", headers=clinician).json()
    assert [e["resource"]["id"] for e in masters["entry"]] == [ids["master"]]
    again = app_client.post("/Patient", json=lan, headers=conditional)
    assert again.status_code == 412 and "2 Patient resources match" in again.text, again.text
