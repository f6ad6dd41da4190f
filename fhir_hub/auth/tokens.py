"""Verifying bearer tokens (JWT): the only module that imports python-jose's JWT code.

Every check is explicit: size, three dot-separated parts, no ``crit`` header, a ``kid`` naming a configured
key, the algorithm that key is bound to (RS256 or ES256, passed to jose as the only one allowed), the
signature, then the registered claims here rather than in jose, because jose treats ``aud`` as optional (an
absent ``aud`` passes) and compares times with whatever JSON number arrives (``exp: NaN`` never expires):
``iss`` and ``aud`` must be present and name this hub, ``exp`` and ``iat`` must be finite numbers, the
lifetime (``exp - iat``, and ``exp`` from now) is bounded so that a leaked token does not work for years, and
``nbf`` and the times get a small configurable leeway. Every failure is an ``InvalidToken`` with a short
reason; the caller answers 401 and never shows a traceback.

Signing lives here too: ``issue_access_token`` is the one way the hub makes an access token, for
``fhir-hub token`` in development and for the SMART Backend Services token endpoint (``auth/backend.py``),
whose client assertions are read with the same header and signature checks (``read_header``,
``verified_claims``).
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from typing import Any

from jose import jwt
from jose.exceptions import JWTClaimsError, JWTError

from fhir_hub.auth.keys import DEV_KID, IssuingKey, KeySet, VerificationKey
from fhir_hub.config import Settings


class InvalidToken(Exception):
    """The token cannot be trusted; the message is safe to show to the client."""


class TokenVerifier:
    def __init__(self, keys: KeySet, *, issuer: str, audience: str, leeway_seconds: int, max_bytes: int,
                 max_lifetime_seconds: int = Settings.max_token_lifetime_seconds,
                 clock: Callable[[], float] = time.time) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway_seconds
        self.max_bytes = max_bytes
        self.max_lifetime = max_lifetime_seconds
        self.clock = clock

    async def verify(self, token: str) -> dict[str, Any]:
        header = read_header(token, self.max_bytes)
        key = await self.keys.get(header["kid"])
        if key is None:
            raise InvalidToken("the token was not signed by a key this server trusts (unknown kid)")
        claims = verified_claims(token, header, key)
        self._check_parties(claims, key)
        exp, iat = claim_time(claims, "exp"), claim_time(claims, "iat")
        if "nbf" in claims:
            claim_time(claims, "nbf")
        now = self.clock()
        if iat > now + self.leeway:
            raise InvalidToken("the token was issued in the future (iat)")
        if exp - iat > self.max_lifetime:
            raise InvalidToken(f"the token's lifetime (exp - iat) is longer than this server accepts "
                               f"({self.max_lifetime} s)")
        if exp - now > self.max_lifetime + self.leeway:
            raise InvalidToken(f"the token is valid for longer than this server accepts ({self.max_lifetime} s)")
        self.check_times(claims)
        return claims

    def _check_parties(self, claims: dict[str, Any], key: VerificationKey) -> None:
        """``iss`` and ``aud`` must be there: jose only compares them when present, and an absent ``aud``
        would let a token minted for any other service of the same identity provider in. A key bound to an
        issuer (the hub's own signing key) verifies only that issuer's tokens."""
        if claims.get("iss") != (key.issuer or self.issuer):
            raise InvalidToken("the token's issuer (iss) is missing or not the one this server trusts")
        audience = claims.get("aud")
        if isinstance(audience, str):
            audience = [audience]
        if not isinstance(audience, list) or not all(isinstance(a, str) for a in audience) \
                or self.audience not in audience:
            raise InvalidToken("the token's audience (aud) is missing or does not name this server")

    def check_times(self, claims: dict[str, Any]) -> None:
        """``exp`` and ``nbf`` against this verifier's clock (also for tokens verified earlier)."""
        now = self.clock()
        if now > claims["exp"] + self.leeway:
            raise InvalidToken("the token has expired")
        if now < claims.get("nbf", 0) - self.leeway:
            raise InvalidToken("the token is not valid yet (nbf)")


def read_header(token: str, max_bytes: int) -> dict[str, Any]:
    """The JWS header of a token that may be checked: size, three parts, no ``crit``, a ``kid``."""
    if len(token) > max_bytes:
        raise InvalidToken(f"the token is longer than {max_bytes} bytes")
    if token.count(".") != 2:
        raise InvalidToken("not a signed JWT (a JWS has three dot-separated parts; encrypted tokens are "
                           "not accepted)")
    try:
        header: dict[str, Any] = jwt.get_unverified_header(token)
    except JWTError:
        raise InvalidToken("the token header cannot be read") from None
    if "crit" in header:  # RFC 7515 4.1.11: this hub understands no extension, so none may be critical
        raise InvalidToken("the token header lists critical extensions (crit) this server does not understand")
    if not isinstance(header.get("kid"), str):
        raise InvalidToken("the token header has no kid")
    return header


def unverified_claims(token: str) -> dict[str, Any]:
    """The claims before the signature is checked: only to find which client's keys to check it with."""
    try:
        claims = jwt.get_unverified_claims(token)
    except JWTError:
        raise InvalidToken("the token's claims cannot be read") from None
    if not isinstance(claims, dict):
        raise InvalidToken("the token's claims are not a JSON object")
    return claims


def verified_claims(token: str, header: dict[str, Any], key: VerificationKey) -> dict[str, Any]:
    """The claims of a token whose signature ``key`` verifies, with the key's one algorithm (never the
    header's choice). Issuer, audience and times are the caller's to check (jose lets a missing aud by)."""
    if header.get("alg") != key.algorithm:
        raise InvalidToken(f"the token must be signed with {key.algorithm}")
    try:
        claims: dict[str, Any] = jwt.decode(
            token, key.key, algorithms=[key.algorithm],
            options={"verify_exp": False, "verify_nbf": False, "verify_iat": False, "verify_aud": False,
                     "verify_iss": False, "require_sub": True},
        )
    except JWTClaimsError as exc:
        raise InvalidToken(f"the token's claims are not accepted: {exc}") from None
    except JWTError:
        raise InvalidToken("the token signature or format is invalid") from None
    return claims


def claim_time(claims: dict[str, Any], name: str) -> float:
    """A NumericDate as a finite float: NaN passes every comparison, and an integer too large for a float
    cannot be compared with one, so neither reaches the time checks."""
    value = claims.get(name)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise InvalidToken(f"the token must carry a numeric {name} claim")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise InvalidToken(f"the token's {name} claim must be a finite number")
    return number


def issue_access_token(key: IssuingKey, *, audience: str, subject: str, scope: str, ttl_seconds: int,
                       now: float | None = None, **context: Any) -> str:
    """An access token of this hub: ``key``'s issuer, the hub's audience, a fresh ``jti``, the granted scopes
    and the context claims (``facility``, ``patient``...; None values left out)."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {"iss": key.issuer, "aud": audience, "iat": issued, "nbf": issued,
                              "exp": issued + ttl_seconds, "sub": subject, "jti": uuid.uuid4().hex, "scope": scope}
    claims.update({name: value for name, value in context.items() if value is not None})
    return sign_token(key, claims)


def sign_token(key: IssuingKey, claims: dict[str, Any]) -> str:
    return jwt.encode(claims, key.private_pem, algorithm=key.algorithm, headers={"kid": key.kid})


def mint_development_token(private_pem: str, claims: dict[str, Any]) -> str:
    """A token with exactly these claims, signed with the development key (tests of the verifier)."""
    return sign_token(IssuingKey(DEV_KID, "ES256", private_pem, str(claims.get("iss"))), claims)


def client_assertion(private_pem: str, *, algorithm: str, kid: str, client_id: str, token_url: str,
                     lifetime_seconds: int = 300) -> str:
    """What a backend client sends to a token endpoint (``fhir-hub client assertion``, for trying the flow by
    hand): iss and sub its client_id, aud the endpoint, a fresh jti, exp at most five minutes ahead."""
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": token_url, "exp": now + min(lifetime_seconds, 300),
              "iat": now, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, private_pem, algorithm=algorithm, headers={"kid": kid, "typ": "JWT"})
