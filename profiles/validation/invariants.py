"""Invariants: the FHIRPath constraints of the base specification, evaluated with fhirpathpy.

Each expression is compiled once (``compiled``, cached) and run on the element it constrains, typed with
its definition's path so that choice elements resolve (``value`` finds ``valueQuantity``). A few that
fhirpathpy cannot run are read in Python instead (``native``: ``txt-1``, ``txt-2``, ``dom-3``); the others
it cannot run are listed once, with the reason, in ``unsupported-invariants.json`` and skipped;
one that raises anyway is reported as a warning naming the invariant (so it shows in ``$validate``), never
swallowed and never turned into a rejection the specification does not make. ``shortcuts`` spares most
evaluations, never changing a verdict.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any, cast

from fhirpathpy import compile as fhirpath_compile
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models

from profiles.validation import shortcuts
from profiles.validation.definitions import constraints
from profiles.validation.issues import ERROR, WARNING, ValidationIssue
from profiles.validation.native import NATIVE

_R4 = models["r4"]
Evaluator = Callable[[Any, dict[str, Any]], list[Any]]


@cache
def unsupported() -> dict[str, str]:
    """Constraint id -> why it is not evaluated."""
    text = (resources.files("profiles.validation") / "unsupported-invariants.json").read_text(encoding="utf-8")
    found: dict[str, str] = json.loads(text)
    return found


@cache
def compiled(cid: str) -> Evaluator | None:
    """None for an invariant not evaluated with FHIRPath (read in Python, or unsupported)."""
    if cid in unsupported() or cid in NATIVE:
        return None
    return compile_fhirpath(constraints()[cid].expression)


def compile_fhirpath(expression: str) -> Evaluator:
    """One invariant's expression compiled with the FHIR additions (the base's and the city profiles')."""
    # fhirpathpy annotates compile()'s result as taking a Mapping; it takes any node (a typed ResourceNode here)
    options = {"traceFn": _no_trace, "userInvocationTable": _FHIR_FUNCTIONS}
    return cast(Evaluator, fhirpath_compile(expression, _R4, options))


def _has_value(inputs: list[Any]) -> list[bool]:
    """FHIR's ``hasValue()`` (fhirpath.html#functions, the FHIR additions), which fhirpathpy lacks: a single
    primitive with a value. bdl-10, age-1 and others use it."""
    return [len(inputs) == 1 and inputs[0] is not None and not isinstance(inputs[0], dict | list)]


_FHIR_FUNCTIONS = {"hasValue": {"fn": _has_value, "arity": {0: []}}}


def _no_trace(*_: Any) -> None:
    """dom-3 ends in ``trace('unmatched', id)``, which fhirpathpy prints to stdout without a trace function."""


# (constraint, type path) -> whether it fails on an element that has none of the properties it reads: such an
# element gives the same answer as any other (``contained.contained.empty()`` on a resource with no ``contained``)
_ON_ABSENT: dict[tuple[str, str], bool] = {}


def check_invariant(cid: str, node: Any, type_path: str, expression: str,
                    resource: dict[str, Any], root: dict[str, Any]) -> ValidationIssue | None:
    native = NATIVE.get(cid)
    if native is not None:
        return None if native(node) else _broken(cid, expression)
    evaluate = compiled(cid)
    if evaluate is None:
        return None
    if shortcuts.holds(cid, node):
        return None
    properties = shortcuts.focus_properties(cid)
    absent = properties is not None and shortcuts.reads_nothing_of(node, properties)
    if absent and (cid, type_path) in _ON_ABSENT:
        fails = _ON_ABSENT[cid, type_path]
    else:
        constraint = constraints()[cid]
        try:
            result = evaluate(ResourceNode.create_node(node, type_path), {"resource": resource, "rootResource": root})
        except Exception as exc:  # fhirpathpy raises bare Exceptions for what it does not implement
            return ValidationIssue(WARNING, "not-supported", expression,
                                   f"{expression}: the invariant {constraint.key} could not be evaluated "
                                   f"({type(exc).__name__}: {str(exc)[:80]}); add it to unsupported-invariants.json")
        fails = result == [False]
        if absent:
            _ON_ABSENT[cid, type_path] = fails
    return _broken(cid, expression) if fails else None


def _broken(cid: str, expression: str) -> ValidationIssue:
    constraint = constraints()[cid]
    severity = ERROR if constraint.severity == "error" else WARNING
    return ValidationIssue(severity, "invariant", expression,
                           f"{expression}: breaks the invariant {constraint.key}: {constraint.human}")
