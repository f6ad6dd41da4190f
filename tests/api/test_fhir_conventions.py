"""FHIR conventions over HTTP (issue 21): ``_summary``/``_elements`` on read and vread, history totals, the
404 of an unknown version, unknown operations, conditional create with criteria in the URL, a PATCH in
plain JSON."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from fhir_hub.config import Settings
from fhir_hub.fhir.registry import r4_resource_types
from fhir_hub.fhir.subset import SUBSETTED
from tests.conftest import as_, assert_outcome

FHIR = {"Content-Type": "application/fhir+json"}
CCCD = "http://fhir.hl7.org.vn/core/sid/cccd"


def put(client: TestClient, rtype: str, rid: str, headers: dict[str, str] | None = None, **body: Any) -> Any:
    answer = client.put(f"/{rtype}/{rid}", json={"resourceType": rtype, "id": rid, **body},
                        headers={**FHIR, **(headers or {})})
    assert answer.status_code in (200, 201), answer.text
    return answer


def full_patient(client: TestClient, rid: str = "pat-sub") -> None:
    put(client, "Patient", rid, name=[{"family": "Phạm", "given": ["Thị", "Mai"]}], gender="female",
        birthDate="1971-03-04", text={"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">Mai</div>'},
        maritalStatus={"text": "married"}, identifier=[{"system": CCCD, "value": "079171000444"}])


# ------------------------------------------------------------------------- _summary, _elements on read
@pytest.mark.parametrize("url", ["/Patient/pat-sub", "/Patient/pat-sub/_history/2"])
def test_elements_and_summary_on_read_and_vread_subset_as_a_search_does(client: TestClient, url: str) -> None:
    full_patient(client)
    full_patient(client)  # version 2 (a no-op update keeps version 1: change something)
    put(client, "Patient", "pat-sub", name=[{"family": "Phạm"}], gender="female", birthDate="1971-03-04",
        text={"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">Mai</div>'},
        maritalStatus={"text": "married"})
    elements = client.get(url, params={"_elements": "name,birthDate"})
    assert elements.status_code == 200, elements.text
    body = elements.json()
    assert set(body) == {"resourceType", "id", "meta", "name", "birthDate"}
    assert SUBSETTED in body["meta"]["tag"]
    assert elements.headers["etag"] == client.get(url).headers["etag"]
    summary = client.get(url, params={"_summary": "true"}).json()
    assert "maritalStatus" not in summary and "text" not in summary and summary["birthDate"] == "1971-03-04"
    assert SUBSETTED in summary["meta"]["tag"]
    assert "text" not in client.get(url, params={"_summary": "data"}).json()
    whole = client.get(url, params={"_summary": "false"}).json()
    assert "maritalStatus" in whole and SUBSETTED not in whole["meta"].get("tag", [])
    # one function for both: the search's entry for the same parameters is the same resource
    if "_history" not in url:
        searched = client.get("/Patient", params={"_id": "pat-sub", "_elements": "name,birthDate"}).json()
        assert searched["entry"][0]["resource"] == body


@pytest.mark.parametrize(("params", "mentions"), [
    ({"_elements": "name.family"}, "_elements"), ({"_summary": "maybe"}, "_summary"), ({"_summary": "count"}, "count"),
])
def test_a_bad_subset_on_read_is_a_400(client: TestClient, params: dict[str, str], mentions: str) -> None:
    full_patient(client)
    body = assert_outcome(client.get("/Patient/pat-sub", params=params), 400, "invalid")
    assert mentions in body["issue"][0]["diagnostics"]


def test_a_subset_read_of_a_hidden_resource_answers_as_an_absent_one(client: TestClient, settings: Settings) -> None:
    full_patient(client)
    stranger = as_(settings, "resident", patient="someone-else")
    for params in ({"_elements": "name"}, {"_summary": "true"}):
        hidden = client.get("/Patient/pat-sub", params=params, headers=stranger)
        absent = client.get("/Patient/never-was", params=params, headers=stranger)
        assert hidden.status_code == absent.status_code == 404
        assert hidden.text.replace("pat-sub", "never-was") == absent.text


# --------------------------------------------------------------------------------- history totals
def _all_entries(client: TestClient, url: str, headers: dict[str, str] | None = None) -> tuple[list[str], set[Any]]:
    keys, totals = [], set()
    while url:
        page = client.get(url, headers=headers)
        assert page.status_code == 200, page.text
        body = page.json()
        totals.add(body.get("total"))
        keys += [f"{e['resource']['resourceType']}/{e['resource']['id']}" if "resource" in e else e["fullUrl"]
                 for e in body.get("entry", [])]
        url = next((link["url"] for link in body.get("link", []) if link["relation"] == "next"), "")
    return keys, totals


def test_history_bundles_carry_the_total_of_every_page(client: TestClient) -> None:
    for family in ("A", "B", "C"):
        put(client, "Patient", "pat-h", name=[{"family": family}])
    put(client, "Patient", "pat-other", name=[{"family": "D"}])
    put(client, "Observation", "obs-h", status="final", code={"text": "x"}, subject={"reference": "Patient/pat-h"})
    assert client.delete("/Patient/pat-other").status_code == 204
    for url, expected in (("/Patient/pat-h/_history?_count=1", 3), ("/Patient/_history?_count=2", 5),
                          ("/_history?_count=2", 6)):
        keys, totals = _all_entries(client, url)
        assert len(keys) == expected and totals == {expected}, (url, keys, totals)
    since = client.get("/Patient/pat-h/_history/2").json()["meta"]["lastUpdated"]
    assert client.get("/Patient/pat-h/_history", params={"_since": since}).json()["total"] == 2
    assert client.get("/Patient/_history", params={"_since": since}).json()["total"] == 4


def test_a_residents_history_total_counts_only_her_own_records(client: TestClient, settings: Settings) -> None:
    put(client, "Patient", "pat-r", name=[{"family": "Mine"}])
    put(client, "Patient", "pat-r", name=[{"family": "Mine", "given": ["Too"]}])
    put(client, "Observation", "obs-r", status="final", code={"text": "x"}, subject={"reference": "Patient/pat-r"})
    put(client, "Patient", "pat-not-r", name=[{"family": "Theirs"}])
    put(client, "Observation", "obs-not-r", status="final", code={"text": "x"},
        subject={"reference": "Patient/pat-not-r"})
    resident = as_(settings, "resident", patient="pat-r")
    for url, own in (("/Patient/_history?_count=1", 2), ("/_history?_count=1", 3)):
        keys, totals = _all_entries(client, url, resident)
        assert totals == {len(keys)}, (url, keys, totals)
        assert len([k for k in keys if k.endswith("-r")]) == own  # and her person's master record, linked
        assert not any("not-r" in k for k in keys)


def test_a_history_total_never_counts_what_consent_hides(client: TestClient, settings: Settings) -> None:
    """Another facility's clinician, without the residents' consent, sees none of 79001's records: the total
    (when given) counts what the pages list, never the hidden versions."""
    own_system = as_(settings, facility="79002")
    for rid, headers in (("pat-c1", None), ("pat-c2", None), ("pat-own", own_system)):
        put(client, "Patient", rid, headers, name=[{"family": "Lâm"}])
        put(client, "Patient", rid, headers, name=[{"family": "Lâm", "given": ["Hai"]}])
    other = as_(settings, "clinician", facility="79002")
    assert client.get("/Patient/pat-c1/_history", headers=other).status_code == 404
    assert client.get("/Patient/pat-own/_history", headers=other).json()["total"] == 2
    for url in ("/Patient/_history?_count=1", "/Patient/_history", "/_history?_count=1"):
        keys, totals = _all_entries(client, url, other)
        assert totals == {len(keys)}, (url, keys, totals)
        assert sorted(k for k in keys if not k.startswith("Patient/master-")) == ["Patient/pat-own"] * 2, keys


# ---------------------------------------------------------------------------- unknown version, operation
def test_an_unknown_version_is_named_as_such(client: TestClient, settings: Settings) -> None:
    put(client, "Patient", "pat-v", name=[{"family": "V"}])
    answer = assert_outcome(client.get("/Patient/pat-v/_history/9"), 404, "not-found")
    assert "no version 9" in answer["issue"][0]["diagnostics"]
    assert "current version is 1" in answer["issue"][0]["diagnostics"]
    never = assert_outcome(client.get("/Patient/never-was/_history/9"), 404, "not-found")
    assert "not known" in never["issue"][0]["diagnostics"]
    stranger = as_(settings, "resident", patient="someone-else")  # a hidden resource: as one never created
    hidden = client.get("/Patient/pat-v/_history/9", headers=stranger)
    assert hidden.text.replace("pat-v", "never-was") == client.get("/Patient/never-was/_history/9",
                                                                    headers=stranger).text


@pytest.mark.parametrize(("method", "url"), [
    ("GET", "/Patient/$lastn"), ("POST", "/Patient/$lastn"), ("GET", "/Observation/$lastn"),
    ("GET", "/Patient/pat-o/$foo"), ("POST", "/Patient/pat-o/$foo"), ("GET", "/$foo"), ("POST", "/$foo"),
    ("DELETE", "/Patient/$lastn"),
])
def test_an_unknown_operation_is_unsupported_not_a_bad_id(client: TestClient, method: str, url: str) -> None:
    put(client, "Patient", "pat-o", name=[{"family": "O"}])
    answer = assert_outcome(client.request(method, url, json={"resourceType": "Parameters"}, headers=FHIR), 404,
                            "not-supported")
    operation = url.rsplit("/", 1)[1]
    assert f"'{operation}' is not supported" in answer["issue"][0]["diagnostics"]


# ------------------------------------------------------------------- conditional create, criteria in URL
def test_criteria_in_the_url_of_a_create_make_it_conditional(client: TestClient) -> None:
    body = {"resourceType": "Patient", "identifier": [{"system": CCCD, "value": "079190000777"}]}
    first = client.post(f"/Patient?identifier={CCCD}|079190000777", json=body, headers=FHIR)
    again = client.post("/Patient", params={"identifier": f"{CCCD}|079190000777"}, json=body, headers=FHIR)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    by_header = client.post("/Patient", json=body, headers={**FHIR, "If-None-Exist": f"identifier={CCCD}|079190000777"})
    assert by_header.status_code == 200 and by_header.json()["id"] == first.json()["id"]
    assert client.get("/Patient", params={"_summary": "count"}).json()["total"] == 1
    assert client.post("/Patient?_pretty=true", json=body, headers=FHIR).status_code == 201  # no criteria
    both = client.post(f"/Patient?identifier={CCCD}|1", json=body, headers={**FHIR, "If-None-Exist": "identifier=2"})
    assert_outcome(both, 400, "invalid")
    put(client, "Patient", "twin-1", identifier=[{"system": CCCD, "value": "079190000888"}])
    put(client, "Patient", "twin-2", identifier=[{"system": CCCD, "value": "079190000888"}])
    assert_outcome(client.post(f"/Patient?identifier={CCCD}|079190000888", json=body, headers=FHIR), 412,
                   "multiple-matches")


# ---------------------------------------------------------------------------------- PATCH media types
def test_a_json_patch_sent_as_plain_json_is_told_the_accepted_formats(client: TestClient) -> None:
    put(client, "Patient", "pat-p", name=[{"family": "P"}])
    operations = orjson.dumps([{"op": "add", "path": "/active", "value": True}])
    for content_type, status in (("application/json", 400), ("application/fhir+json", 400), ("text/plain", 415)):
        answer = assert_outcome(client.patch("/Patient/pat-p", content=operations,
                                             headers={"Content-Type": content_type}), status)
        message = answer["issue"][0]["diagnostics"]
        assert "application/json-patch+json" in message and "FHIRPath Patch" in message, message
    assert client.get("/Patient/pat-p").json()["meta"]["versionId"] == "1"


# --------------------------------------------------------------------------------- CapabilityStatement
def test_the_capability_statement_lists_r4_types_and_every_include_that_works(client: TestClient) -> None:
    rest = client.get("/metadata").json()["rest"][0]
    types = {r["type"] for r in rest["resource"]}
    assert types == r4_resource_types() - {"Parameters", "MedicinalProduct", "MedicinalProductAuthorization",
                                           "MedicinalProductContraindication", "MedicinalProductIndication",
                                           "MedicinalProductIngredient", "MedicinalProductInteraction",
                                           "MedicinalProductManufactured", "MedicinalProductPackaged",
                                           "MedicinalProductPharmaceutical", "MedicinalProductUndesirableEffect",
                                           "EffectEvidenceSynthesis", "RiskEvidenceSynthesis", "SubstanceNucleicAcid",
                                           "SubstancePolymer", "SubstanceProtein", "SubstanceReferenceInformation",
                                           "SubstanceSourceMaterial", "SubstanceSpecification"}
    for r4b_only in ("Citation", "Ingredient", "SubscriptionTopic", "NutritionProduct"):
        assert r4b_only not in types
        assert_outcome(client.get(f"/{r4b_only}"), 404, "not-supported")
    assert rest["security"]["cors"] is True
    by_type = {r["type"]: r for r in rest["resource"]}
    assert "Observation:subject" in by_type["Observation"]["searchInclude"]
    assert {"Observation:subject", "Encounter:subject", "Provenance:target"} <= set(
        by_type["Patient"]["searchRevInclude"])
    assert "Observation:subject" not in by_type["Practitioner"]["searchRevInclude"]  # subject never names one
    for rtype, resource in by_type.items():  # every claim is accepted by a search
        for key in ("searchInclude", "searchRevInclude"):
            claimed = resource.get(key, [])
            for start in range(0, len(claimed), 25):
                param = "_include" if key == "searchInclude" else "_revinclude"
                answer = client.get(f"/{rtype}", params=[(param, v) for v in claimed[start:start + 25]])
                assert answer.status_code == 200, (rtype, answer.text[:300])
