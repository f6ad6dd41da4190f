"""``features``: what matching looks at in a FHIR Patient, extracted once per record.

Everything ``compare`` and ``block_keys`` need is computed here (folded names, variant groups, token sets,
parsed dates, national-form phone numbers, identifier sets), because a record is compared with every
candidate of every later record while it is read only once. ``features`` never raises: a Patient from any
sender, with any field missing or odd, gives a record with those fields empty.

Where the ward comes from: ``ward`` is the ward-code extension on ``address[0]``
(``{HUB}/StructureDefinition/ward-code``) when present, else the ward name; ``ward_name`` is the folded name
of the address line that starts with a ward word ("Phường", "Xã", "Thị trấn", or their abbreviations "P.",
"X.", "TT."), without that word. ``compare`` compares codes when both records have one, else names: about a
third of senders give only the name, and a code never equals a name.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from typing import Any

from adapters.normalize import BHXH, BHYT, CCCD, HUB, facility_scoped, personal_id_problems
from fhir_hub.matching.blocking import compute_keys
from fhir_hub.matching.fold import tokens
from fhir_hub.matching.model import name_groups

WARD_CODE = f"{HUB}/StructureDefinition/ward-code"
_WARD_WORDS = (("phuong",), ("xa",), ("thi", "tran"), ("p",), ("x",), ("tt",), ("f",))
_CITY_WORDS = frozenset({"thanh", "pho", "tp", "ho", "chi", "minh", "hcm", "tphcm", "viet", "nam"})
_GENDERS = frozenset({"male", "female", "other", "unknown"})
# Mobile prefixes renumbered from 11 to 10 digits in 2018: an old record keeps the old number.
_OLD_MOBILE = {
    "0162": "032", "0163": "033", "0164": "034", "0165": "035", "0166": "036", "0167": "037", "0168": "038",
    "0169": "039", "0120": "070", "0121": "079", "0122": "077", "0126": "076", "0128": "078", "0123": "083",
    "0124": "084", "0125": "085", "0127": "081", "0129": "082", "0186": "056", "0188": "058", "0199": "059",
}


@dataclass(frozen=True, slots=True)
class MatchRecord:
    """One Patient as matching sees it. Names and address are folded (``fold.fold``)."""

    key: str
    family: str
    middle: tuple[str, ...]
    given: str
    birth_year: int | None
    birth_month: int | None
    birth_day: int | None
    gender: str | None
    ward: str | None
    phone: str | None
    address: tuple[str, ...]
    cccd: str | None
    bhxh: frozenset[str]
    local_ids: frozenset[str]
    # derived once for compare and blocking
    family_group: str = ""          # the family name's variant group ("huynh" for Hoàng and Huỳnh)
    given_group: str = ""
    name_bag: tuple[str, ...] = ()  # every name word, sorted: equal bags are one name in another order
    full_name: str = ""             # the name bag with each word as its variant group: the full-name table's key
    phones: frozenset[str] = frozenset()
    address_set: frozenset[str] = frozenset()  # street words, without house numbers
    house: frozenset[str] = frozenset()        # the house number's parts ("144/47" -> {"144", "47"})
    cccd_problems: tuple[str, ...] = ()  # the personal ID disagrees with this record's birth year or gender
    display: str = ""                    # the name as sent, for review lists
    ward_name: str | None = None         # folded ward name (compared when either record lacks the code)
    blocks: frozenset[str] = frozenset()  # block_keys, computed once by features


def features(patient: dict[str, Any], key: str | None = None) -> MatchRecord:
    """The ``MatchRecord`` of a FHIR R4 Patient (``key`` defaults to ``Patient/<id>``)."""
    if not isinstance(patient, dict):
        patient = {}
    if key is None:
        pid = patient.get("id")
        key = f"Patient/{pid}" if isinstance(pid, str) else "Patient/?"
    family, middle, given, display = _name(patient.get("name"))
    year, month, day = _birth(patient.get("birthDate"))
    gender = patient.get("gender")
    gender = gender if isinstance(gender, str) and gender in _GENDERS else None
    ward_code, ward_name, address = _address(patient.get("address"))
    phones = _phones(patient.get("telecom"))
    cccd, bhxh, local_ids = _identifiers(patient.get("identifier"))
    problems = tuple(personal_id_problems(cccd, birth_year=year, gender=gender)) if cccd else ()
    groups = name_groups()
    bag = tuple(sorted(w for w in (family, *middle, given) if w))
    record = MatchRecord(
        key=key, family=family, middle=middle, given=given,
        birth_year=year, birth_month=month, birth_day=day, gender=gender,
        ward=_intern(ward_code or ward_name), phone=min(phones) if phones else None, address=address,
        cccd=cccd, bhxh=bhxh, local_ids=local_ids,
        family_group=groups.get(family, family), given_group=groups.get(given, given),
        name_bag=bag, full_name=" ".join(sorted(groups.get(w, w) for w in bag)),
        phones=phones, address_set=frozenset(w for w in address if not _numeric(w)),
        house=frozenset(w for w in address if _numeric(w)), cccd_problems=problems, display=display,
        ward_name=_intern(ward_name),
    )
    return replace(record, blocks=compute_keys(record))


def _intern(text: str | None) -> str | None:
    return sys.intern(text) if text else None


# ------------------------------------------------------------------------------------------------ names
def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _name(value: Any) -> tuple[str, tuple[str, ...], str, str]:
    """(family, middle names, given name, display text) of the first usable name.

    Vietnamese order is family, middle names, given name: the given name is the last word, whatever field
    the sender put the middle names in ("Họ và tên đệm" / "Tên" forms put them with the family name). No
    guess is made about names in another order (Hoàng, Lâm, Mai are surnames and given names alike);
    ``compare`` recognises the same words in another order instead."""
    for name in _dicts(value):
        family = list(tokens(_text(name.get("family"))))
        given = name.get("given")
        given_parts = [part for part in given if isinstance(part, str)] if isinstance(given, list) else []
        words = family + [t for part in given_parts for t in tokens(part)]
        if not words:
            words = list(tokens(_text(name.get("text"))))
        if words:
            display = _text(name.get("text")) or " ".join([_text(name.get("family")), *given_parts]).strip()
            if len(words) == 1:
                return words[0], (), "", display
            return words[0], tuple(words[1:-1]), words[-1], display
    return "", (), "", ""


# ------------------------------------------------------------------------------------------------ dates
def _birth(value: Any) -> tuple[int | None, int | None, int | None]:
    """Year, month and day of a FHIR date (``1985``, ``1985-03``, ``1985-03-07``, or a dateTime)."""
    text = _text(value).strip()
    parts = text[:10].split("-")
    numbers: list[int] = []
    for part, width in zip(parts, (4, 2, 2), strict=False):
        if len(part) != width or not part.isascii() or not part.isdigit():
            break
        numbers.append(int(part))
    year = numbers[0] if numbers and 1800 <= numbers[0] <= 2200 else None
    month = numbers[1] if year and len(numbers) > 1 and 1 <= numbers[1] <= 12 else None
    day = numbers[2] if month and len(numbers) > 2 and 1 <= numbers[2] <= 31 else None
    return year, month, day


# ---------------------------------------------------------------------------------------------- address
def _address(value: Any) -> tuple[str | None, str | None, tuple[str, ...]]:
    """(ward code, folded ward name, address words) of the first address."""
    addresses = _dicts(value)
    if not addresses:
        return None, None, ()
    address = addresses[0]
    ward: str | None = None
    name: str | None = None
    for extension in _dicts(address.get("extension")):
        code = extension.get("valueString") or extension.get("valueCode")
        if extension.get("url") == WARD_CODE and isinstance(code, str) and code.strip():
            ward = code.strip()
    words: list[str] = []
    lines = address.get("line")
    texts = [line for line in lines if isinstance(line, str)] if isinstance(lines, list) else []
    if not texts and isinstance(address.get("text"), str):
        texts = [address["text"]]
    for line in texts:
        folded = tokens(line)
        stripped = _ward_name(folded)
        if stripped is not None:
            name = name or stripped
            continue
        words.extend(w for w in folded if w not in _CITY_WORDS)
    return ward, name, tuple(sorted(set(words)))


def _numeric(word: str) -> bool:
    return any(ch.isdigit() for ch in word)


def _ward_name(words: tuple[str, ...]) -> str | None:
    for prefix in _WARD_WORDS:
        if words[:len(prefix)] == prefix and len(words) > len(prefix):
            return " ".join(words[len(prefix):])
    return None


# ----------------------------------------------------------------------------------------------- phones
def _phones(value: Any) -> frozenset[str]:
    found = set()
    for contact in _dicts(value):
        if contact.get("system") in ("phone", "sms", None):
            number = national_phone(_text(contact.get("value")))
            if number:
                found.add(number)
    return frozenset(found)


def national_phone(raw: str) -> str | None:
    """A Vietnamese phone number in national form (``0903123456``), old 11-digit mobile numbers renumbered
    as in 2018 (``01689...`` -> ``0389...``); None when it is not a Vietnamese number."""
    plus = raw.strip().startswith("+")
    digits = "".join(ch for ch in raw if ch.isascii() and ch.isdigit())
    if plus or digits.startswith("0084"):
        if not digits.lstrip("0").startswith("84"):
            return None
        digits = "0" + digits.lstrip("0")[2:]
    elif digits.startswith("84") and len(digits) in (11, 12):
        digits = "0" + digits[2:]
    elif not digits.startswith("0") and len(digits) in (9, 10):
        digits = "0" + digits  # a spreadsheet dropped the leading zero
    if len(digits) == 11 and digits[:4] in _OLD_MOBILE:
        digits = _OLD_MOBILE[digits[:4]] + digits[4:]
    return digits if digits.startswith("0") and len(digits) in (10, 11) else None


# ------------------------------------------------------------------------------------------ identifiers
def _identifiers(value: Any) -> tuple[str | None, frozenset[str], frozenset[str]]:
    """(personal ID, social insurance numbers, "<facility>|<MA_BN>" numbers) of a Patient's identifiers.

    The social insurance number is the last 10 characters of every BHYT card (so a renewed card or a new
    category still matches) and every bare BHXH number; a 12-digit "card" is a personal ID (accepted in
    place of the card since 2025)."""
    cccd: str | None = None
    bhxh: set[str] = set()
    local: set[str] = set()
    for ident in _dicts(value):
        system, raw = _text(ident.get("system")), _text(ident.get("value"))
        number = "".join(raw.split()).upper()
        if not number:
            continue
        if system in (CCCD, BHYT) and len(number) == 12 and number.isascii() and number.isdigit():
            cccd = cccd or number
        elif system == BHYT and len(number) == 15 and number[-10:].isascii() and number[-10:].isdigit():
            bhxh.add(number[-10:])
        elif system == BHXH and len(number) == 10 and number.isascii() and number.isdigit():
            bhxh.add(number)
        elif facility_scoped(system) and "/ma-bn/" in system:
            local.add(f"{system.rsplit('/', 1)[-1]}|{number}")
    return cccd, frozenset(bhxh), frozenset(local)
