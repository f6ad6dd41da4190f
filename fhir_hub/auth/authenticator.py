"""From a bearer token to the request's ``Caller``, remembering tokens already verified.

A client sends the same token for many requests, and checking an ES256 signature costs about 65
microseconds (RS256 about 35); the cache keeps the last few thousand callers and still applies ``exp`` and
``nbf`` on every use. A key withdrawn from the JWKS stops new tokens at once and cached ones when they
expire (or at a restart).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from fhir_hub.auth.caller import Caller
from fhir_hub.auth.tokens import TokenVerifier

_CACHE_SIZE = 4096


class Authenticator:
    def __init__(self, verifier: TokenVerifier, *, cache_size: int = _CACHE_SIZE) -> None:
        self.verifier = verifier
        self.cache_size = cache_size
        self._known: OrderedDict[str, tuple[Caller, dict[str, Any]]] = OrderedDict()

    async def caller(self, token: str) -> Caller:
        """Raises InvalidToken or InvalidClaims when the token cannot be trusted."""
        known = self._known.get(token)
        if known is not None:
            self.verifier.check_times(known[1])
            self._known.move_to_end(token)
            return known[0]
        claims = await self.verifier.verify(token)
        caller = Caller.from_claims(claims)
        self._known[token] = (caller, claims)
        if len(self._known) > self.cache_size:
            self._known.popitem(last=False)
        return caller
