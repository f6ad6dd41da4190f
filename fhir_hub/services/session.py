"""The session a service runs in: who asks, what is audited, which transaction, and what time it is.

Services take a ``Session``, never an HTTP request, so that a REST route, a Bundle entry, an ingested
record and (next) a queue worker's job all reach the same code. The HTTP layer builds one per request
(``fhir_hub/api/context.py``), with the base URL and ``Prefer`` the request carries; anything else builds
one with ``Session.open``. Like the request context before it, it offers the one read path (``reader``) and
the one write path (``commit``); ``within`` gives the same session inside a store transaction (a Bundle's
entries, whose later reads see the earlier writes).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial

from consent.decision import AccessDecision
from fhir_hub.audit import AuditRecord
from fhir_hub.auth.caller import Caller
from fhir_hub.fhir.instant import Clock, local_day
from fhir_hub.hub import Hub
from fhir_hub.queue.urgency import WATCHED, after_write
from fhir_hub.store.own_writes import OwnWritesView
from fhir_hub.store.protocol import ReadStore
from fhir_hub.store.reader import ScopedReader
from fhir_hub.store.transaction import Transaction
from fhir_hub.store.writer import WriteOp, WriteResult

_QUEUED = "queued-refreshes"  # a transaction's notes: the persons whose priority-record refresh it queued


@dataclass(slots=True)
class Session:
    """Not frozen, though nothing assigns to one once made (``within`` makes another): a frozen dataclass
    sets each field through ``object.__setattr__``, measured 2.8 µs against 0.3 µs for a request's Session
    and its ``FhirContext`` together, on the path of every read."""

    hub: Hub
    caller: Caller
    decision: AccessDecision  # the caller's access decision, made once (``Hub.access``), consulted by the reader alone
    base_url: str  # this server's base: absolute references and Bundle URLs under it are local
    clock: Clock  # what "now" is for the services (the writer stamps versions with its own, the same by default)
    audit: AuditRecord | None = None  # notes what is read and written; None: not audited (the hub's own jobs)
    prefer: Mapping[str, str] = field(default_factory=dict)  # ``Prefer`` (return=..., handling=...), lower case
    tx: Transaction | None = None  # set while the entries of a Bundle group are written
    # whether a write raises the person's waiting jobs and queues a refresh of their priority record
    # (``queue/urgency.py``); a worker storing a queued record does not: the queue raised them when the record
    # was queued, from the same record, and the worker refreshes the priority record itself
    raises_jobs: bool = True

    @classmethod
    def open(cls, hub: Hub, caller: Caller, *, audit: AuditRecord | None = None, base_url: str | None = None,
             prefer: Mapping[str, str] | None = None, clock: Clock | None = None) -> Session:
        """A session outside any HTTP request: the configured base URL and the writer's clock by default."""
        return cls(hub, caller, hub.access(caller), (base_url or hub.settings.served_base_url).rstrip("/"),
                   clock or hub.writer.clock, audit, prefer if prefer is not None else {})

    def within(self, tx: Transaction) -> Session:
        return dataclasses.replace(self, tx=tx)

    def prefers(self, name: str) -> str | None:
        return self.prefer.get(name)

    @property
    def strict(self) -> bool:
        """``Prefer: handling=strict``: an unknown search parameter is an error rather than ignored."""
        return self.prefer.get("handling") == "strict"

    def url(self, *parts: str) -> str:
        return "/".join((self.base_url, *parts))

    @property
    def reader(self) -> ScopedReader:
        """The one read path, scoped to the caller (made per use: it is a few attribute assignments)."""
        store: ReadStore = self.hub.store
        if self.tx is not None and self.tx.changes:  # a group's later entries see its earlier writes
            store = OwnWritesView(store, self.tx)
        return ScopedReader(store, self.caller, self.audit, decision=self.decision,
                            limits=self.hub.settings.search_limits, base_url=self.base_url)

    async def commit(self, op: WriteOp) -> WriteResult:
        """The one write path: the writer checks access, validates, versions and indexes; the audit record
        notes what the write reached, even when it is refused."""
        noticed = self.audit.touch if self.audit is not None else None
        result = await self.hub.writer.commit(op, caller=self.caller, tx=self.tx, noticed=noticed, reader=self.reader)
        if self.audit is not None and result.changed:
            self.audit.touch(result.version)
        if self.raises_jobs and result.changed and result.version.rtype in WATCHED:  # the person's jobs follow
            noted: set[str] = set() if self.tx is None else self.tx.notes.setdefault(_QUEUED, set())
            queueing = partial(after_write, self.hub.queue, self.hub.store, result.version, local_day(self.clock()),
                               noted)
            if self.tx is None:
                await queueing()
            else:  # what a transaction wrote counts once it is committed
                self.tx.after_commit.append(queueing)
        return result
