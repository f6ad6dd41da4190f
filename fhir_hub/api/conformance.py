"""``GET /{type}/{id}`` and ``GET /{type}?url=`` for StructureDefinition, ValueSet and CodeSystem: the
conformance resources the hub ships (``profiles/catalogue.py``: the city's profiles and value sets, the R4
value sets its required bindings enforce, its own code systems), read-only, in front of the store.

Served from the files, not from the store: they are the definitions the validator enforces, so a stored copy
could differ from what is enforced, and a client could overwrite it. Any other resource of these types (an
id or a ``url`` that is not the hub's, any other search) is the store's, answered by the generic read and
search handlers, so these routes only add the hub's definitions on top. They come before the generic routes
(``main.ROUTERS``); having no ``{rtype}`` in their path, the context checks only that the caller may read some
type, and each handler checks the type's read scope itself, as the generic routes would. One pair of routes
per type, made by one function.
"""

from __future__ import annotations

import re

import orjson
from fastapi import APIRouter, Response

from fhir_hub.api import read, search
from fhir_hub.api.bundles import bundle, entry
from fhir_hub.api.context import Fhir, FhirContext
from fhir_hub.api.responses import fhir_response
from fhir_hub.api.routing import IdPath, fhir_route
from fhir_hub.auth.policy import require
from profiles.catalogue import SERVED_TYPES, by_id, by_url

router = APIRouter()
_AS_IS = frozenset({"_format", "_pretty"})  # parameters that do not change which definitions match


def _kebab(rtype: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", rtype).lower()  # StructureDefinition -> structure-definition


def _add_routes(rtype: str) -> None:
    """``GET /{rtype}/{id}`` and ``GET /{rtype}`` for one served type."""

    @router.get(f"/{rtype}/{{rid}}", **{**fhir_route(
        "read", "instance", summary=f"Read a {rtype}: the hub's own as shipped, others from the store",
        headers=("If-None-Match", "If-Modified-Since")), "operation_id": f"instance-read-{_kebab(rtype)}"})
    async def read_shipped(rid: IdPath, ctx: Fhir) -> Response:
        return await _read(rtype, rid, ctx)

    @router.get(f"/{rtype}", **{**fhir_route(
        "search-type", "type", summary=f"Search {rtype} resources: by the url of one of the hub's own from the "
        "shipped files, otherwise in the store", query=("url",), headers=("Prefer",)),
        "operation_id": f"type-search-{_kebab(rtype)}"})
    async def search_shipped(ctx: Fhir) -> Response:
        return await _search(rtype, ctx)


async def _read(rtype: str, rid: str, ctx: FhirContext) -> Response:
    require(ctx.session.caller, rtype, "r")
    found = by_id(rtype).get(rid)
    if found is None:
        return await read.read(rtype, rid, ctx)
    return fhir_response(ctx, orjson.dumps(found))


async def _search(rtype: str, ctx: FhirContext) -> Response:
    require(ctx.session.caller, rtype, "r")
    params = ctx.request.query_params
    wanted = [u.split("|", 1)[0] for value in params.getlist("url") for u in value.split(",")]
    shipped = by_url(rtype)
    if not wanted or any(u not in shipped for u in wanted) or set(params) - _AS_IS - {"url"} \
            or len(params.getlist("url")) > 1:
        return await search.search(rtype, ctx)
    found = [shipped[u] for u in dict.fromkeys(wanted)]
    entries = [entry(full_url=ctx.url(rtype, r["id"]), resource=orjson.dumps(r), search={"mode": "match"})
               for r in found]
    query = ctx.request.url.query
    links = [("self", ctx.url(rtype) + (f"?{query}" if query else ""))]
    return fhir_response(ctx, bundle("searchset", entries=entries, links=links, total=len(found)))


for _rtype in SERVED_TYPES:
    _add_routes(_rtype)
