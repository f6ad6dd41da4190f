"""The committed OpenAPI document is what the app generates (regenerate with ``make openapi``)."""

from __future__ import annotations

from pathlib import Path

import orjson

from fhir_hub.api.ingest import ACK_MEDIA_TYPE
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


def test_the_document_states_the_real_statuses_and_media_type() -> None:
    """Issue 21: no FastAPI 422 HTTPValidationError (the hub answers 400 OperationOutcomes), FHIR JSON, and
    the statuses each interaction really answers."""
    text = COMMITTED.read_text(encoding="utf-8")
    assert "HTTPValidationError" not in text and "ValidationError" not in text
    document = orjson.loads(text)
    for url, path in document["paths"].items():
        if url.startswith(("/.well-known/", "/auth/")):  # SMART discovery and the OAuth token endpoint: plain
            continue  # JSON and OAuth errors, as SMART and RFC 6749 say
        for method, op in path.items():
            responses = op["responses"]
            # a 422 only where the hub answers one (a patch that does not apply, $summary's several matches),
            # as an OperationOutcome: never FastAPI's validation error
            assert "422" not in responses or op["x-fhir-interaction"]["code"] in (
                "patch", "conditional-patch", "summary"), url
            assert {"4XX", "5XX"} <= set(responses), (url, method)
            for status, answer in responses.items():
                # $ingest's 200 may also be an HL7 v2 sender's acknowledgements
                extra = {ACK_MEDIA_TYPE} if (url, status) == ("/$ingest", "200") else set()
                assert set(answer.get("content", {})) <= {"application/fhir+json", *extra}, (url, method, status)
    paths = document["paths"]
    assert {"201", "200", "412"} <= set(paths["/{rtype}"]["post"]["responses"])
    assert {"200", "304", "404", "410"} <= set(paths["/{rtype}/{rid}"]["get"]["responses"])
    assert "content" not in paths["/{rtype}/{rid}"]["delete"]["responses"]["204"]
    assert {"200", "201", "412"} <= set(paths["/{rtype}/{rid}"]["put"]["responses"])
    # a facility's file goes as it is: each adapter's media types, or octet-stream to have it detected
    sent = set(paths["/$ingest"]["post"]["requestBody"]["content"])
    assert {"text/csv", "application/xml", "application/fhir+json", "x-application/hl7-v2+er7",
            "application/octet-stream"} <= sent
    outcome = paths["/{rtype}/{rid}"]["get"]["responses"]["404"]["content"]["application/fhir+json"]["schema"]
    assert outcome["properties"]["resourceType"]["enum"] == ["OperationOutcome"]
