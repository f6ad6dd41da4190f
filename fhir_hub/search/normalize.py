"""Normalising values for search, the same way on the write side and on the query side.

- Strings: Unicode compatibility decomposition with the combining marks removed, case folded, whitespace
  collapsed, and Vietnamese ``đ``/``Đ`` (which has no decomposition) mapped to ``d``: ``Nguyễn`` and
  ``NGUYEN`` both become ``nguyen``.
- Dates: every FHIR date, dateTime, instant or Period becomes the range of microseconds it denotes at its
  own precision (``2024`` is the whole year); a value without a time zone is read as UTC. Open Period ends
  are unbounded.
- Numbers: a decimal denotes the range of its implied precision (``100`` is 99.5 to 100.5, ``5.4`` is 5.35 to
  5.45), as the search specification's prefixes require.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta

from fhir_hub.fhir.instant import parse_instant_lower_bound

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
    low = parse_instant_lower_bound(text) if match else None
    if match is None or low is None:
        return None
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
    else:
        start = datetime(int(match["y"]), int(match["m"] or 1), 1, tzinfo=UTC)
        end = _add_month(start) if match["m"] else start.replace(year=start.year + 1)
        span = (end - start) // timedelta(microseconds=1)
    return low, low + span - 1


def _add_month(moment: datetime) -> datetime:
    return moment.replace(year=moment.year + moment.month // 12, month=moment.month % 12 + 1)


def decimal_range(value: float | int | str) -> tuple[float, float] | None:
    """The range a decimal denotes at its implied precision (the spec's rule for ``eq``)."""
    text = value if isinstance(value, str) else repr(value)
    if isinstance(value, bool):
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    if number != number or number in (float("inf"), float("-inf")):
        return None
    mantissa = text.lower().split("e")[0]
    exponent = int(text.lower().split("e")[1]) if "e" in text.lower() else 0
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    half = 0.5 * 10 ** (exponent - decimals)
    return number - half, number + half


def sortable_time(micros: int) -> str:
    """A fixed-width string whose order is the order of the times (negative years included)."""
    return f"{micros - MIN_TIME:020d}"
