"""Validation of a resource against the base R4 specification: required bindings and invariants.

``validate(resource)`` returns every issue (errors, warnings, information); it never raises for what is in
the resource. It assumes the structural pass (``fhir_hub.fhir.validation``: the R4B models and the JSON
shape) has run, and does not repeat cardinality or type checks. One implementation serves the write path
(errors refuse a write) and ``$validate`` (every issue is listed).

Modules: ``definitions`` (the data, loaded once), ``walk`` (the element walk), ``bindings``,
``invariants``, ``profiles`` (``meta.profile`` and the ``profile`` parameter), ``issues``.
"""

from __future__ import annotations

from typing import Any

from profiles.validation.claims import check_claimed_profiles, check_requested_profile
from profiles.validation.issues import ERROR, INFORMATION, WARNING, ValidationIssue, errors
from profiles.validation.walk import walk

__all__ = ["ERROR", "INFORMATION", "WARNING", "ValidationIssue", "errors", "validate"]


def validate(resource: dict[str, Any], *, profile: str | None = None) -> list[ValidationIssue]:
    """``profile``: a profile the caller asks for (``$validate``'s parameter) beside the resource's own."""
    rtype = str(resource.get("resourceType", ""))
    issues = check_claimed_profiles(resource, rtype)
    if profile is not None:
        issues += check_requested_profile(profile, rtype)
    return issues + walk(resource)
