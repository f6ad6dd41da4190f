"""OBR/OBX -> DiagnosticReport/Observation.

Every OBX of a mapped message becomes an Observation, whatever the event: ADT messages carry vital signs,
VXU messages carry the funding eligibility and the information statement of an immunization. OBX-2 decides
the value[x] through ``tables/value_types.json``; types the hub cannot hold as a value (RP references, ED
documents) give an Observation without a value, and the value is listed as not mapped (it stays in the
archived payload).

Identifiers make re-ingesting the same result idempotent: an OBX is keyed on its order (OBR-3 filler
number, else OBR-2 placer number, else MSH-10) and its position under it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from adapters.hl7v2.context import Context
from adapters.hl7v2.datatypes import codeable, hl7_datetime, hl7_instant, hl7_time, quantity, scoped_system
from adapters.hl7v2.er7 import Segment
from adapters.hl7v2.tables import table

INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
_COMPARATORS = ("<", "<=", ">", ">=")


@dataclass
class Order:
    """The order (OBR or ORC) the following OBX belong to: its key and, for an OBR, its report's results."""

    anchor: str  # the value observation identifiers start with
    obr: Segment | None = None
    ordinal: int = 0
    results: list[dict[str, str]] = field(default_factory=list)
    count: int = 0  # OBX seen under this order

    def effective(self) -> str:
        return self.obr.get(7) if self.obr else ""


def order_number(segment: Segment) -> tuple[str, str, str] | None:
    """(kind, number, namespace) of an OBR/ORC: the filler order number (field 3), else the placer one
    (field 2). A number is unique within its namespace (EI-2, the application that assigned it)."""
    for kind, field_no in (("filler-order", 3), ("placer-order", 2)):
        number = segment.first(field_no)
        if number.get(1):
            return kind, number.get(1), number.get(2)
    return None


def order_anchor(segment: Segment, ctx: Context) -> str:
    """What an order's observation identifiers start with: its number, else the message's control id."""
    number = order_number(segment)
    return number[1] if number else ctx.message.control_id or "message"


def observation(obx: Segment, ctx: Context, order: Order, refs: dict[str, str]) -> dict[str, Any] | None:
    """The Observation of an OBX, or None (reported) when OBX-3 says nothing of what was observed."""
    order.count += 1
    code = codeable(obx.first(3), ctx.scope)
    where = f"OBX {order.anchor}/{order.count}"
    if code is None:
        ctx.warn("OBX-3", f"{where}: no observation code; the OBX is left out")
        return None
    status_code = obx.get(11).upper()
    resource = _result("Observation", table("result_status").get(status_code, "unknown"), code, refs)
    if status_code and status_code not in table("result_status"):
        ctx.warn("OBX-11", f"{where}: result status {status_code!r} is not in HL7 table 0085; status unknown")
    if "part_of" in refs:
        resource["partOf"] = [{"reference": refs["part_of"]}]
    when = _datetime(obx.get(14) or order.effective(), "OBX-14", where, ctx)
    if when:
        resource["effectiveDateTime"] = when
    _value(obx, resource, ctx, where)
    interpretation = [{"coding": [{"system": INTERPRETATION, "code": v.get(1)}]} for v in obx.reps(8) if v.get(1)]
    if interpretation:
        resource["interpretation"] = interpretation
    if obx.get(7):
        resource["referenceRange"] = [{"text": obx.first(7).text()}]
    return resource


def _value(obx: Segment, resource: dict[str, Any], ctx: Context, where: str) -> None:
    value_type = obx.get(2).upper()
    values = obx.reps(5)
    if not values:
        return
    kind = table("value_types").get(value_type, "string")
    first = values[0]
    if len(values) > 1 and kind not in ("text", "string"):
        ctx.warn("OBX-5", f"{where}: {len(values)} repeated values; only the first is kept")
    if kind == "quantity":
        number = quantity(first.get(1), obx.first(6), ctx.scope)
        if number is None:
            ctx.warn("OBX-5", f"{where}: {first.text()!r} is not a number; kept as text")
            resource["valueString"] = first.text()
        else:
            resource["valueQuantity"] = number
    elif kind == "structured-numeric":
        _structured_numeric(obx, resource, ctx)
    elif kind == "coded":
        concept = codeable(first, ctx.scope)
        if concept:
            resource["valueCodeableConcept"] = concept
    elif kind == "datetime":
        when = _datetime(first.get(1), "OBX-5", where, ctx)
        if when:
            resource["valueDateTime"] = when
    elif kind == "time":
        try:
            resource["valueTime"] = hl7_time(first.get(1))
        except ValueError as exc:
            ctx.warn("OBX-5", f"{where}: {exc}; left out")
    elif kind == "raw":
        ctx.not_mapped.append(f"OBX-5 of type {value_type} ({where})")
    else:
        text = "\n".join(v.text() for v in values)
        resource["valueString"] = text if kind == "text" else text.replace("\n", " ")


def _structured_numeric(obx: Segment, resource: dict[str, Any], ctx: Context) -> None:
    """SN: comparator^number^separator^number. A plain or compared number is a Quantity; a ratio or a
    range ("1:128", "2-5") is kept as the text a reader would write."""
    sn = obx.first(5)
    comparator, first, separator, second = sn.get(1), sn.get(2), sn.get(3), sn.get(4)
    if not separator and not second and comparator in ("", "=", *_COMPARATORS):
        number = quantity(first, obx.first(6), ctx.scope)
        if number is not None:
            if comparator in _COMPARATORS:
                number["comparator"] = comparator
            resource["valueQuantity"] = number
            return
    text = f"{comparator}{first}{separator}{second}".strip()
    if text:
        resource["valueString"] = text


def report(order: Order, ctx: Context, refs: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The DiagnosticReport of an OBR and its identifier, or None (reported) without OBR-4."""
    obr = order.obr
    assert obr is not None
    code = codeable(obr.first(4), ctx.scope)
    if code is None:
        ctx.warn("OBR-4", f"OBR {order.anchor}: no service code; no DiagnosticReport (its OBX are kept)")
        return None
    status_code = obr.get(25).upper()
    resource = _result("DiagnosticReport", table("report_status").get(status_code, "unknown"), code, refs)
    when = _datetime(obr.get(7), "OBR-7", f"OBR {order.anchor}", ctx)
    if when:
        resource["effectiveDateTime"] = when
    if obr.get(22):
        try:
            issued = hl7_instant(obr.get(22))
        except ValueError:
            issued = None
        if issued:
            resource["issued"] = issued
    if order.results:
        resource["result"] = order.results
    return resource, order_identifier(obr, ctx, "report", order.ordinal)


def order_identifier(segment: Segment, ctx: Context, kind: str, ordinal: int) -> dict[str, Any]:
    """The identifier of what an order produced (a report, a dose): the order number in its namespace, else
    the message's control id and the position in the message."""
    number = order_number(segment)
    field_no = 3 if number and number[0] == "filler-order" else 2
    if number and ctx.may_scope(number[2], f"{segment.name}-{field_no}"):
        system = scoped_system(number[0], number[2] or ctx.scope or "unknown")
        return {"system": system, "value": ctx.unique(f"{kind} {system}", number[1])}
    value = ctx.unique(kind, f"{ctx.message.control_id or 'message'}/{ordinal}")
    return {"system": scoped_system(kind, ctx.scope or "unknown"), "value": value}


def observation_identifier(order: Order, ctx: Context) -> dict[str, Any]:
    value = ctx.unique("observation", f"{order.anchor}/{order.count}")
    return {"system": scoped_system("observation", ctx.scope or "unknown"), "value": value}


def _datetime(raw: str, field_name: str, where: str, ctx: Context) -> str | None:
    if not raw:
        return None
    try:
        return hl7_datetime(raw)
    except ValueError as exc:
        ctx.warn(field_name, f"{where}: {exc}; left out")
        return None


def _result(rtype: str, status: str, code: dict[str, Any], refs: dict[str, str]) -> dict[str, Any]:
    """What an Observation and a DiagnosticReport share: status, code, the patient and the visit."""
    resource: dict[str, Any] = {"resourceType": rtype, "status": status, "code": code,
                                "subject": {"reference": refs["patient"]}}
    if "encounter" in refs:
        resource["encounter"] = {"reference": refs["encounter"]}
    return resource
