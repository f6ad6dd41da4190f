"""A payload cannot claim another facility: the token's facility decides whose records it holds.

The attack: facility 79001 uploads a file whose envelope (MACSKCB), HOSO (MA_CSKCB), message (MSH-4), patient
number (PID-3's assigning authority) or CSV row says 79415; its records would be scoped to and tagged
79415, and written as 79001's (``meta.source``), so the real 79415's own upload is then refused as another
facility's. Each place is refused (or the number left out), naming the field, and the real facility's own
upload stores everything; a token configured to send for another facility may, and its Provenance says so.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.base import Mapping, Source
from adapters.hl7v2 import Hl7v2Adapter
from adapters.moh_xml import MohXmlAdapter
from adapters.moh_xml.generator import envelope, generate_file, table_document
from adapters.normalize import FACILITY_TAGS, HUB, facility_scoped
from fhir_hub.config import ConfigError, Settings
from fhir_hub.main import create_app
from tests.conftest import auth, token_for

XML = {"Content-Type": "application/xml", "Accept": "application/fhir+json"}
HL7 = {"Content-Type": "x-application/hl7-v2+er7", "Accept": "application/fhir+json"}
OWN, OTHER = "79001", "79415"


def _as(settings: Settings, facility: str, headers: dict[str, str]) -> dict[str, str]:
    return {**headers, **auth(token_for(settings, facility=facility))}


def _values(answer: Any) -> dict[str, Any]:
    assert answer.status_code == 200, answer.text[:800]
    values: dict[str, Any] = {}
    for p in answer.json()["parameter"]:
        values[p["name"]] = p.get("resource") or next((v for k, v in p.items() if k.startswith("value")), None)
    return values


def _errors(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for i in (values.get("outcome") or {"issue": []})["issue"] if i["severity"] == "error"]


def _facility_tags(client: TestClient, rtype: str, headers: dict[str, str] | None = None) -> set[str]:
    """The facility tags of what the client's token (or ``headers``) reads of a type."""
    found = client.get(f"/{rtype}", params={"_count": 1000}, headers=headers).json().get("entry", [])
    return {t["code"] for e in found for t in e["resource"]["meta"]["tag"] if t["system"] == FACILITY_TAGS}


def _message(control_id: str, msh4: str, pid3: str) -> str:
    return (f"MSH|^~\\&|HIS|{msh4}|HUB|SYT|20240501083000+0700||ADT^A04|{control_id}|P|2.5\r"
            f"EVN|A04|20240501083000\rPID|1||{pid3}||Nguyễn^Văn An||19900101|M\r"
            f"PV1|1|O|||||||||||||||||V-{control_id}\r")


# ---------------------------------------------------------------------------------------------- MoH XML
def test_a_moh_file_naming_another_facility_cannot_squat_its_records(client: TestClient,
                                                                     settings: Settings) -> None:
    payload = generate_file(5, episodes=2, facility=OTHER).payload
    squat = _values(client.post("/$ingest", content=payload, headers=_as(settings, OWN, XML)))
    assert squat["recordsAccepted"] == 0
    (error,) = _errors(squat)
    assert error["expression"] == ["THONGTINDONVI.MACSKCB"] and OTHER in error["diagnostics"]
    assert client.get("/Encounter", params={"_summary": "count"}).json()["total"] == 0
    own = _values(client.post("/$ingest", content=payload, headers=_as(settings, OTHER, XML)))
    assert own["recordsAccepted"] == 2 and not _errors(own)
    assert _facility_tags(client, "Encounter", _as(settings, OTHER, {})) == {OTHER}  # its own records, by consent


def test_a_hoso_naming_another_facility_is_refused_alone(client: TestClient, settings: Settings) -> None:
    made = generate_file(6, episodes=2, facility=OWN)
    hosos = []
    for n, episode in enumerate(made.episodes):
        tables = {loai: [dict(row) for row in rows] for loai, rows in episode.tables.items()}
        if n == 1:
            tables["XML1"][0]["MA_CSKCB"] = OTHER
        hosos.append([(loai, base64.b64encode(table_document(loai, rows)).decode()) for loai, rows in tables.items()])
    values = _values(client.post("/$ingest", content=envelope(OWN, hosos, "20250101"), headers=XML))
    assert values["recordsAccepted"] == 1
    (error,) = _errors(values)
    assert error["expression"] == ["XML1.MA_CSKCB"]
    assert error["diagnostics"].startswith(f"MA_LK={made.episodes[1].ma_lk}")
    assert _facility_tags(client, "Encounter") == {OWN}


# ----------------------------------------------------------------------------------------------- HL7 v2
def test_an_hl7_message_naming_another_facility_in_msh4_is_refused_and_the_others_stored(
        client: TestClient, settings: Settings) -> None:
    payload = "\n".join([_message("GOOD", OWN, "BN1^^^^MR"), _message("SQUAT", OTHER, "BN2^^^^MR")]).encode()
    values = _values(client.post("/$ingest", content=payload, headers=HL7))
    assert values["recordsAccepted"] == 1
    (error,) = _errors(values)
    assert error["expression"] == ["MSH-4"] and error["diagnostics"].startswith("MSH-10=SQUAT")
    acks = client.post("/$ingest", content=payload, headers={"Content-Type": "x-application/hl7-v2+er7"}).content
    assert b"MSA|AE|SQUAT" in acks and b"MSH-4" in acks and b"MSA|AA|GOOD" in acks
    assert _facility_tags(client, "Encounter") == {OWN}
    (patient,) = [e["resource"] for e in client.get("/Patient").json()["entry"]]
    assert patient["identifier"][0]["system"] == f"{HUB}/sid/mrn/{OWN}"


def test_a_patient_number_assigned_by_another_facility_is_left_out(client: TestClient) -> None:
    payload = _message("M1", OWN, f"BN7^^^{OTHER}^MR~079190001234^^^BCA^NI").encode()
    values = _values(client.post("/$ingest", content=payload, headers=HL7))
    assert values["recordsAccepted"] == 1
    (patient,) = [e["resource"] for e in client.get("/Patient").json()["entry"]]
    assert not any(i["system"].endswith(f"/{OTHER}") for i in patient["identifier"])
    warnings = [i for i in values["outcome"]["issue"] if i["severity"] == "warning"]
    assert any(i.get("expression") == ["PID-3"] and OTHER in i["diagnostics"] for i in warnings)


def test_msh4_that_is_no_facility_code_leaves_the_token_s_facility_in_charge(client: TestClient) -> None:
    payload = _message("APP", "GHHSFacility^2.16.840.1.122848.1.30^ISO", "BN3^^^^MR").encode()
    assert _values(client.post("/$ingest", content=payload, headers=HL7))["recordsAccepted"] == 1
    (patient,) = [e["resource"] for e in client.get("/Patient").json()["entry"]]
    assert patient["identifier"][0]["system"] == f"{HUB}/sid/mrn/{OWN}"


# -------------------------------------------------------------------------------------------------- CSV
def test_a_csv_row_naming_another_facility_is_refused_naming_its_column(client: TestClient) -> None:
    rows = f"ma_benh_nhan,ho_ten,ngay_sinh,ma_cskcb\nBN1,Lê Lan,1990,{OWN}\nBN2,Trần Hoa,1991,{OTHER}\n"
    values = _values(client.post("/$ingest", content=rows.encode(), params={"filename": "patients.csv"},
                                 headers={"Content-Type": "text/csv", "Accept": "application/fhir+json"}))
    assert values["recordsAccepted"] == 1
    (error,) = _errors(values)
    assert error["expression"] == ["patients.csv:ma_cskcb"] and "line 3" in error["diagnostics"]


# ------------------------------------------------------------------------------------ sending for others
@pytest.fixture
def delegating_client(settings: Settings) -> Iterator[TestClient]:
    configured = settings.with_(ingest_on_behalf_of=f"{OWN}={OTHER}")
    with TestClient(create_app(configured), raise_server_exceptions=False,
                    headers=auth(token_for(configured))) as test_client:
        yield test_client


def test_a_facility_configured_to_send_for_another_may_and_its_provenance_says_so(
        delegating_client: TestClient) -> None:
    payload = generate_file(5, episodes=1, facility=OTHER).payload
    values = _values(delegating_client.post("/$ingest", content=payload, headers=XML))
    assert values["recordsAccepted"] == 1 and not _errors(values)
    assert _facility_tags(delegating_client, "Encounter") == {OTHER}
    (provenance,) = [e["resource"] for e in delegating_client.get("/Provenance").json()["entry"]]
    agent = provenance["agent"][0]
    assert agent["who"]["identifier"]["value"] == OWN and agent["onBehalfOf"]["identifier"]["value"] == OTHER
    unlisted = generate_file(5, episodes=1, facility="79416").payload
    assert _values(delegating_client.post("/$ingest", content=unlisted, headers=XML))["recordsAccepted"] == 0


@pytest.mark.parametrize("value", ["79001", "79001=", "7900=79415", "79001=79415;x=79416", "79001=79415,bv"])
def test_an_unreadable_delegation_setting_stops_start_up_naming_it(value: str) -> None:
    with pytest.raises(ConfigError, match="FHIR_HUB_INGEST_ON_BEHALF_OF"):
        Settings.from_env({"FHIR_HUB_INGEST_ON_BEHALF_OF": value})


# ------------------------------------------------------------------------------------------- properties
_CODES = st.sampled_from([OWN, OTHER, "79416", "01002", "ABCDE", "", "BV Nhi", "GHHSFacility", "790010"])
_ALLOWED = frozenset({OWN})


def _scoped_facilities(mapping: Mapping) -> set[str]:
    """The facility parts of every facility-scoped identifier system and tag the records carry."""
    found: set[str] = set()
    for record in mapping.records:
        for entry in record.bundle["entry"]:
            resource = entry["resource"]
            found |= {t["code"] for t in resource["meta"]["tag"] if t["system"] == FACILITY_TAGS}
            found |= {i["system"].rsplit("/", 1)[1] for i in resource.get("identifier", [])
                      if facility_scoped(i["system"])}
    return found


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(msh4=_CODES, authority=_CODES)
def test_no_hl7_message_scopes_a_record_to_a_facility_the_token_may_not_send_for(msh4: str, authority: str) -> None:
    mapping = Hl7v2Adapter().map(_message("P1", msh4, f"BN9^^^{authority}^MR~N1^^^^MR").encode(),
                                 Source("hl7v2", OWN, _ALLOWED))
    assert not {f for f in _scoped_facilities(mapping) if f in (OTHER, "79416", "01002", "ABCDE")}
    assert bool(mapping.records) != (msh4 in (OTHER, "79416", "01002", "ABCDE"))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(envelope_code=_CODES, hoso_code=_CODES)
def test_no_moh_hoso_is_scoped_to_a_facility_the_token_may_not_send_for(envelope_code: str, hoso_code: str) -> None:
    episode = generate_file(8, episodes=1, facility=OWN).episodes[0]
    tables = {loai: [dict(row) for row in rows] for loai, rows in episode.tables.items()}
    tables["XML1"][0]["MA_CSKCB"] = hoso_code
    files = [(loai, base64.b64encode(table_document(loai, rows)).decode()) for loai, rows in tables.items()]
    mapping = MohXmlAdapter().map(envelope(envelope_code, [files], "20250101"), Source("moh-xml", OWN, _ALLOWED))
    assert _scoped_facilities(mapping) <= {OWN}
    named = hoso_code or envelope_code
    assert bool(mapping.records) == (named in ("", OWN) and envelope_code in ("", OWN))
