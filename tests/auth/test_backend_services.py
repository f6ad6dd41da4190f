"""SMART Backend Services over HTTP: a hospital system registered with its public key signs an assertion, gets
an access token from ``POST /auth/token`` and reads with it; every way an assertion can be wrong is refused
with the RFC 6749 error the spec names, and a ``jti`` works once, across two hub servers on one database.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient
from jose import jwk, jwt

from fhir_hub.auth.backend import ASSERTION_TYPE, client_from_registration
from fhir_hub.auth.keys import signing_key_from_file
from fhir_hub.config import ConfigError, Settings
from fhir_hub.main import create_app
from tests.auth.test_tokens import jwks_server  # noqa: F401 (a fixture: a JWKS served on loopback)
from tests.conftest import auth, serving

BASE = "http://hub.example"
TOKEN_URL = f"{BASE}/auth/token"
CLIENT = "bv-79001-his"
FACILITY = "79001"


def pem_of(private: Any) -> str:
    return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()


class ClientKey:
    def __init__(self, kind: str, kid: str) -> None:
        private = ec.generate_private_key(ec.SECP384R1()) if kind == "ES384" else \
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.algorithm, self.kid, self.pem = kind, kid, pem_of(private)

    def public_jwk(self) -> dict[str, Any]:
        public = jwk.construct(self.pem, self.algorithm).public_key().to_dict()
        return {**public, "kid": self.kid}

    def assertion(self, *, client: str = CLIENT, aud: str = TOKEN_URL, lifetime: int = 240, jti: str | None = None,
                  headers: dict[str, str] | None = None, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": client, "sub": client, "aud": aud, "exp": now + lifetime, "jti": jti or uuid.uuid4().hex,
                **claims}
        return jwt.encode(body, self.pem, algorithm=self.algorithm, headers={"kid": self.kid, **(headers or {})})


@pytest.fixture(scope="module")
def ec_key() -> ClientKey:
    return ClientKey("ES384", "his-ec-1")


@pytest.fixture(scope="module")
def rsa_key() -> ClientKey:
    return ClientKey("RS384", "his-rsa-1")


@pytest.fixture
def hub_settings(settings: Settings, tmp_path: Path, ec_key: ClientKey, rsa_key: ClientKey) -> Settings:
    clients = {"clients": [
        {"client_id": CLIENT, "facility": FACILITY, "scope": "system/*.rs system/Patient.c",
         "jwks": {"keys": [ec_key.public_jwk(), rsa_key.public_jwk()]}},
        {"client_id": "registry-reader", "scope": "system/Organization.rs", "jwks": {"keys": [rsa_key.public_jwk()]}},
    ]}
    path = tmp_path / "clients.json"
    path.write_text(json.dumps(clients))
    return settings.with_(backend_clients=path, base_url=BASE)


@pytest.fixture
def hub_client(hub_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(hub_settings), raise_server_exceptions=False) as client:
        yield client


def ask(client: TestClient | httpx.Client, assertion: str, scope: str = "system/*.rs", **extra: str) -> httpx.Response:
    form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion, "scope": scope, **extra}
    return client.post("/auth/token", data=form)


def refused(response: httpx.Response, status: int, error: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error, body
    assert "resourceType" not in body  # OAuth, not FHIR
    assert response.headers["cache-control"] == "no-store"
    description: str = body["error_description"]
    return description


# --------------------------------------------------------------------------------------------- success
@pytest.mark.parametrize("kind", ["ES384", "RS384"])
def test_a_registered_client_gets_a_token_and_reads_with_it(hub_client: TestClient, ec_key: ClientKey,
                                                            rsa_key: ClientKey, kind: str) -> None:
    key = ec_key if kind == "ES384" else rsa_key
    answer = ask(hub_client, key.assertion(), scope="system/*.cruds")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert answer.headers["cache-control"] == "no-store"
    assert body["token_type"] == "bearer" and 0 < body["expires_in"] <= 300
    assert body["scope"] == "system/*.rs system/Patient.c"  # asked *.cruds: what the registration allows of it
    claims = jwt.get_unverified_claims(body["access_token"])
    assert (claims["sub"], claims["facility"], claims["client_id"]) == (CLIENT, FACILITY, CLIENT)
    assert claims["exp"] - claims["iat"] == 300
    token = auth(body["access_token"])
    assert hub_client.get("/Patient", headers=token).status_code == 200
    refused_write = hub_client.post("/Observation", headers=token, json={"resourceType": "Observation"})
    assert refused_write.status_code == 403  # Observations: read and search only


def test_the_granted_scopes_and_facility_bind_what_the_token_writes(hub_client: TestClient, ec_key: ClientKey) -> None:
    body = ask(hub_client, ec_key.assertion(), scope="system/Patient.cr system/Observation.c").json()
    assert body["scope"] == "system/Patient.cr"
    created = hub_client.post("/Patient", headers=auth(body["access_token"]), json={"resourceType": "Patient"})
    assert created.status_code == 201, created.text
    assert created.json()["meta"]["source"] == f"urn:fhir-hub:facility:{FACILITY}"


def test_discovery_and_the_capability_statement_name_the_token_endpoint(hub_client: TestClient) -> None:
    smart = hub_client.get("/.well-known/smart-configuration").json()
    assert smart["token_endpoint"] == TOKEN_URL
    assert {"RS384", "ES384"} <= set(smart["token_endpoint_auth_signing_alg_values_supported"])
    # no authorization code flow is served, so none is advertised (SMART App Launch 2 requires the endpoint)
    assert smart["grant_types_supported"] == ["client_credentials"]
    assert "authorization_endpoint" not in smart and "context-standalone-patient" not in smart["capabilities"]
    security = hub_client.get("/metadata").json()["rest"][0]["security"]
    [oauth] = [e for e in security["extension"]
               if e["url"] == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"]
    assert oauth["extension"] == [{"url": "token", "valueUri": TOKEN_URL}]


def test_the_authorization_servers_endpoint_is_advertised_when_configured(hub_settings: Settings) -> None:
    settings = hub_settings.with_(token_endpoint="https://auth.health.hcmc.example/token")
    with TestClient(create_app(settings)) as client:
        assert client.get("/.well-known/smart-configuration").json()["token_endpoint"] == settings.token_endpoint
        security = client.get("/metadata").json()["rest"][0]["security"]
        assert security["extension"][0]["extension"][0]["valueUri"] == settings.token_endpoint
    authorize = "https://auth.health.hcmc.example/authorize"
    with TestClient(create_app(settings.with_(authorization_endpoint=authorize))) as client:
        smart = client.get("/.well-known/smart-configuration").json()
        assert smart["authorization_endpoint"] == authorize
        assert smart["grant_types_supported"] == ["client_credentials", "authorization_code"]
        assert smart["code_challenge_methods_supported"] == ["S256"]
        [oauth] = client.get("/metadata").json()["rest"][0]["security"]["extension"]
        assert oauth["extension"] == [{"url": "token", "valueUri": settings.token_endpoint},
                                      {"url": "authorize", "valueUri": authorize}]
    with pytest.raises(ConfigError, match="AUTHORIZATION_ENDPOINT needs"):
        hub_settings.with_(authorization_endpoint=authorize).check()


def test_a_client_registered_as_data_gets_a_token(hub_client: TestClient, rsa_key: ClientKey) -> None:
    store = hub_client.app.state.hub.store  # type: ignore[attr-defined]
    hub_client.portal.call(store.backend_clients.put, {  # type: ignore[union-attr]
        "client_id": "clinic-79415", "facility": "79415", "scope": "system/Encounter.rs",
        "jwks": {"keys": [rsa_key.public_jwk()]}})
    answer = ask(hub_client, rsa_key.assertion(client="clinic-79415"), scope="system/Encounter.rs")
    assert answer.status_code == 200, answer.text
    assert jwt.get_unverified_claims(answer.json()["access_token"])["facility"] == "79415"
    hub_client.portal.call(store.backend_clients.remove, "clinic-79415")  # type: ignore[union-attr]
    refused(ask(hub_client, rsa_key.assertion(client="clinic-79415"), scope="system/Encounter.rs"), 401,
            "invalid_client")


# --------------------------------------------------------------------------------------------- refusals
def test_an_assertion_signed_with_another_key_is_refused(hub_client: TestClient, ec_key: ClientKey) -> None:
    impostor = ClientKey("ES384", ec_key.kid)  # the registered kid, a different key
    assert "signature" in refused(ask(hub_client, impostor.assertion()), 401, "invalid_client")
    stranger = ClientKey("ES384", "not-registered")
    assert "kid" in refused(ask(hub_client, stranger.assertion()), 401, "invalid_client")


def test_an_expired_or_too_long_assertion_is_refused(hub_client: TestClient, ec_key: ClientKey) -> None:
    assert "expired" in refused(ask(hub_client, ec_key.assertion(lifetime=-600)), 401, "invalid_client")
    assert "300" in refused(ask(hub_client, ec_key.assertion(lifetime=3600)), 401, "invalid_client")


def test_a_replayed_jti_is_refused(hub_client: TestClient, ec_key: ClientKey) -> None:
    assertion = ec_key.assertion()
    assert ask(hub_client, assertion).status_code == 200
    assert "used before" in refused(ask(hub_client, assertion), 401, "invalid_client")
    # the same jti in a new assertion (new exp, same client) is a replay too
    jti = jwt.get_unverified_claims(assertion)["jti"]
    refused(ask(hub_client, ec_key.assertion(jti=jti, lifetime=200)), 401, "invalid_client")


def test_an_unknown_client_is_refused(hub_client: TestClient, ec_key: ClientKey) -> None:
    assert "not registered" in refused(ask(hub_client, ec_key.assertion(client="nobody")), 401, "invalid_client")


def test_a_scope_outside_the_clients_allowance_is_refused(hub_client: TestClient, rsa_key: ClientKey) -> None:
    refused(ask(hub_client, rsa_key.assertion(client="registry-reader"), scope="system/Patient.rs"), 400,
            "invalid_scope")
    refused(ask(hub_client, rsa_key.assertion(), scope="patient/*.rs user/*.cruds"), 400, "invalid_scope")


@pytest.mark.parametrize(("change", "error", "status"), [
    ({"aud": "https://elsewhere.example/token"}, "invalid_client", 401),
    ({"sub": "someone-else"}, "invalid_client", 401),
    ({"headers": {"jku": "https://attacker.example/jwks.json"}}, "invalid_client", 401),
    ({"iat": int(time.time()) + 3600}, "invalid_client", 401),
])
def test_assertion_claims_are_checked(hub_client: TestClient, ec_key: ClientKey, change: dict[str, Any], error: str,
                                      status: int) -> None:
    refused(ask(hub_client, ec_key.assertion(**change)), status, error)


def test_malformed_requests_are_oauth_errors(hub_client: TestClient, ec_key: ClientKey) -> None:
    refused(ask(hub_client, ec_key.assertion(), grant_type="password"), 400, "unsupported_grant_type")
    refused(ask(hub_client, ec_key.assertion(), client_assertion_type="urn:other"), 400, "invalid_request")
    refused(ask(hub_client, "", scope="system/*.rs"), 400, "invalid_request")
    refused(ask(hub_client, ec_key.assertion(), scope=""), 400, "invalid_request")
    refused(ask(hub_client, "not.a.jwt"), 401, "invalid_client")
    refused(hub_client.post("/auth/token", json={"grant_type": "client_credentials"}), 400, "invalid_request")
    twice = "grant_type=client_credentials&grant_type=client_credentials&scope=x"
    refused(hub_client.post("/auth/token", content=twice,
                            headers={"Content-Type": "application/x-www-form-urlencoded"}), 400, "invalid_request")


# ------------------------------------------------------------------------------------- across processes
def test_one_jti_sent_at_once_to_two_hubs_wins_exactly_once(hub_settings: Settings, ec_key: ClientKey) -> None:
    """Eight copies of one assertion, released together against two servers sharing one database."""
    assertion, parallel = ec_key.assertion(), 8
    with serving(create_app(hub_settings)) as first, serving(create_app(hub_settings)) as second:
        start, statuses = threading.Barrier(parallel), []

        def one(n: int) -> None:
            with httpx.Client(base_url=(first, second)[n % 2], timeout=60) as client:
                start.wait(timeout=30)
                statuses.append(ask(client, assertion).status_code)

        threads = [threading.Thread(target=one, args=(n,)) for n in range(parallel)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=90)
    assert sorted(statuses) == [200] + [401] * (parallel - 1)


# ----------------------------------------------------------------------------------------- configuration
def test_production_issues_tokens_only_with_a_signing_key(tmp_path: Path) -> None:
    clients = tmp_path / "clients.json"
    clients.write_text('{"clients": []}')
    base = {"FHIR_HUB_ENV": "production", "FHIR_HUB_TOKEN_ISSUER": "https://auth.example",
            "FHIR_HUB_TOKEN_AUDIENCE": "https://hub.example", "FHIR_HUB_BACKEND_CLIENTS": str(clients)}
    with pytest.raises(ConfigError, match="TOKEN_SIGNING_KEY"):
        Settings.from_env(base)
    key = tmp_path / "signing.pem"
    key.write_text(pem_of(ec.generate_private_key(ec.SECP256R1())))
    settings = Settings.from_env({**base, "FHIR_HUB_TOKEN_SIGNING_KEY": str(key)})
    issuing = signing_key_from_file(key, settings.own_issuer)
    assert (issuing.algorithm, issuing.issuer) == ("ES256", "https://auth.example")  # the hub is the only issuer
    beside = settings.with_(jwks_file=tmp_path / "idp.json", base_url="https://hub.example")
    assert beside.own_issuer == "https://hub.example"  # beside an authorization server, never its issuer


def test_hub_tokens_beside_an_authorization_server_carry_the_hubs_issuer(
        settings: Settings, tmp_path: Path, ec_key: ClientKey) -> None:
    """With a JWKS configured (the city's authorization server) the hub's own key verifies only tokens with
    the hub's issuer: the hub cannot mint a token that passes for the authorization server's."""
    (tmp_path / "idp.json").write_text(json.dumps({"keys": [{**jwk.construct(pem_of(ec.generate_private_key(
        ec.SECP256R1())), "ES256").public_key().to_dict(), "kid": "idp-1"}]}))
    key = tmp_path / "signing.pem"
    key.write_text(pem_of(ec.generate_private_key(ec.SECP256R1())))
    clients = tmp_path / "clients.json"
    clients.write_text(json.dumps({"clients": [{"client_id": CLIENT, "facility": FACILITY, "scope": "system/*.rs",
                                                "jwks": {"keys": [ec_key.public_jwk()]}}]}))
    configured = settings.with_(jwks_file=tmp_path / "idp.json", token_signing_key=key, backend_clients=clients,
                                base_url=BASE, token_issuer="https://auth.example")
    with TestClient(create_app(configured), raise_server_exceptions=False) as client:
        token = ask(client, ec_key.assertion()).json()["access_token"]
        assert jwt.get_unverified_claims(token)["iss"] == BASE
        assert client.get("/Patient", headers=auth(token)).status_code == 200
        issuing = signing_key_from_file(key, "https://auth.example")  # the hub's key, the IdP's issuer
        forged = jwt.encode({**jwt.get_unverified_claims(token), "iss": "https://auth.example"}, issuing.private_pem,
                            algorithm=issuing.algorithm, headers={"kid": issuing.kid})
        assert client.get("/Patient", headers=auth(forged)).status_code == 401


# ------------------------------------------------------------------------------------------ command line
def test_a_client_made_and_registered_with_the_command_line_gets_a_token(
        settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the README tells an integrator to do: keygen, register (in the store), sign an assertion, ask."""
    from fhir_hub.cli import main

    key, jwks = tmp_path / "his.pem", tmp_path / "his.jwks.json"
    assert main(["client", "keygen", "--kid", "his-2026", "--out", str(key)]) == 0
    jwks.write_text(capsys.readouterr().out)
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert main(["client", "keygen", "--kid", "again", "--out", str(key)]) == 2  # a key is never overwritten
    monkeypatch.setenv("FHIR_HUB_MONGODB_URI", str(settings.mongodb_uri))
    monkeypatch.setenv("FHIR_HUB_DB_NAME", settings.db_name)
    monkeypatch.setenv("FHIR_HUB_DATA_DIR", str(tmp_path / "var"))
    assert main(["client", "register", "his-79002", "--scope", "system/*.rs", "--facility", "79002",
                 "--jwks", str(jwks)]) == 0
    assert "registered" in capsys.readouterr().out
    assert main(["client", "register", "bad", "--scope", "patient/*.rs", "--jwks", str(jwks)]) == 2
    assert main(["client", "assertion", "his-79002", "--key", str(key), "--kid", "his-2026", "--aud", TOKEN_URL]) == 0
    assertion = capsys.readouterr().out.strip()
    with TestClient(create_app(settings.with_(base_url=BASE)), raise_server_exceptions=False) as client:
        answer = ask(client, assertion)
        assert answer.status_code == 200, answer.text
        assert jwt.get_unverified_claims(answer.json()["access_token"])["facility"] == "79002"
    assert main(["client", "remove", "his-79002"]) == 0
    assert "removed" in capsys.readouterr().out


@pytest.mark.anyio
async def test_a_clients_jwks_url_adds_to_its_inline_keys(
        jwks_server: tuple[str, dict[str, Any], list[int]],  # noqa: F811 (the fixture imported above)
        ec_key: ClientKey, rsa_key: ClientKey) -> None:
    url, document, _hits = jwks_server
    document["keys"] = [ec_key.public_jwk()]
    client = client_from_registration({"client_id": "c", "scope": "system/*.rs", "jwks_url": url,
                                       "jwks": {"keys": [rsa_key.public_jwk()]}})
    assert (await client.keys.get(ec_key.kid)) is not None  # fetched from the registered URL on first use
    assert (await client.keys.get(rsa_key.kid)) is not None  # the inline key stays
    assert (await client.keys.get(ec_key.kid)).algorithm == "ES384"  # type: ignore[union-attr]
