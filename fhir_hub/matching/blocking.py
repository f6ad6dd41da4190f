"""``block_keys``: the few keys under which a record is filed, so that a new record meets a handful of
candidates instead of the whole population.

Each key is narrow (a name together with a birth year or a full date), so a block holds a few people
whatever the population's size (the cost per record must stay flat from 1,000 to 10,000 people and beyond).
Recall comes from the keys' overlap, each surviving a different kind of noise:

* identifiers (personal ID, social insurance number, MA_BN) and phone numbers: survive any name or date noise;
* family group + given + year: a missing birth day or month, a day/month swap, a dropped middle name;
* family group + full date: a typo in the given name, given names swapped;
* given + full date: a typo in the family name;
* all name words (family as its group) + year: the name in another order, middle and given swapped;
* given + middle names + year: a typo in the family name when the date is year-only;
* family group + given + day and month: a typo in the birth year.

"Group" is the regional-variant group (Hoàng and Huỳnh block together).

A common name with a birth year is no narrow key: "Nguyễn Văn Hùng 1975" is hundreds of people in the city,
a block that grows with the population (measured on the synthetic population: from 1,000 to 10,000 people
the candidates per record grew 3.6 -> 5.6, 1.8 times the cost, through these keys alone). When the name
words of such a key weigh under ``COMMON_NAME_BITS`` (default model), the key carries the ward too. Nothing
is lost by it: ``compare`` never links, nor even reviews, a common name with only a birth year unless a
ward, phone or address agrees, and the phone has its own key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fhir_hub.matching.model import Model

if TYPE_CHECKING:
    from fhir_hub.matching.record import MatchRecord

COMMON_NAME_BITS = 13.0  # the default model's rare_name: below it a name and a birth year are not enough
# A full birth date narrows a key as much as a name of this many bits (1 in 365, roughly 8.5 bits): "Nguyễn"
# and a date is a block of a few people in 10,000, of hundreds in a city.
_DATE_BITS = 8.5


def block_keys(record: MatchRecord) -> frozenset[str]:
    """The keys a record is filed under; two records are compared only when they share one.

    ``features`` computes them once (``MatchRecord.blocks``): an incoming record is looked up once but its
    keys used to cost as much as the look-up itself (measured: 4 us of 10)."""
    return record.blocks or compute_keys(record)


def compute_keys(record: MatchRecord) -> frozenset[str]:
    keys = {f"cccd:{record.cccd}"} if record.cccd else set()
    keys.update(f"bhxh:{n}" for n in record.bhxh)
    keys.update(f"ma-bn:{n}" for n in record.local_ids)
    keys.update(f"phone:{p}" for p in record.phones)
    family, given, year = record.family_group, record.given_group, record.birth_year
    date = f"{record.birth_month}-{record.birth_day}" if record.birth_day is not None else None
    place = f"|{record.ward_name or record.ward}" if record.ward_name or record.ward else None
    model = Model.default()
    if year and date:
        if family:
            _narrow(keys, f"fd:{family}|{year}-{date}", model.family.agree(family) + _DATE_BITS, place)
        if given:
            _narrow(keys, f"gd:{given}|{year}-{date}", model.given.agree(given) + _DATE_BITS, place)
    if family and given:
        pair = model.family.agree(family) + model.given.agree(given)
        if date:
            _narrow(keys, f"fgd:{family}|{given}|{date}", pair, place)
        if year:
            _narrow(keys, f"fgy:{family}|{given}|{year}", pair, place)
    if year and record.name_bag:
        words = sorted(family if w == record.family else w for w in record.name_bag)
        others = [w for w in record.name_bag if w != record.family]
        bits = model.family.agree(family) + max((model.given.agree(w) for w in others), default=0.0)
        _narrow(keys, f"bag:{' '.join(words)}|{year}", bits, place)
    if year and given and record.middle:
        bits = model.given.agree(given) + max(model.middle.agree(m) for m in record.middle)
        _narrow(keys, f"gmy:{given}|{' '.join(record.middle)}|{year}", bits, place)
    return frozenset(keys)


def _narrow(keys: set[str], key: str, bits: float, place: str | None) -> None:
    """Add ``key``, with the ward when its name words weigh under ``COMMON_NAME_BITS`` (the words of the key
    alone, so that two records sharing the key text decide alike), not at all when the ward is unknown."""
    if bits >= COMMON_NAME_BITS:
        keys.add(key)
    elif place:
        keys.add(key + place)
