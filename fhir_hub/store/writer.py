"""The one write path: every create, update and delete, from any entry point, ends in ``Writer.commit``.

``commit`` validates, assigns id, version and ``lastUpdated``, serialises the JSON that reads will serve,
computes the search-index change and hands one ``VersionChange`` to the store. Later stages (patient
matching, sensitivity labels, the priority queue, audit) plug in here so that no entry point can skip them.

Concurrency: the version number is read, then written under a unique key. A writer that loses the race
retries from a fresh read, unless the client made its write conditional on the version it saw
(``If-Match``), in which case losing the race is exactly the 412 it asked for.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import orjson

from fhir_hub.errors import BadRequest, Conflict, PreconditionFailed
from fhir_hub.fhir.ids import IdFactory, check_id
from fhir_hub.fhir.instant import Clock, to_instant
from fhir_hub.fhir.validation import validate_resource
from fhir_hub.store.mongo import Indexer, MongoStore
from fhir_hub.store.records import SearchEntry, StoredVersion, VersionChange, VersionTaken

_MAX_ATTEMPTS = 25
_PENDING_GRACE_MICROS = 2_000_000  # a version pending longer than this was left by a crashed writer


@dataclass(frozen=True)
class Create:
    rtype: str
    resource: dict[str, Any]


@dataclass(frozen=True)
class Update:
    """PUT semantics: creates the resource with the client's id when it does not exist."""

    rtype: str
    rid: str
    resource: dict[str, Any]
    if_match: int | None = None


@dataclass(frozen=True)
class Delete:
    rtype: str
    rid: str
    if_match: int | None = None


WriteOp = Create | Update | Delete


@dataclass(frozen=True)
class WriteResult:
    version: StoredVersion
    created: bool  # a new resource (201), as opposed to a new version of an existing one
    changed: bool = True  # False when a delete found nothing to delete


class Writer:
    def __init__(self, store: MongoStore, *, clock: Clock, new_id: IdFactory, indexer: Indexer) -> None:
        self.store = store
        self.clock = clock
        self.new_id = new_id
        self.indexer = indexer

    async def commit(self, op: WriteOp) -> WriteResult:
        if isinstance(op, Create):
            validate_resource(op.resource, expected_type=op.rtype)
            return await self._create(op)
        if isinstance(op, Update):
            check_id(op.rid)
            body_id = op.resource.get("id")
            if body_id is None:
                raise BadRequest("Resource.id: the body of an update must carry the id from the URL",
                                 expression=[f"{op.rtype}.id"])
            if body_id != op.rid:
                raise BadRequest(f"Resource.id: the body has id {body_id!r} but the URL names {op.rid!r}",
                                 expression=[f"{op.rtype}.id"])
            validate_resource(op.resource, expected_type=op.rtype)
            return await self._put(op.rtype, op.rid, op.resource, if_match=op.if_match)
        return await self._delete(op)

    async def _create(self, op: Create) -> WriteResult:
        """A server-assigned id is new by construction: no read first, the unique version key still guards."""
        for _attempt in range(_MAX_ATTEMPTS):
            version, entries = self._version(op.rtype, self.new_id(), op.resource, vid=1, ts=self.clock(),
                                             method="POST")
            try:
                await self.store.write(VersionChange(version, None, entries, frozenset(), fresh=True))
            except VersionTaken:
                continue  # a generated id collided: take another
            return WriteResult(version, created=True)
        raise Conflict(f"{op.rtype}: could not allocate a new id; try again")

    async def _put(self, rtype: str, rid: str, resource: dict[str, Any], *, if_match: int | None) -> WriteResult:
        for _attempt in range(_MAX_ATTEMPTS):
            current = await self._settled_current(rtype, rid)
            _check_precondition(current, if_match)
            vid = current.vid + 1 if current else 1
            version, new_keys = self._version(rtype, rid, resource, vid=vid, ts=self._next_ts(current), method="PUT")
            old_keys = self._keys_of(current)
            change = VersionChange(version, current, new_keys - old_keys, old_keys - new_keys)
            try:
                await self.store.write(change)
            except VersionTaken:
                if if_match is not None:
                    raise _stale(if_match) from None
                continue
            return WriteResult(version, created=current is None or current.deleted)
        raise Conflict(f"{rtype}/{rid}: too many concurrent writes to this resource; try again")

    def _version(self, rtype: str, rid: str, resource: dict[str, Any], *, vid: int, ts: int, method: str
                 ) -> tuple[StoredVersion, frozenset[SearchEntry]]:
        stamped = stamp(resource, rtype=rtype, rid=rid, vid=vid, ts=ts)
        version = StoredVersion(rtype, rid, vid, ts, method, deleted=False, json=orjson.dumps(stamped))
        return version, self.indexer(rtype, stamped)

    async def _delete(self, op: Delete) -> WriteResult:
        check_id(op.rid)
        for _attempt in range(_MAX_ATTEMPTS):
            current = await self._settled_current(op.rtype, op.rid)
            if current is None or current.deleted:
                if op.if_match is not None:
                    raise _stale(op.if_match)
                gone = current or StoredVersion(op.rtype, op.rid, 0, 0, "DELETE", deleted=True, json=None)
                return WriteResult(gone, created=False, changed=False)
            _check_precondition(current, op.if_match)
            version = StoredVersion(op.rtype, op.rid, current.vid + 1, self._next_ts(current), "DELETE",
                                    deleted=True, json=None)
            change = VersionChange(version, current, frozenset(), self._keys_of(current))
            try:
                await self.store.write(change)
            except VersionTaken:
                if op.if_match is not None:
                    raise _stale(op.if_match) from None
                continue
            return WriteResult(version, created=False)
        raise Conflict(f"{op.rtype}/{op.rid}: too many concurrent writes to this resource; try again")

    async def _settled_current(self, rtype: str, rid: str) -> StoredVersion | None:
        """The current version once its search entries are applied, so two writes never interleave.

        A version still ``pending`` after the grace period was left by a writer that died; its entries are
        recomputed here rather than waited for.
        """
        deadline = time.monotonic() + _PENDING_GRACE_MICROS / 1_000_000
        for _ in range(10_000):
            current = await self.store.current(rtype, rid)
            if current is None or not current.pending:
                return current
            if self.clock() - current.ts > _PENDING_GRACE_MICROS or time.monotonic() > deadline:
                await self.store.reconcile(rtype, rid)
            else:
                await asyncio.sleep(0.005)
        raise Conflict(f"{rtype}/{rid}: a previous write is still being applied; try again")

    def _next_ts(self, current: StoredVersion | None) -> int:
        now = self.clock()
        return max(now, current.ts + 1) if current else now

    def _keys_of(self, current: StoredVersion | None) -> frozenset[SearchEntry]:
        if current is None or current.deleted or current.json is None:
            return frozenset()
        return self.indexer(current.rtype, orjson.loads(current.json))


def stamp(resource: dict[str, Any], *, rtype: str, rid: str, vid: int, ts: int) -> dict[str, Any]:
    """The resource as stored and served: server-owned id and meta first, the client's elements after."""
    meta = dict(resource.get("meta") or {})
    meta["versionId"] = str(vid)
    meta["lastUpdated"] = to_instant(ts)
    out: dict[str, Any] = {"resourceType": rtype, "id": rid, "meta": meta}
    for name, value in resource.items():
        if name not in out:
            out[name] = value
    return out


def _check_precondition(current: StoredVersion | None, if_match: int | None) -> None:
    if if_match is None:
        return
    if current is None or current.deleted or current.vid != if_match:
        raise _stale(if_match, current)


def _stale(if_match: int, current: StoredVersion | None = None) -> PreconditionFailed:
    now = "it does not exist" if current is None or current.deleted else f"the current version is {current.vid}"
    return PreconditionFailed(f"If-Match: version {if_match} is not the current version ({now})",
                              expression=["If-Match"])
