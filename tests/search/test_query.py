"""Search parameter parsing, against a straightforward reference of FHIR's escaping rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhir_hub.errors import BadRequest
from fhir_hub.search.keys import token_entry, token_match
from fhir_hub.search.limits import SearchLimits
from fhir_hub.search.query import parse_count, parse_search, split_or, split_token, unescape
from fhir_hub.store.records import EntryMatch, SearchEntry

LIMITS = SearchLimits(default_count=20, max_count=100, max_params=30, max_chain_depth=2)
plain = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


def escape(value: str) -> str:
    """The client side of FHIR escaping (search.html#escaping), written out separately."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("|", "\\|").replace("$", "\\$")


@given(st.lists(plain, min_size=1, max_size=4))
def test_or_values_round_trip(values: list[str]) -> None:
    parts = split_or(",".join(escape(v) for v in values))
    assert [unescape(p) for p in parts] == values


@given(plain, plain)
def test_tokens_round_trip(system: str, code: str) -> None:
    assert split_token(f"{escape(system)}|{escape(code)}") == (system, code)
    assert split_token(escape(code)) == (None, code)


def matches(entry: SearchEntry, match: EntryMatch) -> bool:
    """The store's matching rule, restated: key equality (or prefix), and the system when one is asked."""
    key_ok = entry.key.startswith(match.key) if match.prefix else entry.key == match.key
    return key_ok and (match.system is None or match.system == entry.system)


@given(system=plain, value=plain.filter(bool), other=plain)
def test_every_token_query_form_finds_the_stored_token(system: str, value: str, other: str) -> None:
    stored = token_entry("Patient", "identifier", system or None, value)
    assert matches(stored, token_match("Patient", "identifier", None, value))  # value in any system
    assert matches(stored, token_match("Patient", "identifier", system, value))  # exact (|value: no system)
    assert matches(stored, token_match("Patient", "identifier", system, ""))  # any value in the system
    if system:
        assert not matches(stored, token_match("Patient", "identifier", "", value))  # "no system" must not match
    if other != system:
        assert not matches(stored, token_match("Patient", "identifier", other, value))
    if other != value:
        assert not matches(stored, token_match("Patient", "identifier", None, other))


def test_long_values_are_digested() -> None:
    match = token_match("Patient", "identifier", "urn:x", "v" * 2000)
    assert len(match.key) < 200
    assert matches(token_entry("Patient", "identifier", "urn:x", "v" * 2000), match)


def test_parse_search_lenient_and_strict() -> None:
    query = parse_search("Patient", [("_id", "a,b"), ("foo", "1"), ("_count", "5"), ("_format", "json"),
                                     ("name:exact", "An"), ("general-practitioner:Practitioner.name", "Lan"),
                                     ("_sort", "-birthdate,_id"), ("_include", "Patient:organization")],
                         limits=LIMITS, strict=False)
    assert query.count == 5 and query.ignored == ("foo",)
    assert query.link_params() == [("_id", "a,b"), ("name:exact", "An"),
                                   ("general-practitioner:Practitioner.name", "Lan"), ("_sort", "-birthdate,_id"),
                                   ("_include", "Patient:organization")]
    assert query.sort == (("birthdate", True), ("_id", False))
    with pytest.raises(BadRequest) as err:
        parse_search("Patient", [("foo", "1")], limits=LIMITS, strict=True)
    assert err.value.issues[0].expression == ("foo",)
    for bad in (("name:below", "x"), ("birthdate.name", "x"), ("gender:missing", "maybe"), ("_sort", "nickname"),
                ("_include", "Patient:name"), ("_summary", "short"), ("_total", "some"), ("_elements", "a b"),
                ("_has:Observation", "x")):
        with pytest.raises(BadRequest):
            parse_search("Patient", [bad], limits=LIMITS, strict=False)


def test_chains_deeper_than_the_limit_are_refused() -> None:
    """Each chain step and nested _has is a search of its own: FHIR_HUB_MAX_CHAIN_DEPTH bounds them."""
    parse_search("Patient", [("general-practitioner.organization.name", "x")], limits=LIMITS, strict=True)
    parse_search("Patient", [("_has:Observation:subject:_has:Provenance:target:agent", "x")], limits=LIMITS,
                 strict=True)
    for key in ("general-practitioner.organization.partof.name",
                "_has:Observation:subject:_has:Provenance:target:_has:AuditEvent:entity:type"):
        with pytest.raises(BadRequest) as err:
            parse_search("Patient", [(key, "x")], limits=LIMITS, strict=True)
        assert err.value.issues[0].code == "too-costly" and "FHIR_HUB_MAX_CHAIN_DEPTH" in str(err.value)


@given(st.text(max_size=6))
def test_count_parsing(raw: str) -> None:
    try:
        count = parse_count(raw, default=20, maximum=1000)
    except BadRequest as err:
        assert err.issues[0].expression == ("_count",)
    else:
        assert 0 <= count <= 1000 and count == int(raw)
