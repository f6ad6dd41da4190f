"""The demo data set shipped with the hub, loaded through the normal write path.

Resources keep their Synthea ids (update-as-create), and one that is already stored is left alone, so
loading again after a restart changes nothing. They are loaded as facility 79001's hospital system would
send them: under the consent policy they are that facility's records, read by its tokens (the README's
quick start), and by any other facility only once the resident consents.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

from tqdm import tqdm

from fhir_hub.auth.caller import Caller
from fhir_hub.auth.scopes import Scopes
from fhir_hub.hub import Hub
from fhir_hub.services.session import Session
from fhir_hub.store.writer import Update

# Referenced resources first, so a reader following references always finds them.
LOAD_ORDER = ("Organization", "Location", "Practitioner", "Patient", "Encounter", "Condition", "Immunization",
              "MedicationRequest")


DEMO_FACILITY = "79001"
LOADER = Caller(subject="fhir-hub/demo", scopes=Scopes.parse("system/*.cruds"), facility=DEMO_FACILITY)


@dataclass(frozen=True)
class DemoReport:
    created: int
    already_present: int
    patients: tuple[str, ...]


def demo_resources() -> Iterator[dict[str, Any]]:
    folder = resources.files("fhir_hub.demo") / "data"
    for rtype in LOAD_ORDER:
        text = (folder / f"{rtype}.ndjson").read_text(encoding="utf-8")
        for line in text.splitlines():
            if line.strip():
                yield json.loads(line)


async def load_demo(hub: Hub, *, progress: bool = False) -> DemoReport:
    created = present = 0
    patients = []
    items = list(demo_resources())
    session = Session.open(hub, LOADER)  # as a client's writes: the residents' priority records get queued too
    for resource in tqdm(items, desc="demo data", unit="resource", disable=not progress):
        rtype, rid = resource["resourceType"], resource["id"]
        if rtype == "Patient":
            patients.append(rid)
        current = await hub.store.current(rtype, rid)
        if current is not None and not current.deleted:
            present += 1
            continue
        await session.commit(Update(rtype, rid, resource))
        created += 1
    return DemoReport(created, present, tuple(patients))
