"""update (FHIR R4 http.html#update) and conditional update (#cond-update).

PUT with a client id creates the resource when it does not exist (update-as-create, 201). ``If-Match``
makes the update depend on the version the client last saw (412 otherwise). Conditional update
``PUT [type]?criteria``: no match creates (with the body's id if it has one), one match updates it, several
matches answer 412; a body id that names another resource than the match is a 400. ``conditional_update``
is the interaction (it claims the criteria: no two concurrent requests create under them);
``update_matched`` its step once the criteria are resolved, which a transaction calls after resolving
every entry's criteria first.
"""

from __future__ import annotations

from typing import Any

from fhir_hub.errors import BadRequest
from fhir_hub.services.conditions import single_match
from fhir_hub.services.results import Written
from fhir_hub.services.session import Session
from fhir_hub.store.claims import claim_key
from fhir_hub.store.records import StoredVersion
from fhir_hub.store.writer import Create, Update


async def update(session: Session, rtype: str, rid: str, resource: dict[str, Any], *,
                 if_match: int | None = None) -> Written:
    result = await session.commit(Update(rtype, rid, resource, if_match=if_match))
    return Written(result.version, 201, "Created") if result.created else Written(result.version, 200, "Updated")


async def conditional_update(session: Session, rtype: str, criteria: str, resource: dict[str, Any], *,
                             if_match: int | None = None) -> Written:
    async with session.hub.store.claims.holding([claim_key(rtype, criteria)]):  # no match: one creator at a time
        match = await single_match(session, rtype, criteria, what="Conditional update")
        return await update_matched(session, rtype, match, resource, if_match=if_match)


async def update_matched(session: Session, rtype: str, match: StoredVersion | None, resource: dict[str, Any], *,
                         if_match: int | None, new_id: str | None = None) -> Written:
    """A conditional update once its criteria are resolved; ``new_id`` names the resource it creates
    when nothing matched and the body has no id (a transaction chooses it ahead)."""
    body_id = resource.get("id")
    if match is None:
        if body_id is None:
            result = await session.commit(Create(rtype, resource, rid=new_id))
            return Written(result.version, 201, "Created")
        return await update(session, rtype, str(body_id), resource, if_match=if_match)
    if body_id is not None and body_id != match.rid:
        raise BadRequest(f"Resource.id: the body has id {body_id!r} but the criteria match {rtype}/{match.rid}",
                         expression=[f"{rtype}.id"])
    return await update(session, rtype, match.rid, {**resource, "id": match.rid}, if_match=if_match)
