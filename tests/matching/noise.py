"""How one facility writes down a person: the FHIR Patient of ``population.Person`` with realistic noise.

Each change has its own probability per record (``Noise``), set from what hub adapters see in facility
exports: ASCII-only systems drop diacritics, MoH XML exports write names in capitals, some senders put the
middle name with the family name ("Họ và tên đệm" / "Tên"), clerks type, birth dates of the elderly are
often known by year only, day and month get swapped, people change phones, renew their insurance card
under another category (the 10-digit BHXH number stays), move, and leave their ID card at home. Identifier
typos are not produced: a CCCD or BHXH number that disagrees is a conflict, not noise, for the matcher.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from adapters.normalize import BHXH, BHYT, CCCD
from tests.matching import vn_data as vn

if TYPE_CHECKING:
    from tests.matching.population import Person

WARD_CODE = "https://fhir.hub.hcmc.vn/StructureDefinition/ward-code"
CITY = "Thành phố Hồ Chí Minh"
TONES = ("\u0300", "\u0301", "\u0309", "\u0303", "\u0323")  # huyền, sắc, hỏi, ngã, nặng


@dataclass(frozen=True, slots=True)
class Noise:
    """The probability of each change in one record."""

    no_diacritics: float = 0.15
    upper_case: float = 0.10
    text_only: float = 0.08  # the name only as text, no family/given parts
    middle_in_family: float = 0.04  # family "Nguyễn Văn", given ["An"]
    missing_middle: float = 0.06
    swapped_middle_given: float = 0.03
    name_typo: float = 0.06
    regional_family: float = 0.3  # only for the Hoàng/Huỳnh and Vũ/Võ families
    year_only: float = 0.06
    year_month: float = 0.02
    day_month_swapped: float = 0.03
    day_typo: float = 0.02
    gender_unknown: float = 0.02
    phone_missing: float = 0.15
    phone_changed: float = 0.10
    phone_old_number: float = 0.03  # the 11-digit number from before 2018, where the prefix had one
    moved: float = 0.05
    address_missing: float = 0.05
    ward_code_missing: float = 0.3
    ward_abbreviated: float = 0.1  # "P. Bến Thành"
    cccd_missing: float = 0.25
    card_missing: float = 0.25
    card_renewed: float = 0.15  # a new card of another category, the same BHXH number
    bhxh_only: float = 0.05  # the social insurance number instead of the card
    same_facility_again: float = 0.1  # a second record from a facility already seen, with its MA_BN


NOISE = Noise()


def fold(text: str) -> str:
    """Without diacritics (đ -> d), as an ASCII-only system writes a name."""
    stripped = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
    return stripped.replace("đ", "d").replace("Đ", "D")


def card(category: str, bhxh: str, rng: random.Random) -> str:
    """A BHYT card: category, benefit level, province of issue (79, or 74/77 from before the 2025 merger),
    then the person's BHXH number."""
    province = "79" if rng.random() < 0.87 else rng.choice(("74", "77"))
    return f"{category}{vn.BENEFIT[category]}{province}{bhxh}"


def copy_of(person: Person, rng: random.Random, noise: Noise = NOISE) -> dict[str, Any]:
    """A Patient (without id and MA_BN) as one facility would have recorded ``person``."""
    ascii_only = rng.random() < noise.no_diacritics  # a system without diacritics drops them everywhere
    patient: dict[str, Any] = {"identifier": _identifiers(person, rng, noise),
                               "name": [_name(person, rng, noise, ascii_only)]}
    if rng.random() >= noise.gender_unknown:
        patient["gender"] = person.gender
    elif rng.random() < 0.5:
        patient["gender"] = "unknown"
    patient["birthDate"] = _birth_date(person.birth, rng, noise)
    phone = person.phone
    if rng.random() < noise.phone_changed:
        phone = rng.choice(vn.MOBILE_PREFIXES) + f"{rng.randrange(10 ** 7):07d}"
    if phone and phone[:3] in vn.OLD_MOBILE and rng.random() < noise.phone_old_number:
        phone = vn.OLD_MOBILE[phone[:3]] + phone[3:]
    if phone and rng.random() >= noise.phone_missing:
        patient["telecom"] = [{"system": "phone", "value": "+84" + phone[1:] if rng.random() < 0.5 else phone}]
    if rng.random() >= noise.address_missing:
        patient["address"] = [_address(person, rng, noise, ascii_only)]
    return patient


def _identifiers(person: Person, rng: random.Random, noise: Noise) -> list[dict[str, Any]]:
    found = []
    if person.cccd and rng.random() >= noise.cccd_missing:
        found.append({"system": CCCD, "value": person.cccd})
    if person.card and person.bhxh and rng.random() >= noise.card_missing:
        if rng.random() < noise.bhxh_only:
            found.append({"system": BHXH, "value": person.bhxh})
        else:
            value = person.card
            if rng.random() < noise.card_renewed:
                row = next(table for top, table in vn.CATEGORIES_BY_AGE if person.age <= top)
                others = [c for c, _ in row if c != value[:2]] or ["GD"]
                value = card(rng.choice(others), person.bhxh, rng)
            found.append({"system": BHYT, "value": value})
    return found


def _name(person: Person, rng: random.Random, noise: Noise, ascii_only: bool) -> dict[str, Any]:
    family, middle, given = person.family, list(person.middle), person.given
    if family in vn.REGIONAL_SPELLINGS and rng.random() < noise.regional_family:
        family = vn.REGIONAL_SPELLINGS[family]
    if middle and rng.random() < noise.missing_middle:
        middle = []
    if rng.random() < noise.name_typo:
        if rng.random() < 0.7:
            given = typo(given, rng)
        else:
            family = typo(family, rng)
    parts = [*middle, given]
    if middle and rng.random() < noise.swapped_middle_given:
        parts = [given, *middle]
    if ascii_only:
        family, parts = fold(family), [fold(p) for p in parts]
    if rng.random() < noise.upper_case:
        family, parts = family.upper(), [p.upper() for p in parts]
    text = " ".join([family, *parts])
    if rng.random() < noise.text_only:
        return {"text": text}
    if len(parts) > 1 and rng.random() < noise.middle_in_family:
        return {"use": "official", "text": text, "family": " ".join([family, *parts[:-1]]), "given": parts[-1:]}
    return {"use": "official", "text": text, "family": family, "given": parts}


def typo(word: str, rng: random.Random) -> str:
    """One slip of the keyboard: a letter dropped, two swapped, one replaced, or the tone mark changed
    (which folding hides, as it should: "Hùng"/"Húng" are one name typed carelessly)."""
    lower = word.lower()
    chars = list(lower)
    op = rng.randrange(4)
    i = rng.randrange(len(chars))
    if op == 0 and len(chars) > 2:
        del chars[i]
    elif op == 1 and len(chars) > 1:
        i = min(i, len(chars) - 2)
        chars[i], chars[i + 1] = chars[i + 1], chars[i]
    elif op == 2:
        chars[i] = rng.choice("aeiouynhgtcm".replace(fold(chars[i]), ""))
    else:
        chars = list(_retone(lower, rng))
    out = "".join(chars)
    return out[:1].upper() + out[1:] if word[:1].isupper() else out


def _retone(word: str, rng: random.Random) -> str:
    decomposed = unicodedata.normalize("NFD", word)
    toned = [i for i, c in enumerate(decomposed) if c in TONES]
    if toned:
        i = toned[0]
        others = [t for t in TONES if t != decomposed[i]] + [""]
        decomposed = decomposed[:i] + rng.choice(others) + decomposed[i + 1:]
    else:
        vowels = [i for i, c in enumerate(decomposed) if c in "aeiouy"]
        if vowels:
            i = vowels[-1] + 1
            decomposed = decomposed[:i] + rng.choice(TONES) + decomposed[i:]
    return unicodedata.normalize("NFC", decomposed)


def _birth_date(birth: date, rng: random.Random, noise: Noise) -> str:
    roll = rng.random()
    if roll < noise.year_only:
        return f"{birth.year}"
    roll -= noise.year_only
    if roll < noise.year_month:
        return f"{birth.year}-{birth.month:02d}"
    roll -= noise.year_month
    if roll < noise.day_month_swapped and birth.day <= 12 and birth.day != birth.month:
        return f"{birth.year}-{birth.day:02d}-{birth.month:02d}"
    roll -= noise.day_month_swapped
    if roll < noise.day_typo:  # one digit of the day mistyped: the year and month stay right
        days = [d for d in (birth.day - 10, birth.day - 1, birth.day + 1, birth.day + 10) if 1 <= d <= 28]
        birth = birth.replace(day=rng.choice(days))
    return birth.isoformat()


def _address(person: Person, rng: random.Random, noise: Noise, ascii_only: bool) -> dict[str, Any]:
    (code, ward), street = person.ward, person.street
    if rng.random() < noise.moved:
        code, ward = rng.choice(vn.WARDS)
        street = f"{rng.randint(1, 400)} {rng.choice(vn.STREETS)}"
    if rng.random() < noise.ward_abbreviated:
        ward = ward.replace("Phường ", "P. ").replace("Xã ", "X. ")
    if ascii_only:
        ward, street = fold(ward), fold(street)
    address: dict[str, Any] = {"line": [street, ward], "city": CITY}
    if rng.random() >= noise.ward_code_missing:
        address["extension"] = [{"url": WARD_CODE, "valueString": code}]
    return address
