"""The committed OpenAPI document is what the app generates (regenerate with ``make openapi``)."""

from __future__ import annotations

from pathlib import Path

import orjson

from fhir_hub.config import Settings
from fhir_hub.main import create_app

COMMITTED = Path(__file__).resolve().parents[1] / "openapi" / "openapi.json"


def test_openapi_document_has_not_drifted() -> None:
    generated = create_app(Settings()).openapi()
    committed = orjson.loads(COMMITTED.read_bytes())
    assert committed == orjson.loads(orjson.dumps(generated)), "openapi/openapi.json is stale: run `make openapi`"


def test_every_fhir_route_declares_its_interaction() -> None:
    document = orjson.loads(COMMITTED.read_bytes())
    operations = [op for url, path in document["paths"].items()  # discovery and the OAuth token endpoint: not FHIR
                  if not url.startswith(("/.well-known/", "/auth/")) for op in path.values()]
    assert operations
    assert all("x-fhir-interaction" in op for op in operations)
    assert all(op["operationId"] for op in operations)
