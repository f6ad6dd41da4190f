"""schemathesis drives the running server from openapi/openapi.json with a valid token: no answer is a 5xx.

Bounded (15 examples per operation plus schemathesis's coverage and stateful phases, about 2,000 requests)
and seeded, so a failure reproduces; the CLI's own report says which request failed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fhir_hub.config import Settings
from tests.conftest import token_for

pytestmark = pytest.mark.server
SPEC = Path(__file__).resolve().parents[1] / "openapi" / "openapi.json"


def test_no_request_from_the_schema_gets_a_server_error(live_server: str, settings: Settings) -> None:
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", str(SPEC), "--url", live_server,
        "--header", f"Authorization: Bearer {token_for(settings)}",
        "--checks", "not_a_server_error", "--max-examples", "15", "--seed", "20261122",
        "--generation-database", "none", "--workers", "1", "--no-color",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "passed" in result.stdout
