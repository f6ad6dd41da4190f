"""A ``Flag`` per risk group a person is in, made from the scorer's assessment (``profiles.risk``).

One Flag per (person, rule), with an id derived from both, so writing the same assessment again stores
nothing new (the queue may run a job twice) and a rule that stops holding is the same Flag made
``inactive``. The Flag names its rule in ``code`` (the hub's risk-group code system), its subject is the
person's master Patient, and its evidence (the birth date, each ICD-10 code with a reference to its
Condition) is in an extension: so the commit pipeline labels a Flag about HIV or tuberculosis as it labels
the diagnosis itself (a code of the kind anywhere in it, a reference to a labelled resource), and consent
hides it from whoever may not see that diagnosis.
"""

from __future__ import annotations

import hashlib
from typing import Any

from adapters.normalize import HUB, ICD10
from profiles.risk import Assessment, Hit

RISK_GROUP = f"{HUB}/CodeSystem/risk-group"
EVIDENCE = f"{HUB}/StructureDefinition/risk-evidence"
_CATEGORY = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/flag-category", "code": "clinical",
                         "display": "Clinical"}]}


def flag_id(master: str, rule: str) -> str:
    """A FHIR id (at most 64 characters) for the person's Flag of ``rule``: the same whoever writes it."""
    return "risk-" + hashlib.sha256(f"{master}|{rule}".encode()).hexdigest()[:40]


def active_flags(master: str, assessment: Assessment) -> dict[str, dict[str, Any]]:
    """The Flags the person must have: one per rule that holds, by id."""
    return {flag_id(master, hit.rule.id): _flag(master, hit, assessment) for hit in assessment.hits}


def inactive(flag: dict[str, Any]) -> dict[str, Any]:
    """A Flag whose rule no longer holds: kept (its history says when it held), no longer active."""
    return {k: v for k, v in flag.items() if k != "meta"} | {"status": "inactive"}


def _flag(master: str, hit: Hit, assessment: Assessment) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [
        {"url": "rules-version", "valueString": assessment.version},
        {"url": "weight", "valueInteger": hit.rule.weight},
        {"url": "source", "valueString": hit.rule.source}]
    for evidence in hit.evidence:
        parts.append({"url": "evidence", "valueString": evidence.note})
        if evidence.kind == "icd10":
            parts.append({"url": "code", "valueCoding": {"system": ICD10, "code": evidence.value}})
        if evidence.reference:
            parts.append({"url": "from", "valueReference": {"reference": evidence.reference}})
    return {"resourceType": "Flag", "id": flag_id(master, hit.rule.id), "status": "active", "category": [_CATEGORY],
            "code": {"coding": [{"system": RISK_GROUP, "code": hit.rule.id, "display": hit.rule.label_en}],
                     "text": hit.rule.label_vi},
            "subject": {"reference": master},
            "extension": [{"url": EVIDENCE, "extension": parts}]}
