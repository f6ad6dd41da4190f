"""A FHIR R4 ``Consent`` as the decision engine reads it: the person's privacy rules, as a tree of provisions.

Only privacy consents decide access (``scope`` ``patient-privacy``); treatment, research and advance-directive
consents are records like any other. Parsing is strict about what it reads, so a consent the hub cannot
understand is refused on write (``problems``) instead of being half-applied on read: a rule misread as
broader than the resident meant is a leak, one misread as narrower a refusal to treat.

Pure: no FastAPI, no pymongo, no hub imports.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

PRIVACY_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope|patient-privacy"
RESOURCE_TYPES = "http://hl7.org/fhir/resource-types"
FACILITY_SYSTEM = "http://fhir.hl7.org.vn/core/sid/ma-cskcb"  # the hub's facility-code (MA_CSKCB) system
FACILITY_SYSTEMS = frozenset({FACILITY_SYSTEM})
ACTIVE = "active"
# Reading a resource is "access" (R4 consentaction); a provision naming only collect or correct says nothing
# about reads.
READ_ACTIONS = frozenset({"access", "use", "disclose"})
_END_OF_TIME = 2**62

_DATE = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?"
                   r"(Z|[+-]\d{2}:\d{2})?)?)?)?")


class ConsentProblem(ValueError):
    """A consent the hub cannot apply as written; ``expression`` names the element."""

    def __init__(self, message: str, expression: str) -> None:
        super().__init__(message)
        self.expression = expression


@dataclass(frozen=True, slots=True)
class Actor:
    """Who a provision is about: ``reference`` (``Organization/x``, ``Practitioner/y``...) or a facility by its
    MoH code (a logical reference with the facility-code identifier system)."""

    reference: str | None = None
    facility: str | None = None


@dataclass(frozen=True, slots=True)
class Period:
    start: int = -_END_OF_TIME  # microseconds since the epoch, inclusive (an open start: since ever, 1900 included)
    end: int = _END_OF_TIME

    def contains(self, moment: int) -> bool:
        return self.start <= moment <= self.end

    def overlaps(self, low: int, high: int) -> bool:
        return low <= self.end and self.start <= high

    def holds(self, low: int, high: int) -> bool:
        return self.start <= low and high <= self.end


@dataclass(frozen=True, slots=True)
class Provision:
    """One rule: it applies to a read when every criterion it states matches (a criterion left out matches
    anything); ``kind`` is permit or deny (None on a root that leaves it to the policy rule)."""

    kind: str | None
    path: str  # FHIRPath of this provision in its Consent, for explanations
    period: Period | None = None
    actors: tuple[Actor, ...] = ()
    actions: frozenset[str] = frozenset()
    purposes: frozenset[str] = frozenset()
    classes: frozenset[str] = frozenset()  # resource types
    codes: frozenset[str] = frozenset()  # system|code
    labels: frozenset[str] = frozenset()  # security labels, system|code
    data_period: Period | None = None
    data: frozenset[str] = frozenset()  # Type/id of resources named
    provisions: tuple[Provision, ...] = ()


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    key: str  # Consent/id
    status: str
    patient: str | None  # the Patient id the consent is about
    privacy: bool  # scope patient-privacy: the only consents that decide access
    root: Provision
    performers: tuple[str, ...] = ()  # references of who gave it, as written
    # who agreed, as the hub recorded it on write (``Consent.verification``: the resident's Patient, a
    # guardian's RelatedPerson): the engine asks whether they are who the person's age requires
    agreed_by: frozenset[str] = frozenset()

    @property
    def active(self) -> bool:
        return self.status == ACTIVE and self.privacy


def parse_consent(resource: dict[str, Any]) -> ConsentRecord:
    """Raises ``ConsentProblem`` naming the element the hub cannot apply."""
    rid = resource.get("id", "")
    scope = resource.get("scope") or {}
    privacy = any(f"{c.get('system')}|{c.get('code')}" == PRIVACY_SCOPE for c in scope.get("coding") or ())
    patient_ref = (resource.get("patient") or {}).get("reference")
    patient = None
    if isinstance(patient_ref, str):
        rtype, _, pid = patient_ref.rpartition("/")
        if rtype.rsplit("/", 1)[-1] != "Patient" or not pid:
            raise ConsentProblem("Consent.patient must reference a Patient", "Consent.patient")
        patient = pid
    elif privacy:
        raise ConsentProblem("a privacy consent must name its Patient (Consent.patient)", "Consent.patient")
    root_kind = (resource.get("provision") or {}).get("type") or _policy_rule_kind(resource)
    root = _provision(resource.get("provision") or {}, "Consent.provision", root_kind, root=True)
    performers = tuple(p["reference"] for p in resource.get("performer") or ()
                       if isinstance(p, dict) and isinstance(p.get("reference"), str))
    agreed = frozenset(v["verifiedWith"]["reference"] for v in resource.get("verification") or ()
                       if isinstance(v, dict) and v.get("verified") is True
                       and isinstance((v.get("verifiedWith") or {}).get("reference"), str))
    return ConsentRecord(f"Consent/{rid}", str(resource.get("status", "")), patient, privacy, root, performers,
                         agreed)


def _policy_rule_kind(resource: dict[str, Any]) -> str | None:
    """A root without ``type`` takes it from ``policyRule``: opt-in (OPTIN, OPTINR) permits, opt-out denies."""
    for coding in (resource.get("policyRule") or {}).get("coding") or ():
        code = coding.get("code")
        if code in ("OPTIN", "OPTINR"):
            return "permit"
        if code in ("OPTOUT", "OPTOUTE"):
            return "deny"
    return None


def _provision(node: dict[str, Any], path: str, kind: str | None, *, root: bool = False) -> Provision:
    if not isinstance(node, dict):
        raise ConsentProblem("a provision must be an object", path)
    if kind not in (None, "permit", "deny"):
        raise ConsentProblem(f"provision type must be permit or deny, not {kind!r}", f"{path}.type")
    if not root and kind is None:
        raise ConsentProblem("a nested provision must say permit or deny", f"{path}.type")
    children = tuple(_provision(child, f"{path}.provision[{i}]", (child or {}).get("type"))
                     for i, child in enumerate(node.get("provision") or ()))
    return Provision(
        kind=kind, path=path,
        period=_period(node.get("period"), f"{path}.period"),
        actors=tuple(_actor(a, f"{path}.actor[{i}]") for i, a in enumerate(node.get("actor") or ())),
        actions=frozenset(str(c.get("code")) for cc in node.get("action") or () for c in _codings(cc)),
        purposes=frozenset(str(c.get("code")) for c in node.get("purpose") or () if isinstance(c, dict)),
        classes=frozenset(_class(c, f"{path}.class") for c in node.get("class") or ()),
        codes=frozenset(f"{c.get('system', '')}|{c.get('code')}" for cc in node.get("code") or ()
                        for c in _codings(cc)),
        labels=frozenset(f"{c.get('system', '')}|{c.get('code')}" for c in node.get("securityLabel") or ()
                         if isinstance(c, dict)),
        data_period=_period(node.get("dataPeriod"), f"{path}.dataPeriod"),
        data=frozenset(_reference(d.get("reference"), f"{path}.data") for d in node.get("data") or ()),
        provisions=children,
    )


def _codings(concept: Any) -> Iterator[dict[str, Any]]:
    if isinstance(concept, dict):
        yield from (c for c in concept.get("coding") or () if isinstance(c, dict))


def _class(coding: Any, path: str) -> str:
    if not isinstance(coding, dict) or coding.get("system") != RESOURCE_TYPES or not coding.get("code"):
        raise ConsentProblem(f"provision class must be a resource type ({RESOURCE_TYPES})", path)
    return str(coding["code"])


def _actor(actor: Any, path: str) -> Actor:
    ref = (actor or {}).get("reference") or {}
    identifier = ref.get("identifier") or {}
    if isinstance(ref.get("reference"), str):
        return Actor(reference=ref["reference"])
    if identifier.get("system") in FACILITY_SYSTEMS and isinstance(identifier.get("value"), str):
        return Actor(facility=identifier["value"])
    raise ConsentProblem("an actor must reference an Organization, Practitioner or PractitionerRole, or name a "
                         f"facility by its code (identifier system {FACILITY_SYSTEM})",
                         f"{path}.reference")


def _reference(value: Any, path: str) -> str:
    if not isinstance(value, dict) or not isinstance(value.get("reference"), str):
        raise ConsentProblem("provision data must reference a resource", f"{path}.reference")
    return "/".join(value["reference"].split("/")[-2:])


def _period(value: Any, path: str) -> Period | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConsentProblem("a period must be an object", path)
    start, end = value.get("start"), value.get("end")
    return Period(moment(start, path + ".start", upper=False) if start else -_END_OF_TIME,
                  moment(end, path + ".end", upper=True) if end else _END_OF_TIME)


def moment(text: str, path: str = "", *, upper: bool = False) -> int:
    """A FHIR date or dateTime as microseconds: its first instant, or its last with ``upper`` (a period that
    ends on 2026-12-31 includes that whole day). Dates without a zone are taken as Vietnam time (+07:00)."""
    match = _DATE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ConsentProblem(f"{text!r} is not a FHIR date or dateTime", path)
    year, month, day, hour, minute, second, zone = match.groups()
    parts = [int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0), int(second or 0)]
    start = datetime(parts[0], parts[1], parts[2], parts[3], parts[4], parts[5], tzinfo=UTC)
    offset = 7 * 3600 if zone is None else 0 if zone == "Z" else (
        (1 if zone[0] == "+" else -1) * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60))
    first = int(start.timestamp()) * 1_000_000 - offset * 1_000_000
    if not upper:
        return first
    if second is not None or minute is not None:
        span = 1 if second is not None else 60
    elif day is not None:
        span = 86_400
    elif month is not None:
        next_month = datetime(int(year) + int(month) // 12, int(month) % 12 + 1, 1, tzinfo=UTC)
        span = int((next_month - start).total_seconds())
    else:
        span = int((datetime(int(year) + 1, 1, 1, tzinfo=UTC) - start).total_seconds())
    return first + span * 1_000_000 - 1
