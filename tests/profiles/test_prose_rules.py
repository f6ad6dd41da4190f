"""The checks the HL7 validator cases found missing (``test_validator_suite.py``), each on its own: the rules
the specification states in prose (``rules.py``, ``conformance.py``), the invariants read in Python
(``native.py``), the corrected ``que-12``, and ``%rootResource`` in a Bundle entry."""

from __future__ import annotations

import base64
from typing import Any

from profiles.validation import validate

XHTML = 'xmlns="http://www.w3.org/1999/xhtml"'


def _errors(resource: dict[str, Any]) -> list[str]:
    return [i.message for i in validate(resource) if i.is_error]


def _patient_with_div(div: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "text": {"status": "generated", "div": div}}


def test_a_plain_narrative_passes() -> None:
    assert _errors(_patient_with_div(f'<div {XHTML}><p>Ann <b>Lee</b></p><img src="#a" alt="x"/></div>')) == []


def test_txt_1_refuses_scripts_event_attributes_and_what_is_not_xhtml() -> None:
    for div in (f"<div {XHTML}><script>alert(1)</script>x</div>",
                f'<div {XHTML}><p onclick="steal()">x</p></div>',
                f"<div {XHTML}>&reg; 2024</div>",  # an HTML entity: not XML
                f"<div {XHTML}><p>cut off</div>",
                "<div><p>no XHTML namespace</p></div>",
                f"<p {XHTML}>not a div</p>"):
        found = _errors(_patient_with_div(div))
        assert found and all("txt-1" in f for f in found), (div, found)


def test_txt_2_wants_some_content() -> None:
    assert any("txt-2" in f for f in _errors(_patient_with_div(f"<div {XHTML}>  <p> </p></div>")))


def test_dom_3_a_contained_resource_is_referenced_or_refers_back() -> None:
    org = {"resourceType": "Organization", "id": "org", "name": "Clinic"}
    patient = {"resourceType": "Patient", "contained": [org]}
    assert any("dom-3" in f for f in _errors(patient))
    assert _errors({**patient, "managingOrganization": {"reference": "#org"}}) == []
    back = {**org, "partOf": {"reference": "#"}}
    assert _errors({"resourceType": "Patient", "contained": [back]}) == []


def test_ref_1_resolves_in_the_bundle_entry_not_in_the_bundle() -> None:
    coverage = {"resourceType": "Coverage", "status": "active", "beneficiary": {"reference": "Patient/1"},
                "payor": [{"reference": "#payer"}],
                "contained": [{"resourceType": "Organization", "id": "payer", "name": "Payer"}]}
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"fullUrl": "urn:uuid:1", "resource": coverage}]}
    assert _errors(bundle) == []
    unresolved = {**coverage, "payor": [{"reference": "#other"}]}
    found = _errors({**bundle, "entry": [{"fullUrl": "urn:uuid:1", "resource": unresolved}]})
    assert any("ref-1" in f for f in found)


def test_que_12_is_read_as_corrected() -> None:
    when = {"question": "1", "operator": "=", "answerBoolean": True}
    item = {"linkId": "2", "type": "string", "enableWhen": [when, when]}
    questionnaire = {"resourceType": "Questionnaire", "status": "active", "item": [item]}
    assert any("que-12" in f for f in _errors(questionnaire))
    assert _errors({**questionnaire, "item": [{**item, "enableBehavior": "any"}]}) == []


def test_a_resource_id_is_at_most_64_characters_contained_ones_too() -> None:
    assert _errors({"resourceType": "Patient", "id": "a" * 64}) == []
    assert "Patient.id" in _errors({"resourceType": "Patient", "id": "a" * 65})[0]
    contained = {"resourceType": "Organization", "id": "b" * 65, "name": "x"}
    found = _errors({"resourceType": "Patient", "contained": [contained],
                     "managingOrganization": {"reference": "#" + "b" * 65}})
    assert [f.split(":")[0] for f in found] == ["Patient.contained[0].id"]


def test_a_string_is_at_most_one_megabyte() -> None:
    found = _errors({"resourceType": "Patient", "name": [{"text": "x" * (1024 * 1024 + 1)}]})
    assert [f.split(":")[0] for f in found] == ["Patient.name[0].text"]


def test_base64_and_attachment_size() -> None:
    data = base64.b64encode(b"fourteen bytes").decode()
    photo = {"contentType": "image/png", "data": data}
    assert _errors({"resourceType": "Patient", "photo": [{**photo, "size": 14}]}) == []
    assert "Patient.photo[0].size" in _errors({"resourceType": "Patient", "photo": [{**photo, "size": 100}]})[0]
    assert "Patient.photo[0].data" in _errors({"resourceType": "Patient", "photo": [{**photo, "data": "..."}]})[0]


def test_a_bundle_entry_full_url_is_absolute() -> None:
    entry = {"resource": {"resourceType": "Basic", "code": {"text": "x"}}}
    good = [{**entry, "fullUrl": u} for u in ("urn:uuid:9b5c1b2e-0000-4000-8000-000000000000", "http://x.org/Basic/1")]
    assert _errors({"resourceType": "Bundle", "type": "collection", "entry": good}) == []
    found = _errors({"resourceType": "Bundle", "type": "collection", "entry": [{**entry, "fullUrl": "Basic/1"}]})
    assert [f.split(":")[0] for f in found] == ["Bundle.entry[0].fullUrl"]


def test_a_derived_search_parameter_keeps_the_type_and_bases() -> None:
    sp = {"resourceType": "SearchParameter", "url": "http://x.org/sp", "name": "n", "status": "active",
          "description": "d", "code": "name", "base": ["Organization"], "type": "string",
          "derivedFrom": "http://hl7.org/fhir/SearchParameter/Organization-name", "expression": "Organization.name"}
    assert _errors(sp) == []
    assert [f.split(":")[0] for f in _errors({**sp, "type": "token"})] == ["SearchParameter.type"]
    assert [f.split(":")[0] for f in _errors({**sp, "base": ["Patient"]})] == ["SearchParameter.base[0]"]


def test_a_capability_statement_search_param_has_its_definition_type() -> None:
    param = {"name": "clinical-status", "type": "token",
             "definition": "http://hl7.org/fhir/SearchParameter/AllergyIntolerance-clinical-status"}
    cs = {"resourceType": "CapabilityStatement", "status": "active", "date": "2024", "kind": "requirements",
          "description": "d", "fhirVersion": "4.0.1", "format": ["json"],
          "rest": [{"mode": "server", "resource": [{"type": "AllergyIntolerance", "searchParam": [param]}]}]}
    assert _errors(cs) == []
    bad = {**cs, "rest": [{"mode": "server", "resource": [{"type": "AllergyIntolerance",
                                                           "searchParam": [{**param, "type": "date"}]}]}]}
    assert [f.split(":")[0] for f in _errors(bad)] == ["CapabilityStatement.rest[0].resource[0].searchParam[0].type"]


def test_a_profile_differential_names_only_elements_of_its_type() -> None:
    sd = {"resourceType": "StructureDefinition", "url": "http://x.org/sd", "name": "X", "status": "draft",
          "kind": "resource", "abstract": False, "type": "Observation", "derivation": "constraint",
          "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Observation",
          "differential": {"element": [{"id": "Observation.value[x]", "path": "Observation.value[x]"},
                                       {"id": "Observation.valueQuantity", "path": "Observation.valueQuantity"},
                                       {"id": "Observation.component.code", "path": "Observation.component.code"}]}}
    assert _errors(sd) == []
    bad = {**sd, "differential": {"element": [{"id": "Observation.valueBla", "path": "Observation.valueBla"}]}}
    assert [f.split(":")[0] for f in _errors(bad)] == ["StructureDefinition.differential.element[0].path"]


def test_que_7_an_exists_condition_takes_a_boolean_answer() -> None:
    when = {"question": "1", "operator": "exists", "answerBoolean": True}
    questionnaire = {"resourceType": "Questionnaire", "status": "active",
                     "item": [{"linkId": "2", "type": "string", "enableWhen": [when]}]}
    assert _errors(questionnaire) == []
    wrong = {"question": "1", "operator": "exists", "answerString": "yes"}
    item = {"linkId": "2", "type": "string", "enableWhen": [wrong]}
    assert any("que-7" in f for f in _errors({**questionnaire, "item": [item]}))
