"""``GET /Patient/{id}/$risk``: a person's risk score, tier and the rules that gave it, with their evidence
(issue 18; ``fhir_hub.services.risk``). Read like the record itself: what the caller may not read neither
shows nor counts."""

from __future__ import annotations

from fastapi import APIRouter, Response

from adapters.normalize import HUB
from fhir_hub.api.context import Fhir
from fhir_hub.api.responses import fhir_response
from fhir_hub.api.routing import IdPath, check_instance, fhir_route
from fhir_hub.fhir.jsonio import dumps
from fhir_hub.services import risk

router = APIRouter()


@router.get("/Patient/{rid}/$risk", **fhir_route(
    "risk", "instance", summary="A person's risk score and the rules that gave it (priority groups)",
    operation={"name": "risk", "definition": f"{HUB}/OperationDefinition/risk"}, resource="Patient"))
async def patient_risk(rid: IdPath, ctx: Fhir) -> Response:
    check_instance("Patient", rid)
    return fhir_response(ctx, dumps(risk.parameters(await risk.assess_patient(ctx.session, rid))))
