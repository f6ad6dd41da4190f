"""The priority record follows data however they arrive: a REST write or a synchronous ``$ingest`` queues a
refresh of the person's priority record (one per person per window, however many resources), and a worker
rebuilds it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from adapters.moh_xml.generator import generate_file
from fhir_hub.config import Settings
from fhir_hub.fhir.jsonio import loads
from fhir_hub.hub import Hub, running_hub
from fhir_hub.main import create_app
from fhir_hub.priority.flags import flag_id
from fhir_hub.priority.summary import summary_id
from fhir_hub.queue.jobs import JobQueue, NewJob, wall_clock_ms
from fhir_hub.queue.urgency import CLOCK_SKEW_MS, REFRESH, REFRESH_WINDOW_MS
from fhir_hub.queue.worker import Worker
from tests.conftest import auth, token_for

FHIR = {"Content-Type": "application/fhir+json"}
ICD10 = "http://hl7.org/fhir/sid/icd-10"


async def _refresh_jobs(settings: Settings) -> list[dict[str, Any]]:
    async with running_hub(settings) as hub:
        return [doc async for doc in hub.queue.collection.find({"kind": REFRESH})]


def after_the_window() -> int:
    """A queue clock at which every refresh queued now is due (its window closed, the skew allowance passed)."""
    return wall_clock_ms() + REFRESH_WINDOW_MS + CLOCK_SKEW_MS + 1


async def _work_then_read(settings: Settings, record: str, *, at: Callable[[], int] = after_the_window,
                          ) -> tuple[str, dict[str, str], bool]:
    """Run the queue dry (its clock at ``at``), then: the person's master, their Flags' statuses by rule,
    whether a summary exists."""
    async with running_hub(settings) as hub:
        hub.queue.clock = at
        await Worker(hub, "test").run(asyncio.Event(), until_empty=True)
        master = await hub.store.master_in_use(record) or record
        flags = {}
        for rule in ("age-60-plus", "diabetes"):
            version = await hub.store.current("Flag", flag_id(master, rule))
            if version is not None and version.json is not None:
                flags[rule] = loads(version.json)["status"]
        summary = await hub.store.current("Composition", summary_id(master))
        return master, flags, summary is not None and not summary.deleted


def test_rest_writes_queue_one_refresh_and_the_worker_builds_the_priority_record(settings: Settings) -> None:
    with TestClient(create_app(settings), headers=auth(token_for(settings))) as client:
        made = client.post("/Patient", headers=FHIR, json={"resourceType": "Patient", "birthDate": "1950-03-04",
                                                            "name": [{"family": "Võ"}]})
        assert made.status_code == 201, made.text
        pid = made.json()["id"]
        for code in ("E11.9", "E11.9"):  # a second write within the window queues nothing more
            assert client.post("/Condition", headers=FHIR, json={
                "resourceType": "Condition", "subject": {"reference": f"Patient/{pid}"},
                "code": {"coding": [{"system": ICD10, "code": code}]}}).status_code == 201
    jobs = asyncio.run(_refresh_jobs(settings))
    assert [job["body"]["patient"] for job in jobs] == [f"Patient/{pid}"]
    assert jobs[0]["tier"] == "high"  # as urgent as the write makes her
    _master, flags, summary = asyncio.run(_work_then_read(settings, f"Patient/{pid}"))
    assert flags == {"age-60-plus": "active", "diabetes": "active"} and summary


def test_a_synchronous_ingest_queues_one_refresh_per_person(settings: Settings) -> None:
    payload = generate_file(11, episodes=3, facility="79001").payload
    with TestClient(create_app(settings), headers=auth(token_for(settings))) as client:
        answer = client.post("/$ingest", content=payload, params={"filename": "xml130.xml"},
                             headers={"Content-Type": "application/xml", "Accept": "application/fhir+json"})
        assert answer.status_code == 200, answer.text
        patients = client.get("/Patient", params={"_count": "50"}).json()["entry"]
    jobs = asyncio.run(_refresh_jobs(settings))
    assert sorted(job["body"]["patient"] for job in jobs) == sorted(f"Patient/{e['resource']['id']}" for e in patients)


@pytest.mark.anyio
async def test_processes_queueing_the_same_refresh_at_once_queue_it_once(hub: Hub) -> None:
    """Each queue object stands for a hub process (its own memory of what it queued): the unique id decides."""
    queues = [JobQueue(hub.store.db, hub.store.gate) for _ in range(6)]
    job = NewJob(REFRESH, {"patient": "Patient/p"}, 10, "high")
    queued = await asyncio.gather(*(q.enqueue_once(job, "refresh|p|1") for q in queues))
    assert sorted(queued) == [False] * 5 + [True]
    assert await hub.queue.collection.count_documents({"kind": REFRESH}) == 1
    assert not await queues[0].enqueue_once(job, "refresh|p|1")  # asked again: nothing more


def test_a_refresh_waits_for_its_window_to_close_so_it_sees_the_windows_later_writes(settings: Settings) -> None:
    """A refresh that ran at the window's first write would miss a diagnosis written later in the window:
    that write queues nothing more (the window's job exists), so it must not have run yet."""
    with TestClient(create_app(settings), headers=auth(token_for(settings))) as client:
        made = client.post("/Patient", headers=FHIR, json={"resourceType": "Patient", "birthDate": "1950-03-04",
                                                            "name": [{"family": "Võ"}]})
        assert made.status_code == 201, made.text
        pid = made.json()["id"]
    _master, flags, summary = asyncio.run(_work_then_read(settings, f"Patient/{pid}", at=wall_clock_ms))
    assert flags == {} and not summary  # the window is still open: nothing was claimable
    with TestClient(create_app(settings), headers=auth(token_for(settings))) as client:
        assert client.post("/Condition", headers=FHIR, json={
            "resourceType": "Condition", "subject": {"reference": f"Patient/{pid}"},
            "code": {"coding": [{"system": ICD10, "code": "E11.9"}]}}).status_code == 201
    _master, flags, summary = asyncio.run(_work_then_read(settings, f"Patient/{pid}"))
    assert flags == {"age-60-plus": "active", "diabetes": "active"} and summary


def test_a_deleted_diagnosis_queues_a_refresh_that_stops_it_counting(settings: Settings) -> None:
    """A diabetes diagnosis entered in error and deleted: the deletion queues the person's refresh, which
    makes the diabetes Flag inactive (before, a deletion queued nothing and the Flag stayed active)."""
    with TestClient(create_app(settings), headers=auth(token_for(settings))) as client:
        made = client.post("/Patient", headers=FHIR, json={"resourceType": "Patient", "birthDate": "1950-03-04",
                                                            "name": [{"family": "Võ"}]})
        pid = made.json()["id"]
        condition = client.post("/Condition", headers=FHIR, json={
            "resourceType": "Condition", "subject": {"reference": f"Patient/{pid}"},
            "code": {"coding": [{"system": ICD10, "code": "E11.9"}]}})
        assert condition.status_code == 201, condition.text
    _master, flags, _summary = asyncio.run(_work_then_read(settings, f"Patient/{pid}"))
    assert flags["diabetes"] == "active"
    with TestClient(create_app(settings), headers=auth(token_for(settings))) as client:
        later = after_the_window()
        client.app.state.hub.queue.clock = lambda: later  # type: ignore[attr-defined]  # the next window
        assert client.delete(f"/Condition/{condition.json()['id']}").status_code == 204
    queued = [job for job in asyncio.run(_refresh_jobs(settings)) if not job["st"].startswith("done|")]
    assert [job["body"]["patient"] for job in queued] == [f"Patient/{pid}"]
    _master, flags, _summary = asyncio.run(_work_then_read(
        settings, f"Patient/{pid}", at=lambda: later + REFRESH_WINDOW_MS + CLOCK_SKEW_MS + 1))
    assert flags == {"age-60-plus": "active", "diabetes": "inactive"}


def test_a_lower_page_maximum_does_not_stop_the_priority_record(settings: Settings) -> None:
    """FHIR_HUB_MAX_COUNT bounds what clients ask for, not what the hub reads for itself: with it at 50, the
    refresh still reads a person's diagnoses in one page of 1,000 (before: a 400, and the job failed)."""
    lower = settings.with_(max_count=50)
    with TestClient(create_app(lower), headers=auth(token_for(lower))) as client:
        made = client.post("/Patient", headers=FHIR, json={"resourceType": "Patient", "birthDate": "1950-03-04",
                                                            "name": [{"family": "Võ"}]})
        pid = made.json()["id"]
        assert client.post("/Condition", headers=FHIR, json={
            "resourceType": "Condition", "subject": {"reference": f"Patient/{pid}"},
            "code": {"coding": [{"system": ICD10, "code": "E11.9"}]}}).status_code == 201
    _master, flags, summary = asyncio.run(_work_then_read(lower, f"Patient/{pid}"))
    assert flags == {"age-60-plus": "active", "diabetes": "active"} and summary
