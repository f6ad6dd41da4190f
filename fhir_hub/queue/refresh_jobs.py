"""The queue's priority-refresh jobs: a person's priority record rebuilt after data reached them by a path
other than the backfill (a REST write, a transaction Bundle, a synchronous ``$ingest``, an HL7 message).

``Session.commit`` queues them (``urgency.after_write``), one per person per few seconds, as urgent as the
write makes the person, so a clinician's new diagnosis of a high-risk resident reaches their Flags and
summary ahead of the low-risk backlog. Rebuilding is ``priority.record.refresh``: idempotent, so a job run
twice, or two jobs for one person, change nothing more than one.
"""

from __future__ import annotations

from typing import Any

from fhir_hub.priority.record import PRIORITY, refresh_each
from fhir_hub.queue.jobs import Job
from profiles.risk import Assessment


async def run_refresh_jobs(session_for: Any, jobs: list[Job]) -> list[dict[str, Any] | Exception]:
    """Each person's priority record refreshed once however many of the jobs name them."""
    done = await refresh_each(session_for(PRIORITY).hub, (str(job.body["patient"]) for job in jobs))
    return [_outcome(str(job.body["patient"]), done[str(job.body["patient"])]) for job in jobs]


def _outcome(patient: str, refreshed: Assessment | Exception) -> dict[str, Any] | Exception:
    if isinstance(refreshed, Exception):
        return refreshed
    return {"refreshed": patient, "score": refreshed.score, "tier": refreshed.tier}
