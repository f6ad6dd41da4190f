"""A backfill through the queue: each mapped record becomes a job, committed later by a worker.

``$ingest`` with ``Prefer: respond-async`` archives and maps the payload as the synchronous ``$ingest`` does
(``ingest/service.py``: one path for both), then hands its records here instead of committing them. Each
record's job carries what committing it needs: the record's Bundle, the Provenance it gets, and the caller
who sent it (a worker commits it in that caller's name, so the facility boundary, scopes and ownership are
those of the sender, as if it had been committed at once).

Its priority comes from the record itself (``profiles.risk``: a diabetes diagnosis in the file makes it
urgent even for a person the hub has never seen) and from what the hub already knows about the person: the
highest priority among the person's jobs so far. When a record raises its person's score, the person's jobs
still waiting move up (``JobQueue.reprioritise``).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from typing import Any

from adapters.base import MergeRequest, Record
from fhir_hub.auth.caller import Caller
from fhir_hub.auth.scopes import Scopes
from fhir_hub.errors import HubError
from fhir_hub.ingest.service import Committing, IngestReport, RecordProvenance, commit_records
from fhir_hub.priority.record import PRIORITY, refresh_each
from fhir_hub.queue.jobs import Job, JobQueue, NewJob
from fhir_hub.queue.urgency import Urgency, urgency_of
from fhir_hub.services.session import Session

KIND = "ingest-record"


def urgency(record: Record, today: date | None = None) -> Urgency:
    """How urgent a record is, from what the record itself says (its Patient's age, its diagnoses)."""
    return urgency_of([e["resource"] for e in record.bundle.get("entry") or []
                       if isinstance(e, dict) and isinstance(e.get("resource"), dict)], today)


async def enqueue_records(queue: JobQueue, caller: Caller, report: IngestReport, records: list[Record],
                          provenance: RecordProvenance, *, by_risk: bool = True) -> list[str]:
    """One job per record, in the payload's order, at least as urgent as the person's jobs so far; then
    every waiting job of a person one of these records makes more urgent moves up. Not ``by_risk``
    (``FHIR_HUB_QUEUE_BY_RISK=false``): every job at priority 0 and none moved, so the queue runs in arrival
    order; each job keeps its tier and score, which is what lets ``python -m bench backfill`` measure what
    priority buys against the same backlog."""
    found = [urgency(record) for record in records]
    known = await _known(queue, {u.who for u in found if u.who is not None}) if by_risk else {}
    jobs = []
    raised: dict[str, tuple[int, str]] = {}
    for record, own in zip(records, found, strict=True):
        body = {"record": {"key": record.key, "bundle": record.bundle, "facility": record.facility,
                           "merges": [asdict(m) for m in record.merges]},
                "provenance": asdict(provenance), "caller": _caller(caller),
                "why": {"score": own.score, "rules": list(own.rules)}}
        # as urgent as the record says, or as what the hub already knows of the person: a low-risk visit of
        # a known diabetic waits with the rest of her record, not behind every low-risk person's
        priority, tier = max((own.priority, own.tier), known.get(own.who or "", (0, own.tier)))
        jobs.append(NewJob(KIND, body, priority if by_risk else 0, tier if by_risk else own.tier, who=own.who,
                           batch=report.archive, changes_on=own.changes_on if by_risk else None))
        if by_risk and own.who is not None and own.priority > raised.get(own.who, (-1, ""))[0]:
            raised[own.who] = (own.priority, own.tier)
    ids = await queue.enqueue(jobs)
    for who, (priority, tier) in raised.items():
        await queue.reprioritise(who, priority, tier)
    return ids


async def raise_on_their_day(queue: JobQueue, today: date) -> int:
    """Waiting jobs whose person's score changes by ``today`` with no new data (a 60th birthday): the
    person's jobs move up when the record now says more; each job keeps the next such day. Any worker runs
    this now and then; running it twice, or in two workers at once, raises nothing twice (``reprioritise``
    only raises, conditionally)."""
    raised = 0
    for job in await queue.changing(today.isoformat()):
        if job.kind != KIND:
            continue
        now = urgency(_committing(job).record, today)
        if now.who is not None and now.priority > job.priority:
            raised += await queue.reprioritise(now.who, now.priority, now.tier)
        await queue.changed(job, job.changes_on or "", now.changes_on)
    return raised


async def _known(queue: JobQueue, people: set[str]) -> dict[str, tuple[int, str]]:
    """The highest priority (and its tier) among each person's jobs so far, whatever their state."""
    known = {}
    for who in sorted(people):
        best = await queue.highest(who)
        if best is not None:
            known[who] = best
    return known


async def run_record_jobs(session_for: Any, jobs: list[Job]) -> list[dict[str, Any] | Exception]:
    """Commit the records of these jobs, several per store transaction (``ingest.service.commit_records``),
    each in its sender's name; then refresh the priority record of each person they are about, once however
    many of the jobs name them. Per job: what happened (the counts and problems of a report), or the
    exception that makes it be tried again (claims held by another writer, a store error)."""
    outcomes: list[dict[str, Any] | Exception] = []
    touched: dict[str, list[int]] = {}  # Patient key -> the jobs that wrote it
    for same_sender in _by_sender(jobs):
        session: Session = session_for(_caller_from(same_sender[0].body["caller"]))
        committing = [_committing(job) for job in same_sender]
        for job_results, done in zip(await commit_records(session, committing, retry_later=True), committing,
                                     strict=True):
            if isinstance(job_results, HubError):
                outcomes.append(job_results)
                continue
            for patient in {r.version.key for r in job_results
                            if r.version is not None and r.version.key.startswith("Patient/")}:
                touched.setdefault(patient, []).append(len(outcomes))
            outcomes.append(_result(done.report))
    refreshed = await refresh_each(session_for(PRIORITY).hub, touched)  # each person the records are about
    for patient, outcome in refreshed.items():
        if isinstance(outcome, Exception):  # the jobs that wrote this person run again
            for index in touched[patient]:
                outcomes[index] = outcome
    return outcomes


def _by_sender(jobs: list[Job]) -> list[list[Job]]:
    """Consecutive jobs of one sender: one session (its facility, its scopes) commits them together."""
    runs: list[list[Job]] = []
    for job in jobs:
        if runs and runs[-1][0].body["caller"] == job.body["caller"]:
            runs[-1].append(job)
        else:
            runs.append([job])
    return runs


def _committing(job: Job) -> Committing:
    saved, provenance = job.body["record"], RecordProvenance(**job.body["provenance"])
    record = Record(saved["key"], saved["bundle"], saved.get("facility"),
                    tuple(MergeRequest(m["keep"], tuple(m["merged"]), m["field"]) for m in saved.get("merges") or []))
    return Committing(provenance, record, IngestReport(provenance.archive, provenance.format, None))


def _result(report: IngestReport) -> dict[str, Any]:
    return {"accepted": report.accepted, "created": report.created, "existing": report.existing,
            "updated": report.updated, "problems": [p.as_dict() for p in report.problems()]}


def _caller(caller: Caller) -> dict[str, Any]:
    return {"sub": caller.subject, "scope": str(caller.scopes), "facility": caller.facility,
            "fhir_user": caller.fhir_user, "purpose": caller.purpose, "internal": caller.internal}


def _caller_from(saved: dict[str, Any]) -> Caller:
    return Caller(saved["sub"], Scopes.parse(saved["scope"]), facility=saved.get("facility"),
                  fhir_user=saved.get("fhir_user"), purpose=saved.get("purpose") or "TREAT",
                  internal=bool(saved.get("internal")))
