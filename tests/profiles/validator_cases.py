"""HL7's validator test cases (``fhir-test-cases/validator/manifest.json``, read from ``../shared``, never
copied) and the hub's verdict on each: what ``tests/profiles/test_validator_suite.py`` compares.

**Which cases.** Of the manifest's 974 cases, those a server holding only the R4 specification can judge:
1. R4: ``version`` 4.0 or 4.0.x (629);
2. with the reference validator's expected outcome (a ``java`` entry: an OperationOutcome file under
   ``outcomes/java/``, or an inline ``errorCount``);
3. needing no file or package beside the input: none of ``supporting``, ``profiles``, ``supporting5``,
   ``packages``, ``package-map``, ``fetcher``, ``logical``, ``certificate`` (a ``profile`` step is kept: only
   the base outcome, the ``java`` entry, is compared, and it needs no profile);
4. needing no terminology server: not in the ``tx`` or ``tx-advanced`` modules, and no issue of the expected
   outcome was reported by the terminology server (it carries the ``operationoutcome-issue-server``
   extension: wrong LOINC displays, unknown SNOMED codes...);
5. whose expected outcome file is in the snapshot (13 are not);
6. whose input is JSON: the hub reads FHIR JSON only (no XML parser), so XML and text inputs are left out;
7. whose input file is in the snapshot.

**The verdict.** The input's bytes go through the hub's body parser (``parse_json_object``: a body it cannot
read is invalid, one error) and then through ``fhir_hub.services.validate.check``, the function ``$validate``
runs (structure, base bindings and invariants, the city profiles claimed), in ``create`` mode. Its error
and fatal issues are counted, as are the reference outcome's.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from fhir_hub.errors import HubError, Issue
from fhir_hub.fhir.jsonio import parse_json_object
from fhir_hub.services.validate import ValidateRequest, check

EXTERNAL = ("supporting", "profiles", "supporting5", "packages", "package-map", "fetcher", "logical", "certificate")
TERMINOLOGY_MODULES = frozenset({"tx", "tx-advanced"})
_SERVER = "http://hl7.org/fhir/StructureDefinition/operationoutcome-issue-server"
_ERRORS = frozenset({"error", "fatal"})


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    file: str
    module: str | None
    expected_errors: int  # the reference validator's error and fatal issues


@dataclass(frozen=True, slots=True)
class Result:
    case: Case
    errors: tuple[Issue, ...]  # the hub's

    @property
    def verdict_agrees(self) -> bool:
        return (self.case.expected_errors > 0) == bool(self.errors)

    @property
    def count_agrees(self) -> bool:
        return self.case.expected_errors == len(self.errors)


def _expected(folder: Path, test: dict[str, Any]) -> list[dict[str, Any]] | int | None:
    """The reference outcome's issues (or an inline error count); None when its file is missing."""
    java = test["java"]
    if isinstance(java, dict):
        return int(java.get("errorCount", 0))
    path = folder / "outcomes" / java
    if not path.exists():
        return None
    issues: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8")).get("issue", [])
    return issues


def _from_terminology_server(issue: dict[str, Any]) -> bool:
    return any(e.get("url") == _SERVER for e in issue.get("extension", []))


def _left_out(folder: Path, test: dict[str, Any]) -> str | Case:
    """Why ``test`` is not selected (the rule's step, in the module docstring's words), or its Case."""
    if not str(test.get("version", "")).startswith("4.0"):
        return "not R4"
    if not test.get("java"):
        return "no reference outcome"
    if any(key in test for key in EXTERNAL):
        return "needs files or packages beside the input"
    if test.get("module") in TERMINOLOGY_MODULES:
        return "needs a terminology server (module)"
    expected = _expected(folder, test)
    if expected is None:
        return "reference outcome missing from the snapshot"
    if isinstance(expected, list) and any(_from_terminology_server(i) for i in expected):
        return "needs a terminology server (issues it reported)"
    if not str(test["file"]).endswith(".json"):
        return "input not JSON"
    if not (folder / str(test["file"])).exists():
        return "input missing from the snapshot"
    count = expected if isinstance(expected, int) else sum(i.get("severity") in _ERRORS for i in expected)
    return Case(str(test["name"]), str(test["file"]), test.get("module"), count)


@cache
def selection(folder: Path) -> tuple[tuple[Case, ...], Counter[str]]:
    """The selected cases, and how many of the others were left out at each step."""
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    cases: list[Case] = []
    left_out: Counter[str] = Counter()
    for test in manifest["test-cases"]:
        found = _left_out(folder, test)
        if isinstance(found, Case):
            cases.append(found)
        else:
            left_out[found] += 1
    return tuple(cases), left_out


def run(folder: Path, case: Case) -> Result:
    try:
        resource = parse_json_object((folder / case.file).read_bytes(), what=case.file)
    except HubError as error:
        return Result(case, error.issues)
    request = ValidateRequest(resource, "create", None)
    issues = check(str(resource.get("resourceType", "")), None, request)
    return Result(case, tuple(i for i in issues if i.severity in _ERRORS))
