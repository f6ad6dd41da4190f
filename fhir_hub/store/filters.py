"""The hub's MongoDB filters evaluated in Python, over documents the server has not seen yet.

Two users: the store contract tests compare every server answer with it, and ``OwnWritesView`` applies the
very filter a search sends (``index_docs.match_filter``) to the index documents of writes a transaction
has collected but not committed. One evaluator serves both, so "what the server should answer" and "what
the hub adds for its own writes" cannot drift apart.

Only the operators the hub sends are understood: equality, ``$in``, ``$exists``, ``$regex`` (as Python's
``re``, which agrees with PCRE on the escaped literals and ``.*`` the hub builds), the four comparisons
(values of another type never match, as in MongoDB's type brackets) and a top-level ``$or``. Strings
compare by code point, which is MongoDB's order for UTF-8.
"""

from __future__ import annotations

import re
from operator import itemgetter
from typing import Any

Doc = dict[str, Any]
_MISSING = object()


def _compare(op: str, have: Any, want: Any) -> bool:
    if have is _MISSING or type(have) is not type(want):
        return False
    return {"$gt": have > want, "$gte": have >= want, "$lt": have < want, "$lte": have <= want}[op]


def _condition(have: Any, op: str, want: Any) -> bool:
    if op == "$in":
        return have is not _MISSING and have in want
    if op == "$nin":
        return have is _MISSING or have not in want
    if op == "$exists":
        return (have is not _MISSING) == bool(want)
    if op == "$regex":
        return isinstance(have, str) and re.search(want, have) is not None
    return _compare(op, have, want)


def matches(doc: Doc, query: Doc) -> bool:
    """Whether the server would select ``doc`` for ``query``."""
    for name, cond in query.items():
        if name == "$or":
            if not any(matches(doc, branch) for branch in cond):
                return False
            continue
        have = doc.get(name, _MISSING)
        if isinstance(cond, dict):
            if not all(_condition(have, op, want) for op, want in cond.items()):
                return False
        elif have is _MISSING or have != cond:
            return False
    return True


def find(docs: list[Doc], query: Doc, sort: list[tuple[str, int]] | None = None,
         limit: int | None = None) -> list[Doc]:
    found = [d for d in docs if matches(d, query)]
    for name, direction in reversed(sort or []):
        found.sort(key=itemgetter(name), reverse=direction < 0)
    return found[:limit] if limit else found
