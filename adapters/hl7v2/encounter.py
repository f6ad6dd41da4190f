"""PV1 -> Encounter: the visit as the sending facility numbers it (PV1-19), its class (PV1-2) and period
(PV1-44 admit, PV1-45 discharge). The status comes from the event (``tables/events.json``): an A03 says the
visit is over whatever PV1 says.
"""

from __future__ import annotations

from typing import Any

from adapters.hl7v2.context import Context
from adapters.hl7v2.datatypes import hl7_datetime, scoped_system
from adapters.hl7v2.er7 import Segment
from adapters.hl7v2.tables import table

ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
NULL_FLAVOR = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor"


def encounter(pv1: Segment, ctx: Context, status_rule: str, patient_ref: str
              ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The Encounter of a PV1 and the identifier it is matched on (None: no visit number, no MSH-10)."""
    if status_rule == "from-pv1":
        status = "finished" if pv1.get(45) else "unknown"
    else:
        status = status_rule
    resource: dict[str, Any] = {"resourceType": "Encounter", "status": status, "class": _class(pv1, ctx),
                                "subject": {"reference": patient_ref}}
    period = {key: when for key, when in (("start", _time(pv1, 44, ctx)), ("end", _time(pv1, 45, ctx))) if when}
    if period:
        resource["period"] = period
    visit = pv1.get(19) or ctx.message.control_id
    if not visit:
        ctx.warn("PV1-19", "no visit number and no MSH-10: the Encounter is created on every ingest")
        return resource, None
    value = ctx.unique("visit", visit)
    return resource, {"system": scoped_system("visit", ctx.scope or "unknown"), "value": value}


def _class(pv1: Segment, ctx: Context) -> dict[str, Any]:
    code = pv1.get(2).upper()
    mapped = table("patient_class").get(code)
    if mapped:
        return {"system": ACT_CODE, **mapped}
    if code:
        ctx.warn("PV1-2", f"patient class {code!r} is not a code of HL7 table 0004; class left unknown")
    return {"system": NULL_FLAVOR, "code": "UNK", "display": "unknown"}


def _time(pv1: Segment, field_no: int, ctx: Context) -> str | None:
    raw = pv1.get(field_no)
    if not raw:
        return None
    try:
        return hl7_datetime(raw)
    except ValueError as exc:
        ctx.warn(f"PV1-{field_no}", f"{exc}; left out")
        return None
