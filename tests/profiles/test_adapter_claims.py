"""The adapters' output claims the city profiles where it meets them, and every claim holds: each resource
mapped from the test data (MoH XML from the generator, the HL7 v2 fixtures, the CSV samples and Synthea)
validates with no error against the profile it claims, and the resources whose source carries what a
profile asks claim it."""

from __future__ import annotations

from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from adapters.base import Mapping, Source
from adapters.csv import CsvAdapter
from adapters.hl7v2 import Hl7v2Adapter
from adapters.moh_xml import MohXmlAdapter
from adapters.moh_xml.generator import generate_file
from fhir_hub.fhir.validation import validate_resource
from profiles.validation import validate
from profiles.validation.city import profile_for_type

SHARED = Path(__file__).resolve().parents[3] / "shared" / "fixtures"
CSV_SAMPLES = Path(__file__).resolve().parents[1] / "adapters" / "data" / "csv"


def _resources(mapping: Mapping) -> list[dict[str, Any]]:
    return [e["resource"] for r in mapping.records for e in r.bundle["entry"]]


@cache  # read-only below
def _moh() -> list[dict[str, Any]]:
    return [r for seed in (1, 7, 42) for r in _resources(MohXmlAdapter().map(
        generate_file(seed, episodes=4).payload, Source("moh-xml")))]


@cache  # read-only below
def _hl7() -> list[dict[str, Any]]:
    return [r for p in sorted((SHARED / "hl7v2" / "messages").glob("*.hl7"))
            for r in _resources(Hl7v2Adapter().map(p.read_bytes(), Source("hl7v2")))]


@cache  # read-only below
def _clinic_csv() -> list[dict[str, Any]]:
    return [r for p in sorted(CSV_SAMPLES.glob("*.csv"))
            for r in _resources(CsvAdapter().map(p.read_bytes(), Source("csv", facility="79001"), filename=p.name))]


@cache  # read-only below
def _synthea_csv() -> list[dict[str, Any]]:
    return [r for p in sorted((SHARED / "synthea-csv-27pt").glob("*.csv"))
            for r in _resources(CsvAdapter("synthea").map(p.read_bytes(), Source("csv"), filename=p.name))]


SOURCES = {"moh-xml": _moh, "hl7v2": _hl7, "csv": _clinic_csv, "synthea-csv": _synthea_csv}


def _claimed(resource: dict[str, Any]) -> bool:
    found = profile_for_type(resource["resourceType"])
    return found is not None and found.url in resource.get("meta", {}).get("profile", [])


@pytest.mark.parametrize("source", SOURCES)
def test_every_claim_the_adapters_make_holds(source: str) -> None:
    resources = SOURCES[source]()
    claimed = [r for r in resources if _claimed(r)]
    assert claimed
    for resource in claimed:
        assert [i.message for i in validate(resource) if i.is_error] == []
        validate_resource(resource)  # and the write path accepts it, claim and all


def test_what_the_moh_xml_export_carries_meets_the_profiles() -> None:
    """An MoH XML episode names the facility, the patient's card and personal ID, ICD-10 diagnoses and the card's
    validity: all its Patients, Encounters, Conditions and Coverages claim their profile; Organizations do
    where they are facilities (the payer, Vietnam Social Security, has no facility code)."""
    counts = Counter((r["resourceType"], _claimed(r)) for r in _moh())
    for rtype in ("Patient", "Encounter", "Condition", "Coverage"):
        assert counts[rtype, True] > 0 and counts[rtype, False] == 0, rtype
    assert counts["Organization", True] > 0


def test_patients_of_every_format_and_clinic_csv_conditions_claim_their_profile() -> None:
    for resources, types in ((_hl7(), ("Patient",)), (_clinic_csv(), ("Patient", "Condition")),
                             (_synthea_csv(), ("Patient",))):
        counts = Counter((r["resourceType"], _claimed(r)) for r in resources)
        for rtype in types:
            assert counts[rtype, True] > 0 and counts[rtype, False] == 0, (rtype, counts)


def test_a_resource_that_does_not_meet_its_profile_does_not_claim_it() -> None:
    """Synthea codes its conditions in SNOMED CT, not ICD-10: kept, unclaimed."""
    conditions = [r for r in _synthea_csv() if r["resourceType"] == "Condition"]
    snomed = [r for r in conditions if r["code"]["coding"][0]["system"] == "http://snomed.info/sct"]
    assert snomed and not any(_claimed(r) for r in snomed)
