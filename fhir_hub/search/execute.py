"""Running a search: matching keys, order, a keyset page, and the included resources.

The matching keys come from the index (``criteria``); only the page's resources are loaded. Order is by
``_sort`` (parameter values from the index, ``_lastUpdated`` from the current documents) and then by key,
so every result has a total position and a page token is the position of its last (or first) result:
a keyset, stable while others write. Conditional interactions use the same matching.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cmp_to_key
from typing import Any, Protocol
from urllib.parse import parse_qsl

from consent.decision import Narrowing
from fhir_hub.audit import AUDIT_TYPE, as_version
from fhir_hub.errors import BadRequest
from fhir_hub.linking.elements import MASTER_KEYS, is_master_key, masters_hidden
from fhir_hub.search import keys
from fhir_hub.search.criteria import Evaluator
from fhir_hub.search.limits import SearchLimits
from fhir_hub.search.persons import expand_persons, remembered
from fhir_hub.search.query import Include, SearchQuery, param_type, parse_search, unescape
from fhir_hub.store.index_docs import entry_key
from fhir_hub.store.protocol import ReadStore
from fhir_hub.store.records import EntryMatch, StoredVersion

Position = list[Any]  # sort values followed by the key of a result
# types matched at once in a search over several: their index reads overlap (measured: a 500-resource
# ``$summary``, ten types, 74-89 ms -> 65-68 ms here), a few at a time so that a search of every type neither
# fills the connection pool nor asks the consent gate for the same people many times over at once
_TYPES_AT_ONCE = 12
_LAST = "\uffff"  # sorts after any value: resources without a value for a sort parameter come last


class Access(Protocol):
    """What a search asks of the one reader (``store/reader.py``), which asks the caller's access decision:
    the narrowing of a type's query, and the verdict on each resource handed out."""

    def narrowing(self, rtype: str, permission: str) -> Narrowing:
        """Raises 403 when the caller may not use ``permission`` on ``rtype``."""

    async def permitted(self, versions: Iterable[StoredVersion], permission: str) -> list[StoredVersion]:
        """The versions the verdict lets the caller see, in their order."""

    async def admitted(self, rtype: str, keys: set[str] | None, narrowing: Narrowing,
                       known: Mapping[str, bytes]) -> set[str]:
        """Which of these live resources of ``rtype`` (None: all) a narrowing that judges each one (a consent
        gate) admits; ``known``: the access facts of some of them, from their index entries."""


@dataclass(frozen=True)
class SearchOutcome:
    total: int | None  # None: not known without revealing what the decision hid (then left out of the Bundle)
    page: list[StoredVersion]
    next: Position | None  # the position after which the next page starts
    previous: Position | None  # the position before which the previous page ends
    included: list[StoredVersion]


class Searcher:
    def __init__(self, store: ReadStore, *, access: Access, base_url: str | None) -> None:
        self.store = store
        self.access = access
        self.evaluator = Evaluator(store, base_url=base_url, live_keys=store.live_keys,
                                   narrowing_for=lambda rtype: access.narrowing(rtype, "s"), admitted=access.admitted)

    async def search(self, query: SearchQuery, *, after: Position | None = None,
                     before: Position | None = None, compartment: str | None = None) -> SearchOutcome:
        """A type-level search; ``compartment``: only within that Patient's compartment (R4 compartment
        search, ``GET /Patient/{id}/{type}``)."""
        if query.rtype == AUDIT_TYPE:
            return await self._audit(query, self.access.narrowing(query.rtype, "s"), after)
        return await self.search_types([query], after=after, before=before, compartment=compartment)

    async def search_types(self, queries: Sequence[SearchQuery], *, after: Position | None = None,
                           before: Position | None = None, compartment: str | None = None) -> SearchOutcome:
        """One result list over several types (system-level search): the same order, paging and includes.

        Every query carries the same result parameters; only its type (and so its criteria) differ. Each
        type's matches are narrowed by the caller's access decision before they are counted, sorted or
        paged; the page is then checked resource by resource, and should the verdict deny one the narrowing
        let through, it is left out and the total with it (it would count what the caller may not see).
        """
        person_of = remembered(self.store.person)
        queries = [await expand_persons(q, person_of) for q in queries]
        query = queries[0]
        within = await self._compartment(compartment)
        narrowings = {q.rtype: _within(self.access.narrowing(q.rtype, "s"), within) for q in queries}
        scopes = {q.rtype: self.evaluator.scope(q.rtype, q.criteria, narrowings[q.rtype]) for q in queries}
        found: set[str] = set()
        matchings: list[set[str] | None] = []
        for start in range(0, len(queries), _TYPES_AT_ONCE):
            matchings += await asyncio.gather(*(self.evaluator.matching(q.rtype, q.criteria, narrowings[q.rtype])
                                                for q in queries[start:start + _TYPES_AT_ONCE]))
        for each, matched in zip(queries, matchings, strict=True):
            hidden = _hides_masters(each)
            if matched is None and len(queries) == 1 and not each.sort and before is None:
                return await self._listing(each, after, MASTER_KEYS if hidden else None)
            if matched is None:
                matched = await self.store.live_keys(each.rtype)
            found |= {key for key in matched if not is_master_key(key)} if hidden else matched
        ordered, order_key = await self._ordered(query.sort, found, scopes)
        page, next_position, previous_position = _slice(ordered, order_key, query.count, after, before)
        versions = {v.key: v for v in await self.store.live_versions([p[-1] for p in page])}
        live = [versions[p[-1]] for p in page if p[-1] in versions]
        results = await self.access.permitted(live, "s")
        total = len(found) if len(results) == len(live) else None
        included = await self._includes(query, results) if results else []
        return SearchOutcome(total, results, next_position, previous_position, included)

    async def _compartment(self, patient: str | None) -> frozenset[str] | None:
        """The patients whose compartments a compartment search covers: the one asked for, or for a person's
        golden record every record linked to it (what a facility sends refers to its own records)."""
        if patient is None:
            return None
        key = f"Patient/{patient}"
        person = await self.store.person(key) if is_master_key(key) else None
        records = person.records | {key} if person is not None else {key}
        return frozenset(record.removeprefix("Patient/") for record in records)

    async def _listing(self, query: SearchQuery, after: Position | None, skip: tuple[str, str] | None
                       ) -> SearchOutcome:
        """Every resource of a type, in key order, a page at a time straight from the store; ``skip``: a key
        range left out (the masters of ``Patient?``, which share a key prefix)."""
        total = await self.store.count_live(query.rtype, skip) if query.total != "none" else 0
        after_key = after[-1] if after else None
        found = await self.store.live_page(query.rtype, after_key, query.count + 1, skip) if query.count else []
        listed = found[: query.count]
        next_position = [listed[-1].key] if len(found) > query.count and listed else None
        previous_position = [listed[0].key] if after is not None and listed else None
        page = await self.access.permitted(listed, "s")
        shown_total = total if len(page) == len(listed) else None  # see search_types
        return SearchOutcome(shown_total, page, next_position, previous_position, await self._includes(query, page))

    async def _ordered(self, sort: tuple[tuple[str, bool], ...], found: set[str], scopes: dict[str, str | None]
                       ) -> tuple[list[Position], Callable[[Any], Any]]:
        """Every result's position (its sort values, then its key), in result order, and that order's key."""
        by_type: dict[str, set[str]] = {}
        for key in found:
            by_type.setdefault(key.split("/", 1)[0], set()).add(key)
        columns = []
        for name, descending in sort:
            column: dict[str, str] = {}
            for rtype, of_type in by_type.items():
                column.update(await self._sort_values(rtype, name, descending, of_type, scopes.get(rtype)))
            columns.append(column)
        rows = [[*(column.get(key, _LAST) for column in columns), key] for key in found]
        directions = [descending for _name, descending in sort]

        def compare(a: Position, b: Position) -> int:
            return _compare(a, b, directions)

        order_key = cmp_to_key(compare)
        rows.sort(key=order_key)
        return rows, order_key

    async def _sort_values(self, rtype: str, name: str, descending: bool, found: set[str], scope: str | None
                           ) -> dict[str, Any]:
        """Each resource's value for one sort key: of several values, the first in the sort's direction.

        Dates and quantities sort by their range (the start ascending, the end descending, as R5 spells
        out); the others by their index key, without the type so that several types sort together.
        """
        if name == "_id":
            return {key: key.split("/", 1)[1] for key in found}
        if name == "_lastUpdated":
            return {v.key: v.ts for v in await self.store.live_versions(found)}
        entries = await self.store.entries(EntryMatch(keys.param_prefix(rtype, name), prefix=True,
                                                      resources=tuple(sorted(found)), scope=scope))
        ranged = param_type(rtype, name) in ("date", "number", "quantity")
        values: dict[str, Any] = {}
        marker = keys.make_key(rtype, name, keys.PRESENT)
        prefix = len(keys.param_prefix(rtype, name))
        for entry in entries:
            key = entry_key(entry)
            if key == marker:
                continue
            value = entry.get("hi" if descending else "lo") if ranged else key[prefix:]
            if value is None:
                continue
            current = values.get(entry["r"])
            if current is None or (value > current if descending else value < current):
                values[entry["r"]] = value
        return values

    async def _includes(self, query: SearchQuery, page: list[StoredVersion]) -> list[StoredVersion]:
        included: dict[str, StoredVersion] = {}
        frontier = page
        seen = {v.key for v in page}
        for _round in range(4):  # :iterate follows at most this many steps
            added: list[StoredVersion] = []
            for include in query.includes:
                if _round and not include.iterate:
                    continue
                added += await self._follow(include, [v for v in frontier if v.rtype == include.source])
            for include in query.revincludes:
                if _round == 0 or include.iterate:
                    added += await self._referring(include, frontier)
            fresh = [v for v in added if v.key not in seen]
            for version in fresh:
                seen.add(version.key)
                included[version.key] = version
            if not fresh or not any(i.iterate for i in (*query.includes, *query.revincludes)):
                break
            frontier = fresh
        return list(included.values())

    async def _follow(self, include: Include, sources: list[StoredVersion]) -> list[StoredVersion]:
        if not sources:
            return []
        entries = await self.store.entries(EntryMatch(keys.param_prefix(include.source, include.param), prefix=True,
                                                      resources=tuple(sorted(v.key for v in sources))))
        targets = {f"{e['s']}/{keys.value_of(e['k'])}" for e in entries
                   if e.get("s") not in (None, keys.URL_TARGET) and (include.target in (None, e["s"]))}
        return await self._readable(await self.store.live_versions(targets))

    async def _referring(self, include: Include, page: list[StoredVersion]) -> list[StoredVersion]:
        by_type: dict[str, list[str]] = {}
        for version in page:
            by_type.setdefault(version.rtype, []).append(keys.make_key(include.source, include.param, version.rid))
        found: set[str] = set()
        for rtype, wanted in by_type.items():
            if include.target not in (None, rtype):
                continue
            entries = await self.store.entries(EntryMatch("", system=rtype, any_key=tuple(sorted(wanted))))
            found |= {e["r"] for e in entries}
        return await self._readable(await self.store.live_versions(found))

    async def _readable(self, versions: list[StoredVersion]) -> list[StoredVersion]:
        """Included resources obey the same access rules as a read: a type the caller may not read, or a
        resource the decision denies, is left out."""
        return await self.access.permitted(versions, "r")

    async def conditional(self, rtype: str, query_string: str, *, what: str,
                          limits: SearchLimits) -> list[StoredVersion]:
        """Live resources the caller may see that match the criteria of a conditional interaction.

        Unsupported parameters are refused rather than ignored: a conditional delete that silently dropped
        its only criterion would match every resource of the type.
        """
        params = parse_qsl(query_string.lstrip("?"), keep_blank_values=True)
        # _count has no meaning for a condition; any value is accepted and unused.
        query = parse_search(rtype, params, strict=True,
                             limits=replace(limits, default_count=0, max_count=2**31 - 1))
        if not query.criteria:
            raise BadRequest(f"{what} needs search criteria (for example identifier=system|value or _id=...)")
        found = await self.evaluator.matching(rtype, query.criteria, self.access.narrowing(rtype, "s"))
        if found and _hides_masters(query):
            found = {key for key in found if not is_master_key(key)}
        return await self.access.permitted(await self.store.live_versions(found or ()), "s")

    async def _audit(self, query: SearchQuery, narrowing: Narrowing, after: Position | None) -> SearchOutcome:
        """AuditEvents come from the audit log: by ``_id`` and ``patient``, newest first."""
        ids: set[str] | None = None
        patients: set[str] | None = None
        for criterion in query.criteria:
            values = {unescape(v) for v in criterion.any_of if v}
            if criterion.name == "_id":
                ids = values if ids is None else ids & values
            elif criterion.name == "patient":
                wanted = {v.removeprefix("Patient/") for v in values}
                patients = wanted if patients is None else patients & wanted
            else:
                raise BadRequest(f"AuditEvent can be searched by _id and patient only, not {criterion.name!r}",
                                 expression=[criterion.name], code="not-supported")
        if narrowing.patients is not None:
            patients = set(narrowing.patients & patients) if patients is not None else set(narrowing.patients)
        if patients == set() or ids == set():
            return SearchOutcome(0, [], None, None, [])
        wanted_patients = sorted(patients) if patients is not None else None
        wanted_ids = sorted(ids) if ids is not None else None
        withheld = withheld_events(narrowing)
        total = await self.store.audit_log.count(patients=wanted_patients, ids=wanted_ids, withheld=withheld)
        position = (int(after[0]), str(after[1])) if after else None
        entries = await self.store.audit_log.page(patients=wanted_patients, ids=wanted_ids, before=position,
                                                  withheld=withheld,
                                                  limit=query.count + 1) if query.count else []
        page = [as_version(entry) for entry in entries[: query.count]]
        more = len(entries) > query.count and bool(page)
        return SearchOutcome(total, page, [page[-1].ts, page[-1].rid] if more else None, None, [])


def _hides_masters(query: SearchQuery) -> bool:
    return masters_hidden(query.rtype, ((c.name, c.modifier, c.any_of) for c in query.criteria))


def withheld_events(narrowing: Narrowing) -> list[str] | None:
    """The AuditEvent ids a narrowing withholds, as the audit log's queries take them (None: none)."""
    return sorted(key.removeprefix(f"{AUDIT_TYPE}/") for key in narrowing.withheld) or None


def position_fits(queries: Sequence[SearchQuery], position: Position) -> bool:
    """Whether ``position`` is one this search could have cut a page at: one value per sort parameter of
    the kind that parameter sorts by, then a key (an AuditEvent: its time and id). A page token comes back
    from the client: a position of another search (another ``_sort``) or a forged one would otherwise be
    compared with real ones (a TypeError) or sent to the store."""
    query = queries[0]
    if query.rtype == AUDIT_TYPE:
        return len(position) == 2 and type(position[0]) is int and position[0] >= 0 and isinstance(position[1], str)
    if len(position) != len(query.sort) + 1 or not isinstance(position[-1], str):
        return False
    return all(any(_sorts_by(q.rtype, name, value) for q in queries)
               for (name, _), value in zip(query.sort, position[:-1], strict=True))


def _sorts_by(rtype: str, name: str, value: Any) -> bool:
    """Whether ``value`` is of the kind ``_sort_values`` gives for the parameter: a time or number for dates
    (``_lastUpdated`` too), numbers and quantities, else text; ``_LAST`` marks a resource without a value."""
    if param_type(rtype, name) in ("date", "number", "quantity"):
        return value == _LAST or (isinstance(value, int | float) and not isinstance(value, bool))
    return isinstance(value, str)


def _compare(a: Position, b: Position, descending: list[bool]) -> int:
    """Result order: each sort value in its direction (missing values last), then the key."""
    for index, desc in enumerate(descending):
        x, y = a[index], b[index]
        if x == y:
            continue
        if x == _LAST or y == _LAST:
            return 1 if x == _LAST else -1
        return (-1 if x < y else 1) * (-1 if desc else 1)
    return (a[-1] > b[-1]) - (a[-1] < b[-1])


def _slice(ordered: list[Position], order_key: Callable[[Any], Any], count: int, after: Position | None,
           before: Position | None) -> tuple[list[Position], Position | None, Position | None]:
    """A page just after (or just before) a position; the position need not be a current result."""
    if before is not None:
        end = bisect.bisect_left(ordered, order_key(before), key=order_key)
        start = max(0, end - count)
    else:
        start = bisect.bisect_right(ordered, order_key(after), key=order_key) if after is not None else 0
        end = start + count
    page = ordered[start:end]
    next_position = page[-1] if end < len(ordered) and page else None
    previous_position = page[0] if start > 0 and page else None
    return page, next_position, previous_position


def _within(narrowing: Narrowing, patients: frozenset[str] | None) -> Narrowing:
    """A compartment search narrows as a resident's token does, by the same compartment index entries; a
    resident searching another patient's compartment than their own finds nothing there."""
    if patients is None:
        return narrowing
    return replace(narrowing, patients=patients if narrowing.patients is None else narrowing.patients & patients)
