"""create (FHIR R4 http.html#create), including conditional create (#ccreate, ``If-None-Exist``).

The server assigns the id; an id in the body is ignored, as the spec requires. With ``If-None-Exist``:
no match creates, one match answers 200 with the existing resource and stores nothing, several matches
answer 412. ``create`` is the interaction (it claims the criteria, so that two concurrent conditional
creates never both create); ``create_resource`` is its step for a Bundle, which holds every claim of its
entries at once.
"""

from __future__ import annotations

from typing import Any

from fhir_hub.fhir.validation import validate_resource
from fhir_hub.services.conditions import single_match
from fhir_hub.services.results import Written
from fhir_hub.services.session import Session
from fhir_hub.store.claims import claim_key
from fhir_hub.store.records import StoredVersion
from fhir_hub.store.writer import Create


async def create(session: Session, rtype: str, resource: dict[str, Any], *,
                 if_none_exist: str | None = None) -> Written:
    if if_none_exist is None:
        return await create_resource(session, rtype, resource)
    async with session.hub.store.claims.holding([claim_key(rtype, if_none_exist)]):  # one creator at a time
        return await create_resource(session, rtype, resource, if_none_exist=if_none_exist)


async def existing_match(session: Session, rtype: str, condition: str) -> StoredVersion | None:
    """What an ``If-None-Exist`` condition finds (several: 412)."""
    return await single_match(session, rtype, condition, what="If-None-Exist", expression=("If-None-Exist",))


async def create_resource(session: Session, rtype: str, resource: dict[str, Any], *,
                          if_none_exist: str | None = None, rid: str | None = None) -> Written:
    """``rid``: an id the caller chose among the server's own (a transaction assigns ids before writing)."""
    if if_none_exist is not None:
        found = await existing_match(session, rtype, if_none_exist)
        if found is not None:
            validate_resource(resource, expected_type=rtype)  # a bad body is refused even when a match exists
            return Written(found, 200, "Found existing")
    result = await session.commit(Create(rtype, resource, rid=rid))
    return Written(result.version, 201, "Created")
