"""The CSV adapter: the Synthea export through synthea.toml, the hub layout's samples, broken rows,
stable match identifiers, mapping-file errors, file order, encodings, and never raising on junk."""

from __future__ import annotations

import csv
import re
import unicodedata
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.base import Mapping, Source
from adapters.csv import CsvAdapter, MappingError, ingest_order, load_mapping, parse_mapping
from adapters.csv.reader import fold, read_table
from adapters.normalize import entry_criteria
from fhir_hub.fhir.validation import validate_resource

SYNTHEA = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "synthea-csv-27pt"
SAMPLES = Path(__file__).resolve().parent / "data" / "csv"
SYNTHEA_MAPPED = ("patients", "encounters", "conditions", "observations", "immunizations", "medications",
                  "procedures", "allergies")
HUB = CsvAdapter()
SYNTHEA_ADAPTER = CsvAdapter("synthea")
CLINIC = Source("csv", facility="79001")


def resources(mapping: Mapping) -> list[dict[str, Any]]:
    return [e["resource"] for r in mapping.records for e in r.bundle["entry"]]


def if_none_exist(mapping: Mapping) -> list[str]:
    return [entry_criteria(e) for r in mapping.records for e in r.bundle["entry"]]


def sample(name: str, source: Source = CLINIC) -> Mapping:
    return HUB.map((SAMPLES / name).read_bytes(), source, filename=name)


def rejected_lines(mapping: Mapping) -> set[str]:
    return {p.record for p in mapping.rejected}


# ------------------------------------------------------------------------------------------------ Synthea
@pytest.fixture(scope="module")
def synthea() -> dict[str, Mapping]:
    return {p.name: SYNTHEA_ADAPTER.map(p.read_bytes(), Source("csv"), filename=p.name)
            for p in sorted(SYNTHEA.glob("*.csv"))}


@pytest.mark.parametrize("table", SYNTHEA_MAPPED)
def test_every_synthea_row_is_one_valid_record(synthea: dict[str, Mapping], table: str) -> None:
    mapping = synthea[f"{table}.csv"]
    with open(SYNTHEA / f"{table}.csv", newline="", encoding="utf-8") as f:
        rows = sum(1 for _ in csv.DictReader(f))
    assert mapping.rejected == []
    assert len(mapping.records) == rows
    assert [r.key for r in mapping.records][:2] == [f"{table}.csv line 2", f"{table}.csv line 3"]
    for resource in resources(mapping):
        validate_resource(resource)


def test_synthea_files_the_mapping_leaves_out_are_reported_not_rejected(synthea: dict[str, Mapping]) -> None:
    for name in ("careplans.csv", "devices.csv", "organizations.csv", "providers.csv", "payers.csv",
                 "supplies.csv", "imaging_studies.csv"):
        assert synthea[name].records == [] and synthea[name].rejected == []
        assert synthea[name].not_mapped == [name]


def test_synthea_patient_and_references(synthea: dict[str, Mapping]) -> None:
    patient = resources(synthea["patients.csv"])[0]
    assert patient["name"][0] == {"family": "Mosciski958", "use": "official", "given": ["Maynard46"]}
    assert patient["identifier"][0]["system"].endswith("/sid/ma-bn/synthea")
    assert {"system": "http://hl7.org/fhir/sid/us-ssn", "value": "999-17-5017"} in patient["identifier"]
    encounter = resources(synthea["encounters.csv"])[0]
    assert encounter["class"]["code"] == "AMB" and encounter["status"] == "finished"
    assert encounter["subject"]["reference"] == (
        f"Patient?identifier={patient['identifier'][0]['system']}|{patient['identifier'][0]['value']}")
    classes = {r["class"]["code"] for r in resources(synthea["encounters.csv"])}
    assert classes == {"AMB", "IMP", "EMER"}
    values = [o for o in resources(synthea["observations.csv"]) if "valueQuantity" in o]
    assert values and all(isinstance(o["valueQuantity"]["value"], int | float) for o in values)


def test_synthea_match_identifiers_are_unique_and_stable(synthea: dict[str, Mapping]) -> None:
    for table in SYNTHEA_MAPPED:
        keys = if_none_exist(synthea[f"{table}.csv"])
        again = if_none_exist(SYNTHEA_ADAPTER.map((SYNTHEA / f"{table}.csv").read_bytes(), Source("csv"),
                                                  filename=f"{table}.csv"))
        assert keys == again
        assert len(set(keys)) == len(keys), table


# ------------------------------------------------------------------------------------------- hub layout
def test_hub_patients_with_vietnamese_headers() -> None:
    mapping = sample("patients.csv")
    assert [r.key for r in mapping.records] == ["patients.csv line 2", "patients.csv line 3",
                                                "patients.csv line 4", "patients.csv line 7"]
    an, ngoc, *_ = resources(mapping)
    assert an["name"][0] == {"use": "official", "text": "Nguyễn Văn An", "family": "Nguyễn", "given": ["Văn", "An"]}
    assert an["birthDate"] == "1985-03-15" and an["gender"] == "male"
    assert an["telecom"] == [{"system": "phone", "value": "+84901234567"}]
    assert [i["system"].rsplit("/", 1)[-1] for i in an["identifier"]] == ["cccd", "bhxh", "bhyt", "79001"]
    assert ngoc["birthDate"] == "1948" and ngoc["gender"] == "female"
    assert entry_criteria(mapping.records[0].bundle["entry"][0]) == (  # among this facility's records only
        "identifier=http://fhir.hl7.org.vn/core/sid/cccd|079085001234"
        "&_tag=https://fhir.hub.hcmc.vn/CodeSystem/source-facility|79001")
    for resource in resources(mapping):
        validate_resource(resource)


def test_broken_rows_are_rejected_alone_naming_file_and_column() -> None:
    mapping = sample("patients.csv")
    assert {(p.record, p.field) for p in mapping.rejected} == {
        ("patients.csv line 5", "patients.csv:Họ và tên"), ("patients.csv line 6", "patients.csv:Ngày sinh")}
    assert "31" in next(p.message for p in mapping.rejected if p.record.endswith("6"))
    warned = {(p.record, p.field) for p in mapping.warnings}
    assert ("patients.csv line 4", "patients.csv:Điện thoại") in warned  # kept, with a warning
    assert ("patients.csv line 4", "patients.csv:Số CCCD") in warned  # CCCD says female
    assert ("patients.csv line 7", "patients.csv:Mã thẻ BHYT") in warned
    visits = sample("luot_kham.csv")
    assert {(p.record, p.field) for p in visits.rejected} == {
        ("luot_kham.csv line 4", "luot_kham.csv:ma_benh_nhan"), ("luot_kham.csv line 5", "luot_kham.csv:ngay_kham")}
    diagnoses = sample("chan_doan.csv")
    assert {(p.record, p.field) for p in diagnoses.rejected} == {("chan_doan.csv line 5", "chan_doan.csv:ma_benh")}
    vitals = sample("sinh_hieu.csv")
    assert rejected_lines(vitals) == {"sinh_hieu.csv line 4", "sinh_hieu.csv line 5"}
    assert ("sinh_hieu.csv line 4", "sinh_hieu.csv:Mạch (lần/phút)") in {(p.record, p.field) for p in vitals.rejected}


def test_headers_without_diacritics_or_in_capitals_map_the_same() -> None:
    text = (SAMPLES / "patients.csv").read_text(encoding="utf-8")
    header, body = text.split("\n", 1)
    plain = "ma_benh_nhan,ho_ten,ngay_sinh,gioi_tinh,so_cccd,ma_the_bhyt,dien_thoai,dia_chi,ma_cskcb"
    expected = [{k: v for k, v in r.items() if k != "meta"} for r in resources(sample("patients.csv"))]
    for new_header in (plain, plain.upper(), "MÃ BỆNH NHÂN,HỌ TÊN,Ngày Sinh,giới tính,SỐ CCCD,Mã thẻ BHYT,"
                                              "Điện thoại,Địa chỉ,Mã CSKCB"):
        mapping = HUB.map(f"{new_header}\n{body}".encode(), CLINIC, filename="benh_nhan.csv")
        assert [{k: v for k, v in r.items() if k != "meta"} for r in resources(mapping)] == expected


def test_visits_diagnoses_immunizations() -> None:
    visits = sample("luot_kham.csv")  # ';' delimited, with a UTF-8 BOM
    first, inpatient = resources(visits)
    assert first["period"] == {"start": "2024-05-20T08:30:00+07:00", "end": "2024-05-20T09:00:00+07:00"}
    assert first["subject"]["reference"] == "Patient?identifier=https://fhir.hub.hcmc.vn/sid/ma-bn/79001|BN001"
    assert first["identifier"][0]["value"] == "LK001" and inpatient["class"]["code"] == "IMP"
    conditions = resources(sample("chan_doan.csv"))
    assert [c["code"]["coding"][0]["code"] for c in conditions] == ["J06.9", "I10", "E11"]
    assert [c["identifier"][0]["value"] for c in conditions] == [
        "LK001/condition/J06.9", "LK002/condition/I10", "BN001/condition/E11"]
    assert "encounter" not in conditions[2]
    shots = resources(sample("tiem_chung.csv"))  # tab delimited
    assert shots[0]["occurrenceDateTime"] == "2023-10-01" and shots[0]["lotNumber"] == "LOT-A1"
    assert shots[0]["identifier"][0]["value"] == "BN001/immunization/140/2023-10-01"
    assert shots[1]["vaccineCode"] == {"text": "Vắc xin phế cầu"} and shots[1]["occurrenceDateTime"] == "2023-10"
    for resource in resources(sample("chan_doan.csv")) + shots + resources(visits):
        validate_resource(resource)


def test_vital_signs_become_loinc_observations() -> None:
    mapping = sample("sinh_hieu.csv")
    first = [e["resource"] for e in mapping.records[0].bundle["entry"]]
    by_code = {o["code"]["coding"][0]["code"]: o for o in first}
    assert set(by_code) == {"8867-4", "85354-9", "8310-5", "29463-7", "8302-2", "59408-5"}
    assert by_code["8310-5"]["valueQuantity"] == {"value": 37.5, "unit": "Cel", "system": "http://unitsofmeasure.org",
                                                  "code": "Cel"}
    panel = by_code["85354-9"]
    assert [(c["code"]["coding"][0]["code"], c["valueQuantity"]["value"], c["valueQuantity"]["unit"])
            for c in panel["component"]] == [("8480-6", 120, "mm[Hg]"), ("8462-4", 80, "mm[Hg]")]
    assert "valueQuantity" not in panel
    for obs in resources(mapping):
        validate_resource(obs)
        assert obs["category"][0]["coding"][0]["code"] == "vital-signs"
        assert obs["effectiveDateTime"].startswith("2024-05-2")


def test_a_row_without_facility_is_rejected_when_nothing_names_one() -> None:
    mapping = sample("sinh_hieu.csv", Source("csv"))
    assert mapping.records == []
    assert all("facility" in p.message for p in mapping.rejected if "Mạch" not in (p.field or ""))


def test_mapping_twice_gives_identical_match_identifiers() -> None:
    for name in ("patients.csv", "luot_kham.csv", "chan_doan.csv", "tiem_chung.csv", "sinh_hieu.csv"):
        assert if_none_exist(sample(name)) == if_none_exist(sample(name))


def test_a_file_matching_no_table_is_one_rejection_naming_the_missing_columns() -> None:
    mapping = HUB.map(b"foo,bar\n1,2\n", CLINIC, filename="export.csv")
    assert len(mapping.rejected) == 1 and mapping.records == []
    assert "needs the columns" in mapping.rejected[0].message
    named = HUB.map(b"ma_benh_nhan,ho_ten\n1,2\n", CLINIC, filename="patients.csv")
    assert "birth_date" in named.rejected[0].message


def test_table_hint_and_header_detection() -> None:
    body = b"ma_benh_nhan,ma_luot_kham,ma_benh\nBN001,LK001,J06.9\n"
    assert len(HUB.map(body, CLINIC, filename="export.csv").records) == 1  # recognised by its header
    assert len(HUB.map(body, CLINIC, table="diagnoses").records) == 1
    assert HUB.map(body, CLINIC, table="nope").rejected[0].message.startswith("hub-csv v1 has no table")
    assert HUB.detect(body) and HUB.detect(b"whatever", "x.CSV")
    assert not HUB.detect(b'{"resourceType": "Patient"}') and not HUB.detect(b"MSH|^~\\&|A|B")


def test_encodings_and_delimiters() -> None:
    text = "ma_benh_nhan;ho_ten;ngay_sinh\r\nBN9;Lê Văn Tám;1950\r\n"
    for payload in (text.encode("utf-8-sig"), text.encode("cp1258"), text.encode("utf-16"),
                    text.replace(";", "\t").encode(), text.replace(";", ",").encode()):
        mapping = HUB.map(payload, CLINIC, filename="patients.csv")
        assert mapping.rejected == [], payload[:20]
        assert resources(mapping)[0]["name"][0]["text"] == "Lê Văn Tám"


def test_ingest_order_puts_patients_first() -> None:
    names = ["sinh_hieu.csv", "chan_doan.csv", "luot_kham.csv", "notes.csv", "patients.csv"]
    assert ingest_order(names) == ["patients.csv", "luot_kham.csv", "chan_doan.csv", "sinh_hieu.csv", "notes.csv"]
    ordered = ingest_order(sorted(SYNTHEA.glob("*.csv")))
    assert [p.name for p in ordered[:2]] == ["patients.csv", "encounters.csv"]


# ---------------------------------------------------------------------------------------- mapping files
MINIMAL = """
layout = "clinic-x"
version = 1
[tables.people]
resource = "Patient"
[tables.people.columns.id]
transform = "identifier"
system = "ma-bn"
required = true
[tables.people.columns.name]
transform = "{transform}"
element = "{element}"
"""


def test_a_clinic_mapping_is_just_a_toml_file() -> None:
    mapping = parse_mapping(MINIMAL.format(transform="name_family_first", element="name[0]"))
    adapter = CsvAdapter(mapping)
    out = adapter.map("ID,Name\nA1,Đặng Thị Mỹ\n".encode(), CLINIC, filename="people.csv")
    assert resources(out)[0]["name"][0]["family"] == "Đặng"


def test_unknown_transform_is_a_clear_error() -> None:
    with pytest.raises(MappingError) as err:
        parse_mapping(MINIMAL.format(transform="nam_first", element="name[0]"), origin="clinic-x.toml")
    assert re.match(r"clinic-x\.toml:11: tables\.people\.columns\.name\.transform: unknown transform 'nam_first'",
                    str(err.value))


def test_unknown_element_is_a_clear_error() -> None:
    with pytest.raises(MappingError) as err:
        parse_mapping(MINIMAL.format(transform="text", element="nickname"), origin="clinic-x.toml")
    assert "tables.people.columns.name" in str(err.value) and "nickname" in str(err.value)
    with pytest.raises(MappingError, match="unknown key"):
        parse_mapping(MINIMAL.format(transform="text", element="gender") + 'aliasses = ["x"]\n')
    with pytest.raises(MappingError, match="unknown code system"):
        parse_mapping(MINIMAL.format(transform="code", element="maritalStatus") + 'system = "snowmed"\n')


def test_bundled_mappings_load() -> None:
    assert load_mapping("hub-csv-v1").label == "hub-csv v1"
    assert set(load_mapping("synthea").tables) == set(SYNTHEA_MAPPED)


# ------------------------------------------------------------------------------------------- hypothesis
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.binary(max_size=400))
def test_random_bytes_never_raise(payload: bytes) -> None:
    assert isinstance(HUB.map(payload, CLINIC), Mapping)
    assert isinstance(HUB.detect(payload), bool)


@FAST
@given(st.lists(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12),
                         min_size=1, max_size=6), min_size=1, max_size=6),
       st.sampled_from([",", ";", "\t"]),
       st.sampled_from(["patients.csv", "luot_kham.csv", "sinh_hieu.csv", "x.csv", None]))
def test_random_csv_never_raises(rows: list[list[str]], delimiter: str, filename: str | None) -> None:
    header = "ma_benh_nhan,ho_ten,ngay_sinh,ma_luot_kham,ngay_kham,mach,huyet_ap".replace(",", delimiter)
    text = header + "\n" + "\n".join(delimiter.join(r) for r in rows)
    mapping = HUB.map(text.encode(), CLINIC, filename=filename)
    assert not any(p.message.startswith("the CSV adapter failed") for p in mapping.rejected)
    for resource in resources(mapping):
        validate_resource(resource)


SYLLABLES = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Võ", "Đặng", "Bùi", "Đỗ", "Văn", "Thị", "Thành",
             "Hữu", "Ngọc", "Minh", "Đức", "Hương", "Quỳnh", "Tường", "Ánh", "Yến", "Khoa", "Lộc"]
FORMATS = {"yyyy-mm-dd": ("{y:04d}-{m:02d}-{d:02d}", 10), "dd/mm/yyyy": ("{d:02d}/{m:02d}/{y:04d}", 10),
           "d/m/yyyy": ("{d}/{m}/{y:04d}", 10), "dd-mm-yyyy": ("{d:02d}-{m:02d}-{y:04d}", 10),
           "dd.mm.yyyy": ("{d:02d}.{m:02d}.{y:04d}", 10), "yyyy-mm": ("{y:04d}-{m:02d}", 7),
           "mm/yyyy": ("{m:02d}/{y:04d}", 7), "yyyy": ("{y:04d}", 4)}


@FAST
@given(st.lists(st.sampled_from(SYLLABLES), min_size=1, max_size=5), st.booleans(),
       st.dates(min_value=date(1900, 1, 1), max_value=date(2024, 12, 31)), st.sampled_from(sorted(FORMATS)))
def test_generated_rows_split_names_and_keep_date_precision(words: list[str], decomposed: bool, day: date,
                                                            fmt: str) -> None:
    full = " ".join(words)
    typed = unicodedata.normalize("NFD", full) if decomposed else full  # some keyboards send combining marks
    template, precision = FORMATS[fmt]
    raw = template.format(y=day.year, m=day.month, d=day.day)
    payload = f'ma_benh_nhan,ho_ten,ngay_sinh\nBN1,"  {typed} ",{raw}\n'.encode()
    mapping = HUB.map(payload, CLINIC, filename="patients.csv")
    assert mapping.rejected == []
    patient = resources(mapping)[0]
    name = patient["name"][0]
    assert name["family"] == words[0] and name.get("given", []) == words[1:] and name["text"] == full
    assert patient["birthDate"] == day.isoformat()[:precision]


def test_fold_matches_header_spellings() -> None:
    assert fold("Họ và Tên") == fold("ho_va_ten") == fold("HO VA TEN") == "ho_va_ten"
    assert fold("Mạch (lần/phút)") == "mach" and fold("Điện thoại") == "dien_thoai"


# ----------------------------------------------------------------------------------------- stray quotes
PATIENTS_HEADER = "ma_benh_nhan,ho_ten,ngay_sinh"
NAMES = ("Nguyễn Văn An", "Trần Thị Bình", "Lê Văn Cường", "Phạm Thị Dung", "Hoàng Văn Em", "Võ Thị Phương",
         "Đặng Văn Giang", "Bùi Thị Hoa")


def patients_file(changed: dict[int, str]) -> bytes:
    """Eight patient rows (row n on line n + 1), some replaced by ``changed[n]``."""
    rows = [changed.get(n, f"BN{n},{name},1990") for n, name in enumerate(NAMES, start=1)]
    return "\n".join([PATIENTS_HEADER, *rows, ""]).encode()


@pytest.mark.parametrize(("changed", "broken"), [
    ({5: 'BN5,"Hoàng Văn Em,1990'}, {6}),
    ({5: 'BN5,"Hoàng Văn Em,1990', 7: 'BN7,"Đặng, Văn Giang",1990'}, {6}),
    ({5: 'BN5,"Hoàng Văn Em,1990', 8: 'BN8,Bùi Thị Hoa",1990'}, {6, 9}),
    ({5: 'BN5,"Hoàng" Văn Em,1990'}, {6}),
    ({5: 'BN5,Hoàng "Em" Văn,1990'}, {6}),
    ({5: '"BN5,Hoàng Văn Em,1990', 7: 'BN7,"Đặng Văn Giang\nở Quận 1",1990'}, {6}),
], ids=["never-closed", "closed-by-a-later-quoted-value", "closed-by-a-later-stray-quote", "text-after-the-quote",
        "inside-an-unquoted-value", "with-a-real-multi-line-value"])
def test_a_stray_quote_costs_its_own_row_not_the_rest_of_the_file(changed: dict[int, str], broken: set[int]) -> None:
    mapping = HUB.map(patients_file(changed), CLINIC, filename="patients.csv")
    assert rejected_lines(mapping) == {f"patients.csv line {n}" for n in broken}
    assert all("quote" in p.message and p.field == "patients.csv" for p in mapping.rejected), mapping.rejected
    assert len(mapping.records) == len(NAMES) - len(broken)
    by_number = {p["identifier"][-1]["value"]: p["name"][0]["text"] for p in resources(mapping)}
    assert by_number["BN6"] == "Võ Thị Phương" and by_number["BN4"] == "Phạm Thị Dung"
    if "\n" in changed.get(7, ""):  # a value that really spans lines is one value: its row is kept whole
        assert "Quận 1" in by_number["BN7"]


def test_a_stray_quote_in_the_header_rejects_the_file_naming_line_1() -> None:
    payload = patients_file({}).replace(b"ma_benh_nhan,ho_ten", b'ma_benh_nhan,"ho_ten', 1)
    mapping = HUB.map(payload, CLINIC, filename="patients.csv")
    assert mapping.records == []
    (problem,) = mapping.rejected
    assert problem.record == "patients.csv" and "line 1" in problem.message and "quote" in problem.message


def render_cell(value: str, delimiter: str) -> str:
    """A value as a spreadsheet writes it: quoted, inner quotes doubled, when it holds a delimiter, quote or
    line break."""
    if any(c in value for c in (delimiter, '"', "\n")):
        return '"' + value.replace('"', '""') + '"'
    return value


WORD = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="\x85"),
               min_size=1, max_size=6)
VALUE = st.just("") | st.builds(lambda first, rest: first + "".join(sep + word for sep, word in rest), WORD,
                                st.lists(st.tuples(st.sampled_from([" ", ", ", "; ", "\t", "\n"]), WORD), max_size=2))


@FAST
@given(st.integers(2, 5).flatmap(lambda width: st.lists(st.lists(VALUE, min_size=width - 1, max_size=width - 1),
                                                        min_size=1, max_size=8)),
       st.sampled_from([",", ";", "\t"]), st.randoms(use_true_random=False))
def test_a_stray_quote_anywhere_costs_at_most_its_own_row(cells: list[list[str]], delimiter: str, rng: Any) -> None:
    """Values may hold quotes, delimiters and line breaks (quoted as a spreadsheet does), except that the row
    given the stray quote is on one line: where a broken row that spans lines ends cannot be known, so its
    other lines are read (and rejected) as rows of their own."""
    target = rng.randrange(len(cells))
    rows = [[f"R{i}", *(v.replace("\n", " ") if delimiter in v or i == target else v for v in values)]
            for i, values in enumerate(cells)]
    lines = [[render_cell(v, delimiter) for v in row] for row in rows]
    starts = [2 + i + sum(v.count("\n") for row in rows[:i] for v in row) for i in range(len(rows))]
    column = rng.randrange(len(rows[0]))
    cell = lines[target][column]
    at = rng.choice([0, len(cell), rng.randrange(len(cell) + 1)])
    lines[target][column] = cell[:at] + '"' + cell[at:]
    header = [f"c{i}" for i in range(len(rows[0]))]
    text = "\n".join([delimiter.join(header), *(delimiter.join(line) for line in lines)]) + rng.choice(["", "\n"])
    table = read_table(text)
    assert table.header == header
    assert [r.line for r in table.rows] == starts  # every data row accounted for: read, or rejected on its line
    for row, expected, line in zip(table.rows, rows, starts, strict=True):
        if line != starts[target]:
            assert row.problem is None and row.values == expected, (row, expected)
        elif row.problem is not None:
            assert "quote" in row.problem
