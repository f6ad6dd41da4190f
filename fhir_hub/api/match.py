"""``POST /Patient/$match`` (FHIR R4 patient-operation-match.html) over HTTP: the body (a ``Parameters``, or a
bare Patient) to ``fhir_hub.services.match``, its answer as a ``searchset`` Bundle, best first, each entry
with ``search.mode = match``, ``search.score`` and the ``match-grade`` extension (certain, probable,
possible). ``total`` is how many persons matched; ``count`` caps the entries."""

from __future__ import annotations

from fastapi import APIRouter, Response

from fhir_hub.api.body import read_resource
from fhir_hub.api.bundles import bundle, entry
from fhir_hub.api.context import Fhir
from fhir_hub.api.responses import fhir_response
from fhir_hub.api.routing import fhir_route
from fhir_hub.services.match import MATCH_GRADE, Matched, match, match_request

router = APIRouter()

OPERATION = {"name": "match", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-match"}


@router.post("/Patient/$match", **fhir_route("match", "type", summary="Patient records that may be this person "
                                             "(master patient index)", body=True, operation=OPERATION,
                                             resource="Patient"))
async def patient_match(ctx: Fhir) -> Response:
    request = match_request(await read_resource(ctx.request, ctx.hub.settings),
                            max_count=ctx.hub.settings.search_limits.max_count)
    return fhir_response(ctx, searchset_json(ctx.base_url, await match(ctx.session, request)))


def searchset_json(base_url: str, matched: Matched) -> bytes:
    entries = [entry(full_url=f"{base_url}/{m.version.rtype}/{m.version.rid}", resource=m.version.json,
                     search={"extension": [{"url": MATCH_GRADE, "valueCode": m.grade}], "mode": "match",
                             "score": m.score})
               for m in matched.matches]
    return bundle("searchset", entries=entries, links=[("self", f"{base_url}/Patient/$match")], total=matched.total)
