"""Where an invariant's verdict is known without running fhirpathpy (each evaluation costs 30-300 µs; most
elements of most resources would otherwise pay them).

- ``HOLDS``: a few invariants on very common datatypes read directly in Python where they certainly hold
  (``ref-1`` on every Reference, ``ext-1`` on every Extension); where they may not, FHIRPath decides.
- ``focus_properties``: the properties of its element an invariant can read; an element with none of them
  gives the same verdict as any other such element of its type, so ``invariants`` evaluates it once per type.

Both are checked against plain evaluation by ``tests/profiles/test_base_validation.py`` (hypothesis).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Any

from profiles.validation.definitions import constraints

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
    """No JSON property of ``node`` is one of ``properties`` (a choice ``valueQuantity`` counts as ``value``)."""
    if not isinstance(node, dict):
        return False
    for key in node:
        name = key.lstrip("_")
        if name in properties or any(name.startswith(p) and name[len(p):][:1].isupper() for p in properties):
            return False
    return True


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
    return ("extension" in node) != any(k.startswith("value") and k[5:6].isupper() for k in node)


# invariants read directly where they certainly hold; where they may not, FHIRPath gives the verdict
HOLDS: dict[str, Callable[[Any], bool]] = {"ref-1": _ref_1_holds, "ext-1": _ext_1_holds}
