"""The reader's safety net: should a decision's verdict deny a resource its narrowing let through (a bug in
a future policy, or a REDACT-style rule that cannot narrow), the resource is still not handed out, and the
search's total is left out rather than counting it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from consent.decision import AccessDecision, ResourceFacts, Verdict
from fhir_hub.auth.caller import Caller
from fhir_hub.auth.policy import access_decision
from fhir_hub.auth.scopes import Scopes
from fhir_hub.hub import Hub
from fhir_hub.search.limits import DEFAULT_LIMITS
from fhir_hub.search.query import parse_search
from fhir_hub.store.reader import ScopedReader
from fhir_hub.store.writer import Update

pytestmark = pytest.mark.anyio
HOSPITAL = Caller(subject="hospital", scopes=Scopes.parse("system/*.cruds"), facility="79001")


@dataclass(frozen=True)
class DeniesWithoutNarrowing(AccessDecision):
    denied: str = ""

    def verdict(self, facts: ResourceFacts, permission: str) -> Verdict:
        return Verdict.DENY if facts.key == self.denied else super().verdict(facts, permission)


async def test_a_denied_resource_the_narrowing_admitted_is_dropped_and_the_total_left_out(hub: Hub) -> None:
    for pid in ("a", "b", "c"):
        await hub.writer.commit(Update("Patient", pid, {"resourceType": "Patient", "id": pid}), caller=HOSPITAL)
    decision = DeniesWithoutNarrowing(access_decision(HOSPITAL).scopes, denied="Patient/b")
    reader = ScopedReader(hub.store, HOSPITAL, decision=decision)
    outcome = await reader.search(parse_search("Patient", [("_count", "10")], strict=True, limits=DEFAULT_LIMITS))
    assert [v.rid for v in outcome.page] == ["a", "c"] and outcome.total is None
    with pytest.raises(Exception, match="not known"):
        await reader.read("Patient", "b")
    plain = await ScopedReader(hub.store, HOSPITAL).search(
        parse_search("Patient", [("_count", "10")], strict=True, limits=DEFAULT_LIMITS))
    assert plain.total == 3
