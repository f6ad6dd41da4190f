"""Structural validation of one resource against the R4B models, with errors that name the element.

Two passes. The R4B pydantic model checks elements, cardinality and primitive formats. Then a walk over
the JSON beside the validated model checks what pydantic's lax mode lets through but FHIR JSON forbids:
``"active": "yes"`` for a boolean, a number sent as a string, ``null`` outside primitive arrays, empty
objects and arrays. Then the base specification's rules that the models do not know, required bindings
and invariants (``profiles.validation``), and the city profile the resource claims (``meta.profile``) where
that profile is enforced ``reject``: a resource breaking one is a 422, as R4 http.html#update says
for a resource that "violated applicable FHIR profiles or server business rules".

Errors are reported as FHIRPath-like element paths (``Patient.name[0].given``) so an integrator can find
the offending element without reading Python tracebacks. A body that cannot be read as the resource
(unknown element, wrong JSON type, bad date) is a 400; one that parses but lacks a required element is a
422, as the spec separates "could not be parsed" from "violated the resource's definition".
"""

from __future__ import annotations

import re
from decimal import Decimal
from functools import cache
from typing import Any

from fhir_core.fhirabstractmodel import FHIRAbstractModel
from pydantic import ValidationError

from fhir_hub.errors import HubError, InvalidResource, Issue, UnprocessableResource
from fhir_hub.fhir.registry import is_resource_type, is_validatable_type, model_class
from profiles.validation import ValidationIssue, write_errors, write_warnings

_MAX_ISSUES = 20
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NESTED_TYPE = re.compile(r"'R4\.(?P<name>\w+)Type'")


def validate_resource(resource: dict[str, Any], *, expected_type: str | None = None) -> str:
    """Check ``resource``; return its type. Raises a HubError describing every problem found.

    The one check every write makes (REST, Bundles, ingestion, the validation workers)."""
    rtype = check_structure(resource, expected_type=expected_type)
    if not is_resource_type(rtype):  # a Parameters: validated by ``$validate``, never stored
        raise InvalidResource(f"resourceType: {rtype!r} resources are not stored by this server",
                              expression=["resourceType"], code="not-supported")
    errors = write_errors(resource)
    if errors:
        issues = [hub_issue(i) for i in errors[:_MAX_ISSUES]]
        raise UnprocessableResource(_summary(issues), issues=issues)
    return rtype


def accepted_with_warnings(resource: dict[str, Any]) -> list[Issue]:
    """What a write accepted but the client should hear: a claimed city profile enforced ``warn`` broken."""
    return [hub_issue(i) for i in write_warnings(resource)[:_MAX_ISSUES]]


def hub_issue(issue: ValidationIssue) -> Issue:
    return Issue(issue.code, issue.message, (issue.expression,), issue.severity)


def check_structure(resource: dict[str, Any], *, expected_type: str | None = None) -> str:
    """The structural passes alone (``$validate`` lists the base rules' issues itself, warnings too)."""
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str) or not rtype:
        raise InvalidResource("resourceType: the element is missing; a FHIR resource must name its type",
                              expression=["resourceType"])
    if expected_type is not None and rtype != expected_type:
        raise InvalidResource(
            f"resourceType: the body is a {rtype!r} but the URL is for {expected_type!r}",
            expression=["resourceType"],
        )
    if not is_validatable_type(rtype):
        raise InvalidResource(f"resourceType: {rtype!r} is not a resource type this server knows",
                              expression=["resourceType"], code="not-supported")
    model = _validate_model(rtype, resource)
    issues: list[Issue] = []
    _check_json_shape(resource, model, rtype, issues)
    if issues:
        raise InvalidResource(_summary(issues), issues=issues[:_MAX_ISSUES])
    return rtype


def _validate_model(rtype: str, resource: dict[str, Any]) -> FHIRAbstractModel:
    try:
        return model_class(rtype).model_validate(resource)
    except ValidationError as exc:
        issues = [_issue_from_pydantic(rtype, err) for err in exc.errors()]
    except (KeyError, TypeError, ValueError) as exc:
        # fhir.resources raises a bare KeyError for an unknown nested resourceType.
        m = _NESTED_TYPE.search(str(exc))
        detail = f"a nested resource has the unknown resourceType {m['name']!r}" if m else str(exc)
        raise InvalidResource(f"{rtype}: {detail}", expression=[rtype]) from None
    issues = issues[:_MAX_ISSUES]
    error_class: type[HubError] = (
        UnprocessableResource if all(i.code == "required" for i in issues) else InvalidResource
    )
    raise error_class(_summary(issues), issues=issues)


def _summary(issues: list[Issue]) -> str:
    first = issues[0].diagnostics
    return first if len(issues) == 1 else f"{first} (and {len(issues) - 1} more problems)"


def element_path(rtype: str, loc: tuple[Any, ...]) -> str:
    """``('name', 0, 'given')`` -> ``Patient.name[0].given``; pydantic's internal loc parts are dropped."""
    path = rtype
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif isinstance(part, str) and "[" not in part:  # "function-after[...]" and the like are pydantic's
            name = part[:64]
            if _NAME.fullmatch(name) and name.endswith("__ext"):
                name = "_" + name[: -len("__ext")]
            path += "." + name
    return path


def _issue_from_pydantic(rtype: str, err: Any) -> Issue:
    etype: str = err.get("type", "")
    path = element_path(rtype, tuple(err.get("loc", ())))
    msg = str(err.get("msg", "")).removeprefix("Value error, ")
    if etype == "missing" or etype.endswith(".missing"):
        return Issue("required", f"{path}: a required element is missing", (path,))
    if etype == "extra_forbidden":
        return Issue("structure", f"{path}: unknown element (not defined for {rtype})", (path,))
    if etype in ("value_error", "string_pattern_mismatch") or etype.startswith(("greater", "less")):
        shown = _show(err.get("input"))
        return Issue("value", f"{path}: invalid value {shown}: {msg}", (path,))
    return Issue("structure", f"{path}: {msg}", (path,))


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@cache
def _aliases(cls: type[FHIRAbstractModel]) -> dict[str, str]:
    return {(f.alias or name): name for name, f in cls.model_fields.items()}


_NUMERIC = (bool, int, float, Decimal)


def _check_json_shape(node: dict[str, Any], model: FHIRAbstractModel, path: str, issues: list[Issue]) -> None:
    aliases = _aliases(type(model))
    for key, value in node.items():
        if key == "resourceType" or key not in aliases:
            continue
        typed = getattr(model, aliases[key], None)
        if type(value) is str and not isinstance(typed, _NUMERIC):  # the common case, checked without a path
            continue
        _check_value(value, typed, f"{path}.{key}", issues, in_array=False)


def _check_value(value: Any, typed: Any, path: str, issues: list[Issue], *, in_array: bool) -> None:
    if len(issues) >= _MAX_ISSUES:
        return
    if value is None:
        if not in_array:
            issues.append(Issue("structure", f"{path}: null is not allowed in FHIR JSON; leave the element out",
                                (path,)))
        return
    if isinstance(value, list):
        if not value:
            issues.append(Issue("structure", f"{path}: empty arrays are not allowed in FHIR JSON", (path,)))
        typed_items = typed if isinstance(typed, list) else [None] * len(value)
        for i, (item, typed_item) in enumerate(zip(value, typed_items, strict=False)):
            _check_value(item, typed_item, f"{path}[{i}]", issues, in_array=True)
        return
    if isinstance(typed, FHIRAbstractModel):
        if not isinstance(value, dict):
            issues.append(Issue("structure", f"{path}: expected a JSON object", (path,)))
        elif not value:
            issues.append(Issue("structure", f"{path}: empty objects are not allowed in FHIR JSON", (path,)))
        else:
            _check_json_shape(value, typed, path, issues)
        return
    expected = _json_kind(typed)
    if expected is not None and not _is_kind(value, expected):
        issues.append(Issue("value", f"{path}: expected a JSON {expected}, got {_show(value)}", (path,)))


def _json_kind(typed: Any) -> str | None:
    if typed is None:
        return None
    if isinstance(typed, bool):
        return "boolean (true or false)"
    if isinstance(typed, int):
        return "integer"
    if isinstance(typed, Decimal | float):
        return "number"
    if isinstance(typed, dict | FHIRAbstractModel):
        return None
    return "string"


def _is_kind(value: Any, kind: str) -> bool:
    if kind.startswith("boolean"):
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float | Decimal) and not isinstance(value, bool)
    return isinstance(value, str)
