"""Counting documents in a way every supported server answers from an index."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from fhir_hub.store.transaction import WriteGate


async def count(collection: AsyncCollection, query: dict[str, Any], gate: WriteGate) -> int:
    """How many documents match: ``$match`` then ``$count``, which both MongoDB and nx-27017 serve from an
    index. (pymongo's ``count_documents`` groups with ``$sum`` instead, which nx-27017 answers by scanning
    the whole collection: measured 640 ms against 0.9 ms for 4,000 of 12,000 resources.)

    Under the write gate, as a write: nx-27017 runs an aggregation inside a SQLite savepoint on the one
    connection every session shares, and releasing it releases a transaction's savepoint opened meanwhile
    ("no such savepoint" at the commit of a Bundle sent while a client counted). Open on MongoDB."""
    async with gate.shared():
        cursor = await collection.aggregate(count_pipeline(query))
        found = await cursor.to_list(1)
    return found[0]["n"] if found else 0


def count_pipeline(query: dict[str, Any]) -> list[dict[str, Any]]:
    """The aggregation ``count`` sends (the store contract runs the same one)."""
    return [{"$match": query}, {"$count": "n"}]
