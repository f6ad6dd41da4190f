"""Where an invariant's verdict is known without running fhirpathpy (each evaluation costs 30-300 µs; most
elements of most resources would otherwise pay them).

- ``holds``: where an invariant certainly holds. Two on very common datatypes are read directly (``ref-1`` on
  every Reference, ``ext-1`` on every Extension); and an invariant that opens with ``X.empty() or`` holds
  on an element without X, one that opens with ``X.exists() or`` on an element with X (``obs-6``,
  ``pat-1``, ``con-3``, ``qty-3``...: FHIRPath's ``true or anything`` is true). Where it may not hold,
  FHIRPath decides.
- ``focus_properties``: the properties of its element an invariant can read; an element with none of them
  gives the same verdict as any other such element of its type, so ``invariants`` evaluates it once per type.

Both are checked against plain evaluation by ``tests/profiles/test_base_validation.py`` (hypothesis).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Any

from profiles.validation.definitions import choice_properties, constraints

_STRING = re.compile(r"'(?:[^'\\]|\\.)*'")
_FOCUS_FUNCTION = re.compile(r"(?<![.\w$%])[A-Za-z_]\w*\s*\(")  # ``hasValue()``, ``iif(``: a call on the focus itself
_FIRST_STEP = re.compile(r"(?<![.\w$%])([A-Za-z_]\w*)(?!\w|\s*\()")
_KEYWORDS = frozenset({"and", "or", "xor", "implies", "true", "false", "div", "mod", "in", "contains", "is", "as"})


@cache
def focus_properties(cid: str) -> frozenset[str] | None:
    """The properties of its focus an invariant can read (every identifier that starts a path; those inside
    ``where(...)`` too, which only widens the set), or None when it may read more: a ``%`` variable, ``$this``,
    or a function called on the focus itself (``hasValue()``, ``children()``...)."""
    text = _STRING.sub("''", constraints()[cid].expression).replace("`", "")
    if "%" in text or "$" in text or _FOCUS_FUNCTION.search(text):
        return None
    return frozenset(m for m in _FIRST_STEP.findall(text) if m not in _KEYWORDS)


def reads_nothing_of(node: Any, properties: frozenset[str]) -> bool:
    """No JSON property of ``node`` is one of ``properties`` (a choice ``valueQuantity`` counts as ``value``,
    ``_birthDate`` as ``birthDate``; a null or an empty array as no property, as fhirpathpy sees them)."""
    if not isinstance(node, dict):
        return False
    for key, value in node.items():
        if value is None or value == []:
            continue
        name, choice = _property(key)
        if name in properties or choice in properties:
            return False
    return True


@cache
def _property(key: str) -> tuple[str, str | None]:
    """``_valueQuantity`` -> (``valueQuantity``, ``value``): the property, and the choice element it is a type of
    (one of the specification's: ``dataAbsentReason`` is no choice of ``data``, ``birthDate`` none of ``birth``)."""
    name = key.lstrip("_")
    for i in range(1, len(name)):
        if name[i].isupper() and (name[:i], name[i:]) in choice_properties():
            return name, name[:i]
    return name, None


def _ref_1_holds(node: Any) -> bool:
    """ref-1 is on every Reference (measured: 65% of the base checks' time on the Synthea transactions, 287 µs
    an evaluation); its first disjunct ``reference.startsWith('#').not()`` read directly, exactly."""
    reference = node.get("reference") if isinstance(node, dict) else None
    return not (isinstance(reference, str) and reference.startswith("#"))


def _ext_1_holds(node: Any) -> bool:
    """ext-1 (``extension.exists() != value.exists()``) is on every Extension, nested ones too (a Synthea
    Patient has a dozen): read directly; the structural pass has refused empty arrays and nulls."""
    if not isinstance(node, dict):
        return False
    return reads_nothing_of(node, _EXTENSION) != reads_nothing_of(node, _VALUE)


_EXTENSION, _VALUE = frozenset({"extension"}), frozenset({"value"})
# invariants read directly where they certainly hold
HOLDS: dict[str, Callable[[Any], bool]] = {"ref-1": _ref_1_holds, "ext-1": _ext_1_holds}
_LEADING = re.compile(r"([A-Za-z_]\w*)\.(empty|exists)\(\) or ")
_LOOSER_THAN_OR = re.compile(r"\b(implies|xor)\b")  # would make the leading ``or`` not the outermost operator


@cache
def leading_guard(cid: str) -> tuple[frozenset[str], bool] | None:
    """``(X, False)`` for an invariant ``X.empty() or ...``, ``(X, True)`` for ``X.exists() or ...``."""
    expression = constraints()[cid].expression
    found = _LEADING.match(expression)
    if found is None or _LOOSER_THAN_OR.search(expression):
        return None
    return frozenset({found[1]}), found[2] == "exists"


def holds(cid: str, node: Any) -> bool:
    """True only where the invariant certainly holds on ``node``; False says nothing."""
    direct = HOLDS.get(cid)
    if direct is not None and direct(node):
        return True
    guard = leading_guard(cid)
    if guard is None or not isinstance(node, dict):
        return False
    properties, when_present = guard
    return reads_nothing_of(node, properties) != when_present
