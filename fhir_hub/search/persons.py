"""A reference to a person's master Patient, searched as every record of that person (issue 16).

Nothing a facility sends refers to a master: its Encounters and Observations refer to its own Patient
record. A clinician who found the person (``Patient?name=...&_tag=<record-role>|master``) and asks for
``Observation?patient=Patient/master-...`` would find nothing, so a reference to a master is read as a
reference to any record of the person, by default. ``:mdm`` (the qualifier HAPI FHIR uses) asks the same
for any record of the person, source or master: ``Observation?subject:mdm=Patient/123`` finds the
Observations of every record linked with Patient/123. What the caller may see is still decided by the
reader afterwards: expanding the criterion grants nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

from fhir_hub.linking.elements import is_master_key
from fhir_hub.search.query import Criterion, SearchQuery, param_type
from fhir_hub.store.patient_links import Person

PersonOf = Callable[[str], Awaitable[Person | None]]
MDM = "mdm"


def remembered(person_of: PersonOf) -> PersonOf:
    """``person_of`` asking the store once per key: a search over several types (``$summary``'s ten, each with
    ``patient:mdm`` of the same record) expands the same person in each (measured: a quarter of a 500-resource
    summary). For one search only: a person's records change with the next link."""
    known: dict[str, Person | None] = {}

    async def lookup(key: str) -> Person | None:
        if key not in known:
            known[key] = await person_of(key)
        return known[key]

    return lookup


async def expand_persons(query: SearchQuery, person_of: PersonOf) -> SearchQuery:
    """``query`` with each reference to a master (or, with ``:mdm``, to any record) widened to the person."""
    criteria = []
    for criterion in query.criteria:
        criteria.append(await _expanded(query.rtype, criterion, person_of))
    if all(a is b for a, b in zip(criteria, query.criteria, strict=True)):
        return query
    return dataclasses.replace(query, criteria=tuple(criteria))


async def _expanded(rtype: str, criterion: Criterion, person_of: PersonOf) -> Criterion:
    if criterion.chain or criterion.has or criterion.name.startswith("_"):
        return criterion
    if criterion.modifier not in (None, MDM, "Patient") or param_type(rtype, criterion.name) != "reference":
        return criterion
    values: list[str] = []
    for value in criterion.any_of:
        values.append(value)
        bare = "/" not in value
        key = f"Patient/{value}" if bare else value
        if not key.startswith("Patient/") or key.count("/") != 1:
            continue  # another type, an absolute URL or a version: left as it is
        if criterion.modifier != MDM and not is_master_key(key):
            continue
        person = await person_of(key)
        if person is None:
            continue
        for record in sorted(person.records - {key}):
            values.append(record.removeprefix("Patient/") if bare else record)
    modifier = None if criterion.modifier == MDM else criterion.modifier
    if len(values) == len(criterion.any_of) and modifier == criterion.modifier:
        return criterion
    return dataclasses.replace(criterion, any_of=tuple(values), modifier=modifier)
