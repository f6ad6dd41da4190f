"""Cross-origin requests from browser apps (Fetch standard, CORS protocol).

A SMART app in a browser calls the hub from its own origin with a bearer token in ``Authorization``. The
hub never uses cookies, so nothing ambient rides along with a cross-origin request: answering
``Access-Control-Allow-Origin: *`` lets a page read only what its own token already allows, and
``Access-Control-Allow-Credentials`` is never sent. Operators can still name the origins
(``FHIR_HUB_CORS_ORIGINS``); ``none`` turns CORS off.

The headers are computed here; ``api/conventions.py`` calls this only for requests that carry ``Origin``,
so server-to-server traffic pays nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from fhir_hub.config import Settings

# What a browser script may read of an answer besides the safelisted headers: versioning, where a created
# resource or an async job is, and why a request was refused.
EXPOSED = b"ETag, Last-Modified, Location, Content-Location, X-Progress, WWW-Authenticate, Retry-After"
METHODS = b"GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
MAX_AGE = b"600"

Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    origins: frozenset[bytes] | None  # None: any origin

    @classmethod
    def from_settings(cls, settings: Settings) -> CorsPolicy | None:
        """None when CORS is off (``FHIR_HUB_CORS_ORIGINS=none``)."""
        origins = settings.cors_origin_list
        if not origins:
            return None
        return cls(None if origins == ("*",) else frozenset(o.encode("latin-1") for o in origins))

    def allows(self, origin: bytes) -> bool:
        return self.origins is None or origin in self.origins

    def answer_headers(self, origin: bytes) -> Headers:
        """Added to an answer to a request from ``origin``; nothing for an origin not allowed (the browser
        then keeps the answer from the page)."""
        if self.origins is None:
            return [(b"access-control-allow-origin", b"*"), (b"access-control-expose-headers", EXPOSED)]
        if origin in self.origins:
            return [(b"access-control-allow-origin", origin), (b"access-control-expose-headers", EXPOSED)]
        return []

    def vary(self) -> bool:
        """Whether answers differ by ``Origin`` (a named list echoes the origin), for shared caches."""
        return self.origins is not None

    def preflight_headers(self, origin: bytes, requested_headers: bytes | None) -> Headers:
        """The answer to a preflight (``OPTIONS`` with ``Access-Control-Request-Method``) from an allowed
        origin: any method the hub has, and the request headers the page asked for (``Authorization``
        included: a token is what the page sends, and credentials mode is never allowed)."""
        headers = [(b"access-control-allow-origin", b"*" if self.origins is None else origin),
                   (b"access-control-allow-methods", METHODS), (b"access-control-max-age", MAX_AGE)]
        if requested_headers:
            headers.append((b"access-control-allow-headers", requested_headers))
        if self.vary():
            headers.append((b"vary", b"Origin"))
        return headers
