"""Development tokens, signed with the key the hub generates in its data directory.

One function serves ``fhir-hub token`` and the tests, so what a developer tries by hand is exactly what the
suite exercises. Refused in production, where tokens come from the city's authorization server.
"""

from __future__ import annotations

import uuid
from typing import Any

from fhir_hub.auth.keys import issuing_key
from fhir_hub.auth.tokens import issue_access_token
from fhir_hub.config import ConfigError, Settings

DEFAULT_TTL_SECONDS = 3600
DEFAULT_SCOPES = {"system": "system/*.cruds", "clinician": "user/*.cruds",
                  "resident": "patient/*.rs patient/Consent.cud patient/Task.c"}


def development_token(settings: Settings, *, role: str, facility: str | None = None, patient: str | None = None,
                      scope: str | None = None, subject: str | None = None, ttl_seconds: int | None = None,
                      purpose: str | None = None, fhir_user: str | None = None, **extra: Any) -> str:
    """``ttl_seconds`` defaults to an hour, or less when the hub accepts less: a token the hub would refuse
    for its lifetime is refused here, where the developer sees why."""
    if settings.production:
        raise ConfigError("development tokens are refused in production; use the authorization server")
    if settings.external_keys:
        raise ConfigError("a JWKS is configured, so the hub does not accept its development key")
    if role not in DEFAULT_SCOPES:
        raise ConfigError(f"role must be one of {', '.join(DEFAULT_SCOPES)}")
    if ttl_seconds is None:
        ttl_seconds = min(DEFAULT_TTL_SECONDS, settings.max_token_lifetime_seconds)
    if ttl_seconds > settings.max_token_lifetime_seconds:
        raise ConfigError(f"a token lifetime of {ttl_seconds} s (--ttl) is longer than the hub accepts: "
                          f"FHIR_HUB_MAX_TOKEN_LIFETIME_SECONDS is {settings.max_token_lifetime_seconds}")
    key = issuing_key(settings)
    assert key is not None, "development without a JWKS always has a signing key"
    return issue_access_token(key, audience=settings.audience, subject=subject or f"{role}-{uuid.uuid4().hex[:8]}",
                              scope=scope or DEFAULT_SCOPES[role], ttl_seconds=ttl_seconds, facility=facility,
                              patient=patient, purpose_of_use=purpose, fhirUser=fhir_user, **extra)
