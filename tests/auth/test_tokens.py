"""Token verification against every bad token the issue lists, and hypothesis-made garbage."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import math
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from jose import jwk, jwt

from fhir_hub.auth.authenticator import Authenticator
from fhir_hub.auth.keys import DEV_KID, KeySet, KeySetError, development_key
from fhir_hub.auth.tokens import InvalidToken, TokenVerifier, mint_development_token

pytestmark = pytest.mark.anyio
ISS, AUD = "urn:test:issuer", "urn:test:audience"


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, KeySet]:
    return development_key(tmp_path_factory.mktemp("keys"))


@pytest.fixture
def verifier(dev: tuple[str, KeySet]) -> TokenVerifier:
    return TokenVerifier(dev[1], issuer=ISS, audience=AUD, leeway_seconds=30, max_bytes=8192)


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {"iss": ISS, "aud": AUD, "sub": "client-1", "iat": now, "exp": now + 300,
                            "scope": "system/*.rs"}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unsigned(header: dict[str, Any], body: dict[str, Any]) -> str:
    return f"{b64(orjson.dumps(header))}.{b64(orjson.dumps(body))}."


def hs256(header: dict[str, Any], body: dict[str, Any], secret: str) -> str:
    """The classic key-confusion attack, built by hand (jose rightly refuses to sign it)."""
    signing_input = f"{b64(orjson.dumps(header))}.{b64(orjson.dumps(body))}"
    mac = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


async def test_a_good_token_passes(dev: tuple[str, KeySet], verifier: TokenVerifier) -> None:
    verified = await verifier.verify(mint_development_token(dev[0], claims()))
    assert verified["sub"] == "client-1"


async def test_leeway_tolerates_small_clock_skew(dev: tuple[str, KeySet], verifier: TokenVerifier) -> None:
    now = int(time.time())
    await verifier.verify(mint_development_token(dev[0], claims(exp=now - 10, nbf=now + 10, iat=now + 10)))


def _rsa_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _bad_tokens(pem: str) -> dict[str, str]:
    now = int(time.time())
    public_pem = jwk.construct(pem, "ES256").public_key().to_pem().decode()
    good = mint_development_token(pem, claims())
    head, body, sig = good.split(".")
    other_body = b64(orjson.dumps(claims(sub="someone-else", scope="system/*.cruds")))
    return {
        "expired": mint_development_token(pem, claims(exp=now - 3600, iat=now - 7200)),
        "not yet valid": mint_development_token(pem, claims(nbf=now + 3600)),
        "issued in the future": mint_development_token(pem, claims(iat=now + 3600)),
        "wrong audience": mint_development_token(pem, claims(aud="urn:somebody-else")),
        "wrong issuer": mint_development_token(pem, claims(iss="https://evil.example")),
        "no expiry": mint_development_token(pem, claims(exp=None)),
        "no subject": mint_development_token(pem, claims(sub=None)),
        "alg none": unsigned({"alg": "none", "kid": DEV_KID, "typ": "JWT"}, claims()),
        "HS256 with the public key as secret": hs256({"alg": "HS256", "kid": DEV_KID}, claims(), public_pem),
        "RS256 with a key of its own": jwt.encode(claims(), _rsa_pem(), algorithm="RS256", headers={"kid": DEV_KID}),
        "unknown kid": jwt.encode(claims(), pem, algorithm="ES256", headers={"kid": "someone-elses-key"}),
        "no kid": jwt.encode(claims(), pem, algorithm="ES256"),
        "key url in the header": jwt.encode(claims(), _rsa_pem(), algorithm="RS256",
                                            headers={"kid": "remote", "jku": "https://evil.example/jwks.json"}),
        "payload swapped": f"{head}.{other_body}.{sig}",
        "signature stripped": f"{head}.{body}.",
        "truncated": good[: len(good) // 2],
        "garbage": "this is not a token",
        "empty parts": "..",
        "JWE (five parts)": "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d",
        "1 MB": "a" * 1_000_000,
    }


@pytest.mark.parametrize("case", list(_bad_tokens(development_key(Path("/tmp/fhir-hub-test-keys"))[0])))
async def test_bad_tokens_are_refused(dev: tuple[str, KeySet], verifier: TokenVerifier, case: str) -> None:
    token = _bad_tokens(dev[0])[case]
    with pytest.raises(InvalidToken) as refused:
        await verifier.verify(token)
    assert str(refused.value)  # a reason the client can act on, never a traceback


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b64(b) + "." + b64(b[::-1]) + "." + b64(b)))
async def test_garbage_never_passes_and_never_crashes(garbage: str) -> None:
    keys = development_key(Path("/tmp/fhir-hub-test-keys"))[1]
    checker = TokenVerifier(keys, issuer=ISS, audience=AUD, leeway_seconds=30, max_bytes=8192)
    with pytest.raises(InvalidToken):
        await checker.verify(garbage)


@settings(max_examples=150, deadline=None)
@given(position=st.integers(min_value=0), replacement=st.characters(min_codepoint=33, max_codepoint=126))
async def test_any_single_character_change_is_refused(position: int, replacement: str) -> None:
    pem, keys = development_key(Path("/tmp/fhir-hub-test-keys"))
    token = mint_development_token(pem, claims())
    position %= len(token)
    if token[position] == replacement or token[position] == ".":
        return
    tampered = token[:position] + replacement + token[position + 1:]
    checker = TokenVerifier(keys, issuer=ISS, audience=AUD, leeway_seconds=30, max_bytes=8192)
    try:
        await checker.verify(tampered)
    except InvalidToken:
        return
    # Only a change base64url cannot see (the unused low bits of a segment's last character) may pass.
    assert _decoded(tampered) == _decoded(token)


def _decoded(token: str) -> list[bytes]:
    return [base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)) for part in token.split(".")]


def _rsa_jwks(pem: str, kid: str) -> dict[str, Any]:
    public = jwk.construct(pem, "RS256").public_key().to_dict()
    return {"keys": [{**public, "kid": kid, "use": "sig"}]}


async def test_jwks_file_with_an_rsa_key(tmp_path: Path) -> None:
    pem = _rsa_pem()
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(_rsa_jwks(pem, "hospital-idp-1")))
    checker = TokenVerifier(KeySet.from_file(path), issuer=ISS, audience=AUD, leeway_seconds=30, max_bytes=8192)
    good = jwt.encode(claims(), pem, algorithm="RS256", headers={"kid": "hospital-idp-1"})
    assert (await checker.verify(good))["sub"] == "client-1"
    with pytest.raises(InvalidToken, match="RS256"):
        await checker.verify(jwt.encode(claims(), pem, algorithm="RS512", headers={"kid": "hospital-idp-1"}))


def test_unusable_jwks_files_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text('{"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}]}')
    with pytest.raises(KeySetError, match="no RS256 or ES256"):
        KeySet.from_file(empty)
    with pytest.raises(KeySetError):
        KeySet.from_file(tmp_path / "missing.json")


@pytest.fixture
def jwks_server() -> Iterator[tuple[str, dict[str, Any], list[int]]]:
    document: dict[str, Any] = {"keys": []}
    hits: list[int] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            hits.append(1)
            body = json.dumps(document).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json", document, hits
    server.shutdown()
    server.server_close()


async def test_jwks_url_is_fetched_and_refetched_for_a_new_kid(
        jwks_server: tuple[str, dict[str, Any], list[int]]) -> None:
    url, document, hits = jwks_server
    first, second = _rsa_pem(), _rsa_pem()
    document.update(_rsa_jwks(first, "k1"))
    keys = KeySet.from_url(url)
    checker = TokenVerifier(keys, issuer=ISS, audience=AUD, leeway_seconds=30, max_bytes=8192)
    assert (await checker.verify(jwt.encode(claims(), first, algorithm="RS256", headers={"kid": "k1"})))
    document["keys"] = _rsa_jwks(first, "k1")["keys"] + _rsa_jwks(second, "k2")["keys"]  # key rotation
    rotated = jwt.encode(claims(), second, algorithm="RS256", headers={"kid": "k2"})
    assert await checker.verify(rotated)
    fetches = len(hits)
    with pytest.raises(InvalidToken):  # an unknown kid right after a refetch does not hammer the JWKS
        await checker.verify(jwt.encode(claims(), second, algorithm="RS256", headers={"kid": "k3"}))
    assert len(hits) == fetches


def test_jwks_url_must_be_https() -> None:
    with pytest.raises(KeySetError, match="https"):
        KeySet.from_url("http://idp.example/jwks.json")


async def test_a_remembered_token_still_expires(dev: tuple[str, KeySet]) -> None:
    now = [time.time()]
    checker = TokenVerifier(dev[1], issuer=ISS, audience=AUD, leeway_seconds=5, max_bytes=8192,
                            clock=lambda: now[0])
    authenticator = Authenticator(checker, cache_size=2)
    token = mint_development_token(dev[0], claims(exp=int(now[0]) + 60))
    first = await authenticator.caller(token)
    assert await authenticator.caller(token) is first  # the second answer comes from the cache
    now[0] += 120
    for _ in range(2):
        with pytest.raises(InvalidToken, match="expired"):
            await authenticator.caller(token)
    others = [mint_development_token(dev[0], claims(sub=f"s{i}", exp=int(now[0]) + 60)) for i in range(3)]
    for other in others:
        await authenticator.caller(other)
    assert len(authenticator._known) == 2  # bounded


# ------------------------------------------------------------------ registered claims and the JWS header
async def test_a_token_without_an_audience_is_refused(dev: tuple[str, KeySet], verifier: TokenVerifier) -> None:
    """python-jose skips the audience check when ``aud`` is absent: a token minted for any service would do."""
    for audience in (None, [], ["urn:somebody-else"], [AUD, 7], 7, {"aud": AUD}):
        with pytest.raises(InvalidToken, match="aud"):
            await verifier.verify(mint_development_token(dev[0], claims(aud=audience)))
    for audience in ([AUD], ["urn:somebody-else", AUD]):  # a list naming this hub is the JWT way of saying it
        assert (await verifier.verify(mint_development_token(dev[0], claims(aud=audience))))["sub"] == "client-1"


async def test_a_token_without_an_issuer_is_refused(dev: tuple[str, KeySet], verifier: TokenVerifier) -> None:
    for issuer in (None, [ISS], 7, ""):
        with pytest.raises(InvalidToken, match="iss"):
            await verifier.verify(mint_development_token(dev[0], claims(iss=issuer)))


MAX_LIFETIME = 3600


async def test_a_token_living_longer_than_the_maximum_is_refused(dev: tuple[str, KeySet]) -> None:
    checker = TokenVerifier(dev[1], issuer=ISS, audience=AUD, leeway_seconds=30, max_bytes=8192,
                            max_lifetime_seconds=MAX_LIFETIME)
    now = int(time.time())
    assert await checker.verify(mint_development_token(dev[0], claims(iat=now, exp=now + MAX_LIFETIME)))
    for exp in (now + MAX_LIFETIME + 1, now + 365 * 86400, 1e308, 10**30):
        with pytest.raises(InvalidToken, match="lifetime|longer|finite"):
            await checker.verify(mint_development_token(dev[0], claims(iat=now, exp=exp)))


async def test_an_exp_of_1e308_is_refused(dev: tuple[str, KeySet], verifier: TokenVerifier) -> None:
    with pytest.raises(InvalidToken):
        await verifier.verify(mint_development_token(dev[0], claims(exp=1e308)))


@pytest.mark.parametrize("name", ["exp", "iat", "nbf"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), 10**400],
                         ids=["NaN", "Infinity", "-Infinity", "1e400 as an integer"])
async def test_non_finite_times_are_refused(dev: tuple[str, KeySet], verifier: TokenVerifier, name: str,
                                            value: float) -> None:
    """NaN compares false with everything: ``exp: NaN`` never expires, ``nbf: NaN`` is always valid."""
    with pytest.raises(InvalidToken, match=name):
        await verifier.verify(mint_development_token(dev[0], claims(**{name: value})))


@pytest.mark.parametrize("header", [
    {"crit": ["exp"], "exp": 1},  # an extension this hub does not know, marked as one it must understand
    {"crit": ["b64"], "b64": False},  # RFC 7797: the signature would cover another payload than jose checks
    {"crit": []},
    {"crit": "exp"},
])
async def test_a_header_with_critical_extensions_is_refused(dev: tuple[str, KeySet], verifier: TokenVerifier,
                                                            header: dict[str, Any]) -> None:
    """RFC 7515 4.1.11: a recipient that does not understand every extension listed in ``crit`` must refuse."""
    token = jwt.encode(claims(), dev[0], algorithm="ES256", headers={"kid": DEV_KID, **header})
    with pytest.raises(InvalidToken, match="crit"):
        await verifier.verify(token)


NOW, LEEWAY = 1_700_000_000, 30
_ABSENT = object()
_times = st.one_of(
    st.integers(min_value=NOW - 10 * MAX_LIFETIME, max_value=NOW + 10 * MAX_LIFETIME),
    st.sampled_from([NOW + d for d in (-LEEWAY - 1, -LEEWAY, 0, LEEWAY, LEEWAY + 1, MAX_LIFETIME,
                                       MAX_LIFETIME + 1, MAX_LIFETIME + LEEWAY, MAX_LIFETIME + LEEWAY + 1)]),
    st.integers(min_value=-(10**20), max_value=10**20).map(lambda n: NOW + n / 2),  # halves: exact in a float
    st.sampled_from([float("nan"), float("inf"), float("-inf"), 1e308, -1e308, 10**20, -(10**20), 10**400,
                     -(10**400), 0, True, "1700000000", None]),
)

def _or_plausible(low: int, high: int) -> st.SearchStrategy[Any]:
    """Half the time a value near the bounds, so that many generated tokens should pass."""
    return st.booleans().flatmap(lambda near: st.integers(min_value=low, max_value=high) if near else _times)


def _acceptable(exp: Any, iat: Any, nbf: Any) -> bool:
    """The rule, computed exactly: finite numbers, a bounded lifetime, and the usual time window."""
    present = [v for v in (exp, iat, nbf) if v is not _ABSENT]
    if any(isinstance(v, bool) or not isinstance(v, int | float) for v in present):
        return False
    if any(isinstance(v, float) and not math.isfinite(v) or abs(v) >= 2**1024 for v in present):
        return False
    e, i = Fraction(exp), Fraction(iat)
    return (e - i <= MAX_LIFETIME and e - NOW <= MAX_LIFETIME + LEEWAY and NOW <= e + LEEWAY
            and i <= NOW + LEEWAY and (nbf is _ABSENT or NOW >= Fraction(nbf) - LEEWAY))


@settings(max_examples=300, deadline=None)
@given(exp=_or_plausible(NOW - 2 * LEEWAY, NOW + MAX_LIFETIME + 2 * LEEWAY),
       iat=_or_plausible(NOW - 2 * LEEWAY, NOW + 2 * LEEWAY),
       nbf=_or_plausible(NOW - 2 * LEEWAY, NOW + 2 * LEEWAY) | st.just(_ABSENT))
async def test_token_times_are_accepted_exactly_as_the_rule_says(exp: Any, iat: Any, nbf: Any) -> None:
    """Any exp, iat and nbf an attacker can write in JSON (NaN, Infinity, 1e308, huge integers, strings)."""
    pem, keys = development_key(Path("/tmp/fhir-hub-test-keys"))
    checker = TokenVerifier(keys, issuer=ISS, audience=AUD, leeway_seconds=LEEWAY, max_bytes=8192,
                            max_lifetime_seconds=MAX_LIFETIME, clock=lambda: NOW)
    body = {"iss": ISS, "aud": AUD, "sub": "client-1", "scope": "system/*.rs", "exp": exp, "iat": iat}
    if nbf is not _ABSENT:
        body["nbf"] = nbf
    token = mint_development_token(pem, body)
    if _acceptable(exp, iat, nbf):
        assert (await checker.verify(token))["sub"] == "client-1"
    else:
        with pytest.raises(InvalidToken):
            await checker.verify(token)
