"""The priority record through the API (issue 18), each read like the record itself (what the caller may not
read neither shows nor counts):

- ``GET /Patient/{id}/$risk``: a person's risk score, tier and the rules that gave it, with their evidence
  (``fhir_hub.services.risk``);
- ``GET /Group/$risk-cohort?group=&ward=``: a risk group's cohort ``Group``, members with their score;
- ``GET /Patient/$priority-worklist?ward=&months=``: a ward's high-risk residents with no visit in the
  last months, a searchset of their Patients (score and last visit in ``search.extension``) with their Flags
  (``fhir_hub.services.cohorts``)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from adapters.normalize import HUB
from fhir_hub.api.bundles import bundle, entry
from fhir_hub.api.context import Fhir
from fhir_hub.api.responses import fhir_response
from fhir_hub.api.routing import IdPath, check_instance, fhir_route
from fhir_hub.errors import BadRequest
from fhir_hub.fhir.jsonio import dumps
from fhir_hub.services import cohorts, risk

router = APIRouter()


@router.get("/Patient/{rid}/$risk", **fhir_route(
    "risk", "instance", summary="A person's risk score and the rules that gave it (priority groups)",
    operation={"name": "risk", "definition": f"{HUB}/OperationDefinition/risk"}, resource="Patient"))
async def patient_risk(rid: IdPath, ctx: Fhir) -> Response:
    check_instance("Patient", rid)
    return fhir_response(ctx, dumps(risk.parameters(await risk.assess_patient(ctx.session, rid))))


_COHORT = {"name": "risk-cohort", "definition": f"{HUB}/OperationDefinition/Group-risk-cohort"}
_WORKLIST = {"name": "priority-worklist", "definition": f"{HUB}/OperationDefinition/Patient-priority-worklist"}


@router.get("/Group/$risk-cohort", **fhir_route(
    "risk-cohort", "type", summary="The cohort Group of a risk group, members with their score",
    query=("group", "ward"), operation=_COHORT, resource="Group"))
async def risk_cohort(ctx: Fhir) -> Response:
    params = ctx.request.query_params
    group, ward = params.get("group"), params.get("ward")
    if not group:
        raise BadRequest("group: name the risk group (a rule id of profiles/risk/rules.json)", expression=["group"])
    found, count = await cohorts.members(ctx.session, group=group, ward=ward or None)
    return fhir_response(ctx, dumps(cohorts.cohort_group(group, ward or None, found, count)))


@router.get("/Patient/$priority-worklist", **fhir_route(
    "priority-worklist", "type", summary="A ward's high-risk residents with no visit in the last months",
    query=("ward", "months"), operation=_WORKLIST, resource="Patient"))
async def priority_worklist(ctx: Fhir) -> Response:
    params = ctx.request.query_params
    ward = params.get("ward")
    if not ward:
        raise BadRequest("ward: name the ward or commune code (Patient?address-ward=)", expression=["ward"])
    months = params.get("months", "12")
    if not months.isdigit() or not 1 <= int(months) <= 120:
        raise BadRequest(f"months: {months[:20]!r} is not a whole number of months from 1 to 120",
                         expression=["months"])
    listed = await cohorts.worklist(ctx.session, ward, int(months))
    entries = []
    for member in listed:
        found = [{"url": cohorts.SCORE, "valueInteger": member.score}]
        if member.last_visit is not None:
            found.append({"url": cohorts.LAST_VISIT, "valueDateTime": member.last_visit})
        entries.append(entry(full_url=ctx.session.url(member.patient.key), resource=member.patient.json,
                             search={"mode": "match", "extension": found}))
        entries += [entry(full_url=ctx.session.url(f"Flag/{flag['id']}"), resource=dumps(flag),
                          search={"mode": "include"}) for flag in member.flags]
    return fhir_response(ctx, bundle("searchset", entries=entries, links=[], total=len(listed)))
