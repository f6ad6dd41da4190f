"""``GET /StructureDefinition/{id}`` and ``GET /StructureDefinition?url=``: the hub's own profiles
(``profiles/city``) as shipped, read-only, in front of the store.

Served from the files, not from the store: they are the definitions the validator enforces, so a stored copy
could differ from what is enforced, and a client could overwrite it. Any other StructureDefinition (an id or
a ``url`` that is not the hub's, any other search) is the store's, answered by the generic read and search
handlers, so these routes only add the hub's definitions on top. They come before the generic routes
(``main.ROUTERS``); having no ``{rtype}`` in their path, the context checks only that the caller may read some
type, and each handler checks the StructureDefinition read scope itself, as the generic routes would.
"""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Response

from fhir_hub.api import read, search
from fhir_hub.api.bundles import bundle, entry
from fhir_hub.api.context import Fhir, FhirContext
from fhir_hub.api.responses import fhir_response
from fhir_hub.api.routing import IdPath, fhir_route
from fhir_hub.auth.policy import require
from profiles.validation.city import structure_definitions

router = APIRouter()
_TYPE = "StructureDefinition"
_AS_IS = frozenset({"_format", "_pretty"})  # parameters that do not change which definitions match


@router.get(f"/{_TYPE}/{{rid}}", **{**fhir_route(
    "read", "instance", summary="Read a StructureDefinition: the hub's own profiles as shipped, others from the "
    "store", headers=("If-None-Match", "If-Modified-Since")), "operation_id": "instance-read-structure-definition"})
async def read_definition(rid: IdPath, ctx: Fhir) -> Response:
    _check_scope(ctx)
    found = next((sd for sd in structure_definitions() if sd["id"] == rid), None)
    if found is None:
        return await read.read(_TYPE, rid, ctx)
    return fhir_response(ctx, orjson.dumps(found))


@router.get(f"/{_TYPE}", **{**fhir_route(
    "search-type", "type", summary="Search StructureDefinitions: by the url of one of the hub's profiles from the "
    "shipped files, otherwise in the store", query=("url",), headers=("Prefer",)),
    "operation_id": "type-search-structure-definition"})
async def search_definitions(ctx: Fhir) -> Response:
    _check_scope(ctx)
    params = ctx.request.query_params
    wanted = [u.split("|", 1)[0] for value in params.getlist("url") for u in value.split(",")]
    shipped = {sd["url"]: sd for sd in structure_definitions()}
    if not wanted or any(u not in shipped for u in wanted) or set(params) - _AS_IS - {"url"} \
            or len(params.getlist("url")) > 1:
        return await search.search(_TYPE, ctx)
    found = [shipped[u] for u in dict.fromkeys(wanted)]
    entries = [entry(full_url=ctx.url(_TYPE, sd["id"]), resource=orjson.dumps(sd), search={"mode": "match"})
               for sd in found]
    query = ctx.request.url.query
    links = [("self", ctx.url(_TYPE) + (f"?{query}" if query else ""))]
    return fhir_response(ctx, bundle("searchset", entries=entries, links=links, total=len(found)))


def _check_scope(ctx: FhirContext) -> None:
    require(ctx.session.caller, _TYPE, "r")
