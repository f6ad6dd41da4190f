"""What an access decision may know about a resource without reading it: extracted once, when it is stored.

A consent decides on a resource by who wrote it, whose compartment it is in, its security labels, the codes
it carries and when its clinical event happened (``Consent.provision.securityLabel``, ``.code``,
``.dataPeriod``). Searches must narrow thousands of matches by those facts before counting them (an honest
``total``), so the facts are kept beside each version in the store (``StoredVersion``) and read with it,
never recomputed from the JSON at decision time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fhir_hub.search.normalize import date_range

FACILITY_SYSTEM = "http://fhir.hl7.org.vn/core/sid/ma-cskcb"  # the MoH facility code (MA_CSKCB)

_END_OF_TIME = 2**62
_MAX_CODES = 64  # a Claim or an ExplanationOfBenefit can carry hundreds; a consent names diagnoses and tests

# The element that says when a resource's clinical event happened, in the order they are tried. Consent's
# dataPeriod bounds "the data controlled by this rule" by this time; a resource with none of them falls
# outside every data period.
_WHEN = ("effectiveDateTime", "effectiveInstant", "effectivePeriod", "onsetDateTime", "onsetPeriod",
         "performedDateTime", "performedPeriod", "occurrenceDateTime", "occurrencePeriod", "period",
         "recordedDate", "authoredOn", "issued", "dateAsserted", "date", "created", "recorded", "birthDate")


def security_labels(resource: dict[str, Any]) -> frozenset[str]:
    """``meta.security`` as ``system|code``."""
    meta = resource.get("meta")
    labels = meta.get("security") if isinstance(meta, dict) else None
    return frozenset(f"{c.get('system', '')}|{c['code']}" for c in labels or ()
                     if isinstance(c, dict) and isinstance(c.get("code"), str))


def codes(resource: dict[str, Any]) -> tuple[str, ...]:
    """Every ``system|code`` of a Coding anywhere in the resource (``provision.code``: "if this code is found
    in an instance, the rule applies"), meta and contained resources' codings included, at most _MAX_CODES."""
    found: dict[str, None] = {}
    for coding in _codings(resource):
        found[f"{coding.get('system', '')}|{coding['code']}"] = None
        if len(found) == _MAX_CODES:
            break
    return tuple(found)


def _codings(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if isinstance(node.get("code"), str) and ("system" in node or "display" in node):
            yield node
        for name, value in node.items():
            if name != "meta" and isinstance(value, dict | list):
                yield from _codings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _codings(item)


def clinical_time(resource: dict[str, Any]) -> tuple[int, int] | None:
    """[first, last] microsecond of the resource's clinical event, at its precision; None without one. An
    open-ended period runs from the beginning or to the end of time (an ongoing stay is inside every later
    data period)."""
    for name in _WHEN:
        value = resource.get(name)
        if isinstance(value, str):
            found = date_range(value)
        elif isinstance(value, dict):
            start, end = value.get("start"), value.get("end")
            low = date_range(start) if isinstance(start, str) else None
            high = date_range(end) if isinstance(end, str) else None
            found = (low[0] if low else -_END_OF_TIME, high[1] if high else _END_OF_TIME) if low or high else None
        else:
            continue
        if found is not None:
            return found
    return None


def addressee(rtype: str, resource: dict[str, Any], source: str | None) -> str | None:
    """The facility a resident addressed this resource to: the owner of a correction request (a ``Task``) a
    resident wrote, whose ``owner`` the hub set to the facility that created the record to correct
    (``store/correction_requests.py``). Addressing it is the resident's own act, so that facility reads it
    as its own record (``consent/engine.py``). Only a resident's Task counts: a facility naming another as
    a Task's owner does not disclose a resident's record to it."""
    if rtype != "Task" or source is None or ":resident:" not in source:
        return None
    owner = resource.get("owner")
    identifier = owner.get("identifier") if isinstance(owner, dict) else None
    if isinstance(identifier, dict) and identifier.get("system") == FACILITY_SYSTEM:
        value = identifier.get("value")
        return value if isinstance(value, str) else None
    return None
