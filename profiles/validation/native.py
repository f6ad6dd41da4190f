"""Invariants fhirpathpy cannot run, read in Python with the meaning the specification gives them: each
function answers whether the invariant holds on its element (``invariants.check_invariant`` reports it
like any other, under the same key).

- ``txt-1``, ``txt-2`` (``htmlChecks()``, on ``Narrative.div``): R4 narrative.html, "The XHTML content SHALL
  NOT contain a head, a body element, external stylesheet references, deprecated elements, scripts, forms,
  base/link/xlink, frames, iframes, objects or event related attributes (e.g. onClick)"; the div is XHTML, so
  it must be well-formed XML in the XHTML namespace with no entity XML does not define (``&nbsp;`` is not
  XML: ``&#160;`` is); and it "SHALL have some non-whitespace content" (text, or an image).
- ``dom-3`` (on every DomainResource): a contained resource is referred to from elsewhere in the resource
  (``#id``), or refers to its container (``#``). Read over every string of the resource starting with
  ``#``: a reference, a canonical or a uri, as the expression's ``descendants()`` reads them.

Measured on the 106 narratives of the HL7 R4 examples: 32 µs a narrative for both checks (85 µs when each
parsed it: ``_elements`` keeps the last few); ``dom-3`` reads strings only of a resource with ``contained``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

_XHTML = "{http://www.w3.org/1999/xhtml}"
# narrative.html's list, with HTML 4's deprecated elements (applet, basefont, center, dir, font, isindex,
# menu, s, strike, u) and the form controls
_FORBIDDEN = frozenset({
    "head", "body", "html", "script", "noscript", "style", "link", "base", "meta", "title", "form", "input",
    "button", "select", "option", "optgroup", "textarea", "label", "fieldset", "legend", "frame", "frameset",
    "noframes", "iframe", "object", "embed", "param", "applet", "basefont", "center", "dir", "font", "isindex",
    "menu", "s", "strike", "u",
})


@lru_cache(maxsize=16)  # txt-1 and txt-2 read the same div one after the other: parsed once
def _elements(div: str) -> ET.Element | None:
    try:
        return ET.fromstring(div)
    except ET.ParseError:  # not well-formed, or an entity XML does not define
        return None


def narrative_markup(div: Any) -> bool:
    """``txt-1``: well-formed XHTML, a ``div`` at the root, nothing narrative.html forbids."""
    if not isinstance(div, str):
        return True  # the structural pass reports a div of the wrong type
    root = _elements(div)
    if root is None or root.tag != f"{_XHTML}div":
        return False
    for element in root.iter():
        tag = element.tag if isinstance(element.tag, str) else ""
        if not tag.startswith(_XHTML) or tag[len(_XHTML):] in _FORBIDDEN:
            return False
        if any(_local(name).lower().startswith("on") or "xlink" in name for name in element.attrib):
            return False
    return True


def narrative_content(div: Any) -> bool:
    """``txt-2``: some non-whitespace text, or an image. A div that does not parse is ``txt-1``'s finding."""
    root = _elements(div) if isinstance(div, str) else None
    if root is None:
        return True
    return any(text.strip() for text in root.itertext()) or any(True for _ in root.iter(f"{_XHTML}img"))


def _local(name: str) -> str:
    return name.rsplit("}", 1)[-1]


def contained_referenced(resource: Any) -> bool:
    """``dom-3``."""
    contained = resource.get("contained") if isinstance(resource, dict) else None
    if not isinstance(contained, list):
        return True
    fragments = set(_fragments(resource))
    for item in contained:
        cid = item.get("id") if isinstance(item, dict) else None
        if not isinstance(cid, str):  # no id: FHIRPath's ``'#' + id`` is empty, and so is the verdict
            continue
        if f"#{cid}" not in fragments and "#" not in set(_fragments(item)):
            return False
    return True


def _fragments(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        if node.startswith("#"):
            yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _fragments(value)
    elif isinstance(node, list):
        for value in node:
            yield from _fragments(value)


NATIVE: dict[str, Callable[[Any], bool]] = {
    "txt-1": narrative_markup, "txt-2": narrative_content, "dom-3": contained_referenced,
}
