"""Which adapter reads a payload: named by the caller (``--format``, Content-Type) or detected.

Detection order matters only where formats overlap: FHIR JSON and HL7 v2 are unambiguous by their first
bytes, MoH XML by its envelope, and CSV (the loosest check) is tried last.
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path

from adapters.base import DEFAULT_LIMITS, Adapter, AdapterError, Limits
from adapters.csv import CsvAdapter, MappingError
from adapters.csv import ingest_order as csv_ingest_order
from adapters.fhir_json import FhirJsonAdapter
from adapters.hl7v2 import Hl7v2Adapter
from adapters.moh_xml import MohXmlAdapter

log = logging.getLogger(__name__)
GENERIC_MEDIA_TYPES = frozenset({"application/octet-stream", "text/plain", ""})


@cache
def adapters(mapping_dir: Path | None = None, limits: Limits = DEFAULT_LIMITS) -> tuple[Adapter, ...]:
    """Every adapter; CSV once per mapping: the two shipped ones, then each ``*.toml`` of ``mapping_dir``
    (a clinic onboarded by writing its mapping file there: ``FHIR_HUB_CSV_MAPPINGS``), read once per
    process: restart the hub after adding one. A mapping that does not load is logged and left out.
    ``limits`` bound what one record may hold (``Limits``)."""
    clinics = sorted(mapping_dir.glob("*.toml")) if mapping_dir is not None and mapping_dir.is_dir() else []
    csv = [CsvAdapter(), CsvAdapter("synthea")]
    for path in clinics:
        try:
            csv.append(CsvAdapter(path))
        except MappingError as exc:  # one clinic's broken mapping must not stop every other ingest
            log.error("CSV mapping left out: %s", exc)
    return (FhirJsonAdapter(), Hl7v2Adapter(limits), MohXmlAdapter(), *csv)


def formats() -> tuple[str, ...]:
    return tuple(dict.fromkeys(a.format for a in adapters()))


def adapter_for(payload: bytes, *, filename: str | None = None, media_type: str | None = None,
                format_name: str | None = None, mapping_dir: Path | None = None, limits: Limits = DEFAULT_LIMITS
                ) -> Adapter:
    """The adapter for a payload: among those the format (or else a specific media type) names, the first
    whose detection accepts the content, then the first accepting the file name (``.csv`` fits every CSV
    mapping, the header decides between them). A format named but not detected still gets its adapter,
    which reports what it cannot read; with nothing named, an undetected payload is an error."""
    candidates = adapters(mapping_dir, limits)
    media = (media_type or "").split(";", 1)[0].strip().lower()
    named = bool(format_name) or media not in GENERIC_MEDIA_TYPES
    if format_name:
        candidates = tuple(a for a in candidates if a.format == format_name)
        if not candidates:
            raise AdapterError(f"format {format_name!r} is not one of {', '.join(formats())}")
    elif named:
        candidates = tuple(a for a in candidates if media in a.media_types)
        if not candidates:
            raise AdapterError(f"Content-Type {media!r} names no format this hub reads; send one of "
                               + ", ".join(sorted({m for a in adapters() for m in a.media_types}))
                               + " or application/octet-stream to have the format detected")
    for hint in (None, filename):
        for adapter in candidates:
            if adapter.detect(payload, hint):
                return adapter
    if named:
        return candidates[0]
    raise AdapterError("the payload is none of the formats this hub reads (" + ", ".join(formats())
                       + "); name it with --format or the Content-Type")


# File-name prefixes of what other records refer to, in the order they must arrive (an encounter refers to
# its patient, a patient to an organization). CSV files are ordered by their mappings' own table order.
_REFERRED_TO_FIRST = ("organization", "location", "practitioner", "patient")


def ingest_order(paths: list[Path]) -> list[Path]:
    """Files others refer to first, the rest in name order: a folder is always ingested the same way."""
    def rank(path: Path) -> tuple[int, str]:
        name = path.name.lower()
        first = [i for i, prefix in enumerate(_REFERRED_TO_FIRST) if name.startswith(prefix)]
        return (min(first, default=len(_REFERRED_TO_FIRST)), str(path))

    others = sorted((p for p in paths if p.suffix.lower() != ".csv"), key=rank)
    return [*others, *csv_ingest_order([p for p in paths if p.suffix.lower() == ".csv"])]
