"""What every FHIR interaction needs from the HTTP request, gathered once as a named dependency.

``Fhir`` authenticates the bearer token, starts the request's audit record, checks that the token's scopes
allow the interaction the matched route implements (read off its ``x-fhir-interaction`` tag, so no handler
repeats an access check) and negotiates the answer's media type, all before a handler runs. Handlers then
read only through ``ctx.reader`` and write only through ``ctx.commit``. ``PublicFhir`` serves the two
endpoints the spec leaves open (``/metadata`` and SMART discovery).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from consent.decision import AccessDecision
from fhir_hub.api.negotiation import response_media_type
from fhir_hub.api.routing import INTERACTION_KEY, check_type
from fhir_hub.audit import AuditRecord
from fhir_hub.auth.caller import Caller, InvalidClaims
from fhir_hub.auth.policy import PERMISSION, require, require_any
from fhir_hub.auth.tokens import InvalidToken
from fhir_hub.errors import BadRequest, Unauthorized
from fhir_hub.hub import Hub
from fhir_hub.store.own_writes import OwnWritesView
from fhir_hub.store.protocol import ReadStore
from fhir_hub.store.reader import ScopedReader
from fhir_hub.store.transaction import Transaction
from fhir_hub.store.writer import WriteOp, WriteResult


@dataclass(frozen=True)
class FhirContext:
    hub: Hub
    request: Request
    media_type: str
    pretty: bool
    base_url: str
    prefer: dict[str, str]
    caller: Caller | None = None
    audit: AuditRecord | None = None
    tx: Transaction | None = None  # set while the entries of a transaction Bundle are processed
    decision: AccessDecision | None = None  # the caller's access decision, made once per request

    def prefers(self, name: str) -> str | None:
        return self.prefer.get(name)

    @property
    def strict(self) -> bool:
        return self.prefer.get("handling") == "strict"

    def url(self, *parts: str) -> str:
        return "/".join((self.base_url, *parts))

    @property
    def reader(self) -> ScopedReader:
        assert self.caller is not None, "public endpoints do not read data"
        store: ReadStore = self.hub.store
        if self.tx is not None and self.tx.changes:  # a group's later entries see its earlier writes
            store = OwnWritesView(store, self.tx)
        return ScopedReader(store, self.caller, self.audit, decision=self.decision,
                            limits=self.hub.settings.search_limits, base_url=self.base_url)

    async def commit(self, op: WriteOp) -> WriteResult:
        assert self.caller is not None, "public endpoints do not write data"
        noticed = self.audit.touch if self.audit is not None else None
        result = await self.hub.writer.commit(op, caller=self.caller, tx=self.tx, noticed=noticed, reader=self.reader)
        if self.audit is not None and result.changed:
            self.audit.touch(result.version)
        return result


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
        return await hub.authenticator.caller(token.strip())
    except (InvalidToken, InvalidClaims) as exc:
        code = "expired" if "expired" in str(exc) else "login"
        raise Unauthorized(f"Invalid bearer token: {exc}", code=code,
                           headers={"WWW-Authenticate": 'Bearer realm="fhir-hub", error="invalid_token"'}) from None


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


def _context(request: Request, hub: Hub, caller: Caller | None, audit: AuditRecord | None) -> FhirContext:
    params = request.query_params
    base = hub.settings.base_url or _base_url(request)
    return FhirContext(
        hub=hub,
        request=request,
        media_type=response_media_type(request.headers.get("accept"), params.get("_format")),
        pretty=parse_bool_param(params.get("_pretty"), "_pretty"),
        base_url=base.rstrip("/"),
        prefer=parse_prefer(request.headers.getlist("prefer")),
        caller=caller,
        audit=audit,
        decision=hub.access(caller) if caller is not None else None,
    )


async def fhir_context(request: Request) -> FhirContext:
    """Async on purpose: FastAPI runs a plain ``def`` dependency in a worker thread, a hop per request."""
    hub = hub_of(request)
    caller = await authenticate(request, hub)
    interaction = request.scope["route"].openapi_extra[INTERACTION_KEY]["code"]
    scope = request.scope
    audit = hub.audit.begin(interaction=interaction, caller=caller, method=request.method, path=scope["path"],
                            query=scope["query_string"].decode("latin-1"),
                            client=request.client.host if request.client else None)
    request.state.audit = audit  # finished with the response status by AuditMiddleware
    permission = PERMISSION[interaction]
    rtype = request.path_params.get("rtype")
    if rtype is None:
        if permission:
            require_any(caller, permission)
    else:
        require(caller, check_type(rtype), permission)
    return _context(request, hub, caller, audit)


async def public_context(request: Request) -> FhirContext:
    return _context(request, hub_of(request), None, None)


Fhir = Annotated[FhirContext, Depends(fhir_context)]
PublicFhir = Annotated[FhirContext, Depends(public_context)]
