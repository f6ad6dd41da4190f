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
"""

from __future__ import annotations

from fhir_hub.matching.record import MatchRecord


def block_keys(record: MatchRecord) -> frozenset[str]:
    """The keys a record is filed under; two records are compared only when they share one."""
    keys = {f"cccd:{record.cccd}"} if record.cccd else set()
    keys.update(f"bhxh:{n}" for n in record.bhxh)
    keys.update(f"ma-bn:{n}" for n in record.local_ids)
    keys.update(f"phone:{p}" for p in record.phones)
    family, given, year = record.family_group, record.given_group, record.birth_year
    date = f"{record.birth_month}-{record.birth_day}" if record.birth_day is not None else None
    if family and given:
        if year:
            keys.add(f"fgy:{family}|{given}|{year}")
        if date:
            keys.add(f"fgd:{family}|{given}|{date}")
    if year and date:
        if family:
            keys.add(f"fd:{family}|{year}-{date}")
        if given:
            keys.add(f"gd:{given}|{year}-{date}")
    if year and record.name_bag:
        words = sorted(family if w == record.family else w for w in record.name_bag)
        keys.add(f"bag:{' '.join(words)}|{year}")
    if year and given and record.middle:
        keys.add(f"gmy:{given}|{' '.join(record.middle)}|{year}")
    return frozenset(keys)
