"""What the risk rules need to know about one person, read from plain FHIR R4 resources.

The facts are kept apart from the scoring so that the hub can read them once (from the person's stored record
plus an arriving payload) and score them on any day: a birthday changes the score with no new data.

Dates may be partial (a birth year only is common for the elderly in the MoH data), so a date is kept as the
span of days it may be, and the scorer counts a rule only when it holds on every one of them.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from profiles.icd10 import icd10_key
from profiles.risk.rules import Rules, default_rules

_DATE = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T.*)?)?)?")
_ENDED = {"inactive", "remission", "resolved"}  # Condition.clinicalStatus: no longer current
_ACTIVE = {"active", "recurrence", "relapse"}
_NOT_SO = {"entered-in-error", "refuted"}  # Condition.verificationStatus: never was
_VOID = {"entered-in-error", "cancelled"}  # Observation.status


@dataclass(frozen=True, slots=True)
class Span:
    """A FHIR date of any precision as the first and last day it may mean (``1956`` -> 1956-01-01..12-31)."""

    earliest: date
    latest: date
    text: str


def span(text: Any) -> Span | None:
    """The days a FHIR date or dateTime may mean; None for anything that is no date (kept out of the facts)."""
    match = _DATE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        return None
    year, month, day = (int(part) if part else None for part in match.groups())
    assert year is not None
    try:
        if month is None:
            return Span(date(year, 1, 1), date(year, 12, 31), text)
        if day is None:
            return Span(date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1]), text)
        return Span(date(year, month, day), date(year, month, day), text)
    except ValueError:  # month 13, 31 February
        return None


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """A current ICD-10 diagnosis: not resolved, in remission, refuted or entered in error."""

    key: str  # as the rules compare it (``E119``)
    code: str  # as sent (``E11.9``), for the explanation
    reference: str | None  # Condition/<id>
    dated: Span | None  # the latest of its onset, its recording and its encounter's start
    active: bool  # its clinicalStatus says so (most senders give none)


@dataclass(frozen=True, slots=True)
class Household:
    """One statement about whether the person lives alone."""

    alone: bool
    evidence: str  # the coding, and the household size where that is what was said
    reference: str | None
    dated: Span | None


@dataclass(frozen=True, slots=True)
class PersonFacts:
    birth: Span | None  # every Patient's birthDate taken together: the person is born somewhere in it
    birth_reference: str | None
    gender: str | None
    diagnoses: tuple[Diagnosis, ...]
    household: Household | None  # the latest statement; None where nothing is known


def _reference(resource: Mapping[str, Any]) -> str | None:
    rid = resource.get("id")
    return f"{resource.get('resourceType')}/{rid}" if isinstance(rid, str) else None


def _codings(concept: Any) -> Iterable[tuple[str, str]]:
    for coding in concept.get("coding") or () if isinstance(concept, dict) else ():
        if isinstance(coding, dict) and isinstance(coding.get("system"), str) and isinstance(coding.get("code"), str):
            yield coding["system"], coding["code"]


def _status(resource: Mapping[str, Any], field: str) -> str | None:
    return next((code for _, code in _codings(resource.get(field))), None)


def _latest(*spans: Span | None) -> Span | None:
    return max((s for s in spans if s is not None), key=lambda s: s.earliest, default=None)


def _period(period: Any) -> Span | None:
    return span(period.get("start")) or span(period.get("end")) if isinstance(period, dict) else None


def _start(resource: Mapping[str, Any], prefix: str) -> Span | None:
    """A resource's ``<prefix>DateTime``, else its ``<prefix>Period``."""
    return span(resource.get(f"{prefix}DateTime")) or _period(resource.get(f"{prefix}Period"))


def _diagnoses(condition: Mapping[str, Any], rules: Rules, encounters: Mapping[str, Mapping[str, Any]]
               ) -> Iterable[Diagnosis]:
    clinical = _status(condition, "clinicalStatus")
    if clinical in _ENDED or _status(condition, "verificationStatus") in _NOT_SO:
        return
    if clinical is None and any(k.startswith("abatement") for k in condition):
        return
    encounter = condition.get("encounter")
    seen = encounters.get(encounter.get("reference", "")) if isinstance(encounter, dict) else None
    dated = _latest(_start(condition, "onset"), span(condition.get("recordedDate")),
                    _period(seen.get("period")) if seen is not None else None)
    keys: dict[str, str] = {}
    for system, code in _codings(condition.get("code")):
        if system in rules.icd10_systems and (key := icd10_key(code)) is not None:
            keys.setdefault(key, code)
    for key, code in keys.items():  # once per code, however many ICD-10 systems name it, as first sent
        yield Diagnosis(key, code, _reference(condition), dated, clinical in _ACTIVE)


def _household(resource: Mapping[str, Any], rules: Rules) -> Household | None:
    kind = resource.get("resourceType")
    if kind == "Condition" and (_status(resource, "clinicalStatus") in _ENDED
                                or _status(resource, "verificationStatus") in _NOT_SO):
        return None
    if kind == "Observation" and resource.get("status") in _VOID:
        return None
    dated = _latest(_start(resource, "onset"), span(resource.get("recordedDate")), _start(resource, "effective"),
                    span(resource.get("issued")))
    codes = {f"{system}|{code}" for field in ("code", "valueCodeableConcept")
             for system, code in _codings(resource.get(field))}
    if found := sorted(codes & rules.lives_alone_findings):
        return Household(True, found[0], _reference(resource), dated)
    if kind == "Observation" and rules.household_size in codes:
        quantity = resource.get("valueQuantity")
        size = resource.get("valueInteger", quantity.get("value") if isinstance(quantity, dict) else None)
        if isinstance(size, int | float) and not isinstance(size, bool) and size >= 1:
            return Household(size == 1, f"{rules.household_size} = {size:g}", _reference(resource), dated)
    return None


def facts_from_resources(resources: Iterable[Mapping[str, Any]], rules: Rules | None = None) -> PersonFacts:
    """The facts in one person's resources (Patient, Condition, Observation; the rest is ignored). Several
    Patients (one per source, before matching merges them) widen the birth span to cover all their dates, so a
    disagreement never makes a rule hold that one of them contradicts. A Condition with no date of its own is
    dated by its Encounter (``Encounter/<id>``, or ``urn:uuid:<id>`` inside a Bundle) when that is given too."""
    rules = rules or default_rules()
    items = [r for r in resources if isinstance(r, Mapping)]
    encounters = {ref: r for r in items if r.get("resourceType") == "Encounter" and isinstance(r.get("id"), str)
                  for ref in (f"Encounter/{r['id']}", f"urn:uuid:{r['id']}")}
    patients = [r for r in items if r.get("resourceType") == "Patient"]
    births = [(s, _reference(p)) for p in patients if (s := span(p.get("birthDate"))) is not None]
    birth = Span(min(s.earliest for s, _ in births), max(s.latest for s, _ in births),
                 " / ".join(dict.fromkeys(s.text for s, _ in births))) if births else None
    gender = next((g for p in patients if isinstance(g := p.get("gender"), str)), None)
    diagnoses = tuple(d for r in items if r.get("resourceType") == "Condition"
                      for d in _diagnoses(r, rules, encounters))
    statements = [h for r in items if r.get("resourceType") in ("Condition", "Observation")
                  if (h := _household(r, rules)) is not None]
    # The latest dated statement wins; undated ones count as older than any dated one, and among equals
    # "alone" wins (the rule is there to find people who may need home care).
    household = max(statements, key=lambda h: (h.dated is not None, h.dated.earliest if h.dated else date.min, h.alone),
                    default=None)
    return PersonFacts(birth=birth, birth_reference=births[0][1] if births else None, gender=gender,
                       diagnoses=diagnoses, household=household)
