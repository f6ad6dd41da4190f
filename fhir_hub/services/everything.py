"""``Patient/{id}/$everything`` (R4 patient-operation-everything): the patient's whole compartment, every type
at once, as the pages of one searchset, with the resources those pages reference (their practitioners,
organizations, locations, medications) as ``include`` entries.

It is a system-level search narrowed to the compartment (``search_system`` with ``compartment``), so what the
caller may see, how it is counted, paged and linked is exactly a search's: a consent that hides a record
hides it here too, and a golden record's ``$everything`` (the person's every linked record) is open only to
who may read that golden record. Parameters: ``_since`` (versions updated at or after an instant), ``_type``
(types of the compartment, comma separated), ``_count`` and the ``_page`` of its links. ``start``/``end``
(care dates) are not supported: ignored and reported, or refused with ``Prefer: handling=strict``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from fhir_hub.auth.policy import HUB_ONLY_TYPES, insufficient_scope
from fhir_hub.bundles.references import references_in
from fhir_hub.errors import BadRequest
from fhir_hub.fhir.compartment import compartment_types
from fhir_hub.fhir.ids import is_valid_id
from fhir_hub.fhir.instant import parse_instant_lower_bound
from fhir_hub.fhir.jsonio import loads
from fhir_hub.fhir.registry import is_resource_type
from fhir_hub.search.query import parse_system_search
from fhir_hub.services.results import Searched
from fhir_hub.services.search import named_types, page_position
from fhir_hub.services.session import Session
from fhir_hub.store.records import StoredVersion

PARAMS = ("_since", "_type", "_count", "_page")
_REFERENCE = 2  # "Type/id": a relative reference to a resource of this server


async def everything(session: Session, rid: str, params: list[tuple[str, str]]) -> Searched:
    if not is_valid_id(rid):
        raise BadRequest(f"Patient/{rid[:80]}: not a valid resource id", expression=["id"])
    unknown = [key for key, _ in params if key not in PARAMS]
    if unknown and session.strict:
        raise BadRequest(f"$everything: parameter {unknown[0]!r} is not supported (supported: "
                         f"{', '.join(PARAMS)})", expression=[unknown[0]], code="not-supported")
    given = dict(params)
    named = _compartment_types(params)
    reader = session.reader
    types = [t for t in reader.searchable_types(named) if t in _everything_types()]
    kept: list[tuple[str, str]] = []
    criteria: list[tuple[str, str]] = []
    if "_since" in given:
        if parse_instant_lower_bound(given["_since"]) is None:
            raise BadRequest(f"_since: {given['_since'][:80]!r} is not a FHIR instant", expression=["_since"])
        kept.append(("_since", given["_since"]))
        criteria.append(("_lastUpdated", f"ge{given['_since']}"))
    if named is not None:
        kept.append(("_type", ",".join(named)))
    paging = [(key, given[key]) for key in ("_count", "_page") if key in given]
    if not types:
        raise insufficient_scope(session.caller, "search on a resource type of the Patient compartment")
    queries = parse_system_search(types, [*criteria, *paging], strict=session.strict,
                                  limits=session.hub.settings.search_limits)
    queries = [replace(q, ignored=tuple(unknown)) for q in queries]
    direction, position = page_position(queries[0].page, queries)
    outcome = await reader.search_system(queries, after=position if direction == "after" else None,
                                         before=position if direction == "before" else None, compartment=rid)
    pages = (loads(v.json) for v in outcome.page if v.json is not None)
    outcome = replace(outcome, included=[*outcome.included,
                                         *await referenced(session, pages, leave_out=_everything_types())])
    return Searched(queries[0], outcome, system=True, types=named, path=f"Patient/{rid}/$everything",
                    link_params=tuple(kept))


def _everything_types() -> frozenset[str]:
    return compartment_types() - HUB_ONLY_TYPES


def _compartment_types(params: list[tuple[str, str]]) -> tuple[str, ...] | None:
    """``_type`` read as a system search reads it, each type also one of the Patient compartment."""
    names = named_types(params)
    for name in names or ():
        if name not in _everything_types():
            raise BadRequest(f"_type: {name[:80]!r} is not a resource type of the Patient compartment",
                             expression=["_type"])
    return names


async def referenced(session: Session, resources: Iterable[dict[str, Any]], *,
                     leave_out: frozenset[str]) -> list[StoredVersion]:
    """The resources these refer to (relative ``Type/id`` references; ``#`` ones are in the resources' own
    ``contained``), but those of the ``leave_out`` types, as the caller may read them: a type the token may
    not read is left out, not refused (the resources themselves were allowed). ``$everything`` leaves out
    the compartment's types (its pages hold them), ``$summary`` the types its sections filter."""
    wanted: set[str] = set()
    for resource in resources:
        for reference in references_in(resource):
            parts = reference.split("/")
            if (len(parts) == _REFERENCE and is_resource_type(parts[0]) and parts[0] not in leave_out
                    and is_valid_id(parts[1])):
                wanted.add(reference)
    readable = {rtype for rtype in {key.split("/", 1)[0] for key in wanted} if session.reader.allows(rtype, "r")}
    kept = sorted(key for key in wanted if key.split("/", 1)[0] in readable)
    return await session.reader.read_many(kept) if kept else []
