"""Refreshing a person's priority record after their data changed (a queue job, for now).

Read as the hub itself (the priority record is the hub's own derived data; who may read it is decided
when it is read, like any resource): every Patient record of the person, their Conditions and household
Observations; scored by ``profiles.risk``; then one ``Flag`` per rule that holds is written through the
commit pipeline (labelled, indexed, versioned like any write), and the person's Flags whose rule no longer
holds (or a master merged into this one had) are made inactive; then the person's consolidated summary
(``summary.py``: one ``Composition``), the summaries of merged-away masters deleted.
Writing what is already stored stores nothing, so a refresh run twice is harmless.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fhir_hub.auth.caller import Caller
from fhir_hub.fhir.jsonio import loads
from fhir_hub.hub import Hub
from fhir_hub.priority.flags import RISK_GROUP, active_flags, inactive
from fhir_hub.priority.summary import TYPES as SUMMARISED
from fhir_hub.priority.summary import composition, summary_id
from fhir_hub.services.risk import person_assessment
from fhir_hub.services.search import search
from fhir_hub.services.session import Session
from fhir_hub.store.writer import Delete, Update
from profiles.risk import Assessment

PRIORITY = Caller.hub("priority-record")
_MOST = 1000  # a person's entries of one type fit one page


async def refresh(hub: Hub, record: str) -> Assessment:
    """The priority record of the person ``record`` (a Patient key) brought up to date; their assessment."""
    master = await hub.store.master_in_use(record) or record
    session = Session.open(hub, PRIORITY)
    assessment, resources = await person_assessment(session, master.removeprefix("Patient/"))
    wanted = active_flags(master, assessment)
    # a search by subject finds the whole person's Flags, those of the masters merged into this one too:
    # any of them not wanted now (a merged-away master's among them) is made inactive here
    existing = await search(session, "Flag", [("subject", master), ("code", f"{RISK_GROUP}|")], count=100)
    for version in existing.outcome.page:
        if version.rid not in wanted and version.json is not None:
            stored = loads(version.json)
            if stored.get("status") == "active":
                await hub.writer.commit(Update("Flag", version.rid, inactive(stored)), caller=PRIORITY)
    flags = []
    for rid, flag in wanted.items():
        written = await hub.writer.commit(Update("Flag", rid, flag), caller=PRIORITY)
        flags.append(loads(written.version.json or b"{}"))
    if flags or await _has_summary(hub, master):
        await _summarise(session, master, resources, flags)
    for replaced in _replaced(resources):  # persons merged into this one: their summary is this one now
        await _retire_summary(hub, replaced)
    return assessment


async def refresh_each(hub: Hub, records: Iterable[str]) -> dict[str, Assessment | Exception]:
    """Each record's person refreshed once, however often it is named; per record, the assessment or the error
    (a queue job that named it fails and runs again: refreshing twice is harmless)."""
    done: dict[str, Assessment | Exception] = {}
    for record in sorted(set(records)):
        try:
            done[record] = await refresh(hub, record)
        except Exception as exc:  # noqa: BLE001 - returned to the caller, who fails the jobs that named it
            done[record] = exc
    return done


async def refresh_persons(hub: Hub, records: Iterable[str]) -> None:
    """After a merge, an unmerge or a review moved records between persons: each person's priority record
    rebuilt (the one merged away retired by its successor's refresh)."""
    for record in sorted(set(records)):
        await refresh(hub, record)


async def _retire_summary(hub: Hub, master: str) -> None:
    """A master merged into another: its summary deleted (its successor's refresh writes the person's; its
    Flags were made inactive by the same refresh), so a search never finds the person's summary twice."""
    if await _has_summary(hub, master):
        await hub.writer.commit(Delete("Composition", summary_id(master)), caller=PRIORITY)


async def _has_summary(hub: Hub, master: str) -> bool:
    current = await hub.store.current("Composition", summary_id(master))
    return current is not None and not current.deleted


def _replaced(resources: list[dict[str, Any]]) -> list[str]:
    """The masters the person's master replaces (``golden.py``: a ``replaces`` link per merged master)."""
    master = next((r for r in resources if r.get("resourceType") == "Patient"), {})
    return [str(link["other"]["reference"]) for link in master.get("link") or []
            if link.get("type") == "replaces" and isinstance((link.get("other") or {}).get("reference"), str)]


async def _summarise(session: Session, master: str, resources: list[dict[str, Any]],
                     flags: list[dict[str, Any]]) -> None:
    """The person's consolidated summary (``summary.py``), from every record linked to them; kept current
    once written, also after the person leaves every risk group (its risk section is then empty)."""
    found = list(resources)
    for rtype in SUMMARISED:
        searched = await search(session, rtype, [("patient:mdm", master)], count=_MOST)
        found += [loads(v.json) for v in searched.outcome.page if v.json is not None]
    await session.hub.writer.commit(Update("Composition", summary_id(master), composition(master, found, flags)),
                                    caller=PRIORITY)
