"""How search entries are laid out in ``search_index`` documents, and the queries that find them again.

A resource's entries are packed several to a document, one per **slot**: slot ``j`` of a document has the
fields ``kj`` (the key), ``cj`` (the key within a patient's compartment), ``sj`` (system, target type or
unit), ``lj``/``hj`` (the range of a date or number) and ``vj`` (the text as written). Every ``kj`` and ``cj``
has its own sparse single-field index. The slot of an entry is fixed by its ``Type|param`` alone (a hash),
so a query on one parameter asks one field, exactly as when each entry had its own document.

Why: nx-27017 spends about as much on each document it inserts as SQLite spends on three index updates
(measured in a transaction: 26-32 µs per one-entry document against ~47 µs for a six-slot one), so packing
the ~14 entries of a resource into ~5 documents cut the server's cost of indexing a resource by ~40 %
(``python -m bench bundles``). MongoDB serves the same shape from the same single-field indexes.

Documents are rebuilt from the resource's entries, deterministically (same entries, same documents), so a
write compares the documents of the old and the new version and sends only those that changed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import replace
from functools import lru_cache
from typing import Any

from fhir_hub.store.records import EntryMatch, SearchEntry

SLOTS = 6
_FLAT = ("k", "c", "s", "lo", "hi", "v")  # the names a reader of ``view`` sees
_PACKED = ("k", "c", "s", "l", "h", "v")
NAMES: tuple[tuple[str, ...], ...] = tuple(tuple(f"{p}{j}" for p in _PACKED) for j in range(SLOTS))
INDEXED = tuple(name for j in range(SLOTS) for name in (f"k{j}", f"c{j}"))


@lru_cache(maxsize=8192)
def _slot_of_param(head: str) -> int:
    return int.from_bytes(hashlib.md5(head.encode(), usedforsecurity=False).digest()[:4], "big") % SLOTS


def slot_of(key: str) -> int:
    """The slot of an entry key ``Type|param|value``: decided by ``Type|param``, never by the value, so a
    query knows it (a prefix or range within one parameter included)."""
    first = key.find("|")
    second = key.find("|", first + 1) if first >= 0 else -1
    return _slot_of_param(key if second < 0 else key[:second])


def scoped_key(scope: str, key: str) -> str:
    """An entry's key within a patient's compartment (Patient ids hold no ``|``, so the split is unambiguous)."""
    return f"{scope}|{key}"


def doc_id(resource: str, n: int) -> str:
    return f"{resource}|{n}"


FACTS = "a"  # a live version's access facts (``records.index_facts``), on each of its documents


def pack(resource: str, entries: Iterable[SearchEntry], facts: bytes | None = None) -> list[dict[str, Any]]:
    """The documents holding a resource's entries: document ``n`` holds the ``n``-th entry of each slot.
    ``facts``: the live version's access facts, copied onto every document (a match is found through any
    of them); a deletion's documents have none."""
    columns: list[list[SearchEntry]] = [[] for _ in range(SLOTS)]
    for entry in sorted(entries, key=lambda e: e.order):
        columns[slot_of(entry.key)].append(entry)
    docs = []
    for n in range(max(len(c) for c in columns)):
        doc: dict[str, Any] = {"_id": doc_id(resource, n), "r": resource}
        if facts is not None:
            doc[FACTS] = facts
        for j, column in enumerate(columns):
            if n < len(column):
                _put(doc, NAMES[j], column[n])
        docs.append(doc)
    return docs


def _put(doc: dict[str, Any], names: tuple[str, ...], e: SearchEntry) -> None:
    k, c, s, lo, hi, v = names
    if not e.scoped_only:
        doc[k] = e.key
    if e.scope is not None:
        doc[c] = scoped_key(e.scope, e.key)
    if e.system is not None:
        doc[s] = e.system
    if e.low is not None:
        doc[lo] = e.low
    if e.high is not None:
        doc[hi] = e.high
    if e.text is not None:
        doc[v] = e.text


def view(doc: dict[str, Any], slot: int) -> dict[str, Any]:
    """One slot of a document as a flat entry: ``r``, ``k`` and/or ``c``, ``s``, ``lo``, ``hi``, ``v``, and
    ``a``, the resource's access facts, when the document has them."""
    flat = {"r": doc["r"]}
    if FACTS in doc:
        flat[FACTS] = doc[FACTS]
    for name, packed in zip(_FLAT, NAMES[slot], strict=True):
        if packed in doc:
            flat[name] = doc[packed]
    return flat


def entry_from_view(flat: dict[str, Any]) -> SearchEntry:
    scope = flat["c"].split("|", 1)[0] if "c" in flat else None
    return SearchEntry(entry_key(flat), flat.get("s"), flat.get("lo"), flat.get("hi"), flat.get("v"), scope,
                       "k" not in flat)


def entries_in(doc: dict[str, Any]) -> list[SearchEntry]:
    """Every entry a stored document holds (the inverse of ``pack``)."""
    return [entry_from_view(view(doc, j)) for j, names in enumerate(NAMES) if names[0] in doc or names[1] in doc]


def entry_key(flat: dict[str, Any]) -> str:
    """The ``Type|param|value`` key of a flat entry, whether it was found by ``k`` or by ``c``."""
    return flat["k"] if "k" in flat else flat["c"].split("|", 1)[1]


def _after_prefix(prefix: str) -> str:
    """The smallest string above every string starting with ``prefix`` (code-point order, as UTF-8 bytes)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def each_key(match: EntryMatch) -> list[EntryMatch]:
    """A match on several keys (``any_key``) as one match per key, each served by a single-field index."""
    if match.any_key is None:
        return [match]
    return [replace(match, key=key, any_key=None) for key in match.any_key]


def match_slot(match: EntryMatch) -> int:
    return slot_of(match.key)


def match_filter(match: EntryMatch) -> dict[str, Any]:
    """The MongoDB filter of a match, on the fields of the match's slot; every value from a query is a
    literal string here, never an operator. A range (``upper``) stays within one parameter.

    Prefixes are sent as ranges: nx-27017 serves ``$gte``/``$lt`` from the index but scans for a ``$regex``
    on its own (measured: 0.9 ms against 258 ms over 155,000 entries); ``:contains`` adds its ``$regex`` to
    the range, which MongoDB and nx-27017 then apply to the range's entries only.
    """
    if match.any_key is not None:
        raise ValueError("MongoStore.entries splits a match on several keys into one query per key")
    k, c, s = NAMES[match_slot(match)][:3]
    field = k if match.scope is None else c

    def scoped(key: str) -> str:
        return key if match.scope is None else scoped_key(match.scope, key)

    key: Any
    if match.upper is not None:
        key = {"$gte": scoped(match.key), "$lt": scoped(match.upper)}
    elif match.prefix:
        start = scoped(match.key)
        key = {"$gte": start, "$lt": _after_prefix(start)}
        if match.contains:
            key["$regex"] = "^" + re.escape(start) + ".*" + re.escape(match.contains)
    else:
        key = scoped(match.key)
    query: dict[str, Any] = {field: key}
    if match.system is not None:
        query[s] = match.system
    if match.resources is not None:  # one resource: an equality, which nx-27017 serves from the index
        query["r"] = match.resources[0] if len(match.resources) == 1 else {"$in": list(match.resources)}
    return query


def match_projection(match: EntryMatch) -> dict[str, Any]:
    """Only the matched slot's fields come back, and the resource's access facts."""
    return {"_id": 0, "r": 1, FACTS: 1, **dict.fromkeys(NAMES[match_slot(match)], 1)}
