"""The audit trail for those it concerns, over HTTP (issue 17; who may ask: ``fhir_hub.services.access_log``):

- ``GET /Patient/$access-log`` (a resident: their own record) and ``GET /Patient/{id}/$access-log`` (the
  resident's own record, or any for the hub's operator): who accessed the record, when, from which facility
  and why, as AuditEvents; emergency accesses ("break the glass") first, then the others, newest first.
- ``GET /AuditEvent/$emergency-access``: the emergency accesses flagged to the calling facility (every
  facility's for the hub's operator), one AuditEvent per request, newest first.

Each answers a ``searchset`` Bundle (an operation may return any resource; a Bundle of AuditEvents is what
an ``AuditEvent`` search answers too), with ``total`` and keyset pages (``_count``, ``next`` links carrying
``_page``). Each AuditEvent says who (``agent``: the token's subject or ``fhirUser``, its role and address),
the facility (an agent with the MoH facility code), when (``recorded``), the purpose (``purposeOfEvent``,
with an emergency's reason as its ``text``) and, for an emergency, the ``meta.tag``
``https://fhir.hub.hcmc.vn/CodeSystem/audit-flag|emergency-access``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Response

from adapters.normalize import HUB
from fhir_hub.api.bundles import bundle, entry
from fhir_hub.api.context import Fhir, FhirContext
from fhir_hub.api.responses import fhir_response
from fhir_hub.api.routing import IdPath, check_instance, fhir_route
from fhir_hub.errors import BadRequest
from fhir_hub.search.execute import Position, SearchOutcome
from fhir_hub.search.query import parse_count
from fhir_hub.services import access_log as service
from fhir_hub.services.pages import decode_page, encode_page

router = APIRouter()
_QUERY = ("_count", "_page")
_ACCESS_LOG = {"name": "access-log", "definition": f"{HUB}/OperationDefinition/Patient-access-log"}
_EMERGENCY = {"name": "emergency-access", "definition": f"{HUB}/OperationDefinition/AuditEvent-emergency-access"}


@router.get("/Patient/$access-log", **fhir_route("access-log", "type", summary="Who accessed my record",
                                                 query=_QUERY, operation=_ACCESS_LOG, resource="Patient"))
async def own_access_log(ctx: Fhir) -> Response:
    count, after = _paging(ctx, phased=True)
    found = await service.access_log(ctx.session, None, after=after, count=count)
    return _searchset(ctx, "Patient/$access-log", count, found)


@router.get("/Patient/{rid}/$access-log", **fhir_route("access-log", "instance", summary="Who accessed a record",
                                                       query=_QUERY, operation=_ACCESS_LOG, resource="Patient"))
async def access_log(rid: IdPath, ctx: Fhir) -> Response:
    check_instance("Patient", rid)
    count, after = _paging(ctx, phased=True)
    found = await service.access_log(ctx.session, rid, after=after, count=count)
    return _searchset(ctx, f"Patient/{rid}/$access-log", count, found)


@router.get("/AuditEvent/$emergency-access", **fhir_route("emergency-access", "type", query=_QUERY,
                                                          summary="Emergency accesses flagged to my facility",
                                                          operation=_EMERGENCY, resource="AuditEvent"))
async def emergency_access(ctx: Fhir) -> Response:
    count, after = _paging(ctx, phased=False)
    found = await service.emergency_accesses(ctx.session, after=after, count=count)
    return _searchset(ctx, "AuditEvent/$emergency-access", count, found)


def _paging(ctx: FhirContext, *, phased: bool) -> tuple[int, Position | None]:
    """``_count`` and the position a ``_page`` token holds: ``[ts, id]`` of the last entry shown, after its
    phase (0: emergency accesses, 1: the others) for an access log. A token comes back from the client:
    anything else, a search's or another operation's position included, is a 400 naming ``_page``."""
    params = ctx.request.query_params
    settings = ctx.hub.settings
    count = parse_count(params.get("_count"), default=settings.default_count, maximum=settings.max_count)
    token = params.get("_page")
    if token is None:
        return count, None
    position = decode_page(token)
    values: Any = position[1] if position[0] == "after" else None
    if not (isinstance(values, list) and len(values) == 2 + phased and _fits(values, phased)):
        raise BadRequest("_page: not a page token of this operation; follow the Bundle's links", expression=["_page"])
    return count, values


def _fits(values: list[Any], phased: bool) -> bool:
    *phase, ts, rid = values
    return (all(p in (0, 1) and type(p) is int for p in phase) and type(ts) is int and ts >= 0
            and isinstance(rid, str))


def _searchset(ctx: FhirContext, path: str, count: int, found: SearchOutcome) -> Response:
    kept = [("_count", str(count))]
    links = [("self", _link(ctx, path, kept))]
    if found.next is not None:
        links.append(("next", _link(ctx, path, [*kept, ("_page", encode_page(["after", found.next]))])))
    entries = [entry(full_url=ctx.url(v.rtype, v.rid), resource=v.json, search={"mode": "match"})
               for v in found.page]
    return fhir_response(ctx, bundle("searchset", entries=entries, links=links, total=found.total))


def _link(ctx: FhirContext, path: str, params: list[tuple[str, str]]) -> str:
    return f"{ctx.url(path)}?{urlencode(params)}"
