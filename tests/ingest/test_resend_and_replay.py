"""A payload sent again changes nothing, and only its own facility may replay it.

Re-sending the same MoH XML file used to store new, identical versions of resources holding a decimal (an
Observation's value): whether the no-op check read a stored number as a float or as a Decimal depended on
the last digit of the version's ``lastUpdated`` microseconds. The clock here makes the first send's stamps
end in 0 and the second's in 5, so the case is met every time rather than one send in five.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from adapters.moh_xml.generator import generate_file
from fhir_hub.config import Settings
from fhir_hub.fhir.instant import system_clock
from fhir_hub.main import create_app
from tests.conftest import assert_outcome, auth, token_for

XML = {"Content-Type": "application/xml", "Accept": "application/fhir+json"}


class _LastDigit:
    """A clock whose microseconds always end in ``digit`` (set by the test between sends)."""

    def __init__(self) -> None:
        self.digit = 0

    def __call__(self) -> int:
        return system_clock() // 10 * 10 + self.digit


@pytest.fixture
def clock() -> _LastDigit:
    return _LastDigit()


@pytest.fixture
def stamped_client(settings: Settings, clock: _LastDigit) -> Iterator[TestClient]:
    with TestClient(create_app(settings, clock=clock), raise_server_exceptions=False,
                    headers=auth(token_for(settings))) as test_client:
        yield test_client


def _values(answer: Any) -> dict[str, Any]:
    assert answer.status_code == 200, answer.text[:800]
    return {p["name"]: p.get("valueInteger", p.get("valueString")) for p in answer.json()["parameter"]}


def _versions(client: TestClient) -> dict[str, str]:
    found: dict[str, str] = {}
    for rtype in ("Patient", "Encounter", "Observation", "Condition", "MedicationRequest", "Procedure"):
        for entry in client.get(f"/{rtype}", params={"_count": 1000}).json().get("entry", []):
            resource = entry["resource"]
            found[f"{rtype}/{resource['id']}"] = resource["meta"]["versionId"]
    return found


def test_resending_the_same_moh_file_stores_no_new_version(stamped_client: TestClient, clock: _LastDigit) -> None:
    payload = generate_file(2, episodes=5, facility="79001").payload
    first = _values(stamped_client.post("/$ingest", content=payload, headers=XML))
    assert first["recordsAccepted"] == 5
    before = _versions(stamped_client)
    values = [e["resource"].get("valueQuantity", {}).get("value") for e in
              stamped_client.get("/Observation", params={"_count": 1000}).json()["entry"]]
    assert any(isinstance(v, float) and Decimal(str(v)) != Decimal(v) for v in values)  # 10.9 is no binary float
    clock.digit = 5
    again = _values(stamped_client.post("/$ingest", content=payload, headers=XML))
    assert again["updated"] == 0 and again["created"] == 0
    assert _versions(stamped_client) == before


def test_replay_by_the_same_subject_from_another_facility_is_not_found(client: TestClient,
                                                                      settings: Settings) -> None:
    mine = auth(token_for(settings, subject="his-system"))
    same_subject_elsewhere = auth(token_for(settings, facility="79002", subject="his-system"))
    patient = orjson.dumps({"resourceType": "Patient", "id": "x", "name": [{"text": "Lê Văn Tám"}]})
    sent = _values(client.post("/$ingest", content=patient, headers={
        **mine, "Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}))
    missing = assert_outcome(client.post("/$replay", params={"archive": "no-such-archive"},
                                         headers=same_subject_elsewhere), 404)
    refused = assert_outcome(client.post("/$replay", params={"archive": sent["archive"]},
                                         headers=same_subject_elsewhere), 404)
    assert refused["issue"][0]["diagnostics"].replace(sent["archive"], "ID") == \
        missing["issue"][0]["diagnostics"].replace("no-such-archive", "ID")
    replayed = client.post("/$replay", params={"archive": sent["archive"]},
                           headers={**mine, "Accept": "application/fhir+json"})
    assert _values(replayed)["created"] == 0
