"""What the OpenAPI document says each FHIR route answers: its real statuses and ``application/fhir+json``.

FastAPI would otherwise document every route as ``200 application/json`` plus a ``422
HTTPValidationError`` the hub never sends (its parameter errors are 400 OperationOutcomes,
``api/errors.py``). Statuses follow R4 http.html for each interaction; every error is an OperationOutcome.
The handlers build their own responses, so nothing here changes an answer: it only describes them.
"""

from __future__ import annotations

from typing import Any

from fastapi import Response

from fhir_hub.api.negotiation import FHIR_JSON


class FhirJsonResponse(Response):
    """Names the media type in the OpenAPI document; handlers return ``fhir_response``'s answers."""

    media_type = FHIR_JSON


_RESOURCE = {"type": "object", "required": ["resourceType"], "properties": {"resourceType": {"type": "string"}},
             "additionalProperties": True, "description": "A FHIR resource"}
_OUTCOME = {"type": "object", "required": ["resourceType", "issue"], "additionalProperties": True,
            "properties": {"resourceType": {"type": "string", "enum": ["OperationOutcome"]},
                           "issue": {"type": "array", "items": {"type": "object"}}},
            "description": "An OperationOutcome saying what went wrong (issue.code, diagnostics, expression)"}
_BODY = {"content": {FHIR_JSON: {"schema": _RESOURCE}}}
_ERROR = {"content": {FHIR_JSON: {"schema": _OUTCOME}}}

# interaction code -> (the usual success status, other statuses it answers with their meaning)
_STATUSES: dict[str, tuple[int, dict[int, str]]] = {
    "read": (200, {304: "Not modified since the client's copy (If-None-Match, If-Modified-Since)",
                   404: "Unknown, or not visible to the caller", 410: "Deleted"}),
    "vread": (200, {404: "Unknown version or resource", 410: "The version is a deletion"}),
    "create": (201, {200: "Conditional create: the one resource matching the criteria, unchanged",
                     412: "Conditional create: several resources match the criteria"}),
    "update": (200, {201: "Created with the client's id", 404: "Not visible to the caller",
                     412: "If-Match names another version"}),
    "conditional-update": (200, {201: "Nothing matched: created", 412: "Several resources match the criteria"}),
    "patch": (200, {404: "Unknown, or not visible to the caller", 410: "Deleted",
                    412: "If-Match names another version", 415: "Not a patch format",
                    422: "The patch does not apply to the resource"}),
    "conditional-patch": (200, {404: "Nothing matches the criteria", 412: "Several resources match",
                                415: "Not a patch format", 422: "The patch does not apply to the resource"}),
    "delete": (204, {200: "Prefer: return=OperationOutcome", 404: "Unknown, or not visible to the caller"}),
    "conditional-delete": (204, {200: "Prefer: return=OperationOutcome", 412: "Several resources match"}),
    "ingest": (200, {202: "Queued (Prefer: respond-async); progress at Content-Location",
                     415: "No adapter reads the payload"}),
    "ingest-status": (200, {202: "Records still waiting or running (X-Progress)"}),
    "summary": (200, {404: "No such patient, or not visible to the caller", 410: "The patient was deleted",
                      422: "The identifier names several people (multiple-matches)"}),
}
_COMMON = {400: "The request is malformed (an OperationOutcome names what and where)",
           401: "No valid bearer token", 403: "The token's scopes do not allow this interaction"}


def documented_responses(code: str) -> dict[str, Any]:
    """Keyword arguments for a route decorator: status, response class and the ``responses`` it documents."""
    success, others = _STATUSES.get(code, (200, {}))
    responses: dict[int | str, dict[str, Any]] = {}
    for status, meaning in {**others, **({} if code == "capabilities" else _COMMON)}.items():
        body = _BODY if 200 <= status < 300 and status != 204 else {} if status == 304 else _ERROR
        responses[status] = {"description": meaning, **body}
    if success != 204:  # FastAPI would describe the answer as a string: the response class is not JSON's
        responses[success] = {"description": "Success", **_BODY}
    responses["4XX"] = {"description": "Any other refusal (404 unknown type or operation, 405 with Allow, 406, "
                                       "413 too large, 415 media type...)", **_ERROR}
    responses["5XX"] = {"description": "The store did not answer (503, Retry-After) or an incident (500)", **_ERROR}
    return {"status_code": success, "response_class": FhirJsonResponse, "responses": responses,
            "response_description": "Success"}
