"""Required bindings: is a coded value one of its value set's codes?

A ``code`` (or any primitive) must be one of the set's codes; a Coding must have its system's code
(one naming no system is looked up across the set's systems, as its system is then implied by the
element); a CodeableConcept passes when one of its codings does. Other types bound ``required`` (a
Quantity's unit...) and value sets the shipped data cannot enumerate are not checked here.
"""

from __future__ import annotations

from typing import Any

from profiles.validation.definitions import ValueSet, value_set
from profiles.validation.issues import ERROR, ValidationIssue


def check_binding(value: Any, type_: str, url: str, expression: str) -> ValidationIssue | None:
    vs = value_set(url)
    if vs is None:
        return None
    found = membership(value, type_, vs)
    if found is None or found[0]:
        return None
    return ValidationIssue(ERROR, "code-invalid", expression,
                           f"{expression}: {_clip(found[1])} is not in the value set {url} (required binding)")


def membership(value: Any, type_: str, vs: ValueSet) -> tuple[bool, str] | None:
    """Whether ``value`` (of ``type_``) is in ``vs``, and the value as shown in a message; None when the
    type is not one a binding is checked on (shared with the profiles' bindings, ``profile.py``)."""
    if type_ == "Coding":
        ok = isinstance(value, dict) and _coding_in(value, vs)
        shown = _coding_text(value)
    elif type_ == "CodeableConcept":
        codings = value.get("coding") if isinstance(value, dict) else None
        ok = isinstance(codings, list) and any(isinstance(c, dict) and _coding_in(c, vs) for c in codings)
        shown = ", ".join(_coding_text(c) for c in codings) if isinstance(codings, list) else "no coding"
    elif isinstance(value, str):
        ok = value in vs.any_system
        shown = repr(value)
    else:
        return None
    return ok, shown


def _coding_in(coding: dict[str, Any], vs: ValueSet) -> bool:
    code = coding.get("code")
    if not isinstance(code, str):
        return False
    system = coding.get("system")
    if system is None:
        return code in vs.any_system
    return isinstance(system, str) and code in vs.codes.get(system, frozenset())


def _coding_text(coding: Any) -> str:
    if not isinstance(coding, dict):
        return repr(coding)
    if "code" not in coding:
        return "a coding with no code"
    return f"{coding.get('system', '')}|{coding['code']}" if "system" in coding else repr(coding["code"])


def _clip(text: str) -> str:
    return text if len(text) <= 120 else text[:117] + "..."
