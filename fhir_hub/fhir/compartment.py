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
        if definition is None:
            continue
        for clause in definition.get("expression", "").split("|"):
            clause = clause.strip().removesuffix(_WHERE_PATIENT).strip("()")
            if clause.startswith(rtype + "."):
                paths.append(tuple(clause[len(rtype) + 1 :].split(".")))
    return tuple(sorted(set(paths)))


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
