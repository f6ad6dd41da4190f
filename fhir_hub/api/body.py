"""Reading a request body within the configured size limit.

The limit is checked against ``Content-Length`` before reading and again while streaming, so a chunked
upload without a length cannot make the hub buffer more than the limit either.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from fhir_hub.api.negotiation import check_body_media_type
from fhir_hub.config import Settings
from fhir_hub.errors import BadRequest, PayloadTooLarge
from fhir_hub.fhir.jsonio import parse_json_object


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The request body is larger than this server's limit of {limit:,} bytes "
                           "(FHIR_HUB_MAX_BODY_BYTES)")


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise BadRequest(f"Content-Length: {declared!r} is not a number")
        if int(declared) > limit:
            raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_resource(request: Request, settings: Settings) -> dict[str, Any]:
    """The body as a JSON object, after its media type, size and (for a Bundle) entry count are checked."""
    check_body_media_type(request.headers.get("content-type"))
    resource = parse_json_object(await read_body(request, settings.max_body_bytes))
    check_bundle_size(resource, settings.max_bundle_entries)
    return resource


def check_bundle_size(resource: dict[str, Any], limit: int) -> None:
    """A Bundle over the entry limit is refused whole, before any entry is looked at."""
    entries = resource.get("entry") if resource.get("resourceType") == "Bundle" else None
    if isinstance(entries, list) and len(entries) > limit:
        raise PayloadTooLarge(f"Bundle.entry: {len(entries):,} entries; this server accepts at most {limit:,} per "
                              "Bundle (FHIR_HUB_MAX_BUNDLE_ENTRIES)", expression=["Bundle.entry"])
