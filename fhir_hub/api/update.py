"""update (FHIR R4 http.html#update) and conditional update (#cond-update).

PUT with a client id creates the resource when it does not exist (update-as-create, 201). ``If-Match``
makes the update depend on the version the client last saw (412 otherwise). Conditional update
``PUT [type]?criteria``: no match creates (with the body's id if it has one), one match updates it, several
matches answer 412; a body id that names another resource than the match is a 400. The functions below
serve the HTTP routes and the entries of a Bundle alike.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from fhir_hub.api.body import read_resource
from fhir_hub.api.conditions import single_match
from fhir_hub.api.context import Fhir, FhirContext
from fhir_hub.api.responses import Written, parse_etag, write_response
from fhir_hub.api.routing import IdPath, ResourceTypePath, check_instance, check_type, fhir_route
from fhir_hub.errors import BadRequest
from fhir_hub.store.claims import claim_key
from fhir_hub.store.records import StoredVersion
from fhir_hub.store.writer import Create, Update

router = APIRouter()


@router.put(
    "/{rtype}/{rid}",
    **fhir_route("update", "instance", summary="Update a resource, or create it with this id", body=True,
                 headers=("If-Match", "Prefer"), updateCreate=True, versioning="versioned-update"),
)
async def update(rtype: ResourceTypePath, rid: IdPath, ctx: Fhir) -> Response:
    check_instance(rtype, rid)
    resource = await read_resource(ctx.request, ctx.hub.settings)
    return write_response(ctx, await update_resource(ctx, rtype, rid, resource, if_match=if_match_header(ctx)))


@router.put(
    "/{rtype}",
    **fhir_route("conditional-update", "type", summary="Update the one resource matching the search criteria",
                 body=True, query=("_id", "identifier"), headers=("If-Match", "Prefer"), conditionalUpdate=True),
)
async def conditional_update(rtype: ResourceTypePath, ctx: Fhir) -> Response:
    check_type(rtype)
    resource = await read_resource(ctx.request, ctx.hub.settings)
    criteria = ctx.request.url.query
    async with ctx.hub.store.claims.holding([claim_key(rtype, criteria)]):  # no match: one creator at a time
        match = await single_match(ctx, rtype, criteria, what="Conditional update")
        written = await update_matched(ctx, rtype, match, resource, if_match=if_match_header(ctx))
    return write_response(ctx, written)


async def update_matched(ctx: FhirContext, rtype: str, match: StoredVersion | None, resource: dict[str, Any], *,
                         if_match: int | None, new_id: str | None = None) -> Written:
    """A conditional update once its criteria are resolved; ``new_id`` names the resource it creates
    when nothing matched and the body has no id (a transaction chooses it ahead)."""
    body_id = resource.get("id")
    if match is None:
        if body_id is None:
            result = await ctx.commit(Create(rtype, resource, rid=new_id))
            return Written(result.version, 201, "Created")
        return await update_resource(ctx, rtype, str(body_id), resource, if_match=if_match)
    if body_id is not None and body_id != match.rid:
        raise BadRequest(f"Resource.id: the body has id {body_id!r} but the criteria match {rtype}/{match.rid}",
                         expression=[f"{rtype}.id"])
    return await update_resource(ctx, rtype, match.rid, {**resource, "id": match.rid}, if_match=if_match)


async def update_resource(ctx: FhirContext, rtype: str, rid: str, resource: dict[str, Any], *,
                          if_match: int | None) -> Written:
    result = await ctx.commit(Update(rtype, rid, resource, if_match=if_match))
    return Written(result.version, 201, "Created") if result.created else Written(result.version, 200, "Updated")


def if_match_header(ctx: FhirContext) -> int | None:
    value = ctx.request.headers.get("if-match")
    return parse_etag(value, header="If-Match") if value is not None else None
