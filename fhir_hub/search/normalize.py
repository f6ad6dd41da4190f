"""Normalising values for search, the same way on the write side and on the query side.

- Strings: Unicode compatibility decomposition with the combining marks removed, case folded, whitespace
  collapsed, and Vietnamese ``đ``/``Đ`` (which has no decomposition) mapped to ``d``: ``Nguyễn`` and
  ``NGUYEN`` both become ``nguyen``.
- Dates: every FHIR date, dateTime, instant or Period becomes the range of microseconds it denotes at its
  own precision (``2024`` is the whole year); a value without a time zone is read in the hub's zone
  (``fhir/instant.py``: ``2025-01-02`` is that local day, +07:00 by default). Open Period ends are unbounded.
- Numbers: a decimal denotes the half-open range of its implied precision (``100`` is 99.5 up to 100.5,
  ``5.4`` is 5.35 up to 5.45), as ``eq``, ``ne`` and ``ap`` require; ``decimal_of_range`` gives the value
  back for the prefixes that compare with it exactly (``gt100``: "greater than exactly 100").
"""

from __future__ import annotations

import calendar
import math
import re
import unicodedata
from decimal import Decimal, InvalidOperation

from fhir_hub.fhir.instant import local_offset, parse_wall_clock

MIN_TIME = -(2**62)
MAX_TIME = 2**62
_SPACES = re.compile(r"\s+")
_VIETNAMESE = str.maketrans({"đ": "d", "Đ": "d", "ð": "d", "Ð": "d", "ł": "l", "Ł": "l", "ø": "o", "Ø": "o"})
_DATE = re.compile(
    r"(?P<y>\d{4})(-(?P<m>\d{2})(-(?P<d>\d{2})(T(?P<H>\d{2})(:(?P<M>\d{2})(:(?P<S>\d{2})(?P<f>\.\d+)?)?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?"
)


def normalize_text(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.translate(_VIETNAMESE))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _SPACES.sub(" ", stripped.casefold()).strip()


def date_range(text: str) -> tuple[int, int] | None:
    """[first, last] microsecond of a FHIR date/dateTime/instant at its precision; None if it is not one."""
    match = _DATE.fullmatch(text.strip())
    parsed = parse_wall_clock(text) if match else None
    if match is None or parsed is None:
        return None
    low, zoned = parsed
    if match["f"]:
        digits = len(match["f"]) - 1
        span = 10 ** max(0, 6 - digits)
    elif match["S"]:
        span = 1_000_000
    elif match["M"]:
        span = 60_000_000
    elif match["H"]:
        span = 3_600_000_000
    elif match["d"]:
        span = 86_400_000_000
    else:  # counted in days, not by building the next period's datetime (year 9999 has no successor)
        year = int(match["y"])
        days = calendar.monthrange(year, int(match["m"]))[1] if match["m"] else 365 + calendar.isleap(year)
        span = days * 86_400_000_000
    if zoned:
        return low, low + span - 1
    # local time: each end at the zone's offset then (a day across a DST change is 23 or 25 hours long)
    return low - local_offset(low), low + span - 1 - local_offset(low + span - 1)


def decimal_range(value: float | int | str | Decimal) -> tuple[float, float] | None:
    """The half-open range a decimal denotes at its implied precision (the spec's rule for ``eq``):
    ``100`` is [99.5, 100.5), ``5.4`` is [5.35, 5.45). Bounds are computed exactly and rounded once, so
    that the end of one value's range and the start of the next are the same float."""
    if isinstance(value, bool):
        return None
    try:
        number = value if isinstance(value, Decimal) else Decimal(value if isinstance(value, str) else repr(value))
    except InvalidOperation:
        return None
    if not number.is_finite():
        return None
    exponent = number.as_tuple().exponent
    half = Decimal(5).scaleb(int(exponent) - 1)
    low, high = float(number - half), float(number + half)
    if not (math.isfinite(low) and math.isfinite(high)):
        return None
    return low, high


def decimal_of_range(low: float, high: float) -> Decimal | None:
    """The decimal whose ``decimal_range`` is [low, high): the value as written (``5.40``), given back from the
    index entry that stores only its range. Exact for decimals of up to 15 significant digits, which is what
    a double, and so the range itself, holds; None for a range no decimal gives."""
    width = high - low
    if not (math.isfinite(low) and math.isfinite(high)) or width <= 0:
        return None
    exponent = round(math.log10(width))
    try:
        return Decimal(repr((low + high) / 2)).quantize(Decimal(1).scaleb(exponent))
    except InvalidOperation:
        return None


def sortable_time(micros: int) -> str:
    """A fixed-width string whose order is the order of the times (negative years included)."""
    return f"{micros - MIN_TIME:020d}"
