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
from jose.exceptions import JWTClaimsError, JWTError

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
                # times are checked below, against this verifier's clock, the same way for cached tokens
                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False, "require_sub": True},
            )
        except JWTClaimsError as exc:
            raise InvalidToken(f"the token's claims are not accepted: {exc}") from None
        except JWTError:
            raise InvalidToken("the token signature or format is invalid") from None
        for name in ("exp", "iat"):
            if not isinstance(claims.get(name), int | float) or isinstance(claims.get(name), bool):
                raise InvalidToken(f"the token must carry a numeric {name} claim")
        if "nbf" in claims and (not isinstance(claims["nbf"], int | float) or isinstance(claims["nbf"], bool)):
            raise InvalidToken("the token's nbf claim must be numeric")
        if claims["iat"] > self.clock() + self.leeway:
            raise InvalidToken("the token was issued in the future (iat)")
        self.check_times(claims)
        return claims

    def check_times(self, claims: dict[str, Any]) -> None:
        """``exp`` and ``nbf`` against this verifier's clock (also for tokens verified earlier)."""
        now = self.clock()
        if now > claims["exp"] + self.leeway:
            raise InvalidToken("the token has expired")
        if now < claims.get("nbf", 0) - self.leeway:
            raise InvalidToken("the token is not valid yet (nbf)")


def mint_development_token(private_pem: str, claims: dict[str, Any]) -> str:
    """A token signed with the development key (``fhir-hub token``; tests)."""
    return jwt.encode(claims, private_pem, algorithm="ES256", headers={"kid": DEV_KID})
