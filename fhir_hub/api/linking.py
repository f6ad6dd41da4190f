"""Patient link operations over HTTP (issue 16; the services are ``fhir_hub.services.linking``):

- ``POST /Patient/$merge`` (``source-patient``, ``target-patient``: references to any record of each
  person, ``reason``): the source's person is merged into the target's. The names are R5's Patient $merge;
  unlike it, no record is changed or re-pointed: the source person's master is redirected (``replaced-by``).
- ``POST /Patient/$unmerge`` (``patient``: the merged-away master, listed as ``replaces`` on the other,
  or a source record; ``reason``): the merge undone, automatic or manual, and the two never merged
  automatically again; for a source record, its own link undone: a person of its own, kept apart.
- ``GET /Patient/$review-list`` (``_count``): pairs of records that may be one person, for a person to
  decide; ``POST /Patient/$review`` (``record``, ``candidate``, ``decision`` = ``same`` | ``different``).
- ``GET /Patient/{id}/$links``: the person a record belongs to (master, merged masters, every source with
  the rule, score, grade and author of its link) and the log of people's decisions about them.

Each answers a ``Parameters`` resource; errors are ``OperationOutcome``s naming the parameter.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from adapters.normalize import HUB
from fhir_hub.api.body import read_resource
from fhir_hub.api.context import Fhir, FhirContext
from fhir_hub.api.responses import fhir_response
from fhir_hub.api.routing import IdPath, check_instance, fhir_route
from fhir_hub.errors import BadRequest
from fhir_hub.fhir.instant import to_instant
from fhir_hub.fhir.jsonio import dumps, loads
from fhir_hub.services import linking as service
from fhir_hub.store.records import StoredVersion

router = APIRouter()
_COUNT_DEFAULT, _COUNT_MAX = 50, 500


def _operation(name: str) -> dict[str, str]:
    return {"name": name, "definition": f"{HUB}/OperationDefinition/Patient-{name}"}


@router.post("/Patient/$merge", **fhir_route("merge", "type", summary="Merge two persons' records", body=True,
                                             operation=_operation("merge"), resource="Patient"))
async def merge(ctx: Fhir) -> Response:
    params = await _parameters(ctx)
    kept = await service.merge(ctx.session, _reference(params, "source-patient"),
                               _reference(params, "target-patient"), _text(params, "reason"))
    return _answer(ctx, f"merged into {kept.key}", kept)


@router.post("/Patient/$unmerge", **fhir_route("unmerge", "type", summary="Undo a merge of two persons",
                                               body=True, operation=_operation("unmerge"), resource="Patient"))
async def unmerge(ctx: Fhir) -> Response:
    params = await _parameters(ctx)
    restored = await service.unmerge(ctx.session, _reference(params, "patient"), _text(params, "reason"))
    return _answer(ctx, f"{restored.key} restored as a person of its own", restored)


@router.post("/Patient/$review", **fhir_route("review", "type", summary="Decide on a pair of the review list",
                                              body=True, operation=_operation("review"), resource="Patient"))
async def review(ctx: Fhir) -> Response:
    params = await _parameters(ctx)
    decision = params.get("decision", {}).get("valueCode")
    if decision not in ("same", "different"):
        raise BadRequest("decision: must be the code 'same' or 'different'", expression=["decision"])
    kept = await service.review(ctx.session, _reference(params, "record"), _reference(params, "candidate"),
                                decision == "same", _text(params, "reason"))
    return _answer(ctx, f"the pair is settled: {decision}", kept)


@router.get("/Patient/$review-list", **fhir_route("review-list", "type", summary="Pairs waiting for review",
                                                  query=("_count",), operation=_operation("review-list"),
                                                  resource="Patient"))
async def review_list(ctx: Fhir) -> Response:
    raw = ctx.request.query_params.get("_count", str(_COUNT_DEFAULT))
    if not raw.isdigit() or not 0 < int(raw) <= _COUNT_MAX:
        raise BadRequest(f"_count: must be a whole number from 1 to {_COUNT_MAX}", expression=["_count"])
    pairs = await service.review_list(ctx.session, int(raw))
    return fhir_response(ctx, dumps(_parameters_of([
        {"name": "pair", "part": [{"name": "record", "resource": loads(p.record.json or b"{}")},
                                  {"name": "candidate", "resource": loads(p.candidate.json or b"{}")}]}
        for p in pairs])))


@router.get("/Patient/{rid}/$links", **fhir_route("links", "instance", summary="A record's person and its links",
                                                  operation=_operation("links"), resource="Patient"))
async def links(rid: IdPath, ctx: Fhir) -> Response:
    check_instance("Patient", rid)
    person = await service.links(ctx.session, rid)
    parameter: list[dict[str, Any]] = []
    if person.master is not None:
        parameter.append({"name": "master", "resource": person.master})
    parameter += [{"name": "merged", "valueReference": {"reference": m.key}} for m in person.merged]
    for version, decision in person.sources:
        part: list[dict[str, Any]] = [{"name": "record", "valueReference": {"reference": version.key}}]
        if decision is not None:
            part += [{"name": name, **value} for name, value in decision.values()]
        parameter.append({"name": "source", "part": part})
    for entry in person.log:
        part = [{"name": "action", "valueCode": entry.get("action", entry.get("k"))},
                {"name": "author", "valueString": entry["by"]},
                {"name": "when", "valueInstant": to_instant(entry["at"])},
                {"name": "record", "valueReference": {"reference": entry["a"]}}]
        if "b" in entry:
            part.append({"name": "other", "valueReference": {"reference": entry["b"]}})
        if entry.get("reason"):
            part.append({"name": "reason", "valueString": entry["reason"]})
        parameter.append({"name": "decision", "part": part})
    return fhir_response(ctx, dumps(_parameters_of(parameter)))


def _parameters_of(parameter: list[dict[str, Any]]) -> dict[str, Any]:
    """FHIR JSON has no empty arrays: an answer with nothing in it has no ``parameter``."""
    return {"resourceType": "Parameters", **({"parameter": parameter} if parameter else {})}


async def _parameters(ctx: FhirContext) -> dict[str, dict[str, Any]]:
    body = await read_resource(ctx.request, ctx.hub.settings)
    if body.get("resourceType") != "Parameters":
        raise BadRequest("The body must be a Parameters resource", expression=["Parameters"])
    found: dict[str, dict[str, Any]] = {}
    for param in body.get("parameter") or []:
        if isinstance(param, dict) and isinstance(param.get("name"), str):
            found.setdefault(param["name"], param)
    return found


def _reference(params: dict[str, dict[str, Any]], name: str) -> str:
    value = (params.get(name) or {}).get("valueReference") or {}
    reference = value.get("reference") if isinstance(value, dict) else None
    if not isinstance(reference, str) or not reference.startswith("Patient/") or reference.count("/") != 1:
        raise BadRequest(f"{name}: a valueReference to a Patient (Patient/<id>) is required", expression=[name])
    check_instance("Patient", reference.removeprefix("Patient/"))
    return reference


def _text(params: dict[str, dict[str, Any]], name: str) -> str | None:
    value = (params.get(name) or {}).get("valueString")
    return value if isinstance(value, str) and value.strip() else None


def _answer(ctx: FhirContext, what: str, master: StoredVersion) -> Response:
    outcome = {"resourceType": "OperationOutcome",
               "issue": [{"severity": "information", "code": "informational", "diagnostics": what}]}
    body = {"resourceType": "Parameters", "parameter": [{"name": "outcome", "resource": outcome},
                                                        {"name": "result", "resource": loads(master.json or b"{}")}]}
    return fhir_response(ctx, dumps(body))
