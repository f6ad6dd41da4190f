"""The base specification as the validator needs it, read once from ``profiles/fhir-r4`` (see SOURCE.md there:
derived from the official R4 4.0.1 definitions by ``extract.py``).

Each type (resource or complex datatype) becomes a table from (element path, JSON property) to the
element's definition, so the walk does one dictionary look-up per property it meets: choice elements
(``value[x]``) are expanded to one property per type (``valueQuantity``...) and ``contentReference``
elements (``Questionnaire.item.item``) share the children of the element they point to.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from profiles.definitions import load_definition

_INLINE = frozenset({"BackboneElement", "Element"})  # their children are defined in the same StructureDefinition


@dataclass(frozen=True, slots=True)
class Element:
    """One element definition, as a property of its parent meets it: ``type`` is the one type that property
    has (``valueQuantity``: Quantity), ``children`` the path whose children it has (its own, or the one a
    ``contentReference`` names; None for a datatype or a resource, whose children live in their own type)."""

    path: str
    type: str
    max: str
    value_set: str | None
    constraints: tuple[str, ...]
    children: str | None


@dataclass(frozen=True, slots=True)
class Constraint:
    key: str
    severity: str
    expression: str
    human: str


@dataclass(frozen=True, slots=True, eq=False)  # one per type (cached): compared by identity
class TypeDefinition:
    name: str
    kind: str  # resource | complex-type
    root_constraints: tuple[str, ...]  # dom-* on a resource, per-1 on Period, ...
    properties: dict[str, dict[str, Element]]  # parent path -> JSON property -> element


@cache
def _elements_json() -> dict[str, Any]:
    return load_definition("elements.json")


@cache
def constraints() -> dict[str, Constraint]:
    """Every invariant by key, as published, but for the few whose published expression contradicts the
    specification's own text: those are read as corrected (``corrected-invariants.json``, each with why)."""
    corrected = corrections()
    return {cid: Constraint(c["key"], c["severity"], corrected.get(cid, {}).get("expression", c["expression"]),
                            c["human"])
            for cid, c in _elements_json()["constraints"].items()}


@cache
def corrections() -> dict[str, dict[str, str]]:
    text = (resources.files("profiles.validation") / "corrected-invariants.json").read_text(encoding="utf-8")
    found: dict[str, dict[str, str]] = json.loads(text)
    return found


@cache
def type_definition(name: str) -> TypeDefinition | None:
    raw = _elements_json()["types"].get(name)
    if raw is None:
        return None
    paths: dict[str, list[Any]] = raw["elements"]
    references: dict[str, str] = raw.get("references", {})
    properties: dict[str, dict[str, Element]] = {}
    for path, (_min, max_, types, value_set, keys) in paths.items():
        if "." not in path:
            continue
        parent, name_ = path.rsplit(".", 1)
        own = tuple(k for k in keys if k != "ele-1")  # ele-1 is checked by the walk itself (walk.py)
        by_property = properties.setdefault(parent, {})
        if name_.endswith("[x]"):
            base = name_[:-3]
            for t in types:
                by_property[base + t[0].upper() + t[1:]] = Element(path, t, max_, value_set, own, None)
            continue
        type_ = types[0] if types else ""
        children = references.get(path) or (path if type_ in _INLINE else None)
        by_property[name_] = Element(path, type_, max_, value_set, own, children)
    root = paths[name][4]
    return TypeDefinition(name, raw["kind"], tuple(k for k in root if k != "ele-1"), properties)


@cache
def choice_properties() -> frozenset[tuple[str, str]]:
    """(stem, type as it ends the JSON property) of every choice element: (``value``, ``Quantity``)..."""
    return frozenset((path.rsplit(".", 1)[-1][:-3], t[0].upper() + t[1:])
                     for raw in _elements_json()["types"].values()
                     for path, (_min, _max, types, _vs, _keys) in raw["elements"].items() if path.endswith("[x]")
                     for t in types)


@dataclass(frozen=True, slots=True)
class ValueSet:
    url: str
    codes: dict[str, frozenset[str]]  # by system
    any_system: frozenset[str]  # every code, for a ``code`` element or a Coding that names no system


@cache
def _value_sets_json() -> dict[str, Any]:
    return load_definition("required-valuesets.json")


@cache
def value_set(url: str) -> ValueSet | None:
    """The value set's codes, or None when the shipped data cannot enumerate it (its reason is in
    ``required-valuesets.json``): such a binding is skipped, never guessed."""
    raw = _value_sets_json()["valueSets"].get(url)
    if raw is None:
        return None
    codes = {system: frozenset(found) for system, found in raw.items()}
    return ValueSet(url, codes, frozenset().union(*codes.values()))


def not_enumerable() -> dict[str, str]:
    """Required value sets the validator skips, with why."""
    found: dict[str, str] = _value_sets_json()["notEnumerable"]
    return found


@cache
def known_profiles() -> frozenset[str]:
    """The canonical URLs the hub can validate against: the base definition of every type it knows."""
    return frozenset(f"http://hl7.org/fhir/StructureDefinition/{name}" for name in _elements_json()["types"])
