"""Ids and instants: the two kinds of outside input that reach keys and queries directly."""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhir_hub.errors import BadRequest
from fhir_hub.fhir.ids import check_id, is_valid_id, new_uuid_id
from fhir_hub.fhir.instant import (
    from_http_date,
    parse_instant_lower_bound,
    to_datetime,
    to_http_date,
    to_instant,
)

ID_CHARS = string.ascii_letters + string.digits + "-."
REFERENCE = re.compile(r"^[A-Za-z0-9\-\.]{1,64}$")  # the R4 definition, written independently


@given(st.text(max_size=80))
def test_id_check_agrees_with_the_r4_pattern(value: str) -> None:
    expected = REFERENCE.match(value) is not None and "\n" not in value
    assert is_valid_id(value) == expected
    if expected:
        assert check_id(value) == value
    else:
        with pytest.raises(BadRequest) as err:
            check_id(value)
        assert err.value.status == 400


@given(st.text(alphabet=ID_CHARS, min_size=1, max_size=64))
def test_every_well_formed_id_is_accepted(value: str) -> None:
    assert is_valid_id(value)


def test_generated_ids_are_valid_and_distinct() -> None:
    ids = {new_uuid_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(is_valid_id(i) for i in ids)


@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)))
def test_instant_round_trip(moment: datetime) -> None:
    micros = round((moment - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))
    text = to_instant(micros)
    assert parse_instant_lower_bound(text) == micros
    assert to_datetime(micros) == moment
    assert from_http_date(to_http_date(micros)) == micros - micros % 1_000_000


@pytest.mark.parametrize(("text", "expected"), [  # without a zone: the hub's, Asia/Ho_Chi_Minh (+07:00)
    ("2024", datetime(2023, 12, 31, 17, tzinfo=UTC)),
    ("2024-03", datetime(2024, 2, 29, 17, tzinfo=UTC)),
    ("2024-03-09", datetime(2024, 3, 8, 17, tzinfo=UTC)),
    ("2024-03-09T10:15:00", datetime(2024, 3, 9, 3, 15, tzinfo=UTC)),
    ("2024-03-09T10:15:00+07:00", datetime(2024, 3, 9, 3, 15, tzinfo=UTC)),
    ("2024-03-09T10:15:00.5Z", datetime(2024, 3, 9, 10, 15, 0, 500000, tzinfo=UTC)),
])
def test_partial_instants_start_at_their_period(text: str, expected: datetime) -> None:
    assert to_datetime(parse_instant_lower_bound(text) or 0) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "2024-13", "2024-02-30", "2024-03-09T25:00:00Z", "20240309"])
def test_non_instants_are_refused(text: str) -> None:
    assert parse_instant_lower_bound(text) is None


def test_http_dates() -> None:
    assert from_http_date("not a date") is None
    assert to_http_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT"
