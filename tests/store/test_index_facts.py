"""What consent-judged searches read beside the entries: each live version's access facts on its index
documents (a search judges its matches by them instead of reading every match's version again), and each
linked record's birth date on its link (a child's consent is judged without reading every record)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
import pytest

from fhir_hub.auth.caller import Caller
from fhir_hub.auth.scopes import Scopes
from fhir_hub.hub import Hub
from fhir_hub.services.search import search
from fhir_hub.services.session import Session
from fhir_hub.store.index_docs import FACTS
from fhir_hub.store.records import StoredVersion, index_facts
from fhir_hub.store.writer import Delete, Update

pytestmark = pytest.mark.anyio
HUB = Caller.hub("test")
LOINC = "http://loinc.org"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def facility(code: str) -> Caller:
    return Caller(subject=f"system-{code}", scopes=Scopes.parse("system/*.cruds"), facility=code)


def observation(rid: str, patient: str, *labels: str) -> dict[str, Any]:
    meta = {"security": [{"system": ACT, "code": label} for label in labels]} if labels else {}
    return {"resourceType": "Observation", "id": rid, "status": "final", "subject": {"reference": f"Patient/{patient}"},
            "code": {"coding": [{"system": LOINC, "code": "8480-6"}]}, "effectiveDateTime": "2025-03-01",
            **({"meta": meta} if meta else {})}


async def index_docs(hub: Hub, key: str) -> list[dict[str, Any]]:
    return [doc async for doc in hub.store.index.find({"r": key})]


async def test_every_index_document_carries_its_live_versions_facts(hub: Hub) -> None:
    await hub.writer.commit(Update("Patient", "p1", {"resourceType": "Patient", "id": "p1"}), caller=facility("79001"))
    await hub.writer.commit(Update("Observation", "o1", observation("o1", "p1")), caller=facility("79001"))
    relabelled = await hub.writer.commit(Update("Observation", "o1", observation("o1", "p1", "HIV")),
                                         caller=facility("79001"))
    docs = await index_docs(hub, "Observation/o1")
    assert len(docs) > 1
    version = relabelled.version
    assert {doc[FACTS] for doc in docs} == {index_facts(version)}  # the new label on every one
    assert f"{ACT}|HIV" in version.labels and version.source is not None and version.source.endswith(":79001")

    await hub.writer.commit(Delete("Observation", "o1"), caller=HUB)
    assert [doc for doc in await index_docs(hub, "Observation/o1") if FACTS in doc] == []


async def test_a_consent_judged_search_reads_no_version_for_the_matches_its_entries_found(hub: Hub) -> None:
    for n, code in enumerate(("79001", "79002")):
        await hub.writer.commit(Update("Patient", f"p{n}", {"resourceType": "Patient", "id": f"p{n}"}),
                                caller=facility(code))
        await hub.writer.commit(Update("Observation", f"o{n}", observation(f"o{n}", f"p{n}")), caller=facility(code))
    read: list[str] = []
    live_facts = hub.store.live_facts

    async def recorded(keys: Iterable[str]) -> list[StoredVersion]:
        wanted = list(keys)
        read.extend(wanted)
        return await live_facts(wanted)

    hub.store.live_facts = recorded  # type: ignore[method-assign]
    clinician = Caller(subject="dr", scopes=Scopes.parse("user/*.rs"), facility="79001",
                       fhir_user="Practitioner/dr")
    found = await search(Session.open(hub, clinician), "Observation", [("code", f"{LOINC}|8480-6")])
    # the facility's own Observation by the policy; the other's needs a consent its resident never gave
    assert [v.key for v in found.outcome.page] == ["Observation/o0"] and found.outcome.total == 1
    assert not [key for key in read if key.startswith("Observation/")]


async def test_links_state_the_birth_dates_a_childs_consent_is_judged_by(hub: Hub) -> None:
    cccd = {"system": "http://fhir.hl7.org.vn/core/sid/cccd", "value": "079320000001"}
    for rid, code in (("k1", "79001"), ("k2", "79002")):
        child = {"resourceType": "Patient", "id": rid, "birthDate": "2020-05-04",
                 "gender": "female", "name": [{"family": "Lê", "given": ["An"]}], "identifier": [cccd]}
        await hub.writer.commit(Update("Patient", rid, child), caller=facility(code))
    people, births = await hub.store.people_born(["Patient/k1"])
    assert {"Patient/k1", "Patient/k2"} < people["Patient/k1"]  # and their master
    assert {key: births[key] for key in people["Patient/k1"] if key in births} == {
        "Patient/k1": "2020-05-04", "Patient/k2": "2020-05-04"}  # a master has no link to state it


def test_a_resident_s_request_carries_its_addressee_in_both_places_and_others_none() -> None:
    """The facility a resident addressed a Task to is a fact of the version document and of every index
    document (``access_facts.addressee``); versions and index documents written before it read as none."""
    from fhir_hub.fhir.access_facts import FACILITY_SYSTEM, addressee
    from fhir_hub.store.reader import facts_from_index, facts_of

    owner = {"owner": {"identifier": {"system": FACILITY_SYSTEM, "value": "79002"}}}
    assert addressee("Task", owner, "urn:fhir-hub:resident:pat-a") == "79002"
    assert addressee("Task", owner, "urn:fhir-hub:facility:79001") is None  # a facility's Task discloses nothing
    assert addressee("Observation", owner, "urn:fhir-hub:resident:pat-a") is None
    version = StoredVersion("Task", "t1", 1, 1, "POST", False, b"{}", source="urn:fhir-hub:resident:pat-a",
                            patients=frozenset({"pat-a"}), addressee="79002")
    assert StoredVersion.from_doc(version.current_doc()).addressee == "79002"
    assert facts_of(version).addressee == facts_from_index(version.key, index_facts(version)).addressee == "79002"
    plain = StoredVersion("Task", "t2", 1, 1, "POST", False, b"{}", source="urn:fhir-hub:facility:79001")
    assert b'"to"' not in plain.current_doc()["af"] and len(orjson.loads(index_facts(plain))) == 5
    assert facts_from_index(plain.key, index_facts(plain)).addressee is None
