"""Break the glass, and who sees that it was broken (issue 17): the audit entries of an emergency access carry
the reason and a flag; the resident reads them first in their access log; the facility whose clinician broke
the glass reviews them; an emergency without a reason is refused and audited all the same."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle

from fhir_hub.config import Settings
from fhir_hub.main import create_app
from fhir_hub.services.pages import encode_page
from fhir_hub.store.audit_log import unpacked
from fhir_hub.store.schema import AUDIT
from tests.conftest import as_, assert_outcome, audit_held

FHIR = {"Content-Type": "application/fhir+json"}
FLAG = {"system": "https://fhir.hub.hcmc.vn/CodeSystem/audit-flag", "code": "emergency-access"}
REASON = "Bất tỉnh tại cấp cứu, cần tiền sử dị ứng"  # unconscious in the emergency room, allergies needed


def _seed(client: TestClient, settings: Settings) -> str:
    """Resident pa's record, written by facility 79002: no other facility may read it for treatment."""
    owner = {**FHIR, **as_(settings, facility="79002")}
    assert client.put("/Patient/pa", json={"resourceType": "Patient", "id": "pa", "name": [{"family": "Lê"}]},
                      headers=owner).status_code == 201
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "Dị ứng penicillin"},
           "subject": {"reference": "Patient/pa"}}
    created = client.post("/Observation", json=obs, headers=owner)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _clinician(settings: Settings, facility: str, reason: str | None = REASON, **claims: Any) -> dict[str, Any]:
    """A clinician of ``facility`` breaking the glass; the reason sent as UTF-8 bytes, as clients send
    Vietnamese in a header."""
    headers: dict[str, Any] = as_(settings, "clinician", facility=facility, purpose="ETREAT", **claims)
    return {**headers, "X-Emergency-Reason": reason.encode()} if reason is not None else headers


@pytest.fixture
def app_client(settings: Settings) -> Iterator[TestClient]:
    """The trail written only when a test flushes it: reading an access log is audited too, and an entry
    written between two pages would shift what the pages compare."""
    with audit_held(settings) as held, TestClient(create_app(held), raise_server_exceptions=False) as client:
        yield client


def _flush(client: TestClient) -> None:
    client.portal.call(client.app.state.hub.audit.flush)  # type: ignore[attr-defined]


def _events(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    Bundle.model_validate(bundle)
    events = [e["resource"] for e in bundle.get("entry", [])]
    for event in events:
        AuditEvent.model_validate(event)
    return events


def _is_emergency(event: dict[str, Any]) -> bool:
    return any(tag.items() >= FLAG.items() for tag in event["meta"].get("tag", []))


def _facility(event: dict[str, Any]) -> str | None:
    return next((a["who"]["identifier"]["value"] for a in event["agent"] if a["type"].get("text") == "facility"), None)


def _stored(client: TestClient) -> list[dict[str, Any]]:
    """The audit entries as the log gives them back."""
    return [unpacked(doc) for doc in _stored_raw(client)]


def _stored_raw(client: TestClient) -> list[dict[str, Any]]:
    """The audit entries' documents as stored."""
    async def entries() -> list[dict[str, Any]]:
        return [doc async for doc in client.app.state.hub.store.db[AUDIT].find({})]  # type: ignore[attr-defined]

    return client.portal.call(entries)  # type: ignore[no-any-return]


def test_breaking_the_glass_is_audited_with_the_reason_and_flagged(app_client: TestClient,
                                                                   settings: Settings) -> None:
    obs = _seed(app_client, settings)
    treating = as_(settings, "clinician", facility="79001", subject="bs-hoa")
    assert_outcome(app_client.get(f"/Observation/{obs}", headers=treating), 404)  # no consent: as if absent
    read = app_client.get(f"/Observation/{obs}", headers=_clinician(settings, "79001", subject="bs-hoa"))
    assert read.status_code == 200, read.text
    _flush(app_client)
    flagged = [doc for doc in _stored(app_client) if doc.get("e")]
    assert len(flagged) == 2  # the patient's entry and the request's entry, which the facility reviews
    assert all(doc["who"]["reason"] == REASON and doc["who"]["purpose"] == "ETREAT" for doc in flagged)
    assert [doc.get("ef") for doc in flagged if "p" not in doc] == ["79001"]
    assert [doc.get("p") for doc in flagged if "ef" not in doc] == ["pa"]
    events = _events(app_client.get("/AuditEvent", params={"patient": "pa", "_count": 100},
                                    headers=as_(settings, facility=None)).json())
    emergency = [e for e in events if _is_emergency(e)]
    assert len(emergency) == 1
    event = emergency[0]
    assert event["purposeOfEvent"] == [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                                                    "code": "ETREAT"}], "text": REASON}]
    assert _facility(event) == "79001" and event["agent"][0]["who"]["identifier"]["value"] == "bs-hoa"
    assert {"reference": f"Observation/{obs}"} in [e.get("what") for e in event["entity"]]
    assert not any(_is_emergency(e) for e in events if e is not event)  # the 404 under TREAT is not flagged


def test_the_resident_sees_emergency_accesses_first(app_client: TestClient, settings: Settings) -> None:
    obs = _seed(app_client, settings)
    assert app_client.get(f"/Observation/{obs}", headers=_clinician(settings, "79001")).status_code == 200
    for _ in range(3):  # later, ordinary reads by the facility that wrote the record
        assert app_client.get(f"/Observation/{obs}", headers=as_(settings, facility="79002")).status_code == 200
    _flush(app_client)
    resident = as_(settings, "resident", patient="pa")
    answer = app_client.get("/Patient/$access-log", headers=resident)
    assert answer.status_code == 200, answer.text
    log = answer.json()
    events = _events(log)
    assert log["type"] == "searchset" and log["total"] == len(events) >= 6  # 2 writes, the glass, 3 reads
    first = events[0]
    assert _is_emergency(first) and first["purposeOfEvent"][0]["text"] == REASON and _facility(first) == "79001"
    assert not any(_is_emergency(e) for e in events[1:])
    times = [e["recorded"] for e in events[1:]]
    assert times == sorted(times, reverse=True)  # then newest first, although the emergency came first in time
    assert _facility(events[1]) == "79002" and events[1]["subtype"][0]["code"] == "read"
    assert all(e["purposeOfEvent"][0]["coding"][0]["code"] == "TREAT" for e in events[1:])
    # page by page, the same order and each entry once
    paged: list[str] = []
    url: str | None = "/Patient/$access-log?_count=1"
    while url:
        page = app_client.get(url, headers=resident).json()
        assert page["total"] == log["total"]
        paged += [e["resource"]["id"] for e in page.get("entry", [])]
        url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
    assert paged == [e["id"] for e in events]
    # the same log by the record's id, for the resident and for the hub's operator
    ids = [e["id"] for e in events]
    for who in (resident, as_(settings, facility=None)):
        named = app_client.get("/Patient/pa/$access-log", params={"_count": 100}, headers=who).json()
        assert [e["resource"]["id"] for e in named["entry"]] == ids


def test_an_access_log_is_the_residents_and_the_operators(app_client: TestClient, settings: Settings) -> None:
    _seed(app_client, settings)
    app_client.put("/Patient/pb", json={"resourceType": "Patient", "id": "pb"}, headers={**FHIR, **as_(settings)})
    resident = as_(settings, "resident", patient="pa")
    absent = app_client.get("/Patient/nobody/$access-log", headers=resident)
    assert_outcome(app_client.get("/Patient/pb/$access-log", headers=resident), 404)  # as if it did not exist
    assert absent.status_code == 404
    for who in (as_(settings, facility="79002"), as_(settings, "clinician", facility="79002")):
        assert_outcome(app_client.get("/Patient/pa/$access-log", headers=who), 403, "forbidden")
        assert_outcome(app_client.get("/Patient/$access-log", headers=who), 403, "forbidden")
    assert_outcome(app_client.get("/Patient/$access-log", headers=as_(settings, facility=None)), 403, "forbidden")
    # page tokens come back from the client: a forged one, a search's, an emergency review's are refused
    for position in ("not-a-token", encode_page(["after", ["2026", "Observation/x"]]), encode_page(["after", [1, "a"]]),
                     encode_page(["after", [2, 1, "a"]]), encode_page([5, "Patient/pa", 1])):
        assert_outcome(app_client.get("/Patient/$access-log", params={"_page": position}, headers=resident), 400)


def test_a_facility_reviews_its_own_staffs_emergency_accesses(app_client: TestClient, settings: Settings) -> None:
    obs = _seed(app_client, settings)
    for facility, subject in (("79001", "bs-an"), ("79001", "bs-binh"), ("79003", "bs-chi")):
        read = app_client.get(f"/Observation/{obs}", headers=_clinician(settings, facility, subject=subject))
        assert read.status_code == 200, read.text
    _flush(app_client)

    def review(headers: dict[str, str], count: int = 100) -> list[dict[str, Any]]:
        answer = app_client.get("/AuditEvent/$emergency-access", params={"_count": count}, headers=headers)
        assert answer.status_code == 200, answer.text
        return _events(answer.json())

    mine = review(as_(settings, facility="79001"))
    assert sorted(e["agent"][0]["who"]["identifier"]["value"] for e in mine) == ["bs-an", "bs-binh"]
    assert all(_is_emergency(e) and _facility(e) == "79001" and e["purposeOfEvent"][0]["text"] == REASON
               for e in mine)
    assert [e["agent"][0]["who"]["identifier"]["value"] for e in review(as_(settings, facility="79003"))] == ["bs-chi"]
    assert review(as_(settings, facility="79002")) == []  # the record's owner: no staff of its own broke the glass
    everyone = review(as_(settings, facility=None))  # the hub's operator
    assert len(everyone) == 3 and [e["recorded"] for e in everyone] == sorted((e["recorded"] for e in everyone),
                                                                               reverse=True)
    first = app_client.get("/AuditEvent/$emergency-access?_count=1", headers=as_(settings, facility="79001")).json()
    assert first["total"] == 2 and len(first["entry"]) == 1
    follow = next(link["url"] for link in first["link"] if link["relation"] == "next")
    second = app_client.get(follow, headers=as_(settings, facility="79001")).json()
    assert [e["resource"]["id"] for e in first["entry"] + second["entry"]] == [e["id"] for e in mine]
    for who in (as_(settings, "clinician", facility="79001"), as_(settings, "resident", patient="pa")):
        assert_outcome(app_client.get("/AuditEvent/$emergency-access", headers=who), 403, "forbidden")


@pytest.mark.parametrize("reason", [None, "   "])
def test_an_emergency_without_a_reason_is_refused_and_audited(app_client: TestClient, settings: Settings,
                                                              reason: str | None) -> None:
    obs = _seed(app_client, settings)
    refused = app_client.get(f"/Observation/{obs}", headers=_clinician(settings, "79001", reason, subject="bs-dung"))
    body = assert_outcome(refused, 403, "forbidden")
    assert "X-Emergency-Reason" in body["issue"][0]["diagnostics"]
    _flush(app_client)
    attempts = _events(app_client.get("/AuditEvent/$emergency-access", headers=as_(settings, facility="79001")).json())
    assert len(attempts) == 1
    attempt = attempts[0]
    assert attempt["outcome"] == "4" and attempt["outcomeDesc"] == "HTTP 403" and _is_emergency(attempt)
    assert attempt["agent"][0]["who"]["identifier"]["value"] == "bs-dung" and "text" not in attempt["purposeOfEvent"][0]
    resident = app_client.get("/Patient/$access-log", headers=as_(settings, "resident", patient="pa")).json()
    assert not any(_is_emergency(e) for e in _events(resident))  # nothing of the record was read


def test_entries_are_stored_packed_and_entries_stored_before_still_read(app_client: TestClient,
                                                                         settings: Settings) -> None:
    """An entry is stored as its queried fields and one JSON string (``store/audit_log.py``); an entry
    written before that, with every field its own, is served the same way."""
    obs = _seed(app_client, settings)
    operator = as_(settings, facility=None)
    assert app_client.get(f"/Observation/{obs}", headers=as_(settings, facility="79002")).status_code == 200
    _flush(app_client)

    stored = _stored_raw(app_client)
    assert stored and all(set(doc) <= {"_id", "ts", "p", "e", "ef", "d"} for doc in stored)
    written = unpacked(next(doc for doc in stored if doc.get("p") == "pa"))
    old = {**written, "_id": "written-unpacked", "ts": written["ts"] + 1}

    async def store_old() -> None:
        await app_client.app.state.hub.store.db[AUDIT].insert_one(old)  # type: ignore[attr-defined]

    app_client.portal.call(store_old)
    events = {e["id"]: e for e in _events(app_client.get("/AuditEvent", params={"patient": "pa", "_count": 100},
                                                         headers=operator).json())}
    new_id = written["_id"]
    assert {k: v for k, v in events["written-unpacked"].items() if k not in ("id", "meta", "recorded")} == \
        {k: v for k, v in events[new_id].items() if k not in ("id", "meta", "recorded")}
    assert app_client.get("/AuditEvent/written-unpacked", headers=operator).json()["entity"] == events[new_id]["entity"]
