"""delete (FHIR R4 http.html#delete) and conditional delete (single match) over HTTP: ``DELETE [type]/[id]``
(with ``If-Match``) and ``DELETE [type]?criteria``. The interactions are ``fhir_hub.services.delete``."""

from __future__ import annotations

from fastapi import APIRouter, Response

from fhir_hub.api.context import Fhir
from fhir_hub.api.responses import write_response
from fhir_hub.api.routing import IdPath, ResourceTypePath, check_instance, check_type, fhir_route
from fhir_hub.api.update import if_match_header
from fhir_hub.services import delete as service

router = APIRouter()


@router.delete(
    "/{rtype}/{rid}",
    **fhir_route("delete", "instance", summary="Delete a resource", headers=("If-Match", "Prefer")),
)
async def delete(rtype: ResourceTypePath, rid: IdPath, ctx: Fhir) -> Response:
    check_instance(rtype, rid)
    return write_response(ctx, await service.delete(ctx.session, rtype, rid, if_match=if_match_header(ctx)))


@router.delete(
    "/{rtype}",
    **fhir_route("conditional-delete", "type", summary="Delete the one resource matching the criteria",
                 query=("_id", "identifier"), headers=("Prefer",), conditionalDelete="single"),
)
async def conditional_delete(rtype: ResourceTypePath, ctx: Fhir) -> Response:
    check_type(rtype)
    return write_response(ctx, await service.conditional_delete(ctx.session, rtype, ctx.request.url.query))
