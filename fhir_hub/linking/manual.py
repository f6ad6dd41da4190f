"""What people decide about links: merge two persons, undo a merge, settle a pair on the review list.

Each goes through the same steps as the match step's own decisions (``linker.py``): a merge redirects one
master into the other (``replaced-by``, with the decision and its author in that version), an unmerge
rebuilds the merged master from its own records and the other without them, so nothing of any facility's
record changes and undoing a merge restores every resource's content as it was. What a person decided
against ("not one person") is kept (``store/link_decisions.py``) so no automatic match undoes it, and
every manual decision is logged with its author.
"""

from __future__ import annotations

from dataclasses import dataclass

from fhir_hub.errors import NotFound, UnprocessableResource
from fhir_hub.fhir.jsonio import loads
from fhir_hub.linking.elements import (
    MASTER_ID_PREFIX,
    Decision,
    is_master,
    master_of,
    redirect_of,
    with_master,
    without_master,
)
from fhir_hub.linking.golden import redirected_master
from fhir_hub.linking.linker import MATCHER, Linker, cccds_of, link_of
from fhir_hub.store.records import StoredVersion
from fhir_hub.store.writer import Update


@dataclass(frozen=True)
class MergeResult:
    kept: str  # the master in use afterwards
    merged: str  # the master redirected into it (merge) or restored (unmerge)


async def merge(linker: Linker, source: str, target: str, *, author: str, reason: str | None = None) -> MergeResult:
    """Make the persons of records ``source`` and ``target`` one: ``source``'s master is redirected into
    ``target``'s. Two different personal IDs are refused (a manual merge cannot make one person of two
    CCCDs); records already one person are answered as they are."""
    store = linker.store
    kept, merged = await _person_master(linker, target, "target-patient"), await _person_master(linker, source,
                                                                                                  "source-patient")
    if kept == merged:
        return MergeResult(kept, merged)
    async with store.claims.holding([f"master:{kept}", f"master:{merged}"]):
        ids = {key: await cccds_of(store, key) for key in (kept, merged)}
        if ids[kept] and ids[merged] and ids[kept] != ids[merged]:
            raise UnprocessableResource("source-patient: the two persons have different personal IDs (CCCD "
                                        f"{', '.join(sorted(ids[merged]))} and {', '.join(sorted(ids[kept]))}); "
                                        "they cannot be one person", expression=["source-patient"])
        decision = Decision("manual", author=author, matched=source)
        await linker._store_master(redirected_master(merged.removeprefix("Patient/"), kept, decision), None)
        await store.link_decisions.clear_distinct(kept, merged)
        await store.link_decisions.log("merge", merged, kept, author=author, at=linker.writer.clock(),
                                       **({"reason": reason} if reason else {}))
        await linker.rebuild(kept)
    return MergeResult(kept, merged)


async def unmerge(linker: Linker, merged: str, *, author: str, reason: str | None = None) -> MergeResult:
    """Undo the merge of master ``merged`` (automatic or manual): it is rebuilt from its own records, the
    master it was merged into without them, and the two are kept apart from then on. ``merged`` a source
    record: its own link is undone (``_detach``); ``MergeResult.merged`` is then its new master."""
    store = linker.store
    current = await store.current("Patient", merged.removeprefix("Patient/"))
    content = loads(current.json) if current is not None and current.json is not None else None
    if content is not None and current is not None and not is_master(content) and master_of(content) is not None:
        return await _detach(linker, current, author=author, reason=reason)
    if content is None or not is_master(content):
        raise NotFound(f"patient: {merged} is not a master record of this hub", expression=["patient"])
    into = redirect_of(content)
    if into is None:
        raise UnprocessableResource(f"patient: {merged} was not merged into another master; nothing to undo",
                                    expression=["patient"])
    async with store.claims.holding([f"master:{into}", f"master:{merged}"]):
        await store.link_decisions.set_distinct(into, merged, author=author, at=linker.writer.clock())
        await store.link_decisions.log("unmerge", merged, into, author=author, at=linker.writer.clock(),
                                       **({"reason": reason} if reason else {}))
        await linker.rebuild(merged, restore=True)
        await linker.rebuild(into)
    kept = await store.master_in_use(into) or into
    return MergeResult(kept, merged)


async def _detach(linker: Linker, record: StoredVersion, *, author: str, reason: str | None) -> MergeResult:
    """Undo a record's own link (automatic or manual): it becomes a person of its own, with a new master,
    kept apart from the records it was linked with; their master is rebuilt without it."""
    store = linker.store
    person = await store.person(record.key)
    if person is None or person.sources == {record.key}:
        raise UnprocessableResource(f"patient: {record.key} is the only record of its person; nothing to undo",
                                    expression=["patient"])
    new_master = f"Patient/{MASTER_ID_PREFIX}{linker.writer.new_id()}"
    async with store.claims.holding([f"master:{person.master}"]):
        at = linker.writer.clock()
        for other in sorted(person.sources - {record.key}):
            await store.link_decisions.set_distinct(record.key, other, author=author, at=at)
        assert record.json is not None
        decision = Decision("manual", author=author)
        result = await linker.writer.commit_unmatched(
            Update("Patient", record.rid, with_master(without_master(loads(record.json)), new_master, decision),
                   keep_source=True), caller=MATCHER)
        await store.link_decisions.log("unlink", record.key, person.master, author=author, at=at,
                                       **({"reason": reason} if reason else {}))
        await linker._new_master(new_master, result.version)
        await linker.rebuild(person.master)
    return MergeResult(person.master, new_master)


async def review(linker: Linker, record: str, candidate: str, *, same: bool, author: str,
                 reason: str | None = None) -> MergeResult | None:
    """Settle a pair of the review list: ``same``: their persons are merged (``candidate``'s into
    ``record``'s); otherwise they are kept apart from then on. Either way the pair leaves the list."""
    store = linker.store
    if candidate not in await reviews_of(linker, record) and record not in await reviews_of(linker, candidate):
        raise UnprocessableResource(f"candidate: {record} and {candidate} are not a pair on the review list",
                                    expression=["candidate"])
    result = None
    if same:
        result = await merge(linker, candidate, record, author=author, reason=reason)  # refused: still listed
    else:
        await store.link_decisions.set_distinct(record, candidate, author=author, at=linker.writer.clock())
    await linker.settle_review(record, candidate)
    await linker.settle_review(candidate, record)
    await store.link_decisions.log("review-same" if same else "review-different", record, candidate,
                                   author=author, at=linker.writer.clock(), **({"reason": reason} if reason else {}))
    return result


async def reviews_of(linker: Linker, record: str) -> tuple[str, ...]:
    """The records ``record`` may be the same person as, waiting for a person's decision."""
    linked = link_of(await linker.store.current("Patient", record.removeprefix("Patient/")))
    return linked[1].reviews if linked is not None else ()


async def _person_master(linker: Linker, record: str, name: str) -> str:
    if not record.startswith("Patient/") or record.count("/") != 1:
        raise UnprocessableResource(f"{name}: must reference a Patient (Patient/<id>)", expression=[name])
    current = await linker.store.current("Patient", record.removeprefix("Patient/"))
    if current is None or current.deleted:
        raise NotFound(f"{name}: {record} is not known to this server", expression=[name])
    person = await linker.store.person(record)
    if person is None:
        raise UnprocessableResource(f"{name}: {record} is not linked to a master yet", expression=[name])
    return person.master
