"""Random mutations of a valid resource, for the validators' hypothesis tests: any element replaced by any
JSON value, one to three times. The validators must answer with issues, never crash."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += paths(value, (*prefix, i))
    return found


# fresh objects each draw (st.builds): a later mutation may write into one
VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8), st.builds(dict), st.builds(list),
                   st.builds(lambda: {"id": "x"}), st.dictionaries(st.sampled_from(["code", "system", "value", "url"]),
                                                         st.text(max_size=5), max_size=2))


def mutated(resource: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    """A deep copy of ``resource`` with one to three elements replaced by drawn values."""
    changed = copy.deepcopy(resource)
    found = paths(changed)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(found))
        parent = changed
        for step in path[:-1]:
            parent = parent[step]
        if isinstance(parent, dict | list):
            parent[path[-1]] = data.draw(VALUES)
        found = paths(changed) or [("id",)]
    return changed
