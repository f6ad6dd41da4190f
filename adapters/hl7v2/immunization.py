"""RXA (+ the ORC before it, the RXR after it) -> Immunization.

The vaccine (RXA-5) and the date given (RXA-3) are what an immunization record is; without either the
message is rejected rather than stored half-known. RXA-20 (completion status) and RXA-21 (action code)
decide the status; a refused or not-given dose is still recorded, as ``not-done`` with its reason (RXA-18),
because "refused measles vaccine" is worth knowing.
"""

from __future__ import annotations

from typing import Any

from adapters.hl7v2.context import Context, Rejected
from adapters.hl7v2.datatypes import codeable, decimal, hl7_date, hl7_datetime, quantity, scoped_system
from adapters.hl7v2.er7 import Segment
from adapters.hl7v2.results import order_identifier
from adapters.hl7v2.tables import table

_UNKNOWN_AMOUNT = "999"  # CDC IIS guide: amount unknown


def immunization(rxa: Segment, orc: Segment | None, ctx: Context, refs: dict[str, str], ordinal: int
                 ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Immunization of an RXA and its identifier. Raises Rejected."""
    vaccine = codeable(rxa.first(5), ctx.scope)
    if vaccine is None:
        raise Rejected("RXA-5", "the administered vaccine code is empty")
    try:
        given = hl7_datetime(rxa.get(3))
    except ValueError as exc:
        raise Rejected("RXA-3", f"date/time of administration: {exc}") from None
    resource: dict[str, Any] = {"resourceType": "Immunization", "status": _status(rxa, ctx),
                                "vaccineCode": vaccine, "patient": {"reference": refs["patient"]},
                                "occurrenceDateTime": given}
    if "encounter" in refs:
        resource["encounter"] = {"reference": refs["encounter"]}
    if resource["status"] == "not-done" and (reason := codeable(rxa.first(18), ctx.scope)):
        resource["statusReason"] = reason
    source = rxa.get(9).upper()
    if source in ("00", "01"):
        resource["primarySource"] = source == "00"
    if rxa.get(6) and rxa.get(6) != _UNKNOWN_AMOUNT and decimal(rxa.get(6)) is not None:
        dose = quantity(rxa.get(6), rxa.first(7), ctx.scope)
        if dose:
            resource["doseQuantity"] = dose
    if rxa.get(15):
        resource["lotNumber"] = rxa.get(15)
    if rxa.get(16):
        try:
            resource["expirationDate"] = hl7_date(rxa.get(16))
        except ValueError as exc:
            ctx.warn("RXA-16", f"expiration date: {exc}; left out")
    if maker := (rxa.get(17, 2) or rxa.get(17)):
        resource["manufacturer"] = {"display": maker}
    if orc is None:
        value = ctx.unique("immunization", f"{ctx.message.control_id or 'message'}/RXA[{ordinal}]")
        return resource, {"system": scoped_system("immunization", ctx.scope or "unknown"), "value": value}
    return resource, order_identifier(orc, ctx, "immunization", ordinal)


def add_route(rxr: Segment, resource: dict[str, Any], ctx: Context) -> None:
    """RXR after an RXA: route (RXR-1) and body site (RXR-2) of the dose."""
    for key, field_no in (("route", 1), ("site", 2)):
        concept = codeable(rxr.first(field_no), ctx.scope)
        if concept:
            resource[key] = concept


def _status(rxa: Segment, ctx: Context) -> str:
    if rxa.get(21).upper() == "D":
        return "entered-in-error"
    code = rxa.get(20).upper()
    status = table("immunization_status").get(code)
    if status is None and code:
        ctx.warn("RXA-20", f"completion status {code!r} is not in HL7 table 0322; read as completed")
    return str(status or "completed")
