"""The one interface every adapter implements, and the report it gives back.

An adapter turns one payload (a file, a message) into **records**, each a FHIR ``transaction`` Bundle that
the hub commits on its own: a bad record is rejected alone and the good records of the same payload are
still stored. Every entry of a record's Bundle is a conditional create (``ifNoneExist`` on a business
identifier) or refers to one (``Patient?identifier=system|value``), so that ingesting a payload twice
creates nothing the second time.

Adapters are pure: bytes in, Bundles and a report out. Archiving the raw payload, committing the Bundles
through the hub's write path and writing the Provenance are the ingest service's job
(``fhir_hub.ingest``), the same for every format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


# No slots: a payload's problems cross the mapping worker's pipe, and unpickling 200,000 of them held the
# hub's GIL 0.56 s with slots (a Python __setstate__ each), 0.27 s without.
@dataclass(frozen=True)
class Problem:
    """Why a record was rejected, or what was noticed in a record that was kept (``kept=True``).

    ``record`` names the record as the sender knows it (``MA_LK=2024000123``, ``MSH-10=MSG00001``,
    ``patients.csv line 12``); ``field`` the element (``XML1.NGAY_VAO``, ``PID-7``, ``patients.csv:birth_date``).
    """

    record: str
    field: str | None
    message: str
    kept: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"record": self.record, "field": self.field, "message": self.message,
                "severity": "warning" if self.kept else "error"}

    def text(self, max_chars: int) -> str:
        """``field: message``, unless the message already names the field (a Bundle entry's error does); cut
        to ``max_chars`` (a message quoting a huge value must not make a huge answer)."""
        if not self.field or self.message.startswith(self.field):
            return clip(self.message, max_chars)
        return clip(f"{self.field}: {self.message}", max_chars)


def clip(text: str, max_chars: int) -> str:
    """``text`` cut to at most ``max_chars`` characters, an ellipsis saying it was cut."""
    return text if len(text) <= max_chars else text[:max_chars - 1] + "…"


@dataclass(frozen=True, slots=True)
class MergeRequest:
    """A sender saying two of its patient records are one person (HL7 v2 A40): the patient to keep (its
    identifier, as in the record's Bundle) and those merged into it (MRG-1). The adapter merges nothing:
    the hub's patient matching does it, through the same operation as a person would (``$merge``)."""

    keep: dict[str, Any]  # {"system": ..., "value": ...}
    merged: tuple[dict[str, Any], ...]
    field: str  # where the merged patients are named, for the report: "MRG-1"


@dataclass(frozen=True, slots=True)
class Record:
    """One record of a payload, ready for the hub: ``bundle`` is a transaction Bundle (a dict); ``facility``
    the facility its local numbers are scoped to and its resources tagged with (None: the adapter scopes
    nothing to a facility, e.g. FHIR JSON, whose ids are scoped to the token's facility); ``merges``: what
    the sender asks to merge once the Bundle is stored."""

    key: str
    bundle: dict[str, Any]
    facility: str | None = None
    merges: tuple[MergeRequest, ...] = ()


@dataclass
class Mapping:
    """What an adapter made of a payload."""

    format: str
    records: list[Record] = field(default_factory=list)
    rejected: list[Problem] = field(default_factory=list)  # records left out, each with its reason
    warnings: list[Problem] = field(default_factory=list)  # records kept, with something worth a look
    not_mapped: list[str] = field(default_factory=list)  # parts kept only in the raw payload (e.g. "XML6")
    facility: str | None = None  # the facility the payload names, as written (MACSKCB, MSH-4): not checked

    def reject(self, record: str, field_name: str | None, message: str) -> None:
        self.rejected.append(Problem(record, field_name, message))

    def warn(self, record: str, field_name: str | None, message: str) -> None:
        self.warnings.append(Problem(record, field_name, message, kept=True))


@dataclass(frozen=True, slots=True)
class Source:
    """Where a payload comes from: stamped on every resource as tags (see ``normalize.tag``), and which
    facilities its records may be scoped to.

    Local numbers (an episode's MA_LK, a patient number, a visit number) are unique only within the facility
    that assigns them, and the hub writes them as that facility's (a conditional update on
    ``{hub}/sid/<kind>/<facility>``). Were the facility code inside a payload believed, one facility could
    upload a file saying it is another and own that facility's records before it sends them; so a payload
    may only name the token's facility, or one the hub is configured to let that token send for
    (``may_send_for``). ``may_send_for=None`` checks nothing: the hub's own callers, and adapters' unit tests.
    """

    format: str  # "moh-xml", "hl7v2", "csv", "fhir"
    facility: str | None = None  # the facility code the caller's token names, if any
    may_send_for: frozenset[str] | None = None  # facility codes a payload may name (the token's included)

    def facility_of(self, named: str | None, field_name: str) -> str | None:
        """The facility a record is scoped to, given the one the payload names (None or "": none) at
        ``field_name``. Raises ``FacilityRefused`` when the payload names one the caller may not send for."""
        if self.may_send_for is None:
            return named or self.facility
        if not named:
            return self.facility
        if named not in self.may_send_for:
            raise FacilityRefused(field_name, named, self)
        return named


class FacilityRefused(ValueError):
    """A payload names a facility its sender may not send for: the record is refused, naming the field."""

    def __init__(self, field_name: str, named: str, source: Source) -> None:
        token = f"the token's facility is {source.facility}" if source.facility else "the token names no facility"
        self.field = field_name
        self.message = (f"{field_name} names facility {named!r}, but {token} and it may not send for {named}: "
                        "records are only stored as the sending facility's own")
        super().__init__(self.message)


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on one record of a payload, against input built to make parsing slow rather than to carry data
    (a 200 KB HL7 v2 message with 100,000 repetitions of PID-3 took hl7apy 15 s). Over a bound the record
    is rejected, naming the field; the payload's other records are still mapped."""

    hl7v2_max_repetitions: int = 100  # of one field; no real message comes near it
    hl7v2_max_parts: int = 64  # components and subcomponents per repetition: no HL7 v2 data type has as many


DEFAULT_LIMITS = Limits()


class Adapter(Protocol):
    """One per format. ``detect`` must be cheap and must not raise; ``map`` must not raise either: a
    payload it cannot read at all gives a Mapping with one rejected record naming the problem.
    ``filename`` is what the sender called the file, when it is known (the CSV adapter finds the table by
    it; the others may ignore it)."""

    format: str
    media_types: tuple[str, ...]  # Content-Types that name this format on POST /$ingest

    def detect(self, payload: bytes, filename: str | None = None) -> bool: ...

    def map(self, payload: bytes, source: Source, *, filename: str | None = None) -> Mapping: ...


class AdapterError(ValueError):
    """A payload no adapter can read, or one given with a format that does not fit it."""
