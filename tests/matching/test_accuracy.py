"""Issue 16's accuracy targets on a synthetic population, and the population generator itself.

The targets (automatic links precision >= 99.9%, recall >= 95%, at most 2% of records on the review list,
every CCCD-bearing record correct) are asserted at the issue's own size, 10,000 people (about 28,500
records, a few seconds): at 2,000 the common-name collisions are too sparse to catch a matcher that fails
at 5,000 (measured). Both with the hand-set model (a hub before it holds enough records) and with the
model a hub holding these records would have (``hub_engine``: refit from them). ``python -m bench
matching`` adds 100,000 people and the cost per record, with the hub's model.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from adapters.normalize import BHXH, BHYT, CCCD, facility_scoped, personal_id_problems
from tests.matching import vn_data as vn
from tests.matching.evaluate import Confusion, Evaluation, Matcher, describe, engine, evaluate, hub_engine
from tests.matching.population import Population, Record, generate

PEOPLE = 10_000
SEED = 16


@pytest.fixture(scope="module")
def population() -> Population:
    return generate(PEOPLE, SEED)


# ------------------------------------------------------------------------------------------ the engine
@pytest.mark.parametrize("matcher", [engine, hub_engine], ids=["hand-set model", "model refit from the records"])
def test_engine_meets_the_targets(population: Population, matcher: Callable[[], Matcher]) -> None:
    result = evaluate(population.records, matcher())
    report = _report(result)
    assert result.link.precision >= 0.999, report
    assert result.link.recall >= 0.95, report
    assert result.review_share <= 0.02, report
    assert result.cccd_correct == 1.0, report


def _report(result: Evaluation) -> str:
    wrong = [describe(p) for p in result.false_links] + [describe(p) for p in result.missed_links]
    return f"{result.summary()}\nfalse links, then missed links:\n" + "\n".join(wrong)


# ----------------------------------------------------------------------------------- the measurement
@dataclass(frozen=True)
class Verdict:
    decision: str


def _oracle(records: list[Record], *, one_block: bool) -> Matcher:
    """A matcher that knows the truth: links exactly the records of one person."""
    truth = {r.key: r.person for r in records}
    return Matcher(features=lambda patient, key: truth[key],
                   block_keys=lambda person: {"all"} if one_block else {str(person)},
                   compare=lambda a, b: Verdict("link" if a == b else "apart"))


@pytest.mark.parametrize("one_block", [False, True])
def test_a_perfect_oracle_scores_perfectly(population: Population, one_block: bool) -> None:
    records = population.records[: 600 if one_block else None]  # one block compares every pair
    result = evaluate(records, _oracle(records, one_block=one_block))
    for confusion in (result.link, result.link_or_review, result.clusters, result.clusters_lower):
        assert confusion.precision == confusion.recall == 1.0
        assert confusion.tp == result.same_person_pairs > 0
    assert result.cccd_correct == 1.0 and result.cccd_records > 0
    assert result.review_records == result.not_blocked == 0
    assert result.pairs_compared == (len(records) * (len(records) - 1) // 2 if one_block else result.same_person_pairs)


def test_the_measurement_counts_by_hand() -> None:
    """Five records, three of person 1: links a1-a2 (right) and a2-b1 (wrong), a review a1-a3."""
    ids = {"a1": "079190000001", "a2": "079190000001", "b1": "079190000002"}
    records = [Record(f"Patient/{k}", int(k[0] == "b") + 2 * int(k[0] == "c"), "79001",
                      {"identifier": [{"system": CCCD, "value": ids[k]}] if k in ids else []})
               for k in ("a1", "a2", "a3", "b1", "c1")]
    said = {frozenset(("Patient/a1", "Patient/a2")): "link", frozenset(("Patient/a2", "Patient/b1")): "link",
            frozenset(("Patient/a1", "Patient/a3")): "review"}
    result = evaluate(records, Matcher(lambda p, k: k, lambda r: {"all"},
                                       lambda a, b: Verdict(said.get(frozenset((a, b)), "apart"))))
    assert (result.same_person_pairs, result.pairs_compared, result.candidates_per_record) == (3, 10, 4.0)
    assert result.link == Confusion(tp=1, fp=1, fn=2) and result.link_or_review == Confusion(2, 1, 1)
    assert result.clusters == Confusion(1, 2, 2)  # {a1, a2, b1}: a1-b1 and a2-b1 are wrong
    assert result.clusters_lower == Confusion(3, 3, 0)  # {a1, a2, a3, b1}
    assert result.missed_by_decision == {"apart": 1, "never compared": 0, "review": 1}
    assert (result.review_records, result.review_share) == (2, 0.4)
    assert (result.cccd_records, result.cccd_split, result.cccd_mixed, result.cccd_wrong) == (3, 0, 3, 3)


def test_the_measurement_sees_false_and_missed_links(population: Population) -> None:
    """Linking everything, or nothing, must score badly (the measurement can fail a matcher)."""
    records = population.records[:400]
    everything = evaluate(records, Matcher(lambda p, k: k, lambda r: {"all"}, lambda a, b: Verdict("link")))
    assert everything.link.recall == 1.0 and everything.link.precision < 0.01 and everything.cccd_mixed > 0
    assert everything.false_links
    nothing = evaluate(records, Matcher(lambda p, k: k, lambda r: {"all"}, lambda a, b: Verdict("review")))
    assert nothing.link.tp == 0 and nothing.link_or_review.recall == 1.0 and nothing.review_share == 1.0
    assert nothing.cccd_split > 0 and nothing.missed_links


# ------------------------------------------------------------------------------------- the generator
def test_the_same_seed_gives_the_same_population() -> None:
    first, again, other = generate(300, 7), generate(300, 7), generate(300, 8)
    assert first.records == again.records and first.people == again.people
    assert first.records != other.records


def test_names_follow_the_population_frequencies(population: Population) -> None:
    people = population.people
    share = Counter(p.family for p in people)
    for family, expected in (("Nguyễn", 0.38), ("Trần", 0.11), ("Lê", 0.095), ("Phạm", 0.07)):
        assert abs(share[family] / len(people) - expected) < max(0.3 * expected, 0.015), family
    assert 0.04 < (share["Hoàng"] + share["Huỳnh"]) / len(people) < 0.065
    assert len(share) > 30  # the long tail
    for gender, dominant in (("male", "Văn"), ("female", "Thị")):
        middles = Counter(p.middle[0] for p in people if p.gender == gender and p.middle)
        assert middles.most_common(1)[0][0] == dominant
        given = Counter(p.given for p in people if p.gender == gender)
        assert len(given) > 80 and given.most_common(10)[-1][1] > 3 * given.most_common()[-1][1]


def test_ages_span_children_to_the_elderly(population: Population) -> None:
    ages = [p.age for p in population.people]
    assert 0.15 < sum(a < 15 for a in ages) / len(ages) < 0.28
    assert 0.07 < sum(a >= 60 for a in ages) / len(ages) < 0.18
    assert max(ages) >= 85


def test_people_live_all_over_the_city(population: Population) -> None:
    wards = Counter(p.ward for p in population.people)
    assert len(wards) > 0.9 * len(vn.WARDS) and max(wards.values()) < 0.03 * len(population.people)


def test_personal_ids_agree_with_birth_year_and_gender(population: Population) -> None:
    people = population.people
    ids = [p.cccd for p in people if p.cccd]
    assert len(ids) == len(set(ids)) and 0.6 < len(ids) / len(people) < 0.95
    assert sum(i.startswith("079") for i in ids) / len(ids) > 0.7
    for p in people:
        if p.cccd:
            assert personal_id_problems(p.cccd, birth_year=p.birth.year, gender=p.gender) == [], p
    adults = [p for p in people if p.age >= 18]
    assert sum(p.cccd is not None for p in adults) / len(adults) > 0.9
    no_papers = sum(p.cccd is None and p.card is None for p in people) / len(people)
    assert 0.02 < no_papers < 0.1


def test_insurance_cards_carry_the_social_insurance_number(population: Population) -> None:
    renewed = cards = 0
    for p in population.people:
        if p.card:
            assert p.bhxh and re.fullmatch(r"[A-Z]{2}[1-5]\d{12}", p.card) and p.card[-10:] == p.bhxh
            assert int(p.card[2]) == vn.BENEFIT[p.card[:2]]
    people = {p.pid: p for p in population.people}
    for record in population.records:
        for i in record.patient["identifier"]:
            if i["system"] == BHYT:
                cards += 1
                assert i["value"][-10:] == people[record.person].bhxh
                renewed += i["value"][:2] != people[record.person].card[:2]  # type: ignore[index]
            if i["system"] == BHXH:
                assert i["value"] == people[record.person].bhxh
    assert 0.05 < renewed / cards < 0.25  # a new card of another category


def test_every_record_keeps_its_person(population: Population) -> None:
    people = {p.pid: p for p in population.people}
    copies = Counter(r.person for r in population.records)
    assert set(copies) == set(people) and set(copies.values()) <= {2, 3, 4}
    assert len({r.key for r in population.records}) == len(population.records)
    local_owner: dict[tuple[str, str], int] = {}
    for record in population.records:
        assert record.key == f"Patient/{record.patient['id']}"
        assert record.patient["birthDate"][:4] == str(people[record.person].birth.year)  # as its CCCD says
        for i in record.patient["identifier"]:
            if i["system"] == CCCD:
                assert i["value"] == people[record.person].cccd
            elif facility_scoped(i["system"]):
                assert local_owner.setdefault((i["system"], i["value"]), record.person) == record.person


def test_copies_are_noisy_the_way_facilities_are(population: Population) -> None:
    records = population.records
    texts = [r.patient["name"][0]["text"] for r in records]
    assert 0.1 < sum(t.isascii() for t in texts) / len(texts) < 0.3
    assert 0.05 < sum(t.isupper() for t in texts) / len(texts) < 0.2
    dates = Counter(len(r.patient["birthDate"]) for r in records)
    assert dates[4] > 0.03 * len(records) and dates[7] > 0 and dates[10] > 0.85 * len(records)
    phones = [t["value"].replace("+84", "0") for r in records for t in r.patient.get("telecom", [])]
    assert all(re.fullmatch(r"0(3|5|7|8|9)\d{8}|01\d{9}", p) for p in phones)
    assert 0 < sum(len(p) == 11 for p in phones) < 0.05 * len(phones)  # numbers from before 2018
    people = {p.pid: p for p in population.people}
    regional = sum(r.patient["name"][0].get("family") == vn.REGIONAL_SPELLINGS.get(people[r.person].family)
                   for r in records)
    assert regional > 0


def test_the_population_has_hard_negatives(population: Population) -> None:
    people = population.people
    twins = [(people[p.pid - 1], p) for p in people if p.twin]
    assert twins
    for first, second in twins:
        assert (first.family, first.birth, first.household, first.ward, first.street) == (
            second.family, second.birth, second.household, second.ward, second.street)
        assert first.given != second.given
    same_name_year = Counter((p.family, p.middle, p.given, p.birth.year) for p in people)
    assert same_name_year.most_common(1)[0][1] >= 4
    households = Counter(p.household for p in people)
    assert sum(n >= 3 for n in households.values()) > 0.05 * len(households)
    phones = Counter(p.phone for p in people if p.phone)
    assert sum(n > 1 for n in phones.values()) > 0.05 * len(phones)
