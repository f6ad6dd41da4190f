"""Conformance resources against the R4 definitions the hub ships: what the specification says of them in
prose and the R4B models cannot know, as they do not hold the definitions.

- A SearchParameter ``derivedFrom`` one of the specification's (or the hub's) keeps its ``type`` and applies
  to no ``base`` the original does not (searchparameter.html: "the details in the search parameter must be
  consistent with the definition from which it is defined").
- A CapabilityStatement's ``searchParam`` has the ``type`` of the ``definition`` it names.
- A StructureDefinition constraining a core type names in its differential only paths that type has (a
  choice by its ``[x]`` name, or renamed to one of its types: ``valueQuantity``).

A definition the hub does not ship is not checked (no guess); none of these runs on clinical resources.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from profiles.definitions import search_parameters_by_url
from profiles.validation.base import resolve
from profiles.validation.definitions import choice_properties, type_definition
from profiles.validation.issues import ERROR, ValidationIssue

_CORE = "http://hl7.org/fhir/StructureDefinition/"


def conformance_rules(node: dict[str, Any], rtype: str, expression: str) -> list[ValidationIssue]:
    check = _BY_TYPE.get(rtype)
    return check(node, expression) if check is not None else []


def _definition(url: Any) -> dict[str, Any] | None:
    return search_parameters_by_url().get(url.split("|", 1)[0]) if isinstance(url, str) else None


def _search_parameter(sp: dict[str, Any], expression: str) -> list[ValidationIssue]:
    original = _definition(sp.get("derivedFrom"))
    if original is None:
        return []
    found = []
    url, kind = original["url"], sp.get("type")
    if isinstance(kind, str) and kind != original["type"]:
        found.append(_issue(f"{expression}.type", f"{kind!r} is not the type of {url}, which it derives from "
                                                  f"({original['type']!r})"))
    bases = sp.get("base")
    for i, base in enumerate(bases if isinstance(bases, list) else []):
        if base not in original.get("base", []):
            found.append(_issue(f"{expression}.base[{i}]", f"{base!r} is not a base of {url}, which it derives "
                                                           f"from ({', '.join(original.get('base', []))})"))
    return found


def _capability_statement(cs: dict[str, Any], expression: str) -> list[ValidationIssue]:
    found = []
    for i, rest in enumerate(_items(cs, "rest")):
        for j, resource in enumerate(_items(rest, "resource")):
            for k, param in enumerate(_items(resource, "searchParam")):
                definition = _definition(param.get("definition"))
                kind = param.get("type")
                if definition is not None and isinstance(kind, str) and kind != definition["type"]:
                    where = f"{expression}.rest[{i}].resource[{j}].searchParam[{k}].type"
                    found.append(_issue(where, f"{kind!r} is not the type of {definition['url']} "
                                               f"({definition['type']!r})"))
    return found


def _structure_definition(sd: dict[str, Any], expression: str) -> list[ValidationIssue]:
    rtype = sd.get("type")
    if sd.get("derivation") != "constraint" or not isinstance(rtype, str) or type_definition(rtype) is None \
            or sd.get("baseDefinition") != _CORE + rtype:
        return []
    differential = sd.get("differential")
    found = []
    for i, element in enumerate(_items(differential, "element") if isinstance(differential, dict) else []):
        path = element.get("path") if isinstance(element, dict) else None
        if isinstance(path, str) and resolve(rtype, path) is None and resolve(rtype, _unrenamed(path)) is None:
            found.append(_issue(f"{expression}.differential.element[{i}].path",
                                f"{path!r} is not an element of the base {rtype}"))
    return found


def _unrenamed(path: str) -> str:
    """``Observation.valueQuantity`` -> ``Observation.value[x]``."""
    parts = []
    for part in path.split("."):
        stem = next((part[:i] for i in range(1, len(part))
                     if part[i].isupper() and (part[:i], part[i:]) in choice_properties()), None)
        parts.append(f"{stem}[x]" if stem is not None else part)
    return ".".join(parts)


def _items(node: Any, key: str) -> list[Any]:
    value = node.get(key) if isinstance(node, dict) else None
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _issue(expression: str, text: str) -> ValidationIssue:
    return ValidationIssue(ERROR, "invalid", expression, f"{expression}: {text}")


_BY_TYPE: dict[str, Callable[[dict[str, Any], str], list[ValidationIssue]]] = {
    "SearchParameter": _search_parameter, "CapabilityStatement": _capability_statement,
    "StructureDefinition": _structure_definition,
}
