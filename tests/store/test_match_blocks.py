"""Each Patient is filed under its blocking keys as it is written (the match-blocks deriver): a noisy copy
of the same person from another facility finds it among a handful of candidates, and the blocks follow
every new version, a deletion and crash repair."""

from __future__ import annotations

import pytest

from fhir_hub.auth.caller import Caller
from fhir_hub.auth.scopes import Scopes
from fhir_hub.hub import Hub
from fhir_hub.matching import block_keys, features
from fhir_hub.store.schema import BLOCK_FIELDS, MATCH_BLOCKS
from fhir_hub.store.writer import Delete, Update

pytestmark = pytest.mark.anyio
HOSPITAL = Caller(subject="hospital", scopes=Scopes.parse("system/*.cruds"), facility="79001")
CCCD = "http://fhir.hl7.org.vn/core/sid/cccd"


def patient(rid: str, family: str, given: list[str], birth: str, **more: object) -> dict[str, object]:
    return {"resourceType": "Patient", "id": rid, "name": [{"family": family, "given": given}], "birthDate": birth,
            "gender": "male", **more}


async def _blocks(hub: Hub, key: str) -> set[str]:
    docs = [doc async for doc in hub.store.db[MATCH_BLOCKS].find({"r": key})]
    assert len(docs) <= 3  # ~8 keys packed into slot fields, not a document each
    return {doc[name] for doc in docs for name in BLOCK_FIELDS if name in doc}


async def test_a_patient_is_filed_under_its_block_keys_and_found_by_a_noisy_copy(hub: Hub) -> None:
    an = patient("an", "Nguyễn", ["Văn", "An"], "1985-03-07",
                 identifier=[{"system": CCCD, "value": "079085001234"}])
    await hub.writer.commit(Update("Patient", "an", an), caller=HOSPITAL)
    for rid, given in (("binh", ["Thị", "Bình"]), ("cuong", ["Văn", "Cường"])):
        await hub.writer.commit(Update("Patient", rid, patient(rid, "Trần", given, "1990-01-01")), caller=HOSPITAL)
    stored = await _blocks(hub, "Patient/an")
    assert stored == block_keys(features(an, "Patient/an")) and "cccd:079085001234" in stored

    # another facility's record of the same man: no diacritics, no middle name, no CCCD (with a birth year
    # alone a name this common is filed nowhere: the engine would not link on it, see matching/blocking.py)
    copy = patient("an-2", "Nguyen", ["An"], "1985-03-07")
    found = await hub.store.match_candidates(block_keys(features(copy)))
    assert "Patient/an" in found and len(found) <= 3

    # the blocks follow the new version, and a deletion removes them
    moved = {k: v for k, v in an.items() if k != "identifier"} | {"birthDate": "1986-04-08"}  # corrected, no CCCD
    await hub.writer.commit(Update("Patient", "an", moved), caller=HOSPITAL)
    assert await _blocks(hub, "Patient/an") == block_keys(features(moved, "Patient/an")) != stored
    await hub.writer.commit(Delete("Patient", "an"), caller=HOSPITAL)
    assert await _blocks(hub, "Patient/an") == set()
    assert "Patient/an" not in await hub.store.match_candidates(["cccd:079085001234"])


async def test_crash_repair_recomputes_the_blocks(hub: Hub) -> None:
    await hub.writer.commit(Update("Patient", "an", patient("an", "Nguyễn", ["An"], "1985-03-07")), caller=HOSPITAL)
    expected = await _blocks(hub, "Patient/an")
    await hub.store.db[MATCH_BLOCKS].delete_many({"r": "Patient/an"})  # as if the process died mid-write
    await hub.store.reconcile("Patient", "an")
    assert await _blocks(hub, "Patient/an") == expected != set()


async def test_other_types_file_nothing(hub: Hub) -> None:
    await hub.writer.commit(Update("Organization", "o", {"resourceType": "Organization", "id": "o", "name": "Trạm"}),
                            caller=HOSPITAL)
    assert await _blocks(hub, "Organization/o") == set()
