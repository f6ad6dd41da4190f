"""The risk rules of issue 18 (``profiles/risk``), pure: which codes and ages hold which rule in whatever
spelling and precision they come, that more data never lowers a score, the exact days a score changes, that a
malformed rule file is refused by name, and the scorer over data the adapters produce."""

from __future__ import annotations

import copy
import json
from datetime import date, timedelta
from importlib import resources
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.base import Source
from adapters.hl7v2.tables import table as hl7_table
from adapters.moh_xml import MohXmlAdapter
from adapters.moh_xml.generator import generate_file
from adapters.normalize import ICD10
from profiles.icd10 import CodeRange, icd10_key
from profiles.risk import (
    PersonFacts,
    Rules,
    assess,
    birthday,
    default_rules,
    facts_from_resources,
    next_change,
    priority,
    rules_from,
    span,
)
from tests.conftest import fixture_path

RULES = default_rules()
TODAY = date(2026, 12, 6)
SNOMED, LOINC = "http://snomed.info/sct", "http://loinc.org"

# The ICD-10 rules restated in the plainest form, (letter, first category, last category), for the reference
# evaluator below: a code of letter L and category N (its first three characters) is in the rule when some
# triple has L and first <= N <= last.
REFERENCE: dict[str, list[tuple[str, int, int]]] = {
    "hypertension": [("I", 10, 15)], "diabetes": [("E", 10, 14)], "ischaemic-heart-disease": [("I", 20, 25)],
    "heart-failure": [("I", 50, 50)], "stroke": [("I", 60, 69)], "copd": [("J", 44, 44)], "asthma": [("J", 45, 45)],
    "chronic-kidney-disease": [("N", 18, 18)], "cancer": [("C", 0, 97)], "dementia": [("F", 0, 3), ("G", 30, 30)],
    "pregnancy": [("Z", 33, 36), ("O", 0, 99)], "tuberculosis": [("A", 15, 19)], "hiv": [("B", 20, 24)],
    "disability": [("H", 54, 54), ("H", 90, 91), ("G", 80, 83), ("F", 70, 79), ("Z", 89, 89), ("Z", 99, 99)],
}
SERIOUS = ["age-60-plus", "child-under-6", "pregnancy", "tuberculosis", "hiv", "hypertension", "diabetes",
           "ischaemic-heart-disease", "heart-failure", "stroke", "copd", "asthma", "chronic-kidney-disease", "cancer",
           "dementia"]


def reference_rules(letter: str, category: int) -> set[str]:
    return {rule for rule, spans in REFERENCE.items() if any(letter == lt and lo <= category <= hi
                                                             for lt, lo, hi in spans)}


def condition(code: str, *, system: str = ICD10, id: str = "c", **more: Any) -> dict[str, Any]:
    return {"resourceType": "Condition", "id": id, "code": {"coding": [{"system": system, "code": code}]}, **more}


def patient(birth: str | None = None, id: str = "p") -> dict[str, Any]:
    return {"resourceType": "Patient", "id": id, **({"birthDate": birth} if birth else {})}


def status(field: str, code: str) -> dict[str, Any]:
    system = {"clinicalStatus": "condition-clinical", "verificationStatus": "condition-ver-status"}[field]
    return {field: {"coding": [{"system": f"http://terminology.hl7.org/CodeSystem/{system}", "code": code}]}}


def hits(resources: list[dict[str, Any]], today: date = TODAY, rules: Rules = RULES) -> set[str]:
    return {h.rule.id for h in assess(facts_from_resources(resources, rules), rules, today).hits}


def score(resources: list[dict[str, Any]], today: date = TODAY) -> int:
    return assess(facts_from_resources(resources), RULES, today).score


letters = st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
categories = st.integers(min_value=0, max_value=99)
subs = st.sampled_from(["", "0", "9", "1", "81", "A"])


def spellings(letter: str, category: int, sub: str) -> list[str]:
    plain = f"{letter}{category:02d}"
    dotted = f"{plain}.{sub}" if sub else plain
    return [dotted, plain + sub, dotted.lower(), f" {letter} {category:02d} {sub} ", f"{dotted}\u2020", f"{dotted}*"]


# ------------------------------------------------------------------------------------------- the rule file
def test_the_rule_file_loads_from_the_package_and_names_every_group_of_the_issue() -> None:
    data = json.loads((resources.files("profiles") / "risk" / "rules.json").read_text(encoding="utf-8"))
    assert RULES.version == data["version"] and RULES.tiers == (("high", 10), ("medium", 5), ("low", 0))
    assert {r.id for r in RULES.rules} == {*REFERENCE, "age-60-plus", "child-under-6", "elderly-living-alone"}
    for rule in RULES.rules:
        assert rule.label_vi.strip() and rule.label_en.strip() and "issue 18" in rule.source, rule.id


def test_every_icd10_system_the_adapters_write_is_read() -> None:
    hl7 = {system for name, system in hl7_table("coding_systems").items() if "10" in name and "icd-10" in system}
    assert {ICD10, *hl7} <= RULES.icd10_systems


# One change at a time to a good file, and what the error must name.
BROKEN: list[tuple[str, Any, list[str]]] = [
    ("rules.3.weight", "10", ["'diabetes'", "weight"]),
    ("rules.3.weight", 0, ["'diabetes'", "weight", "at least 1"]),
    ("rules.3.weight", True, ["'diabetes'", "weight"]),
    ("rules.3.criterion.icd10", ["E10-E1"], ["'diabetes'", "criterion.icd10", "E10-E1"]),
    ("rules.3.criterion.icd10", ["E14-E10"], ["'diabetes'", "criterion.icd10"]),
    ("rules.3.criterion.icd10", [], ["'diabetes'", "criterion.icd10", "empty"]),
    ("rules.3.criterion", {"icd": ["E10-E14"]}, ["'diabetes'", "criterion", "icd"]),
    ("rules.3.label", {"vi": "Đái tháo đường"}, ["'diabetes'", "en", "missing"]),
    ("rules.3.source", " ", ["'diabetes'", "source", "empty"]),
    ("rules.3.id", "hypertension", ["rules", "hypertension", "repeat"]),
    ("rules.0.criterion.age_at_least", -1, ["'age-60-plus'", "age_at_least"]),
    ("rules.12.criterion.current_within_days", "300", ["'pregnancy'", "current_within_days"]),
    ("rules.16.criterion.lives_alone", False, ["'elderly-living-alone'", "lives_alone"]),
    ("tiers.medium", 10, ["tiers", "fall strictly"]),
    ("tiers", {"high": 10, "low": 0}, ["tiers", "medium"]),
    ("living_alone.household_size", "63512-8", ["living_alone", "household_size", "system|code"]),
    ("icd10.systems", [], ["icd10", "systems"]),
    ("version", None, ["version", "must be str"]),
]


@pytest.mark.parametrize(("where", "value", "named"), BROKEN, ids=[f"{w}={v!r}" for w, v, _ in BROKEN])
def test_a_malformed_rule_file_is_refused_naming_the_rule_and_field(where: str, value: Any, named: list[str]) -> None:
    data = json.loads((resources.files("profiles") / "risk" / "rules.json").read_text(encoding="utf-8"))
    rules_from(data)  # the file as shipped is good, so the change below is what is refused
    *path, last = where.split(".")
    node: Any = data
    for part in path:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[int(last) if isinstance(node, list) else last] = value
    with pytest.raises(ValueError, match="risk rules") as raised:
        rules_from(data)
    for text in named:
        assert text in str(raised.value), (text, str(raised.value))


# -------------------------------------------------------------------------------------------- ICD-10 codes
@given(letters, categories, subs)
def test_a_code_holds_exactly_the_rules_of_the_ranges_holding_it_in_any_spelling(letter: str, category: int,
                                                                                   sub: str) -> None:
    expected = reference_rules(letter, category)
    for spelling in spellings(letter, category, sub):
        assert hits([condition(spelling, recordedDate=TODAY.isoformat())]) == expected, spelling


@given(letters, categories, subs, st.sampled_from(sorted(RULES.icd10_systems)))
def test_every_icd10_system_is_read_alike(letter: str, category: int, sub: str, system: str) -> None:
    code = f"{letter}{category:02d}.{sub}" if sub else f"{letter}{category:02d}"
    assert hits([condition(code, system=system, recordedDate="2026-12")]) == reference_rules(letter, category)


@given(st.sampled_from([SNOMED, LOINC, "http://hl7.org/fhir/sid/icd-9-cm"]), letters, categories)
def test_the_same_characters_in_another_code_system_hold_no_rule(system: str, letter: str, category: int) -> None:
    assert hits([condition(f"{letter}{category:02d}", system=system)]) == set()


@given(st.text(max_size=12))
def test_any_text_is_either_no_code_or_a_code_of_letter_and_two_characters(text: str) -> None:
    key = icd10_key(text)
    assert key is None or (key[0].isalpha() and key[1].isdigit() and 3 <= len(key) <= 7 and "." not in key)


@pytest.mark.parametrize(("text", "inside", "outside"), [
    ("C00-C97", ["C00", "C97", "C979", "C50.9", "c97.9"], ["C98", "C980", "D00", "B99"]),
    ("I10-I15", ["I10", "I15.0", "I159", "I13"], ["I16", "I09", "I20"]),
    ("O", ["O00", "O99.8", "O9A.1", "o80"], ["P00", "N99"]),
    ("G30", ["G30", "G30.1"], ["G31", "G3"]),
    ("O98.7", ["O98.7", "O9870"], ["O98.6", "O98", "O99.7"]),
])
def test_range_bounds(text: str, inside: list[str], outside: list[str]) -> None:
    rng = CodeRange.parse(text)
    assert all(rng.holds(k) for code in inside if (k := icd10_key(code)) is not None), inside
    assert not any(rng.holds(k) for code in outside if (k := icd10_key(code)) is not None), outside


@pytest.mark.parametrize("text", ["OO", "O-P20", "B20-", "B24-B20", "B20-B24.1", "HIV", "20-24", ""])
def test_a_range_that_is_not_one_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="ICD-10"):
        CodeRange.parse(text)


@pytest.mark.parametrize(("text", "days"), [
    ("1966", (date(1966, 1, 1), date(1966, 12, 31))), ("1964-02", (date(1964, 2, 1), date(1964, 2, 29))),
    ("2026-06-01", (date(2026, 6, 1), date(2026, 6, 1))), ("2026-06-01T23:30:00+07:00", (date(2026, 6, 1),) * 2),
    ("2026-13", None), ("1966-02-30", None), ("2026-1x", None), ("66", None), (19660101, None), (None, None),
])
def test_a_date_is_the_span_of_days_it_may_mean_and_anything_else_is_no_date(text: Any, days: Any) -> None:
    found = span(text)
    assert (found and (found.earliest, found.latest)) == days
    if days is None and text is not None:
        assert hits([{"resourceType": "Patient", "birthDate": text}]) == set()


def test_one_condition_coded_in_two_icd10_systems_is_one_piece_of_evidence() -> None:
    both = {"resourceType": "Condition", "id": "c", "code": {"coding": [
        {"system": ICD10, "code": "E11.9"}, {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E119"}]}}
    (hit,) = assess(facts_from_resources([both]), RULES, TODAY).hits
    assert [e.value for e in hit.evidence] == ["E11.9"]


# ------------------------------------------------------------------------------------------ each rule alone
EXAMPLES: list[tuple[str, list[dict[str, Any]]]] = [
    ("age-60-plus", [patient("1956-12-06")]),
    ("child-under-6", [patient("2021-12-07")]),
    ("hypertension", [condition("I10")]), ("diabetes", [condition("E11.9")]),
    ("ischaemic-heart-disease", [condition("I25.1")]), ("heart-failure", [condition("I50.0")]),
    ("stroke", [condition("I63.9")]), ("copd", [condition("J44.1")]), ("asthma", [condition("J45")]),
    ("chronic-kidney-disease", [condition("N18.5")]), ("cancer", [condition("C50.9")]),
    ("dementia", [condition("G30.1")]), ("dementia", [condition("F01")]),
    ("pregnancy", [condition("Z34.0", recordedDate="2026-09-01")]),
    ("pregnancy", [condition("O24.4", onsetDateTime="2026-06-01T08:00:00+07:00")]),
    ("tuberculosis", [condition("A15.0")]), ("hiv", [condition("B24")]),
    ("disability", [condition("H54.0")]), ("disability", [condition("Z89.5")]), ("disability", [condition("F72")]),
]


@pytest.mark.parametrize(("rule", "data"), EXAMPLES, ids=[f"{r}-{i}" for i, (r, _) in enumerate(EXAMPLES)])
def test_each_rule_alone(rule: str, data: list[dict[str, Any]]) -> None:
    assessment = assess(facts_from_resources([patient("1990-01-01"), *data]), RULES, TODAY)
    if rule in ("age-60-plus", "child-under-6"):
        assessment = assess(facts_from_resources(data), RULES, TODAY)
    assert [h.rule.id for h in assessment.hits] == [rule]
    assert assessment.tier == ("high" if rule in SERIOUS else "medium")
    (hit,) = assessment.hits
    assert hit.evidence and hit.evidence[0].reference in ("Patient/p", "Condition/c")


def test_living_alone_counts_for_the_elderly_only_and_the_latest_statement_wins() -> None:
    alone = {"resourceType": "Observation", "id": "o1", "status": "final", "effectiveDateTime": "2026-01-05",
             "code": {"coding": [{"system": LOINC, "code": "63512-8"}]}, "valueInteger": 1}
    finding = condition("105529008", system=SNOMED, id="c2")
    assert hits([patient("1950-05-05"), alone]) == {"age-60-plus", "elderly-living-alone"}
    assert hits([patient("1950-05-05"), finding]) == {"age-60-plus", "elderly-living-alone"}
    assert hits([patient("1990-05-05"), alone]) == set()  # living alone is a risk here for the elderly only
    moved_in = {**alone, "id": "o2", "effectiveDateTime": "2026-06-01", "valueInteger": 3}
    assert hits([patient("1950-05-05"), alone, moved_in]) == {"age-60-plus"}
    assert hits([patient("1950-05-05"), {**alone, "status": "entered-in-error"}]) == {"age-60-plus"}
    assert hits([patient("1950-05-05"), {**finding, **status("clinicalStatus", "resolved")}]) == {"age-60-plus"}
    assert hits([patient("1950-05-05")]) == {"age-60-plus"}  # nothing known: the rule does not hold


@pytest.mark.parametrize(("field", "code"), [("clinicalStatus", "resolved"), ("clinicalStatus", "inactive"),
                                             ("clinicalStatus", "remission"), ("verificationStatus", "refuted"),
                                             ("verificationStatus", "entered-in-error")])
def test_a_diagnosis_that_is_not_current_does_not_count(field: str, code: str) -> None:
    assert hits([condition("C50.9", **status(field, code))]) == set()
    assert hits([condition("C50.9", **status("clinicalStatus", "active"))]) == {"cancer"}


def test_an_abated_diagnosis_without_a_status_does_not_count() -> None:
    assert hits([condition("J45", abatementDateTime="2020-01-01")]) == set()


def test_a_pregnancy_counts_while_current() -> None:
    def pregnant(**dates: Any) -> bool:
        return hits([condition("O80", **dates)]) == {"pregnancy"}

    assert pregnant(recordedDate=(TODAY - timedelta(days=300)).isoformat())
    assert not pregnant(recordedDate=(TODAY - timedelta(days=301)).isoformat())
    assert not pregnant()  # undated and no status: could be any year's
    assert pregnant(**status("clinicalStatus", "active"))
    assert not pregnant(recordedDate="2023-01-01", **status("clinicalStatus", "active"))  # never closed
    assert pregnant(onsetDateTime="2024-01-01", recordedDate=(TODAY - timedelta(days=10)).isoformat())
    # A partial date counts from its first day: 9 February 2026 is 300 days back, so "2026-02" is not within.
    assert pregnant(recordedDate="2026-02-09") and not pregnant(recordedDate="2026-02")
    assert pregnant(recordedDate="2026-03")
    encounter = {"resourceType": "Encounter", "id": "e1", "period": {"start": "2026-10-01T07:00:00+07:00"}}
    assert pregnant(encounter={"reference": "urn:uuid:e1"}) is False  # the encounter itself not given
    assert hits([encounter, condition("O80", encounter={"reference": "Encounter/e1"})]) == {"pregnancy"}
    assert hits([encounter, condition("O80", encounter={"reference": "urn:uuid:e1"})]) == {"pregnancy"}


def test_combinations_score_higher() -> None:
    old_and_ill = [patient("1956-01-01"), condition("E11.9", id="c1"), condition("I50.9", id="c2"),
                   condition("E11.65", id="c3")]
    alone = {"resourceType": "Observation", "id": "o", "code": {"coding": [{"system": SNOMED, "code": "105529008"}]}}
    assert score(old_and_ill) == 30  # diabetes counts once however many of its codes
    assert score([patient("1966-01-01"), alone]) == 15
    assert score([patient("1966-01-01")]) == 10 and score([patient("1990-01-01")]) == 0
    assessment = assess(facts_from_resources(old_and_ill), RULES, TODAY)
    assert priority(assessment) > priority(assess(facts_from_resources([patient("1966-01-01"), alone]), RULES, TODAY))
    (diabetes,) = [h for h in assessment.hits if h.rule.id == "diabetes"]
    assert [(e.value, e.reference) for e in diabetes.evidence] == [("E11.9", "Condition/c1"),
                                                                   ("E11.65", "Condition/c3")]
    assert assessment.score == 30 and assessment.tier == "high" and assessment.version == RULES.version
    assert {h.rule.id for h in assessment.hits} == {"age-60-plus", "diabetes", "heart-failure"}
    assert all(h.rule.source and h.rule.label_vi and h.evidence for h in assessment.hits)


# ------------------------------------------------------------------------------------- more never lowers
condition_data = st.builds(
    lambda letter, category, sub, when, state, i: condition(
        f"{letter}{category:02d}{sub}", id=f"c{i}", **({"recordedDate": when} if when else {}),
        **(status(*state) if state else {})),
    letters, categories, subs, st.none() | st.sampled_from(["2026-11-30", "2025-01", "2019"]),
    st.none() | st.sampled_from([("clinicalStatus", c) for c in ("active", "resolved", "remission")]
                                + [("verificationStatus", "refuted")]),
    st.integers(0, 10**6))
births = st.none() | st.dates(date(1920, 1, 1), date(2026, 12, 31)).map(date.isoformat) | st.sampled_from(
    ["1966", "2021", "1966-12", "2020-12"])


@given(births, st.lists(condition_data, max_size=6), condition_data)
def test_adding_a_condition_never_lowers_the_score(birth: str | None, known: list[dict[str, Any]],
                                                   more: dict[str, Any]) -> None:
    before = [patient(birth), *known]
    assert score([*before, more]) >= score(before)
    assert hits(before) <= hits([*before, more])


# ------------------------------------------------------------------------------------------------ birthdays
@given(st.dates(date(1920, 1, 1), date(2020, 12, 31)))
def test_the_60th_birthday_is_the_first_day_of_age_60(born: date) -> None:
    sixtieth = birthday(born, 60)
    data = [patient(born.isoformat())]
    assert "age-60-plus" not in hits(data, sixtieth - timedelta(days=1))
    assert "age-60-plus" in hits(data, sixtieth)
    facts = facts_from_resources(data)
    if sixtieth - timedelta(days=1) > birthday(born, 6):
        assert next_change(facts, RULES, sixtieth - timedelta(days=1)) == sixtieth
    assert next_change(facts, RULES, sixtieth) is None


@given(st.dates(date(2010, 1, 1), date(2026, 12, 6)))
def test_the_6th_birthday_is_the_first_day_a_child_no_longer_counts(born: date) -> None:
    sixth = birthday(born, 6)
    data = [patient(born.isoformat())]
    assert "child-under-6" in hits(data, sixth - timedelta(days=1))
    assert "child-under-6" not in hits(data, sixth)
    assert next_change(facts_from_resources(data), RULES, max(born, sixth - timedelta(days=30))) == sixth


def test_a_29_february_birthday_falls_on_1_march_in_other_years() -> None:
    assert birthday(date(1964, 2, 29), 60) == date(2024, 2, 29)
    assert birthday(date(1965, 2, 28), 60) == date(2025, 2, 28)
    assert birthday(date(1966, 2, 28), 60) != birthday(date(1964, 2, 29), 61) == date(2025, 3, 1)


@pytest.mark.parametrize(("birth", "last_without", "first_with"), [
    ("1966", date(2026, 12, 30), date(2026, 12, 31)),  # a year only: 60 once every day of 1966 is 60 years back
    ("1966-02", date(2026, 2, 27), date(2026, 2, 28)),
    ("1964-02", date(2024, 2, 28), date(2024, 2, 29)),
    ("1966-07-15", date(2026, 7, 14), date(2026, 7, 15)),
])
def test_a_partial_birth_date_counts_60_only_once_it_is_certain(birth: str, last_without: date,
                                                                  first_with: date) -> None:
    assert "age-60-plus" not in hits([patient(birth)], last_without)
    assert "age-60-plus" in hits([patient(birth)], first_with)
    assert next_change(facts_from_resources([patient(birth)]), RULES, last_without) == first_with


def test_a_partial_birth_date_counts_under_6_only_while_it_is_certain() -> None:
    assert "child-under-6" in hits([patient("2021")], date(2026, 12, 31))
    assert "child-under-6" not in hits([patient("2021")], date(2027, 1, 1))
    assert next_change(facts_from_resources([patient("2021")]), RULES, TODAY) == date(2027, 1, 1)


def test_sources_that_disagree_on_the_birth_date_count_only_what_all_allow() -> None:
    both = [patient("1966-03-01", id="a"), patient("1967-03-01", id="b")]
    assert "age-60-plus" not in hits(both, date(2027, 2, 28)) and "age-60-plus" in hits(both, date(2027, 3, 1))


def test_next_change_also_says_when_a_pregnancy_stops_counting_and_none_without_a_date() -> None:
    data = [patient("1995-05-05"), condition("Z34.0", recordedDate="2026-11-01")]
    assert next_change(facts_from_resources(data), RULES, TODAY) == date(2026, 11, 1) + timedelta(days=301)
    assert next_change(facts_from_resources([condition("E11")]), RULES, TODAY) is None
    assert next_change(PersonFacts(None, None, None, (), None), RULES, TODAY) is None


# ---------------------------------------------------------------------------------------- over real data
def bundle_resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    """A Bundle's resources, each with the id its ``urn:uuid`` fullUrl gives it (as a transaction would)."""
    return [{**e["resource"], "id": e["fullUrl"].removeprefix("urn:uuid:")} if "id" not in e["resource"]
            else e["resource"] for e in bundle["entry"]]


def test_moh_xml_records_score_as_their_diagnoses_and_birth_dates_say() -> None:
    """Generated MoH XML episodes through the adapter: each record's score is what its XML1 row says, by the
    plain reference above (birth dates of full and year-only precision both occur)."""
    tiers: set[str] = set()
    for seed in range(4):
        generated = generate_file(f"risk/{seed}", episodes=40)
        mapping = MohXmlAdapter().map(generated.payload, Source("moh-xml"))
        assert len(mapping.records) == len(generated.episodes)
        for record, episode in zip(mapping.records, generated.episodes, strict=True):
            row = episode.tables["XML1"][0]
            codes = [c for c in [row["MA_BENH_CHINH"], *row["MA_BENH_KT"].split(";")] if c]
            expected = set().union(*(reference_rules(c[0], int(c[1:3])) for c in codes)) - {"pregnancy"}
            born = row["NGAY_SINH"][:8]
            latest = date(int(born[:4]), 12, 31) if born[4:] == "0000" else date(int(born[:4]), int(born[4:6]),
                                                                                   int(born[6:8]))
            earliest = date(int(born[:4]), 1, 1) if born[4:] == "0000" else latest
            expected |= {"age-60-plus"} if TODAY >= birthday(latest, 60) else set()
            expected |= {"child-under-6"} if TODAY < birthday(earliest, 6) else set()
            assessment = assess(facts_from_resources(bundle_resources(record.bundle)), RULES, TODAY)
            assert {h.rule.id for h in assessment.hits} == expected, (row["NGAY_SINH"], codes)
            tiers.add(assessment.tier)
    assert tiers == {"high", "low"}  # the generator's pool has chronic diseases and people of every age


def test_the_reference_converter_output_of_an_hl7_admission() -> None:
    """Microsoft's FHIR-Converter output for ADT^A01 (a shared fixture, used in place): an ICD-10 I21 myocardial
    infarction next to a SNOMED-coded stroke, which the ICD-10 rules do not read."""
    bundle = json.loads(fixture_path("hl7v2", "expected-fhir-r4", "ADT-A01-01-expected.json")
                        .read_text(encoding="utf-8-sig"))
    assessment = assess(facts_from_resources(bundle_resources(bundle)), RULES, TODAY)
    assert [h.rule.id for h in assessment.hits] == ["ischaemic-heart-disease"]
    assert assessment.hits[0].evidence[0].value == "I21" and assessment.tier == "high"


def test_an_international_patient_summary_coded_in_snomed() -> None:
    """The HL7 IPS example: a woman born 1972 with menopausal flushing (SNOMED and ICD-10 N95.1, no rule) and a
    breast cancer in remission coded in SNOMED CT only."""
    bundle = json.loads(fixture_path("ips", "IPS-bundle-01.fasten-copy.json").read_text(encoding="utf-8-sig"))
    facts = facts_from_resources(bundle_resources(bundle))
    assert facts.gender == "female" and facts.birth is not None and [d.code for d in facts.diagnoses] == ["N95.1"]
    assert assess(facts, RULES, TODAY).tier == "low"
    assert next_change(facts, RULES, TODAY) == date(2032, 5, 1)
    coded = copy.deepcopy(bundle)  # the same record had its cancer been coded in ICD-10: remission still not
    for entry in coded["entry"]:
        if entry["resource"]["resourceType"] == "Condition" and "254837009" in json.dumps(entry["resource"]):
            entry["resource"]["code"]["coding"].append({"system": ICD10, "code": "C50.9"})
    assert assess(facts_from_resources(bundle_resources(coded)), RULES, TODAY).score == 0
