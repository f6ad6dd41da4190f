"""The FHIRPath of search parameters, compiled once into typed element paths.

Almost every R4 search-parameter expression is an element path, sometimes with a type cast (``as``,
``.as()``, ``.ofType()``), a reference-type filter (``.where(resolve() is Patient)``), an equality filter
(``.where(system='email')``) or an index (``[0]``). Those are compiled here into steps that walk the JSON
and know the FHIR type of every value they return (from the R4 model that fhirpathpy ships: element types
and choice types), so the indexer converts each value by its real type rather than by guessing from its
shape. The few other expressions are evaluated by fhirpathpy itself, compiled once (never re-parsed on the
hot path), and typed by shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any, cast

from fhirpathpy import compile as fhirpath_compile
from fhirpathpy.models import models

_R4 = models["r4"]
_PATH_TYPE: dict[str, str] = _R4["path2Type"]
_CHOICES: dict[str, list[str]] = _R4["choiceTypePaths"]
_ELSEWHERE: dict[str, str] = _R4["pathsDefinedElsewhere"]
_PARENT: dict[str, str] = _R4["type2Parent"]
_COMPLEX = re.compile(r"[A-Z]")
_BACKBONES = frozenset(path.rsplit(".", 1)[0] for path in _PATH_TYPE)  # elements that have children


@dataclass(frozen=True, slots=True)
class Typed:
    value: Any
    type: str  # FHIR type: "Reference", "CodeableConcept", "date", "string" ... or "" when unknown


@dataclass(frozen=True, slots=True)
class _Child:
    name: str


@dataclass(frozen=True, slots=True)
class _As:
    type: str


@dataclass(frozen=True, slots=True)
class _ReferenceTo:
    type: str


@dataclass(frozen=True, slots=True)
class _WhereEquals:
    name: str
    literal: str


@dataclass(frozen=True, slots=True)
class _Index:
    position: int


_Step = _Child | _As | _ReferenceTo | _WhereEquals | _Index
_TOKEN = re.compile(  # functions before plain children: ".as(" must not read as a child named "as"
    r"\.(?:as|ofType)\((?P<cast>[A-Za-z]+)\)"
    r"|\.where\(resolve\(\) is (?P<ref>[A-Z][A-Za-z]+)\)"
    r"|\.where\((?P<wname>[a-z][A-Za-z]*)\s*=\s*'(?P<wval>[^']*)'\)"
    r"|\[(?P<index>\d+)\]"
    r"|\.first\(\)"
    r"|\.(?P<child>[a-z][A-Za-z0-9]*)"
)


def _parse(clause: str, root: str) -> tuple[_Step, ...] | None:
    """Steps below ``root`` for a clause such as ``Observation.value as Quantity``; None if unsupported."""
    text = clause.strip()
    cast = None
    match = re.fullmatch(r"\((.+) as ([A-Za-z]+)\)(.*)", text) or re.fullmatch(r"(.+) as ([A-Za-z]+)()", text)
    if match:
        text, cast, tail = match.group(1).strip(), match.group(2), match.group(3)
        if tail and not re.fullmatch(r"(\.[a-z][A-Za-z0-9]*)+", tail):
            return None
    else:
        tail = ""
    if text == root:
        rest = ""
    elif text.startswith(root + ".") or text.startswith(root + "["):
        rest = text[len(root):]
    else:
        return None
    steps: list[_Step] = []
    position = 0
    for token in _TOKEN.finditer(rest):
        if token.start() != position:
            return None
        position = token.end()
        if token["child"]:
            steps.append(_Child(token["child"]))
        elif token["cast"]:
            steps.append(_As(token["cast"]))
        elif token["ref"]:
            steps.append(_ReferenceTo(token["ref"]))
        elif token["wname"]:
            steps.append(_WhereEquals(token["wname"], token["wval"]))
        elif token["index"]:
            steps.append(_Index(int(token["index"])))
        else:
            steps.append(_Index(0))
    if position != len(rest):
        return None
    if cast:
        steps.append(_As(cast))
        steps.extend(_Child(name) for name in tail.split(".")[1:])
    return tuple(steps)


@cache
def _element_type(context: str, name: str) -> tuple[str, str]:
    """(type, context path for its children) of element ``name`` under ``context``; cached: it is asked
    for every element a search parameter's path walks, on every write, and depends on the definitions only."""
    path = f"{context}.{name}"
    path = _ELSEWHERE.get(path, path)
    if path in _BACKBONES and path not in _PATH_TYPE:
        return "BackboneElement", path
    owner = context
    while path not in _PATH_TYPE and path not in _CHOICES and owner in _PARENT:
        owner = _PARENT[owner]  # inherited elements: Resource.meta, DomainResource.text ...
        path = f"{owner}.{name}"
    if path in _CHOICES:
        return "", path
    found = _PATH_TYPE.get(path, "")
    if found in ("BackboneElement", "Element", ""):
        return found, path
    return found, found if _COMPLEX.match(found) else path


@cache
def _child_type_path(type_name: str, path: str) -> str:
    return type_name if type_name and _COMPLEX.match(type_name) and type_name not in ("BackboneElement",
                                                                                      "Element") else path


class CompiledPath:
    """One clause of a search-parameter expression, ready to run on a resource (or a composite's item)."""

    def __init__(self, steps: tuple[_Step, ...] | None, root_type: str, fallback: Callable[[Any], list[Any]] | None):
        self.steps = steps
        self.root_type = root_type
        self.fallback = fallback
        self.first_keys = _first_keys(steps, root_type)

    def evaluate(self, node: Any) -> list[Typed]:
        if self.first_keys is not None and isinstance(node, dict) and not any(k in node for k in self.first_keys):
            return []  # most parameters of a type are absent from a given resource: no walk for them
        if self.steps is None:
            assert self.fallback is not None
            try:
                return [Typed(v, "") for v in self.fallback(node)]
            except Exception:  # fhirpathpy raises bare Exceptions for what it does not implement
                return []
        return list(self._walk(node, self.root_type, self.root_type, self.steps))

    def _walk(self, node: Any, type_name: str, path: str, steps: tuple[_Step, ...]) -> Iterator[Typed]:
        if isinstance(node, list):
            for item in node:
                yield from self._walk(item, type_name, path, steps)
            return
        if not steps:
            yield Typed(node, type_name)
            return
        step, rest = steps[0], steps[1:]
        if isinstance(step, _Child):
            if not isinstance(node, dict):
                return
            child_type, child_path = _element_type(_child_type_path(type_name, path), step.name)
            if child_path in _CHOICES and rest and isinstance(rest[0], _As):
                wanted = rest[0].type
                key = step.name + wanted[0].upper() + wanted[1:]
                if key in node:
                    yield from self._walk(node[key], wanted, child_path, rest[1:])
                return
            if child_path in _CHOICES:
                for option in _CHOICES[child_path]:
                    key = step.name + option
                    if key in node:
                        yield from self._walk(node[key], _primitive(option), child_path, rest)
                return
            if step.name in node:
                yield from self._walk(node[step.name], child_type, child_path, rest)
        elif isinstance(step, _As):
            if _primitive(step.type).lower() == type_name.lower():
                yield from self._walk(node, type_name, path, rest)
        elif isinstance(step, _ReferenceTo):
            target = node.get("reference") if isinstance(node, dict) else None
            if isinstance(target, str) and _reference_type(target) == step.type:
                yield from self._walk(node, type_name, path, rest)
        elif isinstance(step, _WhereEquals):
            if isinstance(node, dict) and node.get(step.name) == step.literal:
                yield from self._walk(node, type_name, path, rest)
        elif isinstance(step, _Index):
            yield from self._walk(node, type_name, path, rest)  # lists are unrolled above; see compile_clause


def _first_keys(steps: tuple[_Step, ...] | None, root_type: str) -> tuple[str, ...] | None:
    """The JSON names the path's first element can have in a resource (a choice: each of its types), or None
    when the path does not start with an element."""
    if not steps or not isinstance(steps[0], _Child):
        return None
    name = steps[0].name
    _type, path = _element_type(_child_type_path(root_type, root_type), name)  # as _walk's first step
    if path in _CHOICES:
        return tuple(name + option for option in _CHOICES[path])
    return (name,)


def _primitive(type_name: str) -> str:
    """Choice-type names are capitalised (``DateTime``); element types of primitives are not (``dateTime``)."""
    lowered = type_name[0].lower() + type_name[1:]
    return lowered if lowered in _PRIMITIVES else type_name


_PRIMITIVES = frozenset({"boolean", "integer", "string", "decimal", "uri", "url", "canonical", "base64Binary",
                         "instant", "date", "dateTime", "time", "code", "oid", "id", "markdown", "unsignedInt",
                         "positiveInt", "uuid"})


def _reference_type(reference: str) -> str:
    parts = reference.split("?")[0].split("/")
    for i in range(len(parts) - 1, 0, -1):  # Patient/1, Patient/1/_history/2, http://x/fhir/Patient/1
        if parts[i - 1] and parts[i - 1][0].isupper() and parts[i - 1] != "_history":
            return parts[i - 1]
    return ""


@cache
def compile_clause(clause: str, root: str) -> CompiledPath:
    steps = _parse(clause, root)
    if steps is not None and any(isinstance(s, _Index) for s in steps):
        steps = None  # positions need list semantics the walker does not keep; fhirpathpy handles them
    fallback = None
    if steps is None:
        # fhirpathpy annotates compile()'s result as Callable[[Mapping, Mapping | None], list], but what it
        # returns (fhirpathpy.engine.util.set_paths) takes any node and an optional context: one argument here.
        fallback = cast(Callable[[Any], list[Any]], fhirpath_compile(clause.strip(), _R4))
    return CompiledPath(steps, root, fallback)


def clauses_for(expression: str, rtype: str) -> list[str]:
    """The union members of an expression that apply to ``rtype`` (``Patient.name | Practitioner.name``)."""
    found = []
    for clause in expression.split("|"):
        clause = clause.strip()
        bare = clause.lstrip("(")
        if bare == rtype or bare.startswith((rtype + ".", rtype + "[", rtype + " ")):
            found.append(clause)
    return found
