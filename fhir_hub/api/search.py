"""search-type (FHIR R4 search.html), GET and ``POST [type]/_search``.

Every R4 search parameter of the type (see ``fhir_hub.search``), ``_sort``, ``_total``, ``_summary``,
``_elements``, ``_include``/``_revinclude`` (``:iterate``) and keyset paging with ``self``, ``next`` and
``previous`` links. Unknown parameters are ignored and reported in an ``OperationOutcome`` entry (and left
out of the ``self`` link), or refused with ``Prefer: handling=strict``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Response

from fhir_hub.api.body import read_body
from fhir_hub.api.bundles import bundle, decode_page, encode_page, entry
from fhir_hub.api.context import Fhir, FhirContext
from fhir_hub.api.negotiation import check_body_media_type
from fhir_hub.api.responses import fhir_response, outcome_json
from fhir_hub.api.routing import ResourceTypePath, check_type, fhir_route
from fhir_hub.errors import BadRequest, Issue
from fhir_hub.fhir.subset import subset
from fhir_hub.search.query import SearchQuery, parse_search
from fhir_hub.store.records import StoredVersion

router = APIRouter()

FORM = "application/x-www-form-urlencoded"
_QUERY = ("_id", "identifier", "_count", "_sort", "_total", "_summary", "_elements", "_include", "_revinclude",
          "_page")


@router.get("/{rtype}", **fhir_route("search-type", "type", summary="Search resources of a type", query=_QUERY,
                                     headers=("Prefer",)))
async def search(rtype: ResourceTypePath, ctx: Fhir) -> Response:
    check_type(rtype)
    return await _search(ctx, rtype, ctx.request.query_params.multi_items())


@router.post("/{rtype}/_search", **fhir_route("search-type-post", "type", summary="Search with a form body",
                                              headers=("Prefer",)))
async def search_post(rtype: ResourceTypePath, ctx: Fhir) -> Response:
    check_type(rtype)
    check_body_media_type(ctx.request.headers.get("content-type") or FORM, allowed=(FORM,))
    body = await read_body(ctx.request, ctx.hub.settings.max_body_bytes)
    try:
        form = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise BadRequest("The form body is not UTF-8") from None
    return await _search(ctx, rtype, [*ctx.request.query_params.multi_items(), *form])


async def _search(ctx: FhirContext, rtype: str, params: list[tuple[str, str]]) -> Response:
    settings = ctx.hub.settings
    query = parse_search(rtype, params, default_count=settings.default_count, max_count=settings.max_count,
                         strict=ctx.strict, max_params=settings.max_search_params)
    direction, position = _page_position(query.page)
    outcome = await ctx.reader.search(query, after=position if direction == "after" else None,
                                      before=position if direction == "before" else None)
    links = [("self", _link(ctx, query, None))]
    if outcome.previous is not None:
        links.append(("previous", _link(ctx, query, encode_page(["before", outcome.previous]))))
    if outcome.next is not None:
        links.append(("next", _link(ctx, query, encode_page(["after", outcome.next]))))
    entries: list[bytes] = []
    if query.summary != "count":
        entries += [_entry(ctx, query, v, "match") for v in outcome.page]
        entries += [_entry(ctx, query, v, "include") for v in outcome.included]
    if query.ignored:
        entries.append(_ignored_outcome(query))
    total = None if query.total == "none" else outcome.total
    return fhir_response(ctx, bundle("searchset", entries=entries, links=links, total=total))


def _page_position(token: str | None) -> tuple[str | None, list[Any] | None]:
    if token is None:
        return None, None
    position = decode_page(token)
    if (not isinstance(position, list) or len(position) != 2 or position[0] not in ("after", "before")
            or not isinstance(position[1], list) or not position[1]):
        raise BadRequest("_page: not a page token issued by this server", expression=["_page"])
    return position[0], position[1]


def _link(ctx: FhirContext, query: SearchQuery, page: str | None) -> str:
    params = [*query.link_params(), ("_count", str(query.count))]
    if page is not None:
        params.append(("_page", page))
    return f"{ctx.url(query.rtype)}?{urlencode(params)}"


def _entry(ctx: FhirContext, query: SearchQuery, v: StoredVersion, mode: str) -> bytes:
    body = subset(v.json, summary=query.summary, elements=query.elements) if v.json else v.json
    return entry(full_url=ctx.url(v.rtype, v.rid), resource=body, search={"mode": mode})


def _ignored_outcome(query: SearchQuery) -> bytes:
    issues = [Issue("not-supported", f"Search parameter {name!r} is not supported for {query.rtype} and was "
                    "ignored", (name,), severity="warning") for name in query.ignored]
    return entry(full_url=None, resource=outcome_json(*issues), search={"mode": "outcome"})
