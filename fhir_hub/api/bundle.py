"""batch and transaction (FHIR R4 http.html#transaction): ``POST [base]`` with a Bundle.

The body is read within the size and entry limits before any entry is looked at (a larger Bundle is a
413 and nothing is processed); ``fhir_hub.bundles`` processes it into one typed result per entry, rendered
here as the response Bundle (as ``Prefer: return=`` asks). A transaction that fails answers one
OperationOutcome naming the entry, with the status of that entry's error, and stores nothing.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import APIRouter, Response

from fhir_hub.api.body import read_resource
from fhir_hub.api.bundles import bundle, entry
from fhir_hub.api.context import Fhir
from fhir_hub.api.responses import fhir_response, outcome_json, stored_warnings
from fhir_hub.api.routing import fhir_route
from fhir_hub.api.searchset import searchset_json
from fhir_hub.bundles.envelope import bundle_type
from fhir_hub.bundles.processor import process
from fhir_hub.errors import Issue
from fhir_hub.services.results import EntryResult

router = APIRouter()


@router.post("/", **fhir_route("transaction", "system", summary="Process a batch or transaction Bundle", body=True,
                               headers=("Prefer",), interactions=["transaction", "batch"]))
async def transaction(ctx: Fhir) -> Response:
    raw = await read_resource(ctx.request, ctx.hub.settings)
    kind = bundle_type(raw)
    results = await process(ctx.session, kind, raw)
    entries = [entry_json(ctx.base_url, result, ctx.prefers("return")) for result in results]
    return fhir_response(ctx, bundle(f"{kind}-response", entries=entries, links=[]))


def entry_json(base_url: str, result: EntryResult, choice: str | None) -> bytes:
    """One entry of the response Bundle; ``choice`` is the client's ``Prefer: return=``."""
    phrase = HTTPStatus(result.status).phrase
    response: dict[str, Any] = {"status": f"{result.status} {phrase}"}
    version = result.version
    full_url = None
    if version is not None:
        full_url = f"{base_url}/{version.rtype}/{version.rid}"
        if result.status in (200, 201) and not version.deleted:
            response["location"] = f"{full_url}/_history/{version.vid}"
        response["etag"] = version.etag
        response["lastModified"] = version.last_updated
    outcome = outcome_json(*result.issues) if result.issues else None
    if outcome is None and version is not None:
        # R4 Bundle.entry.response.outcome: "hints and warnings produced as part of processing this entry"
        warnings = stored_warnings(version) if result.written else []
        done = [Issue("informational", f"{phrase} {version.rtype}/{version.rid}", severity="information")] \
            if choice == "operationoutcome" else []
        outcome = outcome_json(*done, *warnings) if done or warnings else None
    body = _body(base_url, result) if choice not in ("minimal", "operationoutcome") or version is None else None
    return _with_outcome(entry(full_url=full_url, resource=body, response=response), outcome)


def _body(base_url: str, result: EntryResult) -> bytes | None:
    if not result.body:
        return None
    if result.search is not None:
        return searchset_json(base_url, result.search)
    version = result.version
    return version.json if version is not None and not version.deleted else None


def _with_outcome(entry_json: bytes, outcome: bytes | None) -> bytes:
    """Splice an OperationOutcome (already bytes) into the entry's ``response`` without parsing it."""
    if outcome is None:
        return entry_json
    assert entry_json.endswith(b"}}")
    return entry_json[:-2] + b',"outcome":' + outcome + b"}}"
