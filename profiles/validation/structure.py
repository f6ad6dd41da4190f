"""A profile's differential read into a tree of rules the validator can follow (``profile.py``).

The differential lists only what the profile changes, by element id (``Patient.identifier:personalId.system``);
here each id becomes a ``Rule`` under its parent, a slice (``:personalId``) under the element it slices, and
an element the differential skips (``Condition.code`` above ``Condition.code.coding``) an empty rule, so the
validator walks the resource and the tree together. Each rule carries the base element it constrains
(``base.py``): a path the base type does not have is refused when the profile is loaded, not met at run time.

Supported, as the city's profiles need: min/max, fixed[x] and pattern[x], bindings, type restrictions of
a choice element, mustSupport, constraints, and slicing with ``value``/``pattern`` discriminators on a path
of the slice's own children (``system``). Re-slicing, ``profile``/``type`` discriminators and extension
definitions are refused at load time rather than ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from profiles.validation.base import BaseElement, resolve


@dataclass(frozen=True, slots=True)
class ProfileConstraint:
    key: str
    severity: str
    human: str
    expression: str


@dataclass(frozen=True, slots=True)
class Slicing:
    discriminators: tuple[tuple[str, str], ...]  # (type, path): ("value", "system")
    rules: str  # open | closed | openAtEnd


@dataclass(frozen=True, slots=True, eq=False)
class Rule:
    """One element of the profile, as met in the resource: ``name`` is its JSON property (``effective[x]``
    for a choice: the property is ``effective`` + a type), ``slice`` its slice name if it is one."""

    id: str
    name: str
    slice: str | None
    base: BaseElement
    min: int | None = None
    max: str | None = None
    types: tuple[str, ...] | None = None
    fixed: tuple[str, Any] | None = None  # ("fixedUri", "http://...")
    pattern: tuple[str, Any] | None = None
    binding: tuple[str, str] | None = None  # (strength, value set)
    must_support: bool = False
    constraints: tuple[ProfileConstraint, ...] = ()
    slicing: Slicing | None = None
    children: tuple[Rule, ...] = ()
    slices: tuple[Rule, ...] = ()

    def child(self, name: str) -> Rule | None:
        return next((c for c in self.children if c.name == name), None)


@dataclass(frozen=True, slots=True)
class Profile:
    url: str
    type: str
    title: str
    root: Rule


@dataclass
class _Draft:
    raw: dict[str, Any]
    children: list[str] = field(default_factory=list)
    slices: list[str] = field(default_factory=list)


_SUPPORTED = frozenset({"id", "path", "sliceName", "min", "max", "type", "binding", "mustSupport", "constraint",
                        "slicing", "short", "definition", "comment"})
_DISCRIMINATORS = frozenset({"value", "pattern"})


def parse(definition: dict[str, Any]) -> Profile:
    """Raises ValueError naming the element for what this reader does not support: a profile half understood
    would pass resources it should refuse."""
    url, rtype = str(definition["url"]), str(definition["type"])
    if definition.get("derivation") != "constraint" or \
            definition.get("baseDefinition") != f"http://hl7.org/fhir/StructureDefinition/{rtype}":
        raise ValueError(f"{url}: only constraints on the R4 base {rtype} are supported")
    drafts: dict[str, _Draft] = {rtype: _Draft({"id": rtype})}
    for raw in definition["differential"]["element"]:
        eid = str(raw.get("id") or raw["path"])
        unknown = {k for k in raw if k not in _SUPPORTED and not k.startswith(("fixed", "pattern"))}
        if unknown:
            raise ValueError(f"{url}: {eid}: unsupported {', '.join(sorted(unknown))}")
        drafts.setdefault(eid, _Draft({})).raw = {"id": eid, **raw}
        _attach(drafts, eid)
    return Profile(url, rtype, str(definition.get("title", url)), _build(drafts, rtype, rtype, url))


def _attach(drafts: dict[str, _Draft], eid: str) -> None:
    """Link ``eid`` under its parent (a slice under the element it slices), creating skipped ancestors."""
    head, _, last = eid.rpartition(".")
    if ":" in last:
        parent, listed = eid.rsplit(":", 1)[0], "slices"
    else:
        parent, listed = head, "children"
    if not parent:
        return
    if parent not in drafts:
        drafts[parent] = _Draft({"id": parent})
        _attach(drafts, parent)
    siblings: list[str] = getattr(drafts[parent], listed)
    if eid not in siblings:
        siblings.append(eid)


def _build(drafts: dict[str, _Draft], eid: str, rtype: str, url: str) -> Rule:
    draft = drafts[eid]
    raw = draft.raw
    last = eid.rsplit(".", 1)[-1]
    name, _, slice_name = last.partition(":")
    if "/" in slice_name or (slice_name and ":" in eid.rsplit(":", 1)[0].rsplit(".", 1)[-1]):
        raise ValueError(f"{url}: {eid}: re-slicing is not supported")
    path = ".".join(part.split(":")[0] for part in eid.split("."))
    base = resolve(rtype, path)
    if base is None:
        raise ValueError(f"{url}: {eid}: the base {rtype} has no element {path}")
    slicing = raw.get("slicing")
    if slicing is not None:
        found = tuple((d["type"], d["path"]) for d in slicing.get("discriminator", []))
        if not found or any(t not in _DISCRIMINATORS or "." in p for t, p in found):
            raise ValueError(f"{url}: {eid}: only value/pattern discriminators on a child's path are supported")
    elif draft.slices:
        raise ValueError(f"{url}: {eid}: slices without a slicing")
    binding = raw.get("binding")
    return Rule(
        id=eid, name=name, slice=slice_name or None, base=base,
        min=raw.get("min"), max=raw.get("max"),
        types=tuple(t["code"] for t in raw["type"]) if "type" in raw else None,
        fixed=_one_of(raw, "fixed"), pattern=_one_of(raw, "pattern"),
        binding=(binding["strength"], binding["valueSet"]) if binding and "valueSet" in binding else None,
        must_support=bool(raw.get("mustSupport")),
        constraints=tuple(ProfileConstraint(c["key"], c["severity"], c["human"], c["expression"])
                          for c in raw.get("constraint", [])),
        slicing=Slicing(found, slicing.get("rules", "open")) if slicing is not None else None,
        children=tuple(_build(drafts, c, rtype, url) for c in draft.children),
        slices=tuple(_build(drafts, s, rtype, url) for s in draft.slices),
    )


def _one_of(raw: dict[str, Any], prefix: str) -> tuple[str, Any] | None:
    return next(((k, v) for k, v in raw.items() if k.startswith(prefix) and k[len(prefix):][:1].isupper()), None)
