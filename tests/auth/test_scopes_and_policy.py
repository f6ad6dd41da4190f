"""SMART scope parsing and the access decisions built on it, against a reference written from the spec."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consent.decision import ResourceFacts, Verdict
from fhir_hub.auth.caller import Caller, InvalidClaims
from fhir_hub.auth.policy import access_decision, grant, source_uri
from fhir_hub.auth.scopes import Scopes, parse_scope
from fhir_hub.fhir.compartment import compartment_types

V1 = {"read": set("rs"), "write": set("cud"), "*": set("cruds")}


def reference_permissions(text: str) -> set[str] | None:
    """SMART App Launch 2.0: v2 is c, r, u, d, s in this order, each at most once; v1 read/write/*."""
    if text in V1:
        return V1[text]
    if not text or any(ch not in "cruds" for ch in text):
        return None
    positions = ["cruds".index(ch) for ch in text]
    return set(text) if positions == sorted(set(positions)) else None


contexts = st.sampled_from(["system", "user", "patient", "launch", "System", ""])
types = st.sampled_from(["*", "Patient", "Observation", "AuditEvent", "patient", "Obs-ervation", ""])
perms = st.text(alphabet="cruds*readwritex", max_size=6)


@given(contexts, types, perms)
def test_scope_parsing_matches_the_reference(context: str, rtype: str, permissions: str) -> None:
    parsed = parse_scope(f"{context}/{rtype}.{permissions}")
    valid_type = rtype == "*" or (rtype[:1].isupper() and rtype.isalpha())
    expected = reference_permissions(permissions) if context in ("system", "user", "patient") and valid_type else None
    if expected is None:
        assert parsed is None
    else:
        assert parsed is not None and set(parsed.permissions) == expected and parsed.context == context


@given(st.text(max_size=120))
def test_any_scope_string_parses_without_error(text: str) -> None:
    Scopes.parse(text)


@pytest.mark.parametrize(("scope", "rtype", "permission", "allowed"), [
    ("system/*.cruds", "Observation", "d", True),
    ("system/Observation.rs", "Observation", "r", True),
    ("system/Observation.rs", "Observation", "c", False),
    ("system/Observation.rs", "Encounter", "r", False),
    ("user/*.read", "Encounter", "s", True),
    ("user/*.read", "Encounter", "u", False),
    ("user/Observation.write", "Observation", "c", True),
    ("patient/*.rs", "Observation", "r", True),
    ("patient/*.rs", "Organization", "r", False),  # not in the Patient compartment
    ("openid fhirUser launch/patient", "Patient", "r", False),
    ("system/Observation.rs?category=laboratory", "Observation", "r", False),  # narrowed scopes grant nothing
    ("system/*.sr", "Patient", "r", False),  # out of order: not a v2 scope
])
def test_grants(scope: str, rtype: str, permission: str, allowed: bool) -> None:
    caller = Caller(subject="t", scopes=Scopes.parse(scope), patient="p1")
    assert (grant(caller, rtype, permission) is not None) is allowed


def test_patient_scopes_are_limited_to_the_compartment_and_user_scopes_win() -> None:
    resident = Caller(subject="r", scopes=Scopes.parse("patient/*.rs"), patient="p1")
    limited = grant(resident, "Observation", "r")
    assert limited is not None and limited.compartment == {"p1"}
    decision = access_decision(resident)
    assert decision.verdict(ResourceFacts("Observation", "o", frozenset({"p1"})), "r") is Verdict.PERMIT
    assert decision.verdict(ResourceFacts("Observation", "o", frozenset({"p2"})), "r") is Verdict.DENY
    # in p1's compartment but also p2's: a resident sees what is about them alone (consent/decision.py)
    assert decision.verdict(ResourceFacts("Observation", "o", frozenset({"p1", "p2"})), "r") is Verdict.DENY
    both = Caller(subject="c", scopes=Scopes.parse("patient/*.rs user/Observation.rs"), patient="p1")
    wide = grant(both, "Observation", "r")
    assert wide is not None and wide.compartment is None
    assert "Observation" in compartment_types() and "Organization" not in compartment_types()


def test_a_compartment_is_a_set_of_patients() -> None:
    """One resident spanning two source Patient records (A and B) sees both, writes into either, and
    nothing else."""
    resident = Caller(subject="r", scopes=Scopes.parse("patient/*.cruds"), patient="A", linked=frozenset({"B"}))
    decision = access_decision(resident)
    narrowing = decision.narrow("Observation", "s")
    assert narrowing is not None and narrowing.patients == {"A", "B"}
    for patients, verdict in (({"A"}, Verdict.PERMIT), ({"B"}, Verdict.PERMIT), ({"A", "B"}, Verdict.PERMIT),
                              ({"B", "C"}, Verdict.DENY), ({"C"}, Verdict.DENY), (set(), Verdict.DENY)):
        assert decision.verdict(ResourceFacts("Observation", "o", frozenset(patients)), "r") is verdict
    write = grant(resident, "Observation", "c")
    assert write is not None
    assert write.may_write(frozenset({"A"})) and write.may_write(frozenset({"A", "B"}))
    assert not write.may_write(frozenset({"A", "C"})) and not write.may_write(frozenset())


@pytest.mark.parametrize(("claims", "message"), [
    ({"sub": "x", "scope": "patient/*.rs"}, "patient claim"),
    ({"sub": "x", "scope": "system/*.rs", "facility": "HCMC-1"}, "facility"),
    ({"sub": "x", "scope": "system/*.rs", "patient": "not an id!"}, "patient claim"),
    ({"sub": "x", "scope": ["system/*.rs"]}, "scope"),
    ({"sub": "x", "scope": "system/*.rs", "purpose_of_use": "treat me"}, "purpose_of_use"),
])
def test_malformed_claims_make_the_token_unusable(claims: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidClaims, match=message):
        Caller.from_claims(claims)


def test_sources() -> None:
    hospital = Caller.from_claims({"sub": "his", "scope": "system/*.cruds", "facility": "79001"})
    resident = Caller.from_claims({"sub": "r", "scope": "patient/*.cruds", "patient": "p1"})
    nobody = Caller.from_claims({"sub": "n", "scope": "system/*.cruds"})
    assert source_uri(hospital, "urn:fhir-hub") == "urn:fhir-hub:facility:79001"
    assert source_uri(resident, "urn:fhir-hub") == "urn:fhir-hub:resident:p1"
    assert source_uri(nobody, "urn:fhir-hub") is None
    assert hospital.role == "system" and resident.role == "resident"
