"""What the table mappers share while one HOSO becomes one record: its Bundle, its keys, its warnings, and
the helpers that read MoH values (dates, numbers) and raise ``HosoError`` with the element's name.

Warnings are collected here and handed to the Mapping only when the record is kept: a rejected HOSO is
reported once, by its rejection, not also by warnings about a record that does not exist.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from adapters.base import Problem
from adapters.moh_xml.codes import Row
from adapters.moh_xml.errors import HosoError
from adapters.normalize import FACILITY, RecordBundle, facility_system, identifier, moh_date, moh_datetime

_NUMBER = re.compile(r"[+-]?\d+(?:[.,]\d+)?")


@dataclass
class Episode:
    key: str  # the record's key: MA_LK=...
    ma_lk: str
    facility: str
    bundle: RecordBundle
    finished: bool = False
    patient: str = ""  # urn:uuid references, set by the XML1 mapping
    encounter: str = ""
    warnings: list[Problem] = field(default_factory=list)
    tables: tuple[str, ...] = ()  # the LOAIHOSO of every table the HOSO carries, mapped or not

    def warn(self, field_name: str, message: str) -> None:
        self.warnings.append(Problem(self.key, field_name, message, kept=True))

    def row_match(self, *parts: str) -> dict[str, Any]:
        """The idempotency identifier of a resource made from a table row: unique within the facility
        because MA_LK is, and stable across re-sends of the same episode."""
        return identifier(facility_system("moh-xml", self.facility), "/".join((self.ma_lk, *parts)))

    def add(self, resource: dict[str, Any], match: dict[str, Any]) -> str:
        return self.bundle.add(prune(resource), match)

    def organization(self, code: str) -> str:
        """The Organization of a facility code (created once per record, matched on MA_CSKCB)."""
        match = identifier(FACILITY, code)
        return self.add({"resourceType": "Organization", "identifier": [match], "active": True}, match)

    def practitioner(self, code: str | None) -> dict[str, Any] | None:
        """A logical reference to a health worker by the code the facility gives (practising certificate):
        the hub has no Practitioner registry yet, and an identifier reference resolves later."""
        if not code:
            return None
        return {"identifier": identifier(facility_system("nhan-vien", self.facility), code), "display": code}

    def subject(self) -> dict[str, Any]:
        return {"subject": {"reference": self.patient}, "encounter": {"reference": self.encounter}}


def when(row: Row, table: str, name: str, *, date_only: bool = False) -> str | None:
    """A MoH date or time stamp as FHIR; None when empty; an impossible one (20240231, month 13, 25:00)
    rejects the HOSO, because a wrong date on clinical data is worse than none."""
    raw = row.get(name, "")
    if not raw:
        return None
    try:
        return moh_date(raw) if date_only else moh_datetime(raw)
    except ValueError as exc:
        raise HosoError(f"{table}.{name}", f"{raw!r} is not a possible date: {exc}") from None


def number(raw: str | None) -> int | float | None:
    """A MoH quantity as a JSON number (decimal point ``.``, a ``,`` tolerated); None when it is not one
    (``<0.5``, ``Âm tính``), so the caller keeps it as text."""
    text = (raw or "").strip()
    if not _NUMBER.fullmatch(text):
        return None
    text = text.replace(",", ".")
    return float(text) if "." in text else int(text)


def coded(system: str, code: str | None, display: str | None = None, text: str | None = None) -> dict[str, Any]:
    """A CodeableConcept; parts that are empty are left out (``prune`` removes an empty coding). Inner runs of
    whitespace in a code are collapsed: a FHIR code may not contain them, and no MoH code means them."""
    code = " ".join((code or "").split())
    coding = {"system": system, "code": code, "display": display} if code else None
    return {"coding": [coding] if coding else None, "text": text or display}


def prune(value: Any) -> Any:
    """Drop None, empty strings, lists and objects, recursively: FHIR JSON forbids empty elements and the
    mappers can then write every optional element unconditionally."""
    if isinstance(value, dict):
        pruned = {k: prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in (None, "", [], {})}
    if isinstance(value, list):
        items = [prune(v) for v in value]
        return [v for v in items if v not in (None, "", [], {})]
    return value
