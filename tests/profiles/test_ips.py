"""The IPS section rules as data (``profiles/ips``): the file is checked when it loads, the rules read codes
as the IPS and HAPI FHIR's generator do, and the language a summary is written in follows Accept-Language."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from fhir_hub.api.negotiation import preferred_language
from profiles.ips import LANGUAGES, codes_of, default_rules, load, sorted_into

CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"


def _raw() -> dict[str, object]:
    return dict(json.loads(resources.files("profiles.ips").joinpath("sections.json").read_text(encoding="utf-8")))


@pytest.mark.parametrize("breakage", ["rule without in or not", "misspelt key", "no English title", "no columns"])
def test_a_broken_file_is_refused_naming_where(breakage: str) -> None:
    raw = _raw()
    sections = raw["sections"]
    assert isinstance(sections, list)
    rule = sections[0]["sources"][0]["where"][0]
    if breakage == "rule without in or not":
        del rule["not"]
    elif breakage == "misspelt key":
        rule["nto"] = rule.pop("not")
    elif breakage == "no English title":
        del sections[2]["title"]["en"]
    else:
        columns = raw["columns"]
        assert isinstance(columns, dict)
        del columns["CarePlan"]
    with pytest.raises(ValueError, match="section problems|section medications|CarePlan"):
        load(json.dumps(raw))


def test_the_sections_are_the_ips_ones_in_document_order() -> None:
    rules = default_rules()
    assert [s.loinc for s in rules.sections] == ["11450-4", "48765-2", "10160-0", "11369-6", "30954-2", "8716-3",
                                                 "47519-4", "46264-8", "11348-0", "10162-6", "18776-5"]
    assert [s.key for s in rules.sections if s.required] == ["problems", "allergies", "medications"]


def test_codes_are_read_from_codes_codings_and_concepts_with_their_system() -> None:
    concept = {"coding": [{"system": CLINICAL, "code": "active"}, {"system": "urn:other", "code": "x"}]}
    assert codes_of(concept, CLINICAL) == {"active"}
    assert codes_of(concept, None) == {"active", "x"}
    assert codes_of([concept, {"coding": [{"system": CLINICAL, "code": "resolved"}]}], CLINICAL) == {"active",
                                                                                                    "resolved"}
    assert codes_of("final", "urn:any") == {"final"}  # a bare code has no system
    assert codes_of(None, None) == frozenset()


def test_a_condition_goes_to_problems_or_past_illness_by_its_clinical_status() -> None:
    def condition(clinical: str | None, verification: str | None = None) -> dict[str, object]:
        return {"resourceType": "Condition", "id": f"{clinical}-{verification}",
                **({"clinicalStatus": {"coding": [{"system": CLINICAL, "code": clinical}]}} if clinical else {}),
                **({"verificationStatus": {"coding": [{"system": f"{CLINICAL[:-9]}-ver-status",
                                                       "code": verification}]}} if verification else {})}

    found = [condition("active"), condition("recurrence"), condition(None), condition("resolved"),
             condition("remission"), condition(None, "entered-in-error"), condition("active", "refuted")]
    placed = sorted_into(default_rules(), found)
    assert [c["id"] for c in placed["problems"]] == ["active-None", "recurrence-None", "None-None"]
    assert [c["id"] for c in placed["past-illness"]] == ["resolved-None", "remission-None"]


@pytest.mark.parametrize(("header", "lang"), [
    (None, "vi"), ("", "vi"), ("en", "en"), ("en-US", "en"), ("vi-VN, en;q=0.8", "vi"), ("en;q=0.8, vi;q=0.9", "vi"),
    ("fr-CA, fr;q=0.9, en;q=0.5", "en"), ("*", "vi"), ("vi;q=0, *;q=0.5", "en"), ("en;q=0", "vi"),
    ("de", "vi"), ("vi;q=0, en;q=0", "vi"), ("en;q=abc, vi;q=0.1", "vi")])
def test_accept_language_is_read_by_weight_and_lookup(header: str | None, lang: str) -> None:
    assert preferred_language(header, LANGUAGES) == lang
