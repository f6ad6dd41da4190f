"""The walk over a resource's JSON beside its definition: every element meets its required binding and its
invariants, every datatype its own (``per-1`` on a Period), every nested resource (``contained``, a
Bundle's entries, a Parameters' resources) the checks of its type.

``ele-1`` ("All FHIR elements must have a @value or children") is on every element; evaluating it with
fhirpathpy on each would be most of the cost. The structural pass (``fhir_hub.fhir.validation``) already
refuses empty objects, empty arrays and nulls, so what is left of it is an object holding nothing but an
``id``, which this walk checks directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from profiles.validation.bindings import check_binding
from profiles.validation.definitions import Element, TypeDefinition, constraints, type_definition
from profiles.validation.invariants import check_invariant
from profiles.validation.issues import ERROR, ValidationIssue

_ELE_1 = "ele-1"


@dataclass
class _Walk:
    root: dict[str, Any]
    issues: list[ValidationIssue] = field(default_factory=list)

    def resource(self, node: dict[str, Any], definition: TypeDefinition, expression: str) -> None:
        for cid in definition.root_constraints:
            self._found(check_invariant(cid, node, definition.name, expression, node, self.root))
        self.children(node, definition, definition.name, expression, node)

    def children(self, node: dict[str, Any], definition: TypeDefinition, parent: str, expression: str,
                 resource: dict[str, Any]) -> None:
        properties = definition.properties.get(parent)
        if not properties:
            return
        for key, value in node.items():
            element = properties.get(key)
            if element is None:  # resourceType, _primitive extensions, or unknown (the structural pass says so)
                continue
            if isinstance(value, list):
                for i, item in enumerate(value):
                    self.element(item, element, definition, f"{expression}.{key}[{i}]", resource)
            else:
                self.element(value, element, definition, f"{expression}.{key}", resource)

    def element(self, value: Any, element: Element, definition: TypeDefinition, expression: str,
                resource: dict[str, Any]) -> None:
        if element.value_set is not None:
            self._found(check_binding(value, element.type, element.value_set, expression))
        datatype = None if element.children is not None else type_definition(element.type)
        if datatype is not None and datatype.kind == "resource":
            datatype = None
        # a datatype's element repeats its type's constraints (Basic.extension: ext-1), and FHIRPath resolves a
        # choice (``value``) from the type's path: evaluate each once, typed as the datatype
        type_path = element.path if datatype is None else datatype.name
        for cid in element.constraints if datatype is None else _merged(element, datatype):
            self._found(check_invariant(cid, value, type_path, expression, resource, self.root))
        if not isinstance(value, dict):
            return
        if not value.keys() - {"id"}:
            ele_1 = constraints()[_ELE_1]
            self.issues.append(ValidationIssue(ERROR, "invariant", expression,
                                               f"{expression}: breaks the invariant {_ELE_1}: {ele_1.human}"))
            return
        if element.children is not None:
            self.children(value, definition, element.children, expression, resource)
            return
        if element.type == "Resource":
            nested = type_definition(str(value.get("resourceType", "")))
            if nested is not None and nested.kind == "resource" and element.path.endswith(".contained"):
                self.resource(value, nested, expression)
            elif nested is not None and nested.kind == "resource":
                # a Bundle's entry, a Parameters' resource: a resource of its own, the root its invariants
                # read (``%rootResource``: ref-1 finds a ``#id`` among its own contained, not the Bundle's)
                inner = _Walk(value)
                inner.resource(value, nested, expression)
                self.issues += inner.issues
            return
        if datatype is not None:
            self.children(value, datatype, datatype.name, expression, resource)

    def _found(self, issue: ValidationIssue | None) -> None:
        if issue is not None:
            self.issues.append(issue)


@cache
def _merged(element: Element, datatype: TypeDefinition) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*datatype.root_constraints, *element.constraints)))


def walk(resource: dict[str, Any]) -> list[ValidationIssue]:
    """Every binding and invariant issue of ``resource``; none for a type the base definitions lack (the
    structural pass refuses those)."""
    definition = type_definition(str(resource.get("resourceType", "")))
    if definition is None or definition.kind != "resource":
        return []
    run = _Walk(resource)
    run.resource(resource, definition, definition.name)
    return run.issues
