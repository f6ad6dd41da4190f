"""Reads of single documents by ``_id``, coalesced: requests in flight together share one ``find``.

Why: a read over HTTP is one ``find_one`` on ``resources``, and at concurrency the cost of each is mostly
per operation, not per document: pymongo's async client spends ~150 µs of Python per command and the
embedded store (nx-27017) ~250 µs of its own, whatever the document (measured with ``bench rest``). Eight
clients reading eight resources at once pay that eight times; one ``find({"_id": {"$in": [...]}})`` pays
it once (an ``$in`` on ``_id`` is an index look-up per key on MongoDB and on nx-27017 alike).

Never stale, never early: a key is only ever fetched by a command *sent after* its read was asked for, so a
read sees every write committed before the request that asked for it, exactly as its own ``find_one``
would (nothing is kept between batches, so there is nothing to go stale across hub processes). Batching
only happens under load: a read that finds nothing in flight is sent at once, alone; reads that arrive
while ``max_in_flight`` commands are out wait for the next one, which takes all of them (up to
``max_batch`` keys). One command in flight gave the least CPU per read at concurrency 8 (hub and store
together, ~470 µs against ~520 µs with two and ~590 µs with four); a read then waits at most for one
command ahead of its own. A failed command fails exactly the reads it held.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

Doc = dict[str, Any]


class PointReads:
    def __init__(self, collection: AsyncCollection[Doc], *, max_in_flight: int = 1, max_batch: int = 100,
                 projection: dict[str, int] | None = None) -> None:
        self.collection = collection
        self.max_in_flight = max_in_flight
        self.max_batch = max_batch
        self.projection = projection
        self._waiting: dict[str, list[asyncio.Future[Doc | None]]] = {}
        self._in_flight = 0

    async def get(self, key: str) -> Doc | None:
        if self._in_flight < self.max_in_flight and not self._waiting:
            self._in_flight += 1
            try:
                doc: Doc | None = await self.collection.find_one({"_id": key}, self.projection)
            finally:
                self._in_flight -= 1
                self._send_waiting()
            return doc
        future: asyncio.Future[Doc | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(future)
        return await future

    def _send_waiting(self) -> None:
        """Start the next batch if reads are waiting and a slot is free (called whenever a command ends)."""
        if not self._waiting or self._in_flight >= self.max_in_flight:
            return
        keys = list(self._waiting)[: self.max_batch]
        batch = {key: self._waiting.pop(key) for key in keys}
        self._in_flight += 1
        task = asyncio.ensure_future(self._fetch(batch))
        task.add_done_callback(_keep_quiet)

    async def _fetch(self, batch: dict[str, list[asyncio.Future[Doc | None]]]) -> None:
        try:
            found = {doc["_id"]: doc async for doc in self.collection.find({"_id": {"$in": list(batch)}},
                                                                           self.projection)}
        except BaseException as exc:  # the reads it held fail with it; the next batch is unaffected
            error = exc if isinstance(exc, Exception) else asyncio.CancelledError()
            for key in batch:
                _settle(batch[key], error=error)
            if not isinstance(exc, Exception):
                raise
        else:
            for key, futures in batch.items():
                _settle(futures, found.get(key))
        finally:
            self._in_flight -= 1
            self._send_waiting()


def _settle(futures: list[asyncio.Future[Doc | None]], doc: Doc | None = None, *,
            error: BaseException | None = None) -> None:
    """Hand each waiting read its document (its own copy: readers may keep what they get) or the error; a
    read whose request was cancelled meanwhile is skipped."""
    for future in futures:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(dict(doc) if doc is not None and len(futures) > 1 else doc)


def _keep_quiet(task: asyncio.Future[None]) -> None:
    """A batch's error is its readers'; retrieved here so asyncio does not also log it as unhandled."""
    if not task.cancelled():
        task.exception()
