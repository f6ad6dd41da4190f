"""SMART on FHIR discovery and the hub's token endpoint.

``GET /.well-known/smart-configuration`` (public, as the spec requires) names the token endpoint: the city's
authorization server's when ``FHIR_HUB_TOKEN_ENDPOINT`` is set, otherwise the hub's own ``POST /auth/token``
(SMART Backend Services, ``auth/backend.py``), where a hospital system trades an assertion signed with its
registered key for an access token. In development the hub also mints tokens itself (``fhir-hub token``);
``/.well-known/jwks.json`` publishes the keys tokens are verified with.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Response

from fhir_hub.api.context import PublicContext, PublicFhir
from fhir_hub.auth.backend import ASSERTION_TYPE, OAuthError
from fhir_hub.fhir.jsonio import dumps

router = APIRouter()

TOKEN_PATH = ("auth", "token")
_FORM = "application/x-www-form-urlencoded"
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}  # RFC 6749 5.1


def token_endpoint_url(ctx: PublicContext) -> str:
    """The token endpoint clients are told about (discovery, the CapabilityStatement's oauth-uris)."""
    return ctx.hub.settings.token_endpoint or ctx.url(*TOKEN_PATH)


def oauth_uris(ctx: PublicContext) -> tuple[tuple[str, str], ...]:
    """The CapabilityStatement's oauth-uris: the token endpoint, and the authorize endpoint when an
    authorization server is configured (the hub itself runs no authorization code flow)."""
    authorize = ctx.hub.settings.authorization_endpoint
    return (("token", token_endpoint_url(ctx)), *((("authorize", authorize),) if authorize else ()))


@router.get("/.well-known/smart-configuration", summary="SMART on FHIR configuration", operation_id="smart-config")
async def smart_configuration(ctx: PublicFhir) -> Response:
    """Only what the hub's token endpoint, or the configured authorization server, really serves: SMART App
    Launch 2 requires an ``authorization_endpoint`` (and PKCE S256) wherever ``authorization_code`` is
    advertised, and the hub runs no authorization code flow of its own."""
    settings = ctx.hub.settings
    document: dict[str, Any] = {
        "issuer": settings.issuer,
        "jwks_uri": ctx.url(".well-known", "jwks.json"),
        "token_endpoint": token_endpoint_url(ctx),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384", "RS256", "ES256"],
        "scopes_supported": ["system/*.cruds", "system/*.rs", "user/*.cruds", "patient/*.rs", "system/*.read",
                             "user/*.read", "patient/*.read"],
        "capabilities": ["permission-v1", "permission-v2", "permission-patient", "permission-user",
                         "client-confidential-asymmetric"],
    }
    if settings.authorization_endpoint is not None:
        document["authorization_endpoint"] = settings.authorization_endpoint
        document["grant_types_supported"].append("authorization_code")
        document["code_challenge_methods_supported"] = ["S256"]
        document["scopes_supported"] += ["launch/patient", "fhirUser", "openid"]
        document["capabilities"] += ["launch-standalone", "context-standalone-patient"]
    return Response(dumps(document), media_type="application/json")


@router.get("/.well-known/jwks.json", summary="Keys that verify tokens (development key or configured JWKS)",
            operation_id="jwks")
async def jwks(ctx: PublicFhir) -> Response:
    return Response(dumps(ctx.hub.authenticator.verifier.keys.public_jwks()), media_type="application/json")


_TOKEN_REQUEST: dict[str, Any] = {
    "requestBody": {"required": True, "content": {_FORM: {"schema": {
        "type": "object", "required": ["grant_type", "client_assertion_type", "client_assertion", "scope"],
        "properties": {"grant_type": {"type": "string", "enum": ["client_credentials"]},
                       "client_assertion_type": {"type": "string", "enum": [ASSERTION_TYPE]},
                       "client_assertion": {"type": "string", "description": "a JWT signed with the client's key"},
                       "scope": {"type": "string", "example": "system/*.rs"}}}}}},
    "responses": {
        "200": {"description": "An access token (RFC 6749 5.1)", "content": {"application/json": {"schema": {
            "type": "object", "properties": {"access_token": {"type": "string"}, "token_type": {"type": "string"},
                                             "expires_in": {"type": "integer"}, "scope": {"type": "string"}}}}}},
        "400": {"description": "An OAuth error (RFC 6749 5.2): invalid_request, invalid_scope, "
                               "unsupported_grant_type, unauthorized_client"},
        "401": {"description": "invalid_client: the assertion did not authenticate a registered client"},
    },
}


@router.post("/auth/token", summary="SMART Backend Services token endpoint (OAuth 2.0, not FHIR)",
             operation_id="token", openapi_extra=_TOKEN_REQUEST, response_class=Response)
async def token(ctx: PublicFhir) -> Response:
    """OAuth 2.0 client credentials with a JWT client assertion (SMART Backend Services). This endpoint is
    OAuth, not FHIR: it reads a form and answers RFC 6749 JSON, errors included, never an OperationOutcome."""
    try:
        form = _form(ctx.request.headers.get("content-type", ""), await ctx.request.body())
        answer = await ctx.hub.token_endpoint.token(form, ctx.url(*TOKEN_PATH))
    except OAuthError as error:
        return Response(dumps(error.body()), status_code=error.status, media_type="application/json",
                        headers=_NO_STORE)
    return Response(dumps(answer), media_type="application/json", headers=_NO_STORE)


def _form(content_type: str, body: bytes) -> dict[str, str]:
    """An RFC 6749 form: UTF-8 ``application/x-www-form-urlencoded``, no parameter twice (3.2)."""
    if content_type.split(";")[0].strip().lower() != _FORM:
        raise OAuthError("invalid_request", f"the token request must be sent as {_FORM}")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError):
        raise OAuthError("invalid_request", "the request body is not a form") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise OAuthError("invalid_request", f"{name} is sent more than once")
        form[name] = value
    return form
