"""Real FHIR client libraries, unchanged, against the running server."""

from __future__ import annotations

import httpx
import pytest
import requests
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import ResourceNotFound

from fhir_hub.config import Settings
from tests.conftest import token_for

pytestmark = pytest.mark.server


def test_fhirpy_create_read_update_delete_search(live_server: str, settings: Settings) -> None:
    client = SyncFHIRClient(live_server, authorization=f"Bearer {token_for(settings)}",
                            extra_headers={"Accept": "application/fhir+json"})
    patient = client.resource("Patient", name=[{"family": "Lê", "given": ["Thị", "Hoa"]}], gender="female",
                              birthDate="1958-02-11",
                              identifier=[{"system": "http://fhir.hl7.org.vn/core/sid/cccd", "value": "079158000123"}])
    patient.save()
    assert patient.id and patient["meta"]["versionId"] == "1"

    fetched = client.reference("Patient", patient.id).to_resource()
    assert fetched["name"][0]["family"] == "Lê"

    fetched["active"] = True
    fetched.save()
    assert fetched["meta"]["versionId"] == "2"
    assert client.reference("Patient", patient.id).to_resource()["active"] is True

    found = client.resources("Patient").search(_id=patient.id).fetch()
    assert [p.id for p in found] == [patient.id]
    by_identifier = client.resources("Patient").search(
        identifier="http://fhir.hl7.org.vn/core/sid/cccd|079158000123").fetch_all()
    assert [p.id for p in by_identifier] == [patient.id]
    assert client.resources("Patient").search(_id="nobody").fetch() == []

    fetched.delete()
    with pytest.raises(ResourceNotFound):
        client.reference("Patient", patient.id).to_resource()
    assert client.resources("Patient").search(_id=patient.id).fetch() == []


def test_fhirpy_pages_through_every_result(live_server: str, settings: Settings) -> None:
    client = SyncFHIRClient(live_server, authorization=f"Bearer {token_for(settings)}")
    created = set()
    for i in range(23):
        resource = client.resource("Organization", name=f"Trạm Y tế {i}")
        resource.save()
        created.add(resource.id)
    seen = [org.id for org in client.resources("Organization").limit(5).fetch_all()]
    assert len(seen) == len(set(seen)) == 23
    assert set(seen) == created


def _seed_observations(base: str, token: str, patient: str, count: int, *, start: int = 0) -> set[str]:
    """Blood-pressure Observations for one patient, a different day each (some days repeat, to test ties)."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    ids = set()
    with httpx.Client(base_url=base, headers=headers) as http:
        for i in range(start, start + count):
            rid = f"{patient}-bp-{i}"
            body = {"resourceType": "Observation", "id": rid, "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                    "subject": {"reference": f"Patient/{patient}"},
                    "effectiveDateTime": f"2024-{1 + i % 12:02d}-{1 + (i // 12) % 28:02d}",
                    "valueQuantity": {"value": 100 + i % 60, "unit": "mmHg", "system": "http://unitsofmeasure.org",
                                      "code": "mm[Hg]"}}
            assert http.put(f"/Observation/{rid}", json=body).status_code == 201
            ids.add(rid)
    return ids


def test_fhirpy_pages_a_large_sorted_result_while_others_write(live_server: str, settings: Settings) -> None:
    """Keyset pages: each resource that matched before paging began is seen exactly once, even though
    matching resources are written between pages (they may or may not appear, but never twice)."""
    token = token_for(settings)
    before = _seed_observations(live_server, token, "pager", 300)
    client = SyncFHIRClient(live_server, authorization=f"Bearer {token}")
    search = client.resources("Observation").search(subject="Patient/pager", code="8480-6").sort("-date").limit(25)
    seen: list[str] = []
    dates: list[str] = []
    for index, observation in enumerate(search):
        seen.append(observation.id)
        dates.append(observation["effectiveDateTime"])
        if index % 25 == 0 and index < 125:  # at the start of each of the first pages, another system writes
            _seed_observations(live_server, token, "pager", 4, start=1000 + index)
    assert len(seen) == len(set(seen))
    assert before <= set(seen)
    assert dates == sorted(dates, reverse=True)


def test_fhirclient_pages_through_every_result(live_server: str, settings: Settings) -> None:
    from fhirclient.models.observation import Observation
    from fhirclient.server import FHIRServer

    token = token_for(settings)
    expected = _seed_observations(live_server, token, "smart", 230)
    _seed_observations(live_server, token, "someone-else", 20)
    server = FHIRServer(None, base_uri=live_server)
    server.session.headers["Authorization"] = f"Bearer {token}"
    search = Observation.where(struct={"subject": "Patient/smart", "_count": "40"})
    pages = list(search.perform_iter(server))
    seen = [entry.resource.id for bundle in pages for entry in bundle.entry or [] if entry.resource]
    assert len(pages) == 6
    assert pages[0].total == 230
    assert len(seen) == len(set(seen)) == 230
    assert set(seen) == expected


# ------------------------------------------------------------------ the conventions of issue 21, as clients use them
CCCD = "http://fhir.hl7.org.vn/core/sid/cccd"


def test_fhirpy_uses_get_or_create_elements_history_totals_gzip_and_cors(live_server: str, settings: Settings) -> None:
    """fhirpy as a browser-side or integration client would: its ``get_or_create`` (criteria in the URL of a
    POST), ``_elements`` on a read, a history total; every answer it received recorded (requests' response
    hook): bundles came gzipped (requests asks for gzip) and carried the CORS header for its Origin."""
    seen: list[requests.Response] = []
    client = SyncFHIRClient(live_server, authorization=f"Bearer {token_for(settings)}",
                            extra_headers={"Origin": "https://app.clinic.example"},
                            requests_config={"hooks": {"response": [lambda r, *_a, **_k: seen.append(r)]}})
    wanted = client.resources("Patient").search(identifier=f"{CCCD}|079160000999")
    body = client.resource("Patient", identifier=[{"system": CCCD, "value": "079160000999"}],
                           name=[{"family": "Đỗ", "given": ["Thị", "Lan"]}], birthDate="1960-05-06")
    first, created = wanted.get_or_create(body)
    again, created_again = wanted.get_or_create(body)
    assert (created, created_again) == (True, False) and first.id == again.id
    assert [p.id for p in wanted.fetch_all()] == [first.id]

    again["active"] = True
    again.save()
    subset = client.execute(f"Patient/{first.id}", method="get", params={"_elements": "name"})
    assert set(subset) == {"resourceType", "id", "meta", "name"}
    assert any(tag["code"] == "SUBSETTED" for tag in subset["meta"]["tag"])
    history = client.execute(f"Patient/{first.id}/_history", method="get", params={"_count": "1"})
    assert history["total"] == 2 and len(history["entry"]) == 1

    for i in range(12):  # a searchset large enough to be compressed
        client.resource("Organization", name=f"Phòng khám đa khoa số {i}", alias=["x" * 40]).save()
    assert len(client.resources("Organization").limit(12).fetch()) == 12
    assert any(r.headers.get("Content-Encoding") == "gzip" for r in seen)
    assert all(r.headers.get("Access-Control-Allow-Origin") == "*" for r in seen)


def test_fhirclient_reads_heads_subsets_and_totals_history(live_server: str, settings: Settings) -> None:
    """fhirclient: a subsetted read and a history Bundle parsed by its R4 models; HEAD through its own
    requests session (the library has no HEAD call of its own)."""
    from fhirclient.models.bundle import Bundle
    from fhirclient.models.patient import Patient
    from fhirclient.server import FHIRServer

    token = token_for(settings)
    server = FHIRServer(None, base_uri=live_server)
    server.session.headers["Authorization"] = f"Bearer {token}"
    patient = Patient({"name": [{"family": "Huỳnh", "given": ["Văn", "Bảy"]}], "gender": "male",
                       "birthDate": "1950-07-08"})
    pid = patient.create(server)["id"]
    for active in (True, False):
        fetched = Patient.read(pid, server)
        fetched.active = active
        fetched.update(server)

    subset = Patient(server.request_json(f"Patient/{pid}?_elements=birthDate"))
    assert subset.birthDate.isostring == "1950-07-08" and subset.name is None
    assert [t.code for t in subset.meta.tag] == ["SUBSETTED"]
    history = Bundle(server.request_json(f"Patient/{pid}/_history?_count=2"))
    assert history.total == 3 and len(history.entry) == 2

    read = server._get(f"Patient/{pid}")
    head = server.session.head(f"{live_server}/Patient/{pid}", headers={"Accept": "application/fhir+json"})
    assert head.status_code == 200 and head.content == b""
    assert head.headers["ETag"] == read.headers["ETag"] == 'W/"3"'
    assert head.headers["Content-Type"] == read.headers["Content-Type"]
