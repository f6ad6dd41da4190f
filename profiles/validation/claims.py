"""Profiles a resource claims (``meta.profile``) or a caller asks for (``$validate``'s ``profile``).

The hub ships the base definition of every type and the city's profiles (``city.py``): a claimed profile
it does not know is a warning (the resource is still checked against its base
type, and the claim is not silently taken as met); a profile asked for that it cannot check is an error,
as the answer would otherwise look like a verdict on that profile.
"""

from __future__ import annotations

from typing import Any

from profiles.validation.city import profile
from profiles.validation.definitions import known_profiles
from profiles.validation.issues import ERROR, WARNING, ValidationIssue

_BASE = "http://hl7.org/fhir/StructureDefinition/"


def _check(url: str, rtype: str) -> str | None:
    """Why the hub cannot validate against ``url``, or None when it can."""
    canonical = url.split("|", 1)[0]
    city = profile(canonical)
    if city is not None:
        return None if city.type == rtype else f"the profile {url} is for {city.type} resources, not {rtype}"
    if canonical not in known_profiles():
        return f"the profile {url} is not known to this server; checked against the base {rtype} definition only"
    if canonical != _BASE + rtype:
        return f"the profile {url} is the base definition of another type, not of {rtype}"
    return None


def check_claimed_profiles(resource: dict[str, Any], rtype: str) -> list[ValidationIssue]:
    meta = resource.get("meta")
    claimed = meta.get("profile") if isinstance(meta, dict) else None
    if not isinstance(claimed, list):
        return []
    issues = []
    for i, url in enumerate(claimed):
        why = _check(url, rtype) if isinstance(url, str) else None
        if why is not None:
            expression = f"{rtype}.meta.profile[{i}]"
            issues.append(ValidationIssue(WARNING, "not-supported", expression, f"{expression}: {why}"))
    return issues


def check_requested_profile(url: str, rtype: str) -> list[ValidationIssue]:
    why = _check(url, rtype)
    return [] if why is None else [ValidationIssue(ERROR, "not-supported", "profile", f"profile: {why}")]
