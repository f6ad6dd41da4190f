"""A compartment is a set of patients: one resident spanning two source Patient records (A and B, as
patient matching will link them) reads, searches and writes across both through the one reader, and sees
nothing of C's."""

from __future__ import annotations

import pytest

from fhir_hub.auth.caller import Caller
from fhir_hub.auth.scopes import Scopes
from fhir_hub.errors import Forbidden, NotFound
from fhir_hub.hub import Hub
from fhir_hub.search.limits import DEFAULT_LIMITS
from fhir_hub.search.query import SearchQuery, parse_search
from fhir_hub.store.reader import ScopedReader
from fhir_hub.store.writer import Create, Update
from tests.consent.test_consent_reads import consent

pytestmark = pytest.mark.anyio
HOSPITAL = Caller(subject="hospital", scopes=Scopes.parse("system/*.cruds"), facility="79001")


async def _seed(hub: Hub) -> dict[str, str]:
    ids = {}
    for pid in ("A", "B", "C"):
        await hub.writer.commit(Update("Patient", pid, {"resourceType": "Patient", "id": pid}), caller=HOSPITAL)
        made = await hub.writer.commit(Create("Observation", {
            "resourceType": "Observation", "status": "final", "code": {"text": "HbA1c"},
            "subject": {"reference": f"Patient/{pid}"}}), caller=HOSPITAL)
        ids[pid] = made.version.rid
    return ids


def _search(rtype: str, query: str = "") -> SearchQuery:
    params = [(name, value) for name, _, value in (p.partition("=") for p in query.split("&") if p)]
    return parse_search(rtype, params, strict=True, limits=DEFAULT_LIMITS)


async def test_a_resident_of_two_records_sees_both_and_nothing_else(hub: Hub) -> None:
    ids = await _seed(hub)
    resident = Caller(subject="r", scopes=Scopes.parse("patient/*.crus"), patient="A", linked=frozenset({"B"}))
    reader = ScopedReader(hub.store, resident)
    outcome = await reader.search(_search("Observation"))
    assert {v.rid for v in outcome.page} == {ids["A"], ids["B"]} and outcome.total == 2
    patients = await reader.search(_search("Patient"))
    assert {v.rid for v in patients.page} == {"A", "B"}
    assert (await reader.read("Observation", ids["B"])).rid == ids["B"]
    with pytest.raises(NotFound):
        await reader.read("Observation", ids["C"])
    history = await reader.history(rtype="Observation", rid=None, since=None, before=None, limit=10)
    assert {v.rid for v in history.versions} == {ids["A"], ids["B"]}
    by_code = await reader.search(_search("Observation", "code:text=HbA1c&subject=Patient/C"))
    assert by_code.page == [] and by_code.total == 0

    # writes (a resident writes consents): about either record, never about C
    def consent_of(pid: str) -> Create:
        return Create("Consent", {**consent(), "patient": {"reference": f"Patient/{pid}"}})

    for pid in ("A", "B"):
        await hub.writer.commit(consent_of(pid), caller=resident)
    with pytest.raises(Forbidden):
        await hub.writer.commit(consent_of("C"), caller=resident)
    with pytest.raises(NotFound):  # C's Observation is answered as missing, also to a write
        await hub.writer.commit(Update("Observation", ids["C"], {
            "resourceType": "Observation", "id": ids["C"], "status": "final", "code": {"text": "x"},
            "subject": {"reference": "Patient/A"}}), caller=resident)
