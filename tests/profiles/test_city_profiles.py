"""The city's profiles (profiles/city) and the validator against a profile (profiles/validation/profile.py):
each rule kind refuses at the element's FHIRPath and names the profile, the VN Core systems count as the
hub's, the adapters' output claims the profiles and meets them, and random mutations never crash it."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhir_hub.errors import UnprocessableResource
from fhir_hub.fhir.validation import validate_resource
from profiles.validation import validate, write_errors
from profiles.validation.city import (
    HUB_PROFILE_BASE,
    REJECT,
    WARN,
    enforcement,
    profile,
    profiles,
    structure_definitions,
    value_sets,
)
from profiles.validation.definitions import value_set
from profiles.validation.invariants import compile_fhirpath
from profiles.validation.profile import check_profile
from profiles.validation.structure import Rule, parse
from tests.profiles.mutations import mutated

PATIENT, ENCOUNTER, CONDITION = (HUB_PROFILE_BASE + n for n in ("vn-patient", "vn-encounter", "vn-condition"))
OBSERVATION, COVERAGE, ORGANIZATION = (HUB_PROFILE_BASE + n for n in ("vn-observation", "vn-coverage",
                                                                      "vn-organization"))
CCCD, BHYT, FACILITY = ("http://fhir.hl7.org.vn/core/sid/" + n for n in ("cccd", "bhyt", "ma-cskcb"))
UCUM, ICD10 = "http://unitsofmeasure.org", "http://hl7.org/fhir/sid/icd-10"


def patient(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "meta": {"profile": [PATIENT]},
            "identifier": [{"system": CCCD, "value": "079085001234"}], "name": [{"family": "Nguyen", "given": ["Lan"]}],
            "telecom": [{"system": "phone", "value": "+84901234567"}], "gender": "female", "birthDate": "1985",
            "address": [{"city": "Ho Chi Minh"}], **elements}


def encounter(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "Encounter", "meta": {"profile": [ENCOUNTER]}, "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": "Patient/p1"}, "period": {"start": "2025-03-01T08:00:00+07:00"},
            "serviceProvider": {"reference": "Organization/o1"},
            "diagnosis": [{"condition": {"reference": "Condition/c"}}],
            **elements}


def condition(code: str = "E11.9", **elements: Any) -> dict[str, Any]:
    return {"resourceType": "Condition", "meta": {"profile": [CONDITION]},
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category",
                                      "code": "encounter-diagnosis"}]}],
            "code": {"coding": [{"system": ICD10, "code": code}]}, "subject": {"reference": "Patient/p1"},
            "encounter": {"reference": "Encounter/e1"}, **elements}


def observation(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "meta": {"profile": [OBSERVATION]}, "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": "2025-03-01T08:00:00+07:00",
            "valueQuantity": {"value": 72, "unit": "/min", "system": UCUM, "code": "/min"}, **elements}


def coverage(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "Coverage", "meta": {"profile": [COVERAGE]}, "status": "active",
            "identifier": [{"system": BHYT, "value": "HT1797952726305"}], "subscriberId": "HT1797952726305",
            "beneficiary": {"reference": "Patient/p1"}, "payor": [{"reference": "Organization/bhxh"}],
            "period": {"start": "2025-01-01", "end": "2025-12-31"}, **elements}


def organization(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "Organization", "meta": {"profile": [ORGANIZATION]},
            "identifier": [{"system": FACILITY, "value": "79001"}], "name": "Benh vien Cho Ray", **elements}


VALID = [patient(), encounter(), condition(), observation(), coverage(), organization()]


def _profile_issues(resource: dict[str, Any]) -> list[tuple[str, str, str]]:
    url = resource["meta"]["profile"][0]
    found = profile(url)
    assert found is not None
    return [(i.severity, i.expression, i.message) for i in check_profile(resource, found)]


def _errors_at(resource: dict[str, Any]) -> dict[str, str]:
    """Error expression -> message (the message names the profile, checked once here)."""
    found = {e: m for s, e, m in _profile_issues(resource) if s == "error"}
    assert all(resource["meta"]["profile"][0] in m for m in found.values())
    return found


# ------------------------------------------------------------------------------------------- the data
def test_the_city_profiles_are_constraints_on_r4_with_hub_urls() -> None:
    assert {sd["type"] for sd in structure_definitions()} == {"Patient", "Encounter", "Condition", "Observation",
                                                              "Coverage", "Organization",
                                                              "Bundle", "Composition"}  # $summary's IPS document
    for sd in structure_definitions():
        assert sd["url"] == HUB_PROFILE_BASE + sd["id"] and sd["derivation"] == "constraint"
        assert sd["baseDefinition"] == f"http://hl7.org/fhir/StructureDefinition/{sd['type']}"
        assert sd["fhirVersion"] == "4.0.1" and "snapshot" not in sd
        assert enforcement(sd["url"]) in (REJECT, WARN)


def _rules(rule: Rule) -> list[Rule]:
    return [rule, *(r for c in (*rule.children, *rule.slices) for r in _rules(c))]


def test_every_binding_names_a_shipped_value_set_and_every_invariant_compiles() -> None:
    for p in profiles().values():
        for rule in _rules(p.root):
            if rule.binding is not None:
                assert value_set(rule.binding[1]) or rule.binding[1] in value_sets(), rule.id
            for c in rule.constraints:
                compile_fhirpath(c.expression)


def test_a_profile_the_reader_does_not_understand_is_refused_not_half_read() -> None:
    base = dict(next(sd for sd in structure_definitions() if sd["type"] == "Patient"))
    for element in ({"id": "Patient.nickname", "path": "Patient.nickname"},
                    {"id": "Patient.identifier:x", "path": "Patient.identifier", "sliceName": "x"},
                    {"id": "Patient.name", "path": "Patient.name", "sliceName": "x", "maxLength": 3}):
        broken = {**base, "differential": {"element": [*base["differential"]["element"], element]}}
        with pytest.raises(ValueError, match=element["id"].split(":")[0].split(".")[1]):
            parse(broken if element["id"] != "Patient.identifier:x" else
                  {**base, "differential": {"element": [element]}})


@pytest.mark.parametrize("resource", VALID, ids=lambda r: r["resourceType"])
def test_a_valid_resource_has_no_issue_but_information(resource: dict[str, Any]) -> None:
    assert [m for s, _, m in _profile_issues(resource) if s != "information"] == []
    assert [i for i in validate(resource) if i.is_error] == []
    assert write_errors(resource) == []


# ------------------------------------------------------------------------------------------ negatives
def test_a_patient_with_no_identifier_and_no_name() -> None:
    bare = patient()
    del bare["identifier"], bare["name"]
    errors = _errors_at(bare)
    assert set(errors) == {"Patient", "Patient.identifier", "Patient.name"}
    assert "vn-pat-1" in errors["Patient"] and "at least 1" in errors["Patient.name"]


def test_an_icd10_code_of_the_wrong_shape() -> None:
    for code in ("E119x", "e11.9", "E1", "11.9"):
        errors = _errors_at(condition(code))
        assert list(errors) == ["Condition.code.coding[0].code"] and "vn-cond-1" in errors[
            "Condition.code.coding[0].code"], code


def test_a_condition_coded_only_in_another_system_lacks_its_icd10_slice() -> None:
    other = condition()
    other["code"] = {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]}
    errors = _errors_at(other)
    assert list(errors) == ["Condition.code.coding"] and "slice icd10" in errors["Condition.code.coding"]


def test_an_identifier_with_an_unknown_system_where_a_slice_requires_a_known_one() -> None:
    unknown = organization(identifier=[{"system": "urn:example:facility", "value": "79001"}])
    errors = _errors_at(unknown)
    assert list(errors) == ["Organization.identifier"] and "slice facilityCode" in errors["Organization.identifier"]
    lone = patient(identifier=[{"system": "urn:example:ids", "value": "1"}])
    assert list(_errors_at(lone)) == ["Patient"]  # vn-pat-1: none of the identifiers the city matches on


@pytest.mark.parametrize(("resource", "expression"), [
    (encounter(serviceProvider=None), "Encounter.serviceProvider"),
    (encounter(period=None), "Encounter.period"),
    (coverage(subscriberId=None), "Coverage.subscriberId"),
    (coverage(period={"start": "2025-01-01"}), "Coverage.period.end"),
    (observation(effectiveDateTime=None), "Observation.effective"),
    (patient(birthDate=None), "Patient.birthDate"),
    (patient(gender=None), "Patient.gender"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_a_missing_required_element(resource: dict[str, Any], expression: str) -> None:
    resource = {k: v for k, v in resource.items() if v is not None}
    errors = _errors_at(resource)
    assert list(errors) == [expression] and "requires at least 1" in errors[expression]


def test_a_birth_date_at_any_precision_or_only_its_extension_is_present() -> None:
    for when in ("1985", "1985-03", "1985-03-04"):
        assert _errors_at(patient(birthDate=when)) == {}
    absent = patient(_birthDate={"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                                                "valueCode": "unknown"}]})
    del absent["birthDate"]
    assert _errors_at(absent) == {}


@pytest.mark.parametrize(("resource", "expression", "key"), [
    (observation(valueQuantity={"value": 72, "unit": "beats"}), "Observation", "vn-obs-1"),
    (organization(identifier=[{"system": FACILITY, "value": "7901"}]), "Organization.identifier[0].value", "vn-org-1"),
    (coverage(identifier=[{"system": BHYT, "value": "1234"}]), "Coverage.identifier[0].value", "vn-cov-1"),
    (encounter(period={"end": "2025-03-01"}), "Encounter.period", "vn-enc-1"),
], ids=["ucum", "facility-code", "bhyt-card", "period-start"])
def test_a_profile_invariant_broken(resource: dict[str, Any], expression: str, key: str) -> None:
    errors = _errors_at(resource)
    assert list(errors) == [expression] and key in errors[expression]


def test_a_warning_invariant_is_a_warning() -> None:
    found = _profile_issues(patient(identifier=[{"system": CCCD, "value": "12345"}]))
    assert [(s, e) for s, e, m in found if "vn-pat-2" in m] == [("warning", "Patient.identifier[0].value")]


def test_a_slice_holds_at_most_its_max_and_the_expression_names_the_element() -> None:
    twice = patient(identifier=[{"system": CCCD, "value": "079085001234"}, {"system": CCCD, "value": "079085001235"}])
    errors = _errors_at(twice)
    assert list(errors) == ["Patient.identifier"] and "at most 1" in errors["Patient.identifier"]
    assert "slice personalId" in errors["Patient.identifier"]


def test_a_choice_restricted_to_datetime_or_period() -> None:
    assert _errors_at(observation(effectiveDateTime=None, effectivePeriod={"start": "2025-03-01"})) == {}
    instant = observation(effectiveInstant="2025-03-01T08:00:00+07:00")
    del instant["effectiveDateTime"]
    errors = _errors_at(instant)
    assert list(errors) == ["Observation.effectiveInstant"] and "dateTime or Period" in errors[
        "Observation.effectiveInstant"]


def test_an_extensible_binding_outside_its_set_is_a_warning() -> None:
    odd = encounter(**{"class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "XYZ"}})
    found = _profile_issues(odd)
    assert [(s, e) for s, e, _ in found if s != "information"] == [("warning", "Encounter.class")]
    assert "vn-encounter-class" in found[0][2] and "extensible" in found[0][2]


def test_an_absent_must_support_element_is_information() -> None:
    quiet = patient()
    del quiet["telecom"]
    found = _profile_issues(quiet)
    assert {s for s, _, _ in found} == {"information"}
    assert sorted((e, m.rsplit("slice ", 1)[-1][:-1] if "slice" in m else "") for _, e, m in found) == [
        ("Patient.identifier", "insuranceCard"), ("Patient.identifier", "socialInsurance"), ("Patient.telecom", "")]


def _synthetic(*elements: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "StructureDefinition", "url": HUB_PROFILE_BASE + "test", "type": "Patient",
            "derivation": "constraint", "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
            "differential": {"element": list(elements)}}


def test_fixed_pattern_required_binding_and_closed_slicing() -> None:
    test = parse(_synthetic(
        {"id": "Patient.active", "path": "Patient.active", "fixedBoolean": True},
        {"id": "Patient.maritalStatus", "path": "Patient.maritalStatus",
         "patternCodeableConcept": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"}]}},
        {"id": "Patient.gender", "path": "Patient.gender",
         "binding": {"strength": "required", "valueSet": "http://hl7.org/fhir/ValueSet/administrative-gender"}},
        {"id": "Patient.identifier", "path": "Patient.identifier",
         "slicing": {"discriminator": [{"type": "value", "path": "system"}], "rules": "closed"}},
        {"id": "Patient.identifier:cccd", "path": "Patient.identifier", "sliceName": "cccd"},
        {"id": "Patient.identifier:cccd.system", "path": "Patient.identifier.system", "fixedUri": CCCD}))
    good = {"resourceType": "Patient", "active": True, "gender": "male", "identifier": [{"system": CCCD, "value": "1"}],
            "maritalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
                                          "code": "M"}], "text": "married"}}
    assert check_profile(good, test) == []
    bad = {**good, "active": False, "gender": "robot", "identifier": [{"system": "urn:x", "value": "1"}],
           "maritalStatus": {"text": "married"}}
    found = {(i.code, i.expression) for i in check_profile(bad, test)}
    assert found == {("value", "Patient.active"), ("value", "Patient.maritalStatus"),
                     ("code-invalid", "Patient.gender"), ("structure", "Patient.identifier[0]")}


def test_a_profile_of_another_type_is_an_error() -> None:
    found = profile(PATIENT)
    assert found is not None
    assert [i.code for i in check_profile(observation(), found)] == ["invalid"]


# ---------------------------------------------------------------------------------------- VN Core aliases
def test_vn_core_identifier_systems_are_accepted_as_the_hubs() -> None:
    vn = "http://fhir.ehealth.gov.vn/core/sid/"
    aliases = json.loads((resources.files("profiles") / "city" / "systems.json").read_text())["aliases"]
    for system in (*aliases[CCCD], *aliases[BHYT], vn + "patient-internal-id"):
        assert _errors_at(patient(identifier=[{"system": system, "value": "079085001234"}])) == {}, system
    assert _errors_at(coverage(identifier=[{"system": vn + "insurance_number", "value": "HT1797952726305"}])) == {}
    assert _errors_at(organization(identifier=[{"system": vn + "provider-code", "value": "79001"}])) == {}
    vn_icd10 = condition()
    vn_icd10["code"]["coding"][0]["system"] = "http://terminology.hl7.org/CodeSystem/icd10"
    assert _errors_at(vn_icd10) == {}
    twice = patient(identifier=[{"system": CCCD, "value": "079085001234"}, {"system": vn + "national_id",
                                                                             "value": "079085001234"}])
    assert "slice personalId" in _errors_at(twice)["Patient.identifier"]  # one slice, either system


# ------------------------------------------------------------------------------------ enforcement on write
def test_a_claimed_profile_in_reject_mode_refuses_the_write() -> None:
    assert enforcement(CONDITION) == REJECT
    with pytest.raises(UnprocessableResource) as refused:
        validate_resource(condition("E119x"))
    assert [i.expression for i in refused.value.issues] == [("Condition.code.coding[0].code",)]
    unclaimed = condition("E119x")
    del unclaimed["meta"]
    validate_resource(unclaimed)  # the profile is a promise made by the claim only


def test_a_claimed_profile_in_warn_mode_is_accepted_and_validate_still_lists_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert enforcement(OBSERVATION) == WARN
    odd = observation(valueQuantity={"value": 72, "unit": "beats"})
    validate_resource(odd)
    assert [i.expression for i in validate(odd) if i.is_error] == ["Observation"]
    from profiles.validation import city
    monkeypatch.setattr(city, "_enforcement", lambda: {OBSERVATION: REJECT})
    with pytest.raises(UnprocessableResource):
        validate_resource(odd)


def test_a_requested_profile_is_checked_beside_the_claimed_ones() -> None:
    unclaimed = condition("E119x")
    del unclaimed["meta"]
    assert [i.expression for i in validate(unclaimed) if i.is_error] == []
    assert [i.expression for i in validate(unclaimed, profile=CONDITION) if i.is_error] == [
        "Condition.code.coding[0].code"]
    assert [i.code for i in validate(unclaimed, profile=PATIENT) if i.is_error] == ["not-supported"]


# ---------------------------------------------------------------------------------------------- hypothesis
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(VALID), st.data())
def test_a_mutated_profiled_resource_never_crashes_the_validator(resource: dict[str, Any], data: st.DataObject) -> None:
    changed = mutated(resource, data)
    found = profile(resource["meta"]["profile"][0])
    assert found is not None
    for issue in [*check_profile(changed, found), *validate(changed)]:
        assert issue.severity in ("error", "warning", "information") and issue.expression


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(VALID))
def test_an_unchanged_valid_profiled_resource_passes(resource: dict[str, Any]) -> None:
    assert [m for s, _, m in _profile_issues(resource) if s != "information"] == []
