"""The keys tokens are verified with: a JWKS the hub is configured with, never a key named by a token.

Keys come from ``FHIR_HUB_JWKS_FILE`` or ``FHIR_HUB_JWKS_URL`` (fetched with a timeout, cached, refetched
when a token names an unknown ``kid``, at most once a minute), or, in development only, from a P-256 key
the hub generates in its data directory so that ``fhir-hub token`` can mint tokens it accepts. Each key is
bound to one algorithm (RS256 for RSA, ES256 for P-256): a token can never choose how it is checked.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jose import jwk
from jose.exceptions import JWKError

log = logging.getLogger(__name__)

ALGORITHM_FOR_KEY = {"RSA": "RS256", "EC": "ES256"}
DEV_KEY_FILE = "dev-token-signing-key.pem"
DEV_KID = "fhir-hub-dev-1"
_REFETCH_INTERVAL = 60.0
_CACHE_SECONDS = 300.0


class KeySetError(ValueError):
    """A JWKS that cannot be used (unreadable, or with no usable key)."""


@dataclass(frozen=True)
class VerificationKey:
    kid: str
    algorithm: str
    key: Any  # a jose key object, constructed once


def _keys_from_jwks(document: dict[str, Any]) -> dict[str, VerificationKey]:
    keys: dict[str, VerificationKey] = {}
    for item in document.get("keys", []):
        kty, kid = item.get("kty"), item.get("kid")
        algorithm = ALGORITHM_FOR_KEY.get(kty)
        if algorithm is None or not kid or item.get("use", "sig") != "sig":
            continue
        if item.get("alg") not in (None, algorithm) or (kty == "EC" and item.get("crv") != "P-256"):
            continue
        public = {k: v for k, v in item.items() if k not in ("d", "p", "q", "dp", "dq", "qi")}
        try:
            keys[kid] = VerificationKey(kid, algorithm, jwk.construct(public, algorithm))
        except JWKError as exc:
            log.warning("JWKS key %r skipped: %s", kid, exc)
    return keys


class KeySet:
    def __init__(self, keys: dict[str, VerificationKey], *, url: str | None = None) -> None:
        self._keys = keys
        self._url = url
        self._fetched = time.monotonic()
        self._last_refetch = 0.0

    @classmethod
    def from_file(cls, path: Path) -> KeySet:
        try:
            keys = _keys_from_jwks(json.loads(Path(path).read_text()))
        except (OSError, ValueError) as exc:
            raise KeySetError(f"FHIR_HUB_JWKS_FILE {path}: {exc}") from None
        if not keys:
            raise KeySetError(f"FHIR_HUB_JWKS_FILE {path} holds no RS256 or ES256 signing key with a kid")
        return cls(keys)

    @classmethod
    def from_url(cls, url: str) -> KeySet:
        keys = _fetch(url)
        if not keys:
            raise KeySetError(f"FHIR_HUB_JWKS_URL {url} holds no RS256 or ES256 signing key with a kid")
        return cls(keys, url=url)

    async def get(self, kid: str) -> VerificationKey | None:
        key = self._keys.get(kid)
        if self._url is None:
            return key
        now = time.monotonic()
        stale = now - self._fetched > _CACHE_SECONDS
        if (key is None or stale) and now - self._last_refetch > _REFETCH_INTERVAL:
            self._last_refetch = now
            try:
                self._keys = await asyncio.to_thread(_fetch, self._url)
                self._fetched = now
            except KeySetError as exc:
                log.warning("JWKS refresh failed, keeping the cached keys: %s", exc)
            key = self._keys.get(kid)
        return key

    def public_jwks(self) -> dict[str, Any]:
        return {"keys": [{**k.key.public_key().to_dict(), "kid": k.kid, "alg": k.algorithm, "use": "sig"}
                         for k in self._keys.values()]}


def _fetch(url: str) -> dict[str, VerificationKey]:
    if not url.startswith("https://") and not url.startswith("http://127.0.0.1") and \
            not url.startswith("http://localhost"):
        raise KeySetError(f"FHIR_HUB_JWKS_URL {url}: only https (or a loopback http) address is accepted")
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (scheme checked above)
            return _keys_from_jwks(json.loads(response.read(1_000_000)))
    except (OSError, ValueError) as exc:
        raise KeySetError(f"FHIR_HUB_JWKS_URL {url}: {exc}") from None


def development_key(data_dir: Path) -> tuple[str, KeySet]:
    """The development signing key (PEM) and the key set that verifies it, created on first use."""
    path = Path(data_dir) / DEV_KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it a moment ago
        else:
            with os.fdopen(fd, "wb") as out:
                out.write(pem)
            log.info("generated a development token-signing key in %s", path)
    pem_text = path.read_text()
    public = jwk.construct(pem_text, "ES256").public_key()
    return pem_text, KeySet({DEV_KID: VerificationKey(DEV_KID, "ES256", public)})
