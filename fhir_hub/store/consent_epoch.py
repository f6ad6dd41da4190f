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
"""

from __future__ import annotations

from typing import Any

EPOCH_ID = "epoch"
# the types whose versions a consent look-up reads, directly or through their derived documents
EPOCH_TYPES = frozenset({"Patient", "Consent", "Organization"})


def changes_lookups(rtype: str) -> bool:
    return rtype in EPOCH_TYPES


def bump(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The filter and update that move the epoch on (``plan.epoch_step``): an upsert by ``_id`` with
    ``$set``, the shape every server answers alike."""
    return {"_id": EPOCH_ID}, {"$set": {"w": token}}


async def read_epoch(collection: Any) -> str | None:
    """The current epoch; None before any such write (then nothing may be kept: a store emptied while a
    hub runs would otherwise answer from before)."""
    doc = await collection.find_one({"_id": EPOCH_ID})
    found = doc.get("w") if doc is not None else None
    return found if isinstance(found, str) else None
