"""batch and transaction (FHIR R4 http.html#transaction): ``POST [base]`` with a Bundle.

The body is read within the size and entry limits before any entry is looked at (a larger Bundle is a
413 and nothing is processed); ``fhir_hub.bundles`` does the rest. A transaction that fails answers one
OperationOutcome naming the entry, with the status of that entry's error, and stores nothing.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from fhir_hub.api.body import read_resource
from fhir_hub.api.context import Fhir
from fhir_hub.api.responses import fhir_response
from fhir_hub.api.routing import fhir_route
from fhir_hub.bundles.envelope import bundle_type
from fhir_hub.bundles.processor import process

router = APIRouter()


@router.post("/", **fhir_route("transaction", "system", summary="Process a batch or transaction Bundle", body=True,
                               headers=("Prefer",), interactions=["transaction", "batch"]))
async def transaction(ctx: Fhir) -> Response:
    raw = await read_resource(ctx.request, ctx.hub.settings)
    return fhir_response(ctx, await process(ctx, bundle_type(raw), raw))
