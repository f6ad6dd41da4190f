"""The audit trail: one AuditEvent for every authenticated request, whatever its interaction or outcome.

Each request gets an ``AuditRecord`` when its caller is known; the scoped reader and the write path note
every resource and patient it touches; one ASGI middleware finishes the record with the final HTTP status
and hands it to the ``AuditTrail``. The trail stores records as FHIR ``AuditEvent`` resources through the
hub's write path, batched (every ``FHIR_HUB_AUDIT_FLUSH_MS``, or sooner when 200 are waiting), because
a store write per read would halve read throughput on the embedded store. The trail is flushed on
shutdown; a crash can lose at most the last batch, which the README states.

AuditEvents land in the patient's compartment (``entity.what`` = the Patient), so a resident can read who
accessed their record, and are never editable through the API.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from fhir_hub.auth.caller import PURPOSES_OF_USE, Caller
from fhir_hub.fhir.instant import Clock, to_instant
from fhir_hub.store.records import StoredVersion

log = logging.getLogger(__name__)

_MAX_ENTITIES = 50
_BATCH = 200
_MAX_WAITING = 100_000
_ACTION = {"create": "C", "update": "U", "conditional-update": "U", "delete": "D", "conditional-delete": "D",
           "read": "R", "vread": "R", "history-instance": "R"}
_ENTITY_TYPES = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
_OBJECT_ROLES = "http://terminology.hl7.org/CodeSystem/object-role"
FACILITY_SYSTEM = "http://fhir.hl7.org.vn/core/sid/ma-cskcb"


@dataclass
class AuditRecord:
    interaction: str
    caller: Caller
    method: str
    path: str
    query: str
    client: str | None
    recorded: int  # microseconds
    resources: list[str] = field(default_factory=list)
    patients: set[str] = field(default_factory=set)
    more_resources: int = 0
    status: int = 0

    def touch(self, version: StoredVersion) -> None:
        self.patients.update(version.patients)
        if version.key in self.resources:
            return
        if len(self.resources) < _MAX_ENTITIES:
            self.resources.append(version.key)
        else:
            self.more_resources += 1

    def to_resource(self, observer: str) -> dict[str, Any]:
        outcome = "0" if self.status < 400 else "4" if self.status < 500 else "8"
        event: dict[str, Any] = {
            "resourceType": "AuditEvent",
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
                     "display": "RESTful Operation"},
            "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": self.interaction}],
            "action": _ACTION.get(self.interaction, "E"),
            "recorded": to_instant(self.recorded),
            "outcome": outcome,
            "outcomeDesc": f"HTTP {self.status}" + (f"; {self.more_resources} more resources not listed"
                                                    if self.more_resources else ""),
            "purposeOfEvent": [{"coding": [{"system": PURPOSES_OF_USE, "code": self.caller.purpose}]}],
            "agent": self._agents(),
            "source": {"observer": {"display": observer},
                       "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                                 "code": "4", "display": "Application Server"}]},
        }
        entities = [self._patient_entity(pid) for pid in sorted(self.patients)]
        entities += [{"what": {"reference": key}, "type": {"system": _ENTITY_TYPES, "code": "2"}}
                     for key in self.resources if not key.startswith("Patient/")]
        entities.append({"type": {"system": _ENTITY_TYPES, "code": "2"}, "description": f"{self.method} {self.path}",
                         **({"query": base64.b64encode(self.query.encode()).decode()} if self.query else {})})
        event["entity"] = entities
        return event

    def _agents(self) -> list[dict[str, Any]]:
        caller = self.caller
        who: dict[str, Any] = {"reference": caller.fhir_user} if caller.fhir_user and "/" in caller.fhir_user \
            else {"identifier": {"system": "urn:fhir-hub:token-subject", "value": caller.subject}}
        agent: dict[str, Any] = {"type": {"text": caller.role}, "who": who, "requestor": True}
        if self.client:
            agent["network"] = {"address": self.client, "type": "2"}
        agents = [agent]
        if caller.facility:
            agents.append({"type": {"text": "facility"}, "requestor": False,
                           "who": {"identifier": {"system": FACILITY_SYSTEM, "value": caller.facility}}})
        return agents

    @staticmethod
    def _patient_entity(pid: str) -> dict[str, Any]:
        return {"what": {"reference": f"Patient/{pid}"}, "type": {"system": _ENTITY_TYPES, "code": "1"},
                "role": {"system": _OBJECT_ROLES, "code": "1", "display": "Patient"}}


class GeneratedWriter(Protocol):
    async def commit_generated(self, rtype: str, resources: list[dict[str, Any]], *, caller: Caller) -> None: ...


class AuditTrail:
    def __init__(self, writer: GeneratedWriter, *, clock: Clock, flush_ms: int, observer: str = "fhir-hub") -> None:
        self.writer = writer
        self.clock = clock
        self.flush_seconds = flush_ms / 1000
        self.observer = observer
        self._waiting: list[AuditRecord] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._caller = Caller.hub("audit")

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-trail")

    def begin(self, *, interaction: str, caller: Caller, method: str, path: str, query: str,
              client: str | None) -> AuditRecord:
        return AuditRecord(interaction, caller, method, path, query, client, self.clock())

    def submit(self, record: AuditRecord) -> None:
        self._waiting.append(record)
        if len(self._waiting) >= _BATCH:
            self._wake.set()

    async def flush(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:_BATCH], self._waiting[_BATCH:]
            try:
                await self.writer.commit_generated("AuditEvent", [r.to_resource(self.observer) for r in batch],
                                                   caller=self._caller)
            except BaseException as exc:  # kept for the next flush, also when the flush is cancelled
                self._waiting[:0] = batch
                if not isinstance(exc, Exception):
                    raise
                log.exception("could not store %d audit events; they will be retried", len(batch))
                if len(self._waiting) > _MAX_WAITING:
                    dropped = len(self._waiting) - _MAX_WAITING
                    del self._waiting[:dropped]
                    log.error("audit store unavailable: %d oldest audit events dropped", dropped)
                return

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.flush_seconds)
            self._wake.clear()
            await self.flush()
