"""The keys tokens are verified with: a JWKS the hub is configured with, never a key named by a token.

Keys come from ``FHIR_HUB_JWKS_FILE`` or ``FHIR_HUB_JWKS_URL`` (fetched with a timeout, cached, refetched
when a token names an unknown ``kid``, at most once a minute), or, in development only, from a P-256 key
the hub generates in its data directory so that ``fhir-hub token`` can mint tokens it accepts. Each key is
bound to one algorithm (RS256 for RSA, ES256 for P-256): a token can never choose how it is checked.

The same key sets hold the public keys of backend clients (``auth/backend.py``), bound to the algorithms
SMART Backend Services names (RS384 and ES384; RS256 and ES256 when the key says so), and the hub's own
signing key (``IssuingKey``), whose public part joins the verifier's keys with the issuer its tokens carry.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jose import jwk
from jose.exceptions import JWKError

from fhir_hub.config import Settings

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
    issuer: str | None = None  # the iss its tokens must carry; None: the configured issuer


@dataclass(frozen=True)
class IssuingKey:
    """A private key the hub signs access tokens with, the ``kid`` and algorithm they name, and their ``iss``."""

    kid: str
    algorithm: str
    private_pem: str
    issuer: str

    def verification_key(self) -> VerificationKey:
        return VerificationKey(self.kid, self.algorithm, jwk.construct(self.private_pem, self.algorithm).public_key(),
                               self.issuer)


AlgorithmChooser = Callable[[dict[str, Any]], "str | None"]


def hub_algorithm(item: dict[str, Any]) -> str | None:
    """Keys of the authorization server: RS256 for RSA, ES256 for P-256, as before."""
    algorithm = ALGORITHM_FOR_KEY.get(item.get("kty", ""))
    if algorithm is None or item.get("alg") not in (None, algorithm):
        return None
    return None if item.get("kty") == "EC" and item.get("crv") != "P-256" else algorithm


_CLIENT_ALGORITHMS = {("RSA", None): ("RS384", "RS256"), ("EC", "P-384"): ("ES384",), ("EC", "P-256"): ("ES256",)}


def client_algorithm(item: dict[str, Any]) -> str | None:
    """A backend client's key: the ``alg`` it names, or the one SMART Backend Services requires for its type
    (RS384 for RSA, ES384 for P-384; ES256 for P-256). One algorithm per key, never the token's choice."""
    accepted = _CLIENT_ALGORITHMS.get((item.get("kty", ""), item.get("crv") if item.get("kty") == "EC" else None))
    if accepted is None:
        return None
    named = item.get("alg")
    return accepted[0] if named is None else named if named in accepted else None


def _keys_from_jwks(document: dict[str, Any], choose: AlgorithmChooser = hub_algorithm
                    ) -> dict[str, VerificationKey]:
    keys: dict[str, VerificationKey] = {}
    for item in document.get("keys", []) if isinstance(document, dict) else []:
        if not isinstance(item, dict):
            continue
        kid = item.get("kid")
        algorithm = choose(item)
        if algorithm is None or not kid or not isinstance(kid, str) or item.get("use", "sig") != "sig":
            continue
        public = {k: v for k, v in item.items() if k not in ("d", "p", "q", "dp", "dq", "qi")}
        try:
            keys[kid] = VerificationKey(kid, algorithm, jwk.construct(public, algorithm))
        except JWKError as exc:
            log.warning("JWKS key %r skipped: %s", kid, exc)
    return keys


class KeySet:
    def __init__(self, keys: dict[str, VerificationKey], *, url: str | None = None,
                 choose: AlgorithmChooser = hub_algorithm) -> None:
        self._keys = keys
        self._url = url
        self._choose = choose
        self._fetched = time.monotonic()
        self._last_refetch = 0.0
        self._pinned: dict[str, VerificationKey] = {}  # kept across refetches of the URL (with_key)

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

    @classmethod
    def for_client(cls, jwks: dict[str, Any] | None, url: str | None) -> KeySet:
        """A backend client's keys: inline, and/or fetched from its registered ``jwks_url`` (as the hub's own
        are: cached, refetched for an unknown ``kid`` at most once a minute). A URL is fetched on first use."""
        keys = _keys_from_jwks(jwks or {}, client_algorithm)
        found = cls(keys, url=url, choose=client_algorithm)
        found._pinned = dict(keys)  # the inline keys stay beside what the URL gives
        found._fetched = 0.0 if url else found._fetched  # never fetched yet
        return found

    def with_key(self, key: VerificationKey) -> KeySet:
        """These keys and one more (the hub's own signing key beside the authorization server's)."""
        combined = KeySet({**self._keys, key.kid: key}, url=self._url, choose=self._choose)
        combined._pinned = {**self._pinned, key.kid: key}
        return combined

    async def get(self, kid: str) -> VerificationKey | None:
        key = self._keys.get(kid)
        if self._url is None:
            return key
        now = time.monotonic()
        stale = now - self._fetched > _CACHE_SECONDS
        if (key is None or stale) and now - self._last_refetch > _REFETCH_INTERVAL:
            self._last_refetch = now
            try:
                self._keys = {**await asyncio.to_thread(_fetch, self._url, self._choose), **self._pinned}
                self._fetched = now
            except KeySetError as exc:
                log.warning("JWKS refresh failed, keeping the cached keys: %s", exc)
            key = self._keys.get(kid)
        return key

    def public_jwks(self) -> dict[str, Any]:
        return {"keys": [public_jwk(k) for k in self._keys.values()]}


def public_jwk(key: VerificationKey) -> dict[str, Any]:
    return {**key.key.public_key().to_dict(), "kid": key.kid, "alg": key.algorithm, "use": "sig"}


def _fetch(url: str, choose: AlgorithmChooser = hub_algorithm) -> dict[str, VerificationKey]:
    if not url.startswith("https://") and not url.startswith("http://127.0.0.1") and \
            not url.startswith("http://localhost"):
        raise KeySetError(f"FHIR_HUB_JWKS_URL {url}: only https (or a loopback http) address is accepted")
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (scheme checked above)
            return _keys_from_jwks(json.loads(response.read(1_000_000)), choose)
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


def signing_key_from_file(path: Path, issuer: str) -> IssuingKey:
    """``FHIR_HUB_TOKEN_SIGNING_KEY``: a PEM private key, P-256 (ES256) or RSA of 2048 bits or more (RS256);
    its ``kid`` is its RFC 7638 thumbprint, so a new key is a new ``kid`` without configuring one."""
    try:
        pem = Path(path).read_text()
        private = serialization.load_pem_private_key(pem.encode(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise KeySetError(f"FHIR_HUB_TOKEN_SIGNING_KEY {path}: {exc}") from None
    if isinstance(private, ec.EllipticCurvePrivateKey) and isinstance(private.curve, ec.SECP256R1):
        algorithm = "ES256"
    elif isinstance(private, rsa.RSAPrivateKey) and private.key_size >= 2048:
        algorithm = "RS256"
    else:
        raise KeySetError(f"FHIR_HUB_TOKEN_SIGNING_KEY {path}: a P-256 or an RSA (2048 bits or more) key is needed")
    public = jwk.construct(pem, algorithm).public_key().to_dict()
    members = ("e", "kty", "n") if public["kty"] == "RSA" else ("crv", "kty", "x", "y")
    canonical = json.dumps({m: public[m] for m in members}, separators=(",", ":"), sort_keys=True)
    thumbprint = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
    return IssuingKey(thumbprint, algorithm, pem, issuer)


def issuing_key(settings: Settings) -> IssuingKey | None:
    """The key the hub signs its own access tokens with: ``FHIR_HUB_TOKEN_SIGNING_KEY``, or in development
    without an authorization server the generated development key; None when the hub issues no tokens."""
    if settings.token_signing_key is not None:
        return signing_key_from_file(settings.token_signing_key, settings.own_issuer)
    if settings.production or settings.external_keys:
        return None
    pem, _keys = development_key(settings.data_dir)
    return IssuingKey(DEV_KID, "ES256", pem, settings.issuer)


def new_client_key(algorithm: str, kid: str) -> tuple[str, dict[str, Any]]:
    """A key pair for a backend client (``fhir-hub client keygen``): the private PEM the client keeps and the
    public JWK it registers. ES384 (P-384) or RS384 (RSA 3072), the algorithms SMART requires servers to accept."""
    if algorithm == "ES384":
        private: Any = ec.generate_private_key(ec.SECP384R1())
    elif algorithm == "RS384":
        private = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    else:
        raise ValueError("the algorithm must be ES384 or RS384")
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = jwk.construct(pem, algorithm).public_key().to_dict()
    return pem, {**public, "kid": kid, "alg": algorithm, "use": "sig"}
