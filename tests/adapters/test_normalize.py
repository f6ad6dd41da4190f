"""The normalisers every adapter shares: names, Vietnamese identifiers, phones, partial dates, Bundles."""

from __future__ import annotations

import unicodedata
from datetime import date
from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.base import Source
from adapters.normalize import (
    BHXH,
    BHYT,
    CCCD,
    FACILITY,
    FACILITY_TAGS,
    RecordBundle,
    canonical_system,
    conditional_reference,
    entry_criteria,
    insurance_card_problems,
    moh_date,
    moh_datetime,
    nfc,
    patient_identifiers,
    person_name,
    personal_id_problems,
    phone,
    social_insurance_number,
)
from fhir_hub.bundles.references import conditional_reference as parse_conditional
from fhir_hub.search.query import split_or, split_token  # the hub's own reading of a search value

SYLLABLES = st.sampled_from(["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Võ", "Đặng", "Bùi", "Văn", "Thị",
                             "Minh", "Thu", "Ngọc", "Anh", "Hùng", "Lan", "Đức", "Phương", "Ánh", "Quỳnh"])


@given(st.lists(SYLLABLES, min_size=1, max_size=5), st.sampled_from(["NFC", "NFD"]), st.sampled_from([" ", "  ", "\t"]))
def test_names_are_nfc_family_first_whatever_the_input_form(parts: list[str], form: str, gap: str) -> None:
    text = gap.join(unicodedata.normalize(form, p) for p in parts)
    name = person_name(f" {text} ")
    assert name is not None
    assert name["family"] == parts[0]
    assert name.get("given", []) == parts[1:]
    assert name["text"] == " ".join(parts) == unicodedata.normalize("NFC", name["text"])


def test_an_empty_name_is_none() -> None:
    assert person_name(" \t ") is None and nfc("  a  b ") == "a b"


PERSONAL_ID = st.builds(lambda province, code, year, rest: f"{province:03d}{code}{year:02d}{rest:06d}",
                        st.integers(1, 96), st.integers(0, 5), st.integers(0, 99), st.integers(0, 999_999))


@given(PERSONAL_ID)
def test_a_personal_id_agrees_with_the_birth_year_and_gender_it_encodes(cccd: str) -> None:
    century = 1900 + 100 * (int(cccd[3]) // 2)
    year = century + int(cccd[4:6])
    gender = "male" if int(cccd[3]) % 2 == 0 else "female"
    assert personal_id_problems(cccd, birth_year=year, gender=gender) == []
    other = "female" if gender == "male" else "male"
    assert any("gender" in p for p in personal_id_problems(cccd, birth_year=year, gender=other))
    assert any("birth year" in p for p in personal_id_problems(cccd, birth_year=year + 1, gender=gender))


@pytest.mark.parametrize("cccd", ["07919000000", "0791900000012", "07919000000a", "000190000001", "097190000001"])
def test_malformed_personal_ids_are_reported(cccd: str) -> None:
    assert personal_id_problems(cccd, birth_year=None, gender=None)


def test_insurance_cards_and_their_social_insurance_number() -> None:
    assert insurance_card_problems("DN4797915000001") == []
    assert insurance_card_problems("079190000001") == []  # the personal ID stands in for the card since 2025
    assert insurance_card_problems("DN6797915000001") and insurance_card_problems("D4797915000001")
    assert social_insurance_number("DN4797915000001") == "7915000001"
    ids = patient_identifiers(cccd="079190000001", bhyt="DN4797915000001;HT3797915000001", facility="79001",
                              local_id="BN1")
    assert [i["system"] for i in ids][:3] == [CCCD, BHXH, BHYT]
    assert sum(1 for i in ids if i["system"] == BHXH) == 1  # the two cards share one social insurance number


@given(st.sampled_from(["0", "+84", "84", "0084"]), st.sampled_from(["3", "5", "7", "8", "9"]),
       st.integers(10_000_000, 99_999_999), st.sampled_from(["", " ", ".", "-"]))
def test_phone_numbers_become_e164(prefix: str, network: str, number: int, separator: str) -> None:
    digits = f"{network}{number}"
    raw = prefix + separator.join([digits[:2], digits[2:5], digits[5:]])
    assert phone(raw) == f"+84{digits}"


@pytest.mark.parametrize("raw", ["12345", "+1 415 555 0100", "090312345678901", "không có"])
def test_what_is_not_a_vietnamese_phone_is_none(raw: str) -> None:
    assert phone(raw) is None


@given(st.dates(date(1900, 1, 1), date(2030, 12, 31)), st.sampled_from(["day", "month", "year"]))
def test_moh_dates_keep_their_precision(day: date, precision: str) -> None:
    raw = {"day": day.strftime("%Y%m%d"), "month": day.strftime("%Y%m") + "00", "year": day.strftime("%Y") + "0000"}
    expected = {"day": day.isoformat(), "month": day.isoformat()[:7], "year": day.isoformat()[:4]}
    assert moh_date(raw[precision]) == expected[precision]
    assert moh_date(raw[precision] + "0000") == expected[precision]


@pytest.mark.parametrize("raw", ["20240231", "20241301", "19000015", "abcdefgh", "17991231", "202401011261", "2024013"])
def test_impossible_moh_dates_raise(raw: str) -> None:
    with pytest.raises(ValueError):
        moh_datetime(raw)


def test_moh_times_are_vietnam_time() -> None:
    assert moh_datetime("202401151030") == "2024-01-15T10:30:00+07:00"


@pytest.mark.parametrize(("sent", "canonical"), [("CCCD", CCCD), ("urn:vn:bhyt", BHYT), ("http://x.org/other",
                                                                                        "http://x.org/other")])
def test_identifier_systems_become_canonical(sent: str, canonical: str) -> None:
    assert canonical_system(sent) == canonical


@given(st.text(min_size=1, max_size=20).filter(lambda v: v.strip() == v and "\x00" not in v))
def test_conditional_references_survive_any_identifier_value(value: str) -> None:
    reference = conditional_reference("Patient", {"system": "urn:s", "value": value})
    parsed = parse_conditional(reference)
    assert parsed is not None and parsed[0] == "Patient"
    (name, criteria), = parse_qsl(parsed[1], keep_blank_values=True)
    assert name == "identifier"
    assert len(split_or(criteria)) == 1  # a comma in the value does not become an OR
    assert split_token(criteria) == ("urn:s", value)


def test_a_record_bundle_creates_each_identifier_once() -> None:
    bundle = RecordBundle(Source("csv"), "79001")
    first = bundle.add({"resourceType": "Patient"}, {"system": CCCD, "value": "079190000001"})
    again = bundle.add({"resourceType": "Patient"}, {"system": CCCD, "value": "079190000001"})
    assert first == again
    built = bundle.bundle()
    assert len(built["entry"]) == 1 and built["type"] == "transaction"
    entry = built["entry"][0]
    # a Patient is found again among its facility's records only: each facility keeps its own (issue 16)
    assert entry_criteria(entry) == f"identifier={CCCD}|079190000001&_tag={FACILITY_TAGS}|79001"
    organization = RecordBundle(Source("csv"), "79001")
    organization.add({"resourceType": "Organization"}, {"system": FACILITY, "value": "79001"})
    assert entry_criteria(organization.bundle()["entry"][0]) == f"identifier={FACILITY}|79001"  # shared by all
    assert {t["code"] for t in entry["resource"]["meta"]["tag"]} == {"csv", "79001"}
