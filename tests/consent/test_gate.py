"""The consent gate looks consents up once per batch, and only for what the policy alone does not decide."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent.engine import Person, Requester, Subject, decide
from consent.gate import ConsentGate, NotPrepared, PersonConsents
from consent.model import ConsentRecord, parse_consent
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


async def test_the_facility_a_resident_addressed_a_request_to_reads_it_as_its_own() -> None:
    """A correction request (a resident's Task) is its owner facility's own record; no one else's."""
    lookups = Lookups()
    request = Subject("Task", "t", frozenset({"a"}), facility=None, addressee="79001")
    gate = ConsentGate(CLINICIAN, default_policy(), lookups)
    await gate.prepare([request])
    assert lookups.asked == [] and gate.outcome(request).rule == "own-records" and gate.permits(request)
    other = ConsentGate(Requester(kind="facility", role="clinician", facility="79002", now=1), default_policy(),
                        lookups)
    await other.prepare([request])
    assert lookups.asked == [frozenset({"a"})] and not other.permits(request)


async def test_a_verdict_on_someone_never_looked_up_is_refused_loudly() -> None:
    gate = ConsentGate(CLINICIAN, default_policy(), Lookups())
    with pytest.raises(NotPrepared):
        gate.permits(subject("1", "a", "79002"))


# ----------------------------------------------------------------- the short verdict agrees with the outcome
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
requesters = st.builds(Requester, kind=st.sampled_from(("facility", "facility", "resident", "hub")),
                       role=st.sampled_from(("clinician", "clinician", "system", "operator", "resident")),
                       facility=st.sampled_from(("79001", "79002", None)),
                       purpose=st.sampled_from(("TREAT", "ETREAT", "ETREAT", "HRESCH", "PUBHLTH", "HPAYMT")),
                       emergency_reason=st.sampled_from((None, "unconscious")), now=st.just(1_700_000_000_000_000))
subjects = st.builds(Subject, st.sampled_from(("Observation", "Patient", "Condition")), st.just("1"),
                     st.frozensets(st.sampled_from(("a", "b")), max_size=2),
                     st.frozensets(st.sampled_from((f"{ACT}|HIV", f"{ACT}|TREAT")), max_size=1),
                     st.sampled_from(("79001", "79002", None)), addressee=st.sampled_from((None, "79001")))


@st.composite
def consents(draw: st.DrawFn, patient: str) -> ConsentRecord:
    provision: dict[str, object] = {"type": draw(st.sampled_from(("permit", "deny")))}
    if draw(st.booleans()):
        provision["securityLabel"] = [{"system": ACT, "code": "HIV"}]
    if draw(st.booleans()):
        provision["purpose"] = [{"system": ACT, "code": draw(st.sampled_from(("TREAT", "HRESCH")))}]
    if draw(st.booleans()):
        provision["provision"] = [{"type": "deny", "class": [{"system": "http://hl7.org/fhir/resource-types",
                                                              "code": "Condition"}]}]
    return parse_consent({
        "resourceType": "Consent", "id": f"c-{patient}-{draw(st.integers(0, 9))}",
        "status": draw(st.sampled_from(("active", "inactive"))),
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                              "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient}"}, "provision": provision,
        "verification": [{"verified": True, "verifiedWith": {"reference": f"Patient/{patient}"}}]})


@settings(max_examples=400, deadline=None)
@given(requesters, st.lists(subjects, min_size=1, max_size=4), st.lists(consents("a"), max_size=2),
       st.lists(consents("b"), max_size=2), st.booleans())
async def test_the_verdict_is_the_outcome_and_the_engine_decision(
        asking: Requester, judged: list[Subject], of_a: list[ConsentRecord], of_b: list[ConsentRecord],
        one_person: bool) -> None:
    records = frozenset({"a", "b"}) if one_person else None
    people = {"a": PersonConsents(records or frozenset({"a"}), tuple(of_a + (of_b if one_person else []))),
              "b": PersonConsents(records or frozenset({"b"}), tuple((of_a if one_person else []) + of_b))}

    async def lookup(patients: frozenset[str]) -> Mapping[str, PersonConsents]:
        return {p: people[p] for p in patients}

    gate = ConsentGate(asking, default_policy(), lookup)
    await gate.prepare(judged)
    for each in judged:
        persons = list({people[p].records: Person(people[p].consents) for p in each.patients}.values())
        expected = decide(each, asking, persons, default_policy()).permitted
        assert gate.permits(each) == gate.outcome(each).permitted == expected
