"""The priority record's Flags (``fhir_hub/priority``): one per risk group that holds, on the person's
master, kept current, labelled like the diagnosis they come from, and written once however often refreshed."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_hub.fhir.jsonio import loads
from fhir_hub.hub import Hub
from fhir_hub.priority.flags import RISK_GROUP, flag_id
from fhir_hub.priority.record import refresh
from fhir_hub.store.writer import Update
from tests.linking.test_linker import facility

pytestmark = pytest.mark.anyio
ICD10 = "http://hl7.org/fhir/sid/icd-10"
RESOLVED = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "resolved"}]}


async def _write(hub: Hub, rtype: str, rid: str, body: dict[str, Any]) -> None:
    await hub.writer.commit(Update(rtype, rid, {"resourceType": rtype, "id": rid, **body}), caller=facility("79001"))


def _condition(code: str, **more: Any) -> dict[str, Any]:
    return {"subject": {"reference": "Patient/hoa"}, "code": {"coding": [{"system": ICD10, "code": code}]}, **more}


async def _flags(hub: Hub, master: str) -> dict[str, dict[str, Any]]:
    found = {}
    for version in await hub.store.live_versions([f"Flag/{flag_id(master, rule)}" for rule in _RULES]):
        assert version.json is not None
        flag = loads(version.json)
        found[flag["code"]["coding"][0]["code"]] = flag | {"_vid": version.vid, "_labels": version.labels}
    return found


_RULES: list[str] = []


@pytest.fixture(autouse=True)
def _rule_ids() -> None:
    from profiles.risk import default_rules

    _RULES[:] = [rule.id for rule in default_rules().rules]


async def test_a_flag_per_risk_group_on_the_master_kept_current_and_written_once(hub: Hub) -> None:
    await _write(hub, "Patient", "hoa", {"birthDate": "1948-02-03", "gender": "female",
                                         "name": [{"family": "Phạm", "given": ["Thị", "Hoa"]}]})
    await _write(hub, "Condition", "dm", _condition("E11.9"))
    master = await hub.store.master_in_use("Patient/hoa")
    assert master is not None and master != "Patient/hoa"
    assessment = await refresh(hub, "Patient/hoa")
    assert assessment.tier == "high"
    flags = await _flags(hub, master)
    assert len(flags) == len(assessment.hits) >= 2  # the age rule and the diabetes rule at least
    assert all(f["status"] == "active" and f["subject"] == {"reference": master} for f in flags.values())
    assert all(f["code"]["coding"][0]["system"] == RISK_GROUP for f in flags.values())
    await refresh(hub, "Patient/hoa")
    assert {k: f["_vid"] for k, f in (await _flags(hub, master)).items()} == {k: f["_vid"] for k, f in flags.items()}
    await _write(hub, "Condition", "dm", _condition("E11.9", clinicalStatus=RESOLVED))
    await refresh(hub, "Patient/hoa")
    after = await _flags(hub, master)
    gone = [k for k, f in after.items() if f["status"] == "inactive"]
    assert gone and all(k in flags for k in gone) and len(gone) < len(after)  # the diabetes flag, not the age one


async def test_a_flag_about_hiv_carries_the_hiv_label(hub: Hub) -> None:
    await _write(hub, "Patient", "hoa", {"birthDate": "1990-02-03", "gender": "female"})
    await _write(hub, "Condition", "hiv", _condition("B20"))
    assessment = await refresh(hub, "Patient/hoa")
    master = await hub.store.master_in_use("Patient/hoa") or "Patient/hoa"
    flags = await _flags(hub, master)
    assert assessment.hits and flags
    labelled = [f for f in flags.values() if any("HIV" in label for label in f["_labels"])]
    assert labelled, flags


async def test_refreshes_at_once_write_each_flag_once(hub: Hub) -> None:
    """Two workers may store two records of one person at the same moment: their refreshes race on the same
    Flag ids, and each Flag is still created once (version 1), none lost."""
    import asyncio

    await _write(hub, "Patient", "hoa", {"birthDate": "1948-02-03", "gender": "female"})
    await _write(hub, "Condition", "dm", _condition("E11.9"))
    assessments = await asyncio.gather(*(refresh(hub, "Patient/hoa") for _ in range(6)))
    master = await hub.store.master_in_use("Patient/hoa") or "Patient/hoa"
    flags = await _flags(hub, master)
    assert len(flags) == len(assessments[0].hits) >= 2
    assert all(f["_vid"] == 1 and f["status"] == "active" for f in flags.values()), flags


async def _summary_of(hub: Hub, master: str) -> bool:
    from fhir_hub.priority.summary import summary_id

    current = await hub.store.current("Composition", summary_id(master))
    return current is not None and not current.deleted


async def test_a_merge_leaves_one_priority_record_and_an_unmerge_two(hub: Hub) -> None:
    from fhir_hub.auth.caller import Caller
    from fhir_hub.services import linking
    from fhir_hub.services.session import Session

    await _write(hub, "Patient", "hoa", {"birthDate": "1948-02-03", "gender": "female",
                                         "name": [{"family": "Phạm", "given": ["Thị", "Hoa"]}]})
    await _write(hub, "Condition", "dm", _condition("E11.9"))
    await _write(hub, "Patient", "lan", {"birthDate": "1950-07-09", "gender": "female",
                                         "name": [{"family": "Trần", "given": ["Lan"]}]})
    kept, away = (await hub.store.master_in_use("Patient/hoa")), (await hub.store.master_in_use("Patient/lan"))
    assert kept is not None and away is not None and kept != away
    for record in ("Patient/hoa", "Patient/lan"):
        await refresh(hub, record)
    assert await _summary_of(hub, away)

    def active(flags: dict[str, dict[str, Any]]) -> set[str]:
        return {rule for rule, flag in flags.items() if flag["status"] == "active"}

    session = Session.open(hub, Caller.hub("data-steward"))
    await linking.merge(session, "Patient/lan", "Patient/hoa", "the same woman")
    assert active(await _flags(hub, away)) == set()  # the merged-away person's record is retired
    assert not await _summary_of(hub, away)
    assert {"age-60-plus", "diabetes"} <= active(await _flags(hub, kept))
    await linking.unmerge(session, away, "two women after all")
    assert active(await _flags(hub, away)) == {"age-60-plus"}
    assert await _summary_of(hub, away)
    assert {"age-60-plus", "diabetes"} <= active(await _flags(hub, kept))
