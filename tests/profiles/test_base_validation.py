"""The base checks (``profiles.validation``) on their own: bindings by type, invariants, the skip lists kept
honest, and no crash on any mutation of a valid resource."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhir_hub.fhir.registry import is_resource_type, model_class
from profiles.validation import validate
from profiles.validation.definitions import constraints, not_enumerable, type_definition, value_set
from profiles.validation.invariants import compiled, unsupported
from tests.api.test_examples import BREAKS_AN_INVARIANT, EXAMPLES, R4_DIR
from tests.profiles.mutations import mutated, paths

CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"


def _errors(resource: dict[str, Any]) -> list[str]:
    return [f"{i.expression}: {i.message}" for i in validate(resource) if i.is_error]


def condition(clinical: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Condition", "subject": {"reference": "Patient/1"}, "clinicalStatus": clinical}


def test_a_codeable_concept_passes_when_one_coding_is_in_the_set() -> None:
    good = {"system": CONDITION_CLINICAL, "code": "active"}
    local = {"system": "http://hospital.example/status", "code": "A"}
    assert _errors(condition({"coding": [local, good]})) == []
    assert "Condition.clinicalStatus" in _errors(condition({"coding": [local]}))[0]
    assert _errors(condition({"text": "active"}))  # no coding at all: not from the value set
    assert _errors(condition({"coding": [{"system": "http://other.example", "code": "active"}]}))


def test_a_coding_is_checked_with_its_system() -> None:
    message = {"resourceType": "MessageHeader", "source": {"endpoint": "http://x"},
               "eventCoding": {"system": "http://x", "code": "y"},
               "response": {"identifier": "abc", "code": "fine"}}
    assert [e.split(":")[0] for e in _errors(message)] == ["MessageHeader.response.code"]


def test_a_value_set_the_data_cannot_enumerate_is_skipped_not_guessed() -> None:
    assert "http://hl7.org/fhir/ValueSet/mimetypes" in not_enumerable()
    assert value_set("http://hl7.org/fhir/ValueSet/mimetypes") is None
    photo = {"resourceType": "Patient", "photo": [{"contentType": "image/not-a-real-type", "data": "AAAA"}]}
    assert _errors(photo) == []


def test_an_element_with_only_an_id_breaks_ele_1() -> None:
    assert any("ele-1" in e for e in _errors({"resourceType": "Patient", "maritalStatus": {"id": "x"}}))


def test_datatype_invariants_apply_inside_resources() -> None:
    extension = {"url": "http://x", "valueString": "a", "extension": [{"url": "y", "valueString": "b"}]}
    found = _errors({"resourceType": "Patient", "name": [{"extension": [extension]}]})
    assert found and "Patient.name[0].extension[0]" in found[0] and "ext-1" in found[0]


def test_nested_resources_are_checked_as_their_type() -> None:
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"resource": {"resourceType": "Patient", "gender": "robot"}}]}
    assert _errors(bundle)[0].startswith("Bundle.entry[0].resource.gender")


def test_every_invariant_compiles_once_and_the_skip_list_names_real_ones() -> None:
    assert set(unsupported()) <= set(constraints())
    for cid in constraints():
        assert compiled(cid) is compiled(cid)  # cached: compiled once
    assert all(reason for reason in unsupported().values())


def test_unknown_claimed_profiles_are_a_warning() -> None:
    found = validate({"resourceType": "Patient", "meta": {"profile": [
        "http://hl7.org/fhir/StructureDefinition/Patient", "http://example.org/StructureDefinition/vn-patient"]}})
    claimed = [i for i in found if i.expression.startswith("Patient.meta.profile")]
    assert [(i.severity, i.expression) for i in claimed] == [("warning", "Patient.meta.profile[1]")]


def _examples() -> list[dict[str, Any]]:
    return [orjson.loads((R4_DIR / name).read_bytes().removeprefix(b"\xef\xbb\xbf")) for name in EXAMPLES]


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_hl7_example_the_hub_accepts_passes_the_base_checks(name: str) -> None:
    resource = orjson.loads((R4_DIR / name).read_bytes().removeprefix(b"\xef\xbb\xbf"))
    found = validate(resource)
    problems = [i.message for i in found if i.is_error or i.code == "not-supported" and "invariant" in i.message]
    if name in BREAKS_AN_INVARIANT:
        assert problems and all(f"invariant {BREAKS_AN_INVARIANT[name]}:" in p for p in problems), problems
    else:
        assert problems == []


_SAMPLES = [r for r in _examples() if is_resource_type(r["resourceType"])][:40]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_SAMPLES), st.data())
def test_a_mutated_resource_never_crashes_the_validator(resource: dict[str, Any], data: st.DataObject) -> None:
    for issue in validate(mutated(resource, data)):  # issues only, whatever the data
        assert issue.severity in ("error", "warning", "information") and issue.expression


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(_SAMPLES))
def test_an_unchanged_valid_resource_passes(resource: dict[str, Any]) -> None:
    model_class(resource["resourceType"]).model_validate(resource)
    assert _errors(resource) == []


def test_type_definitions_expand_choices_and_content_references() -> None:
    observation = type_definition("Observation")
    assert observation is not None and observation.properties["Observation"]["valueQuantity"].type == "Quantity"
    questionnaire = type_definition("Questionnaire")
    assert questionnaire is not None
    assert questionnaire.properties["Questionnaire.item"]["item"].children == "Questionnaire.item"


_CHANGES = [None, {"valueString": "x"}, {"extension": [{"url": "http://x", "valueString": "y"}]},
            {"reference": "#nope"}, {"reference": "Patient/1"}, {"valueQuantity": {"value": 1}},
            {"dataAbsentReason": {"text": "x"}}, {"clinicalStatus": {"text": "x"}}, {"code": "x"}, {"system": "y"},
            {"contained": [{"resourceType": "Basic", "id": "b"}]},
            {"text": {"status": "empty", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}}]


def _without_shortcuts(monkeypatch: pytest.MonkeyPatch) -> None:
    from profiles.validation import shortcuts

    monkeypatch.setattr(shortcuts, "holds", lambda cid, node: False)
    monkeypatch.setattr(shortcuts, "focus_properties", lambda cid: None)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(st.sampled_from(_SAMPLES), st.data())
def test_the_shortcuts_give_what_fhirpath_gives(monkeypatch: pytest.MonkeyPatch, resource: dict[str, Any],
                                                 data: st.DataObject) -> None:
    """ref-1 and ext-1 read in Python, leading ``X.empty() or``/``X.exists() or`` disjuncts, and one answer per
    invariant for nodes without the properties it reads: the same issues as evaluating every invariant on every
    node, on valid and mutated resources."""
    changed = copy.deepcopy(resource)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths(changed) or [("id",)]))
        parent = changed
        for step in path[:-1]:
            parent = parent[step]
        if not isinstance(parent, dict):
            continue
        change = data.draw(st.sampled_from(_CHANGES))
        if change is None:
            parent.pop(path[-1], None)
        else:
            parent.update(copy.deepcopy(change))  # what the shortcuts read: values, extensions, references
    fast = validate(changed)
    with monkeypatch.context() as patched:
        _without_shortcuts(patched)
        assert validate(changed) == fast


def test_a_local_reference_to_a_missing_contained_resource_breaks_ref_1() -> None:
    found = _errors({"resourceType": "Patient", "generalPractitioner": [{"reference": "#nope"}]})
    assert found and "ref-1" in found[0] and found[0].startswith("Patient.generalPractitioner[0]")
    assert _errors({"resourceType": "Patient", "contained": [{"resourceType": "Practitioner", "id": "gp"}],
                    "generalPractitioner": [{"reference": "#gp"}]}) == []


def test_a_bundle_entrys_local_reference_is_read_in_the_entrys_own_contained() -> None:
    """A Bundle's entry is a resource of its own (``%rootResource`` is the entry's resource, not the Bundle):
    its ``#gp`` finds its own contained Practitioner, and a missing one still breaks ref-1 (a document Bundle,
    ``$summary``, serves stored resources with their contained ones as they are)."""
    patient = {"resourceType": "Patient", "contained": [{"resourceType": "Practitioner", "id": "gp"}],
               "generalPractitioner": [{"reference": "#gp"}]}
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": patient}]}
    assert _errors(bundle) == []
    broken = {**bundle, "entry": [{"resource": {**patient, "generalPractitioner": [{"reference": "#nope"}]}}]}
    found = _errors(broken)  # (its contained Practitioner, now referred to by nobody, breaks dom-3 too)
    assert any("ref-1" in f and f.startswith("Bundle.entry[0].resource.generalPractitioner[0]") for f in found), found
