"""The priority record's consolidated summary (``fhir_hub/priority/summary.py``): one Composition per person in
a risk group, across every facility's record of them, with a summary's status filters, labelled like what it
refers to, and written once however often it is refreshed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhir_hub.fhir.jsonio import loads
from fhir_hub.fhir.validation import validate_resource
from fhir_hub.hub import Hub
from fhir_hub.priority.record import refresh
from fhir_hub.priority.summary import composition, summary_id
from fhir_hub.store.writer import Update
from tests.linking.test_linker import facility

ICD10 = "http://hl7.org/fhir/sid/icd-10"
CCCD = "http://fhir.hl7.org.vn/core/sid/cccd"


def _clinical(code: str) -> dict[str, Any]:
    return {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": code}]}


def _entries(summary: dict[str, Any], code: str) -> list[str]:
    section = next(s for s in summary["section"] if s.get("code", {}).get("coding", [{}])[0].get("code") == code)
    return [e["reference"] for e in section.get("entry", [])]


def _lab(rid: str, test: str, when: str, status: str = "final") -> dict[str, Any]:
    return {"resourceType": "Observation", "id": rid, "status": status, "effectiveDateTime": when,
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "laboratory"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": test}]}}


def test_the_sections_keep_what_a_summary_should_and_the_required_ones_are_never_missing() -> None:
    resources = [
        {"resourceType": "Condition", "id": "dm", "code": {"coding": [{"system": ICD10, "code": "E11.9",
                                                                       "display": "Type 2 diabetes"}]}},
        {"resourceType": "Condition", "id": "old", "clinicalStatus": _clinical("resolved"),
         "code": {"coding": [{"system": ICD10, "code": "J06.9"}]}},
        {"resourceType": "MedicationRequest", "id": "metformin", "status": "active", "intent": "order",
         "subject": {"reference": "Patient/p"}, "medicationCodeableConcept": {"text": "Metformin 500 mg"}},
        {"resourceType": "MedicationRequest", "id": "stopped", "status": "stopped", "intent": "order",
         "subject": {"reference": "Patient/p"}, "medicationCodeableConcept": {"text": "Amoxicillin"}},
        _lab("a1c-old", "4548-4", "2024-01-01"), _lab("a1c-new", "4548-4", "2025-06-01"),
        _lab("glucose-prelim", "2345-7", "2025-06-01", status="preliminary"),
        {"resourceType": "Immunization", "id": "flu", "status": "not-done", "vaccineCode": {"text": "Flu"},
         "patient": {"reference": "Patient/p"}, "occurrenceDateTime": "2025-01-01"},
    ]
    summary = composition("Patient/p", resources, [])
    assert _entries(summary, "11450-4") == ["Condition/dm"]
    assert _entries(summary, "10160-0") == ["MedicationRequest/metformin"]
    assert _entries(summary, "30954-2") == ["Observation/a1c-new"]  # the latest per test, no preliminary
    allergies = next(s for s in summary["section"] if s["code"]["coding"][0]["code"] == "48765-2")
    assert "entry" not in allergies and allergies["emptyReason"]["coding"][0]["code"] == "unavailable"
    assert not any(s.get("code", {}).get("coding", [{}])[0].get("code") == "11369-6" for s in summary["section"])
    assert "Type 2 diabetes" in summary["section"][0]["text"]["div"]
    validate_resource(summary, expected_type="Composition")


@given(st.lists(st.sampled_from(["active", "resolved", "inactive", "remission", "recurrence"]), max_size=6),
       st.text(max_size=30))
def test_any_problem_list_gives_a_valid_composition_without_resolved_problems(statuses: list[str], text: str) -> None:
    conditions = [{"resourceType": "Condition", "id": f"c{n}", "clinicalStatus": _clinical(status),
                   "code": {"text": text or "x"}} for n, status in enumerate(statuses)]
    summary = composition("Patient/p", conditions, [])
    validate_resource(summary, expected_type="Composition")
    kept = {f"Condition/c{n}" for n, s in enumerate(statuses) if s in ("active", "recurrence")}
    assert set(_entries(summary, "11450-4")) == kept


async def _write(hub: Hub, where: str, rtype: str, rid: str, body: dict[str, Any]) -> None:
    await hub.writer.commit(Update(rtype, rid, {"resourceType": rtype, "id": rid, **body}), caller=facility(where))


async def _summary(hub: Hub, master: str) -> tuple[dict[str, Any], int, frozenset[str]]:
    version = await hub.store.current("Composition", summary_id(master))
    assert version is not None and version.json is not None
    return loads(version.json), version.vid, version.labels


@pytest.mark.anyio
async def test_one_summary_across_facilities_written_once_and_labelled_like_its_entries(hub: Hub) -> None:
    person = {"birthDate": "1950-02-03", "gender": "female", "identifier": [{"system": CCCD, "value": "079150000123"}],
              "name": [{"family": "Phạm", "given": ["Thị", "Hoa"]}]}
    await _write(hub, "79001", "Patient", "hoa1", person)
    await _write(hub, "79002", "Patient", "hoa2", person)
    await _write(hub, "79001", "Condition", "dm", {"subject": {"reference": "Patient/hoa1"},
                                                   "code": {"coding": [{"system": ICD10, "code": "E11.9"}]}})
    await _write(hub, "79002", "MedicationRequest", "met", {
        "status": "active", "intent": "order", "subject": {"reference": "Patient/hoa2"},
        "medicationCodeableConcept": {"text": "Metformin"}})
    master = await hub.store.master_in_use("Patient/hoa1")
    assert master is not None and master == await hub.store.master_in_use("Patient/hoa2")
    await refresh(hub, "Patient/hoa2")
    summary, vid, labels = await _summary(hub, master)
    assert summary["subject"] == {"reference": master}
    assert _entries(summary, "11450-4") == ["Condition/dm"]
    assert _entries(summary, "10160-0") == ["MedicationRequest/met"]
    flags = next(s for s in summary["section"] if "code" not in s)["entry"]
    assert len(flags) >= 2 and all(f["reference"].startswith("Flag/") for f in flags)
    await asyncio.gather(refresh(hub, "Patient/hoa1"), refresh(hub, "Patient/hoa2"))
    assert (await _summary(hub, master))[1] == vid  # nothing new: nothing stored
    assert not any("HIV" in label for label in labels)
    await _write(hub, "79002", "Condition", "hiv", {"subject": {"reference": "Patient/hoa2"},
                                                    "code": {"coding": [{"system": ICD10, "code": "B20"}]}})
    await refresh(hub, "Patient/hoa2")
    summary, newer, labels = await _summary(hub, master)
    assert newer == vid + 1 and "Condition/hiv" in _entries(summary, "11450-4")
    assert any("HIV" in label for label in labels)  # hidden from whoever may not see the diagnosis
