"""The access decision's one promise: a query narrowed by ``narrow`` never admits a resource whose verdict
is DENY, and admits every one whose verdict is PERMIT. The reader counts and pages from narrowed queries
on the strength of it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from consent.decision import REFUSED, AccessDecision, Refused, ResourceFacts, Verdict

TYPES = ("Patient", "Observation", "Organization")
PATIENTS = ("a", "b", "c")
ids = st.sampled_from(("1", "2", "3", "a", "b"))
facts = st.builds(ResourceFacts, st.sampled_from(TYPES), ids,
                  st.frozensets(st.sampled_from(PATIENTS), max_size=3))
# per (type, permission): refused, open, or limited to some patients
access = st.one_of(st.just(REFUSED), st.none(), st.frozensets(st.sampled_from(PATIENTS), max_size=3))
tables = st.dictionaries(st.tuples(st.sampled_from(TYPES), st.sampled_from("rs")), access)
withheld = st.frozensets(st.builds(lambda t, i: f"{t}/{i}", st.sampled_from(TYPES), ids), max_size=4)


def decision_of(table: dict[tuple[str, str], frozenset[str] | None | Refused], keys: frozenset[str]
                ) -> AccessDecision:
    return AccessDecision(lambda rtype, permission: table.get((rtype, permission), REFUSED), keys)


@given(tables, withheld, facts, st.sampled_from("rs"))
def test_narrowing_and_verdict_agree(table: dict[tuple[str, str], frozenset[str] | None | Refused],
                                     keys: frozenset[str], resource: ResourceFacts, permission: str) -> None:
    decision = decision_of(table, keys)
    narrowing = decision.narrow(resource.rtype, permission)
    verdict = decision.verdict(resource, permission)
    if narrowing is None:
        assert verdict is Verdict.DENY
    else:
        assert narrowing.admits(resource) == (verdict is Verdict.PERMIT)
        assert narrowing.is_open == (narrowing.patients is None and not narrowing.withheld)


@given(tables, withheld, withheld, facts, st.sampled_from("rs"))
def test_withholding_more_never_permits_more(table: dict[tuple[str, str], frozenset[str] | None | Refused],
                                             first: frozenset[str], more: frozenset[str], resource: ResourceFacts,
                                             permission: str) -> None:
    decision = decision_of(table, first)
    wider = decision.withholding(more)
    if wider.verdict(resource, permission) is Verdict.PERMIT:
        assert decision.verdict(resource, permission) is Verdict.PERMIT
    if resource.key in more:
        assert wider.verdict(resource, permission) is Verdict.DENY and wider.withholds(resource.key)


def test_a_compartment_of_several_patients_admits_each_and_no_other() -> None:
    decision = AccessDecision(lambda _rtype, _permission: frozenset({"a", "b"}))
    assert decision.verdict(ResourceFacts("Observation", "1", frozenset({"a"})), "r") is Verdict.PERMIT
    assert decision.verdict(ResourceFacts("Observation", "1", frozenset({"b"})), "r") is Verdict.PERMIT
    assert decision.verdict(ResourceFacts("Observation", "1", frozenset({"c"})), "r") is Verdict.DENY
    assert decision.verdict(ResourceFacts("Observation", "1", frozenset()), "r") is Verdict.DENY


@given(st.frozensets(st.sampled_from(PATIENTS), max_size=3), facts, st.sampled_from("rs"))
def test_a_compartment_caller_nobodys_consents_judge_sees_what_is_theirs_alone(
        own: frozenset[str], resource: ResourceFacts, permission: str) -> None:
    """A resident (no consent gate): a resource also in another person's compartment is never admitted; one
    about them alone, or their own Patient record, always is (of the types that hold personal data)."""
    decision = AccessDecision(lambda _rtype, _permission: own, personal=frozenset(TYPES) - {"Organization"})
    shown = decision.verdict(resource, permission) is Verdict.PERMIT
    if resource.rtype == "Organization":  # no personal data: the compartment alone decides
        assert shown == (not own.isdisjoint(resource.patients))
    elif resource.rtype == "Patient" and resource.rid in own:
        assert shown == (not own.isdisjoint(resource.patients))
    else:
        assert shown == (bool(resource.patients) and resource.patients <= own)
    narrowing = decision.narrow(resource.rtype, permission)
    assert narrowing is not None and narrowing.judges_each == (resource.rtype != "Organization")
