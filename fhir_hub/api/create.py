"""create (FHIR R4 http.html#create) over HTTP: ``POST [type]``, with ``If-None-Exist`` for a conditional
create. The interaction itself is ``fhir_hub.services.create``."""

from __future__ import annotations

from fastapi import APIRouter, Response

from fhir_hub.api.body import read_resource
from fhir_hub.api.context import Fhir
from fhir_hub.api.responses import write_response
from fhir_hub.api.routing import ResourceTypePath, check_type, fhir_route
from fhir_hub.services import create as service

router = APIRouter()


@router.post(
    "/{rtype}",
    **fhir_route("create", "type", summary="Create a resource (server-assigned id)", body=True,
                 headers=("If-None-Exist", "Prefer"), conditionalCreate=True),
)
async def create(rtype: ResourceTypePath, ctx: Fhir) -> Response:
    check_type(rtype)
    resource = await read_resource(ctx.request, ctx.hub.settings)
    written = await service.create(ctx.session, rtype, resource, if_none_exist=ctx.request.headers.get("if-none-exist"))
    return write_response(ctx, written)
