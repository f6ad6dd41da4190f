"""read and vread (FHIR R4 http.html#read, #vread): the stored version as stored, through the caller's
scoped reader. A deleted resource is 410 Gone; one never seen, or hidden from this caller, 404."""

from __future__ import annotations

from fhir_hub.services.session import Session
from fhir_hub.store.records import StoredVersion


async def read(session: Session, rtype: str, rid: str) -> StoredVersion:
    return await session.reader.read(rtype, rid)


async def vread(session: Session, rtype: str, rid: str, vid: int | None) -> StoredVersion:
    """``vid`` None: a version number no store holds (too long to be one), answered as not found."""
    return await session.reader.vread(rtype, rid, vid)
