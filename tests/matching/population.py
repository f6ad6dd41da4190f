"""A synthetic population of Ho Chi Minh City and the records facilities would keep of it, with ground truth.

``generate(n, seed)`` draws ``n`` people (households first, so that spouses, children, twins and grandparents
share an address and often a phone: the hard negatives of matching), then 2-4 records of each person as
different facilities would have written them: FHIR R4 Patient JSON as the hub stores it
(``/work/notes/matching-interface.md``), with the noise facilities really produce (missing diacritics,
upper case, swapped or missing middle and given names, typos, partial or day/month-swapped birth dates, a
new phone, a new insurance card of another category, a missing ID, the other regional spelling of the
family name). Each record keeps the id of the person it describes, which is what the accuracy measurement
(``tests/matching/evaluate.py``) checks the matcher's decisions against.

Everything is drawn from one ``random.Random(seed)``: the same seed gives the same population.
"""

from __future__ import annotations

import random
from bisect import bisect
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import accumulate
from typing import Any

from adapters.normalize import facility_system
from tests.matching import vn_data as vn
from tests.matching.noise import NOISE, Noise, card, copy_of

TODAY = date(2026, 7, 1)  # the population's "now": ages, cards and CCCD eligibility are computed from it
FACILITIES = tuple(f"79{n:03d}" for n in range(1, 61)) + ("74010", "74022", "77005")


class Choice:
    """Weighted choice from a fixed list in O(log n), with one ``random.Random`` for reproducibility."""

    def __init__(self, items: list[Any] | tuple[Any, ...], weights: list[float] | tuple[float, ...]) -> None:
        self.items = list(items)
        self.cumulative = list(accumulate(weights))

    def __call__(self, rng: random.Random) -> Any:
        return self.items[bisect(self.cumulative, rng.random() * self.cumulative[-1])]


def _ranked(names: list[str]) -> Choice:
    unique = list(dict.fromkeys(names))
    return Choice(unique, [1 / (rank + 4) ** 0.9 for rank in range(len(unique))])


def _families() -> Choice:
    tail_share = 100 - sum(vn.FAMILY_SHARES.values())
    tail = [1 / (rank + 2) for rank in range(len(vn.FAMILY_TAIL))]
    names = [*vn.FAMILY_SHARES, *vn.FAMILY_TAIL]
    weights = [*vn.FAMILY_SHARES.values(), *(w * tail_share / sum(tail) for w in tail)]
    return Choice(names, weights)


def _middles(table: tuple[tuple[str, float], ...], modern: bool) -> Choice:
    return Choice([n for n, _ in table], [w / 3 if modern and n in vn.MODERN_LESS else w for n, w in table])


FAMILY = _families()
GIVEN = {"male": _ranked(vn.MALE_GIVEN), "female": _ranked(vn.FEMALE_GIVEN)}
MIDDLE = {(gender, modern): _middles(table, modern) for modern in (False, True)
          for gender, table in (("male", vn.MALE_MIDDLE), ("female", vn.FEMALE_MIDDLE))}
AGE = Choice([lo for lo, _ in vn.AGE_BANDS], [share for _, share in vn.AGE_BANDS])
# the most common full names: the name collisions a matcher must not link on name and birth year alone
# (3% of adults: at city scale hundreds of people share each of these names and birth years)
COMMON_NAMES = {"male": (("Nguyễn", "Văn", "Hùng"), ("Nguyễn", "Văn", "Dũng")),
                "female": (("Nguyễn", "Thị", "Hương"), ("Nguyễn", "Thị", "Lan"))}
COMMON_YEARS = (1975, 1982, 1990)


@dataclass(slots=True)
class Person:
    """The truth about one person; records are noisy copies of it."""

    pid: int
    gender: str  # "male" | "female"
    birth: date
    family: str = ""
    middle: tuple[str, ...] = ()
    given: str = ""
    ward: tuple[str, str] = ("", "")  # (code, name)
    street: str = ""
    phone: str | None = None
    cccd: str | None = None
    bhxh: str | None = None
    card: str | None = None  # the BHYT card: category, benefit, province, then the BHXH number
    household: int = -1  # pid of the household's head
    twin: bool = False  # born with the person before it

    @property
    def age(self) -> int:
        return (TODAY - self.birth).days // 365


@dataclass(frozen=True, slots=True)
class Record:
    """One facility's record of a person: the FHIR Patient and who it really is."""

    key: str
    person: int
    facility: str
    patient: dict[str, Any]


@dataclass(slots=True)
class Population:
    people: list[Person]
    records: list[Record] = field(default_factory=list)


def generate(n: int, seed: int = 16, *, noise: Noise = NOISE) -> Population:
    """``n`` people and 2-4 records of each, shuffled, keyed ``Patient/r0000001``..."""
    rng = random.Random(seed)
    people = _people(n, rng)
    # ward populations differ (lognormal: the largest a few times the mean, about 1.5% of the city each),
    # never one ward holding a sixth of the city, which a Pareto draw once did and no map shows
    wards = Choice(vn.WARDS, [rng.lognormvariate(0, 0.6) for _ in vn.WARDS])
    _households(people, rng, wards)
    _identifiers(people, rng)
    records: list[tuple[int, str, dict[str, Any]]] = []
    local_numbers: dict[str, int] = {}
    facility = Choice(FACILITIES, [1 / (i + 3) for i in range(len(FACILITIES))])  # big hospitals see more
    for person in people:
        copies = rng.choices((2, 3, 4), weights=(0.4, 0.35, 0.25))[0]
        seen: dict[str, str] = {}  # facility -> MA_BN: a second visit to one facility keeps its number
        for _ in range(copies):
            fac = facility(rng)
            if fac in seen and rng.random() >= noise.same_facility_again:
                fac = facility(rng)
            if fac not in seen:
                local_numbers[fac] = local_numbers.get(fac, 0) + rng.randint(1, 40)
                number = local_numbers[fac]  # each facility numbers its patients its own way
                seen[fac] = f"{int(fac) % 7}{number:08d}" if fac[-1] in "02468" else f"BN{number:07d}"
            patient = copy_of(person, rng, noise)
            patient["identifier"].append({"system": facility_system("ma-bn", fac), "value": seen[fac]})
            records.append((person.pid, fac, patient))
    rng.shuffle(records)
    out = []
    for index, (pid, fac, patient) in enumerate(records, start=1):
        patient = {"resourceType": "Patient", "id": f"r{index:07d}", **patient}
        out.append(Record(f"Patient/r{index:07d}", pid, fac, patient))
    return Population(people, out)


def _people(n: int, rng: random.Random) -> list[Person]:
    """Ages from the pyramid, 2% of children born as twins (the twin is the next person)."""
    people: list[Person] = []
    while len(people) < n:
        age = AGE(rng)
        age = age + rng.randrange(20 if age == 80 else 5)
        birth = TODAY - timedelta(days=365 * age + rng.randrange(365))
        gender = "female" if rng.random() < (0.5 if age < 60 else 0.57) else "male"
        people.append(Person(len(people), gender, birth))
        if age < 18 and rng.random() < 0.02 and len(people) < n:
            people.append(Person(len(people), rng.choice(("male", "female")), birth, twin=True))
    return people


def _households(people: list[Person], rng: random.Random, wards: Choice) -> None:
    """Couples of similar age, children placed with parents 20-42 years older, a third of the elderly
    with a grown child; a household shares ward, street and the head's phone, children take the head's
    family name. Names and the rest are drawn here too."""
    females: dict[int, list[Person]] = {}
    for p in people:
        if p.gender == "female" and 20 <= p.age <= 75:
            females.setdefault(p.age, []).append(p)
    heads: dict[int, list[Person]] = {}  # age -> household heads
    members: dict[int, int] = {}  # head pid -> children placed
    for p in sorted((p for p in people if p.age >= 18), key=lambda p: p.gender != "male"):  # men look for wives
        if p.household >= 0:
            continue
        _name(p, rng, rng.random() < 0.03)
        _home(p, rng, wards)
        p.household = p.pid
        if p.gender == "male" and 20 <= p.age <= 75 and rng.random() < 0.7:
            for _ in range(4):
                wives = females.get(p.age - rng.randint(-2, 8), [])
                while wives and wives[-1].household >= 0:
                    wives.pop()
                if wives:
                    wife = wives.pop()
                    _name(wife, rng, False)
                    _join(wife, p, rng)
                    break
        if p.age < 60:
            heads.setdefault(p.age, []).append(p)
    index = 0
    while index < len(people):
        p = people[index]
        twins = [p] + ([people[index + 1]] if index + 1 < len(people) and people[index + 1].twin else [])
        index += len(twins)
        if p.household >= 0:
            continue
        parent = _pick_head(heads, members, p.age, rng)
        middle = _name(p, rng, False, family=parent.family if parent else None)
        for twin in twins[1:]:
            _name(twin, rng, False, family=p.family, middle=middle if rng.random() < 0.7 else None, avoid=p.given)
        for child in twins:
            if parent is not None:
                _join(child, parent, rng, own_phone=child.age >= 15 and rng.random() < 0.6)
            elif child is p:  # with relatives the records do not know
                _home(child, rng, wards)
                child.household = p.pid
            else:
                _join(child, p, rng, own_phone=False)
    for p in people:
        if p.age >= 65 and p.household == p.pid and rng.random() < 0.35:
            grown = _pick_head(heads, members, p.age - 62, rng)  # a head 20-42 years younger
            if grown is not None:
                _join(p, grown, rng, own_phone=rng.random() < 0.5)


def _pick_head(heads: dict[int, list[Person]], members: dict[int, int], child_age: int,
               rng: random.Random) -> Person | None:
    for _ in range(6):
        candidates = heads.get(child_age + rng.randint(20, 42))
        if candidates:
            head = rng.choice(candidates)
            if members.get(head.pid, 0) < 4:
                members[head.pid] = members.get(head.pid, 0) + 1
                return head
    return None


def _join(p: Person, head: Person, rng: random.Random, *, own_phone: bool = True) -> None:
    p.household, p.ward, p.street = head.pid, head.ward, head.street
    p.phone = _mobile(rng) if own_phone and rng.random() < 0.9 else head.phone


def _home(p: Person, rng: random.Random, wards: Choice) -> None:
    p.ward = wards(rng)
    p.street = f"{rng.randint(1, 400)}{'/' + str(rng.randint(1, 60)) if rng.random() < 0.4 else ''} " \
               f"{rng.choice(vn.STREETS)}"
    p.phone = _mobile(rng) if p.age >= 15 and rng.random() < (0.93 if p.age < 70 else 0.6) else None


def _name(p: Person, rng: random.Random, common: bool, *, family: str | None = None,
          middle: tuple[str, ...] | None = None, avoid: str = "") -> tuple[str, ...]:
    if common:
        p.family, mid, p.given = rng.choice(COMMON_NAMES[p.gender])
        p.middle = (mid,)
        p.birth = p.birth.replace(year=rng.choice(COMMON_YEARS), day=min(p.birth.day, 28))
        return p.middle
    p.family = family or FAMILY(rng)
    if middle is None:
        pick = MIDDLE[(p.gender, p.birth.year >= 2000)]
        middle = (pick(rng),) if rng.random() < 0.96 else ()
        if middle and rng.random() < 0.04:
            middle = (*middle, pick(rng))
    p.middle = middle
    p.given = GIVEN[p.gender](rng)
    while p.given == avoid or p.given in p.middle:
        p.given = GIVEN[p.gender](rng)
    return middle


def _mobile(rng: random.Random) -> str:
    return rng.choice(vn.MOBILE_PREFIXES) + f"{rng.randrange(10 ** 7):07d}"


def _identifiers(people: list[Person], rng: random.Random) -> None:
    """CCCD for 97% of adults and 40% of children's records, a BHYT card for 80%; 3% have no papers."""
    used: set[str] = set()
    categories = [(top, Choice([c for c, _ in table], [w for _, w in table])) for top, table in vn.CATEGORIES_BY_AGE]
    for p in people:
        if rng.random() < 0.03:
            continue
        if rng.random() < (0.97 if p.age >= 14 else 0.4):
            province = "079" if rng.random() < 0.8 else rng.choice(vn.OTHER_PROVINCES)
            digit = (0 if p.birth.year < 2000 else 2) + (p.gender == "female")
            p.cccd = _unique(f"{province}{digit}{p.birth.year % 100:02d}", 6, rng, used)
        if rng.random() < 0.8:
            region = "79" if rng.random() < 0.85 else rng.choice(("74", "77", "01", "52"))
            p.bhxh = _unique(region, 8, rng, used)
            category = next(choice for top, choice in categories if p.age <= top)(rng)
            p.card = card(category, p.bhxh, rng)


def _unique(prefix: str, digits: int, rng: random.Random, used: set[str]) -> str:
    """``prefix`` and random digits, never handed out before: one number, one person."""
    while (value := f"{prefix}{rng.randrange(10 ** digits):0{digits}d}") in used:
        pass
    used.add(value)
    return value


__all__ = ["Person", "Population", "Record", "generate"]
