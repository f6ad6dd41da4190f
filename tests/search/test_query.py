"""Search parameter parsing, against a straightforward reference of FHIR's escaping rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhir_hub.errors import BadRequest
from fhir_hub.search.keys import token_index_keys, token_query_key
from fhir_hub.search.query import parse_count, parse_search, split_or, split_token, unescape

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


@given(system=plain, value=plain.filter(bool))
def test_every_token_query_form_finds_the_stored_token(system: str, value: str) -> None:
    stored = set(token_index_keys("Patient", "identifier", system or None, value))
    assert token_query_key("Patient", "identifier", None, value) in stored  # value in any system
    assert token_query_key("Patient", "identifier", system, value) in stored  # exact (|value when no system)
    if system:
        assert token_query_key("Patient", "identifier", system, "") in stored  # any value in the system
        assert token_query_key("Patient", "identifier", "", value) not in stored  # "no system" must not match


@given(a=plain.filter(bool), b=plain.filter(bool))
def test_distinct_tokens_never_share_keys(a: str, b: str) -> None:
    if a != b:
        assert not set(token_index_keys("Patient", "identifier", a, b)) & set(
            token_index_keys("Patient", "identifier", b, a))


def test_long_values_are_digested() -> None:
    key = token_query_key("Patient", "identifier", "urn:x", "v" * 2000)
    assert len(key) < 200
    assert key in token_index_keys("Patient", "identifier", "urn:x", "v" * 2000)


def test_parse_search_lenient_and_strict() -> None:
    query = parse_search("Patient", [("_id", "a,b"), ("foo", "1"), ("_count", "5"), ("_format", "json")],
                         default_count=20, max_count=100, strict=False)
    assert query.count == 5 and query.ignored == ("foo",)
    assert query.criteria_params() == [("_id", "a,b")]
    with pytest.raises(BadRequest) as err:
        parse_search("Patient", [("foo", "1")], default_count=20, max_count=100, strict=True)
    assert err.value.issues[0].expression == ("foo",)


@given(st.text(max_size=6))
def test_count_parsing(raw: str) -> None:
    try:
        count = parse_count(raw, default=20, maximum=1000)
    except BadRequest as err:
        assert err.issues[0].expression == ("_count",)
    else:
        assert 0 <= count <= 1000 and count == int(raw)
