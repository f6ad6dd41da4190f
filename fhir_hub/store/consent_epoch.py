"""The consent epoch: one store fact that every write able to change a consent look-up's answer replaces.

A consent look-up (``consent_subjects.people_consents``) reads a person's records and birth dates (patient
links and Patient versions), their Consents and the facility codes of the Organizations those name. So a
write of a Patient, a Consent or an Organization, of any version, sets the epoch (the one document of
``consent_epoch``) to the writer's token, in the same ordered request as the version's last documents and
after them (``plan.py``; a transaction's group sets it once committed or aborted, ``mongo.py``; crash repair
sets it for every such resource it visits). Whoever reads the epoch and then the look-up's documents sees
those documents at least as new as the epoch says, which is what lets ``ConsentCache`` keep look-ups across
requests and across hub processes: a look-up kept under one epoch is used only by requests that read that
same epoch, so a withdrawn consent stops access on the next request whichever process serves it.

A token, not a counter: a store emptied and refilled (tests do) never shows an old value again. Its own
collection, not a ``hub_meta`` fact: it records that writes were attempted (a group rolled back moves it on
too, as nx-27017 shows uncommitted writes to readers), as the audit log does, and is not part of the
versioned store a rolled-back group leaves as it was.

**A group in flight.** A transaction's group moves the epoch on only after its commit (inside, concurrent
groups would conflict on the one document). A process that stopped between the two would leave every
other process's cache answering from before the group: a consent withdrawn in it not obeyed. So such a
group first leaves an *open* marker in the same collection (outside the transaction, before sending
anything), and removes it only after the epoch moved on. While any marker is there, there is no epoch to
keep look-ups under (``read_epoch`` answers None: every look-up is fetched). A marker older than any
transaction can live (MongoDB aborts one after 60 s) is a stopped group's: the next reader moves the epoch
on and removes it, and caching resumes.
"""

from __future__ import annotations

import time
from typing import Any

EPOCH_ID = "epoch"
OPEN_PREFIX = "open:"
# a marker this old is a stopped group's: longer than MongoDB's default transactionLifetimeLimitSeconds (60)
OPEN_LIMIT_MS = 120_000
# the types whose versions a consent look-up reads, directly or through their derived documents
EPOCH_TYPES = frozenset({"Patient", "Consent", "Organization"})


def changes_lookups(rtype: str) -> bool:
    return rtype in EPOCH_TYPES


def bump(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The filter and update that move the epoch on (``plan.epoch_step``): an upsert by ``_id`` with
    ``$set``, the shape every server answers alike."""
    return {"_id": EPOCH_ID}, {"$set": {"w": token}}


def open_marker(token: str, now_ms: int | None = None) -> dict[str, Any]:
    """The document a group leaves while it may change look-ups and has not yet moved the epoch on."""
    return {"_id": OPEN_PREFIX + token, "at": int(time.time() * 1000) if now_ms is None else now_ms}


async def read_epoch(collection: Any, now_ms: int | None = None) -> str | None:
    """The current epoch; None before any such write (then nothing may be kept: a store emptied while a
    hub runs would otherwise answer from before) and while a group is in flight. One ``find`` reads the
    epoch and the markers together, so a group's marker is seen with the epoch from before it."""
    epoch: str | None = None
    now = int(time.time() * 1000) if now_ms is None else now_ms
    live = False
    stopped: list[str] = []
    async for doc in collection.find({}):
        if doc["_id"] == EPOCH_ID:
            found = doc.get("w")
            epoch = found if isinstance(found, str) else None
        elif isinstance(doc["_id"], str) and doc["_id"].startswith(OPEN_PREFIX):
            if now - int(doc.get("at") or 0) > OPEN_LIMIT_MS:
                stopped.append(doc["_id"])
            else:
                live = True
    if stopped:  # the epoch moves on before the markers go, so nobody keeps a look-up under the old one
        await collection.update_one(*bump(f"after:{stopped[0]}:{now}"), upsert=True)
        await collection.delete_many({"_id": {"$in": stopped}})
        return None
    return None if live else epoch
