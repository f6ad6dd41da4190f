"""Test fixtures: a real wire-protocol server for the whole session, a fresh database for every test.

With ``FHIR_HUB_MONGODB_URI`` set the suite runs against that MongoDB; otherwise it starts an embedded
nx-27017 once. Each test gets its own database name, so tests never see each other's data.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from fastapi.testclient import TestClient

from fhir_hub import audit as audit_module
from fhir_hub.auth.dev_tokens import development_token
from fhir_hub.config import Settings
from fhir_hub.hub import Hub, running_hub
from fhir_hub.main import create_app
from fhir_hub.store.embedded import EmbeddedStore

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
_db_counter = itertools.count()


@pytest.fixture(scope="session", autouse=True)
def store_lock_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The lock files of every test database (two per database, ``store/store_lock.py``) in the session's
    temporary directory rather than the user's; in the environment too, for the hub processes tests start."""
    directory = tmp_path_factory.mktemp("store-locks")
    with mock.patch.dict(os.environ, {"FHIR_HUB_STORE_LOCK_DIR": str(directory)}):
        yield directory


@pytest.fixture(scope="session")
def mongodb_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("FHIR_HUB_MONGODB_URI")
    if configured:
        yield configured
        return
    with EmbeddedStore(tmp_path_factory.mktemp("nx-27017")) as uri:
        yield uri


@pytest.fixture
def settings(mongodb_uri: str, tmp_path: Path) -> Settings:
    """Validation workers off: each app would otherwise start a process on its first large transaction;
    tests/bundles/test_validation_workers.py runs the Bundle scenarios with them. Ingest payloads are mapped
    in a thread for the same reason; tests/ingest/test_event_loop.py runs them in the worker process."""
    db_name = f"test_{os.getpid()}_{next(_db_counter)}_{uuid.uuid4().hex[:6]}"
    return Settings(mongodb_uri=mongodb_uri, db_name=db_name, data_dir=tmp_path / "var", validation_processes=0,
                    ingest_processes=0, store_lock_dir=Path(os.environ["FHIR_HUB_STORE_LOCK_DIR"]))


FACILITY = "79001"


def token_for(settings: Settings, role: str = "system", **claims: object) -> str:
    """A development token the app under test accepts (system role at facility 79001 by default)."""
    if role == "system":
        claims.setdefault("facility", FACILITY)
    return development_token(settings, role=role, **claims)  # type: ignore[arg-type]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_outcome(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """The answer is an OperationOutcome with this status (and first issue code), never a traceback."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert "Traceback" not in response.text
    if code is not None:
        assert body["issue"][0]["code"] == code, body
    return body


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """A hospital system's client (system/*.cruds at facility 79001)."""
    with TestClient(create_app(settings), raise_server_exceptions=False,
                    headers=auth(token_for(settings))) as test_client:
        yield test_client


@pytest.fixture
def app_client(settings: Settings) -> Iterator[TestClient]:
    """No default token: each test says who is calling (``as_``)."""
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def as_(settings: Settings, role: str = "system", **claims: object) -> dict[str, str]:
    """The Authorization header of a development token for this role and these claims."""
    return auth(token_for(settings, role, **claims))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def hub(settings: Settings) -> AsyncIterator[Hub]:
    async with running_hub(settings) as opened:
        yield opened


def fixture_path(*parts: str) -> Path:
    path = FIXTURES.joinpath(*parts)
    if not path.exists():
        message = f"shared fixture {path} is not available (clone the project beside ../shared)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def read_fixture_json(*parts: str) -> bytes:
    """A fixture file's bytes with a leading UTF-8 byte-order mark removed (many HL7 examples carry one)."""
    return fixture_path(*parts).read_bytes().removeprefix(b"\xef\xbb\xbf")


@pytest.fixture(scope="module")
def module_client(mongodb_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app for a whole module, for hypothesis tests (which cannot use function-scoped fixtures)."""
    module_settings = Settings(mongodb_uri=mongodb_uri, db_name=f"test_mod_{uuid.uuid4().hex[:10]}",
                               data_dir=tmp_path_factory.mktemp("var"), validation_processes=0)
    with TestClient(create_app(module_settings), raise_server_exceptions=False,
                    headers=auth(token_for(module_settings))) as test_client:
        yield test_client


@pytest.fixture
def live_server(settings: Settings) -> Iterator[str]:
    """The app under a real uvicorn on a free loopback port, for outside clients; yields the base URL."""
    with serving(create_app(settings)) as url:
        yield url


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread on a free loopback port until the block ends (several such
    servers on one database stand for several hub processes)."""
    import threading
    import time

    import uvicorn

    from fhir_hub.store.embedded import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)



@contextlib.contextmanager
def audit_held(settings: Settings) -> Iterator[Settings]:
    """Settings whose audit trail writes only when flushed or closed, for tests that compare audit logs
    while their own requests are audited: a long flush interval, and no insert leaving as it fills (one
    leaves at 20 entries in service). Apps made from them inside the block keep that."""
    with mock.patch.object(audit_module, "_CHUNK", 1_000_000):
        yield dataclasses.replace(settings, audit_flush_ms=600_000)
