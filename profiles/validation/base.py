"""Where an element of a profile sits in the base specification: its type, for the checks that depend on it
(a binding on a Coding or a code, an invariant typed so that FHIRPath resolves choices), and whether the
path exists at all (``structure.py`` refuses a profile naming an element the base type lacks).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from profiles.validation.definitions import type_definition


@dataclass(frozen=True, slots=True)
class BaseElement:
    """``types``: the element's types (several for a choice); ``type_path``: the name FHIRPath types a value
    of it with (the datatype, or the element's path for a BackboneElement, the resource type for the root)."""

    path: str
    types: tuple[str, ...]
    type_path: str


@cache
def resolve(rtype: str, path: str) -> BaseElement | None:
    """``Condition.code.coding.code`` -> the base ``Coding.code`` (a code), through the datatypes on the way."""
    definition = type_definition(rtype)
    if definition is None or not path.startswith(rtype):
        return None
    found = BaseElement(rtype, (rtype,), rtype)
    parent = rtype
    for name in path.split(".")[1:]:
        properties = definition.properties.get(parent, {}) if definition is not None else {}
        if name.endswith("[x]"):
            matches = [e for e in properties.values() if e.path.endswith(f".{name}")]
        else:
            matches = [properties[name]] if name in properties else []
        if not matches:
            return None
        element = matches[0]
        types = tuple(e.type for e in matches)
        if element.children is not None:
            found, parent = BaseElement(element.path, types, element.children), element.children
            continue
        found = BaseElement(element.path, types, types[0] if len(types) == 1 else element.path)
        definition = type_definition(types[0]) if len(types) == 1 else None
        parent = types[0]
    return found
