"""``$validate`` (FHIR R4 resource-operation-validate.html): would the hub accept this resource, and what
does it find in it? The answer lists every issue, warnings and information too, where a write refuses on
errors only; the checks are the write path's own (``fhir_hub.fhir.validation.check_structure``, then
``profiles.validation``), so the operation can never pass what a write refuses or the other way round.

``mode``: ``create`` (the default: the resource as a create would see it), ``update`` (it must carry the id
it is to be stored under, the URL's at instance level), ``delete`` (instance level: the resource must exist
and be visible to the caller; no resource is needed). ``profile``: a profile to check beyond the
resource's own; one the hub does not ship is an error issue, never silently taken as met.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fhir_hub.errors import BadRequest, HubError, Issue
from fhir_hub.fhir.validation import check_structure, hub_issue
from fhir_hub.services.read import read
from fhir_hub.services.session import Session
from profiles.validation import validate as validate_base

MODES = ("create", "update", "delete")
_PARAMETERS = {"resource": "resource", "mode": "valueCode", "profile": "valueUri"}
_ALL_OK = Issue("informational", "All OK: no errors, warnings or information found", severity="information")


@dataclass(frozen=True, slots=True)
class ValidateRequest:
    resource: dict[str, Any] | None
    mode: str
    profile: str | None


def validate_request(body: dict[str, Any] | None, query: Mapping[str, str]) -> ValidateRequest:
    """The operation's input: a bare resource, or a Parameters with ``resource``, ``mode``, ``profile``
    (``mode`` and ``profile`` may also come in the URL, as for any operation with primitive parameters)."""
    given: dict[str, Any] = {name: query[name] for name in ("mode", "profile") if name in query}
    if body is not None and body.get("resourceType") == "Parameters":
        for i, parameter in enumerate(body.get("parameter") or []):
            name = parameter.get("name") if isinstance(parameter, dict) else None
            where = f"Parameters.parameter[{i}]"
            if name not in _PARAMETERS:
                raise BadRequest(f"{where}: unknown parameter {str(name)[:40]!r} for $validate (it takes "
                                 f"{', '.join(_PARAMETERS)})", expression=[where])
            value = _parameter_value(parameter, name, where)
            given[name] = value
    elif body is not None:
        given["resource"] = body
    mode = given.get("mode", "create")
    if mode not in MODES:
        raise BadRequest(f"mode: {str(mode)[:40]!r} is not one of {', '.join(MODES)}", expression=["mode"])
    resource = given.get("resource")
    if resource is None and mode != "delete":
        raise BadRequest("resource: missing; $validate needs the resource to check (the body, or the "
                         "Parameters' 'resource')", expression=["resource"])
    return ValidateRequest(resource, mode, given.get("profile"))


def _parameter_value(parameter: dict[str, Any], name: str, where: str) -> Any:
    if name == "resource":
        value = parameter.get("resource")
        if not isinstance(value, dict):
            raise BadRequest(f"{where}: resource must hold a resource", expression=[f"{where}.resource"])
        return value
    value = next((parameter[k] for k in ("valueCode", "valueUri", "valueCanonical", "valueString")
                  if isinstance(parameter.get(k), str)), None)
    if value is None:
        raise BadRequest(f"{where}: give {name} as {_PARAMETERS[name]}", expression=[where])
    return value


async def validate(session: Session, rtype: str, rid: str | None, request: ValidateRequest) -> list[Issue]:
    """Every issue found; ``[All OK]`` when there is none. Raises only for a malformed request."""
    if request.mode == "delete":
        if rid is None:
            raise BadRequest("mode: delete checks an existing resource: call /{type}/{id}/$validate",
                             expression=["mode"])
        try:
            await read(session, rtype, rid)
        except HubError as error:  # not found, deleted, or hidden from this caller: all "nothing to delete"
            return [Issue(error.code, f"{rtype}/{rid}: {error.diagnostics}", (f"{rtype}/{rid}",))]
        return [_ALL_OK] if request.resource is None else check(rtype, rid, request) or [_ALL_OK]
    return check(rtype, rid, request) or [_ALL_OK]


def check(rtype: str, rid: str | None, request: ValidateRequest) -> list[Issue]:
    """The verdict on ``request.resource`` without the store: the structural passes, then every rule of
    ``profiles.validation``. Public so that HL7's validator test cases run exactly what ``$validate`` runs
    (``tests/profiles/test_validator_suite.py``)."""
    resource = request.resource
    assert resource is not None
    try:
        check_structure(resource, expected_type=rtype)
    except HubError as error:  # the base rules assume a structurally valid resource: nothing more to say
        return list(error.issues)
    issues = []
    if request.mode == "update":
        rid_given = resource.get("id")
        if rid_given is None:
            issues.append(Issue("required", f"{rtype}.id: an update needs the resource's id", (f"{rtype}.id",)))
        elif rid is not None and rid_given != rid:
            issues.append(Issue("invalid", f"{rtype}.id: {str(rid_given)[:64]!r} is not the id in the URL "
                                f"({rid})", (f"{rtype}.id",)))
    return issues + [hub_issue(i) for i in validate_base(resource, profile=request.profile)]
