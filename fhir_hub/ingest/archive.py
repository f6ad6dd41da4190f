"""The raw-payload archive: every payload ``$ingest`` receives is stored here first, as it arrived.

Archiving comes before mapping so that nothing a facility sends can be lost to a mapping bug: tables no
adapter maps (XML6, XML7...), records rejected for a bad field, and whole payloads no adapter reads all stay
here, and ``fhir-hub replay`` maps them again once the mapping is fixed. Payloads are limited by
``FHIR_HUB_MAX_BODY_BYTES`` (default 10 MB), well under MongoDB's 16 MB document limit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from fhir_hub.store.schema import INGEST_ARCHIVE


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
    def __init__(self, db: Any) -> None:
        self.collection = db[INGEST_ARCHIVE]

    async def keep(self, payload: bytes, sha256: str, *, media_type: str | None, filename: str | None,
                   facility: str | None, caller: str, received: int) -> str:
        archive_id = str(uuid.uuid4())
        await self.collection.insert_one({
            "_id": archive_id, "received": received, "payload": payload,
            "sha256": sha256, "media_type": media_type, "filename": filename,
            "facility": facility, "caller": caller})
        return archive_id

    async def record(self, archive_id: str, *, format_name: str | None, report: dict[str, Any]) -> None:
        await self.collection.update_one({"_id": archive_id}, {"$set": {"format": format_name, "report": report}})

    async def get(self, archive_id: str) -> Archived | None:
        doc = await self.collection.find_one({"_id": archive_id})
        if doc is None:
            return None
        return Archived(doc["_id"], bytes(doc["payload"]), doc["sha256"], doc.get("media_type"), doc.get("filename"),
                        doc.get("facility"), doc["caller"], doc.get("format"))
