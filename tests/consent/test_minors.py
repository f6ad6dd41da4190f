"""A child's consent: under 7 a guardian gives it; from 7 to under 16 the guardian and the child; from 16
the person. Guardians are RelatedPersons with a guardian relationship, signing in with a patient token
for the child (``fhirUser`` names the RelatedPerson)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from fastapi.testclient import TestClient

from fhir_hub.config import Settings
from fhir_hub.main import create_app
from tests.conftest import as_, assert_outcome
from tests.consent.test_consent_reads import FHIR, clinician, consent, give, put

ROLE_CODES = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"


def born_years_ago(years: int) -> str:
    today = date.today()
    return today.replace(year=today.year - years, day=min(today.day, 28)).isoformat()


@pytest.fixture
def family(settings: Settings) -> Iterator[TestClient]:
    """Facility 79002 records two children, a guardian for each and an aunt who is not a guardian."""
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        other = as_(settings, facility="79002")
        for child, years in (("kid-5", 5), ("kid-12", 12)):
            put(client, other, "Patient", child, {"name": [{"family": "Lê", "given": [child]}],
                                                  "birthDate": born_years_ago(years), "gender": "male"})
            put(client, other, "Observation", f"obs-{child}", {
                "status": "final", "code": {"text": "height"}, "subject": {"reference": f"Patient/{child}"}})
            put(client, other, "RelatedPerson", f"guardian-{child}", {
                "patient": {"reference": f"Patient/{child}"},
                "relationship": [{"coding": [{"system": ROLE_CODES, "code": "GUARD"}]}]})
        put(client, other, "RelatedPerson", "aunt", {"patient": {"reference": "Patient/kid-5"},
                                                     "relationship": [{"coding": [{"system": ROLE_CODES,
                                                                                   "code": "AUNT"}]}]})
        yield client


def guardian(settings: Settings, child: str, who: str | None = None) -> dict[str, str]:
    return as_(settings, "resident", patient=child, fhir_user=f"RelatedPerson/{who or 'guardian-' + child}")


def for_child(child: str) -> dict[str, object]:
    return {**consent(), "patient": {"reference": f"Patient/{child}"}}


def visible(client: TestClient, settings: Settings, child: str) -> bool:
    response = client.get(f"/Observation/obs-{child}", headers=clinician(settings))
    assert response.status_code in (200, 404)
    return response.status_code == 200


def test_a_guardian_consents_for_a_five_year_old(family: TestClient, settings: Settings) -> None:
    assert not visible(family, settings, "kid-5")
    give(family, guardian(settings, "kid-5"), for_child("kid-5"))
    assert visible(family, settings, "kid-5")


def test_a_twelve_year_old_and_the_guardian_must_both_agree(family: TestClient, settings: Settings) -> None:
    cid = give(family, guardian(settings, "kid-12"), for_child("kid-12"))
    assert not visible(family, settings, "kid-12")  # the guardian alone is not enough at 12
    why = family.get("/Observation/obs-kid-12/$access-check", params={"facility": "79001"},
                     headers=as_(settings, facility=None)).text
    assert f"Not yet agreed by whom the person's age requires: Consent/{cid}" in why
    put(family, as_(settings, "resident", patient="kid-12"), "Consent", cid, {**for_child("kid-12"), "id": cid})
    assert visible(family, settings, "kid-12")
    agreed = family.get(f"/Consent/{cid}", headers=as_(settings, "resident", patient="kid-12")).json()
    assert {v["verifiedWith"]["reference"] for v in agreed["verification"]} == {
        "RelatedPerson/guardian-kid-12", "Patient/kid-12"}


def test_the_child_alone_cannot_consent_at_twelve(family: TestClient, settings: Settings) -> None:
    give(family, as_(settings, "resident", patient="kid-12"), for_child("kid-12"))
    assert not visible(family, settings, "kid-12")


def test_a_relative_who_is_not_a_guardian_cannot_consent(family: TestClient, settings: Settings) -> None:
    response = family.post("/Consent", json=for_child("kid-5"), headers={**FHIR, **guardian(settings, "kid-5",
                                                                                          "aunt")})
    assert "not a guardian" in assert_outcome(response, 403)["issue"][0]["diagnostics"]
    other_child = family.post("/Consent", json=for_child("kid-5"),
                              headers={**FHIR, **guardian(settings, "kid-5", "guardian-kid-12")})
    assert_outcome(other_child, 403)
