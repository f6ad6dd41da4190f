"""The named transforms a mapping file may use: each turns one cell into a piece of FHIR.

A clinic is onboarded by choosing among these names in its TOML mapping, never by writing Python, so the
set is small and each one says what it accepts. A transform raises ``RowError`` for a value the hub must
not store (the row is rejected alone) and calls ``ctx.warn`` for one it keeps but doubts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from adapters.csv.codes import LOINC, UCUM
from adapters.csv.dates import parse_date, parse_datetime
from adapters.csv.reader import fold
from adapters.normalize import (
    ICD10,
    canonical_system,
    conditional_reference,
    facility_system,
    identifier,
    person_name,
    phone,
)

if TYPE_CHECKING:
    from adapters.csv.mapping import CsvMapping, Rule, TableSpec


class RowError(ValueError):
    """A cell that makes its row unusable; ``column`` is the mapping's name for the column."""

    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column


@dataclass
class RowContext:
    """What a transform may read besides its own cell: the other cells of the row (by the mapping's column
    names), the facility the row belongs to, and where to put what it notices."""

    values: dict[str, str]
    facility: str | None
    mapping: CsvMapping
    table: TableSpec
    warnings: list[tuple[str, str]] = field(default_factory=list)
    patient_ids: dict[str, str] = field(default_factory=dict)  # "cccd" / "bhyt" / "cmnd" / "ma-bn" -> value
    keys: dict[str, str] = field(default_factory=dict)  # column -> normalised value, for match identifiers

    def warn(self, column: str, message: str) -> None:
        self.warnings.append((column, message))

    def need_facility(self, column: str) -> str:
        """Numbers unique only within a facility need the facility's code; without one the row cannot be
        linked to anything and is rejected rather than stored under a guessed facility."""
        if not self.facility:
            raise RowError(column, "no facility code: give a facility column (ma_cskcb) or ingest with a "
                                   "facility token, or set `facility` in the mapping")
        return self.facility


Fn = Callable[[str, "Rule", RowContext], Any]
PATIENT_ID_KINDS = ("cccd", "bhyt", "cmnd", "ma-bn")
GENDER_VALUES = {"nam": "male", "male": "male", "m": "male", "1": "male", "nu": "female", "female": "female",
                 "f": "female", "2": "female", "khac": "other", "other": "other", "3": "other",
                 "khong_ro": "unknown", "unknown": "unknown", "u": "unknown"}
_ICD10 = re.compile(r"([A-Z]\d{2})\.?([0-9A-Z]{1,4})?")


# ------------------------------------------------------------------------------------------- plain values
def _text(value: str, rule: Rule, ctx: RowContext) -> str:
    return value


def _given(value: str, rule: Rule, ctx: RowContext) -> list[str]:
    return value.split(" ")


def _full_name(value: str, rule: Rule, ctx: RowContext) -> dict[str, Any] | None:
    return person_name(value)


def _date(value: str, rule: Rule, ctx: RowContext) -> str:
    try:
        return parse_date(value, rule.formats or ctx.mapping.date_formats)
    except ValueError as exc:
        raise RowError(rule.column, str(exc)) from None


def _datetime(value: str, rule: Rule, ctx: RowContext) -> str:
    try:
        return parse_datetime(value, rule.formats or ctx.mapping.date_formats, ctx.mapping.timezone)
    except ValueError as exc:
        raise RowError(rule.column, str(exc)) from None


def lookup(value: str, rule: Rule, ctx: RowContext, table: dict[str, str] | None = None) -> str:
    """``value`` through the rule's value table (keys compared folded: "Nữ", "nu", "NU" are one key). A value
    outside the table takes the rule's ``default`` with a warning, or rejects the row when there is none."""
    table = rule.values if rule.values is not None else table
    if table is None:
        return value
    hit = table.get(fold(value))
    if hit is not None:
        return hit
    if rule.default is not None:
        ctx.warn(rule.column, f"{value!r} is not in the value table; {rule.default!r} used")
        return rule.default
    raise RowError(rule.column, f"{value!r} is not one of the accepted values ({', '.join(sorted(table))})")


def _enum(value: str, rule: Rule, ctx: RowContext) -> str:
    return lookup(value, rule, ctx)


def _gender(value: str, rule: Rule, ctx: RowContext) -> str:
    return lookup(value, rule, ctx, GENDER_VALUES)


def number(value: str, rule: Rule) -> int | float:
    """A decimal as a clinic writes it ("36,5" with the Vietnamese decimal comma, or "36.5"); a JSON number
    because FHIR forbids numbers as strings. Raises RowError: a non-numeric measurement is never stored."""
    text = value.replace(" ", "")
    if text.count(",") == 1 and "." not in text:
        text = text.replace(",", ".")
    try:
        parsed = float(text)
    except ValueError:
        raise RowError(rule.column, f"{value!r} is not a number") from None
    if not math.isfinite(parsed) or not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)", text):
        raise RowError(rule.column, f"{value!r} is not a number")
    return int(parsed) if parsed.is_integer() and "." not in text else parsed


def _in_range(num: float, rule: Rule, ctx: RowContext, value: str) -> None:
    if rule.range and not rule.range[0] <= num <= rule.range[1]:
        ctx.warn(rule.column, f"{value!r} is outside the plausible range {rule.range[0]}-{rule.range[1]}")


def _integer(value: str, rule: Rule, ctx: RowContext) -> int:
    num = number(value, rule)
    if not isinstance(num, int):
        raise RowError(rule.column, f"{value!r} is not a whole number")
    _in_range(num, rule, ctx, value)
    return num


def _quantity(value: str, rule: Rule, ctx: RowContext) -> dict[str, Any]:
    num = number(value, rule)
    _in_range(num, rule, ctx, value)
    return quantity(num, rule.unit)


def quantity(num: int | float, unit: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"value": num}
    if unit:
        out.update(unit=unit, system=UCUM, code=unit)
    return out


def _phone(value: str, rule: Rule, ctx: RowContext) -> dict[str, Any]:
    e164 = phone(value)
    if e164 is None:
        ctx.warn(rule.column, f"{value!r} is not a Vietnamese phone number; kept as written")
    return {"system": "phone", "value": e164 or value}


# ------------------------------------------------------------------------------------------------ codes
def _display(rule: Rule, ctx: RowContext) -> str | None:
    if rule.display_column:
        return ctx.values.get(rule.display_column) or None
    return rule.display


def _system(rule: Rule, ctx: RowContext) -> str:
    """The code system: fixed by the rule, or read from another column through the rule's ``systems``
    (both resolved to URIs when the mapping was loaded)."""
    if rule.system_column:
        raw = ctx.values.get(rule.system_column, "")
        system = (rule.systems or {}).get(fold(raw))
        if system is None:
            raise RowError(rule.system_column, f"{raw!r} is not one of the code systems the mapping names "
                                               f"({', '.join(sorted(rule.systems or {}))})")
        return system
    return rule.system or ""


def coding(code: str, system: str, display: str | None) -> dict[str, Any]:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def concept(code: str, system: str, display: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"coding": [coding(code, system, display)]}
    if display:
        out["text"] = display
    return out


def _code(value: str, rule: Rule, ctx: RowContext) -> dict[str, Any]:
    return concept(lookup(value, rule, ctx), _system(rule, ctx), _display(rule, ctx))


def _coding(value: str, rule: Rule, ctx: RowContext) -> dict[str, Any]:
    return coding(lookup(value, rule, ctx), _system(rule, ctx), _display(rule, ctx))


def icd10_code(value: str, rule: Rule) -> str:
    """An ICD-10 code in the MoH list's spelling (``J06.9``): upper case, the dot put back when a clinic
    dropped it (``J069``). One code per cell: a list would hide diagnoses in one Condition."""
    text = value.strip().upper().replace(" ", "")
    match = _ICD10.fullmatch(text)
    if not match:
        raise RowError(rule.column, f"{value!r} is not an ICD-10 code (a letter, 2 digits, optional .digits)")
    return match.group(1) + (f".{match.group(2)}" if match.group(2) else "")


def _icd10(value: str, rule: Rule, ctx: RowContext) -> dict[str, Any]:
    return concept(icd10_code(value, rule), ICD10, _display(rule, ctx))


# ------------------------------------------------------------------------------- identifiers, references
def _identifier(value: str, rule: Rule, ctx: RowContext) -> dict[str, Any] | None:
    """A Patient's Vietnamese identifiers are collected for ``patient_identifiers`` (which orders them and
    picks the one to match on); anything else is an identifier as given."""
    kind = (rule.system or "").lower()
    if ctx.table.resource == "Patient" and kind in PATIENT_ID_KINDS:
        text = value.replace(" ", "")
        ctx.patient_ids[kind] = text.upper() if kind == "bhyt" else text
        return None
    if kind == "ma-bn":
        return identifier(facility_system("ma-bn", ctx.need_facility(rule.column)), value)
    return identifier(canonical_system(rule.system or ""), value)


def _ref(kind: str, rtype: str) -> Fn:
    def build(value: str, rule: Rule, ctx: RowContext) -> dict[str, Any]:
        match = identifier(facility_system(kind, ctx.need_facility(rule.column)), value)
        return {"reference": conditional_reference(rtype, match)}

    build.__doc__ = f"A reference to the {rtype} another record stored, by its {kind} number in the facility."
    return build


def _nothing(value: str, rule: Rule, ctx: RowContext) -> None:
    return None


# ---------------------------------------------------------------------------------------- observations
def _observation(value: str, rule: Rule, ctx: RowContext) -> dict[str, Any]:
    """One measurement column of a vital-signs row: its own Observation, coded by the rule's LOINC code."""
    num = number(value, rule)
    _in_range(num, rule, ctx, value)
    return {"code": concept(rule.code or "", LOINC, rule.display), "valueQuantity": quantity(num, rule.unit)}


BP_PARTS = (("8480-6", "Systolic blood pressure"), ("8462-4", "Diastolic blood pressure"))


def _blood_pressure(value: str, rule: Rule, ctx: RowContext) -> dict[str, Any]:
    """``120/80`` as the LOINC blood-pressure panel with its systolic and diastolic components."""
    parts = value.replace(" ", "").split("/")
    if len(parts) != 2:
        raise RowError(rule.column, f"{value!r} is not a blood pressure written systolic/diastolic (120/80)")
    systolic, diastolic = (number(p, rule) for p in parts)
    if not 40 <= systolic <= 300 or not 20 <= diastolic <= 200 or diastolic >= systolic:
        ctx.warn(rule.column, f"{value!r} is not a plausible blood pressure")
    return {
        "code": concept("85354-9", LOINC, "Blood pressure panel with all children optional"),
        "component": [{"code": concept(code, LOINC, display), "valueQuantity": quantity(num, "mm[Hg]")}
                      for (code, display), num in zip(BP_PARTS, (systolic, diastolic), strict=True)],
    }


def _value(value: str, rule: Rule, ctx: RowContext) -> dict[str, Any]:
    """An observation's value: a Quantity when it is numeric (or the ``type_column`` says so), else text."""
    kind = fold(ctx.values.get(rule.type_column, "")) if rule.type_column else ""
    unit = ctx.values.get(rule.unit_column, "") if rule.unit_column else ""
    if kind in ("text", "string") or (not kind and not _looks_numeric(value)):
        return {"valueString": value}
    return {"valueQuantity": quantity(number(value, rule), "" if unit.lower() == "null" else unit)}


def _looks_numeric(value: str) -> bool:
    try:
        float(value.replace(",", "."))
    except ValueError:
        return False
    return True


# ------------------------------------------------------------------------------------------- registry
@dataclass(frozen=True, slots=True)
class TransformSpec:
    """``params``: the rule keys the transform reads; ``element``: "required", "none" (the result is merged
    into the resource, or it only feeds other rules) or "optional"; ``sample``: a typical result, used to
    check a mapping's element paths against the FHIR models when it is loaded."""

    fn: Fn
    params: frozenset[str]
    element: str
    sample: Any
    observation: bool = False  # the result is a separate Observation built on the row's common elements


def _spec(fn: Fn, params: str, element: str, sample: Any, observation: bool = False) -> TransformSpec:
    return TransformSpec(fn, frozenset(params.split()), element, sample, observation)


_CC = concept("x", "http://example.org", "x")
_QTY = quantity(1, "kg")
TRANSFORMS: dict[str, TransformSpec] = {
    "text": _spec(_text, "", "required", "x"),
    "family": _spec(_text, "", "required", "x"),
    "given": _spec(_given, "", "required", ["x"]),
    "name_family_first": _spec(_full_name, "", "required", person_name("Nguyễn Văn An")),
    "date": _spec(_date, "formats", "required", "2000-01-01"),
    "datetime": _spec(_datetime, "formats", "required", "2000-01-01T08:00:00+07:00"),
    "gender": _spec(_gender, "values default", "required", "male"),
    "enum": _spec(_enum, "values default", "required", None),
    "phone": _spec(_phone, "", "required", {"system": "phone", "value": "+84901234567"}),
    "icd10": _spec(_icd10, "display_column display", "required", _CC),
    "code": _spec(_code, "system system_column systems values default display_column display", "required", _CC),
    "coding": _spec(_coding, "system system_column systems values default display_column display", "required",
                    _CC["coding"][0]),
    "quantity": _spec(_quantity, "unit range", "required", _QTY),
    "integer": _spec(_integer, "range", "required", 1),
    "identifier": _spec(_identifier, "system", "required", identifier("http://example.org", "x")),
    "reference_patient": _spec(_ref("ma-bn", "Patient"), "", "required", {"reference": "Patient?identifier=a|b"}),
    "reference_encounter": _spec(_ref("visit", "Encounter"), "", "required",
                                 {"reference": "Encounter?identifier=a|b"}),
    "facility": _spec(_nothing, "", "none", None),
    "none": _spec(_nothing, "", "none", None),
    "value": _spec(_value, "unit_column type_column", "none", {"valueQuantity": _QTY}),
    "observation": _spec(_observation, "code display unit range", "none",
                         {"code": _CC, "valueQuantity": _QTY}, observation=True),
    "blood_pressure": _spec(_blood_pressure, "", "none",
                            {"code": _CC, "component": [{"code": _CC, "valueQuantity": _QTY}]}, observation=True),
}
