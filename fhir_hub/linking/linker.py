"""The commit pipeline's match step: every Patient write, from any entry point, is matched and linked here.

``Writer.commit`` hands every Patient create, update, patch and delete to ``Linker.commit``, which

1. reads the record's match features and files it under its blocking keys (``fhir_hub/matching``);
2. **claims** those keys (``store/claims.py``) for as long as the write takes, so that two records of one
   person arriving at once in two hub processes are matched one after the other: two records that could
   be compared share a blocking key, so the second waits, then finds the first (race-free "create the
   person unless they exist");
3. compares the record with every candidate filed under its keys (a handful, never the population) and
   with the records an enclosing transaction wrote before it;
4. decides its master: the person it already belonged to, else the person of the best-scoring candidate
   it links with, else a new person; when it links with several persons, it proves they are one and the
   others' masters are redirected into that one; when the persons it links with hold two different
   personal IDs (two CCCDs never merge automatically), the records involved are grouped again from scratch
   instead (``regroup.py``), so the result does not depend on arrival order;
5. stores the record with the hub's ``refer`` link and the decision (``elements.py``) through the normal
   pipeline (validated, stamped, derived like any write), then rebuilds the master (``golden.py``),
   under a claim on the master so that concurrent rebuilds follow one another and the last one sees every
   source. Within a transaction Bundle the rebuild runs once the Bundle is committed.

A record that was linked keeps its person when an update still agrees (no flip-flopping between masters),
and a re-sent identical record stores nothing new.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from adapters.normalize import CCCD
from fhir_hub.auth.caller import Caller
from fhir_hub.errors import UnprocessableResource
from fhir_hub.fhir.jsonio import loads
from fhir_hub.linking.elements import (
    MASTER_ID_PREFIX,
    Decision,
    is_master,
    is_master_key,
    master_of,
    redirect_of,
    with_master,
    without_master,
)
from fhir_hub.linking.golden import SourceRecord, golden_record, redirected_master
from fhir_hub.matching import Comparison, MatchRecord, Model, block_keys, compare, features
from fhir_hub.store.records import StoredVersion

if TYPE_CHECKING:
    from fhir_hub.store.mongo import MongoStore
    from fhir_hub.store.transaction import Transaction
    from fhir_hub.store.writer import WriteOp, Writer, WriteResult

MATCHER = Caller.hub("matching")
Linked = tuple[str, Comparison, "str | None", "StoredVersion | None"]  # a candidate it links with: key, comparison,
# its master in use, its stored version (None: written earlier in the same transaction)
Doubt = tuple[str, Comparison, "str | None"]  # a candidate in the review band: key, comparison, master in use
_NOTES = "linking"  # the key of a transaction's notes: the Patients it linked so far
_MAX_REVIEWS = 3  # review-band pairs kept per record, best first (a reviewer settles the best; more is noise)


@dataclass
class _TxLinks:
    """What a transaction linked before its commit: later records of the same group must see them."""

    records: dict[str, tuple[MatchRecord, str]] = field(default_factory=dict)  # key -> (features, master)
    masters: set[str] = field(default_factory=set)  # to rebuild once committed


@dataclass(frozen=True)
class Plan:
    master: str  # the master the record refers to
    decision: Decision
    merge: tuple[str, ...] = ()  # masters in use to redirect into ``root``
    root: str | None = None  # the master in use the record's person ends up with (None: ``master``, new)
    adopt: tuple[tuple[StoredVersion, Comparison], ...] = ()  # linked candidates that had no master yet
    moves: tuple[tuple[StoredVersion, Decision, str | None], ...] = ()  # records another person's now (regrouped):
    # the decision, the master (None: the record's own new master, ``master``)
    touched: tuple[str, ...] = ()  # masters in use a regrouping changes (claimed, rebuilt)


class Linker:
    def __init__(self, writer: Writer, model: Model | None = None) -> None:
        self.writer = writer
        self.store = writer.store
        self.model = model or Model.default()

    # ------------------------------------------------------------------------------------------ writes
    async def commit(self, op: WriteOp, *, tx: Transaction | None,
                     plain: Callable[[WriteOp], Awaitable[WriteResult]]) -> WriteResult:
        """Store a Patient write (``plain`` stores it as the caller asked), matched and linked."""
        from fhir_hub.store.writer import Create, Delete, Patch

        if isinstance(op, Delete):
            before = await self.store.master_in_use(f"Patient/{op.rid}")
            result = await plain(op)
            if result.changed and before is not None:
                await self._rebuild_later({before}, tx)
            return result
        if isinstance(op, Create) and op.rid is None:
            op = replace(op, rid=self.writer.new_id())
        assert op.rid is not None
        key = f"Patient/{op.rid}"
        current = None if isinstance(op, Create) else await self.store.current("Patient", op.rid)  # new: no read
        if isinstance(op, Patch):
            if current is None or current.json is None:
                return await plain(op)  # the writer answers 404/410
            try:
                incoming = op.apply(loads(current.json))
            except Exception:  # noqa: BLE001 - the writer applies it again and answers the error properly
                return await plain(op)
        else:
            incoming = await self.writer.pipeline.content("Patient", op.resource, tx)  # the client's, checked
        if is_master(incoming):
            raise UnprocessableResource("Patient.meta.tag: the record-role 'master' tag marks the hub's own master "
                                        "records; a facility's Patient may not carry it",
                                        expression=["Patient.meta.tag"])
        if is_master_key(key):
            raise UnprocessableResource(f"Patient.id: ids starting with {MASTER_ID_PREFIX!r} are the hub's master "
                                        "records'; choose another id", expression=["Patient.id"])
        content = without_master(incoming)
        record = features(content, key)
        async with self._claimed(_match_claims(record), tx):
            existing = link_of(current)  # its link before this write
            plan = await self._plan(key, record, existing, tx)
            # a new person's master is known to no one else yet: nothing to claim
            masters = {*plan.merge, *plan.touched, *([plan.root] if plan.root is not None else [])}
            # within a transaction the masters are not claimed: the gate may be held exclusively by then, and
            # the holder of a master's claim may be waiting for it; a concurrent change to a master this
            # group redirects fails the group's commit (its version condition), which is then retried
            async with self._claimed([f"master:{m}" for m in sorted(masters)] if tx is None else [], tx):
                def linked(resource: dict[str, Any]) -> dict[str, Any]:
                    return with_master(without_master(resource), plan.master, plan.decision)

                if isinstance(op, Patch):
                    apply = op.apply
                    op = replace(op, apply=lambda cur: linked(apply(cur)))
                else:  # the hub's link added to checked content: not validated again
                    op = replace(op, resource=linked(content), checked=True)
                result = await plain(op)
                root = plan.root or plan.master
                for version, comparison in plan.adopt:
                    await self._adopt(version, comparison, root, key, tx)
                for version, why, master in plan.moves:
                    await self._move(version, why, master or plan.master, tx)
                for merged in plan.merge:
                    why = Decision("re-link", plan.decision.score, plan.decision.grade, matched=key)
                    await self._store_master(redirected_master(merged.removeprefix("Patient/"), root, why), tx)
                if tx is not None:
                    notes = tx.notes.setdefault(_NOTES, _TxLinks())
                    notes.records[key] = (record, root)
                if (plan.root is None and existing is None and not plan.adopt and not plan.moves
                        and result.version.json is not None):
                    await self._new_master(plan.master, result.version, tx)
                else:
                    await self._rebuild_later({root, *plan.touched, *([existing[0]] if existing else [])}, tx)
        return result

    async def _new_master(self, master: str, source: StoredVersion, tx: Transaction | None = None) -> None:
        """A new person's master, from the one record just stored (no read needed: it has no other).

        Within a transaction, it is one more write of the transaction, stored at its commit or not at all:
        nobody knows the new person before the commit, so nothing is claimed, and no rebuild after the
        commit is needed (it read the record back, claims included: ~22 ms of a 250-entry Synthea Bundle's
        ~315). Another record of the same person later in the transaction links to this master, and has it
        rebuilt from both once committed (``_rebuild_later``)."""
        from fhir_hub.errors import Conflict
        from fhir_hub.store.writer import Create

        assert source.json is not None
        rid = master.removeprefix("Patient/")
        golden = golden_record(rid, [SourceRecord(source.key, loads(source.json), source.ts)])
        try:
            await self.writer.commit_unmatched(Create("Patient", golden, rid=rid), caller=MATCHER, tx=tx)
        except Conflict:  # an operator's merge reached this person first: rebuild from what is stored
            if tx is not None:
                raise  # not expected: nobody knows the person before the commit; it fails the transaction
            await self.rebuild(master)

    async def _adopt(self, version: StoredVersion, comparison: Comparison, root: str, key: str,
                     tx: Transaction | None) -> None:
        """Link a candidate stored before it could be linked (before matching existed, or by a failed step):
        a new version whose only change is the hub's link; the facility's ``meta.source`` is kept."""
        from fhir_hub.store.writer import Update

        assert version.json is not None
        decision = Decision(comparison.rule, comparison.score, comparison.grade, matched=key)
        resource = with_master(without_master(loads(version.json)), root, decision)
        await self.writer.commit_unmatched(Update("Patient", version.rid, resource, keep_source=True),
                                           caller=MATCHER, tx=tx)

    async def _move(self, version: StoredVersion, why: Decision, master: str, tx: Transaction | None) -> None:
        """Re-point a record to ``master`` (a regrouping): a new version whose only change is the hub's link;
        the facility's content and ``meta.source`` are kept, the master it leaves is rebuilt without it.

        The record is not under this write's claims (it was found through its person, not its block keys),
        so it is written on the condition that it is still the version read: a facility's update meanwhile
        is never overwritten, its newer content is re-pointed instead."""
        from fhir_hub.errors import PreconditionFailed
        from fhir_hub.store.writer import Update

        current: StoredVersion | None = version
        for _attempt in range(3):
            if current is None or current.json is None:
                return  # deleted meanwhile: nothing to re-point
            content = loads(current.json)
            former = master_of(content)
            try:
                await self.writer.commit_unmatched(
                    Update("Patient", current.rid, with_master(without_master(content), master, why), keep_source=True,
                           if_match=current.vid), caller=MATCHER, tx=tx)
                break
            except PreconditionFailed:
                current = await self.store.current("Patient", current.rid)
        else:
            raise PreconditionFailed(f"Patient.link: {version.key} kept changing while it was re-linked; "
                                     "send the write again", expression=["Patient.link"])
        if former is not None and former[0] != master:
            await self.store.link_decisions.log("relink", version.key, former[0], author=why.author,
                                                at=self.writer.clock(), to=master, rule=why.rule)
        await self._rebuild_later({master, *([await self.store.master_in_use(former[0]) or former[0]]
                                             if former is not None else [])}, tx)

    async def settle_review(self, record: str, other: str) -> bool:
        """Take ``other`` off ``record``'s review list (a person decided on the pair): a new version of the
        record whose only change is its decision; False when the pair was not on the list."""
        from fhir_hub.store.writer import Update

        rid = record.removeprefix("Patient/")
        current = await self.store.current("Patient", rid)
        content = loads(current.json) if current is not None and current.json is not None else None
        linked = master_of(content) if content is not None else None
        if content is None or linked is None or other not in linked[1].reviews:
            return False
        master, decision = linked
        settled = replace(decision, reviews=tuple(k for k in decision.reviews if k != other))
        await self.writer.commit_unmatched(Update("Patient", rid, with_master(without_master(content), master, settled),
                                                  keep_source=True), caller=MATCHER)
        return True

    async def _store_master(self, resource: dict[str, Any], tx: Transaction | None) -> None:
        from fhir_hub.store.writer import Update

        await self.writer.commit_unmatched(Update("Patient", resource["id"], resource), caller=MATCHER, tx=tx)

    # ------------------------------------------------------------------------------------------ decision
    async def _plan(self, key: str, record: MatchRecord, existing: tuple[str, Decision] | None,
                    tx: Transaction | None) -> Plan:
        own = tx.notes.get(_NOTES) if tx is not None else None
        compared: list[Linked] = []
        doubtful: list[Doubt] = []
        keys = block_keys(record)
        pending = {k: v for k, v in (own.records.items() if own else ()) if k != key and keys & block_keys(v[0])}
        found = await self.store.match_candidates(keys)
        found.discard(key)
        considered = comparisons(record, await self.store.live_versions(found - pending.keys()), self.model)
        if considered:  # two batched look-ups, whatever the number of candidates
            others = [v.key for v, _c in considered]
            kept_apart = await self.store.link_decisions.distinct_from(key, others)
            roots_of = await self.store.masters_in_use(others)
            for version, comparison in considered:
                if version.key in kept_apart:
                    continue
                if comparison.decision == "link":
                    compared.append((version.key, comparison, roots_of[version.key], version))
                else:
                    doubtful.append((version.key, comparison, roots_of[version.key]))
        for other_key, (other_record, other_master) in sorted(pending.items()):
            comparison = compare(record, other_record, self.model)
            if comparison.decision == "link":
                compared.append((other_key, comparison, other_master, None))
            elif comparison.decision == "review":
                doubtful.append((other_key, comparison, other_master))
        mine = await self.store.master_in_use(key) if existing is not None else None
        if existing is not None and mine is None and own is not None and key in own.records:
            mine = own.records[key][1]
        if await self._in_conflict(record, mine, compared):
            return await self._regrouped(key, record, existing, mine, compared, doubtful, pending)
        best = max(compared, key=lambda c: (c[1].score, c[0]), default=None)
        roots = sorted({root for _k, _c, root, _v in compared if root is not None})
        if mine is not None:
            target = mine
        elif best is not None and best[2] is not None:
            target = best[2]
        elif roots:
            target = roots[0]
        else:
            target = None
        if best is not None:
            decision = Decision(best[1].rule, best[1].score, best[1].grade, matched=best[0])
        elif existing is not None:
            decision = existing[1]
        else:
            decision = Decision("new-person")
        adopt = tuple((v, c) for _k, c, root, v in compared if root is None and v is not None)
        reviews = tuple(k for k, _c, root in sorted(doubtful, key=lambda d: (-d[1].score, d[0]))
                        if target is None or root != target)[:_MAX_REVIEWS]
        decision = replace(decision, reviews=reviews)
        if target is None:
            new_master = f"Patient/{MASTER_ID_PREFIX}{self.writer.new_id()}"
            return Plan(new_master, decision, adopt=adopt)
        merge = tuple(sorted(await self._mergeable(target, [r for r in roots if r != target])))
        master = existing[0] if existing is not None and mine == target else target
        return Plan(master, decision, merge=merge, root=target, adopt=adopt)

    async def _in_conflict(self, record: MatchRecord, mine: str | None, compared: list[Linked]) -> bool:
        """Whether this write brings two personal IDs within reach of each other (or reaches a record set
        apart as ambiguous): then greedy linking would depend on arrival order, and the records involved
        are grouped again from scratch (``regroup.py``). Otherwise (almost always) linking greedily is exact."""
        if any(version is not None and _ambiguous(version) for _k, _c, _root, version in compared):
            return True
        roots = sorted({root for _k, _c, root, _v in compared if root is not None} | ({mine} if mine else set()))
        if not roots or (len(roots) == 1 and not record.cccd):
            return False
        held = await self._cccds_of_roots(roots)
        return len(frozenset([record.cccd] if record.cccd else []).union(*held.values())) > 1

    async def _regrouped(self, key: str, record: MatchRecord, existing: tuple[str, Decision] | None,
                         mine: str | None, compared: list[Linked], doubtful: list[Doubt],
                         pending: dict[str, tuple[MatchRecord, str]]) -> Plan:
        from fhir_hub.linking.regroup import regroup

        found = await regroup(self, key, record, mine, compared, pending)
        master = found.master or f"Patient/{MASTER_ID_PREFIX}{self.writer.new_id()}"
        if existing is not None and found.master is not None and existing[0] != master and mine == master:
            master = existing[0]  # still the same person: the record keeps the master it refers to
        decision = found.decision
        if not decision.reviews:
            in_group = found.members
            decision = replace(decision, reviews=tuple(
                k for k, _c, _root in sorted(doubtful, key=lambda d: (-d[1].score, d[0])) if k not in in_group
            )[:_MAX_REVIEWS])
        return Plan(master, decision, root=found.master, moves=found.moves, touched=found.touched)

    async def _cccds_of_roots(self, roots: list[str]) -> dict[str, frozenset[str]]:
        masters = {v.key: v for v in await self.store.live_versions(roots)} if roots else {}
        return {root: _cccds(masters.get(root)) for root in roots}

    async def _mergeable(self, target: str, others: list[str]) -> list[str]:
        """The persons that may be merged into ``target``'s automatically: all but those a person kept apart.
        Two different personal IDs never reach here: ``_in_conflict`` sends such a write to a regrouping."""
        return [other for other in others if not await self.store.link_decisions.distinct(target, other)]

    # ------------------------------------------------------------------------------------------ masters
    async def _rebuild_later(self, masters: set[str], tx: Transaction | None) -> None:
        """Rebuild now, or, within a transaction, once it is committed (its sources are visible only then)."""
        if tx is None:
            for master in sorted(masters):
                await self.rebuild(master)
            return
        notes = tx.notes.setdefault(_NOTES, _TxLinks())
        if not notes.masters:
            tx.after_commit.append(lambda: self._rebuild_all(notes.masters))
        notes.masters |= masters

    async def _rebuild_all(self, masters: set[str]) -> None:
        for master in sorted(masters):
            await self.rebuild(master)

    async def rebuild(self, master: str, *, restore: bool = False) -> None:
        """Make ``master`` (or the master it was merged into) the golden record of its sources, now;
        ``restore``: ``master`` itself, even if it was merged into another (an unmerge).

        Under the master's claim, so rebuilds of one person follow one another and each reads the sources
        after the previous finished: the last one always sees every source committed before it started."""
        async with self.store.claims.holding([f"master:{master}"]):
            rid = master.removeprefix("Patient/")
            current = await self.store.current("Patient", rid)
            forward = redirect_of(loads(current.json)) if current is not None and current.json is not None else None
            if forward is None or restore:
                await self._rebuilt(master, current)
                return
        await self.rebuild(forward)  # merged into another master: it stays a redirect, that one is rebuilt

    async def _rebuilt(self, master: str, current: StoredVersion | None) -> None:
        """Under the master's claim: its golden record from its own records (an unmerge: not its new
        person's), or its deletion when none is left."""
        rid = master.removeprefix("Patient/")
        person = await self.store.person_below(master)
        sources = await self.store.live_versions(person.sources)
        records = [SourceRecord(v.key, loads(v.json), v.ts) for v in sources if v.json is not None]
        if records:
            await self._store_master(golden_record(rid, records, sorted(person.merged)), None)
        elif current is not None and not current.deleted:
            from fhir_hub.store.writer import Delete

            await self.writer.commit_unmatched(Delete("Patient", rid), caller=MATCHER)

    # ------------------------------------------------------------------------------------------ claims
    @asynccontextmanager
    async def _claimed(self, keys: list[str], tx: Transaction | None) -> AsyncIterator[None]:
        """Hold claims for the block, or, within a transaction, until it ends (its writes are visible to
        other requests only once it is committed)."""
        if tx is None:
            async with self.store.claims.holding(keys):
                yield
            return
        await tx.held.enter_async_context(self.store.claims.holding(keys))
        yield


def comparisons(record: MatchRecord, versions: Iterable[StoredVersion], model: Model
             ) -> list[tuple[StoredVersion, Comparison]]:
    """Each stored source record ``record`` is not kept apart from, with the comparison: what the match
    step links or reviews, and what ``Patient/$match`` answers (masters are no candidates)."""
    found = []
    for version in versions:
        other = loads(version.json) if version.json is not None else None
        if other is None or is_master(other):
            continue
        comparison = compare(record, features(other, version.key), model)
        if comparison.decision != "apart":
            found.append((version, comparison))
    return found


def _ambiguous(version: StoredVersion) -> bool:
    """Whether the match step set this record apart because it links with holders of two personal IDs
    (``regroup.py``): any record linking with it is regrouped with it."""
    if version.json is None or b'"ambiguous"' not in version.json:  # almost always: no parse
        return False
    linked = link_of(version)
    return linked is not None and linked[1].rule == "ambiguous"


def link_of(version: StoredVersion | None) -> tuple[str, Decision] | None:
    """The master a stored record refers to and the decision behind it (None: not linked, deleted, absent)."""
    return master_of(loads(version.json)) if version is not None and version.json is not None else None


def match_claims(patient: dict[str, Any]) -> list[str]:
    """The claims the match step takes for this Patient: a transaction Bundle takes them before it starts
    (``bundles/processor.py``), so the match step never waits for a claim while holding the store's gate."""
    return _match_claims(features(without_master(patient)))


def _match_claims(record: MatchRecord) -> list[str]:
    return [f"match:{k}" for k in sorted(block_keys(record))]


async def cccds_of(store: MongoStore, master: str) -> frozenset[str]:
    """The personal IDs a master's golden record carries (every one its sources had)."""
    return _cccds(await store.current("Patient", master.removeprefix("Patient/")))


def _cccds(version: StoredVersion | None) -> frozenset[str]:
    if version is None or version.json is None:
        return frozenset()
    return frozenset(i["value"] for i in loads(version.json).get("identifier") or []
                     if isinstance(i, dict) and i.get("system") == CCCD and isinstance(i.get("value"), str))
