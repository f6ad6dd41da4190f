"""The scoped reader: the only way a route reads data.

It is made per request for one caller. Each method checks the caller's scope for the interaction, hides
whatever lies outside a resident's compartment exactly as if it did not exist (404, never 403 or 410),
filters history and search results resource by resource so that nothing hidden is returned or counted, and
notes every resource it hands out in the request's audit record. Consent decisions (a later issue) plug in
here, on the same single path.
"""

from __future__ import annotations

from collections.abc import Callable

from fhir_hub.audit import AUDIT_TYPE, AuditRecord, as_version
from fhir_hub.auth.caller import Caller
from fhir_hub.auth.policy import Grant, grant, require, require_any
from fhir_hub.errors import Gone, NotFound
from fhir_hub.fhir.compartment import compartment_types
from fhir_hub.fhir.registry import resource_types
from fhir_hub.search.execute import Position, Searcher, SearchOutcome
from fhir_hub.search.keys import compartment_match
from fhir_hub.search.limits import DEFAULT_LIMITS, SearchLimits
from fhir_hub.search.query import SearchQuery
from fhir_hub.store.protocol import ReadStore
from fhir_hub.store.records import EntryMatch, HistoryPage, HistoryPosition, StoredVersion, deletion_key

_MAX_SCANNED = 5_000  # history versions examined for one page of a caller limited to some types


class ScopedReader:
    def __init__(self, store: ReadStore, caller: Caller, audit: AuditRecord | None = None, *,
                 limits: SearchLimits = DEFAULT_LIMITS, base_url: str | None = None) -> None:
        self.store = store
        self.caller = caller
        self.audit = audit
        self.limits = limits
        self.searcher = Searcher(store, grant_for=lambda rtype: require(caller, rtype, "s"),
                                 may_read=lambda rtype: grant(caller, rtype, "r"), base_url=base_url)

    def _hand_out(self, version: StoredVersion) -> StoredVersion:
        if self.audit is not None:
            self.audit.touch(version)
        return version

    async def _current(self, rtype: str, rid: str) -> StoredVersion | None:
        if rtype == AUDIT_TYPE:  # AuditEvents live in the audit log, one version each
            entry = await self.store.audit_log.get(rid)
            return as_version(entry) if entry is not None else None
        return await self.store.current(rtype, rid)

    async def read(self, rtype: str, rid: str) -> StoredVersion:
        found = require(self.caller, rtype, "r")
        return self._visible_or_raise(found, rtype, rid, await self._current(rtype, rid))

    async def vread(self, rtype: str, rid: str, vid: int | None) -> StoredVersion:
        found = require(self.caller, rtype, "r")
        if rtype == AUDIT_TYPE:
            version = await self._current(rtype, rid) if vid == 1 else None
        else:
            version = await self.store.version(rtype, rid, vid) if vid is not None else None
        patients = version.patients if version is not None else frozenset()
        if version is not None and found.compartment is not None and rtype != AUDIT_TYPE:
            # every version is in the compartment its resource's current version is in: after a facility
            # corrects an Observation's subject from A to B, its earlier versions are B's, no longer A's
            current = await self._current(rtype, rid)
            patients = current.patients if current is not None else frozenset()
        return self._visible_or_raise(found, rtype, rid, version, patients)

    def _visible_or_raise(self, found: Grant, rtype: str, rid: str, version: StoredVersion | None,
                          patients: frozenset[str] | None = None) -> StoredVersion:
        if version is None or not found.sees(version.patients if patients is None else patients):
            raise NotFound(f"{rtype}/{rid} is not known to this server")
        self._hand_out(version)
        if version.deleted:
            raise Gone(f"{rtype}/{rid} was deleted (version {version.vid})",
                       headers={"ETag": version.etag, "Last-Modified": version.last_modified})
        return version

    async def history(self, *, rtype: str | None, rid: str | None, since: int | None,
                      before: HistoryPosition | None, limit: int) -> HistoryPage:
        """Instance history once the current version is visible (its versions follow it); a resident's type
        and system history from their compartment's resources alone (``MongoStore.history_of``), never by
        filtering everyone's versions."""
        if rid is not None and rtype is not None:
            found = require(self.caller, rtype, "r")
            current = await self._current(rtype, rid)
            if current is None or not found.sees(current.patients):
                raise NotFound(f"{rtype}/{rid} is not known to this server")
            if rtype == AUDIT_TYPE:
                in_range = (since is None or current.ts >= since) and (before is None or current.position < before)
                return HistoryPage([self._hand_out(current)] if in_range and limit else [], None)
            page = await self.store.history(rtype=rtype, rid=rid, since=since, before=before, limit=limit)
        elif rtype == AUDIT_TYPE:
            return await self._audit_history(require(self.caller, rtype, "s"), since, before, limit)
        else:
            if rtype is None:
                require_any(self.caller, "s")
            types = [rtype] if rtype is not None else [t for t in resource_types() if t != AUDIT_TYPE]
            grants = {t: require(self.caller, t, "s") if rtype is not None else grant(self.caller, t, "s")
                      for t in types}
            page = await self._history_for(grants, since, before, limit)
        for version in page.versions:
            self._hand_out(version)
        return page

    async def _history_for(self, grants: dict[str, Grant | None], since: int | None, before: HistoryPosition | None,
                           limit: int) -> HistoryPage:
        """Type or system history for these grants: compartment-limited types from the compartment's
        resources, the others from the whole store, the two merged in history order."""
        limited: dict[str, set[str]] = {}
        open_types = set()
        for rtype, found in grants.items():
            if found is None:
                continue
            if found.compartment is None:
                open_types.add(rtype)
            else:
                limited.setdefault(found.compartment, set()).add(rtype)
        pages = [await self.store.history_of(await self._members(patient, types), since=since, before=before,
                                             limit=limit) for patient, types in limited.items()]
        if len(open_types) == 1 or (open_types and len(open_types) == len(grants)):  # one type, or every type
            only = next(iter(open_types)) if len(open_types) == 1 else None
            pages.append(await self.store.history(rtype=only, since=since, before=before, limit=limit))
        elif open_types:
            pages.append(await self._filtered_history(since, before, limit, lambda v: v.rtype in open_types))
        return _merged(pages, limit)

    async def _members(self, patient: str, types: set[str]) -> list[str]:
        """The resources of these types in a patient's compartment, deleted ones included, from its index
        entries."""
        members: list[str] = []
        for rtype in sorted(types & compartment_types()):
            for match in (compartment_match(rtype, patient), EntryMatch(deletion_key(rtype, patient))):
                members += [entry["r"] for entry in await self.store.entries(match)]
        return members

    async def _filtered_history(self, since: int | None, before: HistoryPosition | None, limit: int,
                                visible: Callable[[StoredVersion], bool]) -> HistoryPage:
        """System history of some types: keep fetching until the page is full of visible versions, history
        runs out, or the scan cap."""
        kept: list[StoredVersion] = []
        scanned = 0
        while True:
            page = await self.store.history(since=since, before=before, limit=limit)
            for version in page.versions:
                scanned += 1
                if visible(version):
                    kept.append(version)
                    if len(kept) == limit:
                        has_more = page.next_before is not None or version is not page.versions[-1]
                        return HistoryPage(kept, version.position if has_more else None)
            if page.next_before is None:
                return HistoryPage(kept, None)
            before = page.next_before
            if scanned >= _MAX_SCANNED:  # a short page, with a link to go on from where the scan stopped
                return HistoryPage(kept, before)

    async def _audit_history(self, found: Grant, since: int | None, before: HistoryPosition | None,
                             limit: int) -> HistoryPage:
        """Type-level history of AuditEvent: every event, newest first (each has exactly one version)."""
        patients = [found.compartment] if found.compartment is not None else None
        position = (before[0], before[1].removeprefix(f"{AUDIT_TYPE}/")) if before is not None else None
        entries = await self.store.audit_log.page(patients=patients, ids=None, before=position, limit=limit + 1,
                                                  since=since)
        versions = [as_version(e) for e in entries]
        page = [self._hand_out(v) for v in versions[:limit]]
        more = len(versions) > limit and bool(page)
        return HistoryPage(page, page[-1].position if more else None)

    async def search(self, query: SearchQuery, *, after: Position | None = None,
                     before: Position | None = None) -> SearchOutcome:
        outcome = await self.searcher.search(query, require(self.caller, query.rtype, "s"), after=after,
                                             before=before)
        return self._hand_out_all(outcome)

    def searchable_types(self, named: tuple[str, ...] | None) -> tuple[str, ...]:
        """The types a system-level search covers: those named in ``_type`` (each must be allowed), or
        every type the caller may search (the others are left out unseen, as if empty)."""
        require_any(self.caller, "s")
        if named is not None:
            for rtype in named:
                require(self.caller, rtype, "s")
            return named
        return tuple(t for t in resource_types() if t != AUDIT_TYPE and grant(self.caller, t, "s") is not None)

    async def search_system(self, queries: list[SearchQuery], *, after: Position | None = None,
                            before: Position | None = None) -> SearchOutcome:
        pairs = [(query, require(self.caller, query.rtype, "s")) for query in queries]
        return self._hand_out_all(await self.searcher.search_types(pairs, after=after, before=before))

    def _hand_out_all(self, outcome: SearchOutcome) -> SearchOutcome:
        for version in (*outcome.page, *outcome.included):
            self._hand_out(version)
        return outcome

    async def conditional(self, rtype: str, query_string: str, *, what: str) -> list[StoredVersion]:
        """The resources a conditional interaction would act on; needs the search permission."""
        matches = await self.searcher.conditional(rtype, query_string, require(self.caller, rtype, "s"), what=what,
                                                  limits=self.limits)
        for version in matches:
            self._hand_out(version)
        return matches


def _merged(pages: list[HistoryPage], limit: int) -> HistoryPage:
    """One page from pages of the same history order: the newest ``limit`` versions, and a next position
    when any of them has more beyond what is shown."""
    if len(pages) == 1:
        return pages[0]
    versions = sorted((v for page in pages for v in page.versions), key=lambda v: v.position, reverse=True)
    shown = versions[:limit]
    more = len(versions) > limit or any(page.next_before is not None for page in pages)
    return HistoryPage(shown, shown[-1].position if more and shown else None)
