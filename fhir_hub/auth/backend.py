"""SMART Backend Services: a hospital system gets an access token with a signed assertion, no person involved.

SMART App Launch v2, Backend Services (``backend-services.html``) and Asymmetric Client Authentication
(``client-confidential-asymmetric.html``), on RFC 6749 4.4 (client credentials), RFC 7521/7523 (JWT client
assertions). The client POSTs ``grant_type=client_credentials``, ``client_assertion_type=urn:ietf:params:
oauth:client-assertion-type:jwt-bearer``, ``client_assertion`` (a JWT it signed with its private key) and
``scope``. The hub checks the assertion against the public keys the client registered (configuration file
``FHIR_HUB_BACKEND_CLIENTS`` or the store: ``fhir-hub client register``), never against a key or URL named
inside the assertion, and answers with its own access token: the client's facility, the scopes asked for
that the registration allows, a lifetime of ``FHIR_HUB_ISSUED_TOKEN_SECONDS``.

This is OAuth, not FHIR: errors are RFC 6749 5.2 JSON objects (``{"error": "invalid_client", ...}``), 400 or
401, never an OperationOutcome. Every check on the assertion answers ``invalid_client`` (the spec's word for
a failed client authentication), with a description that says which check failed but nothing about other
clients.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from fhir_hub.auth.caller import FACILITY_CODE
from fhir_hub.auth.keys import IssuingKey, KeySet
from fhir_hub.auth.scopes import Scopes
from fhir_hub.auth.tokens import (
    InvalidToken,
    claim_time,
    issue_access_token,
    read_header,
    unverified_claims,
    verified_claims,
)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_SECONDS = 300  # "exp: ... no more than five minutes in the future" (Backend Services)
MAX_ASSERTION_BYTES = 16_384
_MAX_JTI = 255


class OAuthError(Exception):
    """An RFC 6749 5.2 error: ``error`` is the registered code, ``description`` safe to show."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


class RegistrationError(ValueError):
    """A client registration the hub cannot use (the message names the client and the field)."""


@dataclass(frozen=True)
class BackendClient:
    client_id: str
    scopes: Scopes  # what it may be granted: system/ scopes only
    facility: str | None
    keys: KeySet
    jwks_url: str | None = None


def client_from_registration(item: Mapping[str, Any]) -> BackendClient:
    """One registration: ``client_id``, ``scope`` (system/ scopes), ``facility`` (optional: without one the
    client is the hub's operator), ``jwks`` (inline public keys) and/or ``jwks_url``."""
    client_id = item.get("client_id")
    if not isinstance(client_id, str) or not client_id or len(client_id) > 255:
        raise RegistrationError("a backend client needs a client_id (a string of 1 to 255 characters)")
    scope_text = item.get("scope")
    scopes = Scopes.parse(scope_text if isinstance(scope_text, str) else "")
    if not scopes.granted or len(scopes.granted) != len(str(scope_text).split()) or scopes.contexts != {"system"}:
        raise RegistrationError(f"client {client_id!r}: scope must be system/ scopes, e.g. 'system/*.rs'")
    facility = item.get("facility")
    if facility is not None and (not isinstance(facility, str) or not FACILITY_CODE.fullmatch(facility)):
        raise RegistrationError(f"client {client_id!r}: facility must be a 5-character MoH facility code")
    jwks, url = item.get("jwks"), item.get("jwks_url")
    if url is not None and (not isinstance(url, str) or not url.startswith(("https://", "http://127.0.0.1",
                                                                            "http://localhost"))):
        raise RegistrationError(f"client {client_id!r}: jwks_url must be an https URL")
    if jwks is not None and not isinstance(jwks, dict):
        raise RegistrationError(f"client {client_id!r}: jwks must be a JWK Set ({{\"keys\": [...]}})")
    keys = KeySet.for_client(jwks, url)
    if not keys.public_jwks()["keys"] and url is None:
        raise RegistrationError(f"client {client_id!r}: jwks holds no usable public key (RSA, EC P-384 or P-256, "
                                "each with a kid)")
    return BackendClient(client_id, scopes, facility, keys, url)


def clients_from_file(path: Path) -> dict[str, BackendClient]:
    """``FHIR_HUB_BACKEND_CLIENTS``: ``{"clients": [registration, ...]}`` (or the bare list)."""
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise RegistrationError(f"FHIR_HUB_BACKEND_CLIENTS {path}: {exc}") from None
    items = document.get("clients") if isinstance(document, dict) else document
    if not isinstance(items, list):
        raise RegistrationError(f"FHIR_HUB_BACKEND_CLIENTS {path}: expected {{\"clients\": [...]}}")
    clients: dict[str, BackendClient] = {}
    for item in items:
        client = client_from_registration(item if isinstance(item, dict) else {})
        if client.client_id in clients:
            raise RegistrationError(f"FHIR_HUB_BACKEND_CLIENTS {path}: client {client.client_id!r} twice")
        clients[client.client_id] = client
    return clients


class RegistrationSource(Protocol):
    async def get(self, client_id: str) -> dict[str, Any] | None: ...


class ClientRegistry:
    """The configured clients first, then those registered as data (read on each request: a removal or a
    new key applies at once in every process)."""

    def __init__(self, configured: Mapping[str, BackendClient], stored: RegistrationSource | None = None) -> None:
        self.configured = dict(configured)
        self.stored = stored
        self._from_store: dict[str, tuple[dict[str, Any], BackendClient]] = {}

    async def get(self, client_id: str) -> BackendClient | None:
        if client_id in self.configured:
            return self.configured[client_id]
        if self.stored is None:
            return None
        registration = await self.stored.get(client_id)
        if registration is None:
            return None
        known = self._from_store.get(client_id)
        if known is not None and known[0] == registration:  # keep its KeySet (a jwks_url's cache) while unchanged
            return known[1]
        try:
            client = client_from_registration(registration)
        except RegistrationError:
            return None
        self._from_store[client_id] = (registration, client)
        return client


FirstUse = Callable[[str, str, float], Awaitable[bool]]


class TokenEndpoint:
    """Answers token requests: ``token(form, token_url)`` gives the RFC 6749 5.1 response or raises OAuthError."""

    def __init__(self, *, clients: ClientRegistry, first_use: FirstUse, key: IssuingKey | None, audience: str,
                 lifetime_seconds: int, leeway_seconds: int, clock: Callable[[], float] = time.time) -> None:
        self.clients = clients
        self.first_use = first_use
        self.key = key
        self.audience = audience
        self.lifetime = lifetime_seconds
        self.leeway = leeway_seconds
        self.clock = clock

    async def token(self, form: Mapping[str, str], token_url: str) -> dict[str, Any]:
        if form.get("grant_type") != "client_credentials":
            raise OAuthError("unsupported_grant_type", "grant_type must be client_credentials (SMART Backend Services)")
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise OAuthError("invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}")
        assertion, scope = form.get("client_assertion"), form.get("scope")
        if not assertion:
            raise OAuthError("invalid_request", "client_assertion is missing")
        if not scope:
            raise OAuthError("invalid_request", "scope is missing (e.g. scope=system/*.rs)")
        if self.key is None:
            raise OAuthError("unauthorized_client", "this hub issues no tokens itself (FHIR_HUB_TOKEN_SIGNING_KEY "
                             "is not set); use the authorization server")
        client, claims = await self._authenticate(assertion, token_url)
        granted = Scopes.parse(scope).within(client.scopes)
        if not granted.granted:
            raise OAuthError("invalid_scope", f"none of the scopes asked for is allowed to {client.client_id}")
        if not await self.first_use(client.client_id, claims["jti"], claim_time(claims, "exp")):
            raise OAuthError("invalid_client", "this client assertion (its jti) was used before", 401)
        token = issue_access_token(self.key, audience=self.audience, subject=client.client_id, scope=str(granted),
                                   ttl_seconds=self.lifetime, now=self.clock(), facility=client.facility,
                                   client_id=client.client_id)
        return {"access_token": token, "token_type": "bearer", "expires_in": self.lifetime, "scope": str(granted)}

    async def _authenticate(self, assertion: str, token_url: str) -> tuple[BackendClient, dict[str, Any]]:
        """The client whose registered key verifies the assertion, and the assertion's checked claims."""
        try:
            header = read_header(assertion, MAX_ASSERTION_BYTES)
            issuer = unverified_claims(assertion).get("iss")
            client = await self.clients.get(issuer) if isinstance(issuer, str) else None
            if client is None:
                raise InvalidToken("the client (iss) is not registered")
            if "jku" in header and header["jku"] != client.jwks_url:  # never a key URL the client did not register
                raise InvalidToken("the assertion names a key URL (jku) that is not the client's registered jwks_url")
            key = await client.keys.get(header["kid"])
            if key is None:
                raise InvalidToken("the assertion's kid is not one of the client's registered keys")
            claims = verified_claims(assertion, header, key)
            self._check_claims(claims, client.client_id, token_url)
        except InvalidToken as exc:
            raise OAuthError("invalid_client", f"client authentication failed: {exc}", 401) from None
        return client, claims

    def _check_claims(self, claims: dict[str, Any], client_id: str, token_url: str) -> None:
        if claims.get("iss") != client_id or claims.get("sub") != client_id:
            raise InvalidToken("iss and sub must both be the client_id")
        audience = claims.get("aud")
        if (audience if isinstance(audience, list) else [audience]).count(token_url) == 0:
            raise InvalidToken(f"aud must be this token endpoint, {token_url}")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > _MAX_JTI:
            raise InvalidToken("jti must be a string of 1 to 255 characters")
        now, exp = self.clock(), claim_time(claims, "exp")
        if now > exp + self.leeway:
            raise InvalidToken("the assertion has expired")
        if exp - now > MAX_ASSERTION_SECONDS + self.leeway:
            raise InvalidToken(f"exp may be at most {MAX_ASSERTION_SECONDS} s in the future")
        for name in ("iat", "nbf"):
            if name in claims and claim_time(claims, name) > now + self.leeway:
                raise InvalidToken(f"the assertion is not valid yet ({name})")
