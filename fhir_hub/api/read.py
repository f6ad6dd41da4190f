"""read and vread (FHIR R4 http.html#read, #vread) over HTTP: the stored JSON of a version, as stored.

Conditional read (``If-None-Match``, ``If-Modified-Since``) answers 304 when the client's copy is current.
``_summary`` and ``_elements`` (R4 search.html#summary, which http.html#read allows on a read) return part
of the resource, tagged ``SUBSETTED``, by the same function as a search's entries (``fhir/subset.py``); the
ETag stays the version's. A HEAD runs as this GET (``api/conventions.py``). The interactions are
``fhir_hub.services.read``.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from fhir_hub.api.context import Fhir, FhirContext
from fhir_hub.api.responses import fhir_response, version_headers
from fhir_hub.api.routing import IdPath, ResourceTypePath, VersionPath, check_instance, fhir_route, parse_version
from fhir_hub.errors import BadRequest
from fhir_hub.fhir.subset import subset
from fhir_hub.search.query import SearchQuery, parse_search
from fhir_hub.services import read as service
from fhir_hub.services.preconditions import client_copy_is_current
from fhir_hub.store.records import StoredVersion

router = APIRouter()


_SUBSET = ("_summary", "_elements")


@router.get(
    "/{rtype}/{rid}",
    **fhir_route("read", "instance", summary="Read the current version of a resource", query=_SUBSET,
                 headers=("If-None-Match", "If-Modified-Since"), conditionalRead="full-support"),
)
async def read(rtype: ResourceTypePath, rid: IdPath, ctx: Fhir) -> Response:
    check_instance(rtype, rid)
    asked = _subset_asked(ctx, rtype)
    version = await service.read(ctx.session, rtype, rid)
    headers = ctx.request.headers
    if client_copy_is_current(version, if_none_match=headers.get("if-none-match"),
                              if_modified_since=headers.get("if-modified-since")):
        return Response(status_code=304, headers=version_headers(ctx, version))
    return _answer(ctx, version, asked)


@router.get(
    "/{rtype}/{rid}/_history/{vid}",
    **fhir_route("vread", "instance", summary="Read one version of a resource", query=_SUBSET, readHistory=True),
)
async def vread(rtype: ResourceTypePath, rid: IdPath, vid: VersionPath, ctx: Fhir) -> Response:
    check_instance(rtype, rid)
    asked = _subset_asked(ctx, rtype)
    version = await service.vread(ctx.session, rtype, rid, parse_version(vid))
    return _answer(ctx, version, asked)


def _subset_asked(ctx: FhirContext, rtype: str) -> SearchQuery | None:
    """``_summary``/``_elements`` checked exactly as a search checks them (the search's own parser), before
    anything is read; None for a plain read, which skips all of it."""
    if not ctx.request.scope["query_string"]:
        return None
    params = ctx.request.query_params
    given = [(name, value) for name in _SUBSET if (value := params.get(name)) is not None]
    if not given:
        return None
    asked = parse_search(rtype, given, strict=True, limits=ctx.hub.settings.search_limits)
    if asked.summary == "count":
        raise BadRequest("_summary=count counts the matches of a search; a read returns one resource (use "
                         "_summary=true, text, data or false)", expression=["_summary"])
    return asked


def _answer(ctx: FhirContext, version: StoredVersion, asked: SearchQuery | None) -> Response:
    body = version.json
    if asked is not None and body is not None:
        body = subset(body, summary=asked.summary, elements=asked.elements)
    return fhir_response(ctx, body, headers=version_headers(ctx, version))
