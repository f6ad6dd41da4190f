"""Reads inside a transaction that see the transaction's own writes before they are committed, or even sent.

Why: a batch Bundle's entries are committed in groups, one server transaction per group, and the writes of
a group are collected and sent together (bundles/processor.py). An entry's conditional search (its
If-None-Exist, a conditional update, a conditional reference) must still find what an earlier entry of the
same group wrote, exactly as it would had that entry been committed alone: Synthea's practitioner batch
refers to a Practitioner from the PractitionerRole right after it. The view answers those reads from the
store for every other resource, and for the resources the transaction wrote from its own changes, applying
to their index documents the very filter the store receives (``filters.matches`` over
``index_docs.match_filter``), so both halves follow one definition of a match.

The view is a ``ReadStore`` (store/protocol.py), so the readers take it in place of the store. It serves
the reads a conditional search makes, and the audit log (never written inside a transaction) as the store
does. Every other read (a version, history, paging, counts) raises ``DependsOnOwnWrites``: the caller then
commits what it has and runs the entry again on its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fhir_hub.store.audit_log import AuditLog
from fhir_hub.store.filters import matches
from fhir_hub.store.index_docs import INDEXED, SLOTS, each_key, match_filter, match_slot, view
from fhir_hub.store.patient_links import Person
from fhir_hub.store.protocol import ReadStore
from fhir_hub.store.records import EntryMatch, HistoryPage, HistoryPosition, StoredVersion, VersionChange
from fhir_hub.store.schema import SEARCH_INDEX
from fhir_hub.store.transaction import Transaction


class DependsOnOwnWrites(Exception):  # noqa: N818 - a signal to commit first, not an error
    """A read the view cannot combine with the transaction's uncommitted writes."""


class OwnIndex:
    """The index documents of a transaction's live changes, by the value of each indexed field (the hub's
    conditional searches are nearly all equalities: an identifier, a reference)."""

    def __init__(self) -> None:
        self.indexed: dict[str, VersionChange] = {}
        self.docs: dict[str, list[dict[str, Any]]] = {}  # by resource key
        self.by_value: dict[tuple[str, str], list[dict[str, Any]]] = {}

    def sync(self, changes: dict[str, VersionChange]) -> None:
        for key, change in changes.items():
            if self.indexed.get(key) is change:
                continue
            if key in self.indexed:  # a second version of the same resource: rebuild (rare)
                self.indexed.clear()
                self.docs.clear()
                self.by_value.clear()
                self.sync(changes)
                return
            self.indexed[key] = change
            docs = [] if change.version.deleted else change.documents(SEARCH_INDEX)
            self.docs[key] = docs
            for doc in docs:
                for name in INDEXED:
                    if name in doc:
                        self.by_value.setdefault((name, doc[name]), []).append(doc)

    def candidates(self, query: dict[str, Any]) -> Iterable[dict[str, Any]]:
        for name in INDEXED:
            wanted = query.get(name)
            if isinstance(wanted, str):
                return self.by_value.get((name, wanted), ())
        return (doc for docs in self.docs.values() for doc in docs)


def _own_index(tx: Transaction) -> OwnIndex:
    if tx.own_index is None:
        tx.own_index = OwnIndex()
    tx.own_index.sync(tx.changes)
    return tx.own_index


class OwnWritesView:
    """The store as one transaction sees it (for conditional searches; see the module's docstring)."""

    def __init__(self, store: ReadStore, tx: Transaction) -> None:
        self.store = store
        self.changes = tx.changes
        self.index = _own_index(tx)

    @property
    def audit_log(self) -> AuditLog:
        return self.store.audit_log

    async def entries(self, match: EntryMatch, *, limit: int = 0) -> list[dict[str, Any]]:
        mine = self._own_entries(match)
        # the store's entries of resources this transaction rewrote are stale: ask for enough to drop them
        # (their index documents, old and new, hold at most SLOTS entries each)
        hidden = SLOTS * sum(c.document_count(SEARCH_INDEX) for c in self.changes.values())
        theirs = await self.store.entries(match, limit=limit + hidden if limit else 0)
        found = [e for e in theirs if e["r"] not in self.changes] + mine
        return found[:limit] if limit else found

    def _own_entries(self, match: EntryMatch) -> list[dict[str, Any]]:
        found = []
        for one in each_key(match):
            query, slot = match_filter(one), match_slot(one)
            found += [view(doc, slot) for doc in self.index.candidates(query) if matches(doc, query)]
        return found

    def _own_live(self, wanted: set[str]) -> list[StoredVersion]:
        return [v for k in wanted & self.changes.keys() if not (v := self.changes[k].version).deleted]

    async def live_among(self, keys: Iterable[str]) -> set[str]:
        wanted = set(keys)
        theirs = await self.store.live_among(wanted - self.changes.keys())
        return theirs | {v.key for v in self._own_live(wanted)}

    async def live_versions(self, keys: Iterable[str]) -> list[StoredVersion]:
        wanted = set(keys)
        theirs = await self.store.live_versions(wanted - self.changes.keys())
        return sorted(theirs + self._own_live(wanted), key=lambda v: v.key)

    async def live_facts_of(self, rtype: str) -> list[StoredVersion]:
        return await self.live_facts(await self.live_keys(rtype))

    async def people(self, keys: list[str]) -> dict[str, frozenset[str]]:
        return await self.store.people(keys)  # as committed, like ``person``

    async def people_born(self, keys: list[str]) -> tuple[dict[str, frozenset[str]], dict[str, str | None]]:
        return await self.store.people_born(keys)

    async def live_facts(self, keys: Iterable[str]) -> list[StoredVersion]:
        return await self.live_versions(keys)  # the transaction's own versions are in memory, content and all

    async def person(self, key: str) -> Person | None:
        """The person as committed: a group's own links count once it is committed (its masters are
        rebuilt only then, see linking/linker.py)."""
        return await self.store.person(key)

    async def live_keys(self, rtype: str) -> set[str]:
        return self._merged(await self.store.live_keys(rtype), rtype, None, None)

    async def live_keys_updated(self, rtype: str, low: int | None, high: int | None) -> set[str]:
        return self._merged(await self.store.live_keys_updated(rtype, low, high), rtype, low, high)

    def _merged(self, theirs: set[str], rtype: str, low: int | None, high: int | None) -> set[str]:
        mine = {k for k, c in self.changes.items()
                if c.version.rtype == rtype and not c.version.deleted
                and (low is None or c.version.ts >= low) and (high is None or c.version.ts <= high)}
        return (theirs - self.changes.keys()) | mine

    # ------------------------------------------------ reads that do not see the transaction's own writes
    async def current(self, rtype: str, rid: str) -> StoredVersion | None:
        raise _unseen("current")

    async def version(self, rtype: str, rid: str, vid: int) -> StoredVersion | None:
        raise _unseen("version")

    async def live_page(self, rtype: str, after_key: str | None, limit: int,
                        skip: tuple[str, str] | None = None) -> list[StoredVersion]:
        raise _unseen("live_page")

    async def count_live(self, rtype: str, skip: tuple[str, str] | None = None) -> int:
        raise _unseen("count_live")

    async def history(self, *, rtype: str | None = None, rid: str | None = None, since: int | None = None,
                      before: HistoryPosition | None = None, limit: int) -> HistoryPage:
        raise _unseen("history")

    async def history_of(self, keys: Iterable[str], *, since: int | None, before: HistoryPosition | None,
                         limit: int) -> HistoryPage:
        raise _unseen("history_of")

    async def count_history(self, *, rtype: str | None = None, rid: str | None = None,
                            since: int | None = None) -> int:
        raise _unseen("count_history")

    async def history_facts(self, *, rtype: str | None, since: int | None) -> list[StoredVersion]:
        raise _unseen("history_facts")

    async def count_history_of(self, keys: Iterable[str], *, since: int | None) -> int:
        raise _unseen("count_history_of")


def _unseen(read: str) -> DependsOnOwnWrites:
    return DependsOnOwnWrites(f"{read} does not see this transaction's own writes")
