"""How urgent a person's waiting work is, from what a record says; and raising it when new data say more.

The queue orders a backfill's jobs by the urgency of each record (``profiles.risk`` on the record's own
Patient and diagnoses: a file with a diabetes diagnosis is urgent even for a person the hub has never seen).
A person's jobs are found again by ``who``, the person's strongest identifier (personal ID, else social-
insurance number: the same key in every facility's record of them).

New data raise a person's waiting jobs wherever they come from: a backfill's record
(``ingest_jobs.enqueue_records``), the date itself (a 60th birthday: ``ingest_jobs.raise_on_their_day``),
and every write through the one write path (``raise_after_write``, called by ``Session.commit``): a
clinician's REST Condition of heart failure, a transaction Bundle, an HL7 message. Only the written resource
is scored, with the person's Patient for a clinical one, so the check costs nothing for the writes that say
nothing urgent (most of them), and a few look-ups for those that do.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from adapters.normalize import BHXH, CCCD
from fhir_hub.fhir.jsonio import loads
from fhir_hub.queue.jobs import MAX_PRIORITY, JobQueue
from fhir_hub.store.records import StoredVersion
from profiles.risk import assess, default_rules, facts_from_resources, next_change, priority

log = logging.getLogger(__name__)
CITY = ZoneInfo("Asia/Ho_Chi_Minh")
RAISING = frozenset({"Patient", "Condition"})  # what alone can make a person more urgent (age, a diagnosis)


def city_day(microseconds: int) -> date:
    """The day in Ho Chi Minh City at that instant: a birthday (60, 6) starts at local midnight."""
    return datetime.fromtimestamp(microseconds / 1_000_000, CITY).date()


@dataclass(frozen=True)
class Urgency:
    priority: int
    tier: str
    who: str | None  # the person's strongest identifier key, if the record names one
    score: int
    rules: tuple[str, ...]  # the rules that held, for the job's explanation
    changes_on: str | None = None  # the next day its score changes with no new data (ISO), if ever


def urgency_of(resources: list[dict[str, Any]], today: date | None = None) -> Urgency:
    """How urgent these resources of one person make them (their Patient's age, their diagnoses)."""
    rules = default_rules()
    when = today or city_day(time.time_ns() // 1000)
    facts = facts_from_resources(resources, rules)
    assessment = assess(facts, rules, when)
    changes = next_change(facts, rules, when)
    return Urgency(max(0, min(MAX_PRIORITY, priority(assessment))), assessment.tier, who_of(resources),
                   assessment.score, tuple(hit.rule.id for hit in assessment.hits),
                   changes.isoformat() if changes is not None else None)


def who_of(resources: list[dict[str, Any]]) -> str | None:
    """The Patient's personal ID, else social-insurance number: the same key for every facility's record
    of one person, so re-prioritisation finds all of their jobs."""
    for system in (CCCD, BHXH):
        for resource in resources:
            if resource.get("resourceType") != "Patient":
                continue
            for identifier in resource.get("identifier") or []:
                if isinstance(identifier, dict) and identifier.get("system") == system and identifier.get("value"):
                    return f"{system}|{identifier['value']}"
    return None


async def raise_after_write(queue: JobQueue, store: Any, version: StoredVersion, today: date) -> int:
    """Raise the waiting jobs of the person a just-written resource is about, when it makes them more urgent;
    how many jobs moved. ``store``: where the subject's Patient is read (``MongoStore.current``). It never
    fails the write it follows (already stored): a store error here is logged, and the jobs keep their
    priority until the person's next record or write."""
    if version.rtype not in RAISING or version.deleted or version.json is None:
        return 0
    try:
        return await _raise_after_write(queue, store, version, today)
    except Exception as error:  # noqa: BLE001 - see the docstring
        log.warning("re-prioritising after %s failed: %s", version.key, error)
        return 0


async def _raise_after_write(queue: JobQueue, store: Any, version: StoredVersion, today: date) -> int:
    assert version.json is not None
    resource = loads(version.json)
    resources = [resource]
    if version.rtype != "Patient":
        subject = (resource.get("subject") or {}).get("reference")
        if not isinstance(subject, str) or not subject.startswith("Patient/"):
            return 0
        patient = await store.current("Patient", subject.removeprefix("Patient/"))
        if patient is None or patient.json is None:
            return 0
        resources.append(loads(patient.json))
    found = urgency_of(resources, today)
    if found.priority == 0 or found.who is None:
        return 0
    moved: int = await queue.reprioritise(found.who, found.priority, found.tier)
    return moved
