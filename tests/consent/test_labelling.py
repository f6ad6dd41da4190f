"""Sensitivity labels on the real write path: added by the commit pipeline to what a client posts, inherited
through references (in a transaction whatever the entries' order), stored as the version's access facts,
and then keeping an MoH HIV diagnosis from another facility's clinician until a consent names the label."""

from __future__ import annotations

import base64
from typing import Any

from fastapi.testclient import TestClient

from adapters.moh_xml.generator import envelope, generate_file, table_document
from consent.model import FACILITY_SYSTEM
from fhir_hub.config import Settings
from tests.conftest import as_

ICD10 = "http://hl7.org/fhir/sid/icd-10"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
HIV = f"{ACT}|HIV"
NORMAL = {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "N"}
FHIR = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


def labels(resource: dict[str, Any]) -> set[str]:
    return {f"{c['system']}|{c['code']}" for c in resource.get("meta", {}).get("security", [])}


def post(client: TestClient, resource: dict[str, Any]) -> dict[str, Any]:
    answer = client.post(f"/{resource['resourceType']}", json=resource, headers=FHIR)
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def diagnosis(patient: str, code: str, **more: Any) -> dict[str, Any]:
    return {"resourceType": "Condition", "subject": {"reference": f"Patient/{patient}"},
            "code": {"coding": [{"system": ICD10, "code": code}]}, **more}


# ---------------------------------------------------------------------------------------------------- REST
def test_a_b20_diagnosis_is_labelled_hiv_and_so_is_an_encounter_referencing_it(client: TestClient) -> None:
    patient = post(client, {"resourceType": "Patient", "name": [{"family": "Lê"}]})["id"]
    condition = post(client, diagnosis(patient, "B20.1", meta={"security": [NORMAL]}))
    assert labels(condition) == {HIV, f"{NORMAL['system']}|N"}  # the client's own label kept
    assert condition["meta"]["security"][0] == NORMAL
    served = client.get(f"/Condition/{condition['id']}").json()
    assert labels(served) == labels(condition)
    stored = client.portal.call(client.app.state.hub.store.current, "Condition", condition["id"])  # type: ignore
    assert HIV in stored.labels  # extracted into the version's access facts, which the consent engine reads

    encounter = post(client, {"resourceType": "Encounter", "status": "finished",
                              "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                              "subject": {"reference": f"Patient/{patient}"},
                              "diagnosis": [{"condition": {"reference": f"Condition/{condition['id']}"}}]})
    assert labels(encounter) == {HIV}
    unrelated = post(client, diagnosis(patient, "J06.9"))
    assert labels(unrelated) == set()  # the same patient's other data are not labelled through the Patient
    found = client.get("/Condition", params={"_security": HIV}).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [condition["id"]]

    again = client.put(f"/Condition/{condition['id']}", json={**diagnosis(patient, "B20.1"), "id": condition["id"]},
                       headers=FHIR).json()
    assert labels(again) == {HIV}  # re-derived from the content on every write
    labelled_by_client = post(client, diagnosis(patient, "B24", meta={"security": [{"system": ACT, "code": "HIV"}]}))
    assert len(labelled_by_client["meta"]["security"]) == 1  # no duplicate of the client's own


def test_in_a_transaction_an_entry_inherits_the_label_of_an_entry_written_after_it(client: TestClient) -> None:
    patient = post(client, {"resourceType": "Patient", "name": [{"family": "Phạm"}]})["id"]
    subject = {"reference": f"Patient/{patient}"}
    entries = [
        {"fullUrl": "urn:uuid:obs", "resource": {"resourceType": "Observation", "status": "final",
                                                 "code": {"text": "CD4"}, "subject": subject,
                                                 "encounter": {"reference": "urn:uuid:enc"}},
         "request": {"method": "POST", "url": "Observation"}},
        {"fullUrl": "urn:uuid:enc", "resource": {"resourceType": "Encounter", "status": "finished",
                                                 "class": {"system": ACT, "code": "AMB"}, "subject": subject,
                                                 "diagnosis": [{"condition": {"reference": "urn:uuid:tb"}}]},
         "request": {"method": "POST", "url": "Encounter"}},
        {"fullUrl": "urn:uuid:tb", "resource": diagnosis(patient, "A15.0"),
         "request": {"method": "POST", "url": "Condition"}},
    ]
    answer = client.post("/", json={"resourceType": "Bundle", "type": "transaction", "entry": entries}, headers=FHIR)
    assert answer.status_code == 200, answer.text
    stored = [client.get(e["response"]["location"].split("/_history")[0]).json() for e in answer.json()["entry"]]
    tb = "https://fhir.hub.hcmc.vn/CodeSystem/sensitivity|TB"
    assert [labels(r) for r in stored] == [{tb}, {tb}, {tb}]


# ------------------------------------------------------------------------------------------------- MoH XML
def moh_file(facility: str, *, principal: str, tables: dict[str, list[dict[str, str]]] | None = None) -> bytes:
    """One generated MoH episode with ``principal`` as its only diagnosis, and any extra tables."""
    episode = generate_file(f"labels-{principal}", episodes=1, facility=facility).episodes[0]
    rows = dict(episode.tables)
    # an adult, whose own token gives the consent (a minor's needs a guardian: tests/consent/test_minors.py)
    rows["XML1"] = [{**rows["XML1"][0], "MA_BENH_CHINH": principal, "MA_BENH_KT": "", "NGAY_SINH": "197001020000"}]
    rows.update(tables or {})
    files = [(loai, base64.b64encode(table_document(loai, r)).decode("ascii")) for loai, r in rows.items()]
    return envelope(facility, [files], "20250701")


def ingest(client: TestClient, payload: bytes) -> None:
    answer = client.post("/$ingest", content=payload, params={"filename": "xml130.xml"},
                         headers={"Content-Type": "application/xml", "Accept": "application/fhir+json"})
    assert answer.status_code == 200, answer.text[:800]
    accepted = next(p for p in answer.json()["parameter"] if p["name"] == "recordsAccepted")
    assert accepted["valueInteger"] == 1, answer.text[:800]


def everything(client: TestClient, rtype: str, **headers: str) -> list[dict[str, Any]]:
    found = client.get(f"/{rtype}", params={"_count": 100}, headers=headers).json()
    return [e["resource"] for e in found.get("entry", [])]


def privacy_consent(patient: str, facility: str, *, label: str | None) -> dict[str, Any]:
    """The resident's permit for one facility's treatment, with a nested permit naming ``label``."""
    provision: dict[str, Any] = {
        "type": "permit",
        "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                        "code": "IRCP"}]},
                   "reference": {"identifier": {"system": FACILITY_SYSTEM, "value": facility}}}],
        "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}],
    }
    if label is not None:
        system, code = label.split("|")
        provision["provision"] = [{"type": "permit", "securityLabel": [{"system": system, "code": code}]}]
    return {"resourceType": "Consent", "id": "resident-privacy", "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                  "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": f"Patient/{patient}"}, "dateTime": "2026-12-01", "provision": provision,
            "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                       "code": "OPTIN"}]}}  # R4 ppc-1: a policy or a policyRule


def write_consent(client: TestClient, settings: Settings, consent: dict[str, Any]) -> None:
    """The resident gives (or changes) the consent with their own token: POST first, PUT after."""
    resident = {**as_(settings, "resident", patient=consent["patient"]["reference"].split("/")[1]),
                "Content-Type": "application/fhir+json"}
    known = client.get("/Consent", params={"_count": 10}, headers=resident).json().get("entry", [])
    if known:
        rid = known[0]["resource"]["id"]
        answer = client.put(f"/Consent/{rid}", json={**consent, "id": rid}, headers=resident)
    else:
        answer = client.post("/Consent", json={k: v for k, v in consent.items() if k != "id"}, headers=resident)
    assert answer.status_code in (200, 201), answer.text


def test_an_hiv_diagnosis_from_an_moh_file_is_hidden_from_another_facility_until_a_consent_names_hiv(
        client: TestClient, settings: Settings) -> None:
    ingest(client, moh_file("79001", principal="B20.1"))
    (condition,) = everything(client, "Condition")
    (encounter,) = everything(client, "Encounter")
    (patient,) = everything(client, "Patient")
    assert HIV in labels(condition) and HIV in labels(encounter)  # the Encounter comes first in the record
    assert all(HIV in labels(o) for o in everything(client, "Observation"))  # the episode's results
    assert labels(patient) == set()

    other = as_(settings, "clinician", facility="79002")
    write_consent(client, settings, privacy_consent(patient["id"], "79002", label=None))
    assert client.get(f"/Patient/{patient['id']}", headers=other).status_code == 200  # the permit works
    assert client.get(f"/Condition/{condition['id']}", headers=other).status_code == 404
    assert client.get(f"/Encounter/{encounter['id']}", headers=other).status_code == 404
    hidden = client.get("/Condition", params={"patient": patient["id"]}, headers=other).json()
    assert hidden.get("total") == 0 and not hidden.get("entry")

    write_consent(client, settings, privacy_consent(patient["id"], "79002", label=HIV))
    seen = client.get(f"/Condition/{condition['id']}", headers=other)
    assert seen.status_code == 200 and HIV in labels(seen.json())
    assert [c["id"] for c in everything(client, "Condition", **other)] == [condition["id"]]


def test_an_moh_episode_sent_with_an_xml6_table_is_labelled_whatever_its_diagnosis(client: TestClient) -> None:
    xml6 = [{"MA_LK": "x", "MA_THE_ARV": "ARV-000123", "NGAY_BD_DTRI_ARV": "20240101"}]
    ingest(client, moh_file("79001", principal="I10", tables={"XML6": xml6}))
    (encounter,) = everything(client, "Encounter")
    (condition,) = everything(client, "Condition")
    assert HIV in labels(encounter) and HIV in labels(condition)
    assert {t["code"] for t in encounter["meta"]["tag"] if t["system"].endswith("moh-xml-table")} >= {"XML1", "XML6"}


def test_an_moh_episode_without_sensitive_codes_or_tables_carries_no_label(client: TestClient) -> None:
    ingest(client, moh_file("79001", principal="I10"))
    for rtype in ("Encounter", "Condition", "Observation", "MedicationRequest", "Patient"):
        assert all(labels(r) == set() for r in everything(client, rtype)), rtype
