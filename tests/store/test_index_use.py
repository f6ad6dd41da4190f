"""The common searches are answered from indexes: explain() of every query they send shows no full scan.

A command listener records every ``find`` the hub sends while the searches run; each is then explained by
the server itself. MongoDB's plan must have no ``COLLSCAN`` stage (run the suite with
``FHIR_HUB_MONGODB_URI=mongodb://...``); nx-27017 explains with its SQLite plan, which must not start with a
``SCAN`` of the collection's table (``SEARCH ... USING INDEX`` is an index lookup).
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi.testclient import TestClient
from pymongo import MongoClient, monitoring

from fhir_hub.config import Settings
from fhir_hub.main import create_app
from fhir_hub.store.schema import RESOURCES, SEARCH_INDEX
from tests.conftest import auth, token_for

COMMON_SEARCHES = (
    "/Patient?identifier=http://fhir.hl7.org.vn/core/sid/cccd|079190000001",
    "/Patient?name=nguyen",
    "/Patient?name:contains=yen",
    "/Patient?birthdate=1990-05-04",
    "/Observation?subject=Patient/p1&code=http://loinc.org|8480-6&date=ge2024-01",
    "/Observation?subject=Patient/p1&_sort=-date",
    "/Encounter?patient=Patient/p1&date=ge2024",
    "/Encounter?subject:Patient.identifier=079190000001",
    "/Patient?_has:Observation:subject:code=8480-6",
    "/Patient?_id=p1&_revinclude=Observation:subject",
    "/Observation?_id=o1&_include=Observation:subject",
)


class Finds(monitoring.CommandListener):
    def __init__(self, db_name: str) -> None:
        self.db_name = db_name
        self.seen: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        cmd = event.command
        ours = event.database_name == self.db_name and cmd.get("find") in (SEARCH_INDEX, RESOURCES)
        if event.command_name == "find" and ours:
            self.seen.append({k: cmd[k] for k in ("find", "filter", "sort") if k in cmd})

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def _full_scans(db: Any, find: dict[str, Any]) -> list[str]:
    """The steps of the server's plan for ``find`` that read the whole collection."""
    plan = db.command("explain", find, verbosity="queryPlanner")["queryPlanner"]["winningPlan"]
    if isinstance(plan, list):  # nx-27017: SQLite's plan, one step per line
        return [step["detail"] for step in plan if re.match(rf"SCAN {find['find']}\b", step.get("detail", ""))]
    return ["COLLSCAN"] if "COLLSCAN" in json.dumps(plan) else []


def test_common_searches_use_an_index(settings: Settings) -> None:
    finds = Finds(settings.db_name)
    monitoring.register(finds)
    fhir = {"Content-Type": "application/fhir+json"}
    with TestClient(create_app(settings), headers=auth(token_for(settings))) as client:
        client.put("/Patient/p1", headers=fhir, json={
            "resourceType": "Patient", "id": "p1", "name": [{"family": "Nguyễn", "given": ["Văn", "An"]}],
            "birthDate": "1990-05-04",
            "identifier": [{"system": "http://fhir.hl7.org.vn/core/sid/cccd", "value": "079190000001"}]})
        client.put("/Observation/o1", headers=fhir, json={
            "resourceType": "Observation", "id": "o1", "status": "final", "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
            "effectiveDateTime": "2024-03-01", "valueQuantity": {"value": 120}})
        client.put("/Encounter/e1", headers=fhir, json={
            "resourceType": "Encounter", "id": "e1", "status": "finished", "class": {"code": "AMB"},
            "subject": {"reference": "Patient/p1"}, "period": {"start": "2024-03-01"}})
        finds.seen.clear()
        for url in COMMON_SEARCHES:
            body = client.get(url).json()
            assert body["total"] == 1 and len(body["entry"]) in (1, 2), url
    assert len(finds.seen) >= len(COMMON_SEARCHES)
    with MongoClient(settings.mongodb_uri) as mongo:
        scanning = {json.dumps(find, default=str): scans for find in finds.seen
                    if (scans := _full_scans(mongo[settings.db_name], find))}
    assert not scanning, "queries that read a whole collection:\n" + "\n".join(scanning)
