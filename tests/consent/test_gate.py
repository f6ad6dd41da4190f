"""The consent gate looks consents up once per batch, and only for what the policy alone does not decide."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from consent.engine import Requester, Subject
from consent.gate import ConsentGate, NotPrepared, PersonConsents
from consent.policy import default_policy

pytestmark = pytest.mark.anyio
CLINICIAN = Requester(kind="facility", role="clinician", facility="79001", now=1)


def subject(rid: str, patient: str, facility: str) -> Subject:
    return Subject("Observation", rid, frozenset({patient}), facility=facility)


class Lookups:
    def __init__(self) -> None:
        self.asked: list[frozenset[str]] = []

    async def __call__(self, patients: frozenset[str]) -> Mapping[str, PersonConsents]:
        self.asked.append(patients)
        return {}


async def test_own_records_need_no_look_up_and_others_one_per_batch() -> None:
    lookups = Lookups()
    gate = ConsentGate(CLINICIAN, default_policy(), lookups)
    own = [subject("1", "a", "79001"), subject("2", "b", "79001")]
    await gate.prepare(own)
    assert lookups.asked == [] and all(gate.permits(s) for s in own)
    others = [subject("3", "a", "79002"), subject("4", "b", "79002"), subject("5", "a", "79003")]
    await gate.prepare(others)
    await gate.prepare(others)  # known people are not asked for again within the request
    assert lookups.asked == [frozenset({"a", "b"})]
    assert not any(gate.permits(s) for s in others)


async def test_a_verdict_on_someone_never_looked_up_is_refused_loudly() -> None:
    gate = ConsentGate(CLINICIAN, default_policy(), Lookups())
    with pytest.raises(NotPrepared):
        gate.permits(subject("1", "a", "79002"))
