"""Dates as clinics type them, turned into FHIR ``date`` / ``dateTime`` at their real precision.

A commune station may know only the birth year of an elderly patient ("1948") or the month ("05/1948");
FHIR keeps that precision (``1948``, ``1948-05``) instead of inventing a 1st of January, so the formats
are named patterns with optional parts rather than ``strptime`` strings, which cannot express "partial".
The day-first Vietnamese order (dd/mm/yyyy) is the default; a mapping lists the formats its clinic uses,
and a US-style ``mm/dd/yyyy`` must never be listed beside ``dd/mm/yyyy`` (they are ambiguous).
"""

from __future__ import annotations

import re
from datetime import date

_PATTERNS: dict[str, str] = {
    "yyyy-mm-dd": r"(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})",
    "dd/mm/yyyy": r"(?P<d>\d{1,2})/(?P<m>\d{1,2})/(?P<y>\d{4})",
    "dd-mm-yyyy": r"(?P<d>\d{1,2})-(?P<m>\d{1,2})-(?P<y>\d{4})",
    "dd.mm.yyyy": r"(?P<d>\d{1,2})\.(?P<m>\d{1,2})\.(?P<y>\d{4})",
    "mm/dd/yyyy": r"(?P<m>\d{1,2})/(?P<d>\d{1,2})/(?P<y>\d{4})",
    "yyyymmdd": r"(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})",
    "yyyy-mm": r"(?P<y>\d{4})-(?P<m>\d{1,2})",
    "mm/yyyy": r"(?P<m>\d{1,2})/(?P<y>\d{4})",
    "yyyy": r"(?P<y>\d{4})",
}
DATE_FORMATS = tuple(_PATTERNS)
DEFAULT_FORMATS = ("yyyy-mm-dd", "dd/mm/yyyy", "dd-mm-yyyy", "dd.mm.yyyy", "yyyy-mm", "mm/yyyy", "yyyy")
_TIME = re.compile(r"(?:[T ]+(?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?P<frac>\.\d+)?)?)?"
                   r"\s*(?P<tz>Z|[+-]\d{2}:?\d{2})?")
_COMPILED = {name: re.compile(pattern) for name, pattern in _PATTERNS.items()}
MIN_YEAR = 1850  # older dates are typing errors in a living population's records


def parse_date(raw: str, formats: tuple[str, ...] = DEFAULT_FORMATS) -> str:
    """``raw`` as a FHIR date (``yyyy``, ``yyyy-mm`` or ``yyyy-mm-dd``). Raises ValueError with the reason."""
    text = raw.strip()
    for name in formats:
        match = _COMPILED[name].fullmatch(text)
        if match:
            return _fhir_date(match.group("y"), match.groupdict().get("m"), match.groupdict().get("d"), raw)
    raise ValueError(f"{raw!r} is not a date in any of the accepted formats ({', '.join(formats)})")


def parse_datetime(raw: str, formats: tuple[str, ...] = DEFAULT_FORMATS, timezone: str = "+07:00") -> str:
    """``raw`` as a FHIR dateTime: a date with an optional time (``14:30``, ``T14:30:00Z``); a time without a
    zone is local clinic time (``timezone``). A bare date keeps its precision."""
    text = raw.strip()
    for name in formats:
        match = re.fullmatch(_PATTERNS[name] + _TIME.pattern, text)
        if not match:
            continue
        day = _fhir_date(match.group("y"), match.groupdict().get("m"), match.groupdict().get("d"), raw)
        if match.group("H") is None:
            if match.group("tz"):
                raise ValueError(f"{raw!r}: a time zone without a time")
            return day
        if len(day) != 10:
            raise ValueError(f"{raw!r}: a time on a partial date")
        hour, minute, second = int(match.group("H")), int(match.group("M")), int(match.group("S") or 0)
        if hour > 23 or minute > 59 or second > 59:
            raise ValueError(f"{raw!r}: {hour:02d}:{minute:02d}:{second:02d} is not a time of day")
        zone = match.group("tz") or timezone
        if zone != "Z" and ":" not in zone:
            zone = f"{zone[:3]}:{zone[3:]}"
        return f"{day}T{hour:02d}:{minute:02d}:{second:02d}{match.group('frac') or ''}{zone}"
    raise ValueError(f"{raw!r} is not a date or date-time in any of the accepted formats ({', '.join(formats)})")


def _fhir_date(year: str, month: str | None, day: str | None, raw: str) -> str:
    """Check the parts (a 31st of February is rejected, not rolled over) and join them at their precision."""
    y = int(year)
    if y < MIN_YEAR or y > date.today().year + 1:
        raise ValueError(f"{raw!r}: year {y} is not plausible")
    if month is None:
        return f"{y:04d}"
    m = int(month)
    if not 1 <= m <= 12:
        raise ValueError(f"{raw!r}: month {m} does not exist")
    if day is None:
        return f"{y:04d}-{m:02d}"
    try:
        date(y, m, int(day))
    except ValueError:
        raise ValueError(f"{raw!r}: day {int(day)} does not exist in {y:04d}-{m:02d}") from None
    return f"{y:04d}-{m:02d}-{int(day):02d}"
