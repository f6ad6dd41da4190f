"""Refreshing a person's priority record after their data changed (a queue job, for now).

Read as the hub itself (the priority record is the hub's own derived data; who may read it is decided
when it is read, like any resource): every Patient record of the person, their Conditions and household
Observations; scored by ``profiles.risk``; then one ``Flag`` per rule that holds is written through the
commit pipeline (labelled, indexed, versioned like any write), and the person's Flags whose rule no longer
holds are made inactive. Writing what is already stored stores nothing, so a refresh run twice is harmless.
"""

from __future__ import annotations

from fhir_hub.auth.caller import Caller
from fhir_hub.fhir.jsonio import loads
from fhir_hub.hub import Hub
from fhir_hub.priority.flags import RISK_GROUP, active_flags, inactive
from fhir_hub.services.risk import assess_patient
from fhir_hub.services.search import search
from fhir_hub.services.session import Session
from fhir_hub.store.writer import Update
from profiles.risk import Assessment

PRIORITY = Caller.hub("priority-record")


async def refresh(hub: Hub, record: str) -> Assessment:
    """The priority record of the person ``record`` (a Patient key) brought up to date; their assessment."""
    master = await hub.store.master_in_use(record) or record
    session = Session.open(hub, PRIORITY)
    assessment = await assess_patient(session, master.removeprefix("Patient/"))
    wanted = active_flags(master, assessment)
    existing = await search(session, "Flag", [("subject", master), ("code", f"{RISK_GROUP}|"), ("_count", "100")])
    for version in existing.outcome.page:
        if version.rid not in wanted and version.json is not None:
            stored = loads(version.json)
            if stored.get("status") == "active":
                await hub.writer.commit(Update("Flag", version.rid, inactive(stored)), caller=PRIORITY)
    for rid, flag in wanted.items():
        await hub.writer.commit(Update("Flag", rid, flag), caller=PRIORITY)
    return assessment
