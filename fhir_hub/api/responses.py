"""Building FHIR HTTP responses: stored JSON out as bytes, with the versioning headers of the spec."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Response

from fhir_hub.api.context import FhirContext
from fhir_hub.api.negotiation import FHIR_JSON
from fhir_hub.errors import BadRequest, Issue
from fhir_hub.fhir.jsonio import dumps, pretty
from fhir_hub.store.records import StoredVersion


def fhir_response(
    ctx: FhirContext | None, body: bytes | None, *, status: int = 200, headers: dict[str, str] | None = None
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


def version_headers(ctx: FhirContext, version: StoredVersion, *, location: bool = False) -> dict[str, str]:
    headers = {"ETag": version.etag, "Last-Modified": version.last_modified}
    if location:
        headers["Location"] = ctx.url(version.rtype, version.rid, "_history", str(version.vid))
    return headers


def outcome_json(*issues: Issue) -> bytes:
    return dumps({"resourceType": "OperationOutcome", "issue": [i.to_json() for i in issues]})


@dataclass(frozen=True, slots=True)
class Written:
    """What a write interaction did, before it is answered over HTTP or as a Bundle entry's response."""

    version: StoredVersion | None  # None when nothing was there to delete
    status: int
    what: str  # "Created", "Updated", "Patched", "Found existing", "Deleted", "Nothing to delete"

    @property
    def message(self) -> str:
        v = self.version
        if v is None:
            return self.what
        return f"{self.what} {v.rtype}/{v.rid}" + (f", version {v.vid}" if v.vid else "")

    def outcome(self) -> bytes:
        return outcome_json(Issue("informational", self.message, severity="information"))


def write_response(ctx: FhirContext, written: Written) -> Response:
    """Answer a write as the client's ``Prefer: return=`` asks (default: the resource; nothing for a delete)."""
    version, status = written.version, written.status
    headers = version_headers(ctx, version, location=status == 201) if version is not None else {}
    if version is not None and version.deleted:
        headers = {"ETag": version.etag}
    choice = ctx.prefers("return")
    if choice == "operationoutcome":
        return fhir_response(ctx, written.outcome(), status=200 if status == 204 else status, headers=headers)
    body = version.json if version is not None and choice != "minimal" else None
    return fhir_response(ctx, body, status=status, headers=headers)


def parse_etag(value: str, *, header: str) -> int:
    """``W/"3"`` (or ``"3"``) -> 3."""
    text = value.strip()
    if text.startswith(("W/", "w/")):
        text = text[2:]
    text = text.strip('"')
    if not text.isdigit():
        raise BadRequest(f'{header}: {value!r} is not a version tag such as W/"3"', expression=[header])
    return int(text)
