"""Writes of one hub process survive the rolled-back transactions of another on the same nx-27017 database.

nx-27017 runs every client of a database on one SQLite connection: a write another client makes while a
transaction is open joins it, and an abort discards it although it was acknowledged
(``test_server_differences.py`` shows it on the server itself). ``make run`` starts the hub and a queue
worker as two processes, and a worker rolls a group of records back whenever one of them is refused;
``store/store_lock.py`` keeps every process's writes out of another's open transaction. On MongoDB
(isolated transactions) there is no lock and nothing to lose.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from fhir_hub.auth.caller import Caller
from fhir_hub.auth.scopes import Scopes
from fhir_hub.bundles.processor import transactions
from fhir_hub.config import Settings
from fhir_hub.errors import HubError
from fhir_hub.hub import Hub, running_hub
from fhir_hub.services.session import Session
from fhir_hub.store.schema import RESOURCES
from fhir_hub.store.store_lock import StoreLock
from fhir_hub.store.transaction import WriteGate
from fhir_hub.store.writer import Create

HUB = Caller.hub("test")
SENDER = Caller("clinic", Scopes.parse("system/*.cruds"), facility="79001")
ROUNDS = 12


@pytest.mark.anyio
async def test_the_lock_is_shared_by_writes_and_exclusive_for_a_transaction(tmp_path: Path) -> None:
    one, other = StoreLock(tmp_path / "db.lock"), StoreLock(tmp_path / "db.lock")  # two processes' views
    try:
        await one.acquire_shared()
        await asyncio.wait_for(other.acquire_shared(), 1)  # two writers at once
        other.release_shared()
        waiting = asyncio.ensure_future(other.acquire_exclusive())
        await asyncio.sleep(0.05)
        assert not waiting.done()  # a transaction waits for the write under way
        one.release_shared()
        await asyncio.wait_for(waiting, 1)
        blocked = asyncio.ensure_future(one.acquire_shared())
        await asyncio.sleep(0.05)
        assert not blocked.done()  # and a write waits for the transaction
        other.release_exclusive()
        await asyncio.wait_for(blocked, 1)
        one.release_shared()
    finally:
        one.close()
        other.close()


@pytest.mark.anyio
async def test_a_process_without_an_event_loop_holds_it_shared_too(tmp_path: Path) -> None:
    """What a benchmark counting the queue takes: a hub's transaction waits for it, and it for the transaction."""
    counter, hub = StoreLock(tmp_path / "db.lock"), StoreLock(tmp_path / "db.lock")
    try:
        with counter.held_shared():
            waiting = asyncio.ensure_future(hub.acquire_exclusive())
            await asyncio.sleep(0.05)
            assert not waiting.done()
        await asyncio.wait_for(waiting, 1)

        def count() -> float:
            with counter.held_shared():
                return time.monotonic()

        counted = asyncio.ensure_future(asyncio.to_thread(count))
        await asyncio.sleep(0.05)
        assert not counted.done()
        released = time.monotonic()
        hub.release_exclusive()
        assert await asyncio.wait_for(counted, 1) >= released
    finally:
        counter.close()
        hub.close()


@pytest.mark.anyio
async def test_a_transaction_waits_for_the_writes_under_way_not_for_every_write_after_them(tmp_path: Path) -> None:
    """A hub whose writes overlap without pause must still let another process's transaction in."""
    hub, worker = WriteGate(True, StoreLock(tmp_path / "db.lock")), WriteGate(True, StoreLock(tmp_path / "db.lock"))
    stop = asyncio.Event()

    async def write(n: int) -> None:  # one of the hub's requests, again and again, overlapping the next
        await asyncio.sleep(0.005 * n)
        while not stop.is_set():
            async with hub.shared():
                await asyncio.sleep(0.02)

    writers = [asyncio.ensure_future(write(n)) for n in range(4)]
    try:
        await asyncio.sleep(0.1)

        async def transaction() -> None:
            async with worker.exclusive():
                pass

        await asyncio.wait_for(transaction(), 2)
    finally:
        stop.set()
        await asyncio.gather(*writers)
        for gate in (hub, worker):
            assert gate.lock is not None
            gate.lock.close()


def test_the_lock_is_for_a_server_on_this_machine(tmp_path: Path) -> None:
    local = StoreLock.for_server("mongodb://127.0.0.1:27017/?directConnection=true", "hub db", tmp_path)
    assert local is not None and local.path.name == "nx-127.0.0.1-27017-hub_db.lock"
    local.close()
    assert StoreLock.for_server("mongodb://db.example:27017", "hub", tmp_path) is None


def _refused_at_its_end(n: int) -> dict[str, Any]:
    """Eighty Observations, then an update the hub refuses: the Observations are sent inside the store
    transaction (``CHUNK_STEPS``) before the update is refused and the whole is rolled back."""
    entries: list[dict[str, Any]] = [
        {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "request": {"method": "POST", "url": "Observation"},
         "resource": {"resourceType": "Observation", "status": "final", "code": {"text": f"round {n} item {i}"}}}
        for i in range(80)]
    # refused only when written: an update of a version that does not exist (412); the POSTs go first
    entries.append({"fullUrl": "Observation/never-there", "request": {"method": "PUT", "url": "Observation/never-there",
                                                                      "ifMatch": 'W/"3"'},
                    "resource": {"resourceType": "Observation", "id": "never-there", "status": "final",
                                 "code": {"text": "refused"}}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _roll_back_again_and_again(settings: Settings, started: Any, refused: Any) -> None:
    """Another hub process (a queue worker's part): transactions the hub refuses at their last entry."""
    async def run() -> int:
        async with running_hub(settings) as hub:
            session = Session.open(hub, SENDER)
            started.set()
            count = 0
            for n in range(ROUNDS):
                [outcome] = await transactions(session, [_refused_at_its_end(n)])
                count += isinstance(outcome, HubError) and outcome.status == 412
        return count

    refused.put(asyncio.run(run()))


@pytest.mark.anyio
async def test_writes_of_one_process_survive_the_rolled_back_transactions_of_another(hub: Hub,
                                                                                    settings: Settings) -> None:
    context = multiprocessing.get_context("spawn")
    started, refused = context.Event(), context.Queue()
    other = context.Process(target=_roll_back_again_and_again, args=(settings, started, refused))
    other.start()
    try:
        assert await asyncio.to_thread(started.wait, 120)
        written: list[str] = []
        while other.is_alive() or not written:
            result = await hub.writer.commit(Create("Patient", {"resourceType": "Patient",
                                                                "name": [{"family": f"Kept {len(written)}"}]}),
                                             caller=HUB)
            written.append(result.version.rid)  # acknowledged
        other.join(timeout=60)
        assert other.exitcode == 0 and refused.get(timeout=10) == ROUNDS
    finally:
        if other.is_alive():
            other.kill()
    missing = [rid for rid in written if await hub.store.current("Patient", rid) is None]
    assert not missing, f"{len(missing)} of {len(written)} acknowledged writes were lost"
    client: MongoClient[dict[str, Any]] = MongoClient(settings.mongodb_uri)
    try:  # and nothing of the refused transactions remains
        assert client[settings.db_name][RESOURCES].count_documents({"type": "Observation"}) == 0
    finally:
        client.close()
