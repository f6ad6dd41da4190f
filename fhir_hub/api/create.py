"""create (FHIR R4 http.html#create) over HTTP: ``POST [type]``, with ``If-None-Exist`` for a conditional
create. The interaction itself is ``fhir_hub.services.create``.

Criteria in the URL (``POST /Patient?identifier=...``) are a conditional create too: it is how fhirpy's
``get_or_create`` and other clients send one. They go exactly where the header goes, so the claim on the
criteria keeps two concurrent requests from both creating; the header and the URL together must agree.
Silently creating with the criteria ignored would store the duplicate the client asked not to have."""

from __future__ import annotations

from urllib.parse import unquote_plus

from fastapi import APIRouter, Response

from fhir_hub.api.body import read_resource
from fhir_hub.api.context import Fhir
from fhir_hub.api.responses import write_response
from fhir_hub.api.routing import ResourceTypePath, check_type, fhir_route
from fhir_hub.errors import BadRequest
from fhir_hub.services import create as service
from fhir_hub.store.claims import claim_key

router = APIRouter()


@router.post(
    "/{rtype}",
    **fhir_route("create", "type", summary="Create a resource (server-assigned id)", body=True,
                 query=("identifier",), headers=("If-None-Exist", "Prefer"), conditionalCreate=True),
)
async def create(rtype: ResourceTypePath, ctx: Fhir) -> Response:
    check_type(rtype)
    condition = _condition(ctx.request.headers.get("if-none-exist"), ctx.request.url.query)
    resource = await read_resource(ctx.request, ctx.hub.settings)
    written = await service.create(ctx.session, rtype, resource, if_none_exist=condition)
    return write_response(ctx, written)


_NOT_CRITERIA = frozenset({"_format", "_pretty"})


def _condition(header: str | None, query: str) -> str | None:
    """The conditional create's criteria: ``If-None-Exist``, or the URL's search parameters."""
    in_url = "&".join(part for part in query.split("&")
                      if part and unquote_plus(part.partition("=")[0]) not in _NOT_CRITERIA)
    if not in_url:
        return header
    if header is not None and claim_key("", header) != claim_key("", in_url):
        raise BadRequest("A conditional create gives its criteria once: in If-None-Exist or in the URL, not "
                         "different ones in both", expression=["If-None-Exist"])
    return in_url
