"""search-type and search-system (FHIR R4 search.html): parse the parameters, run one page through the
caller's scoped reader, and answer it typed (``Searched``); the searchset Bundle, its links and its
outcome entry are rendered by the caller (``fhir_hub/api/searchset.py``).

Unknown parameters are ignored (the query lists them) or, with ``Prefer: handling=strict``, refused. A
system-level search covers the types in ``_type``, or every type the caller may search, with the
parameters those types share; AuditEvent is searched on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from fhir_hub.audit import AUDIT_TYPE
from fhir_hub.errors import BadRequest
from fhir_hub.fhir.compartment import compartment_types
from fhir_hub.fhir.ids import is_valid_id
from fhir_hub.fhir.registry import is_resource_type
from fhir_hub.search.execute import position_fits
from fhir_hub.search.limits import SearchLimits
from fhir_hub.search.query import SearchQuery, parse_search, parse_system_search
from fhir_hub.services.pages import decode_page
from fhir_hub.services.results import Searched
from fhir_hub.services.session import Session


def parse_query(session: Session, rtype: str, params: list[tuple[str, str]], *, count: int | None = None
                ) -> SearchQuery:
    params, limits = own_count(session, params, count)
    return parse_search(rtype, params, strict=session.strict, limits=limits)


def own_count(session: Session, params: list[tuple[str, str]], count: int | None
              ) -> tuple[list[tuple[str, str]], SearchLimits]:
    """The parameters and limits of one of the hub's own searches: ``count`` as its ``_count``, allowed
    beyond the client-facing ``FHIR_HUB_MAX_COUNT`` (see ``search``); None: the session's as they are."""
    limits = session.hub.settings.search_limits
    if count is None:
        return params, limits
    return [*params, ("_count", str(count))], replace(limits, max_count=max(limits.max_count, count))


async def search(session: Session, rtype: str, params: list[tuple[str, str]], *, count: int | None = None
                 ) -> Searched:
    """One page of a type-level search. ``count``: a page size the hub's own services choose (a person's
    diagnoses in one page), beyond the maximum a client may ask for (``FHIR_HUB_MAX_COUNT``), which bounds
    what clients make the hub do, not what the hub reads for itself: an operator lowering it must not make
    the priority record read a person's data in part, or refuse to."""
    return await run(session, parse_query(session, rtype, params, count=count))


async def run(session: Session, query: SearchQuery, *, compartment: str | None = None) -> Searched:
    """One page of a type-level search already parsed (a transaction parses its GET entries ahead);
    ``compartment``: within that Patient's compartment only."""
    direction, position = page_position(query.page, [query])
    outcome = await session.reader.search(query, after=position if direction == "after" else None,
                                          before=position if direction == "before" else None,
                                          compartment=compartment)
    return Searched(query, outcome, path=f"Patient/{compartment}/{query.rtype}" if compartment else None)


async def search_compartment(session: Session, ctype: str, cid: str, rtype: str,
                             params: list[tuple[str, str]]) -> Searched:
    """R4 compartment search (search.html#compartments, ``GET /Patient/{id}/{type}``): the type's search,
    limited to the resources in that patient's compartment (the CompartmentDefinition's parameters, as
    indexed), with the same parameters, paging, includes and access decision. Only the Patient compartment
    is defined here; a patient that does not exist, or is hidden from the caller, has an empty compartment."""
    if ctype != "Patient":
        raise BadRequest(f"{ctype}: compartment searches are supported for the Patient compartment only",
                         expression=[ctype], code="not-supported")
    if not is_valid_id(cid):
        raise BadRequest(f"Patient/{cid[:80]}: not a valid resource id", expression=["id"])
    if rtype not in compartment_types():
        raise BadRequest(f"{rtype}: not a resource type of the Patient compartment (R4 CompartmentDefinition "
                         "patient)", expression=[rtype], code="not-supported")
    return await run(session, parse_query(session, rtype, params), compartment=cid)


async def search_system(session: Session, params: list[tuple[str, str]]) -> Searched:
    """``_type`` names the types, or every type the caller may search is covered."""
    named = named_types(params)
    rest = [(key, value) for key, value in params if key != "_type"]
    if named == (AUDIT_TYPE,):
        return await search(session, AUDIT_TYPE, rest)
    if named is not None and AUDIT_TYPE in named:
        raise BadRequest("_type: AuditEvent is searched on its own (GET /AuditEvent)", expression=["_type"],
                         code="not-supported")
    reader = session.reader
    types = reader.searchable_types(named)
    queries = parse_system_search(types, rest, strict=session.strict, limits=session.hub.settings.search_limits)
    direction, position = page_position(queries[0].page, queries)
    outcome = await reader.search_system(queries, after=position if direction == "after" else None,
                                         before=position if direction == "before" else None)
    return Searched(queries[0], outcome, system=True, types=named)


def named_types(params: list[tuple[str, str]]) -> tuple[str, ...] | None:
    """The types ``_type`` names (comma separated, repeatable), each a known one; None when it names none."""
    names = [name.strip() for key, value in params if key == "_type" for name in value.split(",") if name.strip()]
    for name in names:
        if not is_resource_type(name):
            raise BadRequest(f"_type: {name[:80]!r} is not a resource type", expression=["_type"])
    return tuple(dict.fromkeys(names)) or None


def page_position(token: str | None, queries: Sequence[SearchQuery]) -> tuple[str | None, list[Any] | None]:
    """Which way a ``_page`` token pages and from where; a 400 for a token of another search."""
    if token is None:
        return None, None
    position = decode_page(token)
    if len(position) != 2 or not position_fits(queries, position[1]):
        raise BadRequest("_page: not a page token of this search; follow the Bundle's links", expression=["_page"])
    return position[0], position[1]
