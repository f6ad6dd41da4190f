"""Time as the store keeps it (integer microseconds since the epoch, UTC) and as FHIR and HTTP print it.

Integers, not BSON dates: nx-27017 answers range queries on date fields wrongly (see the store-contract
tests), and microseconds let every version of one resource get a strictly later ``lastUpdated``.

A FHIR date (``2025-01-02``), and a dateTime or search value written without a zone, names a local time: the
hub reads it in one zone, ``FHIR_HUB_TIME_ZONE`` (``Asia/Ho_Chi_Minh`` by default), so ``2025-01-02`` is the
day the city lived, 2025-01-01T17:00Z to 2025-01-02T17:00Z. The zone is process-wide, like ``TZ``: the
search index's meaning depends on it (the store records it beside the index format and recomputes every
entry when it changes), so two parts of one process reading dates in different zones would be a bug, not a
feature. ``running_hub`` sets it from the settings before anything is indexed or searched.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, tzinfo
from email.utils import formatdate, parsedate_to_datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Clock = Callable[[], int]

DEFAULT_TIME_ZONE = "Asia/Ho_Chi_Minh"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)
_local: list[tzinfo] = [ZoneInfo(DEFAULT_TIME_ZONE)]  # one slot: set by use_time_zone, read by local_offset
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
    return _http_date(micros // 1_000_000)


@lru_cache(maxsize=4096)
def _http_date(seconds: int) -> str:
    """Every read's ``Last-Modified``: formatting costs ~5 us, and many versions share their second."""
    return formatdate(seconds, usegmt=True)


def from_http_date(text: str) -> int | None:
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return _micros(parsed)


def load_time_zone(name: str) -> tzinfo:
    """The IANA zone ``name``; ValueError naming it when the system's zone database does not know it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not a time zone this system knows (an IANA name such as "
                         f"{DEFAULT_TIME_ZONE})") from None


def use_time_zone(name: str) -> None:
    """Read zone-less dates and times in ``name`` from now on (see the module's docstring)."""
    _local[0] = load_time_zone(name)


def time_zone_name() -> str:
    return str(_local[0])


def local_day(micros: int) -> date:
    """The day it is in the hub's zone at that instant: a birthday (60, 6) starts at local midnight, in the
    same zone the hub reads every zone-less date in."""
    return datetime.fromtimestamp(micros / 1_000_000, _local[0]).date()


def local_offset(wall_micros: int) -> int:
    """The local zone's UTC offset, in microseconds, at a wall-clock time (microseconds since 1970-01-01T00:00
    read as if it were UTC). The zone's history applies: Saigon was at +08:00 in 1960."""
    try:
        wall = _NAIVE_EPOCH + timedelta(microseconds=wall_micros)
    except OverflowError:  # past 9999 or before year 1: the offset at the calendar's edge
        wall = datetime.max if wall_micros > 0 else datetime.min
    offset = _local[0].utcoffset(wall)
    return 0 if offset is None else (offset.days * 86_400 + offset.seconds) * 1_000_000 + offset.microseconds


def parse_instant_lower_bound(text: str) -> int | None:
    """The first microsecond a FHIR date/dateTime/instant can denote, or None when it is not one.

    A value without a time zone is read in the hub's zone (``use_time_zone``); a partial date starts at the
    beginning of its period.
    """
    parsed = parse_wall_clock(text)
    if parsed is None:
        return None
    micros, zoned = parsed
    return micros if zoned else micros - local_offset(micros)


def parse_wall_clock(text: str) -> tuple[int, bool] | None:
    """The first microsecond of a FHIR date/dateTime/instant as written, and whether it names its zone.

    With a zone, the microseconds are UTC; without, they are the wall-clock reading taken as if it were UTC
    (``local_offset`` turns it into UTC). None when the text is not such a value.
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
    return _micros(dt) - offset, tz is not None


def _micros(dt: datetime) -> int:
    delta = dt.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
