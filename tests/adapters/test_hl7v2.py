"""The HL7 v2 adapter against the 21 public sample messages and against generated ones.

The expected FHIR files come from another converter (microsoft/FHIR-Converter): they say which resource
types a message should give, not how each resource looks, so only the types in the hub's scope are compared.
"""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.base import Mapping, Problem, Source
from adapters.hl7v2 import Hl7v2Adapter, ack, acknowledgements
from adapters.normalize import BHXH, BHYT, CCCD, FACILITY_TAGS, entry_criteria
from fhir_hub.fhir.validation import validate_resource

HL7 = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "hl7v2"
MESSAGES = sorted((HL7 / "messages").glob("*.hl7"))
IN_SCOPE = {"Patient", "Encounter", "Observation", "DiagnosticReport", "Immunization"}
# The brief maps person-information events (A28 add person, A31 update person) to a Patient only: their PV1
# is not a visit, even though the reference converter makes an Encounter of it.
NOT_FOR_EVENT = {"A28": {"Encounter"}, "A31": {"Encounter"}}
ADAPTER = Hl7v2Adapter()
SOURCE = Source("hl7v2")


def _map(payload: bytes | str) -> Mapping:
    return ADAPTER.map(payload.encode() if isinstance(payload, str) else payload, SOURCE)


def _resources(mapping: Mapping, rtype: str | None = None) -> list[dict[str, Any]]:
    return [e["resource"] for r in mapping.records for e in r.bundle["entry"]
            if rtype is None or e["resource"]["resourceType"] == rtype]


def _canonical(mapping: Mapping) -> str:
    """The mapping with its random urn:uuid references numbered in order of appearance, for comparison."""
    text = json.dumps({"records": [(r.key, r.bundle) for r in mapping.records],
                       "rejected": [p.as_dict() for p in mapping.rejected],
                       "warnings": [p.as_dict() for p in mapping.warnings],
                       "not_mapped": mapping.not_mapped, "facility": mapping.facility}, default=str)
    ids: dict[str, str] = {}
    return re.sub(r"urn:uuid:[0-9a-f-]{36}", lambda m: ids.setdefault(m[0], f"ref{len(ids)}"), text)


def _pid_fields(path: Path) -> list[str]:
    line = next(x for x in path.read_text(encoding="utf-8-sig").splitlines() if x.startswith("PID|"))
    return line.split("|")


def _message(pid: str, *, control_id: str = "C1", message_type: str = "ADT^A04", extra: str = "") -> str:
    return (f"MSH|^~\\&|HIS|79001|HUB|SYT|20240501083000+0700||{message_type}|{control_id}|P|2.5\r"
            f"EVN|A04|20240501083000\r{pid}\r{extra}")


# --------------------------------------------------------------------------------------------- fixtures
@pytest.mark.parametrize("path", MESSAGES, ids=lambda p: p.stem)
def test_every_fixture_maps_or_is_reported_not_mapped(path: Path) -> None:
    mapping = _map(path.read_bytes())
    assert not mapping.rejected, mapping.rejected
    if not mapping.records:
        assert any(re.match(r"[A-Z]{3}\^[A-Z0-9]{3} \(MSH-10=", n) for n in mapping.not_mapped)


@pytest.mark.parametrize("path", MESSAGES, ids=lambda p: p.stem)
def test_mapped_fixture_covers_the_expected_types_and_validates(path: Path) -> None:
    mapping = _map(path.read_bytes())
    if not mapping.records:
        pytest.skip("message type not mapped by the hub")
    expected_bundle = json.loads((HL7 / "expected-fhir-r4" / f"{path.stem}-expected.json")
                                 .read_text(encoding="utf-8-sig"))
    expected = {e["resource"]["resourceType"] for e in expected_bundle["entry"]} & IN_SCOPE
    event = path.read_text(encoding="utf-8-sig").split("|")[8].split("^")[1]  # MSH-9.2
    expected -= NOT_FOR_EVENT.get(event, set())
    produced = {r["resourceType"] for r in _resources(mapping)}
    assert expected <= produced, f"missing {expected - produced}"
    for record in mapping.records:
        assert record.bundle["type"] == "transaction"
        for entry in record.bundle["entry"]:
            validate_resource(entry["resource"])
            assert entry["request"]["method"] in ("POST", "PUT")  # see normalize.write_request
            assert entry_criteria(entry).startswith("identifier=")


@pytest.mark.parametrize("name", ["ADT-A40-01", "IZ_1_1.1_Admin_Child_Max_Message", "ORU-R01-RMGEAD"])
def test_name_gender_birth_date_come_from_the_message(name: str) -> None:
    path = HL7 / "messages" / f"{name}.hl7"
    fields = _pid_fields(path)
    xpn = fields[5].split("~")[0].split("^")
    (patient,) = _resources(_map(path.read_bytes()), "Patient")
    assert patient["name"][0]["family"] == xpn[0].split("&")[0]
    assert patient["name"][0]["given"] == [p for p in xpn[1:3] if p]
    assert patient["gender"] == {"F": "female", "M": "male"}[fields[8]]
    raw = fields[7]
    assert patient["birthDate"] == f"{raw[:4]}-{raw[4:6]}-{raw[6:8]}"


def test_line_endings_and_byte_order_mark_do_not_change_the_result() -> None:
    text = (HL7 / "messages" / "ADT-A01-01.hl7").read_text(encoding="utf-8-sig").strip()
    cr = text.replace("\n", "\r")
    variants = [cr, text, text.replace("\n", "\r\n"), "\ufeff" + cr, "\ufeff" + text + "\n\n\n"]
    results = {_canonical(_map(v)) for v in variants}
    assert len(results) == 1


def test_a03_finishes_the_visit_and_a28_makes_no_encounter() -> None:
    (visit,) = _resources(_map((HL7 / "messages" / "ADT-A03-01.hl7").read_bytes()), "Encounter")
    assert visit["status"] == "finished" and visit["class"]["code"] == "PRENC"  # PV1-2 = P
    assert not _resources(_map((HL7 / "messages" / "ADT-A28-01.hl7").read_bytes()), "Encounter")


def test_several_messages_in_one_payload_give_one_record_each() -> None:
    payload = b"\r".join(p.read_bytes().strip() for p in MESSAGES if p.stem in ("ADT-A40-01", "LAB-ORU-2"))
    mapping = _map(payload)
    assert [r.key for r in mapping.records] == ["MSH-10=8919-40", "MSH-10=ControlID"]


def test_a40_hands_the_merge_of_mrg_1_into_pid_3_to_the_hub() -> None:
    """The adapter merges nothing (tests/linking/test_a40.py: the hub does, through patient matching)."""
    mapping = _map((HL7 / "messages" / "ADT-A40-01.hl7").read_bytes())
    assert [r["resourceType"] for r in _resources(mapping)] == ["Patient"]
    (record,) = mapping.records
    (request,) = record.merges
    assert request.keep["value"] == "12345" and [i["value"] for i in request.merged] == ["56789"]
    assert request.keep["system"] == request.merged[0]["system"] and request.field == "MRG-1"
    assert not [w for w in mapping.warnings if w.field == "MRG-1"]


# ---------------------------------------------------------------------------------- rejection, warnings
def test_an_impossible_birth_date_rejects_its_message_alone() -> None:
    good = _message("PID|1||MRN1^^^79001^MR||Nguyễn^Văn An||19900101|M", control_id="GOOD")
    bad = _message("PID|1||MRN2^^^79001^MR||Trần^Thị Bình||20230230|F", control_id="BAD")
    mapping = _map(good + "\n" + bad)
    assert [r.key for r in mapping.records] == ["MSH-10=GOOD"]
    (problem,) = mapping.rejected
    assert (problem.record, problem.field, problem.kept) == ("MSH-10=BAD", "PID-7", False)


@pytest.mark.parametrize(("pid", "field"), [
    ("PID|1||||||19900101|M", "PID-3"),
    ("PID|1||X1^^^H^MR||Lê^Hoa||1990AB|F", "PID-7"),
])
def test_a_patient_that_cannot_be_known_is_rejected(pid: str, field: str) -> None:
    mapping = _map(_message(pid))
    assert not mapping.records and [p.field for p in mapping.rejected] == [field]


def test_a_message_without_pid_or_readable_msh_is_rejected() -> None:
    assert [p.field for p in _map("MSH|^~\\&|A|B|C|D|2024||ADT^A01|N1|P|2.5\rEVN|A01").rejected] == ["PID"]
    assert [p.field for p in _map("MSH|^~\\&|A|B|C|D|2024|||N2|P|2.5\rPID|1||1").rejected] == ["MSH-9"]


def test_vietnamese_identifiers_are_national_and_matched_first() -> None:
    pid = ("PID|1||MRN7^^^79001^MR~079190001234^^^BCA^NI~DN4797912345678^^^BHXH^HC||Phạm^Thu Hà||19900312|F|||"
           "12 Lê Lợi^^Quận 1^Hồ Chí Minh^^VN||0903 123 456~0123")
    mapping = _map(_message(pid))
    (patient,) = _resources(mapping, "Patient")
    systems = [i["system"] for i in patient["identifier"]]
    assert systems[:3] == [CCCD, BHXH, BHYT]
    assert entry_criteria(mapping.records[0].bundle["entry"][0]) == (  # among this facility's records only
        f"identifier={CCCD}|079190001234&_tag={FACILITY_TAGS}|79001")
    assert {"system": "phone", "value": "+84903123456", "use": "home"} in patient["telecom"]
    assert any(w.field == "PID-13" for w in mapping.warnings)  # "0123" is no Vietnamese number
    assert not any(w.field == "PID-3" for w in mapping.warnings)


def test_a_personal_id_that_disagrees_with_birth_year_is_kept_with_a_warning() -> None:
    mapping = _map(_message("PID|1||079085001234^^^BCA^NI||Võ^Minh||19900312|M"))
    assert mapping.records and any(w.field == "PID-3" and "1985" in w.message for w in mapping.warnings)


def test_unknown_version_and_unknown_segment_are_read_with_warnings() -> None:
    text = _message("PID|1||M1^^^H^MR||Đỗ^Lan||1990|F", extra="QQQ|1|2").replace("|P|2.5", "|P|2.9")
    mapping = _map(text)
    assert mapping.records
    assert {w.field for w in mapping.warnings} >= {"MSH-12", "QQQ"}
    (patient,) = _resources(mapping, "Patient")
    assert patient["birthDate"] == "1990"


def test_other_message_types_are_not_mapped_not_rejected() -> None:
    mapping = _map((HL7 / "messages" / "SIU-S12-01.hl7").read_bytes())
    assert not mapping.records and not mapping.rejected
    assert mapping.not_mapped == ["SIU^S12 (MSH-10=MSG00012)"]


# -------------------------------------------------------------------------------------------------- ACK
def _segments(raw: bytes) -> dict[str, list[str]]:
    assert b"\n" not in raw
    return {s.split("|")[0]: s.split("|") for s in raw.decode().split("\r") if s}


def test_ack_of_an_accepted_message() -> None:
    original = (HL7 / "messages" / "ADT-A01-01.hl7").read_bytes()
    segments = _segments(ack(original, accepted=True))
    msh = segments["MSH"]
    assert msh[2].startswith("EHRApp") and msh[4].startswith("ADTApp")  # sender and receiver swapped
    assert msh[8] == "ACK^A01^ACK" and msh[9] and msh[9] != "MSG00001"
    assert segments["MSA"][1:3] == ["AA", "MSG00001"]
    assert "ERR" not in segments


def test_ack_of_a_refused_and_of_an_unreadable_message() -> None:
    refused = _segments(ack(_message("PID|1||1^^^H^MR||A^B||20230230").encode(), accepted=False,
                            error="PID-7: not a real date | see spec"))
    assert refused["MSA"][1:3] == ["AE", "C1"]
    assert "PID-7: not a real date \\F\\ see spec" in refused["ERR"]
    unreadable = _segments(ack(b"MSH|^~\\&|X|Y||||||BROKEN-1", accepted=False, error="cannot read"))
    assert unreadable["MSA"][1:3] == ["AR", "BROKEN-1"] and "cannot read" in unreadable["ERR"]


def test_acknowledgements_of_a_payload_answer_each_message_from_the_rejected_problems() -> None:
    """What the ingest service answers an HL7 v2 sender, built here from the report's rejected records:
    AA for a message no problem names, AE naming field and reason (cut to ``max_chars``) for one that does."""
    good = _message("PID|1||1^^^H^MR||A^B||19800101", control_id="GOOD")
    bad = _message("PID|1||2^^^H^MR||C^D||20230230", control_id="BAD")
    rejected = [Problem("MSH-10=BAD", "PID-7", "not a real date: " + "9" * 200),
                Problem("MSH-10=ELSEWHERE", None, "a message of another payload")]
    acks = acknowledgements(f"{good}\r{bad}".encode(), rejected, max_chars=60).split(b"\r\n")
    first, second = (_segments(a) for a in acks)
    assert first["MSA"][1:3] == ["AA", "GOOD"] and "ERR" not in first
    assert second["MSA"][1:3] == ["AE", "BAD"]
    reason = second["ERR"][8]
    assert reason.startswith("PID-7: not a real date: 999") and reason.endswith("…") and len(reason) == 60


def test_a_problem_that_names_its_field_is_not_prefixed_twice() -> None:
    named = Problem("MSH-10=C1", "Bundle.entry[2]", "Bundle.entry[2]: Patient.birthDate is invalid")
    assert named.text(800) == "Bundle.entry[2]: Patient.birthDate is invalid"
    assert Problem("MSH-10=C1", None, "no field").text(800) == "no field"


# ----------------------------------------------------------------------------------------------- detect
@pytest.mark.parametrize("path", MESSAGES, ids=lambda p: p.stem)
def test_detect_every_fixture(path: Path) -> None:
    assert ADAPTER.detect(path.read_bytes(), path.name)


@pytest.mark.parametrize("payload", [b"", b"<?xml version='1.0'?><a/>", b'{"resourceType":"Patient"}',
                                     b"MSH^~\\&", b"PID|1||2", b"\xff\xfe\x00M"])
def test_detect_refuses_other_payloads(payload: bytes) -> None:
    assert not ADAPTER.detect(payload)


# ------------------------------------------------------------------------------------------- hypothesis
_FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FAST
@given(st.binary(max_size=400))
def test_random_bytes_never_raise(payload: bytes) -> None:
    ADAPTER.detect(payload)
    assert isinstance(ADAPTER.map(payload, SOURCE), Mapping)
    ack(payload, accepted=False, error="x")


@_FAST
@given(st.lists(st.text(alphabet="|^~\\&\r\nABCPIDOBXRMSH0123456789.-+ ", max_size=60), max_size=6))
def test_random_msh_text_never_raises(parts: list[str]) -> None:
    payload = ("MSH|^~\\&|" + "".join(parts)).encode()
    mapping = ADAPTER.map(payload, SOURCE)
    for resource in _resources(mapping):
        validate_resource(resource)
    assert ack(payload, accepted=True).startswith(b"MSH|")


_FAMILIES = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ", "Hồ"]
_SYLLABLES = ["Văn", "Thị", "Minh", "Thu", "Hà", "Ngọc", "Đức", "Quỳnh", "Hương", "Bảo", "Khánh", "Tuấn",
              "Phương", "Thảo", "Dũng", "Yến", "Ánh", "Ỷ"]


@_FAST
@given(family=st.sampled_from(_FAMILIES), given_names=st.lists(st.sampled_from(_SYLLABLES), min_size=1, max_size=3),
       born=st.dates(min_value=date(1900, 1, 1), max_value=date(2024, 12, 31)),
       precision=st.sampled_from([4, 6, 8, 12, 14]), decomposed=st.booleans(), sex=st.sampled_from("MFU"))
def test_generated_pid_maps_name_and_birth_date(family: str, given_names: list[str], born: date, precision: int,
                                                decomposed: bool, sex: str) -> None:
    def form(text: str) -> str:
        return unicodedata.normalize("NFD" if decomposed else "NFC", text)

    stamp = (born.strftime("%Y%m%d") + "0930" + "15")[:precision]
    pid = f"PID|1||HN{born:%Y%m%d}^^^79001^MR||{form(family)}^{form(' '.join(given_names))}||{stamp}|{sex}"
    mapping = _map(_message(pid))
    (patient,) = _resources(mapping, "Patient")
    validate_resource(patient)
    assert patient["name"][0]["family"] == family
    assert patient["name"][0]["given"] == given_names
    expected = {4: born.strftime("%Y"), 6: born.strftime("%Y-%m")}.get(precision, born.isoformat())
    assert patient["birthDate"] == expected
    assert patient["gender"] == {"M": "male", "F": "female", "U": "unknown"}[sex]
