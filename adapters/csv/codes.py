"""Short names for the code systems a mapping file may name (``system = "snomed"``), so that a clinic's
mapping does not have to spell URIs, and a typo in one is caught when the mapping is loaded."""

from __future__ import annotations

from adapters.normalize import ICD10, LOINC

UCUM = "http://unitsofmeasure.org"
CODE_SYSTEMS: dict[str, str] = {
    "snomed": "http://snomed.info/sct",
    "snomed-ct": "http://snomed.info/sct",
    "loinc": LOINC,
    "icd10": ICD10,
    "icd-10": ICD10,
    "cvx": "http://hl7.org/fhir/sid/cvx",
    "rxnorm": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "ucum": UCUM,
    "v3-actcode": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
    "v3-maritalstatus": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
    "observation-category": "http://terminology.hl7.org/CodeSystem/observation-category",
    "condition-category": "http://terminology.hl7.org/CodeSystem/condition-category",
    "condition-clinical": "http://terminology.hl7.org/CodeSystem/condition-clinical",
    "allergy-clinical": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
}


def code_system(name: str) -> str:
    """The URI for ``name``: a short name above, or a URI / OID given as is. Raises KeyError otherwise."""
    key = name.strip().lower()
    if key in CODE_SYSTEMS:
        return CODE_SYSTEMS[key]
    if ":" in name:
        return name.strip()
    raise KeyError(name)
