"""Building FHIR HTTP responses: stored JSON out as bytes, with the versioning headers of the spec."""

from __future__ import annotations

from fastapi import Response

from fhir_hub.api.context import FhirContext, PublicContext
from fhir_hub.api.negotiation import FHIR_JSON
from fhir_hub.errors import Issue
from fhir_hub.fhir.jsonio import dumps, loads, pretty
from fhir_hub.fhir.validation import accepted_with_warnings
from fhir_hub.services.results import Written
from fhir_hub.store.records import StoredVersion


def fhir_response(
    ctx: PublicContext | None, body: bytes | None, *, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    media = ctx.media_type if ctx else FHIR_JSON
    if body is not None and ctx is not None and ctx.pretty:
        body = pretty(body)
    return Response(
        content=body if body is not None else b"",
        status_code=status,
        headers=headers,
        media_type=f"{media}; charset=utf-8" if body is not None else None,
    )


def version_headers(ctx: PublicContext, version: StoredVersion, *, location: bool = False) -> dict[str, str]:
    headers = {"ETag": version.etag, "Last-Modified": version.last_modified}
    if location:
        headers["Location"] = ctx.url(version.rtype, version.rid, "_history", str(version.vid))
    return headers


def outcome_json(*issues: Issue) -> bytes:
    return dumps({"resourceType": "OperationOutcome", "issue": [i.to_json() for i in issues]})


def stored_warnings(version: StoredVersion) -> list[Issue]:
    """What a write stored but the client should hear: a claimed city profile enforced ``warn`` broken.
    Computed from the stored JSON when the answer is built (the write path keeps no issues), and only where
    an answer carries an outcome: a ``return=OperationOutcome`` write, a batch or transaction entry."""
    if not version.json or version.deleted or b'"profile"' not in version.json:
        return []  # claims no profile (``meta.profile``): nothing to parse again (a transaction's every entry)
    return accepted_with_warnings(loads(version.json))


def write_response(ctx: FhirContext, written: Written) -> Response:
    """Answer a write as the client's ``Prefer: return=`` asks (default: the resource; nothing for a delete)."""
    version, status = written.version, written.status
    headers = version_headers(ctx, version, location=status == 201) if version is not None else {}
    if version is not None and version.deleted:
        headers = {"ETag": version.etag}
    choice = ctx.prefers("return")
    if choice == "operationoutcome":
        warnings = stored_warnings(version) if version is not None else []
        outcome = outcome_json(Issue("informational", written.message, severity="information"), *warnings)
        return fhir_response(ctx, outcome, status=200 if status == 204 else status, headers=headers)
    body = version.json if version is not None and choice != "minimal" else None
    return fhir_response(ctx, body, status=status, headers=headers)
