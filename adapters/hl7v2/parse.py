"""One message text -> a ``Message``: parsed and checked by hl7apy, read positionally (see ``er7.py``).

hl7apy is run with ``find_groups=False`` and the TOLERANT validation level. Groups are not needed (the
mapping walks the segments in order, which is also how real senders' loosely ordered ORU messages are best
read: the ORU-R01 fixture has an OBX before its PV1) and group finding is where hl7apy is strictest. With
these settings hl7apy still refuses what the hub should refuse: a message without a readable MSH, bad
encoding characters, a segment name no HL7 version defines.

Two hl7apy refusals are worked around, each reported as a warning on the record because the message is
kept: a version hl7apy has no library for (``2.9``, empty MSH-12) is parsed as the nearest one it has, and a
non-Z segment unknown to that version is left out (senders invent segments; the rest of the message is
still good).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache

import hl7apy
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from adapters.base import DEFAULT_LIMITS, Limits
from adapters.hl7v2.er7 import Encoding, Segment, msh_fields

_SEGMENT_NAME = re.compile(r"[A-Z][A-Z0-9]{2}")
_DEFAULT_VERSION = "2.5"


class Unreadable(ValueError):
    """The message cannot be read at all; ``field`` names where it fails (``MSH``, ``MSH-9``...)."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name
        self.message = message


@dataclass(frozen=True, slots=True)
class Message:
    msh: Segment
    segments: tuple[Segment, ...]  # all segments in order, MSH first
    message_type: str  # "ADT^A01": MSH-9.1 ^ MSH-9.2 (EVN-1 when MSH-9.2 is empty)
    control_id: str  # MSH-10
    facility: str  # MSH-4.1 (or MSH-4.2, a facility known only by its OID)
    version: str  # MSH-12.1 as sent
    notes: list[tuple[str, str]] = field(default_factory=list)  # (field, text): warnings from reading

    def first(self, name: str) -> Segment | None:
        return next((s for s in self.segments if s.name == name), None)


def parse(text: str, limits: Limits = DEFAULT_LIMITS) -> Message:
    """Parse one CR-separated message. Raises ``Unreadable``."""
    lines = text.split("\r")
    msh = msh_fields(text)
    if msh.name != "MSH" or len(msh.fields) < 10:
        raise Unreadable("MSH", "the message does not start with a complete MSH segment")
    check_limits(lines, msh.enc, limits)
    notes: list[tuple[str, str]] = []
    sent_version = msh.get(12)
    version = _library_version(sent_version)
    if version != sent_version:
        notes.append(("MSH-12", f"HL7 version {sent_version or '(empty)'!r} is not known to the parser; "
                                f"read as {version}"))
        lines[0] = _with_field(lines[0], msh.enc, 12, version)
    kept = [lines[0]]
    left_out: dict[str, int] = {}
    for line in lines[1:]:
        name = line[:3]
        if len(line) > 3 and line[3] != msh.enc.field or not _known_segment(name, version):
            left_out[name] = left_out.get(name, 0) + 1
            continue
        kept.append(line)
    notes.extend((name or "segment", f"{count} segment(s) {name!r} unknown to HL7 {version}: left out")
                 for name, count in left_out.items())
    parsed = _hl7apy_parse("\r".join(kept))
    enc = _encoding_of(parsed, msh.enc)
    segments = tuple(Segment.of_line(line, enc) for line in kept)
    message_type = _message_type(segments)
    return Message(msh=segments[0], segments=segments, message_type=message_type,
                   control_id=msh.get(10), facility=msh.get(4) or msh.get(4, 2), version=sent_version,
                   notes=notes)


def check_limits(lines: list[str], enc: Encoding, limits: Limits) -> None:
    """Refuse, before hl7apy reads it, a message with a field repeated or split more than ``limits`` allow:
    hl7apy's cost grows with the number of elements (about 0.15 ms each), so such a field costs seconds of
    CPU while a long field of plain text (an embedded PDF) costs almost nothing. Raises ``Unreadable``
    naming the field (``PID-3``). Counting delimiters reads the text once."""
    for line in lines:
        name, parts = line[:3], line.split(enc.field)
        first = 2 if name == "MSH" else 1  # MSH-2 holds the delimiters themselves
        for index in range(first, len(parts)):
            value = parts[index]
            repetitions = value.count(enc.repetition) + 1
            field_name = f"{name}-{index + 1 if name == 'MSH' else index}"
            if repetitions > limits.hl7v2_max_repetitions:
                raise Unreadable(field_name, f"{field_name} repeats {repetitions} times; at most "
                                             f"{limits.hl7v2_max_repetitions} repetitions of a field are read, so "
                                             "the message is not")
            parts_count = value.count(enc.component) + value.count(enc.subcomponent)
            if parts_count > limits.hl7v2_max_parts * repetitions:
                raise Unreadable(field_name, f"{field_name} has {parts_count} components and subcomponents in "
                                             f"{repetitions} repetition(s); no HL7 v2 data type has more than "
                                             f"{limits.hl7v2_max_parts} per repetition, so the message is not read")


def _hl7apy_parse(text: str) -> hl7apy.core.Message:
    try:
        message = parse_message(text, validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=False)
    except Exception as exc:  # hl7apy raises many unrelated exception types for bad input
        raise Unreadable("MSH", f"not a readable HL7 v2 message: {type(exc).__name__}: {exc}") from None
    if len(message.children) != text.count("\r") + 1:
        raise Unreadable("MSH", "the parser did not find every segment of the message")
    return message


def _encoding_of(message: hl7apy.core.Message, fallback: Encoding) -> Encoding:
    chars = getattr(message, "encoding_chars", None) or {}
    try:
        return Encoding(chars["FIELD"], chars["COMPONENT"], chars["REPETITION"], chars["ESCAPE"],
                        chars["SUBCOMPONENT"])
    except (KeyError, TypeError):
        return fallback


def _message_type(segments: tuple[Segment, ...]) -> str:
    msh = segments[0]
    code, event = msh.get(9, 1).upper(), msh.get(9, 2).upper()
    if not event:
        evn = next((s for s in segments if s.name == "EVN"), None)
        event = evn.get(1).upper() if evn else ""
    if not code:
        raise Unreadable("MSH-9", "MSH-9 (message type) is empty")
    return f"{code}^{event}" if event else code


@cache
def _known_segment(name: str, version: str) -> bool:
    if not _SEGMENT_NAME.fullmatch(name):
        return False
    if name.startswith("Z"):
        return True
    try:
        hl7apy.load_reference(name, "Segment", version)
    except Exception:  # ChildNotFound, KeyError depending on the version's library
        return False
    return True


def _library_version(sent: str) -> str:
    """The hl7apy library to parse with: the version sent, else the highest one not above it."""
    supported = hl7apy.SUPPORTED_LIBRARIES
    if sent in supported:
        return sent
    wanted = _version_key(sent)
    if wanted is None:
        return _DEFAULT_VERSION
    below = [v for v in supported if (_version_key(v) or ()) <= wanted]
    return max(below, key=lambda v: _version_key(v) or ()) if below else _DEFAULT_VERSION


def _version_key(version: str) -> tuple[int, ...] | None:
    parts = version.split(".")
    return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) and version else None


def _with_field(line: str, enc: Encoding, n: int, value: str) -> str:
    """An MSH line with MSH-n replaced (MSH-n is split index n-1, MSH-1 being the separator)."""
    parts = line.split(enc.field)
    while len(parts) < n:
        parts.append("")
    parts[n - 1] = value
    return enc.field.join(parts)
