"""The hub's shipped ValueSets and CodeSystems over HTTP, as its StructureDefinitions
(``test_city_profiles_api.py``): readable by id and by ``url`` from the files, in front of the store; what a
client stores stays readable; the CapabilityStatement says they are there."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from fhir_hub.audit import EMERGENCY_TAG
from fhir_hub.fhir.validation import validate_resource
from fhir_hub.linking.elements import MASTER_TAG
from profiles.catalogue import SERVED_TYPES, shipped
from tests.conftest import assert_outcome

ENCOUNTER_CLASS = "https://fhir.hub.hcmc.vn/ValueSet/vn-encounter-class"
GENDER = "http://hl7.org/fhir/ValueSet/administrative-gender"
RECORD_ROLE = "https://fhir.hub.hcmc.vn/CodeSystem/record-role"


def test_the_hubs_value_sets_are_readable_by_id_and_url(client: TestClient) -> None:
    city = client.get("/ValueSet/vn-encounter-class")
    assert city.status_code == 200 and city.json()["url"] == ENCOUNTER_CLASS
    gender = client.get("/ValueSet/administrative-gender").json()
    assert gender["url"] == GENDER
    codes = sorted(c["code"] for c in gender["compose"]["include"][0]["concept"])
    assert codes == ["female", "male", "other", "unknown"]
    both = client.get("/ValueSet", params={"url": f"{ENCOUNTER_CLASS}|0.1.0,{GENDER}"}).json()
    assert both["total"] == 2
    assert [e["resource"]["id"] for e in both["entry"]] == ["vn-encounter-class", "administrative-gender"]
    assert_outcome(client.get("/ValueSet/nope"), 404, "not-found")


def test_the_hubs_code_systems_are_readable_by_id_and_url(client: TestClient) -> None:
    role = client.get("/CodeSystem/record-role")
    assert role.status_code == 200 and role.json()["url"] == RECORD_ROLE
    found = client.get("/CodeSystem", params={"url": RECORD_ROLE}).json()
    assert found["total"] == 1 and found["entry"][0]["resource"]["id"] == "record-role"


@pytest.mark.parametrize("rtype", ["ValueSet", "CodeSystem"])
def test_other_definitions_are_the_stores(client: TestClient, rtype: str) -> None:
    theirs = {"resourceType": rtype, "url": f"http://example.org/{rtype}/theirs", "status": "draft"}
    if rtype == "CodeSystem":
        theirs["content"] = "not-present"
    created = client.post(f"/{rtype}", json=theirs)
    assert created.status_code == 201, created.text
    rid = created.json()["id"]
    assert client.get(f"/{rtype}/{rid}").json()["url"] == theirs["url"]
    assert client.get(f"/{rtype}", params={"url": theirs["url"]}).json()["total"] == 1
    assert client.get(f"/{rtype}", params={"status": "draft"}).json()["total"] == 1  # not a url search: the store's


def test_the_capability_statement_says_the_shipped_definitions_are_served(client: TestClient) -> None:
    resources = {r["type"]: r for r in client.get("/metadata").json()["rest"][0]["resource"]}
    for rtype in SERVED_TYPES:
        assert f"{len(shipped(rtype))} {rtype} resources" in resources[rtype]["documentation"]
        assert {"read", "search-type"} <= {i["code"] for i in resources[rtype]["interaction"]}
    assert "documentation" not in resources["Patient"]


@pytest.mark.parametrize("rtype", SERVED_TYPES)
def test_every_shipped_definition_is_valid(rtype: str) -> None:
    for resource in shipped(rtype):
        validate_resource(resource)


def test_the_code_systems_hold_the_codes_the_hub_writes() -> None:
    """The files and the tags in code cannot drift apart."""
    concepts = {(cs["url"], c["code"]): c["display"] for cs in shipped("CodeSystem") for c in cs["concept"]}
    for tag in (MASTER_TAG, EMERGENCY_TAG):
        assert concepts[tag["system"], tag["code"]] == tag["display"]
