"""A bounded load test on loopback: what used to stall the hub, all at once, while reads keep answering.

A resident pages through their type history (which used to walk every version of the type), a facility
sends a 200 KB HL7 v2 payload (which used to be parsed on the event loop), and a hospital system reads.
Every loop is bounded by a request count and stops when the two workloads end; nothing is timed: the test
checks that reads were answered, correctly, while both were under way.
"""

from __future__ import annotations

import threading

import httpx
import pytest

from fhir_hub.config import Settings
from tests.conftest import auth, fixture_path, token_for

HL7 = {"Content-Type": "x-application/hl7-v2+er7", "Accept": "application/fhir+json"}
_MAX_READS = 5_000


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The hub as served: payloads mapped in a worker process."""
    return settings.with_(ingest_processes=1)


def _encounter(rid: str, pid: str) -> dict[str, object]:
    return {"resourceType": "Encounter", "id": rid, "status": "finished", "subject": {"reference": f"Patient/{pid}"},
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}}


def _payload() -> bytes:
    """About 200 KB: ordinary ADT messages and one whose PID-3 repeats 12,000 times."""
    adt = fixture_path("hl7v2", "messages", "ADT-A01-01.hl7").read_bytes().removeprefix(b"\xef\xbb\xbf").strip()
    messages = [adt.replace(b"|MSG00001|", f"|LOAD{i:04d}|".encode()) for i in range(40)]
    flood = ("MSH|^~\\&|HIS|79001|HUB|SYT|20240501083000+0700||ADT^A04|FLOOD|P|2.5\rEVN|A04|20240501083000\r"
             "PID|1||" + "~".join(f"X{i:05d}^^^^MR" for i in range(12_000)) + "||Nguyễn^Văn An||19900101|M\r")
    return b"\r".join([*messages[:20], flood.encode(), *messages[20:]])


@pytest.mark.server
def test_reads_keep_answering_under_resident_history_and_a_large_hl7_payload(live_server: str,
                                                                             settings: Settings) -> None:
    system = auth(token_for(settings))
    resident = auth(token_for(settings, "resident", patient="load-a"))
    payload = _payload()
    assert len(payload) > 190_000
    with httpx.Client(base_url=live_server, timeout=120) as client:
        others = [_encounter(f"load-{i}", f"load-p{i % 50}") for i in range(600)]
        mine = [_encounter(f"load-a-{i}", "load-a") for i in range(5)]
        batch = {"resourceType": "Bundle", "type": "batch", "entry": [
            {"resource": r, "request": {"method": "PUT", "url": f"Encounter/{r['id']}"}} for r in [*others, *mine]]}
        assert client.post("/", json=batch, headers=system).status_code == 200
        answers: dict[str, object] = {}

        def page_history() -> None:
            seen, url, pages = [], "/Encounter/_history?_count=1", 0
            while url and pages < 20:
                page = client.get(url, headers=resident).json()
                seen += [e["resource"]["id"] for e in page.get("entry", [])]
                url, pages = next((lk["url"] for lk in page["link"] if lk["relation"] == "next"), None), pages + 1
            answers["history"] = seen

        def send() -> None:
            answers["ingest"] = client.post("/$ingest", content=payload, headers={**system, **HL7})

        workers = [threading.Thread(target=page_history), threading.Thread(target=send)]
        for worker in workers:
            worker.start()
        reads = 0
        while any(w.is_alive() for w in workers) and reads < _MAX_READS:
            assert client.get("/Encounter/load-7", headers=system).status_code == 200
            assert client.get("/metadata").status_code == 200
            reads += 1
        for worker in workers:
            worker.join(timeout=120)
    assert reads >= 3, "reads were answered while the history and the payload were being served"
    assert sorted(answers["history"]) == sorted(r["id"] for r in mine)  # type: ignore[arg-type]
    ingest = answers["ingest"]
    assert isinstance(ingest, httpx.Response) and ingest.status_code == 200, ingest
    rejected = next(p["valueInteger"] for p in ingest.json()["parameter"] if p["name"] == "recordsRejected")
    assert rejected == 1  # the flood, refused by name; the 40 ordinary messages ingested
