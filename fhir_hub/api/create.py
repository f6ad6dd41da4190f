"""create (FHIR R4 http.html#create), including conditional create with ``If-None-Exist``.

The server assigns the id; an id in the body is ignored, as the spec requires. With ``If-None-Exist``:
no match creates, one match answers 200 with the existing resource and stores nothing, several matches
answer 412.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from fhir_hub.api.body import read_resource
from fhir_hub.api.context import Fhir
from fhir_hub.api.responses import write_response
from fhir_hub.api.routing import ResourceTypePath, check_type, fhir_route
from fhir_hub.errors import PreconditionFailed
from fhir_hub.fhir.validation import validate_resource
from fhir_hub.store.writer import Create

router = APIRouter()


@router.post(
    "/{rtype}",
    **fhir_route("create", "type", summary="Create a resource (server-assigned id)", body=True,
                 headers=("If-None-Exist", "Prefer"), conditionalCreate=True),
)
async def create(rtype: ResourceTypePath, ctx: Fhir) -> Response:
    check_type(rtype)
    resource = await read_resource(ctx.request, ctx.hub.settings)
    condition = ctx.request.headers.get("if-none-exist")
    if condition is not None:
        validate_resource(resource, expected_type=rtype)  # a bad body is refused even when a match exists
        matches = await ctx.reader.conditional(rtype, condition, what="If-None-Exist")
        if len(matches) > 1:
            raise PreconditionFailed(f"If-None-Exist: {len(matches)} {rtype} resources match {condition!r}",
                                     code="multiple-matches", expression=["If-None-Exist"])
        if matches:
            return write_response(ctx, matches[0], status=200, what="Found existing")
    result = await ctx.commit(Create(rtype, resource))
    return write_response(ctx, result.version, status=201, what="Created")
