"""An HL7 v2 A40 (merge patient) is executed: the hospital says its two patient numbers are one person,
and the hub merges the two records' persons through patient matching; the records stay as they were sent,
the merge is reported naming MRG-1, logged, and undone with Patient/$unmerge.

The hospital finds its own records by number; the persons (masters, $links) and the $unmerge are the hub
operator's, since a facility never sees a master."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from fhir_hub.config import Settings
from tests.conftest import as_
from tests.linking.callers import operator

HL7 = {"Content-Type": "x-application/hl7-v2+er7", "Accept": "application/fhir+json"}


def _message(kind: str, control_id: str, pid: str, extra: str = "") -> bytes:
    return (f"MSH|^~\\&|HIS|79001|HUB|SYT|20240501083000+0700||ADT^{kind}|{control_id}|P|2.5\r"
            f"EVN|{kind}|20240501083000\r{pid}\r{extra}").encode()


def _ingest(client: TestClient, settings: Settings, payload: bytes) -> dict[str, Any]:
    answer = client.post("/$ingest", content=payload, headers={**HL7, **as_(settings, facility="79001")})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _warnings(report: dict[str, Any]) -> list[str]:
    outcome = next((p["resource"] for p in report["parameter"] if p["name"] == "outcome"), {"issue": []})
    return [i["diagnostics"] for i in outcome["issue"] if i["severity"] == "warning"]


def _patient_id(client: TestClient, settings: Settings, mrn: str) -> str:
    found = client.get("/Patient", params={"identifier": mrn}, headers=as_(settings)).json()
    (entry,) = found["entry"]
    return str(entry["resource"]["id"])


def _master(client: TestClient, settings: Settings, pid: str) -> str:
    links = client.get(f"/Patient/{pid}/$links", headers=operator(settings)).json()
    return str(next(p["resource"]["id"] for p in links["parameter"] if p["name"] == "master"))


def test_an_a40_merges_the_two_records_persons_and_can_be_undone(app_client: TestClient,
                                                                 settings: Settings) -> None:
    _ingest(app_client, settings, _message("A04", "C1", "PID|1||MRN-A^^^79001^MR||Nguyễn^Văn An||19900101|M",
                                           "PV1|1|O|||||||||||||||||V-1\r"))
    _ingest(app_client, settings, _message("A04", "C2", "PID|1||MRN-B^^^79001^MR||Nguyen^An||1991|M",
                                           "PV1|1|O|||||||||||||||||V-2\r"))
    kept, merged = _patient_id(app_client, settings, "MRN-A"), _patient_id(app_client, settings, "MRN-B")
    assert _master(app_client, settings, kept) != _master(app_client, settings, merged)  # not one by matching

    report = _ingest(app_client, settings, _message("A40", "C3", "PID|1||MRN-A^^^79001^MR||Nguyễn^Văn An||19900101|M",
                                                    "MRG|MRN-B^^^79001^MR\r"))
    (done,) = [w for w in _warnings(report) if "merged into the person" in w]
    assert f"Patient/{merged}" in done and f"Patient/{kept}" in done
    assert _master(app_client, settings, kept) == _master(app_client, settings, merged)
    # the records are as the hospital sent them: MRN-B still a record of its own, still found by its number
    assert _patient_id(app_client, settings, "MRN-B") == merged

    gone_master = next(p["valueReference"]["reference"] for p in app_client.get(
        f"/Patient/{kept}/$links", headers=operator(settings)).json()["parameter"] if p["name"] == "merged")
    undo = app_client.post("/Patient/$unmerge", json={"resourceType": "Parameters", "parameter": [
        {"name": "patient", "valueReference": {"reference": gone_master}}]},
                           headers={"Content-Type": "application/fhir+json", **operator(settings)})
    assert undo.status_code == 200, undo.text
    assert _master(app_client, settings, kept) != _master(app_client, settings, merged)


def test_an_a40_naming_an_unknown_patient_is_reported_not_done(app_client: TestClient, settings: Settings) -> None:
    report = _ingest(app_client, settings, _message("A40", "C9", "PID|1||MRN-X^^^79001^MR||Lê^Văn Ba||19800101|M",
                                                    "MRG|MRN-NOBODY^^^79001^MR\r"))
    assert any("merge not done: no patient carries" in w and "MRN-NOBODY" in w for w in _warnings(report))
