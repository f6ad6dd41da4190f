"""What every FHIR interaction needs from the HTTP request, gathered once as a named dependency.

``Fhir`` authenticates the bearer token, starts the request's audit record, checks that the token's scopes
allow the interaction the matched route implements (read off its ``x-fhir-interaction`` tag, so no handler
repeats an access check) and negotiates the answer's media type, all before a handler runs. What the
interaction itself needs (caller, audit record, base URL, ``Prefer``, clock) is gathered in ``ctx.session``,
a request-free ``fhir_hub.services.Session``: a handler translates HTTP into a service call on it and renders
the typed result; it reads only through ``ctx.reader`` (the session's) and writes nothing itself.
``PublicFhir`` serves the two endpoints the spec leaves open (``/metadata`` and SMART discovery).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from fhir_hub.api.methods import request_method
from fhir_hub.api.negotiation import response_media_type
from fhir_hub.api.routing import INTERACTION_KEY, check_type
from fhir_hub.auth.caller import Caller, InvalidClaims
from fhir_hub.auth.policy import PERMISSION, refuse_emergency_without_reason, require, require_any
from fhir_hub.auth.tokens import InvalidToken
from fhir_hub.errors import BadRequest, Unauthorized
from fhir_hub.hub import Hub
from fhir_hub.linking.residents import with_linked_records
from fhir_hub.services.session import Session
from fhir_hub.store.reader import ScopedReader


@dataclass(slots=True)  # not frozen, for speed (see ``Session``)
class PublicContext:
    """What an answer needs from the request: the negotiated media type, ``_pretty``, the base URL."""

    hub: Hub
    request: Request
    media_type: str
    pretty: bool
    base_url: str

    def url(self, *parts: str) -> str:
        return "/".join((self.base_url, *parts))


@dataclass(slots=True)
class FhirContext(PublicContext):
    """An authenticated request: its ``Session`` is what the services get (no request in it)."""

    session: Session

    @property
    def reader(self) -> ScopedReader:
        return self.session.reader

    def prefers(self, name: str) -> str | None:
        return self.session.prefer.get(name)

    @property
    def strict(self) -> bool:
        return self.session.strict


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


async def authenticate(request: Request, hub: Hub) -> Caller:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("This endpoint needs a bearer token (Authorization: Bearer <JWT>)",
                           headers={"WWW-Authenticate": 'Bearer realm="fhir-hub"'})
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("The Authorization header must be 'Bearer <token>'",
                           headers={"WWW-Authenticate": 'Bearer realm="fhir-hub", error="invalid_request"'})
    try:
        caller = await hub.authenticator.caller(token.strip())
    except (InvalidToken, InvalidClaims) as exc:
        code = "expired" if "expired" in str(exc) else "login"
        raise Unauthorized(f"Invalid bearer token: {exc}", code=code,
                           headers={"WWW-Authenticate": 'Bearer realm="fhir-hub", error="invalid_token"'}) from None
    caller = caller.for_request(emergency_reason(request.headers.get("x-emergency-reason")))
    return await with_linked_records(caller, hub.store.person)  # a resident's records, as linked now


_MAX_REASON = 500


def emergency_reason(header: str | None) -> str | None:
    """``X-Emergency-Reason``: why a clinician breaks the glass, kept in the audit trail as written.

    Header bytes reach the app read as Latin-1 (HTTP's historical charset), but a clinician here writes
    Vietnamese, which clients send as UTF-8 bytes: read as UTF-8 whenever the bytes are (ASCII is both)."""
    if header is None or not header.strip():
        return None
    with contextlib.suppress(UnicodeError):
        header = header.encode("latin-1").decode("utf-8")
    reason = " ".join(header.split())
    if len(reason) > _MAX_REASON:
        raise BadRequest(f"X-Emergency-Reason: at most {_MAX_REASON} characters", expression=["X-Emergency-Reason"])
    return reason


_BASE_URLS: dict[tuple[Any, ...], str] = {}


def _base_url(request: Request) -> str:
    """The request's base URL, remembered per (scheme, host, root path): building it costs a URL parse."""
    scope = request.scope
    key = (scope.get("scheme"), request.headers.get("host"), scope.get("root_path"), tuple(scope.get("server") or ()))
    base = _BASE_URLS.get(key)
    if base is None:
        if len(_BASE_URLS) > 256:  # many Host values: someone is probing; do not grow without bound
            _BASE_URLS.clear()
        base = _BASE_URLS[key] = str(request.base_url).rstrip("/")
    return base


_NO_PARAMS: dict[str, str] = {}


def _negotiated(request: Request, hub: Hub) -> tuple[str, bool, str]:
    """The answer's media type, ``_pretty`` and the base URL."""
    params = request.query_params if request.scope["query_string"] else _NO_PARAMS  # most reads: parse nothing
    return (response_media_type(request.headers.get("accept"), params.get("_format")),
            parse_bool_param(params.get("_pretty"), "_pretty"),
            (hub.settings.base_url or _base_url(request)).rstrip("/"))


async def fhir_context(request: Request) -> FhirContext:
    """Async on purpose: FastAPI runs a plain ``def`` dependency in a worker thread, a hop per request."""
    hub = hub_of(request)
    caller = await authenticate(request, hub)
    tag = request.scope["route"].openapi_extra[INTERACTION_KEY]
    interaction = tag["code"]
    scope = request.scope
    audit = hub.audit.begin(interaction=interaction, caller=caller, method=request_method(scope), path=scope["path"],
                            query=scope["query_string"].decode("latin-1"),
                            client=request.client.host if request.client else None)
    request.state.audit = audit  # finished with the response status by AuditMiddleware
    permission = tag["permission"] if "permission" in tag else PERMISSION[interaction]
    refuse_emergency_without_reason(caller)
    rtype = request.path_params.get("rtype")
    if rtype is None:
        if permission:
            require_any(caller, permission)
    else:
        require(caller, check_type(rtype), permission)
    media_type, pretty, base_url = _negotiated(request, hub)
    session = Session(hub, caller, hub.access(caller), base_url, hub.writer.clock, audit,
                      parse_prefer(request.headers.getlist("prefer")))
    return FhirContext(hub, request, media_type, pretty, base_url, session)


async def public_context(request: Request) -> PublicContext:
    hub = hub_of(request)
    return PublicContext(hub, request, *_negotiated(request, hub))


Fhir = Annotated[FhirContext, Depends(fhir_context)]
PublicFhir = Annotated[PublicContext, Depends(public_context)]
