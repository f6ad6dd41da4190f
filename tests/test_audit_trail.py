"""The audit trail's batching and retry, with a fake log (storage is beside the point here)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fhir_hub.audit import AuditTrail

pytestmark = pytest.mark.anyio


class FakeLog:
    def __init__(self, *, fail_times: int = 0, partial: int = 0) -> None:
        self.batches: list[list[str]] = []
        self.stored: set[str] = set()
        self.fail_times = fail_times
        self.partial = partial

    async def append(self, docs: list[dict[str, Any]]) -> None:
        await asyncio.sleep(0.002)  # the store takes a while: new entries arrive meanwhile
        if self.fail_times:
            self.fail_times -= 1
            self.stored.update(d["_id"] for d in docs[: self.partial])  # a partial failure stores some
            raise ConnectionError("store down")
        self.batches.append([d["_id"] for d in docs])
        self.stored.update(d["_id"] for d in docs)

    async def stored_ids(self, ids: list[str]) -> set[str]:
        return {i for i in ids if i in self.stored}


class Record:
    def __init__(self, n: int) -> None:
        self.n = n

    def to_entries(self) -> list[dict[str, Any]]:
        return [{"_id": f"e{self.n}"}]


async def test_steady_traffic_is_written_in_batches() -> None:
    log = FakeLog()
    trail = AuditTrail(log, clock=lambda: 0, flush_ms=20)  # type: ignore[arg-type]
    trail.start()
    for n in range(200):
        trail.submit(Record(n))  # type: ignore[arg-type]
        await asyncio.sleep(0.0005)
    await trail.stop()
    written = [i for batch in log.batches for i in batch]
    assert sorted(written) == sorted(f"e{n}" for n in range(200))  # each entry once, none lost
    assert len(log.batches) < 40  # batched, not one write per request


async def test_a_failed_flush_keeps_what_was_not_stored(caplog: pytest.LogCaptureFixture) -> None:
    log = FakeLog(fail_times=1, partial=2)
    trail = AuditTrail(log, clock=lambda: 0, flush_ms=1000)  # type: ignore[arg-type]
    for n in range(5):
        trail.submit(Record(n))  # type: ignore[arg-type]
    await trail.flush()
    assert "will be retried" in caplog.text
    await trail.flush()
    assert sorted(log.stored) == [f"e{n}" for n in range(5)]
    assert sorted(i for batch in log.batches for i in batch) == ["e2", "e3", "e4"]  # no entry written twice
