"""The raw-payload archive: every payload ``$ingest`` receives is stored here first, as it arrived.

Archiving comes before mapping so that nothing a facility sends can be lost to a mapping bug: tables no
adapter maps (XML6, XML7...), records rejected for a bad field, and whole payloads no adapter reads all stay
here, and ``fhir-hub replay`` maps them again once the mapping is fixed. Payloads are limited by
``FHIR_HUB_MAX_BODY_BYTES`` (default 10 MB), well under MongoDB's 16 MB document limit.

The last report of a payload is kept with it, but not inside its document: a file of 200,000 bad rows has
200,000 problems (~60 MB), which answered 500 when the whole report went into the archive document. The
document keeps the counts and the first ``FIRST_PROBLEMS`` problems; every problem is in
``ingest_problems``, ``PROBLEMS_PER_CHUNK`` to a document (``_id`` ``<archive>/<run>/<n>``, so one
archive's are a range of the primary key and need no index of their own), each text at most
``MESSAGE_CHARS`` long. A new report (a replay) replaces the earlier one's chunks.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from adapters.base import clip
from fhir_hub.store.schema import INGEST_ARCHIVE
from fhir_hub.store.transaction import WriteGate

INGEST_PROBLEMS = "ingest_problems"  # every problem of each archived payload's last report, in chunks
FIRST_PROBLEMS = 100  # problems kept in the archive document and listed in the $ingest answer
PROBLEMS_PER_CHUNK = 1000  # each at most ~7 KB (three texts of MESSAGE_CHARS, 3 bytes a character): 7 MB of 16
MESSAGE_CHARS = 800  # a text quoting a huge value (a 1 MB CSV cell, an MSH-10) is cut; the rest says where


@dataclass(frozen=True, slots=True)
class Archived:
    id: str
    payload: bytes
    sha256: str
    media_type: str | None
    filename: str | None
    facility: str | None
    caller: str
    format: str | None


class IngestArchive:
    """Its writes take the store's write gate like any other: on nx-27017 a write sent while a transaction
    Bundle is open joins that transaction, and its rollback would take the archived payload with it."""

    def __init__(self, db: Any, gate: WriteGate) -> None:
        self.collection = db[INGEST_ARCHIVE]
        self.problems = db[INGEST_PROBLEMS]
        self.gate = gate

    async def keep(self, payload: bytes, sha256: str, *, media_type: str | None, filename: str | None,
                   facility: str | None, caller: str, received: int) -> str:
        archive_id = str(uuid.uuid4())
        async with self.gate.shared():
            await self.collection.insert_one({
                "_id": archive_id, "received": received, "payload": payload,
                "sha256": sha256, "media_type": media_type, "filename": filename,
                "facility": facility, "caller": caller})
        return archive_id

    async def record(self, archive_id: str, *, format_name: str | None, summary: dict[str, Any],
                     problems: list[dict[str, Any]]) -> None:
        """Keep a report: ``summary`` (counts) and the first problems in the archive document, every problem
        in chunks; then drop the chunks of the report it replaces (written first, so a reader of the archive
        document always finds its own run's chunks)."""
        run = uuid.uuid4().hex[:12]
        problems = [{k: clipped(v) if isinstance(v, str) else v for k, v in p.items()} for p in problems]
        chunks = [problems[i:i + PROBLEMS_PER_CHUNK] for i in range(0, len(problems), PROBLEMS_PER_CHUNK)]
        for n, chunk in enumerate(chunks):  # one insert each: the event loop serves others in between
            async with self.gate.shared():
                await self.problems.insert_one({"_id": f"{archive_id}/{run}/{n:06d}", "archive": archive_id,
                                                "run": run, "problems": chunk})
        listed = {"total": len(problems), "first": problems[:FIRST_PROBLEMS], "run": run, "chunks": len(chunks),
                  "collection": INGEST_PROBLEMS}
        async with self.gate.shared():
            await self.collection.update_one({"_id": archive_id}, {"$set": {
                "format": format_name, "report": {**summary, "problems": listed}}})
            await self.problems.delete_many({**_of_archive(archive_id), "run": {"$ne": run}})

    async def get(self, archive_id: str) -> Archived | None:
        doc = await self.collection.find_one({"_id": archive_id})
        if doc is None:
            return None
        return Archived(doc["_id"], bytes(doc["payload"]), doc["sha256"], doc.get("media_type"), doc.get("filename"),
                        doc.get("facility"), doc["caller"], doc.get("format"))


def _of_archive(archive_id: str) -> dict[str, Any]:
    """The chunks of one archive: ``<archive>/`` up to the next string after that prefix (``/`` + 1 is ``0``)."""
    return {"_id": {"$gte": f"{archive_id}/", "$lt": f"{archive_id}0"}}


def clipped(text: str) -> str:
    """A problem's text as stored and answered: at most ``MESSAGE_CHARS`` characters."""
    return clip(text, MESSAGE_CHARS)
