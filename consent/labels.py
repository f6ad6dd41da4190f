"""Sensitivity labels a resource must carry, from the rules kept as data in ``sensitivity.json``.

Why labels rather than a decision on codes at read time: a consent names the kind of data it opens
("my HIV care", ``provision.securityLabel``), and a search must narrow thousands of matches by what the
store keeps beside each version. So the commit pipeline decides once, on write, which kinds a resource
is (``fhir_hub/store/labelling.py``), the labels are stored in ``meta.security`` like the rest of the
content, and the consent engine reads them back from ``StoredVersion.labels``.

Two ways a resource is of a kind: it carries a code of the kind anywhere in it (an ICD-10 range, or an
exact coding such as the MoH XML adapter's table tag), or it references a resource already labelled with
the kind (an Encounter whose diagnosis is an HIV Condition). The store lookup for the second is the
caller's; everything here is pure (no FastAPI, no pymongo, no hub imports).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any, Self

from profiles import icd10
from profiles.icd10 import icd10_key as icd10_key  # read here by the labelling and its tests

_FILE = Path(__file__).with_name("sensitivity.json")
_REFERENCE = re.compile(r"([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?")

Key = str  # "Type/id"
Label = str  # "system|code"


class CodeRange(icd10.CodeRange):
    """The hub's ICD-10 range (``profiles/icd10.py``, shared with the risk rules), its errors naming this file."""

    __slots__ = ()

    @classmethod
    def parse(cls, text: str) -> Self:
        try:
            return super().parse(text)
        except ValueError as error:
            raise ValueError(f"sensitivity.json: {error}") from None


@dataclass(frozen=True, slots=True)
class Category:
    id: str
    label: Label
    display: str
    icd10: tuple[CodeRange, ...]
    codings: frozenset[str]  # system|code matched exactly, wherever the coding is (meta.tag included)


@dataclass(frozen=True)  # not slots: the derived tables below are cached on the instance
class Rules:
    version: str
    icd10_systems: frozenset[str]
    categories: tuple[Category, ...]
    not_through: frozenset[str]  # reference targets whose labels are never passed on

    @cached_property
    def labels(self) -> frozenset[Label]:
        """The labels the rules apply: the only ones passed on through references."""
        return frozenset(c.label for c in self.categories)

    def display(self, label: Label) -> str:
        return next(c.display for c in self.categories if c.label == label)

    @cached_property
    def _by_coding(self) -> dict[str, frozenset[Label]]:
        return {coding: frozenset(c.label for c in self.categories if coding in c.codings)
                for c in self.categories for coding in c.codings}

    def of_coding(self, system: str, code: str) -> frozenset[Label]:
        """The labels one coding calls for (most call for none: that case is one set look-up)."""
        found = self._by_coding.get(f"{system}|{code}", frozenset())
        if system in self.icd10_systems and (key := icd10_key(code)) is not None:
            found = found | {c.label for c in self.categories if any(r.holds(key) for r in c.icd10)}
        return found


def rules_from(data: Mapping[str, Any]) -> Rules:
    categories = tuple(
        Category(id=c["id"], label=f"{c['label']['system']}|{c['label']['code']}", display=c["label"]["display"],
                 icd10=tuple(CodeRange.parse(r) for r in c["icd10"]), codings=frozenset(c["codings"]))
        for c in data["categories"])
    return Rules(version=data["version"], icd10_systems=frozenset(data["icd10"]["systems"]), categories=categories,
                 not_through=frozenset(data["references"]["not_through"]))


@cache
def default_rules() -> Rules:
    return rules_from(json.loads(_FILE.read_text(encoding="utf-8")))


# --------------------------------------------------------------------------------------- one resource
@dataclass(frozen=True, slots=True)
class Found:
    """What the rules read in one resource, in one walk over it (measured on Synthea Encounters and
    MedicationRequests, labelling included: two recursive walks, one for codings and one for references,
    47 µs per resource; this one 23 µs, ~3% of what a transaction spends per resource)."""

    carried: frozenset[Label]  # the labels the codes it carries call for
    references: frozenset[Key]  # the resources whose labels it inherits
    own: frozenset[Label] = frozenset()  # its meta.security as written (``own_labels``)


def read(resource: Mapping[str, Any], rules: Rules) -> Found:
    """Every Coding anywhere in the resource (contained resources, extensions and ``meta.tag`` included), and
    every relative ``Type/id`` reference (a version-specific one counts as its resource) whose type the
    rules let labels pass through."""
    labels: set[Label] = set()
    keys: set[Key] = set()
    stack: list[Any] = [resource]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        code, system, reference = node.get("code"), node.get("system"), node.get("reference")
        if isinstance(code, str) and isinstance(system, str):
            labels |= rules.of_coding(system, code)
        if isinstance(reference, str) and (match := _REFERENCE.fullmatch(reference)) is not None \
                and match[1] not in rules.not_through:
            keys.add(f"{match[1]}/{match[2]}")
        stack.extend(v for v in node.values() if isinstance(v, dict | list))
    return Found(frozenset(labels), frozenset(keys), own_labels(resource))


def carried(resource: Mapping[str, Any], rules: Rules) -> frozenset[Label]:
    return read(resource, rules).carried


def references(resource: Mapping[str, Any], rules: Rules) -> frozenset[Key]:
    return read(resource, rules).references


def own_labels(resource: Mapping[str, Any]) -> frozenset[Label]:
    """``meta.security`` as ``system|code``: the labels a resource carries already, its client's included."""
    meta = resource.get("meta")
    security = meta.get("security") if isinstance(meta, dict) else None
    return frozenset(f"{c.get('system', '')}|{c['code']}" for c in security or ()
                     if isinstance(c, dict) and isinstance(c.get("code"), str))


def inherited(referenced: Iterable[frozenset[Label]], rules: Rules) -> frozenset[Label]:
    """What the labels of referenced resources pass on: the rules' own labels, nothing else."""
    return frozenset().union(*referenced) & rules.labels


def required(found: Found, referenced: Mapping[Key, frozenset[Label]], rules: Rules) -> frozenset[Label]:
    """Every label the hub's rules want on a resource (``found``: what ``read`` found in it), given the labels
    of the resources it references (``referenced``: by key; a key not given counts as unlabelled)."""
    return found.carried | inherited((referenced.get(k, frozenset()) for k in found.references), rules)


def labelled(resource: dict[str, Any], labels: Iterable[Label], rules: Rules) -> dict[str, Any]:
    """``resource`` with a ``meta.security`` Coding for each of ``labels`` it does not carry yet, added in
    a stable order after the client's own (kept as sent); the very same object when nothing is missing,
    so that an unchanged write stays byte for byte the same."""
    missing = sorted(set(labels) - own_labels(resource))
    if not missing:
        return resource
    meta = dict(resource.get("meta") or {})
    added = [{"system": label.split("|", 1)[0], "code": label.split("|", 1)[1], "display": rules.display(label)}
             for label in missing]
    meta["security"] = [*(meta.get("security") or ()), *added]
    return {**resource, "meta": meta}


# ------------------------------------------------------------------------------ a group written together
def group_labels(found: Mapping[Key, Found], outside: Mapping[Key, frozenset[Label]], rules: Rules
                 ) -> dict[Key, frozenset[Label]]:
    """The labels each resource of a group written together (a transaction) will carry, whatever order its
    entries are written in: an MoH record's Encounter comes before the Conditions its diagnosis names.
    ``found``: what ``read`` found in each resource of the group, by key; ``outside``: the stored labels of
    what the group references but does not write. Labels only grow along references, so passing them on
    until nothing changes ends, at most once per label and resource."""
    labels = {key: f.carried | (f.own & rules.labels)
               | inherited((outside.get(k, frozenset()) for k in f.references if k not in found), rules)
              for key, f in found.items()}
    changed = True
    while changed:
        changed = False
        for key, f in found.items():
            more = inherited((labels[k] for k in f.references if k in labels), rules) - labels[key]
            if more:
                labels[key] |= more
                changed = True
    return labels
