"""HL7's JSON Patch cases (``fhir-test-cases/r4/patch/json-patch-tests.json``, read from ``../shared``) through
the hub's JSON Patch (``fhir/patch.py``): each case's expected document, or its expected error as a 400 (a
malformed patch) or a 422 (one that does not apply). The FHIRPath Patch cases of the same folder are FHIR
XML (``fhir-patch-tests.xml``), run by ``tests/profiles/test_fhirpath_patch_suite.py``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fhir_hub.errors import BadRequest, UnprocessableResource
from fhir_hub.fhir.patch import json_patch
from tests.conftest import fixture_path


def _cases() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(fixture_path("fhir-test-cases", "r4", "patch",
                                                          "json-patch-tests.json").read_text(encoding="utf-8"))
    return found


@pytest.mark.parametrize("case", _cases(), ids=lambda c: str(c.get("comment", "?"))[:50])
def test_each_json_patch_case(case: dict[str, Any]) -> None:
    if "error" in case:
        with pytest.raises((BadRequest, UnprocessableResource)):
            json_patch(case["patch"])(case["doc"])
    else:
        assert json_patch(case["patch"])(case["doc"]) == case["expected"]
