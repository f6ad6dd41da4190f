"""delete (FHIR R4 http.html#delete) and conditional delete (#cdelete, single match).

A deletion is a new version with no content; history keeps every earlier version and a read answers 410.
Deleting something already deleted, or never created, changes nothing and answers 204, as the spec
allows. A conditional delete matching several resources answers 412 instead of deleting them all.
"""

from __future__ import annotations

from fhir_hub.services.conditions import single_match
from fhir_hub.services.results import Written
from fhir_hub.services.session import Session
from fhir_hub.store.writer import Delete

NOTHING = Written(None, 204, "Nothing to delete")


async def delete(session: Session, rtype: str, rid: str, *, if_match: int | None = None) -> Written:
    result = await session.commit(Delete(rtype, rid, if_match=if_match))
    return Written(result.version, 204, "Deleted") if result.changed else NOTHING


async def conditional_delete(session: Session, rtype: str, criteria: str) -> Written:
    match = await single_match(session, rtype, criteria, what="Conditional delete")
    if match is None:
        return NOTHING
    return await delete(session, rtype, match.rid)
