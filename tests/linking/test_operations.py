"""Link operations over HTTP: merge and unmerge (undoing a merge restores every resource as it was, and
keeps the two apart), the review list and its decisions, a person's links with their audit trail, and who
may do what.

Facilities write their records; the link operations and every read of what linking did (masters, $links,
the review list, records of several facilities) are the hub operator's (``callers.py``)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from fhir_hub.config import Settings
from fhir_hub.linking.elements import RECORD_ROLE
from tests.conftest import as_, assert_outcome
from tests.linking.callers import operator

FHIR = {"Content-Type": "application/fhir+json"}
CCCD = "http://fhir.hl7.org.vn/core/sid/cccd"
BHYT = "http://fhir.hl7.org.vn/core/sid/bhyt"


def _post(client: TestClient, settings: Settings, body: dict[str, Any], facility: str = "79001") -> str:
    response = client.post(f"/{body['resourceType']}", json=body,
                           headers={**FHIR, **as_(settings, "system", facility=facility)})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _patient(family: str, given: list[str], birth: str, **more: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "name": [{"family": family, "given": given}], "birthDate": birth,
            "gender": "female", **more}


def _operation(client: TestClient, settings: Settings, name: str, **params: Any) -> Any:
    parameter = [{"name": key.replace("_", "-"), **value} for key, value in params.items()]
    return client.post(f"/Patient/${name}", json={"resourceType": "Parameters", "parameter": parameter},
                       headers={**FHIR, **operator(settings)})


def _ref(pid: str) -> dict[str, Any]:
    return {"valueReference": {"reference": f"Patient/{pid}"}}


def _master_in_use(client: TestClient, settings: Settings, pid: str) -> str:
    links = client.get(f"/Patient/{pid}/$links", headers=operator(settings)).json()
    return str(next(p["resource"]["id"] for p in links["parameter"] if p["name"] == "master"))


def _dump(client: TestClient, settings: Settings) -> dict[str, Any]:
    """Every Patient (records and masters, merged ones included) as served, but for the version stamps."""
    found: dict[str, Any] = {}
    for query in ("", f"&_tag={RECORD_ROLE}|master"):
        bundle = client.get(f"/Patient?_count=100{query}", headers=operator(settings)).json()
        for entry in bundle.get("entry", []):
            resource = entry["resource"]
            meta = {k: v for k, v in resource["meta"].items() if k not in ("versionId", "lastUpdated")}
            found[resource["id"]] = {**resource, "meta": meta}
    return found


def test_merge_then_unmerge_restores_every_resource_and_keeps_the_two_apart(
        app_client: TestClient, settings: Settings) -> None:
    first = _post(app_client, settings, _patient("Hồ", ["Thị", "Thu"], "1960-01-01", identifier=[
        {"system": CCCD, "value": "079160001111"}, {"system": BHYT, "value": "GD4797920123456"}]))
    second = _post(app_client, settings, _patient("Ho", ["Thu"], "1961-02-02"), facility="79002")
    encounter = _post(app_client, settings, {"resourceType": "Encounter", "status": "finished",
                                             "class": {"code": "AMB"}, "subject": {"reference": f"Patient/{second}"}},
                      facility="79002")
    before = _dump(app_client, settings)
    m1, m2 = _master_in_use(app_client, settings, first), _master_in_use(app_client, settings, second)
    assert m1 != m2

    merged = _operation(app_client, settings, "merge", source_patient=_ref(second), target_patient=_ref(first),
                        reason={"valueString": "same woman, confirmed at the desk"})
    assert merged.status_code == 200, merged.text
    assert merged.json()["parameter"][1]["resource"]["id"] == m1
    assert _master_in_use(app_client, settings, second) == m1
    resident = as_(settings, "resident", patient=first)
    assert [e["resource"]["id"] for e in app_client.get("/Encounter", headers=resident).json()["entry"]] == [encounter]
    links = app_client.get(f"/Patient/{first}/$links", headers=operator(settings)).json()["parameter"]
    decisions = [p for p in links if p["name"] == "decision"]
    assert [d["part"][0]["valueCode"] for d in decisions] == ["merge"]
    assert {"name": "reason", "valueString": "same woman, confirmed at the desk"} in decisions[0]["part"]

    undone = _operation(app_client, settings, "unmerge", patient={"valueReference": {"reference": f"Patient/{m2}"}})
    assert undone.status_code == 200, undone.text
    assert _dump(app_client, settings) == before  # every record and both masters exactly as before the merge
    assert app_client.get("/Encounter", headers=resident).json().get("entry") is None

    # a record linking with both (the first's social insurance number on a renewed card, the second's name
    # and birth date) joins one person; the two are not merged again automatically
    bridge = _post(app_client, settings, _patient("Ho", ["Thu"], "1961-02-02", identifier=[
        {"system": BHYT, "value": "HT3797920123456"}]), facility="79003")
    assert _master_in_use(app_client, settings, bridge) in (m1, m2)
    assert _master_in_use(app_client, settings, first) != _master_in_use(app_client, settings, second)


def test_a_pair_in_the_review_band_waits_for_a_person(app_client: TestClient, settings: Settings) -> None:
    nhung = _post(app_client, settings, _patient("Võ", ["Thị", "Hồng", "Nhung"], "1985-03-04"))
    other = _post(app_client, settings, _patient("Võ", ["Thị", "Nhung"], "1985-03-04"), facility="79002")
    assert _master_in_use(app_client, settings, nhung) != _master_in_use(app_client, settings, other)
    listed = app_client.get("/Patient/$review-list", headers=operator(settings)).json()
    pairs = [{part["resource"]["id"] for part in p["part"]} for p in listed["parameter"]]
    assert pairs == [{nhung, other}]

    same = _operation(app_client, settings, "review", record=_ref(other), candidate=_ref(nhung),
                      decision={"valueCode": "same"})
    assert same.status_code == 200, same.text
    assert _master_in_use(app_client, settings, nhung) == _master_in_use(app_client, settings, other)
    assert app_client.get("/Patient/$review-list", headers=operator(settings)).json().get("parameter") is None
    again = _operation(app_client, settings, "review", record=_ref(other), candidate=_ref(nhung),
                       decision={"valueCode": "different"})
    assert_outcome(again, 422)  # no longer on the list


def test_a_pair_judged_different_stays_apart(app_client: TestClient, settings: Settings) -> None:
    nhung = _post(app_client, settings, _patient("Võ", ["Thị", "Hồng", "Nhung"], "1985-03-04"))
    other = _post(app_client, settings, _patient("Võ", ["Thị", "Nhung"], "1985-03-04"), facility="79002")
    different = _operation(app_client, settings, "review", record=_ref(other), candidate=_ref(nhung),
                           decision={"valueCode": "different"})
    assert different.status_code == 200, different.text
    assert app_client.get("/Patient/$review-list", headers=operator(settings)).json().get("parameter") is None
    # the facility sends the record again, corrected to link automatically: the person's decision holds
    corrected = _patient("Võ", ["Thị", "Hồng", "Nhung"], "1985-03-04") | {"id": other}
    response = app_client.put(f"/Patient/{other}", json=corrected, headers={**FHIR, **as_(settings, facility="79002")})
    assert response.status_code == 200, response.text
    assert _master_in_use(app_client, settings, nhung) != _master_in_use(app_client, settings, other)


def test_bad_requests_and_who_may_decide(app_client: TestClient, settings: Settings) -> None:
    first = _post(app_client, settings, _patient("Lý", ["Thị", "Mai"], "1990-09-09"))
    missing = _operation(app_client, settings, "merge", source_patient=_ref(first))
    assert "target-patient" in assert_outcome(missing, 400)["issue"][0]["diagnostics"]
    wrong_type = _operation(app_client, settings, "merge", source_patient=_ref(first),
                            target_patient={"valueReference": {"reference": "Observation/x"}})
    assert_outcome(wrong_type, 400)
    absent = _operation(app_client, settings, "merge", source_patient=_ref(first), target_patient=_ref("nobody"))
    assert_outcome(absent, 404)
    not_merged = _operation(app_client, settings, "unmerge", patient=_ref(_master_in_use(app_client, settings, first)))
    assert_outcome(not_merged, 422)
    body = {"resourceType": "Parameters", "parameter": [{"name": "source-patient", **_ref(first)},
                                                        {"name": "target-patient", **_ref(first)}]}
    resident = as_(settings, "resident", patient=first, scope="patient/*.cruds")
    assert_outcome(app_client.post("/Patient/$merge", json=body, headers={**FHIR, **resident}), 403)
    assert app_client.get(f"/Patient/{first}/$links", headers=resident).status_code == 200  # their own person
    other = _post(app_client, settings, _patient("Trịnh", ["Văn", "Nam"], "1950-05-05"))
    assert_outcome(app_client.get(f"/Patient/{other}/$links", headers=resident), 404)


def test_a_records_own_link_is_undone_and_stays_undone(app_client: TestClient, settings: Settings) -> None:
    """A record the match step linked (here by the same CCCD) is taken out of its person: it gets a master
    of its own, the other master is rebuilt without it, and the facility sending it again changes nothing."""
    cccd = [{"system": CCCD, "value": "079175004444"}]
    first = _post(app_client, settings, _patient("Mai", ["Thị", "Hạnh"], "1975-05-05", identifier=cccd))
    second_body = _patient("Mai", ["Hanh"], "1975-05-05", identifier=cccd)
    second = _post(app_client, settings, second_body, facility="79002")
    shared = _master_in_use(app_client, settings, first)
    assert _master_in_use(app_client, settings, second) == shared

    undone = _operation(app_client, settings, "unmerge", patient=_ref(second), reason={"valueString": "a twin"})
    assert undone.status_code == 200, undone.text
    own = _master_in_use(app_client, settings, second)
    assert own != shared and _master_in_use(app_client, settings, first) == shared
    golden = app_client.get(f"/Patient/{shared}", headers=operator(settings)).json()
    assert [link["other"]["reference"] for link in golden["link"]] == [f"Patient/{first}"]
    record = app_client.get(f"/Patient/{second}", headers=operator(settings)).json()
    assert record["meta"]["source"].endswith("facility:79002")  # still the facility's record
    again = app_client.put(f"/Patient/{second}", json=second_body | {"id": second},
                           headers={**FHIR, **as_(settings, facility="79002")})
    assert again.status_code == 200, again.text
    assert _master_in_use(app_client, settings, second) == own  # the person's decision holds
    log = [p for p in app_client.get(f"/Patient/{second}/$links", headers=operator(settings)).json()["parameter"]
           if p["name"] == "decision"]
    assert [d["part"][0]["valueCode"] for d in log] == ["distinct", "unlink"]  # the standing decision, the act
    alone = _operation(app_client, settings, "unmerge", patient=_ref(second))
    assert_outcome(alone, 422)  # the only record of its person now
