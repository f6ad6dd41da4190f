"""delete (FHIR R4 http.html#delete) and conditional delete (single match).

A deletion is a new version with no content; history keeps every earlier version and a read answers 410.
Deleting something already deleted, or never created, changes nothing and answers 204, as the spec
allows. A conditional delete matching several resources answers 412 instead of deleting them all.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from fhir_hub.api.context import Fhir, FhirContext
from fhir_hub.api.responses import fhir_response, outcome_json, parse_etag
from fhir_hub.api.routing import IdPath, ResourceTypePath, check_instance, check_type, fhir_route
from fhir_hub.errors import Issue, PreconditionFailed
from fhir_hub.store.writer import Delete, WriteResult

router = APIRouter()


@router.delete(
    "/{rtype}/{rid}",
    **fhir_route("delete", "instance", summary="Delete a resource", headers=("If-Match", "Prefer")),
)
async def delete(rtype: ResourceTypePath, rid: IdPath, ctx: Fhir) -> Response:
    check_instance(rtype, rid)
    if_match = ctx.request.headers.get("if-match")
    version = parse_etag(if_match, header="If-Match") if if_match is not None else None
    result = await ctx.commit(Delete(rtype, rid, if_match=version))
    return _answer(ctx, result)


@router.delete(
    "/{rtype}",
    **fhir_route("conditional-delete", "type", summary="Delete the one resource matching the criteria",
                 query=("_id", "identifier"), headers=("Prefer",), conditionalDelete="single"),
)
async def conditional_delete(rtype: ResourceTypePath, ctx: Fhir) -> Response:
    check_type(rtype)
    matches = await ctx.reader.conditional(rtype, ctx.request.url.query, what="Conditional delete")
    if len(matches) > 1:
        raise PreconditionFailed(f"Conditional delete: {len(matches)} {rtype} resources match; this server "
                                 "deletes one resource at a time", code="multiple-matches")
    if not matches:
        return _answer(ctx, None)
    return _answer(ctx, await ctx.commit(Delete(rtype, matches[0].rid)))


def _answer(ctx: FhirContext, result: WriteResult | None) -> Response:
    headers = {"ETag": result.version.etag} if result is not None and result.changed else {}
    if ctx.prefers("return") == "operationoutcome":
        if result is not None and result.changed:
            text = f"Deleted {result.version.rtype}/{result.version.rid} (version {result.version.vid})"
        else:
            text = "Nothing to delete"
        body = outcome_json(Issue("informational", text, severity="information"))
        return fhir_response(ctx, body, status=200, headers=headers)
    return fhir_response(ctx, None, status=204, headers=headers)
