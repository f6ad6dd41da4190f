"""search-type, search-system and compartment search (FHIR R4 search.html) over HTTP, by GET and by
``POST [type]/_search`` (a form body whose parameters count with the URL's).

The parameters, ``_sort``, ``_total``, ``_summary``, ``_elements``, ``_include``/``_revinclude`` and
keyset paging are ``fhir_hub.services.search``'s; the searchset Bundle with its ``self``, ``next`` and
``previous`` links and its outcome entry for ignored parameters is ``api/searchset.py``'s.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import APIRouter, Response

from fhir_hub.api.body import read_body
from fhir_hub.api.context import Fhir, FhirContext
from fhir_hub.api.negotiation import check_body_media_type
from fhir_hub.api.responses import fhir_response
from fhir_hub.api.routing import IdPath, ResourceTypePath, check_type, fhir_route
from fhir_hub.api.searchset import searchset_json
from fhir_hub.errors import BadRequest
from fhir_hub.services import search as service
from fhir_hub.services.results import Searched

router = APIRouter()

FORM = "application/x-www-form-urlencoded"
_QUERY = ("_id", "identifier", "_count", "_sort", "_total", "_summary", "_elements", "_include", "_revinclude",
          "_page")


@router.get("/", **fhir_route("search-system", "system", summary="Search across resource types",
                              query=("_type", *_QUERY), headers=("Prefer",)))
async def search_system(ctx: Fhir) -> Response:
    return _answer(ctx, await service.search_system(ctx.session, ctx.request.query_params.multi_items()))


@router.post("/_search", **fhir_route("search-system-post", "system", summary="Search across types with a form body",
                                      headers=("Prefer",)))
async def search_system_post(ctx: Fhir) -> Response:
    return _answer(ctx, await service.search_system(ctx.session, await _with_form(ctx)))


@router.get("/{rtype}", **fhir_route("search-type", "type", summary="Search resources of a type", query=_QUERY,
                                     headers=("Prefer",)))
async def search(rtype: ResourceTypePath, ctx: Fhir) -> Response:
    check_type(rtype)
    return _answer(ctx, await service.search(ctx.session, rtype, ctx.request.query_params.multi_items()))


@router.post("/{rtype}/_search", **fhir_route("search-type-post", "type", summary="Search with a form body",
                                              headers=("Prefer",)))
async def search_post(rtype: ResourceTypePath, ctx: Fhir) -> Response:
    check_type(rtype)
    return _answer(ctx, await service.search(ctx.session, rtype, await _with_form(ctx)))


@router.get("/{ctype}/{cid}/{rtype}", **fhir_route("search-compartment", "type",
                                                   summary="Search a type within a patient's compartment",
                                                   query=_QUERY, headers=("Prefer",)))
async def search_compartment(ctype: str, cid: IdPath, rtype: ResourceTypePath, ctx: Fhir) -> Response:
    check_type(ctype)
    return _answer(ctx, await service.search_compartment(ctx.session, ctype, cid, rtype,
                                                         ctx.request.query_params.multi_items()))


@router.post("/{ctype}/{cid}/{rtype}/_search", **fhir_route("search-compartment-post", "type",
                                                            summary="Search within a compartment with a form body",
                                                            headers=("Prefer",)))
async def search_compartment_post(ctype: str, cid: IdPath, rtype: ResourceTypePath, ctx: Fhir) -> Response:
    check_type(ctype)
    return _answer(ctx, await service.search_compartment(ctx.session, ctype, cid, rtype, await _with_form(ctx)))


def _answer(ctx: FhirContext, searched: Searched) -> Response:
    return fhir_response(ctx, searchset_json(ctx.base_url, searched))


async def _with_form(ctx: FhirContext) -> list[tuple[str, str]]:
    """The URL's parameters followed by those of the form body (search.html: both count)."""
    check_body_media_type(ctx.request.headers.get("content-type") or FORM, allowed=(FORM,))
    body = await read_body(ctx.request, ctx.hub.settings.max_body_bytes)
    try:
        form = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise BadRequest("The form body is not UTF-8") from None
    return [*ctx.request.query_params.multi_items(), *form]
