"""Normalisation shared by every adapter: names, Vietnamese identifiers, phone numbers, partial dates,
identifier systems, source tags, and the building of a record's transaction Bundle.

One place for each rule so that a Patient from a commune station's CSV and one from a hospital's XML come
out the same way (the hub's search and, later, patient matching depend on it). The identifier rules are
those of ``../shared/docs/vietnam-health-data.md``; the check functions return problems as text rather than
raising, because a record with a doubtful identifier is kept and reported, not rejected.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from adapters.base import Source
from profiles.validation.profile import claim_if_met

# ------------------------------------------------------------------------------------ identifier systems
VN_SID = "http://fhir.hl7.org.vn/core/sid"
HUB = "https://fhir.hub.hcmc.vn"
CCCD = f"{VN_SID}/cccd"  # 12-digit personal ID (so dinh danh ca nhan)
CMND = f"{VN_SID}/cmnd"  # old ID card
PASSPORT = f"{VN_SID}/passport"
BHYT = f"{VN_SID}/bhyt"  # health-insurance card
BHXH = f"{VN_SID}/bhxh"  # social insurance number: the card's last 10 digits, stable across renewals
MA_LK = f"{VN_SID}/ma-lk"  # episode key of the MoH XML export, unique within a facility
FACILITY = f"{VN_SID}/ma-cskcb"  # facility code (MA_CSKCB)
PHONE_COUNTRY = "+84"
FORMAT_TAGS = f"{HUB}/CodeSystem/source-format"
FACILITY_TAGS = f"{HUB}/CodeSystem/source-facility"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
LOINC = "http://loinc.org"

# the Vietnam Core IG's administrative units of an address (province, district, ward or commune), coded
ADMINISTRATIVE_ADDRESS = "http://fhir.ehealth.gov.vn/core/StructureDefinition/extension-administrative-address"
ADMINISTRATIVE_UNITS = "http://fhir.ehealth.gov.vn/core/CodeSystem/vn-core-administrative-address"


def administrative_address(*, state: str | None = None, district: str | None = None,
                           ward: str | None = None) -> dict[str, Any] | None:
    """The address's coded units as the Vietnam Core extension (None when none is given). The codes are kept
    as the sender coded them: the 2025 reorganisation renumbered units, and only the sender knows which
    numbering its record used (the address text stays beside them)."""
    parts = [{"url": part, "valueCodeableConcept": {"coding": [{"system": ADMINISTRATIVE_UNITS, "code": code.strip()}]}}
             for part, code in (("state", state), ("district", district), ("ward", ward)) if code and code.strip()]
    return {"url": ADMINISTRATIVE_ADDRESS, "extension": parts} if parts else None


_SYSTEM_ALIASES = {
    "cccd": CCCD, "cmnd": CMND, "passport": PASSPORT, "ho-chieu": PASSPORT, "bhyt": BHYT, "bhxh": BHXH,
    "ma-lk": MA_LK, "ma-cskcb": FACILITY, "urn:vn:cccd": CCCD, "urn:vn:cmnd": CMND, "urn:vn:bhyt": BHYT,
    "urn:vn:bhxh": BHXH, "so-dinh-danh": CCCD, "dinh-danh": CCCD,
}


def canonical_system(system: str) -> str:
    """The hub's URI for an identifier system a sender names its own way (``CCCD``, ``urn:vn:bhyt``...);
    anything unknown is kept as sent."""
    key = system.strip().lower().replace("_", "-").replace(" ", "-")
    return _SYSTEM_ALIASES.get(key, _SYSTEM_ALIASES.get(key.rsplit("/", 1)[-1], system.strip()))


_FACILITY_CODE = re.compile(r"[0-9A-Z]{5}")


def is_facility_code(text: str | None) -> bool:
    """Whether ``text`` has the form of a MoH facility code (MA_CSKCB: 5 digits or capitals, ``79001``)."""
    return text is not None and _FACILITY_CODE.fullmatch(text) is not None


def facility_system(kind: str, facility: str) -> str:
    """A system for numbers unique only within one facility: the patient number ``MA_BN``, local ids."""
    return f"{HUB}/sid/{kind}/{facility}"


def facility_scoped(system: str) -> bool:
    """Whether a system is one of ``facility_system``'s (``{HUB}/sid/<kind>/<facility>``)."""
    rest = system.removeprefix(f"{HUB}/sid/")
    return rest != system and "/" in rest.strip("/")


def identifier(system: str, value: str, **extra: Any) -> dict[str, Any]:
    return {"system": system, "value": value, **extra}


# ------------------------------------------------------------------------------------------------ names
def nfc(text: str) -> str:
    """Unicode NFC with runs of whitespace collapsed: "Nguyễn" typed with combining marks equals the
    precomposed one, so searches and matching see one spelling."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def person_name(full: str, *, use: str = "official") -> dict[str, Any] | None:
    """A Vietnamese full name, family name first: "Nguyễn Văn An" -> family "Nguyễn", given ["Văn", "An"]."""
    text = nfc(full)
    if not text:
        return None
    family, *given = text.split(" ")
    name: dict[str, Any] = {"use": use, "text": text, "family": family}
    if given:
        name["given"] = given
    return name


# ------------------------------------------------------------------------------------------ identifiers
_CCCD = re.compile(r"\d{12}")
_BHYT = re.compile(r"[A-Z]{2}[1-5]\d{12}")
_CENTURY = {0: (1900, "male"), 1: (1900, "female"), 2: (2000, "male"), 3: (2000, "female"),
            4: (2100, "male"), 5: (2100, "female"), 6: (2200, "male"), 7: (2200, "female"),
            8: (2300, "male"), 9: (2300, "female")}


def personal_id_problems(cccd: str, *, birth_year: int | None, gender: str | None) -> list[str]:
    """What is wrong with a 12-digit personal ID, given the person's birth year and gender (FHIR codes).

    The 4th digit encodes century and gender, the 5th-6th the last two digits of the birth year; the first
    three are the province of birth registration (001-096). A mismatch is reported, never corrected."""
    if not _CCCD.fullmatch(cccd):
        return [f"{cccd!r} is not 12 digits"]
    problems = []
    if not 1 <= int(cccd[:3]) <= 96:
        problems.append(f"{cccd!r}: {cccd[:3]} is not a province code (001-096)")
    century, coded_gender = _CENTURY[int(cccd[3])]
    coded_year = century + int(cccd[4:6])
    if birth_year is not None and birth_year != coded_year:
        problems.append(f"{cccd!r} encodes birth year {coded_year}, the record says {birth_year}")
    if gender in ("male", "female") and gender != coded_gender:
        problems.append(f"{cccd!r} encodes gender {coded_gender}, the record says {gender}")
    return problems


def insurance_card_problems(card: str) -> list[str]:
    """A BHYT card is 2 letters (category), a benefit digit 1-5, a 2-digit province, then the 10-digit social
    insurance number. Since 2025 the personal ID may stand in for it: 12 digits are accepted."""
    if _BHYT.fullmatch(card) or _CCCD.fullmatch(card):
        return []
    return [f"{card!r} is not a health-insurance card number (2 letters, a digit 1-5, 12 digits) or a personal ID"]


def social_insurance_number(card: str) -> str | None:
    """The card's last 10 digits (mã số BHXH): the same person keeps it across card renewals."""
    return card[-10:] if _BHYT.fullmatch(card) else None


def patient_identifiers(*, cccd: str | None = None, bhyt: str | None = None, cmnd: str | None = None,
                        facility: str | None = None, local_id: str | None = None) -> list[dict[str, Any]]:
    """Every identifier a Patient record carries, strongest first (the first is the one matched on)."""
    found: list[dict[str, Any]] = []
    if cccd:
        found.append(identifier(CCCD, cccd))
    for card in (c.strip() for c in (bhyt or "").split(";") if c.strip()):
        if _CCCD.fullmatch(card):
            if not any(i["value"] == card for i in found):
                found.append(identifier(CCCD, card))
            continue
        found.append(identifier(BHYT, card))
        number = social_insurance_number(card)
        if number and not any(i["system"] == BHXH and i["value"] == number for i in found):
            found.append(identifier(BHXH, number))
    if cmnd:
        found.append(identifier(CMND, cmnd))
    if local_id and facility:
        found.append(identifier(facility_system("ma-bn", facility), local_id))
    # the BHXH number outlives each card: match on it before the card itself
    order = {CCCD: 0, BHXH: 1, BHYT: 2, CMND: 3}
    return sorted(found, key=lambda i: order.get(i["system"], 4))


# ---------------------------------------------------------------------------------------------- phones
def phone(raw: str) -> str | None:
    """A Vietnamese phone number in E.164 (+84...); None when it is not one (the caller reports it)."""
    digits = re.sub(r"[\s.\-()]", "", raw)
    if digits.startswith("+84"):
        rest = digits[3:]
    elif digits.startswith("0084"):
        rest = digits[4:]
    elif digits.startswith("84") and len(digits) in (11, 12):
        rest = digits[2:]
    elif digits.startswith("0"):
        rest = digits[1:]
    else:
        return None
    rest = rest.lstrip("0") if rest.startswith("0") else rest
    if not rest.isascii() or not rest.isdigit() or not 9 <= len(rest) <= 10:
        return None
    return PHONE_COUNTRY + rest


# ----------------------------------------------------------------------------------------------- dates
VIETNAM_OFFSET = "+07:00"


def moh_date(raw: str) -> str:
    """A MoH date (``yyyyMMdd`` or ``yyyyMMddHHmm``, ``00`` for an unknown month or day) as a FHIR date at
    its real precision: ``19900000`` -> ``1990``, ``19900500`` -> ``1990-05``. Raises ValueError."""
    text = raw.strip()
    if not text.isascii() or not text.isdigit() or len(text) not in (4, 6, 8, 12):
        raise ValueError(f"{raw!r} is not a date as yyyyMMdd or yyyyMMddHHmm")
    year, month, day = text[:4], text[4:6] or "00", text[6:8] or "00"
    if int(year) < 1800:
        raise ValueError(f"{raw!r}: year {year} is not plausible")
    if month == "00":
        if day != "00":
            raise ValueError(f"{raw!r}: a day without a month")
        return year
    if day == "00":
        date(int(year), int(month), 1)  # raises on month 13
        return f"{year}-{month}"
    date(int(year), int(month), int(day))
    return f"{year}-{month}-{day}"


def moh_datetime(raw: str) -> str:
    """A MoH time stamp ``yyyyMMddHHmm`` (Vietnam time) as a FHIR dateTime; a bare date stays a date."""
    text = raw.strip()
    if len(text) != 12:
        return moh_date(text)
    day = moh_date(text[:8])
    if len(day) != 10:
        return day
    stamp = datetime.strptime(text, "%Y%m%d%H%M")  # raises on 25:00
    return stamp.strftime("%Y-%m-%dT%H:%M:00") + VIETNAM_OFFSET


def birth_year(fhir_date: str | None) -> int | None:
    return int(fhir_date[:4]) if fhir_date and fhir_date[:4].isdigit() else None


# ------------------------------------------------------------------------------------------- provenance
def tag(resource: dict[str, Any], source: Source, facility: str | None) -> dict[str, Any]:
    """Stamp the format and the sending facility on a resource (``meta.tag``); ``meta.source`` is set by the
    hub from the caller's token."""
    tags = [{"system": FORMAT_TAGS, "code": source.format}]
    if facility:
        tags.append({"system": FACILITY_TAGS, "code": facility})
    meta = resource.setdefault("meta", {})
    meta["tag"] = [*[t for t in meta.get("tag", []) if t.get("system") not in (FORMAT_TAGS, FACILITY_TAGS)], *tags]
    return resource


# ---------------------------------------------------------------------------------------- record Bundles
@dataclass
class RecordBundle:
    """A record's transaction Bundle under construction: each resource is written once per business
    identifier (``write_request``), and ``add`` returns the local reference other resources of the record
    use."""

    source: Source
    facility: str | None
    entries: list[dict[str, Any]] = field(default_factory=list)
    _by_key: dict[tuple[str, str, str], str] = field(default_factory=dict)

    def add(self, resource: dict[str, Any], match: dict[str, Any] | None) -> str:
        """Add ``resource``; ``match`` is the identifier that makes it unique (None: always created).
        Adding the same identifier twice returns the first entry's reference."""
        rtype = resource["resourceType"]
        if match is not None:
            key = (rtype, match["system"], match["value"])
            if key in self._by_key:
                return self._by_key[key]
            if match not in resource.setdefault("identifier", []):
                resource["identifier"].insert(0, match)
        full_url = f"urn:uuid:{uuid.uuid4()}"
        if match is not None:
            self._by_key[key] = full_url
        self.entries.append({"fullUrl": full_url, "resource": tag(resource, self.source, self.facility),
                             "request": write_request(rtype, match, self.facility)})
        return full_url

    def bundle(self) -> dict[str, Any]:
        """The record, each resource claiming the city's profile of its type where it meets it (checked once
        the record is complete: resources are still filled in after ``add``)."""
        for entry in self.entries:
            claim_if_met(entry["resource"])
        return {"resourceType": "Bundle", "type": "transaction", "entry": self.entries}


def write_request(rtype: str, match: dict[str, Any] | None, facility: str | None = None) -> dict[str, Any]:
    """How an ingested resource is written, decided by who owns its identifier.

    An identifier under the hub's facility-scoped systems (``{HUB}/sid/<kind>/<facility>``: an episode, a visit, a
    facility's patient number, a sender's own id) belongs to the one facility that sends it: its resource
    is a conditional update, so a corrected or completed record (an A03 after the A01, a re-sent MoH file)
    replaces the earlier one, and an identical one changes nothing (the hub stores no version that changes
    nothing). A national identifier (insurance card, facility code) may be sent by many facilities: the
    first creates the resource, the others find it and refer to it (``ifNoneExist``). Except a Patient:
    each facility keeps its own record of a person (its patient number, card, demographics as it wrote
    them), found again by the national identifier among that facility's records only (``_tag`` of the
    sending facility); patient matching links the facilities' records into one person. Were the first
    facility's record found, the second's Encounters would refer to it and its own data would be dropped.
    """
    if match is None:
        return {"method": "POST", "url": rtype}
    if facility_scoped(match["system"]):
        return {"method": "PUT", "url": f"{rtype}?{identifier_criteria(match)}"}
    criteria = identifier_criteria(match)
    if rtype == "Patient" and facility:
        criteria += "&" + token_criteria("_tag", FACILITY_TAGS, facility)
    return {"method": "POST", "url": rtype, "ifNoneExist": criteria}


def entry_criteria(entry: dict[str, Any]) -> str | None:
    """The identifier search an entry is written by, whichever ``write_request`` chose."""
    request = entry.get("request", {})
    if "ifNoneExist" in request:
        return str(request["ifNoneExist"])
    url = str(request.get("url", ""))
    return url.split("?", 1)[1] if "?" in url else None


def conditional_reference(rtype: str, match: dict[str, Any]) -> str:
    """A reference to a resource stored by an earlier record (``Patient?identifier=system|value``)."""
    return f"{rtype}?{identifier_criteria(match)}"


def identifier_criteria(match: dict[str, Any]) -> str:
    """``identifier=system|value``, escaped: the search that finds the resource ``match`` identifies."""
    return token_criteria("identifier", match["system"], match["value"])


def token_criteria(param: str, system: str, code: str) -> str:
    return f"{param}={search_value(system)}|{search_value(code)}"


def search_value(value: str) -> str:
    """Search-value escaping (search.html#escaping) plus what would break the query string."""
    escaped = value.replace("\\", "\\\\").replace("|", "\\|").replace(",", "\\,").replace("$", "\\$")
    return escaped.replace("%", "%25").replace("&", "%26").replace("#", "%23").replace("+", "%2B")
