"""read and vread (FHIR R4 http.html#read, #vread) over HTTP: the stored JSON of a version, as stored.

Conditional read (``If-None-Match``, ``If-Modified-Since``) answers 304 when the client's copy is current.
The interactions are ``fhir_hub.services.read``.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from fhir_hub.api.context import Fhir
from fhir_hub.api.responses import fhir_response, version_headers
from fhir_hub.api.routing import IdPath, ResourceTypePath, VersionPath, check_instance, fhir_route, parse_version
from fhir_hub.services import read as service
from fhir_hub.services.preconditions import client_copy_is_current

router = APIRouter()


@router.get(
    "/{rtype}/{rid}",
    **fhir_route("read", "instance", summary="Read the current version of a resource",
                 headers=("If-None-Match", "If-Modified-Since"), conditionalRead="full-support"),
)
async def read(rtype: ResourceTypePath, rid: IdPath, ctx: Fhir) -> Response:
    check_instance(rtype, rid)
    version = await service.read(ctx.session, rtype, rid)
    headers = ctx.request.headers
    if client_copy_is_current(version, if_none_match=headers.get("if-none-match"),
                              if_modified_since=headers.get("if-modified-since")):
        return Response(status_code=304, headers=version_headers(ctx, version))
    return fhir_response(ctx, version.json, headers=version_headers(ctx, version))


@router.get(
    "/{rtype}/{rid}/_history/{vid}",
    **fhir_route("vread", "instance", summary="Read one version of a resource", readHistory=True),
)
async def vread(rtype: ResourceTypePath, rid: IdPath, vid: VersionPath, ctx: Fhir) -> Response:
    check_instance(rtype, rid)
    version = await service.vread(ctx.session, rtype, rid, parse_version(vid))
    return fhir_response(ctx, version.json, headers=version_headers(ctx, version))
