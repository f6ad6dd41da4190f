"""``fhir-hub relink``: link every Patient stored without a master, then rebuild every master.

Why a command: Patients stored before patient matching existed (or while ``FHIR_HUB_LINK_PATIENTS`` was
off) have no master, and a hub that stopped between storing a record and building its master (a new
person's master is created right after the record; a transaction's masters once it is committed) leaves
that master missing or stale. Both are repaired the same way, idempotently: each unlinked record goes
through the match step as if its facility had sent it again (its ``meta.source`` kept), and each master is
rebuilt from its sources (a master already right stores nothing).
"""

from __future__ import annotations

from dataclasses import dataclass

from tqdm import tqdm

from fhir_hub.errors import BadRequest
from fhir_hub.fhir.jsonio import loads
from fhir_hub.hub import Hub
from fhir_hub.linking.elements import is_master_key
from fhir_hub.linking.linker import MATCHER
from fhir_hub.store.writer import Update

_CHUNK = 1000  # records whose links are asked for at once


@dataclass
class RelinkReport:
    records: int = 0  # source records seen
    linked: int = 0  # of them, linked now (they had no master)
    masters: int = 0  # masters rebuilt (unchanged ones store nothing)


async def relink(hub: Hub, *, progress: bool = False) -> RelinkReport:
    linker = hub.writer.linker
    if linker is None:
        raise BadRequest("Patient matching is switched off (FHIR_HUB_LINK_PATIENTS=false): nothing to link")
    report = RelinkReport()
    keys = sorted(await hub.store.live_keys("Patient"))
    sources = [key for key in keys if not is_master_key(key)]
    report.records = len(sources)
    masters: set[str] = {key for key in keys if is_master_key(key)}
    unlinked: list[str] = []
    for start in range(0, len(sources), _CHUNK):
        found = await hub.store.masters_in_use(sources[start:start + _CHUNK])
        unlinked += [key for key, master in found.items() if master is None]
        masters |= {master for master in found.values() if master is not None}
    for key in tqdm(unlinked, desc="linking records", unit="record", disable=not progress):
        current = await hub.store.current("Patient", key.removeprefix("Patient/"))
        if current is None or current.deleted or current.json is None:
            continue
        master = await hub.store.master_in_use(key)  # linked meanwhile, with a candidate linked before it
        if master is None:
            await hub.writer.commit(Update("Patient", current.rid, loads(current.json), keep_source=True),
                                    caller=MATCHER)
            master = await hub.store.master_in_use(key)
        if master is not None:
            report.linked += 1
            masters.add(master)
    for master in tqdm(sorted(masters), desc="rebuilding masters", unit="master", disable=not progress):
        await linker.rebuild(master)
        report.masters += 1
    return report
