"""``GET /Patient/{id}/$everything`` over HTTP (R4 patient-operation-everything): a searchset of the patient's
compartment with what it references, paged like a search (``fhir_hub.services.everything``)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from fhir_hub.api.context import Fhir
from fhir_hub.api.responses import fhir_response
from fhir_hub.api.routing import IdPath, check_instance, fhir_route
from fhir_hub.api.searchset import searchset_json
from fhir_hub.services import everything as service

router = APIRouter()

_EVERYTHING = {"name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"}


@router.get("/Patient/{rid}/$everything", **fhir_route(
    "everything", "instance", summary="Everything in a patient's compartment, and what it references",
    query=service.PARAMS, headers=("Prefer",), operation=_EVERYTHING, resource="Patient"))
async def patient_everything(rid: IdPath, ctx: Fhir) -> Response:
    check_instance("Patient", rid)
    searched = await service.everything(ctx.session, rid, ctx.request.query_params.multi_items())
    return fhir_response(ctx, searchset_json(ctx.base_url, searched))
