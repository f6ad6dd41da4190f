"""The risk rules of issue 18 (``rules.json``), loaded and checked once.

Why a check of our own rather than trusting the file: the rules are data meant to be amended by decision (a
new group, another weight), and a typo there would silently rank a city's backlog wrong. So every field is
checked when the file loads, and a bad one is a ValueError that names the rule and the field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from profiles.icd10 import CodeRange

TIERS = ("high", "medium", "low")  # best first
_CRITERIA = {"age_at_least", "age_under", "icd10", "current_within_days", "lives_alone"}


@dataclass(frozen=True, slots=True)
class Criterion:
    """What must hold for a rule, every test it names at once (None: the test is not part of the rule)."""

    age_at_least: int | None = None
    age_under: int | None = None
    icd10: tuple[CodeRange, ...] = ()
    icd10_text: tuple[str, ...] = ()  # the ranges as the file writes them, for the explanation
    current_within_days: int | None = None
    lives_alone: bool = False


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    label_vi: str
    label_en: str
    weight: int
    source: str
    criterion: Criterion


@dataclass(frozen=True, slots=True)
class Rules:
    version: str
    tiers: tuple[tuple[str, int], ...]  # (tier, lowest score), best first
    icd10_systems: frozenset[str]
    lives_alone_findings: frozenset[str]  # system|code
    household_size: str  # system|code
    rules: tuple[Rule, ...]

    def tier(self, score: int) -> str:
        return next(name for name, least in self.tiers if score >= least)


class _Where:
    """Names where a value sits in the file, so that every error says which rule and which field."""

    def __init__(self, place: str) -> None:
        self.place = place

    def fail(self, field: str, problem: str) -> ValueError:
        return ValueError(f"risk rules: {self.place}: {field} {problem}")

    def get(self, data: Mapping[str, Any], field: str, kind: type | tuple[type, ...]) -> Any:
        if field not in data:
            raise self.fail(field, "is missing")
        value = data[field]
        if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
            raise self.fail(field, f"must be {getattr(kind, '__name__', 'of another type')}, not {value!r}")
        if isinstance(value, str) and not value.strip():
            raise self.fail(field, "is empty")
        return value

    def count(self, data: Mapping[str, Any], field: str, *, least: int) -> int:
        value: int = self.get(data, field, int)
        if value < least:
            raise self.fail(field, f"must be at least {least}, not {value}")
        return value


def _criterion(data: Mapping[str, Any], where: _Where) -> Criterion:
    unknown = set(data) - _CRITERIA
    if unknown or not data:
        raise where.fail("criterion", f"names no test or unknown ones {sorted(unknown)} (known: {sorted(_CRITERIA)})")
    ages = {k: where.count(data, k, least=0) for k in ("age_at_least", "age_under") if k in data}
    texts: list[Any] = where.get(data, "icd10", list) if "icd10" in data else []
    if "icd10" in data and not texts:
        raise where.fail("criterion.icd10", "is empty")
    ranges = []
    for text in texts:
        try:
            ranges.append(CodeRange.parse(text if isinstance(text, str) else ""))
        except ValueError as error:
            raise where.fail("criterion.icd10", f"has {text!r}: {error}") from None
    within = where.count(data, "current_within_days", least=1) if "current_within_days" in data else None
    if within is not None and not ranges:
        raise where.fail("criterion.current_within_days", "needs icd10 codes to date")
    if "lives_alone" in data and where.get(data, "lives_alone", bool) is not True:
        raise where.fail("criterion.lives_alone", "can only be true")
    return Criterion(age_at_least=ages.get("age_at_least"), age_under=ages.get("age_under"), icd10=tuple(ranges),
                     icd10_text=tuple(texts), current_within_days=within, lives_alone="lives_alone" in data)


def _rule(data: Any, index: int) -> Rule:
    if not isinstance(data, dict):
        raise _Where(f"rule {index}").fail("rule", "must be an object")
    where = _Where(f"rule {data.get('id', index)!r}")
    rule_id: str = where.get(data, "id", str)
    label: dict[str, Any] = where.get(data, "label", dict)
    label_where = _Where(f"rule {rule_id!r} label")
    return Rule(id=rule_id, label_vi=label_where.get(label, "vi", str), label_en=label_where.get(label, "en", str),
                weight=where.count(data, "weight", least=1), source=where.get(data, "source", str),
                criterion=_criterion(where.get(data, "criterion", dict), where))


def _tiers(data: Mapping[str, Any]) -> tuple[tuple[str, int], ...]:
    where = _Where("tiers")
    if set(data) != set(TIERS):
        raise where.fail("tiers", f"must name exactly {list(TIERS)}, not {sorted(data)}")
    tiers = tuple((name, where.count(data, name, least=0)) for name in TIERS)
    if [least for _, least in tiers] != sorted({least for _, least in tiers}, reverse=True) or tiers[-1][1] != 0:
        raise where.fail("tiers", f"must fall strictly from high to low, and low must be 0: {dict(tiers)}")
    return tiers


def _coding(text: Any, where: _Where, field: str) -> str:
    if not isinstance(text, str) or text.count("|") != 1 or not all(text.split("|")):
        raise where.fail(field, f"must be 'system|code', not {text!r}")
    return text


def rules_from(data: Any) -> Rules:
    """The rules of a parsed ``rules.json``; a ValueError naming the rule and field for anything malformed."""
    top = _Where("file")
    if not isinstance(data, dict):
        raise top.fail("the file", "must be a JSON object")
    rules = tuple(_rule(rule, index) for index, rule in enumerate(top.get(data, "rules", list)))
    ids = [rule.id for rule in rules]
    if duplicates := sorted({i for i in ids if ids.count(i) > 1}):
        raise top.fail("rules", f"repeat the ids {duplicates}")
    icd10 = _Where("icd10")
    systems: list[Any] = icd10.get(top.get(data, "icd10", dict), "systems", list)
    if not systems or not all(isinstance(s, str) and s for s in systems):
        raise icd10.fail("systems", f"must be a list of system URIs, not {systems!r}")
    alone_where = _Where("living_alone")
    alone: dict[str, Any] = top.get(data, "living_alone", dict)
    findings = frozenset(_coding(f, alone_where, "findings") for f in alone_where.get(alone, "findings", list))
    return Rules(version=top.get(data, "version", str), tiers=_tiers(top.get(data, "tiers", dict)),
                 icd10_systems=frozenset(systems), lives_alone_findings=findings,
                 household_size=_coding(alone_where.get(alone, "household_size", str), alone_where, "household_size"),
                 rules=rules)


@cache
def default_rules() -> Rules:
    """The rules shipped beside this module, read through importlib.resources so that they load from a wheel."""
    text = (resources.files("profiles") / "risk" / "rules.json").read_text(encoding="utf-8")
    return rules_from(json.loads(text))
