"""Ingesting a payload: archive it, map it with its adapter, commit each record with its Provenance.

Every record is a transaction Bundle committed through ``fhir_hub.bundles.processor`` in the caller's own
``Session``: the same validation, scopes, facility boundary, versioning, search indexing and audit as any
client write (there is no second write path), and no HTTP request needed (a queue worker calls it as the
``$ingest`` route does); what was created, found again or updated is read off its typed entry results. A
record that fails (its mapping, or any of its entries) is reported with its key and the field, and the
payload's other records are still committed.

Each record carries a ``Provenance`` in its own transaction (stored with it or not at all): its targets are
the record's resources, its entity the archived payload, its agent the token's facility (``onBehalfOf`` the
facility the record belongs to, when the token is configured to send for another one). One per record
rather than one per payload: a payload-wide Provenance would sit in the compartment of every patient of the
file, so each resident reading their own record would see references to everyone else's (and the hub would
index its thousands of targets once per patient). A tag holding the payload's digest and the record key
makes the same file sent again find it rather than add another.

The token decides which facility a payload's records belong to, never the payload: a facility code inside
it (MoH XML MACSKCB / MA_CSKCB, HL7 v2 MSH-4, a CSV facility column) other than the token's, or one the
token may send for, refuses the file, HOSO, message or row naming that field (``Source.facility_of``).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from adapters.base import AdapterError, Limits, MergeRequest, Problem, Record, Source
from adapters.hl7v2 import acknowledgements
from adapters.normalize import FACILITY, HUB, tag, token_criteria
from fhir_hub.auth.caller import Caller
from fhir_hub.bundles.processor import transactions
from fhir_hub.config import Settings
from fhir_hub.errors import HubError, NotFound, UnprocessableResource, UnsupportedMediaType
from fhir_hub.fhir.instant import to_instant
from fhir_hub.ingest.archive import FIRST_PROBLEMS, MESSAGE_CHARS, Archived, IngestArchive
from fhir_hub.ingest.mapper import MappingJob, WorkerStopped
from fhir_hub.services import linking
from fhir_hub.services.results import EntryResult
from fhir_hub.services.session import Session
from fhir_hub.store.records import StoredVersion

ARCHIVE_SYSTEM = f"{HUB}/sid/ingest-archive"
# A Provenance has no identifier in R4: its tag (the payload's digest and the record's key) is what finds it
RECORD_SYSTEM = f"{HUB}/CodeSystem/ingest-record"


@dataclass
class IngestReport:
    archive: str
    format: str | None
    filename: str | None
    accepted: int = 0
    created: int = 0
    existing: int = 0  # found by their business identifier: a payload sent twice creates nothing
    updated: int = 0
    rejected: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    not_mapped: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The counts, kept in the archive document (the problems go beside it: ``IngestArchive.record``)."""
        return {"archive": self.archive, "format": self.format, "filename": self.filename,
                "records": {"accepted": self.accepted, "rejected": self.rejected_records},
                "resources": {"created": self.created, "existing": self.existing, "updated": self.updated},
                "warnings": len(self.warnings), "notMapped": self.not_mapped[:FIRST_PROBLEMS],
                "notMappedCount": len(self.not_mapped)}

    @property
    def rejected_records(self) -> int:
        """Records rejected, each once however many of its fields were wrong: accepted and rejected then
        add up to the payload's records."""
        return len({p.record for p in self.rejected})

    def problems(self) -> Iterator[Problem]:
        """Rejections first, then warnings: the order they are stored and listed in."""
        return itertools.chain(self.rejected, self.warnings)

    async def keep(self, archive: IngestArchive) -> None:
        await archive.record(self.archive, format_name=self.format, summary=self.summary(),
                             problems=[p.as_dict() for p in self.problems()])


Later = Callable[[IngestReport, list[Record], "RecordProvenance"], Awaitable[None]]


async def ingest(session: Session, payload: bytes, *, media_type: str | None, filename: str | None,
                 format_name: str | None, later: Later | None = None) -> IngestReport:
    """Archive ``payload`` (before anything can go wrong), then map it and commit its records; with
    ``later`` (a backfill: ``queue/ingest_jobs.py``), hand the mapped records to it instead of committing
    them: the report then holds what the mapping said, and the archive is kept with it."""
    archive = IngestArchive(session.hub.store.db, session.hub.store.gate)
    digest = await asyncio.to_thread(_sha256, payload)  # 10 MB hash ~20 ms: not on the event loop
    archive_id = await archive.keep(payload, digest, media_type=media_type, filename=filename,
                                    facility=session.caller.facility, caller=session.caller.subject,
                                    received=session.clock())
    if later is None:
        return await _ingest_archived(session, archive, archive_id, payload, digest, media_type, filename,
                                      format_name)
    report, records, provenance = await _mapped(session, archive, archive_id, payload, digest, media_type, filename,
                                                format_name)
    await later(report, records, provenance)
    await report.keep(archive)
    return report


async def replay(session: Session, archive_id: str) -> IngestReport:
    """Map an archived payload again (after a mapping fix): what was stored before is found, not doubled.
    Only the facility that sent it may replay it (a caller without a facility: only the one that sent it);
    anyone else is told it does not exist, exactly as for an archive that does not."""
    archive = IngestArchive(session.hub.store.db, session.hub.store.gate)
    kept = await archive.get(archive_id)
    if kept is None or not may_use_archive(session.caller, kept):
        raise NotFound(f"archive: no payload {archive_id!r} that this caller sent")
    return await _ingest_archived(session, archive, archive_id, kept.payload, kept.sha256, kept.media_type,
                                  kept.filename, kept.format)


def may_use_archive(caller: Caller, kept: Archived) -> bool:
    """Bound to the facility first: a token's ``sub`` is only unique within its issuer's naming, and the same
    system account (or a copied client id) at another facility must not map that facility's payload under
    its own token (its records would be written as the replaying facility's)."""
    if caller.internal:
        return True
    if kept.facility != caller.facility:
        return False
    return caller.facility is not None or kept.caller == caller.subject


async def _ingest_archived(session: Session, archive: IngestArchive, archive_id: str, payload: bytes, digest: str,
                           media_type: str | None, filename: str | None, format_name: str | None) -> IngestReport:
    report, records, provenance = await _mapped(session, archive, archive_id, payload, digest, media_type, filename,
                                                format_name)
    group = session.hub.settings.records_per_transaction
    for start in range(0, len(records), group):
        await commit_records(session, [Committing(provenance, r, report) for r in records[start:start + group]])
    await report.keep(archive)
    return report


async def _mapped(session: Session, archive: IngestArchive, archive_id: str, payload: bytes, digest: str,
                  media_type: str | None, filename: str | None, format_name: str | None
                  ) -> tuple[IngestReport, list[Record], RecordProvenance]:
    """The payload mapped by its adapter (in a mapping worker): the report so far (what the mapping
    rejected or warned about), its records, and what each record's Provenance says."""
    report = IngestReport(archive_id, None, filename)
    caller = session.caller
    settings = session.hub.settings
    job = MappingJob(payload, filename, media_type, format_name, settings.csv_mappings,
                     Limits(hl7v2_max_repetitions=settings.hl7v2_max_repetitions), caller.facility,
                     may_send_for(caller, settings))
    try:
        mapping = await session.hub.ingest_workers.map(job)
    except (AdapterError, WorkerStopped) as exc:
        report.rejected.append(Problem(filename or "payload", None, str(exc)))
        await report.keep(archive)
        error = UnsupportedMediaType if isinstance(exc, AdapterError) else UnprocessableResource
        raise error(f"{exc} (the payload is archived as {archive_id})") from None
    report.format = mapping.format
    report.rejected += mapping.rejected
    report.warnings += mapping.warnings
    report.not_mapped += mapping.not_mapped
    return report, list(mapping.records), RecordProvenance(report.archive, digest, mapping.format, caller.facility,
                                                           caller.subject)


@dataclass(frozen=True, slots=True)
class Committing:
    """A record to commit, with the Provenance it gets and the report that says what became of it."""

    provenance: RecordProvenance
    record: Record
    report: IngestReport


async def commit_records(session: Session, records: list[Committing], *, retry_later: bool = False
                         ) -> list[list[EntryResult] | HubError]:
    """Commit each record (its transaction Bundle with its Provenance: all of it or none), then the merges
    it asks for; what happened goes to its report. The synchronous ``$ingest`` and the queue's workers both
    commit here, several records per store transaction (``bundles.processor.transactions``: each answers as
    if committed alone). ``retry_later`` (a worker): an error that says nothing about the record (409:
    claims held by another writer, 5xx) is not reported as a rejected record but returned, so its job is
    tried again; every other outcome is the record's entry results ([] when it was rejected)."""
    started = session.clock()
    bundles = [c.provenance.added_to(c.record, to_instant(started)) for c in records]
    outcomes = await transactions(session, bundles)
    answered: list[list[EntryResult] | HubError] = []
    for committing, bundle, outcome in zip(records, bundles, outcomes, strict=True):
        record, report = committing.record, committing.report
        if isinstance(outcome, HubError):
            if retry_later and (outcome.status == 409 or outcome.status >= 500):
                answered.append(outcome)
                continue
            issue = outcome.issues[0]
            report.rejected.append(Problem(record.key, issue.expression[0] if issue.expression else None,
                                           issue.diagnostics))
            answered.append([])
            continue
        report.accepted += 1
        _count(report, bundle, outcome, started)
        for request in record.merges:
            await _merge(session, record.key, request, report)
        answered.append(outcome)
    return answered


async def _merge(session: Session, key: str, request: MergeRequest, report: IngestReport) -> None:
    """A sender's merge (HL7 v2 A40), executed as the ``$merge`` operation would (``services/linking.py``):
    the merged patient's person joins the kept patient's. Done or not, the report says so, naming MRG-1:
    a merge is undone with ``Patient/$unmerge``, and one that could not be done waits for a person."""

    def note(message: str) -> None:
        report.warnings.append(Problem(key, request.field, message, kept=True))

    keep = await _patients_with(session, request.keep)
    if len(keep) != 1:
        note(f"merge not done: {len(keep)} patients carry the kept identifier "
             f"{request.keep.get('system')}|{request.keep.get('value')} (PID-3)")
        return
    for identifier in request.merged:
        found = [v for v in await _patients_with(session, identifier) if v.key != keep[0].key]
        if not found:
            note(f"merge not done: no patient carries {identifier.get('system')}|{identifier.get('value')}")
        for version in found:
            try:
                master = await linking.merge(session, version.key, keep[0].key, f"HL7 v2 A40 ({key})")
            except HubError as error:
                note(f"merge of {version.key} not done: {error.issues[0].diagnostics}")
                continue
            note(f"{version.key} merged into the person of {keep[0].key} ({master.key}); "
                 "undo with Patient/$unmerge")


async def _patients_with(session: Session, identifier: dict[str, Any]) -> list[StoredVersion]:
    system, value = identifier.get("system"), identifier.get("value")
    if not isinstance(system, str) or not isinstance(value, str):
        return []
    return await session.reader.conditional("Patient", token_criteria("identifier", system, value),
                                            what="An HL7 v2 A40 merge")


async def acknowledge(session: Session, report: IngestReport, payload: bytes) -> bytes:
    """The HL7 v2 ACKs of an ingested payload, one per message (``adapters.hl7v2.acknowledgements``), built
    by a mapping worker: telling AE from AR parses the refused messages again."""
    return await session.hub.ingest_workers.run(partial(acknowledgements, max_chars=MESSAGE_CHARS), payload,
                                                report.rejected)


def may_send_for(caller: Caller, settings: Settings) -> frozenset[str] | None:
    """The facility codes a caller's payload may name (``Source.may_send_for``): its token's and those the
    hub is configured to let it send for (``FHIR_HUB_INGEST_ON_BEHALF_OF``); none without a facility claim;
    None (unchecked) for the hub's own callers, whose payloads are taken as they say."""
    if caller.internal:
        return None
    if caller.facility is None:
        return frozenset()
    return frozenset({caller.facility}) | settings.on_behalf_of.get(caller.facility, frozenset())


@dataclass(frozen=True, slots=True)
class RecordProvenance:
    archive: str
    digest: str
    format: str
    sender: str | None  # the token's facility: the author, whichever facility a record is scoped to
    caller: str

    def added_to(self, record: Record, recorded: str) -> dict[str, Any]:
        """The record's Bundle with its Provenance as one more entry (found again when re-sent)."""
        entries = record.bundle.get("entry", [])
        targets = [{"reference": e["fullUrl"]} for e in entries if isinstance(e, dict) and e.get("fullUrl")
                   and str(e.get("request", {}).get("method", "")) in ("POST", "PUT", "PATCH")]
        if not targets:
            return record.bundle
        key = {"system": RECORD_SYSTEM, "code": f"{self.digest}/{' '.join(record.key.split())}"}
        facility = record.facility or self.sender
        author = self.sender or facility
        agent: dict[str, Any] = {
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                                 "code": "author"}]},
            "who": _facility_reference(author) if author else {"display": self.caller}}
        if facility and author and facility != author:  # sent for another facility, as configured
            agent["onBehalfOf"] = _facility_reference(facility)
        resource = tag({
            "resourceType": "Provenance", "meta": {"tag": [key]}, "target": targets, "recorded": recorded,
            "activity": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                                     "code": "CREATE"}]},
            "agent": [agent],
            "entity": [{"role": "source", "what": {"identifier": {"system": ARCHIVE_SYSTEM, "value": self.archive},
                                                   "display": f"{self.format} payload, record {record.key}"}}],
        }, Source(self.format, self.sender), facility)
        entry = {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": resource,
                 "request": {"method": "POST", "url": "Provenance",
                             "ifNoneExist": token_criteria("_tag", key["system"], key["code"])}}
        return {**record.bundle, "entry": [*entries, entry]}


def _sha256(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def _facility_reference(code: str) -> dict[str, Any]:
    return {"identifier": {"system": FACILITY, "value": code}, "display": f"facility {code}"}


def _count(report: IngestReport, bundle: dict[str, Any], results: list[EntryResult], started: int) -> None:
    """Created (201), found again (200 to a conditional create, or an update that changed nothing: its
    version is older than the record's commit), or updated."""
    for sent, got in zip(bundle.get("entry", []), results, strict=False):
        method = str(sent.get("request", {}).get("method", ""))
        if got.status == 201:
            report.created += 1
        elif got.status == 200 and (method == "POST" or (got.version is not None and got.version.ts < started)):
            report.existing += 1
        elif got.status == 200:
            report.updated += 1
