"""The audit trail's batching and retry, with a fake log (storage is beside the point here)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fhir.resources.R4B.auditevent import AuditEvent
from hypothesis import given
from hypothesis import strategies as st

from fhir_hub.audit import EMERGENCY_TAG, AuditRecord, AuditTrail, render
from fhir_hub.auth.caller import Caller
from fhir_hub.auth.scopes import Scopes
from fhir_hub.fhir.ids import is_valid_id
from fhir_hub.store.records import StoredVersion

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


async def test_a_flush_is_sent_in_small_inserts() -> None:
    """The store answers one command at a time: one large insert would hold every read queued behind it."""
    log = FakeLog()
    trail = AuditTrail(log, clock=lambda: 0, flush_ms=60_000)  # type: ignore[arg-type]
    for n in range(45):
        trail.submit(Record(n))  # type: ignore[arg-type]
    await trail.flush()
    assert [len(batch) for batch in log.batches] == [20, 20, 5]


async def test_entries_leave_as_soon_as_an_insert_is_full() -> None:
    """Under steady traffic each insert leaves once full, rather than several at once at the flush's time
    (a read waits behind one insert at most); what is left goes at the flush's time or at the stop."""
    log = FakeLog()
    trail = AuditTrail(log, clock=lambda: 0, flush_ms=60_000)  # type: ignore[arg-type]
    trail.start()
    for n in range(0, 45, 3):  # three requests at a time: 21 wait when the first insert is full
        for k in range(3):
            trail.submit(Record(n + k))  # type: ignore[arg-type]
        await asyncio.sleep(0.003)
    assert [len(batch) for batch in log.batches] == [20, 20]
    await trail.stop()
    assert [len(batch) for batch in log.batches] == [20, 20, 5]


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


_PATIENTS = st.frozensets(st.sampled_from(["pa", "pb", "pc", "pd"]), max_size=3)
_TOUCHES = st.lists(st.tuples(st.sampled_from([f"Observation/o{i}" for i in range(60)] + ["Patient/pa", "Patient/pb"]),
                              _PATIENTS), max_size=80)


@given(touches=_TOUCHES, query=st.sampled_from(["", "name=Tr%E1%BA%A7n", "_id=pa,pb"]))
def test_a_patients_entry_holds_only_what_concerns_them(touches: list[tuple[str, frozenset[str]]],
                                                        query: str) -> None:
    record = AuditRecord("search-type", Caller.hub("test"), "GET", "/Observation", query, None, 0)
    for key, patients in touches:
        record.touch(StoredVersion(*key.split("/"), 1, 0, "GET", deleted=False, json=b"{}", patients=patients))
    entries = record.to_entries()
    everyone = set().union(*(patients for _, patients in touches)) if touches else set()
    own = [e for e in entries if "p" in e]
    assert sorted(e["p"] for e in own) == sorted(everyone)
    for entry in own:
        concerns = {key for key, patients in touches if entry["p"] in patients}
        assert set(entry["r"]) <= concerns and len(entry["r"]) + entry.get("more", 0) == len(concerns)
        assert "query" not in entry["req"] or not entry["req"]["query"]
    whole = [e for e in entries if "p" not in e]
    merged: dict[str, set[str]] = {}  # a resource touched twice is in every compartment either touch saw
    for key, patients in touches:
        merged.setdefault(key, set()).update(patients)
    if query or len(everyone) != 1 or any(not patients for patients in merged.values()):
        assert len(whole) == 1 and whole[0]["req"]["query"] == query  # the administrator's entry
        distinct = {key for key, _ in touches}
        assert len(whole[0]["r"]) + whole[0].get("more", 0) == len(distinct)
        assert set(whole[0].get("ps", [])) == everyone
    assert len(entries) == len(own) + len(whole) and entries


def test_a_rewind_forgets_what_was_touched_since_the_mark() -> None:
    record = AuditRecord("transaction", Caller.hub("test"), "POST", "/", "", None, 0)
    record.touch(StoredVersion("Observation", "a", 1, 0, "POST", deleted=False, json=b"{}", patients=frozenset({"pa"})))
    mark = record.mark()
    record.touch(StoredVersion("Observation", "a", 2, 0, "PUT", deleted=False, json=b"{}", patients=frozenset({"pb"})))
    record.rewind(mark)
    assert [e["p"] for e in record.to_entries()] == ["pa"]


@given(touches=_TOUCHES, query=st.sampled_from(["", "_id=pa"]), facility=st.sampled_from([None, "79001"]),
       reason=st.sampled_from([None, "ngừng tim"]))
def test_every_entry_of_an_emergency_is_flagged_with_its_reason(touches: list[tuple[str, frozenset[str]]],
                                                                query: str, facility: str | None,
                                                                reason: str | None) -> None:
    """Breaking the glass (ETREAT) flags every entry, refused attempts (no reason) too; the request's entry
    is always written, naming the facility it is flagged to, so a facility reviews one entry per request."""
    caller = Caller(subject="bs-an", scopes=Scopes.parse("user/*.rs"), facility=facility, purpose="ETREAT",
                    emergency_reason=reason)
    record = AuditRecord("read", caller, "GET", "/Observation", query, None, 0)
    for key, patients in touches:
        record.touch(StoredVersion(*key.split("/"), 1, 0, "GET", deleted=False, json=b"{}", patients=patients))
    entries = record.to_entries()
    assert all(e["e"] == 1 and e["who"].get("reason") == reason for e in entries)
    (whole,) = [e for e in entries if "p" not in e]
    assert whole["ef"] == (facility or "") and not any("ef" in e for e in entries if "p" in e)
    everyone = set().union(*(patients for _, patients in touches)) if touches else set()
    assert sorted(e["p"] for e in entries if "p" in e) == sorted(everyone)
    rendered = render(whole)
    assert rendered["meta"]["tag"] == [EMERGENCY_TAG]
    assert rendered["purposeOfEvent"][0].get("text") == reason
    AuditEvent.model_validate(rendered)
    treatment = AuditRecord("read", Caller(subject="bs-an", scopes=caller.scopes, facility=facility), "GET",
                            "/Observation", query, None, 0)
    treatment.touched = list(record.touched)
    assert not any("e" in e or "ef" in e for e in treatment.to_entries())
    assert all("tag" not in render(e)["meta"] for e in treatment.to_entries())


def test_audit_ids_are_unique_and_a_forked_process_makes_its_own() -> None:
    import os

    from fhir_hub.audit import _new_id

    ids = {_new_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(is_valid_id(i) for i in ids)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the parent's next id must not come out here
        os.write(write, _new_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 100).decode()
    mine = _new_id()
    assert child.split("-")[0] != mine.split("-")[0] and child not in ids
