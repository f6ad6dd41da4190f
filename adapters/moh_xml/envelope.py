"""The GIAMDINHHS envelope: the sending facility and, per HOSO (one episode of care), its tables.

Each ``FILEHOSO`` carries ``LOAIHOSO`` (``XML1`` ... ``XML15``) and ``NOIDUNGFILE``, the base64 of an inner
XML document. Tables are decoded lazily, one by one, so that a broken table rejects only its own HOSO and
tables the hub does not map (XML6 HIV, XML15 tuberculosis...) are never even decoded: they stay in the
archived raw payload. Some HIS put the inner document as plain child elements instead of base64; that is
accepted, since the content is the same.
"""

from __future__ import annotations

import base64
import binascii
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from adapters.moh_xml.errors import HosoError
from adapters.moh_xml.xmlsafe import XmlProblem, descendants, first_text, local, parse


@dataclass
class Hoso:
    """One HOSO; ``index`` counts from 1 in document order, as a person reading the file would."""

    index: int
    files: dict[str, ET.Element] = field(default_factory=dict)  # LOAIHOSO -> its NOIDUNGFILE element
    repeated: list[str] = field(default_factory=list)  # tables given twice: the first one is used

    def label(self, table: str) -> str:
        return f"HOSO[{self.index}].{table}.NOIDUNGFILE"


@dataclass
class Envelope:
    facility: str | None
    hosos: list[Hoso]


def read_envelope(payload: bytes) -> Envelope:
    """Raises XmlProblem when the file as a whole cannot be read."""
    root = parse(payload)
    if local(root.tag) != "GIAMDINHHS":
        raise XmlProblem(f"the root element is {local(root.tag)!r}, not GIAMDINHHS")
    unit = next(descendants(root, "THONGTINDONVI"), None)
    facility = first_text(unit, "MACSKCB") if unit is not None else None
    hosos = []
    for index, element in enumerate(descendants(root, "HOSO"), start=1):
        hoso = Hoso(index)
        for item in descendants(element, "FILEHOSO"):
            name = (first_text(item, "LOAIHOSO") or "").upper()
            content = next(descendants(item, "NOIDUNGFILE"), None)
            if not name or content is None:
                continue
            if name in hoso.files:
                hoso.repeated.append(name)
            else:
                hoso.files[name] = content
        hosos.append(hoso)
    return Envelope(facility, hosos)


def decode_table(hoso: Hoso, table: str) -> ET.Element:
    """The inner document of ``table``; raises HosoError naming ``HOSO[i].XMLn.NOIDUNGFILE``."""
    content = hoso.files[table]
    children = list(content)
    if children:
        return children[0]
    text = "".join((content.text or "").split())
    if not text:
        raise HosoError(hoso.label(table), f"{table}: NOIDUNGFILE is empty")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise HosoError(hoso.label(table), f"{table}: NOIDUNGFILE is not valid base64 ({exc})") from None
    try:
        return parse(raw)
    except XmlProblem as exc:
        raise HosoError(hoso.label(table), f"{table}: {exc}") from None
