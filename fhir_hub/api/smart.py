"""SMART on FHIR discovery: ``GET /.well-known/smart-configuration`` (public, as the spec requires).

The hub is a resource server: tokens come from the city's authorization server, named in configuration
(``FHIR_HUB_TOKEN_ISSUER``); in development the hub mints them itself (``fhir-hub token``) and publishes the
verification key at ``/.well-known/jwks.json``.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from fhir_hub.api.context import PublicFhir
from fhir_hub.fhir.jsonio import dumps

router = APIRouter()


@router.get("/.well-known/smart-configuration", summary="SMART on FHIR configuration", operation_id="smart-config")
async def smart_configuration(ctx: PublicFhir) -> Response:
    settings = ctx.hub.settings
    document = {
        "issuer": settings.issuer,
        "jwks_uri": ctx.url(".well-known", "jwks.json"),
        "grant_types_supported": ["client_credentials", "authorization_code"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256"],
        "scopes_supported": ["system/*.cruds", "user/*.cruds", "patient/*.rs", "system/*.read", "user/*.read",
                             "patient/*.read", "launch/patient", "fhirUser", "openid"],
        "capabilities": ["permission-v1", "permission-v2", "permission-patient", "permission-user",
                         "client-confidential-asymmetric", "context-standalone-patient"],
    }
    return Response(dumps(document), media_type="application/json")


@router.get("/.well-known/jwks.json", summary="Keys that verify tokens (development key or configured JWKS)",
            operation_id="jwks")
async def jwks(ctx: PublicFhir) -> Response:
    return Response(dumps(ctx.hub.authenticator.verifier.keys.public_jwks()), media_type="application/json")
