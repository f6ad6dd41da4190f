"""Verifying bearer tokens (JWT): the only module that imports python-jose's JWT code.

Every check is explicit: size, three dot-separated parts, a ``kid`` naming a configured key, the algorithm
that key is bound to (RS256 or ES256, passed to jose as the only one allowed), the signature, ``iss``,
``aud``, ``exp``, ``nbf`` and ``iat`` with a small configurable leeway. Every failure is an
``InvalidToken`` with a short reason; the caller answers 401 and never shows a traceback.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from jose import jwt
from jose.exceptions import ExpiredSignatureError, JWTClaimsError, JWTError

from fhir_hub.auth.keys import DEV_KID, KeySet


class InvalidToken(Exception):
    """The token cannot be trusted; the message is safe to show to the client."""


class TokenVerifier:
    def __init__(self, keys: KeySet, *, issuer: str, audience: str, leeway_seconds: int, max_bytes: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway_seconds
        self.max_bytes = max_bytes
        self.clock = clock

    async def verify(self, token: str) -> dict[str, Any]:
        if len(token) > self.max_bytes:
            raise InvalidToken(f"the token is longer than {self.max_bytes} bytes")
        if token.count(".") != 2:
            raise InvalidToken("not a signed JWT (a JWS has three dot-separated parts; encrypted tokens are "
                               "not accepted)")
        try:
            header = jwt.get_unverified_header(token)
        except JWTError:
            raise InvalidToken("the token header cannot be read") from None
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise InvalidToken("the token header has no kid")
        key = await self.keys.get(kid)
        if key is None:
            raise InvalidToken("the token was not signed by a key this server trusts (unknown kid)")
        if header.get("alg") != key.algorithm:
            raise InvalidToken(f"the token must be signed with {key.algorithm}")
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key.key, algorithms=[key.algorithm], audience=self.audience, issuer=self.issuer,
                options={"leeway": self.leeway, "require_exp": True, "require_iat": True, "require_sub": True},
            )
        except ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except JWTClaimsError as exc:
            raise InvalidToken(f"the token's claims are not accepted: {exc}") from None
        except JWTError:
            raise InvalidToken("the token signature or format is invalid") from None
        iat = claims.get("iat")
        if not isinstance(iat, int | float) or iat > self.clock() + self.leeway:
            raise InvalidToken("the token was issued in the future (iat)")
        return claims


def mint_development_token(private_pem: str, claims: dict[str, Any]) -> str:
    """A token signed with the development key (``fhir-hub token``; tests)."""
    return jwt.encode(claims, private_pem, algorithm="ES256", headers={"kid": DEV_KID})
