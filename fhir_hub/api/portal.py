"""The resident page (issue 19): ``GET /portal`` and its two files, served by the hub itself.

A small front end (``fhir_hub/portal/``: one HTML page, one script, one style sheet; no CDN, no web font)
that signs a resident in with their token and calls the hub's own FHIR JSON API with it, so the page can do
nothing the API would refuse. The token comes pasted or in the link ``fhir-hub token --portal-link`` prints,
in the URL's fragment, which browsers never send to a server. Not a FHIR interaction: public, left out of
the OpenAPI document and so of the CapabilityStatement (which is built from the tagged routes).

The answers forbid what the page does not need (a Content-Security-Policy of ``'self'`` only: no inline
script, no other origin) and never send a referrer.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter, Response

from fhir_hub.errors import NotFound

router = APIRouter()

_FILES = {"portal.js": "text/javascript; charset=utf-8", "portal.css": "text/css; charset=utf-8"}
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",  # revalidated: a new hub's page and API arrive together
}


@cache
def _content(name: str) -> bytes:
    return files("fhir_hub").joinpath("portal", name).read_bytes()


@router.get("/portal", include_in_schema=False)
async def page() -> Response:
    return Response(_content("index.html"), media_type="text/html; charset=utf-8", headers=_HEADERS)


@router.get("/portal/{name}", include_in_schema=False)
async def asset(name: str) -> Response:
    media_type = _FILES.get(name)
    if media_type is None:
        raise NotFound(f"/portal/{name[:80]} is not a file of the resident page")
    return Response(_content(name), media_type=media_type, headers=_HEADERS)
