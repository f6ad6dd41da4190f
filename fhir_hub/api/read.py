"""read and vread (FHIR R4 http.html#read, #vread): the stored JSON of a version, as stored.

A deleted resource answers 410 Gone; a resource never seen answers 404. Conditional read
(``If-None-Match``, ``If-Modified-Since``) answers 304 when the client's copy is current.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from fhir_hub.api.context import Fhir, FhirContext
from fhir_hub.api.responses import fhir_response, parse_etag, version_headers
from fhir_hub.api.routing import IdPath, ResourceTypePath, VersionPath, check_instance, fhir_route, parse_version
from fhir_hub.fhir.instant import from_http_date
from fhir_hub.store.records import StoredVersion

router = APIRouter()


@router.get(
    "/{rtype}/{rid}",
    **fhir_route("read", "instance", summary="Read the current version of a resource",
                 headers=("If-None-Match", "If-Modified-Since"), conditionalRead="full-support"),
)
async def read(rtype: ResourceTypePath, rid: IdPath, ctx: Fhir) -> Response:
    check_instance(rtype, rid)
    version = await ctx.reader.read(rtype, rid)
    if _client_copy_is_current(ctx, version):
        return Response(status_code=304, headers=version_headers(ctx, version))
    return fhir_response(ctx, version.json, headers=version_headers(ctx, version))


@router.get(
    "/{rtype}/{rid}/_history/{vid}",
    **fhir_route("vread", "instance", summary="Read one version of a resource", readHistory=True),
)
async def vread(rtype: ResourceTypePath, rid: IdPath, vid: VersionPath, ctx: Fhir) -> Response:
    check_instance(rtype, rid)
    version = await ctx.reader.vread(rtype, rid, parse_version(vid))
    return fhir_response(ctx, version.json, headers=version_headers(ctx, version))


def _client_copy_is_current(ctx: FhirContext, version: StoredVersion) -> bool:
    headers = ctx.request.headers
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        tags = [t for t in if_none_match.split(",") if t.strip()]
        return any(t.strip() == "*" or parse_etag(t, header="If-None-Match") == version.vid for t in tags)
    since = headers.get("if-modified-since")
    if since is not None:
        parsed = from_http_date(since)
        return parsed is not None and version.ts // 1_000_000 <= parsed // 1_000_000
    return False
