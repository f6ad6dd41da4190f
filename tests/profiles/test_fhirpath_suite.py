"""HL7's FHIRPath test suite (``fhir-test-cases/r4/fhirpath/tests-fhir-r4.xml``, read from ``../shared``) run
against the engine the hub's invariants use: fhirpathpy, compiled with the hub's FHIR additions
(``profiles.validation.invariants.compile_fhirpath``).

The tests fhirpathpy fails are listed, by name, in ``fhirpath-failures.txt`` beside this file; this test
checks that the engine fails exactly those (a new failure is a regression of the engine or of the hub's
additions, a new pass is a line to delete). Tests on an input the suite has only as XML (the hub reads FHIR
JSON; ``r4/examples`` has JSON for three of them) are counted apart and not run.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from profiles.validation.invariants import compile_fhirpath
from tests.conftest import FIXTURES, fixture_path

FAILURES = Path(__file__).with_name("fhirpath-failures.txt")


@dataclass(frozen=True)
class Case:
    name: str
    expression: str
    inputfile: str | None
    invalid: str | None  # the error kind the expression must raise, if any
    outputs: tuple[tuple[str, str], ...]  # (type, text)
    predicate: bool  # the output is whether the result is non-empty


@cache
def cases() -> tuple[Case, ...]:
    tree = ET.parse(fixture_path("fhir-test-cases", "r4", "fhirpath", "tests-fhir-r4.xml"))
    found = []
    for test in tree.iter("test"):
        expression = test.find("expression")
        assert expression is not None and expression.text is not None
        found.append(Case(test.attrib["name"], expression.text, test.attrib.get("inputfile"),
                          expression.attrib.get("invalid"),
                          tuple((o.attrib.get("type", ""), o.text or "") for o in test.iter("output")),
                          test.attrib.get("predicate") == "true"))
    return tuple(found)


@cache
def json_input(name: str) -> dict[str, Any] | None:
    """The JSON form of a test's input: the file itself, or its JSON twin in ``r4/examples``."""
    for parts in (("r4", name), ("r4", "examples", name.replace(".xml", ".json"))):
        path = FIXTURES.joinpath("fhir-test-cases", *parts)
        if path.suffix == ".json" and path.exists():
            loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8-sig"))
            return loaded
    return None


def _normal(value: Any) -> str:
    """A result as the suite writes an output: ``true``, ``4``, ``1.5``, ``2015-02-04``, ``5 'mg'``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float | Decimal):
        return format(Decimal(str(value)).normalize(), "f")
    text = str(value)
    return text


def _expected(kind: str, text: str) -> str:
    text = text.strip()
    if kind in ("date", "dateTime", "time"):
        return text.removeprefix("@").removeprefix("T")
    if kind == "decimal":
        return format(Decimal(text).normalize(), "f")
    return text


def outcome(case: Case) -> str:
    """"pass", "fail: why" or "no-json-input"."""
    resource = json_input(case.inputfile) if case.inputfile else {}
    if resource is None:
        return "no-json-input"
    try:
        result = compile_fhirpath(case.expression)(resource, {})
    except Exception as exc:  # noqa: BLE001 - fhirpathpy raises bare Exceptions; the suite counts the kind
        return "pass" if case.invalid else f"fail: raised {type(exc).__name__}"
    if case.invalid:
        return f"fail: expected a {case.invalid} error, got {result!r:.60}"
    got = [_normal(bool(result))] if case.predicate else [_normal(v) for v in result]
    wanted = [_expected(kind, text) for kind, text in case.outputs]
    return "pass" if got == wanted else f"fail: got {got!r:.60}, expected {wanted!r:.60}"


def test_the_engine_fails_exactly_the_listed_tests() -> None:
    results = {case.name: outcome(case) for case in cases()}
    failed = sorted(name for name, found in results.items() if found.startswith("fail"))
    listed = sorted(line.split(" ", 1)[0] for line in FAILURES.read_text(encoding="utf-8").splitlines()
                    if line.strip() and not line.startswith("#"))
    assert len(results) > 900
    new = sorted(set(failed) - set(listed))
    fixed = sorted(set(listed) - set(failed))
    assert not new, "failing now, not listed: " + "; ".join(f"{n}: {results[n]}" for n in new[:10])
    assert not fixed, f"passing now, still listed (delete them): {fixed[:10]}"


@pytest.mark.parametrize("name", ["testSimple", "testPolymorphismIsA1", "testLiteralTrue", "testDistinct1"])
def test_known_good_cases_pass(name: str) -> None:
    """A few plain cases, so that a broken runner (everything failing, all listed) cannot pass silently."""
    (case,) = [c for c in cases() if c.name == name]
    assert outcome(case) == "pass"
