"""The MoH XML adapter: a GIAMDINHHS file in, one record (transaction Bundle) per HOSO out.

A HOSO is one episode of care, keyed by MA_LK. Whatever is wrong inside a HOSO (bad base64, a malformed
table, no MA_LK, no name, an impossible date) rejects that HOSO alone, named by its key and the element;
the other HOSOs of the file are still mapped. Only a file that cannot be read at all gives a single
rejection for the whole payload. Tables without a mapping (XML6 HIV, XML7 discharge paper, XML15
tuberculosis...) are listed in ``not_mapped``; they stay in the raw payload archived by the ingest service,
and the episode's Encounter is tagged with every table its HOSO carried (``meta.tag``, system
``codes.CS_TABLE``): an HIV or tuberculosis table makes the whole episode sensitive (consent/sensitivity.json)
even though the hub does not read it.
"""

from __future__ import annotations

from collections.abc import Callable

from adapters.base import FacilityRefused, Mapping, Record, Source
from adapters.moh_xml.clinical import map_medications, map_progress, map_results, map_services
from adapters.moh_xml.codes import Row
from adapters.moh_xml.context import Episode
from adapters.moh_xml.envelope import Envelope, Hoso, decode_table, read_envelope
from adapters.moh_xml.errors import HosoError
from adapters.moh_xml.followup import map_appointments, map_referrals
from adapters.moh_xml.rows import table_rows
from adapters.moh_xml.summary import map_summary
from adapters.moh_xml.xmlsafe import BOM, XmlProblem
from adapters.normalize import RecordBundle

TableMapper = Callable[[Episode, list[Row]], None]
MAPPERS: dict[str, TableMapper] = {
    "XML2": map_medications, "XML3": map_services, "XML4": map_results, "XML5": map_progress,
    "XML13": map_referrals, "XML14": map_appointments,
}
MAPPED = frozenset({"XML1", *MAPPERS})
FILE = "file"  # the record name of problems with the payload as a whole
ENVELOPE_FACILITY = "THONGTINDONVI.MACSKCB"


class MohXmlAdapter:
    """QĐ 130 / 4750 / 3176 exports, and QĐ 4210 element names (renamed by ``tables/legacy_4210.json``).

    ``Mapping.facility`` is the envelope's THONGTINDONVI/MACSKCB (None when absent); each record's own
    facility is XML1.MA_CSKCB, falling back to the envelope's and then to the caller's. A code the caller
    may not send for (``Source.facility_of``) refuses the file (MACSKCB) or the HOSO (XML1.MA_CSKCB)."""

    format = "moh-xml"
    media_types: tuple[str, ...] = ("application/xml", "text/xml", "application/vnd.moh.giamdinhhs+xml")

    def detect(self, payload: bytes, filename: str | None = None) -> bool:
        head = payload[:1024].removeprefix(BOM).lstrip()
        return head.startswith(b"<") and b"GIAMDINHHS" in head

    def map(self, payload: bytes, source: Source, *, filename: str | None = None) -> Mapping:
        mapping = Mapping(self.format)
        try:
            envelope = read_envelope(payload)
        except XmlProblem as exc:
            mapping.reject(FILE, "GIAMDINHHS", str(exc))
            return mapping
        except Exception as exc:  # map() must never raise; say what happened instead
            mapping.reject(FILE, "GIAMDINHHS", f"unreadable: {type(exc).__name__}: {exc}")
            return mapping
        mapping.facility = envelope.facility
        try:
            source.facility_of(envelope.facility, ENVELOPE_FACILITY)
        except FacilityRefused as exc:
            mapping.reject(FILE, exc.field, exc.message)
            return mapping
        if not envelope.hosos:
            mapping.reject(FILE, "THONGTINHOSO.DANHSACHHOSO", "no HOSO in the file")
        for hoso in envelope.hosos:
            for table in hoso.files:
                if table not in MAPPED and table not in mapping.not_mapped:
                    mapping.not_mapped.append(table)
            self._map_hoso(hoso, envelope, source, mapping)
        return mapping

    def _map_hoso(self, hoso: Hoso, envelope: Envelope, source: Source, mapping: Mapping) -> None:
        key = f"HOSO[{hoso.index}]"
        try:
            summary = _summary_row(hoso)
            if summary.get("MA_LK"):
                key = f"MA_LK={summary['MA_LK']}"
            episode = _episode(key, summary, envelope, source, tuple(hoso.files))
            map_summary(episode, summary)
            for table, mapper in MAPPERS.items():
                if table in hoso.files:
                    mapper(episode, table_rows(table, decode_table(hoso, table)))
        except (HosoError, FacilityRefused) as exc:
            mapping.reject(key, exc.field, str(exc))
            return
        except Exception as exc:  # one odd HOSO must not stop the others
            mapping.reject(key, None, f"could not be mapped: {type(exc).__name__}: {exc}")
            return
        for table in hoso.repeated:
            episode.warn(f"{table}", f"{table} is given more than once in this HOSO; the first one is used")
        mapping.records.append(Record(key, episode.bundle.bundle(), episode.facility))
        mapping.warnings.extend(episode.warnings)


def _summary_row(hoso: Hoso) -> Row:
    if "XML1" not in hoso.files:
        raise HosoError(f"HOSO[{hoso.index}].XML1", "no XML1 (TONG_HOP) table: nothing identifies the episode")
    rows = table_rows("XML1", decode_table(hoso, "XML1"))
    if not rows:
        raise HosoError(f"HOSO[{hoso.index}].XML1", "the XML1 table has no TONG_HOP content")
    return rows[0]


def _episode(key: str, summary: Row, envelope: Envelope, source: Source, tables: tuple[str, ...]) -> Episode:
    ma_lk = summary.get("MA_LK")
    if not ma_lk:
        raise HosoError("XML1.MA_LK", "missing: MA_LK is the episode's key")
    named = summary.get("MA_CSKCB")
    facility = source.facility_of(named or envelope.facility, "XML1.MA_CSKCB" if named else ENVELOPE_FACILITY)
    if not facility:
        raise HosoError("XML1.MA_CSKCB", "missing, and the envelope names no MACSKCB: MA_LK is unique only "
                                         "within a facility")
    episode = Episode(key, ma_lk, facility, RecordBundle(source, facility), tables=tables)
    if envelope.facility and summary.get("MA_CSKCB") and envelope.facility != facility:
        episode.warn("XML1.MA_CSKCB", f"{facility!r} differs from the envelope's MACSKCB {envelope.facility!r}")
    return episode
