"""People's decisions about links, kept beside the records: "these two are not one person", and the log of
every manual merge, unmerge and review (issue 16).

Automatic decisions need no log of their own: each is stored in the source record's version (the ``refer``
link's extension) and a merge in the merged master's version (its ``replaced-by`` link's). A person's
decision must outlive the records it is about: a reviewer who says two records are different people, or
an operator who undoes a merge, must not see the next automatic match put them together again. Those
"distinct" pairs (``_id`` = ``distinct|<a>|<b>``, the keys in order) are what the match step consults;
log entries (``_id`` = ``log|<time>|<random>``) are what ``Patient/{id}/$links`` reads back.

Not versioned resources: the log only grows, like the audit trail, and a merge followed by its unmerge
leaves every resource as it was (the property tests compare the stores), not this log.
"""

from __future__ import annotations

import secrets
from typing import Any

from fhir_hub.store.schema import LINK_DECISIONS
from fhir_hub.store.transaction import WriteGate


def pair_id(a: str, b: str) -> str:
    first, second = sorted((a, b))
    return f"distinct|{first}|{second}"


class LinkDecisions:
    def __init__(self, db: Any, gate: WriteGate) -> None:
        self.collection = db[LINK_DECISIONS]
        self.gate = gate

    async def distinct(self, a: str, b: str) -> bool:
        """Whether a person decided that ``a`` and ``b`` are not one person."""
        return await self.collection.find_one({"_id": pair_id(a, b)}, {"_id": 1}) is not None

    async def distinct_from(self, key: str, others: list[str]) -> set[str]:
        """Those of ``others`` a person decided are not the same person as ``key`` (one ``_id`` look-up)."""
        pairs = {pair_id(key, other): other for other in others}
        found = self.collection.find({"_id": {"$in": sorted(pairs)}}, {"_id": 1})
        return {pairs[doc["_id"]] async for doc in found}

    async def distinct_pairs(self, keys: list[str]) -> set[frozenset[str]]:
        """Every pair among ``keys`` a person decided are not one person (one ``_id`` look-up)."""
        pairs = {pair_id(a, b): frozenset((a, b)) for a in keys for b in keys if a < b}
        found = self.collection.find({"_id": {"$in": sorted(pairs)}}, {"_id": 1})
        return {pairs[doc["_id"]] async for doc in found}

    async def set_distinct(self, a: str, b: str, *, author: str, at: int) -> None:
        first, second = sorted((a, b))
        async with self.gate.shared():
            await self.collection.update_one({"_id": pair_id(a, b)},
                                             {"$set": {"k": "distinct", "a": first, "b": second, "by": author,
                                                       "at": at}}, upsert=True)

    async def clear_distinct(self, a: str, b: str) -> None:
        async with self.gate.shared():
            await self.collection.delete_many({"_id": pair_id(a, b)})

    async def log(self, action: str, a: str, b: str | None, *, author: str, at: int, **more: Any) -> None:
        doc = {"_id": f"log|{at:020d}|{secrets.token_hex(6)}", "k": "log", "action": action, "a": a, "by": author,
               "at": at, **({"b": b} if b is not None else {}), **more}
        async with self.gate.shared():
            await self.collection.insert_one(doc)

    async def about(self, keys: set[str]) -> list[dict[str, Any]]:
        """Log entries and distinct pairs naming any of ``keys``, oldest first (one equality per key and
        field: nx-27017 reads the whole collection for an ``$in`` on any field but ``_id``)."""
        found: dict[str, dict[str, Any]] = {}
        for key in sorted(keys):
            for field in ("a", "b"):
                async for doc in self.collection.find({field: key}):
                    found[doc["_id"]] = doc
        return sorted(found.values(), key=lambda d: (d.get("at", 0), d["_id"]))
