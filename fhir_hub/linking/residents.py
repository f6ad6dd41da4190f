"""A resident's token names one Patient record; patient matching may know more records of the same person.

The token's ``patient`` claim is whatever record the resident signed in with (the master, or the record of
the facility that enrolled them). Every request widens it to the person (``Caller.linked``): the master,
any master merged into it and every source record, so a resident reads the Encounters of every facility
that treated them, and the next request after a merge or an unmerge already sees the new person (no
token has to be re-issued, no cache outlives a change).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

from fhir_hub.auth.caller import Caller
from fhir_hub.store.patient_links import Person


async def with_linked_records(caller: Caller, person_of: Callable[[str], Awaitable[Person | None]]) -> Caller:
    if caller.patient is None:
        return caller
    person = await person_of(f"Patient/{caller.patient}")
    if person is None:
        return caller
    linked = frozenset(key.removeprefix("Patient/") for key in person.records) - {caller.patient}
    return dataclasses.replace(caller, linked=linked) if linked != caller.linked else caller
