"""References inside a Bundle: finding them, and rewriting them to the ids the server assigned.

Every ``reference`` string anywhere in a resource counts (Reference elements at any depth, in contained
resources and extensions alike), and so do ``href``/``src`` links in the narrative, as the transaction
rules of FHIR R4 (http.html#trules) ask. A reference is one of: a local name of another entry (its
``fullUrl``, e.g. ``urn:uuid:...``), a conditional reference (``Organization?identifier=...``), or
anything else (left as it is).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

LOCAL_SCHEMES = ("urn:uuid:", "urn:oid:")
_LINK = re.compile(r'\b(href|src)="([^"]*)"')


def references_in(resource: Any) -> set[str]:
    """Every ``reference`` value in a resource, at any depth."""
    found: set[str] = set()
    stack = [resource]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key == "reference" and isinstance(value, str):
                    found.add(value)
                elif isinstance(value, dict | list):
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(v for v in item if isinstance(v, dict | list))
    return found


def conditional_reference(value: str) -> tuple[str, str] | None:
    """``Type?criteria`` -> (Type, criteria); None for any other reference. The type is checked by the
    caller, so that ``Patientt?identifier=1`` is refused as an unknown type rather than stored as written."""
    head, sep, criteria = value.partition("?")
    if not sep or not head.isalpha():
        return None
    return head, criteria


def is_local(value: str) -> bool:
    return value.startswith(LOCAL_SCHEMES)


def rewrite(resource: Any, mapping: Mapping[str, str]) -> Any:
    """A copy of ``resource`` with each reference (and narrative link) found in ``mapping`` replaced."""
    if not mapping:
        return resource
    if isinstance(resource, dict):
        out: dict[str, Any] = {}
        for key, value in resource.items():
            if key == "reference" and isinstance(value, str):
                out[key] = mapping.get(value, value)
            elif key == "div" and isinstance(value, str):
                out[key] = _LINK.sub(lambda m: f'{m[1]}="{mapping.get(m[2], m[2])}"', value)
            elif isinstance(value, dict | list):
                out[key] = rewrite(value, mapping)
            else:
                out[key] = value
        return out
    if isinstance(resource, list):
        return [rewrite(v, mapping) if isinstance(v, dict | list) else v for v in resource]
    return resource
