"""What a privacy Consent must prove to be stored: the hub can apply it, and the right person gave it.

Residents give, restrict and withdraw their privacy consents themselves (or a child's guardian does), so a
facility can never grant itself access by writing a consent on someone's behalf. The hub records who
agreed in ``Consent.verification`` (verified with the resident's ``Patient`` or the guardian's
``RelatedPerson``, dated), keeping what earlier versions recorded and ignoring what the client claims: the
engine then asks, at every read, whether the people the person's age requires have agreed
(``consent/engine.py`` ``agreed``). A consent the engine cannot read is refused here, naming the element,
rather than half-applied later.
"""

from __future__ import annotations

from typing import Any, Protocol

from consent.model import PRIVACY_SCOPE, ConsentProblem, parse_consent
from fhir_hub.auth.caller import Caller
from fhir_hub.errors import Forbidden, UnprocessableResource
from fhir_hub.fhir.instant import to_instant
from fhir_hub.fhir.jsonio import loads
from fhir_hub.store.records import StoredVersion

GUARDIAN_CODES = frozenset({"http://terminology.hl7.org/CodeSystem/v3-RoleCode|GUARD",
                            "http://terminology.hl7.org/CodeSystem/v3-RoleCode|GUARDIAN"})


class Versions(Protocol):
    async def live_versions(self, keys: list[str]) -> list[StoredVersion]: ...


def is_privacy_consent(resource: dict[str, Any]) -> bool:
    return any(f"{c.get('system')}|{c.get('code')}" == PRIVACY_SCOPE
               for c in (resource.get("scope") or {}).get("coding") or () if isinstance(c, dict))


async def agreed_consent(caller: Caller, resource: dict[str, Any], previous: StoredVersion | None, *,
                         store: Versions, now: int) -> dict[str, Any]:
    """The Consent to store, with the writer's agreement recorded; raises when it may not be written."""
    try:
        parse_consent(resource)
    except ConsentProblem as problem:
        raise UnprocessableResource(str(problem), expression=[problem.expression]) from None
    if caller.internal or not is_privacy_consent(resource):
        return resource
    if caller.role != "resident" or caller.patient is None:
        raise Forbidden("A privacy consent is given by the resident or a child's guardian (a patient token), "
                        "never by a facility on their behalf")
    party = await _party(caller, store)
    earlier = loads(previous.json).get("verification") or [] if previous is not None and previous.json else []
    kept = [v for v in earlier if (v.get("verifiedWith") or {}).get("reference") != party]
    agreement = {"verified": True, "verifiedWith": {"reference": party}, "verificationDate": to_instant(now)}
    return {**resource, "verification": [*kept, agreement]}


async def _party(caller: Caller, store: Versions) -> str:
    """Who agrees: the resident themself, or the guardian their token names (``fhirUser`` a RelatedPerson of
    the person with a guardian relationship)."""
    user = caller.fhir_user or ""
    if not user.startswith("RelatedPerson/"):
        return f"Patient/{caller.patient}"
    found = await store.live_versions([user])
    related = loads(found[0].json) if found and found[0].json else {}
    patient = ((related.get("patient") or {}).get("reference") or "").split("/")[-1]
    codes = {f"{c.get('system')}|{c.get('code')}" for r in related.get("relationship") or ()
             for c in (r.get("coding") or ()) if isinstance(c, dict)}
    if related.get("active") is False or patient not in caller.patients or not codes & GUARDIAN_CODES:
        raise Forbidden(f"{user} is not a guardian of this person (a RelatedPerson of the patient with "
                        "relationship v3-RoleCode GUARD)")
    return user
