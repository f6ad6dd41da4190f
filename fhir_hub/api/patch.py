"""patch (FHIR R4 http.html#patch) with JSON Patch or FHIRPath Patch, and conditional patch.

The body's Content-Type says which: ``application/json-patch+json`` is a JSON Patch, FHIR JSON
(``application/fhir+json``) a ``Parameters`` resource of FHIRPath Patch operations. The patch is applied
to the current version and the result goes through the same validation, access checks and versioning as
an update; ``If-Match`` pins the version it applies to. ``patch_resource`` serves the HTTP routes and the
entries of a Bundle alike.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from fhir_hub.api.body import read_body
from fhir_hub.api.conditions import single_match
from fhir_hub.api.context import Fhir, FhirContext
from fhir_hub.api.negotiation import FHIR_JSON, JSON, check_body_media_type
from fhir_hub.api.responses import Written, write_response
from fhir_hub.api.routing import IdPath, ResourceTypePath, check_instance, check_type, fhir_route
from fhir_hub.api.update import if_match_header
from fhir_hub.errors import NotFound
from fhir_hub.fhir.fhirpath_patch import fhirpath_patch
from fhir_hub.fhir.jsonio import parse_json
from fhir_hub.fhir.patch import JSON_PATCH, Applier, json_patch
from fhir_hub.store.writer import Patch

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
    return write_response(ctx, await patch_resource(ctx, rtype, rid, apply, if_match=if_match_header(ctx)))


@router.patch(
    "/{rtype}",
    **fhir_route("conditional-patch", "type", summary="Patch the one resource matching the criteria",
                 body=_PATCH_BODY, query=("_id", "identifier"), headers=("If-Match", "Prefer")),
)
async def conditional_patch(rtype: ResourceTypePath, ctx: Fhir) -> Response:
    check_type(rtype)
    apply = await _read_patch(ctx)
    match = await single_match(ctx, rtype, ctx.request.url.query, what="Conditional patch")
    if match is None:
        raise NotFound(f"Conditional patch: no {rtype} matches the criteria")
    return write_response(ctx, await patch_resource(ctx, rtype, match.rid, apply, if_match=if_match_header(ctx)))


async def _read_patch(ctx: FhirContext) -> Applier:
    media = check_body_media_type(ctx.request.headers.get("content-type") or "none",
                                  allowed=(JSON_PATCH, FHIR_JSON, JSON))
    body = await read_body(ctx.request, ctx.hub.settings.max_body_bytes)
    if media == JSON_PATCH:
        return json_patch(parse_json(body, what="JSON Patch body"))
    return fhirpath_patch(parse_json(body, what="FHIRPath Patch body"), where="Parameters")


async def patch_resource(ctx: FhirContext, rtype: str, rid: str, apply: Applier, *, if_match: int | None) -> Written:
    result = await ctx.commit(Patch(rtype, rid, apply, if_match=if_match))
    return Written(result.version, 200, "Patched")
