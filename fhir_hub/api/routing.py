"""Shared pieces of the REST routes: path parameters, and the tag that says which FHIR interaction a
route implements.

Each route carries ``x-fhir-interaction`` in its OpenAPI extension data. The CapabilityStatement is built
by reading those tags off the app's routes, so it lists exactly what is mounted.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path

from fhir_hub.api.documented import documented_responses
from fhir_hub.errors import MethodNotAllowed, NotFound
from fhir_hub.fhir.ids import check_id
from fhir_hub.fhir.registry import is_resource_type, resource_types

INTERACTION_KEY = "x-fhir-interaction"

ResourceTypePath = Annotated[
    str,
    Path(description="A FHIR R4 resource type", json_schema_extra={"enum": list(resource_types())}),
]
IdPath = Annotated[
    str,
    Path(description="Logical id of the resource", json_schema_extra={"pattern": r"^[A-Za-z0-9\-.]{1,64}$"}),
]
VersionPath = Annotated[str, Path(description="Version id", json_schema_extra={"pattern": r"^[0-9]{1,10}$"})]

_FHIR_JSON_SCHEMA = {
    "type": "object",
    "required": ["resourceType"],
    "properties": {"resourceType": {"type": "string"}, "id": {"type": "string"}},
    "additionalProperties": True,
}


# System-level paths that the type-level patterns also match for other methods (DELETE /metadata ...).
_SYSTEM_PATHS = frozenset({"metadata", "_history", "_search"})
_TYPE_PATHS = frozenset({"_history", "_search"})  # likewise under a type, for the instance-level patterns


def check_type(rtype: str) -> str:
    if rtype in _SYSTEM_PATHS:
        raise MethodNotAllowed(f"This method is not allowed on /{rtype}")
    if rtype.startswith("$"):
        raise unsupported_operation(rtype, None)
    if not is_resource_type(rtype):
        raise NotFound(f"Resource type {rtype[:80]!r} is not supported by this server", code="not-supported")
    return rtype


def check_instance(rtype: str, rid: str) -> tuple[str, str]:
    check_type(rtype)
    if rid in _TYPE_PATHS:  # ``PUT /Patient/_history``: a type-level path, not an id
        raise MethodNotAllowed(f"This method is not allowed on /{rtype}/{rid}")
    if rid.startswith("$"):  # ``GET /Patient/$lastn`` asks for an operation, not for the id "$lastn"
        raise unsupported_operation(rid, rtype)
    return rtype, check_id(rid)


class UnknownOperation(NotFound):
    """An operation this server does not have: 404 ``not-supported``, as for a resource type it does not
    serve (R4 http.html: 404 "resource type not supported, or not a FHIR end-point"); the operations it has
    are in the CapabilityStatement. The error handler answers 405 instead when the operation exists with
    another method (``PUT /Patient/$match``)."""

    code = "not-supported"


def unsupported_operation(name: str, rtype: str | None, *, instance: bool = False) -> UnknownOperation:
    where = f"on {rtype} instances" if instance else f"on {rtype}" if rtype else "at the system level"
    return UnknownOperation(f"The operation {name[:80]!r} is not supported {where} by this server (see GET "
                            "/metadata for the operations it has)")


def parse_version(vid: str) -> int | None:
    """A version id from a URL, or None when it cannot name a stored version (answered 404)."""
    return int(vid) if vid.isdigit() and len(vid) <= 10 else None


def fhir_route(
    code: str,
    level: str,
    *,
    summary: str,
    body: bool | dict[str, Any] = False,
    query: tuple[str, ...] = (),
    headers: tuple[str, ...] = (),
    **capability: Any,
) -> dict[str, Any]:
    """Keyword arguments for a route decorator: summary, OpenAPI extras and the interaction tag.

    ``capability``: CapabilityStatement flags (``conditionalCreate``...), or for an operation its
    ``operation`` (name, definition) and the ``resource`` type it is on (listed under that type)."""
    extra: dict[str, Any] = {INTERACTION_KEY: {"code": code, "level": level, **capability}}
    params = [_param(name, "query") for name in (*query, "_format", "_pretty")]
    params += [_param(name, "header") for name in headers]
    extra["parameters"] = params
    if isinstance(body, dict):
        extra["requestBody"] = body
    elif body:
        extra["requestBody"] = {
            "required": True,
            "content": {
                "application/fhir+json": {"schema": _FHIR_JSON_SCHEMA},
                "application/json": {"schema": _FHIR_JSON_SCHEMA},
            },
        }
    return {"summary": summary, "openapi_extra": extra, "operation_id": f"{level}-{code}",
            **documented_responses(code)}


_PARAM_DOCS = {
    "_format": "Response format: json or application/fhir+json (XML is not supported)",
    "_pretty": "Indent the JSON answer (true or false)",
    "_count": "Number of entries per page",
    "_since": "Only versions created at or after this instant",
    "_page": "Opaque position of a page, taken from a Bundle link",
    "_id": "Logical id(s), comma separated",
    "identifier": "Business identifier: [system]|[value]",
    "If-Match": 'Only act if the current version is this one: W/"3"',
    "If-None-Exist": "Conditional create: search parameters, e.g. identifier=system|value",
    "If-None-Match": "Conditional read: answer 304 if the current version has this ETag",
    "If-Modified-Since": "Conditional read: answer 304 if unchanged since this HTTP date",
    "Prefer": "return=minimal | representation | OperationOutcome; handling=strict | lenient",
    "mode": "$validate: create (the default), update or delete",
    "profile": "$validate: a profile to check beyond the resource's own (one the hub does not ship is an error)",
}


def _param(name: str, where: str) -> dict[str, Any]:
    return {"name": name, "in": where, "required": False, "schema": {"type": "string"},
            "description": _PARAM_DOCS.get(name, name)}
