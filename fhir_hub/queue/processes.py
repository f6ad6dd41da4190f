"""The worker processes ``fhir-hub serve`` starts beside itself, so the embedded default works out of the
box: each is ``fhir-hub worker`` with the hub's store URI (the embedded store belongs to the serving
process; its workers connect to it like any other client). Stopped with SIGTERM when the hub stops: a
worker finishes the job in hand, and one that does not within the grace period is killed (its lease runs
out and another worker runs the job again)."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from types import TracebackType

from fhir_hub.config import Settings

log = logging.getLogger(__name__)
GRACE_SECONDS = 20


class WorkerProcesses:
    def __init__(self, settings: Settings, mongodb_uri: str, count: int) -> None:
        self.settings = settings
        self.uri = mongodb_uri
        self.count = count
        self.procs: list[subprocess.Popen[bytes]] = []

    async def start(self) -> None:
        # the hub's own store, database and data directory, whatever the command line said
        env = {**os.environ, "FHIR_HUB_MONGODB_URI": self.uri, "FHIR_HUB_DB_NAME": self.settings.db_name,
               "FHIR_HUB_DATA_DIR": str(self.settings.data_dir), "FHIR_HUB_LOG_LEVEL": self.settings.log_level}
        for _ in range(self.count):
            self.procs.append(subprocess.Popen([sys.executable, "-m", "fhir_hub", "worker"], env=env))
        if self.procs:
            log.info("queue: %d worker process(es) started (pids %s)", len(self.procs),
                     ", ".join(str(p.pid) for p in self.procs))

    async def __aenter__(self) -> WorkerProcesses:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                await asyncio.to_thread(proc.wait, GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)
