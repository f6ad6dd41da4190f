"""Claims on conditional criteria: what makes "create it unless it exists" race-free across hub processes.

A conditional create (``If-None-Exist``, a Bundle's ``ifNoneExist``) or conditional update searches, then
writes. Two clients doing so at once both found nothing and both created: measured from outside, two
simultaneous ``PUT /Patient?identifier=s|v`` made two Patients four times in five (and every later
conditional write on that identifier then failed with 412), and one HL7 message sent four times at once
stored four Patients. No index can forbid it (two Patients may share an identifier from different
senders), so the interaction itself is serialised per criteria: before it searches, it inserts one document
per criteria it acts on (``_id``: the resource type and the criteria, normalised), and removes them once it
has written. A second client inserting the same ``_id`` fails, waits for the first to finish, then searches
and finds what the first created: it answers exactly as if it had arrived second (200 with the existing
resource, or an update of it). The unique ``_id`` is what every MongoDB-compatible server enforces, across
processes and machines.

Several claims are taken all or nothing (a partial set is given back before waiting), so two Bundles
wanting overlapping criteria never hold each other up for good. A claim left by a process that died is
taken over once it is ``STALE_SECONDS`` old. Claims are written under the store's write gate (on nx-27017 a
write during a transaction Bundle would join it).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import secrets
import time
import weakref
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode

from pymongo.errors import OperationFailure

from fhir_hub.errors import Conflict
from fhir_hub.store.schema import CLAIMS
from fhir_hub.store.transaction import WriteGate

STALE_SECONDS = 120  # longer than any request holds a claim (the read budget is 30 s, a large Bundle less)
WAIT_SECONDS = 60  # how long a request waits for claims held by others before answering 409
_MAX_KEY = 512


def claim_key(rtype: str, criteria: str) -> str:
    """The criteria as one key: parameters in order, so ``a=1&b=2`` and ``b=2&a=1`` are one claim."""
    pairs = sorted(parse_qsl(criteria.lstrip("?"), keep_blank_values=True))
    key = f"{rtype}?{urlencode(pairs)}"
    if len(key) > _MAX_KEY:
        key = f"{rtype}?#{hashlib.sha256(key.encode()).hexdigest()}"
    return key


class Claims:
    def __init__(self, db: Any, gate: WriteGate, *, stale_seconds: float = STALE_SECONDS) -> None:
        self.collection = db[CLAIMS]
        self.gate = gate
        self.stale_seconds = stale_seconds  # FHIR_HUB_CLAIM_STALE_SECONDS
        self._held: weakref.WeakKeyDictionary[asyncio.Task[Any], set[str]] = weakref.WeakKeyDictionary()

    @asynccontextmanager
    async def holding(self, keys: Iterable[str]) -> AsyncIterator[None]:
        """Hold these claims for the block (none: nothing to wait for). Re-entrant: claims the current task
        already holds (a Bundle claims its Patients' match keys before the writer's match step asks for them)
        are not taken again, and stay held until the outer block ends."""
        task = asyncio.current_task()
        assert task is not None, "claims are taken from a coroutine"
        mine = self._held.setdefault(task, set())
        wanted = sorted(set(keys) - mine)
        if not wanted:
            yield
            return
        token = secrets.token_hex(8)
        await self._acquire(wanted, token)
        mine.update(wanted)
        try:
            yield
        finally:
            mine.difference_update(wanted)
            await asyncio.shield(self._release(wanted, token))

    async def _acquire(self, keys: list[str], token: str) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        delay = 0.002
        while True:
            now = time.time()
            try:
                async with self.gate.shared():
                    await self.collection.insert_many([{"_id": key, "o": token, "at": now} for key in keys])
                return
            except OperationFailure:  # one is held (a duplicate key; nx-27017 may report another code)
                pass
            async with self.gate.shared():
                await self.collection.delete_many({"_id": {"$in": keys}, "o": token})  # all or nothing
                held = [doc async for doc in self.collection.find({"_id": {"$in": keys}})]
                for doc in held:
                    if now - float(doc.get("at", 0)) > self.stale_seconds:  # its holder died: take it over
                        await self.collection.delete_many({"_id": doc["_id"], "o": doc.get("o")})
            if time.monotonic() > deadline:
                raise Conflict("Another request is creating or updating the same resource (the same conditional "
                               "criteria) and has not finished; send this one again")
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.05)

    async def _release(self, keys: list[str], token: str) -> None:
        async with self.gate.shared():
            await self.collection.delete_many({"_id": {"$in": keys}, "o": token})
