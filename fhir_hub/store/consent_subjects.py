"""Consent subjects: which Patient each Consent is about, so that a request finds a person's consents in one
query however many resources it judges.

A deriver (``store/derivers.py``): one document per live Consent, ``p`` the Patient id it names, written
with the Consent's version; a withdrawal (a new version with another status) or a deletion rewrites or
removes it in the same request. The decision reads the Consent itself, never this document: the document
only says where to look, so nothing here can be stale in a way that widens access.

``people_consents`` answers, for some Patient ids, every consent of their persons (a consent given on one
record of a person holds for all of them; ``store/patient_links.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from consent.gate import PersonConsents
from consent.model import Actor, ConsentProblem, ConsentRecord, Provision, parse_consent
from fhir_hub.fhir.jsonio import loads
from fhir_hub.linking.elements import is_master_key
from fhir_hub.store.patient_links import find_among
from fhir_hub.store.records import StoredVersion
from fhir_hub.store.schema import CONSENT_SUBJECTS


@dataclass(frozen=True, slots=True)
class ConsentSubjects:
    name: str = "consent subjects"
    collection: str = CONSENT_SUBJECTS

    def derive(self, version: StoredVersion, resource: dict[str, Any] | None) -> list[dict[str, Any]]:
        if version.rtype != "Consent" or version.deleted or resource is None:
            return []
        patient = (resource.get("patient") or {}).get("reference")
        if not isinstance(patient, str) or "/" not in patient:
            return []
        return [{"_id": version.key, "r": version.key, "p": patient.rsplit("/", 1)[1]}]


async def people_consents(store: Any, patients: frozenset[str]) -> dict[str, PersonConsents]:
    """For each Patient id, its person's records and their consents (every status: the engine decides)."""
    people, linked_births = await store.people_born(sorted(f"Patient/{p}" for p in patients))
    records = {p: frozenset(k.removeprefix("Patient/") for k in people[f"Patient/{p}"]) for p in patients}
    everyone = frozenset().union(*records.values()) if records else frozenset()
    found: dict[str, list[str]] = {}
    for doc in await find_among(store.db[CONSENT_SUBJECTS], "p", everyone, {"p": 1}):
        found.setdefault(doc["p"], []).append(doc["_id"])
    keys = sorted({key for each in found.values() for key in each})
    # the Consents, and the records of the people who have any whose birth date no link stated: one request
    holders = {records[p] for p in patients if any(r in found for r in records[p])}
    births = {k.removeprefix("Patient/"): d for k, d in linked_births.items()}
    unstated = sorted(f"Patient/{r}" for person in holders for r in person if _unstated(r, person, births))
    versions = await store.live_versions(keys + unstated)
    consents: dict[str, ConsentRecord] = {}
    for version in versions:
        if version.rtype == "Consent":
            record = _parsed(version)
            if record is not None:
                consents[version.key] = record
        else:
            births[version.rid] = loads(version.json or b"{}").get("birthDate")
    facilities = await store.facility_codes(sorted({a.reference for c in consents.values()
                                                     for a in _actors(c.root)
                                                     if a.reference and a.reference.startswith("Organization/")}))
    consents = {key: replace(c, root=_resolved(c.root, facilities))
                if any(a.reference in facilities for a in _actors(c.root)) else c for key, c in consents.items()}
    theirs = {p: tuple(consents[k] for r in sorted(records[p]) for k in sorted(found.get(r, ())) if k in consents)
              for p in patients}
    born = _birth_dates(births, {records[p] for p in patients if theirs[p]})
    return {p: PersonConsents(records[p], theirs[p], born.get(records[p])) for p in patients}


def _unstated(record: str, person: frozenset[str], births: dict[str, str | None]) -> bool:
    """Whether a record's birth date must be read from the record: none of its links stated it, and it is
    not a master whose records below it did (a master's birth date is the most precise of theirs,
    ``linking/golden.py``, so it adds none)."""
    if record in births:
        return False
    return not (is_master_key(f"Patient/{record}") and any(births.get(r) for r in person))


def _birth_dates(stated: dict[str, str | None], people: set[frozenset[str]]) -> dict[frozenset[str], str]:
    """The most precise birth date any record of each person states (a child's consent needs guardians):
    for people who have consents."""
    found: dict[frozenset[str], str] = {}
    for person in people:
        dates = [d for r in person if isinstance(d := stated.get(r), str)]
        if dates:
            found[person] = max(dates, key=lambda d: (len(d), d))
    return found


def _parsed(version: StoredVersion) -> ConsentRecord | None:
    """A stored Consent the engine cannot read was refused on write; one stored before that check (or by the
    hub itself) is ignored, which denies rather than permits."""
    try:
        return parse_consent(loads(version.json or b"{}"))
    except ConsentProblem:
        return None


def _actors(provision: Provision) -> list[Actor]:
    return [*provision.actors, *(a for child in provision.provisions for a in _actors(child))]


def _resolved(provision: Provision, facilities: dict[str, str]) -> Provision:
    """Actors naming an Organization by id also carry its facility code: the engine compares codes."""
    actors = tuple(replace(a, facility=facilities.get(a.reference, a.facility) if a.reference else a.facility)
                   if a.reference in facilities else a for a in provision.actors)
    return replace(provision, actors=actors,
                   provisions=tuple(_resolved(child, facilities) for child in provision.provisions))
