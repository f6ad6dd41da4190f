"""The MoH XML adapter against files from its own generator: what each HOSO becomes, what is rejected
alone, what is only a warning, and that nothing it produces is invalid FHIR or lacks an idempotency key.
No database: adapters are pure, so these tests only map bytes and validate the resulting resources."""

from __future__ import annotations

import base64
import json
import unicodedata
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.base import Mapping, Source
from adapters.moh_xml import MohXmlAdapter
from adapters.moh_xml.codes import Row
from adapters.moh_xml.generator import (
    BROKEN_KINDS,
    GeneratedEpisode,
    envelope,
    generate_file,
    main,
    table_document,
)
from adapters.normalize import ICD10, LOINC, entry_criteria
from fhir_hub.fhir.validation import validate_resource

ADAPTER = MohXmlAdapter()
SOURCE = Source("moh-xml")


# ------------------------------------------------------------------------------------------------ helpers
def mapped(payload: bytes) -> Mapping:
    return ADAPTER.map(payload, SOURCE)


def resources(mapping: Mapping, rtype: str | None = None) -> Iterator[dict[str, Any]]:
    for record in mapping.records:
        for entry in record.bundle["entry"]:
            if rtype is None or entry["resource"]["resourceType"] == rtype:
                yield entry["resource"]


def single_file(*episodes: dict[str, list[Row]], legacy: bool = False) -> bytes:
    """A GIAMDINHHS file from explicit table rows (one dict of tables per HOSO), sent by the first
    episode's facility."""
    facility = episodes[0]["XML1"][0]["MA_CSKCB"]
    hosos = [[(loai, base64.b64encode(table_document(loai, rows, legacy_4210=legacy)).decode())
              for loai, rows in tables.items()] for tables in episodes]
    return envelope(facility, hosos, "20250101")


def edited(episode: GeneratedEpisode, table: str = "XML1", **fields: str) -> dict[str, list[Row]]:
    """A copy of a generated episode's tables with some fields of the first row of ``table`` replaced."""
    tables = {loai: [dict(row) for row in rows] for loai, rows in episode.tables.items()}
    tables[table][0].update(fields)
    return tables


def sample_episode(seed: int = 7) -> GeneratedEpisode:
    return generate_file(seed, episodes=1).episodes[0]


def canonical(mapping: Mapping) -> list[list[tuple[str, str]]]:
    """Each record as (ifNoneExist, resource JSON) with urn:uuid references replaced by the target's
    ifNoneExist: the fullUrls are random, the business identity is what must be stable."""
    out = []
    for record in mapping.records:
        names = {e["fullUrl"]: entry_criteria(e) for e in record.bundle["entry"]}
        text = [(entry_criteria(e), json.dumps(e["resource"], sort_keys=True, ensure_ascii=False))
                for e in record.bundle["entry"]]
        for url, name in names.items():
            text = [(key, body.replace(url, name)) for key, body in text]
        out.append(sorted(text))
    return out


def expected_counts(episode: GeneratedEpisode) -> Counter[str]:
    """What the adapter must make of one generated episode, table by table."""
    t = {loai: episode.tables.get(loai, []) for loai in ("XML1", "XML2", "XML3", "XML4", "XML5", "XML13", "XML14")}
    summary = t["XML1"][0]
    cards = [c for c in summary["MA_THE_BHYT"].split(";") if c]
    diagnoses = dict.fromkeys([summary["MA_BENH_CHINH"], *[c for c in summary["MA_BENH_KT"].split(";") if c]])
    services = [r for r in t["XML3"] if r["MA_DICH_VU"]]
    performed = [r for r in services if r["NGAY_TH_YL"] or r["NGAY_KQ"]]
    targets = {r["MA_NOI_DEN"] for r in t["XML13"]} - {summary["MA_CSKCB"]}
    return Counter({
        "Organization": 1 + bool(cards) + len(targets), "Patient": 1, "Encounter": 1,
        "Condition": len(diagnoses), "Coverage": len(cards),
        "MedicationRequest": len(t["XML2"]), "MedicationAdministration": sum(bool(r["NGAY_TH_YL"]) for r in t["XML2"]),
        "Procedure": len(performed), "ServiceRequest": len(services) - len(performed) + len(t["XML13"]),
        "Observation": len(t["XML4"]) + len(t["XML5"]), "Appointment": len(t["XML14"]),
    }) - Counter()


def assert_valid(mapping: Mapping) -> None:
    for record in mapping.records:
        for entry in record.bundle["entry"]:
            assert entry["request"]["method"] in ("POST", "PUT")  # see normalize.write_request
            assert entry_criteria(entry).startswith("identifier=")
            validate_resource(entry["resource"])


# --------------------------------------------------------------------------------------------- the happy path
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_generated_files_map_to_the_expected_resources(seed: int) -> None:
    made = generate_file(seed, episodes=4)
    mapping = mapped(made.payload)
    assert mapping.rejected == []
    assert mapping.facility == made.facility
    assert [r.key for r in mapping.records] == [f"MA_LK={e.ma_lk}" for e in made.episodes]
    for record, episode in zip(mapping.records, made.episodes, strict=True):
        got = Counter(e["resource"]["resourceType"] for e in record.bundle["entry"])
        assert got == expected_counts(episode)
    assert_valid(mapping)


def test_big_file_covers_every_table_and_validates() -> None:
    made = generate_file("coverage", episodes=40)
    mapping = mapped(made.payload)
    assert len(mapping.records) == 40 and mapping.rejected == []
    kinds = Counter(r["resourceType"] for r in resources(mapping))
    for rtype in ("Appointment", "MedicationAdministration", "Procedure", "ServiceRequest", "Coverage"):
        assert kinds[rtype] > 0, rtype
    assert any(c.get("code") == "3457005" for sr in resources(mapping, "ServiceRequest")
               for cat in sr.get("category", []) for c in cat["coding"])
    assert "XML7" in mapping.not_mapped
    assert_valid(mapping)


def test_patient_encounter_and_diagnoses() -> None:
    episode = sample_episode()
    tables = edited(episode, HO_TEN=unicodedata.normalize("NFD", "  Nguyễn   Thị Thu Hà "), NGAY_SINH="198500000000",
                    GIOI_TINH="2", SO_CCCD="079185000123", MA_BENH_CHINH="E11.9", MA_BENH_KT="I10;A09;J45;I10",
                    MA_LOAI_KCB="03", KET_QUA_DTRI="5", MA_LOAI_RV="1")
    mapping = mapped(single_file(tables))
    assert mapping.rejected == [] and mapping.warnings == []
    [patient] = resources(mapping, "Patient")
    assert patient["name"][0] == {"use": "official", "text": "Nguyễn Thị Thu Hà", "family": "Nguyễn",
                                  "given": ["Thị", "Thu", "Hà"]}
    assert patient["birthDate"] == "1985" and patient["gender"] == "female"
    assert patient["identifier"][0]["value"] == "079185000123"
    [encounter] = resources(mapping, "Encounter")
    assert encounter["class"]["code"] == "IMP" and encounter["status"] == "finished"
    disposition = encounter["hospitalization"]["dischargeDisposition"]
    assert "exp" in {c["code"] for c in disposition["coding"]} and "Tử vong" in disposition["text"]
    conditions = {c["code"]["coding"][0]["code"]: c for c in resources(mapping, "Condition")}
    assert list(conditions) == ["E11.9", "I10", "A09", "J45"]
    assert all(c["code"]["coding"][0]["system"] == ICD10 for c in conditions.values())
    ranks = {d["rank"]: d["condition"]["reference"] for d in encounter["diagnosis"]}
    principal = next(e for r in mapping.records for e in r.bundle["entry"] if e["fullUrl"] == ranks[1])
    assert principal["resource"]["code"]["coding"][0]["code"] == "E11.9"


def test_results_numbers_text_and_loinc() -> None:
    tables = edited(sample_episode(), "XML1")
    tables["XML4"] = [
        {"STT": "1", "MA_CHI_SO": "1010001", "TEN_CHI_SO": "Glucose", "GIA_TRI": "6,4", "DON_VI_DO": "mmol/L",
         "NGAY_KQ": "202403051030"},
        {"STT": "2", "MA_CHI_SO": "1020105", "TEN_CHI_SO": "Nhóm máu ABO", "GIA_TRI": "O", "MO_TA": "Rh+"},
        {"STT": "3", "MA_CHI_SO": "1010021", "TEN_CHI_SO": "Creatinin", "GIA_TRI": "<0.5", "DON_VI_DO": "mg/dL"},
    ]
    mapping = mapped(single_file(tables))
    labs = [o for o in resources(mapping, "Observation") if o["category"][0]["coding"][0]["code"] == "laboratory"]
    glucose, group, creatinine = labs
    assert glucose["valueQuantity"] == {"value": 6.4, "unit": "mmol/L"}
    assert {"system": LOINC, "code": "2345-7"}.items() <= glucose["code"]["coding"][1].items()
    assert glucose["effectiveDateTime"] == "2024-03-05T10:30:00+07:00"
    assert group["valueString"] == "O" and group["note"] == [{"text": "Rh+"}]
    assert creatinine["valueString"] == "<0.5" and len(creatinine["code"]["coding"]) == 1


# ------------------------------------------------------------------------------------- warnings, not rejections
def test_personal_id_mismatch_is_a_warning_and_the_record_is_kept() -> None:
    tables = edited(sample_episode(), SO_CCCD="079099000001", NGAY_SINH="198001010000", GIOI_TINH="2")
    mapping = mapped(single_file(tables))
    assert len(mapping.records) == 1 and mapping.rejected == []
    fields = {w.field for w in mapping.warnings}
    assert fields == {"XML1.SO_CCCD"} and all(w.kept for w in mapping.warnings)
    assert len(mapping.warnings) == 2  # wrong birth year and wrong gender


def test_bad_card_and_phone_are_warnings() -> None:
    tables = edited(sample_episode(), MA_THE_BHYT="XX9123", DIEN_THOAI="12345", GT_THE_TU="20240101",
                    GT_THE_DEN="20241231")
    mapping = mapped(single_file(tables))
    assert len(mapping.records) == 1
    assert {w.field for w in mapping.warnings} == {"XML1.MA_THE_BHYT", "XML1.DIEN_THOAI"}
    [patient] = resources(mapping, "Patient")
    assert "telecom" not in patient


# ------------------------------------------------------------------------------------------------- rejections
@pytest.mark.parametrize("kind", BROKEN_KINDS)
def test_each_broken_kind_rejects_only_its_hoso(kind: str) -> None:
    made = generate_file(f"broken-{kind}", episodes=3, broken=[kind])
    mapping = mapped(made.payload)
    [broken] = made.broken
    assert [(p.record, p.field) for p in mapping.rejected] == [(broken.key, broken.field)]
    assert not mapping.rejected[0].kept
    assert [r.key for r in mapping.records] == [f"MA_LK={e.ma_lk}" for e in made.episodes]
    assert_valid(mapping)


def test_all_broken_kinds_in_one_file() -> None:
    made = generate_file("all-broken", episodes=2, broken=list(BROKEN_KINDS))
    mapping = mapped(made.payload)
    assert {(p.record, p.field) for p in mapping.rejected} == {(b.key, b.field) for b in made.broken}
    assert len(mapping.records) == 2


@pytest.mark.parametrize(("table", "fields", "field"), [
    ("XML1", {"HO_TEN": ""}, "XML1.HO_TEN"),
    ("XML1", {"NGAY_RA": "202413010000"}, "XML1.NGAY_RA"),
    ("XML1", {"NGAY_SINH": "199002300000"}, "XML1.NGAY_SINH"),
    ("XML2", {"NGAY_YL": "202402311200"}, "XML2.NGAY_YL"),
    ("XML3", {"NGAY_YL": "202406312500"}, "XML3.NGAY_YL"),
])
def test_missing_name_and_impossible_dates_are_rejected(table: str, fields: dict[str, str], field: str) -> None:
    episode = sample_episode()
    mapping = mapped(single_file(edited(episode, table, **fields), edited(sample_episode(8))))
    assert [(p.record, p.field) for p in mapping.rejected] == [(f"MA_LK={episode.ma_lk}", field)]
    assert len(mapping.records) == 1


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<GIAMDINHHS><THONGTINDONVI><MACSKCB>&lol2;</MACSKCB></THONGTINDONVI></GIAMDINHHS>"""


def test_doctype_and_entities_are_refused() -> None:
    mapping = mapped(BILLION_LAUGHS)
    assert mapping.records == [] and len(mapping.rejected) == 1
    assert "DOCTYPE" in mapping.rejected[0].message


def test_doctype_inside_one_table_rejects_that_hoso_only() -> None:
    good, bad = edited(sample_episode(1)), edited(sample_episode(2))
    hosos = [[(loai, base64.b64encode(table_document(loai, rows)).decode()) for loai, rows in t.items()]
             for t in (good, bad)]
    hosos[1] = [(loai, base64.b64encode(BILLION_LAUGHS).decode() if loai == "XML2" else content)
                for loai, content in hosos[1]]
    mapping = mapped(envelope("79024", hosos, "20250101"))
    assert len(mapping.records) == 1
    assert [p.field for p in mapping.rejected] == ["HOSO[2].XML2.NOIDUNGFILE"]


@pytest.mark.parametrize("payload", [b"<GIAMDINHHS><THONGTINDONVI>", b"", b"\xff\xfe<\x00G\x00", b"<OTHER/>"])
def test_unreadable_file_is_one_rejection(payload: bytes) -> None:
    mapping = mapped(payload)
    assert mapping.records == [] and len(mapping.rejected) == 1 and mapping.rejected[0].record == "file"


# ------------------------------------------------------------------------------------------- legacy and ids
def test_legacy_4210_names_give_the_same_resources() -> None:
    current = generate_file(11, episodes=4)
    legacy = generate_file(11, episodes=4, legacy_4210=True)
    assert b"MA_THE_BHYT" not in base64.b64decode(_first_table(legacy.payload))
    assert canonical(mapped(current.payload)) == canonical(mapped(legacy.payload))


def _first_table(payload: bytes) -> bytes:
    start = payload.index(b"<NOIDUNGFILE>") + len(b"<NOIDUNGFILE>")
    return payload[start:payload.index(b"</NOIDUNGFILE>")]


def test_mapping_twice_gives_the_same_idempotency_keys() -> None:
    payload = generate_file(5, episodes=3).payload
    first, second = mapped(payload), mapped(payload)
    keys = [{entry_criteria(e) for e in r.bundle["entry"]} for r in first.records]
    assert keys == [{entry_criteria(e) for e in r.bundle["entry"]} for r in second.records]
    assert canonical(first) == canonical(second)


def test_unmapped_tables_are_listed_and_not_decoded() -> None:
    tables = edited(sample_episode())
    file = single_file(tables).replace(b"</HOSO>", b"<FILEHOSO><LOAIHOSO>XML6</LOAIHOSO>"
                                                   b"<NOIDUNGFILE>not even base64</NOIDUNGFILE></FILEHOSO></HOSO>")
    mapping = mapped(file)
    assert "XML6" in mapping.not_mapped and len(mapping.records) == 1 and mapping.rejected == []


# ------------------------------------------------------------------------------------------------------ detect
def test_detect() -> None:
    payload = generate_file(3, episodes=1).payload
    assert ADAPTER.detect(payload) and ADAPTER.detect(b"\xef\xbb\xbf" + payload, "x.xml")
    for other in (b'{"resourceType": "Bundle"}', b"MSH|^~\\&|HIS|79024|HUB|HCMC|202401011200||ADT^A01|1|P|2.5",
                  b"ho_ten,ngay_sinh,cccd\nNguyen Van A,19900101,079090000001\n", b"", b"\x00\x01GIAMDINHHS",
                  b'{"GIAMDINHHS": 1}'):
        assert not ADAPTER.detect(other)


# ---------------------------------------------------------------------------------------------- the generator
def test_generator_cli_is_deterministic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--files", "2", "--episodes", "2", "--seed", "3", "--broken", "bad-base64,impossible-date"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b"), "--legacy"]) == 0
    assert main([*args, "--out", str(tmp_path / "c")]) == 0
    written = sorted((tmp_path / "a").iterdir())
    assert len(written) == 2
    assert [p.read_bytes() for p in written] == [p.read_bytes() for p in sorted((tmp_path / "c").iterdir())]
    for path in written:
        mapping = mapped(path.read_bytes())
        assert len(mapping.records) == 2 and len(mapping.rejected) == 2
    with pytest.raises(SystemExit) as exit_help:
        main(["--help"])
    assert exit_help.value.code == 0 and "--broken" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--broken", "nonsense"])


def test_generated_identifiers_follow_the_rules() -> None:
    made = generate_file(21, episodes=30)
    for episode in made.episodes:
        summary = episode.tables["XML1"][0]
        if summary["SO_CCCD"]:
            assert summary["SO_CCCD"].startswith("079") and len(summary["SO_CCCD"]) == 12
        for card in filter(None, summary["MA_THE_BHYT"].split(";")):
            assert len(card) == 15 and card[:2].isalpha() and card[2] in "12345" and card[3:5] == "79"
    mapping = mapped(made.payload)
    assert not [w for w in mapping.warnings if w.field in ("XML1.SO_CCCD", "XML1.MA_THE_BHYT")]


# --------------------------------------------------------------------------------------------------- hypothesis
@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_never_raise(payload: bytes) -> None:
    mapping = mapped(payload)
    assert mapping.records == [] and len(mapping.rejected) == 1


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=300))
def test_random_text_never_raises(text: str) -> None:
    mapped(text.encode("utf-8"))
    mapped(b"<GIAMDINHHS>" + text.encode("utf-8") + b"</GIAMDINHHS>")


FIELD_VALUES = st.text(alphabet=st.sampled_from("0123456789;.,: aAzZđĐ\u0300-"), max_size=14)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries(dict.fromkeys((
    "NGAY_SINH", "GIOI_TINH", "SO_CCCD", "MA_THE_BHYT", "GT_THE_TU", "GT_THE_DEN", "DIEN_THOAI", "MA_BENH_CHINH",
    "MA_BENH_KT", "NGAY_VAO", "NGAY_RA", "MA_LOAI_KCB", "KET_QUA_DTRI", "MA_LOAI_RV", "MA_BN"), FIELD_VALUES)))
def test_odd_field_values_are_rejected_or_mapped_to_valid_fhir(fields: dict[str, str]) -> None:
    mapping = mapped(single_file(edited(sample_episode(), **fields)))
    assert len(mapping.records) + len(mapping.rejected) == 1
    assert_valid(mapping)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=10**9), st.booleans())
def test_generated_episodes_always_validate(seed: int, legacy: bool) -> None:
    made = generate_file(seed, episodes=1, legacy_4210=legacy)
    mapping = mapped(made.payload)
    assert mapping.rejected == [] and len(mapping.records) == 1
    assert Counter(r["resourceType"] for r in resources(mapping)) == expected_counts(made.episodes[0])
    assert_valid(mapping)
