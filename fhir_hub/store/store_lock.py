"""A shared/exclusive lock on one nx-27017 database, across the hub's processes on this machine.

Why: nx-27017 runs every client of a database on one SQLite connection, so a server transaction is not
isolated from other clients: a write another client makes while a transaction is open joins it, and is
gone, although acknowledged, if the transaction aborts; a second client's transaction "committed" meanwhile
is gone too (nx-27017 0.8; ``tests/store/test_server_differences.py``). The write gate (``transaction.py``)
keeps a transaction exclusive against the other writes of its own process. ``make run`` starts the hub and
a queue worker as two processes on the embedded store, and a worker rolls a group of records back whenever
one of them is refused: without this lock, what the hub had acknowledged meanwhile (a queued job, a
client's create) could vanish (``tests/store/test_store_lock.py``).

The lock is an advisory ``flock`` on a file named after the server's address and the database (by default
in a directory of the user's under the system's temporary directory), which every process connecting to
that local server computes alike. A process holds it shared while any of its writes is under way, and
exclusively from its transaction's first request to its commit or abort, exactly when its write gate does
(the gate takes and gives it back). It is waited for by polling a non-blocking attempt, so waiting never
blocks the event loop. MongoDB isolates transactions itself: no lock there.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pymongo.uri_parser import parse_uri

_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_MAX_POLL_S = 0.005


class StoreLock:
    """Two files: the lock itself, and its turn. A process waiting to hold the lock exclusively takes the turn
    first, and every new shared holder waits while another process has it (``turn``): without it a hub
    under a steady stream of writes, whose shared holders overlap, never let go of the lock, and a queue
    worker's transaction waited for good."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self._turn = os.open(path.with_name(path.name + ".turn"), os.O_RDWR | os.O_CREAT, 0o600)

    @classmethod
    def for_server(cls, uri: str, db_name: str, directory: Path | None = None) -> StoreLock | None:
        """The lock of ``db_name`` on the nx-27017 server at ``uri``; None when the server is not on this
        machine (the lock could not reach the other machines' processes: nx-27017 is a development store)."""
        nodes = parse_uri(uri)["nodelist"]
        if len(nodes) != 1 or nodes[0][0] not in _LOOPBACK:
            return None
        host, port = nodes[0]
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"nx-{host}-{port}-{db_name}")
        # one directory per user: another user's would not be writable (a store is one user's in development)
        default = Path(tempfile.gettempdir()) / f"fhir-hub-store-locks-{os.getuid()}"
        return cls((directory or default) / f"{name}.lock")

    async def turn(self) -> None:
        """Until no other process waits for the lock exclusively, or holds it so."""
        await _take(self._turn, fcntl.LOCK_SH)
        fcntl.flock(self._turn, fcntl.LOCK_UN)

    async def acquire_shared(self) -> None:
        await _take(self._fd, fcntl.LOCK_SH)

    async def acquire_exclusive(self) -> None:
        await _take(self._turn, fcntl.LOCK_EX)
        try:
            await _take(self._fd, fcntl.LOCK_EX)
        except BaseException:
            fcntl.flock(self._turn, fcntl.LOCK_UN)
            raise

    def release_shared(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def release_exclusive(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        fcntl.flock(self._turn, fcntl.LOCK_UN)

    @contextmanager
    def held_shared(self) -> Iterator[None]:
        """Shared for the block, waiting as long as it takes: for a process that is not a hub and has no event
        loop to keep answering (a benchmark counting the queue's jobs while workers commit)."""
        fcntl.flock(self._turn, fcntl.LOCK_SH)
        fcntl.flock(self._turn, fcntl.LOCK_UN)
        fcntl.flock(self._fd, fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._fd)
        os.close(self._turn)


async def _take(fd: int, mode: int) -> None:
    """``flock`` without blocking the event loop: non-blocking attempts, further apart while they fail."""
    delay = 0.0002
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_POLL_S)
