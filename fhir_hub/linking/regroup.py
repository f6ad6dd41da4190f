"""The match step's rare path: a write that brings two personal IDs within reach, grouped again from scratch.

``Linker._in_conflict`` sends a write here when the persons it links with hold two CCCDs between them
(with the record's own), or when it links with a record set apart as ambiguous. The region is every
record of those persons, plus the persons an ambiguous record was found between (its review list names
one holder per CCCD, so a region never forgets why a record was ambiguous). ``grouping.group`` decides
the persons of that region by rules that name no order; this module reads the region, and turns the
groups into a plan: which master each group keeps (the one most of its records refer to already), and
which stored records must refer to another master than they do (``Linker._move``).

Outside the region nothing changes: a record outside it that links with a record inside is, by the same
rules applied when it was written, in that record's person, hence inside.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fhir_hub.fhir.jsonio import loads
from fhir_hub.linking.elements import MASTER_ID_PREFIX, Decision, is_master, master_of, redirect_decision
from fhir_hub.linking.grouping import Group, Link, group
from fhir_hub.matching import Comparison, MatchRecord, compare, features
from fhir_hub.store.records import StoredVersion

if TYPE_CHECKING:
    from fhir_hub.linking.linker import Linked, Linker


@dataclass(frozen=True)
class Regrouping:
    master: str | None  # the master in use the incoming record's group keeps (None: a new one)
    decision: Decision  # the incoming record's
    members: frozenset[str]  # its group
    moves: tuple[tuple[StoredVersion, Decision, str | None], ...]  # stored records re-pointed (None: the new one)
    touched: tuple[str, ...]  # masters in use whose persons change


async def regroup(linker: Linker, key: str, record: MatchRecord, mine: str | None, compared: list[Linked],
                  pending: dict[str, tuple[MatchRecord, str]]) -> Regrouping:
    """The plan for the incoming record ``key`` (``record``; ``mine``: its master before this write)."""
    store = linker.store
    roots = {root for _k, _c, root, _v in compared if root is not None} | ({mine} if mine else set())
    loose = {k: v for k, _c, root, v in compared if root is None and v is not None}  # stored before matching
    versions = await _records_of(linker, roots, loose)
    holders = {k for v in versions.values() if (d := _decision(v)) is not None and d.rule == "ambiguous"
               for k in d.reviews} - versions.keys() - {key}
    if holders:  # the persons an ambiguous record was found between
        found = await store.masters_in_use(sorted(holders))
        more = {m for m in found.values() if m is not None} - roots
        roots |= more
        versions |= await _records_of(linker, more, {})
    versions.pop(key, None)
    records = {k: features(loads(v.json), k) for k, v in versions.items() if v.json is not None}
    records |= {k: r for k, (r, _m) in pending.items()}
    records[key] = record
    in_use = await store.masters_in_use(sorted(versions))
    in_use |= {k: m for k, (_r, m) in pending.items()}
    if mine is not None:
        in_use[key] = mine
    distinct = await store.link_decisions.distinct_pairs(sorted(records))
    comparisons = {(a, b): compare(records[a], records[b], linker.model)
                   for a in sorted(records) for b in sorted(records) if a < b and frozenset((a, b)) not in distinct}
    links = [Link(a, b, c.rule != "probabilistic") for (a, b), c in comparisons.items() if c.decision == "link"]
    groups = group({k: r.cccd for k, r in records.items()}, links, await _ties(linker, roots))
    masters = _masters(groups, in_use)
    moves: list[tuple[StoredVersion, Decision, str | None]] = []
    touched: set[str] = set()
    mine_group = next(g for g in groups if key in g.keys)
    for g in groups:
        target = masters.get(g.keys)
        if target is None and g is not mine_group:
            target = f"Patient/{MASTER_ID_PREFIX}{linker.writer.new_id()}"
        for k in sorted(g.keys - {key}):
            version = versions.get(k)
            if version is None:  # written earlier in this transaction: not moved (its master stays)
                continue
            before = _decision(version)
            if in_use.get(k) == target and before is not None and (before.rule == "ambiguous") == g.ambiguous:
                continue
            moves.append((version, _why(k, g, comparisons, records), target))
            touched |= {m for m in (in_use.get(k), target) if m is not None}
    return Regrouping(masters.get(mine_group.keys), _why(key, mine_group, comparisons, records), mine_group.keys,
                      tuple(moves), tuple(sorted(touched)))


async def _records_of(linker: Linker, masters: set[str], loose: dict[str, StoredVersion]
                      ) -> dict[str, StoredVersion]:
    """The live source records of these masters' persons, and ``loose`` ones (keyed by record)."""
    people = await linker.store.people(sorted(masters))
    keys = {k for records in people.values() for k in records} - loose.keys()
    found = {v.key: v for v in await linker.store.live_versions(sorted(keys))} | loose
    return {k: v for k, v in found.items() if v.json is not None and not is_master(loads(v.json))}


async def _ties(linker: Linker, masters: set[str]) -> list[frozenset[str]]:
    """The records of each person a person merged by hand (``$merge``, a review said "same"): one unit,
    whatever their scores say now."""
    ties = []
    for master in sorted(masters):
        person = await linker.store.person(master)
        if person is None or not person.merged:
            continue
        redirects = await linker.store.live_versions(sorted(person.merged))
        if any(v.json is not None and (d := redirect_decision(loads(v.json))) is not None and d.rule == "manual"
               for v in redirects):
            ties.append(person.sources)
    return ties


def _masters(groups: list[Group], in_use: dict[str, str | None]) -> dict[frozenset[str], str]:
    """The master each group keeps: the one most of its records refer to already (ties: the smaller id),
    biggest groups first; a master serves one group at most, a group left without one gets a new one."""
    taken: set[str] = set()
    chosen: dict[frozenset[str], str] = {}
    for g in sorted(groups, key=lambda g: (-len(g.keys), min(g.keys))):
        counts = Counter(m for k in g.keys if (m := in_use.get(k)) is not None and m not in taken)
        if counts:
            master = min(counts, key=lambda m: (-counts[m], m))
            taken.add(master)
            chosen[g.keys] = master
    return chosen


def _why(key: str, g: Group, comparisons: dict[tuple[str, str], Comparison], records: dict[str, MatchRecord]
         ) -> Decision:
    """The decision stored with ``key`` in group ``g``: ambiguous, with one holder of each personal ID it was
    found between; else its best link inside the group; else a new person."""
    if g.ambiguous:
        holders = sorted(min(k for k, r in records.items() if r.cccd == cccd) for cccd in g.between)
        return Decision("ambiguous", reviews=tuple(holders))
    linked = [(c.score, other, c) for other in sorted(g.keys - {key})
              if (c := comparisons.get((min(key, other), max(key, other)))) is not None and c.decision == "link"]
    if not linked:
        return Decision("new-person")
    _score, other, best = max(linked, key=lambda item: (item[0], item[1]))
    return Decision(best.rule, best.score, best.grade, matched=other)


def _decision(version: StoredVersion) -> Decision | None:
    linked = master_of(loads(version.json)) if version.json is not None else None
    return linked[1] if linked is not None else None
