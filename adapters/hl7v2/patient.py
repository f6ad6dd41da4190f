"""PID -> Patient, and CX (PID-3, PID-2, PID-19, MRG-1) -> hub identifiers.

The identifier type (CX-5) decides the system through ``tables/identifier_types.json``: a Vietnamese personal
ID or an insurance card gets the national system the whole hub shares (so the same person from two hospitals
meets on it); anything else is a number local to its assigning authority (CX-4, else CX-6, else the sending
facility), typed with its HL7 code so its meaning is not lost. The strongest identifier comes first and is
the one the record is matched on: CCCD, then the social-insurance number (stable across card renewals), then
the card, then old ID card and passport, then medical record numbers.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from adapters.hl7v2.context import Context, Rejected
from adapters.hl7v2.datatypes import address, contact_point, hl7_date, hl7_datetime, human_name, scoped_system
from adapters.hl7v2.er7 import Segment, Value
from adapters.hl7v2.tables import table
from adapters.normalize import (
    BHXH,
    BHYT,
    CCCD,
    CMND,
    PASSPORT,
    birth_year,
    identifier,
    insurance_card_problems,
    patient_identifiers,
    personal_id_problems,
)

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
_RANK = {CCCD: 0, BHXH: 1, BHYT: 2, CMND: 3, PASSPORT: 4}
_DIGITS = re.compile(r"\d+")


def identifiers_of(cx: Value, default_type: str, ctx: Context, field_name: str) -> list[dict[str, Any]]:
    """The hub identifiers one CX stands for (an insurance card gives the card and the BHXH number)."""
    value = cx.get(1)
    if not value:
        return []
    type_code = " ".join((cx.get(5) or default_type).upper().split())
    kind = table("identifier_types").get(type_code, "local")
    compact = "".join(value.split())
    if kind == "national" and _DIGITS.fullmatch(compact) and len(compact) in (9, 12):
        return [identifier(CCCD if len(compact) == 12 else CMND, compact)]
    if kind == "cmnd":
        return [identifier(CMND, compact)]
    if kind == "passport":
        return [identifier(PASSPORT, compact.upper())]
    if kind == "insurance":
        card = compact.upper()
        for problem in insurance_card_problems(card):
            ctx.warn(field_name, problem)
        return patient_identifiers(bhyt=card)
    if kind == "social-insurance" and _DIGITS.fullmatch(compact) and len(compact) == 10:
        return [identifier(BHXH, compact)]
    if kind != "local":
        ctx.warn(field_name, f"{value!r} has type {type_code} but is not a valid {kind} number; "
                             "kept as a local number")
    return _local(value, type_code, cx, ctx, field_name)


def _local(value: str, type_code: str, cx: Value, ctx: Context, field_name: str) -> list[dict[str, Any]]:
    scope = cx.get(4) or cx.get(4, 2) or cx.get(6) or cx.get(6, 2) or ctx.scope
    if not ctx.may_scope(scope, field_name):
        return []
    if not scope:
        ctx.warn(field_name, f"{value!r}: no assigning authority and no sending facility (MSH-4) to scope "
                             "this local number; left out")
        return []
    local = identifier(scoped_system("mrn", scope), value)
    if type_code:
        local["type"] = {"coding": [{"system": V2_0203, "code": type_code}]}
    return [local]


def patient_identifiers_of(pid: Segment, ctx: Context) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    sources = [("PID-3", cx, "") for cx in pid.reps(3)] + [("PID-2", cx, "") for cx in pid.reps(2)]
    sources += [("PID-19", cx, "SS") for cx in pid.reps(19)]
    for field_name, cx, default_type in sources:
        for ident in identifiers_of(cx, default_type, ctx, field_name):
            if not any(i["system"] == ident["system"] and i["value"] == ident["value"] for i in found):
                found.append(ident)

    def rank(ident: dict[str, Any]) -> int:
        if ident["system"] in _RANK:
            return _RANK[ident["system"]]
        codes = [c.get("code") for c in ident.get("type", {}).get("coding", [])]
        return 5 if "MR" in codes else 6

    return sorted(found, key=rank)


def patient(pid: Segment, ctx: Context, ordinal: int) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The Patient of a PID and the identifier it is matched on. Raises Rejected."""
    identifiers = patient_identifiers_of(pid, ctx)
    names = [n for n in (human_name(v) for v in pid.reps(5)) if n]
    if not identifiers and not names:
        raise Rejected("PID-3", "the patient has neither an identifier (PID-3) nor a name (PID-5)")
    resource: dict[str, Any] = {"resourceType": "Patient"}
    born = _birth_date(pid.get(7))
    gender = _gender(pid.get(8), ctx)
    for ident in identifiers:
        if ident["system"] == CCCD:
            for problem in personal_id_problems(ident["value"], birth_year=birth_year(born), gender=gender):
                ctx.warn("PID-3", problem)
    match = identifiers[0] if identifiers else _temporary(ctx, ordinal)
    if identifiers:
        resource["identifier"] = identifiers
    if names:
        resource["name"] = names
    telecom = _telecom(pid, ctx)
    if telecom:
        resource["telecom"] = telecom
    if gender:
        resource["gender"] = gender
    if born:
        resource["birthDate"] = born
    _deceased(pid, resource, ctx)
    addresses = [a for a in (address(v) for v in pid.reps(11)) if a]
    if addresses:
        resource["address"] = addresses
    return resource, match


def _birth_date(raw: str) -> str | None:
    if not raw:
        return None
    try:
        born = hl7_date(raw)
    except ValueError as exc:
        raise Rejected("PID-7", f"birth date: {exc}") from None
    if born > date.today().isoformat()[: len(born)]:
        raise Rejected("PID-7", f"birth date {raw!r} is in the future")
    return born


def _gender(code: str, ctx: Context) -> str | None:
    if not code:
        return None
    gender = table("sex").get(code.upper())
    if gender is None:
        ctx.warn("PID-8", f"sex {code!r} is not a code of HL7 table 0001; left out")
    return gender


def _telecom(pid: Segment, ctx: Context) -> list[dict[str, Any]]:
    points = []
    for field_no, default_use in ((13, "home"), (14, "work")):
        for xtn in pid.reps(field_no):
            point, problem = contact_point(xtn, default_use)
            if problem:
                ctx.warn(f"PID-{field_no}", problem)
            if point and point not in points:
                points.append(point)
    return points


def _deceased(pid: Segment, resource: dict[str, Any], ctx: Context) -> None:
    if raw := pid.get(29):
        try:
            resource["deceasedDateTime"] = hl7_datetime(raw)
            return
        except ValueError as exc:
            ctx.warn("PID-29", f"date of death: {exc}; left out")
    if pid.get(30).upper() == "Y":
        resource["deceasedBoolean"] = True


def _temporary(ctx: Context, ordinal: int) -> dict[str, Any] | None:
    """A patient known only by name: keyed on the message so that the same message sent twice does not
    create the person twice. Which existing Patient it is, is for patient matching to say."""
    control_id = ctx.message.control_id
    if not control_id:
        ctx.warn("PID-3", "no patient identifier and no MSH-10: the Patient is created on every ingest")
        return None
    ctx.warn("PID-3", "no patient identifier: keyed on the message (temporary identifier); "
                      "hand to patient matching")
    value = ctx.unique("patient", f"{control_id}/PID[{ordinal}]")
    return {**identifier(scoped_system("hl7v2-message", ctx.scope or "unknown"), value), "use": "temp"}
