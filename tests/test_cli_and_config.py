"""The command line, the settings, and the embedded store's life cycle (start, persist, restart, stop)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fhir_hub.auth.caller import Caller
from fhir_hub.auth.dev_tokens import development_token
from fhir_hub.cli import build_parser, main
from fhir_hub.config import ConfigError, Settings
from fhir_hub.demo import demo_resources, load_demo
from fhir_hub.fhir.validation import validate_resource
from fhir_hub.hub import running_hub
from fhir_hub.store.embedded import EmbeddedStore, EmbeddedStoreError
from fhir_hub.store.writer import Create

COMMANDS = ("serve", "load-demo", "token", "openapi")


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_every_command_has_help(command: str | None) -> None:
    args = [sys.executable, "-m", "fhir_hub", *([command] if command else []), "--help"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "usage: fhir-hub" in result.stdout
    if command is None:
        assert all(name in result.stdout for name in COMMANDS)


def test_parser_knows_the_commands() -> None:
    parser = build_parser()
    assert parser.parse_args(["serve", "--port", "9000", "--no-demo"]).port == 9000


def test_settings_from_environment() -> None:
    settings = Settings.from_env({"FHIR_HUB_PORT": "9090", "FHIR_HUB_MAX_COUNT": "50", "FHIR_HUB_DEFAULT_COUNT": "5",
                                  "FHIR_HUB_DATA_DIR": "/tmp/x", "FHIR_HUB_MONGODB_URI": ""})
    assert settings.port == 9090 and settings.max_count == 50 and settings.data_dir == Path("/tmp/x")
    assert settings.mongodb_uri is None  # an empty variable means unset
    assert Settings.from_env({}, port=7000).port == 7000
    assert Settings.from_env({}).validation_processes == 1
    assert Settings.from_env({"FHIR_HUB_VALIDATION_PROCESSES": "0"}).validation_processes == 0


@pytest.mark.parametrize(("env", "mentions"), [
    ({"FHIR_HUB_PORT": "eighty"}, "FHIR_HUB_PORT"),
    ({"FHIR_HUB_MAX_BODY_BYTES": "0"}, "FHIR_HUB_MAX_BODY_BYTES"),
    ({"FHIR_HUB_DEFAULT_COUNT": "50", "FHIR_HUB_MAX_COUNT": "10"}, "FHIR_HUB_DEFAULT_COUNT"),
    ({"FHIR_HUB_PORT": "70000"}, "FHIR_HUB_PORT"),
    ({"FHIR_HUB_VALIDATION_PROCESSES": "-1"}, "FHIR_HUB_VALIDATION_PROCESSES"),
    ({"FHIR_HUB_VALIDATION_PROCESSES": "two"}, "FHIR_HUB_VALIDATION_PROCESSES"),
    ({"FHIR_HUB_MAX_TOKEN_LIFETIME_SECONDS": "0"}, "FHIR_HUB_MAX_TOKEN_LIFETIME_SECONDS"),
])
def test_bad_settings_name_the_variable(env: dict[str, str], mentions: str) -> None:
    with pytest.raises(ConfigError, match=mentions):
        Settings.from_env(env)


def test_cli_reports_configuration_errors(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FHIR_HUB_PORT", "eighty")
    assert main(["load-demo"]) == 2
    assert "FHIR_HUB_PORT" in capsys.readouterr().err


def test_demo_data_is_real_and_valid() -> None:
    resources = list(demo_resources())
    assert {r["resourceType"] for r in resources} >= {"Patient", "Encounter", "Condition", "Organization"}
    for resource in resources:
        validate_resource(resource)
    patients = [r for r in resources if r["resourceType"] == "Patient"]
    assert len(patients) == 3 and all("synthea" in r["text"]["div"].lower() for r in patients)


@pytest.mark.anyio
async def test_embedded_store_keeps_data_across_restarts(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var", db_name="restart")
    async with running_hub(settings) as hub:
        assert hub.store.capabilities.engine == "nx-27017"
        first = await load_demo(hub)
        created = await hub.writer.commit(Create("Patient", {"resourceType": "Patient", "active": True}),
                                          caller=Caller.hub("test"))
    assert first.created == len(list(demo_resources())) and first.already_present == 0
    async with running_hub(settings) as hub:  # a new embedded server over the same files
        again = await load_demo(hub)
        stored = await hub.store.current("Patient", created.version.rid)
    assert again.created == 0 and again.already_present == first.created
    assert stored is not None and stored.json == created.version.json


def test_two_hubs_cannot_share_a_data_directory(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path) as uri:
        assert uri.startswith("mongodb://127.0.0.1:")
        with pytest.raises(EmbeddedStoreError, match="already using"):
            EmbeddedStore(tmp_path).start()
    with EmbeddedStore(tmp_path):  # released on stop
        pass


def test_openapi_command_writes_the_document(tmp_path: Path) -> None:
    target = tmp_path / "openapi.json"
    assert main(["openapi", "--output", str(target)]) == 0
    assert b'"x-fhir-interaction"' in target.read_bytes()


def test_production_refuses_to_start_without_a_jwks(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="FHIR_HUB_JWKS_FILE or FHIR_HUB_JWKS_URL"):
        Settings.from_env({"FHIR_HUB_ENV": "production", "FHIR_HUB_TOKEN_ISSUER": "https://idp.hcmc.example",
                           "FHIR_HUB_TOKEN_AUDIENCE": "https://hub.hcmc.example"})
    with pytest.raises(ConfigError, match="TOKEN_ISSUER"):
        Settings.from_env({"FHIR_HUB_ENV": "production", "FHIR_HUB_JWKS_FILE": str(tmp_path / "jwks.json")})
    with pytest.raises(ConfigError, match="FHIR_HUB_ENV"):
        Settings.from_env({"FHIR_HUB_ENV": "staging"})
    jwks = tmp_path / "jwks.json"
    settings = Settings.from_env({"FHIR_HUB_ENV": "production", "FHIR_HUB_JWKS_FILE": str(jwks),
                                  "FHIR_HUB_TOKEN_ISSUER": "https://idp", "FHIR_HUB_TOKEN_AUDIENCE": "https://hub"})
    with pytest.raises(ConfigError, match="production"):
        development_token(settings, role="system")
    with pytest.raises(ConfigError, match="ENFORCE_CONSENT"):  # every read obeys consent in production
        Settings.from_env({"FHIR_HUB_ENV": "production", "FHIR_HUB_JWKS_FILE": str(jwks),
                           "FHIR_HUB_TOKEN_ISSUER": "https://idp", "FHIR_HUB_TOKEN_AUDIENCE": "https://hub",
                           "FHIR_HUB_ENFORCE_CONSENT": "false"})
    with pytest.raises(ConfigError, match="QUEUE_BY_RISK"):  # the most at risk come first in production
        Settings.from_env({"FHIR_HUB_ENV": "production", "FHIR_HUB_JWKS_FILE": str(jwks),
                           "FHIR_HUB_TOKEN_ISSUER": "https://idp", "FHIR_HUB_TOKEN_AUDIENCE": "https://hub",
                           "FHIR_HUB_QUEUE_BY_RISK": "false"})


def test_token_command_mints_a_token_the_hub_accepts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    from fhir_hub.auth.authenticator import Authenticator
    from fhir_hub.auth.tokens import TokenVerifier
    from fhir_hub.hub import token_keys

    assert main(["token", "--role", "resident", "--patient", "pa", "--data-dir", str(tmp_path)]) == 0
    token = capsys.readouterr().out.strip()
    settings = Settings(data_dir=tmp_path)
    verifier = TokenVerifier(token_keys(settings), issuer=settings.issuer, audience=settings.audience,
                             leeway_seconds=5, max_bytes=8192)
    caller = asyncio.run(Authenticator(verifier).caller(token))
    assert caller.patient == "pa" and caller.role == "resident"
    assert str(caller.scopes) == "patient/*.rs patient/Consent.cud patient/Task.c"
    with pytest.raises(SystemExit):
        main(["token", "--role", "administrator"])


def test_token_command_refuses_a_lifetime_the_hub_would_refuse(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer asking for a week-long token gets told why, instead of a token every request refuses."""
    monkeypatch.delenv("FHIR_HUB_MAX_TOKEN_LIFETIME_SECONDS", raising=False)
    assert main(["token", "--role", "system", "--ttl", str(7 * 86400), "--data-dir", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "FHIR_HUB_MAX_TOKEN_LIFETIME_SECONDS is 3600" in captured.err


def test_token_command_follows_a_lowered_maximum_lifetime(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from jose import jwt

    from fhir_hub.auth.authenticator import Authenticator
    from fhir_hub.hub import token_verifier

    monkeypatch.setenv("FHIR_HUB_MAX_TOKEN_LIFETIME_SECONDS", "600")
    assert main(["token", "--role", "system", "--facility", "79001", "--data-dir", str(tmp_path)]) == 0
    token = capsys.readouterr().out.strip()
    claims = jwt.get_unverified_claims(token)
    assert claims["exp"] - claims["iat"] == 600  # the default hour shrinks to what the hub accepts
    verifier = token_verifier(Settings.from_env(data_dir=tmp_path))
    assert asyncio.run(Authenticator(verifier).caller(token)).facility == "79001"
    assert main(["token", "--role", "system", "--ttl", "601", "--data-dir", str(tmp_path)]) == 2
