"""What the mapping of one message shares: the parsed message, the record's Bundle, the facility that scopes
local numbers, and the problems noticed on the way. A ``Rejected`` raised anywhere drops the whole message
(its record) and only it."""

from __future__ import annotations

from dataclasses import dataclass, field

from adapters.base import FacilityRefused, MergeRequest
from adapters.hl7v2.parse import Message
from adapters.normalize import RecordBundle, is_facility_code


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
    scope: str  # who numbers local identifiers (see adapter._scope); may be ""
    warnings: list[tuple[str | None, str]] = field(default_factory=list)
    not_mapped: list[str] = field(default_factory=list)
    merges: list[MergeRequest] = field(default_factory=list)  # A40: for the hub to execute
    _used_keys: set[tuple[str, str]] = field(default_factory=set)

    def warn(self, field_name: str | None, text: str) -> None:
        self.warnings.append((field_name, text))

    def may_scope(self, authority: str, field_name: str) -> bool:
        """Whether numbers an authority assigned (CX-4, EI-2) may be written under it: not when it is a MoH
        facility code the caller may not send for (reported). The hub matches that facility's own messages on
        those numbers (conditional updates): written by this sender, they would be the sender's records, and
        the facility's own updates would be refused as another facility's."""
        if not is_facility_code(authority):
            return True
        try:
            self.bundle.source.facility_of(authority, field_name)
        except FacilityRefused:
            self.warn(field_name, f"numbered by facility {authority}, which this token may not send for: "
                                  "that number is left out")
            return False
        return True

    def unique(self, kind: str, value: str) -> str:
        """``value`` made unique among the record's identifiers of ``kind``: RecordBundle.add returns the
        first entry for a repeated identifier, which would silently drop the second resource."""
        candidate, n = value, 1
        while (kind, candidate) in self._used_keys:
            n += 1
            candidate = f"{value}#{n}"
        self._used_keys.add((kind, candidate))
        return candidate
