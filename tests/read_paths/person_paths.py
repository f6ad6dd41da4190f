"""The read-path contract for a person's records (issue 16): the link operations read Patients, so the
hidden resource here is a Patient record, linked to a visible one. ``$links`` and ``$review-list`` never
show it, and an operation naming it answers exactly as one naming a Patient that never existed.

Each path takes (open client, hiding client, the world's ids) and asserts; ``test_read_path_contract``
lists them under the interactions they cover.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient

from fhir_hub.auth.caller import Caller
from fhir_hub.config import Settings
from fhir_hub.main import create_app
from tests.conftest import as_

FHIR = {"Content-Type": "application/fhir+json"}
CCCD = "http://fhir.hl7.org.vn/core/sid/cccd"
HIDDEN = "pat-hidden-k3"  # an unusual id: a leak shows up as the string anywhere in an answer
ABSENT = "pat-never-created"


@dataclass
class PersonWorld:
    open_: TestClient
    hidden: TestClient
    ids: dict[str, str]  # "visible", "hidden" (one person), "pair" and "pair-hidden" (a review pair)


def _patient(rid: str, family: str, given: list[str], birth: str, **more: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": rid, "name": [{"family": family, "given": given}], "birthDate": birth,
            "gender": "female", **more}


@contextlib.contextmanager
def person_world(mongodb_uri: str, data_dir: Any) -> Iterator[PersonWorld]:
    settings = Settings(mongodb_uri=mongodb_uri, db_name=f"test_personpaths_{uuid.uuid4().hex[:10]}",
                        data_dir=data_dir, validation_processes=0, ingest_processes=0)
    records = [("pat-visible", "79001", _patient("pat-visible", "Hồ", ["Thị", "Thu"], "1960-01-01",
                                                 identifier=[{"system": CCCD, "value": "079160001111"}])),
               (HIDDEN, "79002", _patient(HIDDEN, "Ho", ["Thi", "Thu"], "1960-01-01",
                                          identifier=[{"system": CCCD, "value": "079160001111"}])),
               ("pat-pair", "79001", _patient("pat-pair", "Võ", ["Thị", "Hồng", "Nhung"], "1985-03-04")),
               ("pat-pair-hidden", "79002", _patient("pat-pair-hidden", "Võ", ["Thị", "Nhung"], "1985-03-04"))]
    operator = as_(settings, facility=None)  # the hub's operator: every facility's Patient records (policy.json)
    with TestClient(create_app(settings), raise_server_exceptions=False, headers=operator) as open_, \
            TestClient(create_app(settings), raise_server_exceptions=False, headers=operator) as hidden:
        for rid, facility, body in records:
            answer = open_.put(f"/Patient/{rid}", json=body, headers={**FHIR, **as_(settings, facility=facility)})
            assert answer.status_code == 201, answer.text
        hidden.app.state.hub.access = _withholding(hidden.app.state.hub.access,
                                                   {f"Patient/{HIDDEN}", "Patient/pat-pair-hidden"})
        yield PersonWorld(open_, hidden, {"visible": "pat-visible", "hidden": HIDDEN, "pair": "pat-pair",
                                          "pair-hidden": "pat-pair-hidden"})


def _withholding(decide: Callable[[Caller], Any], keys: set[str]) -> Callable[[Caller], Any]:
    return lambda caller: decide(caller).withholding(keys)


def _parameters(**refs: str) -> dict[str, Any]:
    parameter: list[dict[str, Any]] = [{"name": k.replace("_", "-"), "valueReference": {"reference": v}}
                                       for k, v in refs.items()]
    return {"resourceType": "Parameters", "parameter": parameter}


def _same_as_absent(hidden: TestClient, send: Callable[[TestClient, str], Any]) -> None:
    at_hidden, at_absent = send(hidden, HIDDEN), send(hidden, ABSENT)
    assert at_hidden.status_code == at_absent.status_code == 404
    assert at_hidden.text.replace(HIDDEN, "<id>") == at_absent.text.replace(ABSENT, "<id>")


def links(world: PersonWorld) -> None:
    """A person's links list the hidden record nowhere; the hidden record's own links answer 404."""
    seen = world.open_.get(f"/Patient/{world.ids['visible']}/$links").text
    assert HIDDEN in seen  # the world is as meant: one person, two records
    shown = world.hidden.get(f"/Patient/{world.ids['visible']}/$links")
    assert shown.status_code == 200 and HIDDEN not in shown.text
    _same_as_absent(world.hidden, lambda c, rid: c.get(f"/Patient/{rid}/$links"))


def review_list(world: PersonWorld) -> None:
    """A pair whose one record is hidden is not listed."""
    assert "pat-pair-hidden" in world.open_.get("/Patient/$review-list").text
    shown = world.hidden.get("/Patient/$review-list")
    assert shown.status_code == 200 and "pat-pair-hidden" not in shown.text


def merge(world: PersonWorld) -> None:
    _same_as_absent(world.hidden, lambda c, rid: c.post("/Patient/$merge", json=_parameters(
        source_patient=f"Patient/{rid}", target_patient=f"Patient/{world.ids['pair']}"), headers=FHIR))


def review(world: PersonWorld) -> None:
    _same_as_absent(world.hidden, lambda c, rid: c.post("/Patient/$review", json={
        **_parameters(record=f"Patient/{world.ids['pair']}", candidate=f"Patient/{rid}"),
        "parameter": [*_parameters(record=f"Patient/{world.ids['pair']}", candidate=f"Patient/{rid}")["parameter"],
                      {"name": "decision", "valueCode": "different"}]}, headers=FHIR))


def unmerge(world: PersonWorld) -> None:
    _same_as_absent(world.hidden, lambda c, rid: c.post("/Patient/$unmerge", json=_parameters(
        patient=f"Patient/{rid}"), headers=FHIR))


PERSON_PATHS: list[Callable[[PersonWorld], None]] = [links, review_list, merge, review, unmerge]
