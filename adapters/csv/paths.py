"""Element paths in mapping files: where a column's value goes inside the resource.

A path is a dotted FHIR element path with list positions spelled out, because a mapping author knows
whether the clinic has one name or several: ``birthDate``, ``name[0].family``, ``name[0].given[+]``
(append), ``address[0].line[+]``, ``reaction[0].manifestation[+]``. ``[+]`` appends, ``[n]`` addresses
(creating the entry), a bare name sets. Whether the element exists is checked when the mapping is loaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_SEGMENT = re.compile(r"(?P<name>[a-z][A-Za-z0-9]*)(?:\[(?P<index>\+|\d{1,2})\])?")


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    index: int | None  # None: not a list position; -1: append


def parse_path(path: str) -> tuple[Step, ...]:
    """The steps of ``path``; raises ValueError naming the bad part."""
    steps = []
    for part in path.split("."):
        match = _SEGMENT.fullmatch(part)
        if not match:
            raise ValueError(f"{part!r} in {path!r} is not an element name (optionally with [n] or [+])")
        index = match.group("index")
        steps.append(Step(match.group("name"), None if index is None else -1 if index == "+" else int(index)))
    return tuple(steps)


def set_path(node: dict[str, Any], steps: tuple[Step, ...], value: Any) -> None:
    """Put ``value`` at ``steps`` under ``node``. A dict value landing on an existing dict is merged, a list
    value landing on an existing list extends it (several ``given`` columns add up)."""
    *inner, last = steps
    for step in inner:
        node = _child(node, step)
    if last.index is None:
        _assign(node, last.name, value)
        return
    items = node.setdefault(last.name, [])
    if last.index == -1 or last.index >= len(items):
        items.append(value)
    elif isinstance(items[last.index], dict) and isinstance(value, dict):
        items[last.index].update(value)
    else:
        items[last.index] = value


def _child(node: dict[str, Any], step: Step) -> dict[str, Any]:
    if step.index is None:
        child = node.setdefault(step.name, {})
        return child
    items = node.setdefault(step.name, [])
    if step.index == -1 or step.index >= len(items):
        items.append({})
        return items[-1]
    return items[step.index]


def _assign(node: dict[str, Any], name: str, value: Any) -> None:
    current = node.get(name)
    if isinstance(current, dict) and isinstance(value, dict):
        current.update(value)
    elif isinstance(current, list) and isinstance(value, list):
        current.extend(value)
    else:
        node[name] = value
