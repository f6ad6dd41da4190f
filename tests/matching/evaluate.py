"""How well a matcher finds the people behind synthetic records: the measurement of issue 16's targets.

Shared by ``tests/matching/test_accuracy.py`` (asserts the targets at a test-sized population) and
``bench/matching.py`` (reports them at 10,000 and 100,000 people). Definitions:

- A matcher with ``fit`` is first fitted on every record's features (``hub_engine``: the model a hub
  holding these records would have, refit from them); its time is ``seconds["fit"]``.
- Every record meets, once, every earlier record sharing a block key (``Index``): those are the pairs
  compared, each with a decision "link", "review" or "apart". ``candidates_per_record`` counts a pair for
  both its records (``2 * pairs / records``): the records each one is compared with in the full index.
- Pairwise confusion over all pairs of records: a true positive is a linked pair of one person, a false
  positive a linked pair of two, a false negative a pair of one person not linked (whether compared and
  kept apart or never compared because no block key was shared: ``not_blocked`` counts those).
  ``link`` counts only automatic links (the upper threshold); ``link_or_review`` counts review decisions as
  links, which is what lowering the upper threshold to the lower one would give.
- Cluster confusion: the same counts over the pairs that end up in one cluster after the transitive
  closure (union-find) of the links, which is what the hub would merge.
- Review list: records in at least one "review" pair, as a share of all records.
- A record carrying a CCCD is correct when its link cluster holds every record carrying the same CCCD
  (``cccd_split`` counts those that do not) and no record of anyone else (``cccd_mixed``).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from adapters.normalize import CCCD
from tests.matching.population import Person, Record


class Decided(Protocol):
    @property
    def decision(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Matcher:
    """The three calls a matcher is measured through; ``engine()`` gives fhir_hub.matching's. ``fit``, when
    set, gives the matcher for the whole population from every record's features (a model refit from them)."""

    features: Callable[[dict[str, Any], str], Any]
    block_keys: Callable[[Any], Iterable[str]]
    compare: Callable[[Any, Any], Decided]
    fit: Callable[[Sequence[Any]], Matcher] | None = None


def engine(model: Any = None) -> Matcher:
    from fhir_hub import matching  # imported late: the generator's own tests do not need the engine

    return Matcher(features=matching.features, block_keys=matching.block_keys,
                   compare=lambda a, b: matching.compare(a, b, model))


def hub_model(records: Sequence[Any]) -> Any:
    """The model a hub holding these records (their features) would have: name frequencies counted from
    them (``Model.refit``), thresholds for their number (``Model.for_records``)."""
    from fhir_hub.matching import Model

    return Model.default().refit(records).for_records(len(records))


def hub_engine() -> Matcher:
    """fhir_hub.matching with ``hub_model`` of the records it is measured on."""
    return replace(engine(), fit=lambda records: engine(hub_model(records)))


class Index:
    """Block key -> positions of the records holding it; a record added meets the earlier ones."""

    def __init__(self) -> None:
        self.blocks: dict[str, list[int]] = {}

    def add(self, position: int, keys: Iterable[str]) -> list[int]:
        """The earlier records sharing a key with this one, which joins the index."""
        candidates: set[int] = set()
        for key in keys:
            block = self.blocks.setdefault(key, [])
            candidates.update(block)
            block.append(position)
        return sorted(candidates)

    def candidates(self, keys: Iterable[str]) -> set[int]:
        """The records sharing a key, the index unchanged (an incoming record looked up, not added)."""
        found: set[int] = set()
        for key in keys:
            found.update(self.blocks.get(key, ()))
        return found

    def largest(self) -> int:
        return max(map(len, self.blocks.values()), default=0)


@dataclass(frozen=True, slots=True)
class Confusion:
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    def as_dict(self) -> dict[str, Any]:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "precision": round(self.precision, 5),
                "recall": round(self.recall, 5)}


@dataclass(frozen=True, slots=True)
class Pair:
    """A wrong decision, for the report: the two records and what the matcher said (None: never compared)."""

    a: Record
    b: Record
    comparison: Decided | None


@dataclass(slots=True)
class Evaluation:
    records: int
    people: int
    same_person_pairs: int
    pairs_compared: int
    largest_block: int
    link: Confusion
    link_or_review: Confusion
    clusters: Confusion
    clusters_lower: Confusion
    not_blocked: int
    review_records: int
    cccd_records: int
    cccd_split: int
    cccd_mixed: int
    cccd_wrong: int  # split, mixed or both
    missed_by_decision: dict[str, int]  # same-person pairs not linked: "review", "apart", "never compared"
    seconds: dict[str, float]
    false_links: list[Pair] = field(default_factory=list)
    missed_links: list[Pair] = field(default_factory=list)

    @property
    def candidates_per_record(self) -> float:
        return 2 * self.pairs_compared / self.records if self.records else 0.0

    @property
    def review_share(self) -> float:
        return self.review_records / self.records if self.records else 0.0

    @property
    def cccd_correct(self) -> float:
        return 1.0 - self.cccd_wrong / self.cccd_records if self.cccd_records else 1.0

    def summary(self) -> dict[str, Any]:
        return {
            "people": self.people, "records": self.records, "same_person_pairs": self.same_person_pairs,
            "pairs_compared": self.pairs_compared, "candidates_per_record": round(self.candidates_per_record, 2),
            "largest_block": self.largest_block, "not_blocked": self.not_blocked,
            "link": self.link.as_dict(), "link_or_review": self.link_or_review.as_dict(),
            "missed_by_decision": self.missed_by_decision,
            "clusters": self.clusters.as_dict(), "clusters_lower": self.clusters_lower.as_dict(),
            "review_records": self.review_records, "review_share": round(self.review_share, 5),
            "cccd_records": self.cccd_records, "cccd_split": self.cccd_split, "cccd_mixed": self.cccd_mixed,
            "cccd_wrong": self.cccd_wrong,
            "cccd_correct": round(self.cccd_correct, 5),
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


def evaluate(records: Sequence[Record], matcher: Matcher | None = None, *, examples: int = 10) -> Evaluation:
    """Compare every candidate pair of ``records`` once and score the decisions against the truth."""
    matcher = matcher or engine()
    start = time.perf_counter()
    features = [matcher.features(r.patient, r.key) for r in records]
    seconds = {"features": time.perf_counter() - start, "blocking": 0.0, "compare": 0.0}
    if matcher.fit is not None:
        start = time.perf_counter()
        matcher = matcher.fit(features)
        seconds["fit"] = time.perf_counter() - start
    index = Index()
    decided: dict[str, list[tuple[int, int]]] = {"link": [], "review": []}
    same_person: dict[tuple[int, int], Decided] = {}  # compared pairs of one person and their decision
    false_links: list[Pair] = []
    pairs = 0
    for i, record in enumerate(features):
        t0 = time.perf_counter()
        candidates = index.add(i, matcher.block_keys(record))
        t1 = time.perf_counter()
        outcomes = [(j, matcher.compare(features[j], record)) for j in candidates]
        seconds["blocking"] += t1 - t0
        seconds["compare"] += time.perf_counter() - t1
        pairs += len(candidates)
        for j, comparison in outcomes:
            if comparison.decision in decided:
                decided[comparison.decision].append((j, i))
            if records[j].person == records[i].person:
                same_person[(j, i)] = comparison
            elif comparison.decision == "link" and len(false_links) < examples:
                false_links.append(Pair(records[j], records[i], comparison))
    per_person = Counter(r.person for r in records)
    total_same = sum(n * (n - 1) // 2 for n in per_person.values())
    links, reviews = decided["link"], decided["review"]
    missed = [Pair(records[j], records[i], c) for (j, i), c in same_person.items() if c.decision != "link"]
    missed_by = Counter(p.comparison.decision for p in missed if p.comparison is not None)
    missed_by["never compared"] = total_same - len(same_person)
    clusters = _clusters(len(records), links)
    return Evaluation(
        records=len(records), people=len(per_person), same_person_pairs=total_same, pairs_compared=pairs,
        largest_block=index.largest(),
        link=_pairwise(records, links, total_same), link_or_review=_pairwise(records, links + reviews, total_same),
        clusters=_cluster_confusion(records, clusters, total_same),
        clusters_lower=_cluster_confusion(records, _clusters(len(records), links + reviews), total_same),
        not_blocked=total_same - len(same_person), missed_by_decision=dict(sorted(missed_by.items())),
        review_records=len({k for pair in reviews for k in pair}),
        cccd_records=sum(_cccd(r) is not None for r in records), **_cccd_errors(records, clusters),
        seconds=seconds, false_links=false_links, missed_links=missed[:examples] + _unblocked(
            records, same_person, max(0, examples - len(missed))),
    )


def _pairwise(records: Sequence[Record], linked: list[tuple[int, int]], total_same: int) -> Confusion:
    tp = sum(records[a].person == records[b].person for a, b in linked)
    return Confusion(tp, len(linked) - tp, total_same - tp)


def _clusters(n: int, edges: list[tuple[int, int]]) -> list[int]:
    """Union-find: the cluster (a root position) of every record."""
    parent = list(range(n))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        parent[root(a)] = root(b)
    return [root(x) for x in range(n)]


def _cluster_confusion(records: Sequence[Record], clusters: list[int], total_same: int) -> Confusion:
    sizes = Counter(clusters)
    together = Counter((c, r.person) for c, r in zip(clusters, records, strict=True))
    tp = sum(n * (n - 1) // 2 for n in together.values())
    return Confusion(tp, sum(n * (n - 1) // 2 for n in sizes.values()) - tp, total_same - tp)


def _cccd(record: Record) -> str | None:
    return next((i["value"] for i in record.patient.get("identifier", []) if i.get("system") == CCCD), None)


def _cccd_errors(records: Sequence[Record], clusters: list[int]) -> dict[str, int]:
    holders: dict[str, set[int]] = {}
    people: dict[int, set[int]] = {}
    for position, record in enumerate(records):
        people.setdefault(clusters[position], set()).add(record.person)
        if (cccd := _cccd(record)) is not None:
            holders.setdefault(cccd, set()).add(clusters[position])
    split = mixed = wrong = 0
    for position, record in enumerate(records):
        if (cccd := _cccd(record)) is not None:
            apart, others = len(holders[cccd]) > 1, len(people[clusters[position]]) > 1
            split, mixed, wrong = split + apart, mixed + others, wrong + (apart or others)
    return {"cccd_split": split, "cccd_mixed": mixed, "cccd_wrong": wrong}


def _unblocked(records: Sequence[Record], compared: dict[tuple[int, int], Decided], limit: int) -> list[Pair]:
    """Pairs of one person that never met (no shared block key), up to ``limit``."""
    found: list[Pair] = []
    by_person: dict[int, list[int]] = {}
    for position, record in enumerate(records):
        by_person.setdefault(record.person, []).append(position)
    for positions in by_person.values():
        for x, a in enumerate(positions):
            for b in positions[x + 1:]:
                if len(found) >= limit:
                    return found
                if (a, b) not in compared:
                    found.append(Pair(records[a], records[b], None))
    return found


def false_link_kinds(pairs: Iterable[Pair], people: Mapping[int, Person]) -> dict[str, int]:
    """Which hard negative each false link fell for: one household (twins apart), one full name and birth
    year (the common-name collisions), one family and given name and birth year, or something else."""
    kinds: Counter[str] = Counter()
    for pair in pairs:
        a, b = people[pair.a.person], people[pair.b.person]
        if a.household == b.household:
            kinds["twins" if a.birth == b.birth else "same household"] += 1
        elif (a.family, a.middle, a.given, a.birth.year) == (b.family, b.middle, b.given, b.birth.year):
            kinds["same full name and birth year"] += 1
        elif (a.family, a.given, a.birth.year) == (b.family, b.given, b.birth.year):
            kinds["same family and given name, birth year"] += 1
        else:
            kinds["other"] += 1
    return dict(sorted(kinds.items()))


def describe(pair: Pair) -> str:
    """Two records side by side and the matcher's verdict: what the lead reads to see why it went wrong."""
    lines = [_record_line(pair.a), _record_line(pair.b)]
    c = pair.comparison
    if c is None:
        lines.append("    never compared: no block key in common")
    else:
        detail = {k: getattr(c, k) for k in ("score", "rule", "reasons") if hasattr(c, k)}
        lines.append(f"    {c.decision} {detail}")
    return "\n".join(lines)


def _record_line(record: Record) -> str:
    p = record.patient
    name = (p.get("name") or [{}])[0]
    address = (p.get("address") or [{}])[0]
    ward = next((e["valueString"] for e in address.get("extension", [])), "")
    ids = [f"{i['system'].rsplit('/', 2)[-1] if 'ma-bn' not in i['system'] else 'ma-bn'}={i['value']}"
           for i in p.get("identifier", [])]
    phone = [t["value"] for t in p.get("telecom", [])]
    return (f"  {record.key} person {record.person}: {name.get('family')!r}/{name.get('given')!r} "
            f"({name.get('text')!r}) {p.get('birthDate')} {p.get('gender')} {phone} "
            f"{address.get('line')} {ward} {' '.join(ids)}")
