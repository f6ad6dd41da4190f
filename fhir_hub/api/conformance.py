"""``GET /StructureDefinition/{id}`` and ``GET /StructureDefinition?url=``: the city's profiles as shipped
(``profiles/city``), read-only.

Served from the files, not from the store: they are the definitions the validator runs on, so a copy in the
store could differ from what is enforced, and a client could overwrite it. These routes come before the
generic read and search (``main.ROUTERS``), so a StructureDefinition written to the store is not readable
here: the hub's definitions are the only ones it answers for (R4 search.html: ``url``, ``type``, ``_id``).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Response

from fhir_hub.api.bundles import bundle, entry
from fhir_hub.api.context import Fhir
from fhir_hub.api.responses import fhir_response
from fhir_hub.api.routing import IdPath, fhir_route
from fhir_hub.errors import BadRequest, NotFound
from profiles.validation.city import structure_definitions

router = APIRouter()
_TYPE = "StructureDefinition"
_SEARCH = ("url", "type", "_id")
_IGNORED = frozenset({"_format", "_pretty"})


@router.get(f"/{_TYPE}/{{rid}}", **{**fhir_route(
    "read", "instance", summary="Read one of the hub's profiles (StructureDefinition), as shipped"),
    "operation_id": "instance-read-structure-definition"})
async def read_definition(rid: IdPath, ctx: Fhir) -> Response:
    found = next((sd for sd in structure_definitions() if sd["id"] == rid), None)
    if found is None:
        raise NotFound(f"{_TYPE}/{rid}: the hub has no such profile (it serves its own, profiles/city)",
                       expression=[f"{_TYPE}/{rid}"])
    return fhir_response(ctx, orjson.dumps(found))


@router.get(f"/{_TYPE}", **{**fhir_route(
    "search-type", "type", summary="Search the hub's profiles by url, type or _id", query=_SEARCH),
    "operation_id": "type-search-structure-definition"})
async def search_definitions(ctx: Fhir) -> Response:
    params = ctx.request.query_params
    unknown = [name for name in params if name not in _SEARCH and name not in _IGNORED]
    if unknown:
        raise BadRequest(f"{unknown[0]}: not a search parameter of {_TYPE} here (it takes {', '.join(_SEARCH)})",
                         expression=[unknown[0]])
    found = [sd for sd in structure_definitions() if all(_matches(sd, name, params.getlist(name)) for name in _SEARCH)]
    entries = [entry(full_url=ctx.url(_TYPE, sd["id"]), resource=orjson.dumps(sd), search={"mode": "match"})
               for sd in found]
    query = ctx.request.url.query
    self_link = ctx.url(_TYPE) + (f"?{query}" if query else "")
    return fhir_response(ctx, bundle("searchset", entries=entries, links=[("self", self_link)], total=len(found)))


def _matches(sd: dict[str, Any], name: str, values: list[str]) -> bool:
    """Each repetition of a parameter must hold (AND); each comma-separated value is an alternative (OR)."""
    key = {"url": "url", "type": "type", "_id": "id"}[name]
    for value in values:
        wanted = {v.split("|", 1)[0] if name == "url" else v for v in value.split(",")}
        if sd.get(key) not in wanted:
            return False
    return True
