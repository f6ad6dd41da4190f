"""The HL7 v2 adapter: a payload of one or more ER7 messages -> one record per message.

Each message is mapped on its own: one that cannot be parsed, or lacks what its event needs, is rejected
alone and the others of the payload are still mapped. Message types the hub does not map (SIU, MDM, ORM,
RDE...) are listed in ``not_mapped``: they are archived with the payload, neither mapped nor rejected, and
the ingest service still acknowledges them (see ``ack``).
"""

from __future__ import annotations

from adapters.base import DEFAULT_LIMITS, FacilityRefused, Limits, Mapping, Record, Source
from adapters.hl7v2.context import Context, Rejected
from adapters.hl7v2.er7 import decode, msh_fields, split_messages
from adapters.hl7v2.message import build
from adapters.hl7v2.parse import Message, Unreadable, parse
from adapters.hl7v2.tables import table
from adapters.normalize import RecordBundle, is_facility_code


def record_key(message: str, index: int) -> str:
    """How the sender knows the message: its control id, else its position in the payload."""
    control_id = msh_fields(message).get(10)
    return f"MSH-10={control_id}" if control_id else f"message[{index}]"


class Hl7v2Adapter:
    format = "hl7v2"
    media_types: tuple[str, ...] = ("x-application/hl7-v2+er7", "application/hl7-v2", "text/hl7v2")

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits

    def detect(self, payload: bytes, filename: str | None = None) -> bool:
        try:
            return decode(payload[:64])[0].lstrip("\ufeff \t\r\n").startswith("MSH|")
        except Exception:  # detect must never raise, whatever the bytes
            return False

    def map(self, payload: bytes, source: Source, *, filename: str | None = None) -> Mapping:
        mapping = Mapping(format=self.format)
        try:
            split = split_messages(payload)
        except Exception as exc:  # map must never raise
            mapping.reject("payload", None, f"the payload cannot be read: {type(exc).__name__}: {exc}")
            return mapping
        if not split.messages:
            mapping.reject("payload", "MSH", "no MSH segment: this is not an HL7 v2 message")
            return mapping
        if split.leading:
            mapping.warn("payload", None, f"{len(split.leading)} line(s) before the first MSH ignored")
        if split.charset != "utf-8":
            mapping.warn("payload", "MSH-18", "the payload is not UTF-8; read as Windows-1258")
        mapping.facility = msh_fields(split.messages[0]).get(4) or None
        for index, text in enumerate(split.messages):
            _map_message(text, record_key(text, index), source, mapping, self.limits)
        return mapping


def _map_message(text: str, key: str, source: Source, mapping: Mapping, limits: Limits) -> None:
    try:
        message = parse(text, limits)
        event = table("events").get(message.message_type)
        if event is None:
            mapping.not_mapped.append(f"{message.message_type} ({key})")
            return
        scope = _scope(message, source)
        ctx = Context(message, RecordBundle(source, scope or None), scope)
        for field_name, note in message.notes:
            ctx.warn(field_name, note)
        build(ctx, event)
    except (Unreadable, Rejected, FacilityRefused) as exc:
        mapping.reject(key, exc.field, exc.message)
        return
    except Exception as exc:  # a bug must cost one message, not the payload
        mapping.reject(key, None, f"the message could not be mapped: {type(exc).__name__}: {exc}")
        return
    mapping.records.append(Record(key, ctx.bundle.bundle(), ctx.bundle.facility, tuple(ctx.merges)))
    for warned_field, warning in ctx.warnings:
        mapping.warn(key, warned_field, warning)
    mapping.not_mapped.extend(f"{part} ({key})" for part in ctx.not_mapped)


def _scope(message: Message, source: Source) -> str:
    """Who numbers the message's local identifiers: its MSH-4 when that is a facility the caller may send
    for, else the caller's facility. MSH-4 naming another MoH facility code refuses the message; MSH-4 that
    is no facility code (an application's name, an OID) names no facility the hub knows and is left aside.
    Unchecked (the hub's own callers): MSH-4, else the caller's facility, else MSH-3, as the message says."""
    if source.may_send_for is None:
        return message.facility or source.facility or message.msh.get(3)
    named = message.facility if is_facility_code(message.facility) else None
    return source.facility_of(named, "MSH-4") or ""
