"""Client assertions already used: what makes a replayed ``jti`` fail, across every hub process.

SMART Backend Services (and RFC 7523 3, item 7) has the token endpoint refuse an assertion whose ``jti`` it
has seen before, for as long as the assertion is valid. A check-then-write would let two copies of one
assertion, sent at once to two hub processes, both pass; so the first use is an insert whose ``_id`` is the
client and the ``jti``, and the unique ``_id``, which every MongoDB-compatible server enforces, lets exactly
one of them succeed. A record is needed only until the assertion's ``exp`` (after it the assertion is refused
as expired): expired records are deleted by a range on ``exp`` (indexed), at most once a minute per process,
so the collection holds about five minutes of assertions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pymongo.errors import OperationFailure

from fhir_hub.store.schema import USED_ASSERTIONS
from fhir_hub.store.transaction import WriteGate

_SWEEP_SECONDS = 60.0


class UsedAssertions:
    def __init__(self, db: Any, gate: WriteGate, *, leeway_seconds: float = 60.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.collection = db[USED_ASSERTIONS]
        self.gate = gate
        self.leeway = leeway_seconds
        self.clock = clock
        self._swept = 0.0

    async def first_use(self, client_id: str, jti: str, expires: float) -> bool:
        """Record the use of ``jti`` by ``client_id``; False when it was used before (by any process)."""
        await self._sweep()
        try:
            async with self.gate.shared():
                await self.collection.insert_one({"_id": f"{client_id}|{jti}", "exp": float(expires)})
        except OperationFailure:  # a duplicate _id (nx-27017 may report it under another code)
            return False
        return True

    async def _sweep(self) -> None:
        now = self.clock()
        if now - self._swept < _SWEEP_SECONDS:
            return
        self._swept = now
        async with self.gate.shared():  # an assertion past exp + leeway is refused before its jti is looked at
            await self.collection.delete_many({"exp": {"$lt": now - self.leeway}})
