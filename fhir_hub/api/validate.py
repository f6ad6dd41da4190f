"""``POST /{type}/$validate`` and ``POST /{type}/{id}/$validate`` (FHIR R4 resource-operation-validate.html)
over HTTP: the body (a resource, or a Parameters with ``resource``, ``mode``, ``profile``) to
``fhir_hub.services.validate``; the answer is 200 with an OperationOutcome listing every issue, whether the
resource would be accepted or not (a malformed request is a 400, as for any operation)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from fhir_hub.api.body import read_body
from fhir_hub.api.context import Fhir, FhirContext
from fhir_hub.api.negotiation import check_body_media_type
from fhir_hub.api.responses import fhir_response, outcome_json
from fhir_hub.api.routing import IdPath, ResourceTypePath, check_instance, check_type, fhir_route
from fhir_hub.fhir.jsonio import parse_json_object
from fhir_hub.services.validate import validate, validate_request

router = APIRouter()

OPERATION = {"name": "validate", "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate"}
_QUERY = ("mode", "profile")
# On every type ("*"). No write happens: the permission is that of the write tried out, creating at type level,
# updating at instance level (carried by the tag, as fhir_hub.auth.policy.PERMISSION has no entry for it).


@router.post("/{rtype}/$validate", **fhir_route(
    "validate", "type", summary="Check a resource against the base specification without storing it",
    body=True, query=_QUERY, operation=OPERATION, resource="*", permission="c"))
async def validate_type(rtype: ResourceTypePath, ctx: Fhir) -> Response:
    return await _answer(ctx, check_type(rtype), None)


@router.post("/{rtype}/{rid}/$validate", **fhir_route(
    "validate", "instance", summary="Check a resource (or its deletion) for one instance without storing it",
    body=True, query=_QUERY, operation=OPERATION, resource="*", permission="u"))
async def validate_instance(rtype: ResourceTypePath, rid: IdPath, ctx: Fhir) -> Response:
    return await _answer(ctx, *check_instance(rtype, rid))


async def _answer(ctx: FhirContext, rtype: str, rid: str | None) -> Response:
    request = ctx.request
    raw = await read_body(request, ctx.hub.settings.max_body_bytes)
    body = None
    if raw.strip():  # mode=delete needs no body
        check_body_media_type(request.headers.get("content-type"))
        body = parse_json_object(raw)
    found = await validate(ctx.session, rtype, rid, validate_request(body, request.query_params))
    return fhir_response(ctx, outcome_json(*found))
