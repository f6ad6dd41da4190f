"""What the mapping of one message shares: the parsed message, the record's Bundle, the facility that scopes
local numbers, and the problems noticed on the way. A ``Rejected`` raised anywhere drops the whole message
(its record) and only it."""

from __future__ import annotations

from dataclasses import dataclass, field

from adapters.hl7v2.parse import Message
from adapters.normalize import RecordBundle


class Rejected(Exception):
    """The message cannot make a record: ``field`` names the HL7 field (``PID-7``, ``RXA-3``)."""

    def __init__(self, field_name: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field_name
        self.message = message


@dataclass
class Context:
    message: Message
    bundle: RecordBundle
    scope: str  # who numbers local identifiers: MSH-4, else the caller's facility, else MSH-3; may be ""
    warnings: list[tuple[str | None, str]] = field(default_factory=list)
    not_mapped: list[str] = field(default_factory=list)
    _used_keys: set[tuple[str, str]] = field(default_factory=set)

    def warn(self, field_name: str | None, text: str) -> None:
        self.warnings.append((field_name, text))

    def unique(self, kind: str, value: str) -> str:
        """``value`` made unique among the record's identifiers of ``kind``: RecordBundle.add returns the
        first entry for a repeated identifier, which would silently drop the second resource."""
        candidate, n = value, 1
        while (kind, candidate) in self._used_keys:
            n += 1
            candidate = f"{value}#{n}"
        self._used_keys.add((kind, candidate))
        return candidate
