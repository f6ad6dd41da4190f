"""update (FHIR R4 http.html#update) and conditional update (#cond-update) over HTTP: ``PUT [type]/[id]``
and ``PUT [type]?criteria``, with ``If-Match``. The interactions are ``fhir_hub.services.update``."""

from __future__ import annotations

from fastapi import APIRouter, Response

from fhir_hub.api.body import read_resource
from fhir_hub.api.context import Fhir, FhirContext
from fhir_hub.api.responses import write_response
from fhir_hub.api.routing import IdPath, ResourceTypePath, check_instance, check_type, fhir_route
from fhir_hub.services import update as service
from fhir_hub.services.preconditions import parse_etag

router = APIRouter()


@router.put(
    "/{rtype}/{rid}",
    **fhir_route("update", "instance", summary="Update a resource, or create it with this id", body=True,
                 headers=("If-Match", "Prefer"), updateCreate=True, versioning="versioned-update"),
)
async def update(rtype: ResourceTypePath, rid: IdPath, ctx: Fhir) -> Response:
    check_instance(rtype, rid)
    resource = await read_resource(ctx.request, ctx.hub.settings)
    return write_response(ctx, await service.update(ctx.session, rtype, rid, resource, if_match=if_match_header(ctx)))


@router.put(
    "/{rtype}",
    **fhir_route("conditional-update", "type", summary="Update the one resource matching the search criteria",
                 body=True, query=("_id", "identifier"), headers=("If-Match", "Prefer"), conditionalUpdate=True),
)
async def conditional_update(rtype: ResourceTypePath, ctx: Fhir) -> Response:
    check_type(rtype)
    resource = await read_resource(ctx.request, ctx.hub.settings)
    written = await service.conditional_update(ctx.session, rtype, ctx.request.url.query, resource,
                                               if_match=if_match_header(ctx))
    return write_response(ctx, written)


def if_match_header(ctx: FhirContext) -> int | None:
    value = ctx.request.headers.get("if-match")
    return parse_etag(value, header="If-Match") if value is not None else None
