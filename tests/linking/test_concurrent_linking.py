"""Race-free linking: many records of one person sent at once, through two hub servers sharing one database
(as two hub processes would), end with one master, every record referring to it; two people sent at once
end with two. Real parallel requests on loopback; nothing is timed. Each record comes from its own facility's
token; the outcome (every record, every master) is read as the hub's operator (``callers.py``)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from fhir_hub.config import Settings
from fhir_hub.linking.elements import RECORD_ROLE
from fhir_hub.main import create_app
from tests.conftest import auth, serving, token_for
from tests.linking.callers import operator

CCCD = "http://fhir.hl7.org.vn/core/sid/cccd"
FHIR = {"Content-Type": "application/fhir+json"}
MASTERS = {"_tag": f"{RECORD_ROLE}|master"}


@pytest.fixture
def servers(settings: Settings) -> Iterator[list[str]]:
    with serving(create_app(settings)) as first, serving(create_app(settings)) as second:
        yield [first, second]


def at_once(servers: list[str], settings: Settings, sends: list[Callable[[httpx.Client], httpx.Response]]
            ) -> list[httpx.Response]:
    """The answers in the order of ``sends``."""
    start = threading.Barrier(len(sends))
    answers: dict[int, httpx.Response] = {}

    def one(n: int) -> None:
        headers = auth(token_for(settings, facility=f"79{n:03d}"))  # each from another facility
        with httpx.Client(base_url=servers[n % len(servers)], headers=headers, timeout=120) as client:
            start.wait(timeout=60)
            answers[n] = sends[n](client)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(len(sends))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert len(answers) == len(sends)
    return [answers[n] for n in range(len(sends))]


def lan(n: int) -> dict[str, Any]:
    """Bà Lan as facility ``n`` records her: with or without CCCD and diacritics, always her phone."""
    family, given = (("Nguyễn", ["Thị", "Lan"]) if n % 2 else ("Nguyen", ["Thi", "Lan"]))
    body: dict[str, Any] = {"resourceType": "Patient", "name": [{"family": family, "given": given}],
                            "birthDate": "1956-04-12", "gender": "female",
                            "telecom": [{"system": "phone", "value": "0903123456"}]}
    if n % 3 == 0:
        body["identifier"] = [{"system": CCCD, "value": "079156001234"}]
    return body


def hung(n: int) -> dict[str, Any]:
    return {"resourceType": "Patient", "name": [{"family": "Trần", "given": ["Văn", "Hùng"]}],
            "birthDate": "1948-11-02", "gender": "male",
            "identifier": [{"system": CCCD, "value": "079048007777"}]}


def masters_of(servers: list[str], settings: Settings, ids: list[str]) -> tuple[set[str], int]:
    with httpx.Client(base_url=servers[0], headers=operator(settings), timeout=60) as client:
        refers = set()
        for pid in ids:
            links = client.get(f"/Patient/{pid}").json()["link"]
            refers |= {link["other"]["reference"] for link in links if link["type"] == "refer"}
        live = client.get("/Patient", params={**MASTERS, "_summary": "count"}).json()["total"]
        return refers, live


def _decisions(servers: list[str], settings: Settings, ids: list[str]) -> list[Any]:
    """For a failure's message: each record's name, master and decision, in the order they were stored."""
    with httpx.Client(base_url=servers[0], headers=operator(settings), timeout=60) as client:
        records = [client.get(f"/Patient/{pid}").json() for pid in ids]
    refers = [r["link"][-1] for r in records]
    return sorted((r["meta"]["lastUpdated"][17:], r["id"][:6], r["name"][0]["family"], refer["other"]["reference"],
                   [str(e.get("valueCode") or e.get("valueReference")) for e in refer["extension"][0]["extension"]])
                  for r, refer in zip(records, refers, strict=True))


def test_twelve_records_of_one_person_at_once_make_one_master(servers: list[str], settings: Settings) -> None:
    sends = [lambda c, n=n: c.post("/Patient", json=lan(n), headers=FHIR) for n in range(12)]
    answers = at_once(servers, settings, sends)
    assert sorted(a.status_code for a in answers) == [201] * 12, [a.text for a in answers if a.status_code != 201]
    refers, live = masters_of(servers, settings, [a.json()["id"] for a in answers])
    assert len(refers) == 1 and live == 1


def test_two_people_at_once_make_two_masters(servers: list[str], settings: Settings) -> None:
    sends = [lambda c, n=n: c.post("/Patient", json=(lan if n % 2 else hung)(n), headers=FHIR) for n in range(12)]
    answers = at_once(servers, settings, sends)
    assert all(a.status_code == 201 for a in answers)
    ids = [a.json()["id"] for a in answers]
    lans, _ = masters_of(servers, settings, ids[1::2])
    hungs, live = masters_of(servers, settings, ids[0::2])
    assert len(lans) == 1 and len(hungs) == 1 and lans != hungs and live == 2, _decisions(servers, settings, ids)


def test_transaction_bundles_at_once_make_one_master(servers: list[str], settings: Settings) -> None:
    def bundle(n: int) -> dict[str, Any]:
        return {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": "urn:uuid:p", "resource": lan(n), "request": {"method": "POST", "url": "Patient"}},
            {"fullUrl": "urn:uuid:e", "resource": {"resourceType": "Encounter", "status": "finished",
                                                   "class": {"code": "AMB"}, "subject": {"reference": "urn:uuid:p"}},
             "request": {"method": "POST", "url": "Encounter"}}]}

    sends = [lambda c, n=n: c.post("/", json=bundle(n), headers=FHIR) for n in range(10)]
    answers = at_once(servers, settings, sends)
    assert all(a.status_code == 200 for a in answers), [a.text[:300] for a in answers if a.status_code != 200]
    ids = [a.json()["entry"][0]["response"]["location"].split("Patient/")[1].split("/")[0] for a in answers]
    refers, live = masters_of(servers, settings, ids)
    assert len(refers) == 1 and live == 1
