"""Validation of a resource against one of the city's profiles (``city.py``, read by ``structure.py``).

The walk follows the profile's rule tree, not the whole resource: the base checks (``walk.py``) have
already seen every element. Per occurrence of a profiled element: its cardinality in its parent (a slice's
among the items it matches), the type chosen for a choice, fixed and pattern values, bindings (required: an
error; extensible: a warning), the profile's invariants (FHIRPath, compiled once per expression) and
mustSupport elements absent (information). A slice matches an item by the discriminator's value, a VN Core
identifier system counting as the hub's (``city.same_value``). Each issue names the profile's URL and the
slice or invariant, at the element's FHIRPath (``Condition.code.coding[0].code``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from fhirpathpy.engine.nodes import ResourceNode

from profiles.validation.bindings import membership
from profiles.validation.city import profile_for_type, same_value, value_sets
from profiles.validation.definitions import value_set
from profiles.validation.invariants import Evaluator, compile_fhirpath
from profiles.validation.issues import ERROR, INFORMATION, WARNING, ValidationIssue, errors
from profiles.validation.structure import Profile, ProfileConstraint, Rule

_SEVERITY = {"required": ERROR, "extensible": WARNING}


@dataclass(frozen=True, slots=True)
class _Item:
    key: str  # the JSON property (``effectiveDateTime`` for ``effective[x]``)
    value: Any  # None for a primitive present only through its extension (``_birthDate``)
    expression: str


@dataclass
class _Run:
    profile: Profile
    resource: dict[str, Any]
    issues: list[ValidationIssue] = field(default_factory=list)

    def occurrence(self, item: _Item, rule: Rule, type_path: str) -> None:
        """The checks on one occurrence of ``rule``'s element, then its profiled children."""
        value, expression = item.value, item.expression
        if value is None:
            return
        if rule.fixed is not None and not _equal(rule.fixed[1], value):
            self._add(ERROR, "value", expression, f"is {_show(value)}, the profile fixes {rule.fixed[0]} "
                      f"{_show(rule.fixed[1])}", rule)
        if rule.pattern is not None and not _matches(rule.pattern[1], value):
            self._add(ERROR, "value", expression, f"is {_show(value)}, which does not match the profile's "
                      f"{rule.pattern[0]} {_show(rule.pattern[1])}", rule)
        if rule.binding is not None:
            self._binding(value, type_path, rule, expression)
        for constraint in rule.constraints:
            self._invariant(constraint, value, type_path, expression, rule)
        if isinstance(value, dict):
            for child in rule.children:
                self.element(value, child, expression)

    def element(self, parent: dict[str, Any], rule: Rule, parent_expression: str) -> None:
        items = _occurrences(parent, rule.name, parent_expression)
        where = f"{parent_expression}.{rule.name.removesuffix('[x]')}"
        self._cardinality(len(items), rule, where)
        for item in items:
            type_ = _chosen_type(rule, item.key)
            if rule.types is not None and type_ is not None and type_ not in rule.types:
                self._add(ERROR, "structure", item.expression, f"is a {type_}; the profile allows "
                          f"{' or '.join(rule.types)} only", rule)
                continue
            self.occurrence(item, rule, type_ if type_ is not None else rule.base.type_path)
        if rule.slices:
            self._slices(items, rule, where)

    def _slices(self, items: list[_Item], rule: Rule, where: str) -> None:
        assert rule.slicing is not None
        matched: dict[str, list[_Item]] = {s.id: [] for s in rule.slices}
        for item in items:
            found = next((s for s in rule.slices if _in_slice(item.value, s, rule)), None)
            if found is not None:
                matched[found.id].append(item)
            elif rule.slicing.rules == "closed":
                self._add(ERROR, "structure", item.expression, "matches none of the slices "
                          f"{', '.join(str(s.slice) for s in rule.slices)} and the slicing is closed", rule)
        for slice_ in rule.slices:
            self._cardinality(len(matched[slice_.id]), slice_, where)
            for item in matched[slice_.id]:
                self.occurrence(item, slice_, rule.base.type_path)

    def _cardinality(self, count: int, rule: Rule, where: str) -> None:
        if rule.min is not None and count < rule.min:
            self._add(ERROR, "required", where, f"{count} found, the profile requires at least {rule.min}", rule)
        elif rule.max not in (None, "*") and count > int(str(rule.max)):
            self._add(ERROR, "structure", where, f"{count} found, the profile allows at most {rule.max}", rule)
        if rule.must_support and count == 0 and not rule.min:
            self._add(INFORMATION, "informational", where, "a mustSupport element is absent", rule)

    def _binding(self, value: Any, type_: str, rule: Rule, expression: str) -> None:
        assert rule.binding is not None
        strength, url = rule.binding
        severity = _SEVERITY.get(strength)
        vs = value_set(url) or value_sets().get(url)
        if severity is None or vs is None:
            return
        found = membership(value, type_, vs)
        if found is not None and not found[0]:
            self._add(severity, "code-invalid", expression,
                      f"{found[1][:120]} is not in the value set {url} ({strength} binding)", rule)

    def _invariant(self, constraint: ProfileConstraint, value: Any, type_path: str, expression: str,
                   rule: Rule) -> None:
        try:
            result = _compiled(constraint.expression)(ResourceNode.create_node(value, type_path),
                                                      {"resource": self.resource, "rootResource": self.resource})
        except Exception as exc:  # fhirpathpy raises bare Exceptions: reported, never a crash or a rejection
            self._add(WARNING, "not-supported", expression, f"the invariant {constraint.key} could not be "
                      f"evaluated ({type(exc).__name__}: {str(exc)[:80]})", rule)
            return
        if result == [False]:
            self._add(ERROR if constraint.severity == "error" else WARNING, "invariant", expression,
                      f"breaks the invariant {constraint.key}: {constraint.human}", rule)

    def _add(self, severity: str, code: str, expression: str, text: str, rule: Rule) -> None:
        where = f"profile {self.profile.url}" + (f", slice {rule.slice}" if rule.slice else "")
        self.issues.append(ValidationIssue(severity, code, expression, f"{expression}: {text} ({where})"))


@cache
def _compiled(expression: str) -> Evaluator:
    return compile_fhirpath(expression)


def _occurrences(parent: dict[str, Any], name: str, parent_expression: str) -> list[_Item]:
    if name.endswith("[x]"):
        stem = name[:-3]
        keys = [k for k in parent if k.startswith(stem) and k[len(stem):][:1].isupper()]
    else:
        keys = [name] if name in parent else [f"_{name}"] if f"_{name}" in parent else []
    items = []
    for key in keys:
        value = parent[key]
        real = not key.startswith("_")
        if isinstance(value, list):
            items += [_Item(key, v if real else None, f"{parent_expression}.{key.lstrip('_')}[{i}]")
                      for i, v in enumerate(value)]
        else:
            items.append(_Item(key, value if real else None, f"{parent_expression}.{key.lstrip('_')}"))
    return items


def _chosen_type(rule: Rule, key: str) -> str | None:
    """The type a choice's property names (``effectivePeriod`` -> Period), as the base spells it."""
    if not rule.name.endswith("[x]"):
        return None
    suffix = key[len(rule.name) - 3:]
    return next((t for t in rule.base.types if t[0].upper() + t[1:] == suffix), suffix)


def _in_slice(value: Any, slice_: Rule, sliced: Rule) -> bool:
    assert sliced.slicing is not None
    if not isinstance(value, dict):
        return False
    for _type, path in sliced.slicing.discriminators:
        rule = slice_.child(path)
        wanted = rule.fixed or rule.pattern if rule is not None else None
        if wanted is None or not _matches(wanted[1], value.get(path)):
            return False
    return True


def _equal(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict | list):
        return bool(expected == actual)
    return same_value(expected, actual)


def _matches(pattern: Any, value: Any) -> bool:
    """FHIR pattern[x]: every element the pattern has, the value has with the same content; a pattern's
    array item is matched by some item of the value's array."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(_matches(p, value.get(k)) for k, p in pattern.items())
    if isinstance(pattern, list):
        return isinstance(value, list) and all(any(_matches(p, v) for v in value) for p in pattern)
    return same_value(pattern, value)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_profile(resource: dict[str, Any], profile: Profile) -> list[ValidationIssue]:
    """Every issue of ``resource`` against ``profile``; never raises for what is in the resource."""
    rtype = resource.get("resourceType")
    if rtype != profile.type:
        return [ValidationIssue(ERROR, "invalid", "resourceType", f"resourceType: {str(rtype)[:40]!r}, the profile "
                                f"{profile.url} is for {profile.type} resources")]
    run = _Run(profile, resource)
    run.occurrence(_Item(profile.type, resource, profile.type), profile.root, profile.type)
    return run.issues


def claim_if_met(resource: dict[str, Any]) -> bool:
    """Add the city's profile of its type to ``resource``'s ``meta.profile`` when it meets it with no error
    (the adapters' output: a claim is a promise the write path holds the resource to, so it is made only
    where it is kept). Whether it claims now."""
    found = profile_for_type(str(resource.get("resourceType", "")))
    if found is None or errors(check_profile(resource, found)):
        return False
    meta = resource.setdefault("meta", {})
    if found.url not in meta.get("profile", []):
        meta["profile"] = [*meta.get("profile", []), found.url]
    return True
