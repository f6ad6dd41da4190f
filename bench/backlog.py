"""The backlog of ``python -m bench backfill``: people of a known risk, each with several MoH XML episodes,
one episode per payload, in a shuffled arrival order so that high- and low-risk payloads come interleaved.

Why not ``generate_file`` alone: it draws a new random person for every episode and a diagnosis from a pool
where a third of the codes are chronic, so neither the share of high-risk people nor who owns which record
would be known. Here the generator's episodes (``generate_episodes``: realistic rows, unique MA_LK) are given
to people drawn first: a person's identity (name, CCCD consistent with birth year and gender, cards, address)
is copied into each of their episodes' XML1, and their diagnoses are redrawn so that the person's tier is
the one chosen. About ``high_share`` of people are high-risk, half by age (born so that they are 60 and over)
and half by a chronic diagnosis (ICD-10 in one of the risk rules' ranges) at a younger age; the others are
aged 10-54 with diagnoses no risk rule names. A chronic person's first-drawn episode carries the chronic
code as main diagnosis; each of their other episodes repeats it (as a secondary code, as claims do for a
comorbidity) with probability ``chronic_repeat``: the records that do not are low-risk on their own.

The risk rules themselves (``profiles.risk``) say which pool codes are chronic, so the backlog follows any
change to ``rules.json``. Pure: no store, no hub.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date
from typing import Any

from adapters.moh_xml.codes import table
from adapters.moh_xml.generator import GeneratedEpisode, envelope, generate_episodes, hoso_files
from profiles.icd10 import icd10_key
from profiles.risk import default_rules

PERSON_FIELDS = ("HO_TEN", "GIOI_TINH", "MA_BN", "DIA_CHI", "DIEN_THOAI", "MA_THE_BHYT", "MA_DKBD")
CCCD_SYSTEM = "http://fhir.hl7.org.vn/core/sid/cccd"


@dataclass(frozen=True)
class Person:
    cccd: str
    tier: str  # "high" or "low": the tier the person's records together reach
    why: str  # "age", "chronic" or "" (low)
    records: int
    high_records: int = 0  # those of the records that are high-risk on their own

    @property
    def every_record_high(self) -> bool:
        """Whether each of the person's records says on its own that they are high-risk (their age, or the
        chronic code repeated): only then does no job of theirs depend on what the queue knows already."""
        return self.tier == "high" and self.high_records == self.records

    @property
    def who(self) -> str:
        """The key the queue's jobs carry for this person (``ingest_jobs._who``: the CCCD)."""
        return f"{CCCD_SYSTEM}|{self.cccd}"


@dataclass(frozen=True)
class Payload:
    person: int  # index into Backlog.people
    high: bool  # whether this record alone is high-risk (an old person's, or one naming a chronic code)
    body: bytes


@dataclass
class Backlog:
    people: list[Person]
    payloads: list[Payload]  # in arrival order

    def high_share(self) -> float:
        return sum(p.tier == "high" for p in self.people) / len(self.people)


def risk_codes(codes: list[str]) -> set[str]:
    """Those of ``codes`` that some risk rule names (by its ICD-10 ranges)."""
    ranges = [r for rule in default_rules().rules for r in rule.criterion.icd10]
    return {c for c in codes if (key := icd10_key(c)) is not None and any(r.holds(key) for r in ranges)}


def records_per_person(people: int, payloads: int, rng: random.Random) -> list[int]:
    """``payloads`` records spread over ``people``: one each, the rest at random (sums to ``payloads``)."""
    if payloads < people:
        raise ValueError(f"{payloads} payloads cannot give each of {people} people a record")
    counts = [1] * people
    for _ in range(payloads - people):
        counts[rng.randrange(people)] += 1
    return counts


def _birth(rng: random.Random, first: int, last: int) -> date:
    return date(rng.randint(first, last), rng.randint(1, 12), rng.randint(1, 28))


def _identity(row: dict[str, Any], born: date, index: int) -> dict[str, str]:
    """The person's XML1 fields, from the first episode drawn for them, with a birth date of the chosen age
    and a CCCD that agrees with it (province 079, century-and-gender digit, year) and is unique by index."""
    female = row.get("GIOI_TINH") == "2"
    century = (born.year // 100 - 19) * 2 + (1 if female else 0)
    fields = {name: str(row.get(name, "")) for name in PERSON_FIELDS}
    return {**fields, "NGAY_SINH": f"{born:%Y%m%d}0000", "SO_CCCD": f"079{century}{born:%y}{index:06d}"}


def _diagnose(episode: GeneratedEpisode, codes: list[tuple[str, str]]) -> None:
    summary = episode.tables["XML1"][0]
    summary["MA_BENH_CHINH"] = codes[0][0]
    summary["MA_BENH_KT"] = ";".join(code for code, _ in codes[1:])
    summary["CHAN_DOAN_VAO"] = codes[0][1]
    summary["CHAN_DOAN_RV"] = "; ".join(name for _, name in codes)
    for loai in ("XML13", "XML14"):
        for row in episode.tables.get(loai, []):
            row["CHAN_DOAN_RV"] = summary["CHAN_DOAN_RV"]


def generate_backlog(people: int, payloads: int, *, seed: int = 18, high_share: float = 0.2,
                     chronic_repeat: float = 0.5, facility: str = "79001") -> Backlog:
    """``payloads`` one-episode MoH XML files for ``people`` people, about ``high_share`` of them high-risk,
    in a shuffled arrival order; the same arguments give the same backlog."""
    rng = random.Random(f"backfill:{seed}")
    pool: list[tuple[str, str]] = [(str(code), str(name)) for code, name in table("synthetic")["icd10"]]
    chronic = risk_codes([code for code, _ in pool])
    plain = [item for item in pool if item[0] not in chronic]
    serious = [item for item in pool if item[0] in chronic]
    episodes = iter(generate_episodes(seed, payloads, facility=facility))
    found: list[Person] = []
    arrivals: list[Payload] = []
    for index, count in enumerate(records_per_person(people, payloads, rng)):
        why = rng.choice(["age", "chronic"]) if rng.random() < high_share else ""
        born = _birth(rng, 1930, 1962) if why == "age" else _birth(rng, 1972, 2016)
        own = [next(episodes) for _ in range(count)]
        identity = _identity(own[0].tables["XML1"][0], born, index)
        disease = rng.choice(serious) if why == "chronic" else None
        for n, episode in enumerate(own):
            summary = episode.tables["XML1"][0]
            summary.update(identity)
            cards = [c for c in identity["MA_THE_BHYT"].split(";") if c]
            year = summary["NGAY_VAO"][:4]
            summary["GT_THE_TU"] = ";".join(f"{year}0101" for _ in cards)
            summary["GT_THE_DEN"] = ";".join(f"{year}1231" for _ in cards)
            codes = rng.sample(plain, rng.randint(1, 4))
            named = disease is not None and (n == 0 or rng.random() < chronic_repeat)
            if disease is not None and named:
                codes = [disease, *codes] if n == 0 else [*codes, disease]
            _diagnose(episode, codes)
            created = f"2025{rng.randint(7, 12):02d}{rng.randint(1, 28):02d}"
            arrivals.append(Payload(index, why == "age" or named,
                                    envelope(facility, [hoso_files(episode)], created)))
        found.append(Person(identity["SO_CCCD"], "high" if why else "low", why, count,
                            sum(p.high for p in arrivals[-count:])))
    rng.shuffle(arrivals)
    return Backlog(found, arrivals)
