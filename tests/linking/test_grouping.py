"""``grouping.group``: who is one person among records holding different personal IDs, whatever the order.

A reference partition is computed here the slow, obvious way (grow each person from its units, test each
component's reach by brute force) and compared with ``group`` on random records and links, given in a
random order.
"""

from __future__ import annotations

import itertools
import random

from hypothesis import given
from hypothesis import strategies as st

from fhir_hub.linking.grouping import Group, Link, group

KEYS = [f"r{i}" for i in range(7)]


def _holders(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a != b


@st.composite
def regions(draw: st.DrawFn) -> tuple[dict[str, str | None], list[Link]]:
    """Up to 7 records holding CCCD a, b or none, and links as ``compare`` gives them: never between two
    different CCCDs; the same CCCD always by the identifier rule."""
    count = draw(st.integers(1, len(KEYS)))
    cccds = {key: draw(st.sampled_from([None, None, "a", "b"])) for key in KEYS[:count]}
    links = []
    for a, b in itertools.combinations(sorted(cccds), 2):
        if _holders(cccds[a], cccds[b]):
            continue
        if cccds[a] is not None and cccds[a] == cccds[b]:
            links.append(Link(a, b, True))
            continue
        kind = draw(st.sampled_from(["none", "score", "score", "identifier"]))
        if kind != "none":
            links.append(Link(a, b, kind == "identifier"))
    return cccds, links


def _reference(cccds: dict[str, str | None], links: list[Link]) -> set[frozenset[str]]:
    """The same rules, slowly: units by identifier links (closure by repeated passes), components of units
    without a CCCD, each component's holders by brute force."""
    unit = {k: {k} for k in cccds}

    def closure(pairs: list[tuple[str, str]]) -> None:
        changed = True
        while changed:
            changed = False
            for a, b in pairs:
                if unit[a] is not unit[b]:
                    merged = unit[a] | unit[b]
                    for k in merged:
                        unit[k] = merged
                    changed = True

    closure([(link.a, link.b) for link in links
             if link.by_identifier and (cccds[link.a] is None) == (cccds[link.b] is None)])
    across = [(link.a, link.b) if cccds[link.a] is None else (link.b, link.a) for link in links
              if link.by_identifier and (cccds[link.a] is None) != (cccds[link.b] is None)]
    for free in {frozenset(u) for u in unit.values() if not any(cccds[k] for k in u)}:
        tied = [h for a, h in across if a in free]
        if len({cccds[h] for h in tied}) == 1:
            closure([(next(iter(free)), h) for h in tied])
    units = {frozenset(u) for u in unit.values()}
    held = {u: {c for k in u if (c := cccds[k])} for u in units}

    def touch(u: frozenset[str], v: frozenset[str]) -> bool:
        return any({link.a, link.b} <= u | v and (link.a in u) != (link.b in u) for link in links)

    loose = [u for u in units if not held[u]]
    component = {u: {u} for u in loose}
    changed = True
    while changed:
        changed = False
        for u, v in itertools.combinations(loose, 2):
            if touch(u, v) and component[u] is not component[v]:
                grown = component[u] | component[v]
                for w in grown:
                    component[w] = grown
                changed = True
    persons = {u: {u} for u in units}
    for members in {frozenset(c) for c in component.values()}:
        holders = [h for h in units if held[h] and any(touch(u, h) for u in members)]
        between = set().union(*(held[h] for h in holders)) if holders else set()
        joined = set(members) | (set(holders) if len(between) <= 1 else set())
        person: set[frozenset[str]] = set().union(*(persons[w] for w in joined))
        for w in person:
            persons[w] = person
    return {frozenset(k for u in p for k in u) for p in map(frozenset, persons.values())}


@given(regions(), st.randoms(use_true_random=False))
def test_group_is_the_reference_partition_whatever_the_order(region: tuple[dict[str, str | None], list[Link]],
                                                            rnd: random.Random) -> None:
    cccds, links = region
    shuffled = list(links)
    rnd.shuffle(shuffled)
    flipped = [Link(link.b, link.a, link.by_identifier) for link in shuffled]
    reordered = dict(sorted(cccds.items(), reverse=True))
    first, second = group(cccds, links), group(reordered, flipped)
    assert first == second
    assert {g.keys for g in first} == _reference(cccds, links)


@given(regions())
def test_no_person_holds_two_personal_ids_and_ambiguous_ones_hold_none(
        region: tuple[dict[str, str | None], list[Link]]) -> None:
    cccds, links = region
    for g in group(cccds, links):
        assert len(g.cccds) <= 1, g  # even when identifiers tie a record to two CCCDs' holders
        assert not g.ambiguous or (not g.cccds and g.between <= {"a", "b"}), g


def test_a_record_linking_with_two_holders_is_a_person_of_its_own() -> None:
    cccds = {"r0": "a", "r1": "b", "r2": None}
    assert group(cccds, [Link("r0", "r2", False), Link("r1", "r2", False)]) == [
        Group(frozenset({"r0"}), frozenset({"a"})), Group(frozenset({"r1"}), frozenset({"b"})),
        Group(frozenset({"r2"}), frozenset(), frozenset({"a", "b"}))]


def test_an_identifier_ties_a_record_to_its_holder_whatever_its_score_with_another() -> None:
    cccds = {"r0": "a", "r1": "b", "r2": None, "r3": None}
    groups = group(cccds, [Link("r0", "r2", True), Link("r1", "r2", False), Link("r2", "r3", False)])
    assert {g.keys for g in groups} == {frozenset({"r0", "r2", "r3"}), frozenset({"r1"})}


def test_records_without_personal_ids_between_two_holders_stay_together_on_review() -> None:
    """r3 and r4 share a card (one unit), r5 links with them by score: one ambiguous person between a and b."""
    cccds = {"r0": "a", "r1": "b", "r3": None, "r4": None, "r5": None}
    links = [Link("r3", "r4", True), Link("r4", "r5", False), Link("r3", "r0", False), Link("r5", "r1", False)]
    groups = group(cccds, links)
    ambiguous = [g for g in groups if g.ambiguous]
    assert [g.keys for g in ambiguous] == [frozenset({"r3", "r4", "r5"})] and ambiguous[0].between == {"a", "b"}


def test_a_person_s_decision_ties_records_like_an_identifier() -> None:
    cccds = {"r0": "a", "r1": "b", "r2": None}
    groups = group(cccds, [Link("r0", "r2", False), Link("r1", "r2", False)], ties=[{"r0", "r2"}])
    assert {g.keys for g in groups} == {frozenset({"r0", "r2"}), frozenset({"r1"})}
