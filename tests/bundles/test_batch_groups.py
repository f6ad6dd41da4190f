"""Batch entries committed in groups behave as if each were committed on its own.

A group's later entries must see its earlier writes (``store/own_writes.py``); an entry that writes a
resource the group already wrote starts a new group; a group that fails to commit runs again one entry at a
time. The property test compares grouped processing with groups of one over generated batches.
"""

from __future__ import annotations

import uuid
from typing import Any
from unittest import mock

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from fhir_hub.bundles import processor
from fhir_hub.config import Settings
from fhir_hub.store.audit_log import unpacked
from fhir_hub.store.mongo import MongoStore
from fhir_hub.store.schema import AUDIT
from tests.bundles.helpers import FHIR, diagnostics, dump, statuses


def _batch(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "batch", "entry": list(entries)}


def _patient(system: str, value: str, **more: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "identifier": [{"system": system, "value": value}], **more}


def _post(resource: dict[str, Any], if_none_exist: str | None = None) -> dict[str, Any]:
    request = {"method": "POST", "url": resource["resourceType"]}
    if if_none_exist is not None:
        request["ifNoneExist"] = if_none_exist
    return {"resource": resource, "request": request}


def _put(url: str, resource: dict[str, Any]) -> dict[str, Any]:
    return {"resource": resource, "request": {"method": "PUT", "url": url}}


def _send(client: TestClient, bundle: dict[str, Any]) -> dict[str, Any]:
    answer = client.post("/", json=bundle, headers=FHIR)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def _located(answer: dict[str, Any], n: int) -> str:
    return "/".join(answer["entry"][n]["response"]["location"].split("/")[-4:-2])


@pytest.fixture
def system() -> str:
    return f"urn:test:{uuid.uuid4().hex[:8]}"


def test_the_same_if_none_exist_twice_finds_the_first(client: TestClient, system: str) -> None:
    answer = _send(client, _batch(_post(_patient(system, "1"), f"identifier={system}|1"),
                                  _post(_patient(system, "1"), f"identifier={system}|1")))
    assert statuses(answer) == ["201 Created", "200 OK"]
    assert _located(answer, 0) == _located(answer, 1)


def test_a_conditional_reference_finds_an_earlier_entry(client: TestClient, system: str) -> None:
    role = {"resourceType": "PractitionerRole", "practitioner": {"reference": f"Practitioner?identifier={system}|7"}}
    practitioner = {"resourceType": "Practitioner", "identifier": [{"system": system, "value": "7"}]}
    answer = _send(client, _batch(_post(practitioner, f"identifier={system}|7"), _post(role)))
    assert statuses(answer) == ["201 Created", "201 Created"]
    stored = client.get(_located(answer, 1)).json()
    assert stored["practitioner"]["reference"] == _located(answer, 0)


def test_two_writes_of_one_resource_are_two_versions(client: TestClient, system: str) -> None:
    rid = f"p-{uuid.uuid4().hex[:8]}"
    answer = _send(client, _batch(_put(f"Patient/{rid}", _patient(system, "1", id=rid)),
                                  _put(f"Patient/{rid}", _patient(system, "2", id=rid))))
    assert statuses(answer) == ["201 Created", "200 OK"]
    assert [e["response"]["etag"] for e in answer["entry"]] == ['W/"1"', 'W/"2"']
    assert client.get(f"Patient/{rid}").json()["identifier"][0]["value"] == "2"


def test_a_conditional_update_finds_what_an_earlier_entry_created(client: TestClient, system: str) -> None:
    answer = _send(client, _batch(_post(_patient(system, "1"), f"identifier={system}|1"),
                                  _put(f"Patient?identifier={system}|1", _patient(system, "1", active=True))))
    assert statuses(answer) == ["201 Created", "200 OK"]
    assert _located(answer, 0) == _located(answer, 1)


def test_an_entry_sees_the_group_rewrite_a_stored_resource(client: TestClient, system: str) -> None:
    """The store still holds the old identifier's entries until the group commits: they must not match."""
    rid = f"p-{uuid.uuid4().hex[:8]}"
    client.put(f"Patient/{rid}", json=_patient(system, "old", id=rid), headers=FHIR)
    answer = _send(client, _batch(_put(f"Patient/{rid}", _patient(system, "new", id=rid)),
                                  _post(_patient(system, "old"), f"identifier={system}|old"),
                                  _post(_patient(system, "new"), f"identifier={system}|new")))
    assert statuses(answer) == ["200 OK", "201 Created", "200 OK"]
    assert _located(answer, 1) != f"Patient/{rid}"
    assert _located(answer, 2) == f"Patient/{rid}"



@pytest.mark.parametrize("criteria", ["identifier={s}|1&birthdate:missing=true", "identifier:not={s}|2&family=lee",
                                      "_lastUpdated=gt2000-01-01&identifier={s}|1", "_id:missing=false&family=lee"])
def test_complements_and_last_updated_see_the_group(client: TestClient, system: str, criteria: str) -> None:
    """Criteria evaluated over every live resource of the type (``:missing``, ``:not``, ``_lastUpdated``)."""
    family = f"lee{uuid.uuid4().hex[:6]}"
    condition = criteria.format(s=system).replace("family=lee", f"family={family}")
    answer = _send(client, _batch(_post(_patient(system, "1", name=[{"family": family}])),
                                  _post(_patient(system, "1", name=[{"family": family}]), condition)))
    assert statuses(answer) == ["201 Created", "200 OK"]
    assert _located(answer, 0) == _located(answer, 1)

def test_a_bad_entry_fails_alone_inside_a_group(client: TestClient, system: str) -> None:
    answer = _send(client, _batch(_post(_patient(system, "1")), _post(_patient(system, "2", birthDate="soon")),
                                  _post(_patient(system, "3"))))
    assert statuses(answer)[0] == statuses(answer)[2] == "201 Created"
    assert statuses(answer)[1].startswith("400")
    assert "Bundle.entry[1]" in diagnostics(answer["entry"][1]["response"]["outcome"])
    found = client.get("Patient", params={"identifier": f"{system}|"}).json()
    assert sorted(e["resource"]["identifier"][0]["value"] for e in found["entry"]) == ["1", "3"]


def test_more_entries_than_a_group_take_several(client: TestClient, system: str) -> None:
    with mock.patch.object(processor, "BATCH_GROUP", 3):
        answer = _send(client, _batch(*(_post(_patient(system, str(n)), f"identifier={system}|{n % 5}")
                                        for n in range(11))))
    assert statuses(answer) == ["201 Created"] * 5 + ["200 OK"] * 6
    assert client.get("Patient", params={"identifier": f"{system}|", "_summary": "count"}).json()["total"] == 5


def test_a_group_that_fails_to_commit_runs_again_one_entry_at_a_time(client: TestClient, settings: Settings,
                                                                       system: str) -> None:
    real = MongoStore.transaction
    failed: list[int] = []

    def failing_once(self: MongoStore) -> Any:
        inner = real(self)

        class Failing:
            async def __aenter__(self) -> Any:
                self.tx = await inner.__aenter__()
                return self.tx

            async def __aexit__(self, *exc: Any) -> Any:
                if exc[0] is None and not failed and len(self.tx.changes) > 1:
                    failed.append(len(self.tx.changes))
                    error = OperationFailure("injected: the group's commit failed")
                    await inner.__aexit__(type(error), error, None)
                    raise error
                return await inner.__aexit__(*exc)

        return Failing()

    before = dump(settings)
    with mock.patch.object(MongoStore, "transaction", failing_once):
        answer = _send(client, _batch(_post(_patient(system, "1"), f"identifier={system}|1"),
                                      _post(_patient(system, "1"), f"identifier={system}|1"),
                                      _post(_patient(system, "2"))))
    assert failed == [4]  # the group of three wrote two resources and their new persons' masters; its commit failed
    assert statuses(answer) == ["201 Created", "200 OK", "201 Created"]
    assert _located(answer, 0) == _located(answer, 1)
    after = dump(settings)
    # nothing of the failed group remains: two Patients (and their two masters, issue 16)
    assert len(after["resources"]) == len(before["resources"]) + 4
    assert sum(1 for r in after["resources"] if r["_id"].startswith("Patient/master-")) == 2
    client.portal.call(client.app.state.hub.audit.flush)
    with MongoClient(settings.mongodb_uri) as mongo:
        entries = [unpacked(doc) for doc in mongo[settings.db_name][AUDIT].find({})]
    posts = [entry for entry in entries if entry["req"]["method"] == "POST"]
    touched = {key for entry in posts for key in entry["r"]}
    assert touched == {_located(answer, 0), _located(answer, 2)}  # not the ids of the rolled-back attempt


# ------------------------------------------------------------------------------------ the property
VALUES = ("a", "b", "c")
operations = st.lists(st.one_of(
    st.tuples(st.just("create"), st.sampled_from(VALUES)),
    st.tuples(st.just("put"), st.integers(0, 2), st.sampled_from(VALUES)),
    st.tuples(st.just("cput"), st.sampled_from(VALUES), st.sampled_from(VALUES)),
    st.tuples(st.just("delete"), st.sampled_from(VALUES)),
    st.tuples(st.just("obs"), st.sampled_from(VALUES)),
    st.tuples(st.just("bad"), st.sampled_from(VALUES)),
), min_size=1, max_size=12)


def _entry(op: tuple[Any, ...], system: str, ids: str) -> dict[str, Any]:
    kind = op[0]
    if kind == "create":
        return _post(_patient(system, op[1]), f"identifier={system}|{op[1]}")
    if kind == "put":
        return _put(f"Patient/{ids}-{op[1]}", _patient(system, op[2], id=f"{ids}-{op[1]}"))
    if kind == "cput":
        return _put(f"Patient?identifier={system}|{op[1]}", _patient(system, op[2]))
    if kind == "delete":
        return {"request": {"method": "DELETE", "url": f"Patient?identifier={system}|{op[1]}"}}
    if kind == "obs":
        return _post({"resourceType": "Observation", "status": "final", "code": {"text": system},
                      "subject": {"reference": f"Patient?identifier={system}|{op[1]}"}})
    return _post(_patient(system, op[1], birthDate="never"))


def _state(client: TestClient, system: str) -> list[tuple[Any, ...]]:
    """What the batch left, without the server-assigned ids: each Patient's identifier and version, each
    Observation's subject by identifier."""
    patients = client.get("Patient", params={"identifier": f"{system}|", "_count": 100}).json().get("entry", [])
    by_key = {f"Patient/{e['resource']['id']}": e["resource"] for e in patients}
    observations = client.get("Observation", params={"code:text": system, "_count": 100}).json().get("entry", [])
    return sorted([("Patient", p["identifier"][0]["value"], p["meta"]["versionId"]) for p in by_key.values()]
                  + [("Observation", by_key.get(o["resource"]["subject"]["reference"], {"identifier": [{"value": "?"}]})
                      ["identifier"][0]["value"], "") for o in observations])


@given(ops=operations)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_grouped_batches_answer_as_entries_one_at_a_time(module_client: TestClient, ops: list[tuple[Any, ...]]) -> None:
    def run(group: int) -> tuple[list[str], list[tuple[Any, ...]]]:
        tag = uuid.uuid4().hex[:8]
        system = f"urn:prop:{tag}"
        with mock.patch.object(processor, "BATCH_GROUP", group):
            answer = _send(module_client, _batch(*(_entry(op, system, tag) for op in ops)))
        return [s.split(" ")[0] for s in statuses(answer)], _state(module_client, system)

    assert run(64) == run(1)

