"""Properties of people's link decisions (hypothesis): a merge followed by its unmerge leaves every stored
resource and every link as it was (the store dumped and compared, version stamps aside), whatever the
people and records; and no record ever has two masters."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from fhir_hub.auth.caller import Caller
from fhir_hub.auth.scopes import Scopes
from fhir_hub.config import Settings
from fhir_hub.errors import UnprocessableResource
from fhir_hub.fhir.jsonio import loads
from fhir_hub.hub import Hub, running_hub
from fhir_hub.linking import manual
from fhir_hub.linking.elements import master_of
from fhir_hub.store.schema import PATIENT_LINKS
from fhir_hub.store.writer import Create

CCCD = "http://fhir.hl7.org.vn/core/sid/cccd"
FAMILIES = ["Nguyễn", "Trần", "Lê", "Phạm", "Huỳnh", "Võ"]
GIVEN = ["An", "Bình", "Chi", "Dũng", "Hoa", "Lan", "Minh", "Nam"]
MIDDLE = ["Văn", "Thị", "Hữu", "Ngọc"]
ASCII = str.maketrans("ễầạọữịậùờấắặ", "eaaouiauoaaa")


@st.composite
def people(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Two to four people, each sent by one to three facilities with the usual noise."""
    records: list[dict[str, Any]] = []
    for n in range(draw(st.integers(2, 4))):
        family, middle, given = draw(st.sampled_from(FAMILIES)), draw(st.sampled_from(MIDDLE)), draw(
            st.sampled_from(GIVEN))
        year = draw(st.integers(1940, 2010))
        birth = f"{year}-{draw(st.integers(1, 12)):02d}-{draw(st.integers(1, 28)):02d}"
        cccd = f"079{1 if year < 2000 else 3}{year % 100:02d}{n:06d}" if draw(st.booleans()) else None
        phone = f"09{n}{draw(st.integers(1000000, 9999999))}"
        for _ in range(draw(st.integers(1, 3))):
            name = {"family": family, "given": [middle, given] if draw(st.booleans()) else [given]}
            if draw(st.booleans()):
                name = {"family": family.translate(ASCII), "given": [g.translate(ASCII) for g in name["given"]]}
            body: dict[str, Any] = {"resourceType": "Patient", "name": [name], "gender": "male",
                                    "birthDate": birth if draw(st.booleans()) else str(year),
                                    "telecom": [{"system": "phone", "value": phone}]}
            if cccd and draw(st.booleans()):
                body["identifier"] = [{"system": CCCD, "value": cccd}]
            records.append(body)
    return records


async def _dump(hub: Hub) -> dict[str, Any]:
    """Every stored resource's current content (version stamps aside) and every link document."""
    resources = {}
    async for doc in hub.store.current_docs.find({}):
        body = loads(doc["json"]) if doc.get("json") else None
        if body is not None:
            body["meta"] = {k: v for k, v in body["meta"].items() if k not in ("versionId", "lastUpdated")}
        resources[doc["_id"]] = (doc.get("deleted"), body)
    links = {doc["_id"]: doc async for doc in hub.store.db[PATIENT_LINKS].find({})}
    return {"resources": resources, "links": links}


def _hub_settings(base: Settings) -> Settings:
    return dataclasses.replace(base, db_name=f"test_mergeprop_{uuid.uuid4().hex[:10]}")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=people(), data=st.data())
def test_merge_then_unmerge_restores_the_store(settings: Settings, records: list[dict[str, Any]],
                                               data: st.DataObject) -> None:
    async def scenario() -> None:
        async with running_hub(_hub_settings(settings)) as hub:
            keys = []
            for n, body in enumerate(records):
                caller = Caller(subject="his", scopes=Scopes.parse("system/*.cruds"), facility=f"79{n:03d}")
                keys.append((await hub.writer.commit(Create("Patient", body), caller=caller)).version.key)
            masters = {key: await hub.store.master_in_use(key) for key in keys}
            for key in keys:  # no record has two masters: one hub link, agreeing with the links collection
                current = await hub.store.current("Patient", key.removeprefix("Patient/"))
                body = loads(current.json)  # type: ignore[union-attr,arg-type]
                refers = [link for link in body["link"] if link["type"] == "refer"]
                assert len(refers) == 1 and master_of(body) is not None
            persons = sorted(set(masters.values()))  # type: ignore[type-var]
            assume(len(persons) >= 2)
            target, source = data.draw(st.sampled_from(keys)), data.draw(st.sampled_from(keys))
            assume(masters[target] != masters[source])
            linker = hub.writer.linker
            assert linker is not None
            before = await _dump(hub)
            try:
                result = await manual.merge(linker, source, target, author="test")
            except UnprocessableResource:
                assume(False)  # two different CCCDs: refused, nothing to undo
            assert await hub.store.master_in_use(source) == await hub.store.master_in_use(target)
            await manual.unmerge(linker, result.merged, author="test")
            after = await _dump(hub)
            assert after == before
            await hub.store.db.client.drop_database(hub.store.db.name)

    asyncio.run(scenario())
