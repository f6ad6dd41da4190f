"""history at instance, type and system level (FHIR R4 http.html#history).

Newest first, deletions included; ``total`` counts the versions over all pages that the caller may see,
and is left out when only judging every version would tell (``ScopedReader.history``). Pages are keyset
pages: the ``next`` link carries the position of the last entry shown (its lastUpdated and version key),
so versions written while a client pages never shift or repeat what it sees; they appear only before the
first page. ``_since`` keeps versions created at or after an instant. Unknown parameters are ignored, or
refused with ``Prefer: handling=strict``.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Response

from fhir_hub.api.bundles import bundle, entry
from fhir_hub.api.context import Fhir, FhirContext
from fhir_hub.api.responses import fhir_response
from fhir_hub.api.routing import IdPath, ResourceTypePath, check_instance, check_type, fhir_route
from fhir_hub.errors import BadRequest
from fhir_hub.fhir.instant import parse_instant_lower_bound
from fhir_hub.search.query import parse_count
from fhir_hub.services.pages import decode_page, encode_page, is_history_position
from fhir_hub.store.mongo import HistoryPosition
from fhir_hub.store.records import StoredVersion

router = APIRouter()

_PARAMS = frozenset({"_count", "_since", "_page", "_format", "_pretty"})
_QUERY = ("_count", "_since", "_page")


@router.get("/_history", **fhir_route("history-system", "system", summary="History of every resource",
                                      query=_QUERY))
async def history_system(ctx: Fhir) -> Response:
    return await _history(ctx, None, None)


@router.get("/{rtype}/_history", **fhir_route("history-type", "type", summary="History of a resource type",
                                              query=_QUERY))
async def history_type(rtype: ResourceTypePath, ctx: Fhir) -> Response:
    return await _history(ctx, check_type(rtype), None)


@router.get("/{rtype}/{rid}/_history",
            **fhir_route("history-instance", "instance", summary="History of one resource", query=_QUERY))
async def history_instance(rtype: ResourceTypePath, rid: IdPath, ctx: Fhir) -> Response:
    check_instance(rtype, rid)
    return await _history(ctx, rtype, rid)


async def _history(ctx: FhirContext, rtype: str | None, rid: str | None) -> Response:
    params = ctx.request.query_params
    unknown = sorted(set(params.keys()) - _PARAMS)
    if unknown and ctx.strict:
        raise BadRequest(f"History parameter {unknown[0]!r} is not supported (supported: _count, _since)",
                         expression=[unknown[0]], code="not-supported")
    settings = ctx.hub.settings
    count = parse_count(params.get("_count"), default=settings.default_count, maximum=settings.max_count)
    since_text = params.get("_since")
    since = None
    if since_text is not None:
        since = parse_instant_lower_bound(since_text)
        if since is None:
            raise BadRequest(f"_since: {since_text!r} is not a FHIR instant", expression=["_since"])
    before = _page_position(params.get("_page"))
    page = await ctx.reader.history(rtype=rtype, rid=rid, since=since, before=before, limit=count)
    path = "/".join(p for p in (rtype, rid, "_history") if p)
    kept = [(k, v) for k, v in params.multi_items() if k in ("_count", "_since")]
    links = [("self", _link(ctx, path, params.multi_items()))]
    if page.next_before is not None:
        links.append(("next", _link(ctx, path, [*kept, ("_page", encode_page(list(page.next_before)))])))
    entries = [_entry(ctx, v) for v in page.versions]
    return fhir_response(ctx, bundle("history", entries=entries, links=links, total=page.total))


def _page_position(token: str | None) -> HistoryPosition | None:
    if token is None:
        return None
    position = decode_page(token)
    if not is_history_position(position):  # a search's position is a page token too, of another kind
        raise BadRequest("_page: not a page token issued by this server", expression=["_page"])
    return position[0], position[1], position[2]


def _link(ctx: FhirContext, path: str, params: list[tuple[str, str]]) -> str:
    query = urlencode(params)
    return ctx.url(path) + (f"?{query}" if query else "")


_STATUS = {"POST": "201 Created", "PUT": "200 OK", "PATCH": "200 OK", "DELETE": "204 No Content"}


def _entry(ctx: FhirContext, v: StoredVersion) -> bytes:
    url = f"{v.rtype}" if v.method == "POST" else f"{v.rtype}/{v.rid}"
    status = "201 Created" if v.vid == 1 and not v.deleted else _STATUS.get(v.method, "200 OK")
    return entry(
        full_url=ctx.url(v.rtype, v.rid),
        resource=v.json,
        request={"method": v.method, "url": url},
        response={"status": status, "etag": v.etag, "lastModified": v.last_updated},
    )
