"""create (FHIR R4 http.html#create), including conditional create with ``If-None-Exist``.

The server assigns the id; an id in the body is ignored, as the spec requires. With ``If-None-Exist``:
no match creates, one match answers 200 with the existing resource and stores nothing, several matches
answer 412. ``create_resource`` serves the HTTP route and the entries of a Bundle alike.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from fhir_hub.api.body import read_resource
from fhir_hub.api.conditions import single_match
from fhir_hub.api.context import Fhir, FhirContext
from fhir_hub.api.responses import Written, write_response
from fhir_hub.api.routing import ResourceTypePath, check_type, fhir_route
from fhir_hub.fhir.validation import validate_resource
from fhir_hub.store.claims import claim_key
from fhir_hub.store.records import StoredVersion
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
    if condition is None:
        return write_response(ctx, await create_resource(ctx, rtype, resource))
    async with ctx.hub.store.claims.holding([claim_key(rtype, condition)]):  # one creator at a time
        return write_response(ctx, await create_resource(ctx, rtype, resource, if_none_exist=condition))


async def existing_match(ctx: FhirContext, rtype: str, condition: str) -> StoredVersion | None:
    """What an ``If-None-Exist`` condition finds (several: 412)."""
    return await single_match(ctx, rtype, condition, what="If-None-Exist", expression=("If-None-Exist",))


async def create_resource(ctx: FhirContext, rtype: str, resource: dict[str, Any], *, if_none_exist: str | None = None,
                          rid: str | None = None) -> Written:
    """``rid``: an id the caller chose among the server's own (a transaction assigns ids before writing)."""
    if if_none_exist is not None:
        found = await existing_match(ctx, rtype, if_none_exist)
        if found is not None:
            validate_resource(resource, expected_type=rtype)  # a bad body is refused even when a match exists
            return Written(found, 200, "Found existing")
    result = await ctx.commit(Create(rtype, resource, rid=rid))
    return Written(result.version, 201, "Created")
