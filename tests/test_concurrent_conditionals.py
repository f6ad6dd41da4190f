"""No duplicates under concurrency: 20 identical conditional writes at once, against two hub servers sharing
one database (as two hub processes would), leave exactly one resource of each kind, and every request is
answered as if it had come first or second (201 or 200), never 412 or 500.

Real parallel requests on loopback, each loop bounded; nothing is timed.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from fhir_hub.config import Settings
from fhir_hub.main import create_app
from tests.conftest import auth, fixture_path, serving, token_for

PARALLEL = 20
IDENTIFIER = {"system": "http://fhir.hl7.org.vn/core/sid/cccd", "value": "079190000123"}
CRITERIA = f"identifier={IDENTIFIER['system']}|{IDENTIFIER['value']}"
FHIR = {"Content-Type": "application/fhir+json"}


@pytest.fixture
def servers(settings: Settings) -> Iterator[list[str]]:
    with serving(create_app(settings)) as first, serving(create_app(settings)) as second:
        yield [first, second]


def all_at_once(servers: list[str], settings: Settings, send: Callable[[httpx.Client], httpx.Response]
                ) -> list[httpx.Response]:
    """``send`` from PARALLEL threads released together, alternating between the servers."""
    start = threading.Barrier(PARALLEL)
    answers: list[httpx.Response] = []
    headers = auth(token_for(settings))

    def one(n: int) -> None:
        with httpx.Client(base_url=servers[n % len(servers)], headers=headers, timeout=120) as client:
            start.wait(timeout=60)
            answers.append(send(client))

    threads = [threading.Thread(target=one, args=(n,)) for n in range(PARALLEL)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert len(answers) == PARALLEL
    return answers


def count(servers: list[str], settings: Settings, rtype: str, query: dict[str, str] | None = None) -> int:
    with httpx.Client(base_url=servers[0], headers=auth(token_for(settings)), timeout=60) as client:
        found = client.get(f"/{rtype}", params={**(query or {}), "_summary": "count"})
        assert found.status_code == 200, found.text
        total: int = found.json()["total"]
        return total


def statuses(answers: list[httpx.Response]) -> list[int]:
    return sorted(a.status_code for a in answers)


def patient() -> dict[str, Any]:
    return {"resourceType": "Patient", "identifier": [IDENTIFIER], "name": [{"family": "Nguyễn", "given": ["An"]}]}


def test_simultaneous_conditional_creates_make_one_resource(servers: list[str], settings: Settings) -> None:
    answers = all_at_once(servers, settings, lambda c: c.post("/Patient", json=patient(),
                                                              headers={**FHIR, "If-None-Exist": CRITERIA}))
    assert statuses(answers) == [200] * (PARALLEL - 1) + [201], [a.text[:200] for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    assert count(servers, settings, "Patient", {"identifier": CRITERIA.split("=", 1)[1]}) == 1


def test_simultaneous_conditional_updates_make_one_resource(servers: list[str], settings: Settings) -> None:
    answers = all_at_once(servers, settings, lambda c: c.put(f"/Patient?{CRITERIA}", json=patient(), headers=FHIR))
    assert statuses(answers) == [200] * (PARALLEL - 1) + [201], [a.text[:200] for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    assert count(servers, settings, "Patient") == 1


def test_simultaneous_transactions_with_if_none_exist_make_one_of_each(servers: list[str],
                                                                       settings: Settings) -> None:
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "Huyết áp"},
                   "identifier": [{"system": "urn:lab", "value": "o-1"}], "subject": {"reference": "urn:uuid:p"}}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:p", "resource": patient(),
         "request": {"method": "POST", "url": "Patient", "ifNoneExist": CRITERIA}},
        {"resource": observation, "request": {"method": "PUT", "url": "Observation?identifier=urn:lab|o-1"}}]}
    answers = all_at_once(servers, settings, lambda c: c.post("/", json=bundle, headers=FHIR))
    assert statuses(answers) == [200] * PARALLEL, [a.text[:300] for a in answers]
    created = [e["response"]["status"] for a in answers for e in a.json()["entry"] if e["response"]["status"][:3]
               == "201"]
    assert len(created) == 2  # the Patient and the Observation, once each
    assert count(servers, settings, "Patient") == 1 and count(servers, settings, "Observation") == 1


def test_one_hl7_message_ingested_twenty_times_at_once_stores_one_of_each(servers: list[str],
                                                                          settings: Settings) -> None:
    message = fixture_path("hl7v2", "messages", "ADT-A01-01.hl7").read_bytes().removeprefix(b"\xef\xbb\xbf")
    hl7 = {"Content-Type": "x-application/hl7-v2+er7", "Accept": "application/fhir+json"}
    answers = all_at_once(servers, settings, lambda c: c.post("/$ingest", content=message, headers=hl7))
    assert statuses(answers) == [200] * PARALLEL, [a.text[:300] for a in answers]
    for answer in answers:
        values = {p["name"]: p.get("valueInteger") for p in answer.json()["parameter"]}
        assert values["recordsAccepted"] == 1 and values["recordsRejected"] == 0, answer.text[:500]
    for rtype in ("Patient", "Encounter", "Provenance"):
        assert count(servers, settings, rtype) == 1, rtype


def test_simultaneous_conditional_creates_with_criteria_in_the_url_make_one_resource(servers: list[str],
                                                                                     settings: Settings) -> None:
    """``POST /Patient?identifier=...`` (fhirpy's ``get_or_create``) takes the same claim as ``If-None-Exist``:
    half the requests send the criteria in the URL, half in the header, and one Patient is created."""
    turns = itertools.count()

    def send(client: httpx.Client) -> httpx.Response:
        if next(turns) % 2:
            return client.post(f"/Patient?{CRITERIA}", json=patient(), headers=FHIR)
        return client.post("/Patient", json=patient(), headers={**FHIR, "If-None-Exist": CRITERIA})

    answers = all_at_once(servers, settings, send)
    assert statuses(answers) == [200] * (PARALLEL - 1) + [201], [a.text[:200] for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    assert count(servers, settings, "Patient") == 1
