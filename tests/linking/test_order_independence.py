"""Matching in the write path does not depend on arrival order (issue 16): the same facility records written
in two orders end in the same grouping into persons, and at no point does a source record have two masters.

Each example writes a handful of records of a few people into a fresh database, once in the drawn order and
once in a drawn permutation of it. The people are drawn from small pools of names, birth dates and phones
on purpose: namesakes born on one day, relatives sharing a phone, and records with and without a CCCD or a
card are what makes the order matter, if anything does.

With two CCCDs in play the match step regroups the records involved (``linking/regroup.py``); the examples
kept below are the ones Hypothesis found against earlier versions: a record without a CCCD linking with two
holders (``_BRIDGED``), and records sharing a card between two holders.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st

from adapters.normalize import BHXH, BHYT, CCCD
from fhir_hub.config import Settings
from fhir_hub.fhir.jsonio import loads
from fhir_hub.hub import Hub, running_hub
from fhir_hub.linking.elements import master_of
from fhir_hub.store.writer import Update
from tests.linking.test_linker import facility
from tests.matching.noise import fold

# (family, middle and given names, gender): two namesakes-to-be, a regional spelling of one surname
NAMES = (("Nguyễn", ("Thị", "Lan"), "female"), ("Huỳnh", ("Ngọc", "Hân"), "female"),
         ("Hoàng", ("Ngọc", "Hân"), "female"), ("Trần", ("Văn", "Đức"), "male"))
BIRTHS = ("1956-04-12", "1962-08-23")
PHONES = ("0903123456", "0911222333")
FACILITIES = ("79001", "79002", "79003")
# weighted towards the first of each pool: people who share a name, a birth date and a phone
NAME_DRAWS, BIRTH_DRAWS, PHONE_DRAWS = (1, 1, 1, 2, 0, 3), (1, 1, 0), (0, 0, 1, None)


@dataclass(frozen=True)
class Person:
    index: int  # their CCCD and BHXH number derive from it: one number, one person
    name: int
    birth: int
    phone: int | None


@dataclass(frozen=True)
class Copy:
    """One facility's record of a person, as that facility writes it down."""

    person: int
    facility: str
    ascii_only: bool
    year_only: bool
    cccd: bool
    card: str | None  # the card's category; the social-insurance number is the person's
    phone: bool


def patient(who: Person, copy: Copy) -> dict[str, Any]:
    family, given, gender = NAMES[who.name]
    birth = BIRTHS[who.birth]
    text = fold if copy.ascii_only else str
    body: dict[str, Any] = {"resourceType": "Patient", "gender": gender,
                            "name": [{"family": text(family), "given": [text(g) for g in given]}],
                            "birthDate": birth[:4] if copy.year_only else birth}
    identifiers = []
    if copy.cccd:
        digit = 1 if gender == "female" else 0  # born in the 1900s
        identifiers.append({"system": CCCD, "value": f"079{digit}{birth[2:4]}{who.index:06d}"})
    if copy.card:
        bhxh = f"79{who.index:08d}"
        identifiers += [{"system": BHYT, "value": f"{copy.card}479{bhxh}"}, {"system": BHXH, "value": bhxh}]
    if identifiers:
        body["identifier"] = identifiers
    if copy.phone and who.phone is not None:
        body["telecom"] = [{"system": "phone", "value": PHONES[who.phone]}]
    return body


@st.composite
def populations(draw: st.DrawFn) -> list[tuple[str, dict[str, Any], str]]:
    """3-6 records (id, Patient, facility) of 1-3 people."""
    count = draw(st.integers(1, 3))
    people = [Person(i, draw(st.sampled_from(NAME_DRAWS)), draw(st.sampled_from(BIRTH_DRAWS)),
                     draw(st.sampled_from(PHONE_DRAWS))) for i in range(count)]
    copies = draw(st.lists(st.builds(
        Copy, person=st.integers(0, count - 1), facility=st.sampled_from(FACILITIES), ascii_only=st.booleans(),
        year_only=st.booleans(), cccd=st.booleans(), card=st.none() | st.sampled_from(("HT", "GD")),
        phone=st.booleans()), min_size=3, max_size=6))
    return [(f"r{n}", patient(people[c.person], c), c.facility) for n, c in enumerate(copies)]


async def _refers(hub: Hub, key: str) -> list[str]:
    version = await hub.store.current("Patient", key.removeprefix("Patient/"))
    assert version is not None and version.json is not None, key
    return [link["other"]["reference"] for link in loads(version.json).get("link", []) if link["type"] == "refer"]


async def _one_master_each(hub: Hub, keys: list[str]) -> None:
    """Every source record so far refers to exactly one master, and the store's person of that record
    agrees: its master in use is the one the refer link leads to, and the record is among its sources."""
    for key in keys:
        refers = await _refers(hub, key)
        assert len(refers) == 1, (key, refers)
        in_use = await hub.store.master_in_use(key)
        assert in_use is not None and in_use == (await hub.store.master_in_use(refers[0]) or refers[0]), key
        person = await hub.store.person(key)
        assert person is not None and person.master == in_use and key in person.sources, (key, person)


async def _grouping(base: Settings, records: list[tuple[str, dict[str, Any], str]]) -> set[frozenset[str]]:
    """Write ``records`` in this order into a fresh database; the partition of their keys into persons."""
    fresh = base.with_(db_name=f"test_order_{uuid.uuid4().hex[:12]}")
    async with running_hub(fresh) as hub:
        try:
            written: list[str] = []
            for rid, body, code in records:
                await hub.writer.commit(Update("Patient", rid, body | {"id": rid}), caller=facility(code))
                written.append(f"Patient/{rid}")
                await _one_master_each(hub, written)
            persons: dict[str, set[str]] = {}
            for key in written:
                master = await hub.store.master_in_use(key)
                assert master is not None
                persons.setdefault(master, set()).add(key)
            return {frozenset(keys) for keys in persons.values()}
        finally:
            await hub.store.db.client.drop_database(fresh.db_name)


@pytest.fixture(scope="module")
def base_settings(mongodb_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """One data directory (one development key) for the module; each example gets its own database."""
    data_dir: Path = tmp_path_factory.mktemp("order-var")
    return Settings(mongodb_uri=mongodb_uri, db_name="unused", data_dir=data_dir, validation_processes=0,
                    ingest_processes=0)


def _describe(records: list[tuple[str, dict[str, Any], str]]) -> list[str]:
    """Each record in one line, for the failure message (Hypothesis' own repr of the bodies is unreadable)."""
    return [f"{rid}@{code}: {' '.join([body['name'][0]['family'], *body['name'][0]['given']])} "
            f"{body['birthDate']} {[i['value'] for i in body.get('identifier', [])]} "
            f"{[t['value'] for t in body.get('telecom', [])]}" for rid, body, code in records]


_NAMESAKES = (Person(0, 1, 1, 0), Person(1, 1, 1, 0))  # Huỳnh Ngọc Hân, 1962-08-23, one phone, two CCCDs
_BRIDGED = [("r0", patient(_NAMESAKES[0], Copy(0, "79001", False, False, True, None, True)), "79001"),
            ("r1", patient(_NAMESAKES[1], Copy(1, "79002", False, False, True, None, True)), "79002"),
            ("r2", patient(_NAMESAKES[0], Copy(0, "79003", False, False, False, None, True)), "79003")]

_CARD_PAIR = (Person(0, 1, 1, None), Person(1, 1, 1, None))  # one name and birth date, two CCCDs
_CARD_BETWEEN = [  # r3 and r4 share a card; r0, r1 without papers link with everyone by score
    (f"r{n}", patient(_CARD_PAIR[who], Copy(who, "79001", False, False, cccd, card, False)), "79001")
    for n, (who, cccd, card) in enumerate([(0, False, None), (0, False, None), (0, True, None), (1, False, "HT"),
                                           (1, True, "HT")])]


def _in_two_orders(base: Settings, records: list[tuple[str, dict[str, Any], str]], order: list[int]
                   ) -> tuple[set[frozenset[str]], set[frozenset[str]], list[str]]:
    """The groupings of ``records`` written as drawn and in ``order`` (a permutation of up to 6), and that
    order's ids."""
    other = [records[i] for i in order if i < len(records)]
    return (asyncio.run(_grouping(base, records)), asyncio.run(_grouping(base, other)),
            [rid for rid, _b, _c in other])


def _personal_ids(records: list[tuple[str, dict[str, Any], str]]) -> set[str]:
    return {i["value"] for _rid, body, _code in records for i in body.get("identifier", []) if i["system"] == CCCD}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=populations(), order=st.permutations(range(6)))
def test_with_at_most_one_personal_id_the_order_does_not_change_the_grouping(
        base_settings: Settings, records: list[tuple[str, dict[str, Any], str]], order: list[int]) -> None:
    """Every example, both orders, checks after each write that no record has two masters (``_grouping``)."""
    assume(len(_personal_ids(records)) <= 1)
    first, second, other = _in_two_orders(base_settings, records, order)
    event(f"{len(first)} person(s)")  # --hypothesis-show-statistics: the examples do link records
    assert first == second, (_describe(records), other)


@example(records=_BRIDGED, order=[0, 2, 1, 3, 4, 5])  # the minimal case (found by Hypothesis, 3 records)
@example(records=_CARD_BETWEEN, order=[0, 4, 2, 3, 1, 5])  # found against the first, incremental fix
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=populations(), order=st.permutations(range(6)))
def test_the_same_records_in_another_order_group_into_the_same_persons(
        base_settings: Settings, records: list[tuple[str, dict[str, Any], str]], order: list[int]) -> None:
    """The property as issue 16 states it, whatever the personal IDs; ``_BRIDGED`` fails it today (and the
    generated examples run only once it passes)."""
    first, second, other = _in_two_orders(base_settings, records, order)
    assert first == second, (_describe(records), other)


@pytest.mark.anyio
@pytest.mark.parametrize("order", [(0, 1, 2), (0, 2, 1), (2, 0, 1), (1, 2, 0)])
async def test_a_record_between_two_personal_ids_joins_neither_whatever_the_order(
        hub: Hub, order: tuple[int, ...]) -> None:
    """r2 (no CCCD) links by its score with r0 and with r1, namesakes holding two CCCDs: it is set apart
    with both on its review list, whether it came last (``_unambiguous``) or before the second holder
    (``_ambiguous_now`` takes it out of the first holder's person)."""
    for rid, body, code in (_BRIDGED[i] for i in order):
        await hub.writer.commit(Update("Patient", rid, body | {"id": rid}), caller=facility(code))
    masters = {key: await hub.store.master_in_use(f"Patient/{key}") for key in ("r0", "r1", "r2")}
    assert len(set(masters.values())) == 3, masters
    r2 = await hub.store.current("Patient", "r2")
    linked = master_of(loads(r2.json)) if r2 is not None and r2.json is not None else None
    assert linked is not None and set(linked[1].reviews) >= {"Patient/r0", "Patient/r1"}, linked
    await _one_master_each(hub, ["Patient/r0", "Patient/r1", "Patient/r2"])
