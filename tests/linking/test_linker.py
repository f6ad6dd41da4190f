"""The match step in the write path: facility records of one person get one master Patient, whatever the
entry point, and the master is the golden record of its sources."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_hub.auth.caller import Caller
from fhir_hub.auth.scopes import Scopes
from fhir_hub.errors import UnprocessableResource
from fhir_hub.fhir.jsonio import loads
from fhir_hub.hub import Hub
from fhir_hub.linking.elements import is_master, master_of
from fhir_hub.store.writer import Create, Delete, Update

pytestmark = pytest.mark.anyio
CCCD = "http://fhir.hl7.org.vn/core/sid/cccd"
BHYT = "http://fhir.hl7.org.vn/core/sid/bhyt"


def facility(code: str) -> Caller:
    return Caller(subject=f"his-{code}", scopes=Scopes.parse("system/*.cruds"), facility=code)


def person(family: str, given: list[str], birth: str, *, gender: str = "female", cccd: str | None = None,
           phone: str | None = None, **more: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": "Patient", "name": [{"family": family, "given": given}],
                           "birthDate": birth, "gender": gender, **more}
    if cccd:
        out["identifier"] = [{"system": CCCD, "value": cccd}]
    if phone:
        out["telecom"] = [{"system": "phone", "value": phone}]
    return out


async def _json(hub: Hub, key: str) -> dict[str, Any]:
    rtype, rid = key.split("/")
    version = await hub.store.current(rtype, rid)
    assert version is not None and version.json is not None, key
    return loads(version.json)


async def _master(hub: Hub, key: str) -> str:
    linked = master_of(await _json(hub, key))
    assert linked is not None, f"{key} has no master"
    return linked[0]


async def test_two_facilities_records_of_one_person_share_one_golden_master(hub: Hub) -> None:
    lan = await hub.writer.commit(Create("Patient", person("Nguyễn", ["Thị", "Lan"], "1956-04-12",
                                                            cccd="079156001234")), caller=facility("79001"))
    ascii_copy = person("Nguyen", ["Thi", "Lan"], "1956", cccd="079156001234", phone="0903123456",
                        address=[{"city": "Hồ Chí Minh", "district": "Phường Bến Nghé"}])
    copy = await hub.writer.commit(Create("Patient", ascii_copy), caller=facility("79002"))
    first, second = f"Patient/{lan.version.rid}", f"Patient/{copy.version.rid}"
    master = await _master(hub, first)
    assert await _master(hub, second) == master
    golden = await _json(hub, master)
    assert is_master(golden) and golden["active"] is True
    assert {link["other"]["reference"] for link in golden["link"]} == {first, second}
    assert {link["type"] for link in golden["link"]} == {"seealso"}
    assert golden["name"][0]["family"] == "Nguyễn"  # the diacritics win over the newer ASCII copy
    assert golden["birthDate"] == "1956-04-12"  # the precise date wins over the year
    assert golden["telecom"][0]["value"] == "0903123456"
    assert master_of(await _json(hub, second))[1].rule == "cccd"  # type: ignore[index]
    # the facility's own content is stored as sent, with the hub's link added
    stored = await _json(hub, second)
    assert stored["name"] == ascii_copy["name"] and stored["meta"]["source"].endswith("facility:79002")
    person_ = await hub.store.person(first)
    assert person_ is not None and person_.master == master and person_.sources == {first, second}


async def test_a_different_person_gets_a_master_of_their_own(hub: Hub) -> None:
    a = await hub.writer.commit(Create("Patient", person("Trần", ["Văn", "Hùng"], "1975-01-02", gender="male",
                                                          cccd="079075009999")), caller=facility("79001"))
    b = await hub.writer.commit(Create("Patient", person("Lê", ["Thị", "Mai"], "1990-06-30")), caller=facility("79001"))
    assert await _master(hub, a.version.key) != await _master(hub, b.version.key)


async def test_resending_the_same_record_stores_nothing_new(hub: Hub) -> None:
    body = person("Phạm", ["Minh", "Châu"], "1988-09-09", cccd="079088004321") | {"id": "chau"}
    first = await hub.writer.commit(Update("Patient", "chau", body), caller=facility("79001"))
    again = await hub.writer.commit(Update("Patient", "chau", body), caller=facility("79001"))
    assert again.version.vid == first.version.vid and not again.changed
    master = await _master(hub, "Patient/chau")
    assert (await hub.store.current("Patient", master.split("/")[1])).vid == 1  # type: ignore[union-attr]


async def test_deleting_sources_rebuilds_then_removes_the_master(hub: Hub) -> None:
    for rid, code in (("a", "79001"), ("b", "79002")):
        body = person("Võ", ["Thanh", "Tâm"], "1960-02-03", cccd="079060001111") | {"id": rid}
        await hub.writer.commit(Update("Patient", rid, body), caller=facility(code))
    master = await _master(hub, "Patient/a")
    await hub.writer.commit(Delete("Patient", "b"), caller=facility("79002"))
    golden = await _json(hub, master)
    assert [link["other"]["reference"] for link in golden["link"]] == ["Patient/a"]
    await hub.writer.commit(Delete("Patient", "a"), caller=facility("79001"))
    gone = await hub.store.current("Patient", master.split("/")[1])
    assert gone is not None and gone.deleted


async def test_a_facility_may_not_send_a_master(hub: Hub) -> None:
    body = person("Đỗ", ["An"], "1999-01-01") | {"meta": {"tag": [
        {"system": "https://fhir.hub.hcmc.vn/CodeSystem/record-role", "code": "master"}]}}
    with pytest.raises(UnprocessableResource, match="meta.tag"):
        await hub.writer.commit(Create("Patient", body), caller=facility("79001"))
