"""The matching engine, rule by rule: folding, what ``features`` reads, the deterministic identifier rules, each
Vietnamese specific of issue 16, blocking recall under each kind of noise, and the properties that must hold
for any input (symmetry, no exception on odd JSON, idempotent folding).

The accuracy over a whole synthetic population is ``test_accuracy.py``'s job; here each rule is pinned on the
smallest pair of records that shows it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.normalize import BHXH, BHYT, CCCD, facility_system
from fhir_hub.matching import Comparison, MatchRecord, Model, block_keys, compare, features, fold
from fhir_hub.matching.model import MODEL_FILE
from fhir_hub.matching.record import WARD_CODE, national_phone

MODEL = Model.default()


def patient(name: str | None = "Nguyễn Văn An", *, birth: str | None = "1985-03-07", gender: str | None = "male",
            phone: str | None = None, ward: str | None = "Phường Bến Thành", code: str | None = None,
            street: str | None = "12 Lê Lợi", ids: list[tuple[str, str]] | None = None,
            family: str | None = None, given_names: list[str] | None = None) -> dict[str, Any]:
    """A Patient as the hub stores it; ``name`` is split the way adapters/normalize.py splits it."""
    resource: dict[str, Any] = {"resourceType": "Patient", "identifier": [
        {"system": s, "value": v} for s, v in ids or []]}
    if family is not None or given_names is not None:
        resource["name"] = [{"family": family, "given": given_names}]
    elif name is not None:
        first, *rest = name.split()
        resource["name"] = [{"text": name, "family": first, "given": rest}]
    if birth is not None:
        resource["birthDate"] = birth
    if gender is not None:
        resource["gender"] = gender
    if phone is not None:
        resource["telecom"] = [{"system": "phone", "value": phone}]
    if ward is not None or street is not None:
        address: dict[str, Any] = {"line": [x for x in (street, ward) if x], "city": "Thành phố Hồ Chí Minh"}
        if code:
            address["extension"] = [{"url": WARD_CODE, "valueString": code}]
        resource["address"] = [address]
    return resource


def pair(a: dict[str, Any], b: dict[str, Any]) -> Comparison:
    result = compare(features(a, "Patient/a"), features(b, "Patient/b"))
    again = compare(features(b, "Patient/b"), features(a, "Patient/a"))
    assert (result.score, result.decision, result.grade, result.rule) == (
        again.score, again.decision, again.grade, again.rule)
    return result


def levels(comparison: Comparison) -> str:
    return "; ".join(comparison.reasons)


# -------------------------------------------------------------------------------------------- folding
@pytest.mark.parametrize(("raw", "folded"), [
    ("Nguyễn Văn Đức", "nguyen van duc"),
    ("NGUYỄN THỊ ĐÀO", "nguyen thi dao"),
    ("Nguye\u0302\u0303n", "nguyen"),  # combining marks (NFD), as a Mac sends them
    ("  Huỳnh   Thị-Mỹ ", "huynh thi my"),
    ("Đặng", "dang"),
])
def test_folding_drops_marks_and_folds_d(raw: str, folded: str) -> None:
    assert fold(raw) == folded


@given(st.text())
def test_folding_is_idempotent(text: str) -> None:
    once = fold(text)
    assert fold(once) == once


# ------------------------------------------------------------------------------------------- features
def test_features_reads_what_matching_needs() -> None:
    record = features(patient(phone="+84903123456", code="26734", ids=[
        (CCCD, "079085001234"), (BHYT, "DN4791234567890"), (BHXH, "9876543210"),
        (facility_system("ma-bn", "79001"), "BN 17")]), "Patient/1")
    assert (record.key, record.family, record.middle, record.given) == ("Patient/1", "nguyen", ("van",), "an")
    assert (record.birth_year, record.birth_month, record.birth_day, record.gender) == (1985, 3, 7, "male")
    assert (record.ward, record.ward_name, record.phone) == ("26734", "ben thanh", "0903123456")
    assert record.address == ("12", "le", "loi")
    assert record.cccd == "079085001234" and record.cccd_problems == ()
    assert record.bhxh == {"1234567890", "9876543210"}  # the card's last 10 characters, and the bare number
    assert record.local_ids == {"79001|BN17"}


@pytest.mark.parametrize("name", [
    {"family": "Nguyễn", "given": ["Văn", "An"]},
    {"family": "Nguyễn Văn", "given": ["An"]},  # "Họ và tên đệm" / "Tên" forms
    {"text": "NGUYEN VAN AN"},
    {"family": "Nguyen", "given": ["Van An"]},
])
def test_the_given_name_is_the_last_word_whatever_the_fields(name: dict[str, Any]) -> None:
    record = features({"name": [name]})
    assert (record.family, record.middle, record.given) == ("nguyen", ("van",), "an")


@pytest.mark.parametrize(("raw", "national"), [
    ("+84903123456", "0903123456"), ("0903 123 456", "0903123456"), ("84903123456", "0903123456"),
    ("903123456", "0903123456"),  # a spreadsheet dropped the leading zero
    ("01689123456", "0389123456"), ("0168 912 3456", "0389123456"),  # renumbered in 2018
    ("+1 202 555 0100", None), ("", None),
])
def test_phone_numbers_in_national_form(raw: str, national: str | None) -> None:
    assert national_phone(raw) == national


@pytest.mark.parametrize(("birth", "parts"), [
    ("1985-03-07", (1985, 3, 7)), ("1985-03", (1985, 3, None)), ("1985", (1985, None, None)),
    ("1985-03-07T10:00:00+07:00", (1985, 3, 7)), ("85", (None, None, None)), ("1985-13-01", (1985, None, None)),
])
def test_partial_birth_dates(birth: str, parts: tuple[int | None, ...]) -> None:
    record = features(patient(birth=birth))
    assert (record.birth_year, record.birth_month, record.birth_day) == parts


def test_an_abbreviated_ward_name_is_the_same_ward() -> None:
    assert features(patient(ward="P. Bến Thành")).ward_name == features(patient(ward="Phuong Ben Thanh")).ward_name


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                   max_size=4), max_leaves=20)
_patient_shaped = st.fixed_dictionaries({}, optional={
    key: _json | st.lists(st.dictionaries(st.sampled_from(["family", "given", "text", "system", "value", "line",
                                                            "extension", "url", "valueString"]), _json))
    for key in ("id", "name", "birthDate", "gender", "telecom", "address", "identifier")})


@settings(max_examples=300)
@given(_patient_shaped | _json)
def test_features_never_raises_on_odd_json(resource: Any) -> None:
    record = features(resource)
    assert isinstance(record, MatchRecord)
    block_keys(record)
    compare(record, record)


# ----------------------------------------------------------------------------------- deterministic rules
def test_the_same_personal_id_links_for_certain() -> None:
    result = pair(patient(ids=[(CCCD, "079085001234")]),
                  patient("Trần Thị Bình", birth="1985", street=None, ward=None, ids=[(CCCD, "079085001234")]))
    assert (result.decision, result.grade, result.rule) == ("link", "certain", "cccd")


def test_two_personal_ids_never_link_whatever_the_score() -> None:
    same = patient(phone="0903123456", code="26734")
    result = pair({**same, "identifier": [{"system": CCCD, "value": "079085001234"}]},
                  {**same, "identifier": [{"system": CCCD, "value": "079085001235"}]})
    assert result.score > MODEL.certain
    assert (result.decision, result.rule) == ("apart", "cccd")


@pytest.mark.parametrize(("cccd", "birth", "gender", "consistent"), [
    ("079085001234", "1985-03-07", "male", True),     # 0: 1900s, male
    ("079185001234", "1985-03-07", "female", True),   # 1: 1900s, female
    ("079205001234", "2005-03-07", "male", True),     # 2: 2000s, male
    ("079305001234", "2005-03-07", "female", True),   # 3: 2000s, female
    ("079085001234", "1986-03-07", "male", False),    # the year disagrees
    ("079085001234", "1985-03-07", "female", False),  # the gender disagrees
    ("079285001234", "1985-03-07", "male", False),    # the century disagrees (2085)
    ("079105001234", "2005-03-07", "female", False),  # 1905, not 2005
])
def test_a_personal_id_that_disagrees_with_the_record_is_not_trusted_alone(
        cccd: str, birth: str, gender: str, consistent: bool) -> None:
    record = patient(birth=birth, gender=gender, ids=[(CCCD, cccd)])
    result = pair(record, {**record, "name": [{"text": "Lê Văn Bình"}]})
    if consistent:
        assert (result.decision, result.rule) == ("link", "cccd")
    else:
        assert (result.decision, result.grade, result.rule) == ("review", "possible", "cccd-conflict")
        assert any("encodes" in reason for reason in result.reasons)


def test_a_renewed_card_of_another_category_still_links_on_the_social_insurance_number() -> None:
    result = pair(patient(ids=[(BHYT, "DN4791234567890")]),
                  patient("NGUYEN VAN AN", birth="1985", ward=None, ids=[(BHYT, "HT3741234567890")]))
    assert (result.decision, result.grade, result.rule) == ("link", "certain", "bhxh")
    bare = pair(patient(ids=[(BHXH, "1234567890")]), patient(ids=[(BHYT, "GD4791234567890")]))
    assert (bare.decision, bare.rule) == ("link", "bhxh")


def test_a_shared_card_whose_holders_disagree_goes_to_review() -> None:
    """A relative's card (or a mistyped number) must not merge two people silently."""
    result = pair(patient(ids=[(BHYT, "DN4791234567890")]),
                  patient("Trần Thị Mai", birth="1950-11-02", gender="female", ward="Xã Bình Chánh", street="9 Ba Cu",
                          ids=[(BHYT, "HT3791234567890")]))
    assert (result.decision, result.rule) == ("review", "bhxh")


def test_the_same_patient_number_links_only_at_the_same_facility() -> None:
    at = facility_system("ma-bn", "79001")
    elsewhere = facility_system("ma-bn", "79002")
    other = patient("Nguyen Van An", birth="1985", street=None, ward=None)
    same = pair(patient(ids=[(at, "BN0001")]), {**other, "identifier": [{"system": at, "value": "BN0001"}]})
    assert (same.decision, same.rule) == ("link", "ma-bn")
    assert pair(patient(ids=[(at, "BN0001")]),
                {**other, "identifier": [{"system": elsewhere, "value": "BN0001"}]}).rule == "probabilistic"


# --------------------------------------------------------------------------------- Vietnamese specifics
BASE = {"phone": "0903123456", "code": "26734"}


def test_diacritics_and_capitals_do_not_matter() -> None:
    result = pair(patient("Đặng Thị Ngọc Ánh", gender="female", **BASE),
                  patient("DANG THI NGOC ANH", gender="female", **BASE))
    assert result.decision == "link" and "family name: exact" in levels(result)


def test_middle_and_given_names_swapped() -> None:
    result = pair(patient("Nguyễn Văn Khải", **BASE), patient("Nguyễn Khải Văn", **BASE))
    assert result.decision == "link" and "given name: swap" in levels(result)


def test_swapped_with_the_middle_name_missing_is_reviewed() -> None:
    """As likely a twin named after the other's middle name: "Nguyễn Minh Thành" and his brother "Nguyễn Minh"."""
    result = pair(patient("Nguyễn Kiệt Văn", **BASE), patient("Nguyễn Kiệt", **BASE))
    assert result.decision == "review" and "given name: partial swap" in levels(result)


def test_a_missing_middle_name_is_no_disagreement() -> None:
    result = pair(patient("Nguyễn Văn Khải", **BASE), patient("Nguyễn Khải", **BASE))
    assert result.decision == "link" and "middle name" not in levels(result)


def test_the_same_words_in_another_order() -> None:
    result = pair(patient(family="Khải", given_names=["Nguyễn", "Văn"], **BASE), patient("Nguyễn Văn Khải", **BASE))
    assert result.decision == "link" and "another order" in levels(result)


@pytest.mark.parametrize(("north", "south"), [("Hoàng", "Huỳnh"), ("Vũ", "Võ")])
def test_regional_spellings_of_one_surname_agree_partly(north: str, south: str) -> None:
    exact = pair(patient(f"{north} Văn Khải", **BASE), patient(f"{north} Văn Khải", **BASE))
    variant = pair(patient(f"{north} Văn Khải", **BASE), patient(f"{south} Văn Khải", **BASE))
    unrelated = pair(patient(f"{north} Văn Khải", **BASE), patient("Trần Văn Khải", **BASE))
    assert "family name: variant" in levels(variant)
    assert unrelated.score < variant.score < exact.score
    assert block_keys(features(patient(f"{north} Văn Khải"))) & block_keys(features(patient(f"{south} Văn Khải")))


def test_agreeing_on_nguyen_is_weak_evidence_and_on_a_rare_name_strong() -> None:
    common = MODEL.family.agree("nguyen")
    rare = MODEL.family.agree("khong")
    unseen = MODEL.family.agree("zzz")
    assert common < 2 and rare > 9 and unseen > 9  # 38% of people against 1 in 2,000 or fewer
    assert MODEL.given.agree("anh") < MODEL.given.agree("khai")
    nguyen = pair(patient("Nguyễn Văn Khải", street=None), patient("Nguyễn Văn Khải", street=None))
    khong = pair(patient("Khổng Văn Khải", street=None), patient("Khổng Văn Khải", street=None))
    assert khong.score - nguyen.score == pytest.approx(rare - common)


def test_a_common_name_and_a_birth_date_alone_do_not_link() -> None:
    """Thousands of people are called Nguyễn Văn Hùng: two of them share a birth date in any city."""
    alone = pair(patient("Nguyễn Văn Hùng", ward=None, street=None),
                 patient("Nguyễn Văn Hùng", ward=None, street=None))
    assert alone.decision == "review" and alone.score >= MODEL.upper
    assert pair(patient("Nguyễn Văn Hùng"), patient("Nguyễn Văn Hùng")).decision == "link"  # ward and address
    rare = pair(patient("Khổng Minh Khải", ward=None, street=None), patient("Khổng Minh Khải", ward=None, street=None))
    assert rare.decision == "link"
    year_only = pair(patient("Nguyễn Văn Hùng", ward=None, street=None),
                     patient("Nguyễn Văn Hùng", birth="1985", ward=None, street=None))
    assert year_only.decision == "apart"
    elsewhere = pair(patient("Nguyễn Văn Hùng"), patient("Nguyễn Văn Hùng", ward="Xã Bình Chánh", street="9 Ba Cu"))
    assert elsewhere.decision == "apart"  # a namesake is likelier than a move: not worth a reviewer's time


def test_one_ward_and_another_street_is_no_agreement() -> None:
    """A namesake in the same ward lives on another street; a person who moved changed both."""
    result = pair(patient("Nguyễn Văn Hùng", street="12 Lê Lợi"), patient("Nguyễn Văn Hùng", street="9 Ba Cu"))
    assert "ward: elsewhere (+0.0)" in levels(result) and result.decision == "apart"
    assert pair(patient("Nguyễn Văn Hùng"), patient("Nguyễn Văn Hùng", street=None)).decision == "link"


def test_brothers_whose_middle_names_differ_by_a_letter_do_not_link() -> None:
    """Minh Hùng and Minh Dũng, both written given name first: two names, not a slip (as for given names)."""
    result = pair(patient("Thái Hùng Minh", **BASE), patient("Thái Dũng Minh", **BASE))
    assert "middle name: similar" in levels(result) and result.decision != "link"
    assert pair(patient("Thái Hùng Minh", **BASE), patient("Thái Hùngg Minh", **BASE)).decision == "link"


def test_a_rarer_name_and_a_birth_year_alone_go_to_review() -> None:
    result = pair(patient("Khổng Minh Khải"), patient("Khổng Minh Khải", birth="1985", ward="Xã Bình Chánh",
                                                       street="9 Ba Cu"))
    assert result.decision == "review" and result.score >= MODEL.upper


def test_names_english_phonetic_codes_merge_stay_different() -> None:
    """Soundex codes Trang and Trung alike (T652), Hùng and Hằng too (H520): different Vietnamese names."""
    for one, other in (("Trang", "Trung"), ("Hùng", "Hằng")):
        result = pair(patient(f"Lê Thị {one}", **BASE), patient(f"Lê Thị {other}", **BASE))
        assert result.decision != "link", (one, other)


def test_a_typo_in_a_given_name_still_links() -> None:
    result = pair(patient("Nguyễn Văn Khải", **BASE), patient("Nguyễn Văn Khảii", **BASE))
    assert result.decision == "link" and "given name: typo" in levels(result)
    short = pair(patient("Trần Văn Huy", **BASE), patient("Trần Văn Hy", **BASE))  # "Hy" is no name
    assert "given name: typo" in levels(short)


@pytest.mark.parametrize(("other", "level"), [
    ("1985", "year_only"), ("1985-03", "year_only"), ("1985-01-01", "year_only"),  # 01/01: date unknown
    ("1985-07-03", "swap"), ("1985-03-08", "year_month"), ("1986-03-07", "near"), ("1958-03-07", "near"),
    ("1990-03-07", "disagree"),
])
def test_birth_dates_allow_for_partial_and_swapped_dates(other: str, level: str) -> None:
    result = pair(patient(**BASE), patient(birth=other, **BASE))
    assert f"birth date: {level} " in levels(result)
    if level in ("year_only", "swap"):
        assert result.decision == "link"


def test_a_neighbour_on_the_same_street_is_no_address_agreement() -> None:
    home = patient("Nguyễn Văn Khải", street="144/47 Cộng Hòa")
    same = pair(home, patient("Nguyễn Văn Khải", street="144/47 Cong Hoa"))
    neighbour = pair(home, patient("Nguyễn Văn Khải", street="184 Cộng Hòa"))
    unknown = pair(home, patient("Nguyễn Văn Khải", street="Cộng Hòa"))
    assert "address: exact" in levels(same)
    assert "address: disagree" in levels(neighbour)
    assert "address: partial" in levels(unknown)


def test_twins_stay_apart() -> None:
    """Same surname, birth date, phone and address; only the given name differs."""
    result = pair(patient("Trần Minh Khải", **BASE), patient("Trần Minh Khoa", **BASE))
    assert result.decision == "apart"
    alike = pair(patient("Trần Minh Quân", **BASE), patient("Trần Minh Tuấn", **BASE))  # two names, one letter
    assert alike.decision != "link"


def test_parent_and_child_of_one_name_do_not_link() -> None:
    result = pair(patient("Ngô Văn Thịnh", birth="1978-04-18", **BASE),
                  patient("Ngô Thịnh", birth="2011-12-12", **BASE))
    assert result.decision != "link"
    assert any("birth years differ" in reason for reason in result.reasons)


# --------------------------------------------------------------------------------- thresholds and grades
def test_thresholds_are_configurable_and_grade_the_decision() -> None:
    a = features(patient("Nguyễn Văn Khải", **BASE))
    b = features(patient("Nguyễn Văn Khải", birth="1985", **BASE))
    score = compare(a, b).score
    assert compare(a, b, MODEL.with_thresholds(upper=score - 20, lower=score - 30)).grade == "certain"
    assert compare(a, b, MODEL.with_thresholds(upper=score - 1, lower=score - 5)).grade == "probable"
    possible = compare(a, b, MODEL.with_thresholds(upper=score + 1, lower=score - 1))
    assert (possible.decision, possible.grade) == ("review", "possible")
    apart = compare(a, b, MODEL.with_thresholds(upper=score + 2, lower=score + 1))
    assert (apart.decision, apart.grade) == ("apart", None)
    with pytest.raises(ValueError):
        MODEL.with_thresholds(upper=1, lower=2)


def test_every_number_of_the_model_says_where_it_comes_from() -> None:
    data = json.loads(MODEL_FILE.read_text(encoding="utf-8"))
    for name, spec in data["fields"].items():
        assert spec.get("source"), name
        for level, m in spec.get("m", {}).items():
            assert 0 < m <= 1, (name, level)
    for key in ("thresholds", "name_variants", "family_frequencies", "given_frequencies", "middle_frequencies",
                "full_name_frequencies"):
        assert data[key].get("source"), key
    assert data["family_frequencies"]["table"]["nguyen"] == pytest.approx(0.384)


def test_refit_counts_name_frequencies_from_the_records() -> None:
    records = [features(patient("Khổng Văn Khải"), f"Patient/{i}") for i in range(10)]
    assert MODEL.refit(records) is MODEL  # too few records to say anything
    refitted = MODEL.refit(records, minimum=5)
    assert refitted.family.agree("khong") < MODEL.family.agree("khong")
    assert refitted.upper == MODEL.upper


def _refit(names: dict[str, int], unique: int = 1000) -> Model:
    """A model refit over records of ``names`` (name -> how many records) and of ``unique`` one-off names."""
    records = [features(patient(name), f"Patient/{name}{i}") for name, n in names.items() for i in range(n)]
    records += [features(patient(f"Zf{i} Zm{i} Zg{i}"), f"Patient/z{i}") for i in range(unique)]
    return MODEL.refit(records)


def _decide(model: Model, a: dict[str, Any], b: dict[str, Any]) -> Comparison:
    result = compare(features(a, "Patient/a"), features(b, "Patient/b"), model)
    assert result == compare(features(b, "Patient/b"), features(a, "Patient/a"), model)
    return result


def test_a_common_full_name_is_weak_evidence_even_when_its_parts_are_not() -> None:
    """Each of Nguyễn, Mỹ and Ngọc is on 2% of these records, so the parts multiplied say 1 in 100,000
    people, and name and birth year alone would link; the whole name is on 2% as well, a namesake."""
    model = _refit({"Nguyễn Mỹ Ngọc": 20, "Khổng Văn Lực": 1})
    assert model.full_name.weights.keys() == {"my ngoc nguyen"}  # one record says nothing of a name's share
    bare = {"ward": None, "street": None, "gender": "female"}
    common = _decide(model, patient("Nguyễn Mỹ Ngọc", **bare), patient("Nguyễn Mỹ Ngọc", birth="1985", **bare))
    assert common.decision == "apart" and "full name: common (+5.3)" in common.reasons
    parts = sum(table.agree(n) for table, n in ((model.family, "nguyen"), (model.middle, "my"), (model.given, "ngoc")))
    assert parts > model.rare_name > 5.3
    elsewhere = _decide(model, patient("Nguyễn Mỹ Ngọc", gender="female"),
                        patient("Nguyễn Mỹ Ngọc", gender="female", ward="Xã Bình Chánh", street="9 Ba Cu"))
    assert elsewhere.decision == "apart"
    swapped = _decide(model, patient("Nguyễn Ngọc Mỹ", **bare), patient("Nguyen Ngoc My", birth="1985", **bare))
    assert swapped.decision == "apart" and "full name: common (+5.3)" in swapped.reasons  # the same words
    rare = _decide(model, patient("Khổng Minh Khải", **bare), patient("Khổng Minh Khải", birth="1985", **bare))
    assert rare.decision == "link" and not any("full name" in r for r in rare.reasons)
    assert _decide(model, patient("Nguyễn Mỹ Ngọc", gender="female"),
                   patient("Nguyễn Mỹ Ngọc", gender="female")).decision == "link"  # ward and street agree


def test_a_refit_model_still_tells_a_slip_from_another_name() -> None:
    """The counted tables hold every typo of the records; a typo is no real name for all that."""
    model = _refit({"Triệu Văn Quyết": 5, "Triệu Văn Qyết": 1})
    assert "qyet" in model.given.frequencies and "qyet" not in model.given.known
    result = _decide(model, patient("Triệu Văn Quyết", **BASE), patient("Triệu Văn Qyết", **BASE))
    assert "given name: typo" in levels(result) and result.decision == "link"


def test_thresholds_grow_with_the_records_a_hub_holds() -> None:
    tuned = MODEL.data["thresholds"]["tuned_records"]
    assert (MODEL.for_records(tuned).upper, MODEL.for_records(tuned).lower) == (MODEL.upper, MODEL.lower)
    assert MODEL.for_records(tuned // 10).upper == MODEL.upper  # never lowered
    bigger = MODEL.for_records(tuned * 8)
    assert (bigger.upper, bigger.lower, bigger.certain) == (MODEL.upper + 3, MODEL.lower + 3, MODEL.certain + 3)
    assert bigger.for_records(tuned * 8).upper == bigger.upper  # from model.json's thresholds, not compounded
    assert _refit({}).for_records(tuned * 8).full_name == _refit({}).full_name


# ------------------------------------------------------------------------------------------------ blocking
NOISY = {
    "typo in the family name": patient("Nguyễen Văn An"),
    "missing birth day": patient(birth="1985-03"),
    "year only and a family typo": patient("Ngyễn Văn An", birth="1985"),
    "swapped given names": patient("Nguyễn An Văn"),
    "swapped names and year only": patient("Nguyễn An Văn", birth="1985"),
    "typo in the given name": patient("Nguyễn Văn Ann"),
    "typo in the birth year": patient(birth="1986-03-07"),
    "only the phone": patient("Nguyễn Văn Ân", birth=None, phone="0903123456"),
    "day and month swapped": patient(birth="1985-07-03"),
}


@pytest.mark.parametrize("noise", sorted(NOISY))
def test_records_of_one_person_share_a_block_key_despite_noise(noise: str) -> None:
    clean = features(patient(phone="+84903123456"))
    assert block_keys(clean) & block_keys(features(NOISY[noise])), noise


def test_block_keys_are_narrow() -> None:
    """No key is a bare surname or birth year: a block must stay a handful of people as the population grows."""
    for key in block_keys(features(patient(ids=[(CCCD, "079085001234")], phone="0903123456"))):
        kind, _, value = key.partition(":")
        assert value and ("|" in value or kind in ("cccd", "bhxh", "ma-bn", "phone")), key


# ------------------------------------------------------------------------------------------------ symmetry
_names = st.sampled_from(["Nguyễn Văn An", "Nguyen An Van", "Nguyễn An", "Huỳnh Thị Mai", "Hoàng Thị Mai",
                          "Vũ Minh Khải", "Võ Khải", "Trần Quân", "Trần Tuấn", "Lê Hy", "Lê Huy", "Khổng Minh"])
_births = st.sampled_from([None, "1985", "1985-03", "1985-03-07", "1985-07-03", "1986-03-07", "1985-01-01", "2005"])
_ids = st.lists(st.sampled_from([(CCCD, "079085001234"), (CCCD, "079185001234"), (BHYT, "DN4791234567890"),
                                 (BHXH, "1234567890"), (BHXH, "1234567891"),
                                 (facility_system("ma-bn", "79001"), "1")]), max_size=2)


@settings(max_examples=300)
@given(_names, _names, _births, _births, st.sampled_from([None, "male", "female", "unknown"]),
       st.sampled_from([None, "0903123456"]), st.sampled_from([None, "Phường Bến Thành", "Xã Bình Chánh"]), _ids, _ids)
def test_compare_is_symmetric(name_a: str, name_b: str, birth_a: str | None, birth_b: str | None, gender: str | None,
                              phone: str | None, ward: str | None, ids_a: list[tuple[str, str]],
                              ids_b: list[tuple[str, str]]) -> None:
    a = features(patient(name_a, birth=birth_a, gender=gender, phone=phone, ids=ids_a))
    b = features(patient(name_b, birth=birth_b, ward=ward, ids=ids_b))
    one, other = compare(a, b), compare(b, a)
    assert (one.score, one.decision, one.grade, one.rule) == (other.score, other.decision, other.grade, other.rule)
    assert sorted(one.reasons) == sorted(other.reasons)
