"""The sensitivity rules (``consent/labels.py`` over ``consent/sensitivity.json``), pure: which codes call for
which label in whatever spelling they come, what passes through references, and that labelling only
ever adds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consent import labels as labels_module
from consent.labels import (
    CodeRange,
    carried,
    default_rules,
    group_labels,
    icd10_key,
    labelled,
    own_labels,
    read,
    references,
    required,
)
from consent.policy import default_policy

RULES = default_rules()
ICD10 = "http://hl7.org/fhir/sid/icd-10"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
HIV, PSY, ETH, SEX, STD = (f"{ACT}|{code}" for code in ("HIV", "PSY", "ETH", "SEX", "STD"))
TB = "https://fhir.hub.hcmc.vn/CodeSystem/sensitivity|TB"
TABLE = "https://fhir.hub.hcmc.vn/CodeSystem/moh-xml-table"

# The rules of sensitivity.json restated as (letter, first category, last category, sub-code or None) -> label,
# in the plainest form, for the reference evaluator below.
EXPECTED: list[tuple[str, int, int, int | None, int | None, str]] = [
    ("B", 20, 24, None, None, HIV), ("Z", 21, 21, None, None, HIV), ("R", 75, 75, None, None, HIV),
    ("O", 98, 98, 7, 7, HIV),
    ("A", 15, 19, None, None, TB), ("B", 90, 90, None, None, TB), ("O", 98, 98, 0, 0, TB),
    ("F", 0, 9, None, None, PSY), ("F", 20, 99, None, None, PSY),
    ("F", 10, 19, None, None, ETH), ("Z", 71, 71, 4, 5, ETH),
    ("A", 50, 64, None, None, STD),
    ("O", 0, 8, None, None, SEX), ("Z", 30, 31, None, None, SEX), ("N", 96, 98, None, None, SEX),
    ("N", 46, 46, None, None, SEX), ("Z", 64, 64, 0, 0, SEX), ("F", 64, 66, None, None, SEX),
]


def reference_labels(letter: str, category: int, sub: str) -> set[str]:
    found = set()
    for rule_letter, low, high, sub_low, sub_high, label in EXPECTED:
        if rule_letter != letter or not low <= category <= high:
            continue
        if sub_low is not None and (not sub or not sub[0].isdigit() or not sub_low <= int(sub[0]) <= sub_high):
            continue
        found.add(label)
    return found


def condition(*codings: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"resourceType": "Condition", "code": {"coding": list(codings)}, "subject": {"reference": "Patient/p"},
            **more}


letters = st.sampled_from("ABFNORZ")
categories = st.integers(min_value=0, max_value=99)
subs = st.text(alphabet="0123456789", max_size=3)
# every range's edges and their neighbours, so that an edge moved by one is found in every run
EDGES = sorted({(letter, n) for letter, low, high, *_ in EXPECTED for n in (low - 1, low, high, high + 1)
                if 0 <= n <= 99})
codes = st.one_of(st.sampled_from(EDGES), st.tuples(letters, categories))


def spellings(letter: str, category: int, sub: str) -> list[str]:
    base = f"{letter}{category:02d}"
    dotted = f"{base}.{sub}" if sub else base
    return [f"{base}{sub}", dotted, dotted.lower(), f"{dotted}\u2020", f"{dotted}*", f" {dotted} "]


# ----------------------------------------------------------------------------------------------- the data
def test_every_label_the_rules_apply_is_one_the_policy_keeps_hidden() -> None:
    assert RULES.labels == {HIV, PSY, ETH, SEX, STD, TB}
    assert RULES.labels <= default_policy().sensitive_labels


def test_every_rule_says_why_and_where_it_comes_from() -> None:
    data = json.loads(Path(labels_module.__file__).with_name("sensitivity.json").read_text(encoding="utf-8"))
    assert data["version"] and data["source"]
    for category in data["categories"]:
        assert category["why"].strip() and category["source"].strip(), category["id"]
        assert category["icd10"] or category["codings"], category["id"]


@pytest.mark.parametrize("text", ["B20-", "B24-B20", "B20-B24.1", "HIV", "20-24"])
def test_a_range_that_is_not_one_is_refused_when_the_rules_load(text: str) -> None:
    with pytest.raises(ValueError, match="sensitivity.json"):
        CodeRange.parse(text)


# -------------------------------------------------------------------------------------------- ICD-10 codes
@given(codes, subs)
def test_an_icd10_code_gets_exactly_the_labels_of_the_ranges_holding_it(code: tuple[str, int], sub: str) -> None:
    letter, category = code
    expected = reference_labels(letter, category, sub)
    for spelling in spellings(letter, category, sub):
        assert carried(condition({"system": ICD10, "code": spelling}), RULES) == expected, spelling


@given(codes, subs, st.sampled_from(sorted(RULES.icd10_systems)))
def test_every_icd10_system_alias_is_read_alike(code: tuple[str, int], sub: str, system: str) -> None:
    letter, category = code
    text = f"{letter}{category:02d}.{sub}" if sub else f"{letter}{category:02d}"
    assert carried(condition({"system": system, "code": text}), RULES) == reference_labels(letter, category, sub)


@given(st.sampled_from(["http://loinc.org", "http://snomed.info/sct", "http://hl7.org/fhir/sid/icd-9-cm",
                        "https://fhir.hub.hcmc.vn/CodeSystem/moh-dvkt"]), letters, categories)
def test_the_same_characters_in_another_code_system_are_no_diagnosis(system: str, letter: str, category: int) -> None:
    assert carried(condition({"system": system, "code": f"{letter}{category:02d}"}), RULES) == frozenset()


@given(st.text(max_size=12))
def test_any_text_is_either_no_code_or_a_code_of_letter_and_two_characters(text: str) -> None:
    key = icd10_key(text)
    assert key is None or (key[0].isalpha() and key[1].isdigit() and 3 <= len(key) <= 7 and "." not in key)


def test_a_code_anywhere_counts_and_several_categories_add_up() -> None:
    procedure = {"resourceType": "Procedure", "subject": {"reference": "Patient/p"},
                 "reasonCode": [{"coding": [{"system": ICD10, "code": "F11.2"}]}],
                 "extension": [{"url": "x", "valueCodeableConcept": {"coding": [{"system": ICD10, "code": "A16"}]}}],
                 "contained": [condition({"system": ICD10, "code": "B20.1"}, id="c")]}
    assert carried(procedure, RULES) == {ETH, TB, HIV}
    assert carried(condition({"system": ICD10, "code": "F64.0"}), RULES) == {PSY, SEX}  # gender identity
    assert carried(condition({"system": ICD10, "code": "F10"}), RULES) == {ETH}  # substance use: ETH only
    assert carried(condition({"system": ICD10, "code": "O80"}), RULES) == frozenset()  # an ordinary delivery


def test_an_moh_episode_sent_with_the_hiv_or_tuberculosis_table_is_labelled_by_its_tag() -> None:
    def encounter(*tables: str) -> dict[str, Any]:
        return {"resourceType": "Encounter", "meta": {"tag": [{"system": TABLE, "code": t} for t in tables]}}

    assert carried(encounter("XML1", "XML2", "XML6"), RULES) == {HIV}
    assert carried(encounter("XML1", "XML15"), RULES) == {TB}
    assert carried(encounter("XML1", "XML2", "XML3"), RULES) == frozenset()


# ---------------------------------------------------------------------------------------------- references
def test_references_passed_on_are_relative_and_never_through_who_or_where() -> None:
    encounter = {"resourceType": "Encounter", "subject": {"reference": "Patient/p"},
                 "participant": [{"individual": {"reference": "Practitioner/d"}}],
                 "serviceProvider": {"reference": "Organization/o"},
                 "diagnosis": [{"condition": {"reference": "Condition/c1/_history/2"}},
                               {"condition": {"reference": "https://elsewhere.example/fhir/Condition/c2"}},
                               {"condition": {"reference": "#contained"}}],
                 "basedOn": [{"reference": "ServiceRequest/s"}]}
    assert references(encounter, RULES) == {"Condition/c1", "ServiceRequest/s"}


def test_only_the_rules_labels_pass_through_a_reference() -> None:
    confidential = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R"
    report = {"resourceType": "DiagnosticReport", "result": [{"reference": "Observation/o"}]}
    assert required(read(report, RULES), {"Observation/o": frozenset({STD, confidential})}, RULES) == {STD}
    assert required(read(report, RULES), {"Observation/x": frozenset({STD})}, RULES) == frozenset()


types = st.sampled_from(["Condition", "Encounter", "Observation", "Patient", "Organization"])
graphs = st.dictionaries(st.builds(lambda t, i: f"{t}/{i}", types, st.sampled_from("123")),
                         st.tuples(st.frozensets(st.sampled_from([HIV, TB, PSY]), max_size=2),
                                   st.lists(st.builds(lambda t, i: f"{t}/{i}", types, st.sampled_from("1234")),
                                            max_size=3)),
                         max_size=8)


def as_resource(key: str, labels: frozenset[str], refs: list[str]) -> dict[str, Any]:
    rtype = key.split("/")[0]
    codes = {HIV: "B20", TB: "A15", PSY: "F32"}
    return {"resourceType": rtype, "code": {"coding": [{"system": ICD10, "code": codes[x]} for x in sorted(labels)]},
            "focus": [{"reference": r} for r in refs]}


@given(graphs, st.dictionaries(st.builds(lambda i: f"Condition/{i}", st.sampled_from("4567")),
                               st.frozensets(st.sampled_from([HIV, ETH]), max_size=1), max_size=3))
def test_a_group_written_together_gets_every_label_reachable_through_its_references(
        graph: dict[str, tuple[frozenset[str], list[str]]], outside: dict[str, frozenset[str]]) -> None:
    resources = {key: read(as_resource(key, labels, refs), RULES) for key, (labels, refs) in graph.items()}
    found = group_labels(resources, outside, RULES)

    def reachable(key: str) -> set[str]:  # the obvious way: walk the references, never through who or where
        seen, todo, labels = set(), [key], set()
        while todo:
            at = todo.pop()
            if at in seen:
                continue
            seen.add(at)
            if at in graph:
                labels |= graph[at][0]
                todo += [r for r in graph[at][1] if r.split("/")[0] not in ("Patient", "Organization")]
            else:
                labels |= outside.get(at, set())
        return labels

    assert found == {key: frozenset(reachable(key)) for key in graph}


# -------------------------------------------------------------------------------------------- adding labels
client_labels = st.lists(st.sampled_from([
    {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "N"},
    {"system": ACT, "code": "HIV", "display": "as the client wrote it"},
    {"system": "urn:example:local", "code": "X"},
]), unique_by=lambda c: c["code"], max_size=3)


@given(client_labels, st.frozensets(st.sampled_from(sorted(RULES.labels))))
def test_labelling_keeps_the_clients_codings_adds_each_label_once_and_is_idempotent(
        mine: list[dict[str, str]], labels: frozenset[str]) -> None:
    resource = condition({"system": ICD10, "code": "J06"}, meta={"security": mine} if mine else {"versionId": "3"})
    out = labelled(resource, labels, RULES)
    security = out.get("meta", {}).get("security", [])
    assert security[:len(mine)] == mine  # the client's first, as sent
    assert own_labels(out) == own_labels(resource) | labels  # nothing removed, everything added
    assert len(security) == len({f"{c['system']}|{c['code']}" for c in security})  # no duplicates
    assert labelled(out, labels, RULES) is out  # a second pass changes nothing
    assert resource.get("meta", {}).get("security", []) == mine  # the input is left alone
    if not labels - own_labels(resource):
        assert out is resource


def test_a_label_the_client_wrote_passes_on_within_a_group_and_a_confidentiality_code_does_not() -> None:
    restricted = {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}
    condition = {"resourceType": "Condition", "meta": {"security": [{"system": ACT, "code": "HIV"}, restricted]}}
    encounter = {"resourceType": "Encounter", "diagnosis": [{"condition": {"reference": "Condition/c"}}]}
    found = group_labels({"Condition/c": read(condition, RULES), "Encounter/e": read(encounter, RULES)}, {}, RULES)
    assert found == {"Condition/c": {HIV}, "Encounter/e": {HIV}}
