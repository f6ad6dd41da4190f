"""update (FHIR R4 http.html#update) and conditional update (#cond-update).

PUT with a client id creates the resource when it does not exist (update-as-create, 201). ``If-Match``
makes the update depend on the version the client last saw (412 otherwise). Conditional update
``PUT [type]?criteria``: no match creates (with the body's id if it has one), one match updates it, several
matches answer 412; a body id that names another resource than the match is a 400.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from fhir_hub.api.body import read_resource
from fhir_hub.api.context import Fhir, FhirContext
from fhir_hub.api.responses import parse_etag, write_response
from fhir_hub.api.routing import IdPath, ResourceTypePath, check_instance, check_type, fhir_route
from fhir_hub.errors import BadRequest, PreconditionFailed
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
    return await _update(ctx, Update(rtype, rid, resource, if_match=_if_match(ctx)))


@router.put(
    "/{rtype}",
    **fhir_route("conditional-update", "type", summary="Update the one resource matching the search criteria",
                 body=True, query=("_id", "identifier"), headers=("If-Match", "Prefer"), conditionalUpdate=True),
)
async def conditional_update(rtype: ResourceTypePath, ctx: Fhir) -> Response:
    check_type(rtype)
    resource = await read_resource(ctx.request, ctx.hub.settings)
    matches = await ctx.reader.conditional(rtype, ctx.request.url.query, what="Conditional update")
    if len(matches) > 1:
        raise PreconditionFailed(f"Conditional update: {len(matches)} {rtype} resources match the criteria",
                                 code="multiple-matches")
    body_id = resource.get("id")
    if not matches:
        if body_id is None:
            result = await ctx.commit(Create(rtype, resource))
            return write_response(ctx, result.version, status=201, what="Created")
        return await _update(ctx, Update(rtype, str(body_id), resource, if_match=_if_match(ctx)))
    match = matches[0]
    if body_id is not None and body_id != match.rid:
        raise BadRequest(f"Resource.id: the body has id {body_id!r} but the criteria match {rtype}/{match.rid}",
                         expression=[f"{rtype}.id"])
    resource = {**resource, "id": match.rid}
    return await _update(ctx, Update(rtype, match.rid, resource, if_match=_if_match(ctx)))


async def _update(ctx: FhirContext, op: Update) -> Response:
    result = await ctx.commit(op)
    status = 201 if result.created else 200
    return write_response(ctx, result.version, status=status, what="Created" if result.created else "Updated")


def _if_match(ctx: FhirContext) -> int | None:
    value = ctx.request.headers.get("if-match")
    return parse_etag(value, header="If-Match") if value is not None else None
