"""The store contract: every query and update shape ``MongoStore`` sends, with a plain-Python reference.

Each ``Shape`` builds concrete arguments for one kind of request from generated data. The contract test
runs it against the configured server and against ``reference_*`` below over the same documents; the
coverage test records what the store really sends during a workload and requires every recorded shape to
be one of these. A server answering a shape differently (nx-27017 does for several, see the README) fails
the suite instead of giving a clinician a wrong answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Doc = dict[str, Any]


# ----------------------------------------------------------------------------- shape of a request
def shape(value: Any) -> Any:
    """Values replaced by their type names; operators and field names kept."""
    if isinstance(value, dict):
        return tuple(sorted((k, shape(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        shapes = sorted({repr(shape(v)) for v in value})
        return ("[]", *shapes)
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    return type(value).__name__


# ---------------------------------------------------------------------------- reference semantics
_MISSING = object()


def _compare(op: str, have: Any, want: Any) -> bool:
    if have is _MISSING or type(have) is not type(want):
        return False
    return {"$gt": have > want, "$gte": have >= want, "$lt": have < want, "$lte": have <= want}[op]


def reference_match(doc: Doc, query: Doc) -> bool:
    for name, cond in query.items():
        if name == "$or":
            if not any(reference_match(doc, branch) for branch in cond):
                return False
            continue
        have = doc.get(name, _MISSING)
        if isinstance(cond, dict):
            for op, want in cond.items():
                if op == "$in":
                    ok = have is not _MISSING and have in want
                elif op == "$exists":
                    ok = (have is not _MISSING) == bool(want)
                else:
                    ok = _compare(op, have, want)
                if not ok:
                    return False
        elif have is _MISSING or have != cond:
            return False
    return True


def reference_find(docs: list[Doc], query: Doc, sort: list[tuple[str, int]] | None = None,
                   limit: int | None = None) -> list[Doc]:
    found = [d for d in docs if reference_match(d, query)]
    for field, direction in reversed(sort or []):
        found.sort(key=lambda d, f=field: d[f], reverse=direction < 0)
    return found[:limit] if limit else found


def reference_update(docs: list[Doc], query: Doc, update: Doc, *, many: bool) -> None:
    for doc in docs:
        if reference_match(doc, query):
            for name in update.get("$unset", {}):
                doc.pop(name, None)
            doc.update(update.get("$set", {}))
            if not many:
                return


def reference_replace_upsert(docs: list[Doc], doc_id: str, replacement: Doc) -> None:
    docs[:] = [d for d in docs if d["_id"] != doc_id] + [dict(replacement)]


# --------------------------------------------------------------------------------- the shapes
@dataclass(frozen=True)
class Shape:
    """One request kind: ``build(data)`` gives its arguments, drawn from the generated documents."""

    name: str
    collection: str  # "versions" or "index"
    kind: str  # find | count | update_many | update_one | delete_many | replace_upsert
    build: Callable[[dict[str, Any]], dict[str, Any]]


def _some(data: dict[str, Any], field: str, default: Any) -> Any:
    return data["pick"](field, default)


def _history(scope: str, since: bool, after: bool) -> Shape:
    def build(d: dict[str, Any]) -> dict[str, Any]:
        query: Doc = {}
        if scope == "instance":
            query["key"] = _some(d, "key", "Patient/a")
        if scope == "type":
            query["type"] = _some(d, "type", "Patient")
        if since:
            query["ts"] = {"$gte": d["ts"]}
        if after:
            query["$or"] = [{"ts": {"$lt": d["ts"]}}, {"ts": d["ts"], "_id": {"$lt": _some(d, "_id", "P")}}]
        return {"query": query, "sort": [("ts", -1), ("_id", -1)], "limit": d["limit"]}

    name = f"history {scope}{' since' if since else ''}{' after' if after else ''}"
    return Shape(name, "versions", "find", build)


def _unset_by_id(flag: str) -> Shape:
    return Shape(f"unset {flag} by _id", "versions", "update_one",
                 lambda d: {"query": {"_id": _some(d, "_id", "Patient/a/1")}, "update": {"$unset": {flag: ""}}})


SHAPES: tuple[Shape, ...] = (
    Shape("current", "versions", "find",
          lambda d: {"query": {"key": _some(d, "key", "Patient/a")}, "sort": [("vid", -1)], "limit": 1}),
    Shape("version by _id", "versions", "find",
          lambda d: {"query": {"_id": _some(d, "_id", "Patient/a/1")}, "limit": 1}),
    Shape("live versions of keys", "versions", "find",
          lambda d: {"query": {"key": {"$in": d["keys"]}, "live": {"$exists": True}}}),
    Shape("index lookup", "index", "find",
          lambda d: {"query": {"k": {"$in": d["search_keys"]}}, "projection": {"r": 1}}),
    Shape("entries of a resource", "index", "find",
          lambda d: {"query": {"r": _some(d, "r", "Patient/a")}, "projection": {"_id": 1}}),
    Shape("live page", "versions", "find",
          lambda d: {"query": {"live": _some(d, "type", "Patient")}, "sort": [("key", 1)], "limit": d["limit"]}),
    Shape("live page after", "versions", "find",
          lambda d: {"query": {"live": _some(d, "type", "Patient"), "key": {"$gt": _some(d, "key", "Patient/a")}},
                     "sort": [("key", 1)], "limit": d["limit"]}),
    Shape("count live", "versions", "count", lambda d: {"query": {"live": _some(d, "type", "Patient")}}),
    Shape("pending versions", "versions", "find",
          lambda d: {"query": {"pending": True}, "projection": {"type": 1, "rid": 1}}),
    *(_history(scope, since, after)
      for scope in ("system", "type", "instance") for since in (False, True) for after in (False, True)),
    Shape("unset older live flags", "versions", "update_many",
          lambda d: {"query": {"key": _some(d, "key", "Patient/a"), "vid": {"$lt": d["vid"]},
                               "live": {"$exists": True}},
                     "update": {"$unset": {"live": ""}}}),
    Shape("unset pending of a resource", "versions", "update_many",
          lambda d: {"query": {"key": _some(d, "key", "Patient/a"), "pending": True},
                     "update": {"$unset": {"pending": ""}}}),
    *(_unset_by_id(flag) for flag in ("live", "pending")),
    Shape("delete entries by _id", "index", "delete_many",
          lambda d: {"query": {"_id": {"$in": d["entry_ids"]}}}),
    Shape("upsert entry", "index", "replace_upsert",
          lambda d: {"doc_id": d["new_entry"]["_id"], "replacement": d["new_entry"]}),
)
