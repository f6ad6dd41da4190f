"""A person's risk score on a given day, with the rules that gave it and the data each rule read.

Pure and given the day: the same facts score differently on a 60th birthday or once a pregnancy is past, and
``next_change`` says when that happens so that the hub can re-prioritise a person's pending work without new
data. The explanation (the hits and their evidence) is what ``Patient/{id}/$risk`` shows to say why a person
ranks where they do.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from profiles.risk.facts import PersonFacts, Span
from profiles.risk.rules import Criterion, Rule, Rules


@dataclass(frozen=True, slots=True)
class Evidence:
    kind: str  # "age", "icd10" or "household"
    value: str  # the birthDate, code or household statement as sent
    reference: str | None  # the resource it was read from, where it has an id
    note: str  # in words, for a person reading the explanation


@dataclass(frozen=True, slots=True)
class Hit:
    rule: Rule
    evidence: tuple[Evidence, ...]


@dataclass(frozen=True, slots=True)
class Assessment:
    score: int
    tier: str
    hits: tuple[Hit, ...]
    version: str  # of the rules that scored
    on: date


def birthday(born: date, years: int) -> date:
    """The day someone born on ``born`` turns ``years``; a 29 February birthday falls on 1 March in other years
    (the day they are past 28 February of their birth date's year plus ``years``)."""
    try:
        return born.replace(year=born.year + years)
    except ValueError:
        return date(born.year + years, 3, 1)


def _age_tests(c: Criterion, birth: Span) -> Iterable[tuple[date, bool]]:
    """For each age test, the day it flips and whether it holds from then on. A partial birth date holds the
    test only where it holds for every day the person may have been born: at least 60 from the 60th birthday
    of the latest such day, under 6 until the 6th birthday of the earliest."""
    if c.age_at_least is not None:
        yield birthday(birth.latest, c.age_at_least), True
    if c.age_under is not None:
        yield birthday(birth.earliest, c.age_under), False


def _age(facts: PersonFacts, c: Criterion, today: date) -> list[Evidence] | None:
    if c.age_at_least is None and c.age_under is None:
        return []
    if facts.birth is None:
        return None
    if any((today >= flip) != holds_after for flip, holds_after in _age_tests(c, facts.birth)):
        return None
    bounds = [f"at least {c.age_at_least}"] if c.age_at_least is not None else []
    bounds += [f"under {c.age_under}"] if c.age_under is not None else []
    return [Evidence("age", facts.birth.text, facts.birth_reference,
                     f"born {facts.birth.text}: {' and '.join(bounds)} on {today.isoformat()}")]


def _current(facts: PersonFacts, c: Criterion, today: date) -> list[Evidence] | None:
    if not c.icd10:
        return []
    found = []
    for d in facts.diagnoses:
        if not any(r.holds(d.key) for r in c.icd10):
            continue
        if c.current_within_days is not None:
            if d.dated is None and not d.active:
                continue
            if d.dated is not None and (today - d.dated.earliest).days > c.current_within_days:
                continue
        when = f", dated {d.dated.text}" if d.dated else ""
        found.append(Evidence("icd10", d.code, d.reference, f"ICD-10 {d.code} in {', '.join(c.icd10_text)}{when}"))
    return found or None


def _household(facts: PersonFacts, c: Criterion) -> list[Evidence] | None:
    if not c.lives_alone:
        return []
    h = facts.household
    if h is None or not h.alone:
        return None
    when = f" ({h.dated.text})" if h.dated else ""
    return [Evidence("household", h.evidence, h.reference, f"lives alone: {h.evidence}{when}")]


def _hit(facts: PersonFacts, rule: Rule, today: date) -> Hit | None:
    found: list[Evidence] = []
    for part in (_age(facts, rule.criterion, today), _current(facts, rule.criterion, today),
                 _household(facts, rule.criterion)):
        if part is None:
            return None
        found.extend(part)
    return Hit(rule, tuple(found))


def assess(facts: PersonFacts, rules: Rules, today: date) -> Assessment:
    """The score on ``today``: the sum of the weights of the rules that hold (each once, whatever number of
    codes it found), and the tier it reaches."""
    hits = tuple(h for rule in rules.rules if (h := _hit(facts, rule, today)) is not None)
    score = sum(h.rule.weight for h in hits)
    return Assessment(score=score, tier=rules.tier(score), hits=hits, version=rules.version, on=today)


def priority(assessment: Assessment) -> int:
    """The queue priority, higher first: the score itself. The tiers are thresholds of the score, so ordering
    by score orders by tier first and, within a tier, the person with more risks first; the queue depends on
    this function only, so a change of scale later touches one place."""
    return assessment.score


def next_change(facts: PersonFacts, rules: Rules, today: date) -> date | None:
    """The next day after ``today`` on which the score changes with no new data, None if it never does: a
    birthday that starts or ends an age rule (the 60th, the 6th), or the day a dated pregnancy stops counting.
    Rules only change on those days, so trying them in order finds the first real change exactly."""
    days: set[date] = set()
    for rule in rules.rules:
        c = rule.criterion
        if facts.birth is not None:
            days.update(flip for flip, _ in _age_tests(c, facts.birth))
        if c.current_within_days is not None:
            days.update(d.dated.earliest + timedelta(days=c.current_within_days + 1)
                        for d in facts.diagnoses if d.dated is not None and any(r.holds(d.key) for r in c.icd10))
    score = assess(facts, rules, today).score
    return next((day for day in sorted(d for d in days if d > today) if assess(facts, rules, day).score != score),
                None)
