"""patch (FHIR R4 http.html#patch) and conditional patch, with the patch already read into an ``Applier``
(a JSON Patch or a FHIRPath Patch: ``fhir_hub.fhir.patch``, ``fhir_hub.fhir.fhirpath_patch``).

The patch is applied to the current version and the result goes through the same validation, access
checks and versioning as an update; ``if_match`` pins the version it applies to. A conditional patch that
matches nothing is a 404, several a 412.
"""

from __future__ import annotations

from fhir_hub.errors import NotFound
from fhir_hub.fhir.patch import Applier
from fhir_hub.services.conditions import single_match
from fhir_hub.services.results import Written
from fhir_hub.services.session import Session
from fhir_hub.store.writer import Patch


async def patch(session: Session, rtype: str, rid: str, apply: Applier, *, if_match: int | None = None) -> Written:
    result = await session.commit(Patch(rtype, rid, apply, if_match=if_match))
    return Written(result.version, 200, "Patched")


async def conditional_patch(session: Session, rtype: str, criteria: str, apply: Applier, *,
                            if_match: int | None = None) -> Written:
    match = await single_match(session, rtype, criteria, what="Conditional patch")
    if match is None:
        raise NotFound(f"Conditional patch: no {rtype} matches the criteria")
    return await patch(session, rtype, match.rid, apply, if_match=if_match)
