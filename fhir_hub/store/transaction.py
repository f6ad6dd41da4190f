"""All-or-nothing groups of writes (transaction Bundles), and the gate that keeps them apart from other writes.

Where the server has multi-document transactions (a MongoDB replica set, nx-27017), the steps of every
change in the group are sent inside one transaction, which commits only when every conditional replace
matched. A group smaller than ``CHUNK_STEPS`` goes in one request at the end. A larger one starts its
transaction as soon as that many steps are ready and from then on sends, in the background, whatever has
been collected each time the server has finished the previous request: the server stores one part while
the hub validates and indexes the next. On a 250-entry Bundle the server's time was as large as the hub's,
so this overlap is the largest single saving (measured in process on a 250-entry Bundle: 455 to 700
resources/s; ``python -m bench bundles`` gives the current figures). The gate below is then held from the
first request to the commit.

nx-27017 runs a transaction on the single SQLite connection all its clients share: a write from another
request while the transaction is open becomes part of it, and an abort discards that write too (measured,
see ``tests/store/test_server_differences.py``). On such a server the ``WriteGate`` makes a transaction
exclusive: every other write waits for it, and it waits for writes under way; with a ``StoreLock``
(``store_lock.py``), the writes of the other hub processes on this machine too. On MongoDB the gate is open.

On a server without transactions (a standalone mongod), the changes are written one by one as they come
and, on failure, undone in reverse order (``MongoStore.undo``): nothing of the group remains afterwards,
but a concurrent reader may see part of it meanwhile, and a crash of the hub in the middle leaves the
part written so far. The README says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fhir_hub.store.plan import Step, WritePlan
from fhir_hub.store.records import VersionChange

if TYPE_CHECKING:
    from fhir_hub.store.own_writes import OwnIndex
    from fhir_hub.store.store_lock import StoreLock

CHUNK_STEPS = 128  # the least a large transaction sends at once (~20 resources with their index documents);
# more when the previous request is still under way: a request leaves as soon as the server is idle


class WriteGate:
    """Shared for single writes, exclusive for a transaction; writers waiting for exclusivity go first.
    ``lock``: the same, across the processes of this machine (``store_lock.py``), held shared while any
    of this process's holders is inside and exclusively with its transaction."""

    def __init__(self, enabled: bool, lock: StoreLock | None = None) -> None:
        self.enabled = enabled
        self.lock = lock if enabled else None
        self._holders: set[asyncio.Task[Any] | None] = set()
        self._exclusive = False
        self._waiting = 0
        self._owner: asyncio.Task[Any] | None = None
        self._changed = asyncio.Condition()
        self._lock_shared = 0  # holders inside the process-wide shared lock
        self._lock_taking = asyncio.Lock()  # one task at a time asks the process-wide lock for the others

    @asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        task = asyncio.current_task()
        if not self.enabled or self._owner is task or task in self._holders:
            yield  # re-entered by a task already inside (a write repairing its own entries): never wait on itself
            return
        async with self._changed:
            await self._changed.wait_for(lambda: not self._exclusive and not self._waiting)
            self._holders.add(task)
        try:
            await self._enter_shared_lock()
            try:
                yield
            finally:
                self._leave_shared_lock()
        finally:
            async with self._changed:
                self._holders.discard(task)
                self._changed.notify_all()

    async def _enter_shared_lock(self) -> None:
        if self.lock is None:
            return
        await self.lock.turn()  # another process's transaction waiting goes first, as one of this process's does
        async with self._lock_taking:
            if self._lock_shared == 0:
                await self.lock.acquire_shared()
            self._lock_shared += 1

    def _leave_shared_lock(self) -> None:
        if self.lock is None:
            return
        self._lock_shared -= 1
        if self._lock_shared == 0:
            self.lock.release_shared()

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        if not self.enabled:
            yield
            return
        async with self._changed:
            self._waiting += 1
            try:
                await self._changed.wait_for(lambda: not self._exclusive and not self._holders)
            finally:
                self._waiting -= 1
            self._exclusive = True
            self._owner = asyncio.current_task()
        try:
            if self.lock is not None:  # no holder here: this process holds no shared lock
                await self.lock.acquire_exclusive()
            try:
                yield
            finally:
                if self.lock is not None:
                    self.lock.release_exclusive()
        finally:
            async with self._changed:
                self._exclusive = False
                self._owner = None
                self._changed.notify_all()


@dataclass
class Transaction:
    """The writes of one all-or-nothing group, as the store collects them.

    ``session`` is the server session the group commits in, or None on a server without transactions,
    where ``written`` lists what must be undone on failure.
    """

    session: Any | None
    steps: list[Step] = field(default_factory=list)
    conditions: list[tuple[int, str]] = field(default_factory=list)  # (step index, resource key) that must match
    written: list[tuple[VersionChange, str]] = field(default_factory=list)  # (change, writer token)
    # the newest change of each resource the group wrote, by key: what its own reads must see (own_writes.py)
    changes: dict[str, VersionChange] = field(default_factory=dict)
    own_index: OwnIndex | None = None  # those changes' index documents, built when first read
    # Sending in chunks (server transactions only): steps[:sent] are sent or being sent, ``matched`` holds
    # what the finished requests matched (by index in ``steps``), ``in_flight`` the request under way.
    sent: int = 0
    matched: dict[int, int] = field(default_factory=dict)
    in_flight: asyncio.Task[dict[int, int]] | None = None
    held: AsyncExitStack = field(default_factory=AsyncExitStack)  # the gate, held until commit or abort
    # run once the group is committed, outside the gate (a master Patient rebuilt from the sources the group
    # linked to it, see linking/linker.py); not run when the group fails
    after_commit: list[Callable[[], Awaitable[object]]] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)  # what a pipeline step remembers across the group's writes
    # a write of the group changes consent look-ups: the _id of its open marker while it is in flight; the
    # epoch moves on at the end (consent_epoch.py, mongo.py)
    open_marker: str | None = None

    @property
    def unsent(self) -> int:
        return len(self.steps) - self.sent

    @property
    def started(self) -> bool:
        """Whether the server transaction is open (its first chunk was sent)."""
        return self.sent > 0

    def add(self, plan: WritePlan) -> None:
        offset = len(self.steps)
        self.steps += plan.commit
        if plan.condition is not None:
            self.conditions.append((offset + plan.condition, plan.commit[plan.condition].first["_id"]))
        self.steps += plan.derived
