"""Real FHIR client libraries, unchanged, against the running server."""

from __future__ import annotations

import httpx
import pytest
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
