"""``Patient/{id}/$risk``: a person's risk score and the rules that gave it (issue 18), explained.

Built from what the caller may read, through the one reader: the Patient record, then the Conditions of
the person (every record linked to it: ``patient:mdm``) and the Observations that say whether they live
alone. A clinician whose consent hides a diagnosis gets the score without it, never the diagnosis through
the score's evidence. The rules are ``profiles.risk``'s (versioned data); the score is the scorer's, the
same one the priority queue orders its jobs by.
"""

from __future__ import annotations

from typing import Any

from fhir_hub.fhir.instant import local_day
from fhir_hub.fhir.jsonio import loads
from fhir_hub.services.read import read
from fhir_hub.services.search import search
from fhir_hub.services.session import Session
from profiles.risk import Assessment, Rules, assess, default_rules, facts_from_resources

_MOST = 1000  # a person's diagnoses fit one page; more are counted from the first 1,000


async def assess_patient(session: Session, rid: str) -> Assessment:
    return (await person_assessment(session, rid))[0]


async def person_assessment(session: Session, rid: str) -> tuple[Assessment, list[dict[str, Any]]]:
    """The person's assessment, with the resources it was made from."""
    rules = default_rules()
    resources = await person_resources(session, rid, rules)
    return assess(facts_from_resources(resources, rules), rules, local_day(session.clock())), resources


async def person_resources(session: Session, rid: str, rules: Rules) -> list[dict[str, Any]]:
    """What the rules read of the person of ``Patient/rid``, as far as the session may read it: the Patient
    record (404 when it may not), the person's Conditions and household Observations (every record linked)."""
    patient = await read(session, "Patient", rid)
    resources: list[dict[str, Any]] = [loads(patient.json)] if patient.json is not None else []
    person = f"Patient/{rid}"
    household = ",".join(sorted({*rules.lives_alone_findings, rules.household_size}))
    for rtype, criteria in (("Condition", []), ("Observation", [("code", household)])):
        found = await search(session, rtype, [("patient:mdm", person), *criteria], count=_MOST)
        resources += [loads(v.json) for v in found.outcome.page if v.json is not None]
    return resources


def parameters(assessment: Assessment) -> dict[str, Any]:
    """The assessment as a ``Parameters`` resource: score, tier, rules version, and each rule that held with
    its weight, source and the evidence (which code, which birth date) in words."""
    hits = [{"name": "rule", "part": [
        {"name": "id", "valueCode": hit.rule.id}, {"name": "label", "valueString": hit.rule.label_en},
        {"name": "labelVi", "valueString": hit.rule.label_vi}, {"name": "weight", "valueInteger": hit.rule.weight},
        {"name": "source", "valueString": hit.rule.source},
        *({"name": "evidence", "valueString": e.note} for e in hit.evidence)]} for hit in assessment.hits]
    return {"resourceType": "Parameters", "parameter": [
        {"name": "score", "valueInteger": assessment.score}, {"name": "tier", "valueCode": assessment.tier},
        {"name": "rulesVersion", "valueString": assessment.version},
        {"name": "on", "valueDate": assessment.on.isoformat()}, *hits]}
