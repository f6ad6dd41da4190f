"""One person, three facilities, three formats (issue 16): through ``POST /$ingest``, a district hospital's
MoH XML export, a tertiary hospital's HL7 v2 admission and a commune station's CSV of one woman become one
person (one master in use), and a resident token for that master reads each facility's Encounter.

Each facility records her its own way, the way the matching rules are written for:
- the MoH file (79002): her BHYT card (retired category), no personal ID, her phone, diacritics;
- the HL7 ADT^A01 (79003): no diacritics, her CCCD and a renewed card of another category, so the same
  social-insurance number (the card's last 10 characters): the "bhxh" rule links it to the MoH record;
- the clinic CSV (79004): her phone and full birth date, no ID: the probabilistic score links it.

Also here: a facility whose record carries a national identifier another facility sent first keeps its own
record (the HL7 v2 A40 is in test_a40.py).

Each facility sends with its own token; the records of all three and the master are read as the hub's
operator (a facility reads only its own records, ``callers.py``), her Encounters as the resident herself.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from fastapi.testclient import TestClient

from adapters.moh_xml.generator import envelope, generate_file, table_document
from adapters.normalize import FACILITY_TAGS
from fhir_hub.config import Settings
from fhir_hub.linking.elements import RECORD_ROLE, master_of
from tests.conftest import as_
from tests.linking.callers import operator

MOH, HIS, CLINIC = "79002", "79003", "79004"
CCCD = "079162004321"  # province 079, 1 = a woman born in the 1900s, 62 = 1962
CARD_MOH, CARD_HIS = "HT3797904321567", "GD4797904321567"  # one social-insurance number: 7904321567
PHONE = "0903123456"
MASTERS = f"{RECORD_ROLE}|master"
XML, ER7, CSV = "application/xml", "x-application/hl7-v2+er7", "text/csv"
Payload = tuple[str, str, str | None, bytes]  # facility, media type, file name, bytes


# ------------------------------------------------------------------------------------------- payloads
def moh_xml(*, cccd: str = "") -> Payload:
    """A realistic QĐ 130 file (one HOSO) whose XML1 row is Võ Thị Ngọc Hân's as the district hospital keeps
    her; the rest of the episode (drugs, services, results) as the generator draws it."""
    episode = generate_file("one-person", episodes=1, facility=MOH).episodes[0]
    tables = {loai: [dict(row) for row in rows] for loai, rows in episode.tables.items()}
    tables["XML1"][0].update({
        "MA_BN": "BN20240017", "HO_TEN": "Võ Thị Ngọc Hân", "NGAY_SINH": "196208230000", "GIOI_TINH": "2",
        "SO_CCCD": cccd, "MA_THE_BHYT": CARD_MOH, "MA_DKBD": "79024", "GT_THE_TU": "20240101",
        "GT_THE_DEN": "20241231", "DIEN_THOAI": PHONE,
        "DIA_CHI": "25 Trần Hưng Đạo, Phường Cầu Ông Lãnh, Thành phố Hồ Chí Minh"})
    files = [(loai, base64.b64encode(table_document(loai, rows)).decode()) for loai, rows in tables.items()]
    return MOH, XML, "xml130.xml", envelope(MOH, [files], "20250102")


def adt(control_id: str, event: str, pid: str, *more: str) -> Payload:
    """One ADT message from the tertiary hospital's HIS."""
    segments = [f"MSH|^~\\&|HIS|{HIS}|HUB|SYT|20240601090000+0700||ADT^{event}|{control_id}|P|2.5",
                f"EVN|{event}|20240601090000", pid, *more]
    return HIS, ER7, None, "\r".join(segments).encode()


def admission() -> Payload:
    """Her admission, typed without diacritics, with her CCCD and her renewed card."""
    pid3 = f"BN-HIS-5501^^^{HIS}^MR~{CCCD}^^^BCA^NI~{CARD_HIS}^^^BHXH^HC"
    return adt("ADM-88001", "A01", f"PID|1||{pid3}||Vo^Thi Ngoc Han||19620823|F|||25 Tran Hung Dao^^Ho Chi Minh"
                                   f"||{PHONE}", f"PV1|1|I|||||||||||||||||V-88001{'|' * 25}20240601090000")


def clinic_csv() -> list[Payload]:
    """Her record at the commune station (no ID), then her visit."""
    patients = ("ma_benh_nhan,ho_ten,ngay_sinh,gioi_tinh,dien_thoai,dia_chi\n"
                "TYT-0042,Võ Thị Ngọc Hân,23/08/1962,Nữ,090 312 3456,\"25 Trần Hưng Đạo, Quận 1\"\n")
    visits = ("ma_luot_kham,ma_benh_nhan,ngay_kham,loai_kham,ly_do_kham\n"
              "LK-0901,TYT-0042,2024-09-03 08:15,Ngoại trú,Tái khám huyết áp\n")
    return [(CLINIC, CSV, "benh_nhan.csv", patients.encode()), (CLINIC, CSV, "luot_kham.csv", visits.encode())]


# ------------------------------------------------------------------------------------------- helpers
def ingest(client: TestClient, settings: Settings, payload: Payload) -> dict[str, Any]:
    """The report of one ``$ingest`` as the facility's system; fails on any rejected record."""
    facility, media_type, filename, content = payload
    answer = client.post("/$ingest", content=content, params={"filename": filename} if filename else {},
                         headers={**as_(settings, "system", facility=facility), "Content-Type": media_type,
                                  "Accept": "application/fhir+json"})
    assert answer.status_code == 200, answer.text[:800]
    values: dict[str, Any] = {}
    for p in answer.json()["parameter"]:
        values[p["name"]] = p.get("resource") or next((v for k, v in p.items() if k.startswith("value")), None)
    errors = [i for i in (values.get("outcome") or {"issue": []})["issue"] if i["severity"] == "error"]
    assert values["recordsRejected"] == 0 and not errors, errors
    return values


def send(client: TestClient, settings: Settings, payloads: list[Payload]) -> None:
    for payload in payloads:
        ingest(client, settings, payload)


def facility_of(resource: dict[str, Any]) -> str:
    """The facility that wrote a resource: its source-facility tag, which ``meta.source`` must agree with."""
    (code,) = [t["code"] for t in resource["meta"]["tag"] if t["system"] == FACILITY_TAGS]
    assert resource["meta"]["source"].endswith(f"facility:{code}"), resource["meta"]
    return str(code)


def patients(client: TestClient, settings: Settings) -> list[dict[str, Any]]:
    """Every facility's Patient records, as the operator reads them (a plain search leaves the masters out)."""
    found = client.get("/Patient", params={"_count": 50}, headers=operator(settings)).json()
    return [e["resource"] for e in found.get("entry", [])]


def facility_patients(client: TestClient, settings: Settings) -> dict[str, str]:
    """Facility -> the id of its one Patient record."""
    by_facility: dict[str, str] = {}
    for resource in patients(client, settings):
        code = facility_of(resource)
        assert code not in by_facility, f"two Patient records from {code}"
        by_facility[code] = resource["id"]
    return by_facility


def master_in_use(client: TestClient, pid: str) -> str | None:
    hub = client.app.state.hub  # type: ignore[attr-defined]
    found: str | None = client.portal.call(hub.store.master_in_use, f"Patient/{pid}")  # type: ignore[union-attr]
    return found


def masters_in_use(client: TestClient, settings: Settings) -> int:
    """Masters that are a person's record now (a master merged into another stays, an inactive redirect)."""
    masters = client.get("/Patient", params={"_tag": MASTERS, "_count": 50}, headers=operator(settings)).json()
    return sum(1 for e in masters.get("entry", []) if e["resource"].get("active") is not False)


def decision_rule(client: TestClient, settings: Settings, pid: str) -> str:
    linked = master_of(client.get(f"/Patient/{pid}", headers=operator(settings)).json())
    assert linked is not None, pid
    return linked[1].rule


def assert_one_person(client: TestClient, settings: Settings, facilities: set[str]) -> dict[str, str]:
    """Each facility kept its own Patient record, all share one master in use, and a resident token for
    that master reads exactly one Encounter per facility, each that facility's own, about its own record."""
    records = facility_patients(client, settings)
    assert set(records) == facilities
    masters = {master_in_use(client, pid) for pid in records.values()}
    assert len(masters) == 1 and None not in masters, masters
    assert masters_in_use(client, settings) == 1
    (master,) = masters
    assert master is not None
    resident = as_(settings, "resident", patient=master.removeprefix("Patient/"))
    encounters = client.get("/Encounter", headers=resident).json()
    seen = [e["resource"] for e in encounters.get("entry", [])]
    assert encounters["total"] == len(facilities) == len(seen)
    assert {facility_of(e): e["subject"]["reference"] for e in seen} == {
        code: f"Patient/{pid}" for code, pid in records.items()}
    return records | {"master": master}


# --------------------------------------------------------------------------------------- one person
def test_the_same_woman_from_a_moh_file_an_hl7_admission_and_a_clinic_csv_is_one_person(
        app_client: TestClient, settings: Settings) -> None:
    send(app_client, settings, [moh_xml(), admission(), *clinic_csv()])
    ids = assert_one_person(app_client, settings, {MOH, HIS, CLINIC})
    # linked by the rules meant to link them: the social-insurance number, then the probabilistic score
    assert decision_rule(app_client, settings, ids[MOH]) == "new-person"
    assert decision_rule(app_client, settings, ids[HIS]) == "bhxh"
    assert decision_rule(app_client, settings, ids[CLINIC]) == "probabilistic"
    # the facilities' records keep what each sent; the golden record gathers every identifier
    his = app_client.get(f"/Patient/{ids[HIS]}", headers=operator(settings)).json()
    assert his["name"][0]["family"] == "Vo" and [link["type"] for link in his["link"]] == ["refer"]
    golden = app_client.get(f"/{ids['master']}", headers=operator(settings)).json()
    assert {i["value"] for i in golden["identifier"]} >= {CCCD, CARD_MOH, CARD_HIS, "7904321567"}
    assert golden["name"][0]["family"] == "Võ" and golden["telecom"][0]["value"] == "+84903123456"


@pytest.mark.parametrize("first_moh_with_cccd", [True, False], ids=["moh-cccd-then-hl7-cccd", "hl7-then-moh-bhxh"])
def test_each_facility_keeps_its_own_record_when_another_sent_its_identifier_first(
        app_client: TestClient, settings: Settings, first_moh_with_cccd: bool) -> None:
    """The same CCCD, or the same social-insurance number, links two facilities' records under one master,
    whichever facility sent first; neither facility's record is replaced by the other's."""
    order = [moh_xml(cccd=CCCD), admission()] if first_moh_with_cccd else [admission(), moh_xml()]
    send(app_client, settings, order)
    assert_one_person(app_client, settings, {MOH, HIS})
