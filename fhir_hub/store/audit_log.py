"""The audit log: append-only, compact documents, one per patient an event touched.

Kept apart from the versioned resource store on purpose. Audit entries are written on every request, never
change and are read rarely, so they are stored small and batched (``insert_many``), without versions or
search entries: measured on the embedded store, a FHIR AuditEvent resource per read (with its compartment
entry) halved read throughput, while a compact entry costs about a quarter of a read. Following IHE Basic
Audit Log Patterns, an event that touches several patients is recorded once per patient, so a resident's
"who accessed my record" is one indexed lookup on ``p``. The entries are served through the API as FHIR
``AuditEvent`` resources (rendered by ``fhir_hub.audit``). Entries of an emergency access ("break the
glass") carry ``e`` (and their request entry ``ef``, the facility it is flagged to) under sparse indexes:
such entries are rare, and a resident lists theirs first, a facility reviews those of its staff. What no
query looks at is stored packed in one string (``packed``): the callers see entries as they wrote them.
"""

from __future__ import annotations

from typing import Any

import orjson
from pymongo.asynchronous.database import AsyncDatabase

from fhir_hub.store.count import count
from fhir_hub.store.schema import AUDIT
from fhir_hub.store.transaction import WriteGate

AuditPosition = tuple[int, str]  # (recorded, _id) of the last entry of a page


class AuditLog:
    def __init__(self, db: AsyncDatabase, gate: WriteGate | None = None) -> None:
        self.entries = db[AUDIT]
        self.gate = gate or WriteGate(enabled=False)

    async def append(self, docs: list[dict[str, Any]]) -> None:
        if docs:
            async with self.gate.shared():  # an open nx-27017 transaction would take these with it
                await self.entries.insert_many([packed(doc) for doc in docs], ordered=False)

    async def stored_ids(self, ids: list[str]) -> set[str]:
        """Which of these entries are stored (after a failed append, to retry only the others)."""
        return {doc["_id"] async for doc in self.entries.find({"_id": {"$in": ids}}, {"_id": 1})}

    async def get(self, event_id: str) -> dict[str, Any] | None:
        doc: dict[str, Any] | None = await self.entries.find_one({"_id": event_id})
        return unpacked(doc) if doc is not None else None

    @staticmethod
    def _filter(patients: list[str] | None, ids: list[str] | None, before: AuditPosition | None,
                since: int | None = None, withheld: list[str] | None = None, *, emergency: bool | None = None,
                flagged_to: str | None = None, flagged: bool = False) -> dict[str, Any]:
        """``withheld``: events the caller's access decision hides, left out of pages and counts alike.
        ``emergency``: only the entries of emergency requests (True) or only the others (False).
        ``flagged``: only the request entries of emergency requests, of the facility ``flagged_to`` if given
        (one equality on the sparse ``ef`` index). Seen in nx-27017's ``explain``: the emergency shapes (``e``
        1, ``ef``) read one sparse index; ``p`` with ``$in`` and ``e`` absent read every entry, as the
        AuditEvent search by patient always has (one equality per patient would not)."""
        query: dict[str, Any] = {}
        if patients is not None:
            query["p"] = {"$in": patients}
        if ids is not None or withheld:
            query["_id"] = {**({"$in": ids} if ids is not None else {}), **({"$nin": withheld} if withheld else {})}
        if since is not None:
            query["ts"] = {"$gte": since}
        if emergency is not None:
            query["e"] = 1 if emergency else {"$exists": False}
        if flagged and flagged_to is not None:
            query["ef"] = flagged_to
        elif flagged:  # nx-27017 scans for ``$exists`` alone; ``e`` takes it to the (rare) emergency entries
            query.update(e=1, ef={"$exists": True})
        if before is not None:
            ts, last = before
            query["$or"] = [{"ts": {"$lt": ts}}, {"ts": ts, "_id": {"$lt": last}}]
        return query

    async def page(self, *, patients: list[str] | None, ids: list[str] | None, before: AuditPosition | None,
                   limit: int, since: int | None = None, withheld: list[str] | None = None,
                   emergency: bool | None = None) -> list[dict[str, Any]]:
        """Entries newest first; ``patients`` None means any patient (or none)."""
        query = self._filter(patients, ids, before, since, withheld, emergency=emergency)
        return await self._newest_first(query, limit)

    async def count(self, *, patients: list[str] | None, ids: list[str] | None,
                    withheld: list[str] | None = None) -> int:
        return await count(self.entries, self._filter(patients, ids, None, withheld=withheld), self.gate)

    async def emergencies(self, *, facility: str | None, before: AuditPosition | None, limit: int,
                          withheld: list[str] | None = None) -> list[dict[str, Any]]:
        """The request entries of emergency accesses flagged to ``facility`` (None: to any), newest first."""
        query = self._filter(None, None, before, None, withheld, flagged=True, flagged_to=facility)
        return await self._newest_first(query, limit)

    async def count_emergencies(self, *, facility: str | None, withheld: list[str] | None = None) -> int:
        query = self._filter(None, None, None, None, withheld, flagged=True, flagged_to=facility)
        return await count(self.entries, query, self.gate)

    async def _newest_first(self, query: dict[str, Any], limit: int) -> list[dict[str, Any]]:
        cursor = self.entries.find(query).sort([("ts", -1), ("_id", -1)]).limit(limit)
        return [unpacked(doc) async for doc in cursor]


# What the log's queries filter and sort on (``_filter``, the indexes) stay fields of their own; the rest
# of an entry is one JSON string.
_QUERIED = frozenset({"_id", "ts", "p", "e", "ef"})


def packed(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry as stored: the queried fields, and the rest as one JSON string (``d``).

    Why: every read writes an entry, and the embedded store's cost of a document grows with its fields
    (measured on nx-27017, batches of 20: ~91 us per entry with ``who`` and ``req`` as subdocuments, ~72 us
    packed); while a batch is written, reads wait behind it."""
    kept = {k: v for k, v in entry.items() if k in _QUERIED}
    kept["d"] = orjson.dumps({k: v for k, v in entry.items() if k not in _QUERIED}).decode()
    return kept


def unpacked(doc: dict[str, Any]) -> dict[str, Any]:
    """The entry as written (an entry stored before entries were packed is returned as it is)."""
    rest = doc.get("d")
    return {**{k: v for k, v in doc.items() if k != "d"}, **orjson.loads(rest)} if rest is not None else doc
