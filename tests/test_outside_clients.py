"""Real FHIR client libraries, unchanged, against the running server."""

from __future__ import annotations

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
