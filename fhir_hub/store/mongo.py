"""The resource store on MongoDB (or any server that speaks its wire protocol, such as nx-27017).

Reads: the current version by primary key; older versions from ``resource_history``; search entries by
one indexed key. Writes: the steps of ``plan.plan_write``, sent as one ordered client-level bulkWrite
where the server has it (MongoDB 8.0+, nx-27017), one request per step otherwise.

Whether a write took effect is decided by reading its commit point back (the current document carries
the writer's token), never by interpreting an error code: nx-27017 sometimes reports a lost race as code
8 instead of a duplicate key. Derived documents (those of every registered deriver, see ``derivers.py``:
the search index first) that did not get applied, because a request failed or the process died, are
recomputed from the stored JSON by ``reconcile``; start-up runs it for every current document still marked
``pending``.

Why not a multi-document transaction per write: nx-27017's transactions are not isolated (measured: an
uncommitted write is visible to other connections, and an abort rolls back other sessions' writes too),
and on MongoDB a transaction adds a round trip to every write. Groups of writes that must succeed or fail
together (transaction Bundles) go through ``transaction()``; see ``fhir_hub.store.transaction``.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

from pymongo import AsyncMongoClient, DeleteMany, InsertOne, UpdateOne
from pymongo.errors import ClientBulkWriteException, PyMongoError

from consent.model import FACILITY_SYSTEMS
from fhir_hub.fhir.access_facts import addressee, clinical_time, codes, security_labels
from fhir_hub.fhir.jsonio import loads
from fhir_hub.store import match_blocks, patient_links
from fhir_hub.store.audit_log import AuditLog
from fhir_hub.store.backend_clients import BackendClientDocs
from fhir_hub.store.claims import STALE_SECONDS, Claims
from fhir_hub.store.consent_epoch import changes_lookups, open_marker, read_epoch
from fhir_hub.store.count import count
from fhir_hub.store.derivers import Deriver
from fhir_hub.store.index_docs import each_key, match_filter, match_projection, match_slot, view
from fhir_hub.store.link_decisions import LinkDecisions
from fhir_hub.store.patient_links import Person
from fhir_hub.store.plan import (
    OPTIONAL_FIELDS as _OPTIONAL_FIELDS,
)
from fhir_hub.store.plan import (
    Step,
    WritePlan,
    derived_doc_changes,
    epoch_step,
    plan_write,
    set_document,
)
from fhir_hub.store.point_reads import PointReads
from fhir_hub.store.records import (
    EntryMatch,
    HistoryPage,
    HistoryPosition,
    StoredVersion,
    VersionChange,
    VersionTaken,
    resource_key,
    version_doc_id,
)
from fhir_hub.store.schema import (
    CONSENT_EPOCH,
    HISTORY,
    MATCH_BLOCKS,
    META,
    PATIENT_LINKS,
    RESOURCES,
    SEARCH_INDEX,
)
from fhir_hub.store.store_lock import StoreLock
from fhir_hub.store.transaction import CHUNK_STEPS, Transaction, WriteGate
from fhir_hub.store.used_assertions import UsedAssertions

log = logging.getLogger(__name__)

_HISTORY_ORDER = [("ts", -1), ("key", -1), ("vid", -1)]


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


def _history_filter(rtype: str | None, since: int | None, before: HistoryPosition | None) -> dict[str, Any]:
    query: dict[str, Any] = {}
    if rtype is not None:
        query["type"] = rtype
    if since is not None:
        query["ts"] = {"$gte": since}
    if before is not None:
        ts, key, vid = before
        query["$or"] = [{"ts": {"$lt": ts}}, {"ts": ts, "key": {"$lt": key}},
                        {"ts": ts, "key": key, "vid": {"$lt": vid}}]
    return query


_INDEX_FORMAT_ID = "search_index"
_SPLIT_RESOURCES = 32  # up to this many resources, a range is asked resource by resource


class MongoStore:
    def __init__(self, client: AsyncMongoClient, db_name: str, capabilities: StoreCapabilities,
                 derivers: tuple[Deriver, ...], *, claim_stale_seconds: float = STALE_SECONDS,
                 lock: StoreLock | None = None) -> None:
        self.client = client
        self.db = client[db_name]
        self.capabilities = capabilities
        self.current_docs = self.db[RESOURCES]
        self.history_docs = self.db[HISTORY]
        self.point_reads = PointReads(self.current_docs)
        self.index = self.db[SEARCH_INDEX]
        self.meta = self.db[META]
        self.derivers = derivers  # what each version's derived documents are (derivers.DERIVERS in the hub)
        # pymongo builds a Collection object per ``db[name]`` (measured: 7 µs, as much as sending a step)
        self.epoch = self.db[CONSENT_EPOCH]
        self._collections = {c.name: c for c in (self.current_docs, self.history_docs, self.index, self.epoch)}
        self._collections.update((d.collection, self.db[d.collection]) for d in derivers
                                 if d.collection not in self._collections)
        # Open on MongoDB; on nx-27017 a transaction must not share the server with any other write.
        # ``lock``: the other hub processes' writes kept out of a transaction too (nx-27017, ``store_lock.py``)
        self.gate = WriteGate(enabled=capabilities.transactions and not capabilities.isolated_transactions, lock=lock)
        self.audit_log = AuditLog(self.db, self.gate)
        self.claims = Claims(self.db, self.gate, stale_seconds=claim_stale_seconds)
        self.link_decisions = LinkDecisions(self.db, self.gate)
        self.used_assertions = UsedAssertions(self.db, self.gate)
        self.backend_clients = BackendClientDocs(self.db, self.gate)

    # ----------------------------------------------------------------- reads
    async def current(self, rtype: str, rid: str) -> StoredVersion | None:
        """The current version (possibly a deletion), or None for a resource never stored."""
        doc = await self.point_reads.get(resource_key(rtype, rid))
        return StoredVersion.from_doc(doc) if doc else None

    async def version(self, rtype: str, rid: str, vid: int) -> StoredVersion | None:
        current = await self.current(rtype, rid)
        if current is None or current.vid < vid:
            return None
        if current.vid == vid:
            return current
        doc = await self.history_docs.find_one({"_id": version_doc_id(rtype, rid, vid)})
        return StoredVersion.from_doc(doc) if doc else None

    async def live_versions(self, keys: Iterable[str]) -> list[StoredVersion]:
        """Current, non-deleted versions of the given resources, in key order."""
        wanted = sorted(set(keys))
        if not wanted:
            return []
        cursor = self.current_docs.find({"_id": {"$in": wanted}, "live": {"$exists": True}})
        return sorted([StoredVersion.from_doc(doc) async for doc in cursor], key=lambda v: v.key)

    async def live_facts(self, keys: Iterable[str]) -> list[StoredVersion]:
        """Current, non-deleted versions of the given resources without their content: what the access
        decision judges them by (``access_facts.py``), for a search's every match."""
        wanted = sorted(set(keys))
        if not wanted:
            return []
        cursor = self.current_docs.find({"_id": {"$in": wanted}, "live": {"$exists": True}}, {"json": 0})
        return [StoredVersion.from_doc(doc) async for doc in cursor]

    async def live_facts_of(self, rtype: str) -> list[StoredVersion]:
        """``live_facts`` of every current resource of a type, in one pass (a search without criteria)."""
        return [StoredVersion.from_doc(doc) async for doc in self.current_docs.find({"live": rtype}, {"json": 0})]

    async def live_among(self, keys: Iterable[str]) -> set[str]:
        """Which of the given resources exist and are not deleted (keys only, no documents loaded)."""
        wanted = sorted(set(keys))
        if not wanted:
            return set()
        cursor = self.current_docs.find({"_id": {"$in": wanted}, "live": {"$exists": True}}, {"_id": 1})
        return {doc["_id"] async for doc in cursor}

    async def entries(self, match: EntryMatch, *, limit: int = 0) -> list[dict[str, Any]]:
        """Index entries answering a match (``r``, ``k`` or ``c``, ``s``, ``lo``, ``hi``, ``v``); 0: no limit.

        Every request is one a single-field index serves: a match on several keys becomes one equality
        query per key, and a range over a few resources one query per resource (nx-27017 scans the whole
        collection for an ``$in`` on ``k`` or ``r`` unless an equality or a narrow range picks an index
        first: measured 128 ms against 0.7 ms per resource over 200,000 entries).
        """
        if match.any_key is not None:
            return await self._entries_each(each_key(match), limit)
        wide = match.scope is None and (match.prefix or match.upper is not None)  # a patient's range is narrow
        if wide and match.resources is not None and 1 < len(match.resources) <= _SPLIT_RESOURCES:
            return await self._entries_each((replace(match, resources=(key,)) for key in match.resources), limit)
        cursor = self.index.find(match_filter(match), match_projection(match))
        if limit:
            cursor = cursor.limit(limit)
        slot = match_slot(match)
        return [view(doc, slot) async for doc in cursor]

    async def match_candidates(self, keys: Iterable[str]) -> set[str]:
        """The Patients filed under any of these blocking keys (``store/match_blocks.py``)."""
        return await match_blocks.candidates(self.db[MATCH_BLOCKS], keys)

    async def person(self, key: str) -> Person | None:
        """Every record of the person ``key`` is a record of (``store/patient_links.py``)."""
        return await patient_links.person(self.db[PATIENT_LINKS], key)

    async def masters_in_use(self, keys: list[str]) -> dict[str, str | None]:
        return await patient_links.masters_in_use(self.db[PATIENT_LINKS], keys)

    async def people(self, keys: list[str]) -> dict[str, frozenset[str]]:
        """Every record of each key's person (``store/patient_links.py``)."""
        return await patient_links.people(self.db[PATIENT_LINKS], keys)

    async def people_born(self, keys: list[str]) -> tuple[dict[str, frozenset[str]], dict[str, str | None]]:
        """``people``, and the birth date each record below a master states (``store/patient_links.py``)."""
        return await patient_links.people_born(self.db[PATIENT_LINKS], keys)

    async def consent_epoch(self) -> str | None:
        """The token of the last write that could change a consent look-up (``consent_epoch.py``)."""
        return await read_epoch(self.epoch)

    async def new_consent_epoch(self) -> None:
        """Move the consent epoch on outside any write of a version: after a transaction's group, and at
        start-up (a group that stopped between its commit and this step left every cache stale)."""
        async with self.gate.shared():
            await self._send([epoch_step(secrets.token_hex(8))])

    async def _open_group(self, tx: Transaction) -> None:
        """Leave the group's open marker before it sends anything that changes look-ups: until it is
        removed, no process keeps look-ups (``consent_epoch.py``, a group in flight)."""
        marker = open_marker(secrets.token_hex(8))
        await self.epoch.insert_one(marker)
        tx.open_marker = marker["_id"]

    async def _close_group(self, tx: Transaction) -> None:
        """The epoch moved on (when the group sent anything), then its marker removed: in that order, so a
        reader never finds neither the marker nor the new epoch."""
        if tx.open_marker is None:
            return
        if tx.started:
            await self.new_consent_epoch()
        await self.epoch.delete_many({"_id": tx.open_marker})
        tx.open_marker = None

    async def facility_codes(self, organizations: list[str]) -> dict[str, str]:
        """The MoH facility code of each of these Organizations (``Organization/x``) that carries one."""
        found: dict[str, str] = {}
        for version in await self.live_versions(organizations):
            for identifier in loads(version.json or b"{}").get("identifier") or ():
                if identifier.get("system") in FACILITY_SYSTEMS and isinstance(identifier.get("value"), str):
                    found[version.key] = identifier["value"]
                    break
        return found

    async def on_review(self, limit: int) -> list[str]:
        return await patient_links.on_review(self.db[PATIENT_LINKS], limit)

    async def person_below(self, master: str) -> Person:
        """A master's own records, whether or not it was merged into another (an unmerge rebuilds it)."""
        return await patient_links.below(self.db[PATIENT_LINKS], master)

    async def master_in_use(self, key: str) -> str | None:
        return await patient_links.master_in_use(self.db[PATIENT_LINKS], key)

    async def _entries_each(self, matches: Iterable[EntryMatch], limit: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for match in matches:
            found += await self.entries(match, limit=limit - len(found) if limit else 0)
            if limit and len(found) >= limit:
                break
        return found

    async def live_keys(self, rtype: str) -> set[str]:
        """Keys of every current, non-deleted resource of a type (the universe of ``:not`` and ``:missing``)."""
        return {doc["_id"] async for doc in self.current_docs.find({"live": rtype}, {"_id": 1})}

    async def live_keys_updated(self, rtype: str, low: int | None, high: int | None) -> set[str]:
        """Keys of current resources of a type last updated within [low, high] (microseconds; None: open)."""
        bounds: dict[str, int] = {}
        if low is not None:
            bounds["$gte"] = low
        if high is not None:
            bounds["$lte"] = high
        query: dict[str, Any] = {"live": rtype, "ts": bounds} if bounds else {"live": rtype}
        return {doc["_id"] async for doc in self.current_docs.find(query, {"_id": 1})}

    async def live_page(self, rtype: str, after_key: str | None, limit: int,
                        skip: tuple[str, str] | None = None) -> list[StoredVersion]:
        """Current resources of one type in key order, starting after ``after_key``; with ``skip`` (a key
        range, both ends excluded), those in it left out: a page that ran into the range goes on from its
        end, one more request."""
        if skip is None:
            return await self._live_page(rtype, after_key, limit)
        low, high = skip
        kept: list[StoredVersion] = []
        cursor = after_key
        while len(kept) < limit:
            want = limit - len(kept)
            page = await self._live_page(rtype, cursor, want)
            kept += [v for v in page if not low < v.key < high]
            if len(page) < want:
                break
            last = page[-1].key
            cursor = high if low < last < high else last
        return kept

    async def _live_page(self, rtype: str, after_key: str | None, limit: int) -> list[StoredVersion]:
        query: dict[str, Any] = {"live": rtype}
        if after_key is not None:
            query["_id"] = {"$gt": after_key}
        cursor = self.current_docs.find(query).sort("_id", 1).limit(limit)
        return [StoredVersion.from_doc(doc) async for doc in cursor]

    async def count_live(self, rtype: str, skip: tuple[str, str] | None = None) -> int:
        total = await count(self.current_docs, {"live": rtype}, self.gate)
        if skip is None:
            return total
        low, high = skip
        return total - await count(self.current_docs, {"live": rtype, "_id": {"$gt": low, "$lt": high}}, self.gate)

    async def history(self, *, rtype: str | None = None, rid: str | None = None, since: int | None = None,
                      before: HistoryPosition | None = None, limit: int) -> HistoryPage:
        """Versions newest first; ``before`` is the position of the last entry of the previous page."""
        if rid is not None and rtype is not None:
            candidates = await self._instance_history(rtype, rid, since, before, limit)
        else:
            query = _history_filter(rtype, since, before)
            current = self.current_docs.find(query).sort(_HISTORY_ORDER).limit(limit + 1)
            older = self.history_docs.find(query).sort(_HISTORY_ORDER).limit(limit + 1)
            candidates = [StoredVersion.from_doc(d) async for d in current]
            candidates += [StoredVersion.from_doc(d) async for d in older]
        unique = {(v.key, v.vid): v for v in candidates}  # a history copy may exist of the current version
        ordered = heapq.nlargest(limit + 1, unique.values(), key=lambda v: v.position)
        more = len(ordered) > limit and limit > 0
        return HistoryPage(ordered[:limit], ordered[limit - 1].position if more else None)

    async def count_history(self, *, rtype: str | None = None, rid: str | None = None,
                            since: int | None = None) -> int:
        """How many versions ``history`` pages through (``Bundle.total`` of a history), from two counts.

        Of one resource: its older versions are those below the current version number, so a copy of the
        current version left in history by a write that died between its two steps is not counted. Of a
        type or all: current and older versions counted apart; such a copy (rare: only a process dying
        mid-write on a server without transactions leaves one) is counted twice until the resource is next
        written, which makes the copy a true older version."""
        if rid is not None and rtype is not None:
            current = await self.current(rtype, rid)
            if current is None:
                return 0
            older = _history_filter(None, since, None) | {"key": current.key, "vid": {"$lt": current.vid}}
            in_range = since is None or current.ts >= since
            return int(in_range) + await count(self.history_docs, older, self.gate)
        query = _history_filter(rtype, since, None)
        return await count(self.current_docs, query, self.gate) + await count(self.history_docs, query, self.gate)

    async def history_facts(self, *, rtype: str | None, since: int | None) -> list[StoredVersion]:
        """Every version ``history`` pages through for a type (or all), without content: what the access
        decision judges each by, to count what a consent-judged caller may see (as ``live_facts_of`` for a
        search). One version once, should a copy of the current one also be in history."""
        query = _history_filter(rtype, since, None)
        found: dict[tuple[str, int], StoredVersion] = {}
        for collection in (self.current_docs, self.history_docs):
            async for doc in collection.find(query, {"json": 0}):
                version = StoredVersion.from_doc(doc)
                found[(version.key, version.vid)] = version
        return list(found.values())

    async def count_history_of(self, keys: Iterable[str], *, since: int | None) -> int:
        """How many versions ``history_of`` pages through for these resources (same caveat as
        ``count_history`` of a type)."""
        wanted = sorted(set(keys))
        if not wanted:
            return 0
        bound = _history_filter(None, since, None)
        return (await count(self.current_docs, bound | {"_id": {"$in": wanted}}, self.gate)
                + await count(self.history_docs, bound | {"key": {"$in": wanted}}, self.gate))

    async def history_of(self, keys: Iterable[str], *, since: int | None, before: HistoryPosition | None,
                         limit: int) -> HistoryPage:
        """Versions of the given resources only, newest first: a resident's history (their compartment's
        resources) without reading anyone else's versions.

        The current documents come in one request; older versions are read only for a resource that has
        some (``vid`` > 1) and could still place one on this page: resources are visited by the newest
        position any of their versions can have, and the visit stops once the page is full of versions
        newer than that. A page costs one request plus one per such resource, however large the store.
        """
        wanted = sorted(set(keys))
        if not wanted or limit <= 0:
            return HistoryPage([], None)
        currents = [StoredVersion.from_doc(d) async for d in self.current_docs.find({"_id": {"$in": wanted}})]
        bounded = [(min(c.position, before) if before is not None else c.position, c) for c in currents
                   if since is None or c.ts >= since]
        bounded.sort(key=lambda pair: pair[0], reverse=True)
        found: dict[tuple[str, int], StoredVersion] = {}
        newest: list[HistoryPosition] = []  # a min-heap of the limit + 1 newest positions found so far

        def add(version: StoredVersion) -> None:
            if (version.key, version.vid) not in found:
                found[(version.key, version.vid)] = version
                heapq.heappush(newest, version.position)
                if len(newest) > limit + 1:
                    heapq.heappop(newest)

        for bound, current in bounded:
            if len(newest) > limit and newest[0] > bound:
                break  # every version of this resource, and of those after it, is older than the page
            if before is None or current.position < before:
                add(current)
            if current.vid > 1:
                query = _history_filter(None, since, before) | {"key": current.key}
                async for doc in self.history_docs.find(query).sort(_HISTORY_ORDER).limit(limit + 1):
                    add(StoredVersion.from_doc(doc))
        ordered = heapq.nlargest(limit + 1, found.values(), key=lambda v: v.position)
        more = len(ordered) > limit
        return HistoryPage(ordered[:limit], ordered[limit - 1].position if more else None)

    async def _instance_history(self, rtype: str, rid: str, since: int | None, before: HistoryPosition | None,
                                limit: int) -> list[StoredVersion]:
        current = await self.current(rtype, rid)
        if current is None:
            return []
        query = _history_filter(None, since, before) | {"key": current.key}
        cursor = self.history_docs.find(query).sort(_HISTORY_ORDER).limit(limit + 1)
        found = [StoredVersion.from_doc(d) async for d in cursor]
        in_range = (since is None or current.ts >= since) and (before is None or current.position < before)
        return [current, *found] if in_range else found

    # ---------------------------------------------------------------- writes
    async def write(self, change: VersionChange, tx: Transaction | None = None) -> None:
        """Store one new version. Raises VersionTaken when another writer stored this version first.

        Within a transaction the steps are only collected (sent by ``transaction`` at the end), or, on a
        server without transactions, written now and remembered for ``undo``.
        """
        token = secrets.token_hex(8)
        plan = plan_write(change, token)
        if tx is not None and tx.session is not None:
            if plan.epoch is not None and tx.open_marker is None:
                await self._open_group(tx)
            tx.add(plan)
            tx.changes[change.version.key] = change
            if tx.in_flight is not None:
                await asyncio.sleep(0)  # let the chunk under way reach the server while this task computes
            if tx.unsent >= CHUNK_STEPS and (tx.in_flight is None or tx.in_flight.done()):
                await self._send_chunk(tx)  # the server is idle: give it what has been collected meanwhile
            return
        async with self.gate.shared():
            await self._write_now(change, plan, token)
        if tx is not None:
            tx.written.append((change, token))
            tx.changes[change.version.key] = change

    async def _write_now(self, change: VersionChange, plan: WritePlan, token: str) -> None:
        v = change.version
        commit, derived = plan.requests()
        try:
            matched = await self._send(commit)
            if plan.condition is not None and not matched.get(plan.condition):
                raise VersionTaken(v.key)  # the document was no longer the version this writer read
        except (ClientBulkWriteException, PyMongoError) as failure:
            await self._settle_failed_commit(change, token, failure)
            return
        if derived:
            try:
                await self._send(derived)
            except PyMongoError as failure:
                log.warning("derived documents of %s/_history/%s not applied (%s); reconciling", v.key, v.vid, failure)
                await self.reconcile(v.rtype, v.rid)

    async def _settle_failed_commit(self, change: VersionChange, token: str, failure: Exception) -> None:
        v = change.version
        stored = await self.current_docs.find_one({"_id": v.key}, {"w": 1, "vid": 1})
        if stored is not None and stored.get("w") == token:
            log.warning("%s/_history/%s stored, its derived documents not (%s); reconciling", v.key, v.vid, failure)
            await self.reconcile(v.rtype, v.rid)
            return
        if change.fresh:  # entries written ahead of the commit point must not outlive it
            await self.reconcile(v.rtype, v.rid)
        if stored is not None and stored.get("vid", 0) >= v.vid:
            raise VersionTaken(v.key) from None
        raise failure

    async def _send(self, steps: list[Step], session: Any = None, *, one_request: bool = True) -> dict[int, int]:
        """Run steps in order; returns, per update step, how many documents it matched.

        ``one_request=False`` is for the chunks of a large transaction: nx-27017 binds a transaction to the
        database of its first command and refuses a second client-level bulkWrite (it targets ``admin``),
        so chunks go as collection commands, each run of inserts as one ``insert_many`` per collection
        (their order does not matter inside a transaction: every insert is a new document).
        """
        if one_request and self.capabilities.client_bulk_write and len(steps) > 1:
            bulk = await self.client.bulk_write(self._bulk_models(steps), ordered=True, verbose_results=True,
                                                session=session)
            return {i: r.matched_count for i, r in bulk.update_results.items()}
        matched: dict[int, int] = {}
        pending: dict[str, list[dict[str, Any]]] = {}  # a run of inserts, by collection (transactions only)
        for i, step in enumerate(steps):
            coll = self._collections[step.collection]
            if step.kind == "insert" and not one_request:
                pending.setdefault(step.collection, []).append(step.first)
                continue
            await self._insert_runs(pending, session)
            if step.kind == "insert":
                await coll.insert_one(step.first, session=session)
            elif step.kind == "delete":
                await coll.delete_many(step.first, session=session)
            else:
                result = await coll.update_one(step.first, step.second or {}, upsert=step.upsert, session=session)
                matched[i] = result.matched_count
        await self._insert_runs(pending, session)
        return matched

    async def _insert_runs(self, pending: dict[str, list[dict[str, Any]]], session: Any) -> None:
        for collection in sorted(pending, key=lambda c: c == RESOURCES):  # derived documents before their resources
            await self._collections[collection].insert_many(pending[collection], ordered=True, session=session)
        pending.clear()

    # --------------------------------------------------------- transactions
    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """Writes made with the yielded ``Transaction`` are stored together when the block ends without an
        error, or not at all. Raises VersionTaken when a resource changed under the group (retry it)."""
        if not self.capabilities.transactions:
            tx = Transaction(session=None)
            async with tx.held:
                try:
                    yield tx
                except BaseException:
                    await self.undo(tx)
                    raise
        else:
            async with self.client.start_session() as session:
                tx = Transaction(session=session)
                try:
                    async with tx.held:
                        try:
                            yield tx
                            if tx.unsent:
                                await self._send_chunk(tx, last=True)
                            await self._settle_chunk(tx)
                            for index, key in tx.conditions:
                                if not tx.matched.get(index):
                                    raise VersionTaken(key)
                        except BaseException:
                            if tx.started:
                                await self._settle_chunk(tx, failed=True)
                                await session.abort_transaction()
                            raise
                        if tx.started:
                            await session.commit_transaction()
                finally:
                    # outside the group and its gate: inside, concurrent groups on MongoDB would conflict on
                    # the one epoch document; after an abort too, as nx-27017 shows uncommitted writes (a
                    # group refused before it sent anything leaves the store, epoch included, as it was)
                    await self._close_group(tx)
        for step in tx.after_commit:
            await step()

    async def _send_chunk(self, tx: Transaction, *, last: bool = False) -> None:
        """Send the steps collected since the last chunk; the first chunk takes the gate and starts the
        server transaction. A chunk other than the last is sent in the background (see transaction.py)."""
        if not tx.started:
            assert tx.session is not None, "a transaction without a session is never sent in chunks"
            await tx.held.enter_async_context(self.gate.exclusive())
            await tx.session.start_transaction()
        await self._settle_chunk(tx)
        start, chunk = tx.sent, tx.steps[tx.sent:]
        tx.sent = len(tx.steps)

        only = last and start == 0  # the whole group in one chunk: one request

        async def send() -> dict[int, int]:
            matched = await self._send(chunk, tx.session, one_request=only)
            return {start + i: n for i, n in matched.items()}

        tx.in_flight = asyncio.create_task(send())
        if last:
            await self._settle_chunk(tx)

    @staticmethod
    async def _settle_chunk(tx: Transaction, *, failed: bool = False) -> None:
        """Wait for the chunk under way; after a failure elsewhere, only for it to stop (its error is moot)."""
        task, tx.in_flight = tx.in_flight, None
        if task is None:
            return
        if not failed:
            tx.matched.update(await task)
            return
        try:
            await task
        except BaseException:  # noqa: BLE001 - the transaction is being aborted for another error already
            pass

    async def undo(self, tx: Transaction) -> None:
        """Put back what a group wrote without a server transaction, newest first (idempotent)."""
        for change, token in reversed(tx.written):
            v = change.version
            async with self.gate.shared():
                if change.previous is None:
                    await self.current_docs.delete_one({"_id": v.key, "w": token})
                else:
                    old = change.previous
                    restored = set_document(old.current_doc(), optional=_OPTIONAL_FIELDS)
                    await self.current_docs.update_one({"_id": v.key, "w": token}, restored)
                    await self.history_docs.delete_one({"_id": version_doc_id(old.rtype, old.rid, old.vid)})
                await self.reconcile(v.rtype, v.rid)
        tx.written.clear()

    def _bulk_models(self, steps: list[Step]) -> list[Any]:
        models: list[Any] = []
        for step in steps:
            ns = f"{self.db.name}.{step.collection}"
            if step.kind == "insert":
                models.append(InsertOne(namespace=ns, document=step.first))
            elif step.kind == "delete":
                models.append(DeleteMany(namespace=ns, filter=step.first))
            else:
                models.append(UpdateOne(namespace=ns, filter=step.first, update=step.second or {}, upsert=step.upsert))
        return models

    # ----------------------------------------------------------- repair
    async def reconcile(self, rtype: str, rid: str) -> None:
        """Recompute one resource's derived documents, for every registered deriver, from its current stored
        version (a deletion's: what each deriver keeps of a deleted resource); idempotent."""
        async with self.gate.shared():
            await self._reconcile(rtype, rid)

    async def _reconcile(self, rtype: str, rid: str) -> None:
        current = await self.current(rtype, rid)
        key = resource_key(rtype, rid)
        resource = loads(current.json) if current is not None and current.json is not None else None
        if current is not None and resource is not None:  # first: the index documents carry the facts too
            current = await self._refresh_facts(current, resource)
        changes: list[Step] = []
        for deriver in self.derivers:
            wanted = deriver.derive(current, resource) if current is not None else []
            stored = self._collections[deriver.collection].find({"r": key})
            changes += derived_doc_changes(deriver.collection, {doc["_id"]: doc async for doc in stored}, wanted)
        if changes_lookups(rtype):  # the version itself may be what changed (a consent withdrawn, then a crash)
            changes.append(epoch_step(secrets.token_hex(8)))
        if changes:
            await self._send(changes)
        if current is not None and current.pending:
            await self.current_docs.update_one({"_id": key, "vid": current.vid}, {"$unset": {"pending": ""}})

    async def _refresh_facts(self, current: StoredVersion, resource: dict[str, Any]) -> StoredVersion:
        """The access facts a version stored before they existed (or by an older extractor) lacks; returns
        the version with them."""
        fresh = replace(current, labels=security_labels(resource), codes=codes(resource),
                        when=clinical_time(resource), addressee=addressee(current.rtype, resource, current.source))
        if fresh != current:
            await self.current_docs.update_one({"_id": current.key, "vid": current.vid},
                                               set_document(fresh.current_doc(), optional=_OPTIONAL_FIELDS))
        return fresh

    async def index_format(self) -> str | int | None:
        """The format of the stored search entries (``indexing.index_format`` when they were written; a
        number before the zone was part of it)."""
        doc = await self.meta.find_one({"_id": _INDEX_FORMAT_ID})
        return doc.get("format") if doc else None

    async def set_index_format(self, value: str) -> None:
        await self.meta.update_one({"_id": _INDEX_FORMAT_ID}, {"$set": {"format": value}}, upsert=True)

    async def reindex_all(self, progress: Callable[[int], None] | None = None) -> int:
        """Recompute every resource's derived documents from its stored JSON (after the search entries'
        format changed); returns how many resources were visited. Idempotent, so an interrupted run is
        resumed by the next start."""
        after: str | None = None
        visited = 0
        while True:
            query = {"_id": {"$gt": after}} if after is not None else {}
            keys = [doc["_id"] async for doc in self.current_docs.find(query, {"_id": 1}).sort("_id", 1).limit(500)]
            if not keys:
                return visited
            for key in keys:
                rtype, rid = key.split("/", 1)
                await self.reconcile(rtype, rid)
            visited += len(keys)
            after = keys[-1]
            if progress is not None:
                progress(visited)

    async def reconcile_pending(self) -> int:
        """Finish every write left half-applied (by a crash); returns how many resources were repaired."""
        keys = {(d["type"], d["rid"]) async for d in self.current_docs.find({"pending": True}, {"type": 1, "rid": 1})}
        for rtype, rid in sorted(keys):
            await self.reconcile(rtype, rid)
        return len(keys)
