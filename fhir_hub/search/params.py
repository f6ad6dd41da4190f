"""The search parameters of every resource type, from the official R4 definitions (profiles/fhir-r4).

Each parameter keeps its type, its reference targets and its expression compiled once for the resource
type (only the union members that apply to that type). Parameters defined on ``Resource`` and
``DomainResource`` (``_id``, ``_lastUpdated``, ``_tag``, ``_profile``, ``_security``, ``_source``) apply to
every type. Parameters without an expression (``_text``, ``_content``, ``_query``) are known but not
indexed, so a search using them is reported as unsupported.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from fhir_hub.fhir.registry import resource_types
from fhir_hub.search.fhirpath import CompiledPath, clauses_for, compile_clause
from profiles.definitions import search_parameters

# Parameters this hub answers without the index, or not at all.
SPECIAL = frozenset({"_text", "_content", "_query", "_filter", "_list", "_has", "_type"})


@dataclass(frozen=True)
class Component:
    code: str  # the code of the component's own parameter, e.g. "code" or "value-quantity"
    type: str
    paths: tuple[CompiledPath, ...]  # relative to the composite's item


@dataclass(frozen=True)
class CompositeRoot:
    """Where a composite's items are (``Observation`` itself, or each ``Observation.component``)."""

    path: CompiledPath
    components: tuple[Component, ...]


@dataclass(frozen=True)
class SearchParam:
    code: str
    type: str  # number date string token reference composite quantity uri special
    url: str
    paths: tuple[CompiledPath, ...]
    targets: tuple[str, ...] = ()
    roots: tuple[CompositeRoot, ...] = ()


def _definition_by_url() -> dict[str, dict]:
    return {definition["url"]: definition for definition in search_parameters().values()}


@cache
def params_for(rtype: str) -> dict[str, SearchParam]:
    """Every search parameter of ``rtype`` by code."""
    by_url = _definition_by_url()
    found: dict[str, SearchParam] = {}
    for (base, code), definition in search_parameters().items():
        if base not in (rtype, "Resource", "DomainResource") or code in SPECIAL:
            continue
        expression = definition.get("expression") or ""
        scope = rtype if base == rtype else base
        if definition["type"] == "composite":
            roots = _composite_roots(definition, rtype, by_url)
            if roots:
                found[code] = SearchParam(code, "composite", definition["url"], (), (), roots)
            continue
        clauses = clauses_for(expression, scope)
        if not clauses:
            continue
        paths = tuple(compile_clause(clause, scope) for clause in clauses)
        found[code] = SearchParam(code, definition["type"], definition["url"], paths,
                                  tuple(definition.get("target", ())))
    return found


def _composite_roots(definition: dict, rtype: str, by_url: dict[str, dict]) -> tuple[CompositeRoot, ...]:
    roots = []
    for clause in clauses_for(definition.get("expression") or "", rtype):
        item_path = clause.strip()
        components = []
        for component in definition.get("component", []):
            target = by_url.get(component["definition"])
            if target is None:
                return ()
            paths = tuple(compile_clause(f"{item_path}.{part.strip()}", item_path)
                          for part in component["expression"].split("|"))
            components.append(Component(target["code"], target["type"], paths))
        roots.append(CompositeRoot(compile_clause(clause, rtype), tuple(components)))
    return tuple(roots)


def all_param_codes() -> dict[str, tuple[str, ...]]:
    """For the CapabilityStatement and tests: the codes of every type's parameters."""
    return {rtype: tuple(sorted(params_for(rtype))) for rtype in resource_types()}
