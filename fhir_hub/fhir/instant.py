"""Time as the store keeps it (integer microseconds since the epoch, UTC) and as FHIR and HTTP print it.

Integers, not BSON dates: nx-27017 answers range queries on date fields wrongly (see the store-contract
tests), and microseconds let every version of one resource get a strictly later ``lastUpdated``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import formatdate, parsedate_to_datetime

Clock = Callable[[], int]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# FHIR dateTime/instant, at any precision from a year to fractions of a second.
_FHIR_DATETIME = re.compile(
    r"(?P<y>\d{4})(-(?P<m>\d{2})(-(?P<d>\d{2})(T(?P<H>\d{2}):(?P<M>\d{2})(:(?P<S>\d{2})(?P<f>\.\d{1,9})?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?"
)


def system_clock() -> int:
    return time.time_ns() // 1000


def to_datetime(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def to_instant(micros: int) -> str:
    """FHIR ``instant`` with microseconds and ``+00:00``, e.g. ``2026-11-22T07:45:43.123456+00:00``."""
    return to_datetime(micros).isoformat(timespec="microseconds")


def to_http_date(micros: int) -> str:
    return formatdate(micros // 1_000_000, usegmt=True)


def from_http_date(text: str) -> int | None:
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return _micros(parsed)


def parse_instant_lower_bound(text: str) -> int | None:
    """The first microsecond a FHIR date/dateTime/instant can denote, or None when it is not one.

    A value without a time zone is read as UTC; a partial date starts at the beginning of its period.
    """
    m = _FHIR_DATETIME.fullmatch(text.strip())
    if not m:
        return None
    try:
        dt = datetime(
            int(m["y"]),
            int(m["m"] or 1),
            int(m["d"] or 1),
            int(m["H"] or 0),
            int(m["M"] or 0),
            int(m["S"] or 0),
            int(((m["f"] or ".0")[1:] + "000000")[:6]),
            tzinfo=UTC,
        )
    except ValueError:
        return None
    tz = m["tz"]
    offset = 0
    if tz and tz != "Z":  # applied to the number, not the datetime: 0001-01-01T00:00+07:00 is before year 1
        sign = 1 if tz[0] == "+" else -1
        offset = sign * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60) * 1_000_000
    return _micros(dt) - offset


def _micros(dt: datetime) -> int:
    delta = dt.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
