"""The scoped reader: the only way anything reads data, and the only code that consults the request's
access decision (``consent/decision.py``).

It is made per request for one caller and that request's decision. Every read path asks it: reads, history,
searches (whose includes, chains and ``_has`` inner searches it narrows through the searcher), conditional
matches, and the writer's check that the resource a write reaches exists for the caller. For each type it
asks the decision how to narrow the query (a 403 when the scopes refuse the type, which says nothing about
any resource), so counts, totals and pages are computed over what the caller may see; it asks for a verdict
on every resource it hands out; and whatever is denied is answered exactly as if it did not exist (404,
never 403 or 410). It notes every resource it hands out in the request's audit record.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import replace

from consent.decision import AccessDecision, Narrowing, ResourceFacts, Verdict
from consent.engine import Outcome, Requester
from consent.gate import ConsentGate
from fhir_hub.audit import AUDIT_TYPE, AuditRecord, as_version
from fhir_hub.auth.caller import Caller
from fhir_hub.auth.policy import access_decision, insufficient_scope, require_any, require_operator
from fhir_hub.errors import Gone, NotFound
from fhir_hub.fhir.compartment import compartment_types
from fhir_hub.fhir.jsonio import loads
from fhir_hub.fhir.registry import resource_types
from fhir_hub.linking.elements import is_master_key
from fhir_hub.search.execute import Position, Searcher, SearchOutcome, withheld_events
from fhir_hub.search.keys import compartment_match
from fhir_hub.search.limits import DEFAULT_LIMITS, SearchLimits
from fhir_hub.search.query import SearchQuery
from fhir_hub.store.index_docs import FACTS
from fhir_hub.store.protocol import ReadStore
from fhir_hub.store.records import EntryMatch, HistoryPage, HistoryPosition, StoredVersion, deletion_key

_MAX_SCANNED = 5_000  # history versions examined for one page of a caller limited to some types
# versions judged one by one to count a history's total for a consent-judged caller; beyond, the total is
# left out (a page must not cost reading the facts of a whole store's history)
_MAX_JUDGED = 50_000


_NAMES = {"r": "read", "s": "search", "c": "create", "u": "update", "d": "delete"}


class ScopedReader:
    def __init__(self, store: ReadStore, caller: Caller, audit: AuditRecord | None = None, *,
                 decision: AccessDecision | None = None, limits: SearchLimits = DEFAULT_LIMITS,
                 base_url: str | None = None) -> None:
        self.store = store
        self.caller = caller
        self.decision = decision if decision is not None else access_decision(caller)
        self.audit = audit
        self.limits = limits
        self.searcher = Searcher(store, access=self, base_url=base_url)

    # ---------------------------------------------------------------- the one access decision
    def allows(self, rtype: str, permission: str) -> bool:
        """Whether the token's scopes allow ``permission`` on ``rtype`` at all (``narrowing`` raises 403 where
        this is False)."""
        return self.decision.narrow(rtype, permission) is not None

    def narrowing(self, rtype: str, permission: str) -> Narrowing:
        """How to narrow a query on ``rtype``; 403 when the token's scopes do not allow it at all."""
        found = self.decision.narrow(rtype, permission)
        if found is None:
            raise insufficient_scope(self.caller, f"{_NAMES[permission]} on {rtype}")
        return found

    async def permits(self, version: StoredVersion, permission: str, patients: frozenset[str] | None = None) -> bool:
        """The decision's verdict on one resource (``patients``: the compartments to judge it by, when not
        its own: earlier versions follow their resource's current compartment)."""
        return (await self._verdicts([facts_of(version, patients)], permission))[0]

    async def permitted(self, versions: Iterable[StoredVersion], permission: str) -> list[StoredVersion]:
        """The versions the decision permits, in their order: the consents of all their people looked up
        at once. Each version is judged on its own facts (a history page may hold one labelled version of a
        resource and one not)."""
        listed = list(versions)
        verdicts = await self._verdicts([facts_of(v) for v in listed], permission)
        return [v for v, shown in zip(listed, verdicts, strict=True) if shown]

    async def _verdicts(self, facts: list[ResourceFacts], permission: str) -> list[bool]:
        """The decision's verdict on each of ``facts``, in order."""
        await self.decision.prepare(facts, permission)
        verdicts = [self.decision.verdict(f, permission) is Verdict.PERMIT for f in facts]
        masters = [f for f, ok in zip(facts, verdicts, strict=True) if ok and is_master_key(f.key)]
        narrowing = self.decision.narrow("Patient", permission) if masters else None
        whole = await self._masters_whole(masters, narrowing) if narrowing is not None else set()
        return [ok and (not is_master_key(f.key) or f.key in whole) for f, ok in zip(facts, verdicts, strict=True)]

    async def admitted(self, rtype: str, keys: set[str] | None, narrowing: Narrowing,
                       known: Mapping[str, bytes] | None = None) -> set[str]:
        """Which of these resources of ``rtype`` (live ones; None: every one) a narrowing with a consent gate
        admits, their people's consents looked up once. Their facts: from ``known`` (what the index entries
        the search read carry: only a live version's documents have them), the others' read without their
        content in one pass."""
        if keys is None:
            facts = [facts_of(v) for v in await self.store.live_facts_of(rtype)]
        else:
            given = known or {}
            facts = [facts_from_index(k, given[k]) for k in keys if k in given]
            facts += [facts_of(v) for v in await self.store.live_facts(k for k in keys if k not in given)]
        await narrowing.prepare(facts)
        shown = [f for f in facts if narrowing.admits(f)]
        whole = await self._masters_whole(shown, narrowing)
        return {f.key for f in shown if not is_master_key(f.key) or f.key in whole}

    async def _masters_whole(self, facts: list[ResourceFacts], narrowing: Narrowing) -> set[str]:
        """The masters among ``facts`` a consent-judged caller may see whole. A master carries what every
        source record of the person says (identifiers, names, which records it came from), so a caller
        whose consents show only some of those records is shown the records, not the master."""
        masters = [f.key for f in facts if f.rtype == "Patient" and is_master_key(f.key)]
        if narrowing.gate is None or not masters:
            return set(masters)
        people = await self.store.people(masters)
        sources = {m: [k for k in people[m] if not is_master_key(k)] for m in masters}
        found = {v.key: facts_of(v) for v in await self.store.live_facts({k for ks in sources.values() for k in ks})}
        await narrowing.prepare(found.values())
        return {m for m in masters if all(narrowing.admits(found[k]) for k in sources[m] if k in found)}

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
        self.narrowing(rtype, "r")
        return await self._visible_or_raise(rtype, rid, await self._current(rtype, rid))

    async def vread(self, rtype: str, rid: str, vid: int | None) -> StoredVersion:
        narrowing = self.narrowing(rtype, "r")
        if rtype == AUDIT_TYPE:
            version = await self._current(rtype, rid) if vid == 1 else None
        else:
            version = await self.store.version(rtype, rid, vid) if vid is not None else None
        if version is None:
            await self._no_such_version(rtype, rid, vid)
        patients = version.patients if version is not None else frozenset()
        if version is not None and narrowing.patients is not None and rtype != AUDIT_TYPE:
            # every version is in the compartment its resource's current version is in: after a facility
            # corrects an Observation's subject from A to B, its earlier versions are B's, no longer A's
            current = await self._current(rtype, rid)
            patients = current.patients if current is not None else frozenset()
        return await self._visible_or_raise(rtype, rid, version, patients)

    async def _no_such_version(self, rtype: str, rid: str, vid: int | None) -> None:
        """A version the store lacks of a resource the caller sees: the 404 says the version is unknown, not
        the resource. For a resource the caller may not see, it returns and the caller answers as for an id
        never created (the same words, nothing revealed)."""
        current = await self._current(rtype, rid)
        if current is not None and await self.permits(current, "r"):
            which = f"version {vid}" if vid is not None else "the version asked for"
            raise NotFound(f"{rtype}/{rid} has no {which} (its current version is {current.vid})")

    async def explain(self, rtype: str, rid: str, asking: Requester) -> Outcome:
        """Whether ``asking`` may read a resource under consent, and why (the policy rule, the provisions
        that decided): for the hub's operator, who may ask about anyone without reading the resource."""
        require_operator(self.caller, "explain access decisions ($access-check)")
        version = await self._current(rtype, rid)
        if version is None or version.deleted or self.decision.withholds(version.key):
            raise NotFound(f"{rtype}/{rid} is not known to this server")
        gate = self.decision.gate
        if gate is None:
            return Outcome(True, "not-enforced", "consent is not enforced on this hub (FHIR_HUB_ENFORCE_CONSENT)")
        probe = ConsentGate(asking, gate.policy, gate.lookup)
        facts = facts_of(version)
        await probe.prepare([facts])
        return probe.outcome(facts)

    async def read_many(self, keys: Iterable[str], permission: str = "r") -> list[StoredVersion]:
        """The live resources among ``keys`` the caller may see, in key order (a person's records, a review
        list): the others are left out as if they did not exist. A type the token may not read at all is
        403, as for a read."""
        wanted = sorted(set(keys))
        for rtype in {key.split("/", 1)[0] for key in wanted}:
            self.narrowing(rtype, permission)
        return [self._hand_out(v) for v in await self.permitted(await self.store.live_versions(wanted), permission)]

    async def _visible_or_raise(self, rtype: str, rid: str, version: StoredVersion | None,
                                patients: frozenset[str] | None = None) -> StoredVersion:
        if version is None or not await self.permits(version, "r", patients):
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
        filtering everyone's versions.

        The page's ``total`` counts exactly what the pages list, so never a version the caller may not see
        (as a search's total, ``search/execute.py``): counted by the store where the narrowing is a query
        (one resource, a compartment's resources, a type nothing is withheld from); where each version is
        judged on its own facts (a consent gate, a withheld resource), by the same verdict on the facts of
        every version (content left out), as a search without criteria counts under a gate, or left out
        when that would mean judging more than ``_MAX_JUDGED`` versions."""
        if rid is not None and rtype is not None:
            self.narrowing(rtype, "r")
            current = await self._current(rtype, rid)
            if current is None or not await self.permits(current, "r"):
                raise NotFound(f"{rtype}/{rid} is not known to this server")
            if rtype == AUDIT_TYPE:
                in_range = (since is None or current.ts >= since) and (before is None or current.position < before)
                shown = [self._hand_out(current)] if in_range and limit else []
                return HistoryPage(shown, None, int(since is None or current.ts >= since))
            page = await self.store.history(rtype=rtype, rid=rid, since=since, before=before, limit=limit)
            page = replace(page, total=await self.store.count_history(rtype=rtype, rid=rid, since=since))
        elif rtype == AUDIT_TYPE:
            return await self._audit_history(self.narrowing(rtype, "s"), since, before, limit)
        else:
            if rtype is None:
                require_any(self.caller, "s")
                types = [t for t in resource_types() if t != AUDIT_TYPE]
                narrowings = {t: n for t in types if (n := self.decision.narrow(t, "s")) is not None}
            else:
                narrowings = {rtype: self.narrowing(rtype, "s")}
            page = await self._history_for(narrowings, len(narrowings) == len(resource_types()) - 1, since, before,
                                           limit)
        for version in page.versions:
            self._hand_out(version)
        return page

    async def _history_for(self, narrowings: dict[str, Narrowing], every_type: bool, since: int | None,
                           before: HistoryPosition | None, limit: int) -> HistoryPage:
        """Type or system history under these narrowings: compartment-limited types from the compartments'
        resources, the others from the whole store (filtered when the decision withholds some of them, or
        covers only some types), the two merged in history order."""
        limited: dict[frozenset[str], set[str]] = {}
        open_types: set[str] = set()
        withheld: set[str] = set()
        for rtype, narrowing in narrowings.items():
            withheld |= narrowing.withheld
            if narrowing.patients is None:
                open_types.add(rtype)
            else:
                limited.setdefault(narrowing.patients, set()).add(rtype)
        pages = []
        for patients, types in limited.items():
            members = [key for key in await self._members(patients, types, narrowings) if key not in withheld]
            page = await self.store.history_of(members, since=since, before=before, limit=limit)
            pages.append(replace(page, total=await self.store.count_history_of(members, since=since)))
        gated = any(narrowings[t].gate is not None for t in open_types)
        if not withheld and not gated and (len(open_types) == 1 or (open_types and every_type and not limited)):
            only = next(iter(open_types)) if len(open_types) == 1 else None
            page = await self.store.history(rtype=only, since=since, before=before, limit=limit)
            pages.append(replace(page, total=await self.store.count_history(rtype=only, since=since)))
        elif open_types:
            async def visible(versions: list[StoredVersion]) -> list[StoredVersion]:
                return await self.permitted((v for v in versions if v.rtype in open_types), "s")

            only = next(iter(open_types)) if len(open_types) == 1 else None
            page = await self._filtered_history(only, since, before, limit, visible)
            total: int | None = None
            if before is None and page.next_before is None:  # the first page holds every visible version
                total = len(page.versions)
            elif await self.store.count_history(rtype=only, since=since) <= _MAX_JUDGED:
                # the same verdict on every version's facts, as a search counts under a consent gate
                total = len(await visible(await self.store.history_facts(rtype=only, since=since)))
            pages.append(replace(page, total=total))
        return _merged(pages, limit)

    async def _members(self, patients: frozenset[str], types: set[str], narrowings: dict[str, Narrowing]
                       ) -> list[str]:
        """The resources of these types in these patients' compartments, deleted ones included, from their
        index entries; where the narrowing judges more than the compartment (a resident's: nobody else's
        resources), only those whose live version it admits, judged on the facts those same entries carry,
        as a read or a vread judges a resource's versions by its current one. A deleted resource's entry
        carries no facts: it stays, as its instance history is judged."""
        members: set[str] = set()
        refused: set[str] = set()
        for patient in sorted(patients):
            for rtype in sorted(types & compartment_types()):
                narrowing = narrowings[rtype]
                for match in (compartment_match(rtype, patient), EntryMatch(deletion_key(rtype, patient))):
                    for entry in await self.store.entries(match):
                        members.add(entry["r"])
                        if (narrowing.exclusive_to is not None and FACTS in entry
                                and not narrowing.admits(facts_from_index(entry["r"], entry[FACTS]))):
                            refused.add(entry["r"])
        return sorted(members - refused)

    async def _filtered_history(self, rtype: str | None, since: int | None, before: HistoryPosition | None, limit: int,
                                visible: Callable[[list[StoredVersion]], Awaitable[list[StoredVersion]]]
                                ) -> HistoryPage:
        """History of one type (or all) filtered by the decision: keep fetching until the page is full of
        visible versions, history runs out, or the scan cap."""
        kept: list[StoredVersion] = []
        scanned = 0
        while True:
            page = await self.store.history(rtype=rtype, since=since, before=before, limit=limit)
            shown = {id(v) for v in await visible(page.versions)}
            for version in page.versions:
                scanned += 1
                if id(version) in shown:
                    kept.append(version)
                    if len(kept) == limit:
                        has_more = page.next_before is not None or version is not page.versions[-1]
                        return HistoryPage(kept, version.position if has_more else None)
            if page.next_before is None:
                return HistoryPage(kept, None)
            before = page.next_before
            if scanned >= _MAX_SCANNED:  # a short page, with a link to go on from where the scan stopped
                return HistoryPage(kept, before)

    async def _audit_history(self, narrowing: Narrowing, since: int | None, before: HistoryPosition | None,
                             limit: int) -> HistoryPage:
        """Type-level history of AuditEvent: every event, newest first (each has exactly one version). Its
        total is the audit log's count under the same narrowing, without ``_since`` (which it cannot count)."""
        patients = sorted(narrowing.patients) if narrowing.patients is not None else None
        position = (before[0], before[1].removeprefix(f"{AUDIT_TYPE}/")) if before is not None else None
        withheld = withheld_events(narrowing)
        entries = await self.store.audit_log.page(patients=patients, ids=None, before=position, limit=limit + 1,
                                                  since=since, withheld=withheld)
        versions = [as_version(e) for e in entries]
        page = [self._hand_out(v) for v in versions[:limit]]
        more = len(versions) > limit and bool(page)
        total = await self.store.audit_log.count(patients=patients, ids=None, withheld=withheld) \
            if since is None else None
        return HistoryPage(page, page[-1].position if more else None, total)

    async def access_log(self, patients: frozenset[str], *, after: Position | None, limit: int) -> SearchOutcome:
        """Who accessed these patients' records (``Patient/$access-log``): their AuditEvents the caller may
        see, those of emergency accesses first, then the others, each newest first. ``after``: ``[phase, ts,
        id]`` of the last entry shown (phase 0: emergency, 1: the others). The total counts both phases."""
        narrowing = self.narrowing(AUDIT_TYPE, "s")
        wanted = sorted(patients if narrowing.patients is None else patients & narrowing.patients)
        if not wanted:
            return SearchOutcome(0, [], None, None, [])
        log, withheld = self.store.audit_log, withheld_events(narrowing)
        total = await log.count(patients=wanted, ids=None, withheld=withheld)
        first, before = (after[0], (after[1], after[2])) if after is not None else (0, None)
        found: list[tuple[int, StoredVersion]] = []
        for phase in range(first, 2):
            if len(found) > limit or not limit:
                break
            entries = await log.page(patients=wanted, ids=None, before=before, limit=limit + 1 - len(found),
                                     withheld=withheld, emergency=phase == 0)
            found += [(phase, as_version(entry)) for entry in entries]
            before = None
        page = [self._hand_out(v) for _, v in found[:limit]]
        last = found[len(page) - 1] if len(found) > limit and page else None
        return SearchOutcome(total, page, [last[0], last[1].ts, last[1].rid] if last else None, None, [])

    async def emergency_accesses(self, facility: str | None, *, after: Position | None,
                                 limit: int) -> SearchOutcome:
        """The emergency requests flagged to ``facility`` (None: every facility's), newest first, one
        AuditEvent per request (``AuditEvent/$emergency-access``). Those entries are under no patient, so
        a caller whose AuditEvent reads are limited to a compartment sees none."""
        # not a search of AuditEvent, whose whole trail is the operator's: a facility's own flagged requests
        narrowing = self.decision.narrow(AUDIT_TYPE, "s") or Narrowing(withheld=self.decision.withheld_of(AUDIT_TYPE))
        if narrowing.patients is not None:
            return SearchOutcome(0, [], None, None, [])
        log, withheld = self.store.audit_log, withheld_events(narrowing)
        total = await log.count_emergencies(facility=facility, withheld=withheld)
        before = (after[0], after[1]) if after is not None else None
        entries = await log.emergencies(facility=facility, before=before, limit=limit + 1,
                                        withheld=withheld) if limit else []
        page = [self._hand_out(as_version(entry)) for entry in entries[:limit]]
        more = len(entries) > limit and bool(page)
        return SearchOutcome(total, page, [page[-1].ts, page[-1].rid] if more else None, None, [])

    async def search(self, query: SearchQuery, *, after: Position | None = None,
                     before: Position | None = None, compartment: str | None = None) -> SearchOutcome:
        """``compartment``: a Patient id, for a compartment search (``GET /Patient/{id}/{type}``). A person's
        golden record's compartment spans their linked records, which says which records are one person:
        it is searched only by a caller who may read that golden record (a facility never sees one); for
        anyone else it is empty, as an unknown patient's is."""
        if compartment is not None and not await self._compartment_open(compartment):
            return SearchOutcome(0, [], None, None, [])
        return self._hand_out_all(await self.searcher.search(query, after=after, before=before,
                                                             compartment=compartment))

    async def _compartment_open(self, patient: str) -> bool:
        """Whether this caller may search ``patient``'s compartment: anyone, unless it is a golden record
        the caller may not read."""
        if not is_master_key(f"Patient/{patient}"):
            return True
        if not self.allows("Patient", "r"):
            return False
        version = await self.store.current("Patient", patient)
        return version is not None and not version.deleted and await self.permits(version, "r")

    def searchable_types(self, named: tuple[str, ...] | None) -> tuple[str, ...]:
        """The types a system-level search covers: those named in ``_type`` (each must be allowed), or
        every type the caller may search (the others are left out unseen, as if empty)."""
        require_any(self.caller, "s")
        if named is not None:
            for rtype in named:
                self.narrowing(rtype, "s")
            return named
        return tuple(t for t in resource_types()
                     if t != AUDIT_TYPE and self.allows(t, "s"))

    async def search_system(self, queries: list[SearchQuery], *, after: Position | None = None,
                            before: Position | None = None, compartment: str | None = None) -> SearchOutcome:
        """``compartment``: within that Patient's compartment (``$everything``), as ``search`` says."""
        if compartment is not None and not await self._compartment_open(compartment):
            return SearchOutcome(0, [], None, None, [])
        return self._hand_out_all(await self.searcher.search_types(queries, after=after, before=before,
                                                                   compartment=compartment))

    def _hand_out_all(self, outcome: SearchOutcome) -> SearchOutcome:
        for version in (*outcome.page, *outcome.included):
            self._hand_out(version)
        return outcome

    async def conditional(self, rtype: str, query_string: str, *, what: str) -> list[StoredVersion]:
        """The resources a conditional interaction would act on; needs the search permission."""
        matches = await self.searcher.conditional(rtype, query_string, what=what, limits=self.limits)
        for version in matches:
            self._hand_out(version)
        return matches


def facts_of(version: StoredVersion, patients: frozenset[str] | None = None) -> ResourceFacts:
    """What the access decision may know of a version: the facts stored beside it, never its content."""
    return ResourceFacts(version.rtype, version.rid, version.patients if patients is None else patients,
                         version.labels, facility_of(version.source), frozenset(version.codes), version.when,
                         version.addressee)


def facts_from_index(key: str, packed: bytes) -> ResourceFacts:
    """The facts a live version's index documents carry (``records.index_facts``), as ``facts_of`` gives
    them from the version."""
    patients, source, labels, codes, when, *addressed = loads(packed)
    rtype, _, rid = key.partition("/")
    return ResourceFacts(rtype, rid, frozenset(patients), frozenset(labels), facility_of(source), frozenset(codes),
                         (when[0], when[1]) if when else None, addressed[0] if addressed else None)


def facility_of(source: str | None) -> str | None:
    """The facility code in a ``meta.source`` the hub stamped (``<prefix>:facility:<code>``)."""
    if source is None:
        return None
    _, marker, code = source.rpartition(":facility:")
    return code if marker else None


def _merged(pages: list[HistoryPage], limit: int) -> HistoryPage:
    """One page from pages of the same history order: the newest ``limit`` versions, and a next position
    when any of them has more beyond what is shown; a total when every page has one."""
    if len(pages) == 1:
        return pages[0]
    versions = sorted((v for page in pages for v in page.versions), key=lambda v: v.position, reverse=True)
    shown = versions[:limit]
    more = len(versions) > limit or any(page.next_before is not None for page in pages)
    totals = [page.total for page in pages]
    total = sum(t for t in totals if t is not None) if None not in totals else None
    return HistoryPage(shown, shown[-1].position if more and shown else None, total)
