"""HL7 v2 datatypes -> FHIR datatypes: DTM/TS, CWE/CE, NM + unit, XPN, XAD, XTN.

Each function takes what a segment gives (text or an ``er7.Value``) and returns FHIR JSON or None when there
is nothing to say; a value that is present but wrong raises ``ValueError`` (dates) or is reported by the
caller, which knows the field's name and whether the message can live without it.

Times without a UTC offset are read as Vietnam time (+07:00): FHIR requires an offset on every time, and
the hub's senders are in Ho Chi Minh City.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

from adapters.hl7v2.er7 import Value
from adapters.hl7v2.tables import table
from adapters.normalize import HUB, VIETNAM_OFFSET, facility_system, nfc, phone

UCUM = "http://unitsofmeasure.org"
_DTM = re.compile(
    r"(?P<y>\d{4})(?P<mo>\d{2})?(?P<d>\d{2})?"
    r"(?:(?P<h>\d{2})(?P<mi>\d{2})?(?:(?P<s>\d{2})(?P<f>\.\d{1,4})?)?)?"
    r"(?P<tz>[+-]\d{4})?"
)
_TM = re.compile(r"(?P<h>\d{2})(?P<mi>\d{2})?(?:(?P<s>\d{2})(?:\.\d{1,4})?)?(?:[+-]\d{4})?")
_V2_TABLE = re.compile(r"HL7(\d{4})")
_PHONE_CHARS = re.compile(r"[\s.\-()]")


# ------------------------------------------------------------------------------------------ identifiers
def uri_part(text: str) -> str:
    """Text made safe as one path segment of a URI: an assigning authority such as "GOOD HEALTH HOSPITAL"
    names an identifier system, and a FHIR uri may not hold spaces."""
    return quote(text.strip(), safe="")


def scoped_system(kind: str, scope: str) -> str:
    """``normalize.facility_system`` for a scope taken from a message (any text, made URI-safe)."""
    return facility_system(kind, uri_part(scope))


# ------------------------------------------------------------------------------------------------ dates
def _match(raw: str) -> re.Match[str]:
    m = _DTM.fullmatch(raw.strip())
    if not m:
        raise ValueError(f"{raw!r} is not an HL7 date/time (YYYY[MM[DD[HH[MM[SS]]]]][+/-ZZZZ])")
    year, month, day = int(m["y"]), int(m["mo"] or 1), int(m["d"] or 1)
    if year < 1800:
        raise ValueError(f"{raw!r}: year {year} is not plausible")
    try:
        date(year, month, day)
    except ValueError as exc:
        raise ValueError(f"{raw!r} is not a real date ({exc})") from None
    if m["h"] and (int(m["h"]) > 23 or int(m["mi"] or 0) > 59 or int(m["s"] or 0) > 59):
        raise ValueError(f"{raw!r} is not a real time of day")
    if m["tz"] and (int(m["tz"][1:3]) > 14 or int(m["tz"][3:]) > 59):
        raise ValueError(f"{raw!r}: {m['tz']} is not a UTC offset")
    if m["d"] is None and m["h"] is not None:
        raise ValueError(f"{raw!r}: a time without a day")
    return m


def hl7_date(raw: str) -> str:
    """An HL7 DT/DTM as a FHIR date at the precision sent: ``1990`` -> ``1990``, ``199005`` -> ``1990-05``,
    a time stamp -> its date. Raises ValueError."""
    m = _match(raw)
    return "-".join(p for p in (m["y"], m["mo"], m["d"]) if p)


def hl7_datetime(raw: str) -> str:
    """An HL7 DTM/TS as a FHIR dateTime at the precision sent (minutes and seconds completed with zeros once
    there is an hour, since FHIR has no hour-only time). Raises ValueError."""
    m = _match(raw)
    day = hl7_date(raw)
    if not m["h"]:
        return day
    clock = f"{m['h']}:{m['mi'] or '00'}:{m['s'] or '00'}{m['f'] or ''}"
    offset = f"{m['tz'][:3]}:{m['tz'][3:]}" if m["tz"] else VIETNAM_OFFSET
    return f"{day}T{clock}{offset}"


def hl7_instant(raw: str) -> str | None:
    """A FHIR instant (which needs seconds) when the time stamp has them, else None."""
    m = _match(raw)
    return hl7_datetime(raw) if m["s"] else None


def hl7_time(raw: str) -> str:
    m = _TM.fullmatch(raw.strip())
    if not m or int(m["h"]) > 23 or int(m["mi"] or 0) > 59 or int(m["s"] or 0) > 59:
        raise ValueError(f"{raw!r} is not an HL7 time (HH[MM[SS]])")
    return f"{m['h']}:{m['mi'] or '00'}:{m['s'] or '00'}"


# ------------------------------------------------------------------------------------------------ codes
def coding_system(name: str, facility: str) -> str | None:
    """The URI of a coding system named in CWE-3 (``LN`` -> LOINC): HL7 tables by number, local codes
    (``L``, ``99zzz``) scoped to the facility, any other name kept under the hub's namespace."""
    name = name.strip()
    if not name:
        return None
    upper = name.upper()
    known = table("coding_systems").get(upper)
    if known:
        return str(known)
    if m := _V2_TABLE.fullmatch(upper):
        return f"http://terminology.hl7.org/CodeSystem/v2-{m[1]}"
    if upper == "L" or upper.startswith("99"):
        return f"{HUB}/CodeSystem/hl7v2-local/{uri_part(facility or 'unknown')}"
    if upper.startswith(("HTTP://", "HTTPS://", "URN:")) and not re.search(r"\s", name):
        return name
    return f"{HUB}/CodeSystem/hl7v2/{uri_part(name)}"


def codeable(value: Value, facility: str) -> dict[str, Any] | None:
    """A CE/CWE/CNE as a CodeableConcept: the identifier triplet and the alternate one as codings, the
    original text (CWE-9) or the first text as ``text``."""
    codings = []
    for code_at, text_at, system_at in ((1, 2, 3), (4, 5, 6)):
        code = " ".join(value.get(code_at).split())
        if not code:
            continue
        coding: dict[str, Any] = {}
        system = coding_system(value.get(system_at), facility)
        if system:
            coding["system"] = system
        coding["code"] = code
        if value.get(text_at):
            coding["display"] = value.get(text_at)
        codings.append(coding)
    concept: dict[str, Any] = {}
    if codings:
        concept["coding"] = codings
    text = value.get(9) or value.get(2) or value.get(5)
    if text:
        concept["text"] = text
    return concept or None


def decimal(text: str) -> Decimal | None:
    """An HL7 NM as an exact decimal (FHIR keeps "5.40" as written); None when it is not a plain number."""
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        return None
    if not number.is_finite() or abs(number.adjusted()) > 30:
        return None
    return number


def quantity(number: str, unit: Value | None, facility: str) -> dict[str, Any] | None:
    value = decimal(number)
    if value is None:
        return None
    result: dict[str, Any] = {"value": value}
    if unit is not None and unit.get(1):
        code = unit.get(1)
        result["unit"] = unit.get(2) or code
        if coding_system(unit.get(3), facility) == UCUM:
            result["system"], result["code"] = UCUM, code
    return result


# ------------------------------------------------------------------------------------- names, addresses
def human_name(value: Value) -> dict[str, Any] | None:
    """XPN: family = XPN-1 (its surname subcomponent), given = XPN-2 then XPN-3 split on spaces, NFC."""
    family = nfc(value.get(1, 1))
    given = [*nfc(value.get(2)).split(), *nfc(value.get(3)).split()]
    if not family and not given:
        return None
    name: dict[str, Any] = {}
    use = table("name_use").get(value.get(7).upper())
    if use:
        name["use"] = use
    name["text"] = " ".join([family, *given]).strip()
    if family:
        name["family"] = family
    if given:
        name["given"] = given
    if prefix := nfc(value.get(5)):
        name["prefix"] = [prefix]
    suffixes = [s for s in (nfc(value.get(4)), nfc(value.get(6))) if s]
    if suffixes:
        name["suffix"] = suffixes
    return name


def address(value: Value) -> dict[str, Any] | None:
    """XAD: street and other designation as lines, city, state/province, postal code, country, and the
    county/parish code (XAD-9) as district."""
    result: dict[str, Any] = {}
    lines = [line for line in (nfc(value.get(1)), nfc(value.get(2))) if line]
    if lines:
        result["line"] = lines
    for key, at in (("city", 3), ("district", 9), ("state", 4), ("postalCode", 5), ("country", 6)):
        if text := nfc(value.get(at)):
            result[key] = text
    if not result:
        return None
    return {**table("address_use").get(value.get(7).upper(), {}), **result}


def contact_point(value: Value, default_use: str) -> tuple[dict[str, Any] | None, str | None]:
    """XTN as a ContactPoint, and a problem when a Vietnamese-looking number is not a valid one.

    Vietnamese numbers (0..., +84..., 84...) are written in E.164 so the hub stores one spelling; any other
    number is kept as sent (foreign numbers, extensions)."""
    telecom = table("telecom")
    equipment = telecom["equipment"].get(value.get(3).upper(), {"system": "phone"})
    system = equipment["system"]
    if system == "email":
        text = value.get(4) or value.get(1)
    else:
        text = value.get(1) or value.get(12) or _composed_number(value)
    if not text:
        return None, None
    problem = None
    if system in ("phone", "fax") and _looks_vietnamese(text):
        e164 = phone(text)
        if e164:
            text = e164
        else:
            problem = f"{text!r} looks like a Vietnamese phone number but is not a valid one; kept as sent"
    use = equipment.get("use") or telecom["use"].get(value.get(2).upper()) or default_use
    return {"system": system, "value": text, "use": use}, problem


def _composed_number(value: Value) -> str:
    country, area, local, extension = value.get(5), value.get(6), value.get(7), value.get(8)
    if not local:
        return ""
    number = (f"+{country.lstrip('+')}" if country else "") + area + local
    return f"{number} ext. {extension}" if extension else number


def _looks_vietnamese(text: str) -> bool:
    digits = _PHONE_CHARS.sub("", text)
    return digits.startswith(("+84", "0084", "0")) or (digits.startswith("84") and len(digits) in (11, 12))
