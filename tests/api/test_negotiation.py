"""Content negotiation as a pure function, property-tested."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhir_hub.api.negotiation import FHIR_JSON, JSON, check_body_media_type, response_media_type
from fhir_hub.errors import NotAcceptable, UnsupportedMediaType


@pytest.mark.parametrize(("accept", "expected"), [
    (None, FHIR_JSON),
    ("application/fhir+json", FHIR_JSON),
    ("application/json", JSON),
    ("application/fhir+xml;q=1.0, application/json;q=0.5", JSON),
    ("application/json;q=0.4, application/fhir+json;q=0.9", FHIR_JSON),
    ("*/*", FHIR_JSON),
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", FHIR_JSON),
    ("application/json+fhir", FHIR_JSON),
])
def test_accept(accept: str | None, expected: str) -> None:
    assert response_media_type(accept, None) == expected


@pytest.mark.parametrize("accept", ["application/fhir+xml", "text/xml", "application/json;q=0", "image/png"])
def test_unacceptable(accept: str) -> None:
    with pytest.raises(NotAcceptable):
        response_media_type(accept, None)


def test_format_parameter_wins() -> None:
    assert response_media_type("application/fhir+xml", "json") == FHIR_JSON
    with pytest.raises(NotAcceptable):
        response_media_type(None, "xml")


media = st.sampled_from(["application/fhir+json", "application/json", "application/xml", "text/plain", "*/*",
                         "application/*", "text/html", "garbage"])


@given(st.lists(st.tuples(media, st.floats(0, 1) | st.none()), max_size=5))
def test_accept_never_crashes_and_only_answers_json(ranges: list[tuple[str, float | None]]) -> None:
    header = ", ".join(m if q is None else f"{m};q={q:.2f}" for m, q in ranges)
    try:
        chosen = response_media_type(header, None)
    except NotAcceptable:
        return
    assert chosen in (FHIR_JSON, JSON)


@pytest.mark.parametrize("content_type", [None, "application/fhir+json", "application/json; charset=UTF-8",
                                          "application/fhir+json;charset=utf-8"])
def test_json_bodies_accepted(content_type: str | None) -> None:
    check_body_media_type(content_type)


@pytest.mark.parametrize("content_type", ["application/fhir+xml", "text/plain", "application/json; charset=latin-1"])
def test_other_bodies_refused(content_type: str) -> None:
    with pytest.raises(UnsupportedMediaType):
        check_body_media_type(content_type)
