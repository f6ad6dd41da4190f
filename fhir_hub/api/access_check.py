"""``GET /{type}/{id}/$access-check``: may a caller read this resource, and why.

For the hub's operator (a system token without a facility), who answers residents' and facilities'
questions ("why can the district hospital not see my test?") without reading the record. The caller
asked about is described by query parameters: ``facility`` (MoH code), ``purpose`` (v3 ActReason, default
TREAT), ``role`` (clinician, system; default clinician), ``user`` (fhirUser, e.g. ``Practitioner/12``),
``reason`` (an emergency reason, with purpose ETREAT). The answer is a ``Parameters``: ``permitted``, the
policy ``rule`` that decided, ``reason`` in words, ``emergency`` when only breaking the glass permits it,
and each ``provision`` (``Consent/x#Consent.provision...``) that decided. Token scopes are not judged here.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from adapters.normalize import HUB
from consent.engine import Requester
from fhir_hub.api.context import Fhir
from fhir_hub.api.responses import fhir_response
from fhir_hub.api.routing import IdPath, ResourceTypePath, check_instance, fhir_route
from fhir_hub.auth.caller import FACILITY_CODE, PURPOSE_CODE
from fhir_hub.errors import BadRequest
from fhir_hub.fhir.jsonio import dumps

router = APIRouter()
_ROLES = ("clinician", "system")
OPERATION = {"name": "access-check", "definition": f"{HUB}/OperationDefinition/access-check"}


@router.get("/{rtype}/{rid}/$access-check", **fhir_route(
    "access-check", "instance", summary="Whether a caller may read this resource under consent, and why",
    query=("facility", "purpose", "role", "user", "reason"), operation=OPERATION))
async def access_check(rtype: ResourceTypePath, rid: IdPath, ctx: Fhir) -> Response:
    check_instance(rtype, rid)
    outcome = await ctx.session.reader.explain(rtype, rid, asking(ctx.request.query_params, ctx.session.clock()))
    parameter: list[dict[str, Any]] = [
        {"name": "permitted", "valueBoolean": outcome.permitted}, {"name": "rule", "valueCode": outcome.rule},
        {"name": "reason", "valueString": outcome.because}, {"name": "emergency", "valueBoolean": outcome.emergency},
        *({"name": "provision", "valueString": p} for p in outcome.provisions)]
    return fhir_response(ctx, dumps({"resourceType": "Parameters", "parameter": parameter}))


def asking(params: Any, now: int) -> Requester:
    """The caller asked about, from the query; every value checked as a token's claim would be."""
    facility, purpose = params.get("facility"), params.get("purpose", "TREAT")
    role, user, reason = params.get("role", "clinician"), params.get("user"), params.get("reason")
    if facility is not None and not FACILITY_CODE.fullmatch(facility):
        raise BadRequest("facility: a 5-character MoH facility code (MA_CSKCB)", expression=["facility"])
    if not PURPOSE_CODE.fullmatch(purpose):
        raise BadRequest("purpose: a v3 ActReason code such as TREAT or HRESCH", expression=["purpose"])
    if role not in _ROLES:
        raise BadRequest(f"role: one of {', '.join(_ROLES)}", expression=["role"])
    return Requester(kind="facility", role=role, facility=facility, user=user, purpose=purpose,
                     emergency_reason=reason or None, now=now)
