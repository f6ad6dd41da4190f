"""Validation of a resource against the base R4 specification: required bindings and invariants.

``validate(resource)`` returns every issue (errors, warnings, information); it never raises for what is in
the resource. It assumes the structural pass (``fhir_hub.fhir.validation``: the R4B models and the JSON
shape) has run, and does not repeat cardinality or type checks. One implementation serves the write path
(errors refuse a write) and ``$validate`` (every issue is listed).

Modules: ``definitions`` (the data, loaded once), ``walk`` (the element walk), ``bindings``,
``invariants``, ``profiles`` (``meta.profile`` and the ``profile`` parameter), ``issues``; the city's
profiles: ``city`` (the data), ``structure`` and ``base`` (a differential read), ``profile`` (the check).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from profiles.validation.city import REJECT, WARN, claimed, enforcement
from profiles.validation.claims import check_claimed_profiles, check_requested_profile
from profiles.validation.issues import ERROR, INFORMATION, WARNING, ValidationIssue, errors
from profiles.validation.profile import check_profile
from profiles.validation.walk import walk

__all__ = ["ERROR", "INFORMATION", "WARNING", "ValidationIssue", "errors", "validate", "write_errors", "write_warnings"]


def validate(resource: dict[str, Any], *, profile: str | None = None) -> list[ValidationIssue]:
    """``profile``: a profile the caller asks for (``$validate``'s parameter) beside the resource's own."""
    rtype = str(resource.get("resourceType", ""))
    issues = check_claimed_profiles(resource, rtype)
    if profile is not None:
        issues += check_requested_profile(profile, rtype)
    issues += walk(resource)
    for city_profile in claimed(resource, profile):
        issues += check_profile(resource, city_profile)
    return issues


def write_errors(resource: dict[str, Any]) -> list[ValidationIssue]:
    """What refuses a write: the base's errors, and those of each city profile the resource claims that is
    enforced ``reject`` (one enforced ``warn`` does not refuse: see ``write_warnings``)."""
    return errors(walk(resource)) + _claimed_errors(resource, REJECT)


def write_warnings(resource: dict[str, Any]) -> list[ValidationIssue]:
    """What a write accepts but tells the client: the errors of each claimed city profile enforced ``warn``,
    as warnings (``$validate`` lists them as the errors they are)."""
    return [replace(i, severity=WARNING) for i in _claimed_errors(resource, WARN)]


def _claimed_errors(resource: dict[str, Any], mode: str) -> list[ValidationIssue]:
    return [i for p in claimed(resource) if enforcement(p.url) == mode for i in errors(check_profile(resource, p))]
