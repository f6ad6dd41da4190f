"""One parsed message -> one record's transaction Bundle, by walking its segments in order.

A walk rather than hl7apy's groups because senders order segments loosely and the meaning is positional
anyway: an OBX belongs to the OBR (or RXA) before it, a PID starts a new patient (ORU messages may carry
several), an NTE after an OBX is that observation's note. Which resources an event yields is set by
``tables/events.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from adapters.base import MergeRequest
from adapters.hl7v2.context import Context, Rejected
from adapters.hl7v2.encounter import encounter
from adapters.hl7v2.er7 import Segment
from adapters.hl7v2.immunization import add_route, immunization
from adapters.hl7v2.patient import identifiers_of, patient
from adapters.hl7v2.results import Order, observation, observation_identifier, order_anchor, report

_QUIET = {"MSH", "EVN", "SFT"}  # header segments: nothing in them to keep as clinical data


@dataclass
class _Walk:
    ctx: Context
    event: dict[str, Any]
    refs: dict[str, str] = field(default_factory=dict)
    order: Order | None = None
    orc: Segment | None = None
    last_observation: dict[str, Any] | None = None
    last_immunization: dict[str, Any] | None = None
    patient_match: dict[str, Any] | None = None
    visit: str | None = None  # the visit's identifier value, once a PV1 gave one
    patients: int = 0
    reports: int = 0
    immunizations: int = 0
    unused: dict[str, None] = field(default_factory=dict)


def build(ctx: Context, event: dict[str, Any]) -> None:
    """Fill ``ctx.bundle``; raises Rejected when the message lacks what its event needs."""
    walk = _Walk(ctx, event)
    for segment in ctx.message.segments:
        handler = _HANDLERS.get(segment.name)
        if handler is None or not handler(walk, segment):
            if segment.name not in _QUIET:
                walk.unused[segment.name] = None
    _close_order(walk)
    if walk.patients == 0:
        raise Rejected("PID", f"a {ctx.message.message_type} message needs a PID segment")
    if event["kind"] == "merge" and not any(s.name == "MRG" for s in ctx.message.segments):
        raise Rejected("MRG-1", "an A40 (merge) message needs an MRG segment naming the patient to merge")
    if walk.unused:
        ctx.not_mapped.append("segments " + ", ".join(walk.unused))


def _pid(walk: _Walk, pid: Segment) -> bool:
    if walk.patients and walk.event["kind"] != "results":
        return False  # one patient per ADT/VXU message; a second PID is not part of these events
    _close_order(walk)
    walk.patients += 1
    resource, match = patient(pid, walk.ctx, walk.patients)
    walk.refs = {"patient": walk.ctx.bundle.add(resource, match)}
    walk.patient_match = match
    return True


def _pv1(walk: _Walk, pv1: Segment) -> bool:
    status_rule = walk.event.get("encounter")
    if not status_rule or "patient" not in walk.refs or "encounter" in walk.refs:
        return False
    resource, match = encounter(pv1, walk.ctx, status_rule, walk.refs["patient"])
    walk.refs["encounter"] = walk.ctx.bundle.add(resource, match)
    walk.visit = match["value"] if match else None
    return True


def _obr(walk: _Walk, obr: Segment) -> bool:
    if walk.event["kind"] != "results":
        return False
    _close_order(walk)
    walk.reports += 1
    walk.order = Order(order_anchor(obr, walk.ctx), obr=obr, ordinal=walk.reports)
    return True


def _orc(walk: _Walk, orc: Segment) -> bool:
    walk.orc = orc
    return walk.event["kind"] in ("results", "immunization")


def _obx(walk: _Walk, obx: Segment) -> bool:
    if "patient" not in walk.refs:
        walk.ctx.warn("OBX", "an OBX before any PID has no patient; left out")
        return True
    if walk.order is None:  # OBX outside an order (ADT): keyed by the visit, so an A03 repeating the A01's
        # observations finds them again instead of adding copies; without a visit, by the message
        walk.order = Order(f"visit/{walk.visit}" if walk.visit else walk.ctx.message.control_id or "message")
    refs = dict(walk.refs)
    if walk.last_immunization is not None and "immunization" in refs:
        refs["part_of"] = refs["immunization"]
    resource = observation(obx, walk.ctx, walk.order, refs)
    walk.last_observation = resource
    if resource is not None:
        ref = walk.ctx.bundle.add(resource, observation_identifier(walk.order, walk.ctx))
        if walk.order.obr is not None:
            walk.order.results.append({"reference": ref})
    return True


def _nte(walk: _Walk, nte: Segment) -> bool:
    text = "\n".join(v.text() for v in nte.reps(3))
    if walk.last_observation is None or not text:
        return False
    walk.last_observation.setdefault("note", []).append({"text": text})
    return True


def _rxa(walk: _Walk, rxa: Segment) -> bool:
    if walk.event["kind"] != "immunization" or "patient" not in walk.refs:
        return False
    _close_order(walk)
    walk.immunizations += 1
    resource, match = immunization(rxa, walk.orc, walk.ctx, walk.refs, walk.immunizations)
    walk.refs["immunization"] = walk.ctx.bundle.add(resource, match)
    walk.last_immunization = resource
    walk.order = Order(f"{match['value']}/RXA")
    return True


def _rxr(walk: _Walk, rxr: Segment) -> bool:
    if walk.last_immunization is None:
        return False
    add_route(rxr, walk.last_immunization, walk.ctx)
    return True


def _mrg(walk: _Walk, mrg: Segment) -> bool:
    """A40: the adapter merges nothing itself (it sees one message, not the records); it hands the request
    to the hub (``Record.merges``), which merges the two records' persons through patient matching: the
    records stay as the facility sent them, the merge is logged and can be undone (``Patient/$unmerge``)."""
    if walk.event["kind"] != "merge" or walk.patient_match is None:
        return False
    old = [i for cx in mrg.reps(1) for i in identifiers_of(cx, "", walk.ctx, "MRG-1")]
    if not old:
        raise Rejected("MRG-1", "the MRG segment names no patient identifier to merge")
    walk.ctx.merges.append(MergeRequest(walk.patient_match, tuple(old), "MRG-1"))
    return True


def _close_order(walk: _Walk) -> None:
    order, walk.order = walk.order, None
    walk.last_observation = None
    if order is None or order.obr is None:
        return
    made = report(order, walk.ctx, walk.refs)
    if made is not None:
        walk.ctx.bundle.add(*made)


_HANDLERS = {"PID": _pid, "PV1": _pv1, "OBR": _obr, "ORC": _orc, "OBX": _obx, "NTE": _nte, "RXA": _rxa,
             "RXR": _rxr, "MRG": _mrg}
