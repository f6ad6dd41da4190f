"""Patient compartment membership (FHIR R4 compartmentdefinition-patient), computed from a resource's JSON.

A resource belongs to the compartment of every patient its compartment parameters reference, following the
official CompartmentDefinition and the FHIRPath expressions of those parameters in the R4 search-parameter
definitions. Every such expression is a plain element path, optionally filtered with
``.where(resolve() is Patient)``; this module walks those paths and keeps references of the form
``Patient/<id>`` (relative references only: an absolute URL may name another server's patient).

Used on both sides of access control: the indexer stores membership as search entries (so a patient
token's searches are narrowed by an index lookup), and the scoped reader checks each resource it returns.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from typing import Any

from fhir_hub.fhir.ids import is_valid_id
from profiles.definitions import patient_compartment, search_parameters

_WHERE_PATIENT = ".where(resolve() is Patient)"
_PATIENT_REFERENCE = re.compile(r"Patient/([^/]+)(?:/_history/[^/]+)?")


def compartment_types() -> frozenset[str]:
    return frozenset(patient_compartment()) | {"Patient"}


@cache
def _paths(rtype: str) -> tuple[tuple[str, ...], ...]:
    """Element paths (below the resource) that can hold a reference putting ``rtype`` into a compartment."""
    paths = []
    for code in patient_compartment().get(rtype, ()):
        definition = search_parameters().get((rtype, code))
        if definition is not None:
            paths += _element_paths(rtype, definition)
    return tuple(sorted(set(paths)))


def _element_paths(rtype: str, definition: dict[str, Any]) -> list[tuple[str, ...]]:
    """The element paths of a parameter's expression that apply to ``rtype`` (other types' clauses dropped)."""
    paths = []
    for clause in definition.get("expression", "").split("|"):
        clause = clause.strip().removesuffix(_WHERE_PATIENT).strip("()")
        if clause.startswith(rtype + "."):
            paths.append(tuple(clause[len(rtype) + 1 :].split(".")))
    return paths


@cache
def scoping_params(rtype: str) -> frozenset[str]:
    """Reference parameters of ``rtype`` whose every path is a compartment path: a resource matching
    ``param=Patient/X`` on one of them is certainly in X's compartment, so the search may read X's
    compartment entries alone (``Encounter.subject`` qualifies, ``Observation.focus`` does not)."""
    allowed = set(_paths(rtype))
    found = set()
    for (base, code), definition in search_parameters().items():
        if base != rtype or definition.get("type") != "reference":
            continue
        paths = _element_paths(rtype, definition)
        if paths and all(path in allowed for path in paths):
            found.add(code)
    return frozenset(found)


@cache
def covers_compartment(rtype: str, code: str) -> bool:
    """Whether ``code=Patient/X`` matches exactly the resources in X's compartment (its paths are all of
    the compartment's paths: ``Encounter.patient`` yes, ``Observation.subject`` no, a performer counts)."""
    definition = search_parameters().get((rtype, code))
    if rtype == "Patient" or definition is None or code not in scoping_params(rtype):
        return False  # a Patient is in its own compartment whatever it references
    return set(_element_paths(rtype, definition)) >= set(_paths(rtype))


def _walk(node: Any, path: tuple[str, ...]) -> Iterator[Any]:
    if isinstance(node, list):
        for item in node:
            yield from _walk(item, path)
        return
    if not path:
        yield node
        return
    if isinstance(node, dict) and path[0] in node:
        yield from _walk(node[path[0]], path[1:])


def patient_ids(rtype: str, resource: dict[str, Any]) -> frozenset[str]:
    """Ids of the patients in whose compartment this resource is."""
    found: set[str] = set()
    if rtype == "Patient" and isinstance(resource.get("id"), str):
        found.add(resource["id"])
    for path in _paths(rtype):
        for ref in _walk(resource, path):
            target = ref.get("reference") if isinstance(ref, dict) else None
            match = _PATIENT_REFERENCE.fullmatch(target) if isinstance(target, str) else None
            if match and is_valid_id(match.group(1)):
                found.add(match.group(1))
    return frozenset(found)
