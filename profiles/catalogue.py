"""The conformance resources the hub ships, as FHIR JSON, by type: served read-only by the API
(``fhir_hub/api/conformance.py``) so that a client can read what the validator enforces.

- ``StructureDefinition``: the city's profiles (``profiles/city``).
- ``ValueSet``: the city's value sets (``profiles/city``), and each value set of the R4 specification a
  required binding names that the shipped extract can enumerate (``profiles/fhir-r4/required-valuesets.json``),
  as a ValueSet listing its codes by system: exactly the codes a write is held to, no more (the extract keeps
  neither displays nor definitions; those are the specification's, at the value set's canonical URL).
- ``CodeSystem``: the hub's own code systems (``profiles/hub``: the record roles and audit flags it tags
  resources with).

Each resource is built or read once; the ids are unique per type (checked when the catalogue loads).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from profiles.definitions import definition_files, load_definition
from profiles.validation.city import structure_definitions, value_set_resources

SERVED_TYPES = ("StructureDefinition", "ValueSet", "CodeSystem")
_R4_VERSION = "4.0.1"


@cache
def shipped(rtype: str) -> tuple[dict[str, Any], ...]:
    """The resources of ``rtype`` the hub ships (none for a type it ships none of)."""
    if rtype == "StructureDefinition":
        found = structure_definitions()
    elif rtype == "ValueSet":
        found = (*value_set_resources(), *_specification_value_sets())
    elif rtype == "CodeSystem":
        found = tuple(definition_files("hub", "CodeSystem-"))
    else:
        return ()
    ids = [r["id"] for r in found]
    if len(set(ids)) != len(ids):
        raise ValueError(f"profiles: two shipped {rtype} resources share an id")
    return found


@cache
def by_id(rtype: str) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in shipped(rtype)}


@cache
def by_url(rtype: str) -> dict[str, dict[str, Any]]:
    return {r["url"]: r for r in shipped(rtype)}


def _specification_value_sets() -> tuple[dict[str, Any], ...]:
    extract: dict[str, dict[str, list[str]]] = load_definition("required-valuesets.json")["valueSets"]
    return tuple(_value_set(url, codes) for url, codes in sorted(extract.items()))


def _value_set(url: str, codes: dict[str, list[str]]) -> dict[str, Any]:
    return {
        "resourceType": "ValueSet",
        "id": url.rsplit("/", 1)[-1],
        "url": url,
        "version": _R4_VERSION,
        "status": "active",
        "description": "The codes of this FHIR R4 value set as the hub enforces its required bindings, extracted "
                       "from the official definitions (profiles/fhir-r4/SOURCE.md); displays and definitions "
                       "are the specification's.",
        "compose": {"include": [{"system": system, "concept": [{"code": c} for c in found]}
                                for system, found in codes.items()]},
    }
