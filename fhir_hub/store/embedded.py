"""The embedded store: an nx-27017 child process on a free loopback port, data in SQLite files.

nx-27017 runs in its multi-database mode (``--data-dir``): one ``<database>.db`` file per logical database.
Its default single-file mode shares every collection between all database names (measured: a document
inserted into ``dbA.x`` is counted in ``dbB.x``), which would let two hubs, or two tests, see each other's
data.

Used when ``FHIR_HUB_MONGODB_URI`` is unset, so ``make run`` needs no database install. The child runs in
its own process group, so Ctrl-C reaches the hub first and the hub stops the store after the last request.
A lock file keeps two hubs from opening the same data directory; the hub that takes it stops a store left
running by a hub that died without stopping it (``orphaned_store``), which would otherwise keep every new
store from starting.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from fhir_hub.store.orphaned_store import OrphanedStoreError, stop_orphaned_store

log = logging.getLogger(__name__)

STORE_DIR = "store"
_LAUNCH = "from nx_27017.nx_27017 import main; main()"


class EmbeddedStoreError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mongodb_uri(port: int) -> str:
    return f"mongodb://127.0.0.1:{port}/?directConnection=true"


class EmbeddedStore:
    def __init__(self, data_dir: Path, *, startup_timeout: float = 30.0) -> None:
        self.data_dir = Path(data_dir)
        self.startup_timeout = startup_timeout
        self.uri: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock: IO[str] | None = None
        self._log: IO[bytes] | None = None

    @property
    def store_dir(self) -> Path:
        return self.data_dir / STORE_DIR

    @property
    def pid(self) -> int | None:
        """The nx-27017 child's process id while it runs (benchmarks read its CPU time)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def log_path(self) -> Path:
        return self.data_dir / "nx-27017.log"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "nx-27017.pid"

    def start(self) -> str:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        try:
            stop_orphaned_store(self.pid_file, launch=_LAUNCH, store_dir=self.store_dir)
        except OrphanedStoreError as exc:
            self._release_lock()
            raise EmbeddedStoreError(str(exc)) from None
        last_error = ""
        for _attempt in range(3):  # a freshly picked free port can be taken by someone else
            port = free_port()
            self._spawn(port)
            try:
                self._wait_until_ready(port)
            except EmbeddedStoreError as exc:
                last_error = str(exc)
                self._terminate()
                continue
            self.uri = mongodb_uri(port)
            log.info("embedded store (nx-27017) on 127.0.0.1:%d, data in %s", port, self.store_dir)
            return self.uri
        self._release_lock()
        raise EmbeddedStoreError(last_error)

    def stop(self) -> None:
        self._terminate()
        self._release_lock()
        self.uri = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _take_lock(self) -> None:
        """The holder's pid is written in the lock file, so that the refusal names the hub to stop; the file
        is opened without truncating it, which would erase the pid of a live holder."""
        lock = (self.data_dir / "embedded-store.lock").open("a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read(32).strip()
            lock.close()
            who = f"another hub (pid {holder})" if holder.isdigit() else "another hub"
            raise EmbeddedStoreError(
                f"{who} is already using the data directory {self.data_dir}; stop it or set "
                "FHIR_HUB_DATA_DIR to another folder"
            ) from None
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        self._lock = lock

    def _release_lock(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def _spawn(self, port: int) -> None:
        self._log = self.log_path.open("ab")
        cmd = [  # absolute paths: a later hub recognises this store by them, whatever its working directory
            sys.executable, "-c", _LAUNCH,
            "--data-dir", str(self.store_dir.resolve()),
            "--host", "127.0.0.1",
            "-p", str(port),
            "--log-file", str(self.log_path.resolve()),
            "--pid-file", str(self.pid_file.resolve()),
        ]
        self._proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def _wait_until_ready(self, port: int) -> None:
        deadline = time.monotonic() + self.startup_timeout
        client: MongoClient = MongoClient(mongodb_uri(port), serverSelectionTimeoutMS=250)
        try:
            while time.monotonic() < deadline:
                assert self._proc is not None
                if self._proc.poll() is not None:
                    raise EmbeddedStoreError(f"nx-27017 exited with code {self._proc.returncode}: {self._log_tail()}")
                try:
                    client.admin.command("ping")
                    return
                except PyMongoError:
                    time.sleep(0.05)
        finally:
            client.close()
        raise EmbeddedStoreError(f"nx-27017 did not answer within {self.startup_timeout:.0f}s: {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-800:].strip() or "(empty log)"
        except OSError:
            return "(no log)"

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
