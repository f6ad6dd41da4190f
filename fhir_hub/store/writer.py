"""The one write path: every create, update and delete, from any entry point, ends in ``Writer.commit``.

``commit`` checks the caller's scopes, compartment and facility boundary, reads the version a write builds
on, and runs the commit pipeline (``store/pipeline.py``): match the patient (a Patient), validate, label
sensitivity, stamp id, version, ``lastUpdated`` and ``meta.source`` (from the token, never from the
body), derive the documents of every registered deriver (the search index first), and hand one
``VersionChange`` to the store. Later stages plug into that pipeline, so no entry point can skip
them.

Concurrency: the version number is read, then written under a condition only one writer can meet. A writer
that loses the race retries from a fresh read, unless the client made its write conditional on the version
it saw (``If-Match``), in which case losing the race is exactly the 412 it asked for.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from fhir_hub.auth.caller import Caller
from fhir_hub.auth.policy import RESIDENT_REQUESTS, Grant, check_write, insufficient_scope, require, source_uri
from fhir_hub.auth.policy import grant as read_grant
from fhir_hub.errors import BadRequest, Conflict, Gone, NotFound, PreconditionFailed, UnprocessableResource
from fhir_hub.fhir.ids import IdFactory, check_id
from fhir_hub.fhir.instant import Clock
from fhir_hub.fhir.jsonio import loads
from fhir_hub.fhir.validation_ahead import ValidationAhead
from fhir_hub.linking.linker import Linker
from fhir_hub.matching import Model
from fhir_hub.store.consent_writes import agreed_consent
from fhir_hub.store.correction_requests import addressed_to, answered, routed_correction
from fhir_hub.store.labelling import Labelling
from fhir_hub.store.mongo import MongoStore
from fhir_hub.store.pipeline import CommitPipeline, Stamped
from fhir_hub.store.reader import ScopedReader
from fhir_hub.store.records import StoredVersion, VersionChange, VersionTaken
from fhir_hub.store.transaction import Transaction

_MAX_ATTEMPTS = 25
_PENDING_GRACE_MICROS = 2_000_000  # a version pending longer than this was left by a crashed writer


@dataclass(frozen=True)
class Create:
    """``rid``: an id chosen ahead among the server's own (a transaction Bundle needs it before writing)."""

    rtype: str
    resource: dict[str, Any]
    rid: str | None = None
    checked: bool = False  # the content steps have seen it already (see Update.checked)


@dataclass(frozen=True)
class Update:
    """PUT semantics: creates the resource with the client's id when it does not exist."""

    rtype: str
    rid: str
    resource: dict[str, Any]
    if_match: int | None = None
    # the hub re-storing a facility's record with a new link to its master (linking/linker.py): the version
    # keeps the facility's meta.source, so the facility may still change its own record
    keep_source: bool = False
    # the content steps have seen ``resource`` already: the match step validates what the client sent (a
    # transaction's worker verdict is found by that very object) and adds only the hub's own link after
    checked: bool = False


@dataclass(frozen=True)
class Delete:
    rtype: str
    rid: str
    if_match: int | None = None


@dataclass(frozen=True)
class Patch:
    """PATCH: ``apply`` turns the current content into the new one; it is applied again after a lost race,
    so a patch always applies to the version it is stored over (never a lost update)."""

    rtype: str
    rid: str
    apply: Callable[[dict[str, Any]], dict[str, Any]]
    if_match: int | None = None


WriteOp = Create | Update | Delete | Patch
Noticed = Callable[[StoredVersion], None]


class Existence(Protocol):
    """The one reader's verdict on the resource a write reaches (``store/reader.py``): a resource the caller's
    access decision hides is answered exactly as a missing one."""

    async def permits(self, version: StoredVersion, permission: str, patients: frozenset[str] | None = None
                      ) -> bool: ...


def _ignore(_version: StoredVersion) -> None:
    return None


@dataclass(frozen=True)
class WriteResult:
    version: StoredVersion
    created: bool  # a new resource (201), as opposed to a new version of an existing one
    changed: bool = True  # False when a delete found nothing to delete


class Writer:
    def __init__(self, store: MongoStore, *, clock: Clock, new_id: IdFactory, source_prefix: str,
                 validation: ValidationAhead | None = None, link_patients: bool = True,
                 match_model: Model | None = None) -> None:
        self.store = store
        self.validation = validation or ValidationAhead(0)
        # the store's derivers: it repairs them
        self.pipeline = CommitPipeline(store.derivers, self.validation, Labelling(store))
        self.clock = clock
        self.new_id = new_id
        self.source_prefix = source_prefix
        self.linker: Linker | None = Linker(self, match_model) if link_patients else None

    async def commit(self, op: WriteOp, *, caller: Caller, tx: Transaction | None = None,
                     noticed: Noticed | None = None, reader: Existence | None = None) -> WriteResult:
        """Store ``op``; within ``tx`` the store keeps it until the whole group is committed.

        ``noticed`` is told of the existing version a write reaches before any access check, so that an
        attempt on a patient's record is audited against that patient even when it is refused. ``reader``
        (the request's scoped reader; by default one made for ``caller``) says whether that version exists
        for the caller. A Patient goes through the match step first (``linking/linker.py``), which stores
        it with its link to the person's master record.
        """
        if op.rtype == "Patient" and self.linker is not None:
            def plain(linked: WriteOp) -> Awaitable[WriteResult]:
                return self.commit_unmatched(linked, caller=caller, tx=tx, noticed=noticed, reader=reader)

            return await self.linker.commit(op, tx=tx, plain=plain)
        return await self.commit_unmatched(op, caller=caller, tx=tx, noticed=noticed, reader=reader)

    async def commit_unmatched(self, op: WriteOp, *, caller: Caller, tx: Transaction | None = None,
                               noticed: Noticed | None = None, reader: Existence | None = None) -> WriteResult:
        """``commit`` without the match step: for the match step itself, which writes the records it linked
        and the masters it built."""
        seen = noticed or _ignore
        exists_for = reader if reader is not None else ScopedReader(self.store, caller)
        if isinstance(op, Create):
            grant = require(caller, op.rtype, "c")
            if not op.checked:
                op = replace(op, resource=await self.pipeline.content(op.rtype, op.resource, tx))
            return await self._create(op, caller, grant, tx, exists_for)
        if isinstance(op, Patch):
            check_id(op.rid)
            return await self._patch(op, caller, require(caller, op.rtype, "u"), read_grant(caller, op.rtype, "r"), tx,
                                     seen, exists_for)
        if isinstance(op, Update):
            grant = require(caller, op.rtype, "u")
            check_id(op.rid)
            body_id = op.resource.get("id")
            if body_id is None:
                raise BadRequest("Resource.id: the body of an update must carry the id from the URL",
                                 expression=[f"{op.rtype}.id"])
            if body_id != op.rid:
                raise BadRequest(f"Resource.id: the body has id {body_id!r} but the URL names {op.rid!r}",
                                 expression=[f"{op.rtype}.id"])
            if not op.checked:
                op = replace(op, resource=await self.pipeline.content(op.rtype, op.resource, tx))
            return await self._put(op, caller, grant, tx, seen, exists_for)
        return await self._delete(op, caller, require(caller, op.rtype, "d"), tx, seen, exists_for)

    async def _agreed(self, caller: Caller, rtype: str, resource: dict[str, Any],
                      current: StoredVersion | None) -> dict[str, Any]:
        """A privacy Consent with its writer's agreement recorded (``consent_writes.py``); others as they are."""
        if rtype != "Consent":
            return resource
        return await agreed_consent(caller, resource, current, store=self.store, now=self.clock())

    async def _create(self, op: Create, caller: Caller, grant: Grant, tx: Transaction | None,
                      exists_for: Existence) -> WriteResult:
        """A server-assigned id is new by construction: no read first, the unique key still guards. A
        resident's Task is a correction request, routed by the hub (``correction_requests.py``)."""
        source = source_uri(caller, self.source_prefix)
        op = replace(op, resource=await self._agreed(caller, op.rtype, op.resource, None))
        if op.rtype in RESIDENT_REQUESTS and caller.role == "resident":
            op = replace(op, resource=await routed_correction(
                caller, op.resource, reader=exists_for, store=self.store,
                organizations=ScopedReader(self.store, Caller.hub("correction-requests")), now=self.clock()))
        for _attempt in range(_MAX_ATTEMPTS):
            rid = op.rid if op.rid is not None else self.new_id()
            stamped = self.pipeline.stamp(op.rtype, rid, op.resource, vid=1, ts=self.clock(), method="POST",
                                          source=source)
            version = stamped.version
            check_write(caller, grant, rtype=op.rtype, source=source, new_patients=version.patients,
                        existing_source=None, exists=False)
            try:
                await self.store.write(self.pipeline.derive(stamped, None, fresh=True), tx)
            except VersionTaken:
                if op.rid is not None:
                    raise Conflict(f"{op.rtype}/{op.rid} already exists; send the Bundle again") from None
                continue  # a generated id collided: take another
            return WriteResult(version, created=True)
        raise Conflict(f"{op.rtype}: could not allocate a new id; try again")

    async def _put(self, op: Update, caller: Caller, grant: Grant, tx: Transaction | None,
                   seen: Noticed, exists_for: Existence) -> WriteResult:
        own_source = source_uri(caller, self.source_prefix)

        async def plan(current: StoredVersion | None) -> tuple[VersionChange, WriteResult] | WriteResult:
            keep = op.keep_source and caller.internal and current is not None
            source = current.source if keep and current is not None else own_source
            hidden = current is not None and not await exists_for.permits(current, "u")
            if hidden or (grant.compartment is not None and current is None):
                # a resident creates with POST: were PUT to create, a new id (201) and another person's
                # id (404) would answer differently and tell which ids exist
                raise NotFound(f"{op.rtype}/{op.rid} is not known to this server")
            if current is None:
                require(caller, op.rtype, "c")  # update-as-create creates
            resource = await self._agreed(caller, op.rtype, op.resource, current)
            stamped = self._replacement(caller, grant, source, current, op.rtype, op.rid, resource, "PUT")
            _check_precondition(current, op.if_match)  # after the access check: a 412 names the version
            if current is not None and _same_content(current, stamped.version):
                return WriteResult(current, created=False, changed=False)  # a no-op: no new version
            change = self.pipeline.derive(stamped, current)
            return change, WriteResult(change.version, created=current is None or current.deleted)

        return await self._on_current(op.rtype, op.rid, op.if_match, plan, tx, seen)

    async def _patch(self, op: Patch, caller: Caller, grant: Grant, read: Grant | None, tx: Transaction | None,
                     seen: Noticed, exists_for: Existence) -> WriteResult:
        """A patch reads what it changes (a JSON Patch ``test`` or a FHIRPath ``where()`` answers questions
        about the content through 200 vs 422), so it needs the right to read the target, and the facility
        boundary is checked before it is applied: a caller who may not read or change the resource learns
        nothing from the patch's outcome. A token without the read scope is refused after the target is
        noted for the audit, with the same answer whether the target exists or not."""
        source = source_uri(caller, self.source_prefix)

        async def plan(current: StoredVersion | None) -> tuple[VersionChange, WriteResult]:
            if read is None:
                raise insufficient_scope(caller, f"read on {op.rtype} (a patch reads the resource it changes)")
            visible = (current is not None and await exists_for.permits(current, "u")
                       and await exists_for.permits(current, "r"))
            if current is None or current.deleted or current.json is None or not visible:
                if current is not None and current.deleted and visible:
                    raise Gone(f"{op.rtype}/{op.rid} was deleted (version {current.vid}); there is nothing to patch")
                raise NotFound(f"{op.rtype}/{op.rid} is not known to this server")
            check_write(caller, grant, rtype=op.rtype, source=source, new_patients=None,
                        existing_source=current.source, exists=True, answering=addressed_to(caller, current))
            _check_precondition(current, op.if_match)
            patched = op.apply(loads(current.json))
            if patched.get("resourceType") != op.rtype or patched.get("id") != op.rid:
                raise UnprocessableResource(f"{op.rtype}.id: a patch may not change the resource's type or id",
                                            expression=[f"{op.rtype}.id"])
            patched = await self._agreed(caller, op.rtype, await self.pipeline.content(op.rtype, patched, tx), current)
            stamped = self._replacement(caller, grant, source, current, op.rtype, op.rid, patched, "PATCH")
            change = self.pipeline.derive(stamped, current)
            return change, WriteResult(change.version, created=False)

        return await self._on_current(op.rtype, op.rid, op.if_match, plan, tx, seen)

    def _replacement(self, caller: Caller, grant: Grant, source: str | None, current: StoredVersion | None,
                     rtype: str, rid: str, resource: dict[str, Any], method: str) -> Stamped:
        """The next version of a resource with new content (PUT, PATCH), once the caller may write it."""
        stamped = self.pipeline.stamp(rtype, rid, resource, vid=current.vid + 1 if current else 1,
                                      ts=self._next_ts(current), method=method, source=source)
        version = stamped.version
        check_write(caller, grant, rtype=rtype, source=source, new_patients=version.patients,
                    existing_source=current.source if current else None, exists=current is not None,
                    answering=answered(caller, current, resource))
        return stamped

    async def _delete(self, op: Delete, caller: Caller, grant: Grant, tx: Transaction | None,
                      seen: Noticed, exists_for: Existence) -> WriteResult:
        check_id(op.rid)
        source = source_uri(caller, self.source_prefix)

        async def plan(current: StoredVersion | None) -> tuple[VersionChange, WriteResult] | WriteResult:
            if current is None or current.deleted or not await exists_for.permits(current, "d"):
                if op.if_match is not None:
                    raise _stale(op.if_match)
                gone = StoredVersion(op.rtype, op.rid, 0, 0, "DELETE", deleted=True, json=None)
                return WriteResult(gone, created=False, changed=False)
            check_write(caller, grant, rtype=op.rtype, source=source, new_patients=None,
                        existing_source=current.source, exists=True)
            _check_precondition(current, op.if_match)
            stamped = self.pipeline.stamp_deletion(current, ts=self._next_ts(current), source=source)
            change = self.pipeline.derive(stamped, current)
            return change, WriteResult(change.version, False)

        return await self._on_current(op.rtype, op.rid, op.if_match, plan, tx, seen)

    async def _on_current(self, rtype: str, rid: str, if_match: int | None,
                          plan: Callable[[StoredVersion | None],
                                         Awaitable[tuple[VersionChange, WriteResult] | WriteResult]],
                          tx: Transaction | None, seen: Noticed) -> WriteResult:
        """Plan a change from the current version and store it; after a lost race, plan again from a fresh
        read, unless the client asked for a specific version (If-Match), which a lost race makes stale."""
        for _attempt in range(_MAX_ATTEMPTS):
            current = await self._settled_current(rtype, rid)
            if current is not None:
                seen(current)
            planned = await plan(current)
            if isinstance(planned, WriteResult):
                return planned  # nothing to store
            change, result = planned
            try:
                await self.store.write(change, tx)
            except VersionTaken:
                if if_match is not None:
                    raise _stale(if_match) from None
                continue
            return result
        raise Conflict(f"{rtype}/{rid}: too many concurrent writes to this resource; try again")

    async def _settled_current(self, rtype: str, rid: str) -> StoredVersion | None:
        """The current version once its derived documents are applied, so two writes never interleave.

        A version still ``pending`` after the grace period was left by a writer that died; its documents are
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


def _check_precondition(current: StoredVersion | None, if_match: int | None) -> None:
    if if_match is None:
        return
    if current is None or current.deleted or current.vid != if_match:
        raise _stale(if_match, current)


def _stale(if_match: int, current: StoredVersion | None = None) -> PreconditionFailed:
    now = "it does not exist" if current is None or current.deleted else f"the current version is {current.vid}"
    return PreconditionFailed(f"If-Match: version {if_match} is not the current version ({now})",
                              expression=["If-Match"])


_STAMPED_EACH_TIME = ("versionId", "lastUpdated")


def _same_content(current: StoredVersion, new: StoredVersion) -> bool:
    """Whether a PUT would store what is already there, but for the version stamps.

    Such an update is answered with the current version and stores nothing (FHIR lets a server skip a
    version that changes nothing): a facility re-sending the same file, or an HL7 v2 A08 that repeats the
    A01, then leaves the history as it was instead of growing it by one identical version per send.
    """
    if current.deleted or current.json is None or new.json is None or current.source != new.source:
        return False
    if abs(len(current.json) - len(new.json)) > 64:
        return False  # the stamps differ by a few characters at most; a larger difference is a change
    return _unstamped(_as_written(current.json)) == _unstamped(_as_written(new.json))


def _unstamped(resource: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in resource.get("meta", {}).items() if k not in _STAMPED_EACH_TIME}
    return {**resource, "meta": meta}


def _as_written(body: bytes) -> dict[str, Any]:
    """The stored JSON with each decimal kept as its text, for comparison only.

    ``jsonio.loads`` reads a document's decimals as floats, or as Decimals when any text in it looks like an
    inexact number, and a version's ``lastUpdated`` does whenever its microseconds end in 0: the same 10.9
    was then a Decimal in one version and a float in the other, which are not equal, and every re-sent file
    stored a new identical version of about one resource in five that holds a decimal. As text, 10.9 equals
    10.9 whatever else the document holds, and 5.40 still differs from 5.4 (its precision changed)."""
    parsed: dict[str, Any] = json.loads(body, parse_float=_decimal_text)
    return parsed


def _decimal_text(text: str) -> tuple[str, str]:
    return ("decimal", text)  # a tuple: nothing else JSON parses to one, so it equals no string or array
