"""What the queue has done and has left: one backfilled payload (``$ingest-status``) and the whole queue
(``$queue-status``, ``fhir-hub queue status``), with throughput and the time left for the high-risk tier."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from adapters.base import Problem
from fhir_hub.errors import NotFound
from fhir_hub.ingest.archive import IngestArchive
from fhir_hub.ingest.service import IngestReport, may_use_archive
from fhir_hub.queue.jobs import STATES, TIERS, JobQueue, Status
from fhir_hub.services.session import Session

THROUGHPUT_WINDOW_MS = 60_000


@dataclass
class Backfill:
    jobs: int
    finished: int  # done or dead
    report: IngestReport

    @property
    def pending(self) -> bool:
        return self.finished < self.jobs


async def backfill_progress(session: Session, archive_id: str) -> Backfill:
    """The payload's jobs and, summed from their results, its report (rejections and warnings of the
    mapping are in the archive's own report, kept when it was queued)."""
    kept = await IngestArchive(session.hub.store.db, session.hub.store.gate).get(archive_id)
    if kept is None or not may_use_archive(session.caller, kept):
        raise NotFound(f"archive: no payload {archive_id!r} that this caller sent", expression=["archive"])
    report = IngestReport(archive_id, kept.format, kept.filename)
    jobs = finished = 0
    wanted = {"st": 1, "res": 1, "err": 1, "body.record.key": 1}
    async for doc in session.hub.queue.collection.find({"b": archive_id}, wanted):
        jobs += 1
        state = str(doc.get("st", "")).split("|")[0]
        if state not in ("done", "dead"):
            continue
        finished += 1
        result = doc.get("res") or {}
        if state == "dead":
            key = ((doc.get("body") or {}).get("record") or {}).get("key", doc["_id"])
            report.rejected.append(Problem(str(key), None, f"not stored: {doc.get('err')} (an operator may retry it)"))
            continue
        report.accepted += int(result.get("accepted", 0))
        report.created += int(result.get("created", 0))
        report.existing += int(result.get("existing", 0))
        report.updated += int(result.get("updated", 0))
        for problem in result.get("problems") or []:
            target = report.warnings if problem.get("severity") == "warning" else report.rejected
            target.append(Problem(problem["record"], problem.get("field"), problem["message"],
                                  kept=problem.get("severity") == "warning"))
    return Backfill(jobs, finished, report)


@dataclass
class QueueSummary:
    status: Status
    done_last_minute: int
    per_second: float = field(init=False)

    def __post_init__(self) -> None:
        self.per_second = self.done_last_minute / (THROUGHPUT_WINDOW_MS / 1000)

    def left(self, tier: str) -> int:
        return sum(self.status.of(state, tier) for state in ("ready", "leased", "delayed"))

    def eta_seconds(self, tier: str) -> float | None:
        """Seconds until the tier's backlog is done at the last minute's pace (strict priority: the high
        tier is worked first, so its backlog is all that stands before it); None when nothing ran."""
        ahead = sum(self.left(t) for t in TIERS[:TIERS.index(tier) + 1])
        return ahead / self.per_second if self.per_second else (0.0 if not ahead else None)

    def parameters(self) -> dict[str, Any]:
        parts: list[dict[str, Any]] = []
        for state in STATES:
            for tier in TIERS:
                parts.append({"name": "jobs", "part": [{"name": "state", "valueCode": state},
                                                       {"name": "tier", "valueCode": tier},
                                                       {"name": "count", "valueInteger": self.status.of(state, tier)}]})
        parts.append({"name": "perSecond", "valueDecimal": round(self.per_second, 2)})
        eta = self.eta_seconds("high")
        if eta is not None:
            parts.append({"name": "highRiskSecondsLeft", "valueDecimal": round(eta, 1)})
        return {"resourceType": "Parameters", "parameter": parts}


async def queue_summary(queue: JobQueue) -> QueueSummary:
    since = queue.clock() - THROUGHPUT_WINDOW_MS
    recent = await queue.collection.count_documents({"done": {"$gte": since}})
    return QueueSummary(await queue.status(), recent)
