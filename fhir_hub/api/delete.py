"""delete (FHIR R4 http.html#delete) and conditional delete (single match).

A deletion is a new version with no content; history keeps every earlier version and a read answers 410.
Deleting something already deleted, or never created, changes nothing and answers 204, as the spec
allows. A conditional delete matching several resources answers 412 instead of deleting them all.
``delete_resource`` serves the HTTP routes and the entries of a Bundle alike.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from fhir_hub.api.conditions import single_match
from fhir_hub.api.context import Fhir, FhirContext
from fhir_hub.api.responses import Written, write_response
from fhir_hub.api.routing import IdPath, ResourceTypePath, check_instance, check_type, fhir_route
from fhir_hub.api.update import if_match_header
from fhir_hub.store.writer import Delete

router = APIRouter()


@router.delete(
    "/{rtype}/{rid}",
    **fhir_route("delete", "instance", summary="Delete a resource", headers=("If-Match", "Prefer")),
)
async def delete(rtype: ResourceTypePath, rid: IdPath, ctx: Fhir) -> Response:
    check_instance(rtype, rid)
    return write_response(ctx, await delete_resource(ctx, rtype, rid, if_match=if_match_header(ctx)))


@router.delete(
    "/{rtype}",
    **fhir_route("conditional-delete", "type", summary="Delete the one resource matching the criteria",
                 query=("_id", "identifier"), headers=("Prefer",), conditionalDelete="single"),
)
async def conditional_delete(rtype: ResourceTypePath, ctx: Fhir) -> Response:
    check_type(rtype)
    match = await single_match(ctx, rtype, ctx.request.url.query, what="Conditional delete")
    if match is None:
        return write_response(ctx, Written(None, 204, "Nothing to delete"))
    return write_response(ctx, await delete_resource(ctx, rtype, match.rid, if_match=None))


async def delete_resource(ctx: FhirContext, rtype: str, rid: str, *, if_match: int | None) -> Written:
    result = await ctx.commit(Delete(rtype, rid, if_match=if_match))
    return Written(result.version, 204, "Deleted") if result.changed else Written(None, 204, "Nothing to delete")
