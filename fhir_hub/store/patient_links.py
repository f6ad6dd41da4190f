"""Patient links: which master each source record refers to, and which masters were merged into which.

A deriver (``store/derivers.py``): one document per source Patient that carries the hub's ``refer`` link,
and one per master redirected into another (``replaced-by``), computed from the stored version alone, so it
is written atomically with the version that made the decision and crash repair recomputes it. ``_id`` is
the record's key, which is also why no record can ever have two masters: the primary key allows one
document per record.

``person`` answers "which records are this person?" from any of them: up the redirects to the master in
use, then down through every record that refers to it or to a master merged into it. One equality per
step on the indexed ``m`` (nx-27017 reads the whole collection for an ``$in`` on any field but ``_id``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fhir_hub.linking.elements import master_of, redirect_of
from fhir_hub.store.records import StoredVersion
from fhir_hub.store.schema import PATIENT_LINKS

_MAX_DEPTH = 64  # redirects followed before giving up (a cycle would be a bug; never loop on it)
# Up to this many values, ``find_among`` asks one indexed equality each; more, one ``$in``, which nx-27017
# answers by reading the whole collection (measured on 2,675 links: 8.2 ms for an ``$in`` of one master, 1.0
# for its equality; 6.6 ms for an ``$in`` of 50, 57 for 50 equalities).
_EQUALITIES_UP_TO = 8


@dataclass(frozen=True, slots=True)
class PatientLinks:
    name: str = "patient links"
    collection: str = PATIENT_LINKS

    def derive(self, version: StoredVersion, resource: dict[str, Any] | None) -> list[dict[str, Any]]:
        if version.rtype != "Patient" or version.deleted or resource is None:
            return []  # a deleted record belongs to no one: its master is rebuilt without it
        # the record's birth date, which a consent decision needs for a child (``consent_subjects.py``): found
        # with the person's records instead of reading every record of every person with consents
        born = {"b": resource["birthDate"]} if isinstance(resource.get("birthDate"), str) else {}
        redirect = redirect_of(resource)
        if redirect is not None:
            return [{"_id": version.key, "r": version.key, "m": redirect, "k": "redirect", **born}]
        linked = master_of(resource)
        if linked is None:
            return []
        master, decision = linked
        review = {"review": 1} if decision.reviews else {}  # on the review list (``Patient/$review-list``)
        return [{"_id": version.key, "r": version.key, "m": master, "k": "source", "rule": decision.rule, **review,
                 **born}]


@dataclass(frozen=True, slots=True)
class Person:
    """Every record of one person: the master in use, the masters merged into it, the source records."""

    master: str
    merged: frozenset[str]
    sources: frozenset[str]

    @property
    def records(self) -> frozenset[str]:
        return self.sources | self.merged | {self.master}


async def masters_in_use(collection: Any, keys: list[str]) -> dict[str, str | None]:
    """The master in use for each record: one request for their links, one per level of redirects (``_id``
    look-ups, which every server answers from its primary key), however many records."""
    direct = {doc["_id"]: doc["m"] async for doc in collection.find({"_id": {"$in": sorted(set(keys))}}, {"m": 1})}
    forward: dict[str, str] = {}
    asked = set(direct.values())
    for _ in range(_MAX_DEPTH):
        if not asked:
            break
        found = {doc["_id"]: doc["m"] async for doc in collection.find({"_id": {"$in": sorted(asked)}, "k": "redirect"},
                                                                          {"m": 1})}
        forward.update(found)
        asked = set(found.values()) - forward.keys()

    def top(master: str) -> str:
        for _ in range(_MAX_DEPTH):
            if master not in forward:
                return master
            master = forward[master]
        raise RuntimeError(f"patient links: redirects from {master} do not end")

    return {key: top(direct[key]) if key in direct else None for key in keys}


async def on_review(collection: Any, limit: int) -> list[str]:
    """Source records with pairs waiting for a person's decision, oldest key first."""
    return [doc["_id"] async for doc in collection.find({"review": 1}, {"_id": 1}).sort("_id", 1).limit(limit)]


async def master_in_use(collection: Any, key: str) -> str | None:
    """The master in use for a record (a source, a master, or a merged master); None when it has none."""
    return (await masters_in_use(collection, [key]))[key]


async def person(collection: Any, key: str) -> Person | None:
    """The person ``key`` is a record of; None when it is linked to nothing and nothing is linked to it."""
    master = await master_in_use(collection, key)
    if master is None:
        has_sources = await collection.find_one({"m": key}, {"_id": 1})
        if has_sources is None:
            return None
        master = key
    return await below(collection, master)


async def find_among(collection: Any, field: str, values: Iterable[str], projection: dict[str, int]
                     ) -> list[dict[str, Any]]:
    """The documents whose ``field`` is one of ``values``, by the cheapest request the store offers for that
    many values (``_EQUALITIES_UP_TO``): a single resource's decision asks about one or two."""
    wanted = sorted(set(values))
    if len(wanted) > _EQUALITIES_UP_TO:
        return [doc async for doc in collection.find({field: {"$in": wanted}}, projection)]
    return [doc for value in wanted async for doc in collection.find({field: value}, projection)]


async def people(collection: Any, keys: list[str]) -> dict[str, frozenset[str]]:
    """Every record of the person of each of ``keys`` (itself alone when it is linked to nothing): the
    masters in one request, then what is below all of them at once."""
    return (await people_born(collection, keys))[0]


async def people_born(collection: Any, keys: list[str]) -> tuple[dict[str, frozenset[str]], dict[str, str | None]]:
    """``people``, and the birth date each record below a master states (None: it states none); a record
    missing there has no link below a master (a master, a record linked to nothing)."""
    masters = await masters_in_use(collection, keys)
    tops = {key: masters[key] or key for key in keys}
    births: dict[str, str | None] = {}
    found = await _below_all(collection, set(tops.values()), births)
    return {key: found[tops[key]].records for key in keys}, births


async def below(collection: Any, master: str) -> Person:
    """``master`` and every record that refers to it, directly or through a master merged into it."""
    return (await _below_all(collection, {master}))[master]


async def _below_all(collection: Any, masters: set[str], births: dict[str, str | None] | None = None
                     ) -> dict[str, Person]:
    """Each master's person, walked one level of merges at a time for all of them together (a level is one
    ``find_among`` on the indexed ``m``); a record met twice is not walked again, so a cycle ends.
    ``births``: filled with the birth date of each record met below a master."""
    merged: dict[str, set[str]] = {m: set() for m in masters}
    sources: dict[str, set[str]] = {m: set() for m in masters}
    frontier = {m: m for m in masters}  # node -> the master it belongs to
    for _ in range(_MAX_DEPTH):
        if not frontier:
            break
        deeper: dict[str, str] = {}
        for doc in await find_among(collection, "m", frontier, {"m": 1, "k": 1, "b": 1}):
            top = frontier[doc["m"]]
            if births is not None:
                births[doc["_id"]] = doc.get("b")
            if doc["_id"] == top or doc["_id"] in merged[top] or doc["_id"] in sources[top]:
                continue
            if doc.get("k") == "redirect":
                merged[top].add(doc["_id"])
                deeper[doc["_id"]] = top
            else:
                sources[top].add(doc["_id"])
        frontier = deeper
    return {m: Person(m, frozenset(merged[m]), frozenset(sources[m])) for m in masters}
