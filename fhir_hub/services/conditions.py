"""The one resource a conditional interaction acts on (FHIR R4 http.html#ccreate, #cond-update, #cdelete,
and conditional patch): a search that must not find more than one. Serves create's ``If-None-Exist``,
conditional update, patch and delete, and their Bundle entries."""

from __future__ import annotations

from fhir_hub.errors import PreconditionFailed
from fhir_hub.services.session import Session
from fhir_hub.store.records import StoredVersion


async def single_match(session: Session, rtype: str, criteria: str, *, what: str,
                       expression: tuple[str, ...] = ()) -> StoredVersion | None:
    """None when nothing matches; several matches are a 412 (the client's criteria are not selective)."""
    matches = await session.reader.conditional(rtype, criteria, what=what)
    if len(matches) > 1:
        raise PreconditionFailed(f"{what}: {len(matches)} {rtype} resources match the criteria {criteria!r}",
                                 code="multiple-matches", expression=expression)
    return matches[0] if matches else None
