"""The priority record's cohorts and worklists (issue 18), read through the caller's reader.

- ``Group/$risk-cohort?group=<rule>[&ward=<code>]``: the cohort ``Group`` of a risk group, its members the
  persons (master Patients) whose active Flag of that rule the caller may see, each with their score;
- ``Patient/$priority-worklist?ward=<code>[&months=12]``: the high-risk residents of a ward or commune with no
  visit the caller can see in the last ``months`` months, most at risk first, the oldest visit first.

Both are assembled per request from the Flags the priority record keeps current (``fhir_hub/priority``),
never stored: a stored Group would list every member to whoever may read it, while here each member, each
Flag and each visit is judged by the one access decision like any read. So a member's score counts only the
Flags the caller may see (an HIV Flag hidden by consent neither shows nor adds to the score), and the
members are always as current as the Flags.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from adapters.normalize import ADMINISTRATIVE_ADDRESS
from fhir_hub.errors import BadRequest, HubError
from fhir_hub.fhir.instant import local_day
from fhir_hub.fhir.jsonio import loads
from fhir_hub.linking.elements import master_of, redirect_of
from fhir_hub.priority.flags import EVIDENCE, RISK_GROUP
from fhir_hub.services.pages import encode_page
from fhir_hub.services.read import read
from fhir_hub.services.search import search
from fhir_hub.services.session import Session
from fhir_hub.store.records import StoredVersion
from profiles.risk import default_rules

PAGE = 200
MAX_MEMBERS = 5000  # a larger cohort lists its first 5,000 without a quantity: ask it per ward
SCORE = "https://fhir.hub.hcmc.vn/StructureDefinition/risk-score"
LAST_VISIT = "https://fhir.hub.hcmc.vn/StructureDefinition/last-visit"


@dataclass
class Member:
    patient: StoredVersion  # the person's master Patient (or their only record)
    flags: list[dict[str, Any]]  # their active risk Flags the caller may see
    score: int
    tier: str
    last_visit: str | None = None


def rule_ids() -> set[str]:
    return {rule.id for rule in default_rules().rules}


async def members(session: Session, *, group: str | None, ward: str | None, limit: int | None = None
                  ) -> tuple[list[Member], int | None]:
    """The persons in risk group ``group`` (any risk group: None), living in ``ward`` when given, as far as the
    caller may see them; at most ``limit`` of them, with how many there are (None: more than ``limit``, not
    counted: counting costs a look at every one, which a city-wide cohort cannot afford per request)."""
    limit = MAX_MEMBERS if limit is None else limit
    if group is not None and group not in rule_ids():
        known = ", ".join(sorted(rule_ids()))
        raise BadRequest(f"group: {group[:80]!r} is not a risk group of the rules in force ({known})",
                         expression=["group"])
    found: list[Member] = []
    count = 0
    seen: set[str] = set()
    async for person in _candidates(session, group, ward):
        if person.key in seen:
            continue
        seen.add(person.key)
        flags = await _active_flags(session, person.key)
        if not flags or (group is not None and not any(_rule(f) == group for f in flags)):
            continue  # the caller may not see this Flag (consent), or it is no longer active
        count += 1
        if count > limit:
            return found, None
        score = sum(_weight(f) for f in flags)
        found.append(Member(person, flags, score, default_rules().tier(score)))
    return found, count


async def _candidates(session: Session, group: str | None, ward: str | None) -> AsyncIterator[StoredVersion]:
    """The persons (master Patients the caller may read) who may be members: in a ward, those whose record
    says they live there and whose master still does (people move: the master has the newest address);
    otherwise the subjects of the risk group's active Flags."""
    if ward is not None:
        async for record in _all(session, "Patient", [("address-ward", ward)]):
            linked = master_of(loads(record.json)) if record.json is not None else None
            person = await _person(session, linked[0] if linked else record.key)
            if person is not None and ward in _wards(person):
                yield person
        return
    async for flag in _all(session, "Flag", [("code", f"{RISK_GROUP}|{group or ''}"), ("status", "active")]):
        subject = ((loads(flag.json) if flag.json is not None else {}).get("subject") or {}).get("reference")
        if isinstance(subject, str) and subject.startswith("Patient/"):
            person = await _person(session, subject)
            if person is not None:
                yield person


async def _person(session: Session, key: str) -> StoredVersion | None:
    """The master Patient ``key`` names, after a merge the one it was merged into; None if the caller may not
    read it (answered as absent, as a read would)."""
    for _ in range(3):
        try:
            version = await read(session, "Patient", key.removeprefix("Patient/"))
        except HubError:
            return None
        redirected = redirect_of(loads(version.json)) if version.json is not None else None
        if redirected is None:
            return version
        key = redirected
    return None


def _wards(patient: StoredVersion) -> set[str]:
    resource = loads(patient.json) if patient.json is not None else {}
    return {str(coding.get("code")) for address in resource.get("address") or []
            for ext in address.get("extension") or [] if ext.get("url") == ADMINISTRATIVE_ADDRESS
            for part in ext.get("extension") or [] if part.get("url") == "ward"
            for coding in (part.get("valueCodeableConcept") or {}).get("coding") or []}


async def worklist(session: Session, ward: str, months: int) -> list[Member]:
    """The ward's high-risk residents with no visit in the last ``months`` months, most at risk first."""
    since = _months_before(local_day(session.clock()), months).isoformat()
    listed = []
    for member in (await members(session, group=None, ward=ward))[0]:
        if member.tier != "high":
            continue
        member.last_visit = await _last_visit(session, member.patient.key)
        if member.last_visit is None or member.last_visit[:10] < since:
            listed.append(member)
    return sorted(listed, key=lambda m: (-m.score, m.last_visit or "", m.patient.key))


def cohort_group(group: str, ward: str | None, found: list[Member], count: int | None) -> dict[str, Any]:
    rule = next(r for r in default_rules().rules if r.id == group)
    resource: dict[str, Any] = {
        "resourceType": "Group", "id": f"risk-{group}" + (f"-{ward}" if ward else ""), "type": "person",
        "actual": True, "name": f"{rule.label_vi} ({rule.label_en})" + (f", ward {ward}" if ward else ""),
        "code": {"coding": [{"system": RISK_GROUP, "code": group, "display": rule.label_en}]},
        "member": [{"entity": {"reference": m.patient.key},
                    "extension": [{"url": SCORE, "valueInteger": m.score}]} for m in found]}
    if count is not None:  # left out when the members listed are only the first ``MAX_MEMBERS``
        resource["quantity"] = count
    if ward is not None:
        resource["characteristic"] = [{"code": {"text": "address-ward"}, "exclude": False,
                                       "valueCodeableConcept": {"coding": [{"code": ward}]}}]
    return resource


async def _all(session: Session, rtype: str, params: list[tuple[str, str]]) -> AsyncIterator[StoredVersion]:
    """Every match of a search, page after page, through the caller's reader."""
    page: list[tuple[str, str]] = []
    while True:
        searched = await search(session, rtype, [*params, *page], count=PAGE)
        for version in searched.outcome.page:
            yield version
        if searched.outcome.next is None:
            return
        page = [("_page", encode_page(["after", searched.outcome.next]))]


async def _active_flags(session: Session, patient: str) -> list[dict[str, Any]]:
    searched = await search(session, "Flag", [("subject", patient), ("code", f"{RISK_GROUP}|"),
                                              ("status", "active")], count=100)
    return [loads(v.json) for v in searched.outcome.page if v.json is not None]


async def _last_visit(session: Session, patient: str) -> str | None:
    searched = await search(session, "Encounter", [("patient:mdm", patient), ("_sort", "-date")], count=1)
    latest = next((v for v in searched.outcome.page if v.json is not None), None)
    period = loads(latest.json).get("period") or {} if latest is not None and latest.json is not None else {}
    when = period.get("end") or period.get("start")
    return str(when) if when else None


def _rule(flag: dict[str, Any]) -> str | None:
    codings = (flag.get("code") or {}).get("coding") or [{}]
    return next((c.get("code") for c in codings if c.get("system") == RISK_GROUP), None)


def _weight(flag: dict[str, Any]) -> int:
    for extension in flag.get("extension") or []:
        if extension.get("url") == EVIDENCE:
            for part in extension.get("extension") or []:
                if part.get("url") == "weight":
                    return int(part.get("valueInteger") or 0)
    return 0


def _months_before(day: date, months: int) -> date:
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    return date(year, month + 1, min(day.day, 28))
