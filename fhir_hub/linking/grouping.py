"""Who is one person among a few records that hold different personal IDs: a pure function of the records.

The match step links greedily, record after record, and that is exact while at most one personal ID (CCCD)
is in play: every record that links with another joins its person. With two CCCDs in reach, greedy linking
depends on arrival order (the first holder keeps the record without a CCCD that links with both), which
issue 16 rules out. So when a write brings two CCCDs within reach of each other, the match step takes the
records involved and groups them here, from scratch, by rules that name no order:

1. **Units**: records tied by an identifier rule (same CCCD, same social-insurance number, same MA_BN at one
   facility) or by a person's decision are one unit, whatever else holds; except that records without a
   CCCD tied by identifiers to holders of two different CCCDs are judged by their score alone.
2. Units holding no CCCD that link with each other by their score form **components**.
3. A component that links with units holding at most one CCCD joins them all (one person); one that links
   with units holding two or more CCCDs is **ambiguous**: no score can tell whose record it is, so it is a
   person of its own, on the review list against each holder (HAPI MDM calls these possible duplicates).

Units holding different CCCDs never join (``compare`` never links them). Every step is a union over sets,
so the result is the same whatever order the records and links are given in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Group:
    keys: frozenset[str]
    cccds: frozenset[str]  # the personal IDs its records hold
    between: frozenset[str] = frozenset()  # ambiguous: the personal IDs of the persons it links with

    @property
    def ambiguous(self) -> bool:
        return len(self.between) > 1


@dataclass(frozen=True)
class Link:
    a: str
    b: str
    by_identifier: bool  # an identifier rule decided (not the score)


class _Sets:
    """Union-find over record keys; the representative of a set is its smallest key (order-free)."""

    def __init__(self, keys: Iterable[str]) -> None:
        self.parent = {key: key for key in keys}

    def find(self, key: str) -> str:
        root = key
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[key] != root:
            self.parent[key], key = root, self.parent[key]
        return root

    def join(self, a: str, b: str) -> None:
        first, second = sorted((self.find(a), self.find(b)))
        self.parent[second] = first

    def sets(self) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for key in self.parent:
            found.setdefault(self.find(key), set()).add(key)
        return found


def group(cccds: Mapping[str, str | None], links: Iterable[Link], ties: Iterable[Iterable[str]] = ()) -> list[Group]:
    """The persons ``cccds``' records (key -> its CCCD or None) form, given the pairs that link (``links``,
    between those keys) and the sets of records a person decided are one (``ties``); sorted by smallest key."""
    links = [link for link in links if link.a in cccds and link.b in cccds]
    units = _Sets(cccds)
    for tie in ties:
        tied = [key for key in tie if key in cccds]
        for key in tied[1:]:
            units.join(tied[0], key)
    for link in links:  # identifiers among records without a CCCD, and one CCCD's holders
        if link.by_identifier and (cccds[link.a] is None) == (cccds[link.b] is None):
            units.join(link.a, link.b)
    # a unit without a CCCD tied by identifiers to one CCCD's holders joins them; tied to two CCCDs' (a card
    # shared with one, a MA_BN with the other), its identifiers prove nothing and it is judged by its score
    tied_to: dict[str, set[str]] = {}
    for link in links:
        if link.by_identifier and (cccds[link.a] is None) != (cccds[link.b] is None):
            loose, holder = (link.a, link.b) if cccds[link.a] is None else (link.b, link.a)
            tied_to.setdefault(units.find(loose), set()).add(holder)
    for loose, holders in sorted(tied_to.items()):
        if len({cccds[h] for h in holders}) == 1:
            for holder in sorted(holders):
                units.join(loose, holder)
    unit_keys = units.sets()
    held = {root: frozenset(c for key in keys if (c := cccds[key])) for root, keys in unit_keys.items()}
    components = _Sets(held)
    for link in links:
        a, b = units.find(link.a), units.find(link.b)
        if not held[a] and not held[b]:
            components.join(a, b)
    reach: dict[str, set[str]] = {}  # component -> the holder units it links with
    for link in links:
        a, b = units.find(link.a), units.find(link.b)
        for loose, holder in ((a, b), (b, a)):
            if not held[loose] and held[holder]:
                reach.setdefault(components.find(loose), set()).add(holder)
    persons = _Sets(held)
    ambiguous: dict[str, frozenset[str]] = {}
    for component, members in components.sets().items():
        if held[component]:
            continue  # a holder unit: its own component
        for unit in members:
            persons.join(component, unit)
        holders = reach.get(component, set())
        between = frozenset(c for holder in holders for c in held[holder])
        if len(between) > 1:
            ambiguous[component] = between
            continue
        for holder in holders:
            persons.join(component, holder)
    found = []
    for members in persons.sets().values():
        keys = frozenset(key for unit in members for key in unit_keys[unit])
        between = next((b for unit, b in ambiguous.items() if unit in members), frozenset())
        found.append(Group(keys, frozenset(c for key in keys if (c := cccds[key])), between))
    return sorted(found, key=lambda g: min(g.keys))
