"""The resource store on MongoDB (or any server that speaks its wire protocol, such as nx-27017).

Writes follow one rule that keeps them correct without a multi-document transaction: the insert of the
new version document is the commit point. Its ``_id`` (``Type/id/vid``) is unique, so a concurrent writer
that computed the same version number fails on that first operation and nothing of its change is applied.
Everything after it (clearing the previous version's ``live`` flag, search-index entries) is derived data,
applied idempotently in the same ordered request and marked done by clearing ``pending``. If that tail
fails, or the process dies, ``reconcile`` recomputes the derived data from the stored JSON; start-up runs
it for every version still ``pending``.

Why not a transaction per write: nx-27017's transactions are not isolated (measured: an uncommitted write
is visible to other connections, and an abort rolls back other sessions' writes too), and on MongoDB a
transaction adds a round trip to every create. Multi-resource atomicity (transaction Bundles) is a
separate concern of the Bundle processor.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from pymongo import AsyncMongoClient, DeleteMany, InsertOne, ReplaceOne, UpdateOne
from pymongo.errors import ClientBulkWriteException, PyMongoError

from fhir_hub.store.records import (
    StoredVersion,
    VersionChange,
    VersionTaken,
    resource_key,
    version_doc_id,
)
from fhir_hub.store.schema import SEARCH_INDEX, VERSIONS

log = logging.getLogger(__name__)

Indexer = Callable[[str, dict[str, Any]], frozenset[str]]


@dataclass(frozen=True)
class StoreCapabilities:
    engine: str  # "mongodb" or "nx-27017"
    client_bulk_write: bool  # one round trip for writes spanning collections (MongoDB 8.0+, nx-27017)
    transactions: bool
    isolated_transactions: bool


async def detect_capabilities(client: AsyncMongoClient) -> StoreCapabilities:
    hello = await client.admin.command("hello")
    build = await client.admin.command("buildInfo")
    is_nx = build.get("process") == "nx_27017"
    replicated = "setName" in hello or hello.get("msg") == "isdbgrid"
    return StoreCapabilities(
        engine="nx-27017" if is_nx else "mongodb",
        client_bulk_write=int(hello.get("maxWireVersion", 0)) >= 25,
        transactions=replicated or is_nx,
        isolated_transactions=replicated and not is_nx,
    )


@dataclass(frozen=True, slots=True)
class _Op:
    """One step of a write: insert, update (one), delete (many) or upsert (replace), on one collection."""

    kind: str
    collection: str
    first: dict[str, Any]  # the document to insert, or the filter
    second: dict[str, Any] | None = None  # the update or the replacement


@dataclass(frozen=True, slots=True)
class HistoryPage:
    versions: list[StoredVersion]
    more: bool


def entry_id(key: str, search_key: str) -> str:
    return hashlib.sha1(f"{key}\x00{search_key}".encode(), usedforsecurity=False).hexdigest()


def entry_doc(key: str, search_key: str) -> dict[str, str]:
    """A search entry, ``_id`` included: nx-27017 ignores the filter's ``_id`` when a replace upserts."""
    return {"_id": entry_id(key, search_key), "r": key, "k": search_key}


class MongoStore:
    def __init__(
        self,
        client: AsyncMongoClient,
        db_name: str,
        capabilities: StoreCapabilities,
        indexer: Indexer,
    ) -> None:
        self.client = client
        self.db = client[db_name]
        self.capabilities = capabilities
        self.versions = self.db[VERSIONS]
        self.index = self.db[SEARCH_INDEX]
        self._indexer = indexer

    # ----------------------------------------------------------------- reads
    async def current(self, rtype: str, rid: str) -> StoredVersion | None:
        """The newest version (possibly a deletion); independent of the derived ``live`` flags."""
        doc = await self.versions.find_one({"key": resource_key(rtype, rid)}, sort=[("vid", -1)])
        return StoredVersion.from_doc(doc) if doc else None

    async def version(self, rtype: str, rid: str, vid: int) -> StoredVersion | None:
        doc = await self.versions.find_one({"_id": version_doc_id(rtype, rid, vid)})
        return StoredVersion.from_doc(doc) if doc else None

    async def live_versions(self, keys: Iterable[str]) -> list[StoredVersion]:
        """Current, non-deleted versions of the given resources (one each, even mid-write)."""
        wanted = sorted(set(keys))
        if not wanted:
            return []
        newest: dict[str, StoredVersion] = {}
        async for doc in self.versions.find({"key": {"$in": wanted}, "live": {"$exists": True}}):
            v = StoredVersion.from_doc(doc)
            if v.key not in newest or v.vid > newest[v.key].vid:
                newest[v.key] = v
        return [newest[k] for k in wanted if k in newest]

    async def keys_for(self, search_keys: Iterable[str]) -> set[str]:
        """Resources having at least one of the search keys."""
        wanted = sorted(set(search_keys))
        if not wanted:
            return set()
        return {doc["r"] async for doc in self.index.find({"k": {"$in": wanted}}, {"r": 1})}

    async def live_page(self, rtype: str, after_key: str | None, limit: int) -> list[StoredVersion]:
        """Current resources of one type in key order, starting after ``after_key``."""
        query: dict[str, Any] = {"live": rtype}
        if after_key is not None:
            query["key"] = {"$gt": after_key}
        cursor = self.versions.find(query).sort("key", 1).limit(limit)
        return [StoredVersion.from_doc(doc) async for doc in cursor]

    async def count_live(self, rtype: str) -> int:
        return await self.versions.count_documents({"live": rtype})

    async def history(
        self,
        *,
        rtype: str | None = None,
        rid: str | None = None,
        since: int | None = None,
        before: tuple[int, str] | None = None,
        limit: int,
    ) -> HistoryPage:
        """Versions newest first; ``before`` is the (ts, doc id) of the last entry of the previous page."""
        query: dict[str, Any] = {}
        if rid is not None and rtype is not None:
            query["key"] = resource_key(rtype, rid)
        elif rtype is not None:
            query["type"] = rtype
        if since is not None:
            query["ts"] = {"$gte": since}
        if before is not None:
            ts, doc_id = before
            query["$or"] = [{"ts": {"$lt": ts}}, {"ts": ts, "_id": {"$lt": doc_id}}]
        cursor = self.versions.find(query).sort([("ts", -1), ("_id", -1)]).limit(limit + 1)
        docs = [StoredVersion.from_doc(doc) async for doc in cursor]
        return HistoryPage(docs[:limit], more=len(docs) > limit)

    @staticmethod
    def history_position(version: StoredVersion) -> tuple[int, str]:
        return version.ts, version_doc_id(version.rtype, version.rid, version.vid)

    # ---------------------------------------------------------------- writes
    async def write(self, change: VersionChange) -> None:
        """Apply one new version. Raises VersionTaken when the version number is already used."""
        v = change.version
        ops = self._operations(change)
        try:
            if self.capabilities.client_bulk_write:
                await self.client.bulk_write(self._bulk_models(ops), ordered=True)
            else:
                await self._write_sequentially(ops)
            return
        except (ClientBulkWriteException, PyMongoError) as exc:
            failure = exc
        # Which error a lost race produces is server-specific (nx-27017 sometimes reports a duplicate _id
        # as code 8), so the outcome is decided by reading the commit point back, not by the error code.
        if not await self._committed(ops[0].first):
            raise failure
        log.warning("derived data of %s/_history/%s not applied (%s); reconciling", v.key, v.vid, failure)
        await self.reconcile(v.rtype, v.rid)

    async def _committed(self, doc: dict[str, Any]) -> bool:
        """True if our version document is stored; VersionTaken if another writer's is."""
        stored = await self.versions.find_one({"_id": doc["_id"]}, {"w": 1})
        if stored is None:
            return False
        if stored.get("w") != doc["w"]:
            raise VersionTaken(doc["key"])
        return True

    def _operations(self, change: VersionChange) -> list[_Op]:
        """The change as an ordered list: the version insert (the commit point) first, ``pending`` cleared last."""
        v = change.version
        doc = v.to_doc() | {"pending": True, "w": secrets.token_hex(8)}
        ops = [_Op("insert", VERSIONS, doc)]
        if change.previous_vid is not None:
            previous = version_doc_id(v.rtype, v.rid, change.previous_vid)
            ops.append(_Op("update", VERSIONS, {"_id": previous}, {"$unset": {"live": ""}}))
        if change.index_remove:
            ids = sorted(entry_id(v.key, k) for k in change.index_remove)
            ops.append(_Op("delete", SEARCH_INDEX, {"_id": {"$in": ids}}))
        for k in sorted(change.index_add):
            entry = entry_doc(v.key, k)
            ops.append(_Op("upsert", SEARCH_INDEX, {"_id": entry["_id"]}, entry))
        ops.append(_Op("update", VERSIONS, {"_id": doc["_id"]}, {"$unset": {"pending": ""}}))
        return ops

    def _bulk_models(self, ops: list[_Op]) -> list[Any]:
        models: list[Any] = []
        for op in ops:
            ns = f"{self.db.name}.{op.collection}"
            if op.kind == "insert":
                models.append(InsertOne(namespace=ns, document=op.first))
            elif op.kind == "update":
                models.append(UpdateOne(namespace=ns, filter=op.first, update=op.second))
            elif op.kind == "delete":
                models.append(DeleteMany(namespace=ns, filter=op.first))
            else:
                models.append(ReplaceOne(namespace=ns, filter=op.first, replacement=op.second, upsert=True))
        return models

    async def _write_sequentially(self, ops: list[_Op]) -> None:
        """Fallback for servers without the client-level bulkWrite command (MongoDB before 8.0)."""
        for op in ops:
            coll = self.db[op.collection]
            if op.kind == "insert":
                await coll.insert_one(op.first)
            elif op.kind == "update":
                await coll.update_one(op.first, op.second)
            elif op.kind == "delete":
                await coll.delete_many(op.first)
            else:
                await coll.replace_one(op.first, op.second, upsert=True)

    # ----------------------------------------------------------- repair
    async def reconcile(self, rtype: str, rid: str) -> None:
        """Recompute one resource's derived data from its newest stored version; idempotent."""
        latest = await self.current(rtype, rid)
        if latest is None:
            return
        key = latest.key
        await self.versions.update_many(
            {"key": key, "vid": {"$lt": latest.vid}, "live": {"$exists": True}}, {"$unset": {"live": ""}}
        )
        wanted: frozenset[str] = frozenset()
        if not latest.deleted and latest.json is not None:
            wanted = self._indexer(rtype, orjson.loads(latest.json))
        wanted_ids = {entry_id(key, k): k for k in wanted}
        have = {doc["_id"] async for doc in self.index.find({"r": key}, {"_id": 1})}
        stale = sorted(have - wanted_ids.keys())
        if stale:
            await self.index.delete_many({"_id": {"$in": stale}})
        for eid in sorted(wanted_ids.keys() - have):
            await self.index.replace_one({"_id": eid}, entry_doc(key, wanted_ids[eid]), upsert=True)
        await self.versions.update_many({"key": key, "pending": True}, {"$unset": {"pending": ""}})

    async def reconcile_pending(self) -> int:
        """Finish every write left half-applied (by a crash); returns how many resources were repaired."""
        keys = {(doc["type"], doc["rid"]) async for doc in self.versions.find({"pending": True}, {"type": 1, "rid": 1})}
        for rtype, rid in sorted(keys):
            await self.reconcile(rtype, rid)
        return len(keys)

