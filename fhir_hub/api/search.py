"""search-type and search-system (FHIR R4 search.html), by GET and by ``POST [type]/_search`` (a form body).

Every R4 search parameter of the type (see ``fhir_hub.search``), ``_sort``, ``_total``, ``_summary``,
``_elements``, ``_include``/``_revinclude`` (``:iterate``) and keyset paging with ``self``, ``next`` and
``previous`` links. Unknown parameters are ignored and reported in an ``OperationOutcome`` entry (and left
out of the ``self`` link), or refused with ``Prefer: handling=strict``. A system-level search covers the
types in ``_type`` (or every type the caller may search) with the parameters those types share.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Response

from fhir_hub.api.body import read_body
from fhir_hub.api.bundles import bundle, decode_page, encode_page, entry
from fhir_hub.api.context import Fhir, FhirContext
from fhir_hub.api.negotiation import check_body_media_type
from fhir_hub.api.responses import fhir_response, outcome_json
from fhir_hub.api.routing import ResourceTypePath, check_type, fhir_route
from fhir_hub.audit import AUDIT_TYPE
from fhir_hub.errors import BadRequest, Issue
from fhir_hub.fhir.registry import is_resource_type
from fhir_hub.fhir.subset import subset
from fhir_hub.search.execute import SearchOutcome, position_fits
from fhir_hub.search.query import SearchQuery, parse_search, parse_system_search
from fhir_hub.store.records import StoredVersion

router = APIRouter()

FORM = "application/x-www-form-urlencoded"
_QUERY = ("_id", "identifier", "_count", "_sort", "_total", "_summary", "_elements", "_include", "_revinclude",
          "_page")


@router.get("/", **fhir_route("search-system", "system", summary="Search across resource types",
                              query=("_type", *_QUERY), headers=("Prefer",)))
async def search_system(ctx: Fhir) -> Response:
    return await _search_all(ctx, ctx.request.query_params.multi_items())


@router.post("/_search", **fhir_route("search-system-post", "system", summary="Search across types with a form body",
                                      headers=("Prefer",)))
async def search_system_post(ctx: Fhir) -> Response:
    return await _search_all(ctx, await _with_form(ctx))


@router.get("/{rtype}", **fhir_route("search-type", "type", summary="Search resources of a type", query=_QUERY,
                                     headers=("Prefer",)))
async def search(rtype: ResourceTypePath, ctx: Fhir) -> Response:
    check_type(rtype)
    return await _search(ctx, rtype, ctx.request.query_params.multi_items())


@router.post("/{rtype}/_search", **fhir_route("search-type-post", "type", summary="Search with a form body",
                                              headers=("Prefer",)))
async def search_post(rtype: ResourceTypePath, ctx: Fhir) -> Response:
    check_type(rtype)
    return await _search(ctx, rtype, await _with_form(ctx))


async def _with_form(ctx: FhirContext) -> list[tuple[str, str]]:
    """The URL's parameters followed by those of the form body (search.html: both count)."""
    check_body_media_type(ctx.request.headers.get("content-type") or FORM, allowed=(FORM,))
    body = await read_body(ctx.request, ctx.hub.settings.max_body_bytes)
    try:
        form = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise BadRequest("The form body is not UTF-8") from None
    return [*ctx.request.query_params.multi_items(), *form]


async def _search(ctx: FhirContext, rtype: str, params: list[tuple[str, str]]) -> Response:
    return fhir_response(ctx, await searchset(ctx, parse_query(ctx, rtype, params)))


def parse_query(ctx: FhirContext, rtype: str, params: list[tuple[str, str]]) -> SearchQuery:
    return parse_search(rtype, params, strict=ctx.strict, limits=ctx.hub.settings.search_limits)


async def searchset(ctx: FhirContext, query: SearchQuery) -> bytes:
    """One page of a type-level search as a searchset Bundle (for the HTTP route and Bundle GET entries)."""
    direction, position = _page_position(query.page, [query])
    outcome = await ctx.reader.search(query, after=position if direction == "after" else None,
                                      before=position if direction == "before" else None)
    return _searchset(ctx, query, outcome, query.rtype, [])


async def _search_all(ctx: FhirContext, params: list[tuple[str, str]]) -> Response:
    """System-level search: ``_type`` names the types, or every type the caller may search is covered."""
    named = _types(params)
    rest = [(key, value) for key, value in params if key != "_type"]
    if named == (AUDIT_TYPE,):
        return await _search(ctx, AUDIT_TYPE, rest)
    if named is not None and AUDIT_TYPE in named:
        raise BadRequest("_type: AuditEvent is searched on its own (GET /AuditEvent)", expression=["_type"],
                         code="not-supported")
    types = ctx.reader.searchable_types(named)
    queries = parse_system_search(types, rest, strict=ctx.strict, limits=ctx.hub.settings.search_limits)
    direction, position = _page_position(queries[0].page, queries)
    outcome = await ctx.reader.search_system(queries, after=position if direction == "after" else None,
                                             before=position if direction == "before" else None)
    return fhir_response(ctx, _searchset(ctx, queries[0], outcome, "", [("_type", ",".join(named))] if named else []))


def _types(params: list[tuple[str, str]]) -> tuple[str, ...] | None:
    names = [name.strip() for key, value in params if key == "_type" for name in value.split(",") if name.strip()]
    for name in names:
        if not is_resource_type(name):
            raise BadRequest(f"_type: {name[:80]!r} is not a resource type", expression=["_type"])
    return tuple(dict.fromkeys(names)) or None


def _searchset(ctx: FhirContext, query: SearchQuery, outcome: SearchOutcome, path: str,
               extra: list[tuple[str, str]]) -> bytes:
    links = [("self", _link(ctx, path, extra, query, None))]
    if outcome.previous is not None:
        links.append(("previous", _link(ctx, path, extra, query, encode_page(["before", outcome.previous]))))
    if outcome.next is not None:
        links.append(("next", _link(ctx, path, extra, query, encode_page(["after", outcome.next]))))
    entries: list[bytes] = []
    if query.summary != "count":
        entries += [_entry(ctx, query, v, "match") for v in outcome.page]
        entries += [_entry(ctx, query, v, "include") for v in outcome.included]
    if query.ignored:
        entries.append(_ignored_outcome(query))
    total = None if query.total == "none" else outcome.total
    return bundle("searchset", entries=entries, links=links, total=total)


def _page_position(token: str | None, queries: Sequence[SearchQuery]) -> tuple[str | None, list[Any] | None]:
    if token is None:
        return None, None
    position = decode_page(token)
    if len(position) != 2 or not position_fits(queries, position[1]):
        raise BadRequest("_page: not a page token of this search; follow the Bundle's links", expression=["_page"])
    return position[0], position[1]


def _link(ctx: FhirContext, path: str, extra: list[tuple[str, str]], query: SearchQuery, page: str | None) -> str:
    params = [*extra, *query.link_params(), ("_count", str(query.count))]
    if page is not None:
        params.append(("_page", page))
    return f"{ctx.url(path) if path else ctx.base_url}?{urlencode(params)}"


def _entry(ctx: FhirContext, query: SearchQuery, v: StoredVersion, mode: str) -> bytes:
    body = subset(v.json, summary=query.summary, elements=query.elements) if v.json else v.json
    return entry(full_url=ctx.url(v.rtype, v.rid), resource=body, search={"mode": mode})


def _ignored_outcome(query: SearchQuery) -> bytes:
    issues = [Issue("not-supported", f"Search parameter {name!r} is not supported for {query.rtype} and was "
                    "ignored", (name,), severity="warning") for name in query.ignored]
    return entry(full_url=None, resource=outcome_json(*issues), search={"mode": "outcome"})
