"""Shared pieces of the Bundle tests: fixture loading and a full dump of the versioned store."""

from __future__ import annotations

import json
from typing import Any

from pymongo import MongoClient

from fhir_hub.config import Settings
from fhir_hub.store.schema import HISTORY, META, RESOURCES, SEARCH_INDEX
from tests.conftest import fixture_path

FHIR = {"Content-Type": "application/fhir+json"}


def normative(name: str) -> dict[str, Any]:
    """A microsoft/fhir-server test Bundle (they start with a byte-order mark, which a client strips)."""
    return json.loads(fixture_path("ms-fhir-server-testfiles", "Normative", name).read_text(encoding="utf-8-sig"))


def synthea(name: str) -> dict[str, Any]:
    return json.loads(fixture_path("synthea-transaction-bundles-conditional", name).read_bytes())


HOSPITALS = "hospitalInformation1633536936158.json"
PRACTITIONERS = "practitionerInformation1633536936158.json"
BOB = "Bob965_Keeling57_3f6fd0bb-6cd3-eb3f-4401-cd38ace25f2b.json"
CECELIA = "Cecelia952_Romaguera67_f1731e33-dc55-4ee8-72d7-cece2e49bedd.json"


def dump(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    """Every document of the versioned store (the audit log is left out: it records the attempt itself)."""
    with MongoClient(settings.mongodb_uri) as mongo:
        db = mongo[settings.db_name]
        return {name: sorted(db[name].find({}), key=lambda d: str(d["_id"]))
                for name in (RESOURCES, HISTORY, SEARCH_INDEX, META)}


def statuses(answer: dict[str, Any]) -> list[str]:
    return [e["response"]["status"] for e in answer["entry"]]


def diagnostics(answer: dict[str, Any]) -> str:
    return " ".join(i.get("diagnostics", "") for i in answer["issue"])
