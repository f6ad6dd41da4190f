"""The store interface: what the read side needs of a store, so that it reads any store that has it.

Two stores have it. ``MongoStore`` is the database; ``OwnWritesView`` is the database as one transaction
sees it, its uncommitted writes included (the conditional searches of a Bundle's entries). The scoped
reader, the searcher and the criteria evaluator take a ``ReadStore``, so either is handed to them as it is:
mypy checks each implementation against this class where it is passed (``api/context.py``), and
``tests/store/test_read_store.py`` compares their signatures and runs the readers over both.

The members are exactly what those readers call. A reader that needs another read adds it here, and each
implementation must then answer it: the view from its own writes merged with the store's, or by raising
``DependsOnOwnWrites`` (the caller commits first). Writes are not part of it: there is one write path
(``Writer`` over ``MongoStore``), and the view never writes.

The hub's collections besides the resources (the audit log and the conditional claims today; links,
consents and jobs next) each live in one module of ``store/`` that owns its collection and its queries
(``audit_log.py``, ``claims.py``), built by ``MongoStore`` over the same database and write gate, with every
request it sends a shape of the store-contract suite (``tests/store/contract.py``). One the read side
needs is a member here, as ``audit_log`` is.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

from fhir_hub.store.audit_log import AuditLog
from fhir_hub.store.patient_links import Person
from fhir_hub.store.records import EntryMatch, HistoryPage, HistoryPosition, StoredVersion


@runtime_checkable
class ReadStore(Protocol):
    @property
    def audit_log(self) -> AuditLog:
        """The audit entries, served as AuditEvent resources (kept apart from the versioned resources)."""
        ...

    async def current(self, rtype: str, rid: str) -> StoredVersion | None:
        """The current version (possibly a deletion), or None for a resource never stored."""
        ...

    async def person(self, key: str) -> Person | None:
        """Every record of the person a Patient record belongs to (``store/patient_links.py``)."""
        ...

    async def version(self, rtype: str, rid: str, vid: int) -> StoredVersion | None:
        """One version, current or superseded; None when the resource never had it."""
        ...

    async def people(self, keys: list[str]) -> dict[str, frozenset[str]]:
        """Every record of each key's person (``patient_links.people``)."""
        ...

    async def people_born(self, keys: list[str]) -> tuple[dict[str, frozenset[str]], dict[str, str | None]]:
        """``people``, and the birth dates their links state (``patient_links.people_born``)."""
        ...

    async def live_facts(self, keys: Iterable[str]) -> list[StoredVersion]:
        """Like ``live_versions``, without the content: what the access decision judges a resource by."""
        ...

    async def live_facts_of(self, rtype: str) -> list[StoredVersion]:
        """``live_facts`` of every current resource of a type."""
        ...

    async def live_versions(self, keys: Iterable[str]) -> list[StoredVersion]:
        """The current versions of these resources that are not deletions, in key order."""
        ...

    async def live_among(self, keys: Iterable[str]) -> set[str]:
        """Which of these resources exist and are not deleted."""
        ...

    async def entries(self, match: EntryMatch, *, limit: int = 0) -> list[dict[str, Any]]:
        """The search-index entries answering a match (at most ``limit``; 0: all)."""
        ...

    async def live_keys(self, rtype: str) -> set[str]:
        """Every resource of a type that is not deleted (the universe of ``:not`` and ``:missing``)."""
        ...

    async def live_keys_updated(self, rtype: str, low: int | None, high: int | None) -> set[str]:
        """The resources of a type last updated within [low, high] (microseconds; None: open)."""
        ...

    async def live_page(self, rtype: str, after_key: str | None, limit: int,
                        skip: tuple[str, str] | None = None) -> list[StoredVersion]:
        """Resources of a type that are not deleted, in key order, starting after ``after_key``."""
        ...

    async def count_live(self, rtype: str, skip: tuple[str, str] | None = None) -> int:
        """How many resources of a type are not deleted."""
        ...

    async def history(self, *, rtype: str | None = None, rid: str | None = None, since: int | None = None,
                      before: HistoryPosition | None = None, limit: int) -> HistoryPage:
        """Versions newest first, of one resource, one type or all; ``before``: the previous page's end."""
        ...

    async def history_of(self, keys: Iterable[str], *, since: int | None, before: HistoryPosition | None,
                         limit: int) -> HistoryPage:
        """The versions of these resources only, newest first (a resident's history)."""
        ...

    async def count_history(self, *, rtype: str | None = None, rid: str | None = None,
                            since: int | None = None) -> int:
        """How many versions ``history`` pages through (a history Bundle's total)."""
        ...

    async def history_facts(self, *, rtype: str | None, since: int | None) -> list[StoredVersion]:
        """Every version of a type (or all) since an instant, without content (to count what may be seen)."""
        ...

    async def count_history_of(self, keys: Iterable[str], *, since: int | None) -> int:
        """How many versions ``history_of`` pages through."""
        ...
