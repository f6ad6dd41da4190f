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
from dataclasses import dataclass
from typing import Any

import orjson

from fhir_hub.errors import BadRequest, Conflict, PreconditionFailed
from fhir_hub.fhir.ids import IdFactory, check_id
from fhir_hub.fhir.instant import Clock, to_instant
from fhir_hub.fhir.validation import validate_resource
from fhir_hub.store.mongo import Indexer, MongoStore
from fhir_hub.store.records import StoredVersion, VersionChange, VersionTaken

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
            return await self._put(op.rtype, self.new_id(), op.resource, method="POST", if_match=None,
                                   must_be_new=True)
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
            return await self._put(op.rtype, op.rid, op.resource, method="PUT", if_match=op.if_match,
                                   must_be_new=False)
        return await self._delete(op)

    async def _put(self, rtype: str, rid: str, resource: dict[str, Any], *, method: str, if_match: int | None,
                   must_be_new: bool) -> WriteResult:
        for _attempt in range(_MAX_ATTEMPTS):
            current = await self._settled_current(rtype, rid)
            if must_be_new and current is not None:
                rid = self.new_id()  # a collision of generated ids: take another
                continue
            _check_precondition(current, if_match)
            vid = current.vid + 1 if current else 1
            ts = self._next_ts(current)
            stamped = stamp(resource, rtype=rtype, rid=rid, vid=vid, ts=ts)
            version = StoredVersion(rtype, rid, vid, ts, method, deleted=False, json=orjson.dumps(stamped))
            new_keys = self.indexer(rtype, stamped)
            old_keys = self._keys_of(current)
            change = VersionChange(version, _live_vid(current), new_keys - old_keys, old_keys - new_keys)
            try:
                await self.store.write(change)
            except VersionTaken:
                if if_match is not None:
                    raise _stale(if_match) from None
                continue
            return WriteResult(version, created=current is None or current.deleted)
        raise Conflict(f"{rtype}/{rid}: too many concurrent writes to this resource; try again")

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
            change = VersionChange(version, current.vid, frozenset(), self._keys_of(current))
            try:
                await self.store.write(change)
            except VersionTaken:
                if op.if_match is not None:
                    raise _stale(op.if_match) from None
                continue
            return WriteResult(version, created=False)
        raise Conflict(f"{op.rtype}/{op.rid}: too many concurrent writes to this resource; try again")

    async def _settled_current(self, rtype: str, rid: str) -> StoredVersion | None:
        """The newest version once its own derived data is applied, so changes never interleave."""
        for _ in range(200):
            current = await self.store.current(rtype, rid)
            if current is None or not current.pending:
                return current
            if self.clock() - current.ts > _PENDING_GRACE_MICROS:
                await self.store.reconcile(rtype, rid)
            else:
                await asyncio.sleep(0.005)
        return await self.store.current(rtype, rid)

    def _next_ts(self, current: StoredVersion | None) -> int:
        now = self.clock()
        return max(now, current.ts + 1) if current else now

    def _keys_of(self, current: StoredVersion | None) -> frozenset[str]:
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


def _live_vid(current: StoredVersion | None) -> int | None:
    return current.vid if current is not None and not current.deleted else None


def _check_precondition(current: StoredVersion | None, if_match: int | None) -> None:
    if if_match is None:
        return
    if current is None or current.deleted or current.vid != if_match:
        raise _stale(if_match, current)


def _stale(if_match: int, current: StoredVersion | None = None) -> PreconditionFailed:
    now = "it does not exist" if current is None or current.deleted else f"the current version is {current.vid}"
    return PreconditionFailed(f"If-Match: version {if_match} is not the current version ({now})",
                              expression=["If-Match"])
