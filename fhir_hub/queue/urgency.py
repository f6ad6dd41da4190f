"""How urgent a person's waiting work is, from what a record says; and raising it when new data say more.

The queue orders a backfill's jobs by the urgency of each record (``profiles.risk`` on the record's own
Patient and diagnoses: a file with a diabetes diagnosis is urgent even for a person the hub has never seen).
A person's jobs are found again by ``who``, the person's strongest identifier (personal ID, else social-
insurance number: the same key in every facility's record of them).

New data raise a person's waiting jobs wherever they come from: a backfill's record
(``ingest_jobs.enqueue_records``), the date itself (a 60th birthday: ``ingest_jobs.raise_on_their_day``),
and every write through the one write path (``after_write``, called by ``Session.commit``): a clinician's
REST Condition of heart failure, a transaction Bundle, an HL7 message. Only the written resource is scored,
with the person's Patient for a clinical one. The same hook queues a refresh of the person's priority
record, so Flags and summary follow data however they arrive (a worker's own writes excepted: it refreshes
the records it stores itself).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date
from typing import Any

from adapters.normalize import BHXH, CCCD
from fhir_hub.fhir.instant import local_day
from fhir_hub.fhir.jsonio import loads
from fhir_hub.linking.elements import MASTER_ID_PREFIX
from fhir_hub.queue.jobs import MAX_PRIORITY, JobQueue, NewJob
from fhir_hub.store.records import StoredVersion
from profiles.risk import assess, default_rules, facts_from_resources, next_change, priority

log = logging.getLogger(__name__)
RAISING = frozenset({"Patient", "Condition"})  # what alone can make a person more urgent (age, a diagnosis)
# what the priority record is built from (the risk rules' facts and the summary's sections)
WATCHED = RAISING | {"Observation", "MedicationRequest", "MedicationStatement", "AllergyIntolerance", "Immunization"}
REFRESH = "priority-refresh"  # the job kind that rebuilds a person's priority record (refresh_jobs.py)
REFRESH_WINDOW_MS = 10_000  # writes to one person within this window queue one refresh, run once it has closed
# how far behind another hub process's clock may be: its writes in a window still come before the refresh
CLOCK_SKEW_MS = 2_000


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
    when = today or local_day(time.time_ns() // 1000)
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


async def after_write(queue: JobQueue, store: Any, version: StoredVersion, today: date, noted: set[str]) -> int:
    """What a write through the one write path does to the queue: a Patient or Condition that makes its
    person more urgent raises their waiting jobs; any resource the priority record is built from queues a
    refresh of its person's priority record (``refresh_jobs.py``: one per person per ``REFRESH_WINDOW_MS``,
    as urgent as the write makes the person, claimable only once the window has closed: a refresh that ran
    while its window was open would miss the window's later writes, which queue nothing more). ``noted``:
    the persons a transaction already queued (a record's twenty resources queue one refresh). How many
    jobs moved up. It never fails the write it follows (already stored): a store error here is logged; the
    person's next write queues it again. A deletion queues a refresh too (a diagnosis entered in error and
    deleted must stop counting), as urgent as the person's record alone makes them; a Patient record's
    deletion does not (the person's master follows their remaining records through linking)."""
    if version.rtype not in WATCHED or (version.deleted and version.rtype == "Patient"):
        return 0
    if not version.deleted and version.json is None:
        return 0
    try:
        return await _after_write(queue, store, version, today, noted)
    except Exception as error:  # noqa: BLE001 - see the docstring
        log.warning("queueing after the write of %s failed: %s", version.key, error)
        return 0


async def _after_write(queue: JobQueue, store: Any, version: StoredVersion, today: date, noted: set[str]) -> int:
    # the person's records, not their master (a record's compartment holds its master too: one refresh)
    records = [p for p in sorted(version.patients) if not p.startswith(MASTER_ID_PREFIX)]
    window = queue.clock() // REFRESH_WINDOW_MS
    waiting = {p: f"refresh|{p}|{window}" for p in records if p not in noted}
    waiting = {p: key for p, key in waiting.items() if not queue.queued_lately(key)}
    raising = version.rtype in RAISING and not version.deleted
    if not raising and not waiting:
        return 0  # a person written again in the window: nothing to read or queue
    resources = [loads(version.json)] if version.json is not None else []
    if version.rtype != "Patient":
        patient = await store.current("Patient", records[0]) if records else None
        if patient is not None and patient.json is not None:
            resources.append(loads(patient.json))
    found = urgency_of(resources, today)
    moved = 0
    if raising and found.priority > 0 and found.who is not None:
        moved = await queue.reprioritise(found.who, found.priority, found.tier)
    for patient, key in waiting.items():
        noted.add(patient)
        await queue.enqueue_once(NewJob(REFRESH, {"patient": f"Patient/{patient}"}, found.priority, found.tier,
                                        who=found.who), key=key,
                                 due=(window + 1) * REFRESH_WINDOW_MS + CLOCK_SKEW_MS)
    return moved
