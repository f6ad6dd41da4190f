"""Structural validation: what is refused, with which code, and the element path in the message."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fhir_hub.errors import HubError, InvalidResource, UnprocessableResource
from fhir_hub.fhir.registry import resource_types
from fhir_hub.fhir.validation import element_path, validate_resource


def test_resource_types_come_from_the_models() -> None:
    types = resource_types()
    assert "Patient" in types and "Observation" in types and "Bundle" in types
    assert "Parameters" not in types  # no RESTful endpoint in the spec
    assert "Resource" not in types and "DomainResource" not in types and "Address" not in types
    # R4's types the R4B models know (issue 21): the R4B-only ones are not R4, the R4-only ones have no model
    assert len(types) == 127 and "Citation" not in types and "SubscriptionTopic" not in types
    assert "MedicinalProduct" not in types


def test_valid_resource_passes() -> None:
    assert validate_resource({"resourceType": "Patient", "birthDate": "1990", "active": True,
                              "name": [{"family": "Trần", "given": ["Thị", "Bích"]}],
                              "_birthDate": {"extension": [{"url": "urn:x", "valueString": "lunar"}]}},
                             expected_type="Patient") == "Patient"


@pytest.mark.parametrize(("resource", "error", "code", "path"), [
    ({"resourceType": "Patient", "name": [{"family": 3}]}, InvalidResource, "structure", "Patient.name[0].family"),
    ({"resourceType": "Patient", "deceasedBoolean": "true"}, InvalidResource, "value", "Patient.deceasedBoolean"),
    ({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "valueQuantity": {"value": "1.5"}},
     InvalidResource, "value", "Observation.valueQuantity.value"),
    ({"resourceType": "Patient", "name": [{"given": ["An", None]}]}, None, None, None),  # null in arrays is allowed
    ({"resourceType": "Observation", "status": "final"}, UnprocessableResource, "required", "Observation.code"),
    ({"resourceType": "Patient", "_gender": {}}, InvalidResource, "structure", "Patient._gender"),
    ({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Patient",
                                                                              "birthDate": "x"}}]},
     InvalidResource, "value", "Bundle.entry[0].resource.birthDate"),
])
def test_errors_name_the_element(resource: dict[str, Any], error: type[HubError] | None, code: str | None,
                                 path: str | None) -> None:
    if error is None:
        validate_resource(resource)
        return
    with pytest.raises(error) as raised:
        validate_resource(resource)
    issue = raised.value.issues[0]
    assert issue.code == code
    assert path in issue.expression and issue.diagnostics.startswith(path)


def test_many_problems_are_reported_together() -> None:
    with pytest.raises(InvalidResource) as raised:
        validate_resource({"resourceType": "Patient", "a": 1, "b": 2, "c": 3})
    assert len(raised.value.issues) == 3
    assert "and 2 more problems" in raised.value.diagnostics


def test_element_path_drops_pydantic_internals() -> None:
    assert element_path("Patient", ("name", 0, "function-after[validate(), str]", "given", 1)) == \
        "Patient.name[0].given[1]"
    assert element_path("Patient", ("birthDate__ext", "id")) == "Patient._birthDate.id"


json_leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
json_any = st.recursive(json_leaf, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c,
                                                                                        max_size=3), max_leaves=10)


@settings(max_examples=300)
@given(rtype=st.sampled_from(["Patient", "Observation", "Encounter", "Bundle", "Condition"]),
       body=st.dictionaries(st.sampled_from(["id", "meta", "text", "contained", "extension", "status", "code",
                                             "subject", "identifier", "name", "entry", "type", "valueQuantity",
                                             "effectiveDateTime", "active", "zzz"]), json_any, max_size=5))
def test_validation_never_fails_with_anything_but_a_hub_error(rtype: str, body: dict[str, Any]) -> None:
    try:
        validate_resource({"resourceType": rtype, **body})
    except HubError as err:
        assert err.status in (400, 422)
        assert all(issue.diagnostics for issue in err.issues)
