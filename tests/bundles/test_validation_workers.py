"""Transactions validated by worker processes: the same answers, the same all-or-nothing, and validation in
process whenever a worker's verdict cannot be trusted (content changed, worker gone)."""

from __future__ import annotations

import copy
import io
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

import fhir_hub.fhir.validation_ahead as validation_ahead
from fhir_hub.bundles.references import references_in
from fhir_hub.config import Settings
from fhir_hub.errors import HubError
from fhir_hub.fhir.validation_ahead import MIN_RESOURCES, Handover, ValidationAhead
from fhir_hub.fhir.validation_worker import FRAME, READY, decode_request, encode_request, serve
from fhir_hub.hub import Hub
from fhir_hub.linking.elements import is_master
from fhir_hub.main import create_app
from tests.bundles.helpers import BOB, CECELIA, HOSPITALS, PRACTITIONERS, diagnostics, dump, statuses, synthea
from tests.conftest import auth, token_for

MINIMAL = {"Prefer": "return=minimal"}


async def _workers_up(hub: Hub) -> None:
    assert await hub.writer.validation.started(), "the validation worker did not start"


def _client(settings: Settings) -> TestClient:
    return TestClient(create_app(settings, on_startup=_workers_up), raise_server_exceptions=False,
                      headers=auth(token_for(settings)))


@pytest.fixture
def worker_client(settings: Settings) -> Iterator[TestClient]:
    with _client(settings.with_(validation_processes=1)) as client:
        yield client


@pytest.fixture
def in_process_validations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The resource types validated in the hub's own process (not by a worker) during the test."""
    seen: list[str] = []
    real = validation_ahead.validate_resource

    def counting(resource: dict[str, Any], *, expected_type: str | None = None) -> str:
        if not is_master(resource):  # masters: the hub's own writes once a transaction is stored (issue 16)
            seen.append(str(resource.get("resourceType")))
        return real(resource, expected_type=expected_type)

    monkeypatch.setattr(validation_ahead, "validate_resource", counting)
    return seen


def _load_referenced_directories(client: TestClient) -> None:
    wanted = {ref.split("?", 1)[1] for name in (BOB, CECELIA) for e in synthea(name)["entry"]
              for ref in references_in(e["resource"]) if "?" in ref}
    for name in (HOSPITALS, PRACTITIONERS):
        bundle = synthea(name)
        bundle["entry"] = [e for e in bundle["entry"] if e["request"].get("ifNoneExist") in wanted]
        assert set(statuses(client.post("/", json=bundle, headers=MINIMAL).json())) == {"201 Created"}


def test_synthea_transactions_are_validated_by_the_worker_and_stored_whole(
        worker_client: TestClient, in_process_validations: list[str]) -> None:
    _load_referenced_directories(worker_client)
    in_process_validations.clear()
    for name in (BOB, CECELIA):
        bundle = synthea(name)
        answer = worker_client.post("/", json=bundle)
        assert answer.status_code == 200, answer.text[:500]
        stored = [e["resource"] for e in answer.json()["entry"]]
        assert len(stored) == len(bundle["entry"])
        targets = {ref for resource in stored for ref in references_in(resource) if not ref.startswith("#")}
        assert not [t for t in targets if "?" in t or t.startswith("urn:")]
        for resource in stored[:: max(1, len(stored) // 10)]:
            assert worker_client.get(f"/{resource['resourceType']}/{resource['id']}").status_code == 200
    assert in_process_validations == [], "every resource of the transactions was validated by the worker"


def _broken(bundle: dict[str, Any], index: int) -> dict[str, Any]:
    broken = copy.deepcopy(bundle)
    broken["entry"][index]["resource"]["status"] = "not-a-status-code"
    broken["entry"][index]["resource"]["unknownElement"] = True
    return broken


def test_an_invalid_entry_is_refused_as_without_workers_and_nothing_remains(settings: Settings) -> None:
    answers = {}
    for processes in (0, 1):
        configured = settings.with_(validation_processes=processes, db_name=f"{settings.db_name}_{processes}")
        with _client(configured) if processes else TestClient(
                create_app(configured), raise_server_exceptions=False,
                headers=auth(token_for(configured))) as client:
            _load_referenced_directories(client)
            before = dump(configured)
            answer = client.post("/", json=_broken(synthea(BOB), 150))
            assert answer.status_code == 400, answer.text[:500]
            assert dump(configured) == before
            answers[processes] = answer.json()
    assert "Bundle.entry[150]" in diagnostics(answers[1])
    assert answers[1]["issue"] == answers[0]["issue"], "same problems, same element paths, same codes"


def _observations(n: int) -> list[tuple[str, dict[str, Any]]]:
    return [("Observation", {"resourceType": "Observation", "status": "final",
                             "code": {"text": f"reading {i}"}, "valueQuantity": {"value": i, "unit": "mmHg"}})
            for i in range(n)]


@pytest.fixture
async def ahead() -> AsyncIterator[ValidationAhead]:
    """One worker's pool, not started (a test that needs it up awaits ``started``), always closed."""
    pool = ValidationAhead(1)
    try:
        yield pool
    finally:
        await pool.close()


@contextmanager
def _handed_over(ahead: ValidationAhead, resources: list[tuple[str, dict[str, Any]]]) -> Iterator[Handover]:
    with ahead.ahead(len(resources)) as handover:
        for rtype, resource in resources:
            handover.add(rtype, resource)
        handover.flush()
        yield handover


@pytest.mark.anyio
async def test_content_changed_after_the_handover_is_validated_again_in_process(ahead: ValidationAhead) -> None:
    assert await ahead.started()
    resources = _observations(MIN_RESOURCES)
    with _handed_over(ahead, resources):
        await ahead.check(resources[0][1], "Observation")  # valid, as handed over
        resources[1][1]["effectiveDateTime"] = "31/12/2025"  # changed after the worker saw it valid
        with pytest.raises(HubError, match="effectiveDateTime"):
            await ahead.check(resources[1][1], "Observation")


@pytest.mark.anyio
async def test_a_worker_that_dies_is_replaced_and_its_resources_validated_in_process(ahead: ValidationAhead) -> None:
    assert await ahead.started()
    resources = _observations(MIN_RESOURCES)
    resources[3][1]["valueQuantity"]["value"] = "high"  # a string where a decimal belongs
    ahead._workers[0].process.kill()
    await ahead._workers[0].process.wait()
    with _handed_over(ahead, resources):  # not ready any more: replaced for the next transaction
        await ahead.check(resources[0][1], "Observation")
        with pytest.raises(HubError, match="valueQuantity"):
            await ahead.check(resources[3][1], "Observation")
    assert await ahead.started(), "a new worker was started"
    with _handed_over(ahead, resources):
        with pytest.raises(HubError, match="valueQuantity"):
            await ahead.check(resources[3][1], "Observation")


@pytest.mark.anyio
async def test_few_resources_are_not_handed_over(ahead: ValidationAhead) -> None:
    with _handed_over(ahead, _observations(MIN_RESOURCES - 1)) as handover:
        assert handover.handed == []
    assert ahead._workers == [], "a small transaction does not start workers"


# ------------------------------------------------------------------------------------------- the protocol
_items = st.lists(st.tuples(st.sampled_from(["Patient", "Observation", "Ärzte", ""]), st.binary(max_size=200)),
                  max_size=8)


@given(_items)
@hypothesis_settings(max_examples=200)
def test_requests_decode_to_what_was_encoded(items: list[tuple[str, bytes]]) -> None:
    framed = encode_request(items)
    (size,) = FRAME.unpack_from(framed)
    assert size == len(framed) - FRAME.size
    assert decode_request(framed[FRAME.size:]) == items


def _answers(stream: bytes) -> list[bytes]:
    out, offset = [], 0
    while offset < len(stream):
        (size,) = FRAME.unpack_from(stream, offset)
        out.append(stream[offset + FRAME.size:offset + FRAME.size + size])
        offset += FRAME.size + size
    return out


@given(st.lists(st.sampled_from(["valid", "unknown-element", "not-json", "wrong-type", "bad-date"]),
                min_size=1, max_size=6))
@hypothesis_settings(max_examples=40, deadline=None)
def test_the_worker_answers_one_verdict_per_resource_in_order(kinds: list[str]) -> None:
    patient = {"resourceType": "Patient", "name": [{"family": "Nguyễn"}], "gender": "female"}
    bodies = {"valid": json.dumps(patient).encode(),
              "unknown-element": json.dumps({**patient, "colour": "blue"}).encode(),
              "not-json": b"{not json",
              "wrong-type": json.dumps({**patient, "resourceType": "Observation"}).encode(),
              "bad-date": json.dumps({**patient, "birthDate": "31/12/1990"}).encode()}
    answers = io.BytesIO()
    serve(io.BytesIO(encode_request([("Patient", bodies[k]) for k in kinds]) * 2), answers)
    ready, first, second = _answers(answers.getvalue())
    assert ready == READY
    assert first == second == bytes(1 if k == "valid" else 0 for k in kinds)


@pytest.mark.anyio
async def test_asking_a_worker_whose_output_ended_fails_at_once_instead_of_waiting_forever(
        ahead: ValidationAhead) -> None:
    assert await ahead.started()
    worker = ahead._workers[0]
    worker.process.kill()
    assert worker.reader is not None
    await worker.reader  # the end of its output was seen
    answer = worker.ask([("Observation", b"{}")])
    with pytest.raises(validation_ahead.WorkerGone):
        await answer
