"""HL7's FHIRPath Patch cases (``fhir-test-cases/r4/patch/fhir-patch-tests.xml``, read from ``../shared``)
through the hub's FHIRPath Patch (``fhir/fhirpath_patch.py``): each case's input, patched by its
``Parameters``, must equal its expected output, and a case that expects an error must be refused (422: a
patch that does not apply). The cases are FHIR XML: ``tests/fhir_xml.py`` reads them as FHIR JSON."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest

from fhir_hub.errors import BadRequest, UnprocessableResource
from fhir_hub.fhir.fhirpath_patch import fhirpath_patch
from tests.conftest import fixture_path
from tests.fhir_xml import resource_from_xml

# where the hub's answer differs from the case, and why (the case id -> the reason)
KNOWN: dict[str, str] = {}


def _cases() -> list[ET.Element]:
    path = fixture_path("fhir-test-cases", "r4", "patch", "fhir-patch-tests.xml")
    return list(ET.parse(path).getroot().iter("case"))


def _only(case: ET.Element, name: str) -> dict[str, Any] | None:
    holder = case.find(name)
    if holder is None:
        return None
    [resource] = list(holder)
    return resource_from_xml(resource)


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c.get("name"))
def test_each_fhirpath_patch_case(case: ET.Element) -> None:
    name = case.get("name", "?")
    if name in KNOWN:
        pytest.xfail(KNOWN[name])
    document, parameters = _only(case, "input"), _only(case, "diff")
    assert document is not None and parameters is not None
    error = case.find("error")
    if error is not None:
        with pytest.raises((BadRequest, UnprocessableResource)):
            fhirpath_patch(parameters)(document)
        return
    assert fhirpath_patch(parameters)(document) == _only(case, "output")


def test_the_reader_reads_primitives_lists_and_narratives() -> None:
    """The XML reader itself: JSON types, arrays where an element repeats, a primitive's extension in its
    ``_`` twin, a choice element by its typed name, the narrative's XHTML as markup."""
    xml = ('<Patient xmlns="http://hl7.org/fhir"><text><status value="generated"/>'
           '<div xmlns="http://www.w3.org/1999/xhtml"><p>Lan</p></div></text>'
           '<active value="true"/><name><given value="Thị"/><given id="g2" value="Lan"/></name>'
           '<multipleBirthInteger value="2"/><birthDate value="1956">'
           '<extension url="urn:x"><valueString value="y"/></extension></birthDate></Patient>')
    assert resource_from_xml(ET.fromstring(xml)) == {
        "resourceType": "Patient",
        "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml"><p>Lan</p></div>'},
        "active": True, "name": [{"given": ["Thị", "Lan"], "_given": [None, {"id": "g2"}]}],
        "multipleBirthInteger": 2, "birthDate": "1956",
        "_birthDate": {"extension": [{"url": "urn:x", "valueString": "y"}]}}
