"""The audit trail: an AuditEvent for every authenticated request, whatever its interaction or outcome.

Each request gets an ``AuditRecord`` once its caller is known; the scoped reader and the write path note
every resource and patient it touches; one ASGI middleware finishes the record with the final HTTP status
and hands it to the ``AuditTrail``, which appends it to the audit log in batches (every
``FHIR_HUB_AUDIT_FLUSH_MS``, or sooner when 200 are waiting; sent as inserts of 20) and flushes on
shutdown. A crash can lose at most the last batch; the README says so.

An event touching several patients is recorded once per patient (IHE Basic Audit Log Patterns), so a
resident reads "who accessed my record" as the AuditEvents of their compartment; each such entry holds only
what concerns that patient, and the whole request (its query, every resource) is kept in one entry under no
patient for the audit administrator (``AuditRecord.to_entries``). Entries are rendered as FHIR
``AuditEvent`` resources when read and are never editable through the API.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import logging
import os
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

from adapters.normalize import HUB
from fhir_hub.auth.caller import PURPOSES_OF_USE, Caller
from fhir_hub.fhir.instant import Clock, to_instant
from fhir_hub.store.audit_log import AuditLog
from fhir_hub.store.records import StoredVersion

log = logging.getLogger(__name__)

_MAX_RESOURCES = 50
_MAX_PATIENTS = 1_000  # listed in the administrator's entry of one request
# entries per insert: nx-27017 runs one command at a time, and an insert of 200 entries (~17 ms there) held
# every read queued behind it; in inserts of 20 the reads go in between (bench rest at concurrency 8: read
# p95 16-17 ms with one insert per flush, 11-13 ms in inserts of 20, at the same throughput). An insert
# leaves as soon as 20 entries wait, rather than five at once at the flush's time: under steady reads the
# inserts come evenly, and no read waits behind several (reads at concurrency 8: p95 ~8.5 against ~10 ms)
_CHUNK = 20
_MAX_WAITING = 100_000
_ACTION = {"create": "C", "update": "U", "conditional-update": "U", "delete": "D", "conditional-delete": "D",
           "read": "R", "vread": "R", "history-instance": "R"}
_ENTITY_TYPES = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
FACILITY_SYSTEM = "http://fhir.hl7.org.vn/core/sid/ma-cskcb"
OBSERVER = "fhir-hub"
AUDIT_SOURCE = "urn:fhir-hub:audit"
AUDIT_FLAGS = f"{HUB}/CodeSystem/audit-flag"
# meta.tag of every AuditEvent of an emergency request (R4 Meta.tag: "tags ... used to relate resources to
# process and workflow"): the facility's review of broken glass, and the resident's access log, find them
EMERGENCY_TAG = {"system": AUDIT_FLAGS, "code": "emergency-access", "display": "Emergency access (break the glass)"}


@dataclass
class AuditRecord:
    interaction: str
    caller: Caller
    method: str
    path: str
    query: str
    client: str | None
    recorded: int  # microseconds
    touched: list[tuple[str, frozenset[str]]] = field(default_factory=list)  # (resource key, its patients)
    status: int = 0

    def mark(self) -> int:
        """Where the record stands, to ``rewind`` to when what was touched since is rolled back."""
        return len(self.touched)

    def rewind(self, mark: int) -> None:
        del self.touched[mark:]

    def touch(self, version: StoredVersion) -> None:
        """Note a resource handed out, written, or that a write attempt reached (audited even when refused)."""
        noted = (version.key, version.patients)
        if not self.touched or self.touched[-1] != noted:
            self.touched.append(noted)

    def to_entries(self) -> list[dict[str, Any]]:
        """The audit-log entries of this request.

        A resident reads the entries filed under their Patient id, so such an entry lists only the resources
        in their compartment and never the query string (a search by another person's name, or ``_id=A,B``,
        would otherwise show A who B is). The whole request, query and every resource and patient included,
        is one more entry under no patient, for the audit administrator; a request whose one patient's entry
        would already say everything (one patient, no query, only their resources) is recorded once.

        Breaking the glass (purpose ETREAT, ``Caller.emergency``) flags every entry of the request (``e``),
        refused attempts included, with the clinician's reason; its request entry is always written and
        names the facility it is flagged to (``ef``, the caller's; empty for a token without one), so a
        facility lists one entry per emergency request and the resident one per request on their record.
        """
        resources: dict[str, set[str]] = {}
        for key, patients in self.touched:
            resources.setdefault(key, set()).update(patients)
        everyone = sorted(set().union(*resources.values())) if resources else []
        caller = self.caller
        who = {"sub": caller.subject, "role": caller.role, "facility": caller.facility,
               "fhirUser": caller.fhir_user, "purpose": caller.purpose, "reason": caller.emergency_reason,
               "address": self.client}
        base: dict[str, Any] = {"ts": self.recorded, "i": self.interaction, "o": self.status,
                                "who": {k: v for k, v in who.items() if v is not None},
                                **({"e": 1} if caller.emergency else {})}
        request = {"method": self.method, "path": self.path}
        if (len(everyone) == 1 and not self.query and all(everyone[0] in ps for ps in resources.values())
                and not caller.emergency):
            return [{"_id": _new_id(), **base, "req": request, **_listed(list(resources)), "p": everyone[0]}]
        whole = {"_id": _new_id(), **base, "req": {**request, "query": self.query}, **_listed(list(resources))}
        if caller.emergency:  # the request's one entry a facility reviews (``AuditLog.emergencies``)
            whole["ef"] = caller.facility or ""
        if everyone:
            whole["ps"] = everyone[:_MAX_PATIENTS]
        own = [{"_id": _new_id(), **base, "req": request, **_listed([k for k, ps in resources.items() if pid in ps]),
                "p": pid} for pid in everyone]
        return [whole, *own]


def _listed(keys: list[str]) -> dict[str, Any]:
    listed: dict[str, Any] = {"r": keys[:_MAX_RESOURCES]}
    if len(keys) > _MAX_RESOURCES:
        listed["more"] = len(keys) - _MAX_RESOURCES
    return listed


class _Ids:
    """AuditEvent ids unique across processes: a prefix of this process's and a counter under it. Every read
    writes an entry, and a UUID per entry cost a read ~2 % of the hub's CPU; ids need not be unguessable
    (reading one is an access decision)."""

    def __init__(self) -> None:
        self.renew()

    def renew(self) -> None:
        self.prefix, self.counter = uuid.uuid4().hex[:24], itertools.count()

    def new(self) -> str:
        return f"{self.prefix}-{next(self.counter):x}"


_IDS = _Ids()
_new_id = _IDS.new
os.register_at_fork(after_in_child=_IDS.renew)  # a forked process must not repeat its parent's ids


def render(entry: dict[str, Any]) -> dict[str, Any]:
    """An audit-log entry as the FHIR AuditEvent the API serves."""
    status, who, req = entry["o"], entry["who"], entry["req"]
    recorded = to_instant(entry["ts"])
    agent: dict[str, Any] = {
        "type": {"text": who.get("role", "unknown")},
        "who": {"reference": who["fhirUser"]} if "/" in who.get("fhirUser", "")
        else {"identifier": {"system": "urn:fhir-hub:token-subject", "value": who.get("sub", "")}},
        "requestor": True,
    }
    if who.get("address"):
        agent["network"] = {"address": who["address"], "type": "2"}
    agents = [agent]
    if who.get("facility"):
        agents.append({"type": {"text": "facility"}, "requestor": False,
                       "who": {"identifier": {"system": FACILITY_SYSTEM, "value": who["facility"]}}})
    patients = [entry["p"]] if entry.get("p") else entry.get("ps", [])
    entities: list[dict[str, Any]] = [
        {"what": {"reference": f"Patient/{pid}"}, "type": {"system": _ENTITY_TYPES, "code": "1"},
         "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1", "display": "Patient"}}
        for pid in patients]
    shown = {f"Patient/{pid}" for pid in patients}
    entities += [{"what": {"reference": key}, "type": {"system": _ENTITY_TYPES, "code": "2"}}
                 for key in entry.get("r", []) if key not in shown]
    # a patient's entry never shows the query, also one recorded before queries were kept from residents
    query = None if entry.get("p") else req.get("query")
    entities.append({"type": {"system": _ENTITY_TYPES, "code": "2"}, "description": f"{req['method']} {req['path']}",
                     **({"query": base64.b64encode(query.encode()).decode()} if query else {})})
    return {
        "resourceType": "AuditEvent",
        "id": entry["_id"],
        "meta": {"versionId": "1", "lastUpdated": recorded, "source": AUDIT_SOURCE,
                 **({"tag": [EMERGENCY_TAG]} if entry.get("e") else {})},
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
                 "display": "RESTful Operation"},
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": entry["i"]}],
        "action": _ACTION.get(entry["i"], "E"),
        "recorded": recorded,
        "outcome": "0" if status < 400 else "4" if status < 500 else "8",
        "outcomeDesc": f"HTTP {status}" + (f"; {entry['more']} more resources not listed" if entry.get("more") else ""),
        "purposeOfEvent": [{"coding": [{"system": PURPOSES_OF_USE, "code": who.get("purpose", "TREAT")}],
                            **({"text": who["reason"]} if who.get("reason") else {})}],
        "agent": agents,
        "source": {"observer": {"display": OBSERVER},
                   "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4",
                             "display": "Application Server"}]},
        "entity": entities,
    }


AUDIT_TYPE = "AuditEvent"


def as_version(entry: dict[str, Any]) -> StoredVersion:
    """An audit-log entry as the single, never-changing version of its AuditEvent."""
    patient = entry.get("p")
    return StoredVersion(AUDIT_TYPE, entry["_id"], 1, entry["ts"], "POST", deleted=False,
                         json=orjson.dumps(render(entry)), source=AUDIT_SOURCE,
                         patients=frozenset([patient]) if patient else frozenset())


class AuditTrail:
    def __init__(self, audit_log: AuditLog, *, clock: Clock, flush_ms: int) -> None:
        self.log = audit_log
        self.clock = clock
        self.flush_seconds = flush_ms / 1000
        self._waiting: list[dict[str, Any]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-trail")

    def begin(self, *, interaction: str, caller: Caller, method: str, path: str, query: str,
              client: str | None) -> AuditRecord:
        return AuditRecord(interaction, caller, method, path, query, client, self.clock())

    def submit(self, record: AuditRecord) -> None:
        self._waiting.extend(record.to_entries())
        if len(self._waiting) >= _CHUNK:
            self._wake.set()

    async def flush(self, *, whole_chunks: bool = False) -> None:
        """Store what is waiting now, in batches; entries arriving meanwhile wait for the next flush (a
        flush that chased them would write one entry per request under steady load). ``whole_chunks``:
        only full inserts, the rest waits (a flush woken early, by a chunk's worth of entries)."""
        take = len(self._waiting) - len(self._waiting) % _CHUNK if whole_chunks else len(self._waiting)
        pending, self._waiting = self._waiting[:take], self._waiting[take:]
        for start in range(0, len(pending), _CHUNK):
            batch = pending[start : start + _CHUNK]
            try:
                await self.log.append(batch)
            except BaseException as exc:  # kept for the next flush, also when the flush is cancelled
                unsent = pending[start + _CHUNK :]
                if not isinstance(exc, Exception):
                    self._waiting[:0] = batch + unsent
                    raise
                self._waiting[:0] = await self._not_stored(batch) + unsent
                log.exception("could not store %d audit entries; they will be retried", len(batch))
                if len(self._waiting) > _MAX_WAITING:
                    dropped = len(self._waiting) - _MAX_WAITING
                    del self._waiting[:dropped]
                    log.error("audit store unavailable: %d oldest audit entries dropped", dropped)
                return

    async def _not_stored(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The entries of a failed append that did not get in (a partial failure stores some)."""
        try:
            stored = await self.log.stored_ids([entry["_id"] for entry in batch])
        except Exception:
            return batch
        return [entry for entry in batch if entry["_id"] not in stored]

    async def stop(self) -> None:
        """Let a flush under way finish (cancelling it could store a batch twice), then flush the rest."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
        await self.flush()

    async def _run(self) -> None:
        while not self._stopping:
            woken = True
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.flush_seconds)
            except TimeoutError:
                woken = False
            self._wake.clear()
            await self.flush(whole_chunks=woken and not self._stopping)
