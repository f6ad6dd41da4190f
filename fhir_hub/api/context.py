"""What every FHIR interaction needs from the HTTP request, gathered once as a named dependency.

Negotiation happens here, before any handler does work, so an unacceptable ``Accept`` or ``_format`` is
refused up front and every handler can simply answer in ``ctx.media_type``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from fhir_hub.api.negotiation import response_media_type
from fhir_hub.errors import BadRequest
from fhir_hub.hub import Hub


@dataclass(frozen=True)
class FhirContext:
    hub: Hub
    request: Request
    media_type: str
    pretty: bool
    base_url: str
    prefer: dict[str, str]

    def prefers(self, name: str) -> str | None:
        return self.prefer.get(name)

    @property
    def strict(self) -> bool:
        return self.prefer.get("handling") == "strict"

    def url(self, *parts: str) -> str:
        return "/".join((self.base_url, *parts))


def parse_prefer(values: list[str]) -> dict[str, str]:
    """``Prefer: return=minimal, handling=strict`` -> {"return": "minimal", "handling": "strict"}."""
    prefs: dict[str, str] = {}
    for header in values:
        for token in header.split(","):
            name, _, value = token.strip().partition("=")
            if name:
                prefs[name.strip().lower()] = value.strip().strip('"').lower()
    return prefs


def parse_bool_param(value: str | None, name: str) -> bool:
    if value is None:
        return False
    lowered = value.strip().lower()
    if lowered in ("true", ""):
        return True
    if lowered == "false":
        return False
    raise BadRequest(f"{name}: {value!r} is not true or false", expression=[name])


def hub_of(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


async def fhir_context(request: Request) -> FhirContext:
    """Async on purpose: FastAPI runs a plain ``def`` dependency in a worker thread, a hop per request."""
    hub = hub_of(request)
    params = request.query_params
    media_type = response_media_type(request.headers.get("accept"), params.get("_format"))
    base = hub.settings.base_url or str(request.base_url)
    return FhirContext(
        hub=hub,
        request=request,
        media_type=media_type,
        pretty=parse_bool_param(params.get("_pretty"), "_pretty"),
        base_url=base.rstrip("/"),
        prefer=parse_prefer(request.headers.getlist("prefer")),
    )


Fhir = Annotated[FhirContext, Depends(fhir_context)]
