"""The International Patient Summary's sections as data (``sections.json``): which resources each section
holds and how they are told apart by status, and the words its narratives use in Vietnamese and English.

Data rather than code because the filters are clinical decisions that get amended (a status let in, a code
added to pregnancy) and must be readable beside HAPI FHIR's and the IPS IG's. The file is checked when it
loads: a misspelt rule would silently let entered-in-error records into a clinician's summary, so an unknown
key or a rule with neither ``in`` nor ``not`` is a ValueError naming the section.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, TypeVar

from profiles.validation.city import HUB_PROFILE_BASE

LANGUAGES = ("vi", "en")  # the first is the default
# what a summary claims (profiles/city): the IPS IG's Bundle and Composition rules the hub's validator checks
IPS_BUNDLE = HUB_PROFILE_BASE + "ips-bundle"
IPS_COMPOSITION = HUB_PROFILE_BASE + "ips-composition"
_RULE_KEYS = {"element", "system", "in", "not"}
R = TypeVar("R", bound=Mapping[str, Any])


@dataclass(frozen=True, slots=True)
class Rule:
    element: str
    system: str | None
    among: frozenset[str] | None  # ``in``: one of these codes must be there
    never: frozenset[str]  # ``not``: none of these may be

    def holds(self, resource: Mapping[str, Any]) -> bool:
        codes = _codes(resource.get(self.element), self.system)
        if self.among is not None and self.among.isdisjoint(codes):
            return False
        return self.never.isdisjoint(codes)


@dataclass(frozen=True, slots=True)
class Source:
    rtype: str
    where: tuple[Rule, ...]

    def accepts(self, resource: Mapping[str, Any]) -> bool:
        return resource.get("resourceType") == self.rtype and all(rule.holds(resource) for rule in self.where)


@dataclass(frozen=True, slots=True)
class Section:
    key: str
    loinc: str
    display: str
    required: bool  # always present, with an emptyReason when nothing is known
    title: Mapping[str, str]
    empty: Mapping[str, str]  # the narrative of an empty required section
    sources: tuple[Source, ...]

    def accepts(self, resource: Mapping[str, Any]) -> bool:
        return any(source.accepts(resource) for source in self.sources)


@dataclass(frozen=True, slots=True)
class IpsRules:
    version: str
    sections: tuple[Section, ...]
    empty_reason: Mapping[str, Any]
    document: Mapping[str, Any]
    columns: Mapping[str, Mapping[str, tuple[str, ...]]]  # per type: name/status/date/detail element paths
    headings: Mapping[str, Mapping[str, str]]
    words: Mapping[str, Mapping[str, str]]  # status codes in words, per language
    summary_line: Mapping[str, str]

    @property
    def source_types(self) -> tuple[str, ...]:
        """Every type a section draws from, once, in section order."""
        return tuple(dict.fromkeys(s.rtype for section in self.sections for s in section.sources))


def codes_of(value: Any, system: str | None) -> frozenset[str]:
    """The codes in an element: a code, a Coding, a CodeableConcept or a list of them (``system``: only its
    codings; a bare code has no system and is read whatever the rule's system)."""
    return frozenset(_codes(value, system))


def _codes(value: Any, system: str | None) -> list[str]:
    """``codes_of`` as a list, without recursion (measured: a frozenset per level was a sixth of a summary)."""
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, bool):
            found.append("true" if item else "false")
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            if "coding" in item:
                stack.append(item["coding"])
            elif isinstance(code := item.get("code"), str) and (system is None or item.get("system") == system):
                found.append(code)
    return found


def _rule(raw: Mapping[str, Any], where: str) -> Rule:
    unknown = set(raw) - _RULE_KEYS
    if unknown or "element" not in raw or ("in" not in raw and "not" not in raw):
        raise ValueError(f"{where}: a rule needs 'element' and 'in' or 'not' (unknown keys: {sorted(unknown)})")
    return Rule(raw["element"], raw.get("system"), frozenset(raw["in"]) if "in" in raw else None,
                frozenset(raw.get("not", ())))


def _words(raw: Mapping[str, str], where: str) -> Mapping[str, str]:
    missing = [lang for lang in LANGUAGES if not raw.get(lang)]
    if missing:
        raise ValueError(f"{where}: no text in {', '.join(missing)}")
    return dict(raw)


def _section(raw: Mapping[str, Any]) -> Section:
    key = raw.get("key", "?")
    sources = tuple(Source(s["type"], tuple(_rule(r, f"section {key}, {s['type']}") for r in s.get("where", ())))
                    for s in raw["sources"])
    if not sources:
        raise ValueError(f"section {key}: draws from no resource type")
    required = bool(raw["required"])
    empty = _words(raw["empty"], f"section {key}: empty") if required else {}
    return Section(key, raw["loinc"], raw["display"], required, _words(raw["title"], f"section {key}: title"),
                   empty, sources)


def load(text: str) -> IpsRules:
    raw = json.loads(text)
    columns = {rtype: {k: tuple(v) for k, v in spec.items()} for rtype, spec in raw["columns"].items()}
    sections = tuple(_section(s) for s in raw["sections"])
    rules = IpsRules(raw["version"], sections, raw["empty_reason"], raw["document"], columns,
                     {k: _words(v, f"heading {k}") for k, v in raw["headings"].items()},
                     {k: _words(v, f"word {k}") for k, v in raw["words"].items()},
                     _words(raw["summary_line"], "summary_line"))
    uncovered = [t for t in rules.source_types if t not in columns]
    if uncovered:
        raise ValueError(f"columns: no narrative columns for {', '.join(uncovered)}")
    return rules


@cache
def default_rules() -> IpsRules:
    return load(resources.files(__package__).joinpath("sections.json").read_text(encoding="utf-8"))


def sorted_into(rules: IpsRules, found: Iterable[R]) -> dict[str, list[R]]:
    """Each section's resources among ``found`` (by section key, in ``found``'s order). Each resource is
    judged only by the sections drawing from its type (measured: judging it by all eleven was a third of a
    500-resource summary)."""
    by_type: dict[str, list[tuple[str, Source]]] = {}
    for section in rules.sections:
        for source in section.sources:
            by_type.setdefault(source.rtype, []).append((section.key, source))
    placed: dict[str, list[R]] = {section.key: [] for section in rules.sections}
    for resource in found:
        for key, source in by_type.get(resource.get("resourceType", ""), ()):
            if all(rule.holds(resource) for rule in source.where) and (not placed[key] or placed[key][-1] is not
                                                                         resource):
                placed[key].append(resource)
    return placed
