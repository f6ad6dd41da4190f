"""POST /$ingest and /$replay end to end on the embedded store: every format through the one write path,
nothing lost (archive, replay), nothing doubled (a second ingest finds everything again), bad records alone
rejected, security as for any client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from adapters.moh_xml.generator import generate_file
from fhir_hub.config import Settings
from fhir_hub.ingest.client import exit_code, files_in, ingest_files, summary
from tests.conftest import assert_outcome, auth, fixture_path, token_for

NDJSON = ("synthea-bulk-ndjson-10pt",)


def post(client: TestClient, payload: bytes, media_type: str = "application/octet-stream", **params: str) -> Any:
    return client.post("/$ingest", content=payload, params=params,
                       headers={"Content-Type": media_type, "Accept": "application/fhir+json"})


def report(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text[:800]
    body = response.json()
    assert body["resourceType"] == "Parameters"
    values: dict[str, Any] = {}
    for p in body["parameter"]:
        value = p.get("resource") or next((v for k, v in p.items() if k.startswith("value")), None)
        values.setdefault(p["name"], []).append(value)
    return {k: v[0] if len(v) == 1 and k != "notMapped" else v for k, v in values.items()}


def issues(values: dict[str, Any], severity: str) -> list[dict[str, Any]]:
    return [i for i in (values.get("outcome") or {"issue": []})["issue"] if i["severity"] == severity]


def total(client: TestClient, rtype: str) -> int:
    return int(client.get(f"/{rtype}", params={"_summary": "count"}).json()["total"])


# ------------------------------------------------------------------------------------------------ FHIR
def test_ndjson_files_load_in_order_and_a_second_ingest_creates_nothing(client: TestClient) -> None:
    folder = fixture_path(*NDJSON)
    files = [folder / f"{t}.000.ndjson" for t in ("Organization", "Location", "Practitioner", "Patient", "Encounter")]
    # the Encounters' first 300 lines (of 1,215): each still refers to the files before it; all of them took
    # ~40 s of the suite, twice over, and said nothing more
    payloads = [f.read_bytes() for f in files[:-1]] + [b"\n".join(files[-1].read_bytes().splitlines()[:300])]
    first = [report(post(client, data, "application/fhir+ndjson", filename=f.name))
             for f, data in zip(files, payloads, strict=True)]
    lines = [sum(1 for line in data.splitlines() if line.strip()) for data in payloads]
    assert lines[-1] == 300
    assert [r["recordsAccepted"] for r in first] == lines
    assert all(r["recordsRejected"] == 0 for r in first)
    assert total(client, "Encounter") == lines[-1]
    encounter = client.get("/Encounter", params={"_count": 1}).json()["entry"][0]["resource"]
    subject = encounter["subject"]["reference"]
    assert client.get(f"/{subject}").status_code == 200  # the sender's Patient/<id> now names the hub's patient
    again = report(post(client, payloads[-1], "application/fhir+ndjson", filename=files[-1].name))
    assert again["created"] == 0 and again["existing"] == 2 * lines[-1]  # each resource and its Provenance
    assert total(client, "Encounter") == lines[-1]


def test_one_bad_line_is_rejected_alone_and_named(client: TestClient) -> None:
    good = {"resourceType": "Patient", "id": "a1", "name": [{"family": "Nguyễn", "given": ["An"]}]}
    bad = {"resourceType": "Patient", "id": "a2", "birthDate": "1990-13-45"}
    payload = b"\n".join([orjson.dumps(good), orjson.dumps(bad), b"{not json", orjson.dumps({**good, "id": "a3"})])
    values = report(post(client, payload, "application/fhir+ndjson", filename="patients.ndjson"))
    assert values["recordsAccepted"] == 2 and values["recordsRejected"] == 2
    errors = [i["diagnostics"] for i in issues(values, "error")]
    assert any("line 2" in e and "birthDate" in e for e in errors), errors
    assert any("line 3" in e for e in errors), errors
    assert total(client, "Patient") == 2


def test_every_ingested_resource_is_tagged_and_each_record_has_one_provenance(client: TestClient) -> None:
    payload = orjson.dumps({"resourceType": "Patient", "id": "p1", "name": [{"text": "Trần Thị Bình"}],
                            "telecom": [{"system": "phone", "value": "0903 123 456"}]})
    values = report(post(client, payload, "application/fhir+json"))
    assert values["created"] == 2  # the Patient and its Provenance
    (patient,) = [e["resource"] for e in client.get("/Patient").json()["entry"]]
    assert patient["name"][0]["family"] == "Trần" and patient["name"][0]["given"] == ["Thị", "Bình"]
    assert patient["telecom"][0]["value"] == "+84903123456"
    assert {t["code"] for t in patient["meta"]["tag"]} >= {"fhir", "79001"}
    found = client.get("/Provenance", params={"target": f"Patient/{patient['id']}"}).json()["entry"]
    (provenance,) = [e["resource"] for e in found]
    assert provenance["target"] == [{"reference": f"Patient/{patient['id']}"}]
    assert provenance["entity"][0]["what"]["identifier"]["value"] == values["archive"]
    assert provenance["agent"][0]["who"]["identifier"]["value"] == "79001"
    again = report(post(client, payload, "application/fhir+json"))
    assert again["created"] == 0 and again["existing"] == 2
    assert total(client, "Provenance") == 1


def test_a_resident_sees_only_the_provenance_of_their_own_record(client: TestClient, settings: Settings) -> None:
    lines = [orjson.dumps({"resourceType": "Patient", "id": f"p{i}", "name": [{"text": f"Lê Văn {i}"}]})
             for i in range(3)]
    report(post(client, b"\n".join(lines), "application/fhir+ndjson"))
    patients = [e["resource"]["id"] for e in client.get("/Patient").json()["entry"]]
    resident = token_for(settings, role="resident", patient=patients[0])
    seen = client.get("/Provenance", headers=auth(resident)).json()
    assert [t["reference"] for e in seen["entry"] for t in e["resource"]["target"]] == [f"Patient/{patients[0]}"]


# --------------------------------------------------------------------------------------------- MoH XML
def test_moh_xml_with_a_broken_episode_keeps_the_good_ones_and_replay_doubles_nothing(client: TestClient) -> None:
    payload = generate_file(7, episodes=4, broken=["impossible-date"], facility="79001").payload
    values = report(post(client, payload, "application/xml", filename="xml130.xml"))
    assert values["recordsAccepted"] == 4 and values["recordsRejected"] == 1
    error = issues(values, "error")[0]
    assert "MA_LK=" in error["diagnostics"] and error["expression"][0].startswith("XML")
    encounters = total(client, "Encounter")
    assert encounters == 4 and total(client, "Condition") >= 4
    replayed = report(client.post("/$replay", params={"archive": values["archive"]},
                                  headers={"Accept": "application/fhir+json"}))
    assert replayed["created"] == 0 and replayed["recordsAccepted"] == 4
    assert total(client, "Encounter") == encounters


def test_two_hospitals_share_the_national_resources_and_keep_their_own(client: TestClient,
                                                                       settings: Settings) -> None:
    for facility in ("79001", "79002"):
        payload = generate_file(facility, episodes=2, facility=facility).payload
        answer = client.post("/$ingest", content=payload, params={"filename": f"{facility}.xml"},
                             headers={**auth(token_for(settings, facility=facility)),
                                      "Content-Type": "application/xml", "Accept": "application/fhir+json"})
        values = report(answer)
        assert values["recordsAccepted"] == 2 and values["recordsRejected"] == 0, issues(values, "error")
    payors = client.get("/Organization", params={"name": "Bảo hiểm"}).json()
    assert payors["total"] == 1  # created by the first hospital, found by the second
    for facility in ("79001", "79002"):  # each reads its own episodes (consent: not the other's)
        own = client.get("/Encounter", params={"_summary": "count"}, headers=auth(token_for(settings,
                                                                                             facility=facility)))
        assert own.json()["total"] == 2


# ---------------------------------------------------------------------------------------------- HL7 v2
def test_hl7v2_is_acknowledged_per_message(client: TestClient) -> None:
    message = fixture_path("hl7v2", "messages", "ADT-A01-01.hl7").read_bytes()
    answer = client.post("/$ingest", content=message, headers={"Content-Type": "x-application/hl7-v2+er7"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("x-application/hl7-v2+er7")
    assert b"MSA|AA|" in answer.content
    assert total(client, "Patient") == 1


def test_a_discharge_after_the_admission_updates_the_encounter_and_a_repeat_changes_nothing(
        client: TestClient) -> None:
    admission = fixture_path("hl7v2", "messages", "ADT-A01-01.hl7").read_bytes()
    discharge = admission.replace(b"ADT^A01^ADT_A01|MSG00001|", b"ADT^A03^ADT_A03|MSG00002|")
    headers = {"Content-Type": "x-application/hl7-v2+er7", "Accept": "application/fhir+json"}
    first = report(client.post("/$ingest", content=admission, headers=headers))
    (encounter,) = [e["resource"] for e in client.get("/Encounter").json()["entry"]]
    assert encounter["status"] == "in-progress" and first["created"] >= 2
    second = report(client.post("/$ingest", content=discharge, headers=headers))
    assert second["created"] == 1 and second["updated"] >= 1  # the only new resource: this message's Provenance
    (after,) = [e["resource"] for e in client.get("/Encounter").json()["entry"]]
    assert after["id"] == encounter["id"] and after["status"] == "finished"
    assert after["meta"]["versionId"] == "2"
    again = report(client.post("/$ingest", content=discharge, headers=headers))
    assert again["created"] == 0 and again["updated"] == 0
    assert again["existing"] == second["existing"] + second["updated"] + second["created"]
    assert client.get(f"/Encounter/{after['id']}").json()["meta"]["versionId"] == "2"  # no version for nothing


# ------------------------------------------------------------------------------------------------- CSV
def test_synthea_csv_loads_through_its_mapping_with_every_reference_resolved(client: TestClient) -> None:
    folder = fixture_path("synthea-csv-27pt")
    for name in ("patients.csv", "encounters.csv", "conditions.csv"):
        values = report(post(client, (folder / name).read_bytes(), "text/csv", filename=name))
        assert values["recordsRejected"] == 0, issues(values, "error")[:3]
    rows = len((folder / "encounters.csv").read_text(encoding="utf-8").splitlines()) - 1
    assert total(client, "Encounter") == rows
    condition = client.get("/Condition", params={"_count": 1}).json()["entry"][0]["resource"]
    assert client.get(f"/{condition['subject']['reference']}").status_code == 200


# ------------------------------------------------------------------------------------- errors, security
def test_an_unknown_format_is_415_and_the_payload_is_still_archived(client: TestClient, settings: Settings) -> None:
    answer = post(client, b"\x00\x01 binary nobody reads", "application/octet-stream")
    body = assert_outcome(answer, 415)
    assert "archived as" in body["issue"][0]["diagnostics"]


def test_ingest_needs_a_token_and_a_write_scope(client: TestClient, settings: Settings) -> None:
    payload = orjson.dumps({"resourceType": "Patient", "id": "x"})
    anonymous = client.post("/$ingest", content=payload, headers={"Authorization": "", "Content-Type":
                                                                   "application/fhir+json"})
    assert_outcome(anonymous, 401)
    reader = token_for(settings, scope="system/*.rs")
    assert_outcome(client.post("/$ingest", content=payload, headers={**auth(reader),
                                                                      "Content-Type": "application/fhir+json"}), 403)
    assert total(client, "Patient") == 0


def test_replay_of_another_facilitys_payload_is_not_found(client: TestClient, settings: Settings) -> None:
    values = report(post(client, orjson.dumps({"resourceType": "Patient", "id": "x"}), "application/fhir+json"))
    other = token_for(settings, facility="79002")
    answer = client.post("/$replay", params={"archive": values["archive"]}, headers=auth(other))
    assert_outcome(answer, 404)


# ------------------------------------------------------------------------------------------------- CLI
def test_the_cli_sends_a_folder_and_prints_a_summary(live_server: str, settings: Settings, tmp_path: Path) -> None:
    tmp_path = tmp_path / "export"
    tmp_path.mkdir()
    (tmp_path / "b-encounters.ndjson").write_bytes(orjson.dumps(
        {"resourceType": "Encounter", "id": "e1", "status": "finished",
         "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
         "subject": {"reference": "Patient/p1"}}))
    (tmp_path / "patients.ndjson").write_bytes(orjson.dumps({"resourceType": "Patient", "id": "p1"}))
    (tmp_path / "README.md").write_text("not data")
    results = ingest_files(files_in([tmp_path]), url=live_server, token=token_for(settings), format_name=None,
                           progress=False)
    assert [Path(r.path).name for r in results] == ["patients.ndjson", "b-encounters.ndjson"]
    assert [r.created for r in results] == [2, 2] and exit_code(results) == 0  # each with its Provenance
    table = summary(results)
    assert "patients.ndjson" in table and "total" in table


@pytest.mark.parametrize("token", [None, "not-a-token"])
def test_the_cli_reports_a_refused_token(live_server: str, tmp_path: Path, token: str | None) -> None:
    (tmp_path / "p.ndjson").write_bytes(orjson.dumps({"resourceType": "Patient", "id": "p1"}))
    results = ingest_files([tmp_path / "p.ndjson"], url=live_server, token=token, format_name=None, progress=False)
    assert results[0].failed is not None and "401" in results[0].failed
    assert exit_code(results) == 2


def test_a_clinic_mapping_folder_is_used_and_a_broken_file_in_it_is_left_out(tmp_path: Path) -> None:
    from adapters.csv.mapping import MAPPINGS_DIR
    from adapters.registry import adapter_for, adapters

    folder = tmp_path / "mappings"
    folder.mkdir()
    (folder / "broken.toml").write_text("mapping_format = 1\n[tables.x]\nresource = 'Nothing'\n")
    layout = (MAPPINGS_DIR / "hub-csv-v1.toml").read_text(encoding="utf-8")
    (folder / "clinic.toml").write_text(layout.replace('layout = "hub-csv"', 'layout = "clinic-x"'), encoding="utf-8")
    found = [a for a in adapters(folder) if a.format == "csv"]
    assert len(found) == 3  # the two shipped and the clinic's; the broken one is logged and left out
    header = "ma_benh_nhan,ho_ten,ngay_sinh\nBN1,Lê Lan,1990\n".encode()
    assert adapter_for(header, filename="x.csv", mapping_dir=folder).format == "csv"
