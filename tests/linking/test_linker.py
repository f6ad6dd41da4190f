"""The match step in the write path: facility records of one person get one master Patient, whatever the
entry point, and the master is the golden record of its sources."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_hub.auth.caller import Caller
from fhir_hub.auth.scopes import Scopes
from fhir_hub.config import Settings
from fhir_hub.errors import UnprocessableResource
from fhir_hub.fhir.jsonio import loads
from fhir_hub.hub import Hub
from fhir_hub.linking.elements import Decision, is_master, master_of
from fhir_hub.linking.linker import Linker
from fhir_hub.store.writer import Create, Delete, Update
from tests.linking.callers import operator

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


def test_two_records_of_one_person_in_one_transaction_share_a_master(client: Any, settings: Settings) -> None:
    """The second record is matched against the first before either is committed (the group's own links).
    The facility reads its own records; the master, which no facility sees, is read as the hub's operator."""
    entries = [{"fullUrl": f"urn:uuid:{n}", "request": {"method": "POST", "url": "Patient"},
                "resource": person("Lê", ["Văn", "Tám"], "1950-08-08", gender="male", cccd="079050002222")}
               for n in range(2)]
    answer = client.post("/", json={"resourceType": "Bundle", "type": "transaction", "entry": entries})
    assert answer.status_code == 200, answer.text
    ids = [e["response"]["location"].split("Patient/")[1].split("/")[0] for e in answer.json()["entry"]]
    refers = {client.get(f"/Patient/{pid}").json()["link"][-1]["other"]["reference"] for pid in ids}
    assert len(refers) == 1
    golden = client.get(f"/{refers.pop()}", headers=operator(settings)).json()
    assert sorted(link["other"]["reference"] for link in golden["link"]) == sorted(f"Patient/{i}" for i in ids)


def test_a_new_persons_master_is_written_with_the_transaction(client: Any, settings: Settings,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A transaction with one new person's record and two records of another: the first master is one more
    write of the transaction (nothing to rebuild after the commit), the second is rebuilt from both records
    once committed; each golden record lists its records."""
    rebuilt: list[str] = []
    real = Linker.rebuild

    async def counted(self: Linker, master: str, **kwargs: Any) -> None:
        rebuilt.append(master)
        await real(self, master, **kwargs)

    monkeypatch.setattr(Linker, "rebuild", counted)
    alone = person("Võ", ["Thị", "Sáu"], "1933-02-01", cccd="079033001111")
    pair = person("Lê", ["Văn", "Tám"], "1950-08-08", gender="male", cccd="079050002222")
    entries = [{"fullUrl": f"urn:uuid:{n}", "request": {"method": "POST", "url": "Patient"}, "resource": body}
               for n, body in enumerate((alone, pair, pair))]
    answer = client.post("/", json={"resourceType": "Bundle", "type": "transaction", "entry": entries})
    assert answer.status_code == 200, answer.text
    ids = [e["response"]["location"].split("Patient/")[1].split("/")[0] for e in answer.json()["entry"]]
    masters = [client.get(f"/Patient/{pid}").json()["link"][-1]["other"]["reference"] for pid in ids]
    assert masters[1] == masters[2] != masters[0]
    assert rebuilt == [masters[1]]  # the pair's master only
    for master, records in ((masters[0], ids[:1]), (masters[1], ids[1:])):
        golden = client.get(f"/{master}", headers=operator(settings)).json()
        assert sorted(link["other"]["reference"] for link in golden["link"]) == sorted(f"Patient/{i}" for i in records)


async def test_a_record_that_proves_two_persons_one_merges_their_masters(hub: Hub) -> None:
    """Known by name and phone at a commune station, by CCCD at a hospital; a clinic's record with both
    shows they are one man: the newer master is redirected (replaced-by) into the other, which lists every
    record; nothing of the facilities' records changes."""
    by_phone = person("Phạm", ["Văn", "Bình"], "1980", gender="male", phone="0911000111")
    by_id = person("Pham", ["Binh"], "1980-05-05", gender="male", cccd="079080003333",
                   address=[{"district": "Phường Tân Định"}])
    a = await hub.writer.commit(Update("Patient", "a", by_phone | {"id": "a"}), caller=facility("79001"))
    b = await hub.writer.commit(Update("Patient", "b", by_id | {"id": "b"}), caller=facility("79002"))
    first, second = await _master(hub, "Patient/a"), await _master(hub, "Patient/b")
    assert first != second  # nothing links them yet
    both = person("Phạm", ["Văn", "Bình"], "1980-05-05", gender="male", cccd="079080003333", phone="0911000111")
    await hub.writer.commit(Update("Patient", "c", both | {"id": "c"}), caller=facility("79003"))
    kept = await hub.store.master_in_use("Patient/a")
    assert kept == await hub.store.master_in_use("Patient/b") == await hub.store.master_in_use("Patient/c")
    merged = second if kept == first else first
    redirect = await _json(hub, merged)
    [forward] = redirect["link"]
    assert redirect["active"] is False and forward["type"] == "replaced-by" and forward["other"]["reference"] == kept
    why = Decision.from_extension(forward["extension"][0])  # the merge's audit trail: this version
    assert why.rule == "re-link" and why.matched == "Patient/c" and why.author == "fhir-hub/matching"
    golden = await _json(hub, kept)
    assert {(link["type"], link["other"]["reference"]) for link in golden["link"]} == {
        ("replaces", merged), ("seealso", "Patient/a"), ("seealso", "Patient/b"), ("seealso", "Patient/c")}
    # the facilities' records are as they were: the same version, the same master reference
    assert (await hub.store.current("Patient", "a")).vid == a.version.vid  # type: ignore[union-attr]
    assert (await hub.store.current("Patient", "b")).vid == b.version.vid  # type: ignore[union-attr]


async def test_two_different_personal_ids_are_never_merged(hub: Hub) -> None:
    """A record linking by its score with two men holding different CCCDs (with one by phone too): the two
    are not merged, and the record joins neither (it is ambiguous: on review against both)."""
    one = person("Đặng", ["Văn", "Sơn"], "1966-06-06", gender="male", cccd="079066001111", phone="0988000111")
    two = person("Đặng", ["Văn", "Sơn"], "1966-06-06", gender="male", cccd="079066002222")
    await hub.writer.commit(Update("Patient", "one", one | {"id": "one"}), caller=facility("79001"))
    await hub.writer.commit(Update("Patient", "two", two | {"id": "two"}), caller=facility("79002"))
    assert await hub.store.master_in_use("Patient/one") != await hub.store.master_in_use("Patient/two")
    bridge = person("Đặng", ["Văn", "Sơn"], "1966-06-06", gender="male", phone="0988000111")
    await hub.writer.commit(Update("Patient", "bridge", bridge | {"id": "bridge"}), caller=facility("79003"))
    masters = {await hub.store.master_in_use(f"Patient/{rid}") for rid in ("one", "two", "bridge")}
    assert len(masters) == 3
    stored = await hub.store.current("Patient", "bridge")
    assert stored is not None and stored.json is not None
    linked = master_of(loads(stored.json))
    assert linked is not None and linked[1].rule == "ambiguous" and linked[1].reviews == ("Patient/one", "Patient/two")
