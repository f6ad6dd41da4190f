"""What the services answer: typed results a route renders as HTTP, a Bundle as an entry's response, and
ingestion counts, instead of response bytes each of them would have to parse back."""

from __future__ import annotations

from dataclasses import dataclass

from fhir_hub.errors import HubError, Issue
from fhir_hub.search.execute import SearchOutcome
from fhir_hub.search.query import SearchQuery
from fhir_hub.store.records import StoredVersion


@dataclass(frozen=True, slots=True)
class Written:
    """What a write interaction did."""

    version: StoredVersion | None  # None when nothing was there to delete
    status: int  # 201 created, 200 updated / patched / found existing, 204 deleted
    what: str  # "Created", "Updated", "Patched", "Found existing", "Deleted", "Nothing to delete"

    @property
    def message(self) -> str:
        v = self.version
        if v is None:
            return self.what
        return f"{self.what} {v.rtype}/{v.rid}" + (f", version {v.vid}" if v.vid else "")


@dataclass(frozen=True, slots=True)
class Searched:
    """One page of a search: the query as parsed (its links are rendered from it) and what it found.
    ``types`` are the types a system-level search was limited to by ``_type`` (kept in its links)."""

    query: SearchQuery
    outcome: SearchOutcome
    system: bool = False
    types: tuple[str, ...] | None = None
    # the path its links keep when not the type's or the base's (a compartment search, ``$everything``), and
    # the parameters they carry when not the query's own (``$everything``'s ``_since`` and ``_type``)
    path: str | None = None
    link_params: tuple[tuple[str, str], ...] | None = None


@dataclass(frozen=True, slots=True)
class EntryResult:
    """What one entry of a batch or transaction Bundle did (a batch entry's own error included).

    ``version`` is the resource written or read (None for a search, an error, or a delete of nothing);
    ``search`` a GET search's page; ``issues`` the error of a failed batch entry; ``body`` whether the
    response entry carries the resource (not for HEAD, nor for 304); ``written`` whether the entry wrote
    ``version`` (its answer then carries the write's warnings) rather than read it.
    """

    status: int
    version: StoredVersion | None = None
    search: Searched | None = None
    issues: tuple[Issue, ...] = ()
    body: bool = True
    written: bool = False

    @staticmethod
    def of_error(error: HubError) -> EntryResult:
        return EntryResult(error.status, issues=tuple(error.issues))

    @staticmethod
    def of_write(written: Written) -> EntryResult:
        return EntryResult(written.status, version=written.version, written=True)

    @property
    def failed(self) -> bool:
        return bool(self.issues)
