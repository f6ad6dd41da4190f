"""``POST /$ingest``: a facility's payload as it is (MoH XML, HL7 v2, CSV, FHIR JSON/NDJSON), and
``POST /$replay``: an archived payload mapped again.

The body is read within ``FHIR_HUB_MAX_BODY_BYTES``; its format comes from ``?format=``, else the
Content-Type, else detection (send ``application/octet-stream``). ``?filename=`` names the file (a CSV
adapter needs it to know the table). The answer is a ``Parameters`` resource: the archive id, the format,
records accepted and rejected, resources created, found again and updated (each record's Provenance
included), and an ``OperationOutcome`` listing rejected records (error) and doubtful ones kept (warning)
with their record key and field: the first ``FIRST_PROBLEMS`` (100), then how many more, all of them kept
with the archived payload (``fhir_hub.ingest.archive``). HL7 v2 senders get their acknowledgements
instead (one ACK per message: AA, or AE/AR naming the problem), unless they ask for FHIR JSON with ``Accept``.
"""

from __future__ import annotations

import itertools
from typing import Any

from fastapi import APIRouter, Response

from adapters.base import Problem, Record
from adapters.normalize import HUB
from adapters.registry import adapters
from fhir_hub.api.body import read_body
from fhir_hub.api.context import Fhir, FhirContext
from fhir_hub.api.responses import fhir_response
from fhir_hub.api.routing import fhir_route
from fhir_hub.auth.policy import require_operator
from fhir_hub.errors import BadRequest
from fhir_hub.fhir.jsonio import dumps
from fhir_hub.ingest.archive import FIRST_PROBLEMS, MESSAGE_CHARS, clipped
from fhir_hub.ingest.service import IngestReport, RecordProvenance, acknowledge, ingest, replay
from fhir_hub.queue.ingest_jobs import enqueue_records
from fhir_hub.queue.progress import backfill_progress, queue_summary

router = APIRouter()

ACK_MEDIA_TYPE = "x-application/hl7-v2+er7"


def _raw_body() -> dict[str, Any]:
    """Every Content-Type an adapter answers to, and the generic ones that have the format detected: the
    file goes as it is, in whichever format its facility sends."""
    binary = {"schema": {"type": "string", "format": "binary"}}
    media = sorted({m for adapter in adapters() for m in adapter.media_types} | {"application/octet-stream"})
    return {"required": True, "content": dict.fromkeys(media, binary)}


def _ingest_route() -> dict[str, Any]:
    """``$ingest``'s route: a FHIR operation whose 200 is, for an HL7 v2 sender, the acknowledgements."""
    route = fhir_route("ingest", "system", summary="Ingest a facility's payload (MoH XML, HL7 v2, CSV, FHIR)",
                       body=_raw_body(), query=("format", "filename"), operation=_operation("ingest"))
    ok = route["responses"][200]
    route["responses"][200] = {**ok, "content": {**ok["content"], ACK_MEDIA_TYPE: {"schema": {
        "type": "string", "description": "HL7 v2 acknowledgements (ACK), one per message, for an HL7 v2 payload "
                                         "whose sender does not ask for JSON"}}}}
    return route


def _operation(name: str) -> dict[str, str]:
    return {"name": name, "definition": f"{HUB}/OperationDefinition/{name}"}


@router.post("/$ingest", **_ingest_route())
async def ingest_payload(ctx: Fhir) -> Response:
    payload = await read_body(ctx.request, ctx.hub.settings.max_body_bytes)
    if not payload:
        raise BadRequest("$ingest: the body is empty; send the file as it is")
    params = ctx.request.query_params
    if ctx.session.prefers("respond-async") is not None:
        return await _later(ctx, payload)
    report = await ingest(ctx.session, payload, media_type=ctx.request.headers.get("content-type"),
                          filename=params.get("filename"), format_name=params.get("format"))
    return await _answer(ctx, report, payload)


async def _later(ctx: FhirContext, payload: bytes) -> Response:
    """A backfill (``Prefer: respond-async``): archived and mapped now, each record a job of the priority
    queue; 202 with the status URL in ``Content-Location`` (the FHIR asynchronous request pattern), and
    the mapping's report so far in the body."""
    params = ctx.request.query_params
    session = ctx.session

    queued: list[str] = []

    async def enqueue(report: IngestReport, records: list[Record], provenance: RecordProvenance) -> None:
        queued.extend(await enqueue_records(session.hub.queue, session.caller, report, records, provenance,
                                            by_risk=session.hub.settings.queue_by_risk))

    report = await ingest(session, payload, media_type=ctx.request.headers.get("content-type"),
                          filename=params.get("filename"), format_name=params.get("format"), later=enqueue)
    where = f"{session.base_url}/$ingest-status?archive={report.archive}"
    body = report_parameters(report, queued=len(queued))
    return fhir_response(ctx, dumps(body), status=202, headers={"Content-Location": where})


@router.get("/$ingest-status", **fhir_route("ingest-status", "system", summary="Progress of a backfill sent with "
                                            "Prefer: respond-async", query=("archive",),
                                            operation=_operation("ingest-status")))
async def ingest_status(ctx: Fhir) -> Response:
    """202 with ``X-Progress`` while records of the payload wait or run, then 200 with the report (as the
    synchronous ``$ingest`` answers it). Only the sender sees it (anyone else: 404, as for no such payload)."""
    archive_id = ctx.request.query_params.get("archive")
    if not archive_id:
        raise BadRequest("$ingest-status: name the payload with ?archive=<id> (from the 202's Content-Location)",
                         expression=["archive"])
    progress = await backfill_progress(ctx.session, archive_id)
    if progress.pending:
        return fhir_response(ctx, None, status=202, headers={
            "X-Progress": f"{progress.finished} of {progress.jobs} records done", "Retry-After": "2"})
    return fhir_response(ctx, dumps(report_parameters(progress.report)))


@router.get("/$queue-status", **fhir_route("queue-status", "system", summary="The priority queue: jobs by state "
                                           "and tier, throughput, time left for the high-risk backlog",
                                           operation=_operation("queue-status")))
async def queue_status(ctx: Fhir) -> Response:
    require_operator(ctx.session.caller, "read the queue's status")
    summary = await queue_summary(ctx.session.hub.queue)
    return fhir_response(ctx, dumps(summary.parameters()))


@router.post("/$replay", **fhir_route("replay", "system", summary="Map an archived payload again",
                                      query=("archive",), operation=_operation("replay")))
async def replay_payload(ctx: Fhir) -> Response:
    archive = ctx.request.query_params.get("archive")
    if not archive:
        raise BadRequest("$replay: name the archived payload with ?archive=<id> (from the $ingest report)",
                         expression=["archive"])
    report = await replay(ctx.session, archive)
    return await _answer(ctx, report, None)


async def _answer(ctx: FhirContext, report: IngestReport, payload: bytes | None) -> Response:
    """HL7 v2 senders get their acknowledgements (built by the HL7 v2 adapter), FHIR clients the report."""
    if report.format == "hl7v2" and payload is not None and "json" not in ctx.request.headers.get("accept", ""):
        return Response(content=await acknowledge(ctx.session, report, payload), media_type=ACK_MEDIA_TYPE)
    return fhir_response(ctx, dumps(report_parameters(report)))


def report_parameters(report: IngestReport, *, queued: int | None = None) -> dict[str, Any]:
    """The report as a FHIR ``Parameters`` resource (what a FHIR client expects of an operation); ``queued``:
    how many records became jobs of the queue, counted as they are committed (``$ingest-status``)."""
    parameters: list[dict[str, Any]] = [
        {"name": "archive", "valueString": report.archive},
        *([{"name": "recordsQueued", "valueInteger": queued}] if queued is not None else []),
        *([{"name": "format", "valueCode": report.format}] if report.format else []),
        *([{"name": "filename", "valueString": report.filename}] if report.filename else []),
        {"name": "recordsAccepted", "valueInteger": report.accepted},
        {"name": "recordsRejected", "valueInteger": report.rejected_records},
        {"name": "created", "valueInteger": report.created},
        {"name": "existing", "valueInteger": report.existing},
        {"name": "updated", "valueInteger": report.updated},
        *[{"name": "notMapped", "valueString": part} for part in report.not_mapped[:FIRST_PROBLEMS]],
    ]
    issues = [_issue(p) for p in itertools.islice(report.problems(), FIRST_PROBLEMS)]
    issues += _unlisted(report, len(issues))
    if issues:
        parameters.append({"name": "outcome", "resource": {"resourceType": "OperationOutcome", "issue": issues}})
    return {"resourceType": "Parameters", "parameter": parameters}


def _unlisted(report: IngestReport, listed: int) -> list[dict[str, Any]]:
    """One informational issue saying what is not listed (a file of 200,000 bad rows is answered with its
    first problems, not 60 MB of them), or none."""
    said = []
    more = len(report.rejected) + len(report.warnings) - listed
    if more > 0:
        said.append(f"{more:,} more problems ({len(report.rejected):,} about rejected records and "
                    f"{len(report.warnings):,} warnings in all)")
    if len(report.not_mapped) > FIRST_PROBLEMS:
        said.append(f"{len(report.not_mapped) - FIRST_PROBLEMS:,} more parts not mapped")
    if not said:
        return []
    return [{"severity": "information", "code": "informational", "diagnostics": " and ".join(said)
             + f" are not listed here; all are kept with the archived payload {report.archive}"}]


def _issue(problem: Problem) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": "warning" if problem.kept else "error",
                             "code": "informational" if problem.kept else "invalid",
                             "diagnostics": f"{clipped(problem.record)}: {problem.text(MESSAGE_CHARS)}"}
    if problem.field:
        issue["expression"] = [clipped(problem.field)]
    return issue
