"""The matching model: Fellegi-Sunter weights, name frequencies and thresholds, kept as data in model.json.

Where the numbers come from
---------------------------
Each field of ``model.json`` carries its own ``source`` line; in short:

* **m probabilities** (how often one person's two records show an outcome) are set by hand from the error
  kinds facilities produce: mistyped letters, dropped middle names, day/month swaps, a year-only birth date,
  moves between wards, changed phone numbers. They are round numbers on purpose: nobody measured them yet.
* **u probabilities** (how often two different people show it) follow from the population: for an exact name
  agreement u is that name's frequency, so agreeing on "Nguyễn" (38% of people) is worth log2(0.94/0.38) =
  1.3 bits while agreeing on a rare surname is worth about 10 (the "frequency-adjusted" agreement of the
  issue). Surname shares come from the published surname survey; given and middle name shares are estimates.
  ``Model.refit`` replaces all three tables by counts over the hub's own records once it holds enough, and
  adds a fourth: whole names (the name words, in any order), for an agreement on a whole name that is
  commoner than its parts multiplied (``compare._whole_name``). No public table of whole names exists, so
  the hand-set model has none.
* **thresholds** are in bits: upper 20 (automatic link), lower 12 (review), "certain" from 30, and
  ``rare_name`` 13 (a name carried by fewer than 1 in 8,000 people may link on name and birth date alone).
  They were tuned on the synthetic population of ``tests/matching/population.py`` (10,000 people, seeds 16
  and 21: no false link, recall 0.98, 1.2-1.5% of records on review). A pair's prior odds of being one
  person fall with the population, so a larger hub raises upper and lower by log2(its records / the
  records they were tuned on): ``Model.for_records``. A hub's model is therefore
  ``Model.default().refit(its records).for_records(their number)``, as ``bench/matching.py`` builds it.

Weights are computed once here (``log2(m/u)``) so that ``compare`` only adds numbers and looks up dicts.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fhir_hub.matching.record import MatchRecord

MODEL_FILE = Path(__file__).with_name("model.json")


def _bits(m: float, u: float) -> float:
    return math.log2(m / u)


@dataclass(frozen=True)
class NameTable:
    """Agreement weights of one name part, per folded name, with the weight of a name the table lacks.

    ``known`` lists the names known to be real names, which is what tells a slip from another name
    (``compare._slip``): a hand-set table's names and its ``known`` list, never a counted table's names,
    which hold every typo the records carry ("Qyết", "Trnầ": as "known" names, Quyết/Qyết read as two
    names and Trần/Trnầ as a disagreement; measured at 10,000 people: recall 0.980 -> 0.962, review list
    1.3% -> 3.6%)."""

    m_exact: float
    frequencies: Mapping[str, float]
    default_frequency: float
    known: frozenset[str] = frozenset()
    weights: dict[str, float] = field(init=False, repr=False)
    default: float = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", {n: _bits(self.m_exact, f) for n, f in self.frequencies.items()})
        object.__setattr__(self, "default", _bits(self.m_exact, self.default_frequency))

    def agree(self, name: str) -> float:
        return self.weights.get(name, self.default)


@dataclass(frozen=True)
class Model:
    """Everything ``compare`` weighs with; build it with ``Model.default()`` or ``Model.from_data``."""

    upper: float
    lower: float
    certain: float
    veto: float
    family: NameTable
    given: NameTable
    middle: NameTable
    # level weights per field, e.g. levels["birth"]["swap"]
    levels: dict[str, dict[str, float]]
    variant_penalty: float
    swap_penalty: float
    reorder_penalty: float
    contact_cap: float
    rare_name: float
    data: Mapping[str, Any] = field(repr=False)
    # whole names (``MatchRecord.full_name``) seen often enough to weigh as one: empty until ``refit``
    full_name: NameTable = field(default_factory=lambda: NameTable(1.0, {}, 1.0))

    @staticmethod
    def default() -> Model:
        """The model of ``model.json`` (loaded once)."""
        return _default_model()

    @classmethod
    def from_data(cls, data: Mapping[str, Any], *, upper: float | None = None, lower: float | None = None) -> Model:
        """A model from the structure of ``model.json``; ``upper``/``lower`` override its thresholds."""
        fields = data["fields"]
        levels: dict[str, dict[str, float]] = {}
        for name, spec in fields.items():
            m, u = spec.get("m", {}), spec.get("u", {})
            levels[name] = {level: _bits(m[level], u[level]) for level in m if level in u}
        thresholds = data["thresholds"]
        up = thresholds["upper"] if upper is None else upper
        low = thresholds["lower"] if lower is None else lower
        if low > up:
            raise ValueError(f"lower threshold {low} is above upper threshold {up}")
        return cls(
            upper=up, lower=low, certain=up + thresholds["certain_margin"], veto=thresholds["veto"],
            family=_table(fields["family"]["m"]["exact"], data["family_frequencies"]),
            given=_table(fields["given"]["m"]["exact"], data["given_frequencies"]),
            middle=_table(fields["middle"]["m"]["exact"], data["middle_frequencies"]),
            levels=levels,
            variant_penalty=fields["family"]["variant_penalty"],
            swap_penalty=fields["given"]["swap_penalty"],
            reorder_penalty=fields["given"]["reorder_penalty"],
            contact_cap=fields["contact_cap"]["bits"],
            rare_name=thresholds["rare_name"],
            data=data,
            full_name=_table(fields["full_name"]["m"]["exact"], data["full_name_frequencies"]),
        )

    @classmethod
    def load(cls, path: Path = MODEL_FILE) -> Model:
        return cls.from_data(json.loads(path.read_text(encoding="utf-8")))

    def with_thresholds(self, *, upper: float, lower: float) -> Model:
        """The same weights with other thresholds (what a deployment tunes first)."""
        return Model.from_data(self.data, upper=upper, lower=lower)

    def for_records(self, records: int) -> Model:
        """The same weights with ``model.json``'s thresholds raised for a hub of ``records`` Patients.

        The thresholds bound a pair's posterior odds, which are its prior odds times the evidence; the prior
        odds of two records being one person fall as 1 / size (a record has the same few partners among
        ever more strangers), so both thresholds grow by log2(records / ``tuned_records``), the records they
        were tuned on (never lowered: below that size they are kept). Measured on the synthetic population,
        100,000 people (284,568 records, +3.3 bits): false links 21 -> 4, CCCD-bearing records wrong 31 -> 8,
        recall 0.979 -> 0.976, review list 1.5% -> 1.9%. ``rare_name`` is kept: raised by the same bits it
        sent 1,500 more pairs of one person apart (recall 0.970) and the review list over 2% for 2 fewer
        false links."""
        thresholds = self.data["thresholds"]
        shift = max(0.0, math.log2(records / thresholds["tuned_records"])) if records > 0 else 0.0
        return self.with_thresholds(upper=thresholds["upper"] + shift, lower=thresholds["lower"] + shift)

    def refit(self, records: Iterable[MatchRecord], *, minimum: int = 1000, shared: int = 5) -> Model:
        """The model with its name frequency tables counted from ``records`` (one per person, ideally).

        Below ``minimum`` records the hand-set tables are kept: a few hundred people say little about how
        common a name is. Unseen names get half the frequency of a name seen once. Whole names are kept
        when at least ``shared`` records carry them, two people's at least (a person has a few records): the
        share of a name one person carries says only "1 in N", which would weigh every unique name as a
        common one in a small hub (measured at 10,000 people, names on 2 records and more: recall 0.978 ->
        0.970, review list 1.3% -> 1.6%). The counted tables keep the hand-set model's list of real names
        (``NameTable.known``)."""
        family: Counter[str] = Counter()
        given: Counter[str] = Counter()
        middle: Counter[str] = Counter()
        full: Counter[str] = Counter()
        count = 0
        for record in records:
            count += 1
            family[record.family] += 1 if record.family else 0
            given[record.given] += 1 if record.given else 0
            full[record.full_name] += 1 if record.full_name else 0
            for name in set(record.middle):
                middle[name] += 1
        if count < minimum:
            return self
        data = dict(self.data)
        data["full_name_frequencies"] = {
            "source": f"counted over {count} records by Model.refit, names on at least {shared} records",
            "default": 1.0, "table": {n: c / count for n, c in full.items() if n and c >= shared}}
        for key, counter, table in (("family_frequencies", family, self.family),
                                    ("given_frequencies", given, self.given),
                                    ("middle_frequencies", middle, self.middle)):
            data[key] = {"source": f"counted over {count} records by Model.refit", "default": 0.5 / count,
                         "table": {n: c / count for n, c in counter.items() if n},
                         "counted": True, "known": sorted(table.known)}
        return Model.from_data(data, upper=self.upper, lower=self.lower)


def _table(m_exact: float, spec: Mapping[str, Any]) -> NameTable:
    """A name table from its spec: a hand-set table's names are real names, a counted one's may be typos."""
    known = frozenset(spec.get("known", ()))
    return NameTable(m_exact=m_exact, frequencies=dict(spec["table"]), default_frequency=spec["default"],
                     known=known if spec.get("counted") else known | frozenset(spec["table"]))


@cache
def _default_model() -> Model:
    return Model.load()


@cache
def name_groups() -> dict[str, str]:
    """Each folded name's variant group: the spelling all its regional variants block and compare under.

    Read from the default model file because blocking has no model argument: records must fold the same way
    whichever model later weighs them."""
    groups: dict[str, str] = {}
    for group in _default_model().data["name_variants"]["groups"]:
        for name in group:
            groups[name] = group[0]
    return groups
