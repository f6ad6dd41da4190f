"""Link operations on a person's records: merge, unmerge, the review list and its decisions, and a person's
links with every decision behind them (issue 16). No HTTP here (``api/linking.py`` routes them).

Who may decide: a hospital system or clinician whose token may update Patients (``system/`` or ``user/``
``Patient.u``); a resident may read their own person's links but decides nothing (a resident merging
records is how one person's data would reach another's). What anyone sees is decided by the one reader:
``links`` and the review list only show records the caller may read, and a record hidden from the caller
is answered as one that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fhir_hub.auth.policy import require
from fhir_hub.errors import BadRequest, Forbidden
from fhir_hub.fhir.jsonio import loads
from fhir_hub.linking import manual
from fhir_hub.linking.elements import Decision
from fhir_hub.linking.golden import SourceRecord, golden_record
from fhir_hub.linking.linker import Linker, link_of
from fhir_hub.priority.record import refresh_persons
from fhir_hub.services.session import Session
from fhir_hub.store.records import StoredVersion


@dataclass(frozen=True)
class PersonLinks:
    """A person as the caller may see it: the master in use, merged masters, source records (each with
    the decision that linked it), and the log of people's decisions about them."""

    master: dict[str, Any] | None  # the golden record of the sources the caller may see
    merged: list[StoredVersion]
    sources: list[tuple[StoredVersion, Decision | None]]
    log: list[dict[str, Any]]


@dataclass(frozen=True)
class ReviewPair:
    record: StoredVersion
    candidate: StoredVersion


def _linker(session: Session) -> Linker:
    linker = session.hub.writer.linker
    if linker is None:
        raise BadRequest("Patient matching is switched off on this hub (FHIR_HUB_LINK_PATIENTS=false)",
                         code="not-supported")
    return linker


def _steward(session: Session) -> tuple[Linker, str]:
    """The linker and the author of a decision, once the caller may make it."""
    grant = require(session.caller, "Patient", "u")
    if grant.compartment is not None:
        raise Forbidden("Merging, unmerging and reviewing records is for hospital systems and clinicians; a "
                        "resident's token cannot link records")
    return _linker(session), session.caller.subject


async def merge(session: Session, source: str, target: str, reason: str | None) -> StoredVersion:
    """The two records' persons made one; the master in use afterwards."""
    linker, author = _steward(session)
    await session.reader.read("Patient", _rid(source))  # 404 for a record the caller may not see
    await session.reader.read("Patient", _rid(target))
    result = await manual.merge(linker, source, target, author=author, reason=reason)
    await refresh_persons(session.hub, [result.kept])
    return await _answer(session, result.kept, target)


async def unmerge(session: Session, merged_master: str, reason: str | None) -> StoredVersion:
    """The merge of ``merged_master`` undone; that master, restored."""
    linker, author = _steward(session)
    await session.reader.read("Patient", _rid(merged_master))
    result = await manual.unmerge(linker, merged_master, author=author, reason=reason)
    await refresh_persons(session.hub, [result.kept, result.merged])
    return await _answer(session, result.merged, merged_master)


async def review(session: Session, record: str, candidate: str, same: bool, reason: str | None
                 ) -> StoredVersion:
    """A pair of the review list settled; the record's master in use afterwards."""
    linker, author = _steward(session)
    await session.reader.read("Patient", _rid(record))
    await session.reader.read("Patient", _rid(candidate))
    await manual.review(linker, record, candidate, same=same, author=author, reason=reason)
    kept = await session.hub.store.master_in_use(record) or record
    await refresh_persons(session.hub, [record, candidate])
    return await _answer(session, kept, record)


async def _answer(session: Session, master: str, named: str) -> StoredVersion:
    """The master the decision left, when the caller may see it; else (a facility, which consent keeps from
    the hub's masters) the record the caller named, which it has just been shown."""
    shown = await session.reader.read_many([master])
    return shown[0] if shown else await session.reader.read("Patient", _rid(named))


async def review_list(session: Session, count: int) -> list[ReviewPair]:
    """Pairs waiting for a person's decision, both records visible to the caller."""
    _steward(session)
    keys = await session.hub.store.on_review(count)
    pairs: list[ReviewPair] = []
    for record in await session.reader.read_many(keys):
        linked = link_of(record)
        reviews = linked[1].reviews if linked is not None else ()
        for candidate in await session.reader.read_many(reviews):
            pairs.append(ReviewPair(record, candidate))
    return pairs[:count]


async def links(session: Session, rid: str) -> PersonLinks:
    """The person Patient/``rid`` is a record of, as far as the caller may see it."""
    _linker(session)
    await session.reader.read("Patient", rid)
    store = session.hub.store
    person = await store.person(f"Patient/{rid}")
    if person is None:
        return PersonLinks(None, [], [], [])
    visible = {v.key: v for v in await session.reader.read_many(person.records)}
    sources = [(visible[key], _decision(visible[key])) for key in sorted(person.sources) if key in visible]
    entries = await store.link_decisions.about(set(visible))
    named = {key for entry in entries for key in (entry.get("a"), entry.get("b")) if isinstance(key, str)}
    seen = set(visible) | {v.key for v in await session.reader.read_many(named - set(visible))}
    # an entry about a record of another person (an unlink names the master it left) is shown only when
    # the caller may see that record too
    log = [entry for entry in entries if entry.get("a") in seen and entry.get("b", entry.get("a")) in seen]
    merged = [visible[k] for k in sorted(person.merged) if k in visible]
    return PersonLinks(_master_view(visible.get(person.master), person.sources, sources, merged), merged, sources,
                       log)


def _master_view(master: StoredVersion | None, every_source: frozenset[str],
                 sources: list[tuple[StoredVersion, Decision | None]], merged: list[StoredVersion]
                 ) -> dict[str, Any] | None:
    """The stored master when the caller may see all its sources; otherwise the golden record of those it
    may see, computed for this answer: a master carries every source's identifiers and demographics, and
    must not hand out what the caller's access decision withholds. (A plain read of the master is the
    consent issue's to narrow the same way; see the README.)"""
    if master is None or master.json is None:
        return None
    if {v.key for v, _d in sources} == set(every_source):
        return dict(loads(master.json))
    if not sources:
        return None
    view = golden_record(master.rid, [SourceRecord(v.key, loads(v.json), v.ts) for v, _d in sources
                                      if v.json is not None], [m.key for m in merged])
    return {**view, "meta": {**view["meta"], "versionId": str(master.vid), "lastUpdated": master.last_updated}}


def _decision(version: StoredVersion) -> Decision | None:
    linked = link_of(version)
    return linked[1] if linked is not None else None


def _rid(reference: str) -> str:
    return reference.removeprefix("Patient/")
