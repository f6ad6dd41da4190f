"""patch (FHIR R4 http.html#patch) over HTTP, with JSON Patch or FHIRPath Patch, and conditional patch.

The body's Content-Type says which: ``application/json-patch+json`` is a JSON Patch, FHIR JSON
(``application/fhir+json``) a ``Parameters`` resource of FHIRPath Patch operations; ``If-Match`` pins the
version it applies to. The interactions are ``fhir_hub.services.patch``.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from fhir_hub.api.body import read_body
from fhir_hub.api.context import Fhir, FhirContext
from fhir_hub.api.negotiation import FHIR_JSON, JSON, check_body_media_type
from fhir_hub.api.responses import write_response
from fhir_hub.api.routing import IdPath, ResourceTypePath, check_instance, check_type, fhir_route
from fhir_hub.api.update import if_match_header
from fhir_hub.errors import BadRequest, UnsupportedMediaType
from fhir_hub.fhir.fhirpath_patch import fhirpath_patch
from fhir_hub.fhir.jsonio import parse_json
from fhir_hub.fhir.patch import JSON_PATCH, Applier, json_patch
from fhir_hub.services import patch as service

router = APIRouter()

_PATCH_BODY = {"required": True, "content": {
    JSON_PATCH: {"schema": {"type": "array", "items": {"type": "object"}}},
    FHIR_JSON: {"schema": {"type": "object", "description": "a Parameters resource (FHIRPath Patch)"}}}}


@router.patch(
    "/{rtype}/{rid}",
    **fhir_route("patch", "instance", summary="Change a resource with a JSON Patch or a FHIRPath Patch",
                 body=_PATCH_BODY, headers=("If-Match", "Prefer")),
)
async def patch(rtype: ResourceTypePath, rid: IdPath, ctx: Fhir) -> Response:
    check_instance(rtype, rid)
    apply = await _read_patch(ctx)
    return write_response(ctx, await service.patch(ctx.session, rtype, rid, apply, if_match=if_match_header(ctx)))


@router.patch(
    "/{rtype}",
    **fhir_route("conditional-patch", "type", summary="Patch the one resource matching the criteria",
                 body=_PATCH_BODY, query=("_id", "identifier"), headers=("If-Match", "Prefer")),
)
async def conditional_patch(rtype: ResourceTypePath, ctx: Fhir) -> Response:
    check_type(rtype)
    apply = await _read_patch(ctx)
    written = await service.conditional_patch(ctx.session, rtype, ctx.request.url.query, apply,
                                              if_match=if_match_header(ctx))
    return write_response(ctx, written)


_FORMATS = (f"a JSON Patch as {JSON_PATCH}, or a FHIRPath Patch (a Parameters resource) as {FHIR_JSON}")


async def _read_patch(ctx: FhirContext) -> Applier:
    """The patch in the body. Plain ``application/json`` is FHIR JSON here as on every route, so it can carry
    a FHIRPath Patch; anything but a Parameters in it (most often a JSON Patch array sent with the wrong
    media type) is refused with a message naming both accepted formats."""
    content_type = ctx.request.headers.get("content-type") or "none"
    try:
        media = check_body_media_type(content_type, allowed=(JSON_PATCH, FHIR_JSON, JSON))
    except UnsupportedMediaType:
        raise UnsupportedMediaType(f"Content-Type {content_type[:80]!r} is not a patch format; send {_FORMATS} "
                                   "(XML is not supported)") from None
    body = await read_body(ctx.request, ctx.hub.settings.max_body_bytes)
    if media == JSON_PATCH:
        return json_patch(parse_json(body, what="JSON Patch body"))
    parameters = parse_json(body, what="FHIRPath Patch body")
    if not isinstance(parameters, dict) or parameters.get("resourceType") != "Parameters":
        shape = "a JSON array (a JSON Patch?)" if isinstance(parameters, list) else "not a Parameters resource"
        raise BadRequest(f"A PATCH body sent as {media} must be a FHIRPath Patch Parameters resource; this one is "
                         f"{shape}. Send {_FORMATS}", expression=["Parameters"])
    return fhirpath_patch(parameters, where="Parameters")
