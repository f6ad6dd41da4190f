"""FHIR XML to FHIR JSON, for the outside suites whose cases are FHIR XML (HL7's FHIRPath Patch cases).

The hub reads and writes FHIR JSON only; this reads test input, driven by the same R4 element definitions
the validator uses (``profiles/validation/definitions.py``): which children repeat (JSON arrays), which are
primitives (the XML ``value`` attribute; ``id`` and ``extension`` go to the ``_name`` twin), choice
elements by their typed name, contained resources, and the XHTML of a narrative kept as its markup
(R4 xml.html and json.html). Numbers and booleans take their JSON types.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from profiles.validation.definitions import Element, type_definition

FHIR_NS = "{http://hl7.org/fhir}"
XHTML_NS = "http://www.w3.org/1999/xhtml"
_NUMBERS = {"integer": int, "positiveInt": int, "unsignedInt": int, "decimal": float}  # as the hub's JSON reads


def resource_from_xml(node: ET.Element) -> dict[str, Any]:
    """One resource element (``<Patient xmlns="http://hl7.org/fhir">``) as FHIR JSON."""
    rtype = _local(node)
    return {"resourceType": rtype, **_children(node, rtype, rtype)}


def _local(node: ET.Element) -> str:
    return node.tag.removeprefix(FHIR_NS).removeprefix("{" + XHTML_NS + "}")  # Narrative.div is XHTML


def _children(node: ET.Element, owner: str, path: str) -> dict[str, Any]:
    """The JSON properties of ``node``, whose element definitions are ``path``'s children in ``owner``."""
    definition = type_definition(owner)
    known = definition.properties.get(path, {}) if definition is not None else {}
    found: dict[str, Any] = {}
    if "id" in node.attrib:
        found["id"] = node.attrib["id"]
    if "url" in node.attrib:  # Extension.url is an attribute
        found["url"] = node.attrib["url"]
    for child in node:
        name = _local(child)
        element = known.get(name)
        if element is None:
            raise ValueError(f"{path}.{name}: not an element of {owner}")
        _put(found, name, element, _value(child, element))
    return found


def _value(node: ET.Element, element: Element) -> tuple[Any, dict[str, Any] | None]:
    """(the JSON value, the primitive's ``_name`` twin or None)."""
    kind = element.type
    if kind == "Resource":
        [inner] = list(node)
        return resource_from_xml(inner), None
    if kind == "xhtml":
        ET.register_namespace("", XHTML_NS)
        return ET.tostring(node, encoding="unicode").strip(), None
    if element.children is not None:  # a backbone element, or one a contentReference names
        owner = element.children.split(".", 1)[0]
        return _children(node, owner, element.children), None
    if kind[:1].isupper():  # a datatype: its children are in its own definition
        return _children(node, kind, kind), None
    value: Any = node.attrib.get("value")
    if value is not None:
        value = value == "true" if kind == "boolean" else _NUMBERS.get(kind, str)(value)
    twin = _children(node, "Element", "Element") if len(node) or "id" in node.attrib else None
    return value, twin


def _put(found: dict[str, Any], name: str, element: Element, value: tuple[Any, dict[str, Any] | None]) -> None:
    content, twin = value
    if element.max in ("0", "1"):
        if content is not None:
            found[name] = content
        if twin:
            found["_" + name] = twin
        return
    found.setdefault(name, []).append(content)
    if twin is not None or "_" + name in found:  # the twin list keeps step with the values (null for none)
        twins = found.setdefault("_" + name, [None] * (len(found[name]) - 1))
        twins.append(twin or None)
